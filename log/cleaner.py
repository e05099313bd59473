"""Log compaction (cleanup.policy=compact): keep the latest record per key.

How it works (a simplified Kafka LogCleaner, one pass over all cleanable
segments, no cleaner checkpoint):
- Cleanable segments are the closed ones, oldest first, up to the first whose
  newest record is younger than min.compaction.lag.ms (Kafka's "first
  uncleanable offset"). The active segment is never cleaned.
- Pass 1 maps each key to its latest offset in the cleanable segments.
- Pass 2 rewrites each segment that loses records: a record survives if it has
  a key, is the latest for that key, and is not a tombstone (null value) older
  than delete.retention.ms. A tombstone's age is measured from its record
  timestamp with the injected clock (Kafka 3.1+ stamps a delete horizon into
  the batch on the first cleaning pass, KIP-534; older Kafka used the segment's
  mtime). Keyless records are dropped, as Kafka's cleaner does. Batches keep their base offset, last offset delta,
  producer id/epoch and base sequence, so no offset or sequence ever changes;
  a compressed batch is recompressed with its own codec; control batches are
  kept. A batch that loses every record vanishes, unless it is its
  producer's last batch: then an empty batch (no records) keeps the producer's
  offsets and sequence in the log, as Kafka's cleaner does.
- Transactions (KIP-98, Kafka's cleaner): only segments below the first
  unstable offset are cleanable (an open transaction may still abort), and
  records of aborted transactions (found through the .txnindex) neither
  count as a key's latest value nor survive the rewrite; markers are kept.
- A segment is rewritten to `<base>.log.cleaned`, fsynced, its indexes are
  unlinked (so a crash can never pair the new log with old indexes; missing
  indexes are rebuilt on open), then os.replace and a directory fsync.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from kbroker.log.checkpoint import fsync_dir, write_synced
from kbroker.log.segment import LogSegment, pread_exact
from kbroker.log.txnindex import AbortedTxn
from kbroker.wire.compression import NONE, compress
from kbroker.wire.records import (
    ATTR_COMPRESSION_MASK,
    BatchHeader,
    Record,
    encode_record,
    iter_records,
    parse_header,
    seal_batch,
)


def encode_filtered_batch(h: BatchHeader, records: list[Record]) -> bytes:
    """Re-encode batch `h` with only `records`, keeping offsets, deltas and producer fields."""
    attributes = h.attributes
    if records:
        # wire.records.build_batch numbers records 0..n-1, and compaction must keep the
        # original offset deltas, so the records are encoded here; with the codec's own
        # record encoder, so a cleaned batch's records are byte-for-byte
        # what build_batch would write for them.
        body = b"".join(
            encode_record(
                r.attributes, r.timestamp_delta, r.offset_delta, r.key, r.value, r.headers
            )
            for r in records
        )
        if h.compression != NONE:
            body = compress(h.compression, body)
        if h.timestamp_type == 0:
            max_ts = max(h.base_timestamp + r.timestamp_delta for r in records)
        else:
            max_ts = h.max_timestamp
    else:
        # Kafka's DefaultRecordBatch.writeEmptyHeader: no records, no codec.
        body = b""
        attributes &= ~ATTR_COMPRESSION_MASK
        max_ts = h.max_timestamp
    return seal_batch(
        base_offset=h.base_offset,
        partition_leader_epoch=h.partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=h.last_offset_delta,  # kept: the producer's sequence arithmetic depends on it
        base_timestamp=h.base_timestamp,
        max_timestamp=max_ts,
        producer_id=h.producer_id,
        producer_epoch=h.producer_epoch,
        base_sequence=h.base_sequence,
        records_count=len(records),
        body=body,
    )


def _batches(data: bytes) -> list[tuple[int, BatchHeader]]:
    out = []
    pos = 0
    while pos < len(data):
        h = parse_header(data, pos)
        out.append((pos, h))
        pos += h.size
    return out


def clean_segments(
    closed: Sequence[LogSegment],
    *,
    now_ms: int,
    min_compaction_lag_ms: int,
    delete_retention_ms: int,
    first_unstable_offset: int | None,
    aborted_txns: Iterable[AbortedTxn],
    producer_last_offset: Callable[[int], int | None],
    reopen_segment: Callable[[int], LogSegment],
    directory: Path,
) -> int:
    """Compact the cleanable prefix of a log's ``closed`` segments (oldest first); returns
    how many segments were rewritten.

    The log hands over what the cleaner may read and one way back: after a segment's file
    is rewritten, ``reopen_segment(base_offset)`` opens it again and puts it in the log in
    place of the old segment (the log owns its segment list; the cleaner never sees the
    log itself). ``producer_last_offset`` is the last offset a producer id has written,
    None if unknown. Dropping closed segments left empty is the log's job too.
    """
    cleanable: list[LogSegment] = []
    for seg in closed:
        if min_compaction_lag_ms > 0 and seg.max_timestamp > now_ms - min_compaction_lag_ms:
            break
        if first_unstable_offset is not None and seg.next_offset > first_unstable_offset:
            break  # Kafka's first uncleanable offset includes the first unstable one
        cleanable.append(seg)
    if not cleanable:
        return 0
    aborted: dict[int, list[tuple[int, int]]] = {}
    for a in aborted_txns:
        aborted.setdefault(a.producer_id, []).append((a.first_offset, a.last_offset))
    latest: dict[bytes, int] = {}
    for seg in cleanable:
        data = pread_exact(seg.fd, seg.size, 0)
        for pos, h in _batches(data):
            if h.is_control or _is_aborted(h, aborted):
                continue
            for r in iter_records(data, pos):
                if r.key is not None:
                    latest[r.key] = r.offset
    horizon = now_ms - delete_retention_ms
    rewritten = 0
    for seg in cleanable:
        cleaned = _cleaned(seg, latest, horizon, aborted, producer_last_offset)
        if cleaned is not None:
            _replace_segment(seg, cleaned, directory, reopen_segment)
            rewritten += 1
    return rewritten


def _is_aborted(h: BatchHeader, aborted: dict[int, list[tuple[int, int]]]) -> bool:
    """Whether `h` is data of a transaction its producer aborted."""
    if not h.is_transactional:
        return False
    return any(first <= h.base_offset <= last for first, last in aborted.get(h.producer_id, ()))


def _cleaned(
    seg: LogSegment,
    latest: dict[bytes, int],
    horizon: int,
    aborted: dict[int, list[tuple[int, int]]],
    producer_last_offset: Callable[[int], int | None],
) -> bytes | None:
    """The segment's bytes after cleaning, or None if it loses nothing."""
    data = pread_exact(seg.fd, seg.size, 0)
    out = bytearray()
    changed = False
    for pos, h in _batches(data):
        end = pos + h.size
        if h.is_control:
            out += data[pos:end]
            continue
        records = list(iter_records(data, pos))
        dead = _is_aborted(h, aborted)
        keep = [
            r
            for r in records
            if not dead
            and r.key is not None
            and latest.get(r.key) == r.offset
            and not (r.value is None and r.timestamp < horizon)
        ]
        if len(keep) == len(records):
            out += data[pos:end]
            continue
        changed = True
        if keep:
            out += encode_filtered_batch(h, keep)
        elif h.producer_id >= 0:
            # The producer's last batch stays, empty, to keep its offsets and sequence.
            if producer_last_offset(h.producer_id) == h.last_offset:
                out += encode_filtered_batch(h, [])
    return bytes(out) if changed else None


def _replace_segment(
    seg: LogSegment, data: bytes, directory: Path, reopen_segment: Callable[[int], LogSegment]
) -> None:
    """Swap ``data`` in for the segment's log file (crash-safe) and have the log reopen it."""
    tmp = seg.log_path.with_name(seg.log_path.name + ".cleaned")
    write_synced(tmp, data)
    seg.release()
    for path in (seg.index.path, seg.time_index.path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    fsync_dir(directory)
    os.replace(tmp, seg.log_path)
    fsync_dir(directory)
    fresh = reopen_segment(seg.base_offset)
    fresh.recover()
    fresh.seal()
    fresh.fsync()
    fresh.park_indexes()
    # The old .log descriptor closes once no FileRegion refers to it.
