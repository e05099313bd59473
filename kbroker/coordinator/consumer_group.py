"""KIP-848 consumer groups (ConsumerGroupHeartbeat): the broker assigns, members reconcile.

How it works
------------
Each member heartbeats with its subscription and (when it changed) the partitions it
owns. Any change that affects the assignment (a member joins or leaves, a subscription
changes, a subscribed topic gains partitions) bumps the *group epoch*; the server-side
assignor then computes a *target assignment* for that epoch. Each member moves to the
target on its own heartbeats (Kafka's CurrentAssignmentBuilder):

1. If it owns partitions the target gives to others, it is first told to give them up
   (its epoch stays) and must confirm by heartbeating without them.
2. Then it advances to the target epoch and receives the target partitions that no
   other member still holds; the rest arrive on later heartbeats once released.

So a partition is never owned by two members at once. Members that stop heartbeating
(group.consumer.session.timeout.ms) or do not release partitions within their rebalance
timeout are removed. Synchronous and clock-driven like ``group.py``.

Persistence (Kafka's GroupMetadataManager / GroupCoordinatorRecordHelpers): the state
that survives a restart is the ``ConsumerGroupImage`` -- group epoch, subscribed topic
metadata, each member's subscription, the target assignment and its epoch, and each
member's current assignment. After every call that may change a group the coordinator
diffs the new image against the last written one (``image_records``), appends exactly
the changed records to ``__consumer_offsets`` and answers once they are replicated (a
write that is not is undone: see ``GroupCoordinator.prepare_consumer_group_heartbeat``);
a departed member or a deleted group becomes tombstones. On load ``ConsumerGroup.restore`` rebuilds the group
from the replayed image, and every member's session timer starts afresh, as in Kafka.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Generic, TypedDict, TypeVar

from kbroker.coordinator import events
from kbroker.wire.errors import ErrorCode

__all__ = [
    "ASSIGNORS",
    "ConsumerGroup",
    "ConsumerGroupEpochRecord",
    "ConsumerGroupImage",
    "ConsumerGroupRecord",
    "ConsumerGroupTopicsRecord",
    "CurrentAssignmentRecord",
    "MemberAssignment",
    "MemberMetadataRecord",
    "MemberSubscription",
    "TargetAssignmentRecord",
    "TargetEpochRecord",
    "ConsumerGroupState",
    "ConsumerMember",
    "HeartbeatResult",
    "TopicsView",
    "image_records",
]

Assignment = dict[uuid.UUID, set[int]]
# name -> (topic id, partition count): the topic metadata the assignor works from
TopicsView = dict[str, tuple[uuid.UUID, int]]
ASSIGNORS = ("uniform", "range")  # Kafka's group.consumer.assignors default order
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


class ConsumerGroupState(enum.Enum):
    """Kafka's ConsumerGroup states as ListGroups/ConsumerGroupDescribe name them."""

    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True)
class HeartbeatResult:
    """What a ConsumerGroupHeartbeat response carries (assignment None = unchanged)."""

    error_code: int
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    assignment: Assignment | None = None


class MemberFields(TypedDict, total=False):
    """What a ConsumerGroupHeartbeat says of its member besides id and epoch; the
    coordinator passes these through to ``ConsumerGroup.heartbeat`` unchanged."""

    instance_id: str | None
    rack_id: str | None
    rebalance_timeout_ms: int
    subscribed_names: list[str] | None
    regex: str | None
    server_assignor: str | None
    owned: Assignment | None
    client_id: str
    client_host: str


@dataclass(slots=True, eq=False)
class ConsumerMember:
    """One KIP-848 member."""

    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300000
    subscribed_names: list[str] = field(default_factory=list)
    regex: str | None = None
    server_assignor: str | None = None
    epoch: int = 0
    previous_epoch: int = -1
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    session_deadline_ms: int = 0
    revocation_deadline_ms: int | None = None
    last_sent: Assignment | None = None


# ConsumerGroupCurrentMemberAssignmentValue.State: Kafka's MemberState ids.
MEMBER_STATE_STABLE = 0
MEMBER_STATE_UNREVOKED_PARTITIONS = 1
MEMBER_STATE_UNRELEASED_PARTITIONS = 2


@dataclass(slots=True)
class MemberSubscription:
    """A member as persisted in ConsumerGroupMemberMetadataValue."""

    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_names: list[str] = field(default_factory=list)
    regex: str | None = None
    rebalance_timeout_ms: int = -1
    server_assignor: str | None = None

    @classmethod
    def of(cls, source: Any, names: Mapping[str, str] = MappingProxyType({})) -> MemberSubscription:
        """The subscription fields of ``source``: a live ConsumerMember, or a record value
        whose field names differ as ``names`` (ours -> its) says; lists are copied."""
        return cls(
            **{f.name: _copied(getattr(source, names.get(f.name, f.name))) for f in fields(cls)}
        )


def _copied(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


@dataclass(slots=True)
class MemberAssignment:
    """A member's reconciliation state, as in ConsumerGroupCurrentMemberAssignmentValue."""

    epoch: int
    previous_epoch: int
    state: int
    assigned: Assignment
    pending_revocation: Assignment


@dataclass(slots=True)
class ConsumerGroupImage:
    """Everything of a KIP-848 group that ``__consumer_offsets`` holds."""

    epoch: int = 0
    topics: TopicsView | None = None
    assignment_epoch: int | None = None
    members: dict[str, MemberSubscription] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    current: dict[str, MemberAssignment] = field(default_factory=dict)


# One record per Kafka record type; a None value is that key's tombstone.
_Value = TypeVar("_Value")


@dataclass(slots=True)
class _MemberRecord(Generic[_Value]):
    """A record keyed by the group and one member's id (the per-member record types)."""

    group_id: str
    member_id: str
    value: _Value | None


@dataclass(slots=True)
class _EpochRecord:
    """A record keyed by the group alone that holds one of its epochs."""

    group_id: str
    epoch: int | None


@dataclass(slots=True)
class ConsumerGroupEpochRecord(_EpochRecord):
    """ConsumerGroupMetadataKey/Value: the group epoch (its tombstone deletes the group)."""


@dataclass(slots=True)
class ConsumerGroupTopicsRecord:
    """ConsumerGroupPartitionMetadataKey/Value: the subscribed topics' ids and sizes."""

    group_id: str
    topics: TopicsView | None


@dataclass(slots=True)
class MemberMetadataRecord(_MemberRecord[MemberSubscription]):
    """ConsumerGroupMemberMetadataKey/Value: one member's subscription."""


@dataclass(slots=True)
class TargetAssignmentRecord(_MemberRecord[Assignment]):
    """ConsumerGroupTargetAssignmentMemberKey/Value: one member's target partitions."""


@dataclass(slots=True)
class TargetEpochRecord(_EpochRecord):
    """ConsumerGroupTargetAssignmentMetadataKey/Value: the target assignment's epoch."""


@dataclass(slots=True)
class CurrentAssignmentRecord(_MemberRecord[MemberAssignment]):
    """ConsumerGroupCurrentMemberAssignmentKey/Value: one member's epochs and partitions."""


ConsumerGroupRecord = (
    ConsumerGroupEpochRecord
    | ConsumerGroupTopicsRecord
    | MemberMetadataRecord
    | TargetAssignmentRecord
    | TargetEpochRecord
    | CurrentAssignmentRecord
)


def image_records(
    group_id: str, old: ConsumerGroupImage | None, new: ConsumerGroupImage | None
) -> list[ConsumerGroupRecord]:
    """The records that turn the persisted ``old`` image into ``new`` (None = no group).

    Ordered as Kafka writes them: a departing member's current assignment, target and
    subscription tombstones first, the group epoch tombstone last; for updates the
    subscriptions and the group epoch come before the target assignment, and the
    target before the members' current assignments.
    """
    before = old or ConsumerGroupImage()
    after = new or ConsumerGroupImage()
    out: list[ConsumerGroupRecord] = []
    for member_id in before.members.keys() - after.members.keys():
        out.append(CurrentAssignmentRecord(group_id, member_id, None))
        out.append(TargetAssignmentRecord(group_id, member_id, None))
        out.append(MemberMetadataRecord(group_id, member_id, None))
    if new is None:
        if old is not None:
            out += [
                TargetEpochRecord(group_id, None),
                ConsumerGroupTopicsRecord(group_id, None),
                ConsumerGroupEpochRecord(group_id, None),
            ]
        return out
    for member_id, sub in after.members.items():
        if before.members.get(member_id) != sub:
            out.append(MemberMetadataRecord(group_id, member_id, sub))
    if after.topics != before.topics and after.topics is not None:
        out.append(ConsumerGroupTopicsRecord(group_id, after.topics))
    if old is None or after.epoch != before.epoch:
        out.append(ConsumerGroupEpochRecord(group_id, after.epoch))
    for member_id in before.target.keys() - after.target.keys():
        if member_id in after.members:
            out.append(TargetAssignmentRecord(group_id, member_id, {}))
    for member_id, target in after.target.items():
        if before.target.get(member_id) != target:
            out.append(TargetAssignmentRecord(group_id, member_id, target))
    if after.assignment_epoch != before.assignment_epoch and after.assignment_epoch is not None:
        out.append(TargetEpochRecord(group_id, after.assignment_epoch))
    for member_id, current in after.current.items():
        if before.current.get(member_id) != current:
            out.append(CurrentAssignmentRecord(group_id, member_id, current))
    return out


def _minus(a: Assignment, b: Assignment) -> Assignment:
    out = {t: ps - b.get(t, set()) for t, ps in a.items()}
    return {t: ps for t, ps in out.items() if ps}


def _intersect(a: Assignment, b: Assignment) -> Assignment:
    out = {t: ps & b.get(t, set()) for t, ps in a.items()}
    return {t: ps for t, ps in out.items() if ps}


def _union(a: Assignment, b: Assignment) -> Assignment:
    out = {t: set(ps) for t, ps in a.items()}
    for t, ps in b.items():
        out.setdefault(t, set()).update(ps)
    return {t: ps for t, ps in out.items() if ps}


def _copy(a: Assignment) -> Assignment:
    return {t: set(ps) for t, ps in a.items() if ps}


def _matches(pattern: str, topic: str) -> bool:
    try:
        return re.fullmatch(pattern, topic) is not None
    except re.error:
        return False


class ConsumerGroup:
    """One KIP-848 group: members, epochs, target assignment; see the module docstring."""

    def __init__(
        self, group_id: str, *, session_timeout_ms: int, heartbeat_interval_ms: int
    ) -> None:
        self.group_id = group_id
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ConsumerMember] = {}
        self.target: dict[str, Assignment] = {}
        self.assignor = ASSIGNORS[0]
        self.topics: TopicsView = {}
        self._subscribed_metadata: dict[str, tuple[uuid.UUID, int]] = {}

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> ConsumerGroupState:
        """Empty / Assigning / Reconciling / Stable, as Kafka derives it."""
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.assignment_epoch < self.group_epoch:
            return ConsumerGroupState.ASSIGNING
        for m in self.members.values():
            if (
                m.epoch != self.assignment_epoch
                or m.pending_revocation
                or (m.assigned != self.target.get(m.member_id, {}))
            ):
                return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def subscribed_topics(self, member: ConsumerMember) -> list[str]:
        """Existing topics a member subscribes to, by name or by its regex."""
        names = {n for n in member.subscribed_names if n in self.topics}
        if member.regex is not None:
            names |= {
                n for n in self.topics if not n.startswith("__") and _matches(member.regex, n)
            }
        return sorted(names)

    def all_subscribed_topics(self) -> set[str]:
        """Topics any member subscribes to."""
        out: set[str] = set()
        for m in self.members.values():
            out.update(self.subscribed_topics(m))
        return out

    # ------------------------------------------------------------------ persistence

    def image(self) -> ConsumerGroupImage:
        """The group's persistent state, detached from the live objects."""
        members: dict[str, MemberSubscription] = {}
        current: dict[str, MemberAssignment] = {}
        for m in self.members.values():
            members[m.member_id] = MemberSubscription.of(m)
            if m.pending_revocation:
                state = MEMBER_STATE_UNREVOKED_PARTITIONS
            elif m.epoch == self.assignment_epoch and m.assigned != self.target.get(
                m.member_id, {}
            ):
                state = MEMBER_STATE_UNRELEASED_PARTITIONS
            else:
                state = MEMBER_STATE_STABLE
            current[m.member_id] = MemberAssignment(
                m.epoch, m.previous_epoch, state, _copy(m.assigned), _copy(m.pending_revocation)
            )
        return ConsumerGroupImage(
            epoch=self.group_epoch,
            topics=dict(self._subscribed_metadata),
            assignment_epoch=self.assignment_epoch,
            members=members,
            target={m: _copy(a) for m, a in self.target.items()},
            current=current,
        )

    @classmethod
    def restore(
        cls,
        group_id: str,
        image: ConsumerGroupImage,
        *,
        now_ms: int,
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
    ) -> ConsumerGroup:
        """A group rebuilt from replayed records; every session timer restarts at ``now_ms``."""
        group = cls(
            group_id,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
        )
        group.group_epoch = image.epoch
        # Kafka's TargetAssignmentMetadata is absent only if no target was ever computed.
        group.assignment_epoch = (
            image.assignment_epoch if image.assignment_epoch is not None else image.epoch
        )
        group._subscribed_metadata = dict(image.topics or {})
        # Until a heartbeat brings fresh metadata, timers work from the persisted view.
        group.topics = dict(image.topics or {})
        for member_id, sub in image.members.items():
            subscription = asdict(sub)
            if sub.rebalance_timeout_ms < 0:
                del subscription["rebalance_timeout_ms"]  # not persisted: the default
            member = ConsumerMember(
                member_id=member_id,
                session_deadline_ms=now_ms + session_timeout_ms,
                **subscription,
            )
            current = image.current.get(member_id)
            if current is not None:
                member.epoch = current.epoch
                member.previous_epoch = current.previous_epoch
                member.assigned = _copy(current.assigned)
                member.pending_revocation = _copy(current.pending_revocation)
                if member.pending_revocation:
                    # Kafka restarts the revocation (rebalance) timeout at load too.
                    member.revocation_deadline_ms = now_ms + member.rebalance_timeout_ms
            group.members[member_id] = member
        group.target = {m: _copy(a) for m, a in image.target.items() if m in group.members}
        return group

    # ------------------------------------------------------------------ heartbeat

    def heartbeat(
        self,
        member_id: str,
        member_epoch: int,
        *,
        now_ms: int,
        topics: TopicsView,
        instance_id: str | None = None,
        rack_id: str | None = None,
        rebalance_timeout_ms: int = -1,
        subscribed_names: list[str] | None = None,
        regex: str | None = None,
        server_assignor: str | None = None,
        owned: Assignment | None = None,
        client_id: str = "",
        client_host: str = "",
    ) -> HeartbeatResult:
        """Handle one ConsumerGroupHeartbeat."""
        self.topics = topics
        if server_assignor is not None and server_assignor not in ASSIGNORS:
            return HeartbeatResult(
                ErrorCode.UNSUPPORTED_ASSIGNOR, f"Unsupported assignor {server_assignor}."
            )
        if member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            member = self.members.get(member_id)
            if member is None and instance_id is not None:
                member = next(
                    (m for m in self.members.values() if m.instance_id == instance_id), None
                )
            if member is None:
                return HeartbeatResult(
                    ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group."
                )
            events.member_left(self, member)
            self._remove(member)
            self._bump_and_assign()
            return HeartbeatResult(
                ErrorCode.NONE, member_id=member.member_id, member_epoch=member_epoch
            )
        if member_epoch == 0:
            if subscribed_names is None and regex is None:
                return HeartbeatResult(
                    ErrorCode.INVALID_REQUEST,
                    "SubscribedTopicNames or SubscribedTopicRegex must be "
                    "set in the first request.",
                )
            member, changed = self._join(member_id, instance_id)
        else:
            found = self.members.get(member_id)
            if found is None:
                return HeartbeatResult(
                    ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group."
                )
            member = found
            if member_epoch != member.epoch and not (
                member_epoch == member.previous_epoch
                and owned is not None
                and not _minus(owned, member.assigned)
            ):
                # A lost response is tolerated (previous epoch, owning nothing new);
                # anything else means the member missed a step and must rejoin.
                return HeartbeatResult(
                    ErrorCode.FENCED_MEMBER_EPOCH,
                    f"The member epoch {member_epoch} does not match the expected "
                    f"epoch {member.epoch}.",
                )
            changed = False
        member.session_deadline_ms = now_ms + self.session_timeout_ms
        member.client_id = client_id or member.client_id
        member.client_host = client_host or member.client_host
        member.rack_id = rack_id if rack_id is not None else member.rack_id
        if rebalance_timeout_ms >= 0:
            member.rebalance_timeout_ms = rebalance_timeout_ms
        if server_assignor is not None:
            member.server_assignor = server_assignor
        if subscribed_names is not None and sorted(subscribed_names) != sorted(
            member.subscribed_names
        ):
            member.subscribed_names = list(subscribed_names)
            changed = True
        if regex is not None and (regex or None) != member.regex:
            member.regex = regex or None
            changed = True
        if member_epoch == 0:
            events.consumer_member_joined(self, member)
        metadata = {n: topics[n] for n in self.all_subscribed_topics()}
        if metadata != self._subscribed_metadata:
            # A subscribed topic was created, deleted or gained partitions.
            self._subscribed_metadata = metadata
            changed = True
        if changed:
            self._bump_and_assign()
        self._reconcile(member, owned, now_ms)
        send: Assignment | None = None
        if (
            member_epoch == 0
            or member.last_sent != member.assigned
            or (owned is not None and owned != member.assigned)
        ):
            send = _copy(member.assigned)
            member.last_sent = _copy(member.assigned)
        return HeartbeatResult(
            ErrorCode.NONE, member_id=member.member_id, member_epoch=member.epoch, assignment=send
        )

    def _join(self, member_id: str, instance_id: str | None) -> tuple[ConsumerMember, bool]:
        previous = None
        if instance_id is not None:
            previous = next(
                (m for m in self.members.values() if m.instance_id == instance_id), None
            )
        if member_id in self.members:
            # Epoch 0 from a known member: it lost its state and starts over.
            self._remove(self.members[member_id])
        # KIP-1082 (v1): the client picks its member id; v0 left that to the broker.
        member = ConsumerMember(member_id=member_id or str(uuid.uuid4()), instance_id=instance_id)
        if previous is not None:
            # KIP-848 static membership: the new incarnation takes over the old one's
            # assignment and epoch, so nobody else is disturbed.
            self._remove(previous, keep_target=True)
            member.assigned = _copy(previous.assigned)
            member.epoch = previous.epoch
            member.subscribed_names = list(previous.subscribed_names)
            member.regex = previous.regex
            self.target[member.member_id] = self.target.pop(previous.member_id, {})
            self.members[member.member_id] = member
            return member, False
        self.members[member.member_id] = member
        return member, True

    def _remove(self, member: ConsumerMember, *, keep_target: bool = False) -> None:
        self.members.pop(member.member_id, None)
        if not keep_target:
            self.target.pop(member.member_id, None)

    def _bump_and_assign(self) -> None:
        self.group_epoch += 1
        self._subscribed_metadata = {n: self.topics[n] for n in self.all_subscribed_topics()}
        self.target = self._compute_target()
        self.assignment_epoch = self.group_epoch
        events.consumer_group_assigned(self)

    def _held_by_others(self, member: ConsumerMember) -> Assignment:
        held: Assignment = {}
        for other in self.members.values():
            if other is not member:
                held = _union(held, _union(other.assigned, other.pending_revocation))
        return held

    def _reconcile(self, member: ConsumerMember, owned: Assignment | None, now_ms: int) -> None:
        owned_now = (
            owned if owned is not None else _union(member.assigned, member.pending_revocation)
        )
        if member.pending_revocation:
            if _intersect(owned_now, member.pending_revocation):
                return  # still waiting for the member to give them up
            member.pending_revocation = {}
            member.revocation_deadline_ms = None
        target = self.target.get(member.member_id, {})
        if member.epoch != self.assignment_epoch:
            revoke = _minus(member.assigned, target)
            if revoke and _intersect(owned_now, revoke):
                member.pending_revocation = revoke
                member.assigned = _intersect(member.assigned, target)
                member.revocation_deadline_ms = now_ms + member.rebalance_timeout_ms
                return
            member.previous_epoch = member.epoch
            member.epoch = self.assignment_epoch
        member.assigned = _minus(target, self._held_by_others(member))

    # ------------------------------------------------------------------ assignors

    def _chosen_assignor(self) -> str:
        votes: dict[str, int] = {}
        for m in self.members.values():
            if m.server_assignor is not None:
                votes[m.server_assignor] = votes.get(m.server_assignor, 0) + 1
        if votes:
            self.assignor = max(ASSIGNORS, key=lambda a: votes.get(a, 0))
        else:
            self.assignor = ASSIGNORS[0]
        return self.assignor

    def _compute_target(self) -> dict[str, Assignment]:
        assignor = self._chosen_assignor()
        target: dict[str, Assignment] = {m: {} for m in self.members}
        load = dict.fromkeys(self.members, 0)
        for topic in sorted(self.all_subscribed_topics()):
            topic_id, count = self.topics[topic]
            subscribers = sorted(
                m.member_id for m in self.members.values() if topic in self.subscribed_topics(m)
            )
            if not subscribers:
                continue
            if assignor == "range":
                # Contiguous ranges in member-id order, like the classic range assignor.
                per, extra = divmod(count, len(subscribers))
                start = 0
                for i, member_id in enumerate(subscribers):
                    n = per + (1 if i < extra else 0)
                    if n:
                        target[member_id][topic_id] = set(range(start, start + n))
                    start += n
                continue
            # uniform: balanced (every subscriber gets floor or ceil of its share) and
            # sticky (current owners keep what fits), the rest to the least-loaded.
            base, extra = divmod(count, len(subscribers))
            per_topic = dict.fromkeys(subscribers, 0)
            owner_of = {
                p: m
                for m in subscribers
                for p in self.target.get(m, {}).get(topic_id, set())
                if p < count
            }
            placed: dict[int, str] = {}
            for p, owner in sorted(owner_of.items()):
                if per_topic[owner] < base:
                    placed[p] = owner
                    per_topic[owner] += 1
            for p, owner in sorted(owner_of.items()):
                if p not in placed and extra > 0 and per_topic[owner] == base:
                    placed[p] = owner
                    per_topic[owner] += 1
                    extra -= 1
            for p in range(count):
                if p in placed:
                    continue
                below = [m for m in subscribers if per_topic[m] < base]
                if not below:
                    below = [m for m in subscribers if per_topic[m] == base]
                    extra -= 1
                member_id = min(below, key=lambda m: (load[m], per_topic[m], m))
                placed[p] = member_id
                per_topic[member_id] += 1
            for p, member_id in placed.items():
                target[member_id].setdefault(topic_id, set()).add(p)
                load[member_id] += 1
        return target

    # ------------------------------------------------------------------ timers

    def next_deadline_ms(self) -> int | None:
        """The earliest session or revocation deadline."""
        deadlines = [m.session_deadline_ms for m in self.members.values()]
        deadlines += [
            m.revocation_deadline_ms
            for m in self.members.values()
            if m.revocation_deadline_ms is not None
        ]
        return min(deadlines, default=None)

    def poll(self, now_ms: int) -> bool:
        """Remove members whose session or revocation time ran out; True if any."""
        gone = [
            m
            for m in self.members.values()
            if m.session_deadline_ms <= now_ms
            or (m.revocation_deadline_ms is not None and m.revocation_deadline_ms <= now_ms)
        ]
        for m in gone:
            events.member_expired(
                self,
                m,
                f"no heartbeat within its {self.session_timeout_ms} ms session timeout"
                if m.session_deadline_ms <= now_ms
                else "did not revoke its partitions within its rebalance timeout",
            )
            self._remove(m)
        if gone:
            self._bump_and_assign()
        return bool(gone)

    # ------------------------------------------------------------------ offsets

    def validate_offset_commit(
        self, member_id: str, member_epoch: int, *, api_version: int | None = None
    ) -> int | None:
        """Kafka's ConsumerGroup.validateOffsetCommit: None if the commit may proceed.
        ``api_version``: the OffsetCommit version (None for a TxnOffsetCommit)."""
        if member_epoch < 0 and not self.members:
            return None  # an admin/standalone commit to an empty group
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if api_version is not None and api_version < 9:
            # A member of this protocol commits with OffsetCommit v9+, the version that
            # carries its member epoch (KIP-848); an older one is not its client's.
            return ErrorCode.UNSUPPORTED_VERSION
        if member_epoch != member.epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return None
