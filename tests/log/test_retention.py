"""Time and size retention delete whole closed segments, driven by an injected clock."""

from __future__ import annotations

import pytest

from kbroker.log import OffsetOutOfRange
from tests.log.conftest import batch

HOUR = 3_600_000


def _fill(log, clock, n: int, *, step_ms: int = HOUR) -> None:
    for _ in range(n):
        log.append(batch(1, value_size=100, ts=clock.now_ms))
        clock.advance_ms(step_ms)


def test_retention_ms_deletes_segments_by_their_largest_timestamp(open_log, clock):
    log = open_log(segment_bytes=400, retention_ms=5 * HOUR)
    _fill(log, clock, 10)  # two batches per segment, one hour apart
    assert log.segment_base_offsets() == [0, 2, 4, 6, 8]
    # now = t0 + 10h; segment [0,2) newest record at t0+1h: 9h old -> deleted;
    # segment [4,6) newest at t0+5h: exactly 5h old -> kept (Kafka deletes only when older).
    assert log.enforce_retention() == 2
    assert log.segment_base_offsets() == [4, 6, 8]
    assert log.log_start_offset == 4
    with pytest.raises(OffsetOutOfRange):
        log.read(3, 100)
    assert log.read(4, 100).first_offset == 4
    assert log.enforce_retention() == 0


def test_retention_never_deletes_the_active_segment(open_log, clock):
    log = open_log(retention_ms=1)
    _fill(log, clock, 3)
    clock.advance_ms(100 * HOUR)
    assert log.enforce_retention() == 0
    assert log.log_end_offset == 3 and log.log_start_offset == 0


def test_retention_ms_minus_one_keeps_forever(open_log, clock):
    log = open_log(segment_bytes=400, retention_ms=-1)
    _fill(log, clock, 6)
    clock.advance_ms(10_000 * HOUR)
    assert log.enforce_retention() == 0


def test_retention_bytes_deletes_oldest_until_under_limit(open_log, clock):
    log = open_log(segment_bytes=400, retention_ms=-1, retention_bytes=700)
    _fill(log, clock, 10)
    sizes = [s.size for s in log._segments]
    assert len(sizes) == 5
    # Kafka deletes a segment only while the excess still covers it whole.
    excess, expected = sum(sizes) - 700, 0
    while excess - sizes[expected] >= 0:
        excess -= sizes[expected]
        expected += 1
    assert expected >= 1
    assert log.enforce_retention() == expected
    assert log.size_in_bytes > 700 and log.size_in_bytes - sizes[0] < 700
    assert log.log_start_offset == log.segment_base_offsets()[0] == 2 * expected


def test_compact_only_policy_ignores_retention(open_log, clock):
    log = open_log(segment_bytes=400, retention_ms=1, cleanup_policy="compact")
    _fill(log, clock, 6)
    assert log.enforce_retention() == 0


def test_retention_survives_restart(open_log, clock):
    log = open_log(segment_bytes=400, retention_ms=5 * HOUR)
    _fill(log, clock, 10)
    log.enforce_retention()
    log.close()
    log = open_log(segment_bytes=400, retention_ms=5 * HOUR)
    assert log.log_start_offset == 4
    assert log.offset_for_timestamp(0) == (4, clock.now_ms - 6 * HOUR)
