"""The classic consumer group (JoinGroup / SyncGroup): its states, members and protocol.

What one group is (Kafka's ClassicGroup and ClassicGroupState): members with their
protocols and sessions, the generation, the chosen protocol, and the state, which moves
between Kafka's five states (GroupMetadata.scala)::

    Empty ──join──► PreparingRebalance ──all joined / timeout──► CompletingRebalance
      ▲                 ▲        │ (no members left)                    │ leader's SyncGroup
      │                 │        ▼                                      ▼
      └─────────────── (gen+1, Empty)      member joins/leaves/expires ◄─ Stable
    Dead: deleted (DeleteGroups, or offsets expired on an empty group)

The leader's assignment becomes the members' (and the group Stable) only once its group
record is replicated (``PendingAssignment``), as in Kafka's doSyncGroup.

Every state change goes through ``transition``, which checks it against
``VALID_PREVIOUS`` exactly as Kafka's ``GroupState.validPreviousStates`` does. A group
is born Empty, or, when loaded, in the state Kafka loads it in (GroupMetadata.loadGroup:
Stable with members, else Empty); neither is a transition. How a group reacts to
JoinGroup, SyncGroup, heartbeats and timeouts is ``GroupCoordinator``'s
(``coordinator.group``), as it is Kafka's GroupMetadataManager's.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kbroker.wire.errors import ProtocolError
from kbroker.wire.messages import ConsumerProtocolSubscription
from kbroker.wire.protocol import decode_versioned_data

T = TypeVar("T")


class GroupState(enum.Enum):
    """Kafka's classic group states; the value is the name DescribeGroups/ListGroups report."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


S = GroupState
# Kafka's GroupState.validPreviousStates: a transition from any other state is a bug.
VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    S.EMPTY: frozenset({S.PREPARING_REBALANCE}),
    S.PREPARING_REBALANCE: frozenset({S.STABLE, S.COMPLETING_REBALANCE, S.EMPTY}),
    S.COMPLETING_REBALANCE: frozenset({S.PREPARING_REBALANCE}),
    S.STABLE: frozenset({S.COMPLETING_REBALANCE}),
    S.DEAD: frozenset({S.STABLE, S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE, S.EMPTY, S.DEAD}),
}


def transition(group: ClassicGroup, state: GroupState, now_ms: int) -> None:
    """The one place a classic group changes state, checked against ``VALID_PREVIOUS``."""
    if group.state not in VALID_PREVIOUS[state]:
        raise AssertionError(f"group {group.group_id}: {group.state.value} -> {state.value}")
    group.state = state
    group.state_timestamp_ms = now_ms


class Pending(Generic[T]):
    """A response that may be decided later; ``on_done`` fires once when it is."""

    __slots__ = ("result", "_on_done")

    def __init__(self, on_done: Callable[[], None] | None = None) -> None:
        self.result: T | None = None
        self._on_done = on_done

    @property
    def done(self) -> bool:
        """Whether the result is decided."""
        return self.result is not None

    def complete(self, result: T) -> None:
        """Decide the result (later calls are ignored: the first answer wins)."""
        if self.result is not None:
            return
        self.result = result
        if self._on_done is not None:
            self._on_done()


@dataclass(slots=True)
class JoinResult:
    """What a JoinGroup response carries."""

    error_code: int
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    # (member id, group instance id, metadata of the chosen protocol); leader only
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    skip_assignment: bool = False


@dataclass(slots=True)
class SyncResult:
    """What a SyncGroup response carries."""

    error_code: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(slots=True, eq=False)
class PendingAssignment:
    """The leader's assignment of one generation, written to ``__consumer_offsets`` but not
    yet known to be replicated (Kafka's doSyncGroup between storeGroup and its callback).

    Until ``GroupCoordinator.complete_assignment`` decides, the group stays
    CompletingRebalance and no member is handed its part: an assignment a coordinator
    failover could lose must not be acted on."""

    group: ClassicGroup
    generation_id: int
    assignment: dict[str, bytes]  # member id -> its assignment (every member has one)


@dataclass(slots=True, eq=False)
class PendingStaticJoin:
    """A static member that took over its slot in a Stable group (KIP-345), the group's
    record written but not yet known to be replicated: Kafka's
    updateStaticMemberAndRebalance answers the JoinGroup in storeGroup's callback and,
    if the write failed, gives the slot back to the old member id. Until then the new
    member id is not handed out: a failover that lost the record would fence it."""

    group: ClassicGroup
    member: ClassicMember
    instance_id: str
    old_id: str
    old_protocols: list[tuple[str, bytes]]
    old_session_timeout_ms: int
    old_rebalance_timeout_ms: int
    result: JoinResult  # the answer once the record is replicated
    pending: Pending[JoinResult]


@dataclass(slots=True, eq=False)
class ClassicMember:
    """A member of a classic group (Kafka's ClassicGroupMember)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    heartbeat_deadline_ms: int = 0
    awaiting_join: Pending[JoinResult] | None = None
    awaiting_sync: Pending[SyncResult] | None = None

    def metadata(self, protocol: str) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return data
        return b""

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return self.protocols == protocols


@dataclass(slots=True, eq=False)
class ClassicGroup:
    """A classic group: its state, generation, protocol and members (Kafka's ClassicGroup)."""

    group_id: str
    state: GroupState = S.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, ClassicMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    pending_members: dict[str, int] = field(default_factory=dict)  # member id -> expiry ms
    pending_sync: set[str] = field(default_factory=set)
    state_timestamp_ms: int | None = None
    join_deadline_ms: int | None = None
    sync_deadline_ms: int | None = None
    # group.initial.rebalance.delay.ms (Kafka's InitialDelayedJoin)
    initial_delay_active: bool = False
    initial_delay_remaining_ms: int = 0
    new_member_added: bool = False

    def all_members_joined(self) -> bool:
        waiting = sum(1 for m in self.members.values() if m.awaiting_join is not None)
        return waiting == len(self.members) and not self.pending_members

    def max_rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def candidate_protocols(self) -> list[str]:
        """Protocols every member supports, in the order of the first member's preference."""
        members = list(self.members.values())
        if not members:
            return []
        common = set(name for name, _ in members[0].protocols)
        for m in members[1:]:
            common &= {name for name, _ in m.protocols}
        return [name for name, _ in members[0].protocols if name in common]

    def select_protocol(self) -> str:
        """Kafka's vote: each member votes its most preferred candidate; most votes wins."""
        candidates = self.candidate_protocols()
        votes: dict[str, int] = dict.fromkeys(candidates, 0)
        for m in self.members.values():
            for name, _ in m.protocols:
                if name in votes:
                    votes[name] += 1
                    break
        # Ties go to the earlier candidate, which keeps the choice deterministic.
        return max(candidates, key=lambda name: votes[name])

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        """Kafka's GroupMetadata.supportsProtocols."""
        if not self.members:
            return bool(protocol_type) and bool(protocols)
        if protocol_type != self.protocol_type:
            return False
        names = {name for name, _ in protocols}
        # A rejoining member's own old protocols must not count (it may be changing them),
        # but Kafka checks against every current member, so we do too.
        return any(name in names for name in self.candidate_protocols())

    def static_fenced(self, instance_id: str | None, member_id: str) -> bool:
        if instance_id is None:
            return False
        known = self.static_members.get(instance_id)
        return known is not None and known != member_id


def subscription_topics(metadata: bytes) -> set[str]:
    """Topics named by a ConsumerProtocolSubscription (empty if it does not parse)."""
    try:
        _, sub = decode_versioned_data(ConsumerProtocolSubscription, metadata)
    except ProtocolError:
        return set()
    return set(sub.topics)
