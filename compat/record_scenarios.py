"""Produce/consume scenarios shared by every client's suite: one definition, one adapter per client.

A scenario states what a user of any Kafka client observes: where records land, their offsets,
timestamps and headers, what the broker stored (read from disk by ``compat.diskfmt``), which
error a refused write gets. ``RecordClient`` is how one client library creates a topic,
produces, reads by assignment and lists offsets, so a new scenario is one function here and a
new client one adapter module in ``compat/adapters/``. The consumer-group
scenarios have their own module, ``compat.group_scenarios``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from compat.conftest import KAFKA_TOPIC_DEFAULTS, now_ms, text_like_values
from compat.diskfmt import single_record_batch_size, stored_batches, value_len_for_batch_size
from compat.livebroker import LiveBroker
from compat.scenario_tests import as_test

Headers = list[tuple[str, bytes]]
CREATE_TIME, LOG_APPEND_TIME = 0, 1  # Kafka's record-batch timestamp types
# Kafka's error codes (Errors.java) and ConfigSource ids (DescribeConfigsResponse).
OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_OR_PARTITION, MESSAGE_TOO_LARGE, INVALID_PARTITIONS = (
    1,
    3,
    10,
    37,
)
DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG = 1, 5


@dataclass(frozen=True)
class Out:
    """One record to produce; ``None`` leaves the choice to the client (partitioner, clock)."""

    value: bytes
    key: bytes | None = None
    headers: Headers = field(default_factory=list)
    timestamp: int | None = None
    partition: int | None = None


@dataclass(frozen=True)
class Producing:
    """How a producer is configured: acks, a compression codec (``None``: none), linger.ms
    (``None``: the client's default)."""

    acks: int | str = "all"
    compression: str | None = None
    linger_ms: int | None = None

    def settings(self, *, dotted: bool) -> dict[str, Any]:
        """As a producer's settings: named as in Kafka's Java client (``dotted``, librdkafka)
        or as kafka-python and aiokafka name them."""
        if dotted:
            out = {"acks": self.acks, "compression.type": self.compression or "none"}
        else:
            out = {"acks": self.acks, "compression_type": self.compression}
        if self.linger_ms is not None:
            out["linger.ms" if dotted else "linger_ms"] = self.linger_ms
        return out


PLAIN = Producing()


@dataclass(frozen=True)
class Sent:
    """What the client reports for one delivered record.

    ``offset`` is -1 and ``partition`` may be -1 under acks=0 (no response); ``timestamp_type``
    is ``None`` for a client that does not report one on delivery.
    """

    partition: int
    offset: int
    timestamp: int | None
    timestamp_type: int | None = None


@dataclass(frozen=True)
class Got:
    """One consumed record."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp: int
    timestamp_type: int


@dataclass(frozen=True)
class Config:
    """One config entry as DescribeConfigs reports it; ``is_default`` is ``None`` for a client
    that does not hand the flag out."""

    value: str | None
    source: int  # Kafka's ConfigSource id
    is_default: bool | None = None


class Refused(Exception):
    """A produce the broker refused, with Kafka's error code."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(f"error {code}: {detail}")
        self.code = code


class RecordClient(Protocol):
    """One client library, as the record scenarios use it."""

    # acks=0 gets no ProduceResponse: does the client still report the partition it chose?
    partition_known_without_acks: bool
    # Does the client hand over the low watermark a DeleteRecords response reports?
    reports_low_watermark: bool

    def create_topic(
        self,
        broker: LiveBroker,
        name: str,
        partitions: int = 1,
        configs: dict[str, str] | None = None,
    ) -> None:
        """Create a topic through the client's admin API (replication factor 1)."""

    def expected_partition(self, key: bytes, partitions: int) -> int:
        """The partition the client's default partitioner picks for ``key``."""

    def produce(
        self, broker: LiveBroker, topic: str, records: list[Out], how: Producing = PLAIN
    ) -> list[Sent]:
        """Produce ``records`` with one producer configured ``how`` and wait for every
        delivery, in order; raises ``Refused`` when the broker refuses one."""

    def read(
        self,
        broker: LiveBroker,
        topic: str,
        partitions: int,
        count: int,
        *,
        seek: int | None = None,
    ) -> list[Got]:
        """At least ``count`` records by assignment of every partition, from the beginning or,
        with ``seek``, from that offset of partition 0 (auto offset reset: earliest)."""

    def offsets(self, broker: LiveBroker, topic: str, partition: int) -> tuple[int, int]:
        """(log start offset, end offset) of one partition, as the client lists them."""

    def partitions(self, broker: LiveBroker, topic: str) -> list[int]:
        """The topic's partition ids as its metadata lists them, sorted."""

    def topics(self, broker: LiveBroker) -> set[str]:
        """Every topic name the client lists."""

    def create_partitions(self, broker: LiveBroker, topic: str, count: int) -> int:
        """CreatePartitions to ``count`` in all; Kafka's error code (0: done)."""

    def delete_topic(self, broker: LiveBroker, topic: str) -> int:
        """DeleteTopics of one topic; Kafka's error code (0: deleted)."""

    def delete_records(
        self, broker: LiveBroker, topic: str, partition: int, before: int
    ) -> tuple[int, int | None]:
        """DeleteRecords of one partition's records before offset ``before``: Kafka's error
        code (0: done) and the low watermark the response reports (``None`` when refused, or
        for a client that does not hand it over)."""

    def topic_configs(self, broker: LiveBroker, topic: str) -> dict[str, Config]:
        """Every config of the topic as DescribeConfigs reports it."""


# -- admin ------------------------------------------------------------------------------------
def add_partitions(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """CreatePartitions grows a topic; the new partitions take writes; shrinking is refused."""
    client.create_topic(broker, topic, 1)
    assert client.create_partitions(broker, topic, 3) == 0
    assert client.partitions(broker, topic) == [0, 1, 2]
    assert client.create_partitions(broker, topic, 2) == INVALID_PARTITIONS
    [sent] = client.produce(broker, topic, [Out(b"to-the-new-partition", partition=2)])
    assert (sent.partition, sent.offset) == (2, 0)


def delete_topic(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """DeleteTopics removes the topic and its data; deleting it again is
    UNKNOWN_TOPIC_OR_PARTITION; a re-created topic starts empty."""
    client.create_topic(broker, topic)
    client.produce(broker, topic, [Out(b"old")])
    assert client.delete_topic(broker, topic) == 0
    assert topic not in client.topics(broker)
    assert client.delete_topic(broker, topic) == UNKNOWN_TOPIC_OR_PARTITION
    client.create_topic(broker, topic)
    assert client.offsets(broker, topic, 0) == (0, 0)


def delete_records(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """DeleteRecords moves the log start offset; consumers start there; past the end is refused."""
    client.create_topic(broker, topic)
    client.produce(broker, topic, [Out(f"d{i}".encode(), partition=0) for i in range(10)])
    code, low_watermark = client.delete_records(broker, topic, 0, 4)
    assert (code, low_watermark) == (0, 4 if client.reports_low_watermark else None)
    assert client.delete_records(broker, topic, 0, 11)[0] == OFFSET_OUT_OF_RANGE  # past the HW
    assert client.offsets(broker, topic, 0) == (4, 10)
    records = client.read(broker, topic, 1, 6)
    assert [(r.offset, r.value) for r in records] == [(i, f"d{i}".encode()) for i in range(4, 10)]


def describe_configs_defaults(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """A topic without overrides reports Kafka's defaults, sourced DEFAULT_CONFIG."""
    client.create_topic(broker, topic)
    configs = client.topic_configs(broker, topic)
    for name, value in KAFKA_TOPIC_DEFAULTS.items():
        assert configs[name].value == value, (name, configs[name])
        assert configs[name].source == DEFAULT_CONFIG, (name, configs[name])
        assert configs[name].is_default in (None, True), (name, configs[name])


# -- produce ----------------------------------------------------------------------------------
def produce_keyed(client: RecordClient, broker: LiveBroker, topic: str, acks: int | str) -> None:
    """Keyed records land in the partition the client's partitioner chose, in order."""
    partitions = 4
    client.create_topic(broker, topic, partitions)
    keys = [f"key-{i % 10}".encode() for i in range(40)]
    sent = client.produce(
        broker,
        topic,
        [Out(f"v{i}".encode(), key) for i, key in enumerate(keys)],
        Producing(acks=acks),
    )
    assert len(sent) == len(keys)
    for key, report in zip(keys, sent, strict=True):
        if acks != 0 or client.partition_known_without_acks:
            assert report.partition == client.expected_partition(key, partitions)
        if acks != 0:  # acks=0 gets no response, hence no offset (Kafka reports -1)
            assert report.offset >= 0
    records = client.read(broker, topic, partitions, len(keys))
    assert len(records) == len(keys)
    for record in records:
        assert record.key is not None
        assert record.partition == client.expected_partition(record.key, partitions), record
    for p in range(partitions):
        in_p = [r for r in records if r.partition == p]
        assert [r.offset for r in in_p] == list(range(len(in_p)))
        sent_order = [
            f"v{i}".encode()
            for i, k in enumerate(keys)
            if client.expected_partition(k, partitions) == p
        ]
        assert [r.value for r in in_p] == sent_order


def compression(client: RecordClient, broker: LiveBroker, topic: str, codec: str) -> None:
    """Compressed batches are stored as sent and come back intact."""
    client.create_topic(broker, topic)
    values = [(f"record {i} ".encode() + b"compressible " * 40) for i in range(200)]
    sent = client.produce(
        broker,
        topic,
        [Out(value, str(i).encode()) for i, value in enumerate(values)],
        Producing(compression=codec, linger_ms=20),
    )
    assert [s.offset for s in sent] == list(range(len(values)))
    records = client.read(broker, topic, 1, len(values))
    assert [r.value for r in records] == values
    assert [r.key for r in records] == [str(i).encode() for i in range(len(values))]
    assert [r.offset for r in records] == list(range(len(values)))
    assert {b.compression for b in stored_batches(broker.data_dir, topic, 0)} == {codec}


def topic_compression_type(
    client: RecordClient,
    broker: LiveBroker,
    topic: str,
    topic_codec: str,
    producer_codecs: tuple[str | None, ...] = (None, "lz4"),
) -> None:
    """A compression.type=<topic_codec> topic stores that codec whatever the producer sends
    (Kafka recompresses), keeping keys, values, headers and CreateTime. 50 records are sent
    with each of ``producer_codecs`` (the ones the client has)."""
    client.create_topic(broker, topic, configs={"compression.type": topic_codec})
    sent: list[Out] = []
    for codec in producer_codecs:
        batch: list[Out] = []
        for _ in range(50):
            n = len(sent) + len(batch)
            batch.append(
                Out(
                    f"{codec} {n} ".encode() + b"compressible " * 20,
                    f"k{n}".encode(),
                    [("n", str(n).encode()), ("codec", str(codec).encode())],
                    1_600_000_000_000 + 1000 * n,
                    partition=0,
                )
            )
        reports = client.produce(broker, topic, batch, Producing(compression=codec, linger_ms=20))
        assert [s.offset for s in reports] == list(range(len(sent), len(sent) + 50))
        sent += batch
    records = client.read(broker, topic, 1, len(sent))
    assert [(r.key, r.value, r.headers, r.timestamp) for r in records] == [
        (s.key, s.value, s.headers, s.timestamp) for s in sent
    ]
    assert [r.offset for r in records] == list(range(len(sent)))
    assert {r.timestamp_type for r in records} == {CREATE_TIME}
    stored = stored_batches(broker.data_dir, topic, 0)
    assert {b.compression for b in stored} == {topic_codec}
    assert sum(b.records_count for b in stored) == len(sent)


def topic_compression_level(
    client: RecordClient,
    broker: LiveBroker,
    topic: str,
    codec: str,
    levels: tuple[int, int],
    produce_one_batch: Callable[[LiveBroker, str, list[bytes]], list[int]],
) -> None:
    """compression.<codec>.level (KIP-390) is the level the broker compresses at: the same
    records, sent as one batch (``produce_one_batch``: their offsets) to a topic at each of
    ``levels`` (low, high), take fewer bytes at the high one."""
    values = text_like_values()
    level_name = f"compression.{codec}.level"
    stored = {}
    for level in levels:
        name = f"{topic}-{level}"
        client.create_topic(
            broker, name, configs={"compression.type": codec, level_name: str(level)}
        )
        config = client.topic_configs(broker, name)[level_name]
        assert (config.value, config.source) == (str(level), DYNAMIC_TOPIC_CONFIG), config
        # One batch per topic, so the two levels compress exactly the same records.
        assert produce_one_batch(broker, name, values) == list(range(len(values)))
        assert [r.value for r in client.read(broker, name, 1, len(values))] == values
        [batch] = stored_batches(broker.data_dir, name, 0)
        assert batch.compression == codec
        stored[level] = batch.size
    low, high = levels
    assert stored[high] < stored[low], stored


def max_message_bytes(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """A batch of exactly max.message.bytes is accepted; one byte more is MESSAGE_TOO_LARGE."""
    limit = 10_000
    client.create_topic(broker, topic, configs={"max.message.bytes": str(limit)})
    fits = value_len_for_batch_size(limit)
    [sent] = client.produce(broker, topic, [Out(b"x" * fits, partition=0)], Producing(acks=1))
    assert sent.offset == 0
    [stored] = stored_batches(broker.data_dir, topic, 0)
    assert stored.size == single_record_batch_size(fits) == limit
    try:
        client.produce(broker, topic, [Out(b"x" * (fits + 1), partition=0)], Producing(acks=1))
    except Refused as refused:
        assert refused.code == MESSAGE_TOO_LARGE, refused
    else:
        raise AssertionError("a batch one byte over max.message.bytes was accepted")
    assert client.offsets(broker, topic, 0) == (0, 1)


def headers_and_create_time(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """Headers (repeated and empty ones too) and the producer's CreateTime come back unchanged."""
    client.create_topic(broker, topic)
    ts = 1_600_000_000_123
    headers = [("trace-id", b"abc123"), ("empty", b""), ("trace-id", b"dup")]
    [sent] = client.produce(broker, topic, [Out(b"v", b"k", headers, ts)])
    assert sent.timestamp == ts
    assert sent.timestamp_type in (None, CREATE_TIME)
    [record] = client.read(broker, topic, 1, 1)
    assert (record.key, record.value) == (b"k", b"v")
    assert (record.timestamp, record.timestamp_type) == (ts, CREATE_TIME)
    assert record.headers == headers


def log_append_time(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """On a LogAppendTime topic the broker's clock replaces the producer's timestamp."""
    client.create_topic(broker, topic, configs={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    [sent] = client.produce(
        broker, topic, [Out(b"v", timestamp=1_500_000_000_000)], Producing(acks=1)
    )
    after = now_ms()
    [record] = client.read(broker, topic, 1, 1)
    assert record.timestamp_type == LOG_APPEND_TIME
    assert before <= record.timestamp <= after
    # ProduceResponse carries log_append_time_ms, which the client reports on delivery.
    assert sent.timestamp == record.timestamp
    assert sent.timestamp_type in (None, LOG_APPEND_TIME)
    assert {b.timestamp_type for b in stored_batches(broker.data_dir, topic, 0)} == {
        LOG_APPEND_TIME
    }


# -- consume by assignment --------------------------------------------------------------------
def offset_out_of_range_resets(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """A fetch past the end gets OFFSET_OUT_OF_RANGE, and auto offset reset=earliest recovers."""
    client.create_topic(broker, topic)
    client.produce(broker, topic, [Out(b"r0"), Out(b"r1"), Out(b"r2")])
    records = client.read(broker, topic, 1, 3, seek=100)
    assert [(r.offset, r.value) for r in records] == [(0, b"r0"), (1, b"r1"), (2, b"r2")]


# -- restarts ---------------------------------------------------------------------------------
def _produce_keyed_batch(
    client: RecordClient, broker: LiveBroker, topic: str, count: int
) -> list[tuple[int, int, bytes | None, bytes]]:
    records = [Out(f"value-{i}".encode(), f"k{i}".encode()) for i in range(count)]
    sent = client.produce(broker, topic, records)
    return sorted(
        (s.partition, s.offset, r.key, r.value) for s, r in zip(sent, records, strict=True)
    )


def _check_survived(
    client: RecordClient,
    broker: LiveBroker,
    topic: str,
    sent: list[tuple[int, int, bytes | None, bytes]],
) -> None:
    records = client.read(broker, topic, 2, len(sent))
    assert sorted((r.partition, r.offset, r.key, r.value) for r in records) == sent
    [after] = client.produce(broker, topic, [Out(b"after", partition=0)])
    assert after.offset == sum(1 for p, *_ in sent if p == 0)  # offsets continue, no reuse


def restart_keeps_data(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """After a clean restart (SIGTERM) every record is there and offsets continue.
    ``broker`` must be the test's own."""
    client.create_topic(broker, topic, 2)
    sent = _produce_keyed_batch(client, broker, topic, 30)
    broker.restart()
    _check_survived(client, broker, topic, sent)


def kill_keeps_acked_data(client: RecordClient, broker: LiveBroker, topic: str) -> None:
    """After SIGKILL (unclean stop) every acknowledged record is recovered.
    ``broker`` must be the test's own."""
    client.create_topic(broker, topic, 2)
    sent = _produce_keyed_batch(client, broker, topic, 30)
    broker.kill()
    broker.start()
    _check_survived(client, broker, topic, sent)


# -- the scenarios as tests -------------------------------------------------------------------
# A client module runs a family by subclassing it as a ``Test...`` class; the tests take the
# module's ``client`` (its RecordClient) and ``broker`` / ``fresh_broker`` fixtures (``as_test``
# where a scenario needs nothing more), and their names are the results table's rows
# (compat/results.py drops the class from the cell name).
class ProduceScenarios:
    """Produce, compression and timestamps, for a client module's ``Test...`` class."""

    # compression.type of the topic in test_topic_compression_type, and the codecs the client
    # produces with there.
    topic_codec = "zstd"
    producer_codecs: tuple[str | None, ...] = (None, "lz4")

    @pytest.mark.parametrize("acks", [0, 1, "all"])
    def test_produce_keyed(
        self, client: RecordClient, broker: LiveBroker, topic_name: str, acks: int | str
    ) -> None:
        produce_keyed(client, broker, topic_name, acks)

    @pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
    def test_compression(
        self, client: RecordClient, broker: LiveBroker, topic_name: str, codec: str
    ) -> None:
        compression(client, broker, topic_name, codec)

    def test_topic_compression_type(
        self, client: RecordClient, broker: LiveBroker, topic_name: str
    ) -> None:
        topic_compression_type(client, broker, topic_name, self.topic_codec, self.producer_codecs)

    test_max_message_bytes = as_test(max_message_bytes)
    test_log_append_time = as_test(log_append_time)


class AdminScenarios:
    """Topic lifecycle and configs, for a client module's ``Test...`` class."""

    test_add_partitions = as_test(add_partitions)
    test_delete_topic = as_test(delete_topic)
    test_delete_records = as_test(delete_records)
    test_describe_configs_defaults = as_test(describe_configs_defaults)


class AssignedScenarios:
    """Headers and offset reset, read by assignment, for a client module's ``Test...`` class."""

    test_headers_and_create_time = as_test(headers_and_create_time)
    test_offset_out_of_range_resets = as_test(offset_out_of_range_resets)


class RestartScenarios:
    """Data across a restart and a kill -9 of the test's own broker (``fresh_broker``)."""

    test_restart_keeps_data = as_test(restart_keeps_data, broker="fresh_broker")
    test_kill_keeps_acked_data = as_test(kill_keeps_acked_data, broker="fresh_broker")


class CompressionLevelScenarios:
    """KIP-390's topic compression levels, for a client module's ``Test...`` class that names
    a codec and two of its levels and says how the client sends records as one batch."""

    level_codec: str
    levels: tuple[int, int]  # low, high

    def produce_one_batch(self, broker: LiveBroker, topic: str, values: list[bytes]) -> list[int]:
        """Send ``values`` to the topic's one partition as a single batch; their offsets."""
        raise NotImplementedError

    def test_topic_compression_level(
        self, client: RecordClient, broker: LiveBroker, topic_name: str
    ) -> None:
        topic_compression_level(
            client, broker, topic_name, self.level_codec, self.levels, self.produce_one_batch
        )
