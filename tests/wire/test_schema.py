"""Unit tests of the schema DSL, primitives and bounds checks."""

from __future__ import annotations

import uuid

import pytest

from kbroker.wire import protocol
from kbroker.wire.codec import (
    decode_struct,
    encode_struct,
    read_uvarint,
    read_varint,
    read_varlong,
    write_uvarint,
    write_varint,
    write_varlong,
)
from kbroker.wire.errors import DecodeError, EncodeError
from kbroker.wire.messages import (
    ApiVersionsResponse,
    ConsumerGroupMemberMetadataValue,
    DescribeTopicPartitionsResponse,
    FetchResponse,
    MetadataRequest,
    ProduceRequest,
    ProduceResponse,
    RequestHeader,
)
from kbroker.wire.schema import parse_versions, snake


def test_version_ranges_parse_like_kafka() -> None:
    assert 5 in parse_versions("3+") and 2 not in parse_versions("3+")
    assert 11 in parse_versions("0-11") and 12 not in parse_versions("0-11")
    assert 3 in parse_versions("3") and 4 not in parse_versions("3")
    assert 0 not in parse_versions("none")


def test_snake_case_names() -> None:
    assert snake("ThrottleTimeMs") == "throttle_time_ms"
    assert snake("TopicData") == "topic_data"
    assert snake("ErrorCode") == "error_code"


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 300, 2**31 - 1, -(2**31)])
def test_varint_round_trip(value: int) -> None:
    out = bytearray()
    write_varint(out, value)
    assert read_varint(memoryview(bytes(out)), 0) == (value, len(out))


@pytest.mark.parametrize("value", [0, -1, 2**63 - 1, -(2**63), 1234567890123])
def test_varlong_round_trip(value: int) -> None:
    out = bytearray()
    write_varlong(out, value)
    assert read_varlong(memoryview(bytes(out)), 0) == (value, len(out))


def test_uvarint_longer_than_five_bytes_is_rejected() -> None:
    with pytest.raises(DecodeError):
        read_uvarint(memoryview(b"\xff\xff\xff\xff\xff\x01"), 0)
    out = bytearray()
    write_uvarint(out, 2**32 - 1)
    assert read_uvarint(memoryview(bytes(out)), 0) == (2**32 - 1, 5)


def test_varlong_longer_than_ten_bytes_is_rejected() -> None:
    with pytest.raises(DecodeError):
        read_varlong(memoryview(b"\xff" * 10 + b"\x01"), 0)


def test_every_field_has_a_default() -> None:
    r = ProduceRequest()
    assert r.transactional_id is None and r.acks == 0 and r.topic_data == []
    part = ProduceResponse.PartitionProduceResponse()
    assert part.log_append_time_ms == -1 and part.record_errors == []
    assert FetchResponse.PartitionData().preferred_read_replica == -1
    assert isinstance(FetchResponse.FetchableTopicResponse().topic_id, uuid.UUID)


def test_struct_defaults_are_not_shared() -> None:
    a, b = ProduceRequest(), ProduceRequest()
    a.topic_data.append(ProduceRequest.TopicProduceData(name="x"))
    assert b.topic_data == []


def test_array_count_larger_than_remaining_is_rejected_before_allocation() -> None:
    # MetadataRequest v1: Topics is a nullable int32-counted array; claim 2**31-1 topics.
    body = b"\x7f\xff\xff\xff"
    with pytest.raises(DecodeError, match="exceed"):
        decode_struct(MetadataRequest, 1, body)


def test_negative_length_that_is_not_null_is_rejected() -> None:
    # ProduceRequest v3 TransactionalId is a nullable int16 string: -2 is invalid.
    body = b"\xff\xfe" + b"\x00" * 20
    with pytest.raises(DecodeError):
        decode_struct(ProduceRequest, 3, body)


def test_null_in_non_nullable_string_is_rejected_on_decode() -> None:
    # ProduceRequest v0 topic name: int16 -1 is not allowed.
    body = b"\x00\x01" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x01" + b"\xff\xff" + b"\x00" * 4
    with pytest.raises(DecodeError):
        decode_struct(ProduceRequest, 0, body)


def test_encode_none_in_non_nullable_field_fails() -> None:
    body = ProduceRequest(topic_data=[ProduceRequest.TopicProduceData(name=None)])  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        protocol.encode_request(0, 9, 1, "c", body)


def test_encode_out_of_range_int_fails() -> None:
    with pytest.raises(EncodeError):
        protocol.encode_request(0, 9, 1, "c", ProduceRequest(acks=70000))


def test_encode_non_default_value_in_absent_field_fails() -> None:
    # TransactionalId only exists from v3 and is not ignorable.
    with pytest.raises(EncodeError):
        protocol.encode_request(0, 2, 1, "c", ProduceRequest(transactional_id="tx"))
    # ...but the default is fine.
    protocol.encode_request(0, 2, 1, "c", ProduceRequest())


def test_ignorable_absent_field_is_dropped_silently() -> None:
    # ApiVersionsResponse.ThrottleTimeMs is ignorable and absent in v0.
    frame = protocol.encode_response(18, 0, 3, ApiVersionsResponse(throttle_time_ms=100))
    _, body = protocol.decode_response(18, 0, frame[4:])
    assert body.throttle_time_ms == 0


def test_unknown_tagged_fields_survive_a_round_trip() -> None:
    hdr = RequestHeader(
        request_api_key=3,
        request_api_version=12,
        correlation_id=9,
        client_id="c",
        unknown_tagged_fields={5: b"\x01\x02"},
    )
    out = bytearray()
    encode_struct(RequestHeader, 2, hdr, out, [])
    back, end = decode_struct(RequestHeader, 2, bytes(out))
    assert back == hdr and end == len(out)


def test_unknown_tagged_fields_need_a_flexible_version() -> None:
    with pytest.raises(EncodeError):
        protocol.encode_response(0, 8, 1, ProduceResponse(unknown_tagged_fields={1: b""}))


def test_client_id_is_never_compact() -> None:
    # Header v2 (flexible) still writes ClientId with an int16 length (RequestHeader.json).
    frame = protocol.encode_request(3, 12, 77, "abc", MetadataRequest())
    assert frame[4 + 8 : 4 + 8 + 5] == b"\x00\x03abc"


def test_records_decode_to_a_zero_copy_slice() -> None:
    req = ProduceRequest(
        topic_data=[
            ProduceRequest.TopicProduceData(
                name="t",
                partition_data=[ProduceRequest.PartitionProduceData(index=0, records=b"RB")],
            )
        ]
    )
    frame = bytearray(protocol.encode_request(0, 9, 1, "c", req)[4:])
    _, body = protocol.decode_request(frame)
    rec = body.topic_data[0].partition_data[0].records
    assert isinstance(rec, memoryview) and rec == b"RB"
    frame[frame.index(b"RB")] = ord("X")  # the slice views the frame, so it sees the change
    assert bytes(rec).startswith(b"X")


def test_nullable_struct_markers_match_kafkas_generator() -> None:
    # Non-tagged nullable struct: int8 -1 = null, 1 = present (DescribeTopicPartitions cursor).
    resp = DescribeTopicPartitionsResponse(next_cursor=None)
    out = bytearray()
    encode_struct(DescribeTopicPartitionsResponse, 0, resp, out, [])
    assert out[-2:] == b"\xff\x00"  # null marker, then the empty tagged-field section
    back, _ = decode_struct(DescribeTopicPartitionsResponse, 0, bytes(out))
    assert back.next_cursor is None
    # Tagged nullable struct: the value is a uvarint marker then the struct; null is absent.
    cls = ConsumerGroupMemberMetadataValue
    value = cls(classic_member_metadata=cls.ClassicMemberMetadata(session_timeout_ms=5))
    out = bytearray()
    encode_struct(cls, 0, value, out, [])
    # ... 01 (one tagged field) 00 (tag 0) size 01 (marker) <struct>
    assert b"\x01\x00\x07\x01\x00\x00\x00\x05\x01\x00" in bytes(out)
    assert decode_struct(cls, 0, bytes(out))[0] == value


def test_malformed_utf8_is_replaced_like_java_does() -> None:
    # Kafka decodes strings with new String(bytes, UTF_8): bad bytes become U+FFFD.
    frame = bytearray(
        protocol.encode_request(
            3,
            12,
            1,
            "ab",
            MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="tx")]),
        )[4:]
    )
    frame[frame.index(b"tx")] = 0xFF
    frame[frame.index(b"ab")] = 0xC3
    header, body = protocol.decode_request(bytes(frame))
    assert body.topics[0].name == "\ufffdx" and header.client_id == "\ufffdb"


@pytest.mark.parametrize("size", [0, 126, 127, 128, 16382, 16383, 16384, 70000])
@pytest.mark.parametrize("version", [8, 9])  # classic and compact encodings
def test_lengths_at_varint_boundaries_round_trip(size: int, version: int) -> None:
    # Sizes around the 1-, 2- and 3-byte unsigned-varint boundaries (compact = size + 1).
    name = "n" * min(size, 30000)
    req = ProduceRequest(
        topic_data=[
            ProduceRequest.TopicProduceData(
                name=name,
                partition_data=[
                    ProduceRequest.PartitionProduceData(index=i, records=b"r" * size)
                    for i in range(min(size, 300) + 1)
                ],
            )
        ]
    )
    frame = protocol.encode_request(0, version, 1, "c", req)
    _, back = protocol.decode_request(frame[4:])
    assert back == req
