"""Command line: ``kbroker --listen HOST:PORT --data-dir PATH --config FILE --override k=v``.

Settings come from, lowest precedence first: Kafka's defaults, the
``server.properties`` file (``--config``), ``--override`` pairs, then
``--listen`` / ``--data-dir``. Without any of them the broker listens on
127.0.0.1:9092 with data in ./kbroker-data. SIGINT/SIGTERM shut it down
gracefully (stop accepting, finish in-flight requests, flush, close logs); a
second signal stops at once. Startup problems print one line on stderr and
exit with status 1.
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import signal
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import trio

from kbroker import __version__
from kbroker.config import (
    CONFIG_DEFS,
    BrokerConfig,
    ConfigError,
    add_pairs_option,
    parse_pairs,
    parse_properties,
)
from kbroker.server import serve

logger = logging.getLogger("kbroker")

DEFAULT_LISTEN = "127.0.0.1:9092"
DEFAULT_DATA_DIR = "./kbroker-data"
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
TOOL_COMMANDS = frozenset({"topics", "groups", "acls", "users", "produce", "consume"})
COMPLETION_SHELLS = ("bash", "zsh")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbroker",
        description="A Kafka-protocol-compatible broker (single node, PLAINTEXT). Point any "
        "Kafka client at the printed bootstrap_servers.",
        epilog=textwrap.dedent("""\
            precedence (lowest first): Kafka defaults, --config file, --override, then
            --listen/--data-dir/--broker-id. Any Kafka broker setting kbroker knows may be given in the
            file or with --override; see --list-configs. Examples:
              kbroker --listen 127.0.0.1:0
              kbroker --config server.properties --override num.partitions=3
            ops commands (kbroker[tools] extra): kbroker {topics,groups,produce,consume} --help
            a local multi-broker cluster with ZooKeeper: kbroker cluster --help
            """),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN}; port 0 picks a "
        "free port); same as listeners=PLAINTEXT://HOST:PORT",
    )
    parser.add_argument(
        "--data-dir",
        metavar="PATH",
        help=f"data directory (default {DEFAULT_DATA_DIR}); same as log.dirs",
    )
    parser.add_argument(
        "--broker-id",
        metavar="N",
        type=int,
        help="this broker's id; same as broker.id (and node.id)",
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve the web console, /metrics, /healthz and /readyz on this address "
        "(default: off); same as kbroker.http.listener",
    )
    parser.add_argument(
        "--http-actions",
        action="store_true",
        help="let the web console create/delete topics, reset offsets and produce; same as "
        "kbroker.http.console.actions=true",
    )
    parser.add_argument("--config", metavar="FILE", help="a Kafka server.properties file")
    add_pairs_option(parser, "--override", "set one Kafka broker setting (repeatable)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default INFO)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text lines (default) or one JSON object per line; DEBUG adds one line per "
        "request (API, version, client, size, time)",
    )
    parser.add_argument(
        "--list-configs",
        action="store_true",
        help="print every supported setting with its default and exit",
    )
    parser.add_argument("--version", action="version", version=f"kbroker {__version__}")
    return parser


def _listener_text(listen: str) -> str:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen {listen!r} is not HOST:PORT")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"PLAINTEXT://{host}:{port}"


def build_config(args: argparse.Namespace) -> BrokerConfig:
    """Merge defaults, the properties file, overrides and flags into a BrokerConfig."""
    props: dict[str, Any] = {}
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as f:
                props.update(parse_properties(f.read()))
        except OSError as exc:
            raise ConfigError(
                f"cannot read config file {args.config}: {exc.strerror or exc}"
            ) from None
    props.update(parse_pairs(args.override, "--override", ConfigError))
    if args.listen:
        props["listeners"] = _listener_text(args.listen)
    elif "listeners" not in props:
        props["listeners"] = _listener_text(DEFAULT_LISTEN)
    if getattr(args, "http", None):
        props["kbroker.http.listener"] = args.http
    if getattr(args, "http_actions", False):
        props["kbroker.http.console.actions"] = "true"
    if args.broker_id is not None:
        props["broker.id"] = str(args.broker_id)
        props.pop("node.id", None)
    if args.data_dir:
        props["log.dirs"] = args.data_dir
        props.pop("log.dir", None)
    elif "log.dirs" not in props and "log.dir" not in props:
        props["log.dirs"] = DEFAULT_DATA_DIR
    return BrokerConfig.from_properties(props)


def _bootstrap(config: BrokerConfig, address: tuple[str, int]) -> str:
    advertised = config.advertised_listener
    if advertised is not None and advertised.host:
        host, port = advertised.host, advertised.port
    else:
        host, port = address
        if host in WILDCARD_HOSTS:
            host = "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def freeze_startup_heap() -> None:
    """Move everything alive after start-up out of the cyclic GC's reach (``gc.freeze``).

    Modules, classes, the codec's schemas and the loaded logs are some 50,000 objects
    that live as long as the process. Each full (generation 2) collection walked them
    all again: 30 to 50 ms with the event loop stopped, once every several seconds of
    traffic, measured on a loaded 2-core machine. A replicated acks=all produce waits
    on three brokers in turn, so it met such a pause three times as often as a single
    broker's. Frozen, they are never scanned again (a full collection then takes about
    a millisecond); cycles among them are never freed, but they were all alive at
    start-up and live as long as the broker.
    """
    gc.collect()
    gc.freeze()


async def run(config: BrokerConfig) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully (a second signal: at once)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def serve_then_stop(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                await serve(config, task_status=task_status)
                nursery.cancel_scope.cancel()  # drained: stop watching for signals

            server = await nursery.start(serve_then_stop)
            freeze_startup_heap()
            logger.info("kbroker ready bootstrap_servers=%s", _bootstrap(config, server.address))
            if len(server.addresses) > 1:
                for name, address in server.addresses.items():
                    logger.info(
                        "kbroker listener %s (%s) at %s:%d",
                        name,
                        config.security_protocol(name),
                        *address,
                    )

            async def stop() -> None:
                # Cluster mode: leadership moves to other brokers before we stop serving.
                await server.controlled_shutdown()
                server.shutdown()

            stopping = False
            async for signum in signals:
                if stopping:
                    logger.warning("second %s: stopping now", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    return
                logger.info("%s received: shutting down", signal.Signals(signum).name)
                stopping = True
                nursery.start_soon(stop)


def _single(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _print_configs() -> None:
    for name, defn in sorted(CONFIG_DEFS.items()):
        default = defn.default
        if isinstance(default, bool):
            default = "true" if default else "false"
        elif isinstance(default, list):
            default = ",".join(default)
        print(f"{name} ({defn.type}, default {default if default is not None else 'null'})")
        print(textwrap.fill(defn.doc, width=88, initial_indent="    ", subsequent_indent="    "))


def completion_parser() -> argparse.ArgumentParser:
    """The whole command line as one parser: the broker's options and every subcommand.

    Only shell completion uses it; the script itself dispatches ops commands before
    parsing, so `kbroker --listen ...` and `kbroker topics ...` keep separate parsers.
    """
    from kbroker.tools import add_commands

    parser = _parser()
    for action in parser._actions:
        # shtab reads `complete` off an action: file names for --config, dirs for --data-dir.
        if "--config" in action.option_strings:
            action.complete = {"bash": "_shtab_compgen_files", "zsh": "_files"}  # type: ignore[attr-defined]
        elif "--data-dir" in action.option_strings:
            action.complete = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/"}  # type: ignore[attr-defined]
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_commands(commands)
    p = commands.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=COMPLETION_SHELLS)
    return parser


def _completion(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="kbroker completion",
        description="Print a completion script for kbroker. bash: "
        'eval "$(kbroker completion bash)" in ~/.bashrc; zsh: kbroker completion zsh > '
        '"${fpath[1]}/_kbroker"',
    )
    parser.add_argument("shell", choices=COMPLETION_SHELLS)
    args = parser.parse_args(argv)
    try:
        import shtab
    except ImportError:
        print("kbroker completion: needs shtab: pip install 'kbroker[tools]'", file=sys.stderr)
        return 1
    print(shtab.complete(completion_parser(), shell=args.shell))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kbroker`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "cluster":
        from kbroker.cluster_cli import main as cluster_main

        return cluster_main(argv[1:])
    if argv and argv[0] in TOOL_COMMANDS:
        # Ops commands (kbroker.tools) share the script; without one it runs the broker.
        from kbroker.tools import main as tools_main

        return tools_main(argv)
    if argv and argv[0] == "completion":
        return _completion(argv[1:])
    args = _parser().parse_args(argv)
    if args.list_configs:
        try:
            _print_configs()
        except BrokenPipeError:  # `kbroker --list-configs | head`
            sys.stderr.close()
        return 0
    from kbroker.logfmt import configure

    configure(args.log_level, args.log_format)
    config: BrokerConfig | None = None
    try:
        config = build_config(args)
        trio.run(run, config)
    except KeyboardInterrupt:
        return 0
    except BaseException as raw:  # noqa: B036 - startup errors become one stderr line
        exc = _single(raw)
        if isinstance(exc, ConfigError):
            print(f"kbroker: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, OSError):
            reason = exc.strerror or " ".join(str(exc).split())
            if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL) and config is not None:
                listener = config.listener
                print(
                    f"kbroker: cannot listen on {listener.host}:{listener.port}: {reason}",
                    file=sys.stderr,
                )
            else:
                print(
                    f"kbroker: cannot start: {reason}"
                    + (f": {exc.filename}" if exc.filename else ""),
                    file=sys.stderr,
                )
            return 1
        if isinstance(exc, KeyboardInterrupt):
            return 0
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
