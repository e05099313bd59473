"""``kbroker topics list|describe|create|delete|alter`` (Kafka's kafka-topics + kafka-configs)."""

from __future__ import annotations

import argparse
from typing import Any

from kbroker.internal_topics import INTERNAL_TOPICS
from kbroker.tools.common import (
    ToolError,
    admin_client,
    cluster_metadata,
    error_text,
    kafka,
    parse_pairs,
    wait,
)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``topics`` and its actions."""
    topics = commands.add_parser("topics", help="list, describe, create, delete, alter topics")
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("list", parents=[common], help="topic names, one per line")
    p.add_argument(
        "--exclude-internal",
        action="store_true",
        help="leave out __consumer_offsets and __transaction_state",
    )
    p.set_defaults(run=run_list)

    p = actions.add_parser(
        "describe", parents=[common], help="partitions, leaders and config overrides of topics"
    )
    p.add_argument("topics", nargs="*", metavar="TOPIC", help="topics (default: all)")
    p.add_argument("--exclude-internal", action="store_true")
    p.set_defaults(run=run_describe)

    p = actions.add_parser("create", parents=[common], help="create a topic")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument(
        "--partitions",
        type=int,
        default=-1,
        help="partition count (default: the broker's num.partitions)",
    )
    p.add_argument(
        "--replication-factor",
        type=int,
        default=-1,
        help="replication factor (default: the broker's default)",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a topic config override, e.g. retention.ms=60000 (repeatable)",
    )
    p.add_argument(
        "--if-not-exists", action="store_true", help="succeed if the topic already exists"
    )
    p.set_defaults(run=run_create)

    p = actions.add_parser("delete", parents=[common], help="delete topics")
    p.add_argument("topics", nargs="+", metavar="TOPIC")
    p.add_argument("--if-exists", action="store_true", help="succeed if a topic does not exist")
    p.set_defaults(run=run_delete)

    p = actions.add_parser(
        "alter", parents=[common], help="add partitions, set or remove config overrides"
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--partitions", type=int, help="the new (larger) partition count")
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a topic config override (repeatable)",
    )
    p.add_argument(
        "--delete-config",
        action="append",
        default=[],
        metavar="KEY",
        help="remove a topic config override, back to the default (repeatable)",
    )
    p.set_defaults(run=run_alter)


def run_list(args: argparse.Namespace) -> int:
    """Print every topic name, sorted."""
    metadata = cluster_metadata(admin_client(args), args)
    for name in sorted(metadata.topics):
        if args.exclude_internal and name in INTERNAL_TOPICS:
            continue
        print(name)
    return 0


def _overrides(admin: Any, names: list[str], args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """Each topic's explicitly set configs (source DYNAMIC_TOPIC_CONFIG), as kafka-topics shows."""
    ck = kafka()
    if not names:
        return {}
    resources = [ck.admin.ConfigResource(ck.admin.ResourceType.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources, request_timeout=args.request_timeout)
    result: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        entries = wait(future, args)
        result[resource.name] = {
            name: entry.value
            for name, entry in sorted(entries.items())
            if entry.source == ck.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        }
    return result


def run_describe(args: argparse.Namespace) -> int:
    """Print one summary line per topic and one line per partition (kafka-topics' layout)."""
    ck = kafka()
    admin = admin_client(args)
    names = list(args.topics) or sorted(cluster_metadata(admin, args).topics)
    if args.exclude_internal:
        names = [name for name in names if name not in INTERNAL_TOPICS]
    if not names:
        return 0
    # DescribeTopics (Metadata by name, never auto-creating) also gives the topic id.
    futures = admin.describe_topics(ck.TopicCollection(names), request_timeout=args.request_timeout)
    descriptions = {}
    for name in names:
        try:
            descriptions[name] = futures[name].result(timeout=args.request_timeout)
        except ck.KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, ck.KafkaError) and err.code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise ToolError(f"topic '{name}' does not exist") from None
            raise ToolError(f"topic '{name}': {error_text(exc)}") from None
        except TimeoutError:
            raise ToolError(
                f"no answer from {args.bootstrap_server} within {args.request_timeout:g} s"
            ) from None
    configs = _overrides(admin, names, args)
    for name in names:
        topic = descriptions[name]
        partitions = sorted(topic.partitions, key=lambda p: p.id)
        replication = len(partitions[0].replicas) if partitions else 0
        config_text = ",".join(f"{k}={v}" for k, v in configs.get(name, {}).items())
        print(
            f"Topic: {name}\tTopicId: {topic.topic_id}\tPartitionCount: {len(partitions)}\t"
            f"ReplicationFactor: {replication}\tConfigs: {config_text}"
        )
        for p in partitions:
            leader = p.leader.id if p.leader is not None else "none"
            replicas = ",".join(str(node.id) for node in p.replicas)
            isr = ",".join(str(node.id) for node in p.isr)
            print(
                f"\tTopic: {name}\tPartition: {p.id}\tLeader: {leader}\t"
                f"Replicas: {replicas}\tIsr: {isr}"
            )
    return 0


def run_create(args: argparse.Namespace) -> int:
    """Create one topic (CreateTopics; -1 counts mean the broker's defaults, KIP-464)."""
    ck = kafka()
    admin = admin_client(args)
    new = ck.admin.NewTopic(
        args.topic,
        num_partitions=args.partitions,
        replication_factor=args.replication_factor,
        config=parse_pairs(args.config, "--config"),
    )
    futures = admin.create_topics([new], request_timeout=args.request_timeout)
    try:
        futures[args.topic].result(timeout=args.request_timeout)
    except ck.KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if (
            args.if_not_exists
            and isinstance(err, ck.KafkaError)
            and err.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS
        ):
            return 0
        raise ToolError(error_text(exc)) from None
    except TimeoutError:
        raise ToolError(
            f"no answer from {args.bootstrap_server} within {args.request_timeout:g} s"
        ) from None
    print(f"Created topic {args.topic}.")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete topics; each one's outcome is reported, any failure makes the exit status 1."""
    ck = kafka()
    admin = admin_client(args)
    futures = admin.delete_topics(list(args.topics), request_timeout=args.request_timeout)
    failed = []
    for name in args.topics:
        try:
            futures[name].result(timeout=args.request_timeout)
        except ck.KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if (
                args.if_exists
                and isinstance(err, ck.KafkaError)
                and err.code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART
            ):
                continue
            failed.append(f"{name}: {error_text(exc)}")
            continue
        print(f"Deleted topic {name}.")
    if failed:
        raise ToolError("; ".join(failed))
    return 0


def run_alter(args: argparse.Namespace) -> int:
    """Add partitions (CreatePartitions) and/or change overrides (IncrementalAlterConfigs)."""
    ck = kafka()
    if args.partitions is None and not args.config and not args.delete_config:
        raise ToolError("nothing to alter: give --partitions, --config or --delete-config")
    admin = admin_client(args)
    if args.partitions is not None:
        futures = admin.create_partitions(
            [ck.admin.NewPartitions(args.topic, args.partitions)],
            request_timeout=args.request_timeout,
        )
        wait(futures[args.topic], args)
        print(f"Topic {args.topic} now has {args.partitions} partitions.")
    if args.config or args.delete_config:
        op = ck.admin.AlterConfigOpType
        entries = [
            ck.admin.ConfigEntry(k, v, incremental_operation=op.SET)
            for k, v in parse_pairs(args.config, "--config").items()
        ]
        entries += [
            ck.admin.ConfigEntry(k, None, incremental_operation=op.DELETE)
            for k in args.delete_config
        ]
        resource = ck.admin.ConfigResource(
            ck.admin.ResourceType.TOPIC, args.topic, incremental_configs=entries
        )
        futures = admin.incremental_alter_configs([resource], request_timeout=args.request_timeout)
        for future in futures.values():
            wait(future, args)
        changed = [f"{e.name}={e.value}" if e.value is not None else f"-{e.name}" for e in entries]
        print(f"Altered configs of topic {args.topic}: {', '.join(changed)}.")
    return 0
