"""Append assigns offsets and stores batches as received; reads return whole batches."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.log import FileRegion, LogError, OffsetOutOfRange
from kbroker.wire.records import iter_records, parse_header, valid_prefix
from tests.log.conftest import batch


def test_append_assigns_consecutive_offsets_and_reports_them(open_log):
    log = open_log()
    r1 = log.append(batch(3))
    r2 = log.append(batch(2))
    assert (r1.base_offset, r1.last_offset) == (0, 2)
    assert (r2.base_offset, r2.last_offset) == (3, 4)
    assert r1.log_append_time_ms == -1
    assert r2.log_start_offset == 0
    assert log.log_end_offset == log.high_watermark == 5


def test_stored_bytes_are_the_batch_with_only_offset_and_epoch_rewritten(open_log, log_dir):
    log = open_log()
    log.append(batch(1))
    raw = batch(2, ts=5000)
    log.append(raw, leader_epoch=7)
    data = (log_dir / "00000000000000000000.log").read_bytes()
    stored = data[len(batch(1)) :]
    h = parse_header(stored)
    assert h.base_offset == 1 and h.partition_leader_epoch == 7
    # Everything after base offset (8 bytes) and the leader epoch (bytes 12..16) is untouched.
    assert stored[8:12] == raw[8:12] and stored[16:] == raw[16:]
    assert valid_prefix(data)[0] == len(data)  # CRC still valid


def test_log_append_time_stamps_batch_and_keeps_crc_valid(open_log, clock):
    log = open_log()
    res = log.append(batch(2, ts=1), log_append_time=True)
    assert res.log_append_time_ms == clock.now_ms
    data = log.read(0, 10_000).read_bytes()
    assert valid_prefix(data)[0] == len(data)
    h = parse_header(data)
    assert h.timestamp_type == 1 and h.max_timestamp == clock.now_ms
    assert [r.timestamp for r in iter_records(data)] == [clock.now_ms] * 2


def test_append_of_several_batches_at_once(open_log):
    log = open_log()
    res = log.append(batch(2) + batch(3) + batch(1))
    assert (res.base_offset, res.last_offset) == (0, 5)
    data = log.read(0, 1 << 20).read_bytes()
    assert [r.offset for r in iter_records(data, 0)] == [0, 1]
    offsets = [h.base_offset for _p, h in valid_prefix(data)[1]]
    assert offsets == [0, 2, 5]


def test_append_rejects_empty_and_torn_input(open_log):
    log = open_log()
    with pytest.raises(LogError):
        log.append(b"")
    with pytest.raises(LogError):
        log.append(batch(2)[:-3])
    assert log.log_end_offset == 0


def test_read_starts_at_the_batch_holding_the_offset(open_log):
    log = open_log()
    log.append(batch(5))
    log.append(batch(5))
    res = log.read(7, 1 << 20)
    data = res.read_bytes()
    # Kafka returns the whole batch containing the fetch offset.
    assert parse_header(data).base_offset == 5
    assert res.first_offset == 5 and res.next_offset == 10


def test_read_max_bytes_whole_batches_and_min_one(open_log):
    log = open_log()
    sizes = [len(batch(1, value_size=100))] * 4
    for _ in sizes:
        log.append(batch(1, value_size=100))
    res = log.read(0, sizes[0] * 2 + 10)
    assert res.size == sizes[0] * 2 and res.next_offset == 2
    # First batch is returned whole even if larger than max_bytes...
    res = log.read(1, 5)
    assert res.size == sizes[0] and res.next_offset == 2
    # ...unless min_one is off (KIP-74: only the first partition gets that).
    assert log.read(1, 5, min_one=False).regions == []


def test_read_max_offset_stops_before_batches_at_or_past_it(open_log):
    log = open_log()
    for _ in range(4):
        log.append(batch(2))
    res = log.read(0, 1 << 20, max_offset=4)
    assert res.next_offset == 4
    assert log.read(4, 1 << 20, max_offset=4).regions == []


def test_read_at_leo_is_empty_and_outside_range_raises(open_log):
    log = open_log()
    log.append(batch(2))
    res = log.read(2, 1000)
    assert res.regions == [] and res.next_offset == 2 and res.high_watermark == 2
    with pytest.raises(OffsetOutOfRange) as exc:
        log.read(3, 1000)
    assert (exc.value.log_start_offset, exc.value.log_end_offset) == (0, 2)
    with pytest.raises(OffsetOutOfRange):
        log.read(-1, 1000)


def test_read_spans_segments_and_regions_are_sendfile_ready(open_log):
    log = open_log(segment_bytes=300)
    blobs = []
    for i in range(10):
        b = batch(1, value_size=100, ts=i)
        blobs.append(b)
        log.append(b)
    assert len(log.segment_base_offsets()) > 2
    res = log.read(0, 1 << 20)
    assert res.next_offset == 10 and len(res.regions) == len(log.segment_base_offsets())
    region = res.regions[0]
    assert isinstance(region, FileRegion) and len(region) == region.length
    # The fd/position/length triple is what os.sendfile needs.
    assert os.pread(region.fd, region.length, region.position) == bytes(region)
    headers = valid_prefix(res.read_bytes())[1]
    assert [h.base_offset for _p, h in headers] == list(range(10))


def test_file_region_outlives_segment_deletion(open_log):
    log = open_log(segment_bytes=200, retention_bytes=0)
    for _ in range(3):
        log.append(batch(1, value_size=150))
    res = log.read(0, 1 << 20)
    expected = res.read_bytes()
    assert log.enforce_retention() == 2
    # The region still reads the deleted segment's bytes (Kafka delays deletes for this).
    assert res.read_bytes() == expected


def test_sparse_index_every_interval_in_kafka_format(open_log, log_dir):
    log = open_log(index_interval_bytes=4096)
    size = len(batch(1, value_size=1000))
    positions = []
    for i in range(40):
        positions.append(i * size)
        log.append(batch(1, value_size=1000, ts=100 + i))
    log.close()
    raw = (log_dir / "00000000000000000000.index").read_bytes()
    assert len(raw) % 8 == 0 and raw
    entries = list(struct.iter_unpack(">ii", raw))
    # Kafka's rule: an entry before a batch once > index.interval.bytes were written since the last.
    expected, since = [], 0
    for i, pos in enumerate(positions):
        if since > 4096:
            expected.append((i, pos))
            since = 0
        since += size
    assert entries == expected
    tix = list(struct.iter_unpack(">qi", (log_dir / "00000000000000000000.timeindex").read_bytes()))
    assert tix[-1] == (139, 39)  # sealed at close: max timestamp and its offset
    assert all(a[0] < b[0] for a, b in zip(tix, tix[1:], strict=False))


# fast_fsync only stubs fsync, which is the same for every example.
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    counts=st.lists(st.integers(1, 5), min_size=1, max_size=25),
    value_size=st.integers(0, 600),
    segment_bytes=st.integers(400, 5000),
    data=st.data(),
)
def test_any_offset_reads_back_the_batch_that_holds_it(
    tmp_path_factory, fast_fsync, counts, value_size, segment_bytes, data
):
    from kbroker.log import LogConfig, PartitionLog

    d = tmp_path_factory.mktemp("p") / "t-0"
    log = PartitionLog.open(d, LogConfig(segment_bytes=segment_bytes, index_interval_bytes=256))
    bases = []
    for n in counts:
        bases.append(log.append(batch(n, value_size=value_size)).base_offset)
    leo = sum(counts)
    target = data.draw(st.integers(0, leo - 1))
    for reopened in (False, True):
        res = log.read(target, 1)
        h = parse_header(res.read_bytes())
        assert h.base_offset <= target <= h.last_offset
        assert h.base_offset in bases
        all_bytes = log.read(0, 1 << 30).read_bytes()
        assert sum(h.records_count for _p, h in valid_prefix(all_bytes)[1]) == leo
        if not reopened:
            log.close()
            log = PartitionLog.open(
                d, LogConfig(segment_bytes=segment_bytes, index_interval_bytes=256)
            )
    log.close()


def test_closed_segments_hold_one_descriptor(open_log, log_dir):
    log = open_log(segment_bytes=300)
    for i in range(12):
        log.append(batch(1, value_size=100, ts=i))
    n_segments = len(log.segment_base_offsets())
    assert n_segments > 3
    fds = os.listdir("/proc/self/fd")
    targets = [
        os.readlink(f"/proc/self/fd/{fd}") for fd in fds if os.path.exists(f"/proc/self/fd/{fd}")
    ]
    mine = [t for t in targets if t.startswith(str(log_dir))]
    # One .log per segment plus the active segment's two indexes.
    assert len(mine) == n_segments + 2
    # Parked indexes reopen on demand: lookups in old segments still work.
    assert log.offset_for_timestamp(2) == (2, 2)
    assert parse_header(log.read(1, 1).read_bytes()).base_offset == 1
