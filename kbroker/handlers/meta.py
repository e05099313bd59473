"""ApiVersions, Metadata and DescribeCluster: what a client asks before anything else.

On a single node one broker is the whole cluster: it is the controller, and the
leader, only replica and only in-sync replica of every partition (leader epoch 0).
In cluster mode every broker answers for the whole cluster from its metadata
cache (what the controller last sent in UpdateMetadata): the live brokers, the
controller, and each partition's leader, leader epoch, replicas, ISR and offline
replicas; auto-creation goes through ZooKeeper and answers LEADER_NOT_AVAILABLE
until the controller has elected the leaders, as Kafka does.
"""

from __future__ import annotations

import logging
import re
import uuid

import trio

from kbroker.authz.acl import CLUSTER_NAME, Operation, ResourceType
from kbroker.authz.checks import allowed, allowed_cluster, authorized_operations, filter_allowed
from kbroker.cluster.metadata_cache import TopicInfo
from kbroker.errors import KafkaApiError
from kbroker.failures import warn_rate_limited, warn_storage_failure
from kbroker.handlers import RequestContext, advertised_versions, handles
from kbroker.internal_topics import INTERNAL_TOPICS
from kbroker.partition_limits import AutoCreateBudget
from kbroker.topics import Topic, check_name
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    DescribeClusterRequest,
    DescribeClusterResponse,
    MetadataRequest,
    MetadataResponse,
)

logger = logging.getLogger(__name__)

AUTHORIZED_OPERATIONS_OMITTED = -2147483648  # Integer.MIN_VALUE: "not requested"
# Without an authorizer Kafka reports every operation the resource type supports
# (AclOperation codes: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
# CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12).
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
# KIP-511: ClientSoftwareName/Version must match this (ApiVersionsRequest.isValid).
_SOFTWARE_RE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$")


def advertised_endpoint(ctx: RequestContext) -> tuple[str, int]:
    """The (host, port) clients should use: advertised.listeners, else the listen address;
    a wildcard host is replaced by the address this client connected to."""
    broker = ctx.broker
    config = broker.config
    # The client's own listener: a client of the SASL_SSL listener must be sent back to it.
    listener = next((x for x in config.listeners if x.name == ctx.listener), config.listener)
    advertised = config.advertised_for(listener.name)
    if advertised is not None:
        host = advertised.host or ctx.local_address[0]
        return host, advertised.port
    host = ctx.local_address[0] if listener.host in WILDCARD_HOSTS else listener.host
    bound = broker.listen_addresses.get(listener.name, broker.listen_address)
    port = bound[1] if bound else listener.port
    return host, port


# --- ApiVersions (key 18) -------------------------------------------------------------


def _api_keys() -> list[ApiVersionsResponse.ApiVersion]:
    return [
        ApiVersionsResponse.ApiVersion(api_key=key, min_version=low, max_version=high)
        for key, (low, high) in sorted(advertised_versions().items())
    ]


def unsupported_api_versions_response() -> ApiVersionsResponse:
    """KIP-511 reply to an ApiVersions version we do not serve (sent as v0): the error and
    our ApiVersions range, as Kafka's ApiVersionsRequest.getErrorResponse does."""
    low, high = advertised_versions()[ApiVersionsRequest.API_KEY]
    return ApiVersionsResponse(
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        api_keys=[
            ApiVersionsResponse.ApiVersion(
                api_key=ApiVersionsRequest.API_KEY, min_version=low, max_version=high
            )
        ],
    )


@handles(ApiVersionsRequest.API_KEY, 0, 4)
async def handle_api_versions(
    ctx: RequestContext, request: ApiVersionsRequest
) -> ApiVersionsResponse:
    """List every API and version range this broker serves."""
    if ctx.api_version >= 3 and not (
        _SOFTWARE_RE.match(request.client_software_name or "")
        and _SOFTWARE_RE.match(request.client_software_version or "")
    ):
        # Kafka answers an invalid client software name/version with INVALID_REQUEST.
        return ApiVersionsResponse(error_code=ErrorCode.INVALID_REQUEST)
    # A client's first request: who connected, and with what (KIP-511's software name and
    # version, which Kafka keeps for its client metrics).
    logger.info(
        "client connected from %s: client id %s, software %s %s (ApiVersions v%d)",
        ctx.peer,
        ctx.client_id,
        request.client_software_name or "unknown",
        request.client_software_version or "",
        ctx.api_version,
    )
    # Finalized features are left empty: a single node has nothing to negotiate.
    return ApiVersionsResponse(error_code=ErrorCode.NONE, api_keys=_api_keys(), throttle_time_ms=0)


# --- Metadata (key 3) -----------------------------------------------------------------


def _topic_metadata(
    ctx: RequestContext, topic: Topic, include_operations: bool
) -> MetadataResponse.MetadataResponseTopic:
    node = ctx.broker.node_id
    partitions = [
        MetadataResponse.MetadataResponsePartition(
            error_code=ErrorCode.NONE,
            partition_index=p.index,
            leader_id=node,
            leader_epoch=p.leader_epoch,
            replica_nodes=[node],
            isr_nodes=[node],
            offline_replicas=[],
        )
        for p in topic.partitions
    ]
    return _found_topic(
        ctx, topic.name, topic.topic_id, topic.internal, partitions, include_operations
    )


def _cluster_topic_metadata(
    ctx: RequestContext, info: TopicInfo, include_operations: bool, version: int
) -> MetadataResponse.MetadataResponseTopic:
    """A topic as the metadata cache describes it (ZkMetadataCache.getPartitionMetadata)."""
    assert ctx.broker.cluster is not None
    live = ctx.broker.cluster.metadata.brokers
    partitions = []
    for index, state in sorted(info.partitions.items()):
        replicas = list(state.replicas)
        isr = list(state.isr)
        if version == 0:
            # v0 clients were given only live replicas (errorUnavailableEndpoints).
            replicas = [r for r in replicas if r in live]
            isr = [r for r in isr if r in live]
        leader_live = state.leader >= 0 and state.leader in live
        error = ErrorCode.NONE if leader_live else ErrorCode.LEADER_NOT_AVAILABLE
        if leader_live and live[state.leader].endpoint_for(ctx.listener) is None:
            # A live leader without the client's listener (ZkMetadataCache).
            leader_live, error = False, ErrorCode.LISTENER_NOT_FOUND
        partitions.append(
            MetadataResponse.MetadataResponsePartition(
                error_code=error,
                partition_index=index,
                leader_id=state.leader if leader_live else -1,
                leader_epoch=state.leader_epoch,
                replica_nodes=replicas,
                isr_nodes=isr,
                offline_replicas=[r for r in state.offline_replicas],
            )
        )
    return _found_topic(
        ctx, info.name, info.topic_id, info.name in INTERNAL_TOPICS, partitions, include_operations
    )


def _found_topic(
    ctx: RequestContext,
    name: str,
    topic_id: uuid.UUID,
    internal: bool,
    partitions: list[MetadataResponse.MetadataResponsePartition],
    include_operations: bool,
) -> MetadataResponse.MetadataResponseTopic:
    """A topic's entry in a Metadata response; its authorized operations only when asked
    (KIP-430)."""
    return MetadataResponse.MetadataResponseTopic(
        error_code=ErrorCode.NONE,
        name=name,
        topic_id=topic_id,
        is_internal=internal,
        partitions=partitions,
        topic_authorized_operations=(
            authorized_operations(ctx, ResourceType.TOPIC, name, TOPIC_OPERATIONS)
            if include_operations
            else AUTHORIZED_OPERATIONS_OMITTED
        ),
    )


def _all_topics(
    ctx: RequestContext, include_operations: bool, version: int
) -> list[MetadataResponse.MetadataResponseTopic]:
    cluster = ctx.broker.cluster
    # KafkaApis: listing every topic silently leaves out those the principal may not Describe.
    names = ctx.broker.topics.topics if cluster is None else cluster.metadata.topics
    visible = filter_allowed(ctx, Operation.DESCRIBE, ResourceType.TOPIC, names)
    if cluster is None:
        return [
            _topic_metadata(ctx, t, include_operations)
            for name, t in sorted(ctx.broker.topics.topics.items())
            if name in visible
        ]
    return [
        _cluster_topic_metadata(ctx, info, include_operations, version)
        for name, info in sorted(cluster.metadata.topics.items())
        if name in visible
    ]


def _known_topic(
    ctx: RequestContext,
    name: str | None,
    topic_id: uuid.UUID | None,
    include_operations: bool,
    version: int,
) -> MetadataResponse.MetadataResponseTopic | None:
    """The topic by name (or by id when ``name`` is None), None if unknown."""
    cluster = ctx.broker.cluster
    if cluster is None:
        topic = (
            ctx.broker.topics.get(name)
            if name is not None
            else ctx.broker.topics.get_by_id(topic_id or uuid.UUID(int=0))
        )
        return None if topic is None else _topic_metadata(ctx, topic, include_operations)
    info = (
        cluster.metadata.topic(name)
        if name is not None
        else cluster.metadata.topic_by_id(topic_id or uuid.UUID(int=0))
    )
    return None if info is None else _cluster_topic_metadata(ctx, info, include_operations, version)


def cluster_brokers(ctx: RequestContext) -> list[tuple[int, str, int, str | None]]:
    """(id, host, port, rack) of every live broker: the metadata cache's in cluster mode
    (this broker alone until the first UpdateMetadata), else this broker."""
    cluster = ctx.broker.cluster
    if cluster is not None and cluster.metadata.brokers:
        # Each client sees the endpoints of the listener it came in on; a broker without
        # that listener is left out (ZkMetadataCache.getAliveEndpoints).
        found = []
        for _, b in sorted(cluster.metadata.brokers.items()):
            endpoint = b.endpoint_for(ctx.listener)
            if endpoint is not None:
                found.append((b.broker_id, *endpoint, b.rack))
        return found
    host, port = advertised_endpoint(ctx)
    return [(ctx.broker.node_id, host, port, ctx.broker.config["broker.rack"])]


def controller_id(ctx: RequestContext) -> int:
    """The controller's id (-1 while a cluster has none)."""
    cluster = ctx.broker.cluster
    return ctx.broker.node_id if cluster is None else cluster.metadata.controller_id


def _error_topic(
    code: ErrorCode, name: str | None, topic_id: uuid.UUID | None = None
) -> MetadataResponse.MetadataResponseTopic:
    return MetadataResponse.MetadataResponseTopic(
        error_code=code, name=name, topic_id=topic_id or uuid.UUID(int=0), partitions=[]
    )


async def _missing_topic(
    ctx: RequestContext,
    name: str,
    auto_create: bool,
    include_operations: bool,
    budget: AutoCreateBudget | None = None,
) -> MetadataResponse.MetadataResponseTopic:
    # Kafka (KafkaApis.getTopicMetadata): an invalid name is INVALID_TOPIC_EXCEPTION
    # whether or not auto-creation is on; otherwise create it if allowed, else
    # UNKNOWN_TOPIC_OR_PARTITION.
    try:
        check_name(name)
    except KafkaApiError as exc:
        return _error_topic(exc.code, name)
    if not auto_create:
        return _error_topic(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name)
    cluster = ctx.broker.cluster
    if budget is not None and cluster is None:
        # kbroker.partition_limits: max.broker.partitions, then
        # auto.create.topics.max.per.request (past it the topic is "being created"
        # for the client, which asks again).
        try:
            code = budget.admit(name)
        except KafkaApiError as exc:
            warn_rate_limited(
                logger,
                "auto-create:limit",
                "auto-creating topic %r for %s: %s",
                name,
                ctx.peer,
                exc,
            )
            return _error_topic(exc.code, name)
        if code is not None:
            return _error_topic(code, name)
        # Each creation is synchronous work: other connections are served in between.
        await trio.lowlevel.checkpoint()
    if cluster is not None:
        from kbroker.cluster.topic_admin import auto_create as create_in_cluster

        try:
            await create_in_cluster(cluster, name)
        except KafkaApiError as exc:
            logger.info("auto-creating topic %r for %s failed: %s", name, ctx.peer, exc)
            return _error_topic(exc.code, name)
        # KafkaApis: the controller has yet to elect leaders; the client asks again.
        return _error_topic(ErrorCode.LEADER_NOT_AVAILABLE, name)
    topics = ctx.broker.topics
    try:
        if name in INTERNAL_TOPICS:
            # Synchronous: the coordinators create these on first use and expect
            # them whole (their partition count is the broker's config, 50 by default).
            topic = topics.create_internal(name)
        else:
            # Opened a slice of partitions at a time; other connections are served
            # in between and the topic stays invisible until it is whole.
            topic = await topics.create_async(name, -1)
    except KafkaApiError as exc:
        if exc.code == ErrorCode.TOPIC_ALREADY_EXISTS:
            # Another request is creating it right now (AdminZkClient's
            # TopicExistsException in KafkaApis.createTopic): the client asks again.
            return _error_topic(ErrorCode.LEADER_NOT_AVAILABLE, name)
        logger.info("auto-creating topic %r for %s failed: %s", name, ctx.peer, exc)
        return _error_topic(exc.code, name)
    except Exception as exc:
        # A full disk (or a failing one): the topic is not created (Topics.create
        # undoes what it did) and the client, told KAFKA_STORAGE_ERROR (retriable),
        # asks again later.
        warn_storage_failure(
            exc,
            logger,
            "auto-create",
            "auto-creating topic %r for %s failed: %s",
            name,
            ctx.peer,
            exc,
        )
        return _error_topic(ErrorCode.KAFKA_STORAGE_ERROR, name)
    logger.info(
        "auto-created topic %r (%d partitions) for a Metadata request from %s",
        name,
        len(topic.partitions),
        ctx.peer,
    )
    # Kafka answers LEADER_NOT_AVAILABLE while its controller creates the topic; our
    # creation is synchronous, so the client gets the ready topic at once.
    return _topic_metadata(ctx, topic, include_operations)


@handles(MetadataRequest.API_KEY, 0, 12)
async def handle_metadata(ctx: RequestContext, request: MetadataRequest) -> MetadataResponse:
    """Brokers, cluster id, controller, and the requested topics (auto-creating them)."""
    broker = ctx.broker
    version = ctx.api_version
    include_ops = bool(request.include_topic_authorized_operations)
    response = MetadataResponse(
        throttle_time_ms=0,
        brokers=[
            MetadataResponse.MetadataResponseBroker(node_id=n, host=h, port=p, rack=r)
            for n, h, p, r in cluster_brokers(ctx)
        ],
        cluster_id=broker.cluster_id,
        controller_id=controller_id(ctx),
        topics=[],
        cluster_authorized_operations=(
            authorized_operations(ctx, ResourceType.CLUSTER, CLUSTER_NAME, CLUSTER_OPERATIONS)
            if request.include_cluster_authorized_operations
            else AUTHORIZED_OPERATIONS_OMITTED
        ),
    )
    requested = request.topics
    # Null (v1+) means every topic; in v0 an empty list did (the field was not nullable).
    if requested is None or (version == 0 and not requested):
        response.topics = _all_topics(ctx, include_ops, version)
        return response
    zero = uuid.UUID(int=0)
    for entry in requested:
        if (entry.name is None or entry.topic_id != zero) and version < 12:
            # Kafka: topic ids in Metadata requests are only accepted from v12. A
            # response topic's name is nullable only from v12: a null name sent in
            # v10-11 (which the request allows) is echoed as "".
            response.topics = [
                _error_topic(ErrorCode.INVALID_REQUEST, e.name or "", e.topic_id) for e in requested
            ]
            return response
    auto_create = broker.config["auto.create.topics.enable"] and (
        version < 4 or request.allow_auto_topic_creation
    )
    seen: set[str | uuid.UUID] = set()
    budget = AutoCreateBudget(broker)
    # Auto-creation needs Create on the cluster or on the topic.
    create_on_cluster = allowed_cluster(ctx, Operation.CREATE)

    def may_create(name: str) -> bool:
        return create_on_cluster or allowed(ctx, Operation.CREATE, ResourceType.TOPIC, name)

    for entry in requested:
        if entry.name is None or (entry.topic_id != zero and not entry.name):
            if entry.topic_id in seen:
                continue
            seen.add(entry.topic_id)
            found = _known_topic(ctx, None, entry.topic_id, include_ops, version)
            if found is not None and not allowed(
                ctx, Operation.DESCRIBE, ResourceType.TOPIC, found.name or ""
            ):
                found = _error_topic(ErrorCode.TOPIC_AUTHORIZATION_FAILED, None, entry.topic_id)
            response.topics.append(
                found
                if found is not None
                else _error_topic(ErrorCode.UNKNOWN_TOPIC_ID, None, entry.topic_id)
            )
            continue
        if entry.name in seen:
            continue
        seen.add(entry.name)
        if not allowed(ctx, Operation.DESCRIBE, ResourceType.TOPIC, entry.name):
            # Whether it exists is not told either (KafkaApis.handleTopicMetadataRequest).
            response.topics.append(_error_topic(ErrorCode.TOPIC_AUTHORIZATION_FAILED, entry.name))
            continue
        found = _known_topic(ctx, entry.name, None, include_ops, version)
        if found is None and auto_create and not may_create(entry.name):
            response.topics.append(_error_topic(ErrorCode.TOPIC_AUTHORIZATION_FAILED, entry.name))
            continue
        response.topics.append(
            found
            if found is not None
            else await _missing_topic(ctx, entry.name, auto_create, include_ops, budget)
        )
    return response


# --- DescribeCluster (key 60, KIP-700) ------------------------------------------------


@handles(DescribeClusterRequest.API_KEY, 0, 1)
async def handle_describe_cluster(
    ctx: RequestContext, request: DescribeClusterRequest
) -> DescribeClusterResponse:
    """The cluster id, the controller and the live brokers."""
    broker = ctx.broker
    endpoint_type = request.endpoint_type if ctx.api_version >= 1 else 1
    if endpoint_type != 1:
        # A broker describes brokers only; controllers are asked directly (KIP-919).
        return DescribeClusterResponse(
            error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message="The target endpoint type is not supported by this broker.",
            endpoint_type=endpoint_type,
            cluster_id=broker.cluster_id,
            controller_id=controller_id(ctx),
        )
    return DescribeClusterResponse(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        endpoint_type=1,
        cluster_id=broker.cluster_id,
        controller_id=controller_id(ctx),
        brokers=[
            DescribeClusterResponse.DescribeClusterBroker(broker_id=n, host=h, port=p, rack=r)
            for n, h, p, r in cluster_brokers(ctx)
        ],
        cluster_authorized_operations=(
            authorized_operations(ctx, ResourceType.CLUSTER, CLUSTER_NAME, CLUSTER_OPERATIONS)
            if request.include_cluster_authorized_operations
            else AUTHORIZED_OPERATIONS_OMITTED
        ),
    )
