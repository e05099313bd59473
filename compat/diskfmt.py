"""Independent readers of Kafka's on-disk format, so compat tests can check what kbroker stored.

Deliberately does not import `wire` or `log`: a bug shared by the broker and the test would
otherwise cancel out. Layout (Kafka's): <data dir>/<topic>-<partition>/<20-digit offset>.log
holding record batches v2 exactly as produced, base offset rewritten.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

LOG_OVERHEAD = 12  # base offset int64 + batch length int32
RECORD_BATCH_OVERHEAD = 61  # v2 header up to and including the records count
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


@dataclass(frozen=True)
class StoredBatch:
    """The header fields of one batch found in a segment file."""

    base_offset: int
    size: int  # batch length + LOG_OVERHEAD, the figure max.message.bytes is compared with
    compression: str
    timestamp_type: int
    records_count: int


def partition_dir(data_dir: Path, topic: str, partition: int) -> Path:
    """Kafka's directory name for one partition."""
    return Path(data_dir) / f"{topic}-{partition}"


def stored_batches(data_dir: Path, topic: str, partition: int) -> list[StoredBatch]:
    """Every complete batch in the partition's .log segments, in offset order."""
    directory = partition_dir(data_dir, topic, partition)
    segments = sorted(directory.glob("*.log"))
    if not segments:
        raise AssertionError(
            f"no segment files in {directory} (contents of {Path(data_dir)}: "
            f"{sorted(p.name for p in Path(data_dir).iterdir()) if Path(data_dir).exists() else 'missing'})"
        )
    batches = []
    for segment in segments:
        data = segment.read_bytes()
        pos = 0
        while pos + RECORD_BATCH_OVERHEAD <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            if length <= 0 or pos + LOG_OVERHEAD + length > len(data):
                break  # preallocated tail or a partial write
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            (records_count,) = struct.unpack_from(">i", data, pos + 57)
            batches.append(
                StoredBatch(
                    base_offset=base_offset,
                    size=length + LOG_OVERHEAD,
                    compression=CODECS.get(attributes & 0x07, f"unknown({attributes & 0x07})"),
                    timestamp_type=(attributes >> 3) & 1,
                    records_count=records_count,
                )
            )
            pos += LOG_OVERHEAD + length
    return batches


def _varint_size(value: int) -> int:
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def single_record_batch_size(value_len: int, key_len: int | None = None) -> int:
    """Size of an uncompressed v2 batch holding one record with no headers.

    Record = length varint + attributes(1) + timestampDelta varint(0) + offsetDelta varint(0)
    + key length varint (-1 for null) + key + value length varint + value + header count varint(0).
    """
    key_part = _varint_size(-1) if key_len is None else _varint_size(key_len) + key_len
    body = 1 + 1 + 1 + key_part + _varint_size(value_len) + value_len + 1
    return RECORD_BATCH_OVERHEAD + _varint_size(body) + body


def value_len_for_batch_size(target: int, key_len: int | None = None) -> int:
    """The largest value length whose single-record batch is at most `target` bytes."""
    value_len = max(target - RECORD_BATCH_OVERHEAD - 16, 0)
    while single_record_batch_size(value_len + 1, key_len) <= target:
        value_len += 1
    while single_record_batch_size(value_len, key_len) > target:
        value_len -= 1
    return value_len
