"""Idempotent-producer state: the last batches of each producer id (KIP-98).

Kafka's ProducerStateManager keeps, per producer id, the epoch and the
metadata of the last 5 batches (the most a producer may have in flight with
max.in.flight.requests.per.connection <= 5), which is enough to recognise a
retried batch as a duplicate and answer with its original offsets. The log
rebuilds it on open from a snapshot plus the batches after it (or from a scan
of every batch when there is no snapshot).
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from log.scan import BatchSpan
    from wire.records import BatchHeader

# Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN.
NUM_BATCHES_TO_RETAIN = 5
INT32_MAX = 2**31 - 1


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
        self, h: BatchHeader | BatchSpan, max_timestamp: int, base_offset: int | None = None
    ) -> None:
        """Apply one appended batch header; `base_offset` overrides the header's (assigned at append)."""
        first_offset = h.base_offset if base_offset is None else base_offset
        if h.producer_id < 0:
            return
        if h.is_control:
            # Markers carry no sequence; they only fence older epochs (KIP-98).
            entry = self.entries.get(h.producer_id)
            if entry is None or h.producer_epoch > entry.producer_epoch:
                self.update(h.producer_id, h.producer_epoch, -1, -1, -1, -1, max_timestamp)
            return
        first = h.base_sequence
        last = last_sequence(first, h.last_offset_delta) if first >= 0 else -1
        self.update(
            h.producer_id,
            h.producer_epoch,
            first,
            last,
            first_offset,
            first_offset + h.last_offset_delta,
            max_timestamp,
        )

    def truncate(self, offset: int) -> None:
        """Forget batches at or beyond `offset` (the log was truncated there)."""
        for pid in list(self.entries):
            entry = self.entries[pid]
            kept = [b for b in entry.batches if b.last_offset < offset]
            if len(kept) != len(entry.batches):
                entry.batches.clear()
                entry.batches.extend(kept)
                if not kept:
                    del self.entries[pid]

    def clear(self) -> None:
        """Forget everything."""
        self.entries.clear()

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
                ]
                for e in self.entries.values()
            ]
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ProducerState:
        """Inverse of to_json; ValueError on a damaged snapshot."""
        state = cls()
        for pid, epoch, last_ts, batches in json.loads(data):
            entry = ProducerStateEntry(int(pid), int(epoch), last_timestamp=int(last_ts))
            for b in batches:
                entry.batches.append(BatchMetadata(*(int(x) for x in b)))
            state.entries[entry.producer_id] = entry
        return state


def snapshot_path(directory: Path, offset: int) -> Path:
    """Kafka's name: `<offset, 20 digits>.snapshot`; it covers batches below `offset`."""
    return directory / f"{offset:020d}.snapshot"


def list_snapshots(directory: Path) -> list[int]:
    """Offsets of the snapshot files present, ascending."""
    out = []
    for name in os.listdir(directory):
        if name.endswith(".snapshot") and name[:-9].isdigit():
            out.append(int(name[:-9]))
    return sorted(out)
