"""Kafka's sparse segment indexes: `.index` and `.timeindex`.

Both are caches of facts that can be recomputed from the `.log`, kept in
memory as arrays and appended to their files (Kafka's on-disk format,
big-endian):

- `.index`: 8-byte entries, relative offset int32 -> file position int32. The
  offset is the LAST offset of a batch, the position that batch's start (as
  Kafka's LogSegment.append writes them), so "largest entry <= target" always
  lands at or before the batch that holds the target.
- `.timeindex`: 12-byte entries, timestamp int64 -> relative offset int32,
  only appended when the timestamp grows, so timestamps are strictly
  increasing.

The arrays are loaded lazily: a clean open needs only the last entry of each.

New entries reach the file at the next flush, roll, park or close, not at every
append: Kafka's indexes are memory-mapped and written back the same way, and a
crash that loses them is repaired by recovery, which rebuilds the indexes of
every segment past the recovery point. (Otherwise every appended batch that
adds an entry costs two small pwrites, one per index.)
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import ClassVar

from kbroker.log.filecache import OPEN_FILES, OpenFileCache, open_files

_BIG_ENDIAN = sys.byteorder == "big"
OFFSET_ENTRY = 8
TIME_ENTRY = 12
_OFFSET = struct.Struct(">ii")
_TIME = struct.Struct(">qi")


def _pread_all(fd: int, size: int) -> bytes:
    parts = []
    pos = 0
    while pos < size:
        chunk = os.pread(fd, size - pos, pos)
        if not chunk:
            break
        parts.append(chunk)
        pos += len(chunk)
    return b"".join(parts)


def _write_at(fd: int, data: bytes | bytearray, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        view = view[n:]
        pos += n


class _IndexFile:
    """An index file whose descriptor comes from the shared cache of open files.

    It is opened on first use and closed when idle (evicted by the cache, or
    parked once a segment is closed), then reopened on demand: a partition's
    indexes cost no descriptor while nobody reads them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._cache: OpenFileCache = OPEN_FILES  # the one that opened it
        self._closed = False
        # Written (or truncated) since the last fsync, maybe through a descriptor the
        # cache has closed since: fsync must then reopen the file to flush it.
        self._unsynced = False

    def write_pending(self) -> None:
        """Write the entries appended since the last write (flush, roll, park, close, eviction)."""

    def _write_pending_to(self, fd: int) -> None:
        """write_pending through `fd` (an eviction: the descriptor is being closed)."""

    def _size_on_disk(self) -> int:
        """The file's size once every entry is in it: what each reader of the file starts from."""
        self.write_pending()
        return os.fstat(self.fd).st_size

    def _truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        self._unsynced = True

    @property
    def fd(self) -> int:
        """The descriptor, reopened (through the cache) if closed while idle."""
        if self._fd >= 0:
            self._cache.touch(self)
            return self._fd
        if self._closed:
            raise OSError(f"index {self.path} is closed")
        self._cache = open_files()
        self._fd = self._cache.open(self, self.path, os.O_RDWR | os.O_CREAT)
        return self._fd

    def evict(self) -> None:
        """Called by the cache: write pending entries, then close until the next use."""
        self._write_pending_to(self._fd)
        os.close(self._fd)
        self._fd = -1

    def park(self) -> None:
        """Close the descriptor until the next use (the in-memory state stays)."""
        self.write_pending()
        if self._fd >= 0:
            self._cache.forget(self)
            fd, self._fd = self._fd, -1
            os.close(fd)

    def fsync(self) -> None:
        """Flush the index file to disk (reopening it if written through a closed descriptor)."""
        self.write_pending()
        if self._fd >= 0 or self._unsynced:
            os.fsync(self.fd)
        self._unsynced = False

    def close(self) -> None:
        """Close the file descriptor for good."""
        self.park()
        self._closed = True


class _SparseIndex(_IndexFile):
    """What both indexes share: fixed-size entries, kept in memory as two columns, at most
    ``max_entries`` of them (segment.index.bytes), counted before the columns are loaded."""

    ENTRY: ClassVar[int]  # bytes per entry
    FORMAT: ClassVar[struct.Struct]  # one entry on disk
    NO_ENTRY: ClassVar[tuple[int, int]]  # what last_entry says of an empty index

    def __init__(self, path: Path, max_entries: int) -> None:
        super().__init__(path)
        self.max_entries = max(1, max_entries)
        # No room for another entry (segment.index.bytes reached): the segment must roll.
        # An attribute set with the count, not a property: every append reads it.
        self.is_full = False
        self._count = os.fstat(self.fd).st_size // self.ENTRY
        # Entries in the file: those past it (appended since the last write) are encoded
        # from the columns when written, so an append only adds to the columns.
        self._written = self._count

    def _encode(self, start: int, end: int) -> bytes:
        """Entries ``start`` to ``end`` (exclusive) in the file's format (the columns loaded)."""
        raise NotImplementedError

    def write_pending(self) -> None:
        if self._count > self._written:
            self._write_pending_to(self.fd)

    def _write_pending_to(self, fd: int) -> None:
        count, written = self._count, self._written
        if count > written:
            _write_at(fd, self._encode(written, count), written * self.ENTRY)
            self._written = count
            self._unsynced = True

    def __len__(self) -> int:
        return self._entries

    @property
    def _count(self) -> int:
        """How many entries the index holds."""
        return self._entries

    @_count.setter
    def _count(self, count: int) -> None:
        self._entries = count
        self.is_full = count >= self.max_entries

    def _entry_on_disk(self, n: int) -> tuple[int, int]:
        return self.FORMAT.unpack(os.pread(self.fd, self.ENTRY, n * self.ENTRY))

    def last_entry_from_file(self) -> tuple[int, int]:
        """The last entry on disk (a trailing partial one ignored), or ``NO_ENTRY``."""
        count = self._size_on_disk() // self.ENTRY
        return self._entry_on_disk(count - 1) if count else self.NO_ENTRY

    def file_ok(self, log_size: int) -> bool:
        """Cheap sanity check (as Kafka's sanityCheck) of the file of a segment whose log
        holds ``log_size`` bytes: whole entries, the first and last of them plausible."""
        size = self._size_on_disk()
        if size % self.ENTRY:
            return False  # ends in a partial entry
        count = size // self.ENTRY
        if count == 0:
            return True
        first, last = self._entry_on_disk(0), self._entry_on_disk(count - 1)
        return self._ends_ok(first, last, count, log_size)

    def _ends_ok(
        self, first: tuple[int, int], last: tuple[int, int], count: int, log_size: int
    ) -> bool:
        """Whether a file of ``count`` entries that starts and ends with these can be sound."""
        raise NotImplementedError

    def _cut(self, columns: tuple[list[int] | array, ...], keep: int) -> None:
        """Keep only the first ``keep`` entries, in memory and in the file."""
        for column in columns:
            del column[keep:]
        self._count = keep
        self._written = min(self._written, keep)
        self.write_pending()
        self._truncate(keep * self.ENTRY)


class OffsetIndex(_SparseIndex):
    """Sparse relative-offset -> position index of one segment."""

    ENTRY = OFFSET_ENTRY
    FORMAT = _OFFSET
    NO_ENTRY = (-1, 0)  # (relative offset, position)

    def __init__(self, path: Path, max_entries: int) -> None:
        super().__init__(path, max_entries)
        self._rel: array | None = None
        self._pos: array | None = None

    # -- loading -------------------------------------------------------------
    def _ends_ok(
        self, first: tuple[int, int], last: tuple[int, int], count: int, log_size: int
    ) -> bool:
        (first_rel, first_pos), (rel, pos) = first, last
        # The first batch of a segment is never indexed, so no entry points at
        # position 0; entries strictly grow (catches zero-filled files).
        if first_pos <= 0 or first_rel < 0:
            return False
        if count > 1 and not (rel > first_rel and pos > first_pos):
            return False
        return 0 < pos < log_size

    def _load(self) -> None:
        size = self._size_on_disk()
        size -= size % OFFSET_ENTRY
        raw = array("i")
        raw.frombytes(_pread_all(self.fd, size))
        if not _BIG_ENDIAN:
            raw.byteswap()
        self._rel = raw[0::2]
        self._pos = raw[1::2]
        self._count = self._written = len(self._rel)

    def _arrays(self) -> tuple[array, array]:
        if self._rel is None or self._pos is None:
            self._load()
        assert self._rel is not None and self._pos is not None
        return self._rel, self._pos

    # -- queries ---------------------------------------------------------------
    def lookup(self, relative_offset: int) -> tuple[int, int]:
        """Largest entry with offset <= relative_offset as (relative offset, position), else (-1, 0)."""
        rel, pos = self._arrays()
        i = bisect_right(rel, relative_offset) - 1
        if i < 0:
            return -1, 0
        return rel[i], pos[i]

    def last_entry(self) -> tuple[int, int]:
        """The last (relative offset, position), or (-1, 0) when empty."""
        if self._rel is None:
            return self.last_entry_from_file()
        if not self._rel:
            return -1, 0
        assert self._pos is not None
        return self._rel[-1], self._pos[-1]

    # -- changes ---------------------------------------------------------------
    def _encode(self, start: int, end: int) -> bytes:
        rel, pos = self._arrays()
        return b"".join(_OFFSET.pack(rel[i], pos[i]) for i in range(start, end))

    def append_entries(self, entries: list[tuple[int, int]]) -> None:
        """Append (relative offset, position) entries in memory (the file at the next write)."""
        rel, pos = self._arrays()
        for r, p in entries:
            rel.append(r)
            pos.append(p)
        self._count = len(rel)

    def append_entry(self, relative_offset: int, position: int) -> None:
        """``append_entries`` of one entry, as each append adds it (no list)."""
        rel, pos = self._rel, self._pos
        if rel is None or pos is None:  # _arrays' frame only when there is loading to do
            rel, pos = self._arrays()
        rel.append(relative_offset)
        pos.append(position)
        self._count = len(rel)

    def truncate_to_position(self, position: int) -> None:
        """Drop entries pointing at or beyond `position` (the log was cut there)."""
        rel, pos = self._arrays()
        self._cut((rel, pos), bisect_left(pos, position))

    def reset(self, entries: list[tuple[int, int]]) -> None:
        """Replace the whole index (rebuild after recovery or compaction)."""
        self._rel = array("i")
        self._pos = array("i")
        self._count = self._written = 0
        self._truncate(0)
        if entries:
            self.append_entries(entries)


class TimeIndex(_SparseIndex):
    """Sparse timestamp -> relative-offset index of one segment."""

    ENTRY = TIME_ENTRY
    FORMAT = _TIME
    NO_ENTRY = (-1, -1)  # (timestamp, relative offset)

    def __init__(self, path: Path, max_entries: int) -> None:
        super().__init__(path, max_entries)
        self._ts: list[int] | None = None
        self._rel: list[int] | None = None

    def _ends_ok(
        self, first: tuple[int, int], last: tuple[int, int], count: int, log_size: int
    ) -> bool:
        # Timestamps strictly grow; offsets never go back, nor below the segment's base.
        (first_ts, first_rel), (ts, rel) = first, last
        return rel >= first_rel >= 0 and (count == 1 or ts > first_ts)

    def _load(self) -> None:
        size = self._size_on_disk()
        n = size // TIME_ENTRY
        flat = struct.unpack(">" + "qi" * n, _pread_all(self.fd, n * TIME_ENTRY)) if n else ()
        self._ts = list(flat[0::2])
        self._rel = list(flat[1::2])
        self._count = self._written = n

    def _lists(self) -> tuple[list[int], list[int]]:
        if self._ts is None or self._rel is None:
            self._load()
        assert self._ts is not None and self._rel is not None
        return self._ts, self._rel

    def last_entry(self) -> tuple[int, int]:
        """The last (timestamp, relative offset), or (-1, -1) when empty."""
        if self._ts is None:
            return self.last_entry_from_file()
        if not self._ts:
            return -1, -1
        assert self._rel is not None
        return self._ts[-1], self._rel[-1]

    def lookup_before(self, timestamp: int) -> int:
        """Relative offset of the last entry with timestamp < `timestamp`, else -1.

        Entries record the max timestamp seen up to an offset, so every record
        at or below that offset is older than `timestamp`: the search may
        start after it. (Strictly-less keeps the answer exact on ties.)
        """
        ts, rel = self._lists()
        i = bisect_left(ts, timestamp) - 1
        return rel[i] if i >= 0 else -1

    def _encode(self, start: int, end: int) -> bytes:
        ts, rel = self._lists()
        return b"".join(_TIME.pack(ts[i], rel[i]) for i in range(start, end))

    def maybe_append(self, entries: list[tuple[int, int]]) -> None:
        """Append (timestamp, relative offset) entries whose timestamp grows (Kafka's maybeAppend)."""
        ts, rel = self._lists()
        for t, r in entries:
            if ts and t <= ts[-1]:
                continue
            ts.append(t)
            rel.append(r)
        self._count = len(ts)

    def maybe_append_one(self, timestamp: int, relative_offset: int) -> None:
        """``maybe_append`` of one entry, as each append adds it (no list)."""
        ts, rel = self._ts, self._rel
        if ts is None or rel is None:  # _lists' frame only when there is loading to do
            ts, rel = self._lists()
        if ts and timestamp <= ts[-1]:
            return
        ts.append(timestamp)
        rel.append(relative_offset)
        self._count = len(ts)

    def truncate_to_offset(self, relative_offset: int) -> None:
        """Drop entries at or beyond `relative_offset`."""
        ts, rel = self._lists()
        self._cut((ts, rel), bisect_left(rel, relative_offset))

    def reset(self, entries: list[tuple[int, int]]) -> None:
        """Replace the whole index."""
        self._ts = []
        self._rel = []
        self._count = self._written = 0
        self._truncate(0)
        if entries:
            self.maybe_append(entries)
