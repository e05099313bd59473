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
tagged fields) from structs compiled per version, and declines anything else; the
common answer (one topic, one partition) is packed whole by two structs.
``new_produce_answer`` builds that answer's objects for the handler the way the decoder
builds request objects.

tests/wire/test_produce_fast_path.py checks both against the generic codec over
generated requests and responses (hypothesis), and the built answer against the
classes' constructors.

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

__all__ = [
    "NO_LEADER",
    "PRODUCE_FAST_VERSIONS",
    "decode_produce_request",
    "encode_produce_response",
    "new_produce_answer",
]

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


# The answer to the common request (one topic, one partition), ready to pack in one go:
# per version, the struct of everything from the partition count to the end, and the
# struct of the frame's start up to the topic name (size, correlation id, response
# header, topic count, name length). Zero-valued constants are pad bytes ("x"): empty
# tagged-field sections, null compact strings, an empty int32-counted array.
_ONE_HEAD_V0 = struct.Struct(">iiih")  # size, correlation id, topic count, name length
_ONE_HEAD_V1 = struct.Struct(">iixBB")  # size, correlation id, tags, topic count, name length
# Partition count, index, error code, base offset, log append time, (log start offset),
# (v8: empty RecordErrors, null ErrorMessage; v9+: the same compact, tags), throttle.
_ONE_TAIL_V3 = struct.Struct(">iihqqi")
_ONE_TAIL_V5 = struct.Struct(">iihqqqi")
_ONE_TAIL_V8 = struct.Struct(">iihqqq4xhi")
_ONE_TAIL_V9 = struct.Struct(">BihqqqBxxxix")


def _one_form(head: struct.Struct, tail: struct.Struct, middle: int = 0) -> tuple[Any, ...]:
    """(head, tail, the size prefix's value less the name's length, the constant the tail
    packs between the log start offset and the throttle time from v8 on)."""
    return head, tail, head.size - 4 + tail.size, middle


_ONE_V3 = _one_form(_ONE_HEAD_V0, _ONE_TAIL_V3)
_ONE_V5 = _one_form(_ONE_HEAD_V0, _ONE_TAIL_V5)
_ONE_V8 = _one_form(_ONE_HEAD_V0, _ONE_TAIL_V8, -1)  # null ErrorMessage
_ONE_V9 = _one_form(_ONE_HEAD_V1, _ONE_TAIL_V9, 1)  # empty compact RecordErrors
_ONE_FORMS: dict[int, tuple[Any, ...]] = {
    3: _ONE_V3,
    4: _ONE_V3,
    5: _ONE_V5,
    6: _ONE_V5,
    7: _ONE_V5,
    8: _ONE_V8,
    9: _ONE_V9,
    10: _ONE_V9,
    11: _ONE_V9,
}
_ProduceResponse = ProduceResponse
_TopicResponse = ProduceResponse.TopicProduceResponse
_PartitionResponse = ProduceResponse.PartitionProduceResponse

# current_leader of a partition answer that names no leader (KIP-951: -1/-1 unless the
# broker points the client at the leader, which replaces the object, never changes it):
# one shared instance rather than one built per answer by the field's default factory.
NO_LEADER = ProduceResponse.LeaderIdAndEpoch()


def new_produce_answer(name: str, index: int) -> tuple[Any, Any]:
    """(ProduceResponse, its only PartitionProduceResponse): the answer for one topic's
    one partition, base offset -1 and every other field at its default, current_leader
    NO_LEADER; equal to what the classes' constructors build (tests/wire/
    test_produce_fast_path.py), made as the decoder makes objects (object.__new__ and
    one store per field, none of the generated __init__s' keyword handling)."""
    part = _new(_PartitionResponse)
    part.index = index
    part.error_code = 0
    part.base_offset = -1
    part.log_append_time_ms = -1
    part.log_start_offset = -1
    part.record_errors = []
    part.error_message = None
    part.current_leader = NO_LEADER
    part.unknown_tagged_fields = {}
    topic = _new(_TopicResponse)
    topic.name = name
    topic.partition_responses = [part]
    topic.unknown_tagged_fields = {}
    body = _new(_ProduceResponse)
    body.responses = [topic]
    body.throttle_time_ms = 0
    body.node_endpoints = []
    body.unknown_tagged_fields = {}
    return body, part


def encode_produce_response(version: int, correlation_id: int, body: Any) -> bytes | None:
    """The whole response frame (size prefix included) of an ordinary ProduceResponse,
    or None to decline (the generic codec then encodes it)."""
    if type(body) is not _ProduceResponse or body.unknown_tagged_fields or body.node_endpoints:
        return None
    topics = body.responses
    if len(topics) == 1:
        # The common answer: one topic, one partition; two packs, no loop.
        topic = topics[0]
        parts = topic.partition_responses
        form = _ONE_FORMS.get(version)
        if len(parts) == 1 and form is not None and not topic.unknown_tagged_fields:
            p = parts[0]
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
            head, tail, size, middle = form
            try:
                name = topic.name.encode()
                n = len(name)
                if version >= _FLEXIBLE:
                    if n >= 0x7F:
                        return _encode_produce_response(version, correlation_id, body)
                    # Compact counts and lengths: the value plus one.
                    count = 2
                    start = head.pack(n + size, correlation_id, count, n + 1)
                else:
                    count = 1
                    start = head.pack(n + size, correlation_id, count, n)
                # Three calls rather than one with *args, which made each answer ~40%
                # slower to encode.
                if version >= 8:
                    end = tail.pack(
                        count,
                        p.index,
                        p.error_code,
                        p.base_offset,
                        p.log_append_time_ms,
                        p.log_start_offset,
                        middle,
                        body.throttle_time_ms,
                    )
                elif version >= 5:
                    end = tail.pack(
                        count,
                        p.index,
                        p.error_code,
                        p.base_offset,
                        p.log_append_time_ms,
                        p.log_start_offset,
                        body.throttle_time_ms,
                    )
                else:
                    end = tail.pack(
                        count,
                        p.index,
                        p.error_code,
                        p.base_offset,
                        p.log_append_time_ms,
                        body.throttle_time_ms,
                    )
                return start + name + end
            except (struct.error, AttributeError, TypeError, UnicodeEncodeError):
                return None  # not encodable as it is: the generic codec reports how
    return _encode_produce_response(version, correlation_id, body)


def _encode_produce_response(version: int, correlation_id: int, body: Any) -> bytes | None:
    """encode_produce_response for any number of topics and partitions."""
    form = _PARTITION_FORMS.get(version)
    if form is None:
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
