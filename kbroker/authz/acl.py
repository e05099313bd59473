"""Kafka's ACL model and AclAuthorizer's matching rules, free of I/O.

An ACL binds a resource pattern (type, name, LITERAL or PREFIXED) to an entry
(principal, host, operation, ALLOW/DENY). ``AclStore.authorize`` follows
kafka.security.authorizer.AclAuthorizer (and StandardAuthorizer, which keeps its rules):

- a super user (``super.users``) may do anything;
- the ACLs that apply to a resource are its LITERAL ones, the LITERAL wildcard ``*``
  of its type and every PREFIXED one whose name starts the resource's name;
- with none at all, ``allow.everyone.if.no.acl.found`` decides;
- a matching DENY (same principal or ``User:*``, same host or ``*``, same operation or
  ALL) wins over any ALLOW;
- an ALLOW grants its operation, and Kafka's implied ones: Read, Write, Delete and
  Alter imply Describe; AlterConfigs implies DescribeConfigs.

Numeric codes are those of org.apache.kafka.common.acl.AclOperation,
AclPermissionType, resource.ResourceType and resource.PatternType, as on the wire.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLUSTER_NAME",
    "WILDCARD",
    "WILDCARD_PRINCIPAL",
    "AclBinding",
    "AclEntry",
    "AclFilter",
    "AclStore",
    "InvalidAcl",
    "Operation",
    "PatternType",
    "Permission",
    "ResourcePattern",
    "ResourceType",
    "parse_super_users",
]

WILDCARD = "*"  # ResourcePattern.WILDCARD_RESOURCE and AclEntry.WILDCARD_HOST
WILDCARD_PRINCIPAL = "User:*"
CLUSTER_NAME = "kafka-cluster"  # the only name a CLUSTER resource may have


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


# AclAuthorizer.authorize: an ALLOW of any of these grants the key operation.
_IMPLIED_BY: dict[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset(
        {Operation.DESCRIBE, Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}
    ),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS}),
}

_CONCRETE_TYPES = frozenset(
    {
        ResourceType.TOPIC,
        ResourceType.GROUP,
        ResourceType.CLUSTER,
        ResourceType.TRANSACTIONAL_ID,
        ResourceType.DELEGATION_TOKEN,
        ResourceType.USER,
    }
)


class InvalidAcl(ValueError):
    """An ACL or filter Kafka refuses with INVALID_REQUEST; ``str()`` is the message."""


@dataclass(frozen=True, slots=True, order=True)
class ResourcePattern:
    resource_type: ResourceType
    name: str
    pattern_type: PatternType


@dataclass(frozen=True, slots=True, order=True)
class AclEntry:
    principal: str
    host: str
    operation: Operation
    permission: Permission


@dataclass(frozen=True, slots=True, order=True)
class AclBinding:
    pattern: ResourcePattern
    entry: AclEntry

    def validate(self) -> None:
        """InvalidAcl unless this binding may be created (AclAuthorizer / AclControlManager)."""
        p, e = self.pattern, self.entry
        if p.resource_type not in _CONCRETE_TYPES:
            raise InvalidAcl(f"Invalid resource type: {p.resource_type.name}")
        if p.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise InvalidAcl(f"Invalid pattern type: {p.pattern_type.name}")
        if not p.name:
            raise InvalidAcl("Resource name should not be empty")
        if p.resource_type == ResourceType.CLUSTER and p.name != CLUSTER_NAME:
            raise InvalidAcl(f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
        if e.operation in (Operation.ANY, Operation.UNKNOWN):
            raise InvalidAcl(f"Invalid operation: {e.operation.name}")
        if e.permission not in (Permission.ALLOW, Permission.DENY):
            raise InvalidAcl(f"Invalid permission type: {e.permission.name}")
        kind, sep, name = e.principal.partition(":")
        if not sep or not kind or not name:
            # SecurityUtils.parseKafkaPrincipal
            raise InvalidAcl(f"Could not parse principal from `{e.principal}` (no colon is found)")
        if not e.host:
            raise InvalidAcl("Host should not be empty")


def _enum(kind: type[enum.IntEnum], code: int) -> enum.IntEnum:
    try:
        return kind(code)
    except ValueError:
        return kind(0)  # Kafka's fromCode: UNKNOWN for a code it does not know


@dataclass(frozen=True, slots=True)
class AclFilter:
    """AclBindingFilter: None / ANY match anything; pattern type MATCH matches every
    pattern that would apply to the named resource."""

    resource_type: ResourceType
    name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: Operation
    permission: Permission

    @classmethod
    def from_wire(
        cls,
        resource_type: int,
        name: str | None,
        pattern_type: int,
        principal: str | None,
        host: str | None,
        operation: int,
        permission: int,
    ) -> AclFilter:
        return cls(
            ResourceType(_enum(ResourceType, resource_type)),
            name,
            PatternType(_enum(PatternType, pattern_type)),
            principal,
            host,
            Operation(_enum(Operation, operation)),
            Permission(_enum(Permission, permission)),
        )

    def validate(self) -> None:
        """InvalidAcl if the filter has an UNKNOWN element (AclBindingFilter.findIndefiniteField)."""
        for value in (self.resource_type, self.pattern_type, self.operation, self.permission):
            if value.value == 0:
                raise InvalidAcl(f"Filter contains UNKNOWN elements: {type(value).__name__}")

    def matches_pattern(self, pattern: ResourcePattern) -> bool:
        """ResourcePatternFilter.matches."""
        if self.resource_type != ResourceType.ANY and self.resource_type != pattern.resource_type:
            return False
        if self.pattern_type not in (PatternType.ANY, PatternType.MATCH, pattern.pattern_type):
            return False
        if self.name is None:
            return True
        if self.pattern_type in (PatternType.ANY, pattern.pattern_type):
            return self.name == pattern.name
        if pattern.pattern_type == PatternType.LITERAL:
            return self.name == pattern.name or pattern.name == WILDCARD
        return self.name.startswith(pattern.name)  # PREFIXED under MATCH

    def matches_entry(self, entry: AclEntry) -> bool:
        """AccessControlEntryFilter.matches."""
        return (
            (self.principal is None or self.principal == entry.principal)
            and (self.host is None or self.host == entry.host)
            and self.operation in (Operation.ANY, entry.operation)
            and self.permission in (Permission.ANY, entry.permission)
        )

    def matches(self, binding: AclBinding) -> bool:
        return self.matches_pattern(binding.pattern) and self.matches_entry(binding.entry)


def parse_super_users(text: str | None) -> frozenset[str]:
    """``super.users``: principals separated by semicolons (AclAuthorizer.SuperUsersProp)."""
    if not text:
        return frozenset()
    return frozenset(p.strip() for p in text.split(";") if p.strip())


class AclStore:
    """The ACLs of a cluster and the authorization decision over them.

    Mutations return what changed so the caller can persist it (a data-dir file on a
    single node, ZooKeeper znodes in cluster mode).
    """

    def __init__(
        self,
        *,
        super_users: Iterable[str] = (),
        allow_if_no_acls: bool = False,
    ) -> None:
        self.super_users = frozenset(super_users)
        self.allow_if_no_acls = allow_if_no_acls
        self._acls: dict[ResourcePattern, set[AclEntry]] = {}
        # (type, pattern type) -> name -> ACLs: an authorization looks up the resource's
        # name, the wildcard and each prefix of the name instead of scanning every ACL.
        self._index: dict[tuple[ResourceType, PatternType], dict[str, set[AclEntry]]] | None = None

    # --- contents ----------------------------------------------------------------------

    def bindings(self) -> list[AclBinding]:
        """Every ACL, in a stable order."""
        return sorted(AclBinding(p, e) for p, entries in self._acls.items() for e in entries)

    def entries(self, pattern: ResourcePattern) -> frozenset[AclEntry]:
        return frozenset(self._acls.get(pattern, ()))

    def set_entries(self, pattern: ResourcePattern, entries: Iterable[AclEntry]) -> None:
        """Replace a pattern's ACLs (as read back from ZooKeeper)."""
        self._index = None
        found = set(entries)
        if found:
            self._acls[pattern] = found
        else:
            self._acls.pop(pattern, None)

    def add(self, binding: AclBinding) -> bool:
        """Add one ACL (validated); True if it was new."""
        binding.validate()
        self._index = None
        entries = self._acls.setdefault(binding.pattern, set())
        if binding.entry in entries:
            return False
        entries.add(binding.entry)
        return True

    def remove_matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        """Remove and return every ACL the filter matches."""
        self._index = None
        removed: list[AclBinding] = []
        for pattern in list(self._acls):
            if not acl_filter.matches_pattern(pattern):
                continue
            entries = self._acls[pattern]
            gone = sorted(e for e in entries if acl_filter.matches_entry(e))
            entries.difference_update(gone)
            if not entries:
                del self._acls[pattern]
            removed += [AclBinding(pattern, e) for e in gone]
        return removed

    def matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        """Every ACL the filter matches (DescribeAcls)."""
        return [b for b in self.bindings() if acl_filter.matches(b)]

    # --- decisions ---------------------------------------------------------------------

    def _indexed(self) -> dict[tuple[ResourceType, PatternType], dict[str, set[AclEntry]]]:
        if self._index is None:
            index: dict[tuple[ResourceType, PatternType], dict[str, set[AclEntry]]] = {}
            for pattern, entries in self._acls.items():
                key = (pattern.resource_type, pattern.pattern_type)
                index.setdefault(key, {})[pattern.name] = entries
            self._index = index
        return self._index

    def _applicable(self, resource_type: ResourceType, name: str) -> list[AclEntry]:
        index = self._indexed()
        found: list[AclEntry] = []
        literal = index.get((resource_type, PatternType.LITERAL))
        if literal:
            found.extend(literal.get(name, ()))
            if name != WILDCARD:
                found.extend(literal.get(WILDCARD, ()))
        prefixed = index.get((resource_type, PatternType.PREFIXED))
        if prefixed:
            for end in range(1, len(name) + 1):
                entries = prefixed.get(name[:end])
                if entries:
                    found.extend(entries)
        return found

    def authorize(
        self,
        principal: str,
        host: str,
        operation: Operation,
        resource_type: ResourceType,
        name: str,
    ) -> bool:
        """Whether ``principal`` connected from ``host`` may do ``operation`` on the resource."""
        if principal in self.super_users:
            return True
        acls = self._applicable(resource_type, name)
        if not acls:
            return self.allow_if_no_acls

        # Only the ACLs of this principal (or User:*) from this host (or *) count.
        mine = [
            acl
            for acl in acls
            if acl.principal in (principal, WILDCARD_PRINCIPAL) and acl.host in (host, WILDCARD)
        ]
        # DENY is checked for the operation itself only: a deny of Read does not deny
        # Describe, just as in AclAuthorizer.
        if any(
            acl.permission == Permission.DENY and acl.operation in (operation, Operation.ALL)
            for acl in mine
        ):
            return False
        granting = _IMPLIED_BY.get(operation, frozenset({operation})) | {Operation.ALL}
        return any(acl.permission == Permission.ALLOW and acl.operation in granting for acl in mine)

    def may_on_some(
        self, principal: str, host: str, operation: Operation, resource_type: ResourceType
    ) -> bool:
        """Whether some resource of the type allows ``operation`` to the principal
        (Authorizer.authorizeByResourceType, KIP-679): an ALLOW not cancelled by a DENY
        of the same name, of a prefix of it, or of the wildcard."""
        if principal in self.super_users:
            return True

        def applies(entry: AclEntry, permission: Permission) -> bool:
            return (
                entry.permission == permission
                and entry.operation in (operation, Operation.ALL)
                and entry.principal in (principal, WILDCARD_PRINCIPAL)
                and entry.host in (host, WILDCARD)
            )

        of_type = {p: e for p, e in self._acls.items() if p.resource_type == resource_type}
        if not of_type:
            return self.allow_if_no_acls
        denies = [p for p, es in of_type.items() if any(applies(e, Permission.DENY) for e in es)]
        if any(p.pattern_type == PatternType.LITERAL and p.name == WILDCARD for p in denies):
            return False
        for pattern, entries in of_type.items():
            if not any(applies(e, Permission.ALLOW) for e in entries):
                continue
            if not any(
                (d.pattern_type == PatternType.LITERAL and d.name == pattern.name)
                or (d.pattern_type == PatternType.PREFIXED and pattern.name.startswith(d.name))
                for d in denies
            ):
                return True
        return False

    # --- the single-node file ----------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "acls": [
                    {
                        "resourceType": b.pattern.resource_type.name,
                        "name": b.pattern.name,
                        "patternType": b.pattern.pattern_type.name,
                        "principal": b.entry.principal,
                        "host": b.entry.host,
                        "operation": b.entry.operation.name,
                        "permissionType": b.entry.permission.name,
                    }
                    for b in self.bindings()
                ],
            },
            indent=1,
        )

    def load_json(self, text: str) -> None:
        self._index = None
        self._acls.clear()
        for item in json.loads(text)["acls"]:
            pattern = ResourcePattern(
                ResourceType[item["resourceType"]],
                item["name"],
                PatternType[item["patternType"]],
            )
            entry = AclEntry(
                item["principal"],
                item["host"],
                Operation[item["operation"]],
                Permission[item["permissionType"]],
            )
            self._acls.setdefault(pattern, set()).add(entry)

    def save(self, path: Path) -> None:
        """Write every ACL to ``path`` atomically (write, fsync, rename)."""
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(self.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        """Read ACLs saved by ``save``; nothing if the file does not exist."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return
        self.load_json(text)
