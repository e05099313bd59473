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
        self.hold = False
        self.held: list[Any] = []
        self.hold_markers = False
        self.held_markers: list[Any] = []
        self.ids = itertools.count(1000)

    def append(self, tid: str, meta: TxnMetadata | None, done: Any) -> None:
        # Store a copy through the real record codec, as the topic would; complete it at
        # once (a single node), or later when the test says (``held``: waiting for the ISR).
        key, value = encode_txn_record(tid, meta)
        self.writes.append(decode_txn_record(key, value))
        if self.hold:
            self.held.append(done)
        else:
            done(ErrorCode.NONE)

    def release(self, error: ErrorCode = ErrorCode.NONE) -> None:
        """Complete the oldest write held back (its replication wait ended with ``error``)."""
        self.held.pop(0)(error)

    def write_markers(
        self, pid: int, epoch: int, commit: bool, parts: list[Any], done: Any
    ) -> None:
        if self.fail_markers:
            raise OSError("disk full")
        self.markers.append((pid, epoch, commit, parts))
        if self.hold_markers:
            self.held_markers.append(done)  # remote leaders or ISRs still to confirm
        else:
            done(ErrorCode.NONE)

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


def _ongoing(tc: TransactionCoordinator, timeout_ms: int = 60_000) -> Any:
    """Transactional id "a" initialised and ("t", 0) added: an Ongoing transaction; the
    InitProducerId result."""
    r = tc.init_producer_id("a", timeout_ms).result()
    tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)]).result()
    return r


def test_commit_writes_prepare_markers_then_complete(fake: Fake) -> None:
    tc = fake.coordinator()
    r = tc.init_producer_id("a", 60_000).result()
    assert (
        tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0), ("t", 1)]).result() == 0
    )
    assert tc.end_txn("a", r.producer_id, r.producer_epoch, True).result() == 0
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
    r = _ongoing(tc)
    fake.fail_markers = True
    # PrepareAbort is written: the abort is decided and answered (Kafka answers EndTxn
    # then); the markers are owed, and the transaction stays PrepareAbort until written.
    assert tc.end_txn("a", r.producer_id, r.producer_epoch, False).result() == ErrorCode.NONE
    assert fake.writes[-1][1].state is TxnState.PREPARE_ABORT
    assert tc.describe("a").state is TxnState.PREPARE_ABORT
    assert (
        tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)]).result()
        == ErrorCode.CONCURRENT_TRANSACTIONS
    )
    # A restart replays __transaction_state and writes the missing markers.
    fake.fail_markers = False
    restarted = fake.coordinator()
    restarted.load(list(fake.writes))
    assert fake.markers == [(r.producer_id, r.producer_epoch, False, [("t", 0)])]
    assert restarted.describe("a").state is TxnState.COMPLETE_ABORT


def test_each_transition_shows_only_once_its_write_is_complete(fake: Fake) -> None:
    # Cluster mode: a __transaction_state write completes once the ISR has it. Until
    # then the coordinator answers nothing and keeps the old state, with the write
    # pending (Kafka's pendingState): other requests get CONCURRENT_TRANSACTIONS.
    tc = fake.coordinator()
    fake.hold = True
    init = tc.init_producer_id("a", 60_000)
    assert not init.done and tc.describe("a").producer_epoch == -1
    assert tc.init_producer_id("a", 60_000).result().error == ErrorCode.CONCURRENT_TRANSACTIONS
    fake.release()
    r = init.result()
    assert (r.error, r.producer_epoch) == (ErrorCode.NONE, 0)

    add = tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)])
    assert not add.done
    assert tc.describe("a").state is TxnState.EMPTY
    assert not tc.partition_in_txn(r.producer_id, r.producer_epoch, ("t", 0))
    assert tc.verify_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)]) == {
        ("t", 0): ErrorCode.INVALID_TXN_STATE
    }
    fake.release()
    assert add.result() == ErrorCode.NONE
    assert tc.partition_in_txn(r.producer_id, r.producer_epoch, ("t", 0))

    end = tc.end_txn("a", r.producer_id, r.producer_epoch, True)
    assert tc.describe("a").state is TxnState.ONGOING and fake.markers == []
    assert (
        tc.end_txn("a", r.producer_id, r.producer_epoch, True).result()
        == ErrorCode.CONCURRENT_TRANSACTIONS
    )
    fake.release()  # PrepareCommit replicated: now the markers, then CompleteCommit
    assert tc.describe("a").state is TxnState.PREPARE_COMMIT
    assert fake.markers == [(r.producer_id, r.producer_epoch, True, [("t", 0)])]
    assert not end.done
    fake.release()
    assert end.result() == ErrorCode.NONE
    assert tc.describe("a").state is TxnState.COMPLETE_COMMIT
    assert fake.held == []


def test_a_failed_write_changes_nothing_and_answers_its_error(fake: Fake) -> None:
    tc = fake.coordinator()
    r = tc.init_producer_id("a", 60_000).result()
    fake.hold = True
    add = tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)])
    fake.release(ErrorCode.COORDINATOR_NOT_AVAILABLE)  # e.g. the ISR shrank below min.isr
    assert add.result() == ErrorCode.COORDINATOR_NOT_AVAILABLE
    meta = tc.describe("a")
    assert meta.state is TxnState.EMPTY and meta.partitions == set()
    assert meta.pending_state is None
    # The client retries; this time the write is replicated.
    add = tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)])
    fake.release()
    assert add.result() == ErrorCode.NONE

    end = tc.end_txn("a", r.producer_id, r.producer_epoch, True)
    fake.release(ErrorCode.NOT_COORDINATOR)  # leadership moved while waiting
    assert end.result() == ErrorCode.NOT_COORDINATOR
    assert tc.describe("a").state is TxnState.ONGOING and fake.markers == []

    bump = tc.init_producer_id("a", 60_000, r.producer_id, r.producer_epoch)
    fake.release(ErrorCode.COORDINATOR_NOT_AVAILABLE)  # the fencing abort is not written
    assert bump.result().error == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert tc.describe("a").producer_epoch == r.producer_epoch
    assert tc.describe("a").state is TxnState.ONGOING


def test_a_write_completing_after_the_coordinator_moved_is_not_coordinator(fake: Fake) -> None:
    tc = fake.coordinator()
    fake.hold = True
    init = tc.init_producer_id("a", 60_000)
    # The partition was unloaded and loaded again meanwhile (a new leadership).
    tc.txns["a"] = TxnMetadata("a", 7, 3, 60_000)
    fake.release()
    assert init.result().error == ErrorCode.NOT_COORDINATOR
    assert tc.describe("a").producer_epoch == 3


def test_a_failed_completion_is_finished_by_poll(fake: Fake) -> None:
    tc = fake.coordinator()
    r = _ongoing(tc)
    fake.hold = True
    end = tc.end_txn("a", r.producer_id, r.producer_epoch, True)
    fake.release()  # PrepareCommit
    fake.release(ErrorCode.COORDINATOR_NOT_AVAILABLE)  # CompleteCommit not replicated
    # The commit is decided once PrepareCommit is in the ISR: answered as done.
    assert end.result() == ErrorCode.NONE
    assert tc.describe("a").state is TxnState.PREPARE_COMMIT
    assert tc.next_deadline_ms() is not None and tc.next_deadline_ms() <= tc.now_ms()
    fake.hold = False
    tc.poll()
    assert tc.describe("a").state is TxnState.COMPLETE_COMMIT
    # The markers were written once; only the Complete record was written again.
    assert len(fake.markers) == 1
    states = [m.state for _, m in fake.writes if m is not None]
    assert states[-3:] == [
        TxnState.PREPARE_COMMIT,
        TxnState.COMPLETE_COMMIT,
        TxnState.COMPLETE_COMMIT,
    ]


def test_complete_is_written_only_once_every_marker_is(fake: Fake) -> None:
    # TransactionMarkerChannelManager: CompleteCommit follows the markers' acknowledgement.
    # Written earlier, a coordinator dying before a remote leader had its marker would
    # leave that partition's transaction open for good.
    tc = fake.coordinator()
    r = _ongoing(tc)
    fake.hold_markers = True
    end = tc.end_txn("a", r.producer_id, r.producer_epoch, True)
    assert fake.markers and fake.writes[-1][1].state is TxnState.PREPARE_COMMIT
    assert not end.done and tc.describe("a").state is TxnState.PREPARE_COMMIT
    assert (
        tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 1)]).result()
        == ErrorCode.CONCURRENT_TRANSACTIONS
    )
    assert tc.poll() == [] and len(fake.markers) == 1  # in flight: not sent twice
    fake.held_markers.pop(0)(ErrorCode.REQUEST_TIMED_OUT)  # a leader never confirmed
    assert end.result() == ErrorCode.NONE  # decided: PrepareCommit is written
    assert fake.writes[-1][1].state is TxnState.PREPARE_COMMIT
    # A later poll sends the markers again; once confirmed, CompleteCommit is written.
    tc.poll()
    assert len(fake.markers) == 2
    fake.held_markers.pop(0)(ErrorCode.NONE)
    assert fake.writes[-1][1].state is TxnState.COMPLETE_COMMIT
    assert tc.describe("a").state is TxnState.COMPLETE_COMMIT


def test_a_timeout_abort_waits_for_its_writes(fake: Fake) -> None:
    tc = fake.coordinator()
    r = _ongoing(tc, timeout_ms=10_000)
    fake.hold = True
    fake.now += 11
    assert tc.poll() == ["a"]
    assert tc.poll() == []  # in flight: not started twice
    meta = tc.describe("a")
    assert meta.state is TxnState.ONGOING and meta.producer_epoch == r.producer_epoch
    assert (
        tc.end_txn("a", r.producer_id, r.producer_epoch, True).result()
        == ErrorCode.CONCURRENT_TRANSACTIONS
    )
    fake.release()
    fake.release()
    assert meta.state is TxnState.COMPLETE_ABORT and meta.producer_epoch == r.producer_epoch + 1


def test_epoch_exhaustion_rotates_to_a_new_producer_id(fake: Fake) -> None:
    tc = fake.coordinator()
    r = tc.init_producer_id("a", 60_000).result()
    tc.txns["a"].producer_epoch = MAX_EPOCH
    again = tc.init_producer_id("a", 60_000).result()
    assert again.producer_id != r.producer_id and again.producer_epoch == 0


def test_concurrent_add_during_prepare_and_timeouts(fake: Fake) -> None:
    tc = fake.coordinator()
    r = _ongoing(tc, timeout_ms=10_000)
    assert tc.next_deadline_ms() == int(fake.now * 1000) + 10_000
    fake.now += 9.999
    assert tc.poll() == []
    fake.now += 0.002
    assert tc.poll() == ["a"]
    meta = tc.describe("a")
    assert meta.state is TxnState.COMPLETE_ABORT and meta.producer_epoch == r.producer_epoch + 1
    assert fake.markers[-1] == (r.producer_id, r.producer_epoch + 1, False, [("t", 0)])
    assert (
        tc.add_partitions("a", r.producer_id, r.producer_epoch, [("t", 0)]).result()
        == ErrorCode.PRODUCER_FENCED
    )


def test_idempotent_ids_are_fresh_and_empty_transactional_id_is_invalid(fake: Fake) -> None:
    tc = fake.coordinator()
    a, b = tc.init_producer_id(None, -1).result(), tc.init_producer_id(None, -1).result()
    assert a.producer_id != b.producer_id and a.producer_epoch == b.producer_epoch == 0
    assert tc.init_producer_id("", 1000).result().error == ErrorCode.INVALID_REQUEST
    assert tc.init_producer_id("x", 0).result().error == ErrorCode.INVALID_TRANSACTION_TIMEOUT


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


def test_an_unloaded_coordinator_writes_nothing_more(fake: Fake) -> None:
    # TransactionCoordinator.onResignation: the partition's transactions leave the cache,
    # so a write ending afterwards is NOT_COORDINATOR and changes nothing
    # (appendTransactionToLog), a transaction whose markers are in flight appends no
    # Complete* (writeTxnCompletion) and EndTxn, answered NONE once Prepare* was written,
    # is not kept waiting; no timer fires and nothing new is appended.
    tc = fake.coordinator()
    r = _ongoing(tc)
    b = tc.init_producer_id("b", 1000).result()
    fake.hold_markers = True
    ended = tc.end_txn("a", r.producer_id, r.producer_epoch, True)
    assert not ended.done and len(fake.held_markers) == 1
    fake.hold = True
    added = tc.add_partitions("b", b.producer_id, b.producer_epoch, [("t", 1)])
    writes = len(fake.writes)

    tc.unload()
    assert ended.result() == ErrorCode.NONE
    fake.held_markers.pop()(ErrorCode.NONE)  # the markers arrive: no CompleteCommit
    fake.release()  # b's Ongoing record is replicated: not applied here
    assert added.result() == ErrorCode.NOT_COORDINATOR
    assert tc.describe("b").state is TxnState.EMPTY
    fake.now += 7 * 24 * 3600  # every transaction times out, every id expires
    assert tc.next_deadline_ms() is None and tc.poll() == []
    refused = tc.add_partitions("b", b.producer_id, b.producer_epoch, [("t", 1)])
    assert refused.result() == ErrorCode.NOT_COORDINATOR
    assert len(fake.writes) == writes
    assert len(fake.markers) == 1


def test_fenced_markers_are_left_to_the_newer_coordinator(fake: Fake) -> None:
    # TransactionMarkerRequestCompletionHandler: TRANSACTION_COORDINATOR_FENCED means a
    # coordinator of a newer epoch owns the transaction. This one sends no more markers
    # and writes no Complete*: the transaction stays pending until it is unloaded.
    tc = fake.coordinator()
    r = _ongoing(tc)
    fake.hold_markers = True
    end = tc.end_txn("a", r.producer_id, r.producer_epoch, True)
    fake.held_markers.pop(0)(ErrorCode.TRANSACTION_COORDINATOR_FENCED)
    assert end.result() == ErrorCode.NONE  # decided: PrepareCommit is written
    assert fake.writes[-1][1].state is TxnState.PREPARE_COMMIT
    fake.now += 3600
    assert tc.next_deadline_ms() is None
    tc.poll()
    assert len(fake.markers) == 1 and fake.writes[-1][1].state is TxnState.PREPARE_COMMIT
    again = tc.end_txn("a", r.producer_id, r.producer_epoch, True).result()
    assert again == ErrorCode.CONCURRENT_TRANSACTIONS and len(fake.markers) == 1
