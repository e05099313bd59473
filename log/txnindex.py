"""Aborted-transaction index: Kafka's per-segment ``<base>.txnindex``.

Each entry is 34 bytes, big-endian, as Kafka's TransactionIndex writes it:
version int16 (0), producer id int64, first offset int64, last offset int64
(the ABORT marker's offset), last stable offset int64 (the LSO right after the
abort). An entry goes into the file of the segment that holds its marker.

A read_committed Fetch returns the entries whose range overlaps the fetched
offsets, so the consumer can drop the aborted producer's records (KIP-98).
The files are appended without fsync, like the log itself; on open every file
is read, entries at or past the log end are dropped (recovery truncated their
markers) and the producer-state replay re-adds any abort whose entry was lost.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path

from kbroker.log.checkpoint import replace_unsynced

_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34
SUFFIX = ".txnindex"


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    """One aborted transaction of one producer in this partition."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def index_path(directory: Path, segment_base: int) -> Path:
    """Kafka's name: `<segment base offset, 20 digits>.txnindex`."""
    return directory / f"{segment_base:020d}{SUFFIX}"


def encode_entry(txn: AbortedTxn) -> bytes:
    """The 34 bytes of one entry."""
    return _ENTRY.pack(
        0, txn.producer_id, txn.first_offset, txn.last_offset, txn.last_stable_offset
    )


def decode_entries(data: bytes) -> list[AbortedTxn]:
    """Entries of a file; a torn last entry (crash mid-write) is ignored."""
    out = []
    for pos in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
        version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
        if version != 0:
            break
        out.append(AbortedTxn(pid, first, last, lso))
    return out


class TxnIndexes:
    """All aborted transactions of a partition, in memory, backed by per-segment files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._entries: list[AbortedTxn] = []  # sorted by last_offset
        self._lasts: list[int] = []

    def load(self, segment_bases: list[int], log_end_offset: int) -> None:
        """Read every file; keep entries inside the log, each in its marker's segment file.

        Files of segments that are gone (retention, or compaction that merged
        segments) are folded into the segment now holding their markers, so a
        cleaned log keeps its aborted transactions; entries past the LEO
        (recovery truncated their markers) or below the first segment are dropped.
        """
        bases = sorted(segment_bases)
        files: dict[int, list[AbortedTxn]] = {}
        for name in os.listdir(self.directory):
            if name.endswith(SUFFIX) and name[: -len(SUFFIX)].isdigit():
                base = int(name[: -len(SUFFIX)])
                path = self.directory / name
                data = path.read_bytes()
                entries = decode_entries(data)
                # A torn or foreign tail marks the file for a rewrite.
                files[base] = (
                    entries
                    if len(data) == len(entries) * ENTRY_SIZE
                    else entries + [AbortedTxn(-1, -1, -1, -1)]
                )
        wanted: dict[int, list[AbortedTxn]] = {}
        seen: set[tuple[int, int]] = set()
        for e in sorted((e for es in files.values() for e in es), key=lambda e: e.last_offset):
            if e.producer_id < 0 or not bases or not bases[0] <= e.last_offset < log_end_offset:
                continue
            if (e.producer_id, e.last_offset) in seen:
                continue
            seen.add((e.producer_id, e.last_offset))
            wanted.setdefault(bases[bisect_right(bases, e.last_offset) - 1], []).append(e)
        for base in set(files) | set(wanted):
            path = index_path(self.directory, base)
            if base not in wanted:
                os.unlink(path)
            elif files.get(base) != wanted[base]:
                self._rewrite(path, wanted[base])
        entries = [e for base in sorted(wanted) for e in wanted[base]]
        entries.sort(key=lambda e: e.last_offset)
        self._entries = entries
        self._lasts = [e.last_offset for e in entries]

    def _rewrite(self, path: Path, entries: list[AbortedTxn]) -> None:
        # An index is rebuilt from the log when it is stale, so no fsync.
        replace_unsynced(path, b"".join(encode_entry(e) for e in entries))

    def has(self, producer_id: int, last_offset: int) -> bool:
        """Whether the abort marker at last_offset is indexed already."""
        i = bisect_left(self._lasts, last_offset)
        while i < len(self._entries) and self._lasts[i] == last_offset:
            if self._entries[i].producer_id == producer_id:
                return True
            i += 1
        return False

    def append(self, segment_base: int, txn: AbortedTxn) -> None:
        """Index an abort whose marker lies in the segment starting at segment_base."""
        with open(index_path(self.directory, segment_base), "ab") as f:
            f.write(encode_entry(txn))
        i = bisect_left(self._lasts, txn.last_offset + 1)
        self._entries.insert(i, txn)
        self._lasts.insert(i, txn.last_offset)

    def collect(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Aborts overlapping [fetch_offset, upper_bound): Kafka's collectAbortedTxns."""
        i = bisect_left(self._lasts, fetch_offset)
        return [e for e in self._entries[i:] if e.first_offset < upper_bound]

    def truncate(self, offset: int, segment_bases: list[int]) -> None:
        """Drop entries whose marker is at or past offset (the log was truncated)."""
        if not self._entries or self._lasts[-1] < offset:
            return
        self.load(segment_bases, offset)

    def all(self) -> list[AbortedTxn]:
        """Every indexed abort, by marker offset."""
        return list(self._entries)
