"""One log segment: `<base offset>.log` plus its `.index` and `.timeindex`.

The `.log` holds v2 record batches back to back, exactly as appended. The
segment keeps in memory what appends need without touching the disk: its
size, the next offset, the largest timestamp (and the offset of the batch
holding it), the "rolling" timestamp of its first batch (segment.ms is measured
from it, as Kafka's LogSegment.timeWaitedForRoll) and the bytes since the last
index entry.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kbroker.log.filecache import OPEN_FILES, OpenFileCache, open_files
from kbroker.log.index import OffsetIndex, TimeIndex
from kbroker.log.scan import BatchSpan, header_size, span_at, spans_in, valid_spans
from kbroker.wire.records import RECORD_BATCH_OVERHEAD

# Header scans read the file in chunks this large; one pread covers many small batches.
_SCAN_CHUNK = 64 * 1024
INT32_MAX = 2**31 - 1
# base offset + batch length, and the last offset delta (at byte 23) of a v2 header.
_BASE_AND_LENGTH = struct.Struct(">qi")
_LAST_OFFSET_DELTA = struct.Struct(">i")
# Recovery reads segments in windows this large.
_WALK_CHUNK = 16 * 1024 * 1024
# Appends at least this large reserve the file's blocks ahead of them (see LogSegment._reserve):
# room for this many appends like them, at most _RESERVE_MAX bytes (unless one is larger).
_RESERVE_FROM = 64 * 1024
_RESERVE_APPENDS = 8
_RESERVE_MAX = 8 * 1024 * 1024
# At most this much reserved past the ends of all segments of the process together: a
# reservation outlives its appends until the segment is sealed (a roll can be days away on
# an idle partition), so with many partitions taking large appends the held blocks would
# otherwise grow with the partition count and fill a disk sooner. Past the budget an
# append simply allocates its own blocks, as it would without reservations.
RESERVE_BUDGET = 64 * 1024 * 1024
_reserve_held = 0  # what live reservations hold of the budget (each counted as reserved)
_FALLOC_FL_KEEP_SIZE = 1  # linux/falloc.h


def _libc_fallocate() -> Callable[[int, int, int, int], int] | None:
    """fallocate(2), which os lacks (os.posix_fallocate cannot keep the file size); None
    where the C library has no such call."""
    try:
        call = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    call.restype = ctypes.c_int
    return call  # type: ignore[no-any-return]


_fallocate = _libc_fallocate()


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

    def close(self, _close: Callable[[int], None] = os.close) -> None:
        """Close the descriptor now (idempotent)."""
        # os.close bound at definition: handles still cached when the interpreter
        # exits are closed after module globals are gone.
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            _close(fd)

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


def write_all_parts(fd: int, parts: list[bytes | bytearray | memoryview], position: int) -> int:
    """pwritev all of `parts` (byte buffers), one after the other, at `position`; returns bytes written."""
    total = 0
    for part in parts:
        total += len(part)
    n = os.pwritev(fd, parts, position)
    if n != total:  # the usual case: one call wrote everything, no views needed
        write_rest(fd, parts, position, n, total)
    return total


def write_rest(
    fd: int, parts: list[bytes | bytearray | memoryview], position: int, n: int, total: int
) -> None:
    """Finish a pwritev of `parts` (`total` bytes at `position`) that wrote only `n` bytes."""
    views = [memoryview(p) for p in parts]
    remaining = total
    while True:
        position += n
        remaining -= n
        if not remaining:
            return
        while views and n >= len(views[0]):  # drop what was written, keep the rest
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]
        n = os.pwritev(fd, views, position)


def walk_valid_batches(fd: int, size: int) -> tuple[int, list[BatchSpan]]:
    """valid_prefix over a whole file, read in large chunks; returns (valid end, spans).

    Chunked pread rather than mmap: on VMs a page fault per 4 KiB made the
    mmap walk several times slower than copying from the page cache.
    """
    found: list[BatchSpan] = []
    base = 0
    need = _WALK_CHUNK
    # One reused buffer: fresh 16 MiB allocations page-fault on every 4 KiB. Never
    # larger than the file: recovering a new partition's empty segment must not zero
    # 16 MiB (creating __consumer_offsets' 50 partitions spent most of its time there).
    window = bytearray(min(_WALK_CHUNK, size))
    while base < size:
        want = min(need, size - base)
        if len(window) < want:
            window = bytearray(want)
        with memoryview(window) as mv:
            n = _preadv_exact(fd, mv[:want], base)
            buf = mv[:n]
            end, spans = valid_spans(buf)
            header_len = header_size(buf, end) if n - end >= RECORD_BATCH_OVERHEAD else None
            buf.release()
        found += [s._replace(pos=s.pos + base) for s in spans] if base else spans
        at_eof = base + n >= size
        base += end
        need = _WALK_CHUNK
        if at_eof:
            break
        if end == n:
            continue
        # Stopped before the end of the window: a batch cut by the window
        # boundary (read on from it) or a bad batch (stop for good).
        if n - end < RECORD_BATCH_OVERHEAD:
            continue
        if header_len is None or end + header_len <= n:
            break  # bad header, or a whole batch in the window yet rejected: corrupt
        need = max(_WALK_CHUNK, header_len)
        if base + header_len > size:
            break  # torn tail
    return base, found


def _preadv_exact(fd: int, view: memoryview, position: int) -> int:
    """Fill `view` from `position` (short only at end of file); returns bytes read."""
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], position + done)
        if n <= 0:
            break
        done += n
    return done


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
        # Paths built as strings: pathlib's parsing was a quarter of opening a partition
        # (three files per segment, a thousand partitions at start-up).
        stem = os.path.join(directory, segment_name(base_offset))
        self.base_offset = base_offset
        self.log_path = Path(stem + ".log")
        index_path, time_path = stem + ".index", stem + ".timeindex"
        self.index_missing = not (os.path.exists(index_path) and os.path.exists(time_path))
        # The `.log` descriptor, from the shared cache of open files: None while closed
        # for idleness (reopened on the next use), or after close()/release().
        self._handle: FileHandle | None = None
        self._cache: OpenFileCache = OPEN_FILES  # the one that opened it
        self._closed = False
        st = os.fstat(self.fd)  # opens (and creates) the .log
        self.size = st.st_size
        # Where the file's allocated blocks end, as far as we know: past the size while
        # blocks are reserved ahead of appends (also ones a crash left behind).
        self._reserved = st.st_blocks * 512
        # Bytes this segment counts against RESERVE_BUDGET (its last reservation's length).
        self._holds = 0
        self.index = OffsetIndex(Path(index_path), segment_index_bytes // 8)
        self.time_index = TimeIndex(Path(time_path), segment_index_bytes // 12)
        # Whether either index has no room left (Kafka then rolls): read by the roll
        # check of every append, so kept here rather than asked of both indexes each
        # time; updated wherever this segment adds or replaces index entries.
        self.indexes_full = False
        self._note_index_room()
        self.index_interval_bytes = index_interval_bytes
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self.rolling_timestamp: int | None = None
        self.created_ms = created_ms
        self.bytes_since_last_index_entry = 0

    @property
    def handle(self) -> FileHandle:
        """The `.log` FileHandle (what a FileRegion keeps alive), opened if closed while idle."""
        handle = self._handle
        if handle is not None:
            self._cache.touch(self)
            return handle
        if self._closed:
            raise OSError(f"segment {self.log_path} is closed")
        self._cache = open_files()
        handle = self._handle = FileHandle(
            self._cache.open(self, self.log_path, os.O_RDWR | os.O_CREAT)
        )
        return handle

    @property
    def fd(self) -> int:
        """The `.log` file descriptor; read it again after anything that may open a file."""
        handle = self._handle
        if handle is not None:  # what `handle` does when open, without its frame (appends)
            self._cache.touch(self)
            return handle.fd
        return self.handle.fd

    def evict(self) -> None:
        """Called by the open-file cache: let go of the `.log` descriptor until the next use.

        Dropping the handle closes the descriptor at once unless a FileRegion being
        sent still refers to it; then it closes when that region is done.
        """
        self._handle = None

    # -- appends ---------------------------------------------------------------
    def append(
        self,
        buf: bytearray | list[bytes | bytearray | memoryview],
        batches: list[tuple[int, int, int, int]],
    ) -> None:
        """Write `buf` (whole batches; or a list of pieces) at the end; `batches` = (pos in buf, size, last offset, max ts).

        Index entries follow Kafka's LogSegment.append: before a batch, if more
        than index.interval.bytes were written since the last entry, index the
        batch's last offset at its start position, and record the max
        timestamp so far in the time index.
        """
        start = self.size
        length = len(buf) if not isinstance(buf, list) else sum(len(part) for part in buf)
        if length >= _RESERVE_FROM and start + length > self._reserved:
            self._reserve(length)
        if isinstance(buf, list):
            write_all_parts(self.fd, buf, start)
        else:
            write_all(self.fd, buf, start)
        for pos, size, last_offset, max_ts in batches:
            self._account(start + pos, size, last_offset, max_ts)
        self.size = start + length

    def append_batch(
        self,
        parts: list[bytes | bytearray | memoryview],
        size: int,
        last_offset: int,
        max_ts: int,
    ) -> None:
        """``append`` of one batch of `size` bytes written as `parts`, without the lists.

        The same bookkeeping as ``append`` does for each batch, for the usual Produce
        append: one pwritev, an index entry only when index.interval.bytes says so.
        """
        start = self.size
        if size >= _RESERVE_FROM and start + size > self._reserved:
            self._reserve(size)
        n = os.pwritev(self.fd, parts, start)
        if n != size:
            write_rest(self.fd, parts, start, n, size)
        self._account(start, size, last_offset, max_ts)
        self.size = start + size

    def _reserve(self, size: int) -> None:
        """Allocate the blocks for an append of `size` bytes and the next ones like it, past
        the end of the file without changing its size (fallocate, FALLOC_FL_KEEP_SIZE).

        A large append to a file growing by delayed allocation reserves and maps every
        new block in the write itself (ext4: ext4_da_get_block_prep, the extent status
        tree): about a fifth of the system time of a 470 KB pwritev, which writes into
        blocks reserved beforehand skip. Kafka's preallocate (log.preallocate, off by
        default, accepted here without effect) sets the whole segment's length instead,
        so a crash leaves a file whose length is not the log's end; here the size stays
        the log's end, so recovery reads exactly what it read before, and a crash can
        leave nothing past it but unused blocks (freed if the segment is sealed or truncated
        again; a segment a crash left sealed keeps them until it is deleted). Small
        appends reserve nothing: a block serves many of them.
        A reservation that fails (a file system without fallocate, a full disk) changes
        nothing: the write allocates its own blocks as before.

        Room for several appends at once: a fallocate costs about the same whatever its
        length (~60 us of system time cold, for 1.4 MB as for 16 MB), so reserving for
        one append at a time would eat most of what it saves.
        """
        global _reserve_held
        if _fallocate is None:
            return
        start = self.size
        length = min(
            _RESERVE_APPENDS * size,
            max(size, _RESERVE_MAX),
            RESERVE_BUDGET - _reserve_held + self._holds,  # this one's old hold is replaced
        )
        if length < size:
            return  # the budget is spent elsewhere: the write allocates its own blocks
        _fallocate(self.fd, _FALLOC_FL_KEEP_SIZE, start, length)
        self._reserved = start + length
        _reserve_held += length - self._holds
        self._holds = length

    def _release_reservation(self) -> None:
        """Give this segment's reservation back to the budget (its blocks were freed)."""
        global _reserve_held
        _reserve_held -= self._holds
        self._holds = 0

    def _account(self, position: int, size: int, last_offset: int, max_ts: int) -> None:
        """The bookkeeping of one batch of ``size`` bytes written at ``position``: the
        segment's timestamps and next offset; and, as Kafka's LogSegment.append does,
        an entry in each index (offset index, time index) when more than
        index.interval.bytes were written since the last ones. (Entries reach the index
        files at their next write: appending one only adds it to the index's columns.)"""
        if self.rolling_timestamp is None:
            self.rolling_timestamp = max_ts
        if max_ts > self.max_timestamp:
            self.max_timestamp = max_ts
            self.offset_of_max_timestamp = last_offset
        self.next_offset = last_offset + 1
        if self.bytes_since_last_index_entry > self.index_interval_bytes:
            self.bytes_since_last_index_entry = size
            base = self.base_offset
            self.index.append_entry(last_offset - base, position)
            self.time_index.maybe_append_one(
                self.max_timestamp, self.offset_of_max_timestamp - base
            )
            self._note_index_room()
            return
        self.bytes_since_last_index_entry += size

    def _note_index_room(self) -> None:
        self.indexes_full = self.index.is_full or self.time_index.is_full

    def seal(self) -> None:
        """On roll/close: a final time-index entry so the max timestamp survives a clean
        restart; blocks reserved past the end of the file (see _reserve) are freed."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(
                [(self.max_timestamp, self.offset_of_max_timestamp - self.base_offset)]
            )
            self._note_index_room()
        if self._reserved - self.size >= _RESERVE_FROM:
            # Truncating to the size it has frees every block past it. (Less than that
            # past the end is a partly filled last block, an extent tree's own blocks,
            # or what is left of a reservation: not worth a metadata update per roll.)
            os.ftruncate(self.fd, self.size)
            self._reserved = self.size
        self._release_reservation()

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
        if not (self.index.file_ok(self.size) and self.time_index.file_ok(self.size)):
            return False
        if len(self.time_index) == 0:
            return False
        # The last time-index entry names the batch holding the segment's max
        # timestamp: check that batch really has it (one index lookup + a short
        # header scan), which also catches an offset index pointing mid-batch.
        ts, rel = self.time_index.last_entry()
        found = self.find_batch(self.base_offset + rel)
        return (
            found is not None
            and found.max_timestamp == ts
            and found.last_offset == self.base_offset + rel
        )

    def park_indexes(self) -> None:
        """fsync and close the index descriptors of a closed segment (reopened on demand)."""
        for idx in (self.index, self.time_index):
            idx.fsync()
            idx.park()

    # -- reading ---------------------------------------------------------------
    def iter_spans(self, start: int = 0, end: int | None = None) -> Iterator[BatchSpan]:
        """Each whole batch from `start` (a batch boundary), read in chunks; stops at a torn or bad tail."""
        end = self.size if end is None else end
        pos = start
        want = _SCAN_CHUNK
        while pos + RECORD_BATCH_OVERHEAD <= end:
            # self.fd each time: between yields the caller may open files, and the
            # cache may close this one meanwhile.
            buf = os.pread(self.fd, min(want, end - pos), pos)
            consumed, spans = spans_in(buf, pos)
            if spans:
                yield from spans
                pos += consumed
                want = _SCAN_CHUNK
                continue
            # The next batch is larger than the buffer: learn its size from its header.
            size = header_size(buf, 0)
            if size is None or pos + size > end:
                return
            yield span_at(buf, pos)
            pos += size
            # After a big batch, expect another: read just its header, not a chunk.
            want = RECORD_BATCH_OVERHEAD if size >= _SCAN_CHUNK else _SCAN_CHUNK

    def read_range(
        self, start: int, offset: int, limit: int, budget: int, force_first: bool
    ) -> tuple[int, int, int, int, bool]:
        """Whole batches for a fetch, scanning from `start` (a batch boundary).

        Skips batches ending before `offset`, then takes batches while their
        base offset is below `limit` and they fit in `budget` bytes (the first
        one regardless when `force_first`). Returns (first position or -1,
        bytes taken, first base offset, next offset, stopped early). The hot
        loop of every fetch: two struct reads per batch and no objects, since
        a 1 MiB fetch of 1 KiB batches walks a thousand headers.
        """
        end = self.size
        fd = self.fd
        pos = start
        first_pos = first_base = next_offset = -1
        taken = 0
        unpack = _BASE_AND_LENGTH.unpack_from
        unpack_delta = _LAST_OFFSET_DELTA.unpack_from
        while pos + RECORD_BATCH_OVERHEAD <= end:
            buf = os.pread(fd, min(_SCAN_CHUNK, end - pos), pos)
            n = len(buf)
            p = 0
            while p + RECORD_BATCH_OVERHEAD <= n:
                base, length = unpack(buf, p)
                size = length + 12
                if length < RECORD_BATCH_OVERHEAD - 12 or pos + p + size > end:
                    return first_pos, taken, first_base, next_offset, True  # torn tail
                last = base + unpack_delta(buf, p + 23)[0]
                if last >= offset:
                    if base >= limit or (
                        taken + size > budget and not (force_first and taken == 0)
                    ):
                        return first_pos, taken, first_base, next_offset, True
                    if first_pos < 0:
                        first_pos, first_base = pos + p, base
                    taken += size
                    next_offset = last + 1
                p += size
            if p == 0:
                break
            pos += p
        return first_pos, taken, first_base, next_offset, False

    def position_for(self, offset: int) -> int:
        """A file position at or before the batch holding `offset` (from the sparse index)."""
        rel = offset - self.base_offset
        if rel <= 0:
            return 0
        _r, pos = self.index.lookup(min(rel, INT32_MAX))
        return pos

    def find_batch(self, offset: int) -> BatchSpan | None:
        """The first batch whose last offset >= `offset`."""
        for span in self.iter_spans(self.position_for(offset)):
            if span.last_offset >= offset:
                return span
        return None

    def read_batch(self, span: BatchSpan) -> bytes:
        """The bytes of one batch."""
        return pread_exact(self.fd, span.size, span.pos)

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
        for h in self.iter_spans(pos):
            if h.pos == 0:
                self.rolling_timestamp = h.max_timestamp
            if h.max_timestamp > self.max_timestamp:
                self.max_timestamp = h.max_timestamp
                self.offset_of_max_timestamp = h.last_offset
            self.next_offset = max(self.next_offset, h.next_offset)
            end = h.pos + h.size
        if end != self.size:
            return False
        self.bytes_since_last_index_entry = self.size - pos
        if self.rolling_timestamp is None and self.size:
            # First batch's timestamp, needed for segment.ms (Kafka loads it lazily too).
            first_batch = next(self.iter_spans(0), None)
            if first_batch is not None:
                self.rolling_timestamp = first_batch.max_timestamp
        return True

    def recover(self, expected_offset: int | None = None) -> tuple[int, list[BatchSpan]]:
        """Walk and CRC-check every batch; truncate at the first bad byte; rebuild both indexes.

        Returns (bytes truncated, spans of the batches kept). A batch whose offsets go
        backwards is treated as garbage too (a CRC can be valid on stale bytes).
        """
        size = os.fstat(self.fd).st_size
        end, found = walk_valid_batches(self.fd, size)
        next_expected = self.base_offset if expected_offset is None else expected_offset
        for i, h in enumerate(found):
            if h.base_offset < next_expected or h.last_offset - self.base_offset > INT32_MAX:
                end = h.pos
                del found[i:]
                break
            next_expected = h.next_offset
        truncated = size - end
        if truncated:
            os.ftruncate(self.fd, end)  # frees any reserved blocks too
            self._reserved = end
            self._release_reservation()
        self.size = end
        self.rebuild_from(found)
        return truncated, found

    def rebuild_from(self, batches: list[BatchSpan]) -> None:
        """Recompute in-memory state and both index files from the batches' spans."""
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self.rolling_timestamp = None
        self.bytes_since_last_index_entry = 0
        offset_entries: list[tuple[int, int]] = []
        time_entries: list[tuple[int, int]] = []
        for h in batches:
            if self.rolling_timestamp is None:
                self.rolling_timestamp = h.max_timestamp
            if h.max_timestamp > self.max_timestamp:
                self.max_timestamp = h.max_timestamp
                self.offset_of_max_timestamp = h.last_offset
            if self.bytes_since_last_index_entry > self.index_interval_bytes:
                offset_entries.append((h.last_offset - self.base_offset, h.pos))
                time_entries.append(
                    (self.max_timestamp, self.offset_of_max_timestamp - self.base_offset)
                )
                self.bytes_since_last_index_entry = 0
            self.bytes_since_last_index_entry += h.size
            self.next_offset = h.next_offset
        self.index.reset(offset_entries)
        self.time_index.reset(time_entries)
        self._note_index_room()

    def truncate_to(self, offset: int) -> int:
        """Drop the batch holding `offset` and everything after it; returns bytes removed."""
        found = self.find_batch(offset)
        removed = 0
        if found is not None:
            pos = found.pos
            removed = self.size - pos
            os.ftruncate(self.fd, pos)  # frees any reserved blocks too
            self.size = pos
            self._reserved = pos
            self._release_reservation()
        # Rebuild from the headers that remain (this segment becomes the active
        # one): truncation is rare, and this recomputes the max timestamp, the
        # rolling timestamp and the bytes since the last index entry exactly.
        self.rebuild_from(list(self.iter_spans(0)))
        return removed

    # -- durability / teardown ------------------------------------------------------
    def fsync(self) -> None:
        """fsync the `.log` and both indexes."""
        os.fsync(self.fd)
        self.index.fsync()
        self.time_index.fsync()

    def close(self) -> None:
        """Close the indexes and the `.log` descriptor, for good."""
        self._release_reservation()  # sealed first (blocks freed), or deleted with its file
        self.index.close()
        self.time_index.close()
        handle = self._handle
        self._drop_log_handle()
        if handle is not None:
            handle.close()

    def release(self) -> None:
        """Drop our own descriptors but let outstanding FileRegions keep the `.log` one."""
        self._release_reservation()  # released to be deleted or replaced: its blocks go too
        self.index.close()
        self.time_index.close()
        self._drop_log_handle()

    def _drop_log_handle(self) -> None:
        self._cache.forget(self)
        self._handle = None
        self._closed = True

    def delete_files(self) -> None:
        """Unlink the segment's files (`.log` first, so a crash leaves only orphan indexes)."""
        self.release()
        txn_index = self.log_path.with_suffix(".txnindex")  # log.txnindex's file, if any
        for path in (self.log_path, self.index.path, self.time_index.path, txn_index):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
