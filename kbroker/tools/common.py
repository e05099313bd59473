"""Shared pieces of the ops commands: client settings, errors, table printing."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import socket
import struct
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from kbroker.config import parse_pairs as _parse_pairs

# How long the reachability check waits for a TCP connection to a bootstrap server.
CONNECT_TIMEOUT_S = 3.0


class ToolError(Exception):
    """A failure the command reports as one line on stderr (exit status 1)."""


def _quiet_logger() -> logging.Logger:
    # librdkafka logs every failed connection attempt ("%3|...|FAIL|...") at error level,
    # several per second; the commands report failures themselves, as one line.
    quiet = logging.getLogger("kbroker.tools.librdkafka")
    quiet.propagate = False
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    return quiet


def kafka():  # type: ignore[no-untyped-def]
    """The confluent_kafka module, or a ToolError saying how to install it."""
    try:
        import confluent_kafka
        import confluent_kafka.admin  # noqa: F401 - a submodule the package does not import
    except ImportError:
        raise ToolError(
            "the ops commands need confluent-kafka: pip install 'kbroker[tools]'"
        ) from None
    return confluent_kafka


def parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` strings to a dict (ToolError naming the option on a bad one)."""
    return _parse_pairs(items, what, ToolError)


def client_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """librdkafka settings: bootstrap, quiet logging, then --command-config overrides."""
    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap_server,
        "client.id": f"kbroker-{args.command}",
        # Connection chatter ("Disconnected", retries) would interleave with the output;
        # real failures still surface as errors of the calls themselves.
        "log_level": 3,
        "logger": _quiet_logger(),
    }
    config.update(extra)
    config.update(parse_pairs(args.command_config, "--command-config"))
    return config


def admin_client(args: argparse.Namespace) -> Any:
    """An AdminClient for --bootstrap-server."""
    ck = kafka()
    return ck.admin.AdminClient(client_config(args))


def _kafka_error(exc: BaseException) -> Any:
    """The KafkaError a KafkaException carries, or None."""
    ck = kafka()
    if isinstance(exc, ck.KafkaException) and exc.args and isinstance(exc.args[0], ck.KafkaError):
        return exc.args[0]
    return None


def error_code(exc: BaseException) -> int | None:
    """The Kafka error code a KafkaException carries, or None."""
    err = _kafka_error(exc)
    return None if err is None else int(err.code())


def error_text(exc: BaseException) -> str:
    """A KafkaException as Kafka's tools print it: ``ERROR_NAME: message``."""
    err = _kafka_error(exc)
    if err is not None:
        return f"{err.name()}: {err.str()}"
    return str(exc) or type(exc).__name__


def no_answer(args: argparse.Namespace) -> ToolError:
    """The error for a request that got no answer within --request-timeout."""
    return ToolError(f"no answer from {args.bootstrap_server} within {args.request_timeout:g} s")


def wait(future: Future[Any], args: argparse.Namespace) -> Any:
    """A client future's result within --request-timeout, errors as ToolError."""
    ck = kafka()
    try:
        return future.result(timeout=args.request_timeout)
    except TimeoutError:
        raise no_answer(args) from None
    except ck.KafkaException as exc:
        raise ToolError(error_text(exc)) from None


def cluster_metadata(admin: Any, args: argparse.Namespace) -> Any:
    """Metadata of every topic (list_topics), errors as ToolError."""
    ck = kafka()
    try:
        return admin.list_topics(timeout=args.request_timeout)
    except ck.KafkaException as exc:
        raise ToolError(f"cannot reach {args.bootstrap_server}: {error_text(exc)}") from None


def print_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Columns padded to their widest cell, as kafka-consumer-groups prints them."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print(" ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _host_port(server: str) -> tuple[str, int]:
    host, sep, port = server.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ToolError(f"--bootstrap-server {server!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def check_reachable(args: argparse.Namespace) -> None:
    """ToolError unless some bootstrap server accepts a TCP connection within a few seconds.

    librdkafka retries an unreachable broker silently until each call's timeout (30 s by
    default), so a typo in --bootstrap-server would look like a hang.
    """
    servers = [s for s in args.bootstrap_server.split(",") if s.strip()]
    if not servers:
        raise ToolError("--bootstrap-server is empty")
    timeout = min(CONNECT_TIMEOUT_S, args.request_timeout)
    reasons = []
    for server in servers:
        host, port = _host_port(server)
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            return
        except OSError as exc:
            reasons.append(exc.strerror or str(exc) or type(exc).__name__)
    raise ToolError(f"cannot reach {args.bootstrap_server}: {reasons[0]}")


def topic_id_text(topic_id: Any) -> str:
    """A topic id as Kafka prints it (Uuid.toString): URL-safe base64, unpadded, 22 chars.

    The broker logs and stores ids in this form too, so one id reads the same everywhere.
    """
    msb = topic_id.get_most_significant_bits() & (2**64 - 1)
    lsb = topic_id.get_least_significant_bits() & (2**64 - 1)
    raw = struct.pack(">QQ", msb, lsb)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def print_json(value: Any) -> None:
    """One JSON document on stdout (the --json form of list and describe)."""
    print(json.dumps(value, indent=2))
