"""Helpers the log tests share beyond conftest's builders: reading a log back."""

from __future__ import annotations

from kbroker.log import PartitionLog
from kbroker.wire.records import BatchHeader, iter_records, valid_prefix


def records_and_headers(
    log: PartitionLog,
) -> tuple[list[tuple[int, bytes | None, bytes | None]], list[BatchHeader]]:
    """Every record in ``log`` from its start, as (offset, key, value), and its batch headers;
    asserts every batch's CRC is valid."""
    data = log.read(log.log_start_offset, 1 << 30).read_bytes()
    end, headers = valid_prefix(data)
    assert end == len(data)  # every rewritten batch has a valid CRC
    out: list[tuple[int, bytes | None, bytes | None]] = []
    for pos, _h in headers:
        out += [(r.offset, r.key, r.value) for r in iter_records(data, pos)]
    return out, [h for _p, h in headers]
