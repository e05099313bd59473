"""``kbroker groups list`` and ``kbroker groups describe GROUP`` (kafka-consumer-groups)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

from kbroker.tools.common import (
    ToolError,
    admin_client,
    cluster_metadata,
    error_text,
    kafka,
    print_json,
    print_table,
    wait,
)

Key = tuple[str, int]

DESCRIBE_HEADER = (
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``groups`` and its actions."""
    groups = commands.add_parser(
        "groups", help="list, describe, reset offsets of and delete consumer groups"
    )
    actions = groups.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("list", parents=[common], help="group ids, one per line")
    p.add_argument("--state", action="store_true", help="also print each group's state")
    p.add_argument("--json", action="store_true", help="print a JSON array of groups")
    p.set_defaults(run=run_list)
    p = actions.add_parser(
        "describe",
        parents=[common],
        help="per partition: committed offset, log end offset, lag, member",
    )
    p.add_argument("group", metavar="GROUP")
    p.add_argument(
        "--json", action="store_true", help="print a JSON object: state, members, offsets"
    )
    p.set_defaults(run=run_describe)

    p = actions.add_parser(
        "reset-offsets",
        parents=[common],
        help="move an inactive group's committed offsets (a dry run unless --execute)",
    )
    p.add_argument("group", metavar="GROUP")
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC[:P,P...]",
        help="a topic, or some of its partitions (repeatable)",
    )
    scope.add_argument(
        "--all-topics", action="store_true", help="every topic the group has offsets for"
    )
    spec = p.add_mutually_exclusive_group(required=True)
    spec.add_argument("--to-earliest", action="store_true", help="to each log start offset")
    spec.add_argument("--to-latest", action="store_true", help="to each log end offset")
    spec.add_argument("--to-offset", type=int, metavar="N", help="to offset N")
    spec.add_argument(
        "--to-datetime",
        type=_datetime_arg,
        metavar="DATETIME",
        help="to the first offset at or after this time (ISO 8601 like "
        "2024-05-01T12:00:00.000, UTC unless it gives an offset such as +02:00; "
        "or epoch milliseconds)",
    )
    spec.add_argument(
        "--shift-by", type=int, metavar="N", help="move the committed offset by N (may be < 0)"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="only print the new offsets (the default, as kafka-consumer-groups)",
    )
    mode.add_argument("--execute", action="store_true", help="commit the new offsets")
    p.add_argument("--json", action="store_true", help="print the new offsets as JSON")
    p.set_defaults(run=run_reset_offsets)

    p = actions.add_parser(
        "delete", parents=[common], help="delete consumer groups with no active members"
    )
    p.add_argument("groups", nargs="+", metavar="GROUP")
    p.set_defaults(run=run_delete)


def _datetime_arg(text: str) -> int:
    from kbroker.tools.console import parse_timestamp

    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _state_name(state: Any) -> str:
    # ConsumerGroupState.STABLE -> "Stable", as Kafka's tool prints it.
    name = getattr(state, "name", str(state))
    return "".join(part.capitalize() for part in name.split("_"))


def run_list(args: argparse.Namespace) -> int:
    """Print every consumer group id (ListGroups), sorted."""
    admin = admin_client(args)
    result = wait(admin.list_consumer_groups(request_timeout=args.request_timeout), args)
    for error in result.errors:
        print(f"kbroker groups: warning: {error}", file=sys.stderr)
    listings = sorted(result.valid, key=lambda g: g.group_id)
    if args.json:
        print_json([{"group": g.group_id, "state": _state_name(g.state)} for g in listings])
    elif args.state:
        print_table(("GROUP", "STATE"), ((g.group_id, _state_name(g.state)) for g in listings))
    else:
        for listing in listings:
            print(listing.group_id)
    return 0


def _describe(admin: Any, group: str, args: argparse.Namespace) -> tuple[Any, dict[Key, int]]:
    """The group's description and its committed offsets; ToolError if it does not exist."""
    ck = kafka()
    description = wait(
        admin.describe_consumer_groups([group], request_timeout=args.request_timeout)[group], args
    )
    request = [ck.ConsumerGroupTopicPartitions(group)]
    committed = wait(
        admin.list_consumer_group_offsets(request, request_timeout=args.request_timeout)[group],
        args,
    )
    offsets: dict[Key, int] = {}
    for tp in committed.topic_partitions or []:
        # OffsetFetch answers -1 (no offset) for partitions it was asked about without one.
        if tp.offset >= 0:
            offsets[(tp.topic, tp.partition)] = tp.offset
    state = _state_name(description.state)
    if state in ("Dead", "Unknown") and not offsets and not description.members:
        # Kafka: a group the coordinator does not know is described as Dead with no members.
        raise ToolError(f"consumer group '{group}' does not exist")
    return description, offsets


def _log_offsets(
    admin: Any, keys: Iterable[Key], spec: Any, args: argparse.Namespace
) -> dict[Key, int]:
    """ListOffsets for each partition (a deleted topic's partitions are left out)."""
    ck = kafka()
    keys = list(keys)
    if not keys:
        return {}
    futures = admin.list_offsets(
        {ck.TopicPartition(t, p): spec for t, p in keys}, request_timeout=args.request_timeout
    )
    found: dict[Key, int] = {}
    for tp, future in futures.items():
        try:
            found[(tp.topic, tp.partition)] = wait(future, args).offset
        except ToolError:
            pass  # a deleted topic: Kafka prints "-" for its log end offset and lag
    return found


def run_describe(args: argparse.Namespace) -> int:
    """One row per partition the group has an offset for or a member owns."""
    ck = kafka()
    admin = admin_client(args)
    group = args.group
    description, offsets = _describe(admin, group, args)
    owners: dict[Key, Any] = {}
    for member in description.members:
        assignment = member.assignment.topic_partitions if member.assignment else []
        for tp in assignment:
            owners[(tp.topic, tp.partition)] = member
    partitions = sorted(set(offsets) | set(owners))
    ends = _log_offsets(admin, partitions, ck.admin.OffsetSpec.latest(), args)
    rows = []
    for key in partitions:
        current, end, member = offsets.get(key), ends.get(key), owners.get(key)
        rows.append(
            {
                "topic": key[0],
                "partition": key[1],
                "current_offset": current,
                "log_end_offset": end,
                "lag": end - current if current is not None and end is not None else None,
                "consumer_id": member.member_id if member else None,
                "host": member.host if member else None,
                "client_id": member.client_id if member else None,
            }
        )
    if args.json:
        print_json(
            {
                "group": group,
                "state": _state_name(description.state),
                "members": [
                    {
                        "consumer_id": m.member_id,
                        "host": m.host,
                        "client_id": m.client_id,
                        "partitions": sorted(
                            [tp.topic, tp.partition]
                            for tp in (m.assignment.topic_partitions if m.assignment else [])
                        ),
                    }
                    for m in description.members
                ],
                "offsets": rows,
            }
        )
        return 0
    if not description.members:
        print(f"\nConsumer group '{group}' has no active members.\n")
    print_table(
        DESCRIBE_HEADER,
        ([group, *(_dash(row[k]) for k in ROW_KEYS)] for row in rows),
    )
    return 0


ROW_KEYS = (
    "topic",
    "partition",
    "current_offset",
    "log_end_offset",
    "lag",
    "consumer_id",
    "host",
    "client_id",
)


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _scope(admin: Any, args: argparse.Namespace, offsets: dict[Key, int]) -> list[Key]:
    """The partitions --topic / --all-topics name (all topics: those with offsets)."""
    if args.all_topics:
        return sorted(offsets)
    keys: set[Key] = set()
    whole: list[str] = []
    for item in args.topic:
        name, sep, parts = item.partition(":")
        if not sep:
            whole.append(name)
            continue
        try:
            keys.update((name, int(p)) for p in parts.split(",") if p.strip())
        except ValueError:
            raise ToolError(f"--topic {item!r} is not TOPIC:PARTITION,PARTITION...") from None
    if whole:
        metadata = cluster_metadata(admin, args)
        for name in whole:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                raise ToolError(f"topic '{name}' does not exist")
            keys.update((name, p) for p in topic.partitions)
    return sorted(keys)


def run_reset_offsets(args: argparse.Namespace) -> int:
    """kafka-consumer-groups --reset-offsets: plan new offsets, print them, commit on --execute.

    As Kafka's tool (ConsumerGroupCommand.resetOffsets), only a group without members
    (Empty, or Dead: never seen) is changed, every new offset is clamped into the log's
    [start, end] range, and --to-datetime past the last record means the log end.
    """
    ck = kafka()
    admin = admin_client(args)
    group = args.group
    try:
        description, offsets = _describe(admin, group, args)
        state = _state_name(description.state)
    except ToolError as exc:
        if "does not exist" not in str(exc):
            raise
        state, offsets = "Dead", {}  # offsets may be set for a group never seen
    if state not in ("Empty", "Dead"):
        raise ToolError(
            f"Assignments can only be reset if the group '{group}' is inactive, but the "
            f"current state is {state}."
        )
    keys = _scope(admin, args, offsets)
    if not keys:
        raise ToolError(f"nothing to reset: consumer group '{group}' has no committed offsets")
    starts = _log_offsets(admin, keys, ck.admin.OffsetSpec.earliest(), args)
    ends = _log_offsets(admin, keys, ck.admin.OffsetSpec.latest(), args)
    missing = [f"{t}-{p}" for t, p in keys if (t, p) not in ends or (t, p) not in starts]
    if missing:
        raise ToolError(f"no such partition(s): {', '.join(missing)}")
    if args.to_datetime is not None:
        by_time = _log_offsets(
            admin, keys, ck.admin.OffsetSpec.for_timestamp(args.to_datetime), args
        )
    plan: dict[Key, int] = {}
    for key in keys:
        if args.to_earliest:
            target = starts[key]
        elif args.to_latest:
            target = ends[key]
        elif args.to_offset is not None:
            target = args.to_offset
        elif args.to_datetime is not None:
            found = by_time.get(key, -1)
            target = found if found >= 0 else ends[key]
        else:
            if key not in offsets:
                raise ToolError(
                    f"cannot shift the offset of {key[0]}-{key[1]}: the group has no "
                    "committed offset for it"
                )
            target = offsets[key] + args.shift_by
        plan[key] = min(max(target, starts[key]), ends[key])
    if args.execute:
        request = ck.ConsumerGroupTopicPartitions(
            group, [ck.TopicPartition(t, p, offset) for (t, p), offset in plan.items()]
        )
        futures = admin.alter_consumer_group_offsets(
            [request], request_timeout=args.request_timeout
        )
        for future in futures.values():
            result = wait(future, args)
            errors = [tp for tp in result.topic_partitions or [] if tp.error is not None]
            if errors:
                tp = errors[0]
                raise ToolError(f"{tp.topic}-{tp.partition}: {tp.error.name()}: {tp.error.str()}")
    if args.json:
        print_json(
            [
                {"group": group, "topic": t, "partition": p, "new_offset": offset}
                for (t, p), offset in plan.items()
            ]
        )
    else:
        print_table(
            ("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"),
            ((group, t, p, offset) for (t, p), offset in plan.items()),
        )
    if not args.execute and not args.json:
        print("(dry run: nothing changed; add --execute to commit these offsets)", file=sys.stderr)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete groups (DeleteGroups); Kafka refuses one with members (NON_EMPTY_GROUP)."""
    ck = kafka()
    admin = admin_client(args)
    futures = admin.delete_consumer_groups(list(args.groups), request_timeout=args.request_timeout)
    failed, deleted = [], []
    for group in args.groups:
        try:
            futures[group].result(timeout=args.request_timeout)
            deleted.append(group)
        except ck.KafkaException as exc:
            failed.append(f"group '{group}' could not be deleted: {error_text(exc)}")
        except TimeoutError:
            failed.append(f"group '{group}': no answer within {args.request_timeout:g} s")
    if deleted:
        names = ", ".join(f"'{g}'" for g in deleted)
        print(f"Deletion of requested consumer groups ({names}) was successful.")
    if failed:
        raise ToolError("; ".join(failed))
    return 0
