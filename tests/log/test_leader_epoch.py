"""Leader epochs (KIP-101/KIP-279): the cache's answers, its file, and how the log keeps it true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbroker.log import LogConfig, LogError, PartitionLog
from kbroker.log.leader_epoch import LEADER_EPOCH_FILE, LeaderEpochCache
from kbroker.wire.records import build_control_batch, parse_header
from tests.log.conftest import batch


def _cache(tmp_path: Path, *entries: tuple[int, int]) -> LeaderEpochCache:
    cache = LeaderEpochCache(tmp_path / LEADER_EPOCH_FILE)
    for epoch, start in entries:
        cache.assign(epoch, start)
    return cache


# -- the cache ------------------------------------------------------------------------


def test_end_offset_for_follows_kafka(tmp_path: Path) -> None:
    cache = _cache(tmp_path, (1, 0), (3, 10), (6, 25))
    leo = 40
    assert cache.end_offset_for(-1, leo) == (-1, -1)  # undefined epoch asked
    assert cache.end_offset_for(6, leo) == (6, 40)  # latest: still open, ends at the LEO
    assert cache.end_offset_for(3, leo) == (3, 25)  # ends where the next epoch starts
    assert cache.end_offset_for(4, leo) == (3, 25)  # unknown: largest epoch <= it
    assert cache.end_offset_for(5, leo) == (3, 25)
    assert cache.end_offset_for(0, leo) == (0, 0)  # older than all: first start offset
    assert cache.end_offset_for(7, leo) == (-1, -1)  # newer than all: undefined
    assert LeaderEpochCache(tmp_path / "x").end_offset_for(0, 5) == (-1, -1)


def test_file_has_kafkas_format(tmp_path: Path) -> None:
    cache = _cache(tmp_path, (0, 0), (2, 7), (5, 12))
    assert (tmp_path / LEADER_EPOCH_FILE).read_text() == "0\n3\n0 0\n2 7\n5 12\n"
    loaded = LeaderEpochCache.load(tmp_path / LEADER_EPOCH_FILE)
    assert loaded is not None and loaded.entries() == cache.entries()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("text", ["", "1\n0\n", "0\n2\n0 0\n", "0\n1\nx y\n", "0\n1\n0\n"])
def test_damaged_file_is_not_trusted(tmp_path: Path, text: str) -> None:
    (tmp_path / LEADER_EPOCH_FILE).write_text(text)
    assert LeaderEpochCache.load(tmp_path / LEADER_EPOCH_FILE) is None


def test_assign_keeps_epochs_and_offsets_increasing(tmp_path: Path) -> None:
    cache = _cache(tmp_path, (0, 0), (2, 10))
    assert not cache.assign(2, 15)  # same epoch later on: nothing new
    assert not cache.assign(-1, 20)  # a batch without an epoch
    assert cache.assign(4, 20)
    # Entries a new one contradicts (epoch or start not below it) are replaced.
    assert cache.assign(3, 12)
    assert cache.entries() == [(0, 0), (2, 10), (3, 12)]
    assert cache.assign(5, 5)
    assert cache.entries() == [(0, 0), (5, 5)]


def test_truncation_from_either_end(tmp_path: Path) -> None:
    cache = _cache(tmp_path, (0, 0), (2, 10), (4, 20))
    assert cache.truncate_from_end(20)  # the entry starting there goes
    assert cache.entries() == [(0, 0), (2, 10)]
    assert not cache.truncate_from_end(15)  # nothing starts at or past 15
    assert cache.truncate_from_start(12)  # epoch 2 now starts at the new log start
    assert cache.entries() == [(2, 12)]
    assert (tmp_path / LEADER_EPOCH_FILE).read_text() == "0\n1\n2 12\n"
    assert cache.epoch_for_offset(13) == 2 and cache.epoch_for_offset(3) == -1


# -- the log keeps it ---------------------------------------------------------------


def _epoch_file(log: PartitionLog) -> str:
    return (log.directory / LEADER_EPOCH_FILE).read_text()


def test_appends_record_each_new_leader_epoch(open_log) -> None:  # type: ignore[no-untyped-def]
    log = open_log()
    assert not (log.directory / LEADER_EPOCH_FILE).exists()  # nothing to say yet
    log.append(batch(3))  # epoch 0, as a single node stamps it
    log.append(batch(2), leader_epoch=0)
    log.append(batch(2), leader_epoch=3)
    log.append(batch(1), leader_epoch=7)
    assert _epoch_file(log) == "0\n3\n0 0\n3 5\n7 7\n"
    assert log.leader_epochs.end_offset_for(3, log.log_end_offset) == (3, 7)
    # Each batch carries its leader epoch too (what a follower copies).
    data = log.read(5, 1 << 20).read_bytes()
    assert parse_header(data, 0).partition_leader_epoch == 3
    log.close()
    reopened = PartitionLog.open(log.directory, LogConfig())
    assert reopened.leader_epochs.entries() == [(0, 0), (3, 5), (7, 7)]
    reopened.close()


def test_a_new_logs_first_epoch_is_written_at_its_flush_not_its_first_append(
    log_dir: Path,
) -> None:
    path = log_dir / LEADER_EPOCH_FILE
    log = PartitionLog.open(log_dir, LogConfig())
    log.append(batch(3), leader_epoch=4)
    log.append(batch(2), leader_epoch=4)
    # Known at once (OffsetForLeaderEpoch answers from memory) ...
    assert log.leader_epochs.entries() == [(4, 0)]
    assert log.leader_epochs.end_offset_for(4, log.log_end_offset) == (4, 5)
    # ... but the file waits: the batches say the same thing.
    assert not path.exists()
    log.flush()
    assert path.read_text() == "0\n1\n4 0\n"
    log.close()
    assert PartitionLog.open(log_dir, LogConfig()).leader_epochs.entries() == [(4, 0)]


def test_a_crash_before_that_flush_rebuilds_the_same_epochs(log_dir: Path) -> None:
    log = PartitionLog.open(log_dir, LogConfig())
    log.append(batch(3), leader_epoch=2)
    log.abandon()  # a crash: no flush, no close
    assert not (log_dir / LEADER_EPOCH_FILE).exists()
    log = PartitionLog.open(log_dir, LogConfig())
    assert log.log_end_offset == 3
    assert log.leader_epochs.entries() == [(2, 0)]
    assert _epoch_file(log) == "0\n1\n2 0\n"
    log.close()


def test_a_second_epoch_or_a_roll_writes_the_first_one_too(log_dir: Path) -> None:
    log = PartitionLog.open(log_dir, LogConfig(segment_bytes=150))
    log.append(batch(2, value_size=40), leader_epoch=1)
    log.append(batch(2, value_size=40), leader_epoch=1)  # rolls: the file is written
    assert _epoch_file(log) == "0\n1\n1 0\n"
    log.close()
    other = PartitionLog.open(log_dir.parent / "other-0", LogConfig())
    other.append(batch(1), leader_epoch=0)
    other.append(batch(1), leader_epoch=3)
    assert _epoch_file(other) == "0\n2\n0 0\n3 1\n"
    other.abandon()
    assert PartitionLog.open(other.directory, LogConfig()).leader_epochs.entries() == [
        (0, 0),
        (3, 1),
    ]


def test_an_epoch_assigned_before_the_first_append_is_kept(log_dir: Path) -> None:
    # Becoming leader assigns the epoch at the log end before any batch exists
    # (kbroker.replication): that file is written, and the first append adds to it.
    log = PartitionLog.open(log_dir, LogConfig())
    log.leader_epochs.assign(5, 0)
    log.append(batch(2), leader_epoch=6)
    assert _epoch_file(log) == "0\n1\n6 0\n"  # an entry at the same offset replaces it
    assert log.leader_epochs.entries() == [(6, 0)]
    log.abandon()
    assert PartitionLog.open(log_dir, LogConfig()).leader_epochs.entries() == [(6, 0)]


def test_truncation_retention_and_delete_records_keep_it_true(open_log, clock) -> None:  # type: ignore[no-untyped-def]
    log = open_log(segment_bytes=200, retention_ms=10_000)
    for epoch in (0, 0, 1, 1, 2, 2, 4, 4):
        log.append(batch(2, ts=clock.now_ms, value_size=60), leader_epoch=epoch)
    assert log.leader_epochs.entries() == [(0, 0), (1, 4), (2, 8), (4, 12)]
    log.truncate_to(10)
    assert log.leader_epochs.entries() == [(0, 0), (1, 4), (2, 8)]
    log.truncate_to(8)  # the epoch that started at the cut goes with it
    assert _epoch_file(log) == "0\n2\n0 0\n1 4\n"
    log.delete_records_before(5)
    assert log.leader_epochs.entries() == [(1, 5)]
    log.append(batch(2, ts=clock.now_ms, value_size=60), leader_epoch=6)
    clock.advance_ms(20_000)
    log.append(batch(2, ts=clock.now_ms, value_size=60), leader_epoch=6)
    log.enforce_retention()
    start = log.log_start_offset
    assert start > 5
    assert log.leader_epochs.entries()[0] == (log.leader_epochs.epoch_for_offset(start), start)
    assert _epoch_file(log).splitlines()[2].endswith(f" {start}")


def test_recovery_cuts_epochs_past_the_log_end(log_dir: Path) -> None:
    log = PartitionLog.open(log_dir, LogConfig())
    log.append(batch(2), leader_epoch=1)
    log.append(batch(2), leader_epoch=5)
    log.abandon()
    # A crash lost the last batch but not the epoch file written for it.
    seg = next(log_dir.glob("*.log"))
    size = os.path.getsize(seg)
    os.truncate(seg, size - 10)
    log = PartitionLog.open(log_dir, LogConfig())
    assert log.open_mode == "recovered" and log.log_end_offset == 2
    assert log.leader_epochs.entries() == [(1, 0)]
    assert _epoch_file(log) == "0\n1\n1 0\n"
    log.close()


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_lost_epoch_file_is_rebuilt_from_the_batches(log_dir: Path, damage: str) -> None:
    log = PartitionLog.open(log_dir, LogConfig(segment_bytes=150))
    for epoch in (0, 0, 2, 2, 2, 9):
        log.append(batch(2, value_size=40), leader_epoch=epoch)
    expected = log.leader_epochs.entries()
    log.close()
    path = log_dir / LEADER_EPOCH_FILE
    if damage == "missing":
        path.unlink()
    else:
        path.write_text("0\n7\n")
    log = PartitionLog.open(log_dir, LogConfig(segment_bytes=150))
    assert log.leader_epochs.entries() == expected == [(0, 0), (2, 4), (9, 10)]
    assert path.read_text() == "0\n3\n0 0\n2 4\n9 10\n"
    log.close()


# -- follower appends ----------------------------------------------------------------


def test_follower_copies_the_leaders_batches_byte_for_byte(tmp_path: Path) -> None:
    leader = PartitionLog.open(tmp_path / "leader" / "t-0", LogConfig())
    follower = PartitionLog.open(tmp_path / "follower" / "t-0", LogConfig())
    leader.append(batch(2), leader_epoch=0)
    leader.append(
        batch(3, producer_id=7, producer_epoch=0, base_sequence=0, transactional=True),
        leader_epoch=1,
    )
    leader.append(
        build_control_batch(
            producer_id=7, producer_epoch=0, coordinator_epoch=0, commit=False, timestamp=5
        ),
        leader_epoch=1,
    )
    leader.append(batch(1, producer_id=8, producer_epoch=2, base_sequence=0), leader_epoch=4)
    copied = 0
    while copied < leader.log_end_offset:
        chunk = leader.read(copied, 100).read_bytes()  # whole batches, as a fetch returns
        result = follower.append_as_follower(chunk)
        copied = result.last_offset + 1
    assert follower.read(0, 1 << 20).read_bytes() == leader.read(0, 1 << 20).read_bytes()
    assert follower.leader_epochs.entries() == leader.leader_epochs.entries()
    assert follower.log_end_offset == leader.log_end_offset == 7
    # The aborted transaction and the idempotent producer are known on the follower too.
    assert [a.producer_id for a in follower.aborted_transactions(0, 7)] == [7]
    assert follower.producer_state.to_json() == leader.producer_state.to_json()
    leader.close()
    follower.close()


def test_follower_refuses_overlaps_and_damage(tmp_path: Path) -> None:
    leader = PartitionLog.open(tmp_path / "l", LogConfig())
    follower = PartitionLog.open(tmp_path / "f", LogConfig())
    leader.append(batch(2))
    leader.append(batch(2))
    data = leader.read(0, 1 << 20).read_bytes()
    follower.append_as_follower(data)
    with pytest.raises(LogError):
        follower.append_as_follower(data)  # offsets already held: truncate first
    leader.append(batch(2))
    tail = leader.read(4, 1 << 20).read_bytes()
    with pytest.raises(LogError):
        follower.append_as_follower(tail[:-3])  # a partial batch
    broken = bytearray(tail)
    broken[-1] ^= 1
    with pytest.raises(LogError):
        follower.append_as_follower(bytes(broken))  # CRC mismatch
    assert follower.log_end_offset == 4
    leader.close()
    follower.close()


def test_truncate_fully_and_start_at_restarts_an_empty_log(log_dir: Path) -> None:
    log = PartitionLog.open(log_dir, LogConfig())
    log.append(batch(3, producer_id=4, producer_epoch=0, base_sequence=0), leader_epoch=2)
    log.truncate_fully_and_start_at(10)
    assert (log.log_start_offset, log.log_end_offset) == (10, 10)
    assert log.leader_epochs.entries() == []
    empty = PartitionLog.open(log_dir.parent / "empty", LogConfig())
    assert log.producer_state.to_json() == empty.producer_state.to_json()  # producer 4 forgotten
    empty.close()
    log.close()
    log = PartitionLog.open(log_dir, LogConfig())
    assert (log.log_start_offset, log.log_end_offset) == (10, 10)
    assert log.append(batch(1), leader_epoch=3).base_offset == 10
    log.close()
