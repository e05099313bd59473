"""``kbroker topics list|describe|create|delete|alter`` (Kafka's kafka-topics + kafka-configs)."""

from __future__ import annotations

import argparse
from typing import Any

from kbroker.config import add_pairs_option
from kbroker.internal_topics import INTERNAL_TOPICS
from kbroker.tools.common import (
    ToolError,
    admin_client,
    cluster_metadata,
    error_code,
    error_text,
    kafka,
    no_answer,
    parse_pairs,
    print_json,
    topic_id_text,
    wait,
)
from kbroker.tools.logdirs import partition_sizes


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
    p.add_argument("--json", action="store_true", help="print a JSON array of names")
    p.set_defaults(run=run_list)

    p = actions.add_parser(
        "describe",
        parents=[common],
        help="partitions (leader, replicas, start and end offsets, size) and config "
        "overrides of topics",
    )
    p.add_argument("topics", nargs="*", metavar="TOPIC", help="topics (default: all)")
    p.add_argument("--exclude-internal", action="store_true")
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON array: per topic its id, configs and partitions (leader, "
        "replicas, isr, start and end offsets, size in bytes)",
    )
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
    add_pairs_option(p, "--config", "a topic config override, e.g. retention.ms=60000 (repeatable)")
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
    add_pairs_option(p, "--config", "set a topic config override (repeatable)")
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
    names = [
        name
        for name in sorted(metadata.topics)
        if not (args.exclude_internal and name in INTERNAL_TOPICS)
    ]
    if args.json:
        print_json(names)
    else:
        for name in names:
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
            if error_code(exc) == ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise ToolError(f"topic '{name}' does not exist") from None
            raise ToolError(f"topic '{name}': {error_text(exc)}") from None
        except TimeoutError:
            raise no_answer(args) from None
    configs = _overrides(admin, names, args)
    offsets = _offsets(admin, descriptions, args)
    sizes = _sizes(descriptions, args)
    report = []
    for name in names:
        topic = descriptions[name]
        partitions = []
        for p in sorted(topic.partitions, key=lambda p: p.id):
            start, end = offsets.get((name, p.id), (None, None))
            partitions.append(
                {
                    "partition": p.id,
                    "leader": p.leader.id if p.leader is not None else None,
                    "replicas": [node.id for node in p.replicas],
                    "isr": [node.id for node in p.isr],
                    "start_offset": start,
                    "end_offset": end,
                    "size": sizes.get((name, p.id)),
                }
            )
        report.append(
            {
                "topic": name,
                "topic_id": topic_id_text(topic.topic_id),
                "internal": name in INTERNAL_TOPICS,
                "partition_count": len(partitions),
                "replication_factor": len(partitions[0]["replicas"]) if partitions else 0,
                "configs": configs.get(name, {}),
                "partitions": partitions,
            }
        )
    if args.json:
        print_json(report)
        return 0
    for entry in report:
        config_text = ",".join(f"{k}={v}" for k, v in entry["configs"].items())
        print(
            f"Topic: {entry['topic']}\tTopicId: {entry['topic_id']}\t"
            f"PartitionCount: {entry['partition_count']}\t"
            f"ReplicationFactor: {entry['replication_factor']}\tConfigs: {config_text}"
        )
        for p in entry["partitions"]:
            # kafka-topics' partition line, then what rpk topic describe -p adds: the log
            # start offset, the end offset (high watermark) and the size on disk.
            print(
                f"\tTopic: {entry['topic']}\tPartition: {p['partition']}\t"
                f"Leader: {_dash(p['leader'], 'none')}\t"
                f"Replicas: {','.join(map(str, p['replicas']))}\t"
                f"Isr: {','.join(map(str, p['isr']))}\t"
                f"StartOffset: {_dash(p['start_offset'])}\tEndOffset: {_dash(p['end_offset'])}\t"
                f"Size: {_dash(p['size'])}"
            )
    return 0


def _dash(value: Any, missing: str = "-") -> str:
    return missing if value is None else str(value)


def _offsets(
    admin: Any, descriptions: dict[str, Any], args: argparse.Namespace
) -> dict[tuple[str, int], tuple[int | None, int | None]]:
    """(log start offset, end offset) per partition, from ListOffsets (earliest, latest)."""
    ck = kafka()
    tps = [ck.TopicPartition(name, p.id) for name, t in descriptions.items() for p in t.partitions]
    if not tps:
        return {}
    found: dict[tuple[str, int], list[int | None]] = {
        (tp.topic, tp.partition): [None, None] for tp in tps
    }
    for slot, spec in enumerate((ck.admin.OffsetSpec.earliest(), ck.admin.OffsetSpec.latest())):
        futures = admin.list_offsets({tp: spec for tp in tps}, request_timeout=args.request_timeout)
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)][slot] = wait(future, args).offset
            except ToolError:
                pass  # leader unavailable: printed as "-"
    return {key: (pair[0], pair[1]) for key, pair in found.items()}


def _sizes(descriptions: dict[str, Any], args: argparse.Namespace) -> dict[tuple[str, int], int]:
    """Bytes on disk per partition, asked of each partition's leader."""
    by_leader: dict[tuple[str, int], dict[str, list[int]]] = {}
    for name, topic in descriptions.items():
        for p in topic.partitions:
            if p.leader is not None:
                node = (p.leader.host, p.leader.port)
                by_leader.setdefault(node, {}).setdefault(name, []).append(p.id)
    sizes: dict[tuple[str, int], int] = {}
    for (host, port), topics in by_leader.items():
        sizes.update(partition_sizes(host, port, topics.items(), args.request_timeout))
    return sizes


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
        if args.if_not_exists and error_code(exc) == ck.KafkaError.TOPIC_ALREADY_EXISTS:
            return 0
        raise ToolError(error_text(exc)) from None
    except TimeoutError:
        raise no_answer(args) from None
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
            if args.if_exists and error_code(exc) == ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
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
