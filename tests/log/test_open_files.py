"""The bounded cache of open segment files: many partitions, few descriptors, nothing lost."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbroker.log import LogConfig, PartitionLog
from kbroker.log.filecache import OPEN_FILES, OpenFileCache, open_files
from kbroker.log.index import OFFSET_ENTRY
from tests.log.conftest import batch

BOUND = 8


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def small_cache() -> Iterator[None]:
    saved = OPEN_FILES.capacity
    OPEN_FILES.set_capacity(BOUND)
    try:
        yield
    finally:
        OPEN_FILES.set_capacity(saved)


def _batches(data: bytes) -> list[bytes]:
    """Each batch from its magic byte on: the log stamps base offset and leader epoch."""
    out, pos = [], 0
    while pos < len(data):
        size = 12 + int.from_bytes(data[pos + 8 : pos + 12], "big")
        out.append(data[pos + 16 : pos + size])
        pos += size
    return out


def _same(data: bytes, raws: list[bytes]) -> bool:
    return _batches(data) == [raw[16:] for raw in raws]


def _config() -> LogConfig:
    # Small segments and a dense index: rolls and index entries on every few appends.
    return LogConfig(segment_bytes=1024, index_interval_bytes=100)


def test_many_partitions_never_hold_more_descriptors_than_the_bound(
    tmp_path: Path, small_cache: None, fast_fsync: None
) -> None:
    rng = random.Random(18)
    dirs = [tmp_path / f"t-{i}" for i in range(60)]
    baseline = _open_fds()
    worst_cache = worst_fds = 0
    expected: dict[int, list[bytes]] = {i: [] for i in range(len(dirs))}

    def check() -> None:
        nonlocal worst_cache, worst_fds
        worst_cache = max(worst_cache, len(OPEN_FILES))
        worst_fds = max(worst_fds, _open_fds() - baseline)

    logs = [PartitionLog.open(d, _config()) for d in dirs]
    check()
    for _round in range(3):
        for _ in range(400):
            i = rng.randrange(len(logs))
            raw = batch(1 + rng.randrange(3), value_size=20 + rng.randrange(80))
            logs[i].append(raw)
            expected[i].append(raw)
            check()
            j = rng.randrange(len(logs))
            if expected[j]:
                assert _same(logs[j].read(0, 1 << 30).read_bytes(), expected[j])
                check()
        # Crash every partition, then recover them all (indexes rebuilt, tails walked).
        for log in logs:
            log.abandon()
        logs = [PartitionLog.open(d, _config()) for d in dirs]
        check()
    assert sum(len(log.segment_base_offsets()) for log in logs) > 2 * len(logs)  # rolled
    for i, log in enumerate(logs):
        data = log.read(0, 1 << 30).read_bytes() if expected[i] else b""
        assert _same(data, expected[i])
        check()
        log.close()
    assert worst_cache <= BOUND
    # Every descriptor a partition holds between operations is in the cache.
    assert worst_fds <= BOUND
    assert OPEN_FILES.evictions > 0


def test_a_clean_restart_finds_index_entries_written_before_their_file_was_closed(
    tmp_path: Path, small_cache: None, fast_fsync: None
) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog.open(d, _config())
    for _ in range(10):
        log.append(batch(1, value_size=50))
    # Index entries are deferred until flush: the cache closing the file must write them.
    others = [PartitionLog.open(tmp_path / f"o-{i}", _config()) for i in range(BOUND)]
    index = d / f"{0:020d}.index"
    assert index.stat().st_size >= 3 * OFFSET_ENTRY
    log.close()
    for other in others:
        other.close()
    reopened = PartitionLog.open(d, _config())
    assert reopened.open_mode == "clean" and reopened.log_end_offset == 10
    assert reopened.read(7, 1 << 20).first_offset == 7
    reopened.close()


def test_a_region_being_sent_keeps_its_file_when_the_cache_closes_it(
    tmp_path: Path, small_cache: None
) -> None:
    log = PartitionLog.open(tmp_path / "t-0", _config())
    raw = batch(3)
    log.append(raw)
    result = log.read(0, 1 << 20)
    others = [PartitionLog.open(tmp_path / f"o-{i}", _config()) for i in range(BOUND)]
    for other in others:
        other.append(batch(1))
    # The segment's .log was closed by the cache, not the region's descriptor.
    assert len(OPEN_FILES) <= BOUND
    assert _same(result.read_bytes(), [raw])
    assert _same(log.read(0, 1 << 20).read_bytes(), [raw])  # and the segment reopens on use
    for other in others:
        other.close()
    log.close()


def test_fsync_after_the_cache_closed_an_index_reaches_the_file(
    tmp_path: Path, small_cache: None, fsynced: list[str]
) -> None:
    log = PartitionLog.open(tmp_path / "t-0", _config())
    for _ in range(10):
        log.append(batch(1, value_size=50))
    others = [PartitionLog.open(tmp_path / f"o-{i}", _config()) for i in range(BOUND)]
    fsynced.clear()  # only what follows
    log.flush()
    assert any(p.endswith(".index") and "t-0" in p for p in fsynced)
    assert any(p.endswith(".log") and "t-0" in p for p in fsynced)
    for other in others:
        other.close()
    log.close()


def test_opens_in_one_thread_never_close_the_files_of_a_log_run_by_another(
    tmp_path: Path, small_cache: None
) -> None:
    # A broker embedded in its own thread: closing its descriptor between two of its
    # syscalls would let the number be reused under it.
    found: dict[str, object] = {}

    def in_thread() -> None:
        log = PartitionLog.open(tmp_path / "t-0", _config())
        log.append(batch(1))
        found["cache"], found["log"] = open_files(), log

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    cache = found["cache"]
    assert isinstance(cache, OpenFileCache) and cache is not OPEN_FILES
    held = len(cache)
    assert held == 3  # .log, .index, .timeindex
    others = [PartitionLog.open(tmp_path / f"o-{i}", _config()) for i in range(2 * BOUND)]
    assert len(cache) == held and len(OPEN_FILES) <= BOUND
    for other in others:
        other.close()
    log = found["log"]
    assert isinstance(log, PartitionLog)
    log.close()
    assert len(cache) == 0
