"""Segment rolling, timestamp lookups, truncation and DeleteRecords."""

from __future__ import annotations

import pytest

from kbroker.log import LogConfig, OffsetOutOfRange, PartitionLog
from kbroker.wire.records import parse_header
from tests.log.conftest import batch


def test_roll_at_segment_bytes_names_segments_by_base_offset(open_log, log_dir):
    log = open_log(segment_bytes=1000)
    one = len(batch(2, value_size=100))
    for _ in range(10):
        log.append(batch(2, value_size=100))
    per_segment = 1000 // one
    assert log.segment_base_offsets() == list(range(0, 20, 2 * per_segment))
    names = sorted(p.name for p in log_dir.glob("*.log"))
    assert names[1] == f"{2 * per_segment:020d}.log"
    assert all(p.stat().st_size <= 1000 for p in log_dir.glob("*.log"))


def test_batch_larger_than_segment_bytes_still_appends(open_log):
    log = open_log(segment_bytes=100)
    log.append(batch(1, value_size=500))
    log.append(batch(1, value_size=500))
    assert log.segment_base_offsets() == [0, 1]
    assert log.log_end_offset == 2


def test_roll_by_segment_ms_uses_first_batch_timestamp(open_log):
    log = open_log(segment_ms=1000)
    log.append(batch(1, ts=10_000))
    log.append(batch(1, ts=10_900))
    assert log.segment_base_offsets() == [0]
    # Kafka measures segment.ms from the first batch's timestamp to the new batch's.
    log.append(batch(1, ts=11_001))
    assert log.segment_base_offsets() == [0, 2]


def test_roll_by_segment_ms_without_timestamps_uses_creation_time(open_log, clock):
    log = open_log(segment_ms=1000)
    log.append(batch(1, ts=-1))
    clock.advance_ms(500)
    log.append(batch(1, ts=-1))
    assert log.segment_base_offsets() == [0]
    clock.advance_ms(600)
    log.append(batch(1, ts=-1))
    assert log.segment_base_offsets() == [0, 2]


def test_roll_when_index_is_full(open_log):
    log = open_log(index_interval_bytes=1, segment_index_bytes=8 * 3)
    for _ in range(10):
        log.append(batch(1))
    # 3 index entries fit: a segment holds the unindexed first batch + 3 more.
    assert log.segment_base_offsets() == [0, 4, 8]


def test_roll_when_the_time_index_is_full(open_log):
    # 24 bytes hold 3 offset entries but only 2 time entries: growing timestamps fill
    # the time index first, and the segment rolls for it alone.
    log = open_log(index_interval_bytes=1, segment_index_bytes=24)
    for i in range(7):
        log.append(batch(1, ts=1_000 + i))
    assert log.segment_base_offsets() == [0, 3, 6]


@pytest.mark.parametrize("restart", ["clean", "crash"])
def test_a_segment_reopened_with_a_full_index_rolls_at_the_next_append(
    open_log, log_dir, restart: str
) -> None:
    # Fullness known from the index files (clean open) or from the indexes rebuilt
    # from the log (a crash that lost them), not only from entries this process appended.
    log = open_log(index_interval_bytes=1, segment_index_bytes=8 * 3)
    for _ in range(4):  # the unindexed first batch + 3 indexed ones: the index is full
        log.append(batch(1))
    assert log.segment_base_offsets() == [0]
    if restart == "clean":
        log.close()
    else:
        log.abandon()
        for suffix in (".index", ".timeindex"):
            (log_dir / f"{0:020d}{suffix}").unlink()
    log = open_log(index_interval_bytes=1, segment_index_bytes=8 * 3)
    assert log.open_mode == ("clean" if restart == "clean" else "recovered")
    log.append(batch(1))
    assert log.segment_base_offsets() == [0, 4]


def test_explicit_roll_and_empty_roll_is_noop(open_log):
    log = open_log()
    log.roll()
    assert log.segment_base_offsets() == [0]
    log.append(batch(3))
    log.roll()
    assert log.segment_base_offsets() == [0, 3]
    assert log.recovery_point == 3  # the rolled segment was flushed


def test_offset_for_timestamp_finds_first_record_at_or_after(open_log):
    log = open_log(segment_bytes=400, index_interval_bytes=50)
    # Non-monotonic timestamps, as producers may send.
    stamps = [100, 90, 300, 200, 250, 500, 400, 450, 700, 650]
    for i in range(0, 10, 2):
        log.append(batch(2, timestamps=stamps[i : i + 2], value_size=60))
    assert len(log.segment_base_offsets()) > 1
    for ts in (0, 90, 95, 100, 101, 250, 251, 301, 451, 600, 700):
        expected = next(((i, t) for i, t in enumerate(stamps) if t >= ts), None)
        assert log.offset_for_timestamp(ts) == expected, ts
    assert log.offset_for_timestamp(701) is None
    assert log.max_timestamp() == (8, 700)
    log.close()
    log = open_log(segment_bytes=400, index_interval_bytes=50)
    assert log.offset_for_timestamp(451) == (5, 500)
    assert log.max_timestamp() == (8, 700)


def test_max_timestamp_empty_log_is_none(open_log):
    log = open_log()
    assert log.max_timestamp() is None and log.offset_for_timestamp(0) is None


def test_offset_for_timestamp_respects_log_start(open_log):
    log = open_log()
    log.append(batch(4, timestamps=[10, 20, 30, 40]))
    log.delete_records_before(2)
    assert log.offset_for_timestamp(0) == (2, 30)


def test_truncate_to_mid_log_and_append_continues(open_log):
    log = open_log(segment_bytes=300)
    for i in range(10):
        log.append(batch(1, value_size=100, ts=i))
    log.truncate_to(4)
    assert log.log_end_offset == 4
    assert max(log.segment_base_offsets()) <= 4
    with pytest.raises(OffsetOutOfRange):
        log.read(5, 100)
    assert log.max_timestamp() == (3, 3)  # timestamps of removed batches are forgotten
    assert log.append(batch(1, ts=2)).base_offset == 4
    log.close()
    log = open_log(segment_bytes=300)
    assert log.log_end_offset == 5


def test_truncate_to_removes_whole_batch_holding_offset(open_log):
    log = open_log()
    log.append(batch(3))
    log.append(batch(3))
    log.truncate_to(4)
    # Kafka truncates at a batch boundary: the batch with offsets 3..5 goes entirely.
    assert log.log_end_offset == 3
    log.truncate_to(10)  # beyond the end: nothing happens
    assert log.log_end_offset == 3


def test_truncate_fully(open_log):
    log = open_log()
    log.append(batch(3))
    log.truncate_to(0)
    assert log.log_end_offset == 0 and log.log_start_offset == 0
    assert log.append(batch(1)).base_offset == 0


def test_delete_records_moves_log_start_and_drops_whole_segments(open_log, log_dir, clock):
    log = open_log(segment_bytes=400)
    for _ in range(10):
        log.append(batch(1, value_size=100))
    bases = log.segment_base_offsets()
    assert bases[:3] == [0, 2, 4]
    assert log.delete_records_before(bases[2] + 1) == bases[2] + 1
    assert log.log_start_offset == bases[2] + 1
    assert log.segment_base_offsets()[0] == bases[2]
    with pytest.raises(OffsetOutOfRange) as exc:
        log.read(bases[2], 100)
    assert exc.value.log_start_offset == bases[2] + 1
    # Reads at the new start return the batch holding it.
    assert parse_header(log.read(bases[2] + 1, 1).read_bytes()).base_offset == bases[2] + 1
    # Going backwards is a no-op; beyond the high watermark is out of range.
    assert log.delete_records_before(1) == bases[2] + 1
    with pytest.raises(OffsetOutOfRange):
        log.delete_records_before(11)
    log.abandon()
    log = PartitionLog.open(log_dir, LogConfig(segment_bytes=400), clock=clock)
    assert log.log_start_offset == bases[2] + 1  # checkpointed
    log.close()


def test_delete_records_to_high_watermark_never_deletes_active_segment(open_log):
    log = open_log()
    log.append(batch(5))
    assert log.delete_records_before(-1) == 5
    assert log.segment_base_offsets() == [0]
    assert log.read(5, 100).regions == []
    assert log.append(batch(1)).log_start_offset == 5
