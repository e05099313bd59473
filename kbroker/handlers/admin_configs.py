"""Configuration administration: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.

How it works: every handler answers per resource, in request order, and reports each
failure inside that entry of the response (Kafka never closes the connection for an
admin error). The checks, their order, their error codes and their messages follow
Apache Kafka's KRaft code paths, because admin tools and client libraries surface
those messages to users verbatim:

- AlterConfigs / IncrementalAlterConfigs: the broker's ``ConfigAdminManager``
  pre-processing (duplicate resources and keys, null values, resource names),
  then ``ConfigurationControlManager`` (APPEND/SUBTRACT, validation of the
  resulting topic config as a whole);
- DescribeConfigs: ``ConfigHelper`` (values, sources, synonyms, types).

Dynamic broker configs (KIP-226) are not implemented: DescribeConfigs reports
every broker setting as read-only, and AlterConfigs / IncrementalAlterConfigs
on a BROKER resource answer INVALID_REQUEST saying so, rather than accepting a
change that would not take effect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kbroker import topic_config
from kbroker.authz.acl import Operation, ResourceType
from kbroker.authz.checks import require
from kbroker.config import CONFIG_DEFS, BrokerConfig
from kbroker.errors import KafkaApiError, unknown_topic
from kbroker.handlers import RequestContext, handles
from kbroker.topic_config import ConfigSource
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AlterConfigsRequest,
    AlterConfigsResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)

if TYPE_CHECKING:
    from kbroker.broker import BrokerState
    from kbroker.topics import Topic

_T = TypeVar("_T")

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


def error_and_message(exc: KafkaApiError) -> tuple[int, str | None]:
    """The (error code, error message) pair an admin response entry carries."""
    return int(exc.code), exc.message


def _resource_result(
    result: Callable[..., _T], resource: Any, error: tuple[int, str | None] | None, **fields: Any
) -> _T:
    """One resource's entry in a config API's response: the resource as the request named
    it, with its (error code, message), or none."""
    code, message = error or (0, None)
    return result(
        error_code=code,
        error_message=message,
        resource_type=resource.resource_type,
        resource_name=resource.resource_name,
        **fields,
    )


# --- topic config helpers ------------------------------------------------------------------


def check_topic_configs(configs: dict[str, str | None]) -> None:
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


def _require_config_access(ctx: RequestContext, resource: Any, operation: Operation) -> None:
    """KafkaApis / ConfigAdminManager: a topic's configs need the operation on the topic,
    a broker's (or its loggers') on the cluster."""
    if resource.resource_type == TOPIC:
        require(ctx, operation, ResourceType.TOPIC, resource.resource_name)
    else:
        require(ctx, operation)


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
            _require_config_access(ctx, resource, Operation.DESCRIBE_CONFIGS)
            entries = _describe_resource(ctx.broker, resource)
        except KafkaApiError as exc:
            results.append(_resource_result(Result, resource, error_and_message(exc), configs=[]))
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
        results.append(_resource_result(Result, resource, None, configs=configs))
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
            raise unknown_topic(name)
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
            errors[i] = error_and_message(exc)
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
    check_topic_configs(dict(new))
    if topic is None:
        raise unknown_topic(name)
    if broker.cluster is not None:
        from kbroker.cluster.topic_admin import change_topic_config

        clean = {k: v for k, v in new.items() if v is not None}
        await change_topic_config(broker.cluster, name, clean, validate_only=validate_only)
        return
    broker.topics.set_configs(name, new, validate_only=validate_only)


async def _alter_topic_configs(
    ctx: RequestContext,
    resources: Sequence[Any],
    *,
    incremental: bool,
    validate_only: bool,
    new_overrides: Callable[[Topic | TopicConfigs | None, Any], dict[str, str | None]],
    result: Callable[..., Any],
) -> list[Any]:
    """Both AlterConfigs APIs, resource by resource: they differ only in how the new
    overrides follow from the request (whole replacement, or KIP-339 operations)."""
    broker = ctx.broker
    errors = _preprocess(resources, broker.config.node_id, incremental=incremental)
    await _read_cluster_configs(broker, resources)
    results = []
    for i, resource in enumerate(resources):
        error = errors.get(i)
        if error is None:
            try:
                _require_config_access(ctx, resource, Operation.ALTER_CONFIGS)
            except KafkaApiError as exc:
                error = error_and_message(exc)
        if error is None and resource.resource_type == TOPIC:
            try:
                topic = _topic_for_alter(broker, resource.resource_name)
                new = new_overrides(topic, resource)
                await _apply_topic_configs(
                    broker, resource.resource_name, topic, new, validate_only
                )
            except KafkaApiError as exc:
                error = error_and_message(exc)
        results.append(_resource_result(result, resource, error))
    return results


@handles(AlterConfigsRequest.API_KEY, 0, 2)
async def handle_alter_configs(
    ctx: RequestContext, request: AlterConfigsRequest
) -> AlterConfigsResponse:
    """Replace topics' config overrides (legacy AlterConfigs: unlisted keys are removed)."""
    results = await _alter_topic_configs(
        ctx,
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
        ctx,
        request.resources,
        incremental=True,
        validate_only=request.validate_only,
        new_overrides=lambda topic, resource: _incremental_topic_configs(
            broker, dict(topic.configs) if topic is not None else {}, resource.configs
        ),
        result=IncrementalAlterConfigsResponse.AlterConfigsResourceResponse,
    )
    return IncrementalAlterConfigsResponse(throttle_time_ms=0, responses=results)
