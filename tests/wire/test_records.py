"""Record batches: golden batches from kafka-python, building, patching, recovery."""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kbroker.wire import records as R
from kbroker.wire.errors import DecodeError, InvalidRecordBatch

CODECS = [0, 1, 2, 3, 4]
CORRUPT, INVALID_RECORD, UNSUPPORTED_COMPRESSION = 2, 87, 76


def kafka_python_batch(
    codec: int, n: int = 5, *, transactional: bool = False
) -> tuple[bytes, list]:
    """A batch as the kafka-python producer builds it, and what was appended."""
    b = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=transactional,
        producer_id=7 if transactional else -1,
        producer_epoch=3 if transactional else -1,
        base_sequence=11 if transactional else -1,
        batch_size=1 << 20,
    )
    expected = []
    for i in range(n):
        key = None if i == 0 else b"key-%d" % i
        value = None if i == 3 else bytes(range(256)) * i
        headers = [(f"h{i}", b"x" * i), ("null", None)] if i % 2 else []
        ts = 1_700_000_000_000 + i * 7 - (50 if i == 2 else 0)  # one out-of-order stamp
        b.append(i, timestamp=ts, key=key, value=value, headers=headers)
        expected.append((i, ts, key, value, headers))
    return bytes(b.build()), expected


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_batches_validate_and_iterate(codec: int) -> None:
    data, expected = kafka_python_batch(codec)
    h = R.validate_batch(data)
    assert h.compression == codec
    assert h.records_count == 5 and h.last_offset_delta == 4
    assert h.size == len(data)
    assert h.max_timestamp == max(e[1] for e in expected)
    R.check_records(data)
    got = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in R.iter_records(data)]
    assert got == expected


def test_transactional_batch_header_fields() -> None:
    data, _ = kafka_python_batch(0, transactional=True)
    h = R.validate_batch(data)
    assert h.is_transactional and not h.is_control
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (7, 3, 11)


@pytest.mark.parametrize("codec", CODECS)
def test_built_batches_read_back_by_kafka_python(codec: int) -> None:
    recs = [
        R.Record(key=b"k", value=b"v" * 3000, timestamp=10, headers=[("a", b"1")]),
        R.Record(key=None, value=None, timestamp=5, headers=[("b", None)]),
    ]
    data = R.build_batch(
        recs, compression=codec, base_offset=100, producer_id=9, producer_epoch=1, base_sequence=4
    )
    kb = DefaultRecordBatch(data)
    assert kb.validate_crc()
    assert kb.compression_type == codec
    assert [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in kb] == [
        (100, 10, b"k", b"v" * 3000, [("a", b"1")]),
        (101, 5, None, None, [("b", None)]),
    ]
    h = R.validate_batch(data)
    assert (h.base_timestamp, h.max_timestamp) == (10, 10)
    assert (h.base_offset, h.last_offset, h.next_offset) == (100, 101, 102)
    R.check_records(data)


def test_build_batch_defaults_timestamp_to_now() -> None:
    class Rec:
        key = b"k"
        value = b"v"
        headers = None
        timestamp = None

    data = R.build_batch([Rec()])
    (rec,) = R.iter_records(data)
    assert rec.timestamp > 1_600_000_000_000


def test_control_batch() -> None:
    data = R.build_control_batch(
        commit=True,
        producer_id=5,
        producer_epoch=2,
        coordinator_epoch=9,
        timestamp=1234,
        base_offset=40,
    )
    h = R.validate_batch(data)
    assert h.is_control and h.is_transactional
    assert (h.producer_id, h.producer_epoch, h.base_offset, h.max_timestamp) == (5, 2, 40, 1234)
    (rec,) = R.iter_records(data)
    assert R.control_record_type(rec) == 1
    assert rec.value == struct.pack(">hi", 0, 9)
    abort = R.build_control_batch(
        commit=False, producer_id=5, producer_epoch=2, coordinator_epoch=9, timestamp=1234
    )
    assert R.control_record_type(next(R.iter_records(abort))) == 0
    # kafka-python agrees it is a control batch.
    assert DefaultRecordBatch(data).is_control_batch


def test_set_base_offset_and_epoch_keep_crc_valid() -> None:
    data, _ = kafka_python_batch(0)
    buf = bytearray(b"junk" + data)
    R.set_base_offset(buf, 4, 1_000_000)
    R.set_partition_leader_epoch(buf, 4, 17)
    h = R.validate_batch(buf, 4)
    assert (h.base_offset, h.partition_leader_epoch) == (1_000_000, 17)
    assert [r.offset for r in R.iter_records(buf, 4)] == list(range(1_000_000, 1_000_005))


def test_set_log_append_time_recomputes_crc() -> None:
    data, _ = kafka_python_batch(1)
    buf = bytearray(data)
    R.set_log_append_time(buf, 0, 99_999)
    h = R.validate_batch(buf)  # CRC still valid
    assert h.timestamp_type == 1 and h.max_timestamp == 99_999
    assert h.compression == 1  # other attribute bits untouched
    assert {r.timestamp for r in R.iter_records(buf)} == {99_999}
    assert DefaultRecordBatch(bytes(buf)).validate_crc()


def test_validate_batches_tiles_exactly() -> None:
    a, _ = kafka_python_batch(0, 2)
    b, _ = kafka_python_batch(3, 3)
    assert [h.records_count for h in R.validate_batches(a + b)] == [2, 3]
    with pytest.raises(InvalidRecordBatch) as e:
        R.validate_batches(a + b[:-1])
    assert e.value.error_code == CORRUPT
    with pytest.raises(InvalidRecordBatch):
        R.validate_batches(a + b"\0")
    with pytest.raises(InvalidRecordBatch):
        R.validate_batches(b"")


def test_valid_prefix_stops_at_first_bad_batch() -> None:
    a, _ = kafka_python_batch(0, 2)
    b, _ = kafka_python_batch(2, 3)
    c, _ = kafka_python_batch(4, 1)
    whole = a + b + c
    end, found = R.valid_prefix(whole)
    assert end == len(whole)
    assert [pos for pos, _ in found] == [0, len(a), len(a) + len(b)]
    # A flipped byte inside b: recovery keeps only a, even though c is fine.
    bad = bytearray(whole)
    bad[len(a) + 70] ^= 0xFF
    end, found = R.valid_prefix(bytes(bad))
    assert end == len(a) and len(found) == 1
    # Starting offset is honoured.
    end, found = R.valid_prefix(whole, len(a))
    assert end == len(whole) and [p for p, _ in found] == [len(a), len(a) + len(b)]


def test_valid_prefix_cut_at_every_byte_of_last_batch() -> None:
    a, _ = kafka_python_batch(0, 2)
    b, _ = kafka_python_batch(1, 3)
    for cut in range(len(b)):
        end, found = R.valid_prefix(a + b[:cut])
        assert end == len(a), cut
        assert len(found) == 1


def test_valid_prefix_accepts_compacted_batch_shape() -> None:
    # Compaction keeps the batch's last offset delta while dropping records, so
    # recovery must not apply the produce-time count check.
    data = bytearray(R.build_batch([R.Record(key=b"k", value=b"v", timestamp=1)]))
    struct.pack_into(">i", data, 23, 9)  # last_offset_delta 9, one record
    struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
    end, found = R.valid_prefix(bytes(data))
    assert end == len(data) and found[0][1].next_offset == 10
    with pytest.raises(InvalidRecordBatch) as e:
        R.validate_batch(data)
    assert e.value.error_code == INVALID_RECORD


def _recrc(buf: bytearray) -> bytes:
    struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    return bytes(buf)


def _patched(data: bytes, fmt: str, offset: int, value: int, *, fix_crc: bool = True) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return _recrc(buf) if fix_crc and offset >= 21 else bytes(buf)


@pytest.mark.parametrize(
    ("fmt", "offset", "value", "code"),
    [
        (">i", 8, 48, CORRUPT),  # batch length below the header size
        (">i", 8, -1, CORRUPT),
        (">i", 8, 10_000, CORRUPT),  # longer than the buffer
        (">b", 16, 0, INVALID_RECORD),  # legacy magic: Kafka rejects non-v2 on produce
        (">b", 16, 1, INVALID_RECORD),
        (">b", 16, 3, CORRUPT),  # unknown magic
        (">I", 17, 12345, CORRUPT),  # CRC
        (">h", 21, 5, UNSUPPORTED_COMPRESSION),  # codec 5
        (">h", 21, 7, UNSUPPORTED_COMPRESSION),
        (">i", 23, 3, INVALID_RECORD),  # last offset delta != count - 1
        (">i", 23, -1, INVALID_RECORD),
        (">i", 57, -1, INVALID_RECORD),  # negative count
        (">i", 57, 4, INVALID_RECORD),
    ],
)
def test_corrupted_header_fields(fmt: str, offset: int, value: int, code: int) -> None:
    data, _ = kafka_python_batch(0, 5)
    bad = _patched(data, fmt, offset, value)
    with pytest.raises(InvalidRecordBatch) as e:
        R.check_records(bad)
    assert e.value.error_code == code


def test_header_fields_outside_crc_do_not_matter_but_inside_do() -> None:
    data, _ = kafka_python_batch(0, 5)
    # Base offset (0..7) and partition leader epoch (12..15) are the broker's to rewrite.
    for off in [*range(8), *range(12, 16)]:
        patched = bytearray(data)
        patched[off] ^= 0xA5
        R.validate_batch(bytes(patched))
    for off in range(21, len(data)):
        bad = bytearray(data)
        bad[off] ^= 0x01
        with pytest.raises(InvalidRecordBatch) as e:
            R.validate_batch(bytes(bad))
        assert e.value.error_code == CORRUPT, off


def test_truncation_at_every_byte() -> None:
    data, _ = kafka_python_batch(0, 2)
    for cut in range(len(data)):
        with pytest.raises(InvalidRecordBatch) as e:
            R.validate_batch(data[:cut])
        assert e.value.error_code == CORRUPT, cut
        with pytest.raises(DecodeError):
            list(R.iter_records(data[:cut]))


def test_parse_header_does_not_check_crc() -> None:
    data, _ = kafka_python_batch(0, 2)
    bad = _patched(data, ">I", 17, 1, fix_crc=False)
    assert R.parse_header(bad).crc == 1


def _rebuild_with_payload(template: bytes, payload: bytes, count: int) -> bytes:
    """Same header as ``template``, records replaced by ``payload``, lengths and CRC fixed."""
    buf = bytearray(template[:61] + payload)
    struct.pack_into(">i", buf, 8, len(buf) - 12)
    struct.pack_into(">i", buf, 57, count)
    struct.pack_into(">i", buf, 23, count - 1)
    return _recrc(buf)


def _rec(off_delta: int, body_extra: bytes = b"", *, length_adjust: int = 0) -> bytes:
    body = (
        bytes([0])
        + R._varint(0)
        + R._varint(off_delta)
        + R._varint(1)
        + b"k"
        + R._varint(1)
        + b"v"
        + R._varint(0)
        + body_extra
    )
    return R._varint(len(body) + length_adjust) + body


def test_check_records_deep_errors_are_invalid_record() -> None:
    template, _ = kafka_python_batch(0, 1)
    good = _rebuild_with_payload(template, _rec(0) + _rec(1), 2)
    R.check_records(good)
    cases = {
        "offset deltas not sequential": _rebuild_with_payload(template, _rec(0) + _rec(2), 2),
        "fewer records than counted": _rebuild_with_payload(template, _rec(0), 2),
        "trailing bytes in batch": _rebuild_with_payload(template, _rec(0) + b"\x00", 1),
        "record with unread bytes": _rebuild_with_payload(template, _rec(0, b"\x00\x00"), 1),
        "record length past end": _rebuild_with_payload(template, _rec(0, length_adjust=5), 1),
        "negative header count": _rebuild_with_payload(
            template,
            R._varint(9)
            + bytes([0])
            + R._varint(0)
            + R._varint(0)
            + R._varint(-1)
            + R._varint(-1)
            + R._varint(-5)
            + b"\0\0\0",
            1,
        ),
    }
    for name, batch in cases.items():
        R.validate_batch(batch)  # header and CRC are fine: only the deep walk sees it
        with pytest.raises(InvalidRecordBatch) as e:
            R.check_records(batch)
        assert e.value.error_code == INVALID_RECORD, name


def test_undecodable_compressed_payload_is_corrupt() -> None:
    template = R.build_batch([R.Record(value=b"v", timestamp=1)], compression=4)
    assert R.parse_header(template).compression == 4
    bad = _rebuild_with_payload(template, b"\x28\xb5\x2f\xfd garbage", 1)
    with pytest.raises(InvalidRecordBatch) as e:
        R.check_records(bad)
    assert e.value.error_code == CORRUPT


def test_compressed_batch_over_cap_is_rejected() -> None:
    data = R.build_batch([R.Record(value=b"\0" * 2_000_000, timestamp=1)], compression=3)
    R.check_records(data)
    with pytest.raises(InvalidRecordBatch) as e:
        R.check_records(data, max_decompressed_size=1_000_000)
    assert e.value.error_code == CORRUPT
    with pytest.raises(InvalidRecordBatch):
        list(R.iter_records(data, max_decompressed_size=1_000_000))


def test_iter_records_is_lazy() -> None:
    # A consumer-side reader gets the good records before the bad one.
    template = R.build_batch([R.Record(value=b"v", timestamp=1)])
    batch = _rebuild_with_payload(template, _rec(0) + _rec(1, length_adjust=50), 2)
    it = R.iter_records(batch)
    first = next(it)
    assert (first.key, first.value, first.offset) == (b"k", b"v", 0)
    with pytest.raises(InvalidRecordBatch):
        next(it)


def test_log_append_time_batch_reports_max_timestamp_for_every_record() -> None:
    data = R.build_batch(
        [R.Record(value=b"a", timestamp=5), R.Record(value=b"b", timestamp=9)], timestamp_type=1
    )
    assert R.validate_batch(data).timestamp_type == 1
    assert [r.timestamp for r in R.iter_records(data)] == [9, 9]


_blob = st.one_of(st.none(), st.binary(max_size=300))
_record = st.builds(
    R.Record,
    key=_blob,
    value=_blob,
    timestamp=st.integers(min_value=0, max_value=2**50),
    headers=st.lists(st.tuples(st.text(max_size=10), _blob), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(
    recs=st.lists(_record, min_size=1, max_size=8),
    codec=st.sampled_from(CODECS),
    base_offset=st.integers(min_value=0, max_value=2**40),
)
def test_build_iter_round_trip_and_kafka_python_agrees(
    recs: list[R.Record], codec: int, base_offset: int
) -> None:
    data = R.build_batch(recs, compression=codec, base_offset=base_offset)
    R.check_records(data)
    want = [(base_offset + i, r.timestamp, r.key, r.value, r.headers) for i, r in enumerate(recs)]
    assert [
        (r.offset, r.timestamp, r.key, r.value, r.headers) for r in R.iter_records(data)
    ] == want
    h = R.validate_batch(data)
    assert h.max_timestamp == max(r.timestamp for r in recs)
    kb = DefaultRecordBatch(data)
    assert kb.validate_crc()
    assert [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in kb] == want


def test_a_parsed_header_is_a_batch_header_with_every_field_in_place() -> None:
    # parse_header builds the NamedTuple straight from the unpacked struct (no __new__
    # call): every field must land under its own name and the properties must work.
    data = R.build_batch(
        [R.Record(value=b"v", timestamp=1_000), R.Record(value=b"w", timestamp=1_007)],
        producer_id=42,
        producer_epoch=3,
        base_sequence=9,
        transactional=True,
    )
    h = R.parse_header(data, 0)
    assert type(h) is R.BatchHeader
    assert h == R.BatchHeader(*R.BATCH_HEADER.unpack_from(data, 0))
    assert (h.base_offset, h.magic, h.last_offset_delta, h.records_count) == (0, 2, 1, 2)
    assert (h.base_timestamp, h.max_timestamp) == (1_000, 1_007)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (42, 3, 9)
    assert h.size == len(data) and h.is_transactional and not h.is_control
