"""A fast path for the one request that carries the data: Produce v3-v11, both ways.

How it works: ``decode_produce_request`` reads a Produce request frame (header and body)
in one straight pass, handing out each partition's records as a view of the frame
(no copy), and builds exactly the objects the generic codec builds. It declines
(returns None) whenever the frame is anything but the ordinary shape: a version
outside 3-11, a tagged field, a null or negative array or string, a short or
malformed buffer. The caller then decodes the frame with the generic codec, which
gives the same objects or the proper DecodeError; so this is never the place where
a frame is judged, only read faster. ``encode_produce_response`` likewise writes the
ordinary response (no record errors, error messages, leader hints, node endpoints or
tagged fields) from structs compiled per version, and declines anything else.

tests/wire/test_produce_fast_path.py checks both against the generic codec over
generated requests and responses (hypothesis).

Why: the generic codec walks a compiled reader per struct and looks up codecs per
call; for Produce, the request a producer sends most often, that per-request cost is
visible in a one-record-per-request workload (bench/produce_path.py, shape 1rec).
"""

from __future__ import annotations

import struct
from typing import Any

from kbroker.wire.codec import read_uvarint, write_uvarint
from kbroker.wire.errors import DecodeError
from kbroker.wire.messages import ProduceRequest, ProduceResponse, RequestHeader

__all__ = ["decode_produce_request", "encode_produce_response"]

_FIRST, _LAST = 3, 11  # Produce versions served here (v9+ flexible)
_FLEXIBLE = 9
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")
_HEADER = struct.Struct(">hhi")

_Request = ProduceRequest
_Topic = ProduceRequest.TopicProduceData
_Partition = ProduceRequest.PartitionProduceData
_Header = RequestHeader
# What a malformed buffer raises in here; each just means "let the generic codec say".
_DECLINE = (IndexError, struct.error, DecodeError, ValueError)


def decode_produce_request(frame: memoryview) -> tuple[Any, Any] | None:
    """(RequestHeader, ProduceRequest) of a Produce frame (no size prefix), or None to decline."""
    try:
        return _decode(frame)
    except _DECLINE:
        return None


def _decode(mv: memoryview) -> tuple[Any, Any] | None:
    api_key, version, correlation_id = _HEADER.unpack_from(mv, 0)
    if api_key != ProduceRequest.API_KEY or not _FIRST <= version <= _LAST:
        return None
    flexible = version >= _FLEXIBLE
    end = len(mv)
    # Request header v1/v2: the client id is never a compact string (RequestHeader.json).
    # Read in place rather than with _view: a call fewer on every request.
    (n,) = _I16.unpack_from(mv, 8)
    pos = 10
    if n < 0:
        if n != -1:
            return None
        client_id = None
    else:
        if pos + n > end:
            return None
        client_id = str(mv[pos : pos + n], "utf-8", "replace")
        pos += n
    if flexible:
        if mv[pos]:
            return None  # tagged fields in the header
        pos += 1
    # TransactionalId: nullable string.
    raw, pos = _view(mv, pos, flexible, _I16)
    transactional_id = None if raw is None else str(raw, "utf-8", "replace")
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(mv, pos)
    pos += 6
    topic_count, pos = _count(mv, pos, flexible)
    if topic_count < 0 or topic_count > end - pos:
        return None
    topics = []
    for _ in range(topic_count):
        # Name: a string, never null.
        raw, pos = _view(mv, pos, flexible, _I16)
        if raw is None:
            return None
        name = str(raw, "utf-8", "replace")
        count, pos = _count(mv, pos, flexible)
        if count < 0 or count > end - pos:
            return None
        partitions = []
        for _ in range(count):
            (index,) = _I32.unpack_from(mv, pos)
            pos += 4
            # Records: nullable bytes, handed out as a view of the frame.
            records, pos = _view(mv, pos, flexible, _I32)
            if flexible:
                if mv[pos]:
                    return None
                pos += 1
            partitions.append(_Partition(index=index, records=records))
        if flexible:
            if mv[pos]:
                return None
            pos += 1
        topics.append(_Topic(name=name, partition_data=partitions))
    if flexible and mv[pos]:
        return None
    header = _Header(
        request_api_key=api_key,
        request_api_version=version,
        correlation_id=correlation_id,
        client_id=client_id,
    )
    body = _Request(
        transactional_id=transactional_id, acks=acks, timeout_ms=timeout_ms, topic_data=topics
    )
    return header, body


def _view(
    mv: memoryview, pos: int, flexible: bool, fixed: struct.Struct
) -> tuple[memoryview | None, int]:
    """The nullable string or bytes at ``pos``, as a view of the frame (None for null), and
    the position after it. Its length is compact (unsigned varint, length + 1; one byte
    below 127 read inline) or ``fixed`` (int16 for strings, int32 for bytes); -1 is null.
    Any other negative length, or one past the frame, declines."""
    if flexible:
        n = mv[pos] - 1
        if n < 0x7F:
            pos += 1
        else:
            n, pos = read_uvarint(mv, pos)
            n -= 1
    else:
        (n,) = fixed.unpack_from(mv, pos)
        pos += fixed.size
    if n < 0:
        if n != -1:
            raise DecodeError(f"invalid length {n}")
        return None, pos
    end = pos + n
    if end > len(mv):
        raise DecodeError(f"length {n} past the end of the frame")
    return mv[pos:end], end


def _count(mv: memoryview, pos: int, flexible: bool) -> tuple[int, int]:
    """An array length: compact (unsigned varint, length + 1) or int32; -1 is null."""
    if flexible:
        n, pos = read_uvarint(mv, pos)
        return n - 1, pos
    (n,) = _I32.unpack_from(mv, pos)
    return n, pos + 4


# -- the response --------------------------------------------------------------------------
# Per version: the struct of one partition's fixed fields, and the bytes after them in the
# ordinary case (no record errors, no error message, no tagged fields).
_PARTITION_V3 = struct.Struct(">ihqq")  # index, error code, base offset, log append time
_PARTITION_V5 = struct.Struct(">ihqqq")  # ... and log start offset
_PARTITION_FORMS: dict[int, tuple[struct.Struct, bytes]] = {
    3: (_PARTITION_V3, b""),
    4: (_PARTITION_V3, b""),
    5: (_PARTITION_V5, b""),
    6: (_PARTITION_V5, b""),
    7: (_PARTITION_V5, b""),
    # v8: RecordErrors (int32 0, empty) and ErrorMessage (int16 -1, null).
    8: (_PARTITION_V5, _I32.pack(0) + _I16.pack(-1)),
    # v9+: compact: empty array (1), null string (0), no tagged fields (0).
    9: (_PARTITION_V5, b"\x01\x00\x00"),
    10: (_PARTITION_V5, b"\x01\x00\x00"),
    11: (_PARTITION_V5, b"\x01\x00\x00"),
}
_LEADER_UNKNOWN = (-1, -1)


def encode_produce_response(version: int, correlation_id: int, body: Any) -> bytes | None:
    """The whole response frame (size prefix included) of an ordinary ProduceResponse,
    or None to decline (the generic codec then encodes it)."""
    form = _PARTITION_FORMS.get(version)
    if (
        form is None
        or type(body) is not ProduceResponse
        or body.unknown_tagged_fields
        or body.node_endpoints
    ):
        return None
    partition, tail = form
    pack = partition.pack
    flexible = version >= _FLEXIBLE
    out = bytearray(8)
    _I32.pack_into(out, 4, correlation_id)
    if flexible:
        out.append(0)  # response header v1: no tagged fields
    topics = body.responses
    if flexible:
        write_uvarint(out, len(topics) + 1)
    else:
        out += _I32.pack(len(topics))
    try:
        for topic in topics:
            if topic.unknown_tagged_fields:
                return None
            name = topic.name.encode()
            if flexible:
                write_uvarint(out, len(name) + 1)
            else:
                out += _I16.pack(len(name))
            out += name
            parts = topic.partition_responses
            if flexible:
                write_uvarint(out, len(parts) + 1)
            else:
                out += _I32.pack(len(parts))
            for p in parts:
                if p.record_errors or p.error_message is not None or p.unknown_tagged_fields:
                    return None
                leader = p.current_leader
                if (
                    leader.leader_id,
                    leader.leader_epoch,
                ) != _LEADER_UNKNOWN or leader.unknown_tagged_fields:
                    return None
                if version < 5:
                    out += pack(p.index, p.error_code, p.base_offset, p.log_append_time_ms)
                else:
                    out += pack(
                        p.index,
                        p.error_code,
                        p.base_offset,
                        p.log_append_time_ms,
                        p.log_start_offset,
                    )
                out += tail
            if flexible:
                out.append(0)
        out += _I32.pack(body.throttle_time_ms)
    except (struct.error, AttributeError, TypeError, UnicodeEncodeError):
        return None  # not encodable as it is: the generic codec reports how
    if flexible:
        out.append(0)  # no node endpoints, no unknown tagged fields
    _I32.pack_into(out, 0, len(out) - 4)
    return bytes(out)
