"""ACLs in ZooKeeper, where Kafka's AclAuthorizer keeps them (kafka.zk.ZkData).

- LITERAL patterns: ``/kafka-acl/<ResourceType>/<name>``; PREFIXED ones:
  ``/kafka-acl-extended/prefixed/<ResourceType>/<name>``. Each znode holds
  ``{"version":1,"acls":[{"principal","permissionType","operation","host"}]}``
  with Kafka's names ("Topic", "Allow", "DescribeConfigs"...), and is deleted when its
  last ACL goes.
- After a change the writer adds a sequential ``acl_changes_`` znode under
  ``/kafka-acl-changes`` (LITERAL; data ``Topic:name``) or
  ``/kafka-acl-extended-changes`` (PREFIXED; a JSON resource), and every broker
  re-reads that one resource (AclAuthorizer's ZkNodeChangeNotificationListener).

A Kafka 3.x broker (or kafka-acls --authorizer-properties zookeeper.connect=...) sharing
the ZooKeeper ensemble reads and writes the same ACLs.
"""

from __future__ import annotations

import json
from typing import Any

from kbroker.authz.acl import (
    AclEntry,
    AclStore,
    Operation,
    PatternType,
    Permission,
    ResourcePattern,
    ResourceType,
)

LITERAL_ROOT = "/kafka-acl"
PREFIXED_ROOT = "/kafka-acl-extended/prefixed"
LITERAL_CHANGES = "/kafka-acl-changes"
EXTENDED_CHANGES = "/kafka-acl-extended-changes"
CHANGE_PREFIX = "acl_changes_"

# SecurityUtils.resourceTypeName / operationName / permissionTypeName: CamelCase.
_TYPE_NAMES = {
    ResourceType.TOPIC: "Topic",
    ResourceType.GROUP: "Group",
    ResourceType.CLUSTER: "Cluster",
    ResourceType.TRANSACTIONAL_ID: "TransactionalId",
    ResourceType.DELEGATION_TOKEN: "DelegationToken",
    ResourceType.USER: "User",
}
_TYPES_BY_NAME = {v: k for k, v in _TYPE_NAMES.items()}
_PATTERN_NAMES = {PatternType.LITERAL: "Literal", PatternType.PREFIXED: "Prefixed"}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_OP_NAMES = {op: _camel(op.name) for op in Operation if op.value >= Operation.ALL}
_OPS_BY_NAME = {v: k for k, v in _OP_NAMES.items()}
_PERM_NAMES = {Permission.ALLOW: "Allow", Permission.DENY: "Deny"}
_PERMS_BY_NAME = {v: k for k, v in _PERM_NAMES.items()}


def pattern_path(pattern: ResourcePattern) -> str:
    root = LITERAL_ROOT if pattern.pattern_type == PatternType.LITERAL else PREFIXED_ROOT
    return f"{root}/{_TYPE_NAMES[pattern.resource_type]}/{pattern.name}"


def encode_entries(entries: frozenset[AclEntry]) -> bytes:
    acls = [
        {
            "principal": e.principal,
            "permissionType": _PERM_NAMES[e.permission],
            "operation": _OP_NAMES[e.operation],
            "host": e.host,
        }
        for e in sorted(entries)
    ]
    return json.dumps({"version": 1, "acls": acls}, separators=(",", ":")).encode()


def decode_entries(data: bytes) -> set[AclEntry]:
    if not data:
        return set()
    return {
        AclEntry(
            acl["principal"],
            acl["host"],
            _OPS_BY_NAME[acl["operation"]],
            _PERMS_BY_NAME[acl["permissionType"]],
        )
        for acl in json.loads(data)["acls"]
    }


def encode_change(pattern: ResourcePattern) -> tuple[str, bytes]:
    """The notification root and data announcing a change of ``pattern``."""
    type_name = _TYPE_NAMES[pattern.resource_type]
    if pattern.pattern_type == PatternType.LITERAL:
        return LITERAL_CHANGES, f"{type_name}:{pattern.name}".encode()
    body = {
        "version": 1,
        "resourceType": type_name,
        "name": pattern.name,
        "patternType": _PATTERN_NAMES[pattern.pattern_type],
    }
    return EXTENDED_CHANGES, json.dumps(body, separators=(",", ":")).encode()


def decode_change(root: str, data: bytes) -> ResourcePattern:
    if root == LITERAL_CHANGES:
        type_name, _, name = data.decode().partition(":")
        return ResourcePattern(_TYPES_BY_NAME[type_name], name, PatternType.LITERAL)
    body = json.loads(data)
    pattern_type = {v: k for k, v in _PATTERN_NAMES.items()}[body["patternType"]]
    return ResourcePattern(_TYPES_BY_NAME[body["resourceType"]], body["name"], pattern_type)


async def read_pattern(zk: Any, pattern: ResourcePattern) -> tuple[set[AclEntry], int | None]:
    """A pattern's ACLs and the znode version (None when it does not exist)."""
    from kbroker.cluster.zk import NoNode

    try:
        data, stat = await zk.get(pattern_path(pattern))
    except NoNode:
        return set(), None
    return decode_entries(data), stat.version


async def load_all(zk: Any, store: AclStore) -> None:
    """Read every ACL znode into ``store`` (replacing what it had)."""
    from kbroker.cluster.zk import NoNode

    for root, pattern_type in (
        (LITERAL_ROOT, PatternType.LITERAL),
        (PREFIXED_ROOT, PatternType.PREFIXED),
    ):
        for type_name, resource_type in _TYPES_BY_NAME.items():
            try:
                names = await zk.get_children(f"{root}/{type_name}")
            except NoNode:
                continue
            for name in names:
                pattern = ResourcePattern(resource_type, name, pattern_type)
                entries, _ = await read_pattern(zk, pattern)
                store.set_entries(pattern, entries)


async def update_pattern(
    zk: Any, pattern: ResourcePattern, add: set[AclEntry], remove: set[AclEntry]
) -> set[AclEntry]:
    """Apply a change to one pattern's znode with optimistic concurrency (as
    AclAuthorizer.updateResourceAcls), announce it, and return the resulting ACLs."""
    from kbroker.cluster.zk import BadVersion, NodeExists, NoNode

    while True:
        current, version = await read_pattern(zk, pattern)
        wanted = (current | add) - remove
        if wanted == current:
            return current
        path = pattern_path(pattern)
        try:
            if not wanted:
                await zk.delete(path, version if version is not None else -1)
            elif version is None:
                await zk.create(path, encode_entries(frozenset(wanted)), makepath=True)
            else:
                await zk.set(path, encode_entries(frozenset(wanted)), version)
        except (BadVersion, NodeExists, NoNode):
            continue  # another broker changed it meanwhile: read again
        root, data = encode_change(pattern)
        await zk.create(f"{root}/{CHANGE_PREFIX}", data, sequence=True, makepath=True)
        return wanted
