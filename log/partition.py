"""PartitionLog: one Kafka partition's segmented log in its own directory.

How it works:
- The directory holds segments `<base>.log/.index/.timeindex` (see segment.py),
  `recovery-point-offset-checkpoint` (every offset below it is fsynced),
  `log-start-offset-checkpoint` (DeleteRecords / retention), producer-state
  snapshots `<offset>.snapshot`, and `.kafka_cleanshutdown` while closed cleanly.
- Appends go to the last ("active") segment; offsets are assigned by patching
  each batch's base offset in place, the batch bytes are otherwise stored as
  received. The active segment rolls at segment.bytes, segment.ms or a full
  index; the rolled segment is fsynced and the recovery point moves to the new
  segment (Kafka does that flush asynchronously).
- Open: with the clean-shutdown marker, indexes are trusted and only the tail
  of the active segment after its last index entry is scanned. Without it,
  every segment from the one holding the recovery point is walked batch by
  batch (length + CRC), cut at the first bad byte, later segments dropped and
  indexes rebuilt. The marker is removed (durably) while the log is open.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from kbroker.log.checkpoint import (
    CLEAN_SHUTDOWN_FILE,
    LOG_START_FILE,
    RECOVERY_POINT_FILE,
    atomic_write,
    create_empty,
    fsync_dir,
    read_offset,
    write_offset,
)
from kbroker.log.cleaner import clean_segments
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError, OffsetOutOfRange
from kbroker.log.leader_epoch import LEADER_EPOCH_FILE, LeaderEpochCache
from kbroker.log.producer_state import (
    NOT_A_MARKER,
    CompletedTxn,
    ProducerState,
    end_txn_marker,
    list_snapshots,
    snapshot_path,
)
from kbroker.log.scan import BatchSpan, parse_span, valid_spans
from kbroker.log.segment import INT32_MAX, FileRegion, LogSegment
from kbroker.log.txnindex import AbortedTxn, TxnIndexes
from kbroker.wire.records import (
    ATTR_CONTROL,
    BATCH_PREFIX,
    LOG_OVERHEAD,
    RECORD_BATCH_OVERHEAD,
    BatchHeader,
    iter_records,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
)

# Files left by an interrupted atomic write, compaction or deletion.
_TEMP_SUFFIXES = (".tmp", ".cleaned", ".deleted", ".swap")
_SNAPSHOTS_TO_KEEP = 2


class AppendResult(NamedTuple):
    """Offsets assigned to an append (ProduceResponse's base offset, log append time, log start).

    A NamedTuple, not a frozen dataclass: one is built per Produce request, and a frozen
    dataclass's __init__ sets each field through object.__setattr__.
    """

    base_offset: int
    last_offset: int
    log_append_time_ms: int
    log_start_offset: int


_new_result = tuple.__new__


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Whole batches for a fetch, as file regions ready for sendfile."""

    regions: list[FileRegion] = field(default_factory=list)
    size: int = 0
    first_offset: int = -1  # base offset of the first batch returned, -1 if none
    next_offset: int = -1  # offset after the last batch returned (fetch offset if none)
    log_start_offset: int = 0
    high_watermark: int = 0
    log_end_offset: int = 0

    def read_bytes(self) -> bytes:
        """All regions' bytes concatenated (tests and non-sendfile paths)."""
        return b"".join(r.read_bytes() for r in self.regions)


class PartitionLog:
    """Kafka's partition log: append, read, offsets by time, retention, compaction, recovery."""

    def __init__(self, directory: Path, config: LogConfig, clock: Callable[[], float]) -> None:
        self.directory = directory
        self.config = config
        self._clock = clock
        self._segments: list[LogSegment] = []
        self._bases: list[int] = []
        self._log_start = 0
        self._recovery_point = 0
        self._written_rp = -1  # values last checkpointed
        self._written_ls = -1
        self._unflushed_messages = 0
        self._last_flush_ms = 0
        self._closed = False
        self.producer_state = ProducerState()
        # Aborted transactions (per-segment .txnindex files, see log.txnindex).
        self.txn_index = TxnIndexes(directory)
        # Set by replication (update_high_watermark); None on a single node, where
        # every appended offset is committed at once and the HW is the LEO.
        self._high_watermark: int | None = None
        # Which leader epoch wrote which offsets (leader-epoch-checkpoint, KIP-101).
        self.leader_epochs = LeaderEpochCache(directory / LEADER_EPOCH_FILE)
        # What open() did, for operators and tests: "clean" or "recovered".
        self.open_mode = ""
        self._walked: dict[int, list[BatchSpan]] = {}  # spans seen by the recovery walk
        self.recovered_bytes_truncated = 0
        # False between a clean open (marker unlinked, not yet fsynced) and the first write.
        self._marker_removal_durable = True
        # Whether the files may hold changes no fsync has covered: False only from a clean
        # open that changed nothing until the first write, and after each flush. A
        # partition left idle then closes without fsyncing what is already durable.
        self._unflushed = True
        # Offset of the newest producer-state snapshot on disk (-1: none).
        self._snapshot_offset = -1
        self._trusted_indexes: set[int] = set()  # segments whose indexes open only read
        # True while the log holds no batch and has no leader-epoch-checkpoint file:
        # its first epoch entry can then wait for the next flush (see append).
        self._epochs_from_batches = False
        self._indexes_rebuilt = 0  # segments whose indexes a clean open had to rebuild

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def open(
        cls, directory: Path, config: LogConfig, *, clock: Callable[[], float] = time.time
    ) -> PartitionLog:
        """Open (creating or recovering) the partition log in `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        log = cls(directory, config, clock)
        log._load()
        return log

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _new_segment(self, base_offset: int) -> LogSegment:
        return LogSegment(
            self.directory,
            base_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            segment_index_bytes=self.config.segment_index_bytes,
            created_ms=self._now_ms(),
        )

    def _load(self) -> None:
        d = self.directory
        marker = d / CLEAN_SHUTDOWN_FILE
        # One listing answers "which files exist" for the whole open (start-up time:
        # no stat or failed open per optional file, no second listing for snapshots).
        names = os.listdir(d)
        had_marker = clean = CLEAN_SHUTDOWN_FILE in names
        for name in names:
            if name.endswith(_TEMP_SUFFIXES):
                os.unlink(d / name)
        bases = sorted(
            int(name[:-4]) for name in names if name.endswith(".log") and name[:-4].isdigit()
        )
        base_set = set(bases)
        for name in names:
            stem, _, ext = name.partition(".")
            if ext in ("index", "timeindex") and stem.isdigit() and int(stem) not in base_set:
                os.unlink(d / name)  # orphan of a segment deleted before a crash
        present = set(names)
        self._recovery_point = self._written_rp = (
            read_offset(d / RECOVERY_POINT_FILE, 0) if RECOVERY_POINT_FILE in present else 0
        )
        self._log_start = self._written_ls = (
            read_offset(d / LOG_START_FILE, 0) if LOG_START_FILE in present else 0
        )
        if not bases:
            bases = [self._log_start]
            clean = True  # a new partition: nothing to check
            self.open_mode = "new"
        self._segments = [self._new_segment(b) for b in bases]
        self._bases = list(bases)
        if clean:
            self._load_clean()
            if had_marker and not self.recovered_bytes_truncated and not self._indexes_rebuilt:
                self._unflushed = False  # all fsynced by the close that wrote the marker
        else:
            self._recover()
        self._load_leader_epochs(LEADER_EPOCH_FILE in present)
        leo = self.log_end_offset
        if self._recovery_point > leo:
            self._recovery_point = leo
            self._checkpoint_recovery_point()
        for seg in self._segments[:-1]:
            if seg.base_offset in self._trusted_indexes:
                # Only read by this open, and durable since their roll (or the open that
                # rebuilt them): an fsync of each was start-up time per closed segment.
                seg.index.park()
                seg.time_index.park()
            else:
                seg.park_indexes()
        self._trusted_indexes.clear()
        self._log_start = max(self._log_start, self._segments[0].base_offset)
        if self._log_start > leo:
            # Data below the checkpointed log start was lost: start over there (Kafka does the same).
            self._truncate_fully_and_start_at(self._log_start)
        # LogLoader: the epochs must describe exactly the offsets the log holds.
        self.leader_epochs.truncate_from_end(self.log_end_offset)
        self.leader_epochs.truncate_from_start(self._log_start)
        self.txn_index.load(self._bases, self.log_end_offset)
        # Snapshots are only ever written by roll/close, not during an open.
        self._load_producer_state(list_snapshots(d, names=names))
        if had_marker:
            # Appends are coming: the marker must be gone for good before any of them.
            # Its removal is made durable (directory fsync) by _before_write, right
            # before the first change to the log's files, not here: until then a crash
            # that resurrects the marker finds the log exactly as the marker says, and
            # one fsync per partition was most of a 1,000-partition start-up.
            os.unlink(marker)
            self._marker_removal_durable = False
        self._last_flush_ms = self._now_ms()

    def _before_write(self) -> None:
        """Make the clean-shutdown marker's removal durable before the log's files change."""
        self._unflushed = True
        if not self._marker_removal_durable:
            fsync_dir(self.directory)
            self._marker_removal_durable = True

    def _load_clean(self) -> None:
        self.open_mode = self.open_mode or "clean"
        segs = self._segments
        for i, seg in enumerate(segs):
            last = i == len(segs) - 1
            ok = seg.indexes_ok()
            if ok and last:
                ok = seg.load_tail()
            elif ok:
                self._trust_indexes(seg, segs[i + 1].base_offset)
            if not ok:
                # An index that fails its sanity check is only a cache: rebuild it.
                self._indexes_rebuilt += 1
                truncated, _ = seg.recover()
                if truncated:
                    self.recovered_bytes_truncated += truncated
                    self._drop_segments_after(i)
                    break

    def _trust_indexes(self, seg: LogSegment, next_base: int) -> None:
        """Take a closed segment's max timestamp from its time index and its end from the
        next segment's base, without reading it (its indexes passed their sanity check)."""
        ts, rel = seg.time_index.last_entry()
        if ts >= 0:
            seg.max_timestamp = ts
            seg.offset_of_max_timestamp = seg.base_offset + rel
        seg.next_offset = next_base
        self._trusted_indexes.add(seg.base_offset)

    def _recover(self) -> None:
        self.open_mode = "recovered"
        segs = self._segments
        start = max(bisect_right(self._bases, self._recovery_point) - 1, 0)
        for i, seg in enumerate(segs[:start]):
            if seg.indexes_ok():
                self._trust_indexes(seg, segs[i + 1].base_offset)
                continue
            truncated, _ = seg.recover()
            if truncated:
                # Damage below the recovery point (the disk lost fsynced bytes).
                self.recovered_bytes_truncated += truncated
                self._drop_segments_after(i)
                return
        i = start
        while i < len(self._segments):
            seg = self._segments[i]
            truncated, spans = seg.recover()
            self._walked[seg.base_offset] = spans
            self.recovered_bytes_truncated += truncated
            if truncated:
                self._drop_segments_after(i)
                break
            i += 1
        # No fsync here (it would wait for the whole unflushed tail to reach the
        # disk before the broker can start): the recovery point stays where it
        # was, so a crash before the next flush simply walks the same bytes
        # again, and that flush makes the truncation durable with the data.

    def _load_leader_epochs(self, file_present: bool) -> None:
        """Read leader-epoch-checkpoint; rebuild it from the batch headers when missing or damaged.

        The recovery walk re-assigns the epochs of the batches it read (Kafka's
        LogSegment.recover does), covering appends whose checkpoint write a crash
        cut off. A log written before the file existed is scanned once, headers only.
        """
        path = self.directory / LEADER_EPOCH_FILE
        cache = LeaderEpochCache.load(path) if file_present else None
        if cache is not None:
            self.leader_epochs = cache
            for base in self._bases:
                for h in self._walked.get(base, ()):
                    cache.assign(h.leader_epoch, h.base_offset)
            return
        cache = LeaderEpochCache(path)
        self.leader_epochs = cache
        if self.log_end_offset == self._segments[0].base_offset:
            self._epochs_from_batches = True
            return  # empty: nothing to describe, no file needed yet
        for seg in self._segments:
            walked = self._walked.get(seg.base_offset)
            for h in walked if walked is not None else seg.iter_spans(0):
                cache.assign(h.leader_epoch, h.base_offset, flush=False)
        cache.flush()

    def _checkpoint_recovery_point(self) -> None:
        # Skip unchanged values: each write costs two fsyncs and a rename.
        if self._recovery_point != self._written_rp:
            write_offset(self.directory / RECOVERY_POINT_FILE, self._recovery_point)
            self._written_rp = self._recovery_point

    def _checkpoint_log_start(self) -> None:
        if self._log_start != self._written_ls:
            # Offsets below the log start are gone: so are their epochs (truncateFromStart).
            self.leader_epochs.truncate_from_start(self._log_start)
            write_offset(self.directory / LOG_START_FILE, self._log_start)
            self._written_ls = self._log_start

    def _drop_segments_after(self, i: int) -> None:
        for seg in self._segments[i + 1 :]:
            seg.delete_files()
        del self._segments[i + 1 :]
        del self._bases[i + 1 :]

    def _load_producer_state(self, snapshots: list[int] | None = None) -> None:
        leo = self.log_end_offset
        start = self._segments[0].base_offset
        state: ProducerState | None = None
        if snapshots is None:
            snapshots = list_snapshots(self.directory)
        for off in reversed(snapshots):
            path = snapshot_path(self.directory, off)
            if off > leo:
                os.unlink(path)  # describes batches that recovery or truncation removed
                continue
            try:
                state = ProducerState.from_json(path.read_bytes())
                start = off
                break
            except (OSError, ValueError, TypeError):
                os.unlink(path)
        self.producer_state = state if state is not None else ProducerState()
        self._snapshot_offset = start if state is not None else -1
        # Replay the batches after the snapshot (headers only, no per-record
        # work), reusing what the recovery walk already read.
        i = max(bisect_right(self._bases, start) - 1, 0)
        for seg in self._segments[i:]:
            walked = self._walked.get(seg.base_offset)
            spans = walked if walked is not None else seg.iter_spans(seg.position_for(start))
            for h in spans:
                if h.producer_id >= 0 and h.last_offset >= start:
                    marker, coordinator_epoch = (
                        end_txn_marker(seg.read_batch(h)) if h.is_control else NOT_A_MARKER
                    )
                    done = self.producer_state.update_from_batch(
                        h, h.max_timestamp, marker=marker, coordinator_epoch=coordinator_epoch
                    )
                    # An abort whose index entry was lost in a crash is indexed again.
                    if done is not None and not self.txn_index.has(
                        done.producer_id, done.last_offset
                    ):
                        self._index_abort(seg, done)
        self._walked.clear()

    def _index_abort(self, seg: LogSegment, done: CompletedTxn) -> None:
        if not done.is_aborted:
            return
        # Kafka: the LSO right after the abort (the next open transaction, else past the marker).
        lso = self.producer_state.first_unstable_offset()
        self.txn_index.append(
            seg.base_offset,
            AbortedTxn(
                done.producer_id,
                done.first_offset,
                done.last_offset,
                done.last_offset + 1 if lso is None else lso,
            ),
        )

    def _write_producer_snapshot(self, offset: int) -> None:
        atomic_write(snapshot_path(self.directory, offset), self.producer_state.to_json())
        self._snapshot_offset = offset
        snaps = list_snapshots(self.directory)
        for old in snaps[:-_SNAPSHOTS_TO_KEEP]:
            os.unlink(snapshot_path(self.directory, old))

    # -- offsets -----------------------------------------------------------------------
    @property
    def _active(self) -> LogSegment:
        return self._segments[-1]

    @property
    def log_start_offset(self) -> int:
        """First offset a consumer may fetch."""
        return self._log_start

    @property
    def log_end_offset(self) -> int:
        """Offset the next appended record will get (LEO)."""
        return self._active.next_offset

    @property
    def high_watermark(self) -> int:
        """Last committed offset + 1; equals the LEO on a single node."""
        hw = self._high_watermark
        if hw is None:
            return self.log_end_offset
        return max(self._log_start, min(hw, self.log_end_offset))

    @property
    def replicated(self) -> bool:
        """Whether replication sets the high watermark (else it follows the LEO)."""
        return self._high_watermark is not None

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark as replication learns it (UnifiedLog.updateHighWatermark).

        Clamped to [log start, LEO]; from then on the high watermark no longer
        follows the LEO by itself. Returns the value set.
        """
        hw = max(self._log_start, min(offset, self.log_end_offset))
        self._high_watermark = hw
        return hw

    @property
    def last_stable_offset(self) -> int:
        """First offset of the earliest open transaction, else the high watermark (KIP-98 LSO)."""
        hw = self.high_watermark
        first_unstable = self.producer_state.first_unstable_offset()
        return hw if first_unstable is None else min(first_unstable, hw)

    def aborted_transactions(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper_bound) (read_committed fetch)."""
        return self.txn_index.collect(fetch_offset, upper_bound)

    @property
    def recovery_point(self) -> int:
        """Offsets below this are known to be fsynced."""
        return self._recovery_point

    @property
    def size_in_bytes(self) -> int:
        """Total bytes of all segment files."""
        return sum(s.size for s in self._segments)

    def segment_base_offsets(self) -> list[int]:
        """Base offsets of the segments, oldest first."""
        return list(self._bases)

    # -- append ----------------------------------------------------------------------------
    def append(
        self,
        records: bytes | bytearray | memoryview,
        *,
        leader_epoch: int = 0,
        log_append_time: bool = False,
        header: BatchHeader | None = None,
    ) -> AppendResult:
        """Append already-validated batches: assign offsets in place, write, index.

        ``header``: the header of the one batch ``records`` holds, as the caller read it
        validating the batch (a Produce request). The log then takes the fields it needs
        from it instead of parsing the header again (~10 k instructions, as much as
        the rest of the header work of an append).
        """
        view = memoryview(records)
        n = len(view)
        if (
            header is not None
            and header.batch_length + LOG_OVERHEAD == n
            and n > RECORD_BATCH_OVERHEAD
            and not log_append_time
            and not header.attributes & ATTR_CONTROL
            and self._marker_removal_durable
            and not self._epochs_from_batches
            and not self._closed
        ):
            # One data batch whose header the caller read: the usual Produce append. What
            # the loop below does for such a batch, without its lists and copies: the roll
            # check, the epoch, one pwritev of a 16-byte prefix (base offset, length,
            # leader epoch: fields the CRC does not cover) followed by the received bytes,
            # the producer state. Taken only when nothing else is due first (an open log,
            # the clean-shutdown marker's removal already durable, the log's first leader
            # epoch already assigned). Inline, not a method: one frame less per request.
            self._unflushed = True
            seg = self._segments[-1]
            base = seg.next_offset
            last = base + header.last_offset_delta
            max_ts = header.max_timestamp
            now_ms = int(self._clock() * 1000)
            if self._should_roll(n, max_ts, last, now_ms):
                self.roll()
                seg = self._segments[-1]
            self.leader_epochs.assign(leader_epoch, base)
            seg.append_batch(
                [BATCH_PREFIX.pack(base, header.batch_length, leader_epoch), view[16:]],
                n,
                last,
                max_ts,
            )
            if header.producer_id >= 0:
                done = self.producer_state.update_from_batch(header, max_ts, base)
                if done is not None:
                    self._index_abort(seg, done)
            self._after_append(seg, last - base + 1, now_ms)
            # tuple.__new__: the NamedTuple's own __new__ is a Python function binding
            # four arguments, once per Produce request.
            return _new_result(AppendResult, (base, last, -1, self._log_start))
        self._check_open()
        self._before_write()
        if n == 0:
            raise LogError("nothing to append")
        first: BatchHeader | BatchSpan | None = parse_span(view, 0) if header is None else header
        first_size = -1 if first is None else first.size
        rest: memoryview | None = None
        if (
            first is not None
            and first_size == n
            and n > RECORD_BATCH_OVERHEAD
            and not log_append_time
            and not first.is_control
        ):
            # The usual Produce append, one batch: patch a copy of its header only and
            # write header + the rest as received (pwritev), no copy of the records.
            buf = bytearray(view[:RECORD_BATCH_OVERHEAD])
            rest = view[RECORD_BATCH_OVERHEAD:]
        else:
            buf = bytearray(records)  # the single copy; offsets are patched into it
        now_ms = self._now_ms()
        base = offset = self.log_end_offset
        batches: list[tuple[int, int, int, int]] = []
        producer_batches: list[tuple[BatchHeader | BatchSpan, int, int, int]] = []
        max_ts_all = -1
        messages = 0
        pos = 0
        while pos < n:
            # The server validated the batches; only the header fields are needed here
            # (the first batch's were read above, from the same bytes, or given).
            h: BatchHeader | BatchSpan | None
            if pos == 0 and first is not None:
                h, size = first, first_size
            else:
                h = parse_span(buf, pos)
                if h is None:
                    raise LogError(f"bad batch header at byte {pos} of the append")
                size = h.size
            if pos + size > n:
                raise LogError(f"batch at byte {pos} overruns the append")
            set_base_offset(buf, pos, offset)
            set_partition_leader_epoch(buf, pos, leader_epoch)
            max_ts = h.max_timestamp
            if log_append_time:
                # KIP-32: the broker stamps the batch; max_timestamp is CRC-covered.
                set_log_append_time(buf, pos, now_ms)
                max_ts = now_ms
            last = offset + h.last_offset_delta
            batches.append((pos, size, last, max_ts))
            if h.producer_id >= 0:
                producer_batches.append((h, pos, offset, max_ts))
            max_ts_all = max(max_ts_all, max_ts)
            messages += h.last_offset_delta + 1
            offset = last + 1
            pos += size
        if self._should_roll(n, max_ts_all, offset - 1, now_ms):
            self.roll()
        # UnifiedLog.append: a batch of a newer leader epoch starts a new epoch entry.
        # The first entry of a new log (no checkpoint file, no batch before this one)
        # says exactly what this batch's header says, and _load_leader_epochs rebuilds
        # a missing file from the batches; so that entry is written at the log's next
        # flush, roll or close, and a crash before then rebuilds the same entry. Kafka
        # does not write it on the produce path either (Partition.makeLeader assigns
        # it when the replica becomes leader). Creating the file here (a new inode,
        # two fsyncs) cost ~0.7 ms of CPU on the first produce to each partition.
        if not (
            self._epochs_from_batches
            and base == self._segments[0].base_offset
            and self.leader_epochs.assign_first_unwritten(leader_epoch, base)
        ):
            self.leader_epochs.assign(leader_epoch, base)
        self._epochs_from_batches = False
        seg = self._active
        seg.append(buf if rest is None else [buf, rest], batches)
        for h, at, first_offset, ts in producer_batches:
            marker, coordinator_epoch = end_txn_marker(buf, at) if h.is_control else NOT_A_MARKER
            done = self.producer_state.update_from_batch(
                h, ts, first_offset, marker=marker, coordinator_epoch=coordinator_epoch
            )
            if done is not None:
                self._index_abort(seg, done)
        self._after_append(seg, messages, now_ms)
        return AppendResult(base, offset - 1, now_ms if log_append_time else -1, self._log_start)

    def append_as_follower(self, records: bytes | bytearray | memoryview) -> AppendResult:
        """Append a leader's batches unchanged (a follower's fetch): offsets, epochs, CRCs as sent.

        Kafka's UnifiedLog.appendAsFollower: the batches must be whole and
        CRC-valid, their offsets increasing and at or past the log end offset
        (gaps are allowed: the leader's log may be compacted). Producer state,
        the transaction index and the leader epochs follow the batches exactly
        as on the leader, so this replica can take over as leader.
        """
        self._check_open()
        view = memoryview(records)
        n = len(view)
        end, spans = valid_spans(view)
        if not spans or end != n:
            raise LogError(
                f"follower append of {n} bytes holds a corrupt or partial batch at {end}"
            )
        leo = self.log_end_offset
        expected = leo
        for h in spans:
            if h.base_offset < expected:
                # Kafka's UnexpectedAppendOffsetException: the fetcher must truncate first.
                raise LogError(
                    f"follower append at offset {h.base_offset} below the expected {expected}"
                )
            expected = h.next_offset
        self._before_write()
        now_ms = self._now_ms()
        max_ts_all = max(h.max_timestamp for h in spans)
        if self._should_roll(n, max_ts_all, spans[-1].last_offset, now_ms):
            self.roll()
        for h in spans:
            self.leader_epochs.assign(h.leader_epoch, h.base_offset)
        seg = self._active
        seg.append(
            [view],
            [(h.pos, h.size, h.last_offset, h.max_timestamp) for h in spans],
        )
        for h in spans:
            if h.producer_id >= 0:
                marker, coordinator_epoch = (
                    end_txn_marker(view, h.pos) if h.is_control else NOT_A_MARKER
                )
                done = self.producer_state.update_from_batch(
                    h,
                    h.max_timestamp,
                    h.base_offset,
                    marker=marker,
                    coordinator_epoch=coordinator_epoch,
                )
                if done is not None:
                    self._index_abort(seg, done)
        messages = sum(h.last_offset_delta + 1 for h in spans)
        self._after_append(seg, messages, now_ms)
        return AppendResult(spans[0].base_offset, spans[-1].last_offset, -1, self._log_start)

    def _should_roll(self, size: int, max_ts: int, last_offset: int, now_ms: int) -> bool:
        # Kafka's LogSegment.shouldRoll (without roll jitter). Run on every append: the
        # segment and its fields are read once each, and the index check is last.
        seg = self._segments[-1]
        seg_size = seg.size
        if seg_size == 0:
            return False
        cfg = self.config
        if seg_size > cfg.segment_bytes - size:
            return True
        rolling = seg.rolling_timestamp
        waited = (
            max_ts - rolling if rolling is not None and rolling >= 0 else now_ms - seg.created_ms
        )
        if waited > cfg.segment_ms or last_offset - seg.base_offset > INT32_MAX:
            return True
        return seg.indexes_full  # Kafka's offsetIndex.isFull || timeIndex.isFull

    def _after_append(self, seg: LogSegment, messages: int, now_ms: int) -> None:
        cfg = self.config
        self._unflushed_messages += messages
        if cfg.fsync_every_append:
            os.fdatasync(seg.fd)
        if (
            cfg.flush_interval_messages is not None
            and self._unflushed_messages >= cfg.flush_interval_messages
        ) or (
            cfg.flush_interval_ms is not None
            and now_ms - self._last_flush_ms >= cfg.flush_interval_ms
        ):
            self.flush()

    def roll(self) -> None:
        """Close the active segment and start a new one at the LEO (no-op when it is empty)."""
        self._check_open()
        old = self._active
        if old.size == 0:
            return
        self._before_write()
        self.leader_epochs.flush_unwritten()
        old.seal()
        new = self._new_segment(self.log_end_offset)
        self._segments.append(new)
        self._bases.append(new.base_offset)
        fsync_dir(self.directory)
        # Kafka flushes the rolled segment and moves the recovery point past it,
        # so an unclean restart only walks the active segment.
        for seg in self._segments[:-1]:
            if seg.next_offset > self._recovery_point or seg is old:
                seg.fsync()
        old.park_indexes()
        self._recovery_point = max(self._recovery_point, new.base_offset)
        self._checkpoint_recovery_point()
        self._write_producer_snapshot(new.base_offset)

    # -- read ---------------------------------------------------------------------------
    def read(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None, min_one: bool = True
    ) -> ReadResult:
        """Whole batches from the one holding `offset`, up to `max_bytes` (first batch whole if min_one)."""
        self._check_open()
        leo = self.log_end_offset
        if offset < self._log_start or offset > leo:
            raise OffsetOutOfRange(offset, self._log_start, leo)
        limit = leo if max_offset is None else min(max_offset, leo)
        regions: list[FileRegion] = []
        total = 0
        first = -1
        next_offset = offset
        i = max(bisect_right(self._bases, offset) - 1, 0)
        done = offset >= limit
        while not done and i < len(self._segments):
            seg = self._segments[i]
            i += 1
            start, taken, seg_first, seg_next, done = seg.read_range(
                seg.position_for(offset), offset, limit, max_bytes - total, min_one and total == 0
            )
            if start >= 0:
                handle = seg.handle
                regions.append(FileRegion(handle.fd, start, taken, handle))
                total += taken
                if first < 0:
                    first = seg_first
                next_offset = seg_next
        return ReadResult(
            regions, total, first, next_offset, self._log_start, self.high_watermark, leo
        )

    def _iter_spans_from(self, offset: int) -> Iterator[tuple[LogSegment, BatchSpan]]:
        i = max(bisect_right(self._bases, offset) - 1, 0)
        for seg in self._segments[i:]:
            for h in seg.iter_spans(seg.position_for(offset)):
                if h.last_offset >= offset:
                    yield seg, h

    # -- timestamps -------------------------------------------------------------------------
    def offset_for_timestamp(self, ts_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= ts_ms (ListOffsets), else None."""
        self._check_open()
        for seg in self._segments:
            if seg.max_timestamp < ts_ms or seg.size == 0:
                continue
            rel = seg.time_index.lookup_before(ts_ms)
            start = max(seg.base_offset + max(rel, 0), self._log_start)
            for h in seg.iter_spans(seg.position_for(start)):
                if h.last_offset < self._log_start or h.max_timestamp < ts_ms:
                    continue
                for r in iter_records(seg.read_batch(h)):
                    if r.offset >= self._log_start and r.timestamp >= ts_ms:
                        return r.offset, r.timestamp
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with the largest timestamp (KIP-734), else None."""
        self._check_open()
        best: LogSegment | None = None
        for seg in self._segments:
            if (
                seg.size
                and seg.max_timestamp >= 0
                and (best is None or seg.max_timestamp > best.max_timestamp)
            ):
                best = seg
        if best is None:
            return None
        found = best.find_batch(best.offset_of_max_timestamp)
        if found is not None:
            for r in iter_records(best.read_batch(found)):
                if r.timestamp == best.max_timestamp:
                    return r.offset, r.timestamp
        return best.offset_of_max_timestamp, best.max_timestamp

    # -- truncation / deletion ----------------------------------------------------------------------
    def truncate_to(self, offset: int) -> None:
        """Remove every batch at or after the one holding `offset` (the LEO becomes <= offset)."""
        self._check_open()
        if offset < 0:
            raise LogError(f"cannot truncate to negative offset {offset}")
        if offset >= self.log_end_offset:
            return
        self._before_write()
        if offset < self._log_start or offset <= self._segments[0].base_offset:
            self._truncate_fully_and_start_at(offset)
        else:
            while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
                self._segments.pop().delete_files()
                self._bases.pop()
            self._active.truncate_to(offset)
            if self.log_end_offset < self._log_start:
                # The batch holding `offset` straddled the log start: what is left lies
                # wholly below it and can never be read, and the LEO may not fall below
                # the log start (reopening would say otherwise). Start empty at the log start.
                self._truncate_fully_and_start_at(self._log_start)
        fsync_dir(self.directory)
        # Kafka's UnifiedLog.truncateTo: epochs starting at or past the new end go,
        # and the high watermark is never above the log end.
        self.leader_epochs.truncate_from_end(self.log_end_offset)
        if self._high_watermark is not None:
            self._high_watermark = min(self._high_watermark, self.log_end_offset)
        self.txn_index.truncate(self.log_end_offset, self._bases)
        for snap in list_snapshots(self.directory):
            if snap > self.log_end_offset:
                os.unlink(snapshot_path(self.directory, snap))
        # Kafka reloads producer state after a truncation: a transaction whose
        # marker was cut off is open again (it holds the LSO back).
        self._load_producer_state()
        if self._recovery_point > self.log_end_offset:
            self._recovery_point = self.log_end_offset
            self._checkpoint_recovery_point()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Delete every batch and restart the log, empty, at `offset`.

        Kafka's UnifiedLog.truncateFullyAndStartAt: a follower whose log ends before
        the leader's log start cannot fetch the gap, so it starts over there.
        """
        self._check_open()
        self._before_write()
        self._truncate_fully_and_start_at(offset)
        fsync_dir(self.directory)
        self.txn_index.load(self._bases, self.log_end_offset)
        for snap in list_snapshots(self.directory):
            os.unlink(snapshot_path(self.directory, snap))
        self._snapshot_offset = -1

    def _truncate_fully_and_start_at(self, offset: int) -> None:
        self._unflushed = True
        self._walked.clear()
        for seg in self._segments:
            seg.delete_files()
        self._segments = [self._new_segment(offset)]
        self._bases = [offset]
        self._log_start = offset
        self._recovery_point = min(self._recovery_point, offset)
        self.producer_state.clear()
        self.leader_epochs.clear()  # truncateFullyAndStartAt: clearAndFlush
        self._epochs_from_batches = False
        if self._high_watermark is not None:
            self._high_watermark = offset
        self._checkpoint_log_start()
        self._checkpoint_recovery_point()

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start to `offset` (-1 = high watermark); returns the new low watermark."""
        self._check_open()
        hw = self.high_watermark
        if offset == -1:
            offset = hw
        if offset < 0 or offset > hw:
            raise OffsetOutOfRange(offset, self._log_start, hw)
        if offset > self._log_start:
            self._before_write()
            self._log_start = offset
            # Checkpoint first: after a crash the old segments may still be
            # there, but the log start offset already hides them.
            self._checkpoint_log_start()
            self._delete_segments_while(
                lambda seg, nxt: nxt is not None and nxt.base_offset <= offset
            )
        return self._log_start

    def _delete_segments_while(self, pred: Callable[[LogSegment, LogSegment | None], bool]) -> int:
        """Delete oldest segments while pred(segment, next segment) holds; never the active one."""
        deleted = 0
        while len(self._segments) > 1 and pred(self._segments[0], self._segments[1]):
            self._before_write()
            seg = self._segments.pop(0)
            self._bases.pop(0)
            seg.delete_files()
            deleted += 1
        if deleted:
            fsync_dir(self.directory)
            if self._segments[0].base_offset > self._log_start:
                self._log_start = self._segments[0].base_offset
                self._checkpoint_log_start()
        return deleted

    def enforce_retention(self) -> int:
        """Delete whole closed segments past retention.ms / retention.bytes; returns how many."""
        self._check_open()
        cfg = self.config
        if not cfg.delete:
            return 0
        deleted = 0
        if cfg.retention_ms >= 0:
            now_ms = self._now_ms()

            def expired(seg: LogSegment, _nxt: LogSegment | None) -> bool:
                # Kafka: by the segment's largest timestamp, else its file mtime.
                largest = seg.max_timestamp
                if largest < 0:
                    largest = int(os.stat(seg.log_path).st_mtime * 1000)
                return now_ms - largest > cfg.retention_ms

            deleted += self._delete_segments_while(expired)
        if cfg.retention_bytes >= 0:
            excess = self.size_in_bytes - cfg.retention_bytes

            def too_big(seg: LogSegment, _nxt: LogSegment | None) -> bool:
                nonlocal excess
                if excess - seg.size >= 0:
                    excess -= seg.size
                    return True
                return False

            deleted += self._delete_segments_while(too_big)
        return deleted

    # -- compaction -------------------------------------------------------------------------
    def compact(self) -> None:
        """Compact closed segments when cleanup.policy includes compact (see log.cleaner)."""
        self._check_open()
        if not self.config.compact:
            return
        if len(self._segments) > 1:  # the cleaner only rewrites closed segments
            self._before_write()
        rewritten = clean_segments(
            self._segments[:-1],
            now_ms=self._now_ms(),
            min_compaction_lag_ms=self.config.min_compaction_lag_ms,
            delete_retention_ms=self.config.delete_retention_ms,
            first_unstable_offset=self.producer_state.first_unstable_offset(),
            aborted_txns=self.txn_index.all(),
            producer_last_offset=self._producer_last_offset,
            reopen_segment=self._reopen_cleaned,
            directory=self.directory,
        )
        # Closed segments emptied by cleaning carry nothing; the first one stays so
        # the log start offset does not move.
        dropped = 0
        for seg in list(self._segments[1:-1]):
            if seg.size == 0:
                i = self._segments.index(seg)
                del self._segments[i]
                del self._bases[i]
                seg.delete_files()
                dropped += 1
        if rewritten or dropped:
            fsync_dir(self.directory)

    def _reopen_cleaned(self, base_offset: int) -> LogSegment:
        """Open the rewritten segment file at ``base_offset`` in place of the old segment."""
        fresh = self._new_segment(base_offset)
        self._segments[self._bases.index(base_offset)] = fresh
        return fresh

    def _producer_last_offset(self, producer_id: int) -> int | None:
        entry = self.producer_state.lookup(producer_id)
        return None if entry is None else entry.last_offset

    # -- durability / lifecycle -------------------------------------------------------------------
    def flush(self) -> None:
        """fsync everything and move the recovery point to the LEO."""
        self._check_open()
        self.leader_epochs.flush_unwritten()
        if self._unflushed:
            for seg in self._segments:
                if seg.next_offset > self._recovery_point or seg is self._active:
                    seg.fsync()
            self._unflushed = False
        self._recovery_point = self.log_end_offset
        self._checkpoint_recovery_point()
        self._unflushed_messages = 0
        self._last_flush_ms = self._now_ms()

    def update_config(self, config: LogConfig) -> None:
        """Apply new settings (new segments pick up index sizes)."""
        self.config = config
        for seg in self._segments:
            seg.index_interval_bytes = config.index_interval_bytes

    def close(self, *, sync_marker: bool = True) -> None:
        """Flush, checkpoint, and write the clean-shutdown marker.

        Work already durable is not redone: a partition idle since a clean open
        skips the fsyncs and keeps its producer snapshot (Kafka takes one only for
        a new offset). With ``sync_marker`` False the caller fsyncs the directory
        afterwards (closing many logs, one journal commit can then cover all
        their markers).
        """
        if self._closed:
            return
        entries = len(self._active.time_index)
        self._active.seal()
        if len(self._active.time_index) != entries:
            self._unflushed = True
        self.flush()
        self._checkpoint_log_start()
        if self._snapshot_offset != self.log_end_offset:
            self._write_producer_snapshot(self.log_end_offset)
        for seg in self._segments:
            seg.close()
        # Empty, so nothing to tear: created in place; its directory entry is what must last.
        create_empty(self.directory / CLEAN_SHUTDOWN_FILE)
        if sync_marker:
            fsync_dir(self.directory)
        self._closed = True

    def abandon(self) -> None:
        """Close descriptors without any shutdown work (simulates a crash in tests and benches)."""
        for seg in self._segments:
            seg.close()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"log {self.directory} is closed")
