"""confluent-kafka (librdkafka) against a 3-broker kbroker cluster with a real ZooKeeper.

Issue 14's scenarios: leaders on every broker, any bootstrap broker; kill -9 of a leader
and of the controller with the client carrying on by its own retries; a restarted broker
rejoining with its preferred leaderships; the group coordinator; two clusters on one
ZooKeeper. One cluster serves the module; a scenario that kills brokers starts them again.
The scenarios are stated once in compat/clusterkit.py; this module is confluent-kafka's
adapter (``ConfluentCluster``).
"""

from __future__ import annotations

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from compat.adapters.confluent_kafka import Delivery
from compat.clusterkit import FAILOVER_DEADLINE_S, TIMEOUT_S, ClusterScenarios, collect_values
from kbroker.cluster_runner import Cluster, PartitionInfo

pytestmark = pytest.mark.compat


def poll_values(
    consumer: Consumer, wanted: set[bytes], deadline_s: float = TIMEOUT_S
) -> set[bytes]:
    """Poll until every value in ``wanted`` was seen (or the deadline); returns what was seen."""

    def poll() -> list[bytes | None]:
        msg = consumer.poll(0.5)
        return [msg.value()] if msg is not None and msg.error() is None else []

    return collect_values(poll, wanted, deadline_s)


class ConfluentPartition0:
    """confluent-kafka as a ``compat.clusterkit.Partition0``."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.deliveries = Delivery()
        self.sent = 0
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": 1,
                "message.timeout.ms": int(FAILOVER_DEADLINE_S * 1000 * 3),
                "retry.backoff.ms": 200,
            }
        )
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{topic}-reader",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self.consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def send(self, values: list[bytes]) -> None:
        for value in values:
            self.producer.produce(self.topic, value=value, partition=0, on_delivery=self.deliveries)
        self.sent += len(values)
        self.producer.poll(0)

    def wait_acknowledged(self, timeout_s: float) -> None:
        assert self.producer.flush(timeout_s) == 0
        assert self.deliveries.errors() == []
        assert len(self.deliveries.reports) == self.sent

    def read(self, wanted: set[bytes], deadline_s: float) -> set[bytes]:
        return poll_values(self.consumer, wanted, deadline_s)

    def close(self) -> None:
        self.consumer.close()


class ConfluentCluster:
    """confluent-kafka as a ``compat.clusterkit.ClusterClient``."""

    @staticmethod
    def create_topic(
        bootstrap: str, topic: str, partitions: int, replication_factor: int = 3
    ) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.create_topics([NewTopic(topic, partitions, replication_factor)])
        futures[topic].result(TIMEOUT_S)

    @staticmethod
    def produce(bootstrap: str, topic: str, records: list[tuple[int, bytes]]) -> None:
        deliveries = Delivery()
        producer = Producer({"bootstrap.servers": bootstrap, "acks": 1})
        for partition, value in records:
            producer.produce(topic, value=value, partition=partition, on_delivery=deliveries)
        assert producer.flush(TIMEOUT_S) == 0
        assert deliveries.errors() == []
        # Reports come in order per partition, not across partitions.
        assert sorted(msg.partition() for _, msg in deliveries.reports) == sorted(
            p for p, _ in records
        )

    @staticmethod
    def read(bootstrap: str, topic: str, partitions: int, wanted: set[bytes]) -> set[bytes]:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{topic}-reader-{bootstrap}",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
            return poll_values(consumer, wanted)
        finally:
            consumer.close()

    @staticmethod
    def check_metadata(cluster: Cluster, topic: str, parts: dict[int, PartitionInfo]) -> None:
        """librdkafka's metadata is what it produces and reads through each broker with."""

    @staticmethod
    def elect_preferred(cluster: Cluster, topic: str, victim: int) -> None:
        """Nothing: the controller moves preferred leaders back by itself."""

    @staticmethod
    def check_controller(bootstrap: str, controller: int) -> None:
        """librdkafka's producer does not ask for the controller."""

    @staticmethod
    def topics(bootstrap: str) -> set[str]:
        return set(
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT_S).topics
        )

    @staticmethod
    def broker_ports(bootstrap: str) -> set[int]:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        return {b.port for b in admin.list_topics(timeout=TIMEOUT_S).brokers.values()}

    partition_0 = ConfluentPartition0

    @staticmethod
    def commit_in_group(bootstrap: str, topic: str, group: str) -> int:
        """A subscribed member reads the one record it is given and commits after it."""
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(topic, value=b"x", partition=0)
        assert producer.flush(TIMEOUT_S) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.subscribe([topic])
            assert poll_values(consumer, {b"x"}) == {b"x"}
            consumer.commit(asynchronous=False)
            committed = consumer.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
            assert committed[0].offset == 1
        finally:
            consumer.close()
        return 1

    @staticmethod
    def group_coordinator(bootstrap: str, group: str) -> int | None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        description = admin.describe_consumer_groups([group])[group].result(TIMEOUT_S)
        coordinator: int = description.coordinator.id
        return coordinator

    @staticmethod
    def group_offset(bootstrap: str, group: str, topic: str) -> int:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
        listed = admin.list_consumer_group_offsets([request])[group].result(TIMEOUT_S)
        (partition,) = listed.topic_partitions
        offset: int = partition.offset
        return offset


class TestClusterScenarios(ClusterScenarios):
    """The scenarios every client states the same way, through ConfluentCluster."""

    client = ConfluentCluster()
