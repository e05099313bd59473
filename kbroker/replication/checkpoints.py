"""The data directory's replication-offset-checkpoint and recovery-point-offset-checkpoint.

Kafka's ReplicaManager writes every partition's high watermark to
``replication-offset-checkpoint`` every replica.high.watermark.checkpoint.interval.ms
(5 s), and LogManager every log's recovery point to ``recovery-point-offset-checkpoint``
every log.flush.offset.checkpoint.interval.ms; both once more at shutdown. A
restarted replica starts from its checkpointed high watermark (never above its
LEO), so consumers never see offsets a restart cannot vouch for.

Both files have Kafka's OffsetCheckpointFile format (``kbroker.log.checkpoint.write_offsets``).
In the broker's maintenance task the files are written on a worker thread (Kafka's
kafka-scheduler threads do the same): each write fsyncs the file and the directory,
which takes milliseconds on an idle disk and far more while the disk flushes
gigabytes, and on the event loop every request in flight would wait for it,
replicated acks=all produces most of all (they wait on three brokers). The offsets
are read on the event loop first, so the thread never touches a live log.

The recovery a partition log actually relies on is still its own per-directory
checkpoint (see ``kbroker.log.checkpoint``); this file mirrors it in Kafka's layout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import trio

from kbroker.log.checkpoint import read_offsets, write_offsets
from kbroker.log.errors import LogError
from kbroker.topics import Partition

logger = logging.getLogger(__name__)

REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
# Kafka's replica.high.watermark.checkpoint.interval.ms default.
HIGH_WATERMARK_CHECKPOINT_INTERVAL_S = 5.0


class OffsetCheckpoints:
    """Writes the two per-data-dir checkpoints, skipping a write when nothing changed."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._written: dict[str, dict[tuple[str, int], int]] = {}

    def _write(self, name: str, entries: dict[tuple[str, int], int]) -> bool:
        if self._written.get(name) == entries:
            return False
        write_offsets(self.data_dir / name, entries)
        self._written[name] = entries
        return True

    def write_high_watermarks(self, partitions: Iterable[Partition]) -> bool:
        """Checkpoint every partition's high watermark; True if the file was rewritten."""
        return self._write(
            REPLICATION_OFFSET_CHECKPOINT,
            {(p.topic.name, p.index): p.log.high_watermark for p in partitions},
        )

    def write_recovery_points(self, partitions: Iterable[Partition]) -> bool:
        """Checkpoint every log's recovery point; True if the file was rewritten."""
        return self._write(
            RECOVERY_POINT_CHECKPOINT,
            {(p.topic.name, p.index): p.log.recovery_point for p in partitions},
        )

    async def write_high_watermarks_in_thread(self, partitions: Iterable[Partition]) -> bool:
        """``write_high_watermarks``, the file written on a worker thread."""
        entries = {(p.topic.name, p.index): p.log.high_watermark for p in partitions}
        return await trio.to_thread.run_sync(self._write, REPLICATION_OFFSET_CHECKPOINT, entries)

    async def write_recovery_points_in_thread(self, partitions: Iterable[Partition]) -> bool:
        """``write_recovery_points``, the file written on a worker thread."""
        entries = {(p.topic.name, p.index): p.log.recovery_point for p in partitions}
        return await trio.to_thread.run_sync(self._write, RECOVERY_POINT_CHECKPOINT, entries)

    def write_all(self, partitions: Iterable[Partition]) -> None:
        """Both checkpoints (at shutdown)."""
        parts = list(partitions)
        self.write_high_watermarks(parts)
        self.write_recovery_points(parts)

    def high_watermarks(self) -> dict[tuple[str, int], int]:
        """The checkpointed high watermarks; empty when the file is missing or damaged.

        A replica that becomes leader or follower sets its log's high watermark from
        here (Partition.createLogIfNotExists): ``ReplicatedPartition(..., high_watermark=...)``.
        """
        try:
            return read_offsets(self.data_dir / REPLICATION_OFFSET_CHECKPOINT)
        except (LogError, OSError):
            logger.warning("ignoring a damaged %s", REPLICATION_OFFSET_CHECKPOINT, exc_info=True)
            return {}
