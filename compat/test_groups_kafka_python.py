"""Consumer groups with kafka-python against a live kbroker: join, rebalance, commit, restart.

Group consumers are polled by their own threads (``GroupMember``) so several members of one
group make progress at once, as separate processes would. Every wait is deadline-based
polling of what a user can observe (assignment, records, committed offsets). The scenarios
every client shares are stated once in compat/group_scenarios.py and run here through
``TestGroupScenarios``.
"""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import OffsetAndMetadata

from compat import group_scenarios
from compat.adapters.kafka_python import GroupMember, KafkaPythonGroups, create_topic
from compat.group_scenarios import wait_until
from compat.livebroker import LiveBroker

pytestmark = pytest.mark.compat


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


class TestGroupScenarios(group_scenarios.GroupScenarios[GroupMember]):
    """The group scenarios of every client (compat/group_scenarios.py), through
    KafkaPythonGroups."""

    client = KafkaPythonGroups()

    def rebalancing_member(self, broker: LiveBroker, topic: str, group: str) -> GroupMember:
        # kafka-python assigns by range first by default.
        return GroupMember(broker, topic, group)

    def static_member(self, broker: LiveBroker, topic: str, group: str, name: str) -> GroupMember:
        static = {
            "session_timeout_ms": 20000,
            "partition_assignment_strategy": [RangePartitionAssignor],
        }
        return GroupMember(broker, topic, group, group_instance_id=name, **static)

    def rebalance_callbacks(self, member: GroupMember) -> tuple[int, int]:
        return member.listener.revoked, member.listener.assigned

    def check_left_empty(self, broker: LiveBroker, group: str) -> None:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            described = admin.describe_groups([group])[group]
            groups = {g["group_id"]: g for g in admin.list_groups()}
        finally:
            admin.close()
        # The member left on close: the group is Empty but keeps its offsets.
        assert described["group_state"] == "Empty" and described["protocol_type"] == "consumer"
        assert groups[group]["protocol_type"] == "consumer"

    def commit_7_and_3(self, broker: LiveBroker, topic: str, group: str) -> None:
        cons = KafkaConsumer(
            bootstrap_servers=broker.bootstrap_servers, group_id=group, enable_auto_commit=False
        )
        try:
            tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
            cons.assign(tps)
            cons.commit(
                {
                    tps[0]: OffsetAndMetadata(7, "seven", -1),
                    tps[1]: OffsetAndMetadata(3, "three", -1),
                }
            )
            assert cons.committed(tps[0]) == 7 and cons.committed(tps[1]) == 3
            meta = cons.committed(tps[0], metadata=True)
            assert meta.metadata == "seven"
        finally:
            cons.close()
