"""A one-batch append is written as patched header + the caller's bytes (pwritev, no copy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kbroker.log import segment
from kbroker.log.config import LogConfig
from kbroker.log.partition import PartitionLog
from kbroker.log.segment import write_all_parts
from kbroker.wire.records import (
    Record,
    build_batch,
    build_control_batch,
    iter_records,
    parse_header,
    validate_batch,
)


def _batch(n: int, start: int = 0) -> bytes:
    return build_batch(
        [
            Record(key=b"k%d" % i, value=b"v" * 300, timestamp=1_000 + i)
            for i in range(start, start + n)
        ]
    )


def test_single_batch_from_a_request_view_is_stored_with_offsets_assigned(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    first, second = _batch(3), _batch(4, start=3)
    frame = bytearray(b"request header" + first + second)
    view = memoryview(frame)
    log.append(view[14 : 14 + len(first)], leader_epoch=5)
    log.append(view[14 + len(first) :], leader_epoch=5)
    frame[:] = bytes(len(frame))  # the request buffer is reused afterwards
    data = log.read(0, 1 << 20).read_bytes()
    h1 = validate_batch(data, 0)  # CRC still valid: only uncovered fields were patched
    h2 = validate_batch(data, h1.size)
    assert (h1.base_offset, h2.base_offset) == (0, 3)
    assert h1.partition_leader_epoch == h2.partition_leader_epoch == 5
    assert data[h1.size + 61 :] == second[61:] and data[61 : h1.size] == first[61:]
    assert [r.offset for r in iter_records(data, h1.size)] == [3, 4, 5, 6]
    log.close()
    # And after a clean restart the log ends where it should.
    reopened = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert reopened.log_end_offset == 7
    assert parse_header(reopened.read(3, 1 << 20).read_bytes()).base_offset == 3
    reopened.close()


def test_write_all_parts_writes_the_pieces_back_to_back(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        parts = [b"abc", memoryview(b"0123456789")[2:7], bytearray(b"xyz" * 100_000)]
        assert write_all_parts(fd, parts, 10) == 3 + 5 + 300_000
        assert os.pread(fd, 3 + 5 + 300_000 + 10, 0) == bytes(10) + b"abc23456" + b"xyz" * 100_000
    finally:
        os.close(fd)


def test_write_all_parts_finishes_after_short_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pwritev may write less than asked (a signal, a full disk's last blocks): the rest
    follows, from inside a part as well as from a part's boundary."""
    real = os.pwritev
    calls: list[int] = []

    def at_most_4(fd: int, buffers: list[Any], offset: int) -> int:
        data = b"".join(bytes(b) for b in buffers)[:4]
        calls.append(len(data))
        return real(fd, [data], offset)

    monkeypatch.setattr(segment.os, "pwritev", at_most_4)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        parts = [b"abc", memoryview(b"0123456789")[2:7], bytearray(b"xyz")]
        assert write_all_parts(fd, parts, 2) == 11
        assert os.pread(fd, 20, 0) == bytes(2) + b"abc23456xyz"
        assert calls == [4, 4, 3]
    finally:
        os.close(fd)


def test_an_append_given_the_batch_header_is_the_append_that_parses_it(tmp_path: Path) -> None:
    # Produce hands the log the header it read validating the batch, so the log does
    # not parse it again; what is stored and tracked must be exactly what the log does
    # when it reads the header itself: offsets, producer state, an aborted
    # transaction closed by a control batch, LogAppendTime stamping.
    def appends() -> list[tuple[bytes, bool]]:
        txn = build_batch(
            [Record(value=b"t%d" % i, timestamp=1_000 + i) for i in range(3)],
            producer_id=7,
            producer_epoch=2,
            base_sequence=0,
            transactional=True,
        )
        idempotent = build_batch(
            [Record(value=b"i", timestamp=1_005)], producer_id=9, producer_epoch=0, base_sequence=0
        )
        abort = build_control_batch(
            commit=False, producer_id=7, producer_epoch=2, coordinator_epoch=1, timestamp=1_006
        )
        plain = _batch(2)
        return [(txn, False), (idempotent, False), (abort, False), (plain, True)]

    logs = []
    for given in (False, True):
        log = PartitionLog.open(tmp_path / f"t-{int(given)}", LogConfig(), clock=lambda: 2_000.0)
        results = []
        for data, log_append_time in appends():
            frame = memoryview(bytearray(b"head" + data))[4:]
            header = parse_header(frame, 0) if given else None
            result = log.append(
                frame, leader_epoch=3, log_append_time=log_append_time, header=header
            )
            results.append(result)
        logs.append((log, results))
    (plain, plain_results), (given_log, given_results) = logs
    assert given_results == plain_results
    assert given_results[-1].log_append_time_ms == 2_000_000
    leo = plain.log_end_offset
    assert given_log.log_end_offset == leo == 3 + 1 + 1 + 2
    assert given_log.read(0, 1 << 20).read_bytes() == plain.read(0, 1 << 20).read_bytes()
    assert given_log.aborted_transactions(0, leo) == plain.aborted_transactions(0, leo) != []
    assert given_log.last_stable_offset == plain.last_stable_offset == leo
    for pid in (7, 9):
        assert given_log.producer_state.entries[pid] == plain.producer_state.entries[pid]
    for log, _ in logs:
        log.close()


def test_header_appends_roll_index_and_reopen_as_parsed_appends_do(tmp_path: Path) -> None:
    # The usual Produce append (one data batch, its header given) skips the general
    # loop of append; across segment rolls (size and index), sparse index entries,
    # leader epoch changes and a reopen it must leave the log exactly as the general
    # path does: same segments, bytes, indexes, epochs, producer state and results.
    def batches() -> list[tuple[bytes, int]]:
        out = []
        for i in range(60):
            records = [Record(value=b"x" * (50 + 37 * (i % 9)), timestamp=1_000 + i)] * (1 + i % 4)
            if i % 3 == 0:
                data = build_batch(records, producer_id=5, producer_epoch=0, base_sequence=i * 10)
            else:
                data = build_batch(records)
            out.append((data, 1 + i // 25))
        return out

    config = dict(segment_bytes=9_000, index_interval_bytes=700, segment_index_bytes=8 * 12)
    logs, results = [], []
    for given in (False, True):
        directory = tmp_path / f"t-{int(given)}"
        log = PartitionLog.open(directory, LogConfig(**config), clock=lambda: 2_000.0)
        appended = []
        for data, epoch in batches():
            frame = memoryview(bytearray(b"head" + data))[4:]
            header = parse_header(frame, 0) if given else None
            appended.append(log.append(frame, leader_epoch=epoch, header=header))
        results.append(appended)
        logs.append(log)
    parsed, given_log = logs
    assert results[0] == results[1]
    assert len(parsed.segment_base_offsets()) > 3
    assert given_log.segment_base_offsets() == parsed.segment_base_offsets()
    leo = parsed.log_end_offset
    assert given_log.read(0, 1 << 22).read_bytes() == parsed.read(0, 1 << 22).read_bytes()
    assert given_log.leader_epochs.entries() == parsed.leader_epochs.entries()
    assert given_log.producer_state.entries[5] == parsed.producer_state.entries[5]
    for offset in range(0, leo, 7):
        assert given_log.read(offset, 1).first_offset == parsed.read(offset, 1).first_offset
    assert given_log.offset_for_timestamp(1_030) == parsed.offset_for_timestamp(1_030)
    for log in logs:
        log.close()
    names = sorted(p.name for p in (tmp_path / "t-0").iterdir())
    assert sorted(p.name for p in (tmp_path / "t-1").iterdir()) == names
    for name in names:
        if name.endswith((".log", ".index", ".timeindex")):
            assert (tmp_path / "t-1" / name).read_bytes() == (tmp_path / "t-0" / name).read_bytes()
    reopened = PartitionLog.open(tmp_path / "t-1", LogConfig(**config))
    assert reopened.open_mode == "clean" and reopened.log_end_offset == leo
    reopened.close()
