"""Throughput and end-to-end latency of a live kbroker, measured with confluent-kafka.

Run: `.venv/bin/python bench/throughput.py [--seconds 20] [--megabytes 200]`
Starts its own kbroker on a free port with a temp data dir, then prints a table:
produce MB/s and consume MB/s for 100 B and 10 KB values (each phase bounded by size and
time), and end-to-end latency p50/p99 with the consumer's default fetch.wait.max.ms.
Targets (printed, not asserted): produce >= 60 MB/s at 100 B and >= 500 MB/s at 10 KB;
consume >= 100 MB/s at 100 B and >= 500 MB/s at 10 KB; e2e p99 <= 5 ms.
Note the client runs on the same 2 cores as the broker, and at 100 B the Python loop
calling produce() is itself a bound (hundreds of thousands of calls per second).
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from compat.livebroker import LiveBroker  # noqa: E402

MB = 1_000_000
TARGETS = {  # (phase, value size) -> MB/s
    ("produce", 100): 60,
    ("produce", 10_000): 500,
    ("consume", 100): 100,
    ("consume", 10_000): 500,
}
LATENCY_P99_TARGET_MS = 5.0


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """One partition by default: the single-partition path is what the targets are about."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Free what a run wrote: a time-bounded 10 KB phase writes several GB, and runs add up."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(names).values():
        future.result(30)


def bench_produce(
    bootstrap: str,
    topic: str,
    size: int,
    max_bytes: int,
    max_s: float,
    config: dict[str, object] | None = None,
) -> tuple[int, int, float]:
    """Produce values of `size` bytes until max_bytes or max_s; returns (messages, bytes, seconds).

    `config` adds or overrides producer settings (bench/compare.py turns sticky partitioning off).
    """
    prod = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "queue.buffering.max.kbytes": 1_048_576,
            "queue.buffering.max.messages": 2_000_000,
            **(config or {}),
        }
    )
    value = b"v" * size
    produce = prod.produce
    poll = prod.poll
    # Warm-up record (not counted): connecting and the first metadata request are start-up
    # costs, not throughput.
    prod.produce(topic, value)
    prod.flush(30)
    sent = 0
    target = max_bytes // size
    start = time.perf_counter()
    deadline = start + max_s
    while sent < target:
        try:
            produce(topic, value)
        except BufferError:
            poll(0.005)  # local queue full: let librdkafka drain it
            if time.perf_counter() > deadline:
                break
            continue
        sent += 1
        if sent % 10_000 == 0:
            poll(0)
            if time.perf_counter() > deadline:
                break
    remaining = prod.flush(60)
    elapsed = time.perf_counter() - start
    delivered = sent - remaining
    return delivered, delivered * size, elapsed


def bench_consume(
    bootstrap: str, topic: str, size: int, count: int, max_s: float, partitions: int = 1
) -> tuple[int, int, float]:
    """Consume `count` messages from the beginning of `partitions` partitions; returns (messages, bytes, seconds)."""
    # librdkafka pauses fetching for fetch.queue.backoff.ms (1 s) whenever its local queue
    # passes queued.min.messages (100k, i.e. only 10 MB of 100 B records); a Python loop
    # drains slower than a broker fills, so the defaults measure that pause, not the broker.
    cons = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kbroker-bench",
            "enable.auto.commit": False,
            "queued.min.messages": 10_000_000,
            "queued.max.messages.kbytes": 1_048_576,
            "fetch.queue.backoff.ms": 10,
        }
    )
    cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = 0
    nbytes = 0
    # The clock starts once the first record is in: connecting, ListOffsets and the
    # coordinator lookup are start-up costs, not throughput (they would dominate a short
    # phase). That first record is not counted.
    deadline = time.perf_counter() + max_s
    first = None
    while first is None and time.perf_counter() < deadline:
        first = cons.poll(0.1)
        if first is not None and first.error() is not None:
            first = None
    start = time.perf_counter()
    deadline = start + max_s
    while got < count - 1 and time.perf_counter() < deadline:
        # Never ask for more than remain: consume() waits out its timeout for a full batch.
        for msg in cons.consume(num_messages=min(10_000, count - 1 - got), timeout=0.5):
            if msg.error() is None:
                got += 1
                nbytes += len(msg)  # the value length, without copying it out
    elapsed = time.perf_counter() - start
    cons.close()
    return got, nbytes, elapsed


def bench_latency(bootstrap: str, topic: str, count: int, rate: float) -> list[float]:
    """Send `count` timestamped messages at `rate`/s; returns end-to-end latencies in ms."""
    cons = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kbroker-bench-latency",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    # fetch.wait.max.ms is left at its default (500 ms): a waiting Fetch must be woken by
    # the append, not by the timeout, for latency to be low.
    cons.assign([TopicPartition(topic, 0, OFFSET_END)])
    latencies: list[float] = []
    ready = threading.Event()
    done = threading.Event()

    def receive() -> None:
        deadline = time.monotonic() + 30 + count / rate
        while len(latencies) < count and time.monotonic() < deadline:
            # poll(), not consume(num_messages=N): consume() holds messages back until N
            # arrive or the timeout expires, which would add up to the timeout to latency.
            msg = cons.poll(0.1)
            if msg is not None:
                if msg.error() is not None:
                    # Partition EOF: OFFSET_END resolved and the consumer caught up.
                    ready.set()
                elif len(msg.value()) >= 8:
                    (sent_ns,) = struct.unpack_from(">q", msg.value())
                    latencies.append((time.time_ns() - sent_ns) / 1e6)
        done.set()

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1})
    prod.produce(topic, b"warm-up")  # connects, fetches metadata (7 bytes: not measured)
    prod.flush(10)
    ready.wait(10)
    interval = 1.0 / rate
    next_send = time.perf_counter()
    for _ in range(count):
        now = time.perf_counter()
        if now < next_send:
            time.sleep(next_send - now)  # pacing a benchmark, not synchronising a test
        next_send += interval
        prod.produce(topic, struct.pack(">q", time.time_ns()) + b"x" * 92)
        prod.poll(0)
    prod.flush(10)
    done.wait(30)
    cons.close()
    return latencies


def broker_cpu_s(broker: LiveBroker) -> float | None:
    """CPU seconds (user + system) the broker process has used, from /proc; None if unknown."""
    if broker.proc is None:
        return None
    try:
        fields = Path(f"/proc/{broker.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_cpu(nbytes: int, before: float | None, after: float | None) -> str:
    """Throughput per broker CPU-second, robust to a machine shared with other work."""
    if before is None or after is None or after <= before:
        return ""
    return f"{nbytes / MB / (after - before):8.1f} MB/s"


def target_text(phase: str, size: int) -> str:
    """The target for a phase, if the brief sets one for that size."""
    target = TARGETS.get((phase, size))
    return f">= {target} MB/s" if target else ""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered))) - 1))]


def add_phase_arguments(
    parser: argparse.ArgumentParser, *, seconds: float, latency_messages: int
) -> None:
    """--seconds, a produce / consume phase's time bound, and --latency-messages and
    --latency-rate, what ``bench_latency`` sends (the benchmarks built on this one share them)."""
    parser.add_argument("--seconds", type=float, default=seconds, help="time bound per phase")
    parser.add_argument("--latency-messages", type=int, default=latency_messages)
    parser.add_argument("--latency-rate", type=float, default=500.0, help="messages per second")


def main() -> int:
    """Run every phase against a fresh broker and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_phase_arguments(parser, seconds=20.0, latency_messages=3000)
    parser.add_argument("--megabytes", type=float, default=200.0, help="size bound per phase")
    parser.add_argument("--sizes", default="100,10000", help="value sizes in bytes (comma list)")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency phase")
    parser.add_argument(
        "--bootstrap",
        help="use this running broker instead of starting one (e.g. one started under a profiler)",
    )
    args = parser.parse_args()

    rows: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="kbroker-bench-") as tmp:
        broker = LiveBroker(Path(tmp) / "data", overrides={})
        if args.bootstrap:
            broker.bootstrap_servers = args.bootstrap
        else:
            broker.start()
        run_id = uuid.uuid4().hex[:6]  # fresh topics when reusing a broker
        try:
            for size in (int(x) for x in args.sizes.split(",")):
                topic = f"bench-{size}-{run_id}"
                create_topic(broker.bootstrap_servers, topic)
                # Produce gets a byte budget; consume then reads back the count produce wrote.
                limit = int(args.megabytes * MB)
                for op, run in (("produce", bench_produce), ("consume", bench_consume)):
                    cpu0 = broker_cpu_s(broker)
                    n, nbytes, secs = run(
                        broker.bootstrap_servers, topic, size, limit, args.seconds
                    )
                    limit = n
                    mbps = nbytes / MB / secs
                    rows.append(
                        (
                            f"{op} {size} B",
                            f"{mbps:8.1f} MB/s",
                            f"{n / secs:10.0f} msg/s",
                            target_text(op, size),
                            per_cpu(nbytes, cpu0, broker_cpu_s(broker)),
                        )
                    )
                    print("  " + "  ".join(s.strip() for s in rows[-1]), flush=True)  # progress
            lat = None
            if not args.no_latency:
                create_topic(broker.bootstrap_servers, f"bench-latency-{run_id}")
                lat = bench_latency(
                    broker.bootstrap_servers,
                    f"bench-latency-{run_id}",
                    args.latency_messages,
                    args.latency_rate,
                )
            if lat is None:
                pass
            elif lat:
                rows.append(
                    (
                        "e2e latency p50",
                        f"{statistics.median(lat):8.2f} ms",
                        f"{len(lat):10d} msgs",
                        "",
                        "",
                    )
                )
                rows.append(
                    (
                        "e2e latency p99",
                        f"{percentile(lat, 99):8.2f} ms",
                        f"@ {args.latency_rate:.0f}/s",
                        f"<= {LATENCY_P99_TARGET_MS} ms",
                        "",
                    )
                )
            else:
                rows.append(("e2e latency", "no messages received", "", "", ""))
        except Exception:
            print(broker.log_tail(), file=sys.stderr)
            raise
        finally:
            if not args.bootstrap:
                broker.stop()

    print()
    print(
        f"| {'phase':<18} | {'throughput':>14} | {'rate':>16} | {'target':<14} "
        f"| {'per broker CPU-s':>16} |"
    )
    print(f"|{'-' * 20}|{'-' * 16}|{'-' * 18}|{'-' * 16}|{'-' * 18}|")
    for phase, value, rate, target, cpu in rows:
        print(f"| {phase:<18} | {value:>14} | {rate:>16} | {target:<14} | {cpu:>16} |")
    print(
        f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        "the last column, MB per second of broker CPU time, is the figure that other load "
        "on the machine distorts least)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
