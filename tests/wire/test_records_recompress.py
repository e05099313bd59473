"""recompress_batch: a batch rebuilt with another codec keeps every field a consumer sees."""

from __future__ import annotations

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.wire.errors import InvalidRecordBatch
from kbroker.wire.records import (
    ATTR_CONTROL,
    ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL,
    Record,
    build_batch,
    build_control_batch,
    check_records,
    iter_records,
    parse_header,
    recompress_batch,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_batch,
)

CODECS = [0, 1, 2, 3, 4]
CODEC_IDS = ["none", "gzip", "snappy", "lz4", "zstd"]


def sample_records() -> list[Record]:
    """Keys, null keys/values, headers (null and duplicate), timestamps out of order."""
    return [
        Record(
            key=b"k0",
            value=b"v0" * 50,
            timestamp=1_700_000_000_005,
            headers=[("trace", b"abc"), ("trace", b"dup"), ("nil", None)],
        ),
        Record(key=None, value=b"no key", timestamp=1_700_000_000_001),
        Record(key=b"tomb", value=None, timestamp=1_700_000_000_009, headers=[("", b"")]),
        Record(key=b"k3", value=b"", timestamp=1_700_000_000_002),
    ]


def visible(buf: bytes) -> list[tuple[int, int, bytes | None, bytes | None, list, int, int]]:
    """What a consumer reads of each record."""
    return [
        (r.offset, r.timestamp, r.key, r.value, r.headers, r.offset_delta, r.timestamp_delta)
        for r in iter_records(buf)
    ]


def header_fields(buf: bytes) -> tuple:
    """Every header field recompression must keep (all but length, CRC and codec bits)."""
    h = parse_header(buf)
    return (
        h.base_offset,
        h.partition_leader_epoch,
        h.attributes & ~0x07,
        h.last_offset_delta,
        h.base_timestamp,
        h.max_timestamp,
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.records_count,
    )


@pytest.mark.parametrize("target", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize("source", CODECS, ids=CODEC_IDS)
def test_every_codec_pair_keeps_records_and_header(source: int, target: int) -> None:
    original = build_batch(
        sample_records(),
        compression=source,
        producer_id=77,
        producer_epoch=3,
        base_sequence=120,
        transactional=True,
    )
    out = recompress_batch(original, 0, target)
    assert parse_header(out).compression == target
    validate_batch(out)
    check_records(out)
    assert header_fields(out) == header_fields(original)
    assert parse_header(out).is_transactional
    assert visible(out) == visible(original)


def test_same_codec_is_returned_unchanged() -> None:
    original = build_batch(sample_records(), compression=3)
    assert recompress_batch(original, 0, 3) == original


def test_control_batch_is_never_recompressed() -> None:
    marker = build_control_batch(
        commit=True, producer_id=5, producer_epoch=1, coordinator_epoch=2, timestamp=1_000
    )
    out = recompress_batch(marker, 0, 4)
    assert out == marker
    assert parse_header(out).attributes & (ATTR_CONTROL | ATTR_TRANSACTIONAL) == (
        ATTR_CONTROL | ATTR_TRANSACTIONAL
    )


def test_batch_at_an_offset_inside_a_buffer_with_patched_fields() -> None:
    # A stored batch (base offset and leader epoch rewritten, LogAppendTime
    # stamped) after another one in the same buffer.
    first = build_batch([Record(value=b"x", timestamp=1)])
    second = bytearray(build_batch(sample_records(), compression=1))
    set_base_offset(second, 0, 42)
    set_partition_leader_epoch(second, 0, 7)
    set_log_append_time(second, 0, 1_800_000_000_000)
    buf = first + bytes(second)
    out = recompress_batch(buf, len(first), 4)
    h = parse_header(out)
    assert (h.base_offset, h.partition_leader_epoch, h.compression) == (42, 7, 4)
    assert h.attributes & ATTR_TIMESTAMP_TYPE
    assert h.max_timestamp == 1_800_000_000_000
    assert visible(out) == visible(bytes(second))
    check_records(out)


def test_uncompressed_to_zstd_shrinks_compressible_batch() -> None:
    original = build_batch([Record(value=b"compressible " * 40, timestamp=i) for i in range(100)])
    out = recompress_batch(original, 0, 4)
    assert len(out) < len(original) // 5
    assert visible(out) == visible(original)


def test_corrupt_crc_is_rejected_not_recompressed() -> None:
    bad = bytearray(build_batch(sample_records()))
    bad[-1] ^= 0xFF
    with pytest.raises(InvalidRecordBatch) as exc:
        recompress_batch(bad, 0, 4)
    assert exc.value.error_code == 2  # CORRUPT_MESSAGE


def test_malformed_record_inside_a_valid_crc_is_invalid_record() -> None:
    # Claim one record more than the batch holds, then fix the CRC: framing
    # alone finds it, and the deep walk must refuse to rebuild it.
    good = build_batch(sample_records())
    h = parse_header(good)
    bad = bytearray(good)
    bad[57:61] = (h.records_count + 1).to_bytes(4, "big")
    bad[23:27] = h.records_count.to_bytes(4, "big")  # last offset delta agrees with the count
    bad[17:21] = crc32c.crc32c(bytes(bad[21:])).to_bytes(4, "big")
    with pytest.raises(InvalidRecordBatch) as exc:
        recompress_batch(bytes(bad), 0, 4)
    assert exc.value.error_code == 87  # INVALID_RECORD


def test_decompressed_size_cap_applies() -> None:
    original = build_batch([Record(value=b"\0" * 100_000, timestamp=1)], compression=4)
    with pytest.raises(InvalidRecordBatch) as exc:
        recompress_batch(original, 0, 1, max_decompressed_size=10_000)
    assert exc.value.error_code == 2


def test_unknown_target_codec_is_unsupported_compression_type() -> None:
    with pytest.raises(InvalidRecordBatch) as exc:
        recompress_batch(build_batch(sample_records()), 0, 5)
    assert exc.value.error_code == 76


_record = st.builds(
    Record,
    key=st.none() | st.binary(max_size=20),
    value=st.none() | st.binary(max_size=200),
    timestamp=st.integers(min_value=0, max_value=2**41),
    headers=st.lists(
        st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=10)), max_size=3
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    recs=st.lists(_record, min_size=1, max_size=12),
    source=st.sampled_from(CODECS),
    target=st.sampled_from(CODECS),
)
def test_recompression_round_trips_any_records(
    recs: list[Record], source: int, target: int
) -> None:
    original = build_batch(
        recs, compression=source, producer_id=1, producer_epoch=0, base_sequence=0
    )
    out = recompress_batch(original, 0, target)
    check_records(out)
    assert header_fields(out) == header_fields(original)
    assert visible(out) == visible(original)
    # Back to the source codec gives the same records again.
    assert visible(recompress_batch(out, 0, source)) == visible(original)
