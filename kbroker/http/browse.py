"""Reading records for the console without blocking the broker's event loop.

The log is not thread-safe, so the event loop only asks it where the batches are (index
lookups; ``PartitionLog.read`` returns file regions, not bytes) and duplicates their
descriptors, as the Fetch path does before sendfile; a worker thread then reads at most
``MAX_READ_BYTES`` from those descriptors and decodes the batches. A page therefore never
stalls Kafka traffic on a large segment read, and retention or compaction closing a segment
meanwhile cannot pull the file from under the thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import trio

from kbroker.log.errors import LogError
from kbroker.log.segment import pread_exact
from kbroker.wire.errors import ProtocolError
from kbroker.wire.records import iter_records, parse_header

# One page reads at most this much of a partition (whole batches, the first one always).
MAX_READ_BYTES = 1024 * 1024
# The largest value a page decompresses per batch (a page shows a few records).
MAX_DECOMPRESSED = 8 * 1024 * 1024


@dataclass(slots=True)
class Message:
    """One record as the console shows it."""

    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    producer_id: int
    transactional: bool


def _read_regions(regions: list[tuple[int, int, int]]) -> bytes:
    try:
        return b"".join(pread_exact(fd, length, position) for fd, position, length in regions)
    finally:
        for fd, _, _ in regions:
            os.close(fd)


def decode_batches(
    data: bytes, partition: int, first: int, last: int, limit: int | None = None
) -> list[Message]:
    """The records of the whole batches in ``data`` with offsets in [first, last), at most
    ``limit`` of them (decoding stops there); control batches (transaction markers) are
    skipped."""
    found: list[Message] = []
    pos = 0
    view = memoryview(data)
    while pos + 61 <= len(data):
        try:
            header = parse_header(view, pos)
        except ProtocolError:
            break
        if pos + header.size > len(data):
            break
        if limit is not None and len(found) >= limit:
            break
        if not header.is_control and header.last_offset >= first and header.base_offset < last:
            # Lazily: the newest few records of a large batch need not all be built.
            try:
                for r in iter_records(view, pos, max_decompressed_size=MAX_DECOMPRESSED):
                    if r.offset >= last or (limit is not None and len(found) >= limit):
                        break
                    if r.offset >= first:
                        found.append(
                            Message(
                                partition,
                                r.offset,
                                r.timestamp,
                                r.key,
                                r.value,
                                list(r.headers),
                                header.producer_id,
                                header.is_transactional,
                            )
                        )
            except ProtocolError:
                pass  # a damaged batch shows no records; the next one may be fine
        pos += header.size
    return found


async def read_partition(partition: Any, start: int, count: int) -> list[Message]:
    """Up to ``count`` records of ``partition`` from offset ``start`` (below the high
    watermark: what a consumer can see), oldest first."""
    log = partition.log
    end = log.high_watermark
    start = max(start, log.log_start_offset)
    if start >= end or count <= 0:
        return []
    try:
        result = log.read(start, MAX_READ_BYTES, max_offset=end)
    except LogError:
        return []
    regions: list[tuple[int, int, int]] = []
    try:
        for region in result.regions:
            regions.append((os.dup(region.fd), region.position, region.length))
    except BaseException:
        for fd, _, _ in regions:
            os.close(fd)
        raise

    def work() -> list[Message]:
        data = _read_regions(regions)
        return decode_batches(data, partition.index, start, end, count)[:count]

    return await trio.to_thread.run_sync(work, abandon_on_cancel=False)


async def newest(partition: Any, count: int) -> list[Message]:
    """The last ``count`` records of ``partition``, newest first."""
    log = partition.log
    end = log.high_watermark
    # Transaction markers and aborted records take offsets too: widen the window (a few
    # times at most) until it holds ``count`` records.
    window = count
    while True:
        start = max(log.log_start_offset, end - window)
        found = await read_partition(partition, start, window)
        if len(found) >= count or start == log.log_start_offset or window >= 64 * count:
            return list(reversed(found[-count:]))
        window *= 4
