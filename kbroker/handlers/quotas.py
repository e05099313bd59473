"""DescribeClientQuotas and AlterClientQuotas (KIP-546), the broker's QuotaManager, and
the request-rate quota every request is checked against (apply_request_quota).

Describing needs DescribeConfigs on the cluster, altering AlterConfigs
(CLUSTER_AUTHORIZATION_FAILED otherwise), as in KafkaApis. A single broker keeps its
quotas in the data dir; a cluster in ZooKeeper under /config/users and /config/clients,
as Kafka does (kbroker.quotas_zk), so every broker enforces the same quotas.
"""

from __future__ import annotations

from typing import Any

import trio

from kbroker.authz.acl import Operation
from kbroker.authz.checks import allowed_cluster
from kbroker.handlers import RequestContext, handles
from kbroker.handlers.fetch import replica_id_of
from kbroker.quotas import Entity, InvalidQuota, QuotaManager, make_entity, quota_manager
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
    FetchRequest,
)


@handles(DescribeClientQuotasRequest.API_KEY, 0, 1)
async def handle_describe_client_quotas(
    ctx: RequestContext, request: DescribeClientQuotasRequest
) -> DescribeClientQuotasResponse:
    """The quota entities matching the filter, with their values."""
    R = DescribeClientQuotasResponse
    if not allowed_cluster(ctx, Operation.DESCRIBE_CONFIGS):
        return R(
            throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, entries=None
        )
    try:
        found = quota_manager(ctx.broker).describe(
            [(c.entity_type, c.match_type, c.match) for c in request.components], request.strict
        )
    except InvalidQuota as exc:
        return R(
            throttle_time_ms=0,
            error_code=ErrorCode.INVALID_REQUEST,
            error_message=str(exc),
            entries=None,
        )
    return R(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        entries=[
            R.EntryData(
                entity=[R.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                values=[R.ValueData(key=k, value=v) for k, v in sorted(values.items())],
            )
            for entity, values in found
        ],
    )


async def _alter(
    ctx: RequestContext, manager: QuotaManager, entity: Entity, ops: list[tuple[str, float, bool]]
) -> None:
    cluster = ctx.broker.cluster
    if cluster is None:
        manager.alter(entity, ops)
        return
    # Cluster mode: ZooKeeper is the truth every broker follows (kbroker.quotas_zk).
    from kbroker import quotas_zk

    values = manager.altered(entity, ops)
    await quotas_zk.write(cluster.zk, entity, values)
    manager.replace(entity, values)


@handles(AlterClientQuotasRequest.API_KEY, 0, 1)
async def handle_alter_client_quotas(
    ctx: RequestContext, request: AlterClientQuotasRequest
) -> AlterClientQuotasResponse:
    """Set or remove quota values, entity by entity (each validated on its own)."""
    R = AlterClientQuotasResponse
    denied = not allowed_cluster(ctx, Operation.ALTER_CONFIGS)
    manager = quota_manager(ctx.broker)
    results = []
    for entry in request.entries:
        pairs = [(e.entity_type, e.entity_name) for e in entry.entity]
        code, message = ErrorCode.NONE, None
        try:
            if denied:
                code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            else:
                entity = make_entity(pairs)
                ops = [(op.key, op.value, op.remove) for op in entry.ops]
                for key, value, remove in ops:
                    QuotaManager.check_op(key, value, remove)
                if not request.validate_only:
                    await _alter(ctx, manager, entity, ops)
        except InvalidQuota as exc:
            code, message = ErrorCode.INVALID_REQUEST, str(exc)
        results.append(
            R.EntryData(
                error_code=code,
                error_message=message,
                entity=[R.EntityData(entity_type=t, entity_name=n) for t, n in pairs],
            )
        )
    return R(throttle_time_ms=0, entries=results)


# Requests brokers send each other are never throttled (ApiKeys' clusterAction APIs:
# KafkaApis answers them with sendResponseExemptThrottle): LeaderAndIsr, StopReplica,
# UpdateMetadata, ControlledShutdown, WriteTxnMarkers, AlterPartition, Envelope.
_EXEMPT_API_KEYS = frozenset({4, 5, 6, 7, 27, 56, 58})


def apply_request_quota(ctx: RequestContext, request: Any, response: Any, busy_s: float) -> None:
    """Count a request's handler time against the client's request_percentage quota; when
    that throttles it, raise the response's throttle_time_ms and ``ctx.throttle_ms`` to it
    (the larger of this and a byte-rate throttle wins, as in KafkaApis)."""
    manager = quota_manager(ctx.broker)
    if not manager.request_quotas_set:
        return
    api_key = ctx.header.request_api_key
    if api_key in _EXEMPT_API_KEYS:
        return
    if api_key == FetchRequest.API_KEY and replica_id_of(request, ctx.api_version) >= 0:
        return  # a follower's fetch (handleFetchRequest: isFromFollower)
    throttle_ms = manager.record_request_time(
        ctx.principal, ctx.client_id or "", busy_s, trio.current_time()
    )
    if throttle_ms <= ctx.throttle_ms:
        return
    ctx.throttle_ms = throttle_ms
    if response is not None and hasattr(response, "throttle_time_ms"):
        response.throttle_time_ms = max(response.throttle_time_ms or 0, throttle_ms)
