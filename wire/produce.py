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

__all__ = ["PRODUCE_FAST_VERSIONS", "decode_produce_request", "encode_produce_response"]

_FIRST, _LAST = 3, 11  # Produce versions served here (v9+ flexible)
PRODUCE_FAST_VERSIONS = (_FIRST, _LAST)
_FLEXIBLE = 9
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
# Several fields in one unpack (each unpack is a call and a tuple): the request header
# with the client id's length; Acks and TimeoutMs with the topic count (int32 before v9,
# its first varint byte from v9); a partition's index with the records' length (int32,
# or its first two varint bytes; a byte read beyond the frame's end just declines).
_HEADER = struct.Struct(">hhih")
_ACKS_TIMEOUT_COUNT = struct.Struct(">hii")
_ACKS_TIMEOUT_COMPACT = struct.Struct(">hiB")
_INDEX_SIZE = struct.Struct(">ii")
_INDEX_COMPACT = struct.Struct(">iBB")

_PRODUCE = ProduceRequest.API_KEY
_Request = ProduceRequest
_Topic = ProduceRequest.TopicProduceData
_Partition = ProduceRequest.PartitionProduceData
_Header = RequestHeader
# Objects are made as the generic codec makes them (wire.codec's compiled readers):
# object.__new__ and one store per field. Calling the class with keywords costs twice
# as much in CPython 3.11 (the keywords become a dict for type.__call__, then
# arguments again for the generated __init__).
_new = object.__new__
# What a malformed buffer raises in here; each just means "let the generic codec say".
_DECLINE = (IndexError, struct.error, DecodeError, ValueError)


def decode_produce_request(frame: memoryview) -> tuple[Any, Any] | None:
    """(RequestHeader, ProduceRequest) of a Produce frame (no size prefix), or None to decline.

    One function, no helper per field: a call costs as much as reading a field in line.
    """
    mv = frame
    # Fields are read from the bytes object under the view when the view is all of it
    # (a frame that one read brought: FrameDecoder.whole_frame): indexing and unpacking
    # bytes skips the buffer export a memoryview makes each time. Records are still
    # views of the frame.
    buf: Any = mv.obj
    if type(buf) is not bytes or len(buf) != mv.nbytes:
        buf = mv
    try:
        api_key, version, correlation_id, n = _HEADER.unpack_from(buf, 0)
        if api_key != _PRODUCE or not _FIRST <= version <= _LAST:
            return None
        flexible = version >= _FLEXIBLE
        end = len(mv)
        # Request header v1/v2: the client id is never a compact string (RequestHeader.json).
        pos = 10
        if n < 0:
            if n != -1:
                return None
            client_id = None
        else:
            pos += n
            if pos > end:
                return None
            client_id = str(buf[10:pos], "utf-8", "replace")
        if flexible:
            if buf[pos]:
                return None  # tagged fields in the header
            # TransactionalId: compact nullable string (unsigned varint length + 1).
            n = buf[pos + 1]
            if n < 0x80:
                pos += 2
            else:
                n, pos = read_uvarint(mv, pos + 1)
            n -= 1
        else:
            (n,) = _I16.unpack_from(buf, pos)
            pos += 2
        if n < 0:
            if n != -1:
                return None
            transactional_id = None
        else:
            start = pos
            pos += n
            if pos > end:
                return None
            transactional_id = str(buf[start:pos], "utf-8", "replace")
        if flexible:
            acks, timeout_ms, topic_count = _ACKS_TIMEOUT_COMPACT.unpack_from(buf, pos)
            if topic_count < 0x80:
                pos += 7
            else:
                topic_count, pos = read_uvarint(mv, pos + 6)
            topic_count -= 1
        else:
            acks, timeout_ms, topic_count = _ACKS_TIMEOUT_COUNT.unpack_from(buf, pos)
            pos += 10
        if topic_count < 0 or topic_count > end - pos:
            return None
        topics = []
        for _ in range(topic_count):
            # Name: a string, never null.
            if flexible:
                n = buf[pos]
                if n < 0x80:
                    pos += 1
                else:
                    n, pos = read_uvarint(mv, pos)
                n -= 1
                start = pos
                pos += n
                if n < 0 or pos > end:
                    return None
                name = str(buf[start:pos], "utf-8", "replace")
                count = buf[pos]
                if count < 0x80:
                    pos += 1
                else:
                    count, pos = read_uvarint(mv, pos)
                count -= 1
            else:
                (n,) = _I16.unpack_from(buf, pos)
                start = pos + 2
                pos = start + n
                if n < 0 or pos > end:
                    return None
                name = str(buf[start:pos], "utf-8", "replace")
                (count,) = _I32.unpack_from(buf, pos)
                pos += 4
            if count < 0 or count > end - pos:
                return None
            partitions = []
            for _ in range(count):
                # Index, then the records: nullable bytes, handed out as a view of the frame.
                if flexible:
                    index, n, more = _INDEX_COMPACT.unpack_from(buf, pos)
                    if n < 0x80:
                        pos += 5
                    elif more < 0x80:
                        # Two bytes (a batch of 127 B to 16 KiB): in line, not a call.
                        n = (n & 0x7F) | more << 7
                        pos += 6
                    else:
                        n, pos = read_uvarint(mv, pos + 4)
                    n -= 1
                else:
                    index, n = _INDEX_SIZE.unpack_from(buf, pos)
                    pos += 8
                if n < 0:
                    if n != -1:
                        return None
                    records = None
                else:
                    start = pos
                    pos += n
                    if pos > end:
                        return None
                    records = mv[start:pos]
                if flexible:
                    if buf[pos]:
                        return None
                    pos += 1
                partition = _new(_Partition)
                partition.index = index
                partition.records = records
                partition.unknown_tagged_fields = {}
                partitions.append(partition)
            if flexible:
                if buf[pos]:
                    return None
                pos += 1
            topic = _new(_Topic)
            topic.name = name
            topic.partition_data = partitions
            topic.unknown_tagged_fields = {}
            topics.append(topic)
        if flexible and buf[pos]:
            return None
    except _DECLINE:
        return None
    header = _new(_Header)
    header.request_api_key = api_key
    header.request_api_version = version
    header.correlation_id = correlation_id
    header.client_id = client_id
    header.unknown_tagged_fields = {}
    body = _new(_Request)
    body.transactional_id = transactional_id
    body.acks = acks
    body.timeout_ms = timeout_ms
    body.topic_data = topics
    body.unknown_tagged_fields = {}
    return header, body


# -- the response --------------------------------------------------------------------------
# Per version: how to write one partition's fixed fields (index, error code, base offset,
# log append time, and from v5 log start offset), the bytes after them in the ordinary
# case (no record errors, no error message, no tagged fields), and whether it is flexible.
_PARTITION_V3 = struct.Struct(">ihqq")
_PARTITION_V5 = struct.Struct(">ihqqq")
_PARTITION_FORMS: dict[int, tuple[struct.Struct, bytes, bool]] = {
    3: (_PARTITION_V3, b"", False),
    4: (_PARTITION_V3, b"", False),
    5: (_PARTITION_V5, b"", False),
    6: (_PARTITION_V5, b"", False),
    7: (_PARTITION_V5, b"", False),
    # v8: RecordErrors (int32 0, empty) and ErrorMessage (int16 -1, null).
    8: (_PARTITION_V5, _I32.pack(0) + _I16.pack(-1), False),
    # v9+: compact: empty array (1), null string (0), no tagged fields (0).
    9: (_PARTITION_V5, b"\x01\x00\x00", True),
    10: (_PARTITION_V5, b"\x01\x00\x00", True),
    11: (_PARTITION_V5, b"\x01\x00\x00", True),
}
# Size (patched at the end), correlation id, then for response header v0 the topic count,
# for v1 an empty tagged-field section (the compact topic count follows it).
_HEAD_V0 = struct.Struct(">iii")
_HEAD_V1 = struct.Struct(">iiB")
# ThrottleTimeMs, then in flexible versions an empty tagged-field section.
_THROTTLE_FLEXIBLE = struct.Struct(">iB")


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
    partition, tail, flexible = form
    pack = partition.pack
    with_log_start = version >= 5
    topics = body.responses
    try:
        if flexible:
            out = bytearray(_HEAD_V1.pack(0, correlation_id, 0))
            n = len(topics) + 1
            if n < 0x80:
                out.append(n)
            else:
                write_uvarint(out, n)
        else:
            out = bytearray(_HEAD_V0.pack(0, correlation_id, len(topics)))
        for topic in topics:
            if topic.unknown_tagged_fields:
                return None
            name = topic.name.encode()
            parts = topic.partition_responses
            if flexible:
                n = len(name) + 1
                if n < 0x80:
                    out.append(n)
                else:
                    write_uvarint(out, n)
                out += name
                n = len(parts) + 1
                if n < 0x80:
                    out.append(n)
                else:
                    write_uvarint(out, n)
            else:
                out += _I16.pack(len(name))
                out += name
                out += _I32.pack(len(parts))
            for p in parts:
                leader = p.current_leader
                if (
                    p.record_errors
                    or p.error_message is not None
                    or p.unknown_tagged_fields
                    or leader.leader_id != -1
                    or leader.leader_epoch != -1
                    or leader.unknown_tagged_fields
                ):
                    return None
                if with_log_start:
                    out += pack(
                        p.index,
                        p.error_code,
                        p.base_offset,
                        p.log_append_time_ms,
                        p.log_start_offset,
                    )
                else:
                    out += pack(p.index, p.error_code, p.base_offset, p.log_append_time_ms)
                out += tail
            if flexible:
                out.append(0)
        if flexible:
            # No node endpoints, no unknown tagged fields.
            out += _THROTTLE_FLEXIBLE.pack(body.throttle_time_ms, 0)
        else:
            out += _I32.pack(body.throttle_time_ms)
    except (struct.error, AttributeError, TypeError, UnicodeEncodeError):
        return None  # not encodable as it is: the generic codec reports how
    _I32.pack_into(out, 0, len(out) - 4)
    return bytes(out)
