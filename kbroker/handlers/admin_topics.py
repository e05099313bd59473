"""Topic administration: CreateTopics, DeleteTopics, CreatePartitions and DescribeLogDirs.

How it works: every handler answers per topic, in request order, and reports each
failure inside that entry of the response (Kafka never closes the connection for an
admin error). The checks, their order, their error codes and their messages follow
Apache Kafka's KRaft code paths, because admin tools and client libraries surface
those messages to users verbatim: ``ControllerApis`` (duplicates, name-or-id rules)
then ``ReplicationControlManager`` (names, existence, configs, assignments,
replication factor, partition counts).

There is one broker, so a replication factor above 1 can never be met
(INVALID_REPLICATION_FACTOR) and a manual assignment may only name our node.
All changes go through ``TopicManager``, which persists them and applies
retention / segment settings to the live partition logs. A new topic's configs are
checked and described by ``handlers.admin_configs``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from kbroker.authz.acl import Operation, ResourceType
from kbroker.authz.checks import allowed, allowed_cluster, require
from kbroker.coordinator.service import on_topics_deleted
from kbroker.errors import KafkaApiError
from kbroker.failures import warn_storage_failure
from kbroker.handlers import RequestContext, handles
from kbroker.handlers.admin_configs import (
    check_topic_configs,
    error_and_message,
    topic_config_entries,
)
from kbroker.partition_limits import check_broker_partitions, check_request_partitions
from kbroker.wire.classes import ZERO_UUID
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DescribeLogDirsRequest,
    DescribeLogDirsResponse,
)

if TYPE_CHECKING:
    from kbroker.broker import BrokerState
    from kbroker.cluster.metadata_cache import TopicInfo
    from kbroker.topics import Partition, Topic

_T = TypeVar("_T")

logger = logging.getLogger(__name__)


def _refused_over_request_limit(
    broker: BrokerState, requested: int, names: Iterable[str], result: Callable[..., _T]
) -> list[_T] | None:
    """A request for more partitions than max.partitions.per.request is refused whole,
    before anything is placed (KAFKA-17870): each topic it names answers, once, with the
    error. None when it is within the limit."""
    try:
        check_request_partitions(broker, requested)
    except KafkaApiError as exc:
        code, message = error_and_message(exc)
        return [
            result(name=name, error_code=code, error_message=message)
            for name in dict.fromkeys(names)
        ]
    return None


def _duplicates(items: Iterable[Any]) -> set[Any]:
    return {item for item, n in Counter(items).items() if n > 1}


# --- CreateTopics (key 19) -----------------------------------------------------------------


@handles(CreateTopicsRequest.API_KEY, 0, 7)
async def handle_create_topics(
    ctx: RequestContext, request: CreateTopicsRequest
) -> CreateTopicsResponse:
    """Create topics (or only validate them), one result per requested topic."""
    version = ctx.api_version
    broker = ctx.broker
    names = [t.name for t in request.topics]
    dupes = _duplicates(names)
    results = []
    seen_dupes: set[str] = set()
    default_partitions = int(broker.config["num.partitions"])
    requested = sum(
        len(t.assignments)
        if t.assignments
        else (default_partitions if t.num_partitions == -1 else max(0, t.num_partitions))
        for t in request.topics
    )
    refused = _refused_over_request_limit(
        broker, requested, names, CreateTopicsResponse.CreatableTopicResult
    )
    if refused is not None:
        return CreateTopicsResponse(throttle_time_ms=0, topics=refused)
    # KafkaApis.handleCreateTopicsRequest: Create on the cluster, else on each topic.
    create_on_cluster = allowed_cluster(ctx, Operation.CREATE)

    def may_create(name: str) -> bool:
        return create_on_cluster or allowed(ctx, Operation.CREATE, ResourceType.TOPIC, name)

    for topic in request.topics:
        # Creating a topic is synchronous work (files, directories, an fsync):
        # let other connections be served between topics.
        await trio.lowlevel.checkpoint()
        if topic.name in dupes:
            # ControllerApis.createTopics: every entry of a repeated name is refused, and
            # the name is reported once.
            if topic.name not in seen_dupes:
                seen_dupes.add(topic.name)
                results.append(
                    CreateTopicsResponse.CreatableTopicResult(
                        name=topic.name,
                        error_code=ErrorCode.INVALID_REQUEST,
                        error_message="Found multiple entries for this topic.",
                    )
                )
            continue
        try:
            if not may_create(topic.name):
                raise KafkaApiError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            if broker.cluster is not None:
                results.append(
                    await _create_topic_in_cluster(
                        broker, topic, request.validate_only, version, request.timeout_ms
                    )
                )
            else:
                results.append(await _create_topic(broker, topic, request.validate_only, version))
        except KafkaApiError as exc:
            code, message = error_and_message(exc)
            results.append(
                CreateTopicsResponse.CreatableTopicResult(
                    name=topic.name, error_code=code, error_message=message
                )
            )
        except Exception as exc:
            warn_storage_failure(
                exc,
                logger,
                "create-topics",
                "creating topic %r for %s failed: %s",
                topic.name,
                ctx.peer,
                exc,
            )
            results.append(
                CreateTopicsResponse.CreatableTopicResult(
                    name=topic.name,
                    error_code=ErrorCode.KAFKA_STORAGE_ERROR,
                    error_message=f"Storage error: {exc}",
                )
            )
    return CreateTopicsResponse(throttle_time_ms=0, topics=results)


async def _create_topic(
    broker: BrokerState,
    topic: CreateTopicsRequest.CreatableTopic,
    validate_only: bool,
    version: int,
) -> CreateTopicsResponse.CreatableTopicResult:
    topics = broker.topics
    topics.check_name(topic.name)
    if topics.get(topic.name) is not None:
        raise KafkaApiError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{topic.name}' already exists.")
    configs: dict[str, str | None] = {c.name: c.value for c in topic.configs}
    check_topic_configs(configs)
    node_id = broker.config.node_id
    if topic.assignments:
        # ReplicationControlManager.createTopic: a manual assignment comes with -1/-1
        # (KIP-464), partitions 0..n-1 each on a list of registered, distinct brokers.
        if topic.replication_factor != -1:
            raise KafkaApiError(
                ErrorCode.INVALID_REQUEST,
                "A manual partition assignment was specified, but replication "
                "factor was not set to -1.",
            )
        if topic.num_partitions != -1:
            raise KafkaApiError(
                ErrorCode.INVALID_REQUEST,
                "A manual partition assignment was specified, but numPartitions was not set to -1.",
            )
        seen: set[int] = set()
        for assignment in topic.assignments:
            if assignment.partition_index in seen:
                raise KafkaApiError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    "Found multiple manual partition assignments for partition "
                    f"{assignment.partition_index}",
                )
            _check_manual_assignment(assignment.broker_ids, node_id)
            seen.add(assignment.partition_index)
        if seen != set(range(len(seen))):
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                "partitions should be a consecutive 0-based integer sequence",
            )
        num_partitions = len(seen)
    else:
        # Older request versions (< 4) cannot send -1 from Kafka's own clients, but the
        # broker resolves the defaults whatever the version, as Kafka's does.
        _check_counts(topic)
        replication = topic.replication_factor
        if replication == -1:
            replication = int(broker.config["default.replication.factor"])
        if replication > 1:
            # StripedReplicaPlacer's message, prefixed by ReplicationControlManager.
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication} time(s): The "
                f"target replication factor of {replication} cannot be reached "
                "because only 1 broker(s) are registered.",
            )
        num_partitions = topic.num_partitions
        if num_partitions == -1:
            num_partitions = int(broker.config["num.partitions"])
    overrides = {name: value for name, value in configs.items() if value is not None}
    if num_partitions > 0:
        check_broker_partitions(broker, num_partitions)
    # Opening thousands of partitions takes seconds: other connections are served
    # every few milliseconds meanwhile.
    created = await topics.create_async(
        topic.name, num_partitions, overrides, validate_only=validate_only
    )
    result = CreateTopicsResponse.CreatableTopicResult(
        name=topic.name, error_code=0, error_message=None
    )
    if version >= 7:
        result.topic_id = created.topic_id
    if version >= 5:
        # KIP-525: the created topic's partitions, replication factor and full config.
        result.num_partitions = num_partitions
        result.replication_factor = 1
        result.configs = _created_configs(broker, overrides)
    return result


async def _create_topic_in_cluster(
    broker: BrokerState,
    topic: CreateTopicsRequest.CreatableTopic,
    validate_only: bool,
    version: int,
    timeout_ms: int,
) -> CreateTopicsResponse.CreatableTopicResult:
    """CreateTopics in cluster mode: Kafka's ZkAdminManager.createTopics (placement by
    AdminUtils, the topic written to ZooKeeper, answered once the metadata shows it)."""
    from kbroker.cluster import topic_admin

    assert broker.cluster is not None
    configs: dict[str, str | None] = {c.name: c.value for c in topic.configs}
    check_topic_configs(configs)
    assignment: dict[int, list[int]] | None = None
    if topic.assignments:
        if topic.replication_factor != -1 or topic.num_partitions != -1:
            raise KafkaApiError(
                ErrorCode.INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. "
                "Both cannot be used at the same time.",
            )
        assignment = {a.partition_index: list(a.broker_ids) for a in topic.assignments}
    else:
        _check_counts(topic)
    overrides = {name: value for name, value in configs.items() if value is not None}
    topic_id, placed = await topic_admin.create_topic(
        broker.cluster,
        topic.name,
        num_partitions=topic.num_partitions,
        replication_factor=topic.replication_factor,
        assignment=assignment,
        configs=overrides,
        validate_only=validate_only,
        timeout_ms=timeout_ms,
    )
    result = CreateTopicsResponse.CreatableTopicResult(
        name=topic.name, error_code=0, error_message=None
    )
    if version >= 7:
        info = broker.cluster.metadata.topic(topic.name)
        result.topic_id = info.topic_id if info is not None else topic_id
    if version >= 5:
        result.num_partitions = len(placed)
        result.replication_factor = len(next(iter(placed.values()))) if placed else -1
        result.configs = _created_configs(broker, overrides)
    return result


def _check_counts(topic: CreateTopicsRequest.CreatableTopic) -> None:
    """The partition count and replication factor asked for: positive, or -1 for the
    broker's default (ReplicationControlManager.createTopic's messages)."""
    if topic.replication_factor < -1 or topic.replication_factor == 0:
        raise KafkaApiError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        )
    if topic.num_partitions < -1 or topic.num_partitions == 0:
        raise KafkaApiError(
            ErrorCode.INVALID_PARTITIONS,
            "Number of partitions was set to an invalid non-positive value.",
        )


def _created_configs(
    broker: BrokerState, overrides: dict[str, str]
) -> list[CreateTopicsResponse.CreatableTopicConfigs]:
    """KIP-525: the created topic's full config, as CreateTopics v5+ answers it."""
    return [
        CreateTopicsResponse.CreatableTopicConfigs(
            name=name, value=value, read_only=False, config_source=source, is_sensitive=False
        )
        for name, value, source, _ in topic_config_entries(broker.config, overrides)
    ]


def _check_manual_assignment(
    broker_ids: Sequence[int], node_id: int, replication_factor: int | None = None
) -> None:
    """ReplicationControlManager.validateManualPartitionAssignment on a one-node cluster."""
    if not broker_ids:
        raise KafkaApiError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes an empty replica list.",
        )
    previous = None
    for broker_id in sorted(broker_ids):
        if broker_id != node_id:
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes broker {broker_id}, "
                "but no such broker is registered.",
            )
        if broker_id == previous:
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes the broker {broker_id} more than once.",
            )
        previous = broker_id
    if replication_factor is not None and len(broker_ids) != replication_factor:
        raise KafkaApiError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes a partition with "
            f"{len(broker_ids)} replica(s), but this is not consistent with "
            f"previous partitions, which have {replication_factor} replica(s).",
        )


# --- DeleteTopics (key 20) -----------------------------------------------------------------


@handles(DeleteTopicsRequest.API_KEY, 0, 6)
async def handle_delete_topics(
    ctx: RequestContext, request: DeleteTopicsRequest
) -> DeleteTopicsResponse:
    """Delete topics named (v0+) or identified by topic id (v6+)."""
    version = ctx.api_version
    topics = ctx.broker.topics
    cluster = ctx.broker.cluster
    Result = DeleteTopicsResponse.DeletableTopicResult

    # (name, topic_id) per request entry; v0-5 send names only.
    if version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, ZERO_UUID) for name in request.topic_names]
    dup_names = _duplicates(n for n, i in wanted if n is not None and i == ZERO_UUID)
    dup_ids = _duplicates(i for n, i in wanted if n is None and i != ZERO_UUID)
    # ControllerApis.deleteTopics resolves the ids before the names: a name whose topic
    # id another entry supplies is refused, whatever the order of the two entries.
    ids_supplied = {i for n, i in wanted if n is None and i != ZERO_UUID and i not in dup_ids}

    results = []
    reported: set[tuple[str | None, uuid.UUID]] = set()
    for name, topic_id in wanted:

        def fail(
            code: int, message: str | None, name: str | None = name, topic_id: uuid.UUID = topic_id
        ) -> None:
            results.append(
                Result(name=name, topic_id=topic_id, error_code=code, error_message=message)
            )

        if name is None and topic_id == ZERO_UUID:
            fail(ErrorCode.INVALID_REQUEST, "Neither topic name nor id were specified.")
            continue
        if name is not None and topic_id != ZERO_UUID:
            fail(ErrorCode.INVALID_REQUEST, "You may not specify both topic name and topic id.")
            continue
        if name in dup_names or topic_id in dup_ids:
            if (name, topic_id) not in reported:  # one result per repeated name / id
                reported.add((name, topic_id))
                fail(
                    ErrorCode.INVALID_REQUEST,
                    "Duplicate topic name." if name is not None else "Duplicate topic id.",
                )
            continue
        if name is not None and not allowed(ctx, Operation.DELETE, ResourceType.TOPIC, name):
            fail(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            continue
        topic: Topic | TopicInfo | None
        if cluster is not None:
            view = cluster.metadata
            topic = view.topic(name) if name is not None else view.topic_by_id(topic_id)
        else:
            topic = topics.get(name) if name is not None else topics.get_by_id(topic_id)
        if topic is None:
            # Kafka's default messages for these codes; the response carries null.
            fail(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                if name is not None
                else ErrorCode.UNKNOWN_TOPIC_ID,
                None,
            )
            continue
        if name is None and not allowed(ctx, Operation.DELETE, ResourceType.TOPIC, topic.name):
            fail(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            continue
        if name is not None and topic.topic_id in ids_supplied:
            fail(
                ErrorCode.INVALID_REQUEST,
                "The provided topic name maps to an ID that was already supplied.",
                topic_id=topic.topic_id,
            )
            continue
        try:
            if cluster is not None:
                from kbroker.cluster.topic_admin import delete_topic

                await delete_topic(cluster, topic.name, timeout_ms=request.timeout_ms)
            else:
                topics.delete(topic.name)
        except KafkaApiError as exc:
            code, message = error_and_message(exc)
            if exc.code == ErrorCode.TOPIC_DELETION_DISABLED and version < 3:
                # TOPIC_DELETION_DISABLED exists from v3; older clients get INVALID_REQUEST.
                code = ErrorCode.INVALID_REQUEST
            fail(code, message, name=topic.name, topic_id=topic.topic_id)
            continue
        results.append(
            Result(name=topic.name, topic_id=topic.topic_id, error_code=0, error_message=None)
        )
    deleted = [r.name for r in results if r.error_code == 0 and r.name is not None]
    if deleted and cluster is None:
        # Kafka drops the groups' committed offsets of deleted partitions, so a topic
        # re-created under the same name starts from the reset policy, not stale offsets.
        on_topics_deleted(ctx.broker, deleted)
    return DeleteTopicsResponse(throttle_time_ms=0, responses=results)


# --- CreatePartitions (key 37) -------------------------------------------------------------


@handles(CreatePartitionsRequest.API_KEY, 0, 3)
async def handle_create_partitions(
    ctx: RequestContext, request: CreatePartitionsRequest
) -> CreatePartitionsResponse:
    """Increase topics' partition counts (or only validate the increase)."""
    broker = ctx.broker
    Result = CreatePartitionsResponse.CreatePartitionsTopicResult
    dupes = _duplicates(t.name for t in request.topics)
    results = []
    reported: set[str] = set()
    if broker.cluster is None:
        adding = 0
        for topic in request.topics:
            existing = broker.topics.get(topic.name)
            if existing is not None:
                adding += max(0, topic.count - len(existing.partitions))
        refused = _refused_over_request_limit(
            broker, adding, (t.name for t in request.topics), Result
        )
        if refused is not None:
            return CreatePartitionsResponse(throttle_time_ms=0, results=refused)
    for topic in request.topics:
        if topic.name in dupes:
            if topic.name not in reported:
                reported.add(topic.name)
                results.append(
                    Result(
                        name=topic.name,
                        error_code=ErrorCode.INVALID_REQUEST,
                        error_message="Duplicate topic name.",
                    )
                )
            continue
        try:
            require(ctx, Operation.ALTER, ResourceType.TOPIC, topic.name)
            if broker.cluster is not None:
                from kbroker.cluster.topic_admin import add_partitions

                await add_partitions(
                    broker.cluster,
                    topic.name,
                    topic.count,
                    assignment=(
                        None
                        if topic.assignments is None
                        else [list(a.broker_ids) for a in topic.assignments]
                    ),
                    validate_only=request.validate_only,
                    timeout_ms=request.timeout_ms,
                )
            else:
                _create_partitions(broker, topic, request.validate_only)
        except KafkaApiError as exc:
            code, message = error_and_message(exc)
            results.append(Result(name=topic.name, error_code=code, error_message=message))
            continue
        results.append(Result(name=topic.name, error_code=0, error_message=None))
    return CreatePartitionsResponse(throttle_time_ms=0, results=results)


def _create_partitions(
    broker: BrokerState, topic: CreatePartitionsRequest.CreatePartitionsTopic, validate_only: bool
) -> None:
    existing = broker.topics.get(topic.name)
    if existing is None:
        raise KafkaApiError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None)
    current = len(existing.partitions)
    # ReplicationControlManager.createPartitions: messages as Kafka words them.
    if topic.count == current:
        raise KafkaApiError(
            ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partition(s)."
        )
    if topic.count < current:
        raise KafkaApiError(
            ErrorCode.INVALID_PARTITIONS,
            f"The topic {topic.name} currently has {current} partition(s); "
            f"{topic.count} would not be an increase.",
        )
    additional = topic.count - current
    if topic.assignments is not None:
        if len(topic.assignments) != additional:
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"Attempted to add {additional} additional partition(s), but "
                f"only {len(topic.assignments)} assignment(s) were specified.",
            )
        for assignment in topic.assignments:
            _check_manual_assignment(
                assignment.broker_ids, broker.config.node_id, replication_factor=1
            )
    check_broker_partitions(broker, additional)
    broker.topics.add_partitions(topic.name, topic.count, validate_only=validate_only)


# --- DescribeLogDirs (key 35) --------------------------------------------------------------


def _partition_size(partition: Partition) -> int:
    """Bytes of the partition's segment files (Kafka's UnifiedLog.size)."""
    return int(partition.log.size_in_bytes)


def _offset_lag(partition: Partition) -> int:
    """How far this replica's log end is behind the leader's high watermark (0 on the
    leader and on a single node). Kafka's ReplicaManager.getLogEndOffsetLag computes
    max(HW - LEO, 0) from the local high watermark; a follower's local HW is clamped to
    its own LEO, so the leader's HW from the last fetch response is used instead, which
    shows a replica still catching up (e.g. one being added by a reassignment)."""
    replica = partition.replica
    if replica is None or replica.is_leader:
        return 0
    leader_hw = replica.leader_high_watermark
    if leader_hw is None:
        return 0
    return max(leader_hw - int(partition.log.log_end_offset), 0)


@handles(DescribeLogDirsRequest.API_KEY, 0, 4)
async def handle_describe_log_dirs(
    ctx: RequestContext, request: DescribeLogDirsRequest
) -> DescribeLogDirsResponse:
    """Describe our one log directory: per-partition sizes and (v4) volume space."""
    version = ctx.api_version
    if not allowed_cluster(ctx, Operation.DESCRIBE):
        # KafkaApis.handleDescribeLogDirsRequest: Describe on the cluster, else no results.
        denied = DescribeLogDirsResponse(throttle_time_ms=0, results=[])
        if version >= 3:
            denied.error_code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return denied
    broker = ctx.broker
    # Kafka reports File.getAbsolutePath: absolute, symlinks left as configured.
    data_dir = os.path.abspath(broker.config.data_dir)
    if request.topics is None:
        wanted: dict[str, set[int] | None] = {name: None for name in broker.topics.topics}
    else:
        wanted = {}
        for t in request.topics:
            parts = wanted.get(t.topic) or set()
            wanted[t.topic] = parts | set(t.partitions)
    cluster = broker.cluster
    hosted = None if cluster is None else set(cluster.replicas.states)
    out_topics = []
    for name in sorted(wanted):
        topic = broker.topics.get(name)
        if topic is None:
            continue  # Kafka lists only partitions it hosts
        indexes = wanted[name]
        partitions = [
            DescribeLogDirsResponse.DescribeLogDirsPartition(
                partition_index=p.index,
                partition_size=_partition_size(p),
                offset_lag=_offset_lag(p),
                is_future_key=False,
            )
            for p in topic.partitions
            if (indexes is None or p.index in indexes)
            # In a cluster the local topic has a folder for every partition index, but
            # this broker hosts only the ones the controller gave it.
            and (hosted is None or (name, p.index) in hosted)
        ]
        if partitions:
            out_topics.append(
                DescribeLogDirsResponse.DescribeLogDirsTopic(name=name, partitions=partitions)
            )
    result = DescribeLogDirsResponse.DescribeLogDirsResult(
        error_code=0, log_dir=data_dir, topics=out_topics
    )
    if version >= 4:
        # KIP-827: the volume's total and usable space, as Java's File.getTotalSpace /
        # getUsableSpace report them.
        st = os.statvfs(data_dir)
        result.total_bytes = st.f_blocks * st.f_frsize
        result.usable_bytes = st.f_bavail * st.f_frsize
    response = DescribeLogDirsResponse(throttle_time_ms=0, results=[result])
    if version >= 3:
        response.error_code = 0
    return response
