"""Fast batch-header scanning for the log's hot loops (recovery walk, reads, index rebuilds).

wire.records.parse_header builds a frozen dataclass per batch (several
microseconds each); a 1 GiB segment of 16 KiB batches has 65k of them, which
alone took most of the 2 s budget of an unclean open. The log only needs a
handful of fields per batch, so it unpacks them into a plain tuple here. The
acceptance rules of `valid_spans` are exactly those of
wire.records.valid_prefix (a test checks the two agree on damaged input).
"""

from __future__ import annotations

from typing import NamedTuple

import crc32c as _crc32c

from kbroker.wire.records import (
    ATTR_CONTROL,
    ATTR_TRANSACTIONAL,
    BATCH_HEADER,
    CRC_START,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    RECORD_BATCH_OVERHEAD,
)


class BatchSpan(NamedTuple):
    """Where one batch sits and the header fields the log uses."""

    pos: int
    base_offset: int
    size: int
    last_offset: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    last_offset_delta: int
    is_control: bool
    is_transactional: bool
    leader_epoch: int = -1  # the batch's partition leader epoch (KIP-101)

    @property
    def next_offset(self) -> int:
        """Offset right after the batch."""
        return self.last_offset + 1


def _span(buf: bytes | bytearray | memoryview, pos: int) -> tuple[BatchSpan, int, int, int] | None:
    """(span, crc, records_count, magic) at pos, or None if the header cannot be read."""
    if len(buf) - pos < RECORD_BATCH_OVERHEAD:
        return None
    (base, length, ple, magic, crc, attrs, lod, _bts, max_ts, pid, epoch, seq, count) = (
        BATCH_HEADER.unpack_from(buf, pos)
    )
    span = BatchSpan(
        pos,
        base,
        length + LOG_OVERHEAD,
        base + lod,
        max_ts,
        pid,
        epoch,
        seq,
        lod,
        bool(attrs & ATTR_CONTROL),
        bool(attrs & ATTR_TRANSACTIONAL),
        ple,
    )
    return span, crc, count, magic if length >= MIN_BATCH_LENGTH else -1


def valid_spans(buf: bytes | bytearray | memoryview) -> tuple[int, list[BatchSpan]]:
    """Like wire.records.valid_prefix: end of the last complete CRC-valid batch, and its spans."""
    n = len(buf)
    pos = 0
    out: list[BatchSpan] = []
    crc32c = _crc32c.crc32c
    with memoryview(buf) as mv:
        while pos < n:
            parsed = _span(mv, pos)
            if parsed is None:
                break
            span, crc, count, magic = parsed
            end = pos + span.size
            if magic != MAGIC or end > n or count < 0 or span.last_offset_delta < 0:
                break
            if crc32c(mv[pos + CRC_START : end]) != crc:
                break
            out.append(span)
            pos = end
    return pos, out


def spans_in(
    buf: bytes | bytearray | memoryview, offset_in_file: int = 0
) -> tuple[int, list[BatchSpan]]:
    """Spans of the whole batches at the start of `buf` (no CRC check: our own log).

    Returns (bytes consumed, spans); positions are shifted by `offset_in_file`.
    Stops at the first batch that does not fit in `buf` or has a bad header.
    """
    n = len(buf)
    pos = 0
    out: list[BatchSpan] = []
    while True:
        parsed = _span(buf, pos)
        if parsed is None:
            break
        span, _crc, _count, magic = parsed
        if magic != MAGIC or pos + span.size > n:
            break
        out.append(span._replace(pos=pos + offset_in_file) if offset_in_file else span)
        pos += span.size
    return pos, out


def header_size(buf: bytes | bytearray | memoryview, pos: int) -> int | None:
    """Total size of the batch whose header starts at `pos`, None if not a sane v2 header."""
    parsed = _span(buf, pos)
    if parsed is None or parsed[3] != MAGIC:
        return None
    return parsed[0].size


def span_at(buf: bytes | bytearray | memoryview, pos_in_file: int) -> BatchSpan:
    """The span of the batch whose header is at the start of `buf`."""
    parsed = _span(buf, 0)
    assert parsed is not None
    return parsed[0]._replace(pos=pos_in_file)


def parse_span(buf: bytes | bytearray | memoryview, pos: int) -> BatchSpan | None:
    """The span of the batch header at `pos` (whole batch need not fit), None if not a sane v2 header."""
    parsed = _span(buf, pos)
    if parsed is None or parsed[3] != MAGIC or parsed[2] < 0 or parsed[0].last_offset_delta < 0:
        return None
    return parsed[0]
