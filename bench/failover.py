"""Leader failover time and produce throughput of a kbroker cluster (real processes, real
ZooKeeper), measured from a confluent-kafka client.

Run: `.venv/bin/python bench/failover.py [--kills 10] [--megabytes 100] [--partitions 24]`

Failover: on a 3-broker cluster with zookeeper.session.timeout.ms=6000, a fresh topic
(1 partition, replication factor 3) per round; a producer has just written to its leader,
the leader is killed with SIGKILL, and the producer at once sends one record and waits for
it. The figure is the time from the kill to that record's successful delivery report (the
new leader acknowledged it): session expiry, the controller's election, LeaderAndIsr, and
the client's own metadata refresh and retry. The killed broker is restarted between rounds.
Target (printed, not asserted): within the session timeout plus 1 s.

Throughput: the same produce load (acks=1, replication factor 1, many partitions) against a
single node without ZooKeeper, a 1-broker cluster and a 3-broker cluster. Target (printed):
cluster mode costs a single broker no more than 10%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import KafkaError, Message, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from compat.livebroker import LiveBroker  # noqa: E402
from kbroker.cluster_runner import Cluster  # noqa: E402
from kbroker.testing.zookeeper import ZooKeeperServer  # noqa: E402

SESSION_TIMEOUT_MS = 6000
MB = 1_000_000
TIMEOUT_S = 60.0
# librdkafka logs every refused connection to a killed broker; the figures are the output.
QUIET = 0


def create_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, replication_factor)])[topic].result(TIMEOUT_S)


def wait_leaders(cluster: Cluster, topic: str, partitions: int) -> dict[int, int]:
    def ready() -> dict[int, int] | None:
        parts = cluster.partitions(topic)
        running = cluster.running_broker_ids
        if len(parts) == partitions and all(p.leader in running for p in parts.values()):
            return {i: p.leader for i, p in parts.items()}
        return None

    return cluster.wait_for(ready, TIMEOUT_S, message=f"leaders of {topic}")


def produce_one(producer: Producer, topic: str, value: bytes, timeout: float) -> float:
    """Send one record to partition 0 and wait for its delivery; returns the time of success."""
    outcome: list[tuple[KafkaError | None, float]] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        outcome.append((err, time.monotonic()))

    producer.produce(topic, value=value, partition=0, on_delivery=report)
    deadline = time.monotonic() + timeout
    while not outcome and time.monotonic() < deadline:
        producer.poll(0.005)
    if not outcome:
        raise RuntimeError(f"no delivery report within {timeout:.0f} s")
    err, when = outcome[0]
    if err is not None:
        raise RuntimeError(f"delivery failed: {err}")
    return when


def watch_election(cluster: Cluster, topic: str, old: int, elected: list[float]) -> None:
    """Record when a live broker first names a new leader (the server side of failover)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if cluster.leader_of(topic, 0) not in (-1, old):
                elected.append(time.monotonic())
                return
        except OSError:
            pass
        time.sleep(0.02)


def failover_rounds(kills: int) -> list[float]:
    config = {"zookeeper.session.timeout.ms": SESSION_TIMEOUT_MS}
    times: list[float] = []
    with Cluster(3, config=config) as cluster:
        for round_no in range(kills):
            topic = f"failover-{round_no}-{uuid.uuid4().hex[:6]}"
            create_topic(cluster.bootstrap_servers, topic, 1, 3)
            leader = wait_leaders(cluster, topic, 1)[0]
            producer = Producer(
                {
                    "bootstrap.servers": cluster.bootstrap_servers,
                    "log_level": QUIET,
                    "acks": 1,
                    "linger.ms": 0,
                    "message.timeout.ms": 60000,
                    "retry.backoff.ms": 50,
                    "retry.backoff.max.ms": 200,
                }
            )
            produce_one(producer, topic, b"warm", TIMEOUT_S)
            elected: list[float] = []
            watcher = threading.Thread(
                target=watch_election, args=(cluster, topic, leader, elected), daemon=True
            )
            killed_at = time.monotonic()
            cluster.kill(leader)
            watcher.start()
            done = produce_one(producer, topic, b"after-kill", TIMEOUT_S)
            elapsed = done - killed_at
            watcher.join(TIMEOUT_S)
            new_leader = cluster.leader_of(topic, 0)
            times.append(elapsed)
            election = f"{elected[0] - killed_at:.2f} s" if elected else "?"
            print(
                f"  round {round_no + 1:2d}: killed broker {leader}; new leader {new_leader} "
                f"in the brokers' Metadata after {election}, first produce acknowledged "
                f"after {elapsed:.2f} s",
                flush=True,
            )
            producer.flush(5)
            cluster.start_broker(leader)
    return times


def produce_throughput(bootstrap: str, topic: str, megabytes: int, value_size: int) -> float:
    """MB/s of acks=1 produce of ``megabytes`` of ``value_size``-byte values, flush included."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "log_level": QUIET,
            "acks": 1,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 512 * 1024,
        }
    )
    value = os.urandom(value_size)
    count = megabytes * MB // value_size
    produce_one(producer, topic, b"warm", TIMEOUT_S)
    start = time.monotonic()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value=value)
                break
            except BufferError:
                producer.poll(0.001)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(TIMEOUT_S * 5) != 0:
        raise RuntimeError("produce did not finish")
    return megabytes / (time.monotonic() - start)


def single_node_rate(megabytes: int, partitions: int, value_size: int) -> float:
    with tempfile.TemporaryDirectory(prefix="kbroker-bench-") as tmp:
        single = LiveBroker(Path(tmp) / "single")
        single.start()
        try:
            topic = f"tp-{uuid.uuid4().hex[:6]}"
            create_topic(single.bootstrap_servers, topic, partitions, 1)
            return produce_throughput(single.bootstrap_servers, topic, megabytes, value_size)
        finally:
            single.kill()


def cluster_rate(
    zookeeper: ZooKeeperServer, brokers: int, megabytes: int, partitions: int, value_size: int
) -> float:
    with Cluster(brokers, zookeeper=zookeeper) as cluster:
        topic = f"tp-{uuid.uuid4().hex[:6]}"
        create_topic(cluster.bootstrap_servers, topic, partitions, 1)
        wait_leaders(cluster, topic, partitions)
        return produce_throughput(cluster.bootstrap_servers, topic, megabytes, value_size)


def throughput_rows(
    megabytes: int, partitions: int, value_size: int, rounds: int
) -> list[tuple[str, list[float]]]:
    """Each set-up ``rounds`` times, interleaved, so a machine that slows down mid-run (a
    shared VM, the page cache filling) weighs on all of them alike."""
    names = ["1 broker, single node", "1 broker, cluster mode", "3 brokers, cluster mode"]
    rates: dict[str, list[float]] = {name: [] for name in names}
    with ZooKeeperServer() as zookeeper:
        for _ in range(rounds):
            rates[names[0]].append(single_node_rate(megabytes, partitions, value_size))
            rates[names[1]].append(cluster_rate(zookeeper, 1, megabytes, partitions, value_size))
            rates[names[2]].append(cluster_rate(zookeeper, 3, megabytes, partitions, value_size))
    return [(name, rates[name]) for name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=24)
    parser.add_argument("--value-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs per set-up")
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    if not args.skip_failover:
        print(
            f"Leader failover, 3 brokers, zookeeper.session.timeout.ms={SESSION_TIMEOUT_MS}, "
            f"{args.kills} kills:",
            flush=True,
        )
        times = failover_rounds(args.kills)
        target = SESSION_TIMEOUT_MS / 1000 + 1
        print(
            f"  median {statistics.median(times):.2f} s, max {max(times):.2f} s "
            f"(target: within {target:.0f} s)"
        )
    if not args.skip_throughput:
        print(
            f"\nProduce throughput, acks=1, replication factor 1, {args.partitions} partitions, "
            f"{args.megabytes} MB of {args.value_size} B values:",
            flush=True,
        )
        rows = throughput_rows(args.megabytes, args.partitions, args.value_size, args.rounds)
        baseline = statistics.median(rows[0][1])
        for name, rates in rows:
            rate = statistics.median(rates)
            print(
                f"  {name:26s} median {rate:6.1f} MB/s (range {min(rates):.1f}-{max(rates):.1f}"
                f" over {len(rates)} runs), {rate / baseline:.0%} of the single node"
            )
        print("  (target: a 1-broker cluster within 10% of the single node)")


if __name__ == "__main__":
    main()
