"""kafka-python against a 3-broker kbroker cluster with a real ZooKeeper.

The same scenarios as test_cluster_confluent_kafka.py (issue 14), seen through kafka-python's
own metadata, admin and retry logic; the restarted broker's leadership comes back through the
ElectLeaders API here (a manual preferred election) rather than the automatic rebalance.
The scenarios are stated once in compat/clusterkit.py; this module is kafka-python's adapter
(``KafkaPythonCluster``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import OffsetAndMetadata

from compat.clusterkit import (
    BROKERS,
    FAILOVER_DEADLINE_S,
    TIMEOUT_S,
    ClusterScenarios,
    collect_values,
)
from kbroker.cluster_runner import Cluster, PartitionInfo

pytestmark = pytest.mark.compat


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


class KafkaPythonPartition0:
    """kafka-python as a ``compat.clusterkit.Partition0``."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.futures: list[FutureRecordMetadata] = []
        self.producer = producer(bootstrap)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        tp = TopicPartition(topic, 0)
        self.consumer.assign([tp])
        self.consumer.seek_to_beginning(tp)

    def send(self, values: list[bytes]) -> None:
        self.futures += [self.producer.send(self.topic, value=v, partition=0) for v in values]

    def wait_acknowledged(self, timeout_s: float) -> None:
        for future in self.futures:
            assert future.get(timeout_s).partition == 0

    def read(self, wanted: set[bytes], deadline_s: float) -> set[bytes]:
        return poll_values(self.consumer, wanted, deadline_s)

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()


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

    partition_0 = KafkaPythonPartition0

    @staticmethod
    def commit_in_group(bootstrap: str, topic: str, group: str) -> int:
        """An explicit commit of offset 7 by a consumer assigned the partition."""
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.commit({tp: OffsetAndMetadata(7, "", -1)})
            assert consumer.committed(tp) == 7
        finally:
            consumer.close()
        return 7

    @staticmethod
    def group_coordinator(bootstrap: str, group: str) -> int | None:
        """kafka-python's admin API does not name a group's coordinator."""
        return None

    @staticmethod
    def group_offset(bootstrap: str, group: str, topic: str) -> int:
        with admin(bootstrap) as client:
            offsets = client.list_group_offsets(group)
        offset: int = offsets[group][TopicPartition(topic, 0)].offset
        return offset


class TestClusterScenarios(ClusterScenarios):
    """The scenarios every client states the same way, through KafkaPythonCluster; the
    restarted broker's leadership comes back through ElectLeaders here."""

    client = KafkaPythonCluster()
