"""Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
AlterConfigs, IncrementalAlterConfigs and DescribeLogDirs.

How it works: every handler answers per topic / resource, in request order, and
reports each failure inside that entry of the response (Kafka never closes the
connection for an admin error). The checks, their order, their error codes and
their messages follow Apache Kafka's KRaft code paths, because admin tools and
client libraries surface those messages to users verbatim:

- CreateTopics / CreatePartitions / DeleteTopics: ``ControllerApis`` (duplicates,
  name-or-id rules) then ``ReplicationControlManager`` (names, existence,
  configs, assignments, replication factor, partition counts);
- AlterConfigs / IncrementalAlterConfigs: the broker's ``ConfigAdminManager``
  pre-processing (duplicate resources and keys, null values, resource names),
  then ``ConfigurationControlManager`` (APPEND/SUBTRACT, validation of the
  resulting topic config as a whole);
- DescribeConfigs: ``ConfigHelper`` (values, sources, synonyms, types).

There is one broker, so a replication factor above 1 can never be met
(INVALID_REPLICATION_FACTOR) and a manual assignment may only name our node.
All changes go through ``TopicManager``, which persists them and applies
retention / segment settings to the live partition logs.

Dynamic broker configs (KIP-226) are not implemented: DescribeConfigs reports
every broker setting as read-only, and AlterConfigs / IncrementalAlterConfigs
on a BROKER resource answer INVALID_REQUEST saying so, rather than accepting a
change that would not take effect.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker import topic_config
from kbroker.config import CONFIG_DEFS, BrokerConfig
from kbroker.coordinator.service import on_topics_deleted
from kbroker.errors import KafkaApiError
from kbroker.handlers import RequestContext, handles
from kbroker.topic_config import ConfigSource
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AlterConfigsRequest,
    AlterConfigsResponse,
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    DescribeLogDirsRequest,
    DescribeLogDirsResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)

if TYPE_CHECKING:
    from kbroker.broker import BrokerState
    from kbroker.cluster.metadata_cache import TopicInfo
    from kbroker.topics import Partition, Topic

ZERO_UUID = uuid.UUID(int=0)

# ConfigResource.Type ids (org.apache.kafka.common.config.ConfigResource).
RESOURCE_TYPE_NAMES = {
    0: "UNKNOWN",
    2: "TOPIC",
    4: "BROKER",
    8: "BROKER_LOGGER",
    16: "CLIENT_METRICS",
    32: "GROUP",
}
TOPIC = 2
BROKER = 4

# DescribeConfigsResponse.ConfigType ids (v3+, KIP-569).
CONFIG_TYPE_IDS = {
    "boolean": 1,
    "string": 2,
    "int": 3,
    "short": 4,
    "long": 5,
    "double": 6,
    "list": 7,
    "class": 8,
    "password": 9,
}

# AlterConfigOp.OpType ids (KIP-339).
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
OP_NAMES = {OP_SET: "SET", OP_DELETE: "DELETE", OP_APPEND: "APPEND", OP_SUBTRACT: "SUBTRACT"}

# Kafka's DynamicBrokerConfig.brokerSynonyms: a broker setting whose value may come
# from coarser-grained settings, most specific first.
BROKER_SYNONYMS: dict[str, list[str]] = {
    "log.retention.ms": ["log.retention.ms", "log.retention.minutes", "log.retention.hours"],
    "log.roll.ms": ["log.roll.ms", "log.roll.hours"],
    "log.roll.jitter.ms": ["log.roll.jitter.ms", "log.roll.jitter.hours"],
    "log.flush.interval.ms": ["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
}

# Documentation of the topic configs that have no broker setting to borrow it from.
TOPIC_CONFIG_DOCS: dict[str, str] = {
    "follower.replication.throttled.replicas": "Replicas whose follower replication is "
    "throttled; no effect on a single-node kbroker.",
    "leader.replication.throttled.replicas": "Replicas whose leader replication is "
    "throttled; no effect on a single-node kbroker.",
    "local.retention.bytes": "Local retention limit when tiered storage is enabled; "
    "tiered storage is not implemented, so no effect.",
    "local.retention.ms": "Local retention time when tiered storage is enabled; tiered "
    "storage is not implemented, so no effect.",
    "remote.storage.enable": "Tiered storage for the topic; not implemented, so no effect.",
}


def _error(exc: KafkaApiError) -> tuple[int, str | None]:
    return int(exc.code), exc.message


def _duplicates(items: Iterable[Any]) -> set[Any]:
    return {item for item, n in Counter(items).items() if n > 1}


# --- topic config helpers ------------------------------------------------------------------


def _check_topic_configs(configs: dict[str, str | None]) -> None:
    """Raise INVALID_CONFIG for null values, unknown names or bad values (Kafka's order)."""
    nulls = [name for name, value in configs.items() if value is None]
    if nulls:
        # ControllerConfigurationValidator: one message naming every null key.
        raise KafkaApiError(
            ErrorCode.INVALID_CONFIG,
            "Null value not supported for topic configs: " + ",".join(nulls),
        )
    topic_config.validate_topic_configs(dict(configs))


def _topic_config_type(name: str) -> str:
    defn = topic_config.TOPIC_CONFIGS.get(name)
    return defn.type if defn is not None else "string"


def _topic_config_doc(name: str) -> str | None:
    if name in TOPIC_CONFIG_DOCS:
        return TOPIC_CONFIG_DOCS[name]
    # The documentation of the broker setting that supplies the topic's default.
    defn = topic_config.TOPIC_CONFIGS.get(name)
    broker_defn = CONFIG_DEFS.get(defn.synonym or "") if defn is not None else None
    return broker_defn.doc if broker_defn is not None else None


def _broker_value_text(config: BrokerConfig, name: str) -> str | None:
    if config.is_set(name):
        return config.originals[name]
    return topic_config.to_text(CONFIG_DEFS[name].default)


def _broker_synonyms(
    config: BrokerConfig, names: Sequence[str]
) -> list[tuple[str, str | None, int]]:
    """Kafka's ConfigHelper.configSynonyms for a static-only broker: every synonym set in
    the config file (STATIC_BROKER_CONFIG), then every one with a default (DEFAULT_CONFIG)."""
    found: list[tuple[str, str | None, int]] = []
    for name in names:
        if name in CONFIG_DEFS and config.is_set(name):
            found.append((name, config.originals[name], ConfigSource.STATIC_BROKER_CONFIG))
    for name in names:
        defn = CONFIG_DEFS.get(name)
        if defn is not None and defn.default is not None:
            found.append((name, topic_config.to_text(defn.default), ConfigSource.DEFAULT_CONFIG))
    return found


def topic_config_entries(
    config: BrokerConfig, overrides: dict[str, str]
) -> list[tuple[str, str | None, int, list[tuple[str, str | None, int]]]]:
    """Every topic config as (name, value, source, synonyms), sorted by name."""
    effective = topic_config.effective_topic_configs(overrides, config)
    return [
        (
            name,
            value,
            int(source),
            [
                (s_name, s_value, int(s_source))
                for s_name, s_value, s_source in topic_config.topic_config_synonyms(
                    name, overrides, config
                )
            ],
        )
        for name, (value, source) in sorted(effective.items())
    ]


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
    for topic in request.topics:
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
            if broker.cluster is not None:
                results.append(
                    await _create_topic_in_cluster(
                        broker, topic, request.validate_only, version, request.timeout_ms
                    )
                )
            else:
                results.append(_create_topic(broker, topic, request.validate_only, version))
        except KafkaApiError as exc:
            code, message = _error(exc)
            results.append(
                CreateTopicsResponse.CreatableTopicResult(
                    name=topic.name, error_code=code, error_message=message
                )
            )
    return CreateTopicsResponse(throttle_time_ms=0, topics=results)


def _create_topic(
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
    _check_topic_configs(configs)
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
    created = topics.create(topic.name, num_partitions, overrides, validate_only=validate_only)
    result = CreateTopicsResponse.CreatableTopicResult(
        name=topic.name, error_code=0, error_message=None
    )
    if version >= 7:
        result.topic_id = created.topic_id
    if version >= 5:
        # KIP-525: the created topic's partitions, replication factor and full config.
        result.num_partitions = num_partitions
        result.replication_factor = 1
        result.configs = [
            CreateTopicsResponse.CreatableTopicConfigs(
                name=name, value=value, read_only=False, config_source=source, is_sensitive=False
            )
            for name, value, source, _ in topic_config_entries(broker.config, overrides)
        ]
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
    _check_topic_configs(configs)
    assignment: dict[int, list[int]] | None = None
    if topic.assignments:
        if topic.replication_factor != -1 or topic.num_partitions != -1:
            raise KafkaApiError(
                ErrorCode.INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. "
                "Both cannot be used at the same time.",
            )
        assignment = {a.partition_index: list(a.broker_ids) for a in topic.assignments}
    elif topic.replication_factor < -1 or topic.replication_factor == 0:
        raise KafkaApiError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        )
    elif topic.num_partitions < -1 or topic.num_partitions == 0:
        raise KafkaApiError(
            ErrorCode.INVALID_PARTITIONS,
            "Number of partitions was set to an invalid non-positive value.",
        )
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
        result.configs = [
            CreateTopicsResponse.CreatableTopicConfigs(
                name=name, value=value, read_only=False, config_source=source, is_sensitive=False
            )
            for name, value, source, _ in topic_config_entries(broker.config, overrides)
        ]
    return result


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
            code, message = _error(exc)
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
            code, message = _error(exc)
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
    broker.topics.add_partitions(topic.name, topic.count, validate_only=validate_only)


# --- DescribeConfigs (key 32) --------------------------------------------------------------


def _check_broker_name(name: str, node_id: int, *, describe: bool) -> None:
    """A BROKER resource names our node id, or "" for the cluster-wide defaults."""
    try:
        broker_id = int(name)
    except ValueError:
        if describe:  # ConfigHelper.resourceNameToBrokerId
            raise KafkaApiError(
                ErrorCode.INVALID_REQUEST, f"Broker id must be an integer, but it is: {name}"
            ) from None
        # ConfigAdminManager.validateResourceNameIsCurrentNodeId
        raise KafkaApiError(
            ErrorCode.INVALID_REQUEST, f"Node id must be an integer, but it is: {name}"
        ) from None
    if broker_id != node_id:
        expected = f"{node_id} or empty string" if describe else f"{node_id}"
        raise KafkaApiError(
            ErrorCode.INVALID_REQUEST,
            f"Unexpected broker id, expected {expected}, but received {name}",
        )


@handles(DescribeConfigsRequest.API_KEY, 0, 4)
async def handle_describe_configs(
    ctx: RequestContext, request: DescribeConfigsRequest
) -> DescribeConfigsResponse:
    """Describe topic and broker configs: values, sources, synonyms, types, docs."""
    version = ctx.api_version
    include_synonyms = version >= 1 and request.include_synonyms
    include_docs = version >= 3 and request.include_documentation
    Result = DescribeConfigsResponse.DescribeConfigsResult
    await _read_cluster_configs(ctx.broker, request.resources)
    results = []
    for resource in request.resources:
        try:
            entries = _describe_resource(ctx.broker, resource)
        except KafkaApiError as exc:
            code, message = _error(exc)
            results.append(
                Result(
                    error_code=code,
                    error_message=message,
                    resource_type=resource.resource_type,
                    resource_name=resource.resource_name,
                    configs=[],
                )
            )
            continue
        keys = resource.configuration_keys
        configs = []
        for name, value, source, synonyms, read_only, sensitive, kind, doc in entries:
            if keys is not None and name not in keys:
                continue
            entry = DescribeConfigsResponse.DescribeConfigsResourceResult(
                name=name,
                value=None if sensitive else value,
                read_only=read_only,
                is_sensitive=sensitive,
            )
            if version == 0:
                entry.is_default = source == ConfigSource.DEFAULT_CONFIG
            else:
                entry.config_source = source
                if include_synonyms:
                    entry.synonyms = [
                        DescribeConfigsResponse.DescribeConfigsSynonym(
                            name=s_name, value=None if sensitive else s_value, source=s_source
                        )
                        for s_name, s_value, s_source in synonyms
                    ]
            if version >= 3:
                entry.config_type = CONFIG_TYPE_IDS.get(kind, 0)
                entry.documentation = doc if include_docs else None
            configs.append(entry)
        results.append(
            Result(
                error_code=0,
                error_message=None,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    return DescribeConfigsResponse(throttle_time_ms=0, results=results)


def _describe_resource(
    broker: BrokerState, resource: DescribeConfigsRequest.DescribeConfigsResource
) -> list[tuple]:
    """(name, value, source, synonyms, read_only, sensitive, type, doc) for each config."""
    config: BrokerConfig = broker.config
    if resource.resource_type == TOPIC:
        name = resource.resource_name
        broker.topics.check_name(name)
        topic = _configured_topic(broker, name)
        if topic is None:
            raise KafkaApiError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist."
            )
        return [
            (
                c_name,
                value,
                source,
                synonyms,
                False,
                False,
                _topic_config_type(c_name),
                _topic_config_doc(c_name),
            )
            for c_name, value, source, synonyms in topic_config_entries(config, topic.configs)
        ]
    if resource.resource_type == BROKER:
        if resource.resource_name == "":
            # Cluster-wide dynamic defaults (KIP-226): there are none.
            return []
        _check_broker_name(resource.resource_name, config.node_id, describe=True)
        entries = []
        for name in sorted(CONFIG_DEFS):
            defn = CONFIG_DEFS[name]
            # ConfigHelper.createBrokerConfigEntry: the source is that of the first
            # synonym found; without any, DEFAULT_CONFIG.
            synonyms = _broker_synonyms(config, BROKER_SYNONYMS.get(name, [name]))
            synonyms = _drop_until(synonyms, name)
            source = synonyms[0][2] if synonyms else ConfigSource.DEFAULT_CONFIG
            sensitive = defn.type == "password"
            entries.append(
                (
                    name,
                    _broker_value_text(config, name),
                    source,
                    synonyms,
                    True,
                    sensitive,
                    defn.type,
                    defn.doc,
                )
            )
        return entries
    type_name = RESOURCE_TYPE_NAMES.get(resource.resource_type, "UNKNOWN")
    raise KafkaApiError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {type_name}")


def _drop_until(
    synonyms: list[tuple[str, str | None, int]], name: str
) -> list[tuple[str, str | None, int]]:
    # Kafka's configSynonyms ends with dropWhile(_.name != name): synonyms of coarser
    # settings are listed only when the setting itself appears first.
    for i, (s_name, _, _) in enumerate(synonyms):
        if s_name == name:
            return synonyms[i:]
    return []


# --- AlterConfigs (key 33) and IncrementalAlterConfigs (key 44) ----------------------------


def _preprocess(
    resources: Sequence[Any], node_id: int, *, incremental: bool
) -> dict[int, tuple[int, str | None]]:
    """ConfigAdminManager.preprocess: errors found before touching any topic, keyed by the
    index of the resource in the request."""
    errors: dict[int, tuple[int, str | None]] = {}
    keys = Counter((r.resource_type, r.resource_name) for r in resources)
    for i, resource in enumerate(resources):
        if keys[(resource.resource_type, resource.resource_name)] > 1:
            errors[i] = (ErrorCode.INVALID_REQUEST, "Each resource must appear at most once.")
            continue
        try:
            names = [c.name for c in resource.configs]
            if len(set(names)) != len(names):
                raise KafkaApiError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
            nulls = [
                c.name
                for c in resource.configs
                if c.value is None and not (incremental and c.config_operation == OP_DELETE)
            ]
            if nulls:
                raise KafkaApiError(
                    ErrorCode.INVALID_REQUEST, "Null value not supported for : " + ", ".join(nulls)
                )
            if incremental:
                for c in resource.configs:
                    if c.config_operation not in OP_NAMES:
                        raise KafkaApiError(
                            ErrorCode.INVALID_REQUEST,
                            f"Unknown operations type {c.config_operation}",
                        )
            if resource.resource_type == BROKER:
                if resource.resource_name != "":
                    _check_broker_name(resource.resource_name, node_id, describe=False)
                _refuse_broker_change(names)
            elif resource.resource_type != TOPIC:
                raise KafkaApiError(
                    ErrorCode.INVALID_REQUEST, f"Unknown resource type {resource.resource_type}"
                )
        except KafkaApiError as exc:
            errors[i] = _error(exc)
    return errors


def _refuse_broker_change(names: Sequence[str]) -> None:
    """Dynamic broker configs (KIP-226) are not implemented: refuse honestly."""
    if not names:
        return
    listed = ", ".join(names)
    raise KafkaApiError(
        ErrorCode.INVALID_REQUEST,
        f"Cannot update these configs dynamically: Set({listed}); kbroker "
        "reads broker settings only at startup (config file or --override).",
    )


def _topic_for_alter(broker: BrokerState, name: str) -> Topic | TopicConfigs | None:
    if name == "":
        raise KafkaApiError(ErrorCode.INVALID_REQUEST, "Default topic resources are not allowed.")
    broker.topics.check_name(name)
    return _configured_topic(broker, name)


@dataclass(frozen=True, slots=True)
class TopicConfigs:
    """A topic of the cluster and its overrides as ZooKeeper holds them (cluster mode)."""

    name: str
    configs: dict[str, str]


def _configured_topic(broker: BrokerState, name: str) -> Topic | TopicConfigs | None:
    """The topic whose configs are described or altered: the local one on a single node;
    in cluster mode any topic of the cluster, with the overrides last read from ZooKeeper
    (``_read_cluster_configs``)."""
    cluster = broker.cluster
    if cluster is None:
        return broker.topics.get(name)
    if cluster.metadata.topic(name) is None:
        return None
    return TopicConfigs(name, dict(cluster.topic_config_cache.get(name, {})))


async def _read_cluster_configs(broker: BrokerState, resources: Sequence[Any]) -> None:
    """Cluster mode: read the current overrides of the topics named (Kafka's ZK-mode
    brokers read /config/topics/<t> for DescribeConfigs and AlterConfigs)."""
    cluster = broker.cluster
    if cluster is None:
        return
    for resource in resources:
        name = resource.resource_name
        if resource.resource_type == TOPIC and name and cluster.metadata.topic(name) is not None:
            await cluster.apply_topic_configs(name)


async def _apply_topic_configs(
    broker: BrokerState,
    name: str,
    topic: Topic | TopicConfigs | None,
    new: dict[str, str | None],
    validate_only: bool,
) -> None:
    # ConfigurationControlManager.validateAlterConfig: the resulting config is validated
    # as a whole, then the topic's existence is checked.
    _check_topic_configs(dict(new))
    if topic is None:
        raise KafkaApiError(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist."
        )
    if broker.cluster is not None:
        from kbroker.cluster.topic_admin import change_topic_config

        clean = {k: v for k, v in new.items() if v is not None}
        await change_topic_config(broker.cluster, name, clean, validate_only=validate_only)
        return
    broker.topics.set_configs(name, new, validate_only=validate_only)


async def _alter_topic_configs(
    broker: BrokerState,
    resources: Sequence[Any],
    *,
    incremental: bool,
    validate_only: bool,
    new_overrides: Callable[[Topic | TopicConfigs | None, Any], dict[str, str | None]],
    result: Callable[..., Any],
) -> list[Any]:
    """Both AlterConfigs APIs, resource by resource: they differ only in how the new
    overrides follow from the request (whole replacement, or KIP-339 operations)."""
    errors = _preprocess(resources, broker.config.node_id, incremental=incremental)
    await _read_cluster_configs(broker, resources)
    results = []
    for i, resource in enumerate(resources):
        error = errors.get(i)
        if error is None and resource.resource_type == TOPIC:
            try:
                topic = _topic_for_alter(broker, resource.resource_name)
                new = new_overrides(topic, resource)
                await _apply_topic_configs(
                    broker, resource.resource_name, topic, new, validate_only
                )
            except KafkaApiError as exc:
                error = _error(exc)
        code, message = error or (0, None)
        results.append(
            result(
                error_code=code,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
        )
    return results


@handles(AlterConfigsRequest.API_KEY, 0, 2)
async def handle_alter_configs(
    ctx: RequestContext, request: AlterConfigsRequest
) -> AlterConfigsResponse:
    """Replace topics' config overrides (legacy AlterConfigs: unlisted keys are removed)."""
    results = await _alter_topic_configs(
        ctx.broker,
        request.resources,
        incremental=False,
        validate_only=request.validate_only,
        new_overrides=lambda _topic, resource: {c.name: c.value for c in resource.configs},
        result=AlterConfigsResponse.AlterConfigsResourceResponse,
    )
    return AlterConfigsResponse(throttle_time_ms=0, responses=results)


def _list_default(name: str, broker_config: BrokerConfig) -> str | None:
    value, _ = topic_config.effective_topic_configs({}, broker_config)[name]
    return topic_config.to_text(value)


def _incremental_topic_configs(
    broker: BrokerState, current: dict[str, str], ops: Sequence[Any]
) -> dict[str, str | None]:
    """ConfigurationControlManager.incrementalAlterConfigResource on a topic's overrides."""
    new: dict[str, str | None] = dict(current)
    for op in ops:
        key = op.name
        kind = op.config_operation
        if kind == OP_SET:
            # No name check here: the result is validated as a whole (_apply_topic_configs).
            new[key] = op.value
            continue
        if key not in topic_config.TOPIC_CONFIGS:
            raise KafkaApiError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {key}")
        if kind == OP_DELETE:
            new.pop(key, None)
        else:
            if _topic_config_type(key) != "list":
                raise KafkaApiError(
                    ErrorCode.INVALID_CONFIG,
                    f"Can't {OP_NAMES[kind]} to key {key} because its type is not LIST.",
                )
            # The list starts from the override, else from the default (getParts).
            base = new.get(key)
            if base is None:
                base = _list_default(key, broker.config)
            parts = [p for p in (base or "").split(",") if p]
            for item in (op.value or "").split(","):
                if kind == OP_APPEND:
                    if item not in parts:
                        parts.append(item)
                elif item in parts:
                    parts.remove(item)
            new[key] = ",".join(parts)
    return new


@handles(IncrementalAlterConfigsRequest.API_KEY, 0, 1)
async def handle_incremental_alter_configs(
    ctx: RequestContext, request: IncrementalAlterConfigsRequest
) -> IncrementalAlterConfigsResponse:
    """SET / DELETE / APPEND / SUBTRACT single topic config keys (KIP-339)."""
    broker = ctx.broker
    results = await _alter_topic_configs(
        broker,
        request.resources,
        incremental=True,
        validate_only=request.validate_only,
        new_overrides=lambda topic, resource: _incremental_topic_configs(
            broker, dict(topic.configs) if topic is not None else {}, resource.configs
        ),
        result=IncrementalAlterConfigsResponse.AlterConfigsResourceResponse,
    )
    return IncrementalAlterConfigsResponse(throttle_time_ms=0, responses=results)


# --- DescribeLogDirs (key 35) --------------------------------------------------------------


def _partition_size(partition: Partition) -> int:
    """Bytes of the partition's segment files (Kafka's UnifiedLog.size)."""
    return int(partition.log.size_in_bytes)


@handles(DescribeLogDirsRequest.API_KEY, 0, 4)
async def handle_describe_log_dirs(
    ctx: RequestContext, request: DescribeLogDirsRequest
) -> DescribeLogDirsResponse:
    """Describe our one log directory: per-partition sizes and (v4) volume space."""
    version = ctx.api_version
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
                offset_lag=0,
                is_future_key=False,
            )
            for p in topic.partitions
            if indexes is None or p.index in indexes
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
