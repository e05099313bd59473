"""Produce batch validation, without a server: Kafka's answer to each kind of bad batch."""

from __future__ import annotations

import struct

import pytest

from kbroker.handlers.produce import ProduceSettings, RejectedBatch, validate_produce_records
from kbroker.wire.errors import ErrorCode
from kbroker.wire.records import Record, build_batch, build_control_batch

DEFAULTS = ProduceSettings()


def batch(n: int = 3, **kwargs: object) -> bytes:
    """A valid batch of ``n`` records with keys k0.. and values v0..."""
    recs = [Record(key=b"k%d" % i, value=b"v%d" % i, timestamp=1_000 + i) for i in range(n)]
    return build_batch(recs, **kwargs)  # type: ignore[arg-type]


def rejected(
    records: object, *, version: int = 11, settings: ProduceSettings = DEFAULTS, now_ms: int = 0
) -> RejectedBatch:
    with pytest.raises(RejectedBatch) as info:
        validate_produce_records(records, version=version, settings=settings, now_ms=now_ms)
    return info.value


@pytest.mark.parametrize("compression", [0, 1, 2, 3, 4])
def test_valid_batches_of_every_codec_pass(compression: int) -> None:
    header = validate_produce_records(
        batch(5, compression=compression), version=11, settings=DEFAULTS
    )
    assert header.records_count == 5
    assert header.compression == compression


def test_null_or_empty_records_are_invalid_record() -> None:
    assert rejected(None).code == ErrorCode.INVALID_RECORD
    assert rejected(b"").code == ErrorCode.INVALID_RECORD


def test_crc_mismatch_is_corrupt_message() -> None:
    data = bytearray(batch())
    data[-1] ^= 0xFF
    assert rejected(bytes(data)).code == ErrorCode.CORRUPT_MESSAGE


def test_truncated_batch_is_corrupt_message() -> None:
    assert rejected(batch()[:-3]).code == ErrorCode.CORRUPT_MESSAGE


def test_two_batches_in_one_partition_are_invalid_record() -> None:
    # ProduceRequest.validateRecords: v3+ carries exactly one batch per partition.
    err = rejected(batch() + batch())
    assert err.code == ErrorCode.INVALID_RECORD
    assert "exactly one record batch" in (err.message or "")


def test_old_magic_is_invalid_record() -> None:
    data = bytearray(batch())
    data[16] = 1
    assert rejected(bytes(data)).code == ErrorCode.INVALID_RECORD


def test_zstd_needs_produce_v7() -> None:
    assert rejected(batch(compression=4), version=6).code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    validate_produce_records(batch(compression=4), version=7, settings=DEFAULTS)


def test_nonzero_base_offset_is_invalid_record() -> None:
    err = rejected(batch(base_offset=5))
    assert err.code == ErrorCode.INVALID_RECORD
    assert "baseOffset" in (err.message or "")


def test_batch_over_max_message_bytes_is_message_too_large() -> None:
    data = batch(10)
    small = ProduceSettings(max_message_bytes=len(data) - 1)
    assert rejected(data, settings=small).code == ErrorCode.MESSAGE_TOO_LARGE
    # The limit is inclusive of the whole batch, log overhead included.
    validate_produce_records(
        data, version=11, settings=ProduceSettings(max_message_bytes=len(data))
    )


def test_control_batch_from_a_client_is_invalid_record() -> None:
    data = build_control_batch(
        commit=True, producer_id=7, producer_epoch=0, coordinator_epoch=0, timestamp=1
    )
    assert rejected(data).code == ErrorCode.INVALID_RECORD


def test_producer_id_without_sequence_is_invalid_record() -> None:
    assert (
        rejected(batch(producer_id=7, producer_epoch=0, base_sequence=-1)).code
        == ErrorCode.INVALID_RECORD
    )
    # Idempotent / transactional batches with a sequence are accepted as they are.
    validate_produce_records(
        batch(producer_id=7, producer_epoch=0, base_sequence=0, transactional=True),
        version=11,
        settings=DEFAULTS,
    )


def _with_count(data: bytes, count: int) -> bytes:
    """Rewrite the records count (offset 57) and fix the CRC, to forge an inconsistent batch."""
    import crc32c

    out = bytearray(data)
    struct.pack_into(">i", out, 57, count)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


def test_count_disagreeing_with_offsets_is_invalid_record() -> None:
    assert rejected(_with_count(batch(3), 2)).code == ErrorCode.INVALID_RECORD


def test_zero_record_batch_is_invalid_record() -> None:
    assert rejected(build_batch([])).code == ErrorCode.INVALID_RECORD


def test_null_key_on_compacted_topic_lists_the_record() -> None:
    recs = [Record(key=b"a", value=b"1", timestamp=1), Record(key=None, value=b"2", timestamp=2)]
    err = rejected(build_batch(recs), settings=ProduceSettings(compacted=True))
    assert err.code == ErrorCode.INVALID_RECORD
    assert [i for i, _ in err.record_errors] == [1]
    assert "without key" in err.record_errors[0][1]
    # The same batch is fine on a delete-policy topic.
    validate_produce_records(build_batch(recs), version=11, settings=DEFAULTS)


def test_producer_stamped_log_append_time_is_invalid_timestamp() -> None:
    # LogValidator.validateTimestamp: only the broker may set LogAppendTime.
    lat_topic = ProduceSettings(log_append_time=True)
    err = rejected(batch(timestamp_type=1), settings=lat_topic)
    assert err.code == ErrorCode.INVALID_TIMESTAMP
    assert len(err.record_errors) == 3


def test_timestamp_outside_configured_bounds_is_invalid_timestamp() -> None:
    bounded = ProduceSettings(timestamp_before_max_ms=100, timestamp_after_max_ms=100)
    err = rejected(batch(1), settings=bounded, now_ms=10_000)
    assert err.code == ErrorCode.INVALID_TIMESTAMP
    validate_produce_records(batch(1), version=11, settings=bounded, now_ms=1_050)
