"""confluent-kafka (librdkafka) against a 3-broker kbroker cluster with a real ZooKeeper.

Issue 14's scenarios: leaders on every broker, any bootstrap broker; kill -9 of a leader
and of the controller with the client carrying on by its own retries; a restarted broker
rejoining with its preferred leaderships; the group coordinator; two clusters on one
ZooKeeper. One cluster serves the module; a scenario that kills brokers starts them again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat.adapters.confluent_kafka import Delivery
from compat.clusterkit import (
    BROKERS,
    FAILOVER_DEADLINE_S,
    controller_epoch,
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


def create_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, replication_factor)])
    futures[topic].result(TIMEOUT_S)


def poll_values(
    consumer: Consumer, wanted: set[bytes], deadline_s: float = TIMEOUT_S
) -> set[bytes]:
    """Poll until every value in ``wanted`` was seen (or the deadline); returns what was seen."""
    seen: set[bytes] = set()
    deadline = time.monotonic() + deadline_s
    while not wanted <= seen and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None and msg.value() is not None:
            seen.add(msg.value())
    return seen


def test_leaders_on_every_broker_and_any_bootstrap(cluster: Cluster, topic_name: str) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 6)
    parts = wait_for_leaders(cluster, topic_name, 6)
    assert {p.leader for p in parts.values()} == set(BROKERS)
    assert all(sorted(p.replicas) == BROKERS for p in parts.values())
    # Every broker gives the same answer for the whole cluster.
    for broker_id in BROKERS:
        view = cluster.partitions(topic_name, via=broker_id)
        assert {i: p.leader for i, p in view.items()} == {i: p.leader for i, p in parts.items()}
    expected: set[bytes] = set()
    for broker_id in BROKERS:
        # Only one broker as bootstrap: the client finds the others from its Metadata.
        deliveries = Delivery()
        producer = Producer({"bootstrap.servers": cluster.address(broker_id), "acks": 1})
        for partition in range(6):
            value = f"via-{broker_id}-p{partition}".encode()
            expected.add(value)
            producer.produce(topic_name, value=value, partition=partition, on_delivery=deliveries)
        assert producer.flush(TIMEOUT_S) == 0
        assert deliveries.errors() == []
        assert {msg.partition() for _, msg in deliveries.reports} == set(range(6))
    for broker_id in BROKERS:
        consumer = Consumer(
            {
                "bootstrap.servers": cluster.address(broker_id),
                "group.id": f"{topic_name}-reader-{broker_id}",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.assign([TopicPartition(topic_name, p, OFFSET_BEGINNING) for p in range(6)])
            assert poll_values(consumer, expected) == expected
        finally:
            consumer.close()


def test_kill_leader_new_leader_from_isr_and_clients_carry_on(
    cluster: Cluster, topic_name: str
) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 3)
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


def test_restarted_broker_rejoins(cluster: Cluster, topic_name: str) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 3)
    victim = kill_preferred_leader(cluster, topic_name)
    rejoin(cluster, topic_name, victim)
    # A client that knows only the returned broker finds every partition through it.
    deliveries = Delivery()
    producer = Producer({"bootstrap.servers": cluster.address(victim), "acks": 1})
    for partition in range(3):
        producer.produce(topic_name, value=b"back", partition=partition, on_delivery=deliveries)
    assert producer.flush(TIMEOUT_S) == 0
    assert deliveries.errors() == []
    assert len(deliveries.reports) == 3


def test_preferred_leaders_return_after_restart(cluster: Cluster, topic_name: str) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 3)
    victim = kill_preferred_leader(cluster, topic_name)
    cluster.start_broker(victim)
    wait_for_preferred_leaders(cluster, topic_name)
    assert cluster.leader_of(topic_name, 0) == victim


def test_kill_controller_new_controller_epoch_up_later_failover_works(
    cluster: Cluster, topic_name: str
) -> None:
    new = kill_controller(cluster)
    # The new controller runs the cluster: it places a new topic, then moves a leader.
    create_topic(cluster.bootstrap_servers, topic_name, 4, replication_factor=2)
    partition = fail_over_to_controller(cluster, topic_name, 4, new)
    deliveries = Delivery()
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": 1})
    producer.produce(topic_name, value=b"later", partition=partition, on_delivery=deliveries)
    assert producer.flush(TIMEOUT_S) == 0
    assert deliveries.errors() == []


def test_group_coordinator_leads_its_offsets_partition(cluster: Cluster, topic_name: str) -> None:
    create_topic(cluster.bootstrap_servers, topic_name, 1)
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


def test_two_chroots_are_two_clusters(
    cluster: Cluster, kbroker_cluster: Callable[..., Cluster], topic_name: str
) -> None:
    other = second_cluster(cluster, kbroker_cluster)
    create_topic(other.bootstrap_servers, topic_name, 2, replication_factor=2)
    wait_for_leaders(other, topic_name, 2)
    ours = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    theirs = AdminClient({"bootstrap.servers": other.bootstrap_servers})
    assert topic_name in theirs.list_topics(timeout=TIMEOUT_S).topics
    assert topic_name not in ours.list_topics(timeout=TIMEOUT_S).topics
    ours_brokers = {b.port for b in ours.list_topics(timeout=TIMEOUT_S).brokers.values()}
    theirs_brokers = {b.port for b in theirs.list_topics(timeout=TIMEOUT_S).brokers.values()}
    assert ours_brokers == {cluster.broker(i).port for i in BROKERS}
    assert theirs_brokers == {other.broker(i).port for i in other.broker_ids}
    assert controller_epoch(other) >= 1
