"""``kbroker cluster``: a local ZooKeeper and N brokers on free ports, for trying failover.

    $ kbroker cluster --brokers 3
    kbroker cluster ready bootstrap_servers=127.0.0.1:40001,127.0.0.1:40002,127.0.0.1:40003 ...

Prints that one line once every broker is up and the brokers see each other, then runs
until Ctrl-C (or SIGTERM), which stops the brokers cleanly and then ZooKeeper. Each broker's
output goes to ``broker-N.log`` in the data dir. A broker that exits on its own is reported
on stderr; the others keep running (restart one by hand with the command in its log).
"""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
import time
from collections.abc import Sequence
from types import FrameType

from kbroker.cluster_runner import Cluster, ClusterError
from kbroker.config import add_pairs_option, parse_pairs
from kbroker.testing.zookeeper import ZooKeeperError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbroker cluster",
        description="Run a local kbroker cluster: a ZooKeeper (unless --zookeeper is given) "
        "and N broker processes on 127.0.0.1. Prints one line with the bootstrap servers; "
        "Ctrl-C stops everything.",
        epilog=textwrap.dedent("""\
            examples:
              kbroker cluster --brokers 3
              kbroker cluster --brokers 3 --base-port 9092 --data-dir ./cluster-data
              kbroker cluster --zookeeper 127.0.0.1:2181/dev --override num.partitions=6
            """),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--brokers", type=int, default=3, help="number of brokers (default 3)")
    parser.add_argument(
        "--zookeeper",
        metavar="CONNECT",
        help="an existing ZooKeeper (host:port[,host:port][/chroot]); default: start one",
    )
    parser.add_argument(
        "--data-dir",
        metavar="PATH",
        help="where broker-N data dirs and logs go (kept); default a temporary dir, removed",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        metavar="PORT",
        help="brokers listen on PORT, PORT+1, ...; default free ports",
    )
    add_pairs_option(parser, "--override", "a Kafka broker setting for every broker (repeatable)")
    return parser


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``kbroker cluster ...``; returns the exit status."""
    args = _parser().parse_args(list(sys.argv[2:] if argv is None else argv))
    if args.brokers < 1:
        print("kbroker cluster: --brokers must be at least 1", file=sys.stderr)
        return 1
    try:
        config = parse_pairs(args.override, "--override")
    except ValueError as exc:
        print(f"kbroker cluster: {exc}", file=sys.stderr)
        return 1
    # SIGTERM (a service manager, `kill`) stops the cluster the way Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    cluster = Cluster(
        args.brokers,
        zookeeper=args.zookeeper,
        # A given connect string is used as it is: its chroot, or the root without one.
        chroot=None if args.zookeeper is None or "/" in args.zookeeper else "/",
        config=config,
        data_dir=args.data_dir,
        base_port=args.base_port,
    )
    try:
        cluster.start()
    except KeyboardInterrupt:
        cluster.close()
        return 130
    except (ClusterError, ZooKeeperError) as exc:
        # One line; the broker's own output (and its log path) follows for the details.
        first, _, rest = str(exc).partition("\n")
        print(f"kbroker cluster: {first}", file=sys.stderr)
        if rest:
            print(rest, file=sys.stderr)
        return 1
    print(
        f"kbroker cluster ready bootstrap_servers={cluster.bootstrap_servers} "
        f"zookeeper.connect={cluster.zookeeper_connect} data_dir={cluster.data_dir}",
        flush=True,
    )
    reported: set[int] = set()
    try:
        while True:
            for broker_id in cluster.broker_ids:
                broker = cluster.broker(broker_id)
                if broker.proc is not None and broker.proc.poll() is not None:
                    if broker_id not in reported:
                        reported.add(broker_id)
                        print(
                            f"kbroker cluster: broker {broker_id} exited with code "
                            f"{broker.proc.returncode} (log: {broker.log_path})",
                            file=sys.stderr,
                        )
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("kbroker cluster: stopping", file=sys.stderr)
        try:
            cluster.shutdown()
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            cluster.close()
    return 0
