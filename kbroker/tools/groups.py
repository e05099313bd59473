"""``kbroker groups list`` and ``kbroker groups describe GROUP`` (kafka-consumer-groups)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kbroker.tools.common import ToolError, admin_client, kafka, print_table, wait

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
    groups = commands.add_parser("groups", help="list and describe consumer groups")
    actions = groups.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("list", parents=[common], help="group ids, one per line")
    p.add_argument("--state", action="store_true", help="also print each group's state")
    p.set_defaults(run=run_list)
    p = actions.add_parser(
        "describe",
        parents=[common],
        help="per partition: committed offset, log end offset, lag, member",
    )
    p.add_argument("group", metavar="GROUP")
    p.set_defaults(run=run_describe)


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
    if args.state:
        print_table(("GROUP", "STATE"), ((g.group_id, _state_name(g.state)) for g in listings))
    else:
        for listing in listings:
            print(listing.group_id)
    return 0


def run_describe(args: argparse.Namespace) -> int:
    """One row per partition the group has an offset for or a member owns."""
    ck = kafka()
    admin = admin_client(args)
    group = args.group
    description = wait(
        admin.describe_consumer_groups([group], request_timeout=args.request_timeout)[group], args
    )
    request = [ck.ConsumerGroupTopicPartitions(group)]
    committed = wait(
        admin.list_consumer_group_offsets(request, request_timeout=args.request_timeout)[group],
        args,
    )
    state = _state_name(description.state)
    offsets: dict[tuple[str, int], int | None] = {}
    for tp in committed.topic_partitions or []:
        # OffsetFetch answers -1 (no offset) for partitions it was asked about without one.
        offsets[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
    owners: dict[tuple[str, int], Any] = {}
    for member in description.members:
        assignment = member.assignment.topic_partitions if member.assignment else []
        for tp in assignment:
            owners[(tp.topic, tp.partition)] = member
    if state in ("Dead", "Unknown") and not offsets and not owners:
        # Kafka: a group the coordinator does not know is described as Dead with no members.
        raise ToolError(f"consumer group '{group}' does not exist")
    partitions = sorted(set(offsets) | set(owners))
    ends: dict[tuple[str, int], int] = {}
    if partitions:
        spec = ck.admin.OffsetSpec.latest()
        futures = admin.list_offsets(
            {ck.TopicPartition(t, p): spec for t, p in partitions},
            request_timeout=args.request_timeout,
        )
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = wait(future, args).offset
            except ToolError:
                pass  # a deleted topic: Kafka prints "-" for its log end offset and lag
    if not description.members:
        print(f"\nConsumer group '{group}' has no active members.\n")
    rows = []
    for key in partitions:
        current, end, member = offsets.get(key), ends.get(key), owners.get(key)
        lag = end - current if current is not None and end is not None else None
        rows.append(
            (
                group,
                key[0],
                key[1],
                _dash(current),
                _dash(end),
                _dash(lag),
                member.member_id if member else "-",
                member.host if member else "-",
                member.client_id if member else "-",
            )
        )
    print_table(DESCRIBE_HEADER, rows)
    return 0


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)
