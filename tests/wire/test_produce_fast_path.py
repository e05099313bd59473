"""wire.produce: the Produce fast path reads and writes exactly what the generic codec does.

Requests and responses are generated (hypothesis) and encoded with the generic codec;
the fast decoder must give the same header and body objects, records as views of the
frame, and the fast encoder the same bytes. Whatever it does not handle it must
decline, so that the generic codec (and its errors) still decide.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.wire import protocol
from kbroker.wire.codec import decode_struct
from kbroker.wire.errors import DecodeError
from kbroker.wire.messages import ProduceRequest, ProduceResponse, RequestHeader
from kbroker.wire.produce import (
    NO_LEADER,
    decode_produce_request,
    encode_produce_response,
    new_produce_answer,
)

VERSIONS = st.integers(3, 11)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
INT16 = st.integers(-(2**15), 2**15 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
# Long enough, now and then, that compact lengths take more than one varint byte.
RECORDS = st.none() | st.binary(max_size=40) | st.binary(min_size=126, max_size=300)

requests = st.builds(
    ProduceRequest,
    transactional_id=st.none() | TEXT,
    acks=INT16,
    timeout_ms=INT32,
    topic_data=st.lists(
        st.builds(
            ProduceRequest.TopicProduceData,
            name=TEXT | st.text(min_size=130, max_size=140),
            partition_data=st.lists(
                st.builds(ProduceRequest.PartitionProduceData, index=INT32, records=RECORDS),
                max_size=4,
            ),
        ),
        max_size=3,
    ),
)


def generic_decode(frame: bytes) -> tuple[Any, Any]:
    """What decode_request gave before the fast path: the generic codec, header then body."""
    mv = memoryview(frame)
    version = int.from_bytes(frame[2:4], "big")
    header_version = protocol.request_header_version(ProduceRequest.API_KEY, version)
    header, pos = decode_struct(RequestHeader, header_version, mv, 0)
    body, _ = decode_struct(ProduceRequest, version, mv, pos)
    return header, body


@settings(max_examples=300, deadline=None)
@given(
    request=requests,
    version=VERSIONS,
    correlation_id=INT32,
    client_id=st.none() | TEXT,
)
def test_fast_decode_equals_the_generic_codec(
    request: Any, version: int, correlation_id: int, client_id: str | None
) -> None:
    frame = protocol.encode_request(
        ProduceRequest.API_KEY, version, correlation_id, client_id, request
    )[4:]
    fast = decode_produce_request(memoryview(frame))
    assert fast is not None, "an ordinary Produce frame is read by the fast path"
    assert fast == generic_decode(frame)
    header, body = fast
    assert body == request
    # Records are views of the frame itself, as the generic codec hands them out.
    for topic in body.topic_data:
        for partition in topic.partition_data:
            if partition.records is not None:
                assert isinstance(partition.records, memoryview)
                assert partition.records.obj is frame
    # decode_request is what the server calls: the same answer.
    assert protocol.decode_request(frame) == fast
    # A large request received in place is a view into a larger buffer (FrameDecoder's
    # spare buffer, after its size prefix): the same answer, records viewing that buffer.
    backing = bytearray(4) + frame + bytearray(9)
    view = memoryview(backing)[4 : 4 + len(frame)]
    assert decode_produce_request(view) == fast
    for topic in decode_produce_request(view)[1].topic_data:  # type: ignore[index]
        for partition in topic.partition_data:
            if partition.records is not None:
                assert partition.records.obj is backing


def _frame(version: int, request: Any) -> bytes:
    return protocol.encode_request(ProduceRequest.API_KEY, version, 7, "client", request)[4:]


def _one_partition(records: bytes | None = b"batch") -> Any:
    return ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout_ms=30_000,
        topic_data=[
            ProduceRequest.TopicProduceData(
                name="t",
                partition_data=[ProduceRequest.PartitionProduceData(index=0, records=records)],
            )
        ],
    )


@pytest.mark.parametrize("where", ["body", "topic", "partition"])
def test_tagged_fields_are_left_to_the_generic_codec(where: str) -> None:
    request = _one_partition()
    target = {
        "body": request,
        "topic": request.topic_data[0],
        "partition": request.topic_data[0].partition_data[0],
    }[where]
    target.unknown_tagged_fields = {9: b"x"}
    frame = _frame(9, request)
    assert decode_produce_request(memoryview(frame)) is None
    assert protocol.decode_request(frame) == generic_decode(frame)
    assert protocol.decode_request(frame)[1].topic_data[0].partition_data[0].records == b"batch"


@pytest.mark.parametrize("version", [2, 12])
def test_versions_outside_3_to_11_are_declined(version: int) -> None:
    frame = bytearray(_frame(9, _one_partition()))
    frame[2:4] = version.to_bytes(2, "big")
    assert decode_produce_request(memoryview(frame)) is None


@pytest.mark.parametrize("version", [8, 9])
def test_a_cut_frame_is_declined_and_the_generic_codec_rejects_it(version: int) -> None:
    frame = _frame(version, _one_partition(b"b" * 50))
    for cut in range(8, len(frame) - 1):
        short = frame[:cut]
        assert decode_produce_request(memoryview(short)) is None
        with pytest.raises(DecodeError):
            protocol.decode_request(short)


def test_a_null_topic_array_is_declined() -> None:
    frame = bytearray(_frame(8, ProduceRequest(acks=1, timeout_ms=1, topic_data=[])))
    frame[-4:] = (-1).to_bytes(4, "big", signed=True)  # TopicData count: null
    assert decode_produce_request(memoryview(frame)) is None
    with pytest.raises(DecodeError):
        protocol.decode_request(bytes(frame))


# -- the response -------------------------------------------------------------------------
ordinary_partitions = st.builds(
    ProduceResponse.PartitionProduceResponse,
    index=INT32,
    error_code=INT16,
    base_offset=INT64,
    log_append_time_ms=INT64,
    log_start_offset=INT64,
)
ordinary_responses = st.builds(
    ProduceResponse,
    responses=st.lists(
        st.builds(
            ProduceResponse.TopicProduceResponse,
            name=TEXT | st.text(min_size=130, max_size=140),
            partition_responses=st.lists(ordinary_partitions, max_size=4),
        ),
        max_size=3,
    ),
    throttle_time_ms=INT32,
)


def generic_encode(version: int, correlation_id: int, body: Any) -> bytes:
    """What encode_response_parts gave before the fast path."""
    return protocol.encode_response(ProduceRequest.API_KEY, version, correlation_id, body)


@settings(max_examples=300, deadline=None)
@given(body=ordinary_responses, version=VERSIONS, correlation_id=INT32)
def test_fast_encode_equals_the_generic_codec(body: Any, version: int, correlation_id: int) -> None:
    fast = encode_produce_response(version, correlation_id, body)
    assert fast is not None, "an ordinary response is written by the fast path"
    assert fast == generic_encode(version, correlation_id, body)
    assert protocol.encode_response_parts(
        ProduceRequest.API_KEY, version, correlation_id, body
    ) == [fast]


def _unusual(kind: str) -> Any:
    part = ProduceResponse.PartitionProduceResponse(index=0, error_code=87, base_offset=-1)
    body = ProduceResponse(
        responses=[ProduceResponse.TopicProduceResponse(name="t", partition_responses=[part])]
    )
    if kind == "record errors":
        part.record_errors = [
            ProduceResponse.BatchIndexAndErrorMessage(batch_index=0, batch_index_error_message="x")
        ]
    elif kind == "error message":
        part.error_message = "bad"
    elif kind == "leader hint":
        part.current_leader = ProduceResponse.LeaderIdAndEpoch(leader_id=2, leader_epoch=5)
    elif kind == "node endpoints":
        body.node_endpoints = [
            ProduceResponse.NodeEndpoint(node_id=2, host="h", port=9092, rack=None)
        ]
    elif kind == "tagged":
        part.unknown_tagged_fields = {5: b"z"}
    return body


@pytest.mark.parametrize(
    "kind", ["record errors", "error message", "leader hint", "node endpoints", "tagged"]
)
def test_unusual_responses_are_left_to_the_generic_codec(kind: str) -> None:
    body = _unusual(kind)
    assert encode_produce_response(11, 3, body) is None
    assert protocol.encode_response_parts(ProduceRequest.API_KEY, 11, 3, body) == [
        generic_encode(11, 3, body)
    ]


# -- the common answer: one topic, one partition ---------------------------------------------
# Unknown tags from 1 up: 0 is a known tagged field (CurrentLeader, NodeEndpoints).
TAGS = st.dictionaries(st.integers(1, 40), st.binary(max_size=4), max_size=2)
LEADERS = st.builds(
    ProduceResponse.LeaderIdAndEpoch,
    leader_id=st.just(-1) | INT32,
    leader_epoch=st.just(-1) | INT32,
)
ENDPOINTS = st.lists(
    st.builds(
        ProduceResponse.NodeEndpoint,
        node_id=INT32,
        host=TEXT,
        port=INT32,
        rack=st.none() | TEXT,
    ),
    max_size=2,
)
RECORD_ERRORS = st.lists(
    st.builds(
        ProduceResponse.BatchIndexAndErrorMessage,
        batch_index=INT32,
        batch_index_error_message=st.none() | TEXT,
    ),
    max_size=2,
)
NAMES = TEXT | st.text(min_size=120, max_size=140)


def _one(name: str, part: Any, throttle_time_ms: int) -> Any:
    return ProduceResponse(
        responses=[ProduceResponse.TopicProduceResponse(name=name, partition_responses=[part])],
        throttle_time_ms=throttle_time_ms,
    )


@settings(max_examples=400, deadline=None)
@given(part=ordinary_partitions, name=NAMES, throttle=INT32, version=VERSIONS, correlation_id=INT32)
def test_fast_encode_of_one_partition_equals_the_generic_codec(
    part: Any, name: str, throttle: int, version: int, correlation_id: int
) -> None:
    body = _one(name, part, throttle)
    fast = encode_produce_response(version, correlation_id, body)
    assert fast is not None, "the common answer is written by the fast path"
    assert fast == generic_encode(version, correlation_id, body)


@st.composite
def any_one_partition_answers(draw: Any) -> tuple[int, Any]:
    """(version, a one-topic one-partition answer using any field that version has)."""
    version = draw(VERSIONS)
    flexible = version >= 9
    part = ProduceResponse.PartitionProduceResponse(
        index=draw(INT32),
        error_code=draw(st.just(0) | INT16),
        base_offset=draw(INT64),
        log_append_time_ms=draw(INT64),
        log_start_offset=draw(INT64),
    )
    if version >= 8:
        part.record_errors = draw(RECORD_ERRORS)
        part.error_message = draw(st.none() | TEXT)
    body = _one(draw(NAMES), part, draw(INT32))
    if version >= 10:
        part.current_leader = draw(LEADERS)
        body.node_endpoints = draw(ENDPOINTS)
    if flexible:
        part.unknown_tagged_fields = draw(TAGS)
        body.responses[0].unknown_tagged_fields = draw(TAGS)
        body.unknown_tagged_fields = draw(TAGS)
        if version >= 10:
            part.current_leader.unknown_tagged_fields = draw(TAGS)
    return version, body


@settings(max_examples=400, deadline=None)
@given(answer=any_one_partition_answers(), correlation_id=INT32)
def test_any_one_partition_answer_is_encoded_as_the_generic_codec_does(
    answer: tuple[int, Any], correlation_id: int
) -> None:
    """Record errors, messages, leader hints, node endpoints, tagged fields: the fast path
    writes what the generic codec writes, or declines and the generic codec writes it."""
    version, body = answer
    expected = generic_encode(version, correlation_id, body)
    fast = encode_produce_response(version, correlation_id, body)
    assert fast is None or fast == expected
    assert protocol.encode_response_parts(
        ProduceRequest.API_KEY, version, correlation_id, body
    ) == [expected]


@settings(max_examples=200, deadline=None)
@given(name=NAMES, index=INT32)
def test_new_produce_answer_equals_the_constructors(name: str, index: int) -> None:
    body, part = new_produce_answer(name, index)
    assert body == ProduceResponse(
        responses=[
            ProduceResponse.TopicProduceResponse(
                name=name,
                partition_responses=[
                    ProduceResponse.PartitionProduceResponse(index=index, base_offset=-1)
                ],
            )
        ]
    )
    assert body.responses[0].partition_responses == [part]
    assert body.responses[0].partition_responses[0] is part
    assert part.current_leader is NO_LEADER
    assert NO_LEADER == ProduceResponse.LeaderIdAndEpoch()


def test_new_produce_answers_share_no_mutable_field() -> None:
    """Each answer's lists and dicts are its own: filling one (a failure's record errors,
    a leader hint's endpoints) leaves the next answer at its defaults."""
    first, part = new_produce_answer("t", 0)
    part.record_errors.append(ProduceResponse.BatchIndexAndErrorMessage(batch_index=1))
    part.unknown_tagged_fields[1] = b"x"
    first.node_endpoints.append(ProduceResponse.NodeEndpoint(node_id=1, host="h", port=1))
    first.unknown_tagged_fields[2] = b"y"
    first.responses[0].unknown_tagged_fields[3] = b"z"
    first.responses[0].partition_responses.append(part)
    first.responses.append(first.responses[0])
    second, _ = new_produce_answer("t", 0)
    assert second == ProduceResponse(
        responses=[
            ProduceResponse.TopicProduceResponse(
                name="t",
                partition_responses=[
                    ProduceResponse.PartitionProduceResponse(index=0, base_offset=-1)
                ],
            )
        ]
    )
