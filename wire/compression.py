"""The four record-batch codecs, with decompression bounded by a size cap.

Codec ids are the low three bits of a v2 batch's attributes: 0 none, 1 gzip,
2 snappy, 3 lz4, 4 zstd. ``compress`` writes what the Java client writes, which
every client reads: xerial-framed snappy, LZ4 frames of independent 64 KiB
blocks. ``decompress`` also accepts raw snappy and linked LZ4 blocks (librdkafka).

How the cap works: a compression bomb must be rejected before its output is
allocated. Each format is walked cheaply first to get an upper bound on the
decompressed size, and rejected if that bound exceeds ``max_size``:

- gzip: streamed through ``zlib.decompressobj`` with ``max_length``.
- snappy: the raw format starts with the uncompressed length (varint); the
  xerial framing Java writes is ``\\x82SNAPPY\\x00`` + int32 version + int32
  compat, then ``[int32 length][raw snappy block]...``; sum the block lengths.
- lz4 (frame format): every block decompresses to at most the frame's block
  maximum size (64 KiB..4 MiB), and writers fill blocks fully, so
  ``blocks x block_max`` is within one block of the real size; a declared
  content size is used when present.
- zstd: same idea; every block is at most 128 KiB (RFC 8878 3.1.1.2.3), raw
  and RLE blocks state their size exactly, and a declared frame content size
  is honoured.
The bound may exceed the real size by less than one block (the last block of
a frame is usually short), so a payload is only rejected unseen when the
bound exceeds the cap by more than one block; otherwise one cramjam call
decompresses (at most cap + one block, <= 4 MiB extra) and the result's
length is checked against the cap exactly.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import cramjam

from kbroker.wire.errors import InvalidRecordBatch

__all__ = [
    "NONE",
    "GZIP",
    "SNAPPY",
    "LZ4",
    "ZSTD",
    "CODEC_NAMES",
    "DEFAULT_LEVELS",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "compress",
    "decompress",
]

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
DEFAULT_MAX_DECOMPRESSED_SIZE = 100 * 1024 * 1024
# KIP-390 compression levels, as Kafka's CompressionType defines them: gzip 1..9 or -1
# (Deflater.DEFAULT_COMPRESSION, zlib's 6), lz4 1..17 (default 9: the fast compressor,
# as before levels existed; other levels use LZ4 HC), zstd -131072..22 (default 3).
DEFAULT_LEVELS = {GZIP: -1, LZ4: 9, ZSTD: 3}

CORRUPT_MESSAGE = 2
UNSUPPORTED_COMPRESSION_TYPE = 76

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = 16  # magic (8) + version int32 + compat int32
# Java's SnappyOutputStream default block size (xerial snappy-java).
_XERIAL_BLOCK = 32 * 1024

_LZ4_MAGIC = 0x184D2204
_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_BLOCK_MAX = 128 * 1024

Buffer = bytes | bytearray | memoryview


def _corrupt(msg: str) -> InvalidRecordBatch:
    return InvalidRecordBatch(msg, CORRUPT_MESSAGE)


def _too_big(codec: str, size: int, max_size: int) -> InvalidRecordBatch:
    return _corrupt(f"{codec} payload decompresses to more than {max_size} bytes (bound {size})")


def compress(codec: int, data: Buffer, level: int | None = None) -> bytes:
    """Compress ``data`` the way the Java client does for ``codec``, at ``level`` (KIP-390).

    ``level`` None is the codec's default (DEFAULT_LEVELS); snappy has no levels.
    """
    if codec == NONE:
        return bytes(data)
    if codec == GZIP:
        if level is None or level == DEFAULT_LEVELS[GZIP]:
            return bytes(cramjam.gzip.compress(data))
        return bytes(cramjam.gzip.compress(data, level=level))
    if codec == SNAPPY:
        return _xerial_compress(data)
    if codec == LZ4:
        return _lz4_compress(data, DEFAULT_LEVELS[LZ4] if level is None else level)
    if codec == ZSTD:
        return bytes(
            cramjam.zstd.compress(data, level=DEFAULT_LEVELS[ZSTD] if level is None else level)
        )
    raise InvalidRecordBatch(f"unknown compression codec {codec}", UNSUPPORTED_COMPRESSION_TYPE)


def decompress(codec: int, data: Buffer, *, max_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE) -> bytes:
    """Decompress ``data``; more than ``max_size`` output bytes is InvalidRecordBatch (CORRUPT_MESSAGE)."""
    if codec == NONE:
        if len(data) > max_size:
            raise _too_big("uncompressed", len(data), max_size)
        return bytes(data)
    if codec == GZIP:
        return _gzip_decompress(data, max_size)
    if codec not in (SNAPPY, LZ4, ZSTD):
        raise InvalidRecordBatch(f"unknown compression codec {codec}", UNSUPPORTED_COMPRESSION_TYPE)
    try:
        if codec == SNAPPY:
            out = _snappy_decompress(data, max_size)
        else:
            # Bound the output from the frame headers before inflating anything.
            name, magic, scan, inflate = _FRAMED[codec]
            bound, slack = _frames_bound(data, name, magic, scan)
            if bound > max_size + slack:
                raise _too_big(name, bound, max_size)
            out = bytes(inflate(data))
    except InvalidRecordBatch:
        raise
    except (cramjam.DecompressionError, ValueError, struct.error, IndexError) as exc:
        raise _corrupt(f"{CODEC_NAMES[codec]} decompression failed: {exc}") from None
    if len(out) > max_size:
        raise _too_big(CODEC_NAMES[codec], len(out), max_size)
    return out


# -- gzip ---------------------------------------------------------------------


def _gzip_decompress(data: Buffer, max_size: int) -> bytes:
    # Java's GZIPInputStream reads concatenated members, so do we.
    out = bytearray()
    rest = bytes(data)
    try:
        while True:
            d = zlib.decompressobj(wbits=31)
            chunk = d.decompress(rest, max_size + 1 - len(out))
            out += chunk
            if len(out) > max_size:
                raise _too_big("gzip", len(out), max_size)
            if not d.eof:
                if d.unconsumed_tail:
                    # max_length stopped it: the member has more output than allowed.
                    raise _too_big("gzip", len(out) + 1, max_size)
                raise _corrupt("truncated gzip stream")
            rest = d.unused_data
            if not rest:
                return bytes(out)
    except zlib.error as exc:
        raise _corrupt(f"gzip decompression failed: {exc}") from None


# -- snappy -------------------------------------------------------------------


def _xerial_compress(data: Buffer) -> bytes:
    # snappy-java's SnappyOutputStream: header, then int32-length-prefixed raw blocks.
    mv = memoryview(data)
    parts = [_XERIAL_MAGIC, struct.pack(">ii", 1, 1)]
    for i in range(0, len(mv), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(mv[i : i + _XERIAL_BLOCK]))
        parts.append(struct.pack(">i", len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_raw_len(block: Buffer) -> int:
    # The raw format starts with the uncompressed length as a little-endian varint.
    result = 0
    shift = 0
    for i in range(min(len(block), 5)):
        b = block[i]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result
        shift += 7
    raise _corrupt("bad snappy length header")


def _snappy_decompress(data: Buffer, max_size: int) -> bytes:
    mv = memoryview(data)
    if bytes(mv[:8]) != _XERIAL_MAGIC:
        # Raw snappy (what librdkafka writes).
        n = _snappy_raw_len(mv)
        if n > max_size:
            raise _too_big("snappy", n, max_size)
        return bytes(cramjam.snappy.decompress_raw(mv))
    if len(mv) < _XERIAL_HEADER:
        raise _corrupt("truncated xerial snappy header")
    blocks = []
    pos = _XERIAL_HEADER
    total = 0
    while pos < len(mv):
        if pos + 4 > len(mv):
            raise _corrupt("truncated xerial snappy block length")
        (blen,) = struct.unpack_from(">i", mv, pos)
        pos += 4
        if blen < 0 or pos + blen > len(mv):
            raise _corrupt("xerial snappy block overruns the payload")
        block = mv[pos : pos + blen]
        pos += blen
        total += _snappy_raw_len(block)
        if total > max_size:
            raise _too_big("snappy", total, max_size)
        blocks.append(block)
    return b"".join(bytes(cramjam.snappy.decompress_raw(b)) for b in blocks)


# -- lz4 ----------------------------------------------------------------------

_LZ4_BLOCK_MAX = {4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024}
# Frame descriptor Java's KafkaLZ4BlockOutputStream writes: FLG 0x60 (version 1,
# independent blocks, no checksums), BD 0x40 (64 KiB blocks), and the header
# checksum byte, (xxh32(FLG BD) >> 8) & 0xFF = 0x82 (KAFKA-3160 fixed Kafka to
# compute it over the descriptor only, as the LZ4 frame spec says).
_LZ4_HEADER = struct.pack("<I", _LZ4_MAGIC) + b"\x60\x40\x82"
_LZ4_BLOCK = 64 * 1024


def _lz4_compress(data: Buffer, level: int) -> bytes:
    # Independent blocks, like Java: Kafka's KafkaLZ4BlockInputStream decompresses
    # every block on its own, so the linked blocks cramjam's frame encoder
    # writes could not be read by Java consumers. The default level keeps the fast
    # compressor (as Kafka's KafkaLZ4BlockOutputStream does); any other is LZ4 HC.
    if level != DEFAULT_LEVELS[LZ4]:
        return _lz4_compress_hc(data, level)
    mv = memoryview(data)
    parts = [_LZ4_HEADER]
    for i in range(0, len(mv), _LZ4_BLOCK):
        chunk = mv[i : i + _LZ4_BLOCK]
        block = bytes(cramjam.lz4.compress_block(chunk, store_size=False))
        if len(block) >= len(chunk):  # incompressible: store raw (high bit set)
            parts.append(struct.pack("<I", len(chunk) | 0x80000000))
            parts.append(bytes(chunk))
        else:
            parts.append(struct.pack("<I", len(block)))
            parts.append(block)
    parts.append(b"\0\0\0\0")  # end mark
    return b"".join(parts)


def _lz4_compress_hc(data: Buffer, level: int) -> bytes:
    """LZ4 HC at ``level``, in the same frame layout as _lz4_compress.

    cramjam's block API has no HC mode, its frame encoder does: frame it with
    independent 64 KiB blocks, then keep only the blocks (dropping the block
    checksums it adds) under our usual header.
    """
    enc = cramjam.lz4.Compressor(level=level, content_checksum=False, block_linked=False)
    enc.compress(data if isinstance(data, bytes) else bytes(data))  # it takes no views
    frame = memoryview(bytes(enc.finish()))
    flg, bd = frame[4], frame[5]
    if flg & 0x2F != 0x20 or (bd >> 4) & 0x7 != 4:  # independent blocks, no extras, 64 KiB
        raise AssertionError(f"unexpected LZ4 frame descriptor {flg:#x} {bd:#x}")
    block_checksums = bool(flg & 0x10)
    pos = 7  # magic, FLG, BD, header checksum
    parts = [_LZ4_HEADER]
    while True:
        (word,) = struct.unpack_from("<I", frame, pos)
        pos += 4
        if word == 0:
            break
        size = word & 0x7FFFFFFF
        parts.append(frame[pos - 4 : pos + size].tobytes())
        pos += size + (4 if block_checksums else 0)
    parts.append(b"\0\0\0\0")  # end mark
    return b"".join(parts)


def _next_frame(mv: memoryview, pos: int, codec: str, magic: int) -> int:
    """Where the next ``magic`` frame starts at or after ``pos``, past any skippable frames;
    ``len(mv)`` or beyond once the data is used up.

    LZ4's frame format and zstd (RFC 8878 section 3.1.2) share the skippable frame: magic
    0x184D2A5?, a 4-byte length, then that many bytes a decoder ignores.
    """
    n = len(mv)
    while pos < n:
        if pos + 4 > n:
            raise _corrupt(f"truncated {codec} frame magic")
        (word,) = struct.unpack_from("<I", mv, pos)
        if word & 0xFFFFFFF0 != 0x184D2A50:
            if word != magic:
                raise _corrupt(f"bad {codec} frame magic")
            return pos
        if pos + 8 > n:
            raise _corrupt(f"truncated {codec} skippable frame")
        (skip,) = struct.unpack_from("<I", mv, pos + 4)
        pos += 8 + skip
    return pos


# What a frame scanner reports from the header and block headers of the frame at ``pos``:
# where its blocks end, whether a content checksum follows them, the content size the
# header declares (-1: none), the decompressed size its blocks allow, and their maximum.
_FrameScan = tuple[int, bool, int, int, int]


def _frames_bound(
    data: Buffer, codec: str, magic: int, scan: Callable[[memoryview, int], _FrameScan]
) -> tuple[int, int]:
    """(upper bound of the decompressed size, largest block size), from the frame headers alone.

    LZ4 and zstd data are both a run of frames, each a header, blocks and an optional
    4-byte content checksum; ``scan`` reads one codec's header and blocks.
    """
    mv = memoryview(data)
    n = len(mv)
    if n == 0:
        raise _corrupt(f"empty {codec} payload")
    pos = 0
    total = 0
    slack = 0
    while (pos := _next_frame(mv, pos, codec, magic)) < n:
        pos, content_checksum, content_size, frame_total, block_max = scan(mv, pos)
        slack = max(slack, block_max)
        if content_checksum:
            pos += 4
        if pos > n:
            raise _corrupt(f"truncated {codec} frame")
        total += content_size if 0 <= content_size < frame_total else frame_total
    return total, slack


def _lz4_frame(mv: memoryview, pos: int) -> _FrameScan:
    n = len(mv)
    if pos + 7 > n:
        raise _corrupt("truncated lz4 frame header")
    flg = mv[pos + 4]
    bd = mv[pos + 5]
    block_max = _LZ4_BLOCK_MAX.get((bd >> 4) & 7)
    if block_max is None:
        raise _corrupt("bad lz4 block maximum size")
    hdr = pos + 6
    content_size = -1
    if flg & 0x08:
        if hdr + 8 > n:
            raise _corrupt("truncated lz4 content size")
        (content_size,) = struct.unpack_from("<Q", mv, hdr)
        hdr += 8
    if flg & 0x01:
        hdr += 4  # dictionary id
    pos = hdr + 1  # header checksum byte
    block_checksum = 4 if flg & 0x10 else 0
    frame_total = 0
    while True:
        if pos + 4 > n:
            raise _corrupt("truncated lz4 block")
        (bsize,) = struct.unpack_from("<I", mv, pos)
        pos += 4
        if bsize == 0:  # end mark
            break
        raw = bsize & 0x80000000
        bsize &= 0x7FFFFFFF
        if bsize > block_max:
            raise _corrupt("lz4 block larger than its frame's maximum")
        frame_total += bsize if raw else block_max
        pos += bsize + block_checksum
    return pos, bool(flg & 0x04), content_size, frame_total, block_max


# -- zstd ---------------------------------------------------------------------


def _zstd_frame(mv: memoryview, pos: int) -> _FrameScan:
    n = len(mv)
    if pos + 5 > n:
        raise _corrupt("truncated zstd frame header")
    fhd = mv[pos + 4]
    pos += 5
    single_segment = fhd & 0x20
    fcs_flag = fhd >> 6
    if not single_segment:
        pos += 1  # window descriptor
    pos += (0, 1, 2, 4)[fhd & 0x03]  # dictionary id
    fcs_len = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    content_size = -1
    if fcs_len:
        if pos + fcs_len > n:
            raise _corrupt("truncated zstd frame content size")
        content_size = int.from_bytes(mv[pos : pos + fcs_len], "little")
        if fcs_len == 2:
            content_size += 256
        pos += fcs_len
    frame_total = 0
    while True:
        if pos + 3 > n:
            raise _corrupt("truncated zstd block header")
        bh = mv[pos] | (mv[pos + 1] << 8) | (mv[pos + 2] << 16)
        pos += 3
        last = bh & 1
        btype = (bh >> 1) & 3
        bsize = bh >> 3
        if btype == 0:  # raw
            frame_total += bsize
            pos += bsize
        elif btype == 1:  # RLE: one byte repeated bsize times
            frame_total += bsize
            pos += 1
        elif btype == 2:
            frame_total += _ZSTD_BLOCK_MAX
            pos += bsize
        else:
            raise _corrupt("reserved zstd block type")
        if last:
            break
    return pos, bool(fhd & 0x04), content_size, frame_total, _ZSTD_BLOCK_MAX


# The framed codecs: name, frame magic, frame scanner, decompressor.
_FRAMED: dict[int, tuple[str, int, Callable[[memoryview, int], _FrameScan], Callable[..., Any]]] = {
    LZ4: ("lz4", _LZ4_MAGIC, _lz4_frame, cramjam.lz4.decompress),
    ZSTD: ("zstd", _ZSTD_MAGIC, _zstd_frame, cramjam.zstd.decompress),
}
