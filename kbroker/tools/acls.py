"""``kbroker acls list|add|remove`` (kafka-acls), through CreateAcls / DescribeAcls /
DeleteAcls, so it manages the ACLs of any Kafka-compatible broker with an authorizer.

    kbroker acls add --allow-principal User:alice --operation Read --operation Describe \\
        --topic orders --group billing
    kbroker acls add --deny-principal User:bob --operation Write --topic sales- \\
        --resource-pattern-type prefixed
    kbroker acls list [--topic orders] [--principal User:alice]
    kbroker acls remove --allow-principal User:alice --operation Read --topic orders

Operations are named as kafka-acls names them (Read, IdempotentWrite, DescribeConfigs;
any case, with or without underscores); the default operation is All. ``list`` prints
what kafka-acls --list prints, one block per resource pattern.
"""

from __future__ import annotations

import argparse
from typing import Any

from kbroker.tools.common import ToolError, admin_client, kafka, print_json, wait

CLUSTER_NAME = "kafka-cluster"
OPERATIONS = (
    "All",
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "DescribeConfigs",
    "AlterConfigs",
    "IdempotentWrite",
)


def _key(text: str) -> str:
    return text.replace("_", "").replace("-", "").lower()


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``acls`` and its actions."""
    acls = commands.add_parser("acls", help="list, add and remove ACLs (kafka-acls)")
    actions = acls.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, helptext, run in (
        ("list", "the ACLs matching the resource and principal options", run_list),
        ("add", "allow or deny principals operations on resources", run_add),
        ("remove", "remove the ACLs matching the options", run_remove),
    ):
        p = actions.add_parser(action, parents=[common], help=helptext)
        resources = p.add_argument_group("resources")
        resources.add_argument("--topic", action="append", default=[], metavar="TOPIC")
        resources.add_argument("--group", action="append", default=[], metavar="GROUP")
        resources.add_argument("--cluster", action="store_true", help="the cluster resource")
        resources.add_argument(
            "--transactional-id", action="append", default=[], metavar="TRANSACTIONAL_ID"
        )
        resources.add_argument(
            "--resource-pattern-type",
            default=None,
            choices=["literal", "prefixed"] + (["any", "match"] if action != "add" else []),
            type=str.lower,
            help="how the resource names match (default literal; list: any)",
        )
        if action == "list":
            p.add_argument("--principal", action="append", default=[], metavar="PRINCIPAL")
            p.add_argument("--json", action="store_true", help="print a JSON array of ACLs")
        else:
            p.add_argument("--allow-principal", action="append", default=[], metavar="PRINCIPAL")
            p.add_argument("--deny-principal", action="append", default=[], metavar="PRINCIPAL")
            p.add_argument("--allow-host", action="append", default=[], metavar="HOST")
            p.add_argument("--deny-host", action="append", default=[], metavar="HOST")
            p.add_argument(
                "--operation",
                action="append",
                default=[],
                metavar="OPERATION",
                help="one of " + ", ".join(OPERATIONS) + " (repeatable; default All)",
            )
        p.set_defaults(run=run)


def _resources(args: argparse.Namespace, *, required: bool) -> list[tuple[Any, str]]:
    ck = kafka()
    rt = ck.admin.ResourceType
    found = [(rt.TOPIC, t) for t in args.topic]
    found += [(rt.GROUP, g) for g in args.group]
    found += [(rt.TRANSACTIONAL_ID, t) for t in args.transactional_id]
    if args.cluster:
        found.append((rt.BROKER, CLUSTER_NAME))
    if required and not found:
        raise ToolError("name a resource: --topic, --group, --cluster or --transactional-id")
    return found


def _operations(args: argparse.Namespace) -> list[Any]:
    ck = kafka()
    by_key = {_key(name): name for name in OPERATIONS}
    out = []
    for text in args.operation or ["All"]:
        name = by_key.get(_key(text))
        if name is None:
            raise ToolError(f"unknown operation {text!r}: one of {', '.join(OPERATIONS)}")
        out.append(ck.admin.AclOperation[_snake(name)])
    return out


def _snake(name: str) -> str:
    return "".join("_" + c if c.isupper() and i else c for i, c in enumerate(name)).upper()


def _pattern(args: argparse.Namespace, default: str) -> Any:
    return kafka().admin.ResourcePatternType[(args.resource_pattern_type or default).upper()]


def _entries(args: argparse.Namespace) -> list[tuple[str, str, Any]]:
    """(principal, host, permission) of every --allow/--deny-principal."""
    ck = kafka()
    allow_hosts = args.allow_host or ["*"]
    deny_hosts = args.deny_host or ["*"]
    out = [
        (p, h, ck.admin.AclPermissionType.ALLOW) for p in args.allow_principal for h in allow_hosts
    ]
    out += [
        (p, h, ck.admin.AclPermissionType.DENY) for p in args.deny_principal for h in deny_hosts
    ]
    for principal, _, _ in out:
        if ":" not in principal:
            raise ToolError(f"principal {principal!r} is not TYPE:NAME (e.g. User:alice)")
    return out


def _name(enum_value: Any) -> str:
    name = enum_value.name
    return "CLUSTER" if name == "BROKER" else name


def _print(bindings: list[Any], as_json: bool) -> None:
    ordered = sorted(
        bindings,
        key=lambda b: (
            b.restype.value,
            b.name,
            b.resource_pattern_type.value,
            b.principal,
            b.host,
            b.operation.value,
            b.permission_type.value,
        ),
    )
    if as_json:
        print_json(
            [
                {
                    "resourceType": _name(b.restype),
                    "name": b.name,
                    "patternType": b.resource_pattern_type.name,
                    "principal": b.principal,
                    "host": b.host,
                    "operation": b.operation.name,
                    "permissionType": b.permission_type.name,
                }
                for b in ordered
            ]
        )
        return
    current = None
    for b in ordered:
        pattern = (_name(b.restype), b.name, b.resource_pattern_type.name)
        if pattern != current:
            if current is not None:
                print()
            current = pattern
            print(
                f"Current ACLs for resource `ResourcePattern(resourceType={pattern[0]}, "
                f"name={pattern[1]}, patternType={pattern[2]})`: "
            )
        print(
            f" \t(principal={b.principal}, host={b.host}, operation={b.operation.name}, "
            f"permissionType={b.permission_type.name})"
        )


def run_list(args: argparse.Namespace) -> int:
    """Print the ACLs matching the options (DescribeAcls, one filter per resource)."""
    ck = kafka()
    admin = admin_client(args)
    a = ck.admin
    resources: list[tuple[Any, str | None]] = [*_resources(args, required=False)] or [
        (a.ResourceType.ANY, None)
    ]
    principals = args.principal or [None]
    found: dict[tuple[Any, ...], Any] = {}
    for restype, name in resources:
        for principal in principals:
            flt = a.AclBindingFilter(
                restype,
                name,
                _pattern(args, "any"),
                principal,
                None,
                a.AclOperation.ANY,
                a.AclPermissionType.ANY,
            )
            for b in wait(admin.describe_acls(flt, request_timeout=args.request_timeout), args):
                found[_identity(b)] = b
    _print(list(found.values()), args.json)
    return 0


def _identity(b: Any) -> tuple[Any, ...]:
    return (
        b.restype,
        b.name,
        b.resource_pattern_type,
        b.principal,
        b.host,
        b.operation,
        b.permission_type,
    )


def run_add(args: argparse.Namespace) -> int:
    """Create one ACL per resource x principal x host x operation (CreateAcls)."""
    ck = kafka()
    a = ck.admin
    entries = _entries(args)
    if not entries:
        raise ToolError("name who: --allow-principal or --deny-principal")
    pattern = _pattern(args, "literal")
    bindings = [
        a.AclBinding(restype, name, pattern, principal, host, op, permission)
        for restype, name in _resources(args, required=True)
        for principal, host, permission in entries
        for op in _operations(args)
    ]
    admin = admin_client(args)
    for future in admin.create_acls(bindings, request_timeout=args.request_timeout).values():
        wait(future, args)
    print(f"Added {len(bindings)} ACL{'s' if len(bindings) != 1 else ''}:")
    _print(bindings, False)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Delete the ACLs matching resource x principal x host x operation (DeleteAcls)."""
    ck = kafka()
    a = ck.admin
    pattern = _pattern(args, "literal")
    entries: list[tuple[Any, Any, Any]] = list(_entries(args)) or [
        (None, None, a.AclPermissionType.ANY)
    ]
    operations = _operations(args) if args.operation else [a.AclOperation.ANY]
    filters = [
        a.AclBindingFilter(restype, name, pattern, principal, host, op, permission)
        for restype, name in _resources(args, required=True)
        for principal, host, permission in entries
        for op in operations
    ]
    admin = admin_client(args)
    removed: dict[tuple[Any, ...], Any] = {}
    for future in admin.delete_acls(filters, request_timeout=args.request_timeout).values():
        for b in wait(future, args):
            removed[_identity(b)] = b
    print(f"Removed {len(removed)} ACL{'s' if len(removed) != 1 else ''}.")
    _print(list(removed.values()), False)
    return 0
