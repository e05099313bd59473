"""kbroker against librdkafka's mock cluster, with the same confluent-kafka benchmark.

Run: `.venv/bin/python bench/compare.py [--pairs 3]` (bounded: a few minutes at most).

Each pair runs bench/throughput.py's phases once against kbroker and once against
the mock cluster bundled in confluent-kafka's librdkafka (rd_kafka_mock_cluster_new,
a C broker that keeps messages in memory), alternating which goes first, on fresh
topics each time:
  produce / consume MB/s at 100 B values (16 partitions, default sticky partitioning),
  produce / consume MB/s at 10 KB values (64 partitions, sticky partitioning off),
  end-to-end latency p50 / p99 with the consumer's default fetch.wait.max.ms (500 ms).
It prints per-pair figures and the median kbroker/mock ratio of each. Both brokers run
as their own processes, so next to wall-clock MB/s it prints MB per second of *broker
CPU time* (on-CPU time from /proc/PID/task/*/schedstat): the 2-core machine is shared,
and CPU time is the figure other load distorts least. The clients run in this process for both;
"client cores" (this process's CPU seconds per second of a phase) shows when a phase is bound
by the client (about 1.0-1.3 at 100 B: the Python produce or consume loop holds one core)
rather than by the broker. Each ratio is also given as its range over the pairs.

A machine reference is printed before and after the pairs: the rate of writing new data into
the page cache, which is the last step of every kbroker produce phase. On a VM whose free
memory the host has not backed yet, that first touch of a page costs several times more than
rewriting a recently freed one, and this, not the broker, is what makes produce figures
(kbroker's and the mock's alike) swing from pair to pair.

The mock's own limits, which the output repeats: it keeps only about 5 MiB (and at most
100,000 message sets) per partition and drops older data, so consume phases read what it
still holds (measured by the watermarks); and it answers a fetch that finds nothing only
after the full fetch.wait.max.ms, so its end-to-end latency sits near 500 ms by design.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from compat.livebroker import LiveBroker  # noqa: E402

MB = 1_000_000
# (label, value size, partitions, extra producer settings)
SHAPES: list[tuple[str, int, int, dict[str, object]]] = [
    ("100 B", 100, 16, {}),
    # sticky.partitioning.linger.ms=0: every message goes to the next partition (no
    # sticky batching), so 64 partitions really are written concurrently.
    ("10 KB", 10_000, 64, {"sticky.partitioning.linger.ms": 0}),
]
MOCK_LIMITS = (
    "librdkafka mock limits: keeps ~5 MiB (and <= 100,000 message sets) per "
    "partition, dropping older data, so its consume phases read only what it still "
    "holds; an empty fetch waits the full fetch.wait.max.ms (500 ms by default), so "
    "its end-to-end latency is ~500 ms by design."
)


# ----------------------------------------------------------------------------------------
# The mock cluster, in its own process so its CPU time can be measured apart from the clients.

# The librdkafka functions the mock cluster needs (rdkafka.h, rdkafka_mock.h):
# name -> (return type, argument types).
_V, _S, _I, _N = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t
_LIBRDKAFKA_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "rd_kafka_conf_new": (_V, []),
    "rd_kafka_conf_set": (_I, [_V, _S, _S, _S, _N]),
    "rd_kafka_new": (_V, [_I, _V, _S, _N]),
    "rd_kafka_mock_cluster_new": (_V, [_V, _I]),
    "rd_kafka_mock_cluster_bootstraps": (_S, [_V]),
    "rd_kafka_mock_topic_create": (_I, [_V, _S, _I, _I]),
}


def _librdkafka() -> ctypes.CDLL:
    """The librdkafka shared library bundled with confluent-kafka."""
    import confluent_kafka

    pkg = Path(confluent_kafka.__file__).resolve().parent
    candidates = sorted(glob.glob(str(pkg.parent / "confluent_kafka.libs" / "librdkafka*.so*")))
    candidates += sorted(glob.glob(str(pkg / "librdkafka*.so*")))
    if not candidates:
        raise RuntimeError(f"no bundled librdkafka found next to {pkg}")
    lib = ctypes.CDLL(candidates[0])
    for name, (restype, argtypes) in _LIBRDKAFKA_SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def mock_server_main() -> int:
    """Child process: run a one-broker mock cluster; stdin lines `create TOPIC N` add topics."""
    lib = _librdkafka()
    errstr = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    # The handle only hosts the cluster; it never connects anywhere.
    lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, len(errstr))
    rk = lib.rd_kafka_new(0, conf, errstr, len(errstr))
    if not rk:
        print(f"error rd_kafka_new: {errstr.value.decode()}", flush=True)
        return 1
    cluster = lib.rd_kafka_mock_cluster_new(rk, 1)
    print(f"bootstrap {lib.rd_kafka_mock_cluster_bootstraps(cluster).decode()}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if len(words) == 3 and words[0] == "create":
            err = lib.rd_kafka_mock_topic_create(cluster, words[1].encode(), int(words[2]), 1)
            print(f"created {err}", flush=True)
    return 0  # stdin closed: the parent is done


class MockCluster:
    """The mock cluster child process: bootstrap address, topic creation, CPU time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--mock-server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "bootstrap":
            raise RuntimeError(f"mock cluster did not start: {line}")
        self.bootstrap_servers = line[1]

    def create_topic(self, name: str, partitions: int) -> None:
        """rd_kafka_mock_topic_create."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"create {name} {partitions}\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().split()
        if reply != ["created", "0"]:
            raise RuntimeError(f"mock topic create failed: {reply}")

    def stop(self) -> None:
        """Close stdin (the child exits) and reap it."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_s(pid: int) -> float:
    """CPU seconds used so far by process `pid`'s live threads.

    From /proc/PID/task/*/schedstat (nanoseconds on CPU): /proc/PID/stat counts
    in 10 ms ticks, too coarse for phases that take a few hundred ms of CPU.
    """
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just exited
    return total / 1e9


_VMSTAT_KEYS = ("pgfault", "pgalloc_normal", "pgfree", "pgscan_kswapd", "pgscan_direct")
_PAGE_REPORTING = Path("/sys/module/page_reporting/parameters/reported_kib")


@dataclass
class MemorySample:
    """What a phase cost in memory terms: the broker's user/system CPU and faults, the machine's.

    utime/stime come from /proc/PID/stat (10 ms ticks, summed over the process's live and
    exited threads); `reported_kib` is the guest's free-page-reporting counter, the memory
    handed back to a VM host (which the next first touch must fault back in).
    """

    utime: float
    stime: float
    minflt: int
    rss_mb: float
    free_mb: float
    vm: dict[str, int]
    reported_mb: float
    syscalls: tuple[int, int] | None  # read- and write-type system calls (/proc/PID/io)

    @staticmethod
    def take(pid: int, io: bool = False) -> MemorySample:
        """One reading for process `pid` and the machine; its system calls only if `io`
        (/proc/PID/io is readable only by the process's owner, or with ptrace rights)."""
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        vm: dict[str, int] = {}
        for line in Path("/proc/vmstat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in _VMSTAT_KEYS:
                vm[key] = int(value)
        free_kb = 0
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemFree:"):
                free_kb = int(line.split()[1])
        try:
            reported = int(_PAGE_REPORTING.read_text()) / 1024
        except (OSError, ValueError):
            reported = float("nan")  # no free page reporting on this machine
        syscalls = None
        if io:
            try:
                counts = dict(
                    line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines()
                )
                syscalls = (int(counts["syscr"]), int(counts["syscw"]))
            except (OSError, KeyError, ValueError):
                pass  # not ours to read: the line leaves the counts out
        return MemorySample(
            utime=int(fields[11]) / tick,
            stime=int(fields[12]) / tick,
            minflt=int(fields[7]),
            rss_mb=int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20),
            free_mb=free_kb / 1024,
            vm=vm,
            reported_mb=reported,
            syscalls=syscalls,
        )

    def since(self, before: MemorySample) -> str:
        """The phase's deltas, as one line."""
        vm = {k: (self.vm.get(k, 0) - before.vm.get(k, 0)) * 4 // 1024 for k in _VMSTAT_KEYS}
        calls = ""
        if self.syscalls is not None and before.syscalls is not None:
            calls = (
                f", read/write calls {self.syscalls[0] - before.syscalls[0]}/"
                f"{self.syscalls[1] - before.syscalls[1]}"
            )
        return (
            f"user {self.utime - before.utime:.2f} s, sys {self.stime - before.stime:.2f} s, "
            f"minflt {self.minflt - before.minflt}, rss {self.rss_mb:.0f} MB{calls}; machine: "
            f"MemFree {self.free_mb - before.free_mb:+.0f} MB, allocated "
            f"{vm['pgalloc_normal']} MB, freed {vm['pgfree']} MB, faulted {vm['pgfault']} MB, "
            f"scanned {vm['pgscan_kswapd'] + vm['pgscan_direct']} MB, reported to the host "
            f"{self.reported_mb - before.reported_mb:.0f} MB; client threads "
            f"{_threads(os.getpid())}"
        )


def _threads(pid: int) -> int:
    """Threads of process ``pid`` (the clients' process: librdkafka threads that outlive
    their client would slow every later phase)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


# ----------------------------------------------------------------------------------------
@dataclass
class Target:
    """One broker under test: how to reach it, create topics, and read its CPU time."""

    name: str
    bootstrap: str
    create_topic: Callable[[str, int], None]
    pid: int
    results: dict[str, list[float]] = field(default_factory=dict)
    totals: Counter[str] = field(default_factory=Counter)

    def record(self, key: str, value: float) -> None:
        """Keep one figure of one pair."""
        self.results.setdefault(key, []).append(value)


def retained_messages(bootstrap: str, topic: str, partitions: int) -> int:
    """Messages the broker still holds (high - low watermark summed over partitions)."""
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "compare-watermarks"})
    try:
        total = 0
        for p in range(partitions):
            low, high = cons.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        cons.close()


def page_cache_reference(directory: Path, megabytes: int = 256) -> tuple[float, float]:
    """The machine's own rate for what every produce phase does last: new data into the page cache.

    Writes `megabytes` in 1 MiB pwrites to a new file (kept until the run ends, so the
    pages it takes are not handed back to a later phase). Returns (MB/s, MB per CPU-s).
    On a VM whose free memory the host has not backed yet, this is several times slower
    than rewriting recently freed pages, and it moves between runs: every broker that
    keeps what it is sent (kbroker in the page cache, the mock on its heap) pays it.
    """
    chunk = b"\0" * (1 << 20)
    path = directory / f"page-cache-reference-{uuid.uuid4().hex[:6]}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(megabytes):
            os.pwrite(fd, chunk, i << 20)
        t1, c1 = time.perf_counter(), time.process_time()
    finally:
        os.close(fd)
    mb = megabytes * (1 << 20) / MB
    return mb / (t1 - t0), mb / max(c1 - c0, 1e-6)


def split_line(targets: tuple[Target, ...]) -> str:
    """The produce phases' broker CPU split into user and kernel time, summed over the pairs.

    The kernel's share is receiving the bytes and storing them (kbroker: the copy into
    the page cache and the filesystem's bookkeeping; the mock: faulting in heap pages),
    which a broker's own code does not shorten; the user share is the broker's code.
    """
    parts = []
    for label, *_ in SHAPES:
        cells = []
        for t in targets:
            mb = t.totals[f"{label} MB"] or 1.0
            user, sys_ = t.totals[f"{label} user"], t.totals[f"{label} sys"]
            cells.append(f"{t.name} {1000 * user / mb:.2f} / {1000 * sys_ / mb:.2f}")
        parts.append(f"{label}: " + ", ".join(cells))
    return (
        "Broker CPU of the produce phases, user / kernel ms per MB (summed over the pairs, "
        "from /proc/PID/stat's 10 ms ticks): " + "; ".join(parts) + "."
    )


def warm_up(target: Target) -> None:
    """One tiny produce and group consume, untimed: kbroker creates __consumer_offsets
    (50 partitions) on the first FindCoordinator, which is start-up, not throughput."""
    topic = f"cmp-warm-{uuid.uuid4().hex[:6]}"
    target.create_topic(topic, 1)
    n, _, _ = throughput.bench_produce(target.bootstrap, topic, 100, 10_000, 10.0)
    throughput.bench_consume(target.bootstrap, topic, 100, n, 10.0)


def run_once(target: Target, args: argparse.Namespace) -> None:
    """Every phase once against `target`, recording MB/s, MB per broker CPU-s and latency."""
    run = uuid.uuid4().hex[:6]
    for label, size, partitions, extra in SHAPES:
        topic = f"cmp-{size}-{run}"
        target.create_topic(topic, partitions)
        budget = args.megabytes_small if size < 1000 else args.megabytes_large
        m0 = MemorySample.take(target.pid, io=args.memory)
        c0, k0 = cpu_s(target.pid), time.process_time()
        n, nbytes, secs = throughput.bench_produce(
            target.bootstrap, topic, size, int(budget * MB), args.seconds, extra
        )
        c1, k1 = cpu_s(target.pid), time.process_time()
        m1 = MemorySample.take(target.pid, io=args.memory)
        if c1 > c0:  # a phase that used no measurable CPU has no share to give
            target.record(f"produce {label} broker sys share", (m1.stime - m0.stime) / (c1 - c0))
        # Summed over the pairs at the end (split_line): one phase is a few 10 ms ticks.
        target.totals[f"{label} user"] += m1.utime - m0.utime
        target.totals[f"{label} sys"] += m1.stime - m0.stime
        target.totals[f"{label} MB"] += nbytes / MB
        if args.memory:
            print(f"  {target.name:<7} produce {label}: {m1.since(m0)}", flush=True)
        target.record(f"produce {label} MB/s", nbytes / MB / secs)
        target.record(f"produce {label} MB/CPU-s", nbytes / MB / max(c1 - c0, 0.01))
        target.record(f"produce {label} client cores", (k1 - k0) / secs)
        held = retained_messages(target.bootstrap, topic, partitions)
        c0, k0 = cpu_s(target.pid), time.process_time()
        got, gbytes, secs = throughput.bench_consume(
            target.bootstrap, topic, size, held, args.seconds, partitions
        )
        c1, k1 = cpu_s(target.pid), time.process_time()
        target.record(f"consume {label} MB/s", gbytes / MB / secs)
        target.record(f"consume {label} MB/CPU-s", gbytes / MB / max(c1 - c0, 0.01))
        target.record(f"consume {label} client cores", (k1 - k0) / secs)
        print(
            f"  {target.name:<7} {label}: produced {n} ({nbytes / MB:.0f} MB), "
            f"held {held}, consumed {got}; MB/s (MB/CPU-s) produce "
            f"{target.results[f'produce {label} MB/s'][-1]:.0f} "
            f"({target.results[f'produce {label} MB/CPU-s'][-1]:.0f}), consume "
            f"{target.results[f'consume {label} MB/s'][-1]:.0f} "
            f"({target.results[f'consume {label} MB/CPU-s'][-1]:.0f}); client cores "
            f"{target.results[f'produce {label} client cores'][-1]:.2f} / "
            f"{target.results[f'consume {label} client cores'][-1]:.2f}",
            flush=True,
        )
    topic = f"cmp-latency-{run}"
    target.create_topic(topic, 1)
    lat = throughput.bench_latency(
        target.bootstrap, topic, args.latency_messages, args.latency_rate
    )
    if lat:
        target.record("e2e latency p50 ms", statistics.median(lat))
        target.record("e2e latency p99 ms", throughput.percentile(lat, 99))
        print(
            f"  {target.name:<7} latency: p50 {statistics.median(lat):.2f} ms, "
            f"p99 {throughput.percentile(lat, 99):.2f} ms",
            flush=True,
        )


def main() -> int:
    """Alternate kbroker and the mock for --pairs pairs; print medians and ratios."""
    if "--mock-server" in sys.argv[1:]:
        return mock_server_main()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    throughput.add_phase_arguments(parser, seconds=10.0, latency_messages=1000)
    parser.add_argument(
        "--megabytes-small",
        type=float,
        default=40.0,
        help="MB produced per 100 B phase (16 partitions x ~2.5 MB fits the "
        "mock's 5 MiB per partition)",
    )
    parser.add_argument(
        "--megabytes-large", type=float, default=150.0, help="MB produced per 10 KB phase"
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="per produce phase, print the broker's user/system CPU and faults and the "
        "machine's page allocation, reclaim and free-page-reporting deltas",
    )
    args = parser.parse_args()

    print(MOCK_LIMITS, flush=True)
    mock = MockCluster()
    with tempfile.TemporaryDirectory(prefix="kbroker-compare-") as tmp:
        broker = LiveBroker(Path(tmp) / "data", overrides={})
        broker.start()
        try:
            assert broker.proc is not None
            kb = Target(
                "kbroker",
                broker.bootstrap_servers,
                lambda t, n: throughput.create_topic(broker.bootstrap_servers, t, n),
                broker.proc.pid,
            )
            mk = Target("mock", mock.bootstrap_servers, mock.create_topic, mock.proc.pid)
            for target in (kb, mk):
                warm_up(target)
            ref_before = page_cache_reference(Path(tmp))
            started = time.monotonic()
            for i in range(args.pairs):
                order = (kb, mk) if i % 2 == 0 else (mk, kb)
                print(f"pair {i + 1}/{args.pairs}", flush=True)
                for target in order:
                    run_once(target, args)
            elapsed = time.monotonic() - started
            ref_after = page_cache_reference(Path(tmp))
        except Exception:
            print(broker.log_tail(), file=sys.stderr)
            raise
        finally:
            broker.stop()
            mock.stop()

    print()
    print(
        f"| {'metric':<28} | {'kbroker (median)':>16} | {'mock (median)':>14} "
        f"| {'median ratio kb/mock':>20} | {'ratio range':>11} |"
    )
    print(f"|{'-' * 30}|{'-' * 18}|{'-' * 16}|{'-' * 22}|{'-' * 13}|")
    for key in kb.results:
        ours, theirs = kb.results[key], mk.results.get(key, [])
        if not theirs:
            continue
        if key.endswith(("client cores", "sys share")):
            # Not a score: how busy the client was (near 2 = the whole machine).
            print(
                f"| {key:<28} | {statistics.median(ours):16.2f} | "
                f"{statistics.median(theirs):14.2f} | {'':>20} | {'':>11} |"
            )
            continue
        # Ratio per pair, then the median: each pair ran under similar machine load.
        ratios = [a / b for a, b in zip(ours, theirs, strict=False) if b > 0]
        median = statistics.median(ratios) if ratios else float("nan")
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else ""
        print(
            f"| {key:<28} | {statistics.median(ours):16.2f} | {statistics.median(theirs):14.2f} "
            f"| {median:20.2f} | {spread:>11} |"
        )
    print(
        f"({args.pairs} pairs in {elapsed:.0f} s; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores. MB/s: higher is better; latency: lower is better. "
        "MB/CPU-s = MB per second of the broker process's CPU time. Client cores = CPU "
        "seconds of this process (the clients) per second of the phase.)"
    )
    print(split_line((kb, mk)))
    print(
        f"Machine reference, new data into the page cache (256 MB in 1 MiB pwrites): "
        f"{ref_before[0]:.0f} MB/s, {ref_before[1]:.0f} MB/CPU-s before the pairs; "
        f"{ref_after[0]:.0f} MB/s, {ref_after[1]:.0f} MB/CPU-s after."
    )
    print(MOCK_LIMITS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
