"""kafka-python against a 3-broker kbroker cluster with a real ZooKeeper.

The same scenarios as test_cluster_confluent_kafka.py (issue 14), seen through kafka-python's
own metadata, admin and retry logic; the restarted broker's leadership comes back through the
ElectLeaders API here (a manual preferred election) rather than the automatic rebalance.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from compat.clusterkit import (
    BROKERS,
    FAILOVER_DEADLINE_S,
    coordinator_views,
    fail_over_to_controller,
    kill_controller,
    kill_preferred_leader,
    rejoin,
    second_cluster,
    wait_for_leaders,
    wait_for_new_leader,
    wait_for_preferred_leaders,
)
from kbroker.cluster_runner import Cluster

pytestmark = pytest.mark.compat

TIMEOUT_S = 30.0


def admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(TIMEOUT_S * 1000))


def create_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int = 3) -> None:
    client = admin(bootstrap)
    try:
        client.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": replication_factor}}
        )
    finally:
        client.close()


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
    seen: set[bytes] = set()
    deadline = time.monotonic() + deadline_s
    while not wanted <= seen and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen.update(r.value for r in records if r.value is not None)
    return seen


def test_leaders_on_every_broker_and_any_bootstrap(cluster: Cluster, topic_name: str) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 6)
    parts = wait_for_leaders(cluster, topic_name, 6)
    assert {p.leader for p in parts.values()} == set(BROKERS)
    # What the client's admin API shows, asked through each broker alone.
    for broker_id in BROKERS:
        client = admin(cluster.address(broker_id))
        try:
            (described,) = client.describe_topics([topic_name])
            cluster_info = client.describe_cluster()
        finally:
            client.close()
        leaders = {p["partition_index"]: p["leader_id"] for p in described["partitions"]}
        assert leaders == {i: p.leader for i, p in parts.items()}
        assert all(sorted(p["replica_nodes"]) == BROKERS for p in described["partitions"])
        assert sorted(b["broker_id"] for b in cluster_info["brokers"]) == BROKERS
        assert cluster_info["controller_id"] in BROKERS
    expected: set[bytes] = set()
    for broker_id in BROKERS:
        prod = producer(cluster.address(broker_id))
        try:
            for partition in range(6):
                value = f"via-{broker_id}-p{partition}".encode()
                expected.add(value)
                metadata = prod.send(topic_name, value=value, partition=partition).get(TIMEOUT_S)
                assert metadata.partition == partition
        finally:
            prod.close()
    for broker_id in BROKERS:
        consumer = KafkaConsumer(
            bootstrap_servers=cluster.address(broker_id), enable_auto_commit=False
        )
        try:
            consumer.assign([TopicPartition(topic_name, p) for p in range(6)])
            consumer.seek_to_beginning()
            assert poll_values(consumer, expected) == expected
        finally:
            consumer.close()


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


def test_restarted_broker_rejoins(cluster: Cluster, topic_name: str) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 3)
    victim = kill_preferred_leader(cluster, topic_name)
    rejoin(cluster, topic_name, victim)
    # A client that knows only the returned broker finds every partition through it.
    prod = producer(cluster.address(victim))
    try:
        for partition in range(3):
            prod.send(topic_name, value=b"back", partition=partition).get(TIMEOUT_S)
    finally:
        prod.close()


def test_preferred_leaders_return_after_restart(cluster: Cluster, topic_name: str) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 3)
    victim = kill_preferred_leader(cluster, topic_name)
    cluster.start_broker(victim)
    client = admin(cluster.bootstrap_servers)
    try:
        # A manual preferred election (ElectLeaders), once the broker is back in the ISR.
        cluster.wait_for(
            lambda: victim in cluster.partitions(topic_name)[0].isr,
            60,
            message=f"broker {victim} back in the ISR of {topic_name}-0",
        )
        client.elect_leaders(0, {topic_name: [0]}, raise_errors=False)
    finally:
        client.close()
    wait_for_preferred_leaders(cluster, topic_name)
    assert cluster.leader_of(topic_name, 0) == victim


def test_kill_controller_new_controller_epoch_up_later_failover_works(
    cluster: Cluster, topic_name: str
) -> None:
    new = kill_controller(cluster)
    client = admin(cluster.bootstrap_servers)
    try:
        assert client.describe_cluster()["controller_id"] == new
    finally:
        client.close()

    create_topic(cluster.bootstrap_servers, topic_name, 4, replication_factor=2)
    partition = fail_over_to_controller(cluster, topic_name, 4, new)
    prod = producer(cluster.bootstrap_servers)
    try:
        prod.send(topic_name, value=b"later", partition=partition).get(FAILOVER_DEADLINE_S)
    finally:
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
        client = admin(cluster.address(broker_id))
        try:
            offsets = client.list_group_offsets(group)
        finally:
            client.close()
        assert offsets[group][TopicPartition(topic_name, 0)].offset == 7


def test_two_chroots_are_two_clusters(
    cluster: Cluster, kbroker_cluster: Callable[..., Cluster], topic_name: str
) -> None:
    other = second_cluster(cluster, kbroker_cluster)
    create_topic(other.bootstrap_servers, topic_name, 2, replication_factor=2)
    wait_for_leaders(other, topic_name, 2)
    ours, theirs = admin(cluster.bootstrap_servers), admin(other.bootstrap_servers)
    try:
        assert topic_name in theirs.list_topics()
        assert topic_name not in ours.list_topics()
        ours_ports = {b["port"] for b in ours.describe_cluster()["brokers"]}
        theirs_ports = {b["port"] for b in theirs.describe_cluster()["brokers"]}
    finally:
        ours.close()
        theirs.close()
    assert ours_ports == {cluster.broker(i).port for i in BROKERS}
    assert theirs_ports == {other.broker(i).port for i in other.broker_ids}
