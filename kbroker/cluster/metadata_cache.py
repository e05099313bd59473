"""What every broker knows of the whole cluster: Kafka's ``ZkMetadataCache``.

The controller sends each broker UpdateMetadata with the live brokers and the
state of every partition (leader, leader epoch, replicas, ISR, offline
replicas); the broker keeps the latest and answers Metadata, DescribeCluster
and FindCoordinator from it. Nothing here does I/O: the UpdateMetadata handler
calls ``apply_update_metadata`` and waiters (admin requests waiting for their
topic to appear, as Kafka's DelayedCreatePartitions) are woken on every change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from kbroker.wire.classes import ZERO_UUID

__all__ = ["BrokerInfo", "MetadataCache", "PartitionInfo", "TopicInfo", "LEADER_DURING_DELETE"]

# LeaderAndIsr.LeaderDuringDelete: the controller marks a partition of a topic being
# deleted with this leader; the cache drops it (ZkMetadataCache.updateMetadata).
LEADER_DURING_DELETE = -2
NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A live broker: id, its inter-broker endpoint, rack, and every listener's endpoint."""

    broker_id: int
    host: str
    port: int
    rack: str | None = None
    # listener name -> (host, port); empty when the controller sent no listener names
    # (UpdateMetadata v0), and then host/port serve every client.
    listeners: Mapping[str, tuple[str, int]] = field(default_factory=dict)

    def endpoint_for(self, listener: str | None) -> tuple[str, int] | None:
        """Where clients of ``listener`` reach this broker; None if it has no such
        listener (Kafka leaves such a broker out of the answer)."""
        if not self.listeners or listener is None:
            return self.host, self.port
        return self.listeners.get(listener)


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition's state as the controller last described it."""

    topic: str
    index: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...] = ()
    controller_epoch: int = 0
    zk_version: int = 0


@dataclass(slots=True)
class TopicInfo:
    """A topic: its id and partitions by index."""

    name: str
    topic_id: uuid.UUID
    partitions: dict[int, PartitionInfo] = field(default_factory=dict)


class MetadataCache:
    """Live brokers, controller and partition states, replaced by UpdateMetadata."""

    def __init__(self) -> None:
        self.brokers: dict[int, BrokerInfo] = {}
        # The listener whose endpoints host/port of each BrokerInfo are (inter-broker).
        self.inter_broker_listener = "PLAINTEXT"
        self.controller_id: int = NO_LEADER
        self.controller_epoch: int = -1
        self.topics: dict[str, TopicInfo] = {}
        self._by_id: dict[uuid.UUID, TopicInfo] = {}
        self._changed = trio.Event()

    # --- reading -------------------------------------------------------------------------

    def topic(self, name: str) -> TopicInfo | None:
        """The topic called ``name``, or None."""
        return self.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        """The topic with this id, or None."""
        return self._by_id.get(topic_id)

    def partition(self, topic: str, index: int) -> PartitionInfo | None:
        """The state of ``topic``-``index``, or None when unknown."""
        info = self.topics.get(topic)
        return None if info is None else info.partitions.get(index)

    def leader_of(self, topic: str, index: int) -> int | None:
        """The leader's id; None when the partition is unknown or has no live leader."""
        state = self.partition(topic, index)
        if state is None or state.leader < 0 or state.leader not in self.brokers:
            return None
        return state.leader

    def live_broker_ids(self) -> list[int]:
        """Ids of the live brokers, sorted."""
        return sorted(self.brokers)

    def broker_racks(self) -> list[tuple[int, str | None]]:
        """(id, rack) of each live broker, as replica placement takes them."""
        return [(b, self.brokers[b].rack) for b in sorted(self.brokers)]

    # --- writing -------------------------------------------------------------------------

    def set_brokers(self, brokers: Iterable[BrokerInfo]) -> None:
        """Replace the live brokers."""
        self.brokers = {b.broker_id: b for b in brokers}
        self._notify()

    def set_controller(self, controller_id: int, controller_epoch: int = -1) -> None:
        """Record the controller."""
        self.controller_id = controller_id
        if controller_epoch >= 0:
            self.controller_epoch = controller_epoch
        self._notify()

    def update_partitions(
        self, states: Iterable[PartitionInfo], topic_ids: dict[str, uuid.UUID] | None = None
    ) -> list[str]:
        """Add or replace partition states; a LEADER_DURING_DELETE state removes its partition
        (and the topic with its last partition). The topics so removed."""
        ids = topic_ids or {}
        deleted: list[str] = []
        for state in states:
            info = self.topics.get(state.topic)
            if state.leader == LEADER_DURING_DELETE:
                if info is not None:
                    info.partitions.pop(state.index, None)
                    if not info.partitions:
                        self._remove_topic(info)
                        deleted.append(info.name)
                continue
            topic_id = ids.get(state.topic, ZERO_UUID)
            if info is None:
                info = TopicInfo(state.topic, topic_id)
                self.topics[state.topic] = info
            elif topic_id != ZERO_UUID and info.topic_id != topic_id:
                # Deleted and re-created under the same name: the old partitions are gone.
                self._remove_topic(info)
                info = TopicInfo(state.topic, topic_id)
                self.topics[state.topic] = info
            if info.topic_id == ZERO_UUID and topic_id != ZERO_UUID:
                info.topic_id = topic_id
            if info.topic_id != ZERO_UUID:
                self._by_id[info.topic_id] = info
            info.partitions[state.index] = state
        self._notify()
        return deleted

    def remove_topic(self, name: str) -> None:
        """Forget a topic entirely."""
        info = self.topics.get(name)
        if info is not None:
            self._remove_topic(info)
            self._notify()

    def _remove_topic(self, info: TopicInfo) -> None:
        self.topics.pop(info.name, None)
        if self._by_id.get(info.topic_id) is info:
            del self._by_id[info.topic_id]

    def apply_update_metadata(self, request: Any, version: int) -> list[str]:
        """Apply an UpdateMetadata request (any version the codec decodes); the topics it
        deleted (their last partitions' states LEADER_DURING_DELETE)."""
        brokers = []
        for live in request.live_brokers:
            endpoints = list(getattr(live, "endpoints", None) or [])
            listeners = {
                e.listener: (e.host, e.port) for e in endpoints if getattr(e, "listener", None)
            }
            if endpoints:
                first = (endpoints[0].host, endpoints[0].port)
                host, port = listeners.get(self.inter_broker_listener, first)
            else:  # v0 carried one host/port per broker
                host, port = getattr(live, "v0_host", ""), getattr(live, "v0_port", -1)
            brokers.append(BrokerInfo(live.id, host, port, getattr(live, "rack", None), listeners))
        self.brokers = {b.broker_id: b for b in brokers}
        self.controller_id = request.controller_id
        self.controller_epoch = request.controller_epoch
        states: list[PartitionInfo] = []
        topic_ids: dict[str, uuid.UUID] = {}
        if version >= 5:
            for topic_state in request.topic_states:
                topic_id = getattr(topic_state, "topic_id", None)
                if topic_id is not None and topic_id != ZERO_UUID:
                    topic_ids[topic_state.topic_name] = topic_id
                for p in topic_state.partition_states:
                    states.append(_partition_info(topic_state.topic_name, p))
        else:
            for p in request.ungrouped_partition_states:
                states.append(_partition_info(p.topic_name, p))
        return self.update_partitions(states, topic_ids)

    # --- waiting -------------------------------------------------------------------------

    def _notify(self) -> None:
        event, self._changed = self._changed, trio.Event()
        event.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``predicate()`` holds after some update (True) or ``timeout_s`` (False)."""
        with trio.move_on_after(max(0.0, timeout_s)):
            while not predicate():
                await self._changed.wait()
            return True
        return predicate()


def _partition_info(topic: str, p: Any) -> PartitionInfo:
    return PartitionInfo(
        topic=topic,
        index=p.partition_index,
        leader=p.leader,
        leader_epoch=p.leader_epoch,
        replicas=tuple(p.replicas),
        isr=tuple(p.isr),
        offline_replicas=tuple(getattr(p, "offline_replicas", None) or ()),
        controller_epoch=p.controller_epoch,
        zk_version=getattr(p, "zk_version", 0),
    )
