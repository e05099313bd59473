"""confluent-kafka (librdkafka) against a 3-broker kbroker cluster with a real ZooKeeper.

Issue 14's scenarios: leaders on every broker, any bootstrap broker; kill -9 of a leader
and of the controller with the client carrying on by its own retries; a restarted broker
rejoining with its preferred leaderships; the group coordinator; two clusters on one
ZooKeeper. One cluster serves the module; a scenario that kills brokers starts them again.
"""

from __future__ import annotations

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat.adapters.confluent_kafka import Delivery
from compat.clusterkit import (
    BROKERS,
    FAILOVER_DEADLINE_S,
    ClusterScenarios,
    collect_values,
    coordinator_views,
    wait_for_leaders,
    wait_for_new_leader,
)
from kbroker.cluster_runner import Cluster, PartitionInfo

pytestmark = pytest.mark.compat

TIMEOUT_S = 30.0


def poll_values(
    consumer: Consumer, wanted: set[bytes], deadline_s: float = TIMEOUT_S
) -> set[bytes]:
    """Poll until every value in ``wanted`` was seen (or the deadline); returns what was seen."""

    def poll() -> list[bytes | None]:
        msg = consumer.poll(0.5)
        return [msg.value()] if msg is not None and msg.error() is None else []

    return collect_values(poll, wanted, deadline_s)


def test_kill_leader_new_leader_from_isr_and_clients_carry_on(
    cluster: Cluster, topic_name: str
) -> None:
    ConfluentCluster.create_topic(cluster.bootstrap_servers, topic_name, 3)
    before = wait_for_leaders(cluster, topic_name, 3)[0]
    deliveries = Delivery()
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "acks": 1,
            "message.timeout.ms": int(FAILOVER_DEADLINE_S * 1000 * 3),
            "retry.backoff.ms": 200,
        }
    )
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": f"{topic_name}-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
        first = {f"before-{i}".encode() for i in range(5)}
        for value in sorted(first):
            producer.produce(topic_name, value=value, partition=0, on_delivery=deliveries)
        assert producer.flush(TIMEOUT_S) == 0
        assert poll_values(consumer, first) == first

        cluster.kill(before.leader)
        # Sent while the partition has no live leader: the client holds them and retries.
        during = {f"during-{i}".encode() for i in range(5)}
        for value in sorted(during):
            producer.produce(topic_name, value=value, partition=0, on_delivery=deliveries)
        producer.poll(0)
        new_leader = wait_for_new_leader(cluster, topic_name, 0, before.leader)
        assert new_leader in before.isr  # no unclean election
        after_kill = cluster.partitions(topic_name)[0]
        assert after_kill.leader_epoch > before.leader_epoch
        assert before.leader not in after_kill.isr
        # Every running broker's Metadata names it once the controller's UpdateMetadata has
        # reached it (sent to each broker on its own channel, so not at the same instant).
        cluster.wait_for(
            lambda: all(
                cluster.leader_of(topic_name, 0, via=broker_id) == new_leader
                for broker_id in cluster.running_broker_ids
            ),
            FAILOVER_DEADLINE_S,
            message=f"every broker naming {new_leader} as leader",
        )

        after = {f"after-{i}".encode() for i in range(5)}
        for value in sorted(after):
            producer.produce(topic_name, value=value, partition=0, on_delivery=deliveries)
        assert producer.flush(FAILOVER_DEADLINE_S * 3) == 0
        assert deliveries.errors() == []
        assert len(deliveries.reports) == 15
        # The consumer follows the leader change by itself and reads what came after it.
        assert after <= poll_values(consumer, during | after, FAILOVER_DEADLINE_S * 2)
    finally:
        consumer.close()


def test_group_coordinator_leads_its_offsets_partition(cluster: Cluster, topic_name: str) -> None:
    ConfluentCluster.create_topic(cluster.bootstrap_servers, topic_name, 1)
    wait_for_leaders(cluster, topic_name, 1)
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    producer.produce(topic_name, value=b"x", partition=0)
    assert producer.flush(TIMEOUT_S) == 0
    group = f"{topic_name}-group"
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic_name])
        assert poll_values(consumer, {b"x"}) == {b"x"}
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic_name, 0)], timeout=TIMEOUT_S)
        assert committed[0].offset == 1
    finally:
        consumer.close()

    def coordinators(leader: int) -> list[tuple[int, int]]:
        """(FindCoordinator's answer, the admin client's coordinator) asked via each broker."""
        seen = []
        for broker_id in BROKERS:
            admin = AdminClient({"bootstrap.servers": cluster.address(broker_id)})
            description = admin.describe_consumer_groups([group])[group].result(TIMEOUT_S)
            seen.append((cluster.coordinator_of(group, via=broker_id), description.coordinator.id))
        return seen

    leader, seen = coordinator_views(cluster, group, coordinators)
    assert seen == [(leader, leader)] * len(BROKERS)


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


class TestClusterScenarios(ClusterScenarios):
    """The scenarios every client states the same way, through ConfluentCluster."""

    client = ConfluentCluster()
