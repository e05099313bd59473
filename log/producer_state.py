"""Idempotent-producer state: the last batches of each producer id (KIP-98).

Kafka's ProducerStateManager keeps, per producer id, the epoch and the
metadata of the last 5 batches (the most a producer may have in flight with
max.in.flight.requests.per.connection <= 5), which is enough to recognise a
retried batch as a duplicate and answer with its original offsets. The log
rebuilds it on open from a snapshot plus the batches after it (or from a scan
of every batch when there is no snapshot).

Transactions (KIP-98): an entry also remembers the first offset of its open
transaction (``current_txn_first_offset``); the smallest of those is the
partition's first unstable offset, which bounds the last stable offset (LSO)
that read_committed consumers may read up to. A COMMIT/ABORT control batch
closes the producer's transaction and yields a ``CompletedTxn`` (aborted ones
go to the transaction index, see log.txnindex).

``check_batch`` is Kafka's ProducerAppendInfo epoch/sequence validation as of
Kafka 2.5+ (KIP-360): an unknown producer id is accepted at any sequence
(UNKNOWN_PRODUCER_ID is no longer returned), a retried batch is answered with
its original offsets, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER and an older epoch
INVALID_PRODUCER_EPOCH.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.log.scan import BatchSpan
    from kbroker.wire.records import BatchHeader

# Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN.
NUM_BATCHES_TO_RETAIN = 5
INT32_MAX = 2**31 - 1
NO_PRODUCER_EPOCH = -1
# Control record key type (ControlRecordType): ABORT 0, COMMIT 1.
CONTROL_ABORT = 0
CONTROL_COMMIT = 1
# What end_txn_marker answers for a batch that is not a marker: (control type, epoch).
NOT_A_MARKER = (-1, -1)


class ProducerStateError(Exception):
    """A batch the producer state rejects: Kafka's error code and message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction closed by a control batch (Kafka's CompletedTxn)."""

    producer_id: int
    first_offset: int
    last_offset: int  # offset of the control batch
    is_aborted: bool


def in_sequence(last_seq: int, next_seq: int) -> bool:
    """Kafka's ProducerStateEntry inSequence: next follows last, wrapping after int32 max."""
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


def control_type(batch: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """The ControlRecordType (0 abort, 1 commit) of the control batch at `pos`; -1 if unknown."""
    return end_txn_marker(batch, pos)[0]


def end_txn_marker(batch: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """(ControlRecordType, coordinator epoch) of the control batch at `pos`: Kafka's
    EndTransactionMarker, whose value is an int16 version then the int32 epoch of the
    transaction coordinator that wrote it. (-1, -1) when unknown; the epoch is -1 for a
    control record that is not a COMMIT/ABORT marker or has no value."""
    from kbroker.wire.records import iter_records

    for record in iter_records(batch, pos):
        key = record.key
        if key is None or len(key) < 4:
            return NOT_A_MARKER
        kind = int.from_bytes(key[2:4], "big", signed=True)
        value = record.value
        epoch = -1
        if kind in (CONTROL_ABORT, CONTROL_COMMIT) and value is not None and len(value) >= 6:
            epoch = int.from_bytes(value[2:6], "big", signed=True)
        return kind, epoch
    return NOT_A_MARKER


def last_sequence(base_sequence: int, last_offset_delta: int) -> int:
    """The batch's last sequence; sequences wrap to 0 after int32 max (DefaultRecordBatch.incrementSequence)."""
    if base_sequence > INT32_MAX - last_offset_delta:
        return base_sequence + last_offset_delta - INT32_MAX - 1
    return base_sequence + last_offset_delta


@dataclass(slots=True)
class BatchMetadata:
    """Sequence range and offsets of one appended batch."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerStateEntry:
    """What the log remembers about one producer id."""

    producer_id: int
    producer_epoch: int
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN)
    )
    last_timestamp: int = -1
    # First offset of the producer's open transaction, -1 when none.
    current_txn_first_offset: int = -1
    coordinator_epoch: int = -1

    @property
    def last_seq(self) -> int:
        """Last sequence written, -1 if none."""
        return self.batches[-1].last_seq if self.batches else -1

    @property
    def last_offset(self) -> int:
        """Last offset written by this producer, -1 if none."""
        return self.batches[-1].last_offset if self.batches else -1


class ProducerState:
    """Producer id -> ProducerStateEntry, with lookup/update as the produce path needs."""

    def __init__(self) -> None:
        self.entries: dict[int, ProducerStateEntry] = {}
        # producer id -> first offset of its open transaction (Kafka's ongoingTxns).
        self.ongoing: dict[int, int] = {}
        # When the broker last checked for expired producers (its clock, ms); None
        # before the first check. Kept here by the broker's produce path, which
        # checks every producer.id.expiration.check.interval.ms (remove_expired).
        self.expiry_checked_ms: int | None = None

    def first_unstable_offset(self) -> int | None:
        """First offset of the earliest open transaction, None when there is none."""
        return min(self.ongoing.values()) if self.ongoing else None

    def check_batch(
        self,
        producer_id: int,
        producer_epoch: int,
        first_seq: int,
        last_seq: int,
        *,
        is_transactional: bool = False,
    ) -> BatchMetadata | None:
        """Validate a client batch before it is appended: the duplicate it repeats, None if new.

        Raises ProducerStateError with Kafka's code (UnifiedLog.analyzeAndValidateProducerState
        then ProducerAppendInfo.checkProducerEpoch / checkSequence / appendDataBatch).
        """
        entry = self.entries.get(producer_id)
        if entry is None:
            # KIP-360 (Kafka 2.5+): a producer whose state expired or was never
            # seen may start at any sequence; UNKNOWN_PRODUCER_ID is not returned.
            return None
        if entry.producer_epoch == producer_epoch:
            for b in entry.batches:
                if b.first_seq == first_seq and b.last_seq == last_seq:
                    return b
        if producer_epoch < entry.producer_epoch:
            raise ProducerStateError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"Epoch of producer {producer_id} is {producer_epoch}, which is smaller than "
                f"the last seen epoch {entry.producer_epoch}",
            )
        if producer_epoch != entry.producer_epoch:
            if first_seq != 0 and entry.producer_epoch != NO_PRODUCER_EPOCH:
                raise ProducerStateError(
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"Invalid sequence number for new epoch of producer {producer_id} at "
                    f"epoch {producer_epoch} (request epoch), {first_seq} (seq. number), "
                    f"{entry.producer_epoch} (current producer epoch)",
                )
        elif entry.producer_epoch != NO_PRODUCER_EPOCH and not in_sequence(
            entry.last_seq, first_seq
        ):
            raise ProducerStateError(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"Out of order sequence number for producer {producer_id} at offset "
                f"{entry.last_offset}: {first_seq} (incoming seq. number), "
                f"{entry.last_seq} (current end sequence number)",
            )
        if not is_transactional and entry.current_txn_first_offset >= 0:
            raise ProducerStateError(
                ErrorCode.INVALID_TXN_STATE,
                f"Expected transactional write from producer {producer_id} at offset "
                f"{entry.last_offset} in partition",
            )
        return None

    def check_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int) -> None:
        """Validate a COMMIT/ABORT marker a transaction coordinator asks this leader to
        write, before it is appended (ProducerAppendInfo.appendEndTxnMarker for an append
        of origin COORDINATOR: checkProducerEpoch, then checkCoordinatorEpoch).

        Raises ProducerStateError INVALID_PRODUCER_EPOCH for an older producer epoch than
        the log has seen, TRANSACTION_COORDINATOR_FENCED for an older coordinator epoch
        than the producer's last marker carried: it comes from a coordinator whose
        ``__transaction_state`` partition has a newer leader, which may already have
        ended this producer's transaction otherwise (a zombie coordinator).
        """
        entry = self.entries.get(producer_id)
        if entry is None:
            return
        if producer_epoch < entry.producer_epoch:
            raise ProducerStateError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"Epoch of producer {producer_id} is {producer_epoch}, which is smaller than "
                f"the last seen epoch {entry.producer_epoch}",
            )
        if coordinator_epoch < entry.coordinator_epoch:
            raise ProducerStateError(
                ErrorCode.TRANSACTION_COORDINATOR_FENCED,
                f"Invalid coordinator epoch for producer {producer_id}: {coordinator_epoch} "
                f"(zombie), {entry.coordinator_epoch} (current)",
            )

    def remove_expired(self, now_ms: int, expiration_ms: int) -> int:
        """Drop producers idle for expiration_ms with no open transaction (producer.id.expiration.ms)."""
        gone = [
            pid
            for pid, e in self.entries.items()
            if e.current_txn_first_offset < 0 and now_ms - e.last_timestamp >= expiration_ms
        ]
        for pid in gone:
            del self.entries[pid]
        return len(gone)

    def lookup(self, producer_id: int) -> ProducerStateEntry | None:
        """The entry for `producer_id`, or None."""
        return self.entries.get(producer_id)

    def find_duplicate(
        self, producer_id: int, producer_epoch: int, first_seq: int, last_seq: int
    ) -> BatchMetadata | None:
        """The retained batch with exactly this epoch and sequence range (a retry), if any."""
        entry = self.entries.get(producer_id)
        if entry is None or entry.producer_epoch != producer_epoch:
            return None
        for b in entry.batches:
            if b.first_seq == first_seq and b.last_seq == last_seq:
                return b
        return None

    def update(
        self,
        producer_id: int,
        producer_epoch: int,
        first_seq: int,
        last_seq: int,
        first_offset: int,
        last_offset: int,
        timestamp: int,
    ) -> None:
        """Record an appended data batch; a new epoch forgets the old epoch's batches."""
        entry = self.entries.get(producer_id)
        if entry is None:
            entry = self.entries[producer_id] = ProducerStateEntry(producer_id, producer_epoch)
        elif producer_epoch != entry.producer_epoch:
            entry.producer_epoch = producer_epoch
            entry.batches.clear()
        if first_seq >= 0:
            entry.batches.append(
                BatchMetadata(first_seq, last_seq, first_offset, last_offset, timestamp)
            )
        entry.last_timestamp = max(entry.last_timestamp, timestamp)

    def update_from_batch(
        self,
        h: BatchHeader | BatchSpan,
        max_timestamp: int,
        base_offset: int | None = None,
        *,
        marker: int = -1,
        coordinator_epoch: int = -1,
        is_transactional: bool | None = None,
    ) -> CompletedTxn | None:
        """Apply one appended batch header; `base_offset` overrides the header's (assigned at append).

        `marker` and `coordinator_epoch` are the ControlRecordType and coordinator epoch
        of a control batch (see end_txn_marker); the transaction it closes is returned.
        """
        first_offset = h.base_offset if base_offset is None else base_offset
        if h.producer_id < 0:
            return None
        pid = h.producer_id
        if h.is_control:
            # Markers carry no sequence; they fence older epochs and end the
            # producer's transaction (ProducerAppendInfo.appendEndTxnMarker).
            entry = self.entries.get(pid)
            if entry is None or h.producer_epoch > entry.producer_epoch:
                self.update(pid, h.producer_epoch, -1, -1, -1, -1, max_timestamp)
                entry = self.entries[pid]
            entry.last_timestamp = max(entry.last_timestamp, max_timestamp)
            if coordinator_epoch >= 0:
                # The epoch of the coordinator that wrote the producer's last marker, as
                # ProducerStateEntry.update keeps it: taken as written (a follower's copy
                # follows its leader's log, which checked it with check_marker).
                entry.coordinator_epoch = coordinator_epoch
            completed = None
            if entry.current_txn_first_offset >= 0:
                completed = CompletedTxn(
                    pid, entry.current_txn_first_offset, first_offset, marker == CONTROL_ABORT
                )
                entry.current_txn_first_offset = -1
                self.ongoing.pop(pid, None)
            return completed
        if is_transactional is None:
            is_transactional = bool(getattr(h, "is_transactional", False))
        first = h.base_sequence
        last = last_sequence(first, h.last_offset_delta) if first >= 0 else -1
        self.update(
            pid,
            h.producer_epoch,
            first,
            last,
            first_offset,
            first_offset + h.last_offset_delta,
            max_timestamp,
        )
        if is_transactional:
            entry = self.entries[pid]
            if entry.current_txn_first_offset < 0:
                entry.current_txn_first_offset = first_offset
                self.ongoing[pid] = first_offset
        return None

    def truncate(self, offset: int) -> None:
        """Forget batches at or beyond `offset` (the log was truncated there)."""
        for pid in list(self.entries):
            entry = self.entries[pid]
            kept = [b for b in entry.batches if b.last_offset < offset]
            if entry.current_txn_first_offset >= offset:
                entry.current_txn_first_offset = -1
                self.ongoing.pop(pid, None)
            if len(kept) != len(entry.batches):
                entry.batches.clear()
                entry.batches.extend(kept)
                if not kept and entry.current_txn_first_offset < 0:
                    del self.entries[pid]

    def clear(self) -> None:
        """Forget everything."""
        self.entries.clear()
        self.ongoing.clear()

    # -- snapshots (optional in Kafka's sense: a cache of a log scan) -----------------
    def to_json(self) -> bytes:
        """Serialize for a snapshot file."""
        return json.dumps(
            [
                [
                    e.producer_id,
                    e.producer_epoch,
                    e.last_timestamp,
                    [
                        [b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp]
                        for b in e.batches
                    ],
                    e.current_txn_first_offset,
                    e.coordinator_epoch,
                ]
                for e in self.entries.values()
            ]
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ProducerState:
        """Inverse of to_json; ValueError on a damaged snapshot."""
        state = cls()
        for item in json.loads(data):
            pid, epoch, last_ts, batches = item[:4]
            entry = ProducerStateEntry(int(pid), int(epoch), last_timestamp=int(last_ts))
            if len(item) >= 6:  # older snapshots lack the transaction fields
                entry.current_txn_first_offset = int(item[4])
                entry.coordinator_epoch = int(item[5])
            for b in batches:
                entry.batches.append(BatchMetadata(*(int(x) for x in b)))
            state.entries[entry.producer_id] = entry
            if entry.current_txn_first_offset >= 0:
                state.ongoing[entry.producer_id] = entry.current_txn_first_offset
        return state


def snapshot_path(directory: Path, offset: int) -> Path:
    """Kafka's name: `<offset, 20 digits>.snapshot`; it covers batches below `offset`."""
    return directory / f"{offset:020d}.snapshot"


def list_snapshots(directory: Path, *, names: list[str] | None = None) -> list[int]:
    """Offsets of the snapshot files present (or among `names`, a listing of it), ascending."""
    out = []
    for name in os.listdir(directory) if names is None else names:
        if name.endswith(".snapshot") and name[:-9].isdigit():
            out.append(int(name[:-9]))
    return sorted(out)
