"""Shared pieces of the ops commands: client settings, errors, table printing."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any


class ToolError(Exception):
    """A failure the command reports as one line on stderr (exit status 1)."""


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
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ToolError(f"{what} {item!r} is not KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def client_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """librdkafka settings: bootstrap, quiet logging, then --command-config overrides."""
    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap_server,
        "client.id": f"kbroker-{args.command}",
        # Connection chatter ("Disconnected", retries) would interleave with the output;
        # real failures still surface as errors of the calls themselves.
        "log_level": 3,
    }
    config.update(extra)
    config.update(parse_pairs(args.command_config, "--command-config"))
    return config


def admin_client(args: argparse.Namespace) -> Any:
    """An AdminClient for --bootstrap-server."""
    ck = kafka()
    return ck.admin.AdminClient(client_config(args))


def error_text(exc: BaseException) -> str:
    """A KafkaException as Kafka's tools print it: ``ERROR_NAME: message``."""
    ck = kafka()
    if isinstance(exc, ck.KafkaException) and exc.args and isinstance(exc.args[0], ck.KafkaError):
        err = exc.args[0]
        return f"{err.name()}: {err.str()}"
    return str(exc) or type(exc).__name__


def wait(future: Future[Any], args: argparse.Namespace) -> Any:
    """A client future's result within --request-timeout, errors as ToolError."""
    ck = kafka()
    try:
        return future.result(timeout=args.request_timeout)
    except TimeoutError:
        raise ToolError(
            f"no answer from {args.bootstrap_server} within {args.request_timeout:g} s"
        ) from None
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
