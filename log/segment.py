"""One log segment: `<base offset>.log` plus its `.index` and `.timeindex`.

The `.log` holds v2 record batches back to back, exactly as appended. The
segment keeps in memory what appends need without touching the disk: its
size, the next offset, the largest timestamp (and the offset of the batch
holding it), the "rolling" timestamp of its first batch (segment.ms is measured
from it, as Kafka's LogSegment.timeWaitedForRoll) and the bytes since the last
index entry.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from log.index import OffsetIndex, TimeIndex
from wire.errors import InvalidRecordBatch
from wire.records import RECORD_BATCH_OVERHEAD, BatchHeader, parse_header, valid_prefix

# Header scans read the file in chunks this large; one pread covers many small batches.
_SCAN_CHUNK = 64 * 1024
INT32_MAX = 2**31 - 1


def segment_name(base_offset: int) -> str:
    """Kafka's file stem: the base offset, 20 digits zero-padded."""
    return f"{base_offset:020d}"


class FileHandle:
    """Owns one file descriptor; closes it when the last user lets go.

    FileRegions handed to the server keep the handle alive, so a segment
    deleted by retention or replaced by compaction while a fetch response is
    being sent still reads the old bytes (Kafka delays deletion for the same
    reason: file.delete.delay.ms).
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        """Close the descriptor now (idempotent)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


@dataclass(frozen=True, slots=True)
class FileRegion:
    """A byte range of a segment file, for os.sendfile; `read_bytes()` for a copy."""

    fd: int
    position: int
    length: int
    owner: object = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return self.length

    def read_bytes(self) -> bytes:
        """The region's bytes (os.pread)."""
        return pread_exact(self.fd, self.length, self.position)

    def __bytes__(self) -> bytes:
        return self.read_bytes()


def pread_exact(fd: int, length: int, position: int) -> bytes:
    """Read `length` bytes at `position` (short only at end of file)."""
    parts = []
    while length > 0:
        chunk = os.pread(fd, length, position)
        if not chunk:
            break
        parts.append(chunk)
        length -= len(chunk)
        position += len(chunk)
    return b"".join(parts)


def write_all(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    """pwrite all of `data` at `position`."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, position)
        view = view[n:]
        position += n


class LogSegment:
    """A segment file and its two indexes; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        segment_index_bytes: int,
        created_ms: int,
    ) -> None:
        stem = directory / segment_name(base_offset)
        self.base_offset = base_offset
        self.log_path = stem.with_suffix(".log")
        self.index_missing = not (
            stem.with_suffix(".index").exists() and stem.with_suffix(".timeindex").exists()
        )
        self.handle = FileHandle(os.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644))
        self.index = OffsetIndex(stem.with_suffix(".index"), segment_index_bytes // 8)
        self.time_index = TimeIndex(stem.with_suffix(".timeindex"), segment_index_bytes // 12)
        self.index_interval_bytes = index_interval_bytes
        self.size = os.fstat(self.handle.fd).st_size
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self.rolling_timestamp: int | None = None
        self.created_ms = created_ms
        self.bytes_since_last_index_entry = 0

    @property
    def fd(self) -> int:
        """The `.log` file descriptor."""
        return self.handle.fd

    # -- appends ---------------------------------------------------------------
    def append(self, buf: bytearray, batches: list[tuple[int, int, int, int]]) -> None:
        """Write `buf` (whole batches) at the end; `batches` = (pos in buf, size, last offset, max ts).

        Index entries follow Kafka's LogSegment.append: before a batch, if more
        than index.interval.bytes were written since the last entry, index the
        batch's last offset at its start position, and record the max
        timestamp so far in the time index.
        """
        start = self.size
        write_all(self.fd, buf, start)
        offset_entries: list[tuple[int, int]] = []
        time_entries: list[tuple[int, int]] = []
        for pos, size, last_offset, max_ts in batches:
            if self.rolling_timestamp is None:
                self.rolling_timestamp = max_ts
            if max_ts > self.max_timestamp:
                self.max_timestamp = max_ts
                self.offset_of_max_timestamp = last_offset
            if self.bytes_since_last_index_entry > self.index_interval_bytes:
                offset_entries.append((last_offset - self.base_offset, start + pos))
                time_entries.append(
                    (self.max_timestamp, self.offset_of_max_timestamp - self.base_offset)
                )
                self.bytes_since_last_index_entry = 0
            self.bytes_since_last_index_entry += size
            self.next_offset = last_offset + 1
        self.size = start + len(buf)
        if offset_entries:
            self.index.append_entries(offset_entries)
            self.time_index.maybe_append(time_entries)

    def seal(self) -> None:
        """On roll/close: a final time-index entry so the max timestamp survives a clean restart."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(
                [(self.max_timestamp, self.offset_of_max_timestamp - self.base_offset)]
            )

    def indexes_ok(self) -> bool:
        """Cheap check that both indexes can be trusted (else rebuild them from the `.log`).

        A sealed non-empty segment always has a time-index entry (unless every
        timestamp is -1, which then just costs a rebuild), so an empty time
        index next to a non-empty log means the index was lost.
        """
        if self.index_missing:
            return False
        if self.size == 0:
            return len(self.index) == 0 and len(self.time_index) == 0
        if not (self.index.file_ok(self.size) and self.time_index.file_ok()):
            return False
        if len(self.time_index) == 0:
            return False
        # The last time-index entry names the batch holding the segment's max
        # timestamp: check that batch really has it (one index lookup + a short
        # header scan), which also catches an offset index pointing mid-batch.
        ts, rel = self.time_index.last_entry()
        try:
            found = self.find_batch(self.base_offset + rel)
        except InvalidRecordBatch:
            return False
        return (
            found is not None
            and found[1].max_timestamp == ts
            and found[1].last_offset == self.base_offset + rel
        )

    def index_full(self) -> bool:
        """Whether either index has no room left (Kafka rolls then)."""
        return self.index.is_full or self.time_index.is_full

    # -- reading ---------------------------------------------------------------
    def iter_headers(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each batch from `start`, reading in chunks; stops at a torn tail."""
        end = self.size if end is None else end
        fd = self.fd
        buf = b""
        buf_start = start
        pos = start
        last_size = 0
        while pos + RECORD_BATCH_OVERHEAD <= end:
            if pos + RECORD_BATCH_OVERHEAD > buf_start + len(buf):
                # Big batches: read just the header instead of a chunk per batch.
                want = RECORD_BATCH_OVERHEAD if last_size >= _SCAN_CHUNK else _SCAN_CHUNK
                buf = os.pread(fd, want, pos)
                buf_start = pos
                if len(buf) < RECORD_BATCH_OVERHEAD:
                    return
            h = parse_header(buf, pos - buf_start)
            if pos + h.size > end:
                return
            yield pos, h
            pos += h.size
            last_size = h.size

    def position_for(self, offset: int) -> int:
        """A file position at or before the batch holding `offset` (from the sparse index)."""
        rel = offset - self.base_offset
        if rel <= 0:
            return 0
        _r, pos = self.index.lookup(min(rel, INT32_MAX))
        return pos

    def find_batch(self, offset: int) -> tuple[int, BatchHeader] | None:
        """(position, header) of the first batch whose last offset >= `offset`."""
        for pos, h in self.iter_headers(self.position_for(offset)):
            if h.last_offset >= offset:
                return pos, h
        return None

    def read_batch(self, pos: int, h: BatchHeader) -> bytes:
        """The bytes of one batch."""
        return pread_exact(self.fd, h.size, pos)

    # -- loading / recovery ------------------------------------------------------
    def load_tail(self) -> bool:
        """Clean open: state from the indexes' last entries plus a scan after the last index entry.

        Returns False when the tail does not parse to the end of the file (then
        the caller recovers the segment instead).
        """
        rel, pos = self.index.last_entry()
        ts, ts_rel = self.time_index.last_entry()
        if ts >= 0:
            self.max_timestamp = ts
            self.offset_of_max_timestamp = self.base_offset + ts_rel
        end = pos
        self.next_offset = self.base_offset if rel < 0 else self.base_offset + rel + 1
        first = True
        try:
            tail = list(self.iter_headers(pos))
        except InvalidRecordBatch:
            return False
        for p, h in tail:
            if first and self.rolling_timestamp is None and p == 0:
                self.rolling_timestamp = h.max_timestamp
            first = False
            if h.max_timestamp > self.max_timestamp:
                self.max_timestamp = h.max_timestamp
                self.offset_of_max_timestamp = h.last_offset
            self.next_offset = max(self.next_offset, h.next_offset)
            end = p + h.size
        if end != self.size:
            return False
        self.bytes_since_last_index_entry = self.size - pos
        if self.rolling_timestamp is None and self.size:
            # First batch's timestamp, needed for segment.ms (Kafka loads it lazily too).
            first_batch = next(self.iter_headers(0), None)
            if first_batch is not None:
                self.rolling_timestamp = first_batch[1].max_timestamp
        return True

    def recover(
        self, expected_offset: int | None = None
    ) -> tuple[int, list[tuple[int, BatchHeader]]]:
        """Walk and CRC-check every batch; truncate at the first bad byte; rebuild both indexes.

        Returns (bytes truncated, [(pos, header)]). A batch whose offsets go
        backwards is treated as garbage too (a CRC can be valid on stale bytes).
        """
        size = os.fstat(self.fd).st_size
        found: list[tuple[int, BatchHeader]] = []
        end = 0
        if size:
            with mmap.mmap(self.fd, size, access=mmap.ACCESS_READ) as mm:
                view = memoryview(mm)
                try:
                    end, found = valid_prefix(view)
                finally:
                    view.release()
        next_expected = self.base_offset if expected_offset is None else expected_offset
        for i, (pos, h) in enumerate(found):
            if h.base_offset < next_expected or h.last_offset - self.base_offset > INT32_MAX:
                end = pos
                del found[i:]
                break
            next_expected = h.next_offset
        truncated = size - end
        if truncated:
            os.ftruncate(self.fd, end)
        self.size = end
        self.rebuild_from(found)
        return truncated, found

    def rebuild_from(self, batches: list[tuple[int, BatchHeader]]) -> None:
        """Recompute in-memory state and both index files from the batch headers."""
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self.rolling_timestamp = None
        self.bytes_since_last_index_entry = 0
        offset_entries: list[tuple[int, int]] = []
        time_entries: list[tuple[int, int]] = []
        for pos, h in batches:
            if self.rolling_timestamp is None:
                self.rolling_timestamp = h.max_timestamp
            if h.max_timestamp > self.max_timestamp:
                self.max_timestamp = h.max_timestamp
                self.offset_of_max_timestamp = h.last_offset
            if self.bytes_since_last_index_entry > self.index_interval_bytes:
                offset_entries.append((h.last_offset - self.base_offset, pos))
                time_entries.append(
                    (self.max_timestamp, self.offset_of_max_timestamp - self.base_offset)
                )
                self.bytes_since_last_index_entry = 0
            self.bytes_since_last_index_entry += h.size
            self.next_offset = h.next_offset
        self.index.reset(offset_entries)
        self.time_index.reset(time_entries)

    def truncate_to(self, offset: int) -> int:
        """Drop the batch holding `offset` and everything after it; returns bytes removed."""
        found = self.find_batch(offset)
        removed = 0
        if found is not None:
            pos = found[0]
            removed = self.size - pos
            os.ftruncate(self.fd, pos)
            self.size = pos
        # Rebuild from the headers that remain (this segment becomes the active
        # one): truncation is rare, and this recomputes the max timestamp, the
        # rolling timestamp and the bytes since the last index entry exactly.
        self.rebuild_from(list(self.iter_headers(0)))
        return removed

    # -- durability / teardown ------------------------------------------------------
    def fsync(self) -> None:
        """fsync the `.log` and both indexes."""
        os.fsync(self.fd)
        self.index.fsync()
        self.time_index.fsync()

    def close(self) -> None:
        """Close the indexes; the `.log` descriptor closes when no FileRegion uses it."""
        self.index.close()
        self.time_index.close()
        self.handle.close()

    def release(self) -> None:
        """Drop our own descriptors but let outstanding FileRegions keep the `.log` one."""
        self.index.close()
        self.time_index.close()

    def delete_files(self) -> None:
        """Unlink the segment's files (`.log` first, so a crash leaves only orphan indexes)."""
        self.release()
        for path in (self.log_path, self.index.path, self.time_index.path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
