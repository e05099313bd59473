"""Produce's cheap path for uncompressed batches still answers Kafka's error codes."""

from __future__ import annotations

import struct

import crc32c
import pytest

from kbroker.handlers.produce import ProduceSettings, RejectedBatch, validate_produce_records
from kbroker.wire.errors import ErrorCode
from kbroker.wire.records import LOG_OVERHEAD, Record, build_batch

DEFAULTS = ProduceSettings()


def _batch(n: int = 3) -> bytes:
    return build_batch(
        [Record(key=b"k%d" % i, value=b"v" * 50, timestamp=1_000 + i) for i in range(n)]
    )


def _refit(out: bytearray) -> bytes:
    struct.pack_into(">i", out, 8, len(out) - LOG_OVERHEAD)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


def _code(data: bytes, settings: ProduceSettings = DEFAULTS) -> ErrorCode:
    with pytest.raises(RejectedBatch) as info:
        validate_produce_records(data, version=11, settings=settings)
    return info.value.code


def test_records_count_beyond_the_records_is_invalid_record() -> None:
    out = bytearray(_batch(3))
    struct.pack_into(">i", out, 57, 4)  # records count
    struct.pack_into(">i", out, 23, 3)  # last offset delta, kept consistent with it
    assert _code(_refit(out)) == ErrorCode.INVALID_RECORD


def test_bytes_after_the_last_record_are_invalid_record() -> None:
    assert _code(_refit(bytearray(_batch(3) + b"\x02\x00"))) == ErrorCode.INVALID_RECORD


def test_inner_record_damage_is_caught_when_records_are_walked_anyway() -> None:
    # A key length pointing past its record: on a compacted topic every record is
    # parsed (keys are checked), so the full walk runs and answers INVALID_RECORD.
    out = bytearray(_batch(1))
    key_len_pos = 61 + 1 + 1 + 1 + 1  # length varint, attributes, ts delta, offset delta
    assert out[key_len_pos] == 4  # zigzag(2): key b"k0"
    out[key_len_pos] = 120  # zigzag(60): longer than the record
    assert _code(_refit(out), ProduceSettings(compacted=True)) == ErrorCode.INVALID_RECORD
