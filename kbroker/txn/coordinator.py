"""The transaction coordinator: a synchronous state machine (KIP-98, KIP-360, KIP-588).

How it works: one ``TxnMetadata`` per transactional id, in the states of
Kafka's TransactionState. Every transition is a write to ``__transaction_state``
through the injected ``store``, as Kafka's TransactionStateManager
.appendTransactionToLog does it: the coordinator computes the new metadata, marks
the transactional id with a ``pending_state`` while the write is in flight, and
changes its in-memory metadata only once the store reports the write complete
(in cluster mode: replicated to the partition's ISR, acks=all). A failed write
changes nothing but clears the pending state; requests arriving meanwhile are
answered CONCURRENT_TRANSACTIONS, as Kafka's pendingTransitionInProgress.

The store may complete a write at once (a single node) or later (waiting for the
ISR), so each call answers through an ``Outcome`` (Kafka's response callbacks):

    Empty / CompleteCommit / CompleteAbort --AddPartitions--> Ongoing
    Ongoing --EndTxn--> PrepareCommit|PrepareAbort --markers--> CompleteCommit|CompleteAbort

The Prepare* record is written before the markers and the Complete* record
only once every marker is written, so a crash between the two leaves a Prepare*
state that ``load`` (or, after a failed completion, ``poll``) finishes by writing
the markers again (a repeated marker is harmless: it closes no open transaction). Timers
(transaction.timeout.ms, transactional.id.expiration.ms) fire from ``poll``,
called by the Trio side; the clock is injected, so tests drive time by hand.

A coordinator whose partitions move is ``unload``-ed and a successor is loaded from the
log: the unloaded one writes nothing more (no record, no marker, no timer), and what
was in flight in it is answered as Kafka answers it (NOT_COORDINATOR), leaving the
transactions to its successor.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from kbroker.wire.errors import ErrorCode

logger = logging.getLogger(__name__)

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


T = TypeVar("T")


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
    # The state a write in flight moves to (Kafka's TransactionMetadata.pendingState);
    # memory only, never in the log.
    pending_state: TxnState | None = None
    # Prepare*: the markers are written; a completion tried again only writes the
    # Complete* record. Memory only.
    markers_written: bool = False

    def copy(self) -> TxnMetadata:
        """The metadata to change into the next state (Kafka's TxnTransitMetadata)."""
        return dataclasses.replace(
            self, partitions=set(self.partitions), pending_state=None, markers_written=False
        )


def transition(meta: TxnMetadata, state: TxnState) -> None:
    """The one place a transaction changes state, checked against ``VALID_PREVIOUS``."""
    if meta.state not in VALID_PREVIOUS[state]:
        raise AssertionError(
            f"transaction {meta.transactional_id}: {meta.state.display} -> {state.display}"
        )
    meta.state = state


AppendDone = Callable[[ErrorCode], None]
"""Told how a ``__transaction_state`` write ended: NONE, or the coordinator error to answer."""


class TxnStore(Protocol):
    """Appends a transactional id's metadata to ``__transaction_state`` (None = tombstone)."""

    def append(self, transactional_id: str, meta: TxnMetadata | None, done: AppendDone) -> None:
        """Append the record; call ``done`` once the write is complete: NONE when it is
        durable (cluster mode: the partition's ISR has it, acks=all), else the error the
        coordinator answers (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR). ``done`` may run
        before this returns. Raises if the local append failed (then ``done`` never runs)."""


MarkersDone = Callable[[ErrorCode], None]
"""Told how the markers of a transaction ended: NONE once every one is written (and
replicated); TRANSACTION_COORDINATOR_FENCED when a partition's leader refused one because
the producer's last marker there came from a coordinator of a newer epoch; another error
when one could not be written (tried again later)."""

MarkerWriter = Callable[[int, int, bool, list[TopicPartition], MarkersDone], None]
"""(producer id, producer epoch, commit?, partitions, done) -> writes the markers, then
calls ``done`` (at once, or once the partitions' leaders and their ISRs have them)."""


class Outcome(Generic[T]):
    """The answer to a coordinator call, known once its writes are complete (Kafka's
    response callbacks): at once on a single node, once the ISR has them in cluster mode."""

    __slots__ = ("_callbacks", "_done", "_value")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[T], None]] = []
        self._done = False
        self._value: T | None = None

    @classmethod
    def of(cls, value: T) -> Outcome[T]:
        """An outcome known already."""
        outcome: Outcome[T] = cls()
        outcome.set(value)
        return outcome

    @property
    def done(self) -> bool:
        """Whether the answer is known."""
        return self._done

    def set(self, value: T) -> None:
        """Give the answer (once) and run the callbacks waiting for it."""
        if self._done:
            raise RuntimeError("outcome already set")
        self._done = True
        self._value = value
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(value)

    def result(self) -> T:
        """The answer; RuntimeError while a write is still in flight."""
        if not self._done:
            raise RuntimeError("the coordinator's write is still in flight")
        return self._value  # type: ignore[return-value]

    def on_done(self, callback: Callable[[T], None]) -> None:
        """Call ``callback`` with the answer (now if it is known)."""
        if self._done:
            callback(self._value)  # type: ignore[arg-type]
        else:
            self._callbacks.append(callback)


def _ignore(_error: ErrorCode) -> None:
    """A write nobody waits for (timeouts, expiry, completions on load): a failure is
    logged by ``_write`` and tried again by a later ``poll``."""


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
        coordinator_epoch: int = 0,
    ) -> None:
        self.config = config
        # The leader epoch of its __transaction_state partition(s) when this broker took
        # them (Kafka's TxnMetadataCacheEntry.coordinatorEpoch, set by
        # TransactionCoordinator.onElection): its markers carry it, and a partition's
        # leader refuses a marker older than the producer's last one
        # (TRANSACTION_COORDINATOR_FENCED), so a coordinator that lost its partition
        # without knowing it cannot end a transaction its successor ended otherwise.
        self.coordinator_epoch = coordinator_epoch
        self._clock = clock
        self._next_pid = next_producer_id
        self._store = store
        self._markers = markers
        self.txns: dict[str, TxnMetadata] = {}
        # producer id -> transactional id, for the produce path's verification.
        self._by_pid: dict[int, str] = {}
        # Set by ``unload``: this coordinator is no longer the broker's.
        self.unloaded = False
        # Completions waiting for their markers, by transactional id: ``unload`` answers
        # them at once (their markers are its successor's to write).
        self._awaiting_markers: dict[str, Callable[[], None]] = {}

    def now_ms(self) -> int:
        """The injected clock in milliseconds."""
        return int(self._clock() * 1000)

    # -- writes ----------------------------------------------------------------------------
    def _write(self, meta: TxnMetadata, new: TxnMetadata | None, then: AppendDone) -> None:
        """Write ``new`` (None: a tombstone) as ``meta``'s next state, then call ``then``.

        TransactionStateManager.appendTransactionToLog: ``meta`` carries the pending state
        while the write is in flight and takes the new values only once the write is
        complete; a failed write leaves it as it was (pending state cleared). If the
        coordinator no longer holds ``meta`` by then (its partition was unloaded, or
        loaded again), the answer is NOT_COORDINATOR, as Kafka's coordinator epoch check;
        an unloaded coordinator appends nothing and answers NOT_COORDINATOR at once (its
        partition is not loaded any more).
        """
        tid = meta.transactional_id
        target = new.state if new is not None else TxnState.DEAD
        if self.unloaded:
            then(ErrorCode.NOT_COORDINATOR)
            return
        if meta.pending_state is not None:
            raise AssertionError(
                f"transaction {tid}: a write to {meta.pending_state.display} is in flight"
            )
        if meta.state not in VALID_PREVIOUS[target]:
            raise AssertionError(f"transaction {tid}: {meta.state.display} -> {target.display}")
        if new is not None:
            new.last_update_ms = self.now_ms()
        meta.pending_state = target
        completed = False

        def done(error: ErrorCode) -> None:
            nonlocal completed
            completed = True
            meta.pending_state = None
            if self.unloaded or self.txns.get(tid) is not meta:
                # Its successor loaded the log, this record included if it was appended,
                # and holds the transaction now: nothing changes here.
                then(ErrorCode.NOT_COORDINATOR if error == ErrorCode.NONE else error)
                return
            if error != ErrorCode.NONE:
                logger.info(
                    "transaction %s: writing %s failed (%s); it stays %s",
                    tid,
                    target.display,
                    error.name,
                    meta.state.display,
                )
            elif new is None:
                del self.txns[tid]
                if self._by_pid.get(meta.producer_id) == tid:
                    del self._by_pid[meta.producer_id]
            else:
                self._apply(meta, new)
            then(error)

        try:
            self._store.append(tid, new, done)
        except Exception:
            if completed:
                raise  # raised by ``then``, after the write
            meta.pending_state = None
            logger.warning(
                "transaction %s: appending %s failed", tid, target.display, exc_info=True
            )
            then(ErrorCode.COORDINATOR_NOT_AVAILABLE)

    def _apply(self, meta: TxnMetadata, new: TxnMetadata) -> None:
        """TransactionMetadata.completeTransitionTo: the written state becomes current."""
        transition(meta, new.state)
        meta.producer_id = new.producer_id
        meta.producer_epoch = new.producer_epoch
        meta.timeout_ms = new.timeout_ms
        meta.partitions = set(new.partitions)
        meta.start_ms = new.start_ms
        meta.last_update_ms = new.last_update_ms
        meta.last_producer_id = new.last_producer_id
        meta.last_producer_epoch = new.last_producer_epoch
        meta.markers_written = False
        self._by_pid[meta.producer_id] = meta.transactional_id

    # -- InitProducerId -----------------------------------------------------------------
    def init_producer_id(
        self,
        transactional_id: str | None,
        timeout_ms: int,
        expected_producer_id: int = NO_PRODUCER_ID,
        expected_epoch: int = NO_PRODUCER_EPOCH,
    ) -> Outcome[InitResult]:
        """InitProducerId: a fresh id (idempotent) or the transactional id's bumped epoch."""
        if transactional_id is None:
            # Idempotent producer: always a new id (KIP-360 recovery gets one too).
            return Outcome.of(InitResult(ErrorCode.NONE, self._next_pid(), 0))
        if transactional_id == "":
            return Outcome.of(InitResult(ErrorCode.INVALID_REQUEST))
        if not 0 < timeout_ms <= self.config.max_timeout_ms:
            return Outcome.of(InitResult(ErrorCode.INVALID_TRANSACTION_TIMEOUT))
        meta = self.txns.get(transactional_id)
        if meta is None:
            # TransactionCoordinator.handleInitProducerId: a new id is cached Empty with
            # no epoch; its first epoch is written like any other transition.
            meta = TxnMetadata(transactional_id, self._next_pid(), NO_PRODUCER_EPOCH, timeout_ms)
            meta.last_update_ms = self.now_ms()
            self.txns[transactional_id] = meta
        if meta.pending_state is None and meta.state in _PREPARE:
            # Its completion failed earlier (markers or the Complete* write): try again.
            self._complete(meta, _ignore)
        if meta.pending_state is not None or meta.state in _PREPARE:
            # A write in flight (pendingTransitionInProgress) or markers not written yet.
            return Outcome.of(InitResult(ErrorCode.CONCURRENT_TRANSACTIONS))
        outcome: Outcome[InitResult] = Outcome()
        new = meta.copy()

        def answer(error: ErrorCode) -> None:
            if error == ErrorCode.NONE:
                outcome.set(InitResult(error, new.producer_id, new.producer_epoch))
            else:
                outcome.set(InitResult(error))

        if meta.producer_epoch == NO_PRODUCER_EPOCH:
            new.producer_epoch = 0
            new.timeout_ms = timeout_ms
            new.state = TxnState.EMPTY  # a new id starts Empty; Kafka moves it Empty->Empty
            self._write(meta, new, answer)
            return outcome
        if expected_producer_id != NO_PRODUCER_ID:
            if expected_producer_id == meta.producer_id and expected_epoch == meta.producer_epoch:
                pass  # the producer's current epoch: bump it below
            elif (
                expected_producer_id == meta.last_producer_id
                and expected_epoch == meta.last_producer_epoch
                and meta.state in _COMPLETE
            ):
                # A retry whose first answer was lost: hand back the same id and epoch.
                return Outcome.of(InitResult(ErrorCode.NONE, meta.producer_id, meta.producer_epoch))
            else:
                return Outcome.of(InitResult(ErrorCode.PRODUCER_FENCED))
        self._bump_epoch(new)
        if meta.state is TxnState.ONGOING:
            # A new instance fences the old one, as TransactionCoordinator does: abort
            # its transaction under a bumped epoch (never handed out) and answer
            # CONCURRENT_TRANSACTIONS; the client retries once the abort is complete
            # and gets the epoch after that, so a fenced epoch is never reused.
            new.state = TxnState.PREPARE_ABORT

            def fenced(error: ErrorCode) -> None:
                ok = error == ErrorCode.NONE
                outcome.set(InitResult(ErrorCode.CONCURRENT_TRANSACTIONS if ok else error))

            self._end(meta, new, fenced)
            return outcome
        new.timeout_ms = timeout_ms
        new.state = TxnState.EMPTY
        new.partitions = set()
        new.start_ms = -1
        self._write(meta, new, answer)
        return outcome

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
    ) -> Outcome[ErrorCode]:
        """Add partitions to the producer's transaction (starting it if needed)."""
        meta = self._check(transactional_id, producer_id, epoch)
        if isinstance(meta, ErrorCode):
            return Outcome.of(meta)
        if meta.pending_state is not None or meta.state in _PREPARE:
            return Outcome.of(ErrorCode.CONCURRENT_TRANSACTIONS)
        if meta.state not in (TxnState.ONGOING, *_COMPLETE):
            return Outcome.of(ErrorCode.INVALID_TXN_STATE)
        added = set(partitions) - meta.partitions
        if meta.state is TxnState.ONGOING and not added:
            return Outcome.of(ErrorCode.NONE)
        new = meta.copy()
        if meta.state is not TxnState.ONGOING:
            new.partitions = set()
            new.start_ms = self.now_ms()
        new.partitions |= added
        new.state = TxnState.ONGOING
        outcome: Outcome[ErrorCode] = Outcome()
        self._write(meta, new, outcome.set)
        return outcome

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
    ) -> Outcome[ErrorCode]:
        """Commit or abort: write the markers to every partition of the transaction."""
        meta = self._check(transactional_id, producer_id, epoch)
        if isinstance(meta, ErrorCode):
            return Outcome.of(meta)
        if meta.pending_state is None and meta.state in _PREPARE:
            # Its completion failed earlier: try again (answered below as it stands).
            self._complete(meta, _ignore)
        if meta.pending_state is not None:
            return Outcome.of(ErrorCode.CONCURRENT_TRANSACTIONS)
        state = meta.state
        if state is TxnState.ONGOING:
            new = meta.copy()
            new.state = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
            outcome: Outcome[ErrorCode] = Outcome()
            self._end(meta, new, outcome.set)
            return outcome
        if state is TxnState.COMPLETE_COMMIT:
            return Outcome.of(ErrorCode.NONE if commit else ErrorCode.INVALID_TXN_STATE)
        if state is TxnState.COMPLETE_ABORT:
            return Outcome.of(ErrorCode.INVALID_TXN_STATE if commit else ErrorCode.NONE)
        if state in _PREPARE:
            if (state is TxnState.PREPARE_COMMIT) == commit:
                return Outcome.of(ErrorCode.CONCURRENT_TRANSACTIONS)
            return Outcome.of(ErrorCode.INVALID_TXN_STATE)
        return Outcome.of(ErrorCode.INVALID_TXN_STATE)

    def _end(self, meta: TxnMetadata, prepare: TxnMetadata, then: AppendDone) -> None:
        """Write Prepare*, then the markers and Complete*; ``then`` hears how it ended.

        Once the Prepare* record is written the outcome is decided and ``then`` hears
        NONE (Kafka answers EndTxn at that point); a completion that fails is finished
        by a later ``poll`` or by the next coordinator's load.
        """

        def prepared(error: ErrorCode) -> None:
            if error != ErrorCode.NONE:
                then(error)
            else:
                self._complete(meta, lambda _completed: then(ErrorCode.NONE))

        self._write(meta, prepare, prepared)

    def _complete(self, meta: TxnMetadata, then: AppendDone) -> None:
        """Write the markers of a Prepare* transaction and, once every one is written,
        record its completion.

        As Kafka's TransactionMarkerChannelManager: Complete* is written only after all
        the markers are, so a coordinator that dies in between leaves Prepare* for the
        next one to finish; a Complete* written earlier could leave a partition whose
        marker never arrived with its transaction open for good. Meanwhile the
        transaction has Complete* pending (Kafka's prepareComplete).
        """
        commit = meta.state is TxnState.PREPARE_COMMIT
        target = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        tid = meta.transactional_id
        if self.unloaded:
            then(ErrorCode.NOT_COORDINATOR)  # a marker is its successor's to write
            return

        def record() -> None:
            new = meta.copy()
            new.state = target
            new.partitions = set()
            new.start_ms = -1
            self._write(meta, new, then)

        if meta.markers_written:
            record()
            return

        answered = False

        def markers_done(result: ErrorCode) -> None:
            nonlocal answered
            if answered:
                return  # answered by ``unload`` already
            answered = True
            self._awaiting_markers.pop(tid, None)
            meta.pending_state = None
            if self.unloaded or self.txns.get(tid) is not meta:
                # TransactionMarkerChannelManager.writeTxnCompletion: no longer the
                # coordinator, so Complete* is not appended; the successor loaded
                # Prepare* and finishes the transaction.
                then(ErrorCode.NOT_COORDINATOR)
            elif result == ErrorCode.TRANSACTION_COORDINATOR_FENCED:
                # TransactionMarkerRequestCompletionHandler: a coordinator of a newer
                # epoch owns the transaction (this one lost its partition without
                # hearing of it yet). No more markers and no Complete* from here: the
                # transaction stays pending, as Kafka's removeMarkersForTxn leaves it,
                # until this coordinator is unloaded.
                logger.warning(
                    "transaction %s: its markers are fenced by a coordinator newer than "
                    "epoch %d; left to it",
                    tid,
                    self.coordinator_epoch,
                )
                meta.pending_state = target
                then(ErrorCode.NOT_COORDINATOR)
            elif result != ErrorCode.NONE:
                logger.warning(
                    "transaction %s: a marker was not written (%s); tried again later",
                    tid,
                    result.name,
                )
                then(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            else:
                meta.markers_written = True
                record()

        meta.pending_state = target
        self._awaiting_markers[tid] = lambda: markers_done(ErrorCode.NOT_COORDINATOR)
        try:
            self._markers(
                meta.producer_id, meta.producer_epoch, commit, sorted(meta.partitions), markers_done
            )
        except Exception:
            if answered:
                raise  # raised after the markers were written, by what followed
            answered = True
            self._awaiting_markers.pop(tid, None)
            meta.pending_state = None
            logger.warning(
                "transaction %s: writing its markers failed; tried again later",
                tid,
                exc_info=True,
            )
            then(ErrorCode.COORDINATOR_NOT_AVAILABLE)

    # -- timers ------------------------------------------------------------------------------
    def next_deadline_ms(self) -> int | None:
        """When poll() next has something to do (None = nothing pending, or unloaded)."""
        if self.unloaded:
            return None
        best: int | None = None
        for meta in self.txns.values():
            if meta.pending_state is not None:
                continue  # its write completes by itself
            if meta.state is TxnState.ONGOING:
                due = meta.start_ms + meta.timeout_ms
            elif meta.state in _COMPLETE:
                due = meta.last_update_ms + self.config.id_expiration_ms
            else:
                due = meta.last_update_ms  # a Prepare* to finish (its completion failed)
            if best is None or due < best:
                best = due
        return best

    def poll(self) -> list[str]:
        """Abort timed-out transactions, finish Prepare* ones, expire idle transactional
        ids; returns the ids whose abort started. An unloaded coordinator does nothing:
        Kafka's abortTimedOutTransactions and removeExpiredTransactionalIds walk only the
        partitions still loaded."""
        if self.unloaded:
            return []
        now = self.now_ms()
        aborted = []
        for tid, meta in list(self.txns.items()):
            if meta.pending_state is not None:
                continue
            if meta.state is TxnState.ONGOING and now >= meta.start_ms + meta.timeout_ms:
                # TransactionCoordinator.abortTimedOutTransactions: fence the producer
                # with a bumped epoch, then abort under it, so the stale producer's
                # next request is refused.
                new = meta.copy()
                self._bump_epoch(new)
                new.state = TxnState.PREPARE_ABORT
                self._end(meta, new, _ignore)
                aborted.append(tid)
            elif meta.state in _PREPARE:
                self._complete(meta, _ignore)
            elif (
                meta.state in _COMPLETE
                and now >= meta.last_update_ms + self.config.id_expiration_ms
            ):
                # transactional.id.expiration.ms: forget the id (tombstone).
                self._write(meta, None, _ignore)
        return aborted

    # -- loading -------------------------------------------------------------------------------
    def unload(self) -> None:
        """This coordinator is dropped (in cluster mode a leadership move of its
        ``__transaction_state`` partition drops it, on a single node any move drops the one
        coordinator; the next request loads its successor from the log):
        Kafka's TransactionCoordinator.onResignation, which removes the partition's
        transactions from the cache (TransactionStateManager
        .removeTransactionsForTxnTopicPartition) and the markers still to be sent for
        them (TransactionMarkerChannelManager.removeMarkersForTxnTopicPartition).

        From now on it appends nothing and fires no timer. A write still in flight is
        answered NOT_COORDINATOR once it ends (appendTransactionToLog's coordinator epoch
        check) and changes nothing; a completion waiting for its markers is answered at
        once (EndTxn hears NONE: Kafka answered it once Prepare* was written) and writes
        no Complete*: its successor loaded Prepare* and finishes the transaction.
        """
        if self.unloaded:
            return
        self.unloaded = True
        waiting = list(self._awaiting_markers.values())
        self._awaiting_markers.clear()
        for answer in waiting:
            answer()

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
                self._complete(meta, _ignore)

    # -- tooling ---------------------------------------------------------------------------------
    def describe(self, transactional_id: str) -> TxnMetadata | None:
        """The metadata of one transactional id."""
        return self.txns.get(transactional_id)
