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
from typing import TYPE_CHECKING

# CRC-32C of a rewritten batch. wire.records only builds batches with offset
# deltas 0..n-1, and compaction must keep the original deltas, so the cleaner
# assembles its batches itself with the same checksum library wire uses.
from kbroker.log.checkpoint import fsync_dir, write_synced
from kbroker.log.segment import LogSegment, pread_exact
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

if TYPE_CHECKING:
    from kbroker.log.partition import PartitionLog


def encode_filtered_batch(h: BatchHeader, records: list[Record]) -> bytes:
    """Re-encode batch `h` with only `records`, keeping offsets, deltas and producer fields."""
    attributes = h.attributes
    if records:
        # The codec's own record encoder, so a cleaned batch's records are byte-for-byte
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


def clean_segments(log: PartitionLog, now_ms: int) -> int:
    """Compact `log`'s cleanable segments; returns how many segments were rewritten."""
    cfg = log.config
    cleanable: list[LogSegment] = []
    first_unstable = log.producer_state.first_unstable_offset()
    for seg in log._segments[:-1]:
        if cfg.min_compaction_lag_ms > 0 and seg.max_timestamp > now_ms - cfg.min_compaction_lag_ms:
            break
        if first_unstable is not None and seg.next_offset > first_unstable:
            break  # Kafka's first uncleanable offset includes the first unstable one
        cleanable.append(seg)
    if not cleanable:
        return 0
    aborted: dict[int, list[tuple[int, int]]] = {}
    for a in log.txn_index.all():
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
    horizon = now_ms - cfg.delete_retention_ms
    rewritten = 0
    for seg in cleanable:
        if _clean_segment(log, seg, latest, horizon, aborted):
            rewritten += 1
    # Closed segments emptied by cleaning carry nothing; the first one stays so
    # the log start offset does not move.
    for seg in list(log._segments[1:-1]):
        if seg.size == 0:
            i = log._segments.index(seg)
            del log._segments[i]
            del log._bases[i]
            seg.delete_files()
    fsync_dir(log.directory)
    return rewritten


def _is_aborted(h: BatchHeader, aborted: dict[int, list[tuple[int, int]]]) -> bool:
    """Whether `h` is data of a transaction its producer aborted."""
    if not h.is_transactional:
        return False
    return any(first <= h.base_offset <= last for first, last in aborted.get(h.producer_id, ()))


def _clean_segment(
    log: PartitionLog,
    seg: LogSegment,
    latest: dict[bytes, int],
    horizon: int,
    aborted: dict[int, list[tuple[int, int]]],
) -> bool:
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
            entry = log.producer_state.lookup(h.producer_id)
            if entry is not None and entry.last_offset == h.last_offset:
                out += encode_filtered_batch(h, [])
    if not changed:
        return False
    _replace_segment(log, seg, bytes(out))
    return True


def _replace_segment(log: PartitionLog, seg: LogSegment, data: bytes) -> None:
    tmp = seg.log_path.with_name(seg.log_path.name + ".cleaned")
    write_synced(tmp, data)
    seg.release()
    for path in (seg.index.path, seg.time_index.path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    fsync_dir(log.directory)
    os.replace(tmp, seg.log_path)
    fsync_dir(log.directory)
    fresh = log._new_segment(seg.base_offset)
    fresh.recover()
    fresh.seal()
    fresh.fsync()
    fresh.park_indexes()
    i = log._segments.index(seg)
    log._segments[i] = fresh
    # The old .log descriptor closes once no FileRegion refers to it.
