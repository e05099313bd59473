"""ApiVersions, Metadata and DescribeCluster: what a client asks before anything else.

One broker is the whole cluster: it is the controller, and the leader, only
replica and only in-sync replica of every partition (leader epoch 0).
"""

from __future__ import annotations

import logging
import re
import uuid

from kbroker.errors import KafkaApiError
from kbroker.handlers import RequestContext, advertised_versions, handles
from kbroker.topics import INTERNAL_TOPICS, Topic, check_name
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
    advertised = broker.config.advertised_listener
    if advertised is not None:
        host = advertised.host or ctx.local_address[0]
        return host, advertised.port
    listener = broker.config.listener
    host = ctx.local_address[0] if listener.host in WILDCARD_HOSTS else listener.host
    port = broker.listen_address[1] if broker.listen_address else listener.port
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
            leader_epoch=0,
            replica_nodes=[node],
            isr_nodes=[node],
            offline_replicas=[],
        )
        for p in topic.partitions
    ]
    return MetadataResponse.MetadataResponseTopic(
        error_code=ErrorCode.NONE,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.internal,
        partitions=partitions,
        topic_authorized_operations=(
            TOPIC_OPERATIONS if include_operations else AUTHORIZED_OPERATIONS_OMITTED
        ),
    )


def _error_topic(
    code: ErrorCode, name: str | None, topic_id: uuid.UUID | None = None
) -> MetadataResponse.MetadataResponseTopic:
    return MetadataResponse.MetadataResponseTopic(
        error_code=code, name=name, topic_id=topic_id or uuid.UUID(int=0), partitions=[]
    )


def _missing_topic(
    ctx: RequestContext, name: str, auto_create: bool, include_operations: bool
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
    topics = ctx.broker.topics
    try:
        if name in INTERNAL_TOPICS:
            topic = topics.create_internal(name)
        else:
            topic = topics.create(name, -1)
    except KafkaApiError as exc:
        logger.info("auto-creating topic %r for %s failed: %s", name, ctx.peer, exc)
        return _error_topic(exc.code, name)
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
    host, port = advertised_endpoint(ctx)
    include_ops = bool(request.include_topic_authorized_operations)
    response = MetadataResponse(
        throttle_time_ms=0,
        brokers=[
            MetadataResponse.MetadataResponseBroker(
                node_id=broker.node_id, host=host, port=port, rack=broker.config["broker.rack"]
            )
        ],
        cluster_id=broker.cluster_id,
        controller_id=broker.node_id,
        topics=[],
        cluster_authorized_operations=(
            CLUSTER_OPERATIONS
            if request.include_cluster_authorized_operations
            else AUTHORIZED_OPERATIONS_OMITTED
        ),
    )
    requested = request.topics
    # Null (v1+) means every topic; in v0 an empty list did (the field was not nullable).
    if requested is None or (version == 0 and not requested):
        response.topics = [
            _topic_metadata(ctx, t, include_ops) for _, t in sorted(broker.topics.topics.items())
        ]
        return response
    zero = uuid.UUID(int=0)
    for entry in requested:
        if (entry.name is None or entry.topic_id != zero) and version < 12:
            # Kafka: topic ids in Metadata requests are only accepted from v12.
            response.topics = [
                _error_topic(ErrorCode.INVALID_REQUEST, e.name, e.topic_id) for e in requested
            ]
            return response
    auto_create = broker.config["auto.create.topics.enable"] and (
        version < 4 or request.allow_auto_topic_creation
    )
    seen: set[str | uuid.UUID] = set()
    for entry in requested:
        if entry.name is None or (entry.topic_id != zero and not entry.name):
            if entry.topic_id in seen:
                continue
            seen.add(entry.topic_id)
            topic = broker.topics.get_by_id(entry.topic_id)
            response.topics.append(
                _topic_metadata(ctx, topic, include_ops)
                if topic is not None
                else _error_topic(ErrorCode.UNKNOWN_TOPIC_ID, None, entry.topic_id)
            )
            continue
        if entry.name in seen:
            continue
        seen.add(entry.name)
        topic = broker.topics.get(entry.name)
        response.topics.append(
            _topic_metadata(ctx, topic, include_ops)
            if topic is not None
            else _missing_topic(ctx, entry.name, auto_create, include_ops)
        )
    return response


# --- DescribeCluster (key 60, KIP-700) ------------------------------------------------


@handles(DescribeClusterRequest.API_KEY, 0, 1)
async def handle_describe_cluster(
    ctx: RequestContext, request: DescribeClusterRequest
) -> DescribeClusterResponse:
    """The cluster id, the controller and the brokers (ourselves)."""
    broker = ctx.broker
    endpoint_type = request.endpoint_type if ctx.api_version >= 1 else 1
    if endpoint_type != 1:
        # A broker describes brokers only; controllers are asked directly (KIP-919).
        return DescribeClusterResponse(
            error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message="The target endpoint type is not supported by this broker.",
            endpoint_type=endpoint_type,
            cluster_id=broker.cluster_id,
            controller_id=broker.node_id,
        )
    host, port = advertised_endpoint(ctx)
    return DescribeClusterResponse(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        endpoint_type=1,
        cluster_id=broker.cluster_id,
        controller_id=broker.node_id,
        brokers=[
            DescribeClusterResponse.DescribeClusterBroker(
                broker_id=broker.node_id, host=host, port=port, rack=broker.config["broker.rack"]
            )
        ],
        cluster_authorized_operations=(
            CLUSTER_OPERATIONS
            if request.include_cluster_authorized_operations
            else AUTHORIZED_OPERATIONS_OMITTED
        ),
    )
