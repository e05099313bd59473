"""kafka-python against a 3-broker kbroker cluster with a real ZooKeeper.

The same scenarios as test_cluster_confluent_kafka.py (issue 14), seen through kafka-python's
own metadata, admin and retry logic; the restarted broker's leadership comes back through the
ElectLeaders API here (a manual preferred election) rather than the automatic rebalance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

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


@contextmanager
def admin(bootstrap: str) -> Iterator[KafkaAdminClient]:
    """An admin client that knows only ``bootstrap``, closed on the way out."""
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(TIMEOUT_S * 1000))
    try:
        yield client
    finally:
        client.close()


def create_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int = 3) -> None:
    with admin(bootstrap) as client:
        client.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": replication_factor}}
        )


def producer(bootstrap: str, **configs: object) -> KafkaProducer:
    settings: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "acks": 1,
        "enable_idempotence": False,
        "retries": 1000,
        "retry_backoff_ms": 200,
        "request_timeout_ms": 10000,
        "delivery_timeout_ms": int(FAILOVER_DEADLINE_S * 1000 * 3),
    }
    settings.update(configs)
    return KafkaProducer(**settings)


def poll_values(
    consumer: KafkaConsumer, wanted: set[bytes], deadline_s: float = TIMEOUT_S
) -> set[bytes]:
    """Poll until every value in ``wanted`` was seen (or the deadline); returns what was seen."""
    return collect_values(
        lambda: [r.value for records in consumer.poll(timeout_ms=500).values() for r in records],
        wanted,
        deadline_s,
    )


def test_kill_leader_new_leader_from_isr_and_clients_carry_on(
    cluster: Cluster, topic_name: str
) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 3)
    before = wait_for_leaders(cluster, topic_name, 3)[0]
    prod = producer(cluster.bootstrap_servers)
    consumer = KafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tp = TopicPartition(topic_name, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        first = {f"before-{i}".encode() for i in range(5)}
        for value in sorted(first):
            prod.send(topic_name, value=value, partition=0).get(TIMEOUT_S)
        assert poll_values(consumer, first) == first

        cluster.kill(before.leader)
        # Sent while the partition has no live leader: the client holds them and retries.
        during = {f"during-{i}".encode() for i in range(5)}
        futures = [prod.send(topic_name, value=v, partition=0) for v in sorted(during)]
        new_leader = wait_for_new_leader(cluster, topic_name, 0, before.leader)
        assert new_leader in before.isr  # no unclean election
        after_kill = cluster.partitions(topic_name)[0]
        assert after_kill.leader_epoch > before.leader_epoch
        assert before.leader not in after_kill.isr

        after = {f"after-{i}".encode() for i in range(5)}
        futures += [prod.send(topic_name, value=v, partition=0) for v in sorted(after)]
        for future in futures:
            assert future.get(FAILOVER_DEADLINE_S * 3).partition == 0
        # The consumer follows the leader change by itself and reads what came after it.
        assert after <= poll_values(consumer, during | after, FAILOVER_DEADLINE_S * 2)
    finally:
        consumer.close()
        prod.close()


def test_group_coordinator_leads_its_offsets_partition(cluster: Cluster, topic_name: str) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 1)
    wait_for_leaders(cluster, topic_name, 1)
    group = f"{topic_name}-group"
    consumer = KafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
    )
    try:
        tp = TopicPartition(topic_name, 0)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(7, "", -1)})
        assert consumer.committed(tp) == 7
    finally:
        consumer.close()

    def coordinators(leader: int) -> list[int]:
        """FindCoordinator's answer asked via each broker."""
        return [cluster.coordinator_of(group, via=broker_id) for broker_id in BROKERS]

    leader, seen = coordinator_views(cluster, group, coordinators)
    assert seen == [leader] * len(BROKERS)
    for broker_id in BROKERS:
        with admin(cluster.address(broker_id)) as client:
            offsets = client.list_group_offsets(group)
        assert offsets[group][TopicPartition(topic_name, 0)].offset == 7


class KafkaPythonCluster:
    """kafka-python as a ``compat.clusterkit.ClusterClient``."""

    create_topic = staticmethod(create_topic)

    @staticmethod
    def produce(bootstrap: str, topic: str, records: list[tuple[int, bytes]]) -> None:
        prod = producer(bootstrap)
        try:
            for partition, value in records:
                metadata = prod.send(topic, value=value, partition=partition).get(TIMEOUT_S)
                assert metadata.partition == partition
        finally:
            prod.close()

    @staticmethod
    def read(bootstrap: str, topic: str, partitions: int, wanted: set[bytes]) -> set[bytes]:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
            consumer.seek_to_beginning()
            return poll_values(consumer, wanted)
        finally:
            consumer.close()

    @staticmethod
    def check_metadata(cluster: Cluster, topic: str, parts: dict[int, PartitionInfo]) -> None:
        for broker_id in BROKERS:
            with admin(cluster.address(broker_id)) as client:
                (described,) = client.describe_topics([topic])
                cluster_info = client.describe_cluster()
            leaders = {p["partition_index"]: p["leader_id"] for p in described["partitions"]}
            assert leaders == {i: p.leader for i, p in parts.items()}
            assert all(sorted(p["replica_nodes"]) == BROKERS for p in described["partitions"])
            assert sorted(b["broker_id"] for b in cluster_info["brokers"]) == BROKERS
            assert cluster_info["controller_id"] in BROKERS

    @staticmethod
    def elect_preferred(cluster: Cluster, topic: str, victim: int) -> None:
        """A manual preferred election (ElectLeaders), once the broker is back in the ISR."""
        with admin(cluster.bootstrap_servers) as client:
            cluster.wait_for(
                lambda: victim in cluster.partitions(topic)[0].isr,
                60,
                message=f"broker {victim} back in the ISR of {topic}-0",
            )
            client.elect_leaders(0, {topic: [0]}, raise_errors=False)

    @staticmethod
    def check_controller(bootstrap: str, controller: int) -> None:
        with admin(bootstrap) as client:
            assert client.describe_cluster()["controller_id"] == controller

    @staticmethod
    def topics(bootstrap: str) -> set[str]:
        with admin(bootstrap) as client:
            return set(client.list_topics())

    @staticmethod
    def broker_ports(bootstrap: str) -> set[int]:
        with admin(bootstrap) as client:
            return {b["port"] for b in client.describe_cluster()["brokers"]}


class TestClusterScenarios(ClusterScenarios):
    """The scenarios every client states the same way, through KafkaPythonCluster; the
    restarted broker's leadership comes back through ElectLeaders here."""

    client = KafkaPythonCluster()
