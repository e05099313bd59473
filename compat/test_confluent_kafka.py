"""confluent-kafka (librdkafka) against a live kbroker, default settings unless a scenario says.

Scenario names match test_kafka_python.py so the results table lines the clients up.
librdkafka's Consumer requires a group.id; these tests only assign() and never commit
(enable.auto.commit=false), since consumer groups are not in scope yet.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from compat.conftest import KAFKA_TOPIC_DEFAULTS, now_ms, text_like_values
from compat.diskfmt import single_record_batch_size, stored_batches, value_len_for_batch_size
from compat.livebroker import LiveBroker

pytestmark = pytest.mark.compat

POLL_DEADLINE_S = 15.0
TIMEOUT_S = 15.0


# -- helpers ----------------------------------------------------------------------------------
def admin_client(broker: LiveBroker) -> AdminClient:
    """An admin client with default settings."""
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


class Delivery:
    """Collects delivery reports in produce order."""

    def __init__(self) -> None:
        self.reports: list[tuple[KafkaError | None, Message]] = []

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        self.reports.append((err, msg))

    def ok(self) -> list[Message]:
        """The delivered messages; fails on any delivery error."""
        errors = [err for err, _ in self.reports if err is not None]
        assert not errors, f"delivery failed: {errors[:3]}"
        return [msg for _, msg in self.reports]


@contextmanager
def producer(broker: LiveBroker, **configs: object) -> Iterator[Producer]:
    """A producer with default settings plus the scenario's own; flushed on exit."""
    prod = Producer({"bootstrap.servers": broker.bootstrap_servers, **configs})
    yield prod
    remaining = prod.flush(TIMEOUT_S)
    assert remaining == 0, f"{remaining} messages still undelivered after {TIMEOUT_S:.0f} s"


@contextmanager
def consumer(broker: LiveBroker, **configs: object) -> Iterator[Consumer]:
    """An assign-only consumer: a group.id is mandatory in librdkafka, but nothing is committed."""
    cons = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "kbroker-compat-assign-only",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **configs,
        }
    )
    try:
        yield cons
    finally:
        cons.close()


def create_topic(
    broker: LiveBroker, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    """Create a topic through the admin API and wait for the result."""
    # Keep the client referenced until the result arrives: a collected AdminClient purges
    # its queue and the future never completes.
    admin = admin_client(broker)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=configs or {})],
        request_timeout=TIMEOUT_S,
    )
    futures[name].result(TIMEOUT_S)


def kafka_error(excinfo: pytest.ExceptionInfo[KafkaException]) -> KafkaError:
    """The KafkaError inside a KafkaException."""
    return excinfo.value.args[0]


def poll_messages(
    cons: Consumer, count: int, *, deadline_s: float = POLL_DEADLINE_S
) -> list[Message]:
    """Consume until `count` messages arrived or the deadline passed; errors fail the test."""
    messages: list[Message] = []
    deadline = time.monotonic() + deadline_s
    while len(messages) < count and time.monotonic() < deadline:
        for msg in cons.consume(num_messages=count - len(messages), timeout=0.2):
            if msg.error() is not None and msg.error().code() == KafkaError._PARTITION_EOF:
                continue  # only with enable.partition.eof: an event, not a record
            assert msg.error() is None, f"consumer error: {msg.error()}"
            messages.append(msg)
    assert len(messages) >= count, (
        f"consumer received {len(messages)} of {count} messages within {deadline_s:.0f} s"
    )
    return messages


def wait_partition_eof(cons: Consumer, *, deadline_s: float = POLL_DEADLINE_S) -> Message:
    """Consume until librdkafka reports reaching the end of a partition (enable.partition.eof)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for msg in cons.consume(num_messages=1, timeout=0.2):
            assert msg.error() is not None, f"unexpected record at offset {msg.offset()}"
            if msg.error().code() == KafkaError._PARTITION_EOF:
                return msg
            raise AssertionError(f"consumer error: {msg.error()}")
    raise AssertionError(f"no partition-EOF event within {deadline_s:.0f} s")


def expected_partition(key: bytes, partitions: int) -> int:
    """librdkafka's default partitioner (consistent_random): CRC-32 of the key."""
    return zlib.crc32(key) % partitions


def topic_configs(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    """Every config of a topic as DescribeConfigs reports it."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(TIMEOUT_S)


def consume_all(broker: LiveBroker, topic: str, partitions: int, count: int) -> list[Message]:
    """Read `count` messages from the beginning of every partition of `topic`."""
    with consumer(broker) as cons:
        cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        return poll_messages(cons, count)


def produce_values(
    broker: LiveBroker, topic: str, values: list[bytes], timestamps: list[int] | None = None
) -> list[Message]:
    """Produce values with acks=all and return the delivery reports."""
    delivery = Delivery()
    with producer(broker, acks="all") as prod:
        for i, value in enumerate(values):
            extra = {} if timestamps is None else {"timestamp": timestamps[i]}
            prod.produce(topic, value=value, on_delivery=delivery, **extra)
    return delivery.ok()


# -- bootstrap --------------------------------------------------------------------------------
def test_bootstrap(broker: LiveBroker, topic_name: str) -> None:
    """Cluster metadata names the one broker at the bootstrap address and lists topics."""
    admin = admin_client(broker)
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    assert metadata.cluster_id
    assert [(b.host, b.port) for b in metadata.brokers.values()] == [(broker.host, broker.port)]
    assert metadata.controller_id in metadata.brokers
    create_topic(broker, topic_name, partitions=2)
    topic = admin.list_topics(topic_name, timeout=TIMEOUT_S).topics[topic_name]
    assert topic.error is None
    assert sorted(topic.partitions) == [0, 1]
    assert {p.leader for p in topic.partitions.values()} == set(metadata.brokers)


def test_auto_create_topic(broker: LiveBroker, topic_name: str) -> None:
    """Producing to an unknown topic creates it (auto.create.topics.enable, num.partitions=1)."""
    delivery = Delivery()
    with producer(broker) as prod:
        prod.produce(topic_name, value=b"first", on_delivery=delivery)
    [msg] = delivery.ok()
    assert (msg.partition(), msg.offset()) == (0, 0)
    topic = admin_client(broker).list_topics(topic_name, timeout=TIMEOUT_S).topics[topic_name]
    assert sorted(topic.partitions) == [0]


# -- admin ------------------------------------------------------------------------------------
def test_create_topic_with_configs(broker: LiveBroker, topic_name: str) -> None:
    """CreateTopics applies configs; duplicates and bad configs get Kafka's errors."""
    create_topic(
        broker,
        topic_name,
        partitions=3,
        configs={"retention.ms": "3600000", "cleanup.policy": "compact"},
    )
    admin = admin_client(broker)
    assert sorted(
        admin.list_topics(topic_name, timeout=TIMEOUT_S).topics[topic_name].partitions
    ) == [0, 1, 2]
    configs = topic_configs(admin, topic_name)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "compact"

    with pytest.raises(KafkaException) as excinfo:
        create_topic(broker, topic_name)
    assert kafka_error(excinfo).code() == KafkaError.TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaException) as excinfo:
        create_topic(broker, topic_name + ".bad", configs={"retention.ms": "not-a-number"})
    assert kafka_error(excinfo).code() == KafkaError.INVALID_CONFIG
    futures = admin.create_topics([NewTopic(topic_name + ".rf", 1, 3)], request_timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as excinfo:
        futures[topic_name + ".rf"].result(TIMEOUT_S)
    assert kafka_error(excinfo).code() == KafkaError.INVALID_REPLICATION_FACTOR


def test_describe_configs_defaults(broker: LiveBroker, topic_name: str) -> None:
    """A topic without overrides reports Kafka's defaults, sourced DEFAULT_CONFIG."""
    create_topic(broker, topic_name)
    configs = topic_configs(admin_client(broker), topic_name)
    for name, value in KAFKA_TOPIC_DEFAULTS.items():
        assert configs[name].value == value, (name, configs[name])
        assert configs[name].source == ConfigSource.DEFAULT_CONFIG.value, (name, configs[name])
        assert configs[name].is_default, (name, configs[name])


def test_alter_configs_incremental(broker: LiveBroker, topic_name: str) -> None:
    """IncrementalAlterConfigs SET and DELETE change one key and leave the others alone."""
    create_topic(broker, topic_name, configs={"cleanup.policy": "compact"})
    admin = admin_client(broker)

    def alter(op: AlterConfigOpType, value: str | None) -> None:
        resource = ConfigResource(
            ResourceType.TOPIC,
            topic_name,
            incremental_configs=[ConfigEntry("retention.ms", value, incremental_operation=op)],
        )
        admin.incremental_alter_configs([resource], request_timeout=TIMEOUT_S)[resource].result(
            TIMEOUT_S
        )

    alter(AlterConfigOpType.SET, "120000")
    configs = topic_configs(admin, topic_name)
    assert configs["retention.ms"].value == "120000"
    assert configs["cleanup.policy"].value == "compact"
    alter(AlterConfigOpType.DELETE, None)
    configs = topic_configs(admin, topic_name)
    assert configs["retention.ms"].value == KAFKA_TOPIC_DEFAULTS["retention.ms"]
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].value == "compact"
    with pytest.raises(KafkaException) as excinfo:
        alter(AlterConfigOpType.SET, "soon")
    assert kafka_error(excinfo).code() == KafkaError.INVALID_CONFIG


def test_alter_configs_legacy(broker: LiveBroker, topic_name: str) -> None:
    """AlterConfigs (pre-KIP-339) replaces the whole override set: omitted keys revert."""
    create_topic(broker, topic_name, configs={"cleanup.policy": "compact"})
    admin = admin_client(broker)
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic_name,
        set_config={"retention.ms": "90000", "max.message.bytes": "20000"},
    )
    admin.alter_configs([resource], request_timeout=TIMEOUT_S)[resource].result(TIMEOUT_S)
    configs = topic_configs(admin, topic_name)
    assert configs["retention.ms"].value == "90000"
    assert configs["max.message.bytes"].value == "20000"
    assert configs["cleanup.policy"].value == "delete"  # not in the new set: back to default
    assert configs["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value


def test_add_partitions(broker: LiveBroker, topic_name: str) -> None:
    """CreatePartitions grows a topic; the new partitions take writes; shrinking is refused."""
    create_topic(broker, topic_name, partitions=1)
    admin = admin_client(broker)
    admin.create_partitions([NewPartitions(topic_name, 3)], request_timeout=TIMEOUT_S)[
        topic_name
    ].result(TIMEOUT_S)
    assert sorted(
        admin.list_topics(topic_name, timeout=TIMEOUT_S).topics[topic_name].partitions
    ) == [0, 1, 2]
    with pytest.raises(KafkaException) as excinfo:
        admin.create_partitions([NewPartitions(topic_name, 2)], request_timeout=TIMEOUT_S)[
            topic_name
        ].result(TIMEOUT_S)
    assert kafka_error(excinfo).code() == KafkaError.INVALID_PARTITIONS
    delivery = Delivery()
    with producer(broker) as prod:
        prod.produce(topic_name, value=b"to-the-new-partition", partition=2, on_delivery=delivery)
    [msg] = delivery.ok()
    assert (msg.partition(), msg.offset()) == (2, 0)


def test_delete_topic(broker: LiveBroker, topic_name: str) -> None:
    """DeleteTopics removes the topic and its data; a re-created topic starts empty."""
    create_topic(broker, topic_name)
    produce_values(broker, topic_name, [b"old"])
    admin = admin_client(broker)
    admin.delete_topics([topic_name], request_timeout=TIMEOUT_S)[topic_name].result(TIMEOUT_S)
    assert topic_name not in admin.list_topics(timeout=TIMEOUT_S).topics
    with pytest.raises(KafkaException) as excinfo:
        admin.delete_topics([topic_name], request_timeout=TIMEOUT_S)[topic_name].result(TIMEOUT_S)
    assert kafka_error(excinfo).code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    create_topic(broker, topic_name)
    with consumer(broker) as cons:
        assert cons.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=TIMEOUT_S) == (
            0,
            0,
        )


# -- produce ----------------------------------------------------------------------------------
@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_produce_keyed(broker: LiveBroker, topic_name: str, acks: int | str) -> None:
    """Keyed records land in the partition librdkafka's partitioner chose, in order."""
    partitions = 4
    create_topic(broker, topic_name, partitions=partitions)
    keys = [f"key-{i % 10}".encode() for i in range(40)]
    delivery = Delivery()
    with producer(broker, acks=acks) as prod:
        for i, key in enumerate(keys):
            prod.produce(topic_name, key=key, value=f"v{i}".encode(), on_delivery=delivery)
    reports = delivery.ok()
    assert len(reports) == len(keys)
    for msg in reports:
        assert msg.partition() == expected_partition(msg.key(), partitions)
        if acks != 0:  # acks=0: no response, so librdkafka reports no offset
            assert msg.offset() >= 0
    messages = consume_all(broker, topic_name, partitions, len(keys))
    assert len(messages) == len(keys)
    for p in range(partitions):
        in_p = [m for m in messages if m.partition() == p]
        assert all(expected_partition(m.key(), partitions) == p for m in in_p)
        assert [m.offset() for m in in_p] == list(range(len(in_p)))
        sent_order = [
            f"v{i}".encode() for i, k in enumerate(keys) if expected_partition(k, partitions) == p
        ]
        assert [m.value() for m in in_p] == sent_order


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(broker: LiveBroker, topic_name: str, codec: str) -> None:
    """Compressed batches are stored as sent and come back intact."""
    create_topic(broker, topic_name)
    values = [(f"record {i} ".encode() + b"compressible " * 40) for i in range(200)]
    delivery = Delivery()
    with producer(broker, **{"compression.type": codec, "linger.ms": 20}) as prod:
        for i, value in enumerate(values):
            prod.produce(topic_name, key=str(i).encode(), value=value, on_delivery=delivery)
    delivery.ok()
    messages = consume_all(broker, topic_name, 1, len(values))
    assert [m.value() for m in messages] == values
    assert [m.key() for m in messages] == [str(i).encode() for i in range(len(values))]
    assert [m.offset() for m in messages] == list(range(len(values)))
    assert {b.compression for b in stored_batches(broker.data_dir, topic_name, 0)} == {codec}


def test_topic_compression_type(broker: LiveBroker, topic_name: str) -> None:
    """A compression.type=zstd topic stores zstd whatever the producer sends (Kafka recompresses)."""
    create_topic(broker, topic_name, configs={"compression.type": "zstd"})
    sent = []
    for codec in ("none", "lz4"):
        delivery = Delivery()
        with producer(broker, **{"compression.type": codec, "linger.ms": 20}) as prod:
            for _ in range(50):
                n = len(sent)
                rec = (
                    f"k{n}".encode(),
                    f"{codec} {n} ".encode() + b"compressible " * 20,
                    [("n", str(n).encode()), ("codec", codec.encode())],
                    1_600_000_000_000 + 1000 * n,
                )
                sent.append(rec)
                prod.produce(
                    topic_name,
                    key=rec[0],
                    value=rec[1],
                    headers=rec[2],
                    timestamp=rec[3],
                    on_delivery=delivery,
                )
        assert [m.offset() for m in delivery.ok()] == list(range(len(sent) - 50, len(sent)))
    messages = consume_all(broker, topic_name, 1, len(sent))
    assert [(m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in messages] == sent
    assert [m.offset() for m in messages] == list(range(len(sent)))
    assert {m.timestamp()[0] for m in messages} == {TIMESTAMP_CREATE_TIME}
    stored = stored_batches(broker.data_dir, topic_name, 0)
    assert {b.compression for b in stored} == {"zstd"}
    assert sum(b.records_count for b in stored) == len(sent)


def test_topic_compression_level(broker: LiveBroker, topic_name: str) -> None:
    """compression.zstd.level (KIP-390) is the level the broker compresses at: same records, fewer bytes at 19 than at 1."""
    values = text_like_values()
    stored = {}
    for level in (1, 19):
        topic = f"{topic_name}-{level}"
        create_topic(
            broker,
            topic,
            configs={"compression.type": "zstd", "compression.zstd.level": str(level)},
        )
        configs = topic_configs(admin_client(broker), topic)
        assert configs["compression.zstd.level"].value == str(level)
        assert configs["compression.zstd.level"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        delivery = Delivery()
        # One batch per topic, so the two levels compress exactly the same records: sent at
        # flush (linger.ms far away), under every size limit (the ~110 KB of values against
        # batch.size, batch.num.messages and message.max.bytes). And the producer learns the
        # topic's partitions first: a record produced before that waits in librdkafka's
        # unassigned queue, and when the metadata arrives during flush() the records are
        # moved to the partition one by one (rd_kafka_topic_assign_uas) while the woken
        # broker thread already sends the first few, as a batch of their own.
        settings = {
            "compression.type": "none",
            "linger.ms": 60_000,
            "batch.size": 1_000_000,
            "batch.num.messages": 10_000,
            "message.max.bytes": 1_000_000,
        }
        with producer(broker, **settings) as prod:
            assert topic in prod.list_topics(topic, timeout=TIMEOUT_S).topics
            for value in values:
                prod.produce(topic, value=value, on_delivery=delivery)
        delivery.ok()
        assert [m.value() for m in consume_all(broker, topic, 1, len(values))] == values
        [batch] = stored_batches(broker.data_dir, topic, 0)
        assert batch.compression == "zstd"
        stored[level] = batch.size
    assert stored[19] < stored[1]


def test_max_message_bytes(broker: LiveBroker, topic_name: str) -> None:
    """A batch of exactly max.message.bytes is accepted; one byte more is MSG_SIZE_TOO_LARGE."""
    limit = 10_000
    create_topic(broker, topic_name, configs={"max.message.bytes": str(limit)})
    fits = value_len_for_batch_size(limit)
    delivery = Delivery()
    with producer(broker, acks=1) as prod:
        prod.produce(topic_name, value=b"x" * fits, on_delivery=delivery)
    [msg] = delivery.ok()
    assert msg.offset() == 0
    [stored] = stored_batches(broker.data_dir, topic_name, 0)
    assert stored.size == single_record_batch_size(fits) == limit

    delivery = Delivery()
    with producer(broker, acks=1) as prod:
        prod.produce(topic_name, value=b"x" * (fits + 1), on_delivery=delivery)
    [(err, _)] = delivery.reports
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    with consumer(broker) as cons:
        assert cons.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=TIMEOUT_S) == (
            0,
            1,
        )


def test_headers_and_create_time(broker: LiveBroker, topic_name: str) -> None:
    """Headers and the producer's CreateTime come back unchanged."""
    create_topic(broker, topic_name)
    ts = 1_600_000_000_123
    headers = [("trace-id", b"abc123"), ("empty", b""), ("trace-id", b"dup")]
    delivery = Delivery()
    with producer(broker) as prod:
        prod.produce(
            topic_name, key=b"k", value=b"v", headers=headers, timestamp=ts, on_delivery=delivery
        )
    [sent] = delivery.ok()
    assert sent.timestamp() == (TIMESTAMP_CREATE_TIME, ts)
    [msg] = consume_all(broker, topic_name, 1, 1)
    assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, ts)
    assert msg.headers() == headers


def test_log_append_time(broker: LiveBroker, topic_name: str) -> None:
    """On a LogAppendTime topic the broker's clock replaces the producer's timestamp."""
    create_topic(broker, topic_name, configs={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    delivery = Delivery()
    with producer(broker, acks=1) as prod:
        prod.produce(topic_name, value=b"v", timestamp=1_500_000_000_000, on_delivery=delivery)
    [sent] = delivery.ok()
    after = now_ms()
    [msg] = consume_all(broker, topic_name, 1, 1)
    kind, ts = msg.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert before <= ts <= after
    # ProduceResponse carries log_append_time_ms, which librdkafka reports on delivery.
    assert sent.timestamp() == (TIMESTAMP_LOG_APPEND_TIME, ts)
    assert {b.timestamp_type for b in stored_batches(broker.data_dir, topic_name, 0)} == {1}


# -- consume by assignment --------------------------------------------------------------------
def test_consume_from_beginning(broker: LiveBroker, topic_name: str) -> None:
    """assign(OFFSET_BEGINNING) reads every record from offset 0; ListOffsets agrees."""
    create_topic(broker, topic_name)
    values = [f"m{i}".encode() for i in range(10)]
    produce_values(broker, topic_name, values)
    tp = TopicPartition(topic_name, 0)
    admin = admin_client(broker)
    specs = {TopicPartition(topic_name, 0): OffsetSpec.earliest()}
    assert admin.list_offsets(specs, request_timeout=TIMEOUT_S)[tp].result(TIMEOUT_S).offset == 0
    specs = {TopicPartition(topic_name, 0): OffsetSpec.latest()}
    assert admin.list_offsets(specs, request_timeout=TIMEOUT_S)[tp].result(TIMEOUT_S).offset == 10
    with consumer(broker) as cons:
        assert cons.get_watermark_offsets(tp, timeout=TIMEOUT_S) == (0, 10)
        cons.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
        messages = poll_messages(cons, 10)
    assert [(m.offset(), m.value()) for m in messages] == list(enumerate(values))


def test_consume_from_end(broker: LiveBroker, topic_name: str) -> None:
    """assign(OFFSET_END) skips what is there and delivers only what is produced afterwards."""
    create_topic(broker, topic_name)
    produce_values(broker, topic_name, [b"old-1", b"old-2", b"old-3"])
    with consumer(broker, **{"enable.partition.eof": True}) as cons:
        cons.assign([TopicPartition(topic_name, 0, OFFSET_END)])
        # OFFSET_END resolves asynchronously (ListOffsets); librdkafka's partition-EOF event
        # says it resolved and fetched up to the end, so what is produced next comes after.
        eof = wait_partition_eof(cons)
        assert (eof.partition(), eof.offset()) == (0, 3)
        produce_values(broker, topic_name, [b"new-1", b"new-2"])
        messages = poll_messages(cons, 2)
    assert [(m.offset(), m.value()) for m in messages] == [(3, b"new-1"), (4, b"new-2")]


def test_consume_from_timestamp(broker: LiveBroker, topic_name: str) -> None:
    """offsets_for_times / OffsetSpec.for_timestamp find the first record at or after a time."""
    create_topic(broker, topic_name)
    base = 1_700_000_000_000
    stamps = [base + i * 1000 for i in range(5)]
    produce_values(broker, topic_name, [f"t{i}".encode() for i in range(5)], stamps)
    tp = TopicPartition(topic_name, 0)
    admin = admin_client(broker)
    info = admin.list_offsets(
        {TopicPartition(topic_name, 0): OffsetSpec.for_timestamp(base + 1500)},
        request_timeout=TIMEOUT_S,
    )[tp].result(TIMEOUT_S)
    assert (info.offset, info.timestamp) == (2, base + 2000)
    info = admin.list_offsets(
        {TopicPartition(topic_name, 0): OffsetSpec.max_timestamp()}, request_timeout=TIMEOUT_S
    )[tp].result(TIMEOUT_S)
    assert (info.offset, info.timestamp) == (4, base + 4000)  # KIP-734
    with consumer(broker) as cons:
        [found] = cons.offsets_for_times(
            [TopicPartition(topic_name, 0, base + 1500)], timeout=TIMEOUT_S
        )
        assert found.offset == 2
        [past_end] = cons.offsets_for_times(
            [TopicPartition(topic_name, 0, base + 60_000)], timeout=TIMEOUT_S
        )
        assert past_end.offset == OFFSET_END  # no such record: Kafka answers -1
        cons.assign([found])
        messages = poll_messages(cons, 3)
    assert [(m.offset(), m.value(), m.timestamp()[1]) for m in messages] == [
        (2, b"t2", base + 2000),
        (3, b"t3", base + 3000),
        (4, b"t4", base + 4000),
    ]


def test_offset_out_of_range_resets(broker: LiveBroker, topic_name: str) -> None:
    """A fetch past the end gets OFFSET_OUT_OF_RANGE, and auto.offset.reset=earliest recovers."""
    create_topic(broker, topic_name)
    produce_values(broker, topic_name, [b"r0", b"r1", b"r2"])
    with consumer(broker) as cons:  # auto.offset.reset=earliest
        cons.assign([TopicPartition(topic_name, 0, 100)])
        messages = poll_messages(cons, 3)
    assert [(m.offset(), m.value()) for m in messages] == [(0, b"r0"), (1, b"r1"), (2, b"r2")]


def test_delete_records(broker: LiveBroker, topic_name: str) -> None:
    """DeleteRecords moves the log start offset; consumers start there; past the end is refused."""
    create_topic(broker, topic_name)
    produce_values(broker, topic_name, [f"d{i}".encode() for i in range(10)])
    admin = admin_client(broker)
    [future] = admin.delete_records(
        [TopicPartition(topic_name, 0, 4)], request_timeout=TIMEOUT_S
    ).values()
    assert future.result(TIMEOUT_S).low_watermark == 4
    [future] = admin.delete_records(
        [TopicPartition(topic_name, 0, 11)], request_timeout=TIMEOUT_S
    ).values()
    with pytest.raises(KafkaException) as excinfo:
        future.result(TIMEOUT_S)  # beyond the high watermark
    assert kafka_error(excinfo).code() == KafkaError.OFFSET_OUT_OF_RANGE
    with consumer(broker) as cons:
        assert cons.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=TIMEOUT_S) == (
            4,
            10,
        )
        cons.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
        messages = poll_messages(cons, 6)
    assert [(m.offset(), m.value()) for m in messages] == [
        (i, f"d{i}".encode()) for i in range(4, 10)
    ]


# -- restarts ---------------------------------------------------------------------------------
def _produce_keyed_batch(
    broker: LiveBroker, topic: str, count: int
) -> list[tuple[int, int, bytes, bytes]]:
    delivery = Delivery()
    with producer(broker, acks="all") as prod:
        for i in range(count):
            prod.produce(
                topic, key=f"k{i}".encode(), value=f"value-{i}".encode(), on_delivery=delivery
            )
    return sorted((m.partition(), m.offset(), m.key(), m.value()) for m in delivery.ok())


def _check_survived(
    broker: LiveBroker, topic: str, sent: list[tuple[int, int, bytes, bytes]]
) -> None:
    messages = consume_all(broker, topic, 2, len(sent))
    assert sorted((m.partition(), m.offset(), m.key(), m.value()) for m in messages) == sent
    delivery = Delivery()
    with producer(broker, acks="all") as prod:
        prod.produce(topic, value=b"after", partition=0, on_delivery=delivery)
    [msg] = delivery.ok()
    assert msg.offset() == sum(1 for p, *_ in sent if p == 0)  # offsets continue, no reuse


def test_restart_keeps_data(fresh_broker: LiveBroker, topic_name: str) -> None:
    """After a clean restart (SIGTERM) every record is there and offsets continue."""
    create_topic(fresh_broker, topic_name, partitions=2)
    sent = _produce_keyed_batch(fresh_broker, topic_name, 30)
    fresh_broker.restart()
    _check_survived(fresh_broker, topic_name, sent)


def test_kill_keeps_acked_data(fresh_broker: LiveBroker, topic_name: str) -> None:
    """After SIGKILL (unclean stop) every acknowledged record is recovered."""
    create_topic(fresh_broker, topic_name, partitions=2)
    sent = _produce_keyed_batch(fresh_broker, topic_name, 30)
    fresh_broker.kill()
    fresh_broker.start()
    _check_survived(fresh_broker, topic_name, sent)
