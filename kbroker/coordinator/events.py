"""INFO lines that tell a group's story: rebalances, assignments, members leaving or expiring.

The coordinators call these at the moment the state machine decides; they only format and
log, so the machines stay free of presentation.
"""

from __future__ import annotations

import logging
from typing import Any

from kbroker.wire.errors import ProtocolError
from kbroker.wire.messages import ConsumerProtocolAssignment
from kbroker.wire.protocol import decode_versioned_data

logger = logging.getLogger("kbroker.coordinator")


def _who(member: Any) -> str:
    return f"{member.member_id} (client id {member.client_id}, host {member.client_host})"


def assignment_summary(protocol_type: str | None, assignment: bytes) -> str:
    """``topic[0,1] other[2]`` for a consumer assignment; its size for any other protocol."""
    if protocol_type == "consumer" and assignment:
        try:
            _, decoded = decode_versioned_data(ConsumerProtocolAssignment, assignment)
        except ProtocolError:
            return f"{len(assignment)} bytes"
        parts = [
            f"{tp.topic}[{','.join(str(p) for p in sorted(tp.partitions))}]"
            for tp in decoded.assigned_partitions
        ]
        return " ".join(parts) or "nothing"
    return f"{len(assignment)} bytes" if assignment else "nothing"


def rebalanced(group: Any, joined: list[Any]) -> None:
    """A classic group completed its join phase: a new generation with these members."""
    logger.info(
        "group %s rebalanced: generation %d, protocol %s/%s, leader %s, %d member(s): %s",
        group.group_id,
        group.generation_id,
        group.protocol_type,
        group.protocol_name,
        group.leader_id,
        len(group.members),
        ", ".join(_who(m) for m in joined),
    )


def assigned(group: Any) -> None:
    """The leader's assignment reached the members (the group is Stable)."""
    logger.info(
        "group %s generation %d assignment: %s",
        group.group_id,
        group.generation_id,
        "; ".join(
            f"{m.member_id} -> {assignment_summary(group.protocol_type, m.assignment)}"
            for m in group.members.values()
        ),
    )


def emptied(group: Any) -> None:
    """A rebalance ended with no member left."""
    logger.info("group %s is empty (generation %d)", group.group_id, group.generation_id)


def member_left(group: Any, member: Any) -> None:
    """LeaveGroup removed a member."""
    logger.info("group %s: member %s left", group.group_id, _who(member))


def member_expired(group: Any, member: Any, why: str) -> None:
    """A member was removed by a timer (session timeout, missed rejoin or sync)."""
    logger.info("group %s: member %s expired: %s", group.group_id, _who(member), why)


def consumer_member_joined(group: Any, member: Any) -> None:
    """A member joined a KIP-848 group (ConsumerGroupHeartbeat with epoch 0)."""
    logger.info(
        "group %s (consumer protocol): member %s joined, subscribed to %s",
        group.group_id,
        _who(member),
        member.regex or ",".join(sorted(member.subscribed_names)) or "nothing",
    )


def consumer_group_assigned(group: Any) -> None:
    """A KIP-848 group's new epoch and the target assignment computed for it."""
    names = {topic_id: name for name, (topic_id, _) in group.topics.items()}

    def summary(assignment: dict[Any, set[int]]) -> str:
        parts = [
            f"{names.get(topic_id, topic_id)}[{','.join(str(p) for p in sorted(partitions))}]"
            for topic_id, partitions in assignment.items()
            if partitions
        ]
        return " ".join(sorted(parts)) or "nothing"

    logger.info(
        "group %s (consumer protocol) epoch %d, %d member(s), target assignment: %s",
        group.group_id,
        group.group_epoch,
        len(group.members),
        "; ".join(f"{m} -> {summary(a)}" for m, a in sorted(group.target.items())) or "none",
    )
