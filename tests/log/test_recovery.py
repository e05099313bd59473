"""Crash recovery: whatever the damage, the log keeps exactly its valid prefix."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from kbroker.log import LogConfig, PartitionLog
from kbroker.log.checkpoint import CLEAN_SHUTDOWN_FILE
from kbroker.wire.records import parse_header, valid_prefix
from tests.log.conftest import batch


def _build(d: Path, n_batches: int, **config: object) -> list[tuple[int, int, int]]:
    """Write a log; returns (base offset, next offset, size) per batch; left unclean (crash)."""
    log = PartitionLog.open(d, LogConfig(**config))  # type: ignore[arg-type]
    out = []
    for i in range(n_batches):
        raw = batch(1 + i % 3, value_size=30 + (i * 7) % 50, ts=1000 + i)
        res = log.append(raw)
        out.append((res.base_offset, res.last_offset + 1, len(raw)))
    log.abandon()
    return out


def _write(d: Path, *counts: int, clean: bool) -> None:
    """Write a log of one batch per count of records, then stop it cleanly or crash."""
    log = PartitionLog.open(d, LogConfig())
    for n in counts:
        log.append(batch(n))
    if clean:
        log.close()
    else:
        log.abandon()


def _segments(d: Path) -> list[Path]:
    return sorted(d.glob("*.log"))


def _check_prefix(
    d: Path, expected_leo: int, max_segment: int | None = None, **config: object
) -> None:
    log = PartitionLog.open(d, LogConfig(**config))  # type: ignore[arg-type]
    try:
        assert log.open_mode == "recovered"
        if max_segment is not None:
            # Segments after the damaged one are gone.
            assert max(log.segment_base_offsets()) <= max_segment
        assert log.log_end_offset == expected_leo
        data = log.read(log.log_start_offset, 1 << 30).read_bytes() if expected_leo else b""
        end, headers = valid_prefix(data)
        assert end == len(data)
        if headers:
            assert headers[-1][1].next_offset == expected_leo
        # The next append continues right after the valid prefix.
        res = log.append(batch(2))
        assert res.base_offset == expected_leo
        assert log.read(expected_leo, 1 << 20).first_offset == expected_leo
    finally:
        log.close()
    # ...and that survives a clean restart too.
    log = PartitionLog.open(d, LogConfig(**config))  # type: ignore[arg-type]
    assert log.open_mode == "clean" and log.log_end_offset == expected_leo + 2
    log.close()


def test_cut_at_every_byte_of_the_last_batch(tmp_path, fast_fsync):
    src = tmp_path / "src" / "t-0"
    batches = _build(src, 6)
    seg = _segments(src)[-1]
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    total = len(files[seg.name])
    last_base, _last_next, last_size = batches[-1]
    for cut in range(total - last_size, total):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        for name, data in files.items():
            (d / name).write_bytes(data[:cut] if name == seg.name else data)
        _check_prefix(d, last_base)
        assert (d / seg.name).stat().st_size > 0


def test_random_cuts_in_earlier_batches_drop_later_segments(tmp_path, fast_fsync):
    rng = random.Random(7)
    src = tmp_path / "src" / "t-0"
    batches = _build(src, 40, segment_bytes=1000, index_interval_bytes=200)
    segs = _segments(src)
    assert len(segs) >= 4
    # Positions of every batch in every segment, from the files themselves.
    layout = []  # (segment path, pos, size, base offset)
    for seg in segs:
        for pos, h in valid_prefix(seg.read_bytes())[1]:
            layout.append((seg, pos, h.size, h.base_offset))
    assert len(layout) == len(batches)
    for trial in range(12):
        seg, pos, size, base = layout[rng.randrange(len(layout) - 1)]
        d = tmp_path / f"t{trial}" / "t-0"
        shutil.copytree(src, d)
        os.truncate(d / seg.name, pos + rng.randrange(size))
        # The recovery point covers nothing: every segment is walked.
        (d / "recovery-point-offset-checkpoint").unlink(missing_ok=True)
        _check_prefix(d, base, int(seg.stem), segment_bytes=1000, index_interval_bytes=200)
        shutil.rmtree(d.parent)


def test_corrupted_byte_inside_a_batch_truncates_there(tmp_path):
    src = tmp_path / "t-0"
    batches = _build(src, 8)
    seg = _segments(src)[0]
    pos = sum(b[2] for b in batches[:5])
    data = bytearray(seg.read_bytes())
    data[pos + 40] ^= 0xFF  # inside the CRC-covered part of batch 5
    seg.write_bytes(bytes(data))
    _check_prefix(src, batches[5][0])


@pytest.mark.parametrize("garbage", [b"\x00" * 100, os.urandom(300), b"\xff" * 7])
def test_trailing_garbage_is_cut(tmp_path, garbage):
    src = tmp_path / "t-0"
    batches = _build(src, 5)
    seg = _segments(src)[-1]
    with open(seg, "ab") as f:
        f.write(garbage)
    _check_prefix(src, batches[-1][1])
    assert seg.stat().st_size == sum(b[2] for b in batches) + len(batch(2))


@pytest.mark.parametrize("damage", ["delete", "zero", "garbage", "truncate"])
@pytest.mark.parametrize("clean", [True, False])
def test_damaged_indexes_are_rebuilt(tmp_path, damage, clean):
    d = tmp_path / "t-0"
    cfg = {"segment_bytes": 3000, "index_interval_bytes": 150}
    log = PartitionLog.open(d, LogConfig(**cfg))  # type: ignore[arg-type]
    for i in range(60):
        log.append(batch(2, value_size=40, ts=10_000 + i * 10))
    expected = {ts: log.offset_for_timestamp(ts) for ts in (10_000, 10_255, 10_590)}
    assert log.max_timestamp() == (119, 10_591)
    if clean:
        log.close()
    else:
        log.abandon()
    idx = sorted(d.glob("*.index")) + sorted(d.glob("*.timeindex"))
    assert len(idx) >= 4
    for p in idx:
        if damage == "delete":
            p.unlink()
        elif damage == "zero":
            p.write_bytes(b"\x00" * max(p.stat().st_size, 24))
        elif damage == "garbage":
            p.write_bytes(os.urandom(max(p.stat().st_size, 24)))
        else:
            os.truncate(p, max(p.stat().st_size - 5, 0))
    log = PartitionLog.open(d, LogConfig(**cfg))  # type: ignore[arg-type]
    assert log.log_end_offset == 120
    assert {ts: log.offset_for_timestamp(ts) for ts in expected} == expected
    assert log.max_timestamp() == (119, 10_591)
    for off in (0, 37, 64, 119):
        h = parse_header(log.read(off, 1).read_bytes())
        assert h.base_offset <= off <= h.last_offset
    log.close()


def test_clean_open_trusts_indexes_and_removes_marker_while_open(tmp_path):
    d = tmp_path / "t-0"
    _write(d, 3, clean=True)
    assert (d / CLEAN_SHUTDOWN_FILE).exists()
    log = PartitionLog.open(d, LogConfig())
    assert log.open_mode == "clean" and log.log_end_offset == 3
    assert not (d / CLEAN_SHUTDOWN_FILE).exists()
    # A crash now must not be mistaken for a clean stop: garbage gets cut.
    log.abandon()
    with open(d / "00000000000000000000.log", "ab") as f:
        f.write(b"\x00\x01" * 50)
    log = PartitionLog.open(d, LogConfig())
    assert log.open_mode == "recovered" and log.log_end_offset == 3
    assert log.recovered_bytes_truncated == 100
    log.close()


def test_clean_marker_with_torn_tail_still_recovers(tmp_path):
    d = tmp_path / "t-0"
    _write(d, 3, 3, clean=True)
    seg = d / "00000000000000000000.log"
    os.truncate(seg, seg.stat().st_size - 1)
    log = PartitionLog.open(d, LogConfig())
    assert log.log_end_offset == 3
    assert log.append(batch(1)).base_offset == 3
    log.close()


def test_recovery_point_limits_the_walk_to_later_segments(tmp_path):
    d = tmp_path / "t-0"
    log = PartitionLog.open(d, LogConfig(segment_bytes=500))
    for _ in range(20):
        log.append(batch(1, value_size=100))
    rp = log.recovery_point
    first_seg_bytes = (d / "00000000000000000000.log").read_bytes()
    log.abandon()
    assert rp > 0  # rolling flushed the closed segments
    # Damage below the recovery point is not looked at (those bytes were fsynced)...
    seg0 = d / "00000000000000000000.log"
    data = bytearray(first_seg_bytes)
    data[-1] ^= 0xFF
    seg0.write_bytes(bytes(data))
    log = PartitionLog.open(d, LogConfig(segment_bytes=500))
    assert log.log_end_offset == 20
    log.close()


def test_leftover_temp_files_are_removed(tmp_path):
    d = tmp_path / "t-0"
    _write(d, 1, clean=False)
    for name in (
        "00000000000000000000.log.cleaned",
        "recovery-point-offset-checkpoint.tmp",
        "00000000000000000099.index",
    ):
        (d / name).write_bytes(b"junk")
    log = PartitionLog.open(d, LogConfig())
    assert (
        sorted(p.name for p in d.iterdir() if "junk" == p.read_bytes().decode(errors="ignore"))
        == []
    )
    assert log.log_end_offset == 1
    log.close()


@pytest.mark.parametrize("chunk", [61, 100, 333, 4096])
def test_chunked_walk_matches_valid_prefix(tmp_path, monkeypatch, chunk):
    import kbroker.log.segment as segment

    monkeypatch.setattr(segment, "_WALK_CHUNK", chunk)
    rng = random.Random(chunk)
    blobs = [batch(1 + i % 4, value_size=rng.randrange(0, 400)) for i in range(12)]
    good = b"".join(blobs)
    p = tmp_path / "seg"
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 1
    for data in (
        good,
        bytes(flipped),
        good[:-1],
        good + os.urandom(200),
        good[:500] + b"\x00" * 300,
        b"",
        good[:30],
    ):
        p.write_bytes(data)
        fd = os.open(p, os.O_RDONLY)
        try:
            end, spans = segment.walk_valid_batches(fd, len(data))
            w_end, headers = valid_prefix(data)
            # The log's fast scanner accepts exactly what wire.records.valid_prefix accepts.
            assert end == w_end
            assert [(s.pos, s.size, s.last_offset, s.max_timestamp) for s in spans] == [
                (p, h.size, h.last_offset, h.max_timestamp) for p, h in headers
            ]
        finally:
            os.close(fd)


def test_index_entries_reach_the_file_at_flush_and_a_crash_before_rebuilds_them(tmp_path):
    d = tmp_path / "t-0"
    cfg = {"index_interval_bytes": 100}
    log = PartitionLog.open(d, LogConfig(**cfg))  # type: ignore[arg-type]
    for i in range(40):
        log.append(batch(2, value_size=60, ts=5_000 + i))
    index = d / "00000000000000000000.index"
    timeindex = d / "00000000000000000000.timeindex"
    expected = {ts: log.offset_for_timestamp(ts) for ts in (5_000, 5_013, 5_039)}
    reads = {off: parse_header(log.read(off, 1).read_bytes()).base_offset for off in (0, 41, 79)}
    log.flush()  # as log.flush.interval.* or a roll would
    entries = index.stat().st_size // 8
    assert entries >= 30 and timeindex.stat().st_size // 12 >= 30
    for i in range(40):
        log.append(batch(2, value_size=60, ts=6_000 + i))
    later = log.offset_for_timestamp(6_020)
    log.abandon()  # crash: entries appended after the flush may not be in the files
    log = PartitionLog.open(d, LogConfig(**cfg))  # type: ignore[arg-type]
    assert log.open_mode == "recovered" and log.log_end_offset == 160
    assert {ts: log.offset_for_timestamp(ts) for ts in expected} == expected
    assert log.offset_for_timestamp(6_020) == later
    assert {
        off: parse_header(log.read(off, 1).read_bytes()).base_offset for off in (0, 41, 79)
    } == reads
    log.close()
    assert index.stat().st_size // 8 >= 2 * entries  # rebuilt and written at close


def test_index_files_written_in_steps_are_the_ones_a_rebuild_writes(tmp_path):
    # Entries reach the files in steps (a flush, then a close), each step writing those
    # appended since the last: the files must hold every entry once, in place.
    d = tmp_path / "t-0"
    cfg = LogConfig(index_interval_bytes=100)
    log = PartitionLog.open(d, cfg)
    for i in range(30):
        log.append(batch(2, value_size=60, ts=5_000 + i))
    log.flush()
    for i in range(30):
        log.append(batch(2, value_size=60, ts=6_000 + i))
    log.close()
    names = ("00000000000000000000.index", "00000000000000000000.timeindex")
    written = {name: (d / name).read_bytes() for name in names}
    assert len(written[names[0]]) // 8 >= 50
    for name in names:
        (d / name).unlink()
    log = PartitionLog.open(d, cfg)  # indexes missing: rebuilt from the log
    log.close()
    assert {name: (d / name).read_bytes() for name in names} == written
