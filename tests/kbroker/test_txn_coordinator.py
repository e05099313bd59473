"""The transaction coordinator state machine alone: injected clock, fake store and markers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from kbroker.txn.coordinator import (
    MAX_EPOCH,
    TransactionCoordinator,
    TxnConfig,
    TxnMetadata,
    TxnState,
    transition,
)
from kbroker.txn.producer_ids import ProducerIdManager
from kbroker.txn.store import decode_txn_record, encode_txn_record
from kbroker.wire.errors import ErrorCode


class Fake:
    """Records store writes and markers; markers may be made to fail."""

    def __init__(self) -> None:
        self.now = 100.0
        self.writes: list[tuple[str, TxnMetadata | None]] = []
        self.markers: list[tuple[int, int, bool, list[tuple[str, int]]]] = []
        self.fail_markers = False
        self.ids = itertools.count(1000)

    def write(self, tid: str, meta: TxnMetadata | None) -> None:
        # Store a copy through the real record codec, as the topic would.
        key, value = encode_txn_record(tid, meta)
        self.writes.append(decode_txn_record(key, value))

    def write_markers(self, pid: int, epoch: int, commit: bool, parts: list[Any]) -> None:
        if self.fail_markers:
            raise OSError("disk full")
        self.markers.append((pid, epoch, commit, parts))

    def coordinator(self, **cfg: Any) -> TransactionCoordinator:
        return TransactionCoordinator(
            config=TxnConfig(**cfg),
            clock=lambda: self.now,
            next_producer_id=lambda: next(self.ids),
            store=self,
            markers=self.write_markers,
        )


@pytest.fixture
def fake() -> Fake:
    return Fake()


def test_commit_writes_prepare_markers_then_complete(fake: Fake) -> None:
    tc = fake.coordinator()
    r = tc.init_producer_id("a", 60_000)
    assert tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0), ("t", 1)]) == 0
    assert tc.end_txn("a", r.producer_id, r.producer_epoch, True) == 0
    states = [m.state for _, m in fake.writes if m is not None]
    assert states == [
        TxnState.EMPTY,
        TxnState.ONGOING,
        TxnState.PREPARE_COMMIT,
        TxnState.COMPLETE_COMMIT,
    ]
    assert fake.markers == [(r.producer_id, r.producer_epoch, True, [("t", 0), ("t", 1)])]


def test_crash_between_prepare_and_markers_is_finished_on_load(fake: Fake) -> None:
    tc = fake.coordinator()
    r = tc.init_producer_id("a", 60_000)
    tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)])
    fake.fail_markers = True
    with pytest.raises(OSError):
        tc.end_txn("a", r.producer_id, r.producer_epoch, False)
    assert fake.writes[-1][1].state is TxnState.PREPARE_ABORT
    # A restart replays __transaction_state and writes the missing markers.
    fake.fail_markers = False
    restarted = fake.coordinator()
    restarted.load(list(fake.writes))
    assert fake.markers == [(r.producer_id, r.producer_epoch, False, [("t", 0)])]
    assert restarted.describe("a").state is TxnState.COMPLETE_ABORT


def test_epoch_exhaustion_rotates_to_a_new_producer_id(fake: Fake) -> None:
    tc = fake.coordinator()
    r = tc.init_producer_id("a", 60_000)
    tc.txns["a"].producer_epoch = MAX_EPOCH
    again = tc.init_producer_id("a", 60_000)
    assert again.producer_id != r.producer_id and again.producer_epoch == 0


def test_concurrent_add_during_prepare_and_timeouts(fake: Fake) -> None:
    tc = fake.coordinator()
    r = tc.init_producer_id("a", 10_000)
    tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)])
    assert tc.next_deadline_ms() == int(fake.now * 1000) + 10_000
    fake.now += 9.999
    assert tc.poll() == []
    fake.now += 0.002
    assert tc.poll() == ["a"]
    meta = tc.describe("a")
    assert meta.state is TxnState.COMPLETE_ABORT and meta.producer_epoch == r.producer_epoch + 1
    assert fake.markers[-1] == (r.producer_id, r.producer_epoch + 1, False, [("t", 0)])
    assert (
        tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)])
        == ErrorCode.PRODUCER_FENCED
    )


def test_idempotent_ids_are_fresh_and_empty_transactional_id_is_invalid(fake: Fake) -> None:
    tc = fake.coordinator()
    a, b = tc.init_producer_id(None, -1), tc.init_producer_id(None, -1)
    assert a.producer_id != b.producer_id and a.producer_epoch == b.producer_epoch == 0
    assert tc.init_producer_id("", 1000).error == ErrorCode.INVALID_REQUEST
    assert tc.init_producer_id("x", 0).error == ErrorCode.INVALID_TRANSACTION_TIMEOUT


def test_producer_id_blocks_survive_restart(tmp_path: Any) -> None:
    first = ProducerIdManager(tmp_path, block_size=10)
    used = [first.next_id() for _ in range(3)]
    second = ProducerIdManager(tmp_path, block_size=10)  # a crash lost the rest of the block
    assert second.next_id() >= 10 > max(used)


# Kafka's TransactionState.validPreviousStates (TransactionMetadata.scala), by the names
# DescribeTransactions reports: the spec the state machine is checked against.
KAFKA_VALID_PREVIOUS = {
    "Empty": {"Empty", "CompleteCommit", "CompleteAbort"},
    "Ongoing": {"Ongoing", "Empty", "CompleteCommit", "CompleteAbort"},
    "PrepareCommit": {"Ongoing"},
    "PrepareAbort": {"Ongoing", "PrepareEpochFence"},
    "CompleteCommit": {"PrepareCommit"},
    "CompleteAbort": {"PrepareAbort"},
    "Dead": {"Empty", "CompleteAbort", "CompleteCommit"},
    "PrepareEpochFence": {"Ongoing"},
}


@pytest.mark.parametrize("target", list(TxnState), ids=lambda s: s.display)
@pytest.mark.parametrize("source", list(TxnState), ids=lambda s: s.display)
def test_transition_allows_exactly_kafkas_valid_previous_states(
    source: TxnState, target: TxnState
) -> None:
    meta = TxnMetadata("t", 1, 0, 60_000, state=source)
    if source.display in KAFKA_VALID_PREVIOUS[target.display]:
        transition(meta, target)
        assert meta.state is target
    else:
        with pytest.raises(AssertionError):
            transition(meta, target)
        assert meta.state is source
