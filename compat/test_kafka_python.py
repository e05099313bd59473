"""kafka-python, with its default settings (no api_version pinning), against a live kbroker.

Scenario names (the test function names) are shared with the other clients' modules so the
results table lines the clients up; the scenarios common to several clients are defined once
in compat/record_scenarios.py and run here through compat/adapters/kafka_python.py.
"""

from __future__ import annotations

import kafka.errors as Errors
import pytest
from kafka import TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

from compat import record_scenarios
from compat.adapters.kafka_python import (
    KafkaPythonClient,
    admin_client,
    consumer,
    create_topic,
    poll_records,
    producer,
    topic_configs,
)
from compat.conftest import KAFKA_TOPIC_DEFAULTS
from compat.livebroker import LiveBroker

pytestmark = pytest.mark.compat


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


# -- the shared scenarios (compat/record_scenarios.py) ------------------------------------------
@pytest.fixture(scope="module")
def client() -> KafkaPythonClient:
    """kafka-python as the shared scenarios drive it."""
    return KafkaPythonClient()


class TestSharedScenarios(
    record_scenarios.ProduceScenarios,
    record_scenarios.CompressionLevelScenarios,
    record_scenarios.AdminScenarios,
    record_scenarios.AssignedScenarios,
    record_scenarios.RestartScenarios,
):
    """The scenarios every client runs, through compat/adapters/kafka_python.py."""

    topic_codec = "gzip"
    level_codec, levels = "gzip", (1, 9)

    def produce_one_batch(self, broker: LiveBroker, topic: str, values: list[bytes]) -> list[int]:
        # Sent at flush, long before linger or batch_size would cut it.
        with producer(broker, linger_ms=60_000, batch_size=1_000_000) as prod:
            futures = [prod.send(topic, value=value) for value in values]
            prod.flush(timeout=15)
            return [f.get(timeout=15).offset for f in futures]

    def test_describe_configs_defaults(
        self, client: KafkaPythonClient, broker: LiveBroker, topic_name: str
    ) -> None:
        super().test_describe_configs_defaults(client, broker, topic_name)
        with admin_client(broker) as admin:
            # Only the requested keys come back when keys are named.
            only = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic_name, ["retention.ms"])],
                config_filter="all",
            )
            assert list(only["topic"][topic_name]) == ["retention.ms"]
