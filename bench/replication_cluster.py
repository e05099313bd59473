"""acks=all against acks=1 on a real 3-broker cluster (replication factor 3).

Run: `.venv/bin/python bench/replication_cluster.py [--seconds 10] [--rate 10000] [--size 100]`
Starts ``kbroker.Cluster(3)`` (its own ZooKeeper, three broker processes,
min.insync.replicas=2) and, with confluent-kafka, for acks=1 then acks=all on topics
of one partition and replication factor 3:
- paced: ``--rate`` records a second of ``--size`` bytes for ``--seconds``; each
  record's latency from produce() to its delivery report (p50/p99/max ms) and the MB/s
  acknowledged;
- flat out: as many records as the producer takes for ``--seconds``, MB/s acknowledged.
Prints figures only, asserting nothing (issue 15's targets: acks=all at least 50% of the
acks=1 throughput, p99 below 20 ms at 100 B and 10,000 records/s). Every process runs on
this machine, so the figures depend on its cores and load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from kbroker.cluster_runner import Cluster  # noqa: E402

MB = 1_000_000
CONFIG = {"min.insync.replicas": 2, "zookeeper.session.timeout.ms": 10000}


def _producer(bootstrap: str, acks: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "linger.ms": 1,
            "enable.idempotence": acks == "all",
            "queue.buffering.max.messages": 1_000_000,
        }
    )


def _create(cluster: Cluster, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, 1, 3)]).values():
        future.result(30)
    cluster.wait_for(
        lambda: len(cluster.partitions(topic).get(0, _Empty()).isr) == 3,
        30,
        message=f"the full ISR of {topic}",
    )


class _Empty:
    isr: tuple[int, ...] = ()


def paced(bootstrap: str, topic: str, acks: str, rate: int, size: int, seconds: float) -> None:
    """``rate`` records a second; latency of each from produce() to its delivery report."""
    producer = _producer(bootstrap, acks)
    value = b"x" * size
    latencies: list[float] = []
    errors: list[str] = []

    def report(err: Any, _msg: Any, sent: float) -> None:
        if err is not None:
            errors.append(err.name())
        else:
            latencies.append(time.perf_counter() - sent)

    # Warm up: connections, metadata, producer id.
    producer.produce(topic, value, partition=0)
    producer.flush(30)
    total = int(rate * seconds)
    tick = 0.001
    per_tick = max(1, int(rate * tick))
    start = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter()
        for _ in range(min(per_tick, total - sent)):
            producer.produce(
                topic,
                value,
                partition=0,
                on_delivery=lambda err, msg, t=now: report(err, msg, t),
            )
            sent += 1
        producer.poll(0)
        behind = start + sent / rate - time.perf_counter()
        if behind > 0:
            time.sleep(behind)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[int(len(ms) * 0.99) - 1] if ms else float("nan")
    print(
        f"  paced acks={acks:<3}: {len(ms)} acked / {total} sent at {rate}/s, "
        f"{len(ms) * size / MB / elapsed:.2f} MB/s, latency p50 {statistics.median(ms):.1f} ms, "
        f"p99 {p99:.1f} ms, max {ms[-1]:.1f} ms; errors {len(errors)}"
    )


def flat_out(bootstrap: str, topic: str, acks: str, size: int, seconds: float) -> float:
    """As many records as the producer takes for ``seconds``; MB/s acknowledged."""
    producer = _producer(bootstrap, acks)
    value = b"x" * size
    acked = [0]

    def report(err: Any, _msg: Any) -> None:
        if err is None:
            acked[0] += 1

    producer.produce(topic, value, partition=0)
    producer.flush(30)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            try:
                producer.produce(topic, value, partition=0, on_delivery=report)
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - start
    rate = acked[0] * size / MB / elapsed
    print(f"  flat out acks={acks:<3}: {acked[0]} records in {elapsed:.1f} s, {rate:.2f} MB/s")
    return rate


def main() -> None:
    """Parse the options, run the cluster and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    with Cluster(3, config=CONFIG) as cluster:
        print(
            f"3 brokers ({cluster.bootstrap_servers}), replication factor 3, min.insync.replicas 2"
        )
        rates = {}
        for acks in ("1", "all"):
            topic = f"bench-acks-{acks}"
            _create(cluster, topic)
            paced(cluster.bootstrap_servers, topic, acks, args.rate, args.size, args.seconds)
            rates[acks] = flat_out(cluster.bootstrap_servers, topic, acks, args.size, args.seconds)
        print(f"  acks=all throughput is {100 * rates['all'] / rates['1']:.0f}% of acks=1")


if __name__ == "__main__":
    main()
