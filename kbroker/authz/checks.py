"""The authorization checks handlers make, in one place (Kafka's AuthHelper).

A handler asks ``allowed(ctx, Operation.READ, ResourceType.TOPIC, name)`` (or
``filter_allowed`` for many names); with no ``authorizer.class.name`` configured the
answer is always yes and nothing is looked up. ``authorizer_of(broker)`` gives the
broker's ``Authorizer``, created on first use: on a single node its ACLs live in the
data dir (``acls.json``); in cluster mode in ZooKeeper (kbroker.authz.zk), followed by
``follow_changes`` so every broker enforces the same ACLs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from kbroker.authz import zk as acl_zk
from kbroker.authz.acl import (
    CLUSTER_NAME,
    AclBinding,
    AclFilter,
    AclStore,
    Operation,
    ResourceType,
    parse_super_users,
)
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import BrokerState
    from kbroker.handlers import RequestContext

__all__ = [
    "ACL_FILE",
    "Authorizer",
    "allowed",
    "allowed_cluster",
    "authorized_operations",
    "authorizer_of",
    "client_host",
    "denied_code",
    "filter_allowed",
    "require",
]

logger = logging.getLogger(__name__)

ACL_FILE = "acls.json"
_STATE_KEY = "kbroker.authz"


class Authorizer:
    """A broker's ACLs and where they are kept."""

    def __init__(self, broker: BrokerState) -> None:
        config = broker.config
        self.broker = broker
        self.store = AclStore(
            super_users=parse_super_users(config["super.users"]),
            allow_if_no_acls=bool(config["allow.everyone.if.no.acl.found"]),
        )
        self.path: Path = broker.data_dir / ACL_FILE
        self._lock = trio.Lock()
        self._loaded_from_zk = False
        if broker.cluster is None:
            self.store.load(self.path)

    def _zk(self) -> Any:
        cluster = self.broker.cluster
        return None if cluster is None else getattr(cluster, "zk", None)

    async def ensure_loaded(self) -> None:
        """In cluster mode, read ZooKeeper's ACLs once (``follow_changes`` keeps them)."""
        zk = self._zk()
        if zk is not None and not self._loaded_from_zk:
            await acl_zk.load_all(zk, self.store)
            self._loaded_from_zk = True

    async def create(self, bindings: list[AclBinding]) -> None:
        """Add validated bindings and persist them."""
        async with self._lock:
            zk = self._zk()
            if zk is None:
                for binding in bindings:
                    self.store.add(binding)
                self.store.save(self.path)
                return
            for binding in bindings:
                entries = await acl_zk.update_pattern(zk, binding.pattern, {binding.entry}, set())
                self.store.set_entries(binding.pattern, entries)

    async def delete(self, acl_filter: AclFilter) -> list[AclBinding]:
        """Remove and persist every ACL the filter matches; what was removed."""
        async with self._lock:
            zk = self._zk()
            if zk is None:
                removed = self.store.remove_matching(acl_filter)
                if removed:
                    self.store.save(self.path)
                return removed
            await self.ensure_loaded()
            removed = self.store.matching(acl_filter)
            by_pattern: dict[Any, set[Any]] = {}
            for binding in removed:
                by_pattern.setdefault(binding.pattern, set()).add(binding.entry)
            for pattern, entries in by_pattern.items():
                left = await acl_zk.update_pattern(zk, pattern, set(), entries)
                self.store.set_entries(pattern, left)
            return removed

    async def follow_changes(self, zk: Any) -> None:
        """Re-read each resource other brokers announce under the change roots."""
        await self.ensure_loaded()
        async with trio.open_nursery() as nursery:
            for root in (acl_zk.LITERAL_CHANGES, acl_zk.EXTENDED_CHANGES):
                nursery.start_soon(self._follow, zk, root)

    async def _follow(self, zk: Any, root: str) -> None:
        seen: set[str] | None = None
        async for children in await zk.watch_children(root):
            names = set(children or [])
            if seen is None:
                seen = names
                continue
            for child in sorted(names - seen):
                try:
                    data, _ = await zk.get(f"{root}/{child}")
                    pattern = acl_zk.decode_change(root, data)
                    entries, _ = await acl_zk.read_pattern(zk, pattern)
                except Exception:  # noqa: BLE001 - purged meanwhile or malformed
                    logger.warning("ignoring unreadable ACL change notification %s/%s", root, child)
                    continue
                self.store.set_entries(pattern, entries)
            seen = names


def authorizer_of(broker: BrokerState) -> Authorizer | None:
    """The broker's authorizer, or None when ``authorizer.class.name`` is empty."""
    if not broker.config["authorizer.class.name"]:
        return None
    found = broker.state.get(_STATE_KEY)
    if found is None:
        found = broker.state[_STATE_KEY] = Authorizer(broker)
    return found  # type: ignore[no-any-return]


def client_host(ctx: RequestContext) -> str:
    """The client's IP address, as ACL host filters name it."""
    host = ctx.peer.rsplit(":", 1)[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def allowed(
    ctx: RequestContext, operation: Operation, resource_type: ResourceType, name: str
) -> bool:
    """Whether the request's principal may do ``operation`` on the resource."""
    authorizer = authorizer_of(ctx.broker)
    if authorizer is None:
        return True
    return authorizer.store.authorize(
        ctx.principal, client_host(ctx), operation, resource_type, name
    )


def allowed_cluster(ctx: RequestContext, operation: Operation) -> bool:
    """``allowed`` on the CLUSTER resource."""
    return allowed(ctx, operation, ResourceType.CLUSTER, CLUSTER_NAME)


def filter_allowed(
    ctx: RequestContext, operation: Operation, resource_type: ResourceType, names: Iterable[str]
) -> set[str]:
    """The names among ``names`` the principal may do ``operation`` on."""
    authorizer = authorizer_of(ctx.broker)
    if authorizer is None:
        return set(names)
    host = client_host(ctx)
    return {
        name
        for name in names
        if authorizer.store.authorize(ctx.principal, host, operation, resource_type, name)
    }


# The error a refused request answers, by the type of the resource refused.
_DENIED = {
    ResourceType.TOPIC: ErrorCode.TOPIC_AUTHORIZATION_FAILED,
    ResourceType.GROUP: ErrorCode.GROUP_AUTHORIZATION_FAILED,
    ResourceType.CLUSTER: ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
    ResourceType.TRANSACTIONAL_ID: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ResourceType.DELEGATION_TOKEN: ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED,
}


def require(
    ctx: RequestContext,
    operation: Operation,
    resource_type: ResourceType = ResourceType.CLUSTER,
    name: str = CLUSTER_NAME,
) -> None:
    """KafkaApiError with the resource type's *_AUTHORIZATION_FAILED unless allowed
    (the cluster by default)."""
    if not allowed(ctx, operation, resource_type, name):
        raise KafkaApiError(_DENIED[resource_type])


def denied_code(resource_type: ResourceType) -> ErrorCode:
    """The *_AUTHORIZATION_FAILED error of a resource type."""
    return _DENIED[resource_type]


def may_write_any_topic(ctx: RequestContext) -> bool:
    """Whether some Write ALLOW on topics applies to the principal (Kafka 3.x lets an
    idempotent producer with Write on any topic initialise without IdempotentWrite:
    AuthHelper.authorizeByResourceType)."""
    authorizer = authorizer_of(ctx.broker)
    if authorizer is None:
        return True
    return authorizer.store.may_on_some(
        ctx.principal, client_host(ctx), Operation.WRITE, ResourceType.TOPIC
    )


def authorized_operations(
    ctx: RequestContext, resource_type: ResourceType, name: str, operations: int
) -> int:
    """The bits of ``operations`` (1 << AclOperation code) the principal is allowed on the
    resource: Metadata's and DescribeGroups' authorized operations (KIP-430)."""
    authorizer = authorizer_of(ctx.broker)
    if authorizer is None:
        return operations
    host = client_host(ctx)
    mask = 0
    for op in Operation:
        bit = 1 << op.value
        if operations & bit and authorizer.store.authorize(
            ctx.principal, host, op, resource_type, name
        ):
            mask |= bit
    return mask
