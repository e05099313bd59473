"""Start-up path of a partition log: a clean open does no directory fsync (one per
partition made a 1,000-partition broker start take seconds), but the clean-shutdown
marker's removal is still made durable before the first change to the log's files."""

from __future__ import annotations

from pathlib import Path

import pytest

import kbroker.log.partition as partition_module
from kbroker.log import LogConfig, PartitionLog
from kbroker.log.checkpoint import CLEAN_SHUTDOWN_FILE
from kbroker.log.segment import LogSegment
from kbroker.wire.records import iter_records
from tests.log.conftest import batch as _batch


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Directory fsyncs and segment writes, in order (the real ones still happen)."""
    seen: list[tuple[str, object]] = []
    real_fsync_dir = partition_module.fsync_dir
    real_append = LogSegment.append

    def fsync_dir(directory: Path) -> None:
        seen.append(("fsync_dir", Path(directory)))
        real_fsync_dir(directory)

    def append(self: LogSegment, buf: bytearray, batches: list) -> None:
        seen.append(("write", self.base_offset))
        real_append(self, buf, batches)

    monkeypatch.setattr(partition_module, "fsync_dir", fsync_dir)
    monkeypatch.setattr(LogSegment, "append", append)
    return seen


def _closed_clean_log(d: Path) -> None:
    log = PartitionLog.open(d, LogConfig())
    log.append(_batch(3))
    log.close()
    assert (d / CLEAN_SHUTDOWN_FILE).exists()


def test_clean_open_fsyncs_no_directory_until_the_first_append(
    tmp_path: Path, events: list[tuple[str, object]]
) -> None:
    d = tmp_path / "t-0"
    _closed_clean_log(d)
    events.clear()
    log = PartitionLog.open(d, LogConfig())
    assert log.open_mode == "clean" and not (d / CLEAN_SHUTDOWN_FILE).exists()
    assert events == []  # reads and idle time cost no fsync
    log.read(0, 1000)
    assert events == []
    log.append(_batch(1))
    log.append(_batch(1))
    # The marker's removal reaches the disk before the first byte is written, once.
    assert events == [("fsync_dir", d), ("write", 0), ("write", 0)]
    log.close()
    log = PartitionLog.open(d, LogConfig())
    assert log.open_mode == "clean" and log.log_end_offset == 5
    log.close()


@pytest.mark.parametrize("change", ["truncate", "delete_records", "roll"])
def test_every_other_change_also_makes_the_marker_removal_durable_first(
    tmp_path: Path, events: list[tuple[str, object]], change: str
) -> None:
    d = tmp_path / "t-0"
    _closed_clean_log(d)
    log = PartitionLog.open(d, LogConfig())
    events.clear()
    if change == "truncate":
        log.truncate_to(0)
    elif change == "delete_records":
        log.delete_records_before(2)
    else:
        log.roll()
    assert events[:1] == [("fsync_dir", d)]
    log.close()


def test_a_crash_before_any_write_reopens_clean_and_keeps_everything(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    _closed_clean_log(d)
    log = PartitionLog.open(d, LogConfig())
    log.abandon()  # crash without having written anything
    log = PartitionLog.open(d, LogConfig())
    assert log.log_end_offset == 3
    assert [r.offset for r in iter_records(log.read(0, 10_000).read_bytes())] == [0, 1, 2]
    log.close()


def test_clean_open_of_many_segments_fsyncs_nothing_but_rebuilt_indexes_are_synced(
    tmp_path: Path, fsynced: list[str]
) -> None:
    d = tmp_path / "t-0"
    cfg = LogConfig(segment_bytes=2_000)
    log = PartitionLog.open(d, cfg)
    for _ in range(12):
        log.append(_batch(1, value_size=900))
    assert len(log.segment_base_offsets()) >= 5
    log.close()
    fsynced.clear()  # only what follows
    log = PartitionLog.open(d, cfg)
    assert log.open_mode == "clean" and log.log_end_offset == 12
    assert fsynced == []  # the indexes were only read: durable since their roll
    log.close()
    # A rebuilt index is new data: it is fsynced before the open returns.
    (d / "00000000000000000000.index").unlink()
    fsynced.clear()
    log = PartitionLog.open(d, cfg)
    assert str(d / "00000000000000000000.index") in fsynced
    assert log.log_end_offset == 12 and len(log.read(0, 100).read_bytes()) > 0
    log.close()
