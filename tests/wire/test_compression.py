"""Codecs: interop with kafka-python's codecs, raw and xerial snappy, bomb caps."""

from __future__ import annotations

import os
import struct
import zlib

import cramjam
import lz4.frame
import pytest
from kafka import codec as kcodec

from kbroker.wire import compression as C
from kbroker.wire.errors import InvalidRecordBatch

DATA = os.urandom(5000) + b"abc" * 40_000 + bytes(range(256)) * 50
CODECS = [C.NONE, C.GZIP, C.SNAPPY, C.LZ4, C.ZSTD]
CAP = 10 * 1024 * 1024


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip(codec: int) -> None:
    assert C.decompress(codec, C.compress(codec, DATA)) == DATA
    assert C.decompress(codec, C.compress(codec, b"")) == b""


def test_decompresses_what_kafka_python_writes() -> None:
    assert C.decompress(C.GZIP, kcodec.gzip_encode(DATA)) == DATA
    assert C.decompress(C.SNAPPY, kcodec.snappy_encode(DATA, xerial_compatible=True)) == DATA
    assert C.decompress(C.SNAPPY, kcodec.snappy_encode(DATA, xerial_compatible=False)) == DATA
    assert C.decompress(C.LZ4, kcodec.lz4_encode(DATA)) == DATA
    assert C.decompress(C.ZSTD, kcodec.zstd_encode(DATA)) == DATA


def test_kafka_python_reads_what_we_write() -> None:
    assert kcodec.gzip_decode(C.compress(C.GZIP, DATA)) == DATA
    assert kcodec.snappy_decode(C.compress(C.SNAPPY, DATA)) == DATA
    assert kcodec.lz4_decode(C.compress(C.LZ4, DATA)) == DATA
    assert kcodec.zstd_decode(C.compress(C.ZSTD, DATA)) == DATA


def test_snappy_is_written_xerial_framed_like_java() -> None:
    out = C.compress(C.SNAPPY, DATA)
    assert out[:8] == b"\x82SNAPPY\x00"
    assert out[8:16] == b"\x00\x00\x00\x01\x00\x00\x00\x01"  # version 1, compatible 1


def test_lz4_is_written_like_java() -> None:
    # Independent 64 KiB blocks and a correct header checksum: what
    # KafkaLZ4BlockOutputStream writes and KafkaLZ4BlockInputStream can read.
    out = C.compress(C.LZ4, DATA)
    assert out[:7] == bytes.fromhex("04224d18604082")
    assert lz4.frame.decompress(out) == DATA
    incompressible = os.urandom(100_000)
    assert lz4.frame.decompress(C.compress(C.LZ4, incompressible)) == incompressible


def test_concatenated_gzip_members() -> None:
    both = kcodec.gzip_encode(b"one")
    both += kcodec.gzip_encode(b"two")
    assert C.decompress(C.GZIP, both) == b"onetwo"


@pytest.mark.parametrize(
    "options",
    [
        # librdkafka's LZ4F defaults: linked blocks, content size in the header.
        {"store_size": True, "block_linked": True},
        # Java's KafkaLZ4BlockOutputStream: 64 KiB independent blocks, no size.
        {"store_size": False, "block_linked": False, "block_size": lz4.frame.BLOCKSIZE_MAX64KB},
        {"block_checksum": True, "content_checksum": True},
    ],
)
def test_lz4_frame_variants(options: dict[str, object]) -> None:
    blob = lz4.frame.compress(DATA, **options)
    assert C.decompress(C.LZ4, blob, max_size=len(DATA)) == DATA
    with pytest.raises(InvalidRecordBatch):
        C.decompress(C.LZ4, blob, max_size=len(DATA) - 1)


@pytest.mark.parametrize("codec", [C.SNAPPY, C.LZ4, C.ZSTD, C.GZIP])
def test_exact_cap_is_allowed_and_one_less_is_not(codec: int) -> None:
    data = b"z" * 200_000
    blob = C.compress(codec, data)
    assert C.decompress(codec, blob, max_size=len(data)) == data
    with pytest.raises(InvalidRecordBatch) as e:
        C.decompress(codec, blob, max_size=len(data) - 1)
    assert e.value.error_code == 2


@pytest.mark.parametrize("codec", [C.GZIP, C.SNAPPY, C.LZ4, C.ZSTD])
@pytest.mark.parametrize("garbage", [b"", b"\x00", b"not compressed at all" * 3, b"\xff" * 40])
def test_garbage_is_corrupt_message(codec: int, garbage: bytes) -> None:
    try:
        out = C.decompress(codec, garbage)
    except InvalidRecordBatch as e:
        assert e.error_code == 2
    else:
        # Some codecs legitimately decode tiny inputs (empty gzip is an error,
        # but e.g. raw snappy b"\x00" is the empty string).
        assert len(out) <= 40 * 64


@pytest.mark.parametrize("codec", [C.LZ4, C.ZSTD])
def test_skippable_frames_are_passed_over(codec: int) -> None:
    # Both frame formats let a writer put skippable frames (magic 0x184D2A5?, a length, that
    # many ignored bytes) before, between or after real frames; the size bound must skip them.
    skippable = struct.pack("<II", 0x184D2A53, 5) + b"extra"
    frame = C.compress(codec, DATA)
    assert C.decompress(codec, skippable + frame + skippable + frame) == DATA + DATA
    with pytest.raises(InvalidRecordBatch):  # a skippable frame cut inside its length
        C.decompress(codec, frame + skippable[:6])
    with pytest.raises(InvalidRecordBatch):  # a bound over a frame whose magic is wrong
        C.decompress(codec, skippable + b"\x00\x01\x02\x03" + frame)


def test_unknown_codec() -> None:
    for codec in (5, 6, 7):
        with pytest.raises(InvalidRecordBatch) as e:
            C.decompress(codec, b"x")
        assert e.value.error_code == 76


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    zeros = b"\0" * (200 * 1024 * 1024)
    out = {
        "gzip": C.compress(C.GZIP, zeros[: 1 << 20]) * 200,  # 200 concatenated members
        "snappy-xerial": C.compress(C.SNAPPY, zeros),
        "snappy-raw": bytes(cramjam.snappy.compress_raw(zeros)),
        "lz4": bytes(cramjam.lz4.compress(zeros)),
        "lz4-frames": bytes(cramjam.lz4.compress(zeros[: 1 << 20])) * 200,
        "zstd": bytes(cramjam.zstd.compress(zeros, level=1)),
        "zstd-frames": bytes(cramjam.zstd.compress(zeros[: 1 << 20], level=1)) * 200,
    }
    gz = zlib.compressobj(1, zlib.DEFLATED, 31)
    out["gzip-single"] = gz.compress(zeros) + gz.flush()
    return out


CODEC_OF = {"gzip": C.GZIP, "snappy": C.SNAPPY, "lz4": C.LZ4, "zstd": C.ZSTD}


@pytest.mark.parametrize(
    "name",
    [
        "gzip",
        "gzip-single",
        "snappy-xerial",
        "snappy-raw",
        "lz4",
        "lz4-frames",
        "zstd",
        "zstd-frames",
    ],
)
def test_compression_bomb_rejected_without_decompressing(
    bombs: dict[str, bytes], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec = CODEC_OF[name.split("-")[0]]

    # For the cramjam codecs the bound is computed from headers alone: prove
    # the decoder is never even called.
    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("decoder called on a bomb")

    for mod, fn in (
        (cramjam.lz4, "decompress"),
        (cramjam.zstd, "decompress"),
        (cramjam.snappy, "decompress_raw"),
    ):
        monkeypatch.setattr(mod, fn, refuse)
    with pytest.raises(InvalidRecordBatch) as e:
        C.decompress(codec, bombs[name], max_size=CAP)
    assert e.value.error_code == 2


def test_zstd_declared_content_size_over_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = bytes(cramjam.zstd.compress(b"\0" * (CAP + 1), level=1))
    with pytest.raises(InvalidRecordBatch):
        C.decompress(C.ZSTD, blob, max_size=CAP)


@pytest.mark.parametrize(
    ("codec", "levels"),
    [(C.GZIP, [1, 5, 9, -1]), (C.LZ4, [1, 3, 9, 12, 17]), (C.ZSTD, [-131072, -5, 1, 19, 22])],
)
def test_every_valid_level_round_trips(codec: int, levels: list[int]) -> None:
    for level in levels:
        out = C.compress(codec, DATA, level)
        assert C.decompress(codec, out) == DATA, level
    assert C.compress(codec, DATA, C.DEFAULT_LEVELS[codec]) == C.compress(codec, DATA)


def test_lz4_high_compression_keeps_the_java_readable_frame() -> None:
    # Kafka's KafkaLZ4BlockInputStream reads independent blocks only; levels other than
    # the default use LZ4 HC but must keep the frame header and block layout.
    text = b" ".join(b"word%d" % (i * 7919 % 1000) for i in range(60_000))
    fast, hc = C.compress(C.LZ4, text), C.compress(C.LZ4, text, 12)
    assert hc[:7] == fast[:7] and hc[4] & 0x20  # same FLG/BD: block independence set
    assert len(hc) < len(fast)
    assert lz4.frame.decompress(hc) == text == C.decompress(C.LZ4, hc)
