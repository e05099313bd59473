"""confluent-kafka (librdkafka) against a live kbroker, default settings unless a scenario says.

Scenario names match the other clients' modules so the results table lines the clients up;
the scenarios common to several clients are defined once in compat/record_scenarios.py and run
here through compat/adapters/confluent_kafka.py. librdkafka's Consumer requires a group.id;
these tests only assign() and never commit (enable.auto.commit=false).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from compat import record_scenarios
from compat.adapters.confluent_kafka import (
    POLL_DEADLINE_S,
    TIMEOUT_S,
    ConfluentKafkaClient,
    Delivery,
    admin_client,
    consumer,
    create_topic,
    kafka_error,
    poll_messages,
    produce_values,
    producer,
    topic_configs,
)
from compat.conftest import KAFKA_TOPIC_DEFAULTS
from compat.livebroker import LiveBroker

pytestmark = pytest.mark.compat


# -- helpers ----------------------------------------------------------------------------------
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


# -- the shared scenarios (compat/record_scenarios.py) ------------------------------------------
@pytest.fixture(scope="module")
def client() -> ConfluentKafkaClient:
    """confluent-kafka as the shared scenarios drive it."""
    return ConfluentKafkaClient()


class TestSharedScenarios(
    record_scenarios.ProduceScenarios,
    record_scenarios.CompressionLevelScenarios,
    record_scenarios.AdminScenarios,
    record_scenarios.AssignedScenarios,
    record_scenarios.RestartScenarios,
):
    """The scenarios every client runs, through compat/adapters/confluent_kafka.py."""

    level_codec, levels = "zstd", (1, 19)

    def produce_one_batch(self, broker: LiveBroker, topic: str, values: list[bytes]) -> list[int]:
        # Sent at flush (linger.ms far away), under every size limit (the ~110 KB of values
        # against batch.size, batch.num.messages and message.max.bytes). And the producer
        # learns the topic's partitions first: a record produced before that waits in
        # librdkafka's unassigned queue, and when the metadata arrives during flush() the
        # records are moved to the partition one by one (rd_kafka_topic_assign_uas) while the
        # woken broker thread already sends the first few, as a batch of their own.
        settings = {
            "compression.type": "none",
            "linger.ms": 60_000,
            "batch.size": 1_000_000,
            "batch.num.messages": 10_000,
            "message.max.bytes": 1_000_000,
        }
        delivery = Delivery()
        with producer(broker, **settings) as prod:
            assert topic in prod.list_topics(topic, timeout=TIMEOUT_S).topics
            for value in values:
                prod.produce(topic, value=value, on_delivery=delivery)
        return [m.offset() for m in delivery.ok()]
