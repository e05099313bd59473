"""The transaction coordinator: a synchronous state machine (KIP-98, KIP-360, KIP-588).

How it works: one ``TxnMetadata`` per transactional id, in the states of
Kafka's TransactionState. Every transition is persisted through the injected
``store`` (a ``__transaction_state`` record) before it is answered, and the
markers are written in-process through the injected ``markers`` callback:

    Empty / CompleteCommit / CompleteAbort --AddPartitions--> Ongoing
    Ongoing --EndTxn--> PrepareCommit|PrepareAbort --markers--> CompleteCommit|CompleteAbort

The Prepare* record is written before the markers and the Complete* record
after them, so a crash between the two leaves a Prepare* state that ``load``
finishes by writing the markers again (a repeated marker is harmless: it
closes no open transaction). Timers (transaction.timeout.ms,
transactional.id.expiration.ms) fire from ``poll``, called by the Trio side;
the clock is injected, so tests drive time by hand.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from kbroker.wire.errors import ErrorCode

TopicPartition = tuple[str, int]
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
# Kafka bumps to a fresh producer id before the int16 epoch overflows
# (TransactionMetadata.isEpochExhausted: epoch >= Short.MaxValue - 1).
MAX_EPOCH = 32767 - 1


class TxnState(enum.Enum):
    """Kafka's TransactionState, with the ids written in TransactionLogValue."""

    EMPTY = (0, "Empty")
    ONGOING = (1, "Ongoing")
    PREPARE_COMMIT = (2, "PrepareCommit")
    PREPARE_ABORT = (3, "PrepareAbort")
    COMPLETE_COMMIT = (4, "CompleteCommit")
    COMPLETE_ABORT = (5, "CompleteAbort")
    DEAD = (6, "Dead")
    PREPARE_EPOCH_FENCE = (7, "PrepareEpochFence")

    @property
    def id(self) -> int:
        """The byte stored in __transaction_state."""
        return self.value[0]

    @property
    def display(self) -> str:
        """The name DescribeTransactions / ListTransactions report."""
        return self.value[1]

    @classmethod
    def from_id(cls, state_id: int) -> TxnState:
        """The state stored as ``state_id``."""
        for s in cls:
            if s.id == state_id:
                return s
        raise ValueError(f"unknown transaction state {state_id}")

    @classmethod
    def from_display(cls, name: str) -> TxnState | None:
        """The state named ``name`` (ListTransactions filters), None if unknown."""
        for s in cls:
            if s.display == name:
                return s
        return None


# Kafka's TransactionState.validPreviousStates (TransactionMetadata.scala): a transaction
# enters each state only from these; any other move is a coordinator bug.
VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    TxnState.EMPTY: frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT}),
    TxnState.ONGOING: frozenset(
        {TxnState.ONGOING, TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT}
    ),
    TxnState.PREPARE_COMMIT: frozenset({TxnState.ONGOING}),
    TxnState.PREPARE_ABORT: frozenset({TxnState.ONGOING, TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.COMPLETE_COMMIT: frozenset({TxnState.PREPARE_COMMIT}),
    TxnState.COMPLETE_ABORT: frozenset({TxnState.PREPARE_ABORT}),
    TxnState.DEAD: frozenset({TxnState.EMPTY, TxnState.COMPLETE_ABORT, TxnState.COMPLETE_COMMIT}),
    TxnState.PREPARE_EPOCH_FENCE: frozenset({TxnState.ONGOING}),
}

_COMPLETE = (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)
_PREPARE = (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)


@dataclass(slots=True)
class TxnMetadata:
    """What the coordinator knows about one transactional id."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: set[TopicPartition] = field(default_factory=set)
    start_ms: int = -1
    last_update_ms: int = -1
    last_producer_id: int = NO_PRODUCER_ID
    last_producer_epoch: int = NO_PRODUCER_EPOCH


def transition(meta: TxnMetadata, state: TxnState) -> None:
    """The one place a transaction changes state, checked against ``VALID_PREVIOUS``."""
    if meta.state not in VALID_PREVIOUS[state]:
        raise AssertionError(
            f"transaction {meta.transactional_id}: {meta.state.display} -> {state.display}"
        )
    meta.state = state


class TxnStore(Protocol):
    """Persists a transactional id's metadata (None = tombstone)."""

    def write(self, transactional_id: str, meta: TxnMetadata | None) -> None: ...


MarkerWriter = Callable[[int, int, bool, list[TopicPartition]], None]
"""(producer id, producer epoch, commit?, partitions) -> writes the markers."""


@dataclass(slots=True)
class TxnConfig:
    """Broker settings the coordinator uses (Kafka names)."""

    max_timeout_ms: int = 900000  # transaction.max.timeout.ms
    id_expiration_ms: int = 604800000  # transactional.id.expiration.ms


@dataclass(frozen=True, slots=True)
class InitResult:
    """InitProducerId's answer."""

    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


class TransactionCoordinator:
    """Kafka's TransactionCoordinator + TransactionStateManager for one node."""

    def __init__(
        self,
        *,
        config: TxnConfig,
        clock: Callable[[], float],
        next_producer_id: Callable[[], int],
        store: TxnStore,
        markers: MarkerWriter,
    ) -> None:
        self.config = config
        self._clock = clock
        self._next_pid = next_producer_id
        self._store = store
        self._markers = markers
        self.txns: dict[str, TxnMetadata] = {}
        # producer id -> transactional id, for the produce path's verification.
        self._by_pid: dict[int, str] = {}

    def now_ms(self) -> int:
        """The injected clock in milliseconds."""
        return int(self._clock() * 1000)

    def _persist(self, meta: TxnMetadata) -> None:
        meta.last_update_ms = self.now_ms()
        self._by_pid[meta.producer_id] = meta.transactional_id
        self._store.write(meta.transactional_id, meta)

    # -- InitProducerId -----------------------------------------------------------------
    def init_producer_id(
        self,
        transactional_id: str | None,
        timeout_ms: int,
        expected_producer_id: int = NO_PRODUCER_ID,
        expected_epoch: int = NO_PRODUCER_EPOCH,
    ) -> InitResult:
        """InitProducerId: a fresh id (idempotent) or the transactional id's bumped epoch."""
        if transactional_id is None:
            # Idempotent producer: always a new id (KIP-360 recovery gets one too).
            return InitResult(ErrorCode.NONE, self._next_pid(), 0)
        if transactional_id == "":
            return InitResult(ErrorCode.INVALID_REQUEST)
        if not 0 < timeout_ms <= self.config.max_timeout_ms:
            return InitResult(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        meta = self.txns.get(transactional_id)
        if meta is None:
            meta = TxnMetadata(transactional_id, self._next_pid(), NO_PRODUCER_EPOCH, timeout_ms)
            self.txns[transactional_id] = meta
            meta.producer_epoch = 0
            transition(meta, TxnState.EMPTY)  # a new id starts Empty; Kafka moves it Empty->Empty
            meta.timeout_ms = timeout_ms
            self._persist(meta)
            return InitResult(ErrorCode.NONE, meta.producer_id, meta.producer_epoch)
        if meta.state in _PREPARE:
            # Markers are written synchronously, so this only happens if they failed.
            self._complete(meta)
            if meta.state in _PREPARE:
                return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        expected = expected_producer_id != NO_PRODUCER_ID
        if expected:
            if expected_producer_id == meta.producer_id and expected_epoch == meta.producer_epoch:
                pass  # the producer's current epoch: bump it below
            elif (
                expected_producer_id == meta.last_producer_id
                and expected_epoch == meta.last_producer_epoch
                and meta.state in _COMPLETE
            ):
                # A retry whose first answer was lost: hand back the same id and epoch.
                return InitResult(ErrorCode.NONE, meta.producer_id, meta.producer_epoch)
            else:
                return InitResult(ErrorCode.PRODUCER_FENCED)
        if meta.state is TxnState.ONGOING:
            # A new instance fences the old one, as TransactionCoordinator does: abort
            # its transaction under a bumped epoch (never handed out) and answer
            # CONCURRENT_TRANSACTIONS; the client retries once the abort is complete
            # (at once here: markers are written synchronously) and gets the epoch
            # after that, so a fenced epoch is never reused.
            self._bump_epoch(meta)
            self._end(meta, commit=False)
            return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        self._bump_epoch(meta)
        meta.timeout_ms = timeout_ms
        transition(meta, TxnState.EMPTY)
        meta.partitions = set()
        meta.start_ms = -1
        self._persist(meta)
        return InitResult(ErrorCode.NONE, meta.producer_id, meta.producer_epoch)

    def _bump_epoch(self, meta: TxnMetadata) -> None:
        meta.last_producer_id = meta.producer_id
        meta.last_producer_epoch = meta.producer_epoch
        if meta.producer_epoch >= MAX_EPOCH:
            meta.producer_id = self._next_pid()
            meta.producer_epoch = 0
        else:
            meta.producer_epoch += 1

    # -- shared checks ---------------------------------------------------------------------
    def _check(
        self, transactional_id: str, producer_id: int, epoch: int
    ) -> TxnMetadata | ErrorCode:
        meta = self.txns.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if meta.producer_epoch != epoch:
            return ErrorCode.PRODUCER_FENCED
        return meta

    # -- AddPartitionsToTxn / AddOffsetsToTxn ------------------------------------------------
    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> ErrorCode:
        """Add partitions to the producer's transaction (starting it if needed)."""
        meta = self._check(transactional_id, producer_id, epoch)
        if isinstance(meta, ErrorCode):
            return meta
        if meta.state in _PREPARE:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if meta.state not in (TxnState.ONGOING, *_COMPLETE):
            return ErrorCode.INVALID_TXN_STATE
        new = set(partitions) - meta.partitions
        if meta.state is TxnState.ONGOING and not new:
            return ErrorCode.NONE
        if meta.state is not TxnState.ONGOING:
            meta.partitions = set()
            meta.start_ms = self.now_ms()
        meta.partitions |= new
        transition(meta, TxnState.ONGOING)
        self._persist(meta)
        return ErrorCode.NONE

    def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn verify-only (KIP-890): is each partition in the ongoing transaction?"""
        parts = list(partitions)
        meta = self._check(transactional_id, producer_id, epoch)
        if isinstance(meta, ErrorCode):
            return dict.fromkeys(parts, meta)
        ongoing = meta.state is TxnState.ONGOING
        return {
            tp: ErrorCode.NONE if ongoing and tp in meta.partitions else ErrorCode.INVALID_TXN_STATE
            for tp in parts
        }

    def partition_in_txn(self, producer_id: int, epoch: int, tp: TopicPartition) -> bool:
        """Whether producer id/epoch has an ongoing transaction containing tp (produce verification)."""
        tid = self._by_pid.get(producer_id)
        meta = self.txns.get(tid) if tid is not None else None
        return (
            meta is not None
            and meta.producer_id == producer_id
            and meta.producer_epoch == epoch
            and meta.state is TxnState.ONGOING
            and tp in meta.partitions
        )

    def current_epoch(self, producer_id: int) -> int | None:
        """The epoch the coordinator holds for a transactional producer id, None if unknown."""
        tid = self._by_pid.get(producer_id)
        meta = self.txns.get(tid) if tid is not None else None
        return meta.producer_epoch if meta is not None and meta.producer_id == producer_id else None

    # -- EndTxn ------------------------------------------------------------------------------
    def end_txn(
        self, transactional_id: str, producer_id: int, epoch: int, commit: bool
    ) -> ErrorCode:
        """Commit or abort: write the markers to every partition of the transaction."""
        meta = self._check(transactional_id, producer_id, epoch)
        if isinstance(meta, ErrorCode):
            return meta
        state = meta.state
        if state is TxnState.ONGOING:
            self._end(meta, commit=commit)
            return ErrorCode.NONE
        if state is TxnState.COMPLETE_COMMIT:
            return ErrorCode.NONE if commit else ErrorCode.INVALID_TXN_STATE
        if state is TxnState.COMPLETE_ABORT:
            return ErrorCode.INVALID_TXN_STATE if commit else ErrorCode.NONE
        if state in _PREPARE:
            if (state is TxnState.PREPARE_COMMIT) == commit:
                return ErrorCode.CONCURRENT_TRANSACTIONS
            return ErrorCode.INVALID_TXN_STATE
        return ErrorCode.INVALID_TXN_STATE

    def _end(self, meta: TxnMetadata, *, commit: bool) -> None:
        transition(meta, TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT)
        self._persist(meta)
        self._complete(meta)

    def _complete(self, meta: TxnMetadata) -> None:
        """Write the markers of a Prepare* transaction and record its completion."""
        commit = meta.state is TxnState.PREPARE_COMMIT
        self._markers(meta.producer_id, meta.producer_epoch, commit, sorted(meta.partitions))
        transition(meta, TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT)
        meta.partitions = set()
        meta.start_ms = -1
        self._persist(meta)

    # -- timers ------------------------------------------------------------------------------
    def next_deadline_ms(self) -> int | None:
        """When poll() next has something to do (None = nothing pending)."""
        best: int | None = None
        for meta in self.txns.values():
            if meta.state is TxnState.ONGOING:
                due = meta.start_ms + meta.timeout_ms
            elif meta.state in _COMPLETE:
                due = meta.last_update_ms + self.config.id_expiration_ms
            else:
                continue
            if best is None or due < best:
                best = due
        return best

    def poll(self) -> list[str]:
        """Abort timed-out transactions and expire idle transactional ids; returns aborted ids."""
        now = self.now_ms()
        aborted = []
        for tid, meta in list(self.txns.items()):
            if meta.state is TxnState.ONGOING and now >= meta.start_ms + meta.timeout_ms:
                # TransactionCoordinator.abortTimedOutTransactions: fence the producer
                # with a bumped epoch, then abort under it, so the stale producer's
                # next request is refused.
                self._bump_epoch(meta)
                self._end(meta, commit=False)
                aborted.append(tid)
            elif (
                meta.state in _COMPLETE
                and now >= meta.last_update_ms + self.config.id_expiration_ms
            ):
                # transactional.id.expiration.ms: forget the id (tombstone).
                del self.txns[tid]
                self._store.write(tid, None)
        return aborted

    # -- loading -------------------------------------------------------------------------------
    def load(self, records: Iterable[tuple[str, TxnMetadata | None]]) -> None:
        """Replay __transaction_state (later records win), then finish Prepare* transactions."""
        for tid, meta in records:
            if meta is None:
                self.txns.pop(tid, None)
            else:
                self.txns[tid] = meta
                self._by_pid[meta.producer_id] = tid
        for meta in list(self.txns.values()):
            if meta.state in _PREPARE:
                self._complete(meta)

    # -- tooling ---------------------------------------------------------------------------------
    def describe(self, transactional_id: str) -> TxnMetadata | None:
        """The metadata of one transactional id."""
        return self.txns.get(transactional_id)
