"""Bounded fuzz: mutated batches only ever raise DecodeError subclasses."""

from __future__ import annotations

import random
import struct

import crc32c
import pytest

from kbroker.wire import records as R
from kbroker.wire.errors import DecodeError

SEED = 20240611
CAP = 1 << 20  # small decompression cap so mutated size fields are cheap


def seeds() -> list[bytes]:
    out = []
    for codec in range(5):
        recs = [
            R.Record(
                key=b"key%d" % i,
                value=bytes(range(i * 7 % 256)) * 3,
                timestamp=1000 + i,
                headers=[("h", b"v"), ("n", None)] if i % 2 else [],
            )
            for i in range(6)
        ]
        out.append(
            R.build_batch(recs, compression=codec, producer_id=3, producer_epoch=1, base_sequence=0)
        )
    out.append(
        R.build_control_batch(
            commit=True, producer_id=1, producer_epoch=0, coordinator_epoch=0, timestamp=5
        )
    )
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and buf:  # flip bits in one byte
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # random byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:  # truncate
            del buf[rng.randrange(len(buf) + 1) :]
        elif op == 3:  # insert junk
            pos = rng.randrange(len(buf) + 1)
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 4 and len(buf) >= 61:  # interesting value into a header int field
            off, fmt = rng.choice([(8, ">i"), (23, ">i"), (57, ">i"), (21, ">h")])
            values = (
                [0, -1, 1, 7, 1000, 2**31 - 1, -(2**31)] if fmt == ">i" else [0, 1, 5, 7, 0x23, -1]
            )
            struct.pack_into(fmt, buf, off, rng.choice(values))
        elif op == 5 and len(buf) > 61:  # mutate inside the records section
            buf[rng.randrange(61, len(buf))] = rng.randrange(256)
    # Most of the time fix length and CRC so the deep walk is reached.
    if len(buf) >= 61 and rng.random() < 0.7:
        if rng.random() < 0.8:
            struct.pack_into(">i", buf, 8, len(buf) - 12)
        struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    return bytes(buf)


@pytest.mark.parametrize("chunk", range(4))
def test_only_decode_errors_escape(chunk: int) -> None:
    rng = random.Random(SEED + chunk)
    base = seeds()
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(1500):
        data = mutate(rng, rng.choice(base))
        for fn in (
            lambda d: R.validate_batch(d),
            lambda d: R.check_records(d, max_decompressed_size=CAP),
            lambda d: list(R.iter_records(d, max_decompressed_size=CAP)),
            lambda d: R.valid_prefix(d),
        ):
            try:
                fn(data)
                outcomes["ok"] += 1
            except DecodeError:
                outcomes["rejected"] += 1
    # The mutations must exercise both sides, or the fuzz proves nothing.
    assert outcomes["ok"] > 100 and outcomes["rejected"] > 1000


def test_valid_prefix_never_raises_and_only_returns_crc_valid_batches() -> None:
    rng = random.Random(SEED)
    base = seeds()
    for _ in range(2000):
        blob = b"".join(
            mutate(rng, rng.choice(base)) if rng.random() < 0.3 else rng.choice(base)
            for _ in range(3)
        )
        end, found = R.valid_prefix(blob)
        assert 0 <= end <= len(blob)
        pos = 0
        for p, h in found:
            assert p == pos
            assert R.parse_header(blob, p) == h
            pos += h.size
        assert pos == end
