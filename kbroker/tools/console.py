"""``kbroker produce TOPIC`` and ``kbroker consume TOPIC`` (Kafka's console producer/consumer)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import uuid
from typing import Any

from kbroker.tools.common import ToolError, client_config, error_text, kafka


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``produce`` and ``consume``."""
    p = commands.add_parser(
        "produce", parents=[common], help="send each line of stdin as one record"
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument(
        "--key-separator", metavar="SEP", help="split each line at the first SEP into key and value"
    )
    p.add_argument(
        "--partition", type=int, help="write to this partition (default: by key hash, else spread)"
    )
    p.add_argument(
        "--acks",
        default="all",
        choices=["0", "1", "all", "-1"],
        help="acknowledgements to wait for (default all)",
    )
    p.add_argument(
        "--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"]
    )
    p.set_defaults(run=run_produce)

    p = commands.add_parser("consume", parents=[common], help="print records of a topic")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest offset (default: only new records)",
    )
    p.add_argument("--max-messages", type=int, metavar="N", help="exit after N records")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="exit when no record arrives for this long (default: never)",
    )
    p.add_argument(
        "--key-separator",
        metavar="SEP",
        help="print each record as KEY SEP VALUE (default: the value only)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per record (topic, partition, offset, "
        "timestamp, key, value, headers)",
    )
    p.add_argument(
        "--group",
        metavar="GROUP",
        help="consume as a member of this group and commit offsets (default: no "
        "group, all partitions, nothing committed)",
    )
    p.add_argument("--partition", type=int, help="only this partition (without --group)")
    p.set_defaults(run=run_consume)


# -- produce ----------------------------------------------------------------------------------
def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline ending the last line does not start another record
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def run_produce(args: argparse.Namespace) -> int:
    """Produce stdin's lines; exit 1 if any record was not acknowledged."""
    ck = kafka()
    producer = ck.Producer(
        client_config(
            args,
            **{
                "acks": args.acks,
                "compression.type": args.compression,
                "linger.ms": 5,
                "message.timeout.ms": int(args.request_timeout * 1000),
            },
        )
    )
    separator = args.key_separator.encode() if args.key_separator is not None else None
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            failures.append(f"{err.name()}: {err.str()}")
        else:
            delivered += 1

    extra: dict[str, Any] = {}
    if args.partition is not None:
        extra["partition"] = args.partition
    for number, line in enumerate(_split_lines(sys.stdin.buffer.read()), start=1):
        key = None
        if separator is not None:
            key, found, value = line.partition(separator)
            if not found:
                # Kafka's LineMessageReader refuses the line rather than guess.
                raise ToolError(f"no key separator {args.key_separator!r} on line {number}")
        else:
            value = line
        while True:
            try:
                producer.produce(args.topic, value=value, key=key, on_delivery=on_delivery, **extra)
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
            except ck.KafkaException as exc:
                raise ToolError(error_text(exc)) from None
        producer.poll(0)
    remaining = producer.flush(args.request_timeout)
    if remaining:
        failures.append(f"{remaining} record(s) not delivered within {args.request_timeout:g} s")
    if failures:
        raise ToolError(
            f"{len(failures)} failure(s), first: {failures[0]} ({delivered} record(s) delivered)"
        )
    return 0


# -- consume ----------------------------------------------------------------------------------
def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "backslashreplace")


def _json_bytes(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def format_record(msg: Any, args: argparse.Namespace) -> str:
    """One output line for a record, per --json / --key-separator."""
    if args.json:
        _, timestamp = msg.timestamp()
        return json.dumps(
            {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "timestamp": timestamp,
                "key": _json_bytes(msg.key()),
                "value": _json_bytes(msg.value()),
                "headers": [[k, _json_bytes(v)] for k, v in (msg.headers() or [])],
            }
        )
    value = _text(msg.value())
    value = "null" if value is None else value
    if args.key_separator is not None:
        key = _text(msg.key())
        return f"{'null' if key is None else key}{args.key_separator}{value}"
    return value


def _consumer(args: argparse.Namespace) -> Any:
    ck = kafka()
    settings: dict[str, Any] = {
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
    }
    if args.group:
        settings.update({"group.id": args.group, "enable.auto.commit": True})
    else:
        # librdkafka insists on a group.id; with assign() and no commits it joins nothing.
        settings.update(
            {
                "group.id": f"kbroker-consume-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )
    consumer = ck.Consumer(client_config(args, **settings))
    if args.group:
        if args.partition is not None:
            raise ToolError("--partition cannot be used with --group")
        consumer.subscribe([args.topic])
        return consumer
    try:
        metadata = consumer.list_topics(args.topic, timeout=args.request_timeout)
    except ck.KafkaException as exc:
        raise ToolError(f"cannot reach {args.bootstrap_server}: {error_text(exc)}") from None
    topic = metadata.topics.get(args.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        raise ToolError(f"topic '{args.topic}' does not exist")
    partitions = sorted(topic.partitions)
    if args.partition is not None:
        if args.partition not in topic.partitions:
            raise ToolError(f"topic '{args.topic}' has no partition {args.partition}")
        partitions = [args.partition]
    start = ck.OFFSET_BEGINNING if args.from_beginning else ck.OFFSET_END
    consumer.assign([ck.TopicPartition(args.topic, p, start) for p in partitions])
    return consumer


def run_consume(args: argparse.Namespace) -> int:
    """Print records until --max-messages, --timeout of silence, or Ctrl-C."""
    ck = kafka()
    consumer = _consumer(args)
    count = 0
    last = time.monotonic()
    try:
        while args.max_messages is None or count < args.max_messages:
            wait_s = 1.0
            if args.timeout is not None:
                wait_s = min(wait_s, max(0.0, last + args.timeout - time.monotonic()))
                if wait_s <= 0:
                    break
            msg = consumer.poll(wait_s)
            if msg is None:
                continue
            if msg.error() is not None:
                err = msg.error()
                if err.code() == ck.KafkaError._PARTITION_EOF:
                    continue
                if err.fatal() or err.code() in (
                    ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
                    ck.KafkaError._UNKNOWN_TOPIC,
                ):
                    raise ToolError(f"{err.name()}: {err.str()}")
                print(f"kbroker consume: warning: {err.name()}: {err.str()}", file=sys.stderr)
                continue
            sys.stdout.write(format_record(msg, args) + "\n")
            sys.stdout.flush()
            count += 1
            last = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()  # with --group: commits the consumed offsets and leaves the group
        print(f"Processed a total of {count} messages", file=sys.stderr)
    return 0
