"""TxnOffsetCommit: group offsets staged in a transaction, visible only on commit (KIP-98).

Staged offsets are written to the group's ``__consumer_offsets`` partition in
a transactional batch carrying the producer's id and epoch (as Kafka's group
coordinator does), and kept here by producer id. When the transaction ends,
the coordinator's marker lands in that partition and ``complete`` hands the
offsets of a COMMIT to the group coordinator (through its ``replay``, the
same path a restart takes: store.load yields them once the COMMIT marker
follows) or drops them on ABORT. On first use the staged offsets of
transactions still open are recovered from the topic. In cluster mode they are
those of the ``__consumer_offsets`` partitions this broker leads: each partition's
are read when its group coordinator loads it and forgotten when it is unloaded
(Kafka keeps them in the partition's GroupMetadata, loaded and removed with it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kbroker.coordinator.group import partition_for
from kbroker.coordinator.offsets import OffsetAndMetadata, OffsetRecord
from kbroker.coordinator.service import load_led, offsets_partitions, ready_coordinator
from kbroker.coordinator.store import CoordinatorRecord, OffsetsTopicStore
from kbroker.internal_topics import OFFSETS_TOPIC
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

logger = logging.getLogger(__name__)

_STATE_KEY = "kbroker.txn.offsets"
# The ``SetAside`` offsets of deletions still in flight.
_ASIDE_KEY = "kbroker.txn.offsets.aside"
TopicPartition = tuple[str, int]


def load_pending(broker: BrokerState) -> None:
    """Recover staged offsets of open transactions from the topic (once), before a
    marker resolves them in the log (``complete`` follows).

    A single node whose coordinator is not loaded yet starts its load instead (reading
    the first slice here) of reading the whole topic in the request, which held the
    event loop ~1 s for 100k offset records: the load follows the logs' ends, so it
    reads the marker too, and installs what the log leaves staged (``whole_loaded``);
    ``complete`` leaves the marker to it meanwhile."""
    if broker.cluster is None and broker.state.get(_STATE_KEY) is None:
        ready_coordinator(broker)
        return
    _pending(broker)


def _pending(broker: BrokerState) -> dict[int, list[OffsetRecord]]:
    pending = broker.state.get(_STATE_KEY)
    if broker.cluster is not None:
        # Loading the coordinator of each partition led here brings in its staged
        # offsets (``partition_loaded``).
        load_led(broker)
        pending = broker.state.get(_STATE_KEY)
        if pending is None:
            pending = broker.state[_STATE_KEY] = {}
        return pending
    if pending is None:
        store = OffsetsTopicStore(broker)
        for _ in store.load():
            pass
        pending = {
            pid: [r for r in recs if isinstance(r, OffsetRecord)]
            for pid, recs in store.pending_txn_offsets.items()
        }
        broker.state[_STATE_KEY] = pending
    return pending


def partition_loaded(
    broker: BrokerState, index: int, staged: dict[int, list[CoordinatorRecord]]
) -> None:
    """Cluster mode: ``__consumer_offsets`` partition ``index`` was just loaded from its
    log, which holds ``staged`` (by producer id): they replace whatever was known of it."""
    partition_unloaded(broker, index)
    pending: dict[int, list[OffsetRecord]] | None = broker.state.get(_STATE_KEY)
    if pending is None:
        pending = broker.state[_STATE_KEY] = {}
    for pid, records in staged.items():
        offsets = [r for r in records if isinstance(r, OffsetRecord)]
        if offsets:
            pending.setdefault(pid, []).extend(offsets)


def whole_loaded(broker: BrokerState, staged: dict[int, list[CoordinatorRecord]]) -> None:
    """A single node's coordinator was just loaded from the whole topic, which holds
    ``staged`` (by producer id): they are the staged offsets, unless something needed them
    before (``_pending`` read them then, and has followed every change since)."""
    if broker.state.get(_STATE_KEY) is None:
        broker.state[_STATE_KEY] = {
            pid: offsets
            for pid, records in staged.items()
            if (offsets := [r for r in records if isinstance(r, OffsetRecord)])
        }


def partition_unloaded(broker: BrokerState, index: int) -> None:
    """Cluster mode: ``__consumer_offsets`` partition ``index`` is no longer loaded here:
    its staged offsets are its next leader's (a marker for them is not ours to apply)."""
    pending: dict[int, list[OffsetRecord]] | None = broker.state.get(_STATE_KEY)
    if not pending:
        return
    count = offsets_partitions(broker)
    for pid in list(pending):
        kept = [r for r in pending[pid] if partition_for(r.group_id, count) != index]
        if kept:
            pending[pid] = kept
        else:
            del pending[pid]


def stage(
    broker: BrokerState,
    group_id: str,
    producer_id: int,
    producer_epoch: int,
    offsets: dict[TopicPartition, OffsetAndMetadata],
    *,
    max_metadata_bytes: int,
) -> dict[TopicPartition, int]:
    """Write the offsets as a transactional batch and remember them until the marker."""
    pending = _pending(broker)
    codes: dict[TopicPartition, int] = {}
    records = []
    for tp, om in offsets.items():
        if len(om.metadata.encode()) > max_metadata_bytes:
            codes[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
        else:
            records.append(OffsetRecord(group_id, tp[0], tp[1], om))
    if records:
        topic = broker.topics.create_internal(OFFSETS_TOPIC)
        partition = partition_for(group_id, len(topic.partitions))
        try:
            OffsetsTopicStore(broker).write(
                partition, list(records), producer_id=producer_id, producer_epoch=producer_epoch
            )
        except Exception:  # noqa: BLE001 - per-partition answer
            for r in records:
                codes[(r.topic, r.partition)] = ErrorCode.UNKNOWN_SERVER_ERROR
            return codes
        pending.setdefault(producer_id, []).extend(records)
        for r in records:
            codes[(r.topic, r.partition)] = ErrorCode.NONE
    return codes


def unstage(
    broker: BrokerState, group_id: str, producer_id: int, partitions: list[TopicPartition]
) -> None:
    """Forget the producer's staged offsets of ``partitions`` for the group: their write
    did not reach the ISR (Kafka's GroupMetadata.failPendingTxnOffsetCommit)."""
    pending = _pending(broker)
    dropped = set(partitions)
    kept = [
        r
        for r in pending.get(producer_id, [])
        if r.group_id != group_id or (r.topic, r.partition) not in dropped
    ]
    if kept:
        pending[producer_id] = kept
    else:
        pending.pop(producer_id, None)


def discard(
    broker: BrokerState, group_id: str, partitions: Iterable[TopicPartition] | None
) -> None:
    """Forget every open transaction's staged offsets of the group for ``partitions``
    (None: all of them): the group or those offsets were deleted (DeleteGroups,
    OffsetDelete), so a later commit of the transaction must not bring them back."""
    pending = _pending(broker)
    doomed = None if partitions is None else set(partitions)
    for producer_id, records in list(pending.items()):
        kept = [
            r
            for r in records
            if r.group_id != group_id
            or (doomed is not None and (r.topic, r.partition) not in doomed)
        ]
        if len(kept) != len(records):
            pending[producer_id] = kept


class SetAside:
    """The offsets of a group its open transactions staged, taken from them by a
    KIP-848 deletion whose tombstones are not committed yet (``set_aside``): served to
    nobody meanwhile, and either forgotten (``drop``: the deletion is committed) or put
    back (``restore``: it failed). A transaction that ends meanwhile ends for them too:
    an abort drops them, a commit hands them to ``restore``'s caller to publish, so
    a failed deletion leaves them as they would be without it (Kafka's runtime reverts
    the failed write's timeline snapshot, whose tombstone replay removed them from
    pendingTransactionalOffsets)."""

    def __init__(self, broker: BrokerState, group_id: str) -> None:
        self._broker = broker
        self.group_id = group_id
        # Producer id -> its staged records of the group, its transaction still open.
        self.staged: dict[int, list[OffsetRecord]] = {}
        # Staged records whose transaction committed meanwhile, oldest first.
        self.committed: list[OffsetRecord] = []

    def restore(self) -> list[OffsetRecord]:
        """The deletion failed: what open transactions staged is theirs again; what a
        transaction committed meanwhile is returned, to be published now."""
        self.drop()
        # Known already (``set_aside`` read it): nothing to load, so nothing to fail.
        pending: dict[int, list[OffsetRecord]] = self._broker.state.setdefault(_STATE_KEY, {})
        for producer_id, records in self.staged.items():
            since = pending.get(producer_id, [])
            # Ahead of anything the transaction staged since: a later record wins.
            pending[producer_id] = records + since
            # The deletion's tombstones in the log removed them for a replay: they are
            # staged there again, after the tombstones, unless the transaction staged a
            # newer offset for the partition since (which the log holds after them).
            newer = {(r.topic, r.partition) for r in since if r.group_id == self.group_id}
            _restage(
                self._broker,
                producer_id,
                [r for r in records if (r.topic, r.partition) not in newer],
            )
        return self.committed

    def drop(self) -> None:
        """Stop following the transactions (the deletion is settled)."""
        asides: list[SetAside] = self._broker.state.get(_ASIDE_KEY, [])
        if self in asides:
            asides.remove(self)


def _restage(broker: BrokerState, producer_id: int, records: list[OffsetRecord]) -> None:
    """Write ``records`` (one group's, staged by the producer's open transaction) to the
    group's partition again, as the producer's transactional batch (``stage``), if this
    broker still leads it; a failure is only logged (the next replay then lacks them)."""
    if not records:
        return
    index = partition_for(records[0].group_id, offsets_partitions(broker))
    cluster = broker.cluster
    if cluster is not None and not cluster.replicas.is_leader(OFFSETS_TOPIC, index):
        return  # the partition's new leader replays its log
    part = broker.topics.partition(OFFSETS_TOPIC, index)
    entry = part.log.producer_state.lookup(producer_id) if part is not None else None
    if entry is None:
        return
    try:
        OffsetsTopicStore(broker).write(
            index, list(records), producer_id=producer_id, producer_epoch=entry.producer_epoch
        )
    except Exception as exc:  # noqa: BLE001 - what is served is restored regardless
        logger.warning(
            "offsets of group %s staged by producer %d not written again: %s",
            records[0].group_id,
            producer_id,
            exc,
        )


def set_aside(broker: BrokerState, group_id: str) -> SetAside:
    """Take every open transaction's staged offsets of the group from them, for a
    deletion in flight (see ``SetAside``)."""
    aside = SetAside(broker, group_id)
    pending = _pending(broker)
    for producer_id, records in list(pending.items()):
        kept = [r for r in records if r.group_id != group_id]
        if len(kept) != len(records):
            aside.staged[producer_id] = [r for r in records if r.group_id == group_id]
            pending[producer_id] = kept
    broker.state.setdefault(_ASIDE_KEY, []).append(aside)
    return aside


def complete(
    broker: BrokerState, producer_id: int, commit: bool, partitions: Iterable[int]
) -> None:
    """The producer's transaction ended and its marker is in ``__consumer_offsets``
    ``partitions``: publish (commit) or drop (abort) what it staged in them. What it
    staged in other partitions waits for their own marker (GroupMetadataManager
    .handleTxnCompletion completes the groups of the marked partitions only), so what
    is served is what each partition's log holds."""
    if broker.cluster is None and broker.state.get(_STATE_KEY) is None:
        return  # the coordinator's load under way reads the marker (``load_pending``)
    pending = _pending(broker)
    marked = set(partitions)
    count = offsets_partitions(broker)
    staged: list[OffsetRecord] = []
    kept: list[OffsetRecord] = []
    for r in pending.pop(producer_id, []):
        (staged if partition_for(r.group_id, count) in marked else kept).append(r)
    if kept:
        pending[producer_id] = kept
    asides: list[SetAside] = broker.state.get(_ASIDE_KEY, [])
    for aside in asides:
        if partition_for(aside.group_id, count) in marked:
            ended = aside.staged.pop(producer_id, [])
            if commit:
                aside.committed += ended
    if not commit or not staged:
        return
    # Each group's offsets go to the coordinator of its partition. One still loading
    # reads them from its log, marker included (kbroker.internal_topics
    # .iter_stored_batches follows the log's end).
    by_group: dict[str | None, list[OffsetRecord]] = {}
    for r in staged:
        by_group.setdefault(None if broker.cluster is None else r.group_id, []).append(r)
    for group_id, records in by_group.items():
        gc = ready_coordinator(broker, group_id)
        if gc is not None:
            gc.replay(records)


def pending_partitions(broker: BrokerState, group_id: str) -> set[TopicPartition]:
    """Partitions with offsets of the group staged by an open transaction.

    For OffsetFetch with require_stable (v7+, KIP-447): Kafka answers those
    partitions UNSTABLE_OFFSET_COMMIT so the consumer retries after the commit.
    """
    return {
        (r.topic, r.partition)
        for recs in _pending(broker).values()
        for r in recs
        if r.group_id == group_id
    }
