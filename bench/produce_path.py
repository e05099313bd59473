"""The produce path, request by request: a fixed workload, the broker's CPU per request.

Run: `.venv/bin/python bench/produce_path.py [--shape 100B|10KB|1rec|all] [--requests N]
[--profile] [--frames FILE] [--pipeline] [--gap-ms MS [--gap-busy]]`. Prints figures; asserts nothing.

A broker is served in this process (kbroker.server.serve, a fresh data dir in /tmp that is
deleted afterwards); a child process, the client, sends pre-encoded Produce requests over
loopback TCP one at a time (each waits for its response, so per-request figures are exact)
and the broker's CPU time is this process's alone. The shapes copy what librdkafka sends in
bench/compare.py's phases (measured with a capture of those phases):

  100B  one partition per request (sticky partitioning), batches of 4,255 records with
        100-byte values and no key (~470 KB), acks=all;
  10KB  one partition per request, 66 records of 10,000 bytes (~660 KB), acks=all;
  1rec  one record of 100 bytes per request, acks=1: the per-request overhead.

The workload is the same on every run, so under `valgrind --tool=callgrind` (run it twice,
with --requests N and --requests 0, and subtract: the difference is the requests' own
instructions) it gives instruction counts that do not depend on the machine's load.
`--profile` prints the broker's cProfile (tottime per request) over the requests.
`--gap-ms MS` spaces the requests out as a live producer does (librdkafka sends a batch
every few ms in bench/compare.py's phases), with `--gap-busy` spinning through each gap:
a request served after the broker idled costs several times the CPU of one served
back to back (caches and predictors cold after other work ran), which is most of the
difference between this in-process figure and bench/compare.py's live one.
`--frames FILE` replays captured request frames instead (4-byte size, frame) pairs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import trio  # noqa: E402

from kbroker.config import BrokerConfig  # noqa: E402
from kbroker.server import serve  # noqa: E402
from kbroker.wire.messages import ProduceRequest  # noqa: E402
from kbroker.wire.protocol import decode_request, encode_request  # noqa: E402
from kbroker.wire.records import Record, build_batch  # noqa: E402

TOPIC = "produce-path"
# name -> (records per batch, value size, acks, default request count, partitions)
SHAPES: dict[str, tuple[int, int, int, int, int]] = {
    "100B": (4255, 100, -1, 94, 16),
    "10KB": (66, 10_000, -1, 227, 64),
    "1rec": (1, 100, 1, 5000, 1),
}
_SIZE = struct.Struct(">i")


def shape_frame(name: str, partition: int = 0, correlation_id: int = 1) -> bytes:
    """One Produce v10 request frame (size prefix included) of the named shape."""
    count, size, acks, _, _ = SHAPES[name]
    value = b"v" * size
    now = 1_700_000_000_000
    batch = build_batch([Record(value=value, timestamp=now) for _ in range(count)])
    request = ProduceRequest(
        acks=acks,
        timeout_ms=30_000,
        topic_data=[
            ProduceRequest.TopicProduceData(
                name=TOPIC,
                partition_data=[
                    ProduceRequest.PartitionProduceData(index=partition, records=batch)
                ],
            )
        ],
    )
    return encode_request(ProduceRequest.API_KEY, 10, correlation_id, "rdkafka", request)


def read_frames(path: Path) -> list[bytes]:
    """Captured request frames: (int32 size, frame) pairs; returned with their size prefix."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = _SIZE.unpack_from(data, pos)
        out.append(data[pos : pos + 4 + n])
        pos += 4 + n
    return out


def topics_of(frames: list[bytes]) -> dict[str, int]:
    """Topic -> partitions needed to serve the frames."""
    need: dict[str, int] = {}
    for frame in frames:
        _, req = decode_request(memoryview(frame)[4:])
        for t in req.topic_data:
            top = max(p.index for p in t.partition_data) + 1
            need[t.name] = max(need.get(t.name, 0), top)
    return need


# -- the client (child process) -------------------------------------------------------------
def client_main(
    host: str, port: int, shape: str, frames_file: str, requests: int, partitions: int, first: int
) -> int:
    """Send `requests` frames one at a time, reading each response; print its wall time.

    Requests go round-robin to partitions first, first + 1, ... first + partitions - 1.
    """
    if frames_file:
        frames = read_frames(Path(frames_file))[:requests] if requests else []
    else:
        each = [shape_frame(shape, first + p) for p in range(partitions)]
        frames = [each[i % partitions] for i in range(requests)]
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(1 << 16)
    started = time.perf_counter()
    pipelined = os.environ.get("PRODUCE_PATH_PIPELINE") == "1"
    gap_s = float(os.environ.get("PRODUCE_PATH_GAP_MS", "0")) / 1000
    busy = os.environ.get("PRODUCE_PATH_GAP_BUSY") == "1"
    if pipelined:
        # As librdkafka does: requests go out without waiting for responses.
        threading.Thread(target=lambda: [sock.sendall(f) for f in frames], daemon=True).start()
    for frame in frames:
        if gap_s and not pipelined:
            # As a producer whose batches fill over a few ms: the broker idles in
            # between, and with --gap-busy this process keeps a core busy meanwhile.
            if busy:
                until = time.perf_counter() + gap_s
                while time.perf_counter() < until:
                    pass
            else:
                time.sleep(gap_s)
        if not pipelined:
            sock.sendall(frame)
        got = 0
        need = 4
        size_known = False
        while got < need:
            # Exactly what this response still lacks: the next one may follow at once.
            n = sock.recv_into(memoryview(buf)[got:need], need - got)
            if not n:
                print("broker closed the connection", file=sys.stderr)
                return 1
            got += n
            if not size_known and got >= 4:
                need = 4 + _SIZE.unpack_from(buf, 0)[0]
                size_known = True
                if need > len(buf):
                    buf.extend(bytes(need - len(buf)))
        # acks=0 would get no response; the shapes use acks=1 and acks=all.
    print(f"{time.perf_counter() - started:.6f}", flush=True)
    sock.close()
    return 0


# -- the broker (this process) --------------------------------------------------------------
async def run(args: argparse.Namespace, shape: str, data_dir: Path) -> dict[str, Any]:
    """Serve a broker, run the client against it, return the broker's CPU (and profile)."""
    props = {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(data_dir)}
    config = BrokerConfig.from_properties(props)
    requests = args.requests if args.requests is not None else SHAPES[shape][3]
    partitions = args.partitions or SHAPES[shape][4]
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, config)
        if args.frames:
            needed = topics_of(read_frames(Path(args.frames)))
        else:
            # Partition 0 takes the warm-up request; the measured ones go to fresh
            # partitions, so their first appends count, as in bench/compare.py's phases.
            needed = {TOPIC: 1 + partitions}
        for name, count in needed.items():
            server.broker.topics.create(name, count, {})
        host, port = server.address

        async def client(count: int, first: int) -> bytes:
            argv = [sys.executable, __file__, "--client", host, str(port), shape]
            argv += [args.frames or "", str(count), str(partitions if first else 1), str(first)]
            return (await trio.run_process(argv, capture_stdout=True)).stdout

        # A warm-up request (imports, first connection, caches); not counted.
        await client(1, 0)
        profiler = cProfile.Profile() if args.profile else None
        perf = None
        if args.perf:
            # Linux perf, software clock (works in VMs without hardware counters),
            # on this process only and only while the measured requests run.
            perf = subprocess.Popen(
                ["perf", "record", "-e", "cpu-clock", "-F", "5000", "-g", "-o", args.perf]
                + ["-p", str(os.getpid())],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            await trio.sleep(1.0)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        if profiler is not None:
            profiler.enable()
        out = await client(requests, 1)
        if profiler is not None:
            profiler.disable()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        nursery.cancel_scope.cancel()
    wall = float(out.decode().strip() or "nan")
    user_s, sys_s = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    result: dict[str, Any] = {
        "requests": requests,
        "cpu_s": user_s + sys_s,
        "user_s": user_s,
        "sys_s": sys_s,
        "wall_s": wall,
    }
    if profiler is not None:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats(args.sort).print_stats(args.top)
        result["profile"] = text.getvalue()
    return result


def run_mock(args: argparse.Namespace, shape: str) -> dict[str, Any]:
    """The same client against librdkafka's mock cluster (bench/compare.py's MockCluster)."""
    import compare  # bench/compare.py: needs confluent-kafka

    requests = args.requests if args.requests is not None else SHAPES[shape][3]
    partitions = args.partitions or SHAPES[shape][4]
    mock = compare.MockCluster()
    try:
        needed = topics_of(read_frames(Path(args.frames))) if args.frames else {}
        for name, count in (needed or {TOPIC: 1 + partitions}).items():
            mock.create_topic(name, count)
        host, port = mock.bootstrap_servers.split(",")[0].rsplit(":", 1)

        def client(count: int, first: int) -> bytes:
            argv = [sys.executable, __file__, "--client", host, port, shape]
            argv += [args.frames or "", str(count), str(partitions if first else 1), str(first)]
            return subprocess.run(argv, capture_output=True, check=True).stdout

        client(1, 0)
        c0 = compare.cpu_s(mock.proc.pid)
        out = client(requests, 1)
        c1 = compare.cpu_s(mock.proc.pid)
    finally:
        mock.stop()
    return {"requests": requests, "cpu_s": c1 - c0, "wall_s": float(out.decode().strip())}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        host, port, shape, frames, requests, partitions, first = sys.argv[2:9]
        return client_main(
            host, int(port), shape, frames, int(requests), int(partitions), int(first)
        )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="all", choices=[*SHAPES, "all"])
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--frames", default="", help="replay captured frames instead")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--perf", default="", help="perf record the requests into this file")
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="the client sends every request without waiting for responses (as librdkafka "
        "does with several requests in flight); per-request figures are then averages",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="the client waits this long before each request (not with --pipeline), as a "
        "producer does while its next batch fills: the broker idles between requests",
    )
    parser.add_argument(
        "--gap-busy",
        action="store_true",
        help="the client spins through each gap instead of sleeping (as librdkafka's "
        "application thread keeps a core busy), so other work runs while the broker waits",
    )
    parser.add_argument(
        "--mock", action="store_true", help="against librdkafka's mock cluster instead"
    )
    parser.add_argument(
        "--partitions", type=int, default=0, help="fresh partitions the requests rotate over"
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime", help="cProfile sort key")
    args = parser.parse_args()
    if args.pipeline:
        os.environ["PRODUCE_PATH_PIPELINE"] = "1"
    if args.gap_ms:
        os.environ["PRODUCE_PATH_GAP_MS"] = str(args.gap_ms)
    if args.gap_busy:
        os.environ["PRODUCE_PATH_GAP_BUSY"] = "1"
    if args.frames:
        # Captured frames are the workload; a shape only lends its defaults.
        shapes = ["100B" if args.shape == "all" else args.shape]
    else:
        shapes = list(SHAPES) if args.shape == "all" else [args.shape]
    for shape in shapes:
        if args.mock:
            result = run_mock(args, shape)
        else:
            with tempfile.TemporaryDirectory(prefix="kbroker-produce-path-") as tmp:
                result = trio.run(run, args, shape, Path(tmp) / "data")
        n = result["requests"]
        if args.frames:
            frames = read_frames(Path(args.frames))[:n]
            n = result["requests"] = len(frames)
            nbytes = sum(len(f) for f in frames)
        else:
            nbytes = n * len(shape_frame(shape))
        per_req = result["cpu_s"] / n * 1e6 if n else float("nan")
        mb_cpu = nbytes / 1e6 / result["cpu_s"] if result["cpu_s"] > 0 else float("nan")
        split = ""
        if "user_s" in result:
            split = (
                f" (user {result['user_s'] * 1e3:.1f} ms, system {result['sys_s'] * 1e3:.1f} ms)"
            )
        print(
            f"{'mock' if args.mock else 'kbroker'} {args.frames or shape}: {n} requests, {nbytes / 1e6:.1f} MB; broker CPU "
            f"{result['cpu_s'] * 1e3:.1f} ms = {per_req:.1f} us per request, "
            f"{mb_cpu:.0f} MB per CPU-s{split}; wall {result['wall_s'] * 1e3:.1f} ms "
            f"({n / result['wall_s']:.0f} requests/s)",
            flush=True,
        )
        if "profile" in result:
            print(result["profile"])
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
