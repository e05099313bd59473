"""Caps on partitions: per broker, per request, and topics auto-created per request.

Every partition costs descriptors, memory and start-up time; a client asking for a
million of them (one CreateTopics) or naming thousands of unknown topics (one
Metadata request with auto-creation on) must get an error code, not a broker that
stalls, runs out of descriptors and cannot start again.

- ``max.partitions.per.request``: Kafka 4.0 refuses a CreateTopics or
  CreatePartitions adding more than 10,000 partitions with POLICY_VIOLATION
  "Excessively large number of partitions per request." (KAFKA-17870); the limit
  is Kafka's, here configurable.
- ``max.broker.partitions``: the name KIP-578 gave a per-broker cap (managed Kafka
  services and Redpanda enforce one); creating beyond it is POLICY_VIOLATION with
  a message naming the setting. Internal topics are never refused: the
  coordinators need them.
- ``auto.create.topics.max.per.request``: a Metadata request auto-creates at most
  this many topics; the others are answered LEADER_NOT_AVAILABLE (what Kafka
  answers for a topic being created), so the client asks again and the creation
  spreads over its retries.
- Segment files are opened through one bounded cache shared by every partition
  (``kbroker.log.filecache``, sized by ``log.max.open.files``; by default half of
  what RLIMIT_NOFILE leaves after the quarter kept for connections and requests),
  so a hosted partition holds no descriptor of its own and the descriptor limit
  no longer caps the partition count. Only when the cache could not reach its
  bound without eating into that quarter (a cache configured larger than the
  limit allows) are partitions counted at ``FDS_PER_PARTITION`` each (the active
  segment's .log, .index and .timeindex) against what is left, and refused
  (POLICY_VIOLATION, naming the limit) beyond it: past that the broker could no
  longer accept clients. ``raise_fd_limit`` lifts the soft limit to the hard one
  at start-up, as the JVM does for Kafka (HotSpot's MaxFDLimit, on by default),
  and sizes the cache.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from kbroker.errors import KafkaApiError
from kbroker.internal_topics import INTERNAL_TOPICS
from kbroker.log.filecache import open_files as open_files_cache
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

__all__ = [
    "AutoCreateBudget",
    "check_broker_partitions",
    "check_request_partitions",
    "open_files_capacity",
    "raise_fd_limit",
]

logger = logging.getLogger(__name__)

FDS_PER_PARTITION = 3
# Share of the descriptor limit partitions may not take: connections, requests in
# flight (a fetch response holds a duplicate per segment sent), checkpoints.
FD_RESERVE_FRACTION = 0.25
FD_RESERVE_MIN = 64
# Cache bound when the limit is unknown, and the least it is ever sized to.
DEFAULT_OPEN_FILES = 1024
OPEN_FILES_MIN = 16


def _fd_limit() -> int | None:
    """The soft RLIMIT_NOFILE, or None where there is none to read."""
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def raise_fd_limit(open_files: int = 0) -> None:
    """Lift the soft descriptor limit to the hard one (what the JVM does for Kafka), then
    size the log's cache of open files: ``open_files`` (log.max.open.files), or from the limit when 0."""
    _raise_soft_limit()
    cache = open_files_cache()
    cache.set_capacity(open_files_capacity(open_files, _fd_limit()))
    logger.info("keeping at most %d segment files open", cache.capacity)


def _raise_soft_limit() -> None:
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        logger.info("cannot raise the open file limit from %d to %d: %s", soft, hard, exc)
        return
    logger.info("raised the open file limit from %d to %d", soft, hard)


def _reserve(limit: int) -> int:
    return max(FD_RESERVE_MIN, int(limit * FD_RESERVE_FRACTION))


def open_files_capacity(configured: int, limit: int | None) -> int:
    """The cache bound: ``configured`` if set, else half of what the limit leaves after the reserve.

    Half, not all: the other half is for what the cache does not hold (descriptors
    duplicated for responses being sent, checkpoints, ZooKeeper, the process's own).
    """
    if configured > 0:
        return configured
    if limit is None:
        return DEFAULT_OPEN_FILES
    return max(OPEN_FILES_MIN, (limit - _reserve(limit)) // 2)


def partitions_fds_allow() -> int | None:
    """How many more partitions the descriptor limit leaves room for (None: no limit).

    None whenever the cache of open files can grow to its bound without eating into
    the reserve: new partitions then only take turns in the cache.
    """
    limit, used = _fd_limit(), _open_fds()
    if limit is None or used is None:
        return None
    free = limit - _reserve(limit) - used
    cache = open_files_cache()
    if free + len(cache) >= cache.capacity:
        return None
    return max(0, free // FDS_PER_PARTITION)


def _check_fds(adding: int, room: int | None) -> None:
    if room is not None and adding > room:
        raise KafkaApiError(
            ErrorCode.POLICY_VIOLATION,
            f"Adding {adding} partition(s) would leave too few file descriptors: the open "
            f"file limit ({_fd_limit()}) leaves room for {room} more beside the "
            f"log.max.open.files cache ({open_files_cache().capacity}); raise ulimit -n or lower "
            "log.max.open.files.",
        )


def check_request_partitions(broker: BrokerState, requested: int) -> None:
    """POLICY_VIOLATION if one request asks for more than max.partitions.per.request."""
    if requested > broker.config["max.partitions.per.request"]:
        raise KafkaApiError(
            ErrorCode.POLICY_VIOLATION, "Excessively large number of partitions per request."
        )


def check_broker_partitions(broker: BrokerState, adding: int) -> None:
    """POLICY_VIOLATION if ``adding`` partitions would take the broker past max.broker.partitions."""
    _check(broker.config["max.broker.partitions"], hosted_partitions(broker), adding)
    _check_fds(adding, partitions_fds_allow())


def hosted_partitions(broker: BrokerState) -> int:
    """Partitions of every topic on this broker."""
    return sum(len(t.partitions) for t in broker.topics.topics.values())


def _check(limit: int, hosted: int, adding: int) -> None:
    if hosted + adding > limit:
        raise KafkaApiError(
            ErrorCode.POLICY_VIOLATION,
            f"Adding {adding} partition(s) would exceed max.broker.partitions ({limit}): "
            f"this broker hosts {hosted}.",
        )


class AutoCreateBudget:
    """What one Metadata request may still auto-create (counted once per request:
    thousands of names must not cost a pass over every topic each)."""

    def __init__(self, broker: BrokerState) -> None:
        config = broker.config
        self.broker = broker
        self.remaining = int(config["auto.create.topics.max.per.request"])
        self.limit = int(config["max.broker.partitions"])
        self.partitions = int(config["num.partitions"])
        # Counted at the first name to create, not here: every Metadata request naming
        # topics makes a budget, and listing /proc/self/fd (one entry per open segment
        # file and socket) was ~15% of the broker's CPU for a producer's start-up
        # (connect, ApiVersions, Metadata, first Produce) when nothing is created.
        self.hosted = -1
        self.fd_room: int | None = None

    def admit(self, name: str) -> ErrorCode | None:
        """None: create ``name`` now; LEADER_NOT_AVAILABLE: not in this request.

        POLICY_VIOLATION (KafkaApiError) past max.broker.partitions; internal
        topics are always admitted.
        """
        internal = name in INTERNAL_TOPICS
        if not internal:
            if self.hosted < 0:
                self.hosted = hosted_partitions(self.broker)
                self.fd_room = partitions_fds_allow()
            _check(self.limit, self.hosted, self.partitions)
            # Counted once per request: /proc/self/fd for each of thousands of
            # names held the event loop for seconds.
            _check_fds(self.partitions, self.fd_room)
        if self.remaining <= 0:
            return ErrorCode.LEADER_NOT_AVAILABLE
        self.remaining -= 1
        if not internal:
            self.hosted += self.partitions
            if self.fd_room is not None:
                self.fd_room -= self.partitions
        return None
