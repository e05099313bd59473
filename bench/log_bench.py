"""Throughput and open-time figures for the partition log (prints figures, asserts nothing).

Run: .venv/bin/python bench/log_bench.py [--dir PATH]   (bounded: well under 2 minutes)

Measures append MB/s for 1 KiB and 1 MiB batches with and without fsync,
read MB/s (log.read + pread of the regions, as a non-sendfile fetch would),
and the time to open a 1 GiB partition after a clean stop and after a kill
(no clean-shutdown marker, recovery point 0: every byte is CRC-walked).
Targets from the issue: >= 500 MB/s appending 1 MiB batches to the page
cache; clean open of 1 GiB < 100 ms; unclean open < 2 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbroker.log import LogConfig, PartitionLog  # noqa: E402
from kbroker.wire.records import Record, build_batch  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def make_batch(size: int) -> bytes:
    """A v2 batch of about `size` bytes (10 records, or one record for large sizes)."""
    n = 10 if size <= 64 * KiB else 1
    value = os.urandom(max(1, (size - 61) // n - 20))
    return build_batch(
        [Record(key=b"key-%d" % i, value=value, timestamp=1_700_000_000_000 + i) for i in range(n)]
    )


def bench_append(root: Path, name: str, batch_size: int, total: int, *, fsync: bool) -> float:
    """Append `total` bytes in batches of `batch_size`; returns MB/s."""
    d = root / name
    raw = make_batch(batch_size)
    count = max(1, total // len(raw))
    log = PartitionLog.open(d, LogConfig(fsync_every_append=fsync))
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(count):
        log.append(raw)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    log.close()
    mbps = count * len(raw) / elapsed / 1e6
    print(
        f"append {batch_size // KiB:>5} KiB batches, fsync={'yes' if fsync else 'no ':<3}: "
        f"{mbps:8.1f} MB/s wall, {count * len(raw) / cpu / 1e6:8.1f} MB/s per CPU second "
        f"({count} batches, {count / elapsed:,.0f} batches/s)"
    )
    return mbps


def bench_raw_write(root: Path, total: int) -> None:
    """Baseline: plain os.pwrite of 1 MiB buffers, what the disk/page cache allows at all."""
    raw = os.urandom(MiB)
    fd = os.open(root / "raw", os.O_RDWR | os.O_CREAT, 0o644)
    t0 = time.perf_counter()
    for i in range(total // MiB):
        os.pwrite(fd, raw, i * MiB)
    elapsed = time.perf_counter() - t0
    os.close(fd)
    os.unlink(root / "raw")
    print(
        f"baseline: raw os.pwrite of 1 MiB buffers ({total // MiB} MiB): {total / elapsed / 1e6:8.1f} MB/s"
    )


def bench_read(root: Path, name: str, max_bytes: int) -> float:
    """Read a whole log back in fetches of `max_bytes`; returns MB/s."""
    log = PartitionLog.open(root / name, LogConfig())
    offset, total = log.log_start_offset, 0
    t0, c0 = time.perf_counter(), time.process_time()
    while offset < log.log_end_offset:
        res = log.read(offset, max_bytes)
        for region in res.regions:
            total += len(region.read_bytes())
        offset = res.next_offset
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    log.close()
    mbps = total / elapsed / 1e6
    print(
        f"read   {name:<12} max_bytes={max_bytes // KiB:>5} KiB: {mbps:8.1f} MB/s wall, "
        f"{total / cpu / 1e6:8.1f} MB/s per CPU second"
    )
    return mbps


def bench_open(root: Path, batch_size: int, size: int) -> None:
    """Build a `size` partition, kill it (no close), time the recovering open, then a clean one."""
    d = root / f"open-{batch_size}"
    raw = make_batch(batch_size)
    log = PartitionLog.open(d, LogConfig())
    for _ in range(size // len(raw)):
        log.append(raw)
    leo = log.log_end_offset
    # A kill: descriptors closed, nothing flushed or checkpointed, no marker,
    # no producer snapshot; the recovery point is still 0 (no roll happened),
    # so every byte is walked and CRC-checked.
    log.abandon()
    t0, c0 = time.perf_counter(), time.process_time()
    log = PartitionLog.open(d, LogConfig())
    unclean, unclean_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert log.open_mode == "recovered" and log.log_end_offset == leo
    log.close()
    t0, c0 = time.perf_counter(), time.process_time()
    log = PartitionLog.open(d, LogConfig())
    clean, clean_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert log.open_mode == "clean" and log.log_end_offset == leo
    log.close()
    print(
        f"open {size / GiB:.1f} GiB of {batch_size // KiB} KiB batches ({leo} records): "
        f"clean {clean * 1000:.1f} ms (cpu {clean_cpu * 1000:.1f}), "
        f"after kill {unclean * 1000:.1f} ms (cpu {unclean_cpu * 1000:.1f})"
    )


def main() -> None:
    """Run every figure in a temporary directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="parent directory for the temp dir (default: system temp)")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="log-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        bench_raw_write(root, GiB)
        bench_append(root, "a-1k", KiB, 64 * MiB, fsync=False)
        bench_append(root, "a-1m", MiB, 1 * GiB, fsync=False)
        bench_append(root, "a-1k-fsync", KiB, 2 * MiB, fsync=True)
        bench_append(root, "a-1m-fsync", MiB, 64 * MiB, fsync=True)
        bench_read(root, "a-1k", MiB)
        bench_read(root, "a-1m", 16 * MiB)
        for name in ("a-1k", "a-1m", "a-1k-fsync", "a-1m-fsync"):
            for p in (root / name).iterdir():
                p.unlink()
        bench_open(root, MiB, GiB)
        bench_open(root, 16 * KiB, GiB)
    print(f"total bench time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
