"""The group coordinator as a synchronous state machine (Kafka's GroupMetadataManager).

How it works
------------
``GroupCoordinator`` holds every group and routes each group API to it: classic groups
(``classic_group``: JoinGroup, SyncGroup and their rebalance, decided here as Kafka's
GroupMetadataManager decides them), KIP-848 consumer groups (``consumer_group``), and the
committed offsets of both (``offsets.OffsetStore``, after the group has validated the
commit). It never blocks and never reads the wall clock directly: time comes from an
injected ``clock`` (seconds, like ``time.time``), and durable state goes to an injected
``GroupStore`` (which appends to ``__consumer_offsets``). The async layer
(``kbroker.coordinator.service``) only waits: a JoinGroup or SyncGroup that cannot be
answered yet returns a ``Pending`` whose ``on_done`` callback fires when a later call
completes it, and a timer task calls ``poll()`` at ``next_deadline_ms()`` so rebalance,
session and pending-sync timeouts fire.

A write whose effect a client may act on waits for the ISR of the group's partition, as
Kafka's coordinator appends with acks=all and acts in the append's callback (the old
GroupCoordinator, which Kafka 3.9 runs in ZooKeeper mode: GroupMetadataManager
.appendForGroup's offsets.commit.required.acks, default -1): the
``prepare_*`` methods write and return the change pending (an offset commit, a leader's
assignment, a static member's takeover), the handler waits for the replication and calls
the matching ``complete_*`` with the outcome. The plain methods (``commit_offsets``,
``sync_group``, ``join_group``) complete at once, for callers with nothing to wait for.
Writes nobody is answered for (a group that became empty, expired or deleted offsets)
change memory first and are not waited for, as in Kafka (onCompleteJoin's warning-only
callback, cleanupGroupMetadata's acks=0 tombstones).

KIP-848 groups follow the new group coordinator (CoordinatorRuntime): a heartbeat, a
leave, a conversion from a classic group and a deletion are answered once their records
are committed (``prepare_consumer_group_heartbeat``, ``prepare_delete_groups``, then
``complete_consumer_write``): the high watermark past them, however small the ISR, as
the new coordinator appends with acks=1 (CoordinatorPartitionWriter.append). A write
that is not committed in time is undone, and each group has at most
one write in flight (see ``prepare_consumer_group_heartbeat`` for why). Reads see a
group's committed state. A session or revocation expiry (``poll``) is answered to
nobody: it is committed at once and never undone, as the runtime keeps a write whose
commit nobody waits for; a group with a write in flight is polled once it is settled.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, Required, TypedDict, TypeVar, Unpack

from kbroker.coordinator import events
from kbroker.coordinator.classic_group import (
    ClassicGroup,
    ClassicMember,
    GroupState,
    JoinResult,
    Pending,
    PendingAssignment,
    PendingStaticJoin,
    SyncResult,
    subscription_topics,
    transition,
)
from kbroker.coordinator.consumer_group import (
    ConsumerGroup,
    ConsumerGroupEpochRecord,
    ConsumerGroupImage,
    ConsumerGroupRecord,
    ConsumerGroupTopicsRecord,
    HeartbeatResult,
    MemberFields,
    MemberMetadataRecord,
    TargetAssignmentRecord,
    TargetEpochRecord,
    TopicsView,
    image_records,
)
from kbroker.coordinator.offsets import (
    OffsetAndMetadata,
    OffsetRecord,
    OffsetStore,
    PendingCommit,
    TopicPartition,
    append_error_code,
    is_expired,
    operation_error_code,
)
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode

__all__ = [
    "ConsumerGroupWrite",
    "CoordinatorConfig",
    "DescribedGroup",
    "DescribedMember",
    "GroupCoordinator",
    "GroupRecord",
    "GroupSnapshot",
    "GroupStore",
    "MemberSnapshot",
    "java_string_hashcode",
    "partition_for",
]

S = GroupState
logger = logging.getLogger(__name__)


def java_string_hashcode(text: str) -> int:
    """Java's ``String.hashCode`` (signed int32 over UTF-16 code units)."""
    h = 0
    data = text.encode("utf-16-be")
    for (unit,) in struct.iter_unpack(">H", data):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    """The ``__consumer_offsets`` partition of a group: ``Utils.abs(hashCode) % n``."""
    # Kafka's Utils.abs is ``x & 0x7fffffff`` (not math.abs: abs(MIN_VALUE) stays positive).
    return (java_string_hashcode(group_id) & 0x7FFFFFFF) % num_partitions


@dataclass(slots=True)
class CoordinatorConfig:
    """The broker settings the coordinator uses (Kafka names in comments)."""

    initial_rebalance_delay_ms: int = 0  # group.initial.rebalance.delay.ms (dev default)
    min_session_timeout_ms: int = 6000  # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1800000  # group.max.session.timeout.ms
    max_group_size: int = 2**31 - 1  # group.max.size
    offsets_retention_ms: int = 10080 * 60 * 1000  # offsets.retention.minutes
    offsets_retention_check_interval_ms: int = 600000  # offsets.retention.check.interval.ms
    offset_metadata_max_bytes: int = 4096  # offset.metadata.max.bytes
    num_partitions: int = 50  # offsets.topic.num.partitions
    consumer_session_timeout_ms: int = 45000  # group.consumer.session.timeout.ms (KIP-848)
    consumer_heartbeat_interval_ms: int = 5000  # group.consumer.heartbeat.interval.ms


@dataclass(slots=True)
class MemberSnapshot:
    """A member as persisted in GroupMetadataValue."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(slots=True)
class GroupSnapshot:
    """A group as persisted in GroupMetadataValue."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    state_timestamp: int
    members: list[MemberSnapshot]


@dataclass(slots=True)
class GroupRecord:
    """A GroupMetadataKey/Value pair; ``value`` None is a tombstone."""

    group_id: str
    value: GroupSnapshot | None


class GroupStore(Protocol):
    """Durable storage: the records of one call are written together before it returns."""

    def write(
        self, partition: int, records: Sequence[OffsetRecord | GroupRecord | ConsumerGroupRecord]
    ) -> None:
        """Append the records to ``__consumer_offsets`` partition ``partition``."""


class JoinOptions(TypedDict, total=False):
    """JoinGroup's arguments besides the group and member id, as ``prepare_join_group``
    takes them (``join_group`` passes them on unchanged)."""

    group_instance_id: Required[str | None]
    protocol_type: Required[str]
    protocols: Required[list[tuple[str, bytes]]]
    session_timeout_ms: Required[int]
    rebalance_timeout_ms: Required[int]
    client_id: str
    client_host: str
    require_known_member_id: bool
    supports_skip_assignment: bool
    on_done: Callable[[], None] | None


class SyncOptions(TypedDict, total=False):
    """SyncGroup's optional arguments, as ``prepare_sync_group`` takes them
    (``sync_group`` passes them on unchanged)."""

    group_instance_id: str | None
    protocol_type: str | None
    protocol_name: str | None
    assignments: Iterable[tuple[str, bytes]]
    on_done: Callable[[], None] | None


class CommitOptions(TypedDict, total=False):
    """OffsetCommit's optional arguments, as ``prepare_offset_commit`` takes them
    (``commit_offsets`` passes them on unchanged)."""

    group_instance_id: str | None
    # The OffsetCommit version (a KIP-848 group's members must use v9+); omitted: any.
    api_version: int | None


@dataclass(slots=True)
class DescribedMember:
    """One member in a DescribeGroups answer."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(slots=True)
class DescribedGroup:
    """A DescribeGroups answer for one group."""

    error_code: int
    group_id: str
    state: str
    protocol_type: str
    protocol_data: str
    members: list[DescribedMember]


class StagedOffsets(Protocol):
    """A group's offsets staged by open transactions (KIP-98), which a KIP-848 deletion
    in flight took from them (``GroupCoordinator.set_aside_txn_offsets``)."""

    def restore(self) -> list[OffsetRecord]:
        """Give them back to their transactions (the deletion failed); the records of
        those that committed meanwhile are returned, to be published."""
        ...

    def drop(self) -> None:
        """Forget them (the deletion is committed, or no longer this coordinator's)."""
        ...


class _NothingStaged:
    """``StagedOffsets`` of a coordinator without a transaction side."""

    def restore(self) -> list[OffsetRecord]:
        return []

    def drop(self) -> None:
        pass


@dataclass(slots=True, eq=False)
class ConsumerGroupWrite:
    """A KIP-848 group's records appended and waiting for the ISR (see
    ``GroupCoordinator.prepare_consumer_group_heartbeat``); ``complete_consumer_write``
    settles it, and the next write of the group waits until it is settled."""

    group_id: str
    # The image the write brings the group to (None: the group is deleted).
    written: ConsumerGroupImage | None
    # The empty classic group the write took over (its GroupMetadata tombstoned with the
    # consumer group's first records): back in place if the write fails.
    classic: ClassicGroup | None = None
    # A DeleteGroups': the partitions its offset tombstones cover, and what open
    # transactions staged for the group; all of the group's offsets (committed, in
    # flight or staged) are set aside until it is settled, and back if it fails.
    tombstoned: list[TopicPartition] | None = None
    staged: StagedOffsets | None = None
    done: bool = False
    _watchers: list[Callable[[], None]] = field(default_factory=list)

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the write is settled (at once if it is)."""
        if self.done:
            callback()
        else:
            self._watchers.append(callback)

    def settle(self) -> None:
        """Mark the write settled and call whoever waits for it."""
        self.done = True
        watchers, self._watchers = self._watchers, []
        for callback in watchers:
            callback()


_Answer = TypeVar("_Answer")
_Written = TypeVar("_Written")


def _completed_at_once(
    prepared: tuple[_Answer, _Written | None], complete: Callable[[_Written, int], None]
) -> _Answer:
    """The answer of a ``prepare_*`` call whose write has no replication to wait for:
    the change it wrote (if any) is completed at once, as written."""
    answer, written = prepared
    if written is not None:
        complete(written, ErrorCode.NONE)
    return answer


def _set_image(
    images: dict[str, ConsumerGroupImage], group_id: str, image: ConsumerGroupImage | None
) -> None:
    """Record a KIP-848 group's image; None (the group is gone) removes its entry."""
    if image is None:
        images.pop(group_id, None)
    else:
        images[group_id] = image


class GroupCoordinator:
    """Every classic group and committed offset; see the module docstring."""

    def __init__(
        self,
        *,
        config: CoordinatorConfig | None = None,
        clock: Callable[[], float],
        store: GroupStore | None = None,
        new_member_id: Callable[[str], str] | None = None,
    ) -> None:
        self.config = config or CoordinatorConfig()
        self._clock = clock
        self._store = store
        self._groups: dict[str, ClassicGroup] = {}
        # KIP-848 groups share the group id namespace and the offsets with classic ones.
        self._consumer_groups: dict[str, ConsumerGroup] = {}
        # What __consumer_offsets holds for each KIP-848 group (the replay of this
        # leader's log, replicated or not): the base the next write is diffed against
        # (see consumer_group.py, "Persistence").
        self._consumer_images: dict[str, ConsumerGroupImage] = {}
        # The state each KIP-848 group goes back to if its write in flight fails: what
        # it was once its last write was replicated (or needed no waiting).
        self._consumer_committed: dict[str, ConsumerGroupImage] = {}
        # The write in flight of each KIP-848 group (at most one: see
        # prepare_consumer_group_heartbeat).
        self._consumer_writes: dict[str, ConsumerGroupWrite] = {}
        self.offsets = OffsetStore(write=self._write, config=self.config)
        self._new_member_id = new_member_id or (lambda client_id: f"{client_id}-{uuid.uuid4()}")
        self._next_expiry_check_ms = self._now() + self.config.offsets_retention_check_interval_ms
        # Set by ``unload``: this coordinator is no longer the broker's.
        self.unloaded = False
        # The offsets a group has staged by transactions still open (TxnOffsetCommit,
        # KIP-98) are kept by the transaction side (kbroker.txn.offsets), which the
        # broker's coordinator_for plugs in here: which partitions have some, and
        # forgetting them (partitions None: all of the group's). None by default.
        self.pending_txn_partitions: Callable[[str], set[TopicPartition]] = lambda _: set()
        self.discard_txn_offsets: Callable[[str, Iterable[TopicPartition] | None], None] = (
            lambda _group, _partitions: None
        )
        # Taking a group's staged offsets from their transactions until a deletion in
        # flight is settled (see ``StagedOffsets``).
        self.set_aside_txn_offsets: Callable[[str], StagedOffsets] = lambda _: _NothingStaged()

    # ------------------------------------------------------------------ helpers

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def now_ms(self) -> int:
        """The injected clock, in milliseconds."""
        return self._now()

    def _transition(self, group: ClassicGroup, state: GroupState) -> None:
        transition(group, state, self._now())

    def _write(self, group_id: str, records: Sequence[OffsetRecord | GroupRecord]) -> None:
        """Append a classic group's or offsets' records. If the log still holds a KIP-848
        group of that id that memory no longer has (its conversion was written but not
        replicated, and undone), its tombstones go first, so the log does not replay
        into that group."""
        logged = self._consumer_images.get(group_id)
        if logged is not None and group_id not in self._consumer_groups:
            self._append(group_id, [*image_records(group_id, logged, None), *records])
            del self._consumer_images[group_id]
            return
        self._append(group_id, records)

    def _append(
        self, group_id: str, records: Sequence[OffsetRecord | GroupRecord | ConsumerGroupRecord]
    ) -> None:
        if self.unloaded:
            # The log is its successor's now (see ``unload``): refused as an append to a
            # partition this broker no longer leads is, which every path answers
            # NOT_COORDINATOR.
            raise KafkaApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER, "the coordinator was unloaded")
        if self._store is not None and records:
            self._store.write(partition_for(group_id, self.config.num_partitions), records)

    def _snapshot(
        self, group: ClassicGroup, assignment: dict[str, bytes] | None = None
    ) -> GroupSnapshot:
        """The group as its record stores it; with ``assignment``, holding that one
        instead of the members' current one (Kafka's groupMetadataValue(group, assignment))."""
        protocol = group.protocol_name
        return GroupSnapshot(
            protocol_type=group.protocol_type or "",
            generation=group.generation_id,
            protocol=protocol,
            leader=group.leader_id,
            state_timestamp=group.state_timestamp_ms
            if group.state_timestamp_ms is not None
            else -1,
            members=[
                MemberSnapshot(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    session_timeout_ms=m.session_timeout_ms,
                    subscription=m.metadata(protocol) if protocol else b"",
                    assignment=m.assignment
                    if assignment is None
                    else assignment.get(m.member_id, b""),
                )
                for m in group.members.values()
            ],
        )

    def _store_group(self, group: ClassicGroup) -> None:
        self._write(group.group_id, [GroupRecord(group.group_id, self._snapshot(group))])

    def group_state(self, group_id: str) -> GroupState:
        """The state of a group (Dead if unknown)."""
        group = self._groups.get(group_id)
        return group.state if group is not None else S.DEAD

    def group_ids(self) -> list[str]:
        """Ids of every live group."""
        return list(self._groups)

    # ------------------------------------------------------------------ JoinGroup

    def join_group(
        self, group_id: str, member_id: str, **options: Unpack[JoinOptions]
    ) -> Pending[JoinResult]:
        """Handle JoinGroup; the result is decided now or when the rebalance completes
        (a group record it writes has no replication to wait for: see
        ``prepare_join_group``)."""
        return _completed_at_once(
            self.prepare_join_group(group_id, member_id, **options), self.complete_static_join
        )

    def prepare_join_group(
        self,
        group_id: str,
        member_id: str,
        *,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str = "",
        client_host: str = "",
        require_known_member_id: bool = False,
        supports_skip_assignment: bool = False,
        on_done: Callable[[], None] | None = None,
    ) -> tuple[Pending[JoinResult], PendingStaticJoin | None]:
        """JoinGroup up to the write: the member's answer (decided now or later), and,
        when a static member took over its slot in a Stable group and the group's record
        was written, that takeover, answered by ``complete_static_join`` once the write
        reached the ISR or failed (Kafka's updateStaticMemberAndRebalance)."""
        pending: Pending[JoinResult] = Pending(on_done)
        err = self._join_error(group_id, member_id, session_timeout_ms)
        if err is not None:
            pending.complete(JoinResult(err, member_id=member_id))
            return pending, None
        if group_id in self._consumer_writes:
            # Callers wait for the KIP-848 group's write in flight first (its state may
            # still be undone); retried without a lookup.
            pending.complete(
                JoinResult(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, member_id=member_id)
            )
            return pending, None
        consumer_group = self._consumer_groups.get(group_id)
        if consumer_group is not None:
            if consumer_group.members:
                # A KIP-848 group with members cannot take classic members.
                pending.complete(
                    JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
                )
                return pending, None
            # An empty one simply becomes classic; its records are tombstoned first.
            try:
                self._drop_consumer_group(group_id)
            except Exception as exc:  # noqa: BLE001 - any store failure is answered
                pending.complete(JoinResult(operation_error_code(exc), member_id=member_id))
                return pending, None
        group = self._groups.get(group_id)
        if group is None:
            group = ClassicGroup(group_id)
        if not group.supports(protocol_type, protocols):
            pending.complete(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            return pending, None
        # Created only once the join is acceptable, so a refused join leaves no group behind.
        self._groups.setdefault(group_id, group)
        if (
            member_id == ""
            and len(group.members) + len(group.pending_members) >= self.config.max_group_size
        ):
            pending.complete(JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, member_id=member_id))
            return pending, None
        # The member as this JoinGroup describes it: added under its id, or its protocols
        # and timeouts copied onto the member the group knows (Kafka reads them from the
        # JoinGroupRequestData at each step).
        joining = ClassicMember(
            member_id=member_id,
            group_instance_id=group_instance_id,
            client_id=client_id,
            client_host=client_host,
            session_timeout_ms=session_timeout_ms,
            rebalance_timeout_ms=rebalance_timeout_ms,
            protocol_type=protocol_type,
            protocols=protocols,
        )
        stored = None
        if member_id == "":
            stored = self._join_unknown_member(
                group, joining, pending, require_known_member_id, supports_skip_assignment
            )
        else:
            self._join_known_member(group, joining, pending)
        self._maybe_complete_join(group)
        return pending, stored

    def _join_error(self, group_id: str, member_id: str, session_timeout_ms: int) -> int | None:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        cfg = self.config
        if not cfg.min_session_timeout_ms <= session_timeout_ms <= cfg.max_session_timeout_ms:
            return ErrorCode.INVALID_SESSION_TIMEOUT
        group = self._groups.get(group_id)
        if group is None and member_id:
            # A member id for a group we do not know: it was removed (or we restarted
            # without it), so the client must start over.
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group is not None and group.state is S.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return None

    def _join_unknown_member(
        self,
        group: ClassicGroup,
        joining: ClassicMember,
        pending: Pending[JoinResult],
        require_known_member_id: bool,
        supports_skip_assignment: bool,
    ) -> PendingStaticJoin | None:
        new_id = self._new_member_id(joining.client_id)
        instance_id = joining.group_instance_id
        if instance_id is not None:
            # KIP-345: a static member never needs the MEMBER_ID_REQUIRED round trip.
            if instance_id in group.static_members:
                return self._replace_static_member(
                    group, instance_id, new_id, joining, pending, supports_skip_assignment
                )
            else:
                self._add_member_and_rebalance(group, new_id, joining, pending)
        elif require_known_member_id:
            # KIP-394: hand out the id first so a client that times out and retries
            # rejoins as the same member instead of leaving a ghost behind.
            group.pending_members[new_id] = self._now() + joining.session_timeout_ms
            pending.complete(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=new_id))
        else:
            self._add_member_and_rebalance(group, new_id, joining, pending)
        return None

    def _join_known_member(
        self, group: ClassicGroup, joining: ClassicMember, pending: Pending[JoinResult]
    ) -> None:
        member_id, instance_id = joining.member_id, joining.group_instance_id
        if group.static_fenced(instance_id, member_id):
            pending.complete(JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id=member_id))
            return
        if instance_id is not None and instance_id not in group.static_members:
            pending.complete(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id))
            return
        if member_id in group.pending_members:
            del group.pending_members[member_id]
            self._add_member_and_rebalance(group, member_id, joining, pending)
            return
        member = group.members.get(member_id)
        if member is None or group.state in (S.EMPTY, S.DEAD):
            pending.complete(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id))
            return
        if group.state is S.PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, joining, pending)
        elif group.state is S.COMPLETING_REBALANCE:
            if member.matches(joining.protocols):
                # A retried JoinGroup (the response was lost): answer with this generation.
                pending.complete(self._join_result(group, member))
            else:
                self._update_member_and_rebalance(group, member, joining, pending)
        else:  # Stable
            if member.member_id == group.leader_id or not member.matches(joining.protocols):
                # The leader rejoining forces a rebalance: that is how a consumer leader
                # reacts to topic metadata changes the member metadata does not show.
                self._update_member_and_rebalance(group, member, joining, pending)
            else:
                pending.complete(self._join_result(group, member, with_members=False))

    def _join_result(
        self, group: ClassicGroup, member: ClassicMember, *, with_members: bool = True
    ) -> JoinResult:
        is_leader = member.member_id == group.leader_id
        protocol = group.protocol_name or ""
        members = []
        if is_leader and with_members:
            members = [
                (m.member_id, m.group_instance_id, m.metadata(protocol))
                for m in group.members.values()
            ]
        return JoinResult(
            ErrorCode.NONE,
            member_id=member.member_id,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader=group.leader_id or "",
            members=members,
        )

    def _add_member_and_rebalance(
        self,
        group: ClassicGroup,
        member_id: str,
        joining: ClassicMember,
        pending: Pending[JoinResult],
    ) -> None:
        """Add the joining member under ``member_id`` (its own, or the one just made for
        it) and rebalance."""
        member = replace(joining, member_id=member_id, awaiting_join=pending)
        instance_id = member.group_instance_id
        if not group.members:
            group.protocol_type = member.protocol_type
        if group.leader_id is None:
            group.leader_id = member_id
        group.members[member_id] = member
        if instance_id is not None:
            group.static_members[instance_id] = member_id
        if group.state is S.PREPARING_REBALANCE and group.generation_id == 0:
            group.new_member_added = True
        self._maybe_prepare_rebalance(group)

    def _update_member_and_rebalance(
        self,
        group: ClassicGroup,
        member: ClassicMember,
        joining: ClassicMember,
        pending: Pending[JoinResult],
    ) -> None:
        member.protocols = joining.protocols
        member.session_timeout_ms = joining.session_timeout_ms
        member.rebalance_timeout_ms = joining.rebalance_timeout_ms
        if member.awaiting_join is not None:
            # A duplicate JoinGroup: the newer request gets the answer.
            member.awaiting_join.complete(
                JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id)
            )
        member.awaiting_join = pending
        self._maybe_prepare_rebalance(group)

    def _replace_static_member(
        self,
        group: ClassicGroup,
        instance_id: str,
        new_id: str,
        joining: ClassicMember,
        pending: Pending[JoinResult],
        supports_skip_assignment: bool = False,
    ) -> PendingStaticJoin | None:
        """KIP-345: a known static member rejoining with no member id takes over its slot
        (in a Stable group whose protocol does not change, answered once the group's
        record with its new member id is replicated: the takeover is returned)."""
        old_id = group.static_members[instance_id]
        old = group.members.pop(old_id)
        current_leader = group.leader_id
        # The old incarnation is fenced: anything it still waits for is refused.
        if old.awaiting_join is not None:
            old.awaiting_join.complete(JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
        if old.awaiting_sync is not None:
            old.awaiting_sync.complete(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        old_protocols = old.protocols
        old_timeouts = old.session_timeout_ms, old.rebalance_timeout_ms
        member = old
        member.member_id = new_id
        member.awaiting_join = None
        member.awaiting_sync = None
        member.client_id = joining.client_id
        member.client_host = joining.client_host
        member.protocols = joining.protocols
        member.session_timeout_ms = joining.session_timeout_ms
        member.rebalance_timeout_ms = joining.rebalance_timeout_ms
        member.heartbeat_deadline_ms = self._now() + member.session_timeout_ms
        group.members[new_id] = member
        group.static_members[instance_id] = new_id
        if group.leader_id == old_id:
            group.leader_id = new_id
        if old_id in group.pending_sync:
            group.pending_sync.discard(old_id)
            group.pending_sync.add(new_id)
        if group.state is S.STABLE:
            if group.select_protocol() == group.protocol_name:
                # No rebalance: the static member gets its old assignment back at SyncGroup.
                takeover = PendingStaticJoin(
                    group,
                    member,
                    instance_id,
                    old_id,
                    old_protocols,
                    *old_timeouts,
                    result=self._static_join_result(
                        group, member, current_leader, supports_skip_assignment
                    ),
                    pending=pending,
                )
                try:
                    self._store_group(group)
                except Exception as exc:  # noqa: BLE001 - any store failure is answered
                    code = append_error_code(
                        exc, default=ErrorCode.UNKNOWN_SERVER_ERROR, offsets=False
                    )
                    self.complete_static_join(takeover, code)
                    return None
                return takeover
            else:
                member.awaiting_join = pending
                self._prepare_rebalance(group)
        elif group.state is S.COMPLETING_REBALANCE:
            # The leader may already hold an assignment keyed by the old id.
            member.awaiting_join = pending
            self._prepare_rebalance(group)
        else:  # PreparingRebalance
            member.awaiting_join = pending
        return None

    def _static_join_result(
        self,
        group: ClassicGroup,
        member: ClassicMember,
        current_leader: str | None,
        supports_skip_assignment: bool,
    ) -> JoinResult:
        """The JoinGroup answer of a static member that took over its slot in a Stable group."""
        if supports_skip_assignment and group.leader_id == member.member_id:
            # KIP-814 (JoinGroup v9): the restarted leader learns it leads and gets the
            # members (to rebuild its state) but must skip assigning.
            result = self._join_result(group, member)
            result.skip_assignment = True
            return result
        # Before v9 the old leader id is returned on purpose (Kafka does the same): a
        # leader that rejoins must not compute an assignment a Stable group would not
        # send, and a member id that is not its own tells it it does not lead.
        result = self._join_result(group, member, with_members=False)
        result.leader = current_leader or ""
        return result

    def complete_static_join(self, takeover: PendingStaticJoin, error: int) -> None:
        """The group record of a static member's takeover reached the ISR (``error``
        NONE: its JoinGroup is answered with the new member id) or not: the slot goes
        back to the old member id and the member is told the error (as storeGroup maps
        it), so it joins again (Kafka's updateStaticMemberAndRebalance callback)."""
        if takeover.pending.done:
            return
        if error == ErrorCode.NONE:
            takeover.pending.complete(takeover.result)
            return
        group, member = takeover.group, takeover.member
        new_id = member.member_id
        # Unless another incarnation of the instance took the slot meanwhile.
        if (
            self._groups.get(group.group_id) is group
            and group.members.get(new_id) is member
            and group.static_members.get(takeover.instance_id) == new_id
        ):
            old_id = takeover.old_id
            del group.members[new_id]
            member.member_id = old_id
            member.protocols = takeover.old_protocols
            member.session_timeout_ms = takeover.old_session_timeout_ms
            member.rebalance_timeout_ms = takeover.old_rebalance_timeout_ms
            group.members[old_id] = member
            group.static_members[takeover.instance_id] = old_id
            if group.leader_id == new_id:
                group.leader_id = old_id
            if new_id in group.pending_sync:
                group.pending_sync.discard(new_id)
                group.pending_sync.add(old_id)
        takeover.pending.complete(JoinResult(error, ""))

    # ------------------------------------------------------------------ rebalance

    def _maybe_prepare_rebalance(self, group: ClassicGroup) -> None:
        if group.state in (S.STABLE, S.COMPLETING_REBALANCE, S.EMPTY):
            self._prepare_rebalance(group)

    def _prepare_rebalance(self, group: ClassicGroup) -> None:
        if group.state is S.COMPLETING_REBALANCE:
            # Members waiting for an assignment rejoin instead (one still being stored
            # is dropped when its write completes: the group moved on).
            self._reset_and_propagate_assignment_error(group, ErrorCode.REBALANCE_IN_PROGRESS)
        group.pending_sync.clear()
        group.sync_deadline_ms = None
        now = self._now()
        if group.state is S.EMPTY:
            # Kafka's InitialDelayedJoin: give the other members of a starting group a
            # moment to join so the first generation does not rebalance once per member.
            delay = self.config.initial_rebalance_delay_ms
            group.initial_delay_active = True
            group.initial_delay_remaining_ms = max(group.max_rebalance_timeout_ms() - delay, 0)
            group.new_member_added = False
            group.join_deadline_ms = now + delay
        else:
            group.initial_delay_active = False
            group.join_deadline_ms = now + group.max_rebalance_timeout_ms()
        self._transition(group, S.PREPARING_REBALANCE)

    def _maybe_complete_join(self, group: ClassicGroup) -> None:
        if (
            group.state is S.PREPARING_REBALANCE
            and not group.initial_delay_active
            and group.all_members_joined()
        ):
            self._complete_join(group)

    def _on_join_deadline(self, group: ClassicGroup) -> None:
        delay = min(self.config.initial_rebalance_delay_ms, group.initial_delay_remaining_ms)
        if group.initial_delay_active and group.new_member_added and delay > 0:
            # Someone joined during the delay: wait once more (bounded by the rebalance timeout).
            group.initial_delay_remaining_ms -= delay
            group.new_member_added = False
            group.join_deadline_ms = self._now() + delay
            return
        group.initial_delay_active = False
        self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> None:
        # Dynamic members that did not rejoin in time are gone; static members stay
        # (KIP-345: they keep their slot until their session times out).
        for m in list(group.members.values()):
            if m.awaiting_join is None and m.group_instance_id is None:
                events.member_expired(group, m, "did not rejoin within the rebalance timeout")
                self._remove_member(group, m)
        joined = [m for m in group.members.values() if m.awaiting_join is not None]
        if group.members and not joined:
            # Only static members that have not rejoined: wait another rebalance timeout.
            group.join_deadline_ms = self._now() + group.max_rebalance_timeout_ms()
            return
        leader = group.members.get(group.leader_id or "")
        if leader is None or leader.awaiting_join is None:
            group.leader_id = joined[0].member_id if joined else None
        group.join_deadline_ms = None
        group.generation_id += 1
        if group.members:
            group.protocol_name = group.select_protocol()
            group.protocol_type = next(iter(group.members.values())).protocol_type
            self._transition(group, S.COMPLETING_REBALANCE)
            events.rebalanced(group, joined)
            now = self._now()
            for m in joined:
                pending = m.awaiting_join
                m.awaiting_join = None
                m.heartbeat_deadline_ms = now + m.session_timeout_ms
                assert pending is not None
                pending.complete(self._join_result(group, m))
            # Members must send SyncGroup within the rebalance timeout, else they are
            # removed and the group rebalances again (Kafka's pending-sync expiry).
            group.pending_sync = set(group.members)
            group.sync_deadline_ms = now + group.max_rebalance_timeout_ms()
        else:
            group.protocol_name = None
            group.leader_id = None
            self._transition(group, S.EMPTY)
            events.emptied(group)
            try:
                self._store_group(group)
            except Exception:  # noqa: BLE001 - nothing to answer; the next write retries
                pass

    def _remove_member(self, group: ClassicGroup, member: ClassicMember) -> None:
        if member.awaiting_join is not None:
            # So a member that is still alive retries the join from scratch.
            member.awaiting_join.complete(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, ""))
            member.awaiting_join = None
        if member.awaiting_sync is not None:
            member.awaiting_sync.complete(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
            member.awaiting_sync = None
        del group.members[member.member_id]
        if member.group_instance_id is not None:
            group.static_members.pop(member.group_instance_id, None)
        group.pending_sync.discard(member.member_id)
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)

    def _remove_member_and_update_group(self, group: ClassicGroup, member: ClassicMember) -> None:
        self._remove_member(group, member)
        if group.state in (S.STABLE, S.COMPLETING_REBALANCE):
            self._prepare_rebalance(group)
        self._maybe_complete_join(group)

    # ------------------------------------------------------------------ SyncGroup

    def sync_group(
        self, group_id: str, generation_id: int, member_id: str, **options: Unpack[SyncOptions]
    ) -> Pending[SyncResult]:
        """Handle SyncGroup; followers wait for the leader's assignment (stored with no
        replication to wait for: see ``prepare_sync_group``)."""
        return _completed_at_once(
            self.prepare_sync_group(group_id, generation_id, member_id, **options),
            self.complete_assignment,
        )

    def prepare_sync_group(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        *,
        group_instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
        assignments: Iterable[tuple[str, bytes]] = (),
        on_done: Callable[[], None] | None = None,
    ) -> tuple[Pending[SyncResult], PendingAssignment | None]:
        """SyncGroup up to the write: the member's answer (decided now or later), and,
        when the leader's assignment was written, that assignment, pending until
        ``complete_assignment`` says whether its write reached the ISR (Kafka's
        doSyncGroup: groupManager.storeGroup, then the members get it in the callback)."""
        pending: Pending[SyncResult] = Pending(on_done)
        group = self._groups.get(group_id)
        error = self._member_error(group_id, group, generation_id, member_id, group_instance_id)
        if error is None:
            assert group is not None  # _member_error checked it
            # SyncGroup v5 (KIP-559) lets the client check it runs the group's protocol.
            if (protocol_type is not None and protocol_type != group.protocol_type) or (
                protocol_name is not None and protocol_name != group.protocol_name
            ):
                error = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        if error is not None:
            pending.complete(SyncResult(error))
            return pending, None
        assert group is not None
        member = group.members[member_id]
        stored = None
        if group.state is S.EMPTY:
            pending.complete(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        elif group.state is S.PREPARING_REBALANCE:
            pending.complete(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        elif group.state is S.COMPLETING_REBALANCE:
            group.pending_sync.discard(member_id)
            if member.awaiting_sync is not None:
                # A duplicate SyncGroup (a retry on another connection): the newer one
                # waits, the older is told to rejoin rather than left unanswered.
                member.awaiting_sync.complete(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            member.awaiting_sync = pending
            member.heartbeat_deadline_ms = self._now() + member.session_timeout_ms
            if member_id == group.leader_id:
                stored = self._store_assignment(group, dict(assignments))
        else:  # Stable: the assignment is already known (e.g. a retried SyncGroup)
            group.pending_sync.discard(member_id)
            member.heartbeat_deadline_ms = self._now() + member.session_timeout_ms
            pending.complete(self._sync_result(group, member))
        if not group.pending_sync:
            group.sync_deadline_ms = None
        return pending, stored

    def _member_error(
        self,
        group_id: str,
        group: ClassicGroup | None,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
    ) -> int | None:
        """The checks SyncGroup and Heartbeat make before looking at the group's state
        (Kafka's validateSyncGroup, up to the protocol check, and validateHeartbeat): the
        error, or None."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.state is S.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return self._generation_error(group, generation_id, member_id, instance_id)

    @staticmethod
    def _generation_error(
        group: ClassicGroup, generation_id: int, member_id: str, instance_id: str | None
    ) -> int | None:
        """Whether the sender is a member of the group's current generation: the error
        (FENCED_INSTANCE_ID for a static member's replaced id, UNKNOWN_MEMBER_ID for no
        member, ILLEGAL_GENERATION for another generation), or None."""
        if group.static_fenced(instance_id, member_id):
            return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        return None

    def _sync_result(self, group: ClassicGroup, member: ClassicMember) -> SyncResult:
        return SyncResult(
            ErrorCode.NONE,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            assignment=member.assignment,
        )

    def _store_assignment(
        self, group: ClassicGroup, assignments: dict[str, bytes]
    ) -> PendingAssignment | None:
        """Write the group's record with the leader's assignment; the assignment, pending
        its replication (None if the write itself failed: the members were told)."""
        # Members the leader left out get an empty assignment (Kafka does the same).
        assignment = {m: assignments.get(m, b"") for m in group.members}
        record = GroupRecord(group.group_id, self._snapshot(group, assignment))
        try:
            self._write(group.group_id, [record])
        except Exception as exc:  # noqa: BLE001 - any store failure is answered
            code = append_error_code(
                exc, default=ErrorCode.COORDINATOR_NOT_AVAILABLE, offsets=False
            )
            self._fail_assignment(group, code)
            return None
        return PendingAssignment(group, group.generation_id, assignment)

    def complete_assignment(self, stored: PendingAssignment, error: int) -> None:
        """The write of a leader's assignment reached the ISR (``error`` NONE: the members
        get their parts, the group is Stable) or not (the error as GroupMetadataManager
        .storeGroup maps it: the members are told and the group rebalances). Nothing
        happens if the group moved on meanwhile (another generation, a rebalance), as in
        Kafka's storeGroup callback."""
        group = stored.group
        if (
            self._groups.get(group.group_id) is not group
            or group.state is not S.COMPLETING_REBALANCE
            or group.generation_id != stored.generation_id
        ):
            return
        if error != ErrorCode.NONE:
            self._fail_assignment(group, error)
            return
        # Kafka's setAndPropagateAssignment.
        for m in group.members.values():
            m.assignment = stored.assignment.get(m.member_id, b"")
        self._transition(group, S.STABLE)
        events.assigned(group)
        self._propagate_assignment(group, ErrorCode.NONE)

    def _fail_assignment(self, group: ClassicGroup, error: int) -> None:
        """The assignment could not be stored: every member waiting for it gets ``error``
        and the group rebalances (Kafka: resetAndPropagateAssignmentError, then
        maybePrepareRebalance)."""
        self._reset_and_propagate_assignment_error(group, error)
        self._prepare_rebalance(group)

    def _reset_and_propagate_assignment_error(self, group: ClassicGroup, error: int) -> None:
        for m in group.members.values():
            m.assignment = b""
        self._propagate_assignment(group, error)

    def _propagate_assignment(self, group: ClassicGroup, error: int) -> None:
        """Answer every member waiting in SyncGroup: its assignment, or ``error``."""
        now = self._now()
        for m in group.members.values():
            if m.awaiting_sync is None:
                continue
            result = self._sync_result(group, m) if error == ErrorCode.NONE else SyncResult(error)
            m.awaiting_sync.complete(result)
            m.awaiting_sync = None
            # Its session restarts now: it may have waited for the leader, then for the
            # write, longer than its session timeout (Kafka's propagateAssignment).
            m.heartbeat_deadline_ms = now + m.session_timeout_ms

    # ------------------------------------------------------------------ Heartbeat / LeaveGroup

    def heartbeat(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None = None,
    ) -> int:
        """Handle Heartbeat; returns the error code."""
        group = self._groups.get(group_id)
        error = self._member_error(group_id, group, generation_id, member_id, group_instance_id)
        if error is not None:
            return error
        assert group is not None  # _member_error checked it
        member = group.members[member_id]
        if group.state is S.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        member.heartbeat_deadline_ms = self._now() + member.session_timeout_ms
        if group.state is S.PREPARING_REBALANCE:
            # Tells the member to rejoin.
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave_group(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[int, list[int]]:
        """Handle LeaveGroup for (member id, group instance id) pairs; (top error, per member)."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, [ErrorCode.INVALID_GROUP_ID] * len(members)
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.NONE, [ErrorCode.UNKNOWN_MEMBER_ID] * len(members)
        if group.state is S.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, []
        errors: list[int] = []
        for member_id, instance_id in members:
            if member_id == "" and instance_id is not None:
                # KIP-345 batch leave (admin "remove members"): by instance id alone.
                known = group.static_members.get(instance_id)
                if known is None:
                    errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
                    continue
                member_id = known
            elif group.static_fenced(instance_id, member_id):
                errors.append(ErrorCode.FENCED_INSTANCE_ID)
                continue
            if member_id in group.pending_members:
                del group.pending_members[member_id]
                self._maybe_complete_join(group)
                errors.append(ErrorCode.NONE)
                continue
            member = group.members.get(member_id)
            if member is None:
                errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
                continue
            events.member_left(group, member)
            self._remove_member_and_update_group(group, member)
            errors.append(ErrorCode.NONE)
        return ErrorCode.NONE, errors

    # ------------------------------------------------------------------ unloading

    def unload(self) -> None:
        """This coordinator is dropped (in cluster mode a leadership move of its
        ``__consumer_offsets`` partition drops it, on a single node any move drops the
        one coordinator; the next request loads its successor from the log): Kafka's
        GroupCoordinator.onResignation, whose onGroupUnloaded makes each group Dead and
        answers every member waiting in JoinGroup or SyncGroup NOT_COORDINATOR, so it
        looks the coordinator up again and rejoins there. From now on it fires no timer
        and appends nothing: the log is its successor's (or another broker's). A write
        still in flight is settled as its wait decides, in memory only."""
        if self.unloaded:
            return
        self.unloaded = True
        for group in self._groups.values():
            self._transition(group, S.DEAD)
            group.join_deadline_ms = group.sync_deadline_ms = None
            for m in group.members.values():
                if m.awaiting_join is not None:
                    m.awaiting_join.complete(JoinResult(ErrorCode.NOT_COORDINATOR, m.member_id))
                    m.awaiting_join = None
                if m.awaiting_sync is not None:
                    m.awaiting_sync.complete(SyncResult(ErrorCode.NOT_COORDINATOR))
                    m.awaiting_sync = None

    # ------------------------------------------------------------------ timers

    def next_deadline_ms(self) -> int:
        """When ``poll`` next has work to do (clock milliseconds)."""
        deadline = self._next_expiry_check_ms
        for group in self._groups.values():
            for d in self._group_deadlines(group):
                deadline = min(deadline, d)
        for consumer_group in self._consumer_groups.values():
            if consumer_group.group_id in self._consumer_writes:
                continue  # not polled until its write is settled
            next_member = consumer_group.next_deadline_ms()
            if next_member is not None:
                deadline = min(deadline, next_member)
        return deadline

    def _group_deadlines(self, group: ClassicGroup) -> Iterable[int]:
        if group.join_deadline_ms is not None:
            yield group.join_deadline_ms
        if group.sync_deadline_ms is not None:
            yield group.sync_deadline_ms
        yield from group.pending_members.values()
        for m in group.members.values():
            if m.awaiting_join is None and m.awaiting_sync is None:
                yield m.heartbeat_deadline_ms

    def poll(self) -> None:
        """Fire every timer that is due: rebalance, session, pending-sync, offset expiry
        (none once unloaded: its groups are its successor's)."""
        if self.unloaded:
            return
        now = self._now()
        for group in list(self._groups.values()):
            self._poll_group(group, now)
        for consumer_group in list(self._consumer_groups.values()):
            # A group with a write in flight expires its members once the write is
            # settled: meanwhile its state may still be undone.
            if consumer_group.group_id in self._consumer_writes:
                continue
            if consumer_group.poll(now):
                # Nobody to answer if the append fails: the group stays as it was and
                # the next poll expires its members again.
                with contextlib.suppress(Exception):
                    self._persist_consumer_group(consumer_group.group_id)
        if now >= self._next_expiry_check_ms:
            self._next_expiry_check_ms = now + self.config.offsets_retention_check_interval_ms
            self.expire_offsets()

    def _poll_group(self, group: ClassicGroup, now: int) -> None:
        for member_id, expiry in list(group.pending_members.items()):
            if expiry <= now:
                # A MEMBER_ID_REQUIRED id that was never used.
                del group.pending_members[member_id]
                self._maybe_complete_join(group)
        for m in list(group.members.values()):
            if (
                m.member_id in group.members
                and m.awaiting_join is None
                and m.awaiting_sync is None
                and m.heartbeat_deadline_ms <= now
            ):
                events.member_expired(
                    group, m, f"no heartbeat within its {m.session_timeout_ms} ms session timeout"
                )
                self._remove_member_and_update_group(group, m)
        if group.sync_deadline_ms is not None and group.sync_deadline_ms <= now:
            group.sync_deadline_ms = None
            if group.state in (S.COMPLETING_REBALANCE, S.STABLE) and group.pending_sync:
                for member_id in list(group.pending_sync):
                    member = group.members.get(member_id)
                    if member is not None:
                        events.member_expired(
                            group, member, "no SyncGroup within the rebalance timeout"
                        )
                        self._remove_member(group, member)
                group.pending_sync.clear()
                self._prepare_rebalance(group)
                self._maybe_complete_join(group)
        if (
            group.state is S.PREPARING_REBALANCE
            and group.join_deadline_ms is not None
            and group.join_deadline_ms <= now
        ):
            self._on_join_deadline(group)

    # ------------------------------------------------------------------ KIP-848

    def consumer_group_heartbeat(
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        *,
        topics: TopicsView,
        **member: Unpack[MemberFields],
    ) -> HeartbeatResult:
        """Handle ConsumerGroupHeartbeat (KIP-848) with no replication to wait for (see
        ``prepare_consumer_group_heartbeat``); see consumer_group.py."""
        return _completed_at_once(
            self.prepare_consumer_group_heartbeat(
                group_id, member_id, member_epoch, topics=topics, **member
            ),
            self.complete_consumer_write,
        )

    def prepare_consumer_group_heartbeat(
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        *,
        topics: TopicsView,
        **member: Unpack[MemberFields],
    ) -> tuple[HeartbeatResult, ConsumerGroupWrite | None]:
        """ConsumerGroupHeartbeat up to the write: the answer, and, when the group's
        records were appended, the write, which the caller waits for and settles with
        ``complete_consumer_write`` before answering (the answer stands only if the
        records reached the ISR; a heartbeat that changed nothing has no write).

        Kafka's CoordinatorRuntime applies a write to the in-memory state at once,
        parks the answer until the high watermark passes the records, lets the next
        write build on that uncommitted state, and reverts only a failed append; a
        write that is not replicated in time is answered REQUEST_TIMED_OUT (mapped to
        COORDINATOR_NOT_AVAILABLE) but stays in memory and in the leader's log. Here a
        write that is not replicated is undone instead: the group goes back to its
        committed image and the member, told the error, retries from what it had. For
        that to be safe a group has at most one write in flight: its next heartbeat
        (or leave, expiry, conversion, deletion) waits until the write is settled, so it
        neither sees nor builds on state that may be undone, and is not lost under
        it. The cost is one replication round trip between two writes of the same
        group (other groups are not held up); Kafka's pipelining would save it but
        requires never undoing a write short of reloading the partition. The log
        keeps an undone write's records, so the next write is diffed against what the
        log holds (``_consumer_images``), not against the committed image."""
        if not group_id:
            return HeartbeatResult(ErrorCode.INVALID_GROUP_ID, "GroupId can't be empty."), None
        if group_id in self._consumer_writes:
            # Callers wait for the write in flight first; retried without a lookup.
            return HeartbeatResult(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS), None
        consumer_group = self._consumer_groups.get(group_id)
        created = consumer_group is None
        if consumer_group is None:
            classic = self._groups.get(group_id)
            if classic is not None and (classic.members or classic.pending_members):
                return HeartbeatResult(
                    ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group."
                ), None
            if member_epoch != 0:
                return HeartbeatResult(
                    ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group."
                ), None
            consumer_group = ConsumerGroup(
                group_id,
                session_timeout_ms=self.config.consumer_session_timeout_ms,
                heartbeat_interval_ms=self.config.consumer_heartbeat_interval_ms,
            )
            self._consumer_groups[group_id] = consumer_group
        result = consumer_group.heartbeat(
            member_id, member_epoch, now_ms=self._now(), topics=topics, **member
        )
        if created and result.error_code != ErrorCode.NONE:
            # A first heartbeat that was refused creates no group.
            del self._consumer_groups[group_id]
            return result, None
        # An empty classic group (e.g. only offsets) is taken over, offsets included;
        # its GroupMetadata is tombstoned in the same batch, as Kafka does on conversion.
        classic = self._groups.get(group_id)
        extra = [GroupRecord(group_id, None)] if classic is not None else []
        try:
            written = self._write_consumer_group(group_id, extra)
        except Exception as exc:  # noqa: BLE001 - any store failure is answered
            return HeartbeatResult(operation_error_code(exc)), None
        self._groups.pop(group_id, None)
        logged = self._consumer_images.get(group_id)
        if not written:
            committed = self._consumer_committed.get(group_id)
            if logged is committed or logged == committed:
                return result, None
            # Nothing to append, but the group now is what an undone write left in the
            # log (its state could not be written again after it): that must be
            # replicated before the answer stands.
        write = ConsumerGroupWrite(group_id, logged, classic=classic)
        self._consumer_writes[group_id] = write
        return result, write

    def consumer_write_in_flight(self, group_id: str) -> ConsumerGroupWrite | None:
        """The KIP-848 group's write waiting for the ISR, if any: whoever changes the
        group next waits until it is settled (``ConsumerGroupWrite.watch``)."""
        return self._consumer_writes.get(group_id)

    def complete_consumer_write(self, write: ConsumerGroupWrite, error: int) -> None:
        """The write's records reached the ISR (``error`` NONE: its state is committed)
        or not (the group goes back to its committed image, and what the write removed,
        a converted classic group or deleted offsets, comes back); then whoever waits
        for the group goes on. If this coordinator was unloaded while the write was in
        flight (a leadership move of any of its partitions drops it), it writes nothing
        more: its successor was loaded from the log, this write included, and only it
        may append to that log."""
        if write.done:
            return
        group_id = write.group_id
        if self._consumer_writes.get(group_id) is write:
            del self._consumer_writes[group_id]
        if error == ErrorCode.NONE:
            _set_image(self._consumer_committed, group_id, write.written)
            if write.tombstoned is not None:
                self.offsets.drop_aside(group_id)
        else:
            self._restore_committed(group_id)
            extra: list[OffsetRecord | GroupRecord] = []
            if write.classic is not None and group_id not in self._consumer_groups:
                classic = self._groups.setdefault(group_id, write.classic)
                extra.append(GroupRecord(group_id, self._snapshot(classic)))
            if write.tombstoned is not None:  # a deletion
                if group_id in self._consumer_groups:
                    extra += self._undo_deletion(write, write.tombstoned)
                else:
                    self.offsets.drop_aside(group_id)
            # The log keeps the undone records: the committed state is written again after
            # them, so the log replays to it (nobody waits for this write; if it fails
            # too, the group's next write is diffed against the undone one instead).
            # Not if the partition is no longer led here: its new leader's log is the
            # group's, and this coordinator is unloaded; nor once this coordinator is
            # unloaded: its successor holds the undone write's state, as the log does.
            if not self.unloaded and error != ErrorCode.NOT_COORDINATOR:
                with contextlib.suppress(Exception):
                    self._write_consumer_group(group_id, extra)
        if write.staged is not None:
            write.staged.drop()  # if not restored: deleted, or no longer ours
        write.settle()

    def _undo_deletion(
        self, write: ConsumerGroupWrite, tombstoned: list[TopicPartition]
    ) -> list[OffsetRecord]:
        """A KIP-848 group's deletion failed: its offsets come back as they would be
        without it (a commit that was in flight, or staged by a transaction that ended
        meanwhile, included); the records that write them again after its tombstones."""
        group_id = write.group_id
        classic = self._groups.get(group_id)
        if classic is not None and not classic.members and not classic.pending_members:
            # Offsets committed meanwhile made one to hold them (joins wait for the
            # write): they are the group's now, as a reload would find them (replay
            # keeps no classic group beside a KIP-848 one).
            del self._groups[group_id]
        self.offsets.restore_aside(group_id)
        # The transaction side is this coordinator's only while it is loaded: its
        # successor reads the staged offsets from the log (which keeps them).
        if write.staged is not None and not self.unloaded:
            # Published now, as their marker's completion would have (its records follow
            # the tombstones in the log, so a reload has them too).
            for record in write.staged.restore():
                self.offsets.replay(record)
        logged = self.offsets.logged(group_id)
        return [OffsetRecord(group_id, *tp, logged[tp]) for tp in tombstoned if tp in logged]

    def _write_consumer_group(
        self, group_id: str, extra: Sequence[OffsetRecord | GroupRecord] = ()
    ) -> bool:
        """Append what changed in a KIP-848 group since what the log holds: whether
        there was anything. If the append fails the group is back to its committed
        image and the append's exception is raised."""
        group = self._consumer_groups.get(group_id)
        old = self._consumer_images.get(group_id)
        new = group.image() if group is not None else None
        records: list[OffsetRecord | GroupRecord | ConsumerGroupRecord] = list(extra)
        records += image_records(group_id, old, new)
        if not records:
            return False
        try:
            self._append(group_id, records)
        except Exception:
            self._restore_committed(group_id)
            raise
        _set_image(self._consumer_images, group_id, new)
        return True

    def _persist_consumer_group(
        self, group_id: str, extra: Sequence[OffsetRecord | GroupRecord] = ()
    ) -> None:
        """Append what changed in a KIP-848 group, for a change nobody is answered for
        (a session expiry, a group emptied or dropped): committed at once, as Kafka's
        runtime keeps a write nobody waits for. On a failed append the group goes back
        to its committed state and the append's exception is raised."""
        self._write_consumer_group(group_id, extra)
        _set_image(self._consumer_committed, group_id, self._consumer_images.get(group_id))

    def _drop_consumer_group(
        self,
        group_id: str,
        extra: Sequence[OffsetRecord | GroupRecord] = (),
        *,
        answered: bool = False,
    ) -> None:
        """Forget a KIP-848 group and append its tombstones (and ``extra``): kept at once
        when nobody is answered for the drop (``_persist_consumer_group``), otherwise a
        write the caller answers once it is replicated (``_write_consumer_group``).
        Raises what the append raised (the group stays)."""
        group = self._consumer_groups.pop(group_id, None)
        write = self._write_consumer_group if answered else self._persist_consumer_group
        try:
            write(group_id, extra)
        except Exception:
            if group is not None:
                self._consumer_groups[group_id] = group
            raise

    def _restore_committed(self, group_id: str) -> None:
        """Put a KIP-848 group back to its committed image (gone if it has none). Members
        keep their session deadlines: only what was written is undone."""
        live = self._consumer_groups.pop(group_id, None)
        committed = self._consumer_committed.get(group_id)
        if committed is None:
            return
        group = self._restore_consumer_group(group_id, committed)
        if live is not None:
            for member in group.members.values():
                was = live.members.get(member.member_id)
                if was is not None:
                    member.session_deadline_ms = was.session_deadline_ms
        self._consumer_groups[group_id] = group

    def _restore_consumer_group(self, group_id: str, image: ConsumerGroupImage) -> ConsumerGroup:
        return ConsumerGroup.restore(
            group_id,
            image,
            now_ms=self._now(),
            session_timeout_ms=self.config.consumer_session_timeout_ms,
            heartbeat_interval_ms=self.config.consumer_heartbeat_interval_ms,
        )

    def _committed_view(self, group_id: str) -> ConsumerGroup | None:
        """The KIP-848 group as reads see it: its committed state (Kafka's runtime reads
        at the last committed offset), which is the live group unless a write is in
        flight."""
        live = self._consumer_groups.get(group_id)
        if group_id not in self._consumer_writes:
            return live
        committed = self._consumer_committed.get(group_id)
        if committed is None:
            return None
        view = self._restore_consumer_group(group_id, committed)
        if live is not None:
            view.assignor = live.assignor
        return view

    def _converting(self, group_id: str) -> ClassicGroup | None:
        """The classic group a KIP-848 group's write in flight takes over: reads still see
        it, as the conversion is not committed yet."""
        write = self._consumer_writes.get(group_id)
        if write is None or self._consumer_committed.get(group_id) is not None:
            return None
        return write.classic

    def validate_offset_fetch(self, group_id: str, member_id: str | None, member_epoch: int) -> int:
        """OffsetFetch v9 from a KIP-848 member: check its id and epoch (else NONE), as its
        committed state has them (the member knows no epoch whose write is in flight)."""
        consumer_group = self._committed_view(group_id)
        if consumer_group is None or member_id is None:
            return ErrorCode.NONE
        member = consumer_group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    # ------------------------------------------------------------------ offsets

    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        offsets: dict[TopicPartition, OffsetAndMetadata],
        **options: Unpack[CommitOptions],
    ) -> dict[TopicPartition, int]:
        """Handle OffsetCommit; stores accepted offsets durably before returning their codes
        (with no replication to wait for: see ``prepare_offset_commit``)."""
        codes, commit = self.prepare_offset_commit(
            group_id, generation_id, member_id, offsets, **options
        )
        if commit is not None:
            self.offsets.complete(commit, replicated=True)
        return codes

    def prepare_offset_commit(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        offsets: dict[TopicPartition, OffsetAndMetadata],
        *,
        group_instance_id: str | None = None,
        api_version: int | None = None,
    ) -> tuple[dict[TopicPartition, int], PendingCommit | None]:
        """OffsetCommit up to the write: the codes, and the commit written but pending
        (invisible to OffsetFetch) until ``complete_offset_commit`` says whether the
        write reached the ISR (GroupMetadataManager.storeOffsets)."""
        # The empty group id is valid here (Kafka's isValidGroupId keeps it for the offset
        # APIs, DescribeGroups and DeleteGroups, for backwards compatibility).
        consumer_group = self._consumer_groups.get(group_id)
        if consumer_group is not None:
            # KIP-848: generation_id_or_member_epoch carries the member epoch.
            error = consumer_group.validate_offset_commit(
                member_id, generation_id, api_version=api_version
            )
            if error is not None:
                return dict.fromkeys(offsets, error), None
            return self.offsets.store_pending(group_id, offsets)
        group = self._groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                # A commit from a generation this coordinator never saw.
                return dict.fromkeys(offsets, ErrorCode.ILLEGAL_GENERATION), None
            # Standalone consumers (assign(), no group management) commit with
            # generation -1 and no member id; the group exists only to hold offsets.
            group = ClassicGroup(group_id)
            self._groups[group_id] = group
        error = self._validate_commit(group, generation_id, member_id, group_instance_id)
        if error is not None:
            return dict.fromkeys(offsets, error), None
        if group.state is S.COMPLETING_REBALANCE:
            # Valid generation but the assignment is not known yet: let the client retry.
            return dict.fromkeys(offsets, ErrorCode.REBALANCE_IN_PROGRESS), None
        member = group.members.get(member_id)
        if member is not None:
            member.heartbeat_deadline_ms = self._now() + member.session_timeout_ms
        return self.offsets.store_pending(group.group_id, offsets)

    def complete_offset_commit(self, commit: PendingCommit, *, replicated: bool) -> None:
        """The pending commit's write reached the ISR (its offsets are committed now) or
        not (dropped; the client was answered an error and retries)."""
        self.offsets.complete(commit, replicated=replicated)

    def pending_offset_partitions(self, group_id: str) -> set[TopicPartition]:
        """Partitions of the group with a commit whose write is not replicated yet."""
        return self.offsets.pending_partitions(group_id)

    def validate_transactional_commit(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None = None,
    ) -> int | None:
        """KIP-447 checks for TxnOffsetCommit (None = accept): a member's generation is
        verified as for OffsetCommit, but commits without one are always allowed."""
        consumer_group = self._consumer_groups.get(group_id)
        if consumer_group is not None:
            if generation_id < 0 and not member_id:
                return None
            return consumer_group.validate_offset_commit(member_id, generation_id)
        group = self._groups.get(group_id) or ClassicGroup(group_id)
        return self._validate_commit(
            group, generation_id, member_id, group_instance_id, transactional=True
        )

    def _validate_commit(
        self,
        group: ClassicGroup,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
        *,
        transactional: bool = False,
    ) -> int | None:
        if group.state is S.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id >= 0 or member_id != "" or instance_id is not None:
            return self._generation_error(group, generation_id, member_id, instance_id)
        if not transactional and group.state is not S.EMPTY:
            # Only members may commit for a group that has members (older transactional
            # clients send no member id, so Kafka exempts TxnOffsetCommit).
            return ErrorCode.UNKNOWN_MEMBER_ID
        return None

    def fetch_offsets(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """Committed offsets of a group (None = nothing committed); partitions None = all."""
        return self.offsets.fetch(group_id, partitions)

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[int, dict[TopicPartition, int]]:
        """Handle OffsetDelete: (group error, per-partition errors)."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, {}
        if self.unloaded:
            # GroupCoordinator.validateGroupStatus: not the group's coordinator any more.
            return ErrorCode.NOT_COORDINATOR, {}
        subscribed: set[str] = set()
        consumer_group = self._consumer_groups.get(group_id)
        if consumer_group is not None:
            subscribed = consumer_group.all_subscribed_topics()
        else:
            group = self._groups.get(group_id)
            if group is None or group.state is S.DEAD:
                return ErrorCode.GROUP_ID_NOT_FOUND, {}
            if group.protocol_type not in (None, "", "consumer") and group.state is not S.EMPTY:
                return ErrorCode.NON_EMPTY_GROUP, {}
            if group.state is not S.EMPTY and group.protocol_type == "consumer":
                subscribed = self._subscribed_topics(group)
        # A classic group's tombstones are best effort (see OffsetStore.delete).
        error, result = self.offsets.delete(
            group_id, partitions, subscribed, best_effort=consumer_group is None
        )
        if error == ErrorCode.NONE:
            # Offsets staged by an open transaction go too, so its commit does not bring
            # them back: GroupMetadata.removeOffsets (classic groups), the tombstone
            # OffsetMetadataManager.deleteOffsets writes for them (KIP-848 groups).
            self.discard_txn_offsets(
                group_id, [tp for tp, code in result.items() if code == ErrorCode.NONE]
            )
            if consumer_group is None:
                self._maybe_drop_emptied(group_id)
        return error, result

    def _maybe_drop_emptied(self, group_id: str) -> None:
        """After OffsetDelete: GroupCoordinator.handleDeleteOffsets runs the classic group
        through GroupMetadataManager.cleanupGroupMetadata, which makes an Empty group
        left without offsets (GroupMetadata.hasOffsets: none committed, in flight or
        staged by an open transaction) Dead; its tombstone is best effort there too."""
        group = self._groups.get(group_id)
        if (
            group is None
            or group.state is not S.EMPTY
            or self.offsets.of(group_id)
            or self.offsets.pending_partitions(group_id)
            or self.pending_txn_partitions(group_id)
        ):
            return
        try:
            self._write(group_id, [GroupRecord(group_id, None)])
        except Exception as exc:  # noqa: BLE001 - logged, as Kafka does
            logger.error("group %s is dead, but its tombstone was not written: %s", group_id, exc)
        self._transition(group, S.DEAD)
        del self._groups[group_id]
        self.offsets.forget(group_id)

    def _subscribed_topics(self, group: ClassicGroup) -> set[str]:
        topics: set[str] = set()
        protocol = group.protocol_name or ""
        for m in group.members.values():
            topics |= subscription_topics(m.metadata(protocol))
        return topics

    def expire_offsets(self) -> None:
        """Drop offsets older than offsets.retention.minutes (KIP-211 rules); empty groups die."""
        now = self._now()
        retention = self.config.offsets_retention_ms
        for group_id, group in list(self._groups.items()):
            stored = self.offsets.of(group_id)
            expired: list[TopicPartition] = []
            # GroupMetadata.removeExpiredOffsets: an offset with a commit in flight does
            # not expire.
            pending = self.offsets.pending_partitions(group_id)
            if group.state is S.EMPTY:
                # KIP-211: for a group that used group management the clock starts when
                # it became empty; a standalone group's offsets age from their commit.
                for tp, om in stored.items():
                    if group.protocol_type:
                        base = group.state_timestamp_ms
                        if base is None:
                            base = om.commit_timestamp
                    else:
                        base = om.commit_timestamp
                    if is_expired(om, base, retention, now):
                        expired.append(tp)
            elif group.state is S.STABLE and group.protocol_type == "consumer":
                expired = self.offsets.unsubscribed_expired(
                    group_id, self._subscribed_topics(group), retention, now
                )
            expired = [tp for tp in expired if tp not in pending]
            # GroupMetadataManager.cleanupGroupMetadata: an Empty group dies only once it
            # has no offsets left (GroupMetadata.hasOffsets): none committed, none in
            # flight and none staged by a transaction still open.
            dies = (
                group.state is S.EMPTY
                and len(expired) == len(stored)
                and not pending
                and not self.pending_txn_partitions(group_id)
            )
            if not expired and not dies:
                continue
            # A dead group's tombstone goes in the same batch as its offsets'.
            extra = [GroupRecord(group_id, None)] if dies else []
            if not self.offsets.drop(group_id, expired, extra):
                continue
            if dies:
                self._transition(group, S.DEAD)
                del self._groups[group_id]
                self.offsets.forget(group_id)
        for group_id, consumer_group in list(self._consumer_groups.items()):
            if group_id in self._consumer_writes:
                continue  # its state may still be undone: the next check
            # OffsetMetadataManager.cleanupExpiredOffsets: an offset an open transaction
            # staged a new one for does not expire, and a group with offsets is not
            # deleted while such a transaction is open.
            staged = self.pending_txn_partitions(group_id)
            had_offsets = bool(self.offsets.of(group_id))
            expired = [
                tp
                for tp in self.offsets.unsubscribed_expired(
                    group_id, consumer_group.all_subscribed_topics(), retention, now
                )
                if tp not in staged
            ]
            if expired and not self.offsets.drop(group_id, expired):
                continue  # tried again at the next check
            # Kafka's GroupCoordinatorShard.cleanupGroupMetadata: an empty group none of
            # whose offsets remain is deleted (maybeDeleteGroup), whether or not this
            # check expired any: one that never committed goes too (Kafka looks at open
            # transactions only for a group with committed offsets). A commit in flight
            # counts as an offset (Kafka's runtime sees uncommitted writes).
            if (
                not consumer_group.members
                and not self.offsets.of(group_id)
                and not self.offsets.pending_partitions(group_id)
                and not (had_offsets and staged)
            ):
                with contextlib.suppress(Exception):  # kept; the next check retries
                    self._drop_consumer_group(group_id)

    def delete_topic_offsets(self, topics: Iterable[str]) -> None:
        """Forget every group's offsets for deleted topics (Kafka's cleanupGroupMetadata),
        so a topic re-created under the same name is not read from stale positions."""
        gone = set(topics)
        for group_id in dict.fromkeys([*self.offsets.group_ids(), *self._groups]):
            # GroupMetadata.removeOffsets (OffsetMetadataManager.onPartitionsDeleted for
            # KIP-848 groups): what open transactions staged for the deleted partitions
            # goes too, or their commit would bring it back.
            staged = [tp for tp in self.pending_txn_partitions(group_id) if tp[0] in gone]
            if staged:
                self.discard_txn_offsets(group_id, staged)
            stored = self.offsets.of(group_id)
            doomed = [tp for tp in stored if tp[0] in gone]
            if not doomed:
                continue
            group = self._groups.get(group_id)
            # cleanupGroupMetadata: an Empty group dies once it has no offsets left
            # (GroupMetadata.hasOffsets: none committed, in flight or staged).
            dies = (
                group is not None
                and group.state is S.EMPTY
                and len(doomed) == len(stored)
                and not self.offsets.pending_partitions(group_id)
                and not self.pending_txn_partitions(group_id)
            )
            # The group's tombstone goes in the same batch; if the write fails the offsets
            # stay and a later delete retries.
            if not self.offsets.drop(
                group_id, doomed, [GroupRecord(group_id, None)] if dies else []
            ):
                continue
            if dies and group is not None:
                self._transition(group, S.DEAD)
                del self._groups[group_id]
                self.offsets.forget(group_id)

    # ------------------------------------------------------------------ admin

    def describe_group(self, group_id: str) -> DescribedGroup:
        """Handle DescribeGroups for one group (unknown groups are reported Dead)."""
        consumer_group = self._committed_view(group_id)
        if consumer_group is not None:
            # The classic API sees a KIP-848 group's members, without protocol metadata.
            return DescribedGroup(
                ErrorCode.NONE,
                group_id,
                consumer_group.state.value,
                "consumer",
                "",
                [
                    DescribedMember(
                        m.member_id, m.instance_id, m.client_id, m.client_host, b"", b""
                    )
                    for m in consumer_group.members.values()
                ],
            )
        group = self._groups.get(group_id) or self._converting(group_id)
        if group is None:
            return DescribedGroup(ErrorCode.NONE, group_id, S.DEAD.value, "", "", [])
        stable = group.state is S.STABLE
        protocol = group.protocol_name or ""
        # Kafka shows member metadata and the protocol only for a Stable group.
        members = [
            DescribedMember(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                metadata=m.metadata(protocol) if stable else b"",
                assignment=m.assignment if stable else b"",
            )
            for m in group.members.values()
        ]
        return DescribedGroup(
            ErrorCode.NONE,
            group_id,
            group.state.value,
            group.protocol_type or "",
            protocol if stable else "",
            members,
        )

    def list_groups(self) -> list[tuple[str, str, str, str]]:
        """(group id, protocol type, state, type "classic"/"consumer") of every live group."""
        classic = [*self._groups.values()]
        classic += [g for g in map(self._converting, self._consumer_writes) if g is not None]
        groups = [
            (g.group_id, g.protocol_type or "", g.state.value, "classic")
            for g in classic
            if g.state is not S.DEAD
        ]
        views = (
            self._committed_view(g) for g in {**self._consumer_groups, **self._consumer_writes}
        )
        groups += [
            (c.group_id, "consumer", c.state.value, "consumer") for c in views if c is not None
        ]
        return groups

    def consumer_group(self, group_id: str) -> ConsumerGroup | None:
        """The KIP-848 group with this id, if there is one, as reads see it: committed
        (see ``_committed_view``)."""
        return self._committed_view(group_id)

    def delete_groups(self, group_ids: list[str]) -> dict[str, int]:
        """Handle DeleteGroups: only empty groups may go (NON_EMPTY_GROUP otherwise); with
        no replication to wait for (see ``prepare_delete_groups``)."""
        result, writes = self.prepare_delete_groups(group_ids)
        for write in writes:
            self.complete_consumer_write(write, ErrorCode.NONE)
        return result

    def prepare_delete_groups(
        self, group_ids: list[str]
    ) -> tuple[dict[str, int], list[ConsumerGroupWrite]]:
        """DeleteGroups up to the write: each group's code, and the deletions of KIP-848
        groups, which the caller waits for and settles with ``complete_consumer_write``
        (a deletion that is not replicated is answered its error, and the group and its
        offsets come back). Kafka's GroupCoordinatorService.deleteGroups answers once
        the tombstones are committed; a classic group's tombstones are not waited for
        (the old coordinator's cleanupGroupMetadata appends them with acks=0)."""
        result: dict[str, int] = {}
        writes: list[ConsumerGroupWrite] = []
        if self.unloaded:
            # GroupCoordinator.validateGroupStatus: not the groups' coordinator any more.
            return dict.fromkeys(group_ids, ErrorCode.NOT_COORDINATOR), writes
        for group_id in group_ids:
            if group_id in self._consumer_writes:
                # Callers wait for the write in flight first; retried without a lookup.
                result[group_id] = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
                continue
            consumer_group = self._consumer_groups.get(group_id)
            if consumer_group is not None:
                if consumer_group.members:
                    result[group_id] = ErrorCode.NON_EMPTY_GROUP
                    continue
                # OffsetMetadataManager.deleteAllOffsets tombstones every offset the
                # group has, a commit not yet replicated included (the runtime applied
                # it), and every partition open transactions staged one for: those
                # tombstones remove the staged offsets when the log is replayed
                # (OffsetsTopicStore.load), so their commit does not bring them back.
                tombstoned = [*self.offsets.of(group_id)]
                tombstoned += self.offsets.pending_partitions(group_id) - set(tombstoned)
                tombstoned += sorted(self.pending_txn_partitions(group_id) - set(tombstoned))
                tombstones: list[OffsetRecord | GroupRecord] = [
                    OffsetRecord(group_id, t, p, None) for t, p in tombstoned
                ]
                # The offsets' and the group's tombstones go in one batch; a failed append
                # is answered as Kafka's deleteGroups write (handleOperationException).
                try:
                    self._drop_consumer_group(group_id, tombstones, answered=True)
                except Exception as exc:  # noqa: BLE001 - any store failure is answered
                    result[group_id] = operation_error_code(exc)
                    continue
                # Until the tombstones are committed the offsets, staged ones included,
                # are set aside rather than forgotten: the runtime reverts a write that
                # fails to the state it found (see complete_consumer_write).
                self.offsets.set_aside(group_id)
                write = ConsumerGroupWrite(
                    group_id,
                    None,
                    tombstoned=tombstoned,
                    staged=self.set_aside_txn_offsets(group_id),
                )
                self._consumer_writes[group_id] = write
                writes.append(write)
                result[group_id] = ErrorCode.NONE
                continue
            group = self._groups.get(group_id)
            if group is None or group.state is S.DEAD:
                result[group_id] = ErrorCode.GROUP_ID_NOT_FOUND
            elif group.state is not S.EMPTY:
                result[group_id] = ErrorCode.NON_EMPTY_GROUP
            else:
                records: list[OffsetRecord | GroupRecord] = [
                    OffsetRecord(group_id, t, p, None) for t, p in self.offsets.of(group_id)
                ]
                records.append(GroupRecord(group_id, None))
                # GroupCoordinator.handleDeleteGroups makes the group Dead and drops its
                # offsets before GroupMetadataManager.cleanupGroupMetadata appends the
                # tombstones, with acks=0 and a failed append only logged ("even if the
                # tombstone is lost, it will be appended again"): the deletion is NONE
                # either way, and a coordinator loaded from the log has the group again.
                try:
                    self._write(group_id, records)
                except Exception as exc:  # noqa: BLE001 - logged, as Kafka does
                    logger.error(
                        "group %s is deleted, but its tombstones were not written: %s",
                        group_id,
                        exc,
                    )
                self._transition(group, S.DEAD)
                del self._groups[group_id]
                self.offsets.forget(group_id)
                # Deleted even with offsets staged by an open transaction (Kafka checks
                # only that the group is Empty); they go with it, as a completed
                # transaction finds no group to add them to (handleTxnCompletion).
                self.discard_txn_offsets(group_id, None)
                result[group_id] = ErrorCode.NONE
        return result, writes

    # ------------------------------------------------------------------ replay

    def replay(self, records: Iterable[OffsetRecord | GroupRecord | ConsumerGroupRecord]) -> None:
        """Rebuild state from ``__consumer_offsets`` records, oldest first (later wins)."""
        now = self._now()
        snapshots: dict[str, GroupSnapshot | None] = {}
        images: dict[str, ConsumerGroupImage | None] = {}
        for rec in records:
            if isinstance(rec, OffsetRecord):
                self.offsets.replay(rec)
            elif isinstance(rec, GroupRecord):
                snapshots[rec.group_id] = rec.value
            else:
                _replay_consumer_record(images, rec)
        for group_id, image in images.items():
            if image is None:
                self._consumer_groups.pop(group_id, None)
                self._consumer_images.pop(group_id, None)
                self._consumer_committed.pop(group_id, None)
                continue
            # KIP-848 members resume with their id and epoch; sessions restart now.
            self._consumer_groups[group_id] = self._restore_consumer_group(group_id, image)
            self._consumer_images[group_id] = self._consumer_groups[group_id].image()
            self._consumer_committed[group_id] = self._consumer_images[group_id]
        for group_id, snap in snapshots.items():
            if snap is None or group_id in self._consumer_groups:
                self._groups.pop(group_id, None)
                continue
            # Kafka loads a group with members as Stable and an empty one as Empty.
            group = ClassicGroup(group_id, state=S.STABLE if snap.members else S.EMPTY)
            group.generation_id = snap.generation
            group.protocol_type = snap.protocol_type or None
            group.protocol_name = snap.protocol
            group.leader_id = snap.leader
            group.state_timestamp_ms = snap.state_timestamp if snap.state_timestamp >= 0 else None
            for ms in snap.members:
                member = ClassicMember(
                    member_id=ms.member_id,
                    group_instance_id=ms.group_instance_id,
                    client_id=ms.client_id,
                    client_host=ms.client_host,
                    session_timeout_ms=ms.session_timeout_ms,
                    rebalance_timeout_ms=ms.rebalance_timeout_ms,
                    protocol_type=snap.protocol_type,
                    protocols=[(snap.protocol or "", ms.subscription)],
                    assignment=ms.assignment,
                    # Loaded members get a fresh session: they must heartbeat to stay.
                    heartbeat_deadline_ms=now + ms.session_timeout_ms,
                )
                group.members[ms.member_id] = member
                if ms.group_instance_id is not None:
                    group.static_members[ms.group_instance_id] = ms.member_id
            self._groups[group_id] = group
        for group_id in self.offsets.group_ids():
            stored = self.offsets.of(group_id)
            # Offsets alone make an (empty) classic group, unless a KIP-848 group holds the
            # id: TxnOffsetCommit results are applied through replay on a live coordinator.
            if group_id not in self._groups and group_id not in self._consumer_groups and stored:
                self._groups[group_id] = ClassicGroup(group_id)
        self.offsets.prune()


def _replay_consumer_record(
    images: dict[str, ConsumerGroupImage | None], rec: ConsumerGroupRecord
) -> None:
    """Apply one KIP-848 record to the replayed images (Kafka's GroupMetadataManager.replay)."""
    image = images.get(rec.group_id)
    if isinstance(rec, ConsumerGroupEpochRecord) and rec.epoch is None:
        images[rec.group_id] = None  # the group was deleted
        return
    if image is None:
        image = images[rec.group_id] = ConsumerGroupImage()
    if isinstance(rec, ConsumerGroupEpochRecord):
        image.epoch = rec.epoch if rec.epoch is not None else 0
    elif isinstance(rec, ConsumerGroupTopicsRecord):
        image.topics = rec.topics
    elif isinstance(rec, TargetEpochRecord):
        image.assignment_epoch = rec.epoch
    elif isinstance(rec, MemberMetadataRecord):
        if rec.value is None:
            image.members.pop(rec.member_id, None)
        else:
            image.members[rec.member_id] = rec.value
    elif isinstance(rec, TargetAssignmentRecord):
        if rec.value is None:
            image.target.pop(rec.member_id, None)
        else:
            image.target[rec.member_id] = rec.value
    elif rec.value is None:
        image.current.pop(rec.member_id, None)
    else:
        image.current[rec.member_id] = rec.value
