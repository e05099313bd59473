"""Leader epochs of one partition log: Kafka's LeaderEpochFileCache (KIP-101, KIP-279).

How it works: the cache is a list of (epoch, start offset) entries, both
strictly increasing; an entry says "from this offset on, batches were written
by the leader of this epoch". It is filled as batches are appended (a batch
whose partition leader epoch is newer than the latest entry starts a new
entry at its base offset), and kept consistent with the log: truncating the
end of the log drops the entries that start at or past the new end, moving the
log start forward moves the oldest surviving entry up to it.

It answers OffsetForLeaderEpoch: the end offset of an epoch is the start
offset of the next higher epoch, or the log end offset for the latest epoch.
A follower asks its new leader that question for its own latest epoch and
truncates its log to the answer before fetching, so replicas never diverge.

The file, ``leader-epoch-checkpoint`` in the partition directory, has Kafka's
CheckpointFile format: a version line ``0``, a count line, then one
``epoch startOffset`` line per entry. It is rewritten atomically whenever the
entries change, with one exception (``assign_first_unwritten``): the first entry
of a log that has no file and no batches yet, which the log writes at its next
flush, roll or close instead (see PartitionLog.append for why that loses nothing).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from pathlib import Path

from kbroker.log.checkpoint import atomic_write

LEADER_EPOCH_FILE = "leader-epoch-checkpoint"
# Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET (RecordBatch.NO_PARTITION_LEADER_EPOCH).
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1
_VERSION = 0


class LeaderEpochCache:
    """(epoch, start offset) entries of one log, persisted to ``leader-epoch-checkpoint``."""

    def __init__(self, path: Path, entries: list[tuple[int, int]] | None = None) -> None:
        self.path = path
        self._epochs: list[int] = []
        self._starts: list[int] = []
        # Entries not in the file yet (assign_first_unwritten); flush() writes them.
        self.unwritten = False
        # Whether this cache has written its file (then the file holds what it says).
        self._written = False
        for epoch, start in entries or ():
            self._epochs.append(epoch)
            self._starts.append(start)

    @classmethod
    def load(cls, path: Path) -> LeaderEpochCache | None:
        """The cache stored at `path`; None when the file is missing or damaged."""
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return None
        try:
            if len(lines) < 2 or int(lines[0]) != _VERSION:
                return None
            count = int(lines[1])
            if count < 0 or len(lines) != count + 2:
                return None
            entries = []
            for line in lines[2:]:
                epoch_text, start_text = line.split(" ")
                entries.append((int(epoch_text), int(start_text)))
        except ValueError:
            return None
        cache = cls(path)
        # Assigning each entry drops any that are out of order, as Kafka's loader does.
        for epoch, start in entries:
            cache._insert(epoch, start)
        return cache

    # -- queries ---------------------------------------------------------------------
    def entries(self) -> list[tuple[int, int]]:
        """All (epoch, start offset) entries, oldest first."""
        return list(zip(self._epochs, self._starts, strict=True))

    @property
    def latest_epoch(self) -> int:
        """The newest epoch, UNDEFINED_EPOCH when empty."""
        return self._epochs[-1] if self._epochs else UNDEFINED_EPOCH

    @property
    def earliest_epoch(self) -> int:
        """The oldest epoch still in the log, UNDEFINED_EPOCH when empty."""
        return self._epochs[0] if self._epochs else UNDEFINED_EPOCH

    def epoch_for_offset(self, offset: int) -> int:
        """The epoch whose leader wrote `offset`, UNDEFINED_EPOCH if before every entry."""
        i = bisect_right(self._starts, offset) - 1
        return self._epochs[i] if i >= 0 else UNDEFINED_EPOCH

    def previous_epoch(self, epoch: int) -> int:
        """The largest epoch below `epoch`, UNDEFINED_EPOCH if none (KIP-320's fetcher uses it)."""
        i = bisect_left(self._epochs, epoch) - 1
        return self._epochs[i] if i >= 0 else UNDEFINED_EPOCH

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) per LeaderEpochFileCache.endOffsetFor.

        - undefined epoch asked, or one above every known epoch: (-1, -1);
        - the latest epoch: it is still being written, its end is the LEO;
        - otherwise the largest known epoch <= requested, ending where the next
          higher epoch starts; an epoch below every entry is answered with itself
          and the first entry's start offset.
        """
        if requested_epoch == UNDEFINED_EPOCH or not self._epochs:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested_epoch == self._epochs[-1]:
            return requested_epoch, log_end_offset
        higher = bisect_right(self._epochs, requested_epoch)
        if higher == len(self._epochs):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:
            return requested_epoch, self._starts[0]
        return self._epochs[higher - 1], self._starts[higher]

    # -- changes -----------------------------------------------------------------------
    def assign(self, epoch: int, start_offset: int, *, flush: bool = True) -> bool:
        """Record that `epoch` starts at `start_offset` (an append); True if the cache changed.

        Like Kafka's assign: an epoch equal to the latest at a later offset is no
        change; an entry that is not monotonic with the existing ones replaces
        every entry with an epoch >= it or starting at or after it.
        """
        if epoch < 0:
            return False  # batches written before KIP-101 carry no epoch
        if self._epochs and epoch == self._epochs[-1] and start_offset >= self._starts[-1]:
            return False
        self._insert(epoch, start_offset)
        if flush:
            self.flush()
        return True

    def assign_first_unwritten(self, epoch: int, start_offset: int) -> bool:
        """The first entry, kept in memory only until ``flush``/``flush_unwritten``.

        Only for a cache with no entries that has not written its file: the caller
        vouches that there is no file and that, until the write, the same entry can
        be rebuilt from the log itself. False (nothing done) otherwise.
        """
        if self._epochs or self._written or not self.assign(epoch, start_offset, flush=False):
            return False
        self.unwritten = True
        return True

    def flush_unwritten(self) -> None:
        """Write the file if it lacks entries (assign_first_unwritten)."""
        if self.unwritten:
            self.flush()

    def _insert(self, epoch: int, start_offset: int) -> None:
        while self._epochs and (self._epochs[-1] >= epoch or self._starts[-1] >= start_offset):
            self._epochs.pop()
            self._starts.pop()
        self._epochs.append(epoch)
        self._starts.append(start_offset)

    def truncate_from_end(self, end_offset: int) -> bool:
        """Drop entries starting at or after `end_offset` (the log was truncated there)."""
        if end_offset < 0 or not self._starts or self._starts[-1] < end_offset:
            return False
        keep = bisect_left(self._starts, end_offset)
        del self._epochs[keep:]
        del self._starts[keep:]
        self.flush()
        return True

    def truncate_from_start(self, start_offset: int) -> bool:
        """Forget offsets below `start_offset`: the epoch holding it now starts there."""
        floor = bisect_right(self._starts, start_offset) - 1
        if floor < 0 or (floor == 0 and self._starts[0] == start_offset):
            return False
        epoch = self._epochs[floor]
        del self._epochs[: floor + 1]
        del self._starts[: floor + 1]
        self._epochs.insert(0, epoch)
        self._starts.insert(0, start_offset)
        self.flush()
        return True

    def clear(self) -> None:
        """Remove every entry (the log was emptied)."""
        if self._epochs or self.path.exists():
            self._epochs.clear()
            self._starts.clear()
            self.flush()

    def flush(self) -> None:
        """Write the checkpoint file atomically."""
        lines = [str(_VERSION), str(len(self._epochs))]
        lines += [f"{e} {s}" for e, s in zip(self._epochs, self._starts, strict=True)]
        atomic_write(self.path, ("\n".join(lines) + "\n").encode())
        self.unwritten = False
        self._written = True
