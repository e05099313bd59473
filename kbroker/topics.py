"""Topics and partitions: Kafka's naming rules, creation, deletion, persistence.

How it is stored (under the data dir, Kafka-like):

- ``<topic>-<n>/`` per partition: the ``PartitionLog`` files plus a
  ``partition.metadata`` file (``version: 0`` / ``topic_id: <base64 uuid>``),
  as Kafka writes since KIP-516.
- ``kbroker-topics.json`` and its journal (``kbroker.topics_store``): the source
  of truth for which topics exist, with their topic id, partition count, config
  overrides and internal flag. A change is made durable (a journal line, or a new
  snapshot replaced atomically) before any directory is created or removed, so a
  crash leaves either the old or the new set of topics. On startup a partition directory
  whose ``partition.metadata`` names an unknown topic id (a deletion or a
  re-creation interrupted by a crash) is removed, and missing partition
  directories are created empty.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import trio

from kbroker.config import BrokerConfig
from kbroker.errors import KafkaApiError, unknown_topic
from kbroker.internal_topics import INTERNAL_TOPICS, OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kbroker.log.checkpoint import fsync_dir, replace_unsynced
from kbroker.topic_config import to_log_config, validate_topic_configs
from kbroker.topics_store import SNAPSHOT_FILE, TopicStore
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.log import LogConfig, PartitionLog
    from kbroker.replication.partition import ReplicatedPartition

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

MAX_NAME_LENGTH = 249  # Kafka's Topic.MAX_NAME_LENGTH (255 minus room for "-<partition>")
_LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
TOPICS_FILE = SNAPSHOT_FILE
PARTITION_METADATA = "partition.metadata"
_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")
# The only leader epoch a single-node broker ever has (a KRaft topic starts at 0).
SINGLE_NODE_LEADER_EPOCH = 0
# The longest an asynchronous creation opens partitions before letting the event loop
# serve other connections (one partition takes about a millisecond to open: a topic
# of 5,000 partitions held the loop for seconds).
CREATION_SLICE_SECONDS = 0.005


def uuid_to_base64(value: uuid.UUID) -> str:
    """Kafka's Uuid.toString: URL-safe base64 of the 16 bytes, no padding (22 chars)."""
    return base64.urlsafe_b64encode(value.bytes).rstrip(b"=").decode("ascii")


def uuid_from_base64(text: str) -> uuid.UUID:
    """Inverse of ``uuid_to_base64``; ValueError if not a 22-char base64 uuid."""
    raw = base64.urlsafe_b64decode(text + "==")
    if len(raw) != 16:
        raise ValueError(f"not a base64 uuid: {text!r}")
    return uuid.UUID(bytes=raw)


def random_kafka_uuid() -> uuid.UUID:
    """A random uuid as Kafka's Uuid.randomUuid makes them: never the zero or metadata
    topic id (0 / 1) and never one whose string form starts with '-' (CLI-hostile)."""
    while True:
        value = uuid.uuid4()
        if value.int > 1 and not uuid_to_base64(value).startswith("-"):
            return value


def has_collision_chars(name: str) -> bool:
    """Whether the name contains '.' or '_' (they collide in Kafka metric names)."""
    return "." in name or "_" in name


def _collision_key(name: str) -> str:
    return name.replace(".", "_")


def check_partition_increase(name: str, current: int, total: int) -> None:
    """CreatePartitions' count check (AdminZkClient.addPartitions): ``total`` must grow the
    topic's ``current`` partition count; Kafka never shrinks a topic.
    """
    if total == current:
        raise KafkaApiError(
            ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partitions."
        )
    if total < current:
        raise KafkaApiError(
            ErrorCode.INVALID_PARTITIONS,
            f"The topic {name} currently has {current} partition(s); "
            f"{total} would not be an increase.",
        )


def check_name(name: str) -> None:
    """Kafka's topic name rules (Topic.validate); KafkaApiError(INVALID_TOPIC_EXCEPTION)."""
    if not name:
        raise KafkaApiError(
            ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't be empty"
        )
    if name in (".", ".."):
        raise KafkaApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, 'Topic name cannot be "." or ".."')
    if len(name) > MAX_NAME_LENGTH:
        raise KafkaApiError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} "
            f"characters, topic name: {name}",
        )
    if not _LEGAL_NAME.match(name):
        raise KafkaApiError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f'Topic name "{name}" is illegal, it contains a character other '
            "than ASCII alphanumerics, '.', '_' and '-'",
        )


@dataclass(eq=False)
class Partition:
    """One partition of a topic and its log."""

    topic: Topic
    index: int
    log: PartitionLog
    # Replication state in cluster mode (leader epoch, ISR, high watermark); None on a
    # single node, which leads every partition at epoch 0 with HW == LEO.
    replica: ReplicatedPartition | None = None

    @property
    def leader_epoch(self) -> int:
        """This replica's current leader epoch (0 on a single node)."""
        return SINGLE_NODE_LEADER_EPOCH if self.replica is None else self.replica.leader_epoch

    @property
    def directory_name(self) -> str:
        """Kafka's ``<topic>-<partition>`` directory name."""
        return f"{self.topic.name}-{self.index}"

    def __repr__(self) -> str:
        return f"Partition({self.topic.name}-{self.index})"


@dataclass(eq=False)
class Topic:
    """A topic: name, stable id, partitions, config overrides."""

    name: str
    topic_id: uuid.UUID
    partitions: list[Partition] = field(default_factory=list)
    configs: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    # Produce's settings of this topic and the `configs` dict they were computed from
    # (kbroker.handlers.produce.produce_settings): set_configs installs a new dict, so
    # identity tells whether they are current; a recreated topic is a new object.
    produce_settings: tuple[dict[str, str], object] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, {len(self.partitions)} partitions)"


def _at_once(steps: Callable[_P, Generator[None, None, _T]]) -> Callable[_P, _T]:
    """``steps`` as a function that runs them to the end without pausing."""

    @functools.wraps(steps)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        pending = steps(*args, **kwargs)
        try:
            while True:
                next(pending)
        except StopIteration as done:
            result: _T = done.value
            return result

    return run


def _in_slices(steps: Callable[_P, Generator[None, None, _T]]) -> Callable[_P, Awaitable[_T]]:
    """``steps`` as an async function that lets other tasks run at each of their pauses.
    Cancelled there, the steps are closed: they undo their work before the cancellation
    goes on."""

    @functools.wraps(steps)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        pending = steps(*args, **kwargs)
        try:
            while True:
                next(pending)
                await trio.sleep(0)
        except StopIteration as done:
            result: _T = done.value
            return result
        finally:
            pending.close()

    return run


class TopicManager:
    """All topics of the broker; every change is persisted before it is visible."""

    def __init__(
        self, data_dir: Path, config: BrokerConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = config
        self.clock = clock
        self.topics: dict[str, Topic] = {}
        self._by_id: dict[uuid.UUID, Topic] = {}
        # Topics whose partitions are being opened (asynchronously): saved in the store,
        # their names taken, but not visible until every partition is open.
        self._pending: dict[str, tuple[Topic, int]] = {}
        self._store = TopicStore(self.data_dir)
        self._load()

    # --- lookups ------------------------------------------------------------------------

    def get(self, name: str) -> Topic | None:
        """The topic called ``name``, or None."""
        return self.topics.get(name)

    def get_by_id(self, topic_id: uuid.UUID) -> Topic | None:
        """The topic with this id, or None."""
        return self._by_id.get(topic_id)

    def partition(self, name: str, index: int) -> Partition | None:
        """Partition ``index`` of topic ``name``, or None if either does not exist."""
        topic = self.topics.get(name)
        if topic is None or not 0 <= index < len(topic.partitions):
            return None
        return topic.partitions[index]

    def all_partitions(self) -> list[Partition]:
        """Every partition of every topic."""
        return [p for t in self.topics.values() for p in t.partitions]

    @staticmethod
    def check_name(name: str) -> None:
        """Kafka's topic name rules; KafkaApiError(INVALID_TOPIC_EXCEPTION)."""
        check_name(name)

    # --- changes ------------------------------------------------------------------------

    # Creating and adopting a topic are written once, as generators that pause between
    # slices of partitions; ``create``/``adopt`` run them through in one go (startup,
    # tests), ``create_async``/``adopt_async`` let other tasks run at each pause (request
    # handlers). Either way the topic is visible (``get``) only once every partition is open.

    def _create(
        self,
        name: str,
        num_partitions: int = -1,
        configs: Mapping[str, str | None] | None = None,
        *,
        validate_only: bool = False,
        internal: bool = False,
        replication_factor: int = -1,
    ) -> Generator[None, None, Topic]:
        """Create a topic (CreateTopics semantics; -1 partitions/replicas = broker default).

        Raises KafkaApiError with the code Kafka answers: INVALID_TOPIC_EXCEPTION,
        TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_CONFIG.
        With validate_only, checks everything and returns an unsaved Topic without logs.
        """
        topic, count = self._check_new(
            name, num_partitions, configs, internal=internal, replication_factor=replication_factor
        )
        if validate_only:
            return topic
        yield from self._build(topic, count)
        self._log_created(topic, count)
        return topic

    create = _at_once(_create)
    create_async = _in_slices(_create)

    def _check_new(
        self,
        name: str,
        num_partitions: int,
        configs: Mapping[str, str | None] | None,
        *,
        internal: bool,
        replication_factor: int,
    ) -> tuple[Topic, int]:
        """CreateTopics' checks; the unsaved topic and its partition count."""
        check_name(name)
        if name in self.topics or name in self._pending:
            raise KafkaApiError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        if name in INTERNAL_TOPICS and not internal:
            raise KafkaApiError(
                ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic '{name}' is reserved for internal use."
            )
        key = _collision_key(name)
        for existing in [*self.topics, *self._pending]:
            if _collision_key(existing) == key:
                raise KafkaApiError(
                    ErrorCode.INVALID_TOPIC_EXCEPTION,
                    f"Topic '{name}' collides with existing topic: {existing}",
                )
        num_partitions = self._count_or_default(
            num_partitions,
            "num.partitions",
            ErrorCode.INVALID_PARTITIONS,
            "Number of partitions was set to an invalid non-positive value.",
        )
        replication_factor = self._count_or_default(
            replication_factor,
            "default.replication.factor",
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        )
        if replication_factor > 1:
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication_factor} time(s): "
                f"The target replication factor of {replication_factor} cannot "
                "be reached because only 1 broker(s) are registered.",
            )
        overrides = validate_topic_configs(configs or {})
        return Topic(name, random_kafka_uuid(), [], overrides, internal), num_partitions

    def _count_or_default(self, value: int, key: str, error: ErrorCode, message: str) -> int:
        """A CreateTopics count: -1 is the broker's ``key``; any other value below 1 is
        refused with ``error``."""
        if value == -1:
            value = self.config[key]
        if value <= 0:
            raise KafkaApiError(error, message)
        return value

    def _log_created(self, topic: Topic, count: int) -> None:
        if has_collision_chars(topic.name) and not topic.internal:
            # As kafka-topics warns its user; the internal names are fixed and known.
            logger.warning(
                "topic %r: due to limitations in metric names, topics with a period "
                "('.') or underscore ('_') could collide; it is best to use either, "
                "but not both",
                topic.name,
            )
        logger.info(
            "created topic %s (id %s, %d partitions, configs %s)",
            topic.name,
            uuid_to_base64(topic.topic_id),
            count,
            topic.configs,
        )

    def _build(self, topic: Topic, count: int) -> Generator[None, None, None]:
        """Save ``topic`` with ``count`` partitions, open them, then make it visible;
        yields between slices of partitions (the caller may let other tasks run there).

        Saved before the partitions are opened: a crash in between re-creates them at
        the next start. On any failure (or cancellation) the topic is forgotten, its
        logs closed and the store saved without it; the next start removes the
        directories left behind.
        """
        if topic.name in self.topics or topic.name in self._pending:
            raise KafkaApiError(
                ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{topic.name}' already exists."
            )
        self._pending[topic.name] = (topic, count)
        try:
            self._save()
            log_config = to_log_config(topic.configs, self.config)
            started = time.monotonic()
            for index in range(count):
                topic.partitions.append(self._open_partition(topic, index, log_config=log_config))
                if time.monotonic() - started >= CREATION_SLICE_SECONDS:
                    yield
                    started = time.monotonic()
            fsync_dir(self.data_dir)  # the new partition directories, all at once
        except BaseException:
            self._pending.pop(topic.name, None)
            for partition in topic.partitions:
                with contextlib.suppress(Exception):
                    partition.log.close()
            with contextlib.suppress(OSError):
                self._save()  # the next start removes the directories left behind
            raise
        del self._pending[topic.name]
        self.topics[topic.name] = topic
        self._by_id[topic.topic_id] = topic

    def create_internal(self, name: str) -> Topic:
        """Create ``__consumer_offsets`` / ``__transaction_state`` as Kafka does
        (partition count and segment size from the broker config, compacted)."""
        existing = self.topics.get(name)
        if existing is not None:
            return existing
        count, configs = self._internal_settings(name)
        return self.create(name, count, configs, internal=True, replication_factor=1)

    def _internal_settings(self, name: str) -> tuple[int, dict[str, str | None]]:
        if name == OFFSETS_TOPIC:
            partitions = self.config["offsets.topic.num.partitions"]
            segment = self.config["offsets.topic.segment.bytes"]
        elif name == TRANSACTION_STATE_TOPIC:
            partitions = self.config["transaction.state.log.num.partitions"]
            segment = self.config["transaction.state.log.segment.bytes"]
        else:
            raise KafkaApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"{name} is not internal")
        return partitions, {
            "cleanup.policy": "compact",
            "segment.bytes": str(segment),
            "compression.type": "producer",
        }

    def delete(self, name: str) -> None:
        """Delete a topic and its directories; UNKNOWN_TOPIC_OR_PARTITION if absent."""
        if not self.config["delete.topic.enable"]:
            raise KafkaApiError(ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
        if name not in self.topics:
            raise KafkaApiError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                "This server does not host this topic-partition.",
            )
        self.delete_local(name)

    def _adopt(
        self,
        name: str,
        topic_id: uuid.UUID | None,
        num_partitions: int,
        configs: Mapping[str, str | None] | None = None,
    ) -> Generator[None, None, Topic]:
        """Host a topic the cluster's controller created (cluster mode): no naming or
        replication checks (they were made where it was created), its topic id kept."""
        if name in self.topics or name in self._pending:
            raise KafkaApiError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        try:
            overrides = validate_topic_configs(configs or {})
        except KafkaApiError:
            logger.warning("topic %s: ignoring invalid configs %s", name, configs)
            overrides = {}
        topic = Topic(name, topic_id or random_kafka_uuid(), [], overrides, name in INTERNAL_TOPICS)
        yield from self._build(topic, num_partitions)
        logger.info(
            "hosting topic %s (id %s, %d partitions)",
            topic.name,
            uuid_to_base64(topic.topic_id),
            num_partitions,
        )
        return topic

    adopt = _at_once(_adopt)
    adopt_async = _in_slices(_adopt)

    def delete_local(self, name: str) -> None:
        """Remove this broker's copy of a topic (cluster mode: StopReplica with delete),
        whatever delete.topic.enable says (the controller checked it)."""
        topic = self.topics.get(name)
        if topic is None:
            return
        self._forget(topic)
        try:
            self._save()
        except BaseException:
            self.topics[name] = topic
            self._by_id[topic.topic_id] = topic
            raise
        for partition in topic.partitions:
            try:
                partition.log.close()
            except Exception:
                logger.exception("closing the log of %r during deletion", partition)
            shutil.rmtree(self.data_dir / partition.directory_name, ignore_errors=True)
        logger.info("deleted topic %s (id %s)", name, uuid_to_base64(topic.topic_id))

    def wipe_partition(self, name: str, index: int) -> None:
        """Remove this broker's copy of one partition of a topic it still hosts others of
        (cluster mode: StopReplica with delete, e.g. a replica moved away by a
        reassignment): its log goes, and an empty one takes its place, as for every
        partition index of a local topic that this broker does not host."""
        topic = self.topics.get(name)
        if topic is None or not 0 <= index < len(topic.partitions):
            return
        old = topic.partitions[index]
        try:
            old.log.close()
        except Exception:
            logger.exception("closing the log of %r during deletion", old)
        shutil.rmtree(self.data_dir / old.directory_name, ignore_errors=True)
        topic.partitions[index] = self._open_partition(topic, index)
        fsync_dir(self.data_dir)
        logger.info("deleted the local replica of %s-%d", name, index)

    def add_partitions(self, name: str, total: int, *, validate_only: bool = False) -> Topic:
        """Grow a topic to ``total`` partitions (CreatePartitions semantics)."""
        topic = self.topics.get(name)
        if topic is None:
            raise unknown_topic(name)
        current = len(topic.partitions)
        check_partition_increase(name, current, total)
        if validate_only:
            return topic
        self._save(partition_counts={name: total})
        for index in range(current, total):
            topic.partitions.append(self._open_partition(topic, index))
        fsync_dir(self.data_dir)
        logger.info("topic %s now has %d partitions", name, total)
        return topic

    def set_configs(
        self, name: str, overrides: Mapping[str, str | None], *, validate_only: bool = False
    ) -> Topic:
        """Replace a topic's config overrides (AlterConfigs semantics) and apply them."""
        topic = self.topics.get(name)
        if topic is None:
            raise unknown_topic(name)
        clean = validate_topic_configs(overrides)
        if validate_only:
            return topic
        previous = topic.configs
        topic.configs = clean
        try:
            self._save()
        except BaseException:
            topic.configs = previous
            raise
        log_config = to_log_config(clean, self.config)
        for partition in topic.partitions:
            partition.log.update_config(log_config)
        logger.info("topic %s configs now %s", name, clean)
        return topic

    def flush(self) -> None:
        """fsync every partition log."""
        for partition in self.all_partitions():
            partition.log.flush()

    def close(self) -> None:
        """Close every log (each writes its clean-shutdown marker)."""
        closed = []
        for partition in self.all_partitions():
            try:
                partition.log.close(sync_marker=False)
                closed.append(partition)
            except Exception:
                logger.exception("closing the log of %r", partition)
        # The markers' directory entries, made durable together: on a journaling file
        # system the first fsync commits every marker created above, so the rest are
        # cheap (one commit per partition was most of stopping a 1,000-partition broker).
        for partition in closed:
            try:
                fsync_dir(partition.log.directory)
            except OSError:
                logger.exception("syncing the directory of %r", partition)

    # --- persistence --------------------------------------------------------------------

    def _forget(self, topic: Topic) -> None:
        self.topics.pop(topic.name, None)
        self._by_id.pop(topic.topic_id, None)

    def _save(self, *, partition_counts: Mapping[str, int] | None = None) -> None:
        # Topics being created are saved with their full partition count (their
        # directories are being made: a crash re-creates the missing ones at start-up).
        counts = {name: count for name, (_, count) in self._pending.items()}
        counts.update(partition_counts or {})
        topics = [*self.topics.values(), *(t for t, _ in self._pending.values())]
        self._store.save(
            {
                t.name: {
                    "topic_id": uuid_to_base64(t.topic_id),
                    "partitions": counts.get(t.name, len(t.partitions)),
                    "configs": t.configs,
                    "internal": t.internal,
                }
                for t in topics
            }
        )

    def _open_partition(
        self,
        topic: Topic,
        index: int,
        *,
        log_config: LogConfig | None = None,
        scanned: Mapping[str, str | None] | None = None,
    ) -> Partition:
        from kbroker.log import PartitionLog

        dir_name = f"{topic.name}-{index}"
        directory = self.data_dir / dir_name
        metadata = directory / PARTITION_METADATA
        topic_id = uuid_to_base64(topic.topic_id)
        # At start-up _load has just read every partition.metadata (start-up time:
        # three reads per partition were a tenth of a 1,000-partition start).
        exists = False  # known to exist: the start-up scan listed it
        if scanned is not None and dir_name in scanned:
            stored, exists = scanned[dir_name], True
        else:
            stored = _read_partition_metadata(metadata)  # None: no directory or no file
        if stored is not None and stored != topic_id:
            # Left over from a deleted topic of the same name (crash before rmtree).
            logger.warning(
                "removing stale %s (topic id %s, expected %s)", directory, stored, topic_id
            )
            shutil.rmtree(directory)
            stored = None
            exists = False
        if not exists:
            directory.mkdir(parents=True, exist_ok=True)
        if stored != topic_id:
            # Not fsynced (two fsyncs per partition were most of creating a topic, and
            # the first FindCoordinator creates 50): topics.json, saved durably before
            # any partition is opened, is the record of the topic id, and a
            # partition.metadata lost or torn by a crash is read as missing
            # (_read_partition_metadata) and written again here at the next start.
            replace_unsynced(metadata, f"version: 0\ntopic_id: {topic_id}\n".encode())
        if log_config is None:
            log_config = to_log_config(topic.configs, self.config)
        log = PartitionLog.open(directory, log_config, clock=self.clock)
        return Partition(topic, index, log)

    def _load(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        entries = self._store.load()
        known_ids = {e["topic_id"] for e in entries.values()}
        # Remove partition dirs of topics that no longer exist (deletion cut by a crash).
        scanned: dict[str, str | None] = {}  # partition dir name -> topic id it names
        with os.scandir(self.data_dir) as it:
            for dirent in it:
                if not dirent.is_dir() or not _PARTITION_DIR.match(dirent.name):
                    continue
                child = Path(dirent.path)
                stored = _read_partition_metadata(child / PARTITION_METADATA)
                if stored is not None and stored not in known_ids:
                    logger.warning(
                        "removing %s: its topic id %s belongs to no topic", child, stored
                    )
                    shutil.rmtree(child, ignore_errors=True)
                    continue
                scanned[dirent.name] = stored
        for name, entry in sorted(entries.items()):
            topic = Topic(
                name,
                uuid_from_base64(entry["topic_id"]),
                [],
                dict(entry.get("configs", {})),
                bool(entry.get("internal", False)),
            )
            self.topics[name] = topic
            self._by_id[topic.topic_id] = topic
            # Every partition of a topic runs with the same settings: build them once.
            log_config = to_log_config(topic.configs, self.config)
            for index in range(int(entry["partitions"])):
                topic.partitions.append(
                    self._open_partition(topic, index, log_config=log_config, scanned=scanned)
                )
        if entries:
            logger.info("loaded %d topics from %s", len(entries), self.data_dir)


def _read_partition_metadata(path: Path) -> str | None:
    """The topic id a partition directory names; None if absent, unreadable or malformed.

    A malformed id must read as missing, never as another topic's: the start-up scan
    removes directories whose id belongs to no topic, and a file torn by a crash
    (it is written without fsync) must not get its partition's data removed.
    """
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "topic_id":
            value = value.strip()
            try:
                uuid_from_base64(value)
            except ValueError:
                logger.warning("%s names no valid topic id (%r); it will be rewritten", path, value)
                return None
            return value
    return None
