"""Consumer groups with kafka-python against a live kbroker: join, rebalance, commit, restart.

Group consumers are polled by their own threads (``GroupMember``) so several members of one
group make progress at once, as separate processes would. Every wait is deadline-based
polling of what a user can observe (assignment, records, committed offsets).
"""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import OffsetAndMetadata

from compat import group_scenarios
from compat.adapters.kafka_python import (
    GroupMember,
    KafkaPythonGroups,
    create_topic,
    produce_per_partition,
)
from compat.group_scenarios import wait_until
from compat.livebroker import LiveBroker

pytestmark = pytest.mark.compat

CLIENT = KafkaPythonGroups()


def test_group_subscribe_and_consume(group_broker: LiveBroker, topic_name: str) -> None:
    """A subscribed group consumer gets every partition, reads everything, commits."""
    group_scenarios.consume_all_and_commit(CLIENT, group_broker, topic_name, f"g-{topic_name}")
    admin = KafkaAdminClient(bootstrap_servers=group_broker.bootstrap_servers)
    try:
        described = admin.describe_groups([f"g-{topic_name}"])[f"g-{topic_name}"]
        groups = {g["group_id"]: g for g in admin.list_groups()}
    finally:
        admin.close()
    # The member left on close: the group is Empty but keeps its offsets.
    assert described["group_state"] == "Empty" and described["protocol_type"] == "consumer"
    assert groups[f"g-{topic_name}"]["protocol_type"] == "consumer"


def test_group_rebalance_on_join_and_leave(group_broker: LiveBroker, topic_name: str) -> None:
    """A second member gets half the partitions; when it leaves the first gets them back."""
    create_topic(group_broker, topic_name, 4)
    group = f"g-{topic_name}"
    group_scenarios.join_split_and_leave(lambda: GroupMember(group_broker, topic_name, group))


def test_group_commit_and_fetch_offsets(group_broker: LiveBroker, topic_name: str) -> None:
    """Offsets committed with metadata are fetched back and a new member resumes there."""
    create_topic(group_broker, topic_name, 2)
    produce_per_partition(group_broker, topic_name, 2, 10)
    group = f"g-{topic_name}"
    cons = KafkaConsumer(
        bootstrap_servers=group_broker.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)]
        cons.assign(tps)
        cons.commit(
            {tps[0]: OffsetAndMetadata(7, "seven", -1), tps[1]: OffsetAndMetadata(3, "three", -1)}
        )
        assert cons.committed(tps[0]) == 7 and cons.committed(tps[1]) == 3
        meta = cons.committed(tps[0], metadata=True)
        assert meta.metadata == "seven"
    finally:
        cons.close()
    group_scenarios.resumes_at_commits_7_and_3(CLIENT, group_broker, topic_name, group)


def test_group_static_member_rejoin(group_broker: LiveBroker, topic_name: str) -> None:
    """Each static member in turn (so the leader too, KIP-814) restarts with its
    group.instance.id and takes its partition back without a rebalance: the other member
    is never revoked (KIP-345)."""
    create_topic(group_broker, topic_name, 2)
    group = f"g-{topic_name}"
    static = {
        "session_timeout_ms": 20000,
        "partition_assignment_strategy": [RangePartitionAssignor],
    }

    def start(name: str) -> GroupMember:
        member = GroupMember(group_broker, topic_name, group, group_instance_id=name, **static)
        member.start()
        return member

    group_scenarios.static_members_rejoin(
        start, lambda m: (m.listener.revoked, m.listener.assigned)
    )


def test_group_silent_member_expires(group_broker: LiveBroker, topic_name: str) -> None:
    """A member that stops heartbeating without leaving (a closed static member sends no
    LeaveGroup) is removed after its session timeout and its partition is reassigned."""
    create_topic(group_broker, topic_name, 2)
    group = f"g-{topic_name}"
    static = {"session_timeout_ms": 6000, "partition_assignment_strategy": [RangePartitionAssignor]}
    a = GroupMember(group_broker, topic_name, group, group_instance_id="a", **static)
    b = GroupMember(group_broker, topic_name, group, group_instance_id="b", **static)
    a.start()
    b.start()
    try:
        wait_until(lambda: len(a.assignment) == 1 and len(b.assignment) == 1, "one partition each")
        b.close()
        wait_until(lambda: a.assignment == {0, 1}, "a owns both partitions after b expired")
    finally:
        if b.is_alive():
            b.close()
        a.close()


def test_group_kill_keeps_committed_offsets(
    fresh_group_broker: LiveBroker, topic_name: str
) -> None:
    """Offsets acknowledged before kill -9 are there after the restart."""
    group_scenarios.kill_keeps_committed_offsets(CLIENT, fresh_group_broker, topic_name)
