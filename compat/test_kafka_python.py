"""kafka-python, with its default settings (no api_version pinning), against a live kbroker.

Scenario names (the test function names) are shared with test_confluent_kafka.py so the
results table lines the two clients up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import kafka.errors as Errors
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
from kafka.partitioner.default import murmur2

from compat.conftest import KAFKA_TOPIC_DEFAULTS, now_ms, text_like_values
from compat.diskfmt import single_record_batch_size, stored_batches, value_len_for_batch_size
from compat.livebroker import LiveBroker

pytestmark = pytest.mark.compat

POLL_DEADLINE_S = 15.0


# -- helpers ----------------------------------------------------------------------------------
@contextmanager
def admin_client(broker: LiveBroker) -> Iterator[KafkaAdminClient]:
    """An admin client with default settings."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        yield admin
    finally:
        admin.close()


@contextmanager
def producer(broker: LiveBroker, **configs: object) -> Iterator[KafkaProducer]:
    """A producer with default settings plus the scenario's own."""
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, **configs)
    try:
        yield prod
    finally:
        prod.close(timeout=10)


@contextmanager
def consumer(broker: LiveBroker, **configs: object) -> Iterator[KafkaConsumer]:
    """A group-less consumer (group_id=None): partitions are assigned by hand."""
    cons = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None, **configs)
    try:
        yield cons
    finally:
        cons.close()


def create_topic(
    broker: LiveBroker, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    """Create a topic through the admin API (explicit replication factor 1)."""
    with admin_client(broker) as admin:
        admin.create_topics(
            {
                name: {
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": configs or {},
                }
            }
        )


def poll_records(cons: KafkaConsumer, count: int, *, deadline_s: float = POLL_DEADLINE_S) -> list:
    """Poll until `count` records arrived or the deadline passed; returns them in arrival order."""
    records: list = []
    deadline = time.monotonic() + deadline_s
    while len(records) < count and time.monotonic() < deadline:
        for batch in cons.poll(timeout_ms=200).values():
            records.extend(batch)
    assert len(records) >= count, (
        f"consumer received {len(records)} of {count} records within {deadline_s:.0f} s: {records[:3]}"
    )
    return records


def expected_partition(key: bytes, partitions: int) -> int:
    """kafka-python's DefaultPartitioner: murmur2 of the key, Java-compatible."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def topic_configs(admin: KafkaAdminClient, topic: str) -> dict[str, dict]:
    """Every config of a topic as DescribeConfigs reports it."""
    result = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    return result["topic"][topic]


def consume_all(broker: LiveBroker, topic: str, partitions: int, count: int) -> list:
    """Read `count` records from the beginning of every partition of `topic`."""
    with consumer(broker) as cons:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        cons.assign(tps)
        cons.seek_to_beginning(*tps)
        return poll_records(cons, count)


# -- bootstrap --------------------------------------------------------------------------------
def test_bootstrap(broker: LiveBroker, topic_name: str) -> None:
    """A client with only bootstrap_servers finds the one broker and its topics."""
    with admin_client(broker) as admin:
        cluster = admin.describe_cluster()
        assert cluster["cluster_id"], cluster
        assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [(broker.host, broker.port)]
        assert cluster["controller_id"] == cluster["brokers"][0]["broker_id"]
        admin.create_topics({topic_name: {"num_partitions": 2, "replication_factor": 1}})
        assert topic_name in admin.list_topics()
    with consumer(broker) as cons:
        assert topic_name in cons.topics()
        assert cons.partitions_for_topic(topic_name) == {0, 1}


def test_auto_create_topic(broker: LiveBroker, topic_name: str) -> None:
    """Producing to an unknown topic creates it (auto.create.topics.enable, num.partitions=1)."""
    with producer(broker) as prod:
        md = prod.send(topic_name, b"first").get(timeout=15)
    assert (md.partition, md.offset) == (0, 0)
    with admin_client(broker) as admin:
        [described] = admin.describe_topics([topic_name])
        assert [p["partition_index"] for p in described["partitions"]] == [0]


# -- admin ------------------------------------------------------------------------------------
def test_create_topic_with_configs(broker: LiveBroker, topic_name: str) -> None:
    """CreateTopics applies configs; duplicates and bad configs get Kafka's errors."""
    with admin_client(broker) as admin:
        result = admin.create_topics(
            {
                topic_name: {
                    "num_partitions": 3,
                    "replication_factor": 1,
                    "configs": {"retention.ms": "3600000", "cleanup.policy": "compact"},
                }
            }
        )
        assert [t["error_code"] for t in result["topics"]] == [0]
        [described] = admin.describe_topics([topic_name])
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]
        assert all(p["leader_id"] >= 0 for p in described["partitions"])
        configs = topic_configs(admin, topic_name)
        assert configs["retention.ms"]["value"] == "3600000"
        assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert configs["cleanup.policy"]["value"] == "compact"

        with pytest.raises(Errors.TopicAlreadyExistsError):
            admin.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 1}})
        with pytest.raises(Errors.InvalidConfigurationError):
            admin.create_topics(
                {
                    topic_name + ".bad": {
                        "num_partitions": 1,
                        "replication_factor": 1,
                        "configs": {"retention.ms": "not-a-number"},
                    }
                }
            )
        with pytest.raises(Errors.InvalidReplicationFactorError):
            admin.create_topics(
                {topic_name + ".rf": {"num_partitions": 1, "replication_factor": 3}}
            )
        assert topic_name + ".bad" not in admin.list_topics()


def test_describe_configs_defaults(broker: LiveBroker, topic_name: str) -> None:
    """A topic without overrides reports Kafka's defaults, sourced DEFAULT_CONFIG."""
    create_topic(broker, topic_name)
    with admin_client(broker) as admin:
        configs = topic_configs(admin, topic_name)
        for name, value in KAFKA_TOPIC_DEFAULTS.items():
            assert configs[name]["value"] == value, (name, configs[name])
            assert configs[name]["config_source"] == "DEFAULT_CONFIG", (name, configs[name])
        # Only the requested keys come back when keys are named.
        only = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic_name, ["retention.ms"])],
            config_filter="all",
        )
        assert list(only["topic"][topic_name]) == ["retention.ms"]


def test_alter_configs_incremental(broker: LiveBroker, topic_name: str) -> None:
    """IncrementalAlterConfigs SET and DELETE change one key and leave the others alone."""
    create_topic(broker, topic_name, configs={"cleanup.policy": "compact"})
    with admin_client(broker) as admin:
        result = admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic_name, {"retention.ms": "120000"})],
            incremental=True,
        )
        assert result == {"topic": {topic_name: "OK"}}
        configs = topic_configs(admin, topic_name)
        assert configs["retention.ms"]["value"] == "120000"
        assert configs["cleanup.policy"]["value"] == "compact"

        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    topic_name,
                    {"retention.ms": (AlterConfigOp.DELETE, None)},
                )
            ],
            incremental=True,
        )
        configs = topic_configs(admin, topic_name)
        assert configs["retention.ms"]["value"] == KAFKA_TOPIC_DEFAULTS["retention.ms"]
        assert configs["retention.ms"]["config_source"] == "DEFAULT_CONFIG"
        assert configs["cleanup.policy"]["value"] == "compact"

        bad = admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic_name, {"retention.ms": "soon"})],
            incremental=True,
        )
        assert bad["topic"][topic_name].startswith("[Error 40] InvalidConfigurationError"), bad


def test_alter_configs_legacy(broker: LiveBroker, topic_name: str) -> None:
    """The pre-KIP-339 AlterConfigs (whole-set replace) still works."""
    create_topic(broker, topic_name)
    with admin_client(broker) as admin:
        result = admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    topic_name,
                    {"retention.ms": "90000", "max.message.bytes": "20000"},
                )
            ],
            incremental=False,
        )
        assert result == {"topic": {topic_name: "OK"}}
        configs = topic_configs(admin, topic_name)
        assert configs["retention.ms"]["value"] == "90000"
        assert configs["max.message.bytes"]["value"] == "20000"
        assert configs["max.message.bytes"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"


def test_add_partitions(broker: LiveBroker, topic_name: str) -> None:
    """CreatePartitions grows a topic; the new partitions take writes; shrinking is refused."""
    create_topic(broker, topic_name, partitions=1)
    with admin_client(broker) as admin:
        admin.create_partitions({topic_name: 3})
        [described] = admin.describe_topics([topic_name])
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]
        with pytest.raises(Errors.InvalidPartitionsError):
            admin.create_partitions({topic_name: 2})
    with producer(broker) as prod:
        md = prod.send(topic_name, b"to-the-new-partition", partition=2).get(timeout=15)
        assert (md.partition, md.offset) == (2, 0)


def test_delete_topic(broker: LiveBroker, topic_name: str) -> None:
    """DeleteTopics removes the topic and its data; a re-created topic starts empty."""
    create_topic(broker, topic_name)
    with producer(broker) as prod:
        prod.send(topic_name, b"old").get(timeout=15)
    with admin_client(broker) as admin:
        admin.delete_topics([topic_name])
        assert topic_name not in admin.list_topics()
        with pytest.raises(Errors.UnknownTopicOrPartitionError):
            admin.delete_topics([topic_name])
    create_topic(broker, topic_name)
    with consumer(broker) as cons:
        tp = TopicPartition(topic_name, 0)
        assert cons.end_offsets([tp]) == {tp: 0}


# -- produce ----------------------------------------------------------------------------------
@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_produce_keyed(broker: LiveBroker, topic_name: str, acks: int | str) -> None:
    """Keyed records land in the partition kafka-python's partitioner chose, in order."""
    partitions = 4
    create_topic(broker, topic_name, partitions=partitions)
    keys = [f"key-{i % 10}".encode() for i in range(40)]
    with producer(broker, acks=acks) as prod:
        futures = [prod.send(topic_name, key=k, value=f"v{i}".encode()) for i, k in enumerate(keys)]
        prod.flush(timeout=15)
        for key, future in zip(keys, futures, strict=True):
            md = future.get(timeout=15)
            assert md.partition == expected_partition(key, partitions)
            if acks != 0:  # acks=0 gets no response, hence no offset (Kafka reports -1)
                assert md.offset >= 0
    records = consume_all(broker, topic_name, partitions, len(keys))
    assert len(records) == len(keys)
    for record in records:
        assert record.partition == expected_partition(record.key, partitions), record
    for p in range(partitions):
        in_p = [r for r in records if r.partition == p]
        assert [r.offset for r in in_p] == list(range(len(in_p)))
        sent_order = [
            f"v{i}".encode() for i, k in enumerate(keys) if expected_partition(k, partitions) == p
        ]
        assert [r.value for r in in_p] == sent_order


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(broker: LiveBroker, topic_name: str, codec: str) -> None:
    """Compressed batches are stored as sent and come back intact."""
    create_topic(broker, topic_name)
    values = [(f"record {i} ".encode() + b"compressible " * 40) for i in range(200)]
    with producer(broker, compression_type=codec, linger_ms=20) as prod:
        futures = [
            prod.send(topic_name, key=str(i).encode(), value=value)
            for i, value in enumerate(values)
        ]
        prod.flush(timeout=15)
        assert [f.get(timeout=15).offset for f in futures] == list(range(len(values)))
    records = consume_all(broker, topic_name, 1, len(values))
    assert [r.value for r in records] == values
    assert [r.key for r in records] == [str(i).encode() for i in range(len(values))]
    assert [r.offset for r in records] == list(range(len(values)))
    assert {b.compression for b in stored_batches(broker.data_dir, topic_name, 0)} == {codec}


def test_topic_compression_type(broker: LiveBroker, topic_name: str) -> None:
    """A compression.type=gzip topic stores gzip whatever the producer sends (Kafka recompresses)."""
    create_topic(broker, topic_name, configs={"compression.type": "gzip"})
    sent = []
    for codec in (None, "lz4"):
        with producer(broker, compression_type=codec, linger_ms=20) as prod:
            futures = []
            for _ in range(50):
                n = len(sent)
                rec = (
                    f"k{n}".encode(),
                    f"{codec} {n} ".encode() + b"compressible " * 20,
                    [("n", str(n).encode()), ("codec", str(codec).encode())],
                    1_600_000_000_000 + 1000 * n,
                )
                sent.append(rec)
                futures.append(
                    prod.send(
                        topic_name, key=rec[0], value=rec[1], headers=rec[2], timestamp_ms=rec[3]
                    )
                )
            prod.flush(timeout=15)
            assert [f.get(timeout=15).offset for f in futures] == list(
                range(len(sent) - 50, len(sent))
            )
    records = consume_all(broker, topic_name, 1, len(sent))
    assert [(r.key, r.value, r.headers, r.timestamp) for r in records] == sent
    assert [r.offset for r in records] == list(range(len(sent)))
    assert {r.timestamp_type for r in records} == {0}  # CreateTime kept
    stored = stored_batches(broker.data_dir, topic_name, 0)
    assert {b.compression for b in stored} == {"gzip"}
    assert sum(b.records_count for b in stored) == len(sent)


def test_topic_compression_level(broker: LiveBroker, topic_name: str) -> None:
    """compression.gzip.level (KIP-390) is the level the broker compresses at: same records, fewer bytes at 9 than at 1."""
    values = text_like_values()
    stored = {}
    for level in (1, 9):
        topic = f"{topic_name}-{level}"
        create_topic(
            broker,
            topic,
            configs={"compression.type": "gzip", "compression.gzip.level": str(level)},
        )
        with admin_client(broker) as admin:
            level_config = topic_configs(admin, topic)["compression.gzip.level"]
        assert level_config["value"] == str(level)
        assert level_config["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        # One batch per topic (sent at flush, long before linger or batch_size would cut
        # it), so the two levels compress exactly the same records.
        with producer(broker, linger_ms=60_000, batch_size=1_000_000) as prod:
            futures = [prod.send(topic, value=value) for value in values]
            prod.flush(timeout=15)
            assert [f.get(timeout=15).offset for f in futures] == list(range(len(values)))
        assert [r.value for r in consume_all(broker, topic, 1, len(values))] == values
        [batch] = stored_batches(broker.data_dir, topic, 0)
        assert batch.compression == "gzip"
        stored[level] = batch.size
    assert stored[9] < stored[1]


def test_max_message_bytes(broker: LiveBroker, topic_name: str) -> None:
    """A batch of exactly max.message.bytes is accepted; one byte more is MESSAGE_TOO_LARGE."""
    limit = 10_000
    create_topic(broker, topic_name, configs={"max.message.bytes": str(limit)})
    fits = value_len_for_batch_size(limit)
    with producer(broker, acks=1) as prod:
        md = prod.send(topic_name, value=b"x" * fits).get(timeout=15)
        assert md.offset == 0
        [stored] = stored_batches(broker.data_dir, topic_name, 0)
        assert stored.size == single_record_batch_size(fits) == limit
        with pytest.raises(Errors.MessageSizeTooLargeError) as excinfo:
            prod.send(topic_name, value=b"x" * (fits + 1)).get(timeout=15)
        assert excinfo.value.errno == 10  # MESSAGE_TOO_LARGE
    with consumer(broker) as cons:
        tp = TopicPartition(topic_name, 0)
        assert cons.end_offsets([tp]) == {tp: 1}


def test_headers_and_create_time(broker: LiveBroker, topic_name: str) -> None:
    """Headers and the producer's CreateTime come back unchanged."""
    create_topic(broker, topic_name)
    ts = 1_600_000_000_123
    headers = [("trace-id", b"abc123"), ("empty", b""), ("trace-id", b"dup")]
    with producer(broker) as prod:
        md = prod.send(topic_name, key=b"k", value=b"v", headers=headers, timestamp_ms=ts).get(
            timeout=15
        )
        assert md.timestamp == ts
    [record] = consume_all(broker, topic_name, 1, 1)
    assert record.timestamp == ts
    assert record.timestamp_type == 0  # CreateTime
    assert record.headers == headers


def test_log_append_time(broker: LiveBroker, topic_name: str) -> None:
    """On a LogAppendTime topic the broker's clock replaces the producer's timestamp."""
    create_topic(broker, topic_name, configs={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    with producer(broker, acks=1) as prod:
        md = prod.send(topic_name, value=b"v", timestamp_ms=1_500_000_000_000).get(timeout=15)
    after = now_ms()
    [record] = consume_all(broker, topic_name, 1, 1)
    assert record.timestamp_type == 1  # LogAppendTime
    assert before <= record.timestamp <= after
    assert md.timestamp == record.timestamp  # ProduceResponse carries log_append_time_ms
    assert {b.timestamp_type for b in stored_batches(broker.data_dir, topic_name, 0)} == {1}


# -- consume by assignment --------------------------------------------------------------------
def produce_values(
    broker: LiveBroker, topic: str, values: list[bytes], timestamps: list[int] | None = None
) -> None:
    """Produce values (acks=all, default settings) and wait for every ack."""
    with producer(broker) as prod:
        futures = [
            prod.send(topic, value=v, timestamp_ms=None if timestamps is None else timestamps[i])
            for i, v in enumerate(values)
        ]
        for future in futures:
            future.get(timeout=15)


def test_consume_from_beginning(broker: LiveBroker, topic_name: str) -> None:
    """assign + seek_to_beginning reads every record from offset 0."""
    create_topic(broker, topic_name)
    values = [f"m{i}".encode() for i in range(10)]
    produce_values(broker, topic_name, values)
    with consumer(broker) as cons:
        tp = TopicPartition(topic_name, 0)
        cons.assign([tp])
        assert cons.beginning_offsets([tp]) == {tp: 0}
        assert cons.end_offsets([tp]) == {tp: 10}
        cons.seek_to_beginning(tp)
        records = poll_records(cons, 10)
    assert [(r.offset, r.value) for r in records] == list(enumerate(values))


def test_consume_from_end(broker: LiveBroker, topic_name: str) -> None:
    """seek_to_end skips what is there and delivers only what is produced afterwards."""
    create_topic(broker, topic_name)
    produce_values(broker, topic_name, [b"old-1", b"old-2", b"old-3"])
    with consumer(broker) as cons:
        tp = TopicPartition(topic_name, 0)
        cons.assign([tp])
        cons.seek_to_end(tp)
        assert cons.position(tp) == 3
        produce_values(broker, topic_name, [b"new-1", b"new-2"])
        records = poll_records(cons, 2)
    assert [(r.offset, r.value) for r in records] == [(3, b"new-1"), (4, b"new-2")]


def test_consume_from_timestamp(broker: LiveBroker, topic_name: str) -> None:
    """offsets_for_times finds the first record at or after a timestamp (ListOffsets v1+)."""
    create_topic(broker, topic_name)
    base = 1_700_000_000_000
    stamps = [base + i * 1000 for i in range(5)]
    produce_values(broker, topic_name, [f"t{i}".encode() for i in range(5)], stamps)
    with consumer(broker) as cons:
        tp = TopicPartition(topic_name, 0)
        found = cons.offsets_for_times({tp: base + 1500})[tp]
        assert (found.offset, found.timestamp) == (2, base + 2000)
        assert cons.offsets_for_times({tp: base - 1})[tp].offset == 0
        assert cons.offsets_for_times({tp: base + 60_000}) == {tp: None}
        cons.assign([tp])
        cons.seek(tp, found.offset)
        records = poll_records(cons, 3)
    assert [(r.offset, r.value, r.timestamp) for r in records] == [
        (2, b"t2", base + 2000),
        (3, b"t3", base + 3000),
        (4, b"t4", base + 4000),
    ]


def test_offset_out_of_range_resets(broker: LiveBroker, topic_name: str) -> None:
    """A fetch past the end gets OFFSET_OUT_OF_RANGE, and auto_offset_reset=earliest recovers."""
    create_topic(broker, topic_name)
    produce_values(broker, topic_name, [b"r0", b"r1", b"r2"])
    with consumer(broker, auto_offset_reset="earliest") as cons:
        tp = TopicPartition(topic_name, 0)
        cons.assign([tp])
        cons.seek(tp, 100)
        records = poll_records(cons, 3)
    assert [(r.offset, r.value) for r in records] == [(0, b"r0"), (1, b"r1"), (2, b"r2")]


def test_delete_records(broker: LiveBroker, topic_name: str) -> None:
    """DeleteRecords moves the log start offset; consumers start there; past the end is refused."""
    create_topic(broker, topic_name)
    produce_values(broker, topic_name, [f"d{i}".encode() for i in range(10)])
    tp = TopicPartition(topic_name, 0)
    with admin_client(broker) as admin:
        assert admin.delete_records({tp: 4})[tp]["low_watermark"] == 4
        with pytest.raises(Errors.OffsetOutOfRangeError):
            admin.delete_records({tp: 11})  # beyond the high watermark
    with consumer(broker) as cons:
        assert cons.beginning_offsets([tp]) == {tp: 4}
        cons.assign([tp])
        cons.seek_to_beginning(tp)
        records = poll_records(cons, 6)
    assert [(r.offset, r.value) for r in records] == [(i, f"d{i}".encode()) for i in range(4, 10)]


# -- restarts ---------------------------------------------------------------------------------
def _produce_keyed_batch(
    broker: LiveBroker, topic: str, count: int
) -> list[tuple[int, int, bytes, bytes]]:
    with producer(broker, acks="all") as prod:
        futures = [
            (
                prod.send(topic, key=f"k{i}".encode(), value=f"value-{i}".encode()),
                f"k{i}".encode(),
                f"value-{i}".encode(),
            )
            for i in range(count)
        ]
        return sorted(
            (f.get(timeout=15).partition, f.get(timeout=15).offset, k, v) for f, k, v in futures
        )


def _check_survived(
    broker: LiveBroker, topic: str, sent: list[tuple[int, int, bytes, bytes]]
) -> None:
    records = consume_all(broker, topic, 2, len(sent))
    assert sorted((r.partition, r.offset, r.key, r.value) for r in records) == sent
    with producer(broker, acks="all") as prod:
        md = prod.send(topic, value=b"after", partition=0).get(timeout=15)
    assert md.offset == sum(1 for p, *_ in sent if p == 0)  # offsets continue, no reuse


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
