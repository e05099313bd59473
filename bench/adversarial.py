"""Careless and hostile clients against one broker limited to 1,024 descriptors.

Run: `.venv/bin/python bench/adversarial.py [--fuzz-frames 100000] [--steps ...]`

Starts `python -m kbroker` with RLIMIT_NOFILE 1024 (as `ulimit -n 1024`) on a fresh
data dir, then runs each step while a pinger thread sends ApiVersions on its own
connection every 20 ms. For each step it prints the open descriptors and RSS of the
broker after the step, and the worst ping latency during it:

- create-huge: one CreateTopics asking for 1,000,000 partitions;
- create-wide: one CreateTopics of one topic of 5,000 partitions (opened a slice
  at a time: the pings go on being answered);
- metadata-7000: Metadata requests naming 7,000 unknown topics, auto-creation on,
  repeated as a client retrying would (until nothing more is created): all are
  created, since segment files share one bounded cache of open descriptors
  (kbroker.log.filecache) instead of holding three per partition;
- announce-100MiB: 30 connections sending a 100 MiB size prefix, then a trickle;
- long-polls: 200 Fetch requests with max_wait_ms 2^31-1 whose clients go away;
  reports how long until the descriptors are back to what they were;
- never-read: 20 connections pipelining Fetches and reading nothing, closed after
  connections.max.idle.ms (set to 3 s here);
- flood: 1,100 connections at once (more than the descriptor limit);
- fuzz: mutated frames of every API (kbroker.testing.fuzz_frames), seeded;
- restart: SIGTERM, then a new broker process (same limit) on the same data dir.

Targets (issue: bounded resources): no ping slower than 1 s in any step, RSS growth
under 200 MB for the 30 connections announcing 100 MiB, descriptors back to
baseline within 5 s after the abandoned long polls, and the restart succeeds.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._process import KbrokerProcess  # noqa: E402
from bench._requests import fetch_request  # noqa: E402
from kbroker.testing.fuzz_frames import mutated_frames  # noqa: E402
from kbroker.wire.messages import (  # noqa: E402
    ApiVersionsRequest,
    CreateTopicsRequest,
    MetadataRequest,
)
from kbroker.wire.protocol import decode_response, encode_request  # noqa: E402

NOFILE = 1024
IDLE_MS = 3000
OVERRIDES = {
    "connections.max.idle.ms": IDLE_MS,
    "max.connections": 800,
    "queued.max.request.bytes": 64 * 1024 * 1024,
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 1,
    "transaction.state.log.num.partitions": 1,
}
PING = ApiVersionsRequest(client_software_name="adversarial", client_software_version="1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


class Broker(KbrokerProcess):
    """One broker process limited to NOFILE descriptors."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.port = port
        args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)]
        args += ["--log-level", "WARNING"]
        for key, value in OVERRIDES.items():
            args += ["--override", f"{key}={value}"]
        super().__init__(args, preexec_fn=_limit_fds)
        self.started_s = self._wait_ready()

    def _wait_ready(self) -> float:
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("kbroker exited:\n" + "\n".join(self.lines[-20:]))
            try:
                with Client(self.port) as client:
                    client.request(PING, 3)
                return time.perf_counter() - self.t0
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("kbroker did not answer in time")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def tracebacks(self) -> int:
        return sum(1 for line in self.lines if line.startswith("Traceback"))

    def traceback_kinds(self) -> dict[str, int]:
        """The last line of each traceback (the exception), counted."""
        kinds: dict[str, int] = {}
        inside = False
        lines = list(self.lines)
        for line, following in zip(lines, [*lines[1:], ""][: len(lines)], strict=True):
            if line.startswith("Traceback"):
                inside = True
            elif inside and not following.startswith(" ") and not line.startswith(" "):
                kinds[line[:160]] = kinds.get(line[:160], 0) + 1
                inside = False
        return kinds

    def settle(self) -> int:
        """Descriptors once connections closed by the last step are gone (stable 0.3 s)."""
        last, stable_since = self.fds(), time.perf_counter()
        while time.perf_counter() - stable_since < 0.3:
            time.sleep(0.05)
            now = self.fds()
            if now != last:
                last, stable_since = now, time.perf_counter()
        return last


class Client:
    """A blocking raw-frame client."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.correlation = 0

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, body: object, version: int) -> int:
        self.correlation += 1
        api_key = body.API_KEY  # type: ignore[attr-defined]
        self.sock.sendall(encode_request(api_key, version, self.correlation, "adv", body))
        return self.correlation

    def receive_frame(self) -> bytes | None:
        head = self._exactly(4)
        if head is None:
            return None
        return self._exactly(struct.unpack(">i", head)[0])

    def _exactly(self, n: int) -> bytes | None:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def request(self, body: object, version: int) -> object:
        self.send(body, version)
        frame = self.receive_frame()
        if frame is None:
            raise ConnectionError("closed by the broker")
        return decode_response(body.API_KEY, version, frame)[1]  # type: ignore[attr-defined]


class Pinger(threading.Thread):
    """ApiVersions every 20 ms on its own connection; the worst latency per step."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.worst = 0.0
        self.failures = 0
        self.stopping = threading.Event()

    def reset(self) -> tuple[float, int]:
        worst, failures = self.worst, self.failures
        self.worst, self.failures = 0.0, 0
        return worst, failures

    def run(self) -> None:
        client: Client | None = None
        while not self.stopping.is_set():
            started = time.perf_counter()
            try:
                if client is None:
                    client = Client(self.port, timeout=10)
                client.request(PING, 3)
            except OSError:
                self.failures += 1
                if client is not None:
                    client.close()
                client = None
            self.worst = max(self.worst, time.perf_counter() - started)
            time.sleep(0.02)
        if client is not None:
            client.close()


# --- the steps ----------------------------------------------------------------------------


def step_create_huge(port: int) -> str:
    topic = CreateTopicsRequest.CreatableTopic(
        name="huge", num_partitions=1_000_000, replication_factor=1
    )
    with Client(port) as client:
        response = client.request(CreateTopicsRequest(topics=[topic], timeout_ms=30000), 7)
    result = response.topics[0]  # type: ignore[attr-defined]
    return f"error {result.error_code} ({result.error_message})"


def step_create_wide(port: int) -> str:
    topic = CreateTopicsRequest.CreatableTopic(
        name="wide", num_partitions=5000, replication_factor=1
    )
    with Client(port, timeout=120) as client:
        response = client.request(CreateTopicsRequest(topics=[topic], timeout_ms=120000), 7)
    result = response.topics[0]  # type: ignore[attr-defined]
    return f"error {result.error_code} ({result.error_message})"


def step_metadata_7000(port: int) -> str:
    names = [f"unknown-{i}" for i in range(7000)]
    request = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=n) for n in names])
    rounds = 0
    with Client(port, timeout=120) as client:
        while True:
            rounds += 1
            response = client.request(request, 12)
            codes = [t.error_code for t in response.topics]  # type: ignore[attr-defined]
            if 5 not in codes:  # LEADER_NOT_AVAILABLE: more would be created next time
                break
    created = codes.count(0)
    refused = len(codes) - created
    return f"{rounds} requests: {created} created, {refused} refused (codes {sorted(set(codes))})"


def step_announce(port: int, broker: Broker) -> str:
    before = broker.rss_mb()
    clients = [Client(port) for _ in range(30)]
    for client in clients:
        client.sock.sendall(struct.pack(">i", 100 * 1024 * 1024) + b"\0" * 1024)
    for _ in range(20):  # a trickle: 1 KiB per connection every 50 ms
        for client in clients:
            client.sock.sendall(b"\0" * 1024)
        time.sleep(0.05)
    peak = broker.rss_mb()
    for client in clients:
        client.close()
    return f"RSS {before:.0f} -> {peak:.0f} MB (growth {peak - before:.0f} MB)"


def step_long_polls(port: int, broker: Broker) -> str:
    baseline = broker.settle()
    fetch = fetch_request(
        "unknown-0", 0, 0, max_wait_ms=2**31 - 1, max_bytes=1024, partition_max_bytes=1024
    )
    clients = [Client(port) for _ in range(200)]
    for client in clients:
        client.send(fetch, 12)
    time.sleep(0.5)
    during = broker.fds()
    for client in clients:
        client.close()
    closed_at = time.perf_counter()
    back_s: float | None = None
    while time.perf_counter() - closed_at < 30:
        if broker.fds() <= baseline:
            back_s = time.perf_counter() - closed_at
            break
        time.sleep(0.01)
    back = f"back to baseline after {back_s:.2f} s" if back_s is not None else "NOT back in 30 s"
    return f"fds {baseline} -> {during} with 200 waiting; {back}"


def step_never_read(port: int, broker: Broker) -> str:
    baseline = broker.settle()
    fetch = fetch_request("__consumer_offsets", 0, 0, max_bytes=50 * 1024 * 1024)
    clients = []
    for _ in range(20):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        frames = b"".join(encode_request(1, 12, i, "adv", fetch) for i in range(2000))
        sock.sendall(frames[: 64 * 1024])
        clients.append(sock)
    started = time.perf_counter()
    while time.perf_counter() - started < IDLE_MS / 1000 * 4:
        if broker.fds() <= baseline:
            break
        time.sleep(0.05)
    waited = time.perf_counter() - started
    for sock in clients:
        sock.close()
    return f"fds {baseline} -> {broker.fds()} after {waited:.1f} s (idle limit {IDLE_MS} ms)"


def step_flood(port: int, broker: Broker) -> str:
    socks = []
    refused = 0
    for _ in range(1100):
        try:
            sock = socket.socket()
            sock.settimeout(2)
            sock.connect(("127.0.0.1", port))
            socks.append(sock)
        except OSError:
            refused += 1
            sock.close()
    time.sleep(1)
    peak = broker.fds()
    for sock in socks:
        sock.close()
    time.sleep(1)
    return f"{len(socks)} connected, {refused} refused; broker fds {peak} (limit {NOFILE})"


def step_fuzz(port: int, frames: int, seed: int) -> str:
    answered = closed = 0
    client = Client(port, timeout=0.5)
    for _, _, frame in mutated_frames(seed, frames):
        try:
            client.sock.sendall(frame)
            if client.receive_frame() is not None:
                answered += 1
                continue
        except OSError:
            pass
        closed += 1
        client.close()
        client = Client(port, timeout=0.5)
    client.close()
    return f"{frames} frames (seed {seed}): {answered} answered, {closed} closed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-frames", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--steps", nargs="+", help="run only these steps (default: all)")
    args = parser.parse_args()
    print(
        f"kbroker adversarial probe: python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
        f"RLIMIT_NOFILE {NOFILE}"
    )
    with tempfile.TemporaryDirectory(prefix="kbroker-adversarial-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        broker = Broker(data, port)
        print(
            f"started in {broker.started_s:.2f} s; fds {broker.fds()}, RSS {broker.rss_mb():.0f} MB"
        )
        pinger = Pinger(port)
        pinger.start()
        steps: list[tuple[str, Callable[[], str]]] = [
            ("create-huge", lambda: step_create_huge(port)),
            ("create-wide", lambda: step_create_wide(port)),
            ("metadata-7000", lambda: step_metadata_7000(port)),
            ("announce-100MiB", lambda: step_announce(port, broker)),
            ("long-polls", lambda: step_long_polls(port, broker)),
            ("never-read", lambda: step_never_read(port, broker)),
            ("flood", lambda: step_flood(port, broker)),
            ("fuzz", lambda: step_fuzz(port, args.fuzz_frames, args.seed)),
        ]
        print(f"{'step':<16} {'worst ping':>10} {'fds':>5} {'RSS MB':>7}  result")
        for name, run in steps:
            if args.steps and name not in args.steps:
                continue
            pinger.reset()
            tracebacks = broker.tracebacks()
            started = time.perf_counter()
            try:
                result = run()
            except Exception as exc:  # noqa: BLE001 - report and go on
                result = f"FAILED: {type(exc).__name__}: {exc}"
            worst, failures = pinger.reset()
            took = time.perf_counter() - started
            lost = f", {failures} pings failed" if failures else ""
            tracebacks = broker.tracebacks() - tracebacks
            lost += f", {tracebacks} tracebacks logged" if tracebacks else ""
            print(
                f"{name:<16} {worst * 1000:>8.0f}ms {broker.fds():>5} {broker.rss_mb():>7.0f}  "
                f"{result} [{took:.1f} s{lost}]",
                flush=True,
            )
        pinger.stopping.set()
        pinger.join(5)
        code = broker.stop()
        tracebacks = broker.tracebacks()
        print(f"stopped with exit code {code}; {tracebacks} traceback(s) in the broker's log")
        for kind, count in broker.traceback_kinds().items():
            print(f"  {count} x {kind}")
        again = Broker(data, port)
        print(f"restart: answered after {again.started_s:.2f} s, fds {again.fds()}")
        again.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
