"""The partitions this broker hosts and whether it leads them: Kafka's ``ReplicaManager``
as far as leadership goes (replication itself is ``kbroker.replication``).

The controller decides; LeaderAndIsr tells this broker "lead these, follow those"
and StopReplica "stop hosting that (and delete it)". ``ReplicaManager`` applies
them to the local ``TopicManager`` (a hosted partition has a local log, created on
first LeaderAndIsr with the topic id the controller gives) and keeps, per
partition, the leader, leader epoch, replicas and ISR of the last accepted
request. The request handlers ask it whether this broker leads a partition
(``is_leader``) and at which epoch (``leader_epoch``).

Listeners registered with ``on_leadership_change`` hear every partition this broker
starts or stops leading: the coordinators use it to load and unload the groups /
transactions of ``__consumer_offsets`` / ``__transaction_state`` partitions.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.replication.partition import ISR_CHANGE_PENDING, ReplicatedPartition
from kbroker.topics import INTERNAL_TOPICS
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import BrokerState
    from kbroker.replication.fetcher import ReplicaFetcherManager

__all__ = ["LeaderAndIsrPartition", "ReplicaManager", "ReplicaState"]

logger = logging.getLogger(__name__)

LeadershipListener = Callable[[str, int, bool], None]
# (topic, index, new ISR): persist it, then call ReplicaManager.isr_change_done.
IsrWriter = Callable[[str, int, tuple[int, ...]], None]
ConfigSource = Callable[[str], Awaitable[dict[str, str]]]


@dataclass(frozen=True, slots=True)
class LeaderAndIsrPartition:
    """One partition of a LeaderAndIsr request, independent of its version."""

    topic: str
    topic_id: uuid.UUID
    index: int
    controller_epoch: int
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]
    is_new: bool = False
    partition_epoch: int = 0  # the state znode's version (Kafka's partitionEpoch / zkVersion)


@dataclass(slots=True)
class ReplicaState:
    """What this broker knows of one partition it hosts."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]
    controller_epoch: int = 0
    zk_version: int = 0

    def led_by(self, broker_id: int) -> bool:
        """Whether ``broker_id`` leads it."""
        return self.leader == broker_id


class ReplicaManager:
    """Hosted partitions, their leadership, and the controller epoch seen so far."""

    def __init__(
        self,
        broker: BrokerState,
        *,
        config_source: ConfigSource | None = None,
        partition_count: Callable[[str], int] | None = None,
    ) -> None:
        self.broker = broker
        self.broker_id = broker.node_id
        self.controller_epoch = -1
        self.states: dict[tuple[str, int], ReplicaState] = {}
        self._config_source = config_source
        self.partition_count = partition_count
        # Replication (kbroker.replication), set by ClusterNode.run: the follower fetchers,
        # where a broker is reached, and how an ISR change reaches ZooKeeper.
        self.fetchers: ReplicaFetcherManager | None = None
        self.endpoint_of: Callable[[int], tuple[str, int] | None] = lambda _: None
        self.isr_writer: IsrWriter | None = None
        self._listeners: list[LeadershipListener] = []

    # --- questions from request handlers ----------------------------------------------

    def is_leader(self, topic: str, index: int) -> bool:
        """Whether this broker currently leads ``topic``-``index``."""
        state = self.states.get((topic, index))
        return state is not None and state.leader == self.broker_id

    def leader_epoch(self, topic: str, index: int) -> int | None:
        """The leader epoch of a hosted partition, None if not hosted."""
        state = self.states.get((topic, index))
        return None if state is None else state.leader_epoch

    def led_partitions(self, topic: str) -> list[int]:
        """Indexes of ``topic``'s partitions this broker leads."""
        return sorted(
            i for (t, i), s in self.states.items() if t == topic and s.led_by(self.broker_id)
        )

    def on_leadership_change(self, listener: LeadershipListener) -> None:
        """Call ``listener(topic, index, leads)`` whenever leadership of a hosted
        internal-topic partition moves to or away from this broker."""
        self._listeners.append(listener)

    # --- LeaderAndIsr / StopReplica ---------------------------------------------------

    def check_controller_epoch(self, controller_epoch: int) -> bool:
        """Kafka's ReplicaManager: a request from an older controller is refused
        (STALE_CONTROLLER_EPOCH); a newer epoch is remembered."""
        if controller_epoch < self.controller_epoch:
            return False
        self.controller_epoch = controller_epoch
        return True

    async def become_leader_or_follower(
        self, partitions: list[LeaderAndIsrPartition]
    ) -> dict[tuple[str, int], ErrorCode]:
        """Apply the partitions of one LeaderAndIsr request; the error of each.

        As ReplicaManager.becomeLeaderOrFollower: a partition state whose leader epoch
        is older than the one applied is refused with STALE_CONTROLLER_EPOCH; an equal
        or newer one is applied (creating the local log if needed).
        """
        errors: dict[tuple[str, int], ErrorCode] = {}
        by_topic: dict[str, list[LeaderAndIsrPartition]] = {}
        for p in partitions:
            current = self.states.get((p.topic, p.index))
            if current is not None and p.leader_epoch < current.leader_epoch:
                logger.info(
                    "ignoring LeaderAndIsr for %s-%d: leader epoch %d is older than %d",
                    p.topic,
                    p.index,
                    p.leader_epoch,
                    current.leader_epoch,
                )
                errors[(p.topic, p.index)] = ErrorCode.STALE_CONTROLLER_EPOCH
                continue
            if self.broker_id not in p.replicas:
                errors[(p.topic, p.index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            if (
                current is not None
                and p.leader_epoch == current.leader_epoch
                and p.partition_epoch < current.zk_version
            ):
                # The same epoch as read before this leader's own ISR write (Kafka's
                # Partition.makeLeader skips an older partition epoch): applying it would
                # restore the old ISR and a version every later conditional write fails on.
                logger.info(
                    "skipping LeaderAndIsr for %s-%d: partition epoch %d is older than %d",
                    p.topic,
                    p.index,
                    p.partition_epoch,
                    current.zk_version,
                )
                errors[(p.topic, p.index)] = ErrorCode.NONE
                continue
            by_topic.setdefault(p.topic, []).append(p)
        for topic, parts in by_topic.items():
            # The local copy gets the cluster's partition count when the metadata cache
            # knows it (partition indexes stay those of the cluster; unhosted ones stay empty).
            count = max(p.index for p in parts) + 1
            if self.partition_count is not None:
                count = max(count, self.partition_count(topic))
            try:
                await self._ensure_local(topic, parts[0].topic_id, count)
            except Exception:
                logger.exception("cannot create the local log of %s", topic)
                for p in parts:
                    errors[(p.topic, p.index)] = ErrorCode.KAFKA_STORAGE_ERROR
                continue
            for p in parts:
                self._apply(p)
                errors[(p.topic, p.index)] = ErrorCode.NONE
        return errors

    def _apply(self, p: LeaderAndIsrPartition) -> None:
        key = (p.topic, p.index)
        previous = self.states.get(key)
        was_leader = previous is not None and previous.leader == self.broker_id
        self.states[key] = ReplicaState(
            p.leader, p.leader_epoch, p.isr, p.replicas, p.controller_epoch, p.partition_epoch
        )
        leads = p.leader == self.broker_id
        if self.fetchers is not None:
            self._replicate(p, leads)
        if leads != was_leader or previous is None:
            logger.info(
                "%s %s-%d at leader epoch %d (replicas %s, isr %s)",
                "leading" if leads else f"following {p.leader} for",
                p.topic,
                p.index,
                p.leader_epoch,
                list(p.replicas),
                list(p.isr),
            )
        if leads != was_leader:
            self._tell(p.topic, p.index, leads)

    def _replicate(self, p: LeaderAndIsrPartition, leads: bool) -> None:
        """Kafka's makeLeader / makeFollower: the partition's replication state, and the
        fetcher copying it from its leader (followers) or not (leader)."""
        assert self.fetchers is not None
        partition = self.broker.topics.partition(p.topic, p.index)
        if partition is None:
            return
        replica = partition.replica
        if replica is None:
            config = self.broker.config
            replica = ReplicatedPartition(
                partition.log,
                broker_id=self.broker_id,
                replica_lag_time_max_ms=int(config["replica.lag.time.max.ms"]),
                min_insync_replicas=int(config["min.insync.replicas"]),
                on_isr_change=functools.partial(self._isr_changed, p.topic, p.index),
                on_high_watermark_change=functools.partial(self.broker.notify_append, partition),
            )
            partition.replica = replica
        key = (p.topic, p.index)
        if leads:
            self.fetchers.remove_fetcher_for_partitions([key])
            replica.make_leader(leader_epoch=p.leader_epoch, isr=p.isr, replicas=p.replicas)
            # Fetches parked on the old epoch answer FENCED_LEADER_EPOCH now, not at max_wait.
            self.broker.notify_append(partition)
            return
        replica.make_follower(
            leader_id=p.leader, leader_epoch=p.leader_epoch, isr=p.isr, replicas=p.replicas
        )
        # ReplicaManager.makeFollowers' completeDelayedFetchOrProduceRequests: fetches
        # parked here while this broker led answer NOT_LEADER_OR_FOLLOWER at once.
        self.broker.notify_append(partition)
        address = self.endpoint_of(p.leader)
        if p.leader < 0 or address is None:
            self.fetchers.remove_fetcher_for_partitions([key])
            return
        self.fetchers.add_fetcher_for_partitions([(partition, p.leader, address, p.leader_epoch)])

    def _isr_changed(self, topic: str, index: int, isr: list[int]) -> bool | str | None:
        """The leader expanded or shrank the ISR: record it in the partition's state znode
        (conditional on its version) and notify the controller (ZK-mode Partition.updateIsr).

        The change stays pending until ZooKeeper took it (``isr_change_done``): as in Kafka,
        a leader never acts on an ISR the controller may not know of (KIP-497).
        """
        state = self.states.get((topic, index))
        if state is None or self.isr_writer is None:
            return None
        self.isr_writer(topic, index, tuple(isr))
        return ISR_CHANGE_PENDING

    def isr_change_done(
        self, topic: str, index: int, isr: tuple[int, ...], zk_version: int | None
    ) -> None:
        """The ISR write finished: ``zk_version`` is the state znode's new version, None
        when ZooKeeper refused it (the controller changed the state meanwhile)."""
        state = self.states.get((topic, index))
        # A LeaderAndIsr applied meanwhile carries a newer version: it wins.
        if state is not None and zk_version is not None and zk_version > state.zk_version:
            state.isr = isr
            state.zk_version = zk_version
        partition = self.broker.topics.partition(topic, index)
        if partition is not None and partition.replica is not None:
            partition.replica.complete_isr_change(isr, zk_version is not None)

    def shrink_isrs(self) -> None:
        """Drop followers that stopped keeping up from the ISR of every partition led here
        (Kafka's isr-expiration task)."""
        for (topic, index), state in list(self.states.items()):
            if state.leader != self.broker_id:
                continue
            partition = self.broker.topics.partition(topic, index)
            if partition is not None and partition.replica is not None:
                partition.replica.maybe_shrink_isr()

    def _tell(self, topic: str, index: int, leads: bool) -> None:
        if topic not in INTERNAL_TOPICS:
            return
        for listener in self._listeners:
            try:
                listener(topic, index, leads)
            except Exception:
                logger.exception("leadership listener failed for %s-%d", topic, index)

    async def _ensure_local(self, topic: str, topic_id: uuid.UUID, count: int) -> None:
        topics = self.broker.topics
        local = topics.get(topic)
        if local is not None and topic_id.int and local.topic_id != topic_id:
            # Deleted and re-created while this broker was away: ZooKeeper is the truth.
            logger.warning(
                "local topic %s has another topic id than the controller's: replacing it", topic
            )
            self._forget_topic(topic)
            topics.delete_local(topic)
            local = None
        if local is None:
            configs = await self._config_source(topic) if self._config_source else {}
            known_id = topic_id if topic_id.int else None
            if topic in INTERNAL_TOPICS:
                # The coordinators create these on first use and expect them whole.
                topics.adopt(topic, known_id, count, configs)
            else:
                # Thousands of partitions take seconds to open: a slice at a time, the
                # topic invisible until whole, other connections served in between.
                await topics.adopt_async(topic, known_id, count, configs)
        elif len(local.partitions) < count:
            topics.add_partitions(topic, count)

    def stop_replica(self, topic: str, index: int, *, delete: bool) -> ErrorCode:
        """Stop hosting ``topic``-``index``; with ``delete`` its log goes when the topic
        has no hosted partition left."""
        state = self.states.pop((topic, index), None)
        if state is not None and state.leader == self.broker_id:
            self._tell(topic, index, False)
        if self.fetchers is not None:
            self.fetchers.remove_fetcher_for_partitions([(topic, index)])
        if delete and not any(t == topic for t, _ in self.states):
            if self.broker.topics.get(topic) is not None:
                try:
                    self.broker.topics.delete_local(topic)
                except Exception:
                    logger.exception("cannot delete the local log of %s", topic)
                    return ErrorCode.KAFKA_STORAGE_ERROR
        elif delete:
            # Other partitions of the topic stay here (a reassignment moved this one away).
            try:
                self.broker.topics.wipe_partition(topic, index)
            except Exception:
                logger.exception("cannot delete the local log of %s-%d", topic, index)
                return ErrorCode.KAFKA_STORAGE_ERROR
        return ErrorCode.NONE

    def _forget_topic(self, topic: str) -> None:
        for key in [k for k in self.states if k[0] == topic]:
            state = self.states.pop(key)
            if state.leader == self.broker_id:
                self._tell(topic, key[1], False)
