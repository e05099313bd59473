"""Blocks reserved ahead of large appends: the log's bytes and end unchanged, no space kept
once a segment is sealed, and a crash with a reservation recovers the same log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbroker.log import segment
from kbroker.log.config import LogConfig
from kbroker.log.partition import PartitionLog
from kbroker.wire.records import Record, build_batch, parse_header, validate_batch

_BIG = 200_000  # bytes of values per batch: an append large enough to reserve ahead


def _big_batch(i: int) -> bytes:
    return build_batch([Record(value=bytes([65 + i % 26]) * _BIG, timestamp=1_000 + i)])


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def _append(log: PartitionLog, data: bytes, *, given_header: bool) -> None:
    view = memoryview(data)
    log.append(view, leader_epoch=1, header=parse_header(view, 0) if given_header else None)


@pytest.mark.parametrize("given_header", [True, False], ids=["produce", "general"])
def test_a_large_append_reserves_blocks_past_the_end_without_moving_it(
    tmp_path: Path, given_header: bool
) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    batches = [_big_batch(i) for i in range(4)]
    for data in batches:
        _append(log, data, given_header=given_header)
    path = log._active.log_path
    size = sum(len(b) for b in batches)
    assert os.path.getsize(path) == size == log.size_in_bytes
    assert _allocated(path) >= size + len(batches[0])  # blocks held for the next appends
    data = log.read(0, 1 << 24).read_bytes()
    pos = 0
    for i, original in enumerate(batches):
        h = validate_batch(data, pos)
        assert h.base_offset == i and data[pos + 61 : pos + h.size] == original[61:]
        pos += h.size
    assert pos == len(data)
    log.close()
    # Closing frees what was reserved: only the data's blocks stay allocated.
    assert os.path.getsize(path) == size
    assert _allocated(path) < size + 64 * 1024


def test_a_roll_frees_the_reservation_of_the_segment_it_closes(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=500_000))
    for i in range(3):  # the third rolls: two in the closed segment, room left for a third
        _append(log, _big_batch(i), given_header=True)
    bases = log.segment_base_offsets()
    assert len(bases) == 2
    closed = tmp_path / "t-0" / f"{bases[0]:020d}.log"
    assert _allocated(closed) < os.path.getsize(closed) + 64 * 1024
    log.close()


def test_small_appends_reserve_nothing(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    small = build_batch([Record(value=b"v" * 100, timestamp=1_000)])
    for _ in range(50):
        _append(log, small, given_header=True)
    path = log._active.log_path
    assert _allocated(path) < os.path.getsize(path) + 64 * 1024
    log.close()


def test_a_crash_with_blocks_reserved_recovers_the_same_log_and_frees_them(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, LogConfig())
    _append(log, _big_batch(0), given_header=True)
    before = log.read(0, 1 << 24).read_bytes()
    path = log._active.log_path
    assert _allocated(path) > len(before) + 64 * 1024
    log.abandon()  # crash: no seal, the reservation stays on disk
    log = PartitionLog.open(directory, LogConfig())
    assert log.open_mode == "recovered" and log.recovered_bytes_truncated == 0
    assert log.log_end_offset == 1 and log.read(0, 1 << 24).read_bytes() == before
    # Appends go on at the end of the data, into the blocks left reserved.
    _append(log, _big_batch(1), given_header=True)
    assert log.log_end_offset == 2
    assert os.path.getsize(path) == log.size_in_bytes
    log.close()
    assert _allocated(path) < os.path.getsize(path) + 64 * 1024
    reopened = PartitionLog.open(directory, LogConfig())
    assert reopened.open_mode == "clean" and reopened.log_end_offset == 2
    reopened.close()


def test_without_fallocate_appends_are_written_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A C library without fallocate (or a file system refusing it): nothing reserved,
    # nothing else changes.
    monkeypatch.setattr(segment, "_fallocate", None)
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    batches = [_big_batch(i) for i in range(3)]
    for data in batches:
        _append(log, data, given_header=True)
    path = log._active.log_path
    assert os.path.getsize(path) == sum(len(b) for b in batches)
    assert log.log_end_offset == 3
    log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert reopened.log_end_offset == 3 and reopened.open_mode == "clean"
    reopened.close()


def test_reservations_of_all_segments_stay_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many partitions taking large appends: what they hold past their ends together stays
    # under the budget (past it, appends allocate their own blocks), and closing the logs
    # gives it all back.
    if segment._fallocate is None:
        pytest.skip("no fallocate(2) in this C library: nothing is ever reserved")
    held_before = segment._reserve_held
    budget = 1024 * 1024
    monkeypatch.setattr(segment, "RESERVE_BUDGET", held_before + budget)
    logs = [PartitionLog.open(tmp_path / f"t-{i}", LogConfig()) for i in range(6)]
    for round_ in range(3):
        for log in logs:
            _append(log, _big_batch(round_), given_header=True)
    past_ends = 0
    for log in logs:
        path = log._active.log_path
        assert os.path.getsize(path) == log.size_in_bytes  # every append landed whole
        past_ends += max(0, _allocated(path) - os.path.getsize(path))
    # One file system block of slack per file for a partly filled last block.
    assert past_ends <= budget + len(logs) * 64 * 1024
    assert segment._reserve_held - held_before <= budget
    assert segment._reserve_held > held_before  # reservations were made, up to the budget
    for log in logs:
        log.close()
    assert segment._reserve_held == held_before
