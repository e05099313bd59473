"""What one connection, careless or hostile, can hold: its waits, its buffers, its count.

A client that went away in the middle of a long poll, one that never reads its
responses, one that announces a huge request and trickles it, and many
connections from one address must not keep the broker's descriptors or memory,
nor lock other clients out.
"""

from __future__ import annotations

import logging
import socket
import struct
import tracemalloc

import pytest
import trio

from kbroker.config import BrokerConfig, ConfigError
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import ApiVersionsRequest
from kbroker.wire.protocol import encode_request
from kbroker.wire.records import Record, build_batch
from tests.kbroker.helpers import create_topic, fetch_request, produce, produce_request, records


def _ping() -> ApiVersionsRequest:
    return ApiVersionsRequest(client_software_name="kbroker-tests", client_software_version="1")


def _ping_frame(correlation_id: int = 1) -> bytes:
    return encode_request(18, 3, correlation_id, "ping", _ping())


def _big_batch(size: int) -> bytes:
    return build_batch([Record(value=b"v" * size, timestamp=1)])


async def _wait_until(predicate, timeout_s: float = 10.0) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.01)


async def test_abandoned_long_poll_is_cancelled_when_the_peer_closes(server, caplog) -> None:
    create_topic(server, "quiet")
    client = await server.connect()
    assert (await client.request(_ping())).error_code == ErrorCode.NONE
    # max_wait_ms at its largest: without watching the peer this waits ~25 days.
    await client.send_request(fetch_request("quiet", 0, 0, max_wait_ms=2**31 - 1), version=12)
    await _wait_until(lambda: any(c.busy for c in server.server.connections))
    with caplog.at_level(logging.INFO, logger="kbroker.server"):
        await client.aclose()
        await _wait_until(lambda: not server.server.connections, timeout_s=5)
    assert any("closed while its request" in r.getMessage() for r in caplog.records)
    # A client going away is not a handler failure: nothing logged as an error.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The broker still serves, and a long poll whose client stays is answered as before.
    other = await server.connect()
    await other.send_request(fetch_request("quiet", 0, 0, max_wait_ms=2**31 - 1), version=12)
    await produce(other_producer := await server.connect(), "quiet", 0, records(1))
    await other_producer.aclose()
    response = await other.receive_response(1, 12)
    assert response.responses[0].partitions[0].high_watermark == 1


async def test_pipelined_request_during_a_long_poll_keeps_the_connection(server) -> None:
    # Bytes behind a waiting request are the next request, not a close.
    create_topic(server, "quiet")
    client = await server.connect()
    fetch = fetch_request("quiet", 0, 0, max_wait_ms=300)
    await client.send_raw(encode_request(1, 12, 7, "c", fetch) + _ping_frame(8))
    assert (await client.receive_response(1, 12, 7)).error_code == ErrorCode.NONE
    assert (await client.receive_response(18, 3, 8)).error_code == ErrorCode.NONE


async def test_a_client_that_never_reads_its_responses_is_idle(
    make_server, autojump_clock, caplog
) -> None:
    server = await make_server(connections_max_idle_ms=60_000)
    create_topic(server, "big")
    producer = await server.connect()
    await produce(producer, "big", 0, _big_batch(900_000))
    await producer.aclose()
    # A small receive window, and more responses asked for than the kernel buffers hold.
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(server.address)
    reader = trio.SocketStream(sock)
    fetch = fetch_request("big", 0, 0, partition_max_bytes=1 << 20)
    await reader.send_all(b"".join(encode_request(1, 12, i, "c", fetch) for i in range(16)))
    with caplog.at_level(logging.INFO, logger="kbroker.server"):
        await trio.sleep(50)
        assert len(server.server.connections) == 1  # not idle yet: 50 s < 60 s
        await trio.sleep(20)
        assert not server.server.connections
    assert any("read nothing of its response" in r.getMessage() for r in caplog.records)
    await reader.aclose()


async def test_a_huge_size_prefix_holds_what_arrives(server) -> None:
    # 30 connections announcing 100 MiB (socket.request.max.bytes) and sending a few
    # bytes held 3 GB when the whole announced size was allocated at once.
    clients = [await server.connect() for _ in range(30)]
    tracemalloc.start()
    try:
        for client in clients:
            await client.send_raw(struct.pack(">i", 100 * 1024 * 1024) + b"\0" * 1000)
        await _wait_until(lambda: server.server.request_bytes >= 30 * 1004)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 30 * 2 * 1024 * 1024
    ping = await server.connect()
    assert (await ping.request(_ping())).error_code == ErrorCode.NONE
    for client in clients:
        await client.aclose()
    await _wait_until(lambda: server.server.request_bytes == 0)


async def test_queued_max_request_bytes_stops_reading_new_requests(
    make_server, autojump_clock
) -> None:
    server = await make_server(queued_max_request_bytes=100_000)
    create_topic(server, "t")
    big = encode_request(0, 9, 1, "p", produce_request("t", 0, _big_batch(300_000)))
    writer = await server.connect()
    await writer.send_raw(big[:200_000])  # a request begun, 200 kB held
    await _wait_until(lambda: server.server.request_bytes >= 200_000)
    blocked = await server.connect()
    await blocked.send_raw(_ping_frame())
    with trio.move_on_after(30) as waited:
        await blocked.receive_raw()
    assert waited.cancelled_caught  # no room: the new request is not read
    # The request already begun is read to its end and answered; then memory frees.
    await writer.send_raw(big[200_000:])
    assert (await writer.receive_response(0, 9, 1)).responses[0].name == "t"
    assert (await blocked.receive_response(18, 3, 1)).error_code == ErrorCode.NONE


async def test_max_connections_per_ip_closes_the_extra_connection(make_server, caplog) -> None:
    server = await make_server(max_connections_per_ip=2)
    first, second = await server.connect(), await server.connect()
    with caplog.at_level(logging.INFO, logger="kbroker.server"):
        third = await server.connect()
        await third.send_raw(_ping_frame())
        assert await third.receive_raw() is None
    assert any("max.connections.per.ip (2)" in r.getMessage() for r in caplog.records)
    for client in (first, second):
        assert (await client.request(_ping())).error_code == ErrorCode.NONE
    await first.aclose()
    await _wait_until(lambda: len(server.server.connections) == 1)
    again = await server.connect()
    assert (await again.request(_ping())).error_code == ErrorCode.NONE


async def test_max_connections_makes_new_connections_wait_for_a_slot(
    make_server, autojump_clock
) -> None:
    server = await make_server(max_connections=2)
    first, second = await server.connect(), await server.connect()
    waiting = await server.connect()  # in the listen backlog: not accepted yet
    await waiting.send_raw(_ping_frame())
    with trio.move_on_after(30) as waited:
        await waiting.receive_raw()
    assert waited.cancelled_caught
    assert len(server.server.connections) == 2
    await first.aclose()
    assert (await waiting.receive_response(18, 3, 1)).error_code == ErrorCode.NONE
    assert (await second.request(_ping())).error_code == ErrorCode.NONE


async def test_max_connections_per_ip_overrides_raise_one_address(make_server) -> None:
    server = await make_server(
        max_connections_per_ip=1, max_connections_per_ip_overrides="localhost:3"
    )
    clients = [await server.connect() for _ in range(3)]  # 127.0.0.1 is localhost
    for client in clients:
        assert (await client.request(_ping())).error_code == ErrorCode.NONE
    extra = await server.connect()
    await extra.send_raw(_ping_frame())
    assert await extra.receive_raw() is None


def test_max_connections_per_ip_overrides_format_is_checked() -> None:
    with pytest.raises(ConfigError, match="max.connections.per.ip.overrides"):
        BrokerConfig.from_properties({"max.connections.per.ip.overrides": "hostA:x"})
