"""``kbroker produce TOPIC`` and ``kbroker consume TOPIC`` (Kafka's console producer/consumer)."""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from kbroker.config import add_pairs_option
from kbroker.tools.common import ToolError, client_config, error_text, kafka


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``produce`` and ``consume``."""
    p = commands.add_parser(
        "produce",
        parents=[common],
        help="send each line of stdin as one record, as it is read (a prompt on a terminal)",
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument(
        "--key-separator", metavar="SEP", help="split each line at the first SEP into key and value"
    )
    p.add_argument(
        "--partition",
        type=int,
        help="write to this partition (default: murmur2 of the key, as Java clients; "
        "keyless lines spread at random)",
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
    add_pairs_option(
        p, "--header", "a header on every record (repeatable; a key may repeat, as Kafka allows)"
    )
    p.set_defaults(run=run_produce)

    p = commands.add_parser("consume", parents=[common], help="print records of a topic")
    p.add_argument("topic", metavar="TOPIC")
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--offset",
        metavar="earliest|latest|N",
        type=_offset_arg,
        help="where to start in each partition read: the earliest record, only new records "
        "(the default), or offset N",
    )
    start.add_argument("--from-beginning", action="store_true", help="same as --offset earliest")
    start.add_argument(
        "--from-timestamp",
        metavar="MS|DATETIME",
        type=_timestamp_arg,
        help="start at the first record whose timestamp is at or after this one (epoch "
        "milliseconds, or ISO 8601 like 2024-05-01T12:00:00, UTC unless it says otherwise)",
    )
    p.add_argument("--max-messages", type=int, metavar="N", help="exit after N records")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="exit when no record arrives for this long (default: never)",
    )
    add_pairs_option(
        p,
        "--property",
        "a print option of Kafka's console consumer (repeatable): print.key, "
        "print.timestamp, print.headers, print.partition, print.offset, print.value "
        "(true/false), key.separator (default a tab), line.separator, headers.separator, "
        "headers.key.separator, null.literal",
    )
    p.add_argument(
        "--key-separator",
        metavar="SEP",
        help="print each record as KEY SEP VALUE (print.key=true key.separator=SEP)",
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
PROMPT = ">"


def _lines(stream: Any) -> Iterator[bytes]:
    """stdin's lines as they arrive (readline returns at each newline, not at EOF)."""
    while True:
        line = stream.readline()
        if not line:
            return
        if line.endswith(b"\n"):
            line = line[:-1]
        yield line[:-1] if line.endswith(b"\r") else line


def _topic_partitions(client: Any, args: argparse.Namespace) -> list[int]:
    """The topic's partition ids; ToolError at once if it does not exist.

    A producer asks for the topic's metadata first, so a broker that does not create
    topics on demand (auto.create.topics.enable=false) is reported in a moment, not as
    a delivery timeout per record half a minute later. Where the broker does create
    them, this request creates the topic, as the first record would have.
    """
    ck = kafka()
    deadline = time.monotonic() + args.request_timeout
    while True:
        try:
            metadata = client.list_topics(args.topic, timeout=args.request_timeout)
        except ck.KafkaException as exc:
            raise ToolError(f"cannot reach {args.bootstrap_server}: {error_text(exc)}") from None
        topic = metadata.topics.get(args.topic)
        err = topic.error if topic is not None else None
        if topic is not None and err is None and topic.partitions:
            return sorted(topic.partitions)
        if err is not None and err.code() in (
            ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
            ck.KafkaError._UNKNOWN_TOPIC,
        ):
            raise ToolError(f"topic '{args.topic}' does not exist")
        if err is not None and err.code() == ck.KafkaError.TOPIC_EXCEPTION:
            raise ToolError(f"{err.name()}: {err.str()}")
        if time.monotonic() >= deadline:
            reason = f"{err.name()}: {err.str()}" if err is not None else "no partitions"
            raise ToolError(f"topic '{args.topic}' is not available: {reason}")
        time.sleep(0.1)  # just created (LEADER_NOT_AVAILABLE): ask again


def run_produce(args: argparse.Namespace) -> int:
    """Send stdin's lines as they are read; exit 1 if any record was not acknowledged."""
    ck = kafka()
    headers = [(k, v.encode()) for k, v in _header_pairs(args.header)]
    producer = _client(
        ck.Producer,
        client_config(
            args,
            **{
                "acks": args.acks,
                "compression.type": args.compression,
                "linger.ms": 5,
                "message.timeout.ms": int(args.request_timeout * 1000),
                # The Java client's (and kafka-python's) partitioner for keyed records:
                # murmur2 of the key, so a key lands where a JVM producer would put it.
                # (librdkafka's own default is crc32; null keys are spread at random.)
                "partitioner": "murmur2_random",
            },
        ),
    )
    partitions = _topic_partitions(producer, args)
    if args.partition is not None and args.partition not in partitions:
        raise ToolError(f"topic '{args.topic}' has no partition {args.partition}")
    separator = args.key_separator.encode() if args.key_separator is not None else None
    interactive = sys.stdin.isatty()
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            failures.append(f"{err.name()}: {err.str()}")
        else:
            delivered += 1

    def finish() -> None:
        remaining = producer.flush(args.request_timeout)
        if remaining:
            failures.append(
                f"{remaining} record(s) not delivered within {args.request_timeout:g} s"
            )

    def failed(problem: str) -> ToolError:
        return ToolError(f"{problem} ({delivered} record(s) delivered)")

    extra: dict[str, Any] = {}
    if args.partition is not None:
        extra["partition"] = args.partition
    if headers:
        extra["headers"] = headers
    number = 0
    try:
        if interactive:
            print(PROMPT, end="", file=sys.stderr, flush=True)
        for line in _lines(sys.stdin.buffer):
            number += 1
            key = None
            if separator is not None:
                key, found, value = line.partition(separator)
                if not found:
                    # Kafka's LineMessageReader refuses the line rather than guess; the
                    # lines before it are delivered first, so none of them is lost.
                    finish()
                    raise failed(f"no key separator {args.key_separator!r} on line {number}")
            else:
                value = line
            while True:
                try:
                    producer.produce(
                        args.topic, value=value, key=key, on_delivery=on_delivery, **extra
                    )
                    break
                except BufferError:
                    producer.poll(0.1)  # local queue full: let deliveries drain
                except ck.KafkaException as exc:
                    finish()
                    raise failed(error_text(exc)) from None
            producer.poll(0)
            if interactive:
                print(PROMPT, end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        # Ctrl-C ends an interactive session: what was typed so far is still sent.
        if interactive:
            print(file=sys.stderr)
    finish()
    if failures:
        raise failed(f"{len(failures)} failure(s), first: {failures[0]}")
    return 0


def _client(kind: Any, config: dict[str, Any]) -> Any:
    """A Producer or Consumer; a setting librdkafka refuses becomes a ToolError."""
    try:
        return kind(config)
    except kafka().KafkaException as exc:
        raise ToolError(error_text(exc)) from None


def _header_pairs(items: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ToolError(f"--header {item!r} is not KEY=VALUE")
        pairs.append((key, value))
    return pairs


# -- consume ----------------------------------------------------------------------------------
EARLIEST, LATEST = "earliest", "latest"

# Kafka's DefaultMessageFormatter properties and their defaults (kafka-console-consumer
# --property): what is printed, in this order, with these separators.
FORMAT_DEFAULTS = {
    "print.timestamp": "false",
    "print.partition": "false",
    "print.offset": "false",
    "print.headers": "false",
    "print.key": "false",
    "print.value": "true",
    "key.separator": "\t",
    "line.separator": "\n",
    "headers.separator": ",",
    "headers.key.separator": ":",
    "null.literal": "null",
}
_TIMESTAMP_TYPES = {1: "CreateTime", 2: "LogAppendTime"}


def _offset_arg(text: str) -> str | int:
    if text in (EARLIEST, LATEST):
        return text
    try:
        offset = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected earliest, latest or an offset") from None
    if offset < 0:
        raise argparse.ArgumentTypeError("an offset is 0 or more")
    return offset


def parse_timestamp(text: str) -> int:
    """Epoch milliseconds, or an ISO 8601 date-time (UTC unless it has an offset) in ms."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither epoch milliseconds nor a date-time like 2024-05-01T12:00:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def _timestamp_arg(text: str) -> int:
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _unescape(text: str) -> str:
    # Kafka's tool reads "\t" and "\n" in separators as the characters themselves.
    return text.encode("utf-8").decode("unicode_escape")


def print_options(args: argparse.Namespace) -> dict[str, str]:
    """The formatter properties: Kafka's defaults, --key-separator, then --property."""
    options = dict(FORMAT_DEFAULTS)
    if args.key_separator is not None:
        options.update({"print.key": "true", "key.separator": args.key_separator})
    for item in args.property:
        # Not stripped: a separator may well be " | " (Kafka's tool keeps it as given).
        key, sep, value = item.partition("=")
        if not sep:
            raise ToolError(f"--property {item!r} is not KEY=VALUE")
        if key not in FORMAT_DEFAULTS:
            known = ", ".join(sorted(FORMAT_DEFAULTS))
            raise ToolError(f"unknown --property {key!r} (known: {known})")
        if key.startswith("print.") and value.lower() not in ("true", "false"):
            raise ToolError(f"--property {key} must be true or false, not {value!r}")
        options[key] = value.lower() if key.startswith("print.") else _unescape(value)
    return options


def _text(data: bytes | None, null: str) -> str:
    return null if data is None else data.decode("utf-8", "backslashreplace")


def _json_bytes(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def format_record(msg: Any, args: argparse.Namespace, options: dict[str, str]) -> str:
    """One record as text: --json, or Kafka's DefaultMessageFormatter layout.

    The formatter prints, each only if asked for and separated by key.separator:
    ``CreateTime:<ms>``, ``Partition:<n>``, ``Offset:<n>``, the headers
    (``k:v,k:v``, or ``NO_HEADERS``), the key, then the value, and ends with
    line.separator.
    """
    if args.json:
        _, timestamp = msg.timestamp()
        return (
            json.dumps(
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
            + "\n"
        )
    null = options["null.literal"]
    fields: list[str] = []
    if options["print.timestamp"] == "true":
        kind, timestamp = msg.timestamp()
        name = _TIMESTAMP_TYPES.get(kind)
        fields.append(f"{name}:{timestamp}" if name else "NO_TIMESTAMP")
    if options["print.partition"] == "true":
        fields.append(f"Partition:{msg.partition()}")
    if options["print.offset"] == "true":
        fields.append(f"Offset:{msg.offset()}")
    if options["print.headers"] == "true":
        headers = msg.headers() or []
        fields.append(
            options["headers.separator"].join(
                f"{k}{options['headers.key.separator']}{_text(v, null)}" for k, v in headers
            )
            if headers
            else "NO_HEADERS"
        )
    if options["print.key"] == "true":
        fields.append(_text(msg.key(), null))
    if options["print.value"] == "true":
        fields.append(_text(msg.value(), null))
    return options["key.separator"].join(fields) + options["line.separator"]


def _start(args: argparse.Namespace) -> str | int:
    if args.from_beginning:
        return EARLIEST
    return LATEST if args.offset is None else args.offset


class _ConnectionWatch:
    """librdkafka's error callback: one warning line when every broker is gone.

    The consumer keeps retrying (the broker may come back, as kafka-console-consumer
    waits too); the user hears about the outage once, not per reconnect attempt.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.bootstrap = args.bootstrap_server
        self.warned = False

    def __call__(self, err: Any) -> None:
        ck = kafka()
        if err.code() == ck.KafkaError._ALL_BROKERS_DOWN:
            if not self.warned:
                print(
                    f"kbroker consume: warning: lost the connection to {self.bootstrap}; retrying",
                    file=sys.stderr,
                    flush=True,
                )
            self.warned = True
        elif err.fatal():
            print(f"kbroker consume: {err.name()}: {err.str()}", file=sys.stderr, flush=True)


def _consumer(args: argparse.Namespace) -> Any:
    ck = kafka()
    start = _start(args)
    settings: dict[str, Any] = {
        "enable.partition.eof": False,
        # Also where an explicit offset out of range (or a missing commit) falls back to:
        # kafka-console-consumer resets to the earliest only with --from-beginning.
        "auto.offset.reset": EARLIEST if start == EARLIEST else LATEST,
        "error_cb": _ConnectionWatch(args),
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
    consumer = _client(ck.Consumer, client_config(args, **settings))
    if args.group:
        if args.partition is not None:
            raise ToolError("--partition cannot be used with --group")
        if isinstance(start, int) or args.from_timestamp is not None:
            # As kafka-console-consumer: a group starts from its committed offsets.
            raise ToolError("--offset N and --from-timestamp cannot be used with --group")
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
    if args.from_timestamp is not None:
        # ListOffsets by timestamp: the first offset at or after it, or -1 (none: the end).
        wanted = [ck.TopicPartition(args.topic, p, args.from_timestamp) for p in partitions]
        try:
            found = consumer.offsets_for_times(wanted, timeout=args.request_timeout)
        except ck.KafkaException as exc:
            raise ToolError(error_text(exc)) from None
        assignment = [
            ck.TopicPartition(
                args.topic, tp.partition, tp.offset if tp.offset >= 0 else ck.OFFSET_END
            )
            for tp in found
        ]
    else:
        offset = start if isinstance(start, int) else ck.OFFSET_BEGINNING
        if start == LATEST:
            offset = ck.OFFSET_END
        assignment = [ck.TopicPartition(args.topic, p, offset) for p in partitions]
    consumer.assign(assignment)
    return consumer


def run_consume(args: argparse.Namespace) -> int:
    """Print records until --max-messages, --timeout of silence, or Ctrl-C."""
    ck = kafka()
    options = print_options(args)
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
            sys.stdout.write(format_record(msg, args, options))
            sys.stdout.flush()
            count += 1
            last = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()  # with --group: commits the consumed offsets and leaves the group
        print(f"Processed a total of {count} messages", file=sys.stderr)
    return 0
