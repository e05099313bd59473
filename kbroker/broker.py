"""The broker's state: config, topics, cluster identity, append notifications.

``BrokerState`` is what handlers reach through ``ctx.broker``. It does no network
I/O; ``kbroker.server`` owns the sockets and runs ``BrokerState``'s maintenance
steps (retention, compaction, time-based flush) on their Kafka intervals.

The data dir holds Kafka's ``meta.properties`` (``cluster.id`` generated once,
``node.id``, ``version=1``) and a ``.lock`` file held with ``flock`` so two
brokers never share one directory (Kafka does the same).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import trio

from kbroker.config import BrokerConfig, ConfigError
from kbroker.log.checkpoint import atomic_write
from kbroker.log.errors import LogError
from kbroker.replication.checkpoints import OffsetCheckpoints
from kbroker.topic_config import effective_topic_value
from kbroker.topics import Partition, TopicManager, random_kafka_uuid, uuid_to_base64

if TYPE_CHECKING:
    from kbroker.cluster.node import ClusterNode

logger = logging.getLogger(__name__)

META_PROPERTIES = "meta.properties"
LOCK_FILE = ".lock"


def read_meta_properties(path: Path) -> dict[str, str]:
    """Read Kafka's meta.properties (plain key=value lines, # comments)."""
    from kbroker.config import parse_properties

    return parse_properties(path.read_text())


@contextlib.contextmanager
def logged_failure(log: logging.Logger, message: str, *args: object) -> Iterator[None]:
    """Log an exception of the block (``message % args``, with its traceback) and go on:
    for steps whose failure must not stop the ones after them (closing, maintenance)."""
    try:
        yield
    except Exception:
        log.exception(message, *args)


class BrokerState:
    """One node's state: ``config``, ``topics``, ``cluster_id``, ``node_id``, ``clock``."""

    def __init__(
        self,
        config: BrokerConfig,
        *,
        clock: Callable[[], float] = time.time,
        cluster_id: str | None = None,
    ) -> None:
        """``cluster_id``: the id of the cluster joined (cluster mode, from /cluster/id);
        a data dir that belongs to another cluster is refused."""
        self.config = config
        self.node_id = config.node_id
        self.clock = clock
        self.data_dir = config.data_dir
        # Per-broker state owned by handler modules (producer ids, groups...), keyed by
        # module name, so handler families need no field here.
        self.state: dict[str, Any] = {}
        # (host, port) actually bound; set by kbroker.server once listening.
        self.listen_address: tuple[str, int] | None = None
        # The same for every listener, by listener name (the first is listen_address).
        self.listen_addresses: dict[str, tuple[str, int]] = {}
        # Cluster mode (zookeeper.connect): the ClusterNode, set by kbroker.server; None
        # on a single node, where this broker is the whole cluster.
        self.cluster: ClusterNode | None = None
        # Made by the first wait_for_append after an append: an append that nobody
        # waits for (every Produce without a parked fetch) builds and sets no Event.
        self._append_event: trio.Event | None = None
        # The data dir's replication-offset-checkpoint / recovery-point-offset-checkpoint.
        self.offset_checkpoints = OffsetCheckpoints(config.data_dir)
        self._lock_file: IO[bytes] | None = None
        self._last_flush: dict[int, float] = {}
        self._compacted_at: dict[int, int] = {}
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock()
            self.cluster_id = self._load_or_create_meta(cluster_id)
        except OSError as exc:
            self._unlock()
            raise ConfigError(
                f"cannot use data dir {self.data_dir}: {exc.strerror or exc}"
            ) from None
        try:
            self.topics = TopicManager(self.data_dir, config, clock=clock)
        except (LogError, OSError) as exc:
            self._unlock()
            raise ConfigError(f"cannot open the logs in {self.data_dir}: {exc}") from None
        except BaseException:
            self._unlock()
            raise

    # --- identity ---------------------------------------------------------------------

    def _lock(self) -> None:
        lock = open(self.data_dir / LOCK_FILE, "ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ConfigError(
                f"data dir {self.data_dir} is in use by another broker process"
            ) from None
        self._lock_file = lock

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the fd releases the flock
            self._lock_file = None

    def _load_or_create_meta(self, joined: str | None = None) -> str:
        path = self.data_dir / META_PROPERTIES
        if path.exists():
            meta = read_meta_properties(path)
            stored_node = meta.get("node.id")
            if stored_node is not None and int(stored_node) != self.node_id:
                # Kafka refuses to start on a log dir written by another node.
                raise ConfigError(
                    f"stored node.id {stored_node} in {path} does not match "
                    f"the configured node.id {self.node_id}"
                )
            cluster_id = meta.get("cluster.id")
            if cluster_id and joined is not None and cluster_id != joined:
                # Kafka's InconsistentClusterIdException.
                raise ConfigError(
                    f"the cluster id {joined} in ZooKeeper does not match the cluster id "
                    f"{cluster_id} stored in {path}: this data dir belongs to another "
                    "cluster (is zookeeper.connect right?)"
                )
            if cluster_id:
                return cluster_id
        cluster_id = joined or uuid_to_base64(random_kafka_uuid())
        text = (
            f"#\n#{time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())}\n"
            f"cluster.id={cluster_id}\n"
            f"directory.id={uuid_to_base64(random_kafka_uuid())}\n"
            f"node.id={self.node_id}\nversion=1\n"
        )
        atomic_write(path, text.encode())
        logger.info("new cluster id %s written to %s", cluster_id, path)
        return cluster_id

    # --- appends --------------------------------------------------------------------------

    def notify_append(self, partition: Partition | None = None) -> None:
        """Wake every ``wait_for_append`` (call after appending to any partition)."""
        event = self._append_event
        if event is not None:
            self._append_event = None
            event.set()

    async def wait_for_append(self, timeout_s: float) -> None:
        """Return after the next append anywhere, or after ``timeout_s`` seconds."""
        event = self._append_event
        if event is None:
            event = self._append_event = trio.Event()
        with trio.move_on_after(max(0.0, timeout_s)):
            await event.wait()

    # --- maintenance (synchronous steps; kbroker.server schedules them) -------------------

    def _topic_value(self, partition: Partition, name: str) -> Any:
        return effective_topic_value(name, partition.topic.configs, self.config)

    def enforce_retention(self) -> int:
        """Delete segments past retention.ms / retention.bytes; returns segments removed."""
        removed = 0
        for partition in self.topics.all_partitions():
            if "delete" not in self._topic_value(partition, "cleanup.policy"):
                continue
            log = partition.log
            start, size = log.log_start_offset, log.size_in_bytes
            try:
                n = log.enforce_retention()
            except Exception:
                logger.exception("retention failed for %r", partition)
                continue
            if n:
                logger.info(
                    "retention deleted %d segment(s) of %s-%d: log start offset %d -> %d, "
                    "%d bytes freed",
                    n,
                    partition.topic.name,
                    partition.index,
                    start,
                    log.log_start_offset,
                    size - log.size_in_bytes,
                )
            removed += n
        return removed

    def compact(self) -> int:
        """Compact compacted partitions that grew since their last compaction."""
        done = 0
        for partition in self.topics.all_partitions():
            if "compact" not in self._topic_value(partition, "cleanup.policy"):
                continue
            key = id(partition)
            end = partition.log.log_end_offset
            if self._compacted_at.get(key) == end:
                continue
            size = partition.log.size_in_bytes
            try:
                partition.log.compact()
            except Exception:
                logger.exception("compaction failed for %r", partition)
            else:
                if partition.log.size_in_bytes < size:
                    logger.info(
                        "compaction of %s-%d removed %d bytes (%d -> %d)",
                        partition.topic.name,
                        partition.index,
                        size - partition.log.size_in_bytes,
                        size,
                        partition.log.size_in_bytes,
                    )
            self._compacted_at[key] = end
            done += 1
        return done

    def next_flush_interval_s(self) -> float | None:
        """Shortest flush.ms over all partitions, in seconds (None = no time-based flush)."""
        shortest: int | None = None
        for topic in self.topics.topics.values():
            flush_ms = effective_topic_value("flush.ms", topic.configs, self.config)
            if flush_ms < 2**63 - 1 and (shortest is None or flush_ms < shortest):
                shortest = flush_ms
        scheduler = self.config["log.flush.scheduler.interval.ms"]
        if scheduler < 2**63 - 1:
            shortest = scheduler if shortest is None else min(shortest, scheduler)
        return None if shortest is None else max(shortest, 1) / 1000.0

    def flush_due(self) -> int:
        """fsync partitions whose flush.ms has elapsed since their last flush."""
        now = self.clock()
        flushed = 0
        for partition in self.topics.all_partitions():
            flush_ms = self._topic_value(partition, "flush.ms")
            if flush_ms >= 2**63 - 1:
                continue
            last = self._last_flush.setdefault(id(partition), now)
            if (now - last) * 1000.0 >= flush_ms:
                partition.log.flush()
                self._last_flush[id(partition)] = now
                flushed += 1
        return flushed

    def checkpoint_high_watermarks(self) -> None:
        """Write replication-offset-checkpoint (ReplicaManager's checkpointHighWatermarks)."""
        self.offset_checkpoints.write_high_watermarks(self.topics.all_partitions())

    def checkpoint_recovery_points(self) -> None:
        """Write recovery-point-offset-checkpoint (LogManager's checkpointLogRecoveryOffsets)."""
        self.offset_checkpoints.write_recovery_points(self.topics.all_partitions())

    async def checkpoint_high_watermarks_in_thread(self) -> None:
        """``checkpoint_high_watermarks`` with the file written (fsynced) on a worker thread."""
        await self.offset_checkpoints.write_high_watermarks_in_thread(self.topics.all_partitions())

    async def checkpoint_recovery_points_in_thread(self) -> None:
        """``checkpoint_recovery_points`` with the file written (fsynced) on a worker thread."""
        await self.offset_checkpoints.write_recovery_points_in_thread(self.topics.all_partitions())

    def close(self) -> None:
        """Flush and close every log (clean-shutdown markers), release the data dir."""
        try:
            partitions = self.topics.all_partitions()
            with logged_failure(logger, "writing replication-offset-checkpoint failed"):
                self.offset_checkpoints.write_high_watermarks(partitions)
            self.topics.close()
            # Closing flushed every log: their recovery points are now their ends.
            with logged_failure(logger, "writing recovery-point-offset-checkpoint failed"):
                self.offset_checkpoints.write_recovery_points(partitions)
        finally:
            self._unlock()
        logger.info("broker %d closed", self.node_id)
