"""Consumer groups with confluent-kafka (librdkafka) against a live kbroker.

The scenarios every client shares are stated once in compat/group_scenarios.py and run here
through ``TestGroupScenarios``; this module adds KIP-429 cooperative-sticky rebalancing, a
group mixing two clients and KIP-848's consumer protocol. Members are polled by their own
threads; every wait is deadline-based polling of what a user observes.
"""

from __future__ import annotations

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupType,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from kafka.coordinator.assignors.range import RangePartitionAssignor

from compat import group_scenarios
from compat.adapters.confluent_kafka import (
    CkMember,
    ConfluentGroups,
    create_topic,
    group_committed,
    produce_per_partition,
)
from compat.adapters.kafka_python import GroupMember
from compat.group_scenarios import DEADLINE_S, wait_split, wait_until
from compat.livebroker import GROUP_BROKER_OVERRIDES, LiveBroker

pytestmark = pytest.mark.compat


def test_group_cooperative_sticky_rebalance(group_broker: LiveBroker, topic_name: str) -> None:
    """KIP-429: with cooperative-sticky, a joining member only takes partitions away; the
    first member keeps the rest throughout (only the moved ones are revoked)."""
    create_topic(group_broker, topic_name, 4)
    group = f"g-{topic_name}"
    coop = {"partition.assignment.strategy": "cooperative-sticky"}

    def incremental(a: CkMember, b: CkMember) -> None:
        # Incremental: a gave up exactly the two partitions b now owns, nothing else.
        assert [r for r in a.revoked if r] == [set(b.assignment)]

    group_scenarios.join_split_and_leave(
        lambda: CkMember(group_broker, topic_name, group, **coop), on_split=incremental
    )


def test_group_mixed_clients(group_broker: LiveBroker, topic_name: str) -> None:
    """One confluent-kafka and one kafka-python member share a group (range on both)."""
    create_topic(group_broker, topic_name, 4)
    produce_per_partition(group_broker, topic_name, 4, 5)
    group = f"g-{topic_name}"
    ck = CkMember(group_broker, topic_name, group, partition_assignment_strategy="range")
    kp = GroupMember(
        group_broker, topic_name, group, partition_assignment_strategy=[RangePartitionAssignor]
    )
    ck.start()
    kp.start()
    try:
        wait_split(ck, kp, "between the two clients")
        # Together they read every record once the assignment settled.
        wait_until(lambda: len(set(ck.values) | set(kp.values)) == 20, "all 20 records read")
    finally:
        kp.close()
        ck.close()


class TestGroupScenarios(group_scenarios.GroupScenarios[CkMember]):
    """The group scenarios of every client (compat/group_scenarios.py), through ConfluentGroups."""

    client = ConfluentGroups()

    def rebalancing_member(self, broker: LiveBroker, topic: str, group: str) -> CkMember:
        return CkMember(broker, topic, group, partition_assignment_strategy="range")

    def static_member(self, broker: LiveBroker, topic: str, group: str, name: str) -> CkMember:
        static = {"session.timeout.ms": 20000, "partition.assignment.strategy": "range"}
        return CkMember(broker, topic, group, **{"group.instance.id": name}, **static)

    def rebalance_callbacks(self, member: CkMember) -> tuple[int, int]:
        return len(member.revoked), len(member.assigned)

    def check_left_empty(self, broker: LiveBroker, group: str) -> None:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        described = admin.describe_consumer_groups([group])[group].result(timeout=DEADLINE_S)
        assert described.state.name == "EMPTY" and described.members == []
        listed = admin.list_consumer_groups().result(timeout=DEADLINE_S)
        assert group in {g.group_id for g in listed.valid}

    def commit_7_and_3(self, broker: LiveBroker, topic: str, group: str) -> None:
        cons = Consumer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "group.id": group,
                "enable.auto.commit": False,
            }
        )
        try:
            cons.commit(
                offsets=[
                    TopicPartition(topic, 0, 7, metadata="seven"),
                    TopicPartition(topic, 1, 3),
                ],
                asynchronous=False,
            )
            got = cons.committed(
                [TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=DEADLINE_S
            )
            assert [(tp.partition, tp.offset) for tp in got] == [(0, 7), (1, 3)]
            assert got[0].metadata == "seven"
        finally:
            cons.close()


# The module's `broker` and `fresh_broker` (compat/conftest.py) for the KIP-848 tests: a short
# heartbeat interval, so assignments move fast (its classic-group tests use `group_broker`).
BROKER_OVERRIDES = {
    **GROUP_BROKER_OVERRIDES,
    "group.consumer.heartbeat.interval.ms": "200",
    "group.consumer.session.timeout.ms": "6000",
}


def consumer_protocol_member(broker: LiveBroker, topic: str, group: str) -> CkMember:
    """A KIP-848 (`group.protocol=consumer`) member of ``group``, alone on a 4-partition
    topic of 5 records each: started, given every partition, all read and committed."""
    create_topic(broker, topic, 4)
    produce_per_partition(broker, topic, 4, 5)
    member = CkMember(broker, topic, group, **{"group.protocol": "consumer"})
    member.start()
    try:
        wait_until(lambda: member.assignment == {0, 1, 2, 3}, "the member owns all 4 partitions")
        wait_until(lambda: len(member.values) == 20, "the member read all 20 records")
        member.commit()
    except BaseException:
        member.close()
        raise
    return member


def test_group_consumer_protocol(broker: LiveBroker, topic_name: str) -> None:
    """KIP-848 (`group.protocol=consumer`): the broker assigns; a second member gets half
    the partitions, everything is read once, commits land, and the survivor takes the
    partitions back when the other leaves."""
    create_topic(broker, topic_name, 4)
    produce_per_partition(broker, topic_name, 4, 5)
    group = f"g-{topic_name}"

    def alone(a: CkMember) -> None:
        wait_until(lambda: len(a.values) == 20, "first member read all 20 records")
        a.commit()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        described = admin.describe_consumer_groups([group])[group].result(timeout=DEADLINE_S)
        assert described.type == ConsumerGroupType.CONSUMER  # not a classic group
        assert described.state == ConsumerGroupState.STABLE and len(described.members) == 1

    def split(a: CkMember, b: CkMember) -> None:
        # b starts from the committed offsets: nothing is read twice.
        produce_per_partition(broker, topic_name, 4, 1, prefix="new-")
        wait_until(lambda: len(a.values) + len(b.values) == 24, "the 4 new records read once")
        assert sorted(a.values[20:] + b.values) == sorted(f"new-p{p}-0".encode() for p in range(4))

    group_scenarios.join_split_and_leave(
        lambda: CkMember(broker, topic_name, group, **{"group.protocol": "consumer"}),
        on_alone=alone,
        on_split=split,
    )
    assert group_committed(broker, group, topic_name, 4) == {p: 5 for p in range(4)}


def test_group_consumer_protocol_survives_kill(fresh_broker: LiveBroker, topic_name: str) -> None:
    """KIP-848 membership is in __consumer_offsets: after kill -9 and a restart the group
    is described as a consumer-protocol group with its member, and a new consumer of
    the group resumes from the offsets committed before the kill."""
    broker = fresh_broker
    group = f"g-{topic_name}"
    a = consumer_protocol_member(broker, topic_name, group)
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        before = admin.describe_consumer_groups([group])[group].result(timeout=DEADLINE_S)
        member_ids = [m.member_id for m in before.members]
        broker.kill()
    finally:
        a.close()  # its broker is gone: no LeaveGroup reaches the restarted one
    broker.start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    after = admin.describe_consumer_groups([group])[group].result(timeout=DEADLINE_S)
    assert after.type == ConsumerGroupType.CONSUMER
    assert after.state == ConsumerGroupState.STABLE
    assert [m.member_id for m in after.members] == member_ids
    assert {tp.partition for m in after.members for tp in m.assignment.topic_partitions} == {
        0,
        1,
        2,
        3,
    }
    produce_per_partition(broker, topic_name, 4, 1, prefix="new-")
    b = CkMember(broker, topic_name, group, **{"group.protocol": "consumer"})
    b.start()
    try:
        # The restored member keeps its partitions until its session (restarted at load)
        # ends; then the new one gets them and starts at the committed offsets.
        wait_until(lambda: len(b.values) >= 4, "the 4 records produced after the restart")
        assert sorted(b.values) == sorted(f"new-p{p}-0".encode() for p in range(4))
    finally:
        b.close()
    assert group_committed(broker, group, topic_name, 4) == {p: 5 for p in range(4)}
