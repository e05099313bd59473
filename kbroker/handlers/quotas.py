"""DescribeClientQuotas and AlterClientQuotas (KIP-546), and the broker's QuotaManager.

Describing needs DescribeConfigs on the cluster, altering AlterConfigs
(CLUSTER_AUTHORIZATION_FAILED otherwise), as in KafkaApis. A single broker keeps its
quotas in the data dir; in cluster mode they would have to live in ZooKeeper under
/config/users and /config/clients, which kbroker does not do yet: altering them there
is refused rather than applied to one broker only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.authz.acl import Operation
from kbroker.authz.checks import allowed_cluster
from kbroker.handlers import RequestContext, handles
from kbroker.quotas import QUOTA_FILE, InvalidQuota, QuotaManager, make_entity
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
)

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

_STATE_KEY = "kbroker.quotas"


def quota_manager(broker: BrokerState) -> QuotaManager:
    """The broker's quotas (loaded from the data dir on first use)."""
    found = broker.state.get(_STATE_KEY)
    if found is None:
        path = None if broker.cluster is not None else broker.data_dir / QUOTA_FILE
        found = broker.state[_STATE_KEY] = QuotaManager(path)
    return found  # type: ignore[no-any-return]


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
            elif ctx.broker.cluster is not None:
                raise InvalidQuota("client quotas are not supported in cluster mode yet")
            else:
                entity = make_entity(pairs)
                ops = [(op.key, op.value, op.remove) for op in entry.ops]
                for key, value, remove in ops:
                    QuotaManager.check_op(key, value, remove)
                if not request.validate_only:
                    manager.alter(entity, ops)
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
