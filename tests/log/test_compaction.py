"""Compaction keeps the latest record per key without changing any offset."""

from __future__ import annotations

import os

import pytest

from kbroker.log import LogConfig, PartitionLog
from kbroker.wire.records import build_control_batch, parse_header
from tests.log.conftest import batch
from tests.log.helpers import records_and_headers

DAY = 86_400_000


def _kv_log(open_log, clock, **cfg):
    log = open_log(cleanup_policy="compact", segment_bytes=300, **cfg)
    # offsets 0..8: keys a,b,c,a,b,a,c,d,x ; x sits in the active segment
    for i, k in enumerate([b"a", b"b", b"c", b"a", b"b", b"a", b"c", b"d", b"x"]):
        log.append(batch(1, key=k, value_size=60, ts=clock.now_ms + i))
    return log


def test_latest_record_per_key_survives_with_original_offsets(open_log, clock):
    log = _kv_log(open_log, clock)
    active_base = log.segment_base_offsets()[-1]
    before, _ = records_and_headers(log)
    log.compact()
    after, _ = records_and_headers(log)
    kept = [(o, k) for o, k, _v in after]
    latest = {}
    for o, k, _v in before:
        if o < active_base:
            latest[k] = o
    expected = sorted(set(latest.values()) | {o for o, _k, _v in before if o >= active_base})
    assert [o for o, _k in kept] == expected
    # Values untouched, offsets untouched.
    assert dict((o, v) for o, _k, v in after) == {o: v for o, _k, v in before if o in expected}
    assert log.log_end_offset == 9 and log.log_start_offset == 0
    # Reads of removed offsets land on the next surviving batch.
    assert log.read(0, 1).first_offset == expected[0]


def test_active_segment_is_never_cleaned(open_log, clock):
    log = open_log(cleanup_policy="compact")
    for _ in range(3):
        log.append(batch(1, key=b"same"))
    log.compact()
    assert len(records_and_headers(log)[0]) == 3


def test_delete_policy_does_not_compact(open_log, clock):
    log = _kv_log(open_log, clock, retention_ms=-1)
    log.config.cleanup_policy = "delete"
    before = records_and_headers(log)[0]
    log.compact()
    assert records_and_headers(log)[0] == before


def test_tombstones_dropped_only_after_delete_retention(open_log, clock):
    log = open_log(cleanup_policy="compact", segment_bytes=200, delete_retention_ms=DAY)
    log.append(batch(1, key=b"k", value_size=50, ts=clock.now_ms))
    log.append(batch(1, keys=[b"k"], values=[None], ts=clock.now_ms))  # tombstone
    log.append(batch(1, key=b"other", value_size=150, ts=clock.now_ms))
    log.append(batch(1, key=b"active", value_size=150, ts=clock.now_ms))
    log.compact()
    recs = records_and_headers(log)[0]
    assert (1, b"k", None) in recs and all(o != 0 for o, _k, _v in recs)
    clock.advance_ms(DAY + 1)
    log.compact()
    assert all(k != b"k" for _o, k, _v in records_and_headers(log)[0])


def test_keyless_records_are_dropped(open_log, clock):
    log = open_log(cleanup_policy="compact", segment_bytes=200)
    log.append(batch(2, keys=[None, b"a"], value_size=50))
    log.append(batch(1, key=b"b", value_size=150))
    log.compact()
    assert [(o, k) for o, k, _v in records_and_headers(log)[0]] == [(1, b"a"), (2, b"b")]


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_compressed_batches_are_recompressed_with_their_codec(open_log, clock, codec):
    log = open_log(cleanup_policy="compact", segment_bytes=300)
    log.append(batch(4, keys=[b"a", b"b", b"a", b"c"], value_size=30, compression=codec))
    log.append(batch(1, key=b"z", value_size=300))
    log.compact()
    recs, headers = records_and_headers(log)
    assert [(o, k) for o, k, _v in recs] == [(1, b"b"), (2, b"a"), (3, b"c"), (4, b"z")]
    h = headers[0]
    assert h.compression == codec and h.base_offset == 0
    assert h.last_offset_delta == 3 and h.records_count == 3  # last offset kept (producer state)


def test_control_batches_are_kept(open_log, clock):
    log = open_log(cleanup_policy="compact", segment_bytes=300)
    log.append(
        batch(1, key=b"a", producer_id=5, producer_epoch=0, base_sequence=0, transactional=True)
    )
    log.append(
        build_control_batch(
            commit=True, producer_id=5, producer_epoch=0, coordinator_epoch=1, timestamp=1
        )
    )
    log.append(batch(1, key=b"a", value_size=300))
    log.append(batch(1, key=b"z", value_size=300))
    log.compact()
    _recs, headers = records_and_headers(log)
    assert any(h.is_control and h.base_offset == 1 for h in headers)


def test_producers_last_batch_stays_as_empty_batch(open_log, clock):
    log = open_log(cleanup_policy="compact", segment_bytes=300)
    log.append(batch(2, key=b"a", value_size=40, producer_id=9, producer_epoch=1, base_sequence=0))
    log.append(batch(1, key=b"a", value_size=40))  # supersedes the producer's records
    log.append(batch(1, key=b"z", value_size=300))
    log.compact()
    _recs, headers = records_and_headers(log)
    h = headers[0]
    assert (h.base_offset, h.records_count, h.last_offset_delta) == (0, 0, 1)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (9, 1, 0)
    # Without producer id the emptied batch simply disappears.
    assert all(h.producer_id == 9 or h.records_count for h in headers)


def test_min_compaction_lag_holds_back_young_segments(open_log, clock):
    log = _kv_log(open_log, clock, min_compaction_lag_ms=DAY)
    before = records_and_headers(log)[0]
    log.compact()
    assert records_and_headers(log)[0] == before
    clock.advance_ms(DAY + 100)
    log.compact()
    assert len(records_and_headers(log)[0]) < len(before)


def test_compacted_log_reopens_clean_and_after_crash(open_log, clock, log_dir):
    log = _kv_log(open_log, clock)
    log.compact()
    after = records_and_headers(log)[0]
    ts = log.offset_for_timestamp(0)
    log.close()
    log = open_log(cleanup_policy="compact", segment_bytes=300)
    assert log.open_mode == "clean" and records_and_headers(log)[0] == after
    assert log.offset_for_timestamp(0) == ts
    log.abandon()
    # A crash between the log replace and the new indexes leaves no indexes: rebuilt.
    for p in log_dir.glob("*.index"):
        p.unlink()
    (log_dir / "00000000000000000000.log.cleaned").write_bytes(os.urandom(50))
    log = PartitionLog.open(
        log_dir, LogConfig(cleanup_policy="compact", segment_bytes=300), clock=clock
    )
    assert records_and_headers(log)[0] == after
    assert not (log_dir / "00000000000000000000.log.cleaned").exists()
    assert log.append(batch(1)).base_offset == 9
    assert parse_header(log.read(9, 1).read_bytes()).base_offset == 9
    log.close()


def test_fetch_in_flight_survives_segment_rewrite(open_log, clock):
    log = _kv_log(open_log, clock)
    res = log.read(0, 1 << 20)
    before = res.read_bytes()
    log.compact()
    # The region's descriptor still points at the replaced file's bytes.
    assert res.read_bytes() == before


def test_update_config_applies_to_next_appends(open_log):
    log = open_log(cleanup_policy="compact")
    for _ in range(3):
        log.append(batch(1, key=b"k", value_size=100))
    from kbroker.log import LogConfig

    log.update_config(LogConfig(cleanup_policy="compact", segment_bytes=200))
    log.append(batch(1, key=b"k", value_size=100))
    assert log.segment_base_offsets() == [0, 3]
    log.compact()
    assert [o for o, _k, _v in records_and_headers(log)[0]] == [2, 3]
