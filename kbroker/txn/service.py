"""Glue between the broker and the transaction machinery.

- ``txn_coordinator(broker, transactional_id)``: the TransactionCoordinator of a
  transactional id, loaded from ``__transaction_state`` and polled (timeouts,
  expiry) on every call. A single node has one for every partition, loaded at start
  (``load_at_start``) or on first use; in cluster mode each partition this broker leads has its own, loaded from
  that partition as soon as this broker is elected its leader (``load_partition``)
  and unloaded when its leadership moves (``unload_partition``), as Kafka's
  TransactionStateManager loads and removes the transactions of one partition,
  leaving the others alone. A load reads the log in the background
  (kbroker.coordinator.loading): until it is over the ids of that partition are
  COORDINATOR_LOAD_IN_PROGRESS (TransactionStateManager.getTransactionState). No
  background task fires its timers: produce, fetch, list-offsets and every
  transaction API poll it, so a stale transaction is aborted by the next request that
  could observe it (a read_committed consumer polls at least every
  fetch.max.wait.ms).
- ``write_markers``: COMMIT/ABORT control batches appended in-process to every
  partition of a transaction this broker leads (the others get WriteTxnMarkers from
  ``ClusterNode.send_txn_markers``); a ``__consumer_offsets`` partition also
  completes the group offsets staged by TxnOffsetCommit. Each marker carries its
  coordinator's epoch, the leader epoch of its ``__transaction_state`` partition when
  it was loaded, and a marker older than the producer's last one is refused
  (TRANSACTION_COORDINATOR_FENCED).
- ``check_producer_batch``: the produce path's idempotence / transaction
  checks against the partition's producer state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from kbroker.cluster.producer_ids import ClusterProducerIds
from kbroker.coordinator.loading import Loads
from kbroker.errors import KafkaApiError
from kbroker.internal_topics import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, coordinated_partitions
from kbroker.log.producer_state import BatchMetadata, ProducerStateError, last_sequence
from kbroker.replication.leader_writes import append_as_leader
from kbroker.topic_config import effective_topic_value
from kbroker.topics import SINGLE_NODE_LEADER_EPOCH
from kbroker.txn.coordinator import (
    MarkersDone,
    TopicPartition,
    TransactionCoordinator,
    TxnConfig,
    TxnMetadata,
)
from kbroker.txn.producer_ids import ProducerIdManager
from kbroker.txn.store import TxnStateTopicStore
from kbroker.wire.errors import ErrorCode
from kbroker.wire.records import build_control_batch

if TYPE_CHECKING:
    from kbroker.broker import BrokerState
    from kbroker.replication.partition import ReplicatedPartition

logger = logging.getLogger(__name__)

_STATE_KEY = "kbroker.txn"
# Cluster mode: __transaction_state partition -> its coordinator.
_PARTITIONS_KEY = "kbroker.txn.partitions"
# The loads under way: __transaction_state partition (None: a single node's whole
# topic) -> its load.
_LOADING_KEY = "kbroker.txn.loading"
_PID_KEY = "kbroker.txn.producer_ids"
_POLLED_KEY = "kbroker.txn.polled_ms"
_SWEPT_KEY = "kbroker.txn.swept_ms"
# Kafka's producer.id.expiration.check.interval.ms default (10 minutes).
PRODUCER_EXPIRATION_CHECK_MS = 600000
# How long a marker's append waits for its partition's ISR: Kafka's WriteTxnMarkers
# appends with acks=all within request.timeout.ms (30 s by default).
MARKER_ACKS_TIMEOUT_S = 30.0


def producer_ids(broker: BrokerState) -> ProducerIdManager | ClusterProducerIds:
    """The broker's producer id allocator: persisted in the data dir on a single node,
    blocks from ZooKeeper in cluster mode (kbroker.cluster.producer_ids)."""
    mgr = broker.state.get(_PID_KEY)
    if mgr is None:
        if broker.cluster is not None:
            mgr = ClusterProducerIds(broker.cluster.zk, broker.node_id)
        else:
            mgr = ProducerIdManager(broker.data_dir)
        broker.state[_PID_KEY] = mgr
    return mgr


def txn_config(broker: BrokerState) -> TxnConfig:
    """Coordinator settings from the broker config."""
    c = broker.config
    return TxnConfig(
        max_timeout_ms=int(c["transaction.max.timeout.ms"]),
        id_expiration_ms=int(c["transactional.id.expiration.ms"]),
    )


def txn_coordinator(
    broker: BrokerState, transactional_id: str | None = None
) -> TransactionCoordinator:
    """The coordinator of ``transactional_id``, polled: on a single node the broker's one
    (``transactional_id`` is not needed); in cluster mode the one of the id's
    ``__transaction_state`` partition, KafkaApiError NOT_COORDINATOR if this broker does
    not lead it. KafkaApiError COORDINATOR_LOAD_IN_PROGRESS while it is being loaded (its
    load is started if it is not yet)."""
    tc = ready_txn_coordinator(broker, transactional_id)
    if tc is None:
        raise KafkaApiError(
            ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
            f"the {TRANSACTION_STATE_TOPIC} partition of {transactional_id} is loading",
        )
    poll(broker, [tc])
    return tc


def ready_txn_coordinator(
    broker: BrokerState, transactional_id: str | None = None
) -> TransactionCoordinator | None:
    """The coordinator of ``transactional_id`` if it is loaded (not polled), else None,
    its load started if it was not under way; KafkaApiError NOT_COORDINATOR as
    ``txn_coordinator``."""
    if broker.cluster is None:
        return _ensure(broker, None)
    if transactional_id is None:
        raise ValueError("in cluster mode a transaction's coordinator depends on its id")
    return _ensure(broker, TxnStateTopicStore(broker).partition_of(transactional_id))


def txn_loading(broker: BrokerState, transactional_id: str) -> bool:
    """Whether ``transactional_id``'s coordinator partition is still loading here (its
    load is started if this broker coordinates the id and it is neither loaded nor
    loading). False when another broker coordinates it."""
    try:
        return ready_txn_coordinator(broker, transactional_id) is None
    except KafkaApiError:
        return False


def load_partition(broker: BrokerState, index: int) -> None:
    """Cluster mode: this broker was just elected leader of ``__transaction_state``
    partition ``index``: start loading its transactions at once
    (TransactionCoordinator.onElection), so an open one times out and a Prepare* one is
    completed even if its producer never comes back."""
    try:
        _ensure(broker, index, first_slice_here=False)
    except KafkaApiError:
        pass  # no longer led: nothing to load


def load_at_start(broker: BrokerState) -> None:
    """A single node that starts with a ``__transaction_state`` topic starts loading it
    at once, in the background (TransactionCoordinator.onElection at start-up), so a
    transaction left open by a crash times out, and a Prepare* one completes, even if its
    producer never comes back."""
    if broker.cluster is None and broker.topics.get(TRANSACTION_STATE_TOPIC) is not None:
        _ensure(broker, None, first_slice_here=False)


def loading(broker: BrokerState) -> bool:
    """Whether some ``__transaction_state`` partition of this broker is still loading
    (ListTransactions answers COORDINATOR_LOAD_IN_PROGRESS)."""
    return bool(_loads(broker))


_Record = tuple[str, TxnMetadata | None]


def _loads(broker: BrokerState) -> Loads[_Record]:
    found: Loads[_Record] = broker.state.setdefault(_LOADING_KEY, Loads())
    return found


def _installed(broker: BrokerState, index: int | None) -> TransactionCoordinator | None:
    if index is None:
        found: TransactionCoordinator | None = broker.state.get(_STATE_KEY)
        return found
    return _partitions(broker).get(index)


def _ensure(
    broker: BrokerState, index: int | None, *, first_slice_here: bool = True
) -> TransactionCoordinator | None:
    """The coordinator of partition ``index`` (None: the single node's) if loaded, else
    None, starting its load if none is under way (whose first slice, read here unless
    ``first_slice_here`` is False, may finish it)."""
    tc = _installed(broker, index)
    if tc is not None:
        return tc
    loads = _loads(broker)
    if index in loads:
        return None
    epoch = _coordinator_epoch(broker, index)
    store = TxnStateTopicStore(broker) if index is None else TxnStateTopicStore(broker, [index])
    what = TRANSACTION_STATE_TOPIC if index is None else f"{TRANSACTION_STATE_TOPIC}-{index}"

    def register(tc: TransactionCoordinator | None) -> None:
        if index is None:
            if tc is None:
                broker.state.pop(_STATE_KEY, None)
            else:
                broker.state[_STATE_KEY] = tc
        elif tc is None:
            _partitions(broker).pop(index, None)
        else:
            _partitions(broker)[index] = tc

    def install(records: list[_Record]) -> None:
        where = "" if index is None else f" from {what}"
        _build(broker, store, records, register, where, coordinator_epoch=epoch)

    loads.start(index, what, store.load(), install, first_slice_here=first_slice_here)
    return _installed(broker, index)


def _coordinator_epoch(broker: BrokerState, index: int | None) -> int:
    """The epoch of the coordinator loaded for partition ``index`` (None: the single
    node's): KafkaApiError NOT_COORDINATOR if this broker does not lead it."""
    cluster = broker.cluster
    if index is None or cluster is None:
        # A single node leads every partition at the same leader epoch.
        return SINGLE_NODE_LEADER_EPOCH
    leader_epoch = cluster.replicas.leader_epoch(TRANSACTION_STATE_TOPIC, index)
    if leader_epoch is None or not cluster.replicas.is_leader(TRANSACTION_STATE_TOPIC, index):
        raise KafkaApiError(
            ErrorCode.NOT_COORDINATOR, f"{TRANSACTION_STATE_TOPIC}-{index} is not led here"
        )
    # Kafka's onElection(partition, coordinatorEpoch) passes the partition's leader epoch:
    # every leader after this one has a higher one, so its markers fence ours. Loaded when
    # elected (or on first use after), it is that election's epoch or a later one of the
    # same leadership (a leadership that ends unloads it).
    return leader_epoch


def _build(
    broker: BrokerState,
    store: TxnStateTopicStore,
    records: list[_Record],
    register: Callable[[TransactionCoordinator | None], None],
    where: str,
    *,
    coordinator_epoch: int,
) -> TransactionCoordinator:
    """A coordinator writing to ``store``, holding what ``records`` (its log) say,
    registered by ``register``, whose markers carry ``coordinator_epoch``. If the replay
    raises, nothing stays registered (``register(None)``), as a failed group load
    installs nothing: the partition is then neither loaded nor loading, and the next
    request loads it again (Kafka's loadTransactionsForTxnTopicPartition adds the
    partition's transactions to the cache only once all are read)."""

    def markers(
        pid: int, epoch: int, commit: bool, parts: list[TopicPartition], done: MarkersDone
    ) -> None:
        # Markers still being sent when it is unloaded are left to its successor.
        write_markers(
            broker,
            pid,
            epoch,
            commit,
            parts,
            coordinator_epoch=tc.coordinator_epoch,
            on_written=done,
            abandoned=lambda: tc.unloaded,
        )

    tc = TransactionCoordinator(
        config=txn_config(broker),
        # The broker's clock as it is when asked, not when loaded (a node loads at start).
        clock=lambda: broker.clock(),
        next_producer_id=producer_ids(broker).next_id,
        store=store,
        markers=markers,
        coordinator_epoch=coordinator_epoch,
    )
    # Register before loading: finishing a Prepare* transaction writes markers.
    register(tc)
    try:
        tc.load(records)
    except BaseException:
        register(None)
        # Markers it started writing are left to the coordinator loaded next.
        tc.unload()
        raise
    logger.info(
        "transaction coordinator loaded %d transactional id(s)%s at coordinator epoch %d",
        len(tc.txns),
        where,
        coordinator_epoch,
    )
    return tc


def _partitions(broker: BrokerState) -> dict[int, TransactionCoordinator]:
    """Cluster mode: the coordinator of each ``__transaction_state`` partition loaded here."""
    loaded: dict[int, TransactionCoordinator] = broker.state.setdefault(_PARTITIONS_KEY, {})
    return loaded


def txn_coordinators(broker: BrokerState) -> list[TransactionCoordinator]:
    """Every transaction coordinator of this broker that is loaded (ListTransactions): the
    single node's, or one per ``__transaction_state`` partition it leads; those not
    loaded yet are started (``loading`` tells whether some still are), in cluster mode
    wholly in the background, as ``kbroker.coordinator.service.load_led`` (Kafka's
    listTransactionStates answers COORDINATOR_LOAD_IN_PROGRESS meanwhile)."""
    if broker.cluster is None:
        single = _ensure(broker, None)
        if single is None:
            return []
        poll(broker, [single])
        return [single]
    topic = broker.topics.get(TRANSACTION_STATE_TOPIC)
    if topic is None:
        return []
    found = []
    for p in coordinated_partitions(broker, topic):
        tc = _ensure(broker, p.index, first_slice_here=False)
        if tc is not None:
            found.append(tc)
    return found


def loaded_txn_coordinators(broker: BrokerState) -> list[TransactionCoordinator]:
    """The transaction coordinators already loaded (none is loaded for this)."""
    if broker.cluster is None:
        tc = broker.state.get(_STATE_KEY)
        return [] if tc is None else [tc]
    return list(_partitions(broker).values())


def drop(broker: BrokerState) -> bool:
    """Drop every transaction coordinator loaded here (whether one was): the next request
    loads its successor from the logs. A dropped one is unloaded
    (``TransactionCoordinator.unload``): it writes nothing more, and what waits in it is
    answered as Kafka answers a request whose coordinator resigned."""
    cancelled = _loads(broker).cancel_all()
    dropped: list[TransactionCoordinator] = []
    tc: TransactionCoordinator | None = broker.state.pop(_STATE_KEY, None)
    if tc is not None:
        dropped.append(tc)
    dropped.extend(broker.state.pop(_PARTITIONS_KEY, {}).values())
    for tc in dropped:
        _unload(broker, tc)
    return bool(dropped or cancelled)


def unload_partition(broker: BrokerState, index: int) -> bool:
    """Leadership of ``__transaction_state`` partition ``index`` moved (to or from this
    broker): its coordinator, if one is loaded, is unloaded (a load under way is
    cancelled), and it is loaded from the log again (Kafka's
    TransactionCoordinator.onResignation / onElection: the transactions of the other
    partitions are left alone). On a single node one coordinator holds every partition:
    it is dropped whole. Whether one was unloaded."""
    if broker.cluster is None:
        return drop(broker)
    # A load under way installs nothing (TransactionStateManager
    # .removeTransactionsForTxnTopicPartition drops it from loadingPartitions).
    cancelled = _loads(broker).cancel(index)
    tc = _partitions(broker).pop(index, None)
    if tc is None:
        return cancelled
    _unload(broker, tc)
    return True


def _unload(broker: BrokerState, tc: TransactionCoordinator) -> None:
    tc.unload()
    broker.state.get(_POLLED_KEY, {}).pop(id(tc), None)


def poll(broker: BrokerState, coordinators: list[TransactionCoordinator] | None = None) -> None:
    """Fire due coordinator timers, loading the coordinators if transactions were ever used."""
    if coordinators is None:
        # The produce and fetch paths call this per request: look at most every 100 ms.
        now = int(broker.clock() * 1000)
        if now - broker.state.get(_SWEPT_KEY, -1000) < 100:
            return
        broker.state[_SWEPT_KEY] = now
        coordinators = loaded_txn_coordinators(broker)
        if broker.cluster is not None:
            if broker.topics.get(TRANSACTION_STATE_TOPIC) is not None:
                # An open transaction must time out even if its producer never comes
                # back: the partitions led here are loaded.
                coordinators = txn_coordinators(broker)
        elif not coordinators:
            if broker.topics.get(TRANSACTION_STATE_TOPIC) is None:
                return
            # After a restart an open transaction must still time out even if its
            # producer never comes back: the first read_committed fetch loads it.
            single = ready_txn_coordinator(broker)
            if single is None:
                return  # polled once loaded
            coordinators = [single]
    polled: dict[int, int] | None = broker.state.get(_POLLED_KEY)
    if polled is None:
        polled = broker.state[_POLLED_KEY] = {}
    for tc in coordinators:
        now = tc.now_ms()
        # next_deadline_ms walks every transactional id: look at most every 100 ms
        # (the produce and fetch paths call this per request).
        if now - polled.get(id(tc), -1000) < 100:
            continue
        polled[id(tc)] = now
        due = tc.next_deadline_ms()
        if due is not None and due <= now:
            aborted = tc.poll()
            if aborted:
                logger.info("aborted timed-out transactions: %s", ", ".join(aborted))


def maintain(broker: BrokerState) -> None:
    """One maintenance pass: transaction timeouts / id expiry and producer-id expiry everywhere.

    For the server's maintenance loop (every few seconds); until it calls this,
    the same checks run lazily from requests.
    """
    poll(broker)
    now_ms = int(broker.clock() * 1000)
    expiration_ms = int(broker.config["producer.id.expiration.ms"])
    for partition in broker.topics.all_partitions():
        partition.log.producer_state.remove_expired(now_ms, expiration_ms)


def write_markers(
    broker: BrokerState,
    producer_id: int,
    epoch: int,
    commit: bool,
    partitions: list[TopicPartition],
    *,
    coordinator_epoch: int,
    on_written: MarkersDone | None = None,
    abandoned: Callable[[], bool] | None = None,
) -> dict[TopicPartition, ErrorCode]:
    """Append a COMMIT/ABORT marker to each partition; complete staged group offsets.

    In cluster mode only the partitions this broker leads are marked here; the others
    go to their leaders as WriteTxnMarkers (Kafka's TransactionMarkerChannelManager),
    sent in the background and retried until each leader has written its marker.

    A partition whose producer state refuses the marker gets none (``check_marker``:
    INVALID_PRODUCER_EPOCH, or TRANSACTION_COORDINATOR_FENCED when the producer's last
    marker came from a coordinator with a higher ``coordinator_epoch``); those partitions
    are returned with their error. ``on_written`` (the coordinator's) hears NONE once every
    marker is written and in its partition's ISR (acks=all, as Kafka appends markers),
    TRANSACTION_COORDINATOR_FENCED if one was fenced (here or at a remote leader), else
    the error that left one unwritten. A marker refused for its producer epoch counts as
    written, as the remote leaders' INVALID_PRODUCER_EPOCH does (the producer moved on).
    ``abandoned`` tells the background sending to stop: its coordinator was unloaded, and
    the successor sends the markers again (TransactionMarkerChannelManager
    .removeMarkersForTxnTopicPartition).
    """
    written = _AllWritten(on_written)
    refused: dict[TopicPartition, ErrorCode] = {}
    cluster = broker.cluster
    if cluster is not None:
        remote = [tp for tp in partitions if not cluster.replicas.is_leader(*tp)]
        if remote:
            written.expect()
            cluster.send_txn_markers(
                producer_id,
                epoch,
                commit,
                remote,
                coordinator_epoch,
                on_done=written.one,
                abandoned=abandoned,
            )
            partitions = [tp for tp in partitions if tp not in remote]
    now = int(broker.clock() * 1000)
    if any(topic == OFFSETS_TOPIC for topic, _ in partitions):
        from kbroker.txn.offsets import load_pending

        # Staged offsets must be known before the marker resolves them in the log.
        load_pending(broker)
    offsets_partitions = []
    waits: list[tuple[ReplicatedPartition, int, int]] = []
    for topic_name, index in partitions:
        part = broker.topics.partition(topic_name, index)
        if part is None:
            # Deleted since it was added: nothing left to mark (Kafka drops it too).
            continue
        try:
            part.log.producer_state.check_marker(producer_id, epoch, coordinator_epoch)
        except ProducerStateError as exc:
            logger.info(
                "%s marker of producer %d refused on %s-%d: %s",
                "COMMIT" if commit else "ABORT",
                producer_id,
                topic_name,
                index,
                exc.message,
            )
            refused[(topic_name, index)] = exc.code
            continue
        batch = build_control_batch(
            commit=commit,
            producer_id=producer_id,
            producer_epoch=epoch,
            coordinator_epoch=coordinator_epoch,
            timestamp=now,
        )
        append_as_leader(part, batch)
        broker.notify_append(part)
        if part.replica is not None and on_written is not None:
            min_isr = effective_topic_value(
                "min.insync.replicas", part.topic.configs, broker.config
            )
            waits.append((part.replica, part.log.log_end_offset, int(min_isr)))
        if topic_name == OFFSETS_TOPIC:
            offsets_partitions.append(index)
    if offsets_partitions:
        from kbroker.txn.offsets import complete

        complete(broker, producer_id, commit, offsets_partitions)
    if waits:
        written.expect()
        trio.lowlevel.spawn_system_task(_await_markers, waits, written.one)
    fenced = ErrorCode.TRANSACTION_COORDINATOR_FENCED in refused.values()
    written.one(ErrorCode.TRANSACTION_COORDINATOR_FENCED if fenced else ErrorCode.NONE)
    return refused


class _AllWritten:
    """Counts the marker writes still outstanding; tells ``done`` once all are over: NONE
    if every one was written, else the first error, a fence before any other."""

    def __init__(self, done: MarkersDone | None) -> None:
        self._done = done
        self._outstanding = 1  # the local part, over when write_markers returns
        self._result = ErrorCode.NONE

    def expect(self) -> None:
        self._outstanding += 1

    def one(self, result: ErrorCode) -> None:
        if result == ErrorCode.TRANSACTION_COORDINATOR_FENCED or self._result == ErrorCode.NONE:
            self._result = result
        self._outstanding -= 1
        if self._outstanding == 0 and self._done is not None:
            self._done(self._result)


async def _await_markers(
    waits: list[tuple[ReplicatedPartition, int, int]], done: MarkersDone
) -> None:
    """Wait until each partition's ISR has its marker (acks=all), then tell ``done``."""
    result = ErrorCode.NONE
    for replica, required, min_isr in waits:
        error = await replica.wait_for_acks(
            required, MARKER_ACKS_TIMEOUT_S, min_insync_replicas=min_isr
        )
        if error != ErrorCode.NONE:
            logger.info("a transaction marker is not in its ISR: %s", error.name)
            result = error
    try:
        done(result)
    except Exception:  # a system task must not raise: that would end the broker
        logger.exception("completing a transaction's markers failed")


def check_producer_batch(
    broker: BrokerState,
    topic: Any,
    partition: Any,
    header: Any,
    transactional_id: str | None,
    now_ms: int,
) -> BatchMetadata | None:
    """Idempotence / transaction checks for one Produce batch before it is appended.

    ``now_ms``: the broker clock's time, as the caller read it for this batch.
    Returns the original batch when this one is a retry (the caller answers its
    offsets and writes nothing); raises KafkaApiError with Kafka's code.
    """
    state = partition.log.producer_state
    # producer.id.expiration.ms, checked every producer.id.expiration.check.interval.ms
    # per log. In line rather than in a helper: this runs for every Produce batch,
    # idempotent or not. The time of the last check is kept on the log's producer state
    # (one attribute read per batch), not in a broker-wide table keyed by id(log): that
    # cost two dict lookups per batch and kept an entry for every log ever deleted.
    last = state.expiry_checked_ms
    if last is None:
        state.expiry_checked_ms = now_ms
    elif now_ms - last >= PRODUCER_EXPIRATION_CHECK_MS:
        state.expiry_checked_ms = now_ms
        state.remove_expired(now_ms, int(broker.config["producer.id.expiration.ms"]))
    if header.producer_id < 0:
        return None
    first = header.base_sequence
    last = last_sequence(first, header.last_offset_delta)
    try:
        dup = state.check_batch(
            header.producer_id,
            header.producer_epoch,
            first,
            last,
            is_transactional=header.is_transactional,
        )
    except ProducerStateError as exc:
        raise KafkaApiError(exc.code, exc.message) from None
    if dup is not None:
        logger.debug(
            "%s-%d: retried batch of producer %d (seq %d..%d) answered with offset %d",
            topic.name,
            partition.index,
            header.producer_id,
            first,
            last,
            dup.first_offset,
        )
        return dup
    if header.is_transactional and _coordinated_elsewhere(broker, transactional_id):
        # Cluster mode, the transaction lives on another broker: Kafka's leader would ask
        # that coordinator (AddPartitionsToTxn verify-only, KIP-890); ours does not, so
        # the coordinator's own checks (AddPartitionsToTxn, markers) are what holds.
        return None
    if header.is_transactional:
        tc = ready_txn_coordinator(broker, transactional_id)
        if tc is None:
            # Its coordinator partition is still loading: ReplicaManager answers a
            # transactional write it cannot verify yet NOT_ENOUGH_REPLICAS, retriable
            # without a metadata refresh.
            raise KafkaApiError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                "Unable to verify the partition has been added to the transaction: "
                "its coordinator is loading",
            )
        poll(broker, [tc])
        current = tc.current_epoch(header.producer_id)
        if current is not None and header.producer_epoch < current:
            # A zombie fenced by a newer instance (or a timed-out abort).
            raise KafkaApiError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"Producer {header.producer_id} epoch {header.producer_epoch} is older than "
                f"the current epoch {current}",
            )
        entry = state.lookup(header.producer_id)
        in_txn = entry is not None and entry.current_txn_first_offset >= 0
        if not in_txn and not tc.partition_in_txn(
            header.producer_id, header.producer_epoch, (topic.name, partition.index)
        ):
            # KIP-890 part 1 (transaction.partition.verification.enable, default
            # true): a transactional write to a partition that is not in the
            # producer's ongoing transaction is refused.
            raise KafkaApiError(
                ErrorCode.INVALID_TXN_STATE,
                f"Partition {topic.name}-{partition.index} is not part of an ongoing "
                f"transaction of producer {header.producer_id}",
            )
    return None


def _coordinated_elsewhere(broker: BrokerState, transactional_id: str | None) -> bool:
    cluster = broker.cluster
    if cluster is None:
        return False
    if transactional_id is None:
        return True
    from kbroker.cluster.coordinators import KEY_TYPE_TRANSACTION, leads_coordinator

    return not leads_coordinator(cluster, KEY_TYPE_TRANSACTION, transactional_id)
