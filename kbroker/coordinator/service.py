"""The Trio side of the coordinator: which ``GroupCoordinator`` holds a group, and waiting.

A single node has one coordinator for every group, loaded at start (``load_at_start``)
or on first use. In cluster
mode each ``__consumer_offsets`` partition this broker leads has its own, loaded from
that partition's log as soon as this broker is elected its leader (``load_partition``)
and unloaded when its leadership moves (``unload_partition``), so a move touches the
groups of that partition only. A load reads the log in the background
(kbroker.coordinator.loading); until it is over, the groups of that partition are
COORDINATOR_LOAD_IN_PROGRESS (``coordinator_for``, ``group_loading``), as Kafka's
GroupCoordinator.validateGroupStatus answers for a partition in ``loadingPartitions``.

The state machine never blocks; this module only waits. No background task
fires its timers (only loading runs in one): every group request first calls
``poll()`` (so timers that
fell due since the last request fire, with their effects visible to that
request), and a request whose answer is pending (JoinGroup, SyncGroup) waits
until it is decided or the machine's next deadline passes, then polls again.
A rebalance that waits on a dead member therefore completes at its rebalance
timeout through the waiters themselves, and a silent member is expired by the
next request that could observe it.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import trio

from kbroker.coordinator.classic_group import Pending
from kbroker.coordinator.group import CoordinatorConfig, GroupCoordinator, partition_for
from kbroker.coordinator.loading import Loads
from kbroker.coordinator.store import CoordinatorRecord, OffsetsTopicStore
from kbroker.errors import KafkaApiError
from kbroker.internal_topics import OFFSETS_TOPIC, coordinated_partitions
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

__all__ = [
    "coordinator_config",
    "coordinator_for",
    "coordinators",
    "drop",
    "group_loading",
    "load_at_start",
    "load_led",
    "load_partition",
    "loaded_coordinators",
    "loading",
    "offsets_partitions",
    "on_topics_deleted",
    "poll_loaded",
    "ready_coordinator",
    "settled",
    "unload_partition",
    "wait_pending",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_STATE_KEY = "kbroker.coordinator"
# Cluster mode: __consumer_offsets partition -> its coordinator.
_PARTITIONS_KEY = "kbroker.coordinator.partitions"
# The loads under way: __consumer_offsets partition (None: a single node's whole topic)
# -> its load.
_LOADING_KEY = "kbroker.coordinator.loading"


def coordinator_config(broker: BrokerState) -> CoordinatorConfig:
    """The coordinator settings from the broker config (Kafka names)."""
    c = broker.config
    return CoordinatorConfig(
        initial_rebalance_delay_ms=c["group.initial.rebalance.delay.ms"],
        min_session_timeout_ms=c["group.min.session.timeout.ms"],
        max_session_timeout_ms=c["group.max.session.timeout.ms"],
        max_group_size=c["group.max.size"],
        offsets_retention_ms=c["offsets.retention.minutes"] * 60 * 1000,
        offsets_retention_check_interval_ms=c["offsets.retention.check.interval.ms"],
        offset_metadata_max_bytes=c["offset.metadata.max.bytes"],
        num_partitions=offsets_partitions(broker),
        consumer_session_timeout_ms=c["group.consumer.session.timeout.ms"],
        consumer_heartbeat_interval_ms=c["group.consumer.heartbeat.interval.ms"],
    )


def offsets_partitions(broker: BrokerState) -> int:
    """How many partitions ``__consumer_offsets`` has (or will have)."""
    # Once the topic exists its partition count decides where groups live, even if
    # offsets.topic.num.partitions was changed since (Kafka reads the topic too). In
    # cluster mode that is the cluster's topic, not this broker's copy.
    cluster = broker.cluster
    if cluster is not None:
        info = cluster.metadata.topic(OFFSETS_TOPIC)
        if info is not None and info.partitions:
            return len(info.partitions)
    topic = broker.topics.get(OFFSETS_TOPIC)
    if topic is not None:
        return len(topic.partitions)
    return int(broker.config["offsets.topic.num.partitions"])


def coordinator_for(broker: BrokerState, group_id: str | None = None) -> GroupCoordinator:
    """The coordinator of ``group_id``, loaded from ``__consumer_offsets``; polled.

    On a single node one coordinator holds every group (``group_id`` is not needed). In
    cluster mode each ``__consumer_offsets`` partition this broker leads has its own,
    loaded from that partition alone and unloaded when its leadership moves
    (``unload_partition``), as Kafka's coordinators load and unload per partition
    (GroupMetadataManager.scheduleLoadGroupAndOffsets / removeGroupsForPartition):
    groups of the other partitions are left as they are. KafkaApiError NOT_COORDINATOR
    when this broker does not lead ``group_id``'s partition, COORDINATOR_LOAD_IN_PROGRESS
    while that partition is still being read (its load is started if it is not yet)."""
    gc = ready_coordinator(broker, group_id)
    if gc is None:
        raise KafkaApiError(
            ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
            f"the {OFFSETS_TOPIC} partition of group {group_id} is loading",
        )
    gc.poll()
    return gc


def ready_coordinator(broker: BrokerState, group_id: str | None = None) -> GroupCoordinator | None:
    """The coordinator of ``group_id`` if it is loaded (not polled), else None, its load
    started if it was not under way; KafkaApiError NOT_COORDINATOR as ``coordinator_for``."""
    if broker.cluster is None:
        return _ensure(broker, None)
    if group_id is None:
        raise ValueError("in cluster mode a group's coordinator depends on the group")
    return _ensure(broker, partition_for(group_id, offsets_partitions(broker)))


def group_loading(broker: BrokerState, group_id: str) -> bool:
    """Whether ``group_id``'s coordinator partition is still loading here (its load is
    started if this broker coordinates the group and it is neither loaded nor loading):
    the request is then COORDINATOR_LOAD_IN_PROGRESS (GroupCoordinator
    .validateGroupStatus). False when another broker coordinates the group."""
    try:
        return ready_coordinator(broker, group_id) is None
    except KafkaApiError:
        return False


def load_partition(broker: BrokerState, index: int) -> None:
    """Cluster mode: this broker was just elected leader of ``__consumer_offsets``
    partition ``index``: start loading its groups at once (GroupCoordinator.onElection),
    so their members' sessions run from now even if none of them asks."""
    try:
        _ensure(broker, index, first_slice_here=False)
    except KafkaApiError:
        pass  # no longer led: nothing to load


def load_at_start(broker: BrokerState) -> None:
    """A single node that starts with a ``__consumer_offsets`` topic starts loading it at
    once, in the background: it leads every partition from the start (Kafka's broker
    becomes their leader at start-up and GroupCoordinator.onElection loads them), so a
    client that comes back after a restart finds its groups loaded, not loading."""
    if broker.cluster is None and broker.topics.get(OFFSETS_TOPIC) is not None:
        _ensure(broker, None, first_slice_here=False)


def loading(broker: BrokerState) -> bool:
    """Whether some coordinator partition of this broker is still loading (ListGroups
    answers COORDINATOR_LOAD_IN_PROGRESS with the groups of the others)."""
    return bool(_loads(broker))


def _loads(broker: BrokerState) -> Loads[CoordinatorRecord]:
    found: Loads[CoordinatorRecord] = broker.state.setdefault(_LOADING_KEY, Loads())
    return found


def _ensure(
    broker: BrokerState, index: int | None, *, first_slice_here: bool = True
) -> GroupCoordinator | None:
    """The coordinator of partition ``index`` (None: the single node's) if loaded, else
    None, starting its load if none is under way (whose first slice, read here unless
    ``first_slice_here`` is False, may finish it)."""
    gc = _installed(broker, index)
    if gc is not None:
        return gc
    loads = _loads(broker)
    if index in loads:
        return None
    cluster = broker.cluster
    if (
        index is not None
        and cluster is not None
        and not cluster.replicas.is_leader(OFFSETS_TOPIC, index)
    ):
        raise KafkaApiError(ErrorCode.NOT_COORDINATOR, f"{OFFSETS_TOPIC}-{index} is not led here")
    store = OffsetsTopicStore(broker) if index is None else OffsetsTopicStore(broker, [index])
    what = OFFSETS_TOPIC if index is None else f"{OFFSETS_TOPIC}-{index}"

    def install(records: list[CoordinatorRecord]) -> None:
        gc = _build(broker, store, records, "" if index is None else f" from {what}")
        # Imported here: the transaction side builds on this module.
        from kbroker.txn.offsets import partition_loaded, whole_loaded

        if index is None:
            broker.state[_STATE_KEY] = gc
            whole_loaded(broker, store.pending_txn_offsets)
        else:
            _partitions(broker)[index] = gc
            # Transactional offset commits of that partition still waiting for their marker.
            partition_loaded(broker, index, store.pending_txn_offsets)

    loads.start(index, what, store.load(), install, first_slice_here=first_slice_here)
    return _installed(broker, index)


def _installed(broker: BrokerState, index: int | None) -> GroupCoordinator | None:
    if index is None:
        found: GroupCoordinator | None = broker.state.get(_STATE_KEY)
        return found
    return _partitions(broker).get(index)


def _build(
    broker: BrokerState, store: OffsetsTopicStore, records: list[CoordinatorRecord], where: str
) -> GroupCoordinator:
    """A coordinator writing to ``store``, holding what ``records`` (its log) say."""
    # The broker's clock as it is when asked, not when loaded (a node loads at start).
    gc = GroupCoordinator(
        config=coordinator_config(broker), clock=lambda: broker.clock(), store=store
    )
    # Imported here: the transaction side builds on this module.
    from kbroker.txn.offsets import discard, pending_partitions, set_aside

    gc.pending_txn_partitions = partial(pending_partitions, broker)
    gc.discard_txn_offsets = partial(discard, broker)
    gc.set_aside_txn_offsets = partial(set_aside, broker)
    gc.replay(records)
    logger.info("group coordinator loaded %d group(s)%s", len(gc.group_ids()), where)
    return gc


def _partitions(broker: BrokerState) -> dict[int, GroupCoordinator]:
    """Cluster mode: the coordinator of each ``__consumer_offsets`` partition loaded here."""
    loaded: dict[int, GroupCoordinator] = broker.state.setdefault(_PARTITIONS_KEY, {})
    return loaded


def coordinators(broker: BrokerState) -> list[GroupCoordinator]:
    """Every group coordinator of this broker that is loaded, each polled (ListGroups, a
    topic's deletion): the single node's, or one per ``__consumer_offsets`` partition it
    leads; those not loaded yet are started (``loading`` tells whether some still are)."""
    if broker.cluster is None:
        single = _ensure(broker, None)
        found = [] if single is None else [single]
    else:
        found = load_led(broker)
    for gc in found:
        gc.poll()
    return found


def load_led(broker: BrokerState) -> list[GroupCoordinator]:
    """Cluster mode: the coordinator of every ``__consumer_offsets`` partition led here
    that is loaded, the loads of the others started; none is polled (for the transaction
    side, which may be asked from within a coordinator's poll).

    The loads it starts are read wholly in the background, none of their slices here: a
    request asking for every partition (ListGroups, a transaction's offsets) would
    otherwise hold the event loop one slice per partition neither loaded nor loading
    (~100 ms for 50 of them), and Kafka answers it COORDINATOR_LOAD_IN_PROGRESS meanwhile
    (GroupCoordinator.handleListGroups) rather than load anything in it."""
    topic = broker.topics.get(OFFSETS_TOPIC)
    if topic is None:
        return []
    found = []
    for p in coordinated_partitions(broker, topic):
        gc = _ensure(broker, p.index, first_slice_here=False)
        if gc is not None:
            found.append(gc)
    return found


def loaded_coordinators(broker: BrokerState) -> list[GroupCoordinator]:
    """The group coordinators already loaded (none is loaded for this)."""
    if broker.cluster is None:
        gc = broker.state.get(_STATE_KEY)
        return [] if gc is None else [gc]
    return list(_partitions(broker).values())


def drop(broker: BrokerState) -> bool:
    """Drop every group coordinator loaded here (whether one was): the next request loads
    its successor from the logs. A dropped one is unloaded (``GroupCoordinator.unload``):
    whoever still waits in it is answered NOT_COORDINATOR, and it writes nothing more."""
    cancelled = _loads(broker).cancel_all()
    dropped: list[GroupCoordinator] = []
    gc: GroupCoordinator | None = broker.state.pop(_STATE_KEY, None)
    if gc is not None:
        dropped.append(gc)
    dropped.extend(broker.state.pop(_PARTITIONS_KEY, {}).values())
    for gc in dropped:
        gc.unload()
    return bool(dropped or cancelled)


def unload_partition(broker: BrokerState, index: int) -> bool:
    """Leadership of ``__consumer_offsets`` partition ``index`` moved (to or from this
    broker): its coordinator, if one is loaded, is unloaded (a load under way is
    cancelled), and it is loaded from the log again (never from what memory held: a partition
    lost and regained may have been written by another leader meanwhile). Kafka's
    onResignation / onElection: the groups of the other partitions are left as they are.
    On a single node one coordinator holds every partition: it is dropped whole. Whether
    one was unloaded."""
    if broker.cluster is None:
        return drop(broker)
    from kbroker.txn.offsets import partition_unloaded

    partition_unloaded(broker, index)
    # A load under way installs nothing (Kafka's removeGroupsForPartition drops the
    # partition from loadingPartitions; a later load reads the log again).
    cancelled = _loads(broker).cancel(index)
    gc = _partitions(broker).pop(index, None)
    if gc is None:
        return cancelled
    gc.unload()
    return True


def poll_loaded(broker: BrokerState) -> None:
    """Fire the group coordinators' due timers (session expiry, rebalance deadlines,
    offsets retention); for the server's maintenance loop, so groups whose members all
    went silent still expire without waiting for another group request.

    A single node polls its coordinator if one is loaded (nothing creates
    ``__consumer_offsets`` for this). In cluster mode every partition led here is loaded
    first: Kafka loads a partition's groups when the broker becomes its leader
    (GroupCoordinator.onElection) and schedules their members' session expiry from then,
    so the groups of a coordinator that died expire on its successor even if none of
    their members ever comes back to ask."""
    found = loaded_coordinators(broker) if broker.cluster is None else load_led(broker)
    for gc in found:
        gc.poll()


def on_topics_deleted(broker: BrokerState, topics: list[str]) -> None:
    """Call after DeleteTopics: committed offsets of those topics are dropped (Kafka does
    this when partitions are deleted), so a re-created topic starts from the reset policy."""
    if not loaded_coordinators(broker) and broker.topics.get(OFFSETS_TOPIC) is None:
        return  # no group ever committed anything: don't create __consumer_offsets for this
    for gc in coordinators(broker):
        gc.delete_topic_offsets(topics)


async def wait_pending(gc: GroupCoordinator, pending: Pending[T], event: trio.Event) -> T:
    """Wait until ``pending`` is decided, firing the machine's timers as they fall due.

    ``event`` must be the one whose ``set`` was given to the machine as ``on_done``. A
    coordinator dropped meanwhile (``drop``) decides it at once (NOT_COORDINATOR) and
    fires no timer any more, so its waiters never act for it.
    """
    while pending.result is None:
        # At least 1 ms: a due timer is fired by poll(), so never spin on one.
        delay_s = max(0.001, (gc.next_deadline_ms() - gc.now_ms()) / 1000.0)
        with trio.move_on_after(delay_s):
            await event.wait()
        gc.poll()
    return pending.result


async def settled(gc: GroupCoordinator, group_id: str, deadline: float) -> None:
    """Wait until the KIP-848 group ``group_id`` has no write in flight (at once, without
    yielding, if it has none), so the caller's change neither sees nor builds on state a
    failed write would undo, or until ``deadline`` (trio time) passes. The caller then
    checks again that this broker still coordinates the group (its partition may have
    moved meanwhile), and whether the group is settled."""
    while (write := gc.consumer_write_in_flight(group_id)) is not None:
        if trio.current_time() >= deadline:
            return
        done = trio.Event()
        write.watch(done.set)
        with trio.move_on_at(deadline):
            await done.wait()
