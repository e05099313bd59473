"""The Trio side of the coordinator: one ``GroupCoordinator`` per broker, and waiting.

The state machine never blocks; this module only waits. There is no
background task: every group request first calls ``poll()`` (so timers that
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
from kbroker.coordinator.group import CoordinatorConfig, GroupCoordinator
from kbroker.coordinator.store import OffsetsTopicStore
from kbroker.internal_topics import OFFSETS_TOPIC

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

__all__ = [
    "coordinator_config",
    "coordinator_for",
    "drop",
    "on_topics_deleted",
    "poll_loaded",
    "settled",
    "wait_pending",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_STATE_KEY = "kbroker.coordinator"


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
        num_partitions=_offsets_partitions(broker),
        consumer_session_timeout_ms=c["group.consumer.session.timeout.ms"],
        consumer_heartbeat_interval_ms=c["group.consumer.heartbeat.interval.ms"],
    )


def _offsets_partitions(broker: BrokerState) -> int:
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


def coordinator_for(broker: BrokerState) -> GroupCoordinator:
    """The broker's coordinator, loaded from ``__consumer_offsets`` on first use; polled."""
    gc = broker.state.get(_STATE_KEY)
    if gc is None:
        store = OffsetsTopicStore(broker)
        gc = GroupCoordinator(config=coordinator_config(broker), clock=broker.clock, store=store)
        # Imported here: the transaction side builds on this module.
        from kbroker.txn.offsets import discard, pending_partitions

        gc.pending_txn_partitions = partial(pending_partitions, broker)
        gc.discard_txn_offsets = partial(discard, broker)
        gc.replay(store.load())
        logger.info("group coordinator loaded %d group(s)", len(gc.group_ids()))
        broker.state[_STATE_KEY] = gc
    gc.poll()
    return gc


def drop(broker: BrokerState) -> bool:
    """Drop the broker's coordinator, if one is loaded (whether one was): the next
    request loads its successor from the logs. The dropped one is unloaded
    (``GroupCoordinator.unload``): whoever still waits in it is answered
    NOT_COORDINATOR, and it writes nothing more."""
    gc: GroupCoordinator | None = broker.state.pop(_STATE_KEY, None)
    if gc is None:
        return False
    gc.unload()
    return True


def poll_loaded(broker: BrokerState) -> None:
    """Fire the group coordinator's due timers (session expiry, rebalance deadlines,
    offsets retention) if it is loaded; for the server's maintenance loop, so groups whose
    members all went silent still expire without waiting for another group request."""
    gc = broker.state.get(_STATE_KEY)
    if gc is not None:
        gc.poll()


def on_topics_deleted(broker: BrokerState, topics: list[str]) -> None:
    """Call after DeleteTopics: committed offsets of those topics are dropped (Kafka does
    this when partitions are deleted), so a re-created topic starts from the reset policy."""
    if _STATE_KEY not in broker.state and broker.topics.get(OFFSETS_TOPIC) is None:
        return  # no group ever committed anything: don't create __consumer_offsets for this
    coordinator_for(broker).delete_topic_offsets(topics)


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
