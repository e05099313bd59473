"""Bounded fuzzing: mutated real frames only ever raise DecodeError from decode_request."""

from __future__ import annotations

import random
from pathlib import Path

from kbroker.wire import protocol
from kbroker.wire.errors import DecodeError

GOLDEN = Path(__file__).parent / "golden"
ROUNDS = 4000
LENGTHS = [
    b"\xff\xff",
    b"\x7f\xff",
    b"\x80\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\xff\xff\xff\xff\x0f",
    b"\xff",
    b"\x00",
    b"\xfe\xff\xff\xff\xff\xff",
]


def _corpus() -> list[bytes]:
    frames = [bytes.fromhex(p.read_text()) for p in sorted(GOLDEN.glob("*.hex"))]
    assert frames, "golden frames missing"
    return frames


def _mutate(rng: random.Random, frame: bytes, corpus: list[bytes]) -> bytes:
    data = bytearray(frame)
    op = rng.randrange(5)
    if op == 0:  # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif op == 1:  # truncation
        del data[rng.randrange(len(data)) :]
    elif op == 2:  # length-field corruption: plant a huge/negative/long-varint length
        i = rng.randrange(8, len(data))
        patch = rng.choice(LENGTHS)
        data[i : i + len(patch)] = patch
    elif op == 3:  # splice two frames together at random points
        other = rng.choice(corpus)
        data = data[: rng.randrange(len(data))] + other[rng.randrange(len(other)) :]
    else:  # random bytes over a random range (after the api key/version, to reach bodies)
        i = rng.randrange(4, len(data))
        n = rng.randint(1, 8)
        data[i : i + n] = bytes(rng.randrange(256) for _ in range(n))
    return bytes(data)


def test_only_decode_errors_escape_decode_request() -> None:
    rng = random.Random(20261122)
    corpus = _corpus()
    outcomes = {"ok": 0, "decode_error": 0}
    for _ in range(ROUNDS):
        frame = _mutate(rng, rng.choice(corpus), corpus)
        try:
            header, body = protocol.decode_request(frame)
        except DecodeError:
            outcomes["decode_error"] += 1
            continue
        outcomes["ok"] += 1
        # Whatever decodes is a valid value of its schema, so it must re-encode.
        protocol.encode_request(
            header.request_api_key,
            header.request_api_version,
            header.correlation_id,
            header.client_id,
            body,
        )
    # The mutations reach both outcomes, so the test exercises real parsing paths.
    assert outcomes["ok"] > 100 and outcomes["decode_error"] > 1000, outcomes
