"""Does watching the broker slow it down? Produce throughput and e2e p99, with and without
a Prometheus scrape and a console page load every second.

Run: `.venv/bin/python bench/console_load.py [--seconds 10] [--pairs 2] [--warmup 1]`
Starts one kbroker with its HTTP listener on, then alternates runs without and with the
load (so drift of the machine hits both sides alike): each run is the throughput
benchmark's produce phase (100 B and 10 KB values) and its latency phase. The load thread
GETs /metrics every second and, in the same second, one console page in turn (overview,
topics, the topic being written, its newest messages, groups). Prints the median of each
figure and the median of the pairs' changes; the goal is less than 5% (printed, not asserted).
Next to wall-clock MB/s it prints MB per second of broker CPU time (the load's own cost
included): on a VM, produce MB/s swings with the host's first touch of fresh page-cache
pages, which CPU time does not see.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import (  # noqa: E402
    MB,
    add_phase_arguments,
    bench_latency,
    bench_produce,
    broker_cpu_s,
    create_topic,
    delete_topics,
    percentile,
)

from compat.http_broker import base_url, http_broker  # noqa: E402
from compat.livebroker import LiveBroker  # noqa: E402

GOAL_PCT = 5.0


class Load:
    """Scrape /metrics and load a console page every second, from a process of its own (as
    Prometheus and a browser are), so the benchmark's client does not share its GIL."""

    def __init__(self, base: str, topic: str) -> None:
        self.base = base
        self.topic = topic
        self.requests = 0
        self.slowest_s = 0.0
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Load:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--load-only", self.base, self.topic],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        out, _ = self.proc.communicate("", timeout=30)  # closing stdin stops it
        requests, slowest = out.split()
        self.requests, self.slowest_s = int(requests), float(slowest)


def load_only(base: str, topic: str) -> int:
    """The load process: until stdin closes, GET /metrics and one page every second; prints
    how many requests it made and the slowest (s)."""
    pages = ["/", "/topics", f"/topics/{topic}", f"/topics/{topic}/messages", "/groups"]
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    requests, slowest, i = 0, 0.0, 0
    while not stop.wait(1.0):
        for path in ("/metrics", pages[i % len(pages)]):
            started = time.perf_counter()
            with urllib.request.urlopen(base + path, timeout=10) as response:
                response.read()
            slowest = max(slowest, time.perf_counter() - started)
            requests += 1
        i += 1
    print(requests, slowest)
    return 0


def one_run(
    broker: LiveBroker, base: str | None, sizes: list[int], args: argparse.Namespace
) -> tuple[dict[str, float], str]:
    """Produce MB/s per size, MB per broker CPU-second, and the e2e p99 (ms); with the load
    when ``base`` is set. The broker's CPU then includes what the load costs it, which is
    the point: on a shared machine CPU time is the figure other processes distort least."""
    bootstrap = broker.bootstrap_servers
    run = uuid.uuid4().hex[:6]
    topics = {size: f"load-{size}-{run}" for size in sizes}
    latency_topic = f"load-latency-{run}"
    for topic in [*topics.values(), latency_topic]:
        create_topic(bootstrap, topic)
    figures: dict[str, float] = {}
    # The console pages look at the first topic written (its messages page included).
    load = Load(base, topics[sizes[0]]) if base else None
    if load:
        load.__enter__()
    try:
        for size, topic in topics.items():
            cpu_before = broker_cpu_s(broker)
            _, nbytes, secs = bench_produce(
                bootstrap, topic, size, int(args.megabytes * MB), args.seconds
            )
            cpu_after = broker_cpu_s(broker)
            figures[f"produce {size} B MB/s"] = nbytes / MB / secs
            if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
                figures[f"produce {size} B MB/cpu-s"] = nbytes / MB / (cpu_after - cpu_before)
        latencies = bench_latency(
            bootstrap, latency_topic, args.latency_messages, args.latency_rate
        )
    finally:
        if load:
            load.__exit__()
        delete_topics(bootstrap, [*topics.values(), latency_topic])
    figures["e2e p99 ms"] = percentile(latencies, 0.99) if latencies else float("nan")
    note = f"{load.requests} HTTP requests, slowest {load.slowest_s * 1000:.0f} ms" if load else ""
    return figures, note


def broker_cost_ms(broker: LiveBroker, base: str, topic: str, rounds: int = 60) -> float:
    """The broker's CPU (ms) for one second's worth of load: a scrape plus one page, averaged
    over ``rounds`` back-to-back rounds on an otherwise idle broker. Unlike throughput, the
    broker's own CPU time hardly depends on what else the machine runs."""
    create_topic(broker.bootstrap_servers, topic)
    bench_produce(broker.bootstrap_servers, topic, 100, 50 * MB, 2.0)
    pages = ["/", "/topics", f"/topics/{topic}", f"/topics/{topic}/messages", "/groups"]
    before = broker_cpu_s(broker)
    for i in range(rounds):
        for path in ("/metrics", pages[i % len(pages)]):
            with urllib.request.urlopen(base + path, timeout=10) as response:
                response.read()
    after = broker_cpu_s(broker)
    if before is None or after is None:
        return float("nan")
    return (after - before) * 1000 / rounds


def main() -> int:
    if sys.argv[1:2] == ["--load-only"]:
        return load_only(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_phase_arguments(parser, seconds=10.0, latency_messages=2000)
    parser.add_argument(
        "--megabytes",
        type=float,
        default=10_000.0,
        help="size bound per produce phase (the default leaves the time bound in charge, so "
        "the load runs for the whole phase)",
    )
    parser.add_argument("--pairs", type=int, default=2, help="runs without and with the load")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted runs before the pairs")
    parser.add_argument("--sizes", default="100,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    without: list[dict[str, float]] = []
    with_load: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="kbroker-console-load-") as tmp:
        broker = http_broker(Path(tmp) / "data")
        broker.start()
        try:
            base = base_url(broker)
            # One run thrown away first: a VM's first write into pages the host has not backed
            # yet costs several times a rewrite of freed ones (see bench/compare.py), and it would
            # land on the first pair's "without" side only.
            for _ in range(args.warmup):
                figures, _ = one_run(broker, None, sizes, args)
                print(f"  warm-up (not counted):  {_fmt(figures)}", flush=True)
            for pair in range(args.pairs):
                figures, _ = one_run(broker, None, sizes, args)
                without.append(figures)
                print(f"  pair {pair + 1} without load: {_fmt(figures)}", flush=True)
                figures, note = one_run(broker, base, sizes, args)
                with_load.append(figures)
                print(f"  pair {pair + 1} with load:    {_fmt(figures)} ({note})", flush=True)
            cost_ms = broker_cost_ms(broker, base, f"load-{sizes[0]}-cost")
        finally:
            broker.stop()
    print(
        f"\nbroker CPU per second of load (one /metrics scrape and one page): "
        f"{cost_ms:.1f} ms, {cost_ms / 10:.2f}% of one core"
    )
    # Each pair's change, then their median: the machine's drift over minutes (other
    # processes on a shared machine) moves both runs of a pair alike.
    print(
        f"\n{'figure':<26}{'without':>10}{'with load':>11}{'change (median, range over pairs)':>38}"
    )
    for key in without[0]:
        a = statistics.median(f[key] for f in without)
        b = statistics.median(f[key] for f in with_load)
        changes = sorted(
            (w[key] - o[key]) / o[key] * 100 for o, w in zip(without, with_load, strict=True)
        )
        change = statistics.median(changes)
        # Throughput should not fall, latency should not rise, by more than the goal.
        worse = -change if "MB/" in key else change
        verdict = "ok" if worse < GOAL_PCT else f"over {GOAL_PCT:.0f}%"
        print(
            f"{key:<26}{a:>10.2f}{b:>11.2f}{change:>+12.1f}% [{changes[0]:+.1f}%, "
            f"{changes[-1]:+.1f}%]  {verdict}"
        )
    return 0


def _fmt(figures: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in figures.items())


if __name__ == "__main__":
    sys.exit(main())
