"""The console's actions (only with ``kbroker.http.console.actions``): create or delete a topic,
produce a test message, reset a group's offsets.

Each action is an ordinary Kafka request sent to this broker's own listener, so it goes
through exactly the validation, logging, metrics and (in cluster mode) routing any admin
client gets; the console adds no second way to change state.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

import trio

from kbroker.wire.errors import ErrorCode
from kbroker.wire.frames import FrameDecoder
from kbroker.wire.messages import (
    CreateTopicsRequest,
    DeleteTopicsRequest,
    OffsetCommitRequest,
    ProduceRequest,
)
from kbroker.wire.protocol import decode_response, encode_request
from kbroker.wire.records import Record, build_batch

if TYPE_CHECKING:
    from kbroker.server import Server

CLIENT_ID = "kbroker-console"
TIMEOUT_S = 30.0
_correlation = itertools.count(1)


class ActionError(Exception):
    """The broker refused the action; ``str()`` says why, for the page."""


async def kafka_request(server: Server, body: Any, version: int) -> Any:
    """Send ``body`` to this broker's Kafka listener; the decoded response body."""
    host, port = server.address
    api_key = body.API_KEY
    correlation_id = next(_correlation)
    with trio.fail_after(TIMEOUT_S):
        stream = await trio.open_tcp_stream(
            host if host not in ("", "0.0.0.0", "::") else "127.0.0.1", port
        )
        async with stream:
            await stream.send_all(encode_request(api_key, version, correlation_id, CLIENT_ID, body))
            decoder = FrameDecoder(max_frame_size=1 << 30)
            while (frame := decoder.next_frame()) is None:
                data = await stream.receive_some(65536)
                if not data:
                    raise ActionError("the broker closed the connection")
                decoder.feed(data)
    _, response = decode_response(api_key, version, frame)
    return response


def _check(code: int, message: str | None = None) -> None:
    if code:
        name = ErrorCode(code).name if code in ErrorCode._value2member_map_ else str(code)
        raise ActionError(f"{name}{': ' + message if message else ''}")


async def create_topic(server: Server, name: str, partitions: int, replication: int) -> None:
    request = CreateTopicsRequest(
        topics=[
            CreateTopicsRequest.CreatableTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=replication,
                assignments=[],
                configs=[],
            )
        ],
        timeout_ms=int(TIMEOUT_S * 1000),
        validate_only=False,
    )
    response = await kafka_request(server, request, 7)
    (result,) = response.topics
    _check(result.error_code, result.error_message)


async def delete_topic(server: Server, name: str) -> None:
    request = DeleteTopicsRequest(topic_names=[name], timeout_ms=int(TIMEOUT_S * 1000))
    response = await kafka_request(server, request, 5)
    (result,) = response.responses
    _check(result.error_code, getattr(result, "error_message", None))


async def produce(
    server: Server,
    topic: str,
    partition: int,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]],
) -> int:
    """Append one record; its offset."""
    batch = build_batch(
        [Record(key=key, value=value, headers=headers, timestamp=int(time.time() * 1000))]
    )
    request = ProduceRequest(
        acks=-1,
        timeout_ms=int(TIMEOUT_S * 1000),
        topic_data=[
            ProduceRequest.TopicProduceData(
                name=topic,
                partition_data=[
                    ProduceRequest.PartitionProduceData(index=partition, records=batch)
                ],
            )
        ],
    )
    response = await kafka_request(server, request, 9)
    part = response.responses[0].partition_responses[0]
    _check(part.error_code, part.error_message)
    return int(part.base_offset)


async def commit_offsets(server: Server, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit ``offsets`` for ``group`` as an admin tool does (no generation, no member): the
    coordinator accepts it only while the group has no active members, as Kafka does for
    kafka-consumer-groups --reset-offsets."""
    by_topic: dict[str, list[Any]] = {}
    for (topic, index), offset in sorted(offsets.items()):
        by_topic.setdefault(topic, []).append(
            OffsetCommitRequest.OffsetCommitRequestPartition(
                partition_index=index,
                committed_offset=offset,
                committed_leader_epoch=-1,
                committed_metadata="",
            )
        )
    request = OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        group_instance_id=None,
        topics=[
            OffsetCommitRequest.OffsetCommitRequestTopic(name=t, partitions=ps)
            for t, ps in by_topic.items()
        ],
    )
    response = await kafka_request(server, request, 8)
    for topic in response.topics:
        for p in topic.partitions:
            _check(p.error_code)
