"""Hostile and broken input: each bad connection is logged with its peer address and
closed; a bystander connection keeps getting correct answers; nothing rejected is
written."""

from __future__ import annotations

import logging
import random
import struct

import pytest
import trio

from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ApiVersionsRequest,
    DescribeClusterRequest,
    MetadataRequest,
    ProduceRequest,
)
from kbroker.wire.protocol import decode_response, encode_request
from kbroker.wire.records import Record, build_batch
from tests.kbroker.conftest import RawClient
from tests.kbroker.helpers import fetch_request, produce_request

GUARD = "guard"


def _peer_of(client: RawClient) -> str:
    host, port = client.stream.socket.getsockname()[:2]
    return f"{host}:{port}"


def _produce(records: bytes, *, acks: int = 1) -> ProduceRequest:
    return produce_request(GUARD, 0, records, acks=acks, timeout_ms=1000)


def _batch(value: bytes = b"value") -> bytes:
    return build_batch([Record(key=b"k", value=value, timestamp=1_700_000_000_000)])


class Harness:
    """A broker with a guard topic, a bystander connection, and log-end-offset checks."""

    def __init__(self, server, bystander: RawClient) -> None:
        self.server = server
        self.bystander = bystander
        self.partition = server.broker.topics.partition(GUARD, 0)
        self.expected_end = self.partition.log.log_end_offset

    async def check_bystander(self) -> None:
        """The bystander's requests still work, and its produce lands exactly once."""
        metadata = await self.bystander.request(
            MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=GUARD)])
        )
        assert metadata.topics[0].error_code == ErrorCode.NONE
        assert metadata.brokers[0].port == self.server.address[1]
        produced = await self.bystander.request(_produce(_batch()), version=9)
        partition = produced.responses[0].partition_responses[0]
        assert partition.error_code == ErrorCode.NONE
        assert partition.base_offset == self.expected_end
        self.expected_end += 1
        assert self.partition.log.log_end_offset == self.expected_end


@pytest.fixture
async def harness(make_server):
    server = await make_server(socket_request_max_bytes=64 * 1024, auto_create_topics_enable=False)
    server.broker.topics.create(GUARD, 1)
    bystander = await server.connect()
    h = Harness(server, bystander)
    await h.check_bystander()
    return h


async def _expect_closed_and_logged(
    harness: Harness, data: bytes, caplog, *, eof: bool = False, fragment: str = ""
) -> None:
    victim = await harness.server.connect()
    peer = _peer_of(victim)
    with caplog.at_level(logging.INFO, logger="kbroker.server"):
        await victim.send_raw(data)
        if eof:
            await victim.stream.send_eof()
        assert await victim.receive_raw() is None, "the broker should close the connection"
        await victim.aclose()
    logged = [r.getMessage() for r in caplog.records if peer in r.getMessage()]
    assert logged, f"nothing logged for {peer}"
    assert any(fragment in m for m in logged), logged
    caplog.clear()
    assert harness.partition.log.log_end_offset == harness.expected_end
    await harness.check_bystander()


async def test_http_request(harness, caplog) -> None:
    await _expect_closed_and_logged(
        harness, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", caplog, fragment="frame size"
    )


@pytest.mark.parametrize("size", [-1, -(2**31), 2**31 - 1, 64 * 1024 + 1])
async def test_bad_sizes(harness, caplog, size: int) -> None:
    # Rejected as soon as the 4 size bytes arrive: nothing is buffered for it.
    await _expect_closed_and_logged(
        harness, struct.pack(">i", size) + b"\x00" * 16, caplog, fragment=str(size)
    )


@pytest.mark.parametrize("cut", [1, 3, 4, 10])
async def test_truncated_frame_then_eof(harness, caplog, cut: int) -> None:
    frame = encode_request(0, 9, 1, "cut", _produce(_batch()))
    await _expect_closed_and_logged(
        harness, frame[:cut], caplog, eof=True, fragment="middle of a request"
    )


async def test_truncated_produce_body(harness, caplog) -> None:
    # A correct size prefix but the body ends early: the whole frame arrives, and the
    # decoder finds it short.
    frame = encode_request(0, 9, 1, "short", _produce(_batch()))
    payload = frame[4:-20]
    await _expect_closed_and_logged(
        harness, struct.pack(">i", len(payload)) + payload, caplog, fragment="malformed"
    )


@pytest.mark.parametrize(
    "body", [b"\xff" * 40, b"\x00\x03\x00\x0c" + b"\xee" * 60, b"\x00\x00\x00\x09" + b"\x7f" * 100]
)
async def test_garbage_body(harness, caplog, body: bytes) -> None:
    await _expect_closed_and_logged(harness, struct.pack(">i", len(body)) + body, caplog)


async def test_unknown_api_key(harness, caplog) -> None:
    payload = struct.pack(">hhih", 12345, 0, 1, 0)
    await _expect_closed_and_logged(
        harness, struct.pack(">i", len(payload)) + payload, caplog, fragment="12345"
    )


async def test_corrupt_batch_is_refused_not_written(harness) -> None:
    # A well-formed request with a bad record batch is answered (Kafka keeps the
    # connection) with CORRUPT_MESSAGE, and nothing reaches the log.
    batch = bytearray(_batch())
    batch[-1] ^= 0xFF  # breaks the CRC
    client = await harness.server.connect()
    response = await client.request(_produce(bytes(batch)), version=9)
    assert response.responses[0].partition_responses[0].error_code == ErrorCode.CORRUPT_MESSAGE
    assert harness.partition.log.log_end_offset == harness.expected_end
    await harness.check_bystander()


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        pos = rng.randrange(len(out)) if out else 0
        if choice < 0.5 and out:
            out[pos] = rng.randrange(256)
        elif choice < 0.7:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice < 0.85 and out:
            del out[pos : pos + rng.randint(1, 8)]
        else:
            out = out[:pos]
    return bytes(out)


async def _drain(client: RawClient) -> list[bytes]:
    frames: list[bytes] = []
    while (frame := await client.receive_raw()) is not None:
        frames.append(frame)
    return frames


async def test_mutated_frame_stream(harness, caplog) -> None:
    """Bounded fuzz with a fixed seed: whatever happens to each victim connection, the
    broker survives, never hits an unexpected error, and writes only what it says it did."""
    rng = random.Random(20240611)
    good_batch = _batch(b"fuzz")
    templates = [
        encode_request(
            3,
            12,
            1,
            "fuzz",
            MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=GUARD)]),
        ),
        encode_request(3, 1, 1, "fuzz", MetadataRequest(topics=None)),
        encode_request(
            18,
            3,
            1,
            "fuzz",
            ApiVersionsRequest(client_software_name="fuzz", client_software_version="1"),
        ),
        encode_request(60, 1, 1, "fuzz", DescribeClusterRequest()),
        encode_request(
            1,
            12,
            1,
            "fuzz",
            fetch_request(GUARD, 0, 0, max_bytes=1 << 20),
        ),
    ]
    produce_frame = encode_request(0, 9, 1, "fuzz", _produce(good_batch))
    records_at = produce_frame.index(good_batch)
    with caplog.at_level(logging.INFO):
        for i in range(240):
            victim = await harness.server.connect()
            if i % 3 == 0:
                # Mutate only the records of a Produce: header and acks stay intact, so every
                # write the broker makes is acknowledged to us and can be counted.
                records = _mutate(rng, good_batch)
                data = encode_request(0, 9, 1, "fuzz", _produce(records))
            else:
                data = _mutate(rng, rng.choice(templates))
            await victim.send_raw(data)
            await victim.stream.send_eof()
            frames = await _drain(victim)
            await victim.aclose()
            if i % 3 == 0 and frames:
                _, response = decode_response(0, 9, frames[0])
                if response.responses[0].partition_responses[0].error_code == ErrorCode.NONE:
                    harness.expected_end += 1
            assert harness.partition.log.log_end_offset == harness.expected_end
            if i % 40 == 39:
                await harness.check_bystander()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert records_at > 0
    await harness.check_bystander()


async def test_many_bad_clients_at_once(harness, caplog) -> None:
    async def one(data: bytes) -> None:
        victim = await harness.server.connect()
        await victim.send_raw(data)
        assert await victim.receive_raw() is None

    with caplog.at_level(logging.WARNING, logger="kbroker.server"):
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(one, struct.pack(">i", -1 - i))
    await harness.check_bystander()
