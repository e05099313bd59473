"""wire.protocol entry points: framing of responses, sendfile parts, data schemas, errors."""

from __future__ import annotations

import pytest

from kbroker.wire import protocol
from kbroker.wire.errors import DecodeError, EncodeError, UnsupportedVersion
from kbroker.wire.messages import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FetchResponse,
    OffsetCommitKey,
    OffsetCommitValue,
    ProduceRequest,
    TransactionLogValue,
)


class FakeRegion:
    """Stands in for log.FileRegion: has a length and bytes, but is not bytes-like."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return self.data


def _fetch(records: object) -> FetchResponse:
    return FetchResponse(
        responses=[
            FetchResponse.FetchableTopicResponse(
                topic="t",
                partitions=[
                    FetchResponse.PartitionData(
                        partition_index=p, high_watermark=5, records=records
                    )
                    for p in range(2)
                ],
            )
        ]
    )


@pytest.mark.parametrize("version", [4, 11, 12, 16])
def test_response_parts_keep_file_regions_out_of_line(version: int) -> None:
    region = FakeRegion(b"R" * 300)
    parts = protocol.encode_response_parts(1, version, 9, _fetch(region))
    assert sum(1 for p in parts if p is region) == 2
    assert all(isinstance(p, bytes) for p in parts if p is not region)
    joined = b"".join(bytes(p) for p in parts)
    # Same bytes as encoding the records inline, size prefix included.
    assert joined == protocol.encode_response(1, version, 9, _fetch(b"R" * 300))
    assert int.from_bytes(joined[:4], "big") == len(joined) - 4
    corr, body = protocol.decode_response(1, version, joined[4:])
    assert corr == 9 and bytes(body.responses[0].partitions[1].records) == b"R" * 300


def test_response_without_regions_is_one_part() -> None:
    parts = protocol.encode_response_parts(1, 12, 1, _fetch(b"abc"))
    assert len(parts) == 1 and isinstance(parts[0], bytes)


def test_frames_shorter_than_a_header_are_decode_errors() -> None:
    for n in range(8):
        with pytest.raises(DecodeError):
            protocol.decode_request(b"\x00\x12\x00\x03\x00\x00\x00\x01"[:n])


def test_undeclared_version_of_a_known_api_is_unsupported() -> None:
    frame = bytearray(protocol.encode_request(0, 9, 5, "c", ProduceRequest())[4:])
    frame[2:4] = (99).to_bytes(2, "big")
    with pytest.raises(UnsupportedVersion) as exc:
        protocol.decode_request(bytes(frame))
    assert (exc.value.api_key, exc.value.api_version, exc.value.correlation_id) == (0, 99, 5)


def test_too_new_api_versions_with_a_broken_header_is_a_decode_error() -> None:
    frame = bytearray(protocol.encode_request(18, 3, 5, "client", ApiVersionsRequest())[4:])
    frame[2:4] = (42).to_bytes(2, "big")
    with pytest.raises(UnsupportedVersion):
        protocol.decode_request(bytes(frame))
    with pytest.raises(DecodeError) as exc:
        protocol.decode_request(bytes(frame[:11]))  # client id cut short
    assert not isinstance(exc.value, UnsupportedVersion)


def test_unsupported_version_answer_is_an_api_versions_v0_response() -> None:
    # What the server sends back for a too-new ApiVersions (KIP-511): v0 body, header v0.
    body = ApiVersionsResponse(
        error_code=35,
        api_keys=[ApiVersionsResponse.ApiVersion(api_key=18, min_version=0, max_version=4)],
    )
    frame = protocol.encode_response(18, 0, 5, body)
    assert frame == bytes.fromhex("0000001000000005002300000001001200000004")


def test_encoding_an_undeclared_version_fails() -> None:
    with pytest.raises(EncodeError):
        protocol.encode_response(0, 99, 1, ProduceRequest())
    with pytest.raises(EncodeError):  # wrong class for the api key
        protocol.encode_response(0, 9, 1, ProduceRequest())


def test_supported_covers_the_broker_apis() -> None:
    assert protocol.SUPPORTED[0] == (0, 11)
    assert protocol.SUPPORTED[18] == (0, 4)
    assert protocol.request_class(3).__name__ == "MetadataRequest"
    assert protocol.response_class(3).__name__ == "MetadataResponse"
    assert protocol.request_header_version(18, 3) == 2
    assert protocol.request_header_version(18, 2) == 1


def test_offset_commit_records_as_written_to_consumer_offsets() -> None:
    key = OffsetCommitKey(group="g", topic="t", partition=3)
    raw = protocol.encode_versioned_data(OffsetCommitKey, 1, key)
    assert raw == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x03"
    assert protocol.decode_versioned_data(OffsetCommitKey, raw) == (1, key)
    value = OffsetCommitValue(offset=42, metadata="m", commit_timestamp=1000)
    for version in range(4):
        raw = protocol.encode_versioned_data(OffsetCommitValue, version, value)
        v, back = protocol.decode_versioned_data(OffsetCommitValue, raw)
        assert v == version and back.offset == 42 and back.metadata == "m"


def test_transaction_log_value_tagged_fields() -> None:
    value = TransactionLogValue(producer_id=7, previous_producer_id=6, producer_epoch=1)
    raw = protocol.encode_data(TransactionLogValue, 1, value)
    assert protocol.decode_data(TransactionLogValue, 1, raw) == value
    # v0 has no PreviousProducerId; a non-default value cannot be written there.
    with pytest.raises(EncodeError):
        protocol.encode_data(TransactionLogValue, 0, value)


def test_data_decode_errors() -> None:
    with pytest.raises(DecodeError):
        protocol.decode_versioned_data(OffsetCommitKey, b"\x00\x07" + b"\x00" * 12)
    with pytest.raises(DecodeError):
        protocol.decode_versioned_data(OffsetCommitKey, b"\x00")
    with pytest.raises(DecodeError):
        protocol.decode_data(OffsetCommitKey, 1, b"\x00\x05ab")
