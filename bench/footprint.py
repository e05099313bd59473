"""Startup time and idle memory of the `kbroker` process, with 1 and with 1,000 partitions.

Run: `.venv/bin/python bench/footprint.py [--runs 3] [--partitions 1 1000]`
For each partition count: start a broker on a fresh data dir, create that many partitions
(one topic, through confluent-kafka's admin client), stop it (SIGTERM: clean shutdown),
then restart it --runs times on that data and measure, each time,
- ready line: from spawning `python -m kbroker` to its `bootstrap_servers=` line;
- ApiVersions: from spawning to the first successful ApiVersions round trip (polled every
  5 ms on the fixed port, independent of the log line);
- idle RSS: VmRSS of the process (/proc) one second after it is ready, doing nothing.
Prints one table of medians (min-max across runs). No thresholds: figures to compare.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from bench._process import KbrokerProcess  # noqa: E402
from kbroker.wire.messages import ApiVersionsRequest  # noqa: E402
from kbroker.wire.protocol import decode_response, encode_request  # noqa: E402

START_TIMEOUT_S = 120.0
IDLE_SETTLE_S = 1.0


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_versions_ok(port: int) -> bool:
    """One ApiVersions v0 round trip (True if the broker answered with error 0)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(encode_request(18, 0, 1, "footprint", ApiVersionsRequest()))
            data = b""
            while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                data += chunk
        _, body = decode_response(18, 0, data[4:])
        return body.error_code == 0
    except OSError:
        return False


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Run(KbrokerProcess):
    """One broker process on a fixed port; records when it logged ready and answered."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.ready_s: float | None = None
        super().__init__(["--listen", f"127.0.0.1:{self.port}", "--data-dir", str(data_dir)])

    def on_line(self, line: str) -> None:
        if self.ready_s is None and "bootstrap_servers=" in line:
            self.ready_s = time.perf_counter() - self.t0

    def wait_api_versions(self) -> float:
        """Seconds from spawn to the first successful ApiVersions."""
        deadline = self.t0 + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("kbroker exited:\n" + "\n".join(self.lines[-20:]))
            if api_versions_ok(self.port):
                return time.perf_counter() - self.t0
            time.sleep(0.005)
        raise RuntimeError("kbroker did not answer ApiVersions in time")

    def wait_ready_line(self) -> float:
        """Seconds from spawn to the ready line."""
        deadline = time.perf_counter() + START_TIMEOUT_S
        while self.ready_s is None and time.perf_counter() < deadline:
            time.sleep(0.005)
        if self.ready_s is None:
            raise RuntimeError("no ready line:\n" + "\n".join(self.lines[-20:]))
        return self.ready_s

    def stop(self) -> None:
        """SIGTERM and wait (clean shutdown)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def prepare(data_dir: Path, partitions: int) -> None:
    """Create one topic with ``partitions`` partitions on the data dir, then stop cleanly."""
    run = Run(data_dir)
    try:
        run.wait_api_versions()
        got = create_partitions(run.port, partitions)
        assert got == partitions, f"created {got} partitions, wanted {partitions}"
    finally:
        run.stop()


def create_partitions(port: int, partitions: int) -> int:
    """CreateTopics through an admin client that is gone (closed) when this returns."""
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 3})
    admin.create_topics([NewTopic("footprint", partitions, 1)])["footprint"].result(120)
    return len(admin.list_topics("footprint", timeout=30).topics["footprint"].partitions)


def measure(data_dir: Path) -> tuple[float, float, int]:
    """(ready-line s, ApiVersions s, idle RSS KiB) of one start on ``data_dir``."""
    run = Run(data_dir)
    try:
        api_s = run.wait_api_versions()
        ready_s = run.wait_ready_line()
        time.sleep(IDLE_SETTLE_S)  # a benchmark, not a test: let startup garbage settle
        rss = rss_kib(run.proc.pid)
    finally:
        run.stop()
    return ready_s, api_s, rss


def spread(values: list[float], fmt: str) -> str:
    """Median with the min-max range."""
    return (
        f"{format(statistics.median(values), fmt)} "
        f"({format(min(values), fmt)}-{format(max(values), fmt)})"
    )


def main() -> int:
    """Run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 1000])
    args = parser.parse_args()
    rows = []
    for count in args.partitions:
        with tempfile.TemporaryDirectory(prefix="kbroker-footprint-") as tmp:
            data_dir = Path(tmp)
            prepare(data_dir, count)
            samples = [measure(data_dir) for _ in range(args.runs)]
        ready = [s[0] * 1000 for s in samples]
        api = [s[1] * 1000 for s in samples]
        rss = [s[2] / 1024 for s in samples]
        rows.append((count, spread(ready, ".0f"), spread(api, ".0f"), spread(rss, ".1f")))
    print(
        f"kbroker footprint: python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
        f"median (min-max) of {args.runs} restarts on existing data"
    )
    header = ("partitions", "ready line ms", "first ApiVersions ms", "idle RSS MiB")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
