"""Golden record batches written by librdkafka (confluent-kafka 2.16), one per codec.

Captured from a kbroker segment after ``Producer(compression.type=...)`` sent four
records (key None / b"key-N", value None for record 2, headers on odd records,
timestamps 1_700_000_000_000 + N). The broker patched only base offset and leader
epoch, which the CRC does not cover. librdkafka writes raw (unframed) snappy and
LZ4 frames of independent blocks; the zstd capture holds a one-record
uncompressed batch followed by a zstd batch (linger split them).
"""

from __future__ import annotations

import pytest

from kbroker.wire import records as R

GOLDEN = {
    "none": (
        "0000000000000000000002ee00000000021968560c0000000000030000018bcfe568000000018bcfe56803ff"
        "ffffffffffffffffffffffffff000000040c000000010000e6020002020a6b65792d31c00276616c75652d31"
        "2d76616c75652d312d76616c75652d312d76616c75652d312d76616c75652d312d76616c75652d312d76616c"
        "75652d312d76616c75652d312d76616c75652d312d76616c75652d312d76616c75652d312d76616c75652d31"
        "2d76616c75652d312d76616c75652d312d76616c75652d312d76616c75652d312d76616c75652d312d76616c"
        "75652d312d76616c75652d312d76616c75652d312d0402680278026e01160004040a6b65792d320100e60700"
        "06060a6b65792d33c00776616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d7661"
        "6c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d"
        "332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d7661"
        "6c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d"
        "332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d7661"
        "6c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d"
        "332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d7661"
        "6c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d"
        "332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d7661"
        "6c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d"
        "332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d76616c75652d332d7661"
        "6c75652d332d0402680278026e01"
    ),
    "gzip": (
        "0000000000000000000000890000000002b788ccf70001000000030000018bcfe568000000018bcfe56803ff"
        "ffffffffffffffffffffffffff000000041f8b0800000000000003e361606060646078c6c4c0c4c4959d5aa9"
        "6b7880a92c31a73455d75077b0d22c4c194c154c798c620c2c2c60371b31323c6367606303738c0fb043141a"
        "eb8ed2c39386250000a47babc6bd020000"
    ),
    "snappy": (
        "00000000000000000000009e000000000289f2395b0002000000030000018bcfe568000000018bcfe56803ff"
        "ffffffffffffffffffffffffff00000004bd056c0c000000010000e6020002020a6b65792d31c00276616c75"
        "652d312dfe0800fe08005e08002c0402680278026e011600040405b41c320100e607000606050d0833c00709"
        "b900330dc1fe0800fe0800fe0800fe0800fe0800fe0800fe08004608001c0402680278026e01"
    ),
    "lz4": (
        "0000000000000000000000930000000002429ec2d60003000000030000018bcfe568000000018bcfe56803ff"
        "ffffffffffffffffffffffffff0000000404224d1860408253000000ff0d0c000000010000e6020002020a6b"
        "65792d31c00276616c75652d312d080085c10402680278026e0116000404b40081320100e6070006060d0032"
        "33c007b9001333c1000f0800ffc0800402680278026e0100000000"
    ),
    "zstd": (
        "0000000000000000000000380000000002d78a1d080000000000000000018bcfe568000000018bcfe56800ff"
        "ffffffffffffffffffffffffff000000010c0000000100000000000000000001000000ab0000000002cf1168"
        "830004000000020000018bcfe568010000018bcfe56803ffffffffffffffffffffffffffff0000000328b52f"
        "fd00588d030062440f1ab025e90c0b1d86e11009444231912949c113a62b008ed8571219447535f5feffffff"
        "bfb0ef581ac9d05220aaaba9678e41874100ca8e09a02220d9161700472b0a803be0187002dc01c78013e00e"
        "38069c0077c031e004b8038e0127c01d700c9ce0191c308ddf9e9056461526"
    ),
}


def expected(n: int) -> tuple[int, int, bytes | None, bytes | None, list]:
    """The record librdkafka was asked to send as record ``n``."""
    key = None if n == 0 else f"key-{n}".encode()
    value = None if n == 2 else (f"value-{n}-" * (n * 20)).encode()
    headers = [("h", b"x"), ("n", None)] if n % 2 else []
    return n, 1_700_000_000_000 + n, key, value, headers


@pytest.mark.parametrize("codec", list(GOLDEN))
def test_librdkafka_batches_validate_and_read_back(codec: str) -> None:
    data = bytes.fromhex(GOLDEN[codec])
    end, found = R.valid_prefix(data)
    assert end == len(data)
    got = []
    for pos, h in found:
        assert R.validate_batch(data, pos) == h
        R.check_records(data, pos)
        got += [
            (r.offset, r.timestamp, r.key, r.value, r.headers) for r in R.iter_records(data, pos)
        ]
    assert got == [expected(n) for n in range(4)]
    codecs = {h.compression for _, h in found}
    assert {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec] in codecs


def test_librdkafka_snappy_is_raw_not_xerial() -> None:
    data = bytes.fromhex(GOLDEN["snappy"])
    assert data[61:69] != b"\x82SNAPPY\x00"
