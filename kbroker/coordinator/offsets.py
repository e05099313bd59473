"""Committed offsets: what each group has committed, their records, and when they expire.

Kafka keeps offsets apart from group membership (OffsetMetadataManager beside
GroupMetadataManager), and so does kbroker: ``OffsetStore`` holds every group's
committed offsets and writes their ``__consumer_offsets`` records (through the
coordinator's writer, so a group's offsets and its own records share a partition and,
when they must, one batch). Whether a member may commit, and when a group dies with its
offsets, is the group's business: ``GroupCoordinator`` decides, then calls in here.

A commit whose write must still reach the ISR (cluster mode) is *pending*, as in Kafka's
GroupMetadata.pendingOffsetCommits: ``store_pending`` writes it and holds it apart, so
OffsetFetch does not show it (and with require_stable, KIP-447, answers the partition
UNSTABLE_OFFSET_COMMIT); ``complete`` then makes it the committed offset once the write
is replicated (onOffsetCommitAppend), or drops it when the wait failed
(failPendingOffsetWrite): the client was told the commit failed and retries.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from kbroker.errors import KafkaApiError
from kbroker.replication.leader_writes import COORDINATOR_APPEND_ERRORS, coordinator_error
from kbroker.wire.errors import ErrorCode

logger = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
# (group id, records) -> appended durably to the group's partition; raises on failure.
Writer = Callable[[str, Sequence[Any]], None]


def append_error_code(exc: BaseException, *, default: ErrorCode, offsets: bool) -> ErrorCode:
    """What a client is told when a write to ``__consumer_offsets`` failed with ``exc``.

    Kafka's GroupMetadataManager turns the append's error into a coordinator error
    (maybeConvertOffsetCommitError for offsets, the same table in storeGroup for a
    group): a storage error or a lost leadership means "find the coordinator again"
    (NOT_COORDINATOR), so the client retries elsewhere or later instead of failing.
    ``default`` answers anything else (a bug, not a Kafka error).
    """
    if not isinstance(exc, KafkaApiError):
        return default
    return write_error_code(exc.code, offsets=offsets)


def operation_error_code(exc: BaseException) -> ErrorCode:
    """What a KIP-848 group's operation answers when the append of its records failed
    with ``exc``. Kafka's new group coordinator runs these writes through its
    CoordinatorRuntime, where a failed append throws the partition's error
    (CoordinatorPartitionWriter.append) and CoordinatorOperationExceptionHelper
    .handleOperationException maps it: a storage error or a lost leadership is
    NOT_COORDINATOR (the client finds the coordinator again), too few replicas
    COORDINATOR_NOT_AVAILABLE, a batch too large UNKNOWN_SERVER_ERROR, any other Kafka
    error itself, and an unexpected exception (not a Kafka error) UNKNOWN_SERVER_ERROR."""
    if not isinstance(exc, KafkaApiError):
        return ErrorCode.UNKNOWN_SERVER_ERROR
    if exc.code in (
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.RECORD_LIST_TOO_LARGE,
        ErrorCode.INVALID_FETCH_SIZE,
    ):
        return ErrorCode.UNKNOWN_SERVER_ERROR
    return coordinator_error(exc.code)


def write_error_code(code: ErrorCode, *, offsets: bool) -> ErrorCode:
    """``append_error_code`` for an error code: that of the append itself, or of the
    acks=all wait for its replication (``replication.leader_writes.wait_replicated``).
    For a group's record this is GroupMetadataManager.storeGroup's table, where an
    acks timeout is REBALANCE_IN_PROGRESS (the member rejoins at the same coordinator)
    and a shrunk ISR COORDINATOR_NOT_AVAILABLE (it looks for the coordinator again)."""
    if code == ErrorCode.NONE:
        return ErrorCode.NONE
    if code in COORDINATOR_APPEND_ERRORS:
        return COORDINATOR_APPEND_ERRORS[code]
    if code == ErrorCode.REQUEST_TIMED_OUT and not offsets:
        return ErrorCode.REBALANCE_IN_PROGRESS
    if code in (
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.RECORD_LIST_TOO_LARGE,
        ErrorCode.INVALID_FETCH_SIZE,
    ):
        return ErrorCode.INVALID_COMMIT_OFFSET_SIZE if offsets else ErrorCode.UNKNOWN_SERVER_ERROR
    return ErrorCode.UNKNOWN_SERVER_ERROR


class OffsetLimits(Protocol):
    """The setting the store reads (``CoordinatorConfig`` has it): offset.metadata.max.bytes."""

    offset_metadata_max_bytes: int


@dataclass(slots=True)
class OffsetAndMetadata:
    """One committed offset, as stored in an OffsetCommitValue record."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = 0
    expire_timestamp: int | None = None  # only from OffsetCommit v2-4 retention_time_ms


@dataclass(slots=True)
class OffsetRecord:
    """An OffsetCommitKey/Value pair; ``value`` None is a tombstone."""

    group_id: str
    topic: str
    partition: int
    value: OffsetAndMetadata | None


@dataclass(slots=True)
class PendingCommit:
    """A commit written but not yet known to be replicated (``OffsetStore.store_pending``)."""

    group_id: str
    # Order of the writes: a commit completing late never replaces a newer one (Kafka
    # compares the records' log offsets, CommitRecordMetadataAndOffset.olderThan).
    sequence: int
    offsets: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)


@dataclass(slots=True)
class _SetAside:
    """A group's offsets a deletion in flight took away (``OffsetStore.set_aside``)."""

    # Commits of a lower sequence were written before the deletion: theirs.
    sequence: int
    offsets: dict[TopicPartition, OffsetAndMetadata]
    pending: dict[TopicPartition, tuple[int, OffsetAndMetadata]]
    committed_by: dict[TopicPartition, int]


def _complete(
    pending: dict[TopicPartition, tuple[int, OffsetAndMetadata]],
    committed_by: dict[TopicPartition, int],
    commit: PendingCommit,
    replicated: bool,
) -> dict[TopicPartition, OffsetAndMetadata]:
    """``OffsetStore.complete`` on one group's commits in flight: the offsets that
    become committed."""
    applied: dict[TopicPartition, OffsetAndMetadata] = {}
    for tp, om in commit.offsets.items():
        staged = pending.get(tp)
        if staged is None:
            continue  # deleted meanwhile (OffsetDelete, the group's removal)
        if replicated and committed_by.get(tp, 0) < commit.sequence:
            applied[tp] = om
            committed_by[tp] = commit.sequence
        if staged[0] == commit.sequence:
            del pending[tp]  # else a newer commit of the partition is still in flight
    return applied


_Value = TypeVar("_Value")


def _merge(
    live: dict[str, dict[TopicPartition, _Value]],
    group_id: str,
    kept: dict[TopicPartition, _Value],
) -> None:
    """Put ``kept`` back into the group's entry of ``live``; what ``live`` has wins."""
    if kept:
        merged = live.setdefault(group_id, {})
        for tp, value in kept.items():
            merged.setdefault(tp, value)


class OffsetStore:
    """Every group's committed offsets, kept in step with their records."""

    def __init__(self, *, write: Writer, config: OffsetLimits) -> None:
        self._write = write
        self._config = config
        self._offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        # group -> partition -> (sequence, offset) of the latest commit still in flight.
        self._pending: dict[str, dict[TopicPartition, tuple[int, OffsetAndMetadata]]] = {}
        # group -> partition -> sequence of the write the committed offset came from.
        self._committed_by: dict[str, dict[TopicPartition, int]] = {}
        # group -> its offsets a deletion still in flight set aside (``set_aside``).
        self._aside: dict[str, _SetAside] = {}
        self._sequence = itertools.count(1)

    def of(self, group_id: str) -> dict[TopicPartition, OffsetAndMetadata]:
        """The group's committed offsets (the live mapping; empty if it has none)."""
        return self._offsets.get(group_id, {})

    def group_ids(self) -> list[str]:
        """Every group with offsets (committed or replayed)."""
        return list(self._offsets)

    def forget(self, group_id: str) -> None:
        """Drop the group's offsets from memory (their tombstones are already written)."""
        self._offsets.pop(group_id, None)
        self._pending.pop(group_id, None)
        self._committed_by.pop(group_id, None)

    def set_aside(self, group_id: str) -> None:
        """Drop the group's offsets, committed and in flight, from what is served, but
        keep them aside until ``drop_aside`` (the deletion whose tombstones were written
        is committed) or ``restore_aside`` (it is not: they come back). Meanwhile a
        commit that was in flight completes into what is set aside, as it would have
        without the deletion (Kafka's runtime reverts a failed write's timeline
        snapshot, keeping the state the write found)."""
        self._aside[group_id] = _SetAside(
            # Every commit written so far, in flight or not, belongs to what is set aside.
            sequence=next(self._sequence),
            offsets=self._offsets.pop(group_id, {}),
            pending=self._pending.pop(group_id, {}),
            committed_by=self._committed_by.pop(group_id, {}),
        )

    def drop_aside(self, group_id: str) -> None:
        """Forget what ``set_aside`` kept: the deletion is committed."""
        self._aside.pop(group_id, None)

    def restore_aside(self, group_id: str) -> None:
        """Put back what ``set_aside`` kept: the deletion is undone. A partition committed
        (or written) again since keeps its newer offset."""
        aside = self._aside.pop(group_id, None)
        if aside is None:
            return
        _merge(self._offsets, group_id, aside.offsets)
        _merge(self._pending, group_id, aside.pending)
        _merge(self._committed_by, group_id, aside.committed_by)

    def store(
        self, group_id: str, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, int]:
        """Write and keep an accepted commit (durable once written: no replication to
        wait for); the error code of each partition."""
        result, commit = self.store_pending(group_id, offsets)
        if commit is not None:
            self.complete(commit, replicated=True)
        return result

    def store_pending(
        self, group_id: str, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> tuple[dict[TopicPartition, int], PendingCommit | None]:
        """Write an accepted commit and hold it pending until ``complete``; the error code
        of each partition, and the pending commit (None if nothing was written)."""
        result: dict[TopicPartition, int] = {}
        accepted: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, om in offsets.items():
            if len(om.metadata.encode()) > self._config.offset_metadata_max_bytes:
                result[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            else:
                accepted[tp] = om
        records = [OffsetRecord(group_id, tp[0], tp[1], om) for tp, om in accepted.items()]
        try:
            self._write(group_id, records)
        except Exception as exc:
            code = append_error_code(exc, default=ErrorCode.UNKNOWN_SERVER_ERROR, offsets=True)
            for tp in accepted:
                result[tp] = code
            return {tp: result[tp] for tp in offsets}, None
        commit = PendingCommit(group_id, next(self._sequence), dict(accepted))
        pending = self._pending.setdefault(group_id, {})
        for tp, om in accepted.items():
            pending[tp] = (commit.sequence, om)
            result[tp] = ErrorCode.NONE
        return {tp: result[tp] for tp in offsets}, commit if accepted else None

    def complete(self, commit: PendingCommit, *, replicated: bool) -> None:
        """The commit's write is replicated (its offsets become the committed ones, unless
        a newer write already completed) or failed (dropped): Kafka's
        GroupMetadata.onOffsetCommitAppend / failPendingOffsetWrite."""
        group_id = commit.group_id
        aside = self._aside.get(group_id)
        if aside is not None and commit.sequence < aside.sequence:
            # Written before a deletion still in flight: it completes into what the
            # deletion set aside.
            aside.offsets.update(_complete(aside.pending, aside.committed_by, commit, replicated))
            return
        pending = self._pending.get(group_id, {})
        committed_by = self._committed_by.setdefault(group_id, {})
        applied = _complete(pending, committed_by, commit, replicated)
        if applied:
            self._offsets.setdefault(group_id, {}).update(applied)
        if not pending:
            self._pending.pop(group_id, None)

    def logged(self, group_id: str) -> dict[TopicPartition, OffsetAndMetadata]:
        """The offset the group's latest record of each partition holds: that of a commit
        in flight if it was written after the committed one."""
        latest = dict(self._offsets.get(group_id, {}))
        committed_by = self._committed_by.get(group_id, {})
        for tp, (sequence, om) in self._pending.get(group_id, {}).items():
            if sequence > committed_by.get(tp, 0):
                latest[tp] = om
        return latest

    def pending_partitions(self, group_id: str) -> set[TopicPartition]:
        """Partitions with a commit still waiting for its replication."""
        return set(self._pending.get(group_id, {}))

    def fetch(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """Committed offsets of a group (None = nothing committed); partitions None = all."""
        stored = self._offsets.get(group_id, {})
        if partitions is None:
            return dict(stored)
        return {tp: stored.get(tp) for tp in partitions}

    def delete(
        self,
        group_id: str,
        partitions: list[TopicPartition],
        subscribed: set[str],
        *,
        best_effort: bool,
    ) -> tuple[int, dict[TopicPartition, int]]:
        """OffsetDelete once the group allows it: partitions of ``subscribed`` topics stay
        (GROUP_SUBSCRIBED_TO_TOPIC); (group error, per-partition errors).

        How a failed append of the tombstones is answered depends on the coordinator
        Kafka runs the group on. ``best_effort`` (a classic group): the old coordinator's
        handleDeleteOffsets removes the offsets from memory, then cleanupGroupMetadata
        appends the tombstones with acks=0 and only logs a failure, so the deletion is
        answered NONE either way (a coordinator loaded from the log has the offsets
        again). Otherwise (a KIP-848 group) nothing is deleted and the failure is
        answered as the new coordinator's handleOperationException maps it."""
        result: dict[TopicPartition, int] = {}
        deleted: list[TopicPartition] = []
        stored = self._offsets.get(group_id, {})
        for tp in partitions:
            if tp[0] in subscribed:
                result[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
            else:
                result[tp] = ErrorCode.NONE
                if tp in stored:
                    deleted.append(tp)
        try:
            self._write(group_id, [OffsetRecord(group_id, t, p, None) for t, p in deleted])
        except Exception as exc:
            if not best_effort:
                return operation_error_code(exc), {}
            logger.error(
                "group %s: the tombstones of %d deleted offset(s) were not written: %s",
                group_id,
                len(deleted),
                exc,
            )
        for tp in deleted:
            del stored[tp]
        pending = self._pending.get(group_id, {})
        for tp in partitions:
            if result[tp] == ErrorCode.NONE:
                pending.pop(tp, None)  # GroupMetadata.removeOffsets drops pending ones too
        return ErrorCode.NONE, result

    def unsubscribed_expired(
        self, group_id: str, subscribed: set[str], retention: int, now: int
    ) -> list[TopicPartition]:
        """KIP-211: a live consumer group keeps the offsets of topics it still subscribes to;
        the others age from their commit."""
        return [
            tp
            for tp, om in self.of(group_id).items()
            if tp[0] not in subscribed and is_expired(om, om.commit_timestamp, retention, now)
        ]

    def drop(
        self, group_id: str, expired: Iterable[TopicPartition], extra: Sequence[Any] = ()
    ) -> bool:
        """Write tombstones for ``expired`` (and ``extra`` records) as one batch, then forget
        those offsets; False if the write failed (tried again at the next check)."""
        expired = list(expired)
        records: list[Any] = [OffsetRecord(group_id, t, p, None) for t, p in expired]
        records.extend(extra)
        try:
            self._write(group_id, records)
        except Exception:  # noqa: BLE001 - try again at the next check
            return False
        stored = self._offsets.get(group_id, {})
        for tp in expired:
            del stored[tp]
        return True

    def replay(self, rec: OffsetRecord) -> None:
        """Apply one OffsetCommit record (later records win; None is a tombstone)."""
        stored = self._offsets.setdefault(rec.group_id, {})
        tp = (rec.topic, rec.partition)
        # Newer than any commit in flight now (a transaction's offsets, published by
        # its COMMIT marker, are applied through here).
        self._committed_by.setdefault(rec.group_id, {})[tp] = next(self._sequence)
        if rec.value is None:
            stored.pop(tp, None)
        else:
            stored[tp] = rec.value

    def prune(self) -> None:
        """Forget groups whose offsets were all deleted (after a replay)."""
        for group_id in [g for g, s in self._offsets.items() if not s]:
            del self._offsets[group_id]


def is_expired(om: OffsetAndMetadata, base: int, retention: int, now: int) -> bool:
    """Whether ``om`` has expired: at its own expire timestamp (OffsetCommit v2-4
    retention_time_ms) if it has one, else ``retention`` after ``base``."""
    if om.expire_timestamp is not None and om.expire_timestamp >= 0:
        return now >= om.expire_timestamp
    return now >= base + retention
