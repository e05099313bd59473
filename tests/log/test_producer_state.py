"""Producer state: the last 5 batches per producer id, rebuilt from the log on open."""

from __future__ import annotations

import pytest

from kbroker.log import LogConfig, PartitionLog, ProducerState
from kbroker.log.producer_state import last_sequence
from tests.log.conftest import batch


def _idem(n: int, seq: int, pid: int = 1, epoch: int = 0) -> bytes:
    return batch(n, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def test_append_records_sequences_and_offsets(open_log):
    log = open_log()
    log.append(batch(2))  # no producer id: not tracked
    log.append(_idem(3, 0))
    entry = log.producer_state.lookup(1)
    assert entry is not None and entry.producer_epoch == 0
    b = entry.batches[-1]
    assert (b.first_seq, b.last_seq, b.first_offset, b.last_offset) == (0, 2, 2, 4)
    assert log.producer_state.lookup(2) is None


def test_window_keeps_last_five_batches_and_finds_duplicates(open_log):
    log = open_log()
    for i in range(7):
        log.append(_idem(1, i))
    entry = log.producer_state.lookup(1)
    assert [b.first_seq for b in entry.batches] == [2, 3, 4, 5, 6]
    dup = log.producer_state.find_duplicate(1, 0, 4, 4)
    assert dup is not None and dup.first_offset == 4
    assert log.producer_state.find_duplicate(1, 0, 1, 1) is None  # fell out of the window
    assert log.producer_state.find_duplicate(1, 1, 4, 4) is None  # other epoch


def test_new_epoch_forgets_old_batches(open_log):
    log = open_log()
    log.append(_idem(1, 0))
    log.append(_idem(1, 0, epoch=1))
    entry = log.producer_state.lookup(1)
    assert entry.producer_epoch == 1 and len(entry.batches) == 1


@pytest.mark.parametrize("shutdown", ["clean", "crash", "crash-no-snapshot"])
def test_rebuilt_on_open(log_dir, shutdown):
    cfg = LogConfig(segment_bytes=400)
    log = PartitionLog.open(log_dir, cfg)
    for i in range(12):
        log.append(_idem(2, 2 * i, pid=i % 3))
    expected = {pid: list(e.batches) for pid, e in log.producer_state.entries.items()}
    if shutdown == "clean":
        log.close()
    else:
        log.abandon()
    if shutdown == "crash-no-snapshot":
        for p in log_dir.glob("*.snapshot"):
            p.unlink()
    log = PartitionLog.open(log_dir, cfg)
    assert {pid: list(e.batches) for pid, e in log.producer_state.entries.items()} == expected
    log.close()


def test_snapshot_beyond_recovered_end_is_ignored(log_dir):
    cfg = LogConfig()
    log = PartitionLog.open(log_dir, cfg)
    log.append(_idem(1, 0))
    log.append(_idem(1, 1))
    log.close()
    seg = log_dir / "00000000000000000000.log"
    seg.write_bytes(seg.read_bytes()[: len(_idem(1, 0)) + 10])  # second batch torn
    log = PartitionLog.open(log_dir, cfg)
    assert log.log_end_offset == 1
    assert [b.first_seq for b in log.producer_state.lookup(1).batches] == [0]
    log.close()


def test_truncate_forgets_batches(open_log):
    log = open_log()
    log.append(_idem(1, 0))
    log.append(_idem(1, 1))
    log.truncate_to(1)
    assert [b.first_seq for b in log.producer_state.lookup(1).batches] == [0]


def test_sequence_wraps_after_int32_max():
    assert last_sequence(2**31 - 2, 3) == 1
    assert last_sequence(5, 3) == 8


def test_snapshot_round_trip():
    state = ProducerState()
    state.update(7, 2, 0, 4, 100, 104, 123)
    again = ProducerState.from_json(state.to_json())
    assert again.lookup(7) == state.lookup(7)


@pytest.mark.parametrize("shutdown", ["clean", "crash"])
def test_open_transaction_survives_restart_and_marker_closes_it(log_dir, shutdown):
    from kbroker.wire.records import build_control_batch

    cfg = LogConfig()
    log = PartitionLog.open(log_dir, cfg)
    log.append(batch(1))
    log.append(batch(2, producer_id=4, producer_epoch=0, base_sequence=0, transactional=True))
    assert log.producer_state.first_unstable_offset() == 1
    if shutdown == "clean":
        log.close()
    else:
        log.abandon()
        for p in log_dir.glob("*.snapshot"):
            p.unlink()
    log = PartitionLog.open(log_dir, cfg)
    # Rebuilt from the log: the transaction is still open (it bounds the LSO).
    assert log.producer_state.first_unstable_offset() == 1
    log.append(
        build_control_batch(
            commit=True, producer_id=4, producer_epoch=0, coordinator_epoch=0, timestamp=5
        )
    )
    assert log.producer_state.first_unstable_offset() is None
    log.close()
