"""Zero-copy fetch responses: sendfile bytes, segment lifetime, ordering with plain responses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

from kbroker.handlers.fetch import FetchedRecords
from kbroker.log.config import LogConfig
from kbroker.log.partition import PartitionLog
from kbroker.server import SENDFILE_MIN, RegionTruncated, close_parts, prepare_parts, send_parts
from kbroker.wire.messages import ApiVersionsRequest, FetchResponse, MetadataRequest
from kbroker.wire.protocol import (
    decode_response,
    encode_request,
    encode_response,
    encode_response_parts,
)
from kbroker.wire.records import Record, build_batch
from tests.kbroker.helpers import create_topic, fetch_request, produce, produce_request


def _batch(n: int, size: int, start: int = 0) -> bytes:
    return build_batch(
        [
            Record(key=b"k%d" % i, value=bytes([i % 251]) * size, timestamp=1_000 + i)
            for i in range(start, start + n)
        ]
    )


def _open_log(path: Path, **config: Any) -> PartitionLog:
    return PartitionLog.open(path, LogConfig(**config))


def _fetch_body(regions: list[Any]) -> FetchResponse:
    """A Fetch response whose one partition carries ``regions`` as FetchedRecords."""
    part = FetchResponse.PartitionData(
        partition_index=0, high_watermark=10, records=FetchedRecords(regions)
    )
    return FetchResponse(
        responses=[FetchResponse.FetchableTopicResponse(topic="t", partitions=[part])]
    )


async def _send_and_receive(items: list[Any]) -> bytes:
    """send_parts over a real socket pair; everything the peer receives."""
    a, b = trio.socket.socketpair()
    received = bytearray()
    with a, b:
        async with trio.open_nursery() as nursery:

            async def reader() -> None:
                while chunk := await b.recv(1 << 20):
                    received.extend(chunk)

            nursery.start_soon(reader)
            try:
                await send_parts(a, items)
            finally:
                a.shutdown(trio.socket.SHUT_WR)
    return bytes(received)


async def test_a_bytes_answer_larger_than_the_socket_buffer_arrives_whole() -> None:
    # The first write takes only part of it (the rest waits for the reader); a small
    # one goes in one write. Either way every byte arrives, in order.
    large = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    assert await _send_and_receive([large]) == large
    assert await _send_and_receive([b"small"]) == b"small"


async def test_sendfile_bytes_equal_the_plain_encoding(tmp_path: Path) -> None:
    log = _open_log(tmp_path / "t-0")
    # Segments of big batches (sendfile) and of small ones (copied): one region each.
    for i in range(6):
        log.append(_batch(40, 2_000) if i % 2 else _batch(3, 10))
        log.roll()
    result = log.read(0, 10 * 1024 * 1024)
    assert len(result.regions) > 1
    assert any(len(r) >= SENDFILE_MIN for r in result.regions)
    assert any(len(r) < SENDFILE_MIN for r in result.regions)
    body = _fetch_body(result.regions)
    expected = encode_response(1, 12, 42, body)
    items = prepare_parts(encode_response_parts(1, 12, 42, body))
    try:
        assert await _send_and_receive(items) == expected
    finally:
        close_parts(items)
    log.close()


async def test_segment_deleted_by_retention_during_a_response_still_sends_its_bytes(
    tmp_path: Path,
) -> None:
    clock = [1_000.0]
    log = PartitionLog.open(
        tmp_path / "t-0",
        LogConfig(segment_bytes=100_000, retention_ms=1_000),
        clock=lambda: clock[0],
    )
    for _ in range(4):
        log.append(_batch(30, 2_000))
    result = log.read(0, 10 * 1024 * 1024)
    body = _fetch_body(result.regions)
    expected = encode_response(1, 12, 7, body)
    items = prepare_parts(encode_response_parts(1, 12, 7, body))
    try:
        # Retention runs while the response waits to be sent: old segments go away
        # (unlinked, their descriptors closed), then the log itself is closed.
        clock[0] += 3_600
        assert log.enforce_retention() > 0
        log.close()
        assert await _send_and_receive(items) == expected
    finally:
        close_parts(items)


async def test_truncated_segment_fails_the_response_cleanly(tmp_path: Path) -> None:
    log = _open_log(tmp_path / "t-0")
    log.append(_batch(30, 2_000))
    result = log.read(0, 10 * 1024 * 1024)
    items = prepare_parts(encode_response_parts(1, 12, 7, _fetch_body(result.regions)))
    try:
        # The file shrinks under the response: its size prefix is already promised.
        (path,) = (tmp_path / "t-0").glob("*.log")
        os.truncate(path, 100)
        failed = False
        try:
            await _send_and_receive(items)
        except* RegionTruncated:
            failed = True
        assert failed
    finally:
        close_parts(items)
        log.close()


async def test_pipelined_fetches_and_plain_responses_come_back_in_order(server: Any) -> None:
    create_topic(server, "big")
    client = await server.connect()
    # One partition holds a batch large enough for sendfile, then a small one.
    big = _batch(50, 2_000)
    small = _batch(2, 10, start=50)
    assert (await produce(client, "big", 0, big)).base_offset == 0
    assert (await produce(client, "big", 0, small)).base_offset == 50
    fetch_version = 12  # by topic name
    log = server.broker.topics.get("big").partitions[0].log
    expected = {
        0: log.read(0, 1 << 20).read_bytes(),
        2: log.read(50, 1 << 20).read_bytes(),
        5: log.read(0, 1).read_bytes(),
    }
    assert len(expected[0]) >= SENDFILE_MIN > len(expected[2])
    requests = [
        (1, fetch_version, fetch_request("big", 0, 0)),  # sendfile
        (18, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1")),
        (1, fetch_version, fetch_request("big", 0, 50)),  # small: copied
        (3, 12, MetadataRequest(topics=None)),
        (0, 9, produce_request("big", 0, _batch(1, 10, start=52))),
        (1, fetch_version, fetch_request("big", 0, 0, partition_max_bytes=1)),
    ]
    # All requests in one write: the broker must answer them strictly in order.
    await client.send_raw(
        b"".join(
            encode_request(key, ver, 100 + i, "t", body)
            for i, (key, ver, body) in enumerate(requests)
        )
    )
    for i, (key, ver, _body) in enumerate(requests):
        frame = await client.receive_raw()
        assert frame is not None
        correlation_id, body = decode_response(key, ver, frame)
        assert correlation_id == 100 + i
        # Byte-exact: re-encoding the decoded response reproduces the frame received.
        assert encode_response(key, ver, correlation_id, body)[4:] == frame
        if key == 1:
            assert bytes(body.responses[0].partitions[0].records) == expected[i]
    await client.aclose()
