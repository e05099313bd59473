"""Producer state for exactly once: sequence/epoch checks, open transactions, LSO, recovery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
