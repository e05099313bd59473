"""Producer state for exactly once: sequence/epoch checks, open transactions, LSO, recovery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbroker.log.config import LogConfig
from kbroker.log.partition import PartitionLog
from kbroker.log.producer_state import ProducerState, ProducerStateError, in_sequence
from kbroker.wire.errors import ErrorCode
from kbroker.wire.records import build_control_batch
from tests.log.conftest import batch
from tests.log.helpers import records_and_headers


def _tx(n: int, seq: int, pid: int = 1, epoch: int = 0) -> bytes:
    return batch(n, producer_id=pid, producer_epoch=epoch, base_sequence=seq, transactional=True)


def _marker(commit: bool, pid: int = 1, epoch: int = 0) -> bytes:
    return build_control_batch(
        commit=commit, producer_id=pid, producer_epoch=epoch, coordinator_epoch=0, timestamp=5
    )


def _idem(n: int, seq: int, pid: int = 1, epoch: int = 0) -> bytes:
    return batch(n, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def test_check_batch_cases(open_log):
    log = open_log()
    ps = log.producer_state
    assert ps.check_batch(1, 0, 9, 9) is None  # unknown producer: any sequence (KIP-360)
    log.append(_idem(2, 0))
    assert ps.check_batch(1, 0, 2, 3) is None  # next in line
    dup = ps.check_batch(1, 0, 0, 1)
    assert dup is not None and dup.first_offset == 0
    with pytest.raises(ProducerStateError) as gap:
        ps.check_batch(1, 0, 5, 5)
    assert gap.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    with pytest.raises(ProducerStateError) as old:
        ps.check_batch(1, -1 + 0, 2, 2)  # epoch lower than 0
    assert old.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    with pytest.raises(ProducerStateError) as new_epoch:
        ps.check_batch(1, 1, 2, 2)
    assert new_epoch.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert ps.check_batch(1, 1, 0, 0) is None


def test_non_transactional_write_during_open_transaction_is_invalid_txn_state(open_log):
    log = open_log()
    log.append(_tx(1, 0))
    with pytest.raises(ProducerStateError) as err:
        log.producer_state.check_batch(1, 0, 1, 1, is_transactional=False)
    assert err.value.code == ErrorCode.INVALID_TXN_STATE


@given(st.integers(min_value=-1, max_value=2**31 - 1), st.integers(0, 2**31 - 1))
def test_in_sequence_is_successor_with_wrap(last, nxt):
    expected = nxt == last + 1 or (last == 2**31 - 1 and nxt == 0)
    assert in_sequence(last, nxt) == expected


def test_lso_follows_the_earliest_open_transaction(open_log):
    log = open_log()
    log.append(batch(2))  # 0-1 plain
    log.append(_tx(2, 0, pid=1))  # 2-3 pid 1 opens
    log.append(_tx(1, 0, pid=2))  # 4 pid 2 opens
    assert log.last_stable_offset == 2
    log.append(_marker(True, pid=1))  # 5 commits pid 1
    assert log.last_stable_offset == 4
    log.append(_marker(False, pid=2))  # 6 aborts pid 2
    assert log.last_stable_offset == log.high_watermark == 7
    (aborted,) = log.aborted_transactions(0, 7)
    assert (
        aborted.producer_id,
        aborted.first_offset,
        aborted.last_offset,
        aborted.last_stable_offset,
    ) == (2, 4, 6, 7)
    assert log.aborted_transactions(7, 10) == []
    assert log.aborted_transactions(0, 4) == []  # the fetched range ends before it


@pytest.mark.parametrize("clean", [True, False])
def test_open_transactions_and_aborts_survive_reopen(open_log, clean):
    log = open_log()
    log.append(_tx(2, 0, pid=1))
    log.append(_marker(False, pid=1))  # 2: abort
    log.append(_tx(1, 2, pid=1))  # 3: opens again
    if clean:
        log.close()
    else:
        log.abandon()
    log = open_log()
    assert log.last_stable_offset == 3
    assert [a.first_offset for a in log.aborted_transactions(0, 10)] == [0]
    entry = log.producer_state.lookup(1)
    assert entry.current_txn_first_offset == 3 and entry.last_seq == 2


def test_lost_index_entry_is_rebuilt_on_unclean_open(open_log, log_dir):
    log = open_log()
    log.append(_tx(2, 0))
    log.append(_marker(False))
    log.abandon()
    for path in log_dir.glob("*.txnindex"):
        path.write_bytes(b"")  # the entry never reached the disk
    log = open_log()
    assert [(a.first_offset, a.last_offset) for a in log.aborted_transactions(0, 10)] == [(0, 2)]


def test_truncating_a_marker_reopens_its_transaction(open_log):
    log = open_log()
    log.append(_tx(2, 0))
    log.append(_marker(False))
    log.truncate_to(2)  # the ABORT marker is gone
    assert log.aborted_transactions(0, 10) == []
    assert log.last_stable_offset == 0  # the transaction is open again, as in Kafka


def test_expiry_keeps_producers_with_open_transactions():
    ps = ProducerState()
    ps.update(1, 0, 0, 0, 0, 0, timestamp=1_000)
    ps.update(2, 0, 0, 0, 1, 1, timestamp=1_000)
    ps.entries[2].current_txn_first_offset = 1
    ps.ongoing[2] = 1
    assert ps.remove_expired(now_ms=10_000, expiration_ms=5_000) == 1
    assert ps.lookup(1) is None and ps.lookup(2) is not None


def test_snapshot_round_trip_keeps_transaction_fields():
    ps = ProducerState()
    ps.update(7, 3, 0, 4, 10, 14, timestamp=99)
    ps.entries[7].current_txn_first_offset = 10
    ps.ongoing[7] = 10
    back = ProducerState.from_json(ps.to_json())
    assert back.first_unstable_offset() == 10
    assert back.lookup(7).last_seq == 4


def test_compaction_drops_aborted_records_and_stops_at_open_transactions(open_log):
    log = open_log(cleanup_policy="compact", segment_bytes=200)
    log.append(batch(1, key=b"a", value_size=5))  # 0: committed value of a
    log.append(_tx(1, 0, pid=1))  # 1: a, later aborted
    log.append(_marker(False, pid=1))  # 2
    log.roll()
    log.append(_tx(1, 0, pid=2))  # 3: b, still open
    log.roll()
    log.append(batch(1, key=b"z"))
    log.compact()
    recs, _headers = records_and_headers(log)
    offsets = [offset for offset, _key, _value in recs]
    # The committed value survives (the aborted one never superseded it), the
    # aborted record is gone, and the open transaction's record is untouched.
    assert 0 in offsets and 1 not in offsets and 3 in offsets


def _marker_at(coordinator_epoch: int, *, commit: bool = True, pid: int = 1, epoch: int = 0):
    return build_control_batch(
        commit=commit,
        producer_id=pid,
        producer_epoch=epoch,
        coordinator_epoch=coordinator_epoch,
        timestamp=5,
    )


def _fenced(ps: ProducerState, pid: int, epoch: int, coordinator_epoch: int) -> ErrorCode | None:
    try:
        ps.check_marker(pid, epoch, coordinator_epoch)
    except ProducerStateError as exc:
        return exc.code
    return None


def test_a_marker_from_an_older_coordinator_epoch_than_the_producers_last_is_fenced(open_log):
    # ProducerAppendInfo.appendEndTxnMarker: the producer remembers the coordinator epoch
    # of its last marker; a coordinator of an older one is a zombie.
    log = open_log()
    ps = log.producer_state
    assert _fenced(ps, 1, 0, 0) is None  # a producer never seen: nothing to fence
    log.append(_tx(1, 0))
    log.append(_marker_at(3))
    assert ps.lookup(1).coordinator_epoch == 3
    assert _fenced(ps, 1, 0, 2) == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert _fenced(ps, 1, 0, 3) is None and _fenced(ps, 1, 0, 4) is None
    # The producer epoch is checked first, as Kafka does.
    log.append(_tx(1, 0, epoch=1))
    assert _fenced(ps, 1, 0, 2) == ErrorCode.INVALID_PRODUCER_EPOCH
    # A new producer epoch keeps the producer's coordinator epoch.
    assert ps.lookup(1).coordinator_epoch == 3
    log.append(_marker_at(5, commit=False, epoch=1))
    assert ps.lookup(1).coordinator_epoch == 5
    assert _fenced(ps, 1, 1, 3) == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    # Another producer's markers are its own.
    assert _fenced(ps, 2, 0, 0) is None


@pytest.mark.parametrize("how", ["snapshot", "log scan"])
def test_the_producers_coordinator_epoch_survives_a_reopen(open_log, log_dir, how):
    log = open_log()
    log.append(_tx(1, 0))
    log.append(_marker_at(4))
    log.append(_tx(1, 1))  # a transaction open again
    if how == "snapshot":
        log.close()
        assert list(log_dir.glob("*.snapshot"))
    else:
        log.abandon()
        for path in log_dir.glob("*.snapshot"):
            path.unlink()
    log = open_log()
    assert log.producer_state.lookup(1).coordinator_epoch == 4
    assert _fenced(log.producer_state, 1, 0, 3) == ErrorCode.TRANSACTION_COORDINATOR_FENCED


def test_a_follower_takes_the_coordinator_epoch_from_the_leaders_marker(open_log, tmp_path):
    # Its producer state follows the leader's batches: once it leads, it fences as the
    # leader did.
    leader = open_log()
    leader.append(_tx(1, 0))
    leader.append(_marker_at(4))
    follower = PartitionLog.open(tmp_path / "follower" / "t-0", LogConfig())
    try:
        follower.append_as_follower(leader.read(0, 1 << 20).read_bytes())
        assert follower.producer_state.lookup(1).coordinator_epoch == 4
        assert _fenced(follower.producer_state, 1, 0, 3) == (
            ErrorCode.TRANSACTION_COORDINATOR_FENCED
        )
    finally:
        follower.abandon()


def test_a_snapshot_without_coordinator_epochs_is_still_read():
    # Snapshots written before the transaction fields: [pid, epoch, last ts, batches].
    old = b"[[7, 2, 99, [[0, 4, 10, 14, 99]]]]"
    entry = ProducerState.from_json(old).lookup(7)
    assert (entry.producer_epoch, entry.last_seq, entry.coordinator_epoch) == (2, 4, -1)
    state = ProducerState.from_json(old)
    assert _fenced(state, 7, 2, 0) is None
    state.entries[7].coordinator_epoch = 6
    assert ProducerState.from_json(state.to_json()).lookup(7).coordinator_epoch == 6
