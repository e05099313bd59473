"""What the data-path handlers share: finding the partition a request names,
checking the client's leader epoch, the error code for a failure on one partition,
a topic's effective config, and for the group and transaction APIs the partitions
refused before the coordinator acts and the per-partition error echo that
OffsetCommit, TxnOffsetCommit and OffsetDelete answer with.

Produce, Fetch, ListOffsets, OffsetForLeaderEpoch and DeleteRecords all answer per
partition; these helpers raise ``KafkaApiError`` with the code Kafka's
``ReplicaManager`` / ``Partition`` would put in that partition's entry.

In cluster mode a partition is served only by its leader: another broker that
hosts it, or knows it from the metadata cache, answers NOT_LEADER_OR_FOLLOWER
(ReplicaManager.getPartitionOrError), and the leader epoch is the one the
controller gave in LeaderAndIsr.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from kbroker.authz.acl import Operation, ResourceType
from kbroker.authz.checks import filter_allowed
from kbroker.errors import KafkaApiError
from kbroker.failures import storage_failure_kind, warn_rate_limited
from kbroker.handlers import RequestContext
from kbroker.log import PartitionLog
from kbroker.log.errors import LogError, OffsetOutOfRange
from kbroker.log.leader_epoch import LeaderEpochCache
from kbroker.topic_config import effective_topic_value
from kbroker.topics import SINGLE_NODE_LEADER_EPOCH, Partition, Topic
from kbroker.wire.errors import ErrorCode

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class _AskedTopic(Protocol):
    """A request's topic entry: the partitions it asks about."""

    @property
    def partitions(self) -> Sequence[Any]: ...


class _Answer(Protocol):
    """A per-partition answer: it carries an error code."""

    error_code: int


_Asked = TypeVar("_Asked", bound=_AskedTopic)
_Question = TypeVar("_Question")
_Answered = TypeVar("_Answered", bound=_Answer)

# The only leader epoch a single-node broker ever has (a KRaft topic starts at 0).
LEADER_EPOCH = SINGLE_NODE_LEADER_EPOCH


# -- lookup and errors -------------------------------------------------------------


def lookup_partition(ctx: RequestContext, topic_name: str, index: int) -> Partition:
    """The Partition for (topic, index) this broker leads; KafkaApiError
    UNKNOWN_TOPIC_OR_PARTITION if none, NOT_LEADER_OR_FOLLOWER if another broker leads it."""
    return led_partition(ctx, lookup_topic(ctx, topic_name), index)


def lookup_topic(ctx: RequestContext, topic_name: str) -> Topic:
    """The broker's Topic by name; KafkaApiError UNKNOWN_TOPIC_OR_PARTITION if none
    (NOT_LEADER_OR_FOLLOWER in cluster mode when the cluster has it but not this broker)."""
    topic = ctx.broker.topics.get(topic_name)
    if topic is None:
        raise _absent_topic(ctx, topic_name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return topic


def lookup_topic_id(ctx: RequestContext, topic_id: uuid.UUID) -> Topic:
    """The broker's Topic by id (Fetch v13+, KIP-516); KafkaApiError UNKNOWN_TOPIC_ID if
    none (NOT_LEADER_OR_FOLLOWER in cluster mode when the cluster has it but not this broker)."""
    topic = ctx.broker.topics.get_by_id(topic_id)
    if topic is None:
        raise _absent_topic(ctx, topic_id, ErrorCode.UNKNOWN_TOPIC_ID)
    return topic


def _absent_topic(ctx: RequestContext, topic: str | uuid.UUID, unknown: ErrorCode) -> KafkaApiError:
    """The error for a topic this broker has no log of: NOT_LEADER_OR_FOLLOWER when the
    cluster's metadata knows it (another broker hosts it), else ``unknown``."""
    cluster = ctx.broker.cluster
    if cluster is not None:
        metadata = cluster.metadata
        known = (
            metadata.topic_by_id(topic) if isinstance(topic, uuid.UUID) else metadata.topic(topic)
        )
        if known is not None:
            return KafkaApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    return KafkaApiError(unknown)


def led_partition(ctx: RequestContext, topic: Topic, index: int) -> Partition:
    """``partition_of``, and in cluster mode NOT_LEADER_OR_FOLLOWER unless this broker
    leads it."""
    cluster = ctx.broker.cluster
    if cluster is not None and not cluster.replicas.is_leader(topic.name, index):
        # ReplicaManager.getPartitionOrError: hosted here as a follower, or known to the
        # metadata cache, is NOT_LEADER_OR_FOLLOWER; anything else is unknown.
        if cluster.metadata.partition(topic.name, index) is not None or (
            cluster.replicas.leader_epoch(topic.name, index) is not None
        ):
            raise KafkaApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        raise KafkaApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return partition_of(topic, index)


def leader_epoch(ctx: RequestContext, topic_name: str, index: int) -> int:
    """This broker's leader epoch for a partition it leads (always 0 on a single node)."""
    cluster = ctx.broker.cluster
    if cluster is None:
        return LEADER_EPOCH
    epoch = cluster.replicas.leader_epoch(topic_name, index)
    return LEADER_EPOCH if epoch is None else epoch


def partition_of(topic: Topic, index: int) -> Partition:
    """Partition ``index`` of ``topic``; KafkaApiError UNKNOWN_TOPIC_OR_PARTITION if out of range."""
    if not 0 <= index < len(topic.partitions):
        raise KafkaApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return topic.partitions[index]


def point_to_leaders(
    ctx: RequestContext, answers: Iterable[tuple[str | None, int, Any]], message: Any
) -> list[Any]:
    """KIP-951: each NOT_LEADER_OR_FOLLOWER answer names the current leader and its epoch
    (``current_leader``), so the client need not refresh its metadata first; returns the
    ``message.NodeEndpoint`` of each leader named, for the response's ``node_endpoints``.

    ``answers`` are (topic name, partition, partition response); nothing is done on a
    single node or for a partition without a live leader.
    """
    cluster = ctx.broker.cluster
    if cluster is None:
        return []
    named: dict[int, Any] = {}
    for topic, index, answer in answers:
        if answer.error_code != ErrorCode.NOT_LEADER_OR_FOLLOWER or topic is None:
            continue
        state = cluster.metadata.partition(topic, index)
        leader = cluster.metadata.leader_of(topic, index)
        if state is None or leader is None:
            continue
        answer.current_leader = message.LeaderIdAndEpoch(
            leader_id=leader, leader_epoch=state.leader_epoch
        )
        info = cluster.metadata.brokers[leader]
        endpoint = info.endpoint_for(ctx.listener)
        if endpoint is None:  # the leader lacks the client's listener: no hint
            continue
        named[leader] = message.NodeEndpoint(
            node_id=leader, host=endpoint[0], port=endpoint[1], rack=info.rack
        )
    return [named[n] for n in sorted(named)]


def check_leader_epoch(current_leader_epoch: int, ours: int = LEADER_EPOCH) -> None:
    """Kafka's ``Partition.checkCurrentLeaderEpoch`` for a client-supplied current leader epoch.

    -1 means "not given" (no check); older than ours is FENCED_LEADER_EPOCH (the
    client holds stale metadata); newer is UNKNOWN_LEADER_EPOCH (we are the stale one).
    """
    if current_leader_epoch == -1 or current_leader_epoch == ours:
        return
    if current_leader_epoch < ours:
        raise KafkaApiError(ErrorCode.FENCED_LEADER_EPOCH)
    raise KafkaApiError(ErrorCode.UNKNOWN_LEADER_EPOCH)


def current_leader_epoch(ctx: RequestContext, partition: Partition) -> int:
    """This replica's leader epoch: its replication state's when it has one, else the
    last LeaderAndIsr's (``leader_epoch``; 0 on a single node)."""
    if partition.replica is not None:
        return partition.replica.leader_epoch
    return leader_epoch(ctx, partition.topic.name, partition.index)


def local_log(
    ctx: RequestContext,
    partition: Partition,
    client_epoch: int,
    *,
    require_leader: bool = True,
) -> PartitionLog:
    """Kafka's ``Partition.localLogWithEpochOrThrow``: the log, once the epoch and role allow it.

    The client's current leader epoch (`client_epoch`, -1 if not given) is checked
    first; then a replica that does not lead answers NOT_LEADER_OR_FOLLOWER when the
    request needs the leader.
    """
    check_leader_epoch(client_epoch, current_leader_epoch(ctx, partition))
    replica = partition.replica
    if require_leader and replica is not None and not replica.is_leader:
        raise KafkaApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    return partition.log


def leader_epochs(ctx: RequestContext, partition: Partition) -> LeaderEpochCache:
    """The partition's leader epochs (KIP-101), as Kafka's ``UnifiedLog.leaderEpochCache``.

    A leader's epoch starts at the LEO it had when it took over (Kafka's makeLeader
    writes that entry at once; ``ReplicatedPartition.make_leader`` does too). A
    single node leads at epoch 0 from the moment a partition exists: until the
    first append writes that entry to an empty log's cache, it is answered as if
    written.
    """
    log = partition.log
    cache = log.leader_epochs
    if cache.latest_epoch < 0 and partition.replica is None:
        epoch = current_leader_epoch(ctx, partition)
        return LeaderEpochCache(log.directory, [(epoch, log.log_end_offset)])
    return cache


def end_offset_for_epoch(
    ctx: RequestContext, partition: Partition, requested_epoch: int
) -> tuple[int, int]:
    """(epoch, end offset) of `requested_epoch`; (-1, -1) when unknown (UnifiedLog.endOffsetForEpoch)."""
    cache = leader_epochs(ctx, partition)
    return cache.end_offset_for(requested_epoch, partition.log.log_end_offset)


def error_code_of(exc: BaseException) -> ErrorCode:
    """Kafka's error code for an exception raised while serving one partition."""
    if isinstance(exc, KafkaApiError):
        return exc.code
    if isinstance(exc, OffsetOutOfRange):
        return ErrorCode.OFFSET_OUT_OF_RANGE
    if isinstance(exc, (LogError, OSError)):
        # Kafka turns an IOException on a log into KafkaStorageException.
        warn_rate_limited(
            logger, "log:" + storage_failure_kind(exc), "storage error on a log: %s", exc
        )
        return ErrorCode.KAFKA_STORAGE_ERROR
    return ErrorCode.UNKNOWN_SERVER_ERROR


# -- topic configuration ---------------------------------------------------------------------


def topic_value(ctx: RequestContext, topic: Topic, name: str) -> Any:
    """The typed effective value of topic config ``name`` (override, else broker synonym, else default)."""
    return effective_topic_value(name, topic.configs, ctx.broker.config)


# -- per-partition answers ---------------------------------------------------------


def partition_exists(ctx: RequestContext, topic: str, index: int) -> bool:
    """Whether the partition exists: in the cluster's metadata in cluster mode (this
    broker need not host it), else on this broker."""
    cluster = ctx.broker.cluster
    if cluster is not None:
        return cluster.metadata.partition(topic, index) is not None
    return ctx.broker.topics.partition(topic, index) is not None


def refused_partitions(
    ctx: RequestContext, operation: Operation, wanted: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The partitions of ``wanted`` a group or transaction API must not act on, each with
    its code: TOPIC_AUTHORIZATION_FAILED where the principal may not do ``operation`` on
    the topic, else UNKNOWN_TOPIC_OR_PARTITION where the partition does not exist.

    KafkaApis checks these before it hands the rest to a coordinator (OffsetCommit,
    TxnOffsetCommit and OffsetDelete with Read, AddPartitionsToTxn with Write).
    """
    wanted = list(wanted)
    permitted = filter_allowed(ctx, operation, ResourceType.TOPIC, {t for t, _ in wanted})
    refused: dict[tuple[str, int], int] = {}
    for tp in wanted:
        if tp[0] not in permitted:
            refused[tp] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        elif not partition_exists(ctx, *tp):
            refused[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    return refused


def answer_partitions(
    request_topics: Iterable[_Asked],
    blank: Callable[[_Question], _Answered],
    fill: Callable[[_Asked, _Question, _Answered], None],
) -> list[tuple[_Asked, list[_Answered]]]:
    """Each requested topic with the answers to its ``partitions``, in request order.

    A partition's answer is ``blank(partition)`` with what ``fill(topic, partition,
    answer)`` sets; an exception from ``fill`` becomes that answer's ``error_code``
    (``error_code_of``), so one partition's failure never fails the request
    (ListOffsets, OffsetForLeaderEpoch, DeleteRecords).
    """
    answered = []
    for t in request_topics:
        answers = []
        for p in t.partitions:
            answer = blank(p)
            try:
                fill(t, p, answer)
            except Exception as exc:  # noqa: BLE001 - every failure is a per-partition answer
                answer.error_code = error_code_of(exc)
            answers.append(answer)
        answered.append((t, answers))
    return answered


def requested_partitions(request_topics: Iterable[Any]) -> list[tuple[str, int]]:
    """(topic, partition) of every partition the request's topics list
    (``name``/``partition_index``), in its order."""
    return [(t.name, p.partition_index) for t in request_topics for p in t.partitions]


def partition_errors(
    request_topics: Iterable[Any],
    codes: Mapping[tuple[str, int], int],
    topic_class: Callable[..., _T],
    partition_class: Callable[..., Any],
) -> list[_T]:
    """The request's topics and partitions, in its order, each partition with its code.

    OffsetCommit, TxnOffsetCommit and OffsetDelete answer every partition they were asked
    about (``name``/``partition_index``/``error_code``), whatever happened to the others.
    """
    return [
        topic_class(
            name=t.name,
            partitions=[
                partition_class(
                    partition_index=p.partition_index,
                    error_code=codes[(t.name, p.partition_index)],
                )
                for p in t.partitions
            ],
        )
        for t in request_topics
    ]
