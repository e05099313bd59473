"""Follower catch-up after a restart with 1 GB behind, on a real 3-broker cluster.

Run: `.venv/bin/python bench/replication_catchup.py [--megabytes 1000] [--size 1000]`
Starts ``kbroker.Cluster(3)`` (its own ZooKeeper, three broker processes) and a topic of
one partition and replication factor 3 with min.insync.replicas 1, then:
1. stops one follower (SIGTERM: a clean shutdown);
2. produces ``--megabytes`` of ``--size``-byte values with acks=1 (bench/throughput.py's
   producer), and waits for the other follower to hold all of it;
3. starts the stopped follower again and times its catch-up by the size of its log
   files against the leader's (replicas are byte-identical: the same batches at the
   same offsets), sampled every 20 ms: MB/s from its first fetched byte to the
   leader's size, and from the restart command; also when it is back in the ISR;
4. consumes the same log from the leader with a confluent-kafka consumer
   (bench/throughput.py's consumer): the single-broker consume rate of this run.
Prints figures only, asserting nothing (issue 15's target: catch-up at least half the
consume rate). MB/s are of log bytes (record batches as stored) for both, so they
compare. The cluster's data (the log three times over) is in a temporary directory
removed at the end, also when the run fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from replication_cluster import create_replicated, log_bytes  # noqa: E402
from throughput import bench_consume, bench_produce  # noqa: E402

from kbroker.cluster_runner import Cluster  # noqa: E402

MB = 1_000_000
TOPIC = "catchup"
CONFIG = {"zookeeper.session.timeout.ms": 10000}


class SizeSampler:
    """Samples one broker's log size every ``interval`` s on a thread: (time, bytes) pairs."""

    def __init__(self, cluster: Cluster, broker_id: int, interval: float = 0.02) -> None:
        self.samples: list[tuple[float, int]] = []
        self._cluster, self._broker_id, self._interval = cluster, broker_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(
                (time.perf_counter(), log_bytes(self._cluster, self._broker_id, TOPIC))
            )
            self._stop.wait(self._interval)

    def __enter__(self) -> SizeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def first_reaching(self, size: int, after: float = 0.0) -> float | None:
        """When the log first held at least ``size`` bytes (after time ``after``)."""
        return next((t for t, n in self.samples if t >= after and n >= size), None)


def run(cluster: Cluster, megabytes: int, size: int) -> None:
    """The four steps of the module docstring; prints as it goes."""
    create_replicated(cluster, TOPIC, {"min.insync.replicas": "1"})
    leader = cluster.leader_of(TOPIC, 0)
    follower, other = (b for b in cluster.broker_ids if b != leader)
    print(f"  leader {leader}; stopping follower {follower} (SIGTERM)")
    cluster.stop(follower)
    count, nbytes, seconds = bench_produce(
        cluster.bootstrap_servers, TOPIC, size, megabytes * MB, 600.0, {"acks": "1"}
    )
    behind = log_bytes(cluster, leader, TOPIC)
    print(
        f"  produced {count} records of {size} B with acks=1 in {seconds:.1f} s "
        f"({nbytes / MB / seconds:.1f} MB/s); the leader's log: {behind / MB:.0f} MB"
    )
    cluster.wait_for(
        lambda: log_bytes(cluster, other, TOPIC) >= behind, 600, message="the running follower"
    )
    load = os.getloadavg()[0]
    with SizeSampler(cluster, follower) as sampler:
        start = time.perf_counter()
        cluster.start_broker(follower)
        ready = time.perf_counter()
        cluster.wait_for(
            lambda: log_bytes(cluster, follower, TOPIC) >= behind,
            1200,
            interval=0.02,
            message=f"follower {follower} to catch up",
        )
        done = sampler.first_reaching(behind) or time.perf_counter()
        cluster.wait_for(
            lambda: follower in cluster.partitions(TOPIC)[0].isr,
            120,
            interval=0.05,
            message=f"follower {follower} back in the ISR",
        )
        in_isr = time.perf_counter()
    began = sampler.first_reaching(1) or start
    fetching = done - began
    print(
        f"  catch-up of {behind / MB:.0f} MB: {behind / MB / fetching:.1f} MB/s from its first "
        f"fetched byte ({fetching:.1f} s; first byte {began - start:.1f} s after the restart, "
        f"broker ready after {ready - start:.1f} s), {behind / MB / (done - start):.1f} MB/s from "
        f"the restart; back in the ISR {in_isr - start:.1f} s after the restart (load {load:.1f})"
    )
    load = os.getloadavg()[0]
    got, value_bytes, consumed_s = bench_consume(
        cluster.bootstrap_servers, TOPIC, size, count, 600.0
    )
    # The consumer counts values; scale to log bytes (batch and record headers) to compare.
    consumed = behind * got / count
    consume_rate = consumed / MB / consumed_s
    print(
        f"  consumer (confluent-kafka) from the leader: {got} records in {consumed_s:.1f} s, "
        f"{consume_rate:.1f} MB/s of log ({value_bytes / MB / consumed_s:.1f} MB/s of values; "
        f"load {load:.1f})"
    )
    print(
        f"  catch-up is {100 * behind / fetching / MB / consume_rate:.0f}% of the consume rate "
        f"(target: at least 50%)"
    )


def main() -> None:
    """Parse the options, run the cluster in a temporary directory and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kbroker-catchup-") as tmp:
        # Our own directory (Cluster keeps a given one): removed even if the run fails.
        with Cluster(3, config=CONFIG, data_dir=tmp) as cluster:
            print(
                f"3 brokers ({cluster.bootstrap_servers}), {TOPIC}: 1 partition, replication "
                f"factor 3, min.insync.replicas 1"
            )
            run(cluster, args.megabytes, args.size)


if __name__ == "__main__":
    main()
