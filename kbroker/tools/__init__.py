"""Ops commands in the ``kbroker`` script, in the spirit of Kafka's shell tools but shorter.

    kbroker topics list|describe|create|delete|alter ...   (kafka-topics, kafka-configs)
    kbroker groups list | describe GROUP                   (kafka-consumer-groups)
    kbroker acls list | add | remove ...                   (kafka-acls)
    kbroker users list | add NAME | remove NAME            (kafka-configs, SCRAM users)
    kbroker produce TOPIC  < lines                          (kafka-console-producer)
    kbroker consume TOPIC [--from-beginning] ...           (kafka-console-consumer)

They speak the Kafka protocol through a real client library (confluent-kafka, i.e.
librdkafka), so they work against any Kafka-compatible broker, not only kbroker; every
command takes ``--bootstrap-server`` (default localhost:9092). confluent-kafka comes with
the ``kbroker[tools]`` extra. Errors print one line on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from kbroker.config import add_pairs_option
from kbroker.tools.common import ToolError, check_reachable

DEFAULT_BOOTSTRAP = "localhost:9092"
DEFAULT_REQUEST_TIMEOUT_S = 30.0


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--bootstrap-server",
        default=DEFAULT_BOOTSTRAP,
        metavar="HOST:PORT",
        help=f"a broker to connect to (default {DEFAULT_BOOTSTRAP})",
    )
    add_pairs_option(
        common,
        "--command-config",
        "a librdkafka client setting, e.g. security.protocol=SSL (repeatable)",
    )
    common.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the broker (default {DEFAULT_REQUEST_TIMEOUT_S:g})",
    )
    return common


def add_commands(commands: Any) -> None:
    """Register every ops command on a subparsers action (shared with shell completion)."""
    from kbroker.tools import acls, console, groups, topics, users

    common = _common()
    topics.add_parser(commands, common)
    groups.add_parser(commands, common)
    acls.add_parser(commands, common)
    users.add_parser(commands, common)
    console.add_parsers(commands, common)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ops command."""
    parser = argparse.ArgumentParser(
        prog="kbroker",
        description="kbroker ops commands (they work against any Kafka-compatible broker)",
    )
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: Sequence[str]) -> int:
    """Run one ops command (``argv`` starts with its name); returns the exit status."""
    args = build_parser().parse_args(list(argv))
    try:
        if getattr(args, "bootstrap_server", None) is not None:
            check_reachable(args)
        return int(args.run(args) or 0)
    except ToolError as exc:
        print(f"kbroker {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kbroker consume ... | head`: the reader went away, which is not an error.
        return 0
