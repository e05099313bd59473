"""The controller (Kafka's ZooKeeper-mode KafkaController).

Every broker runs one ``Controller``. It campaigns for the ephemeral ``/controller``
znode; the winner bumps ``/controller_epoch`` in the same multi-op and, while it holds
the znode, is the cluster's controller: it watches the broker registrations, the
topics, deletion marks, ISR change notifications and preferred election requests,
elects partition leaders and tells the brokers with Kafka's own requests
(LeaderAndIsr, UpdateMetadata, StopReplica) through ``channel.py``.

Split as in the house style: ``ControllerCore`` is a synchronous state machine (what the
controller knows, and for an event, which partition states to write and which
requests to send); ``Controller`` is the thin async loop around it: one event queue,
events handled one at a time (Kafka's ControllerEventManager), ZooKeeper I/O, timers.

Every write of partition state is fenced: a multi-op that first checks the version of
``/controller_epoch`` the controller itself wrote, so a deposed ("zombie") controller's
writes fail (KafkaZkClient's ``checkedEphemeralCreate``/``expectedControllerEpochZkVersion``).
On such a failure, on a lost ZooKeeper session or any other ZooKeeper error while
active, the controller resigns at once and campaigns again when it can: the new term
re-reads everything from ZooKeeper, which is the source of truth.
"""

from __future__ import annotations

import enum
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import trio

from kbroker.cluster import znodes
from kbroker.cluster.channel import Connector, ControllerChannel
from kbroker.cluster.reassignment import dead_replicas, invalid_replica_list
from kbroker.cluster.zk import (
    BadVersion,
    CheckOp,
    CreateOp,
    DeleteOp,
    NodeExists,
    NoNode,
    SessionState,
    SetOp,
    ZkClient,
    ZkError,
)
from kbroker.cluster.znodes import BrokerRegistration, PartitionState, TopicAssignment
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import LeaderAndIsrRequest, StopReplicaRequest, UpdateMetadataRequest

__all__ = [
    "PREFERRED",
    "UNCLEAN",
    "Controller",
    "ControllerCore",
    "ControllerMoved",
    "Election",
    "LiveBroker",
]

log = logging.getLogger(__name__)

TP = tuple[str, int]

LEADER_AND_ISR = 4
STOP_REPLICA = 5
UPDATE_METADATA = 6

# ElectLeaders election types (KIP-460)
PREFERRED = 0
UNCLEAN = 1

NO_LEADER = -1  # LeaderAndIsr.NoLeader
LEADER_DURING_DELETE = -2  # LeaderAndIsr.LeaderDuringDelete: tells brokers to forget it
EPOCH_DURING_DELETE = -2  # LeaderAndIsr.EpochDuringDelete, in StopReplica with delete

_SECURITY_PROTOCOL_IDS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}


class ControllerMoved(Exception):
    """A fenced write failed: another broker is the controller now (Kafka's
    ControllerMovedException). The controller resigns."""


class Election(enum.Enum):
    """Why a partition's leader and ISR are being decided (Kafka's PartitionLeaderElectionStrategy,
    plus the new-partition and replica-removal transitions of its state machines)."""

    NEW = "new"  # NewPartition -> OnlinePartition: first live replica, ISR = live replicas
    OFFLINE = "offline"  # replicas went away: new leader from the live ISR, ISR shrinks
    UNCLEAN = "unclean"  # ElectLeaders UNCLEAN: like OFFLINE, unclean allowed
    PREFERRED = "preferred"  # back to the first replica of the assignment
    CONTROLLED_SHUTDOWN = "controlled_shutdown"  # away from brokers shutting down
    # Reassignment (KIP-455): a new leader epoch with the same leader and ISR, so every
    # replica of the new replica set learns it (updateLeaderEpochAndSendRequest) ...
    EPOCH_BUMP = "epoch_bump"
    # ... a leader from the target replicas in the ISR (ReassignPartitionLeaderElectionStrategy)
    REASSIGN = "reassign"
    # ... and the removed replicas out of the ISR (OfflineReplica's removeReplicasFromIsr)
    SHRINK_TO_REPLICAS = "shrink_to_replicas"


@dataclass(frozen=True, slots=True)
class LiveBroker:
    registration: BrokerRegistration
    epoch: int  # czxid of /brokers/ids/<id>: Kafka's broker epoch

    @property
    def id(self) -> int:
        return self.registration.broker_id


@dataclass(slots=True)
class Change:
    """A partition state the core wants written (``old`` None: the znode is created)."""

    tp: TP
    old: PartitionState | None
    new: PartitionState


def _config(config: Any, name: str, default: Any) -> Any:
    if config is None:
        return default
    try:
        value = config[name]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


# --- the synchronous core ---------------------------------------------------------------


class _ControlHeader(TypedDict):
    """The fields every controller-to-broker request starts with (AbstractControlRequest)."""

    controller_id: int
    controller_epoch: int
    broker_epoch: int


@dataclass
class ControllerCore:
    """What the active controller knows, and the decisions it makes. No I/O."""

    broker_id: int
    epoch: int
    unclean_leader_election: bool = False
    # The listener brokers reach each other on (every broker of a cluster names it alike).
    inter_broker_listener: str = "PLAINTEXT"
    live: dict[int, LiveBroker] = field(default_factory=dict)
    topics: dict[str, TopicAssignment] = field(default_factory=dict)
    states: dict[TP, PartitionState] = field(default_factory=dict)
    deleting: set[str] = field(default_factory=set)
    shutting_down: set[int] = field(default_factory=set)

    # --- queries ------------------------------------------------------------------------

    def replicas(self, tp: TP) -> tuple[int, ...]:
        assignment = self.topics.get(tp[0])
        if assignment is None:
            return ()
        return tuple(assignment.partitions.get(tp[1], ()))

    def all_partitions(self) -> list[TP]:
        return sorted((t, p) for t, a in self.topics.items() for p in a.partitions)

    def partitions_of(self, topic: str) -> list[TP]:
        a = self.topics.get(topic)
        return [] if a is None else sorted((topic, p) for p in a.partitions)

    def partitions_on(self, broker_id: int) -> list[TP]:
        return [tp for tp in self.all_partitions() if broker_id in self.replicas(tp)]

    def is_live(self, broker_id: int) -> bool:
        return broker_id in self.live

    def _eligible(self, broker_id: int) -> bool:
        return broker_id in self.live and broker_id not in self.shutting_down

    def new_partitions(self) -> list[TP]:
        """Partitions with an assignment but no state yet (not started, e.g. no replica
        was live when the topic was created)."""
        return [
            tp
            for tp in self.all_partitions()
            if tp not in self.states and tp[0] not in self.deleting
        ]

    def offline_partitions(self) -> list[TP]:
        """Partitions whose leader is gone, or whose ISR names a broker that is gone."""
        out = []
        for tp, s in sorted(self.states.items()):
            if tp[0] in self.deleting:
                continue
            if not self.is_live(s.leader) or any(not self.is_live(b) for b in s.isr):
                out.append(tp)
        return out

    # --- decisions ----------------------------------------------------------------------

    def decide(self, tp: TP, kind: Election) -> tuple[PartitionState | None, ErrorCode, str | None]:
        """The new state of ``tp`` for this election, from the current one: (state to
        write or None for no change, error code, message)."""
        replicas = self.replicas(tp)
        if not replicas or tp[0] in self.deleting:
            return None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None
        old = self.states.get(tp)
        if kind is Election.NEW:
            if old is not None:
                return None, ErrorCode.NONE, None
            live = [b for b in replicas if self.is_live(b)]
            if not live:
                return None, ErrorCode.NONE, "no live replica yet"
            return (
                PartitionState(
                    leader=live[0], leader_epoch=0, isr=tuple(live), controller_epoch=self.epoch
                ),
                ErrorCode.NONE,
                None,
            )
        if old is None:
            return None, ErrorCode.LEADER_NOT_AVAILABLE, "partition has no state yet"
        if kind is Election.PREFERRED:
            preferred = replicas[0]
            if old.leader == preferred:
                return None, ErrorCode.ELECTION_NOT_NEEDED, None
            if not (self._eligible(preferred) and preferred in old.isr):
                return (
                    None,
                    ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
                    f"Failed to elect leader for partition {tp[0]}-{tp[1]} under strategy "
                    "PreferredReplicaPartitionLeaderElectionStrategy",
                )
            return self._with(old, preferred, old.isr), ErrorCode.NONE, None
        if kind is Election.CONTROLLED_SHUTDOWN:
            isr = tuple(b for b in old.isr if self._eligible(b))
            if old.leader in self.shutting_down:
                candidates = [b for b in replicas if b in isr]
                if not candidates:
                    return None, ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, None
                return self._with(old, candidates[0], isr), ErrorCode.NONE, None
            if isr != old.isr and isr:
                return self._with(old, old.leader, isr), ErrorCode.NONE, None
            return None, ErrorCode.NONE, None
        if kind is Election.EPOCH_BUMP:
            return self._with(old, old.leader, old.isr), ErrorCode.NONE, None
        if kind is Election.REASSIGN:
            if old.leader in replicas and self.is_live(old.leader):
                return self._with(old, old.leader, old.isr), ErrorCode.NONE, None
            candidates = [b for b in replicas if b in old.isr and self.is_live(b)]
            if not candidates:
                return None, ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, None
            return self._with(old, candidates[0], old.isr), ErrorCode.NONE, None
        if kind is Election.SHRINK_TO_REPLICAS:
            isr = tuple(b for b in old.isr if b in replicas)
            if isr == old.isr:
                return None, ErrorCode.NONE, None
            leader = old.leader if old.leader in isr else NO_LEADER
            return self._with(old, leader, isr or old.isr[:1]), ErrorCode.NONE, None
        # OFFLINE / UNCLEAN
        live_isr = tuple(b for b in old.isr if self.is_live(b))
        if self._eligible(old.leader):
            if kind is Election.UNCLEAN:
                return None, ErrorCode.ELECTION_NOT_NEEDED, None
            if live_isr == old.isr:
                return None, ErrorCode.NONE, None
            return self._with(old, old.leader, live_isr), ErrorCode.NONE, None
        clean = [b for b in replicas if b in live_isr and self._eligible(b)]
        if clean:
            return self._with(old, clean[0], live_isr), ErrorCode.NONE, None
        if kind is Election.UNCLEAN or self.unclean_leader_election:
            # Unclean: any live replica, even one that may have missed records.
            dirty = [b for b in replicas if self._eligible(b)]
            if dirty:
                return self._with(old, dirty[0], (dirty[0],)), ErrorCode.NONE, None
        # No leader possible. ZooKeeper-mode Kafka (removeReplicasFromIsr) then writes
        # NoLeader and keeps the last ISR member, so that broker can lead again cleanly
        # when it returns.
        isr = live_isr or ((old.leader,) if old.leader in old.isr else old.isr[:1])
        if old.leader == NO_LEADER and isr == old.isr:
            return None, ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, None
        return self._with(old, NO_LEADER, isr), ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, None

    def _with(self, old: PartitionState, leader: int, isr: tuple[int, ...]) -> PartitionState:
        # Every change of leader or ISR by the controller bumps the leader epoch
        # (LeaderAndIsr.newLeaderAndIsr), so replicas can fence stale leaders.
        return PartitionState(
            leader=leader,
            leader_epoch=old.leader_epoch + 1,
            isr=isr,
            controller_epoch=self.epoch,
            zk_version=old.zk_version,
        )

    def plan(
        self, tps: Iterable[TP], kind: Election
    ) -> tuple[list[Change], dict[TP, tuple[ErrorCode, str | None]]]:
        """Decide every partition: the changes to write, and each partition's outcome
        (for partitions changed with an error, e.g. NoLeader written, the error stays)."""
        changes: list[Change] = []
        outcome: dict[TP, tuple[ErrorCode, str | None]] = {}
        for tp in tps:
            new, code, message = self.decide(tp, kind)
            outcome[tp] = (code, message)
            if new is not None:
                changes.append(Change(tp, self.states.get(tp), new))
        return changes, outcome

    def applied(self, tp: TP, state: PartitionState) -> None:
        self.states[tp] = state

    def forget_topic(self, topic: str) -> None:
        self.topics.pop(topic, None)
        self.deleting.discard(topic)
        for tp in [tp for tp in self.states if tp[0] == topic]:
            del self.states[tp]

    def imbalanced(self, percentage: int) -> list[TP]:
        """Kafka's checkAndTriggerAutoLeaderRebalance: for each live broker, the share of
        the partitions it is preferred leader of that it does not lead; above
        ``percentage``, those partitions (whose preferred replica can lead) get a
        preferred election."""
        by_preferred: dict[int, list[TP]] = {}
        for tp in self.all_partitions():
            replicas = self.replicas(tp)
            if replicas and tp[0] not in self.deleting and tp in self.states:
                by_preferred.setdefault(replicas[0], []).append(tp)
        out: list[TP] = []
        for broker, tps in sorted(by_preferred.items()):
            if not self._eligible(broker):
                continue
            not_led = [tp for tp in tps if self.states[tp].leader != broker]
            if not tps or len(not_led) * 100 / len(tps) <= percentage:
                continue
            out.extend(tp for tp in not_led if broker in self.states[tp].isr)
        return out

    # --- partition reassignment (KIP-455) ------------------------------------------------
    #
    # Kafka's ReplicaAssignment: while a partition moves, its replica set RS is the target
    # replicas TRS followed by the original ones ORS not in TRS; AR = TRS - ORS are being
    # added and RR = ORS - TRS removed. All three live in /brokers/topics/<t> (version 3),
    # the only place ORS is kept, so a new controller resumes from there.

    def adding(self, tp: TP) -> tuple[int, ...]:
        a = self.topics.get(tp[0])
        return () if a is None else tuple(a.adding_replicas.get(tp[1], ()))

    def removing(self, tp: TP) -> tuple[int, ...]:
        a = self.topics.get(tp[0])
        return () if a is None else tuple(a.removing_replicas.get(tp[1], ()))

    def is_reassigning(self, tp: TP) -> bool:
        return bool(self.adding(tp) or self.removing(tp))

    def reassigning_partitions(self) -> list[TP]:
        return [tp for tp in self.all_partitions() if self.is_reassigning(tp)]

    def origin_replicas(self, tp: TP) -> tuple[int, ...]:
        adding = set(self.adding(tp))
        return tuple(b for b in self.replicas(tp) if b not in adding)

    def target_replicas(self, tp: TP) -> tuple[int, ...]:
        removing = set(self.removing(tp))
        return tuple(b for b in self.replicas(tp) if b not in removing)

    def reassign_to(
        self, tp: TP, target: Iterable[int]
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """ReplicaAssignment.reassignTo: (RS, AR, RR) moving ``tp`` to ``target``."""
        target = tuple(target)
        origin = self.origin_replicas(tp)
        full = tuple(dict.fromkeys(target + origin))
        return (
            full,
            tuple(b for b in target if b not in origin),
            tuple(b for b in origin if b not in target),
        )

    def validate_reassignment(self, tp: TP, target: list[int]) -> tuple[ErrorCode, str] | None:
        """KafkaController.validateReplicas: None when ``target`` may be reassigned to."""
        error = invalid_replica_list(target)
        if error is not None:
            return error
        _, adding, _ = self.reassign_to(tp, target)
        if not set(adding) <= set(self.live):
            return dead_replicas(list(adding), sorted(self.live))
        return None

    def reassignment_complete(self, tp: TP) -> bool:
        """Every target replica is in the ISR (isReassignmentComplete)."""
        if not self.is_reassigning(tp):
            return True
        state = self.states.get(tp)
        return state is not None and set(self.target_replicas(tp)) <= set(state.isr)

    def with_assignment(
        self,
        tp: TP,
        replicas: tuple[int, ...],
        adding: tuple[int, ...] = (),
        removing: tuple[int, ...] = (),
    ) -> TopicAssignment:
        """The topic's assignment with ``tp`` set to (RS, AR, RR)."""
        old = self.topics[tp[0]]

        def put(m: Any, value: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
            out = {p: tuple(r) for p, r in m.items() if p != tp[1]}
            if value:
                out[tp[1]] = value
            return out

        return replace(
            old,
            partitions=put(old.partitions, replicas),
            adding_replicas=put(old.adding_replicas, adding),
            removing_replicas=put(old.removing_replicas, removing),
        )

    # --- requests -----------------------------------------------------------------------

    def _endpoint(self, broker_id: int) -> tuple[str, int]:
        b = self.live.get(broker_id)
        if b is None:
            return "", -1
        reg = b.registration
        return reg.endpoint(self.inter_broker_listener) or (reg.host, reg.port)

    def _control_header(self, broker_id: int) -> _ControlHeader:
        """The fields every controller-to-broker request starts with (Kafka's
        AbstractControlRequest): the sender, its controller epoch, and the epoch of the
        target's registration (-1 if it is not live), by which a restarted broker refuses
        a request meant for its previous incarnation (KIP-380)."""
        return {
            "controller_id": self.broker_id,
            "controller_epoch": self.epoch,
            "broker_epoch": self.live[broker_id].epoch if broker_id in self.live else -1,
        }

    def leader_and_isr(
        self, broker_id: int, tps: Iterable[TP], *, full: bool = False, new: Iterable[TP] = ()
    ) -> Callable[[int], Any]:
        """A LeaderAndIsr for ``broker_id`` with the current state of ``tps`` (a snapshot
        taken now), as a function of the negotiated version."""
        header = self._control_header(broker_id)
        fresh = set(new)
        parts = [
            (tp, self.states[tp], self.replicas(tp), tp in fresh)
            for tp in sorted(set(tps))
            if tp in self.states
        ]
        leaders = sorted({s.leader for _, s, _, _ in parts if self.is_live(s.leader)})
        live_leaders = [(b, *self._endpoint(b)) for b in leaders]
        topic_ids = {t: a.topic_id for t, a in self.topics.items()}
        cls = LeaderAndIsrRequest

        def build(version: int) -> Any:
            states = [
                cls.LeaderAndIsrPartitionState(
                    **_partition_state(tp, s, replicas, named=version < 2),
                    partition_epoch=s.zk_version,
                    is_new=is_new,
                )
                for tp, s, replicas, is_new in parts
            ]
            body = cls(
                **header,
                live_leaders=[
                    cls.LeaderAndIsrLiveLeader(broker_id=b, host_name=h, port=p)
                    for b, h, p in live_leaders
                ],
            )
            if version >= 5:
                body.type = 1 if full else 0  # FULL / INCREMENTAL (KIP-516)
            _place_states(
                body,
                version >= 2,
                [p[0] for p in parts],
                states,
                cls.LeaderAndIsrTopicState,
                topic_ids,
            )
            return body

        return build

    def update_metadata(
        self,
        broker_id: int,
        tps: Iterable[TP] | None = None,
        *,
        deleted: Iterable[TP] = (),
    ) -> Callable[[int], Any]:
        """An UpdateMetadata for ``broker_id``: all live brokers, and the state of ``tps``
        (None: every partition); ``deleted`` partitions go with leader -2 so brokers drop them."""
        header = self._control_header(broker_id)
        chosen = self.all_partitions() if tps is None else sorted(set(tps))
        parts: list[tuple[TP, PartitionState, tuple[int, ...]]] = [
            (tp, self.states[tp], self.replicas(tp)) for tp in chosen if tp in self.states
        ]
        for tp in sorted(set(deleted)):
            s = self.states.get(tp)
            parts.append(
                (
                    tp,
                    PartitionState(
                        leader=LEADER_DURING_DELETE,
                        leader_epoch=s.leader_epoch if s else 0,
                        isr=s.isr if s else (),
                        controller_epoch=self.epoch,
                        zk_version=s.zk_version if s else 0,
                    ),
                    self.replicas(tp),
                )
            )
        live = set(self.live)
        brokers = [
            (b.id, self._endpoint(b.id), b.registration) for _, b in sorted(self.live.items())
        ]
        topic_ids = {t: a.topic_id for t, a in self.topics.items()}
        cls = UpdateMetadataRequest

        def build(version: int) -> Any:
            states = [
                cls.UpdateMetadataPartitionState(
                    **_partition_state(tp, s, replicas, named=version < 5),
                    zk_version=s.zk_version,
                    offline_replicas=[b for b in replicas if b not in live],
                )
                for tp, s, replicas in parts
            ]
            live_brokers = []
            for bid, (host, port), reg in brokers:
                b = cls.UpdateMetadataBroker(id=bid, rack=reg.rack)
                if version == 0:
                    b.v0_host, b.v0_port = host, port
                else:
                    b.endpoints = [
                        cls.UpdateMetadataEndpoint(
                            port=p,
                            host=h,
                            listener=name,
                            security_protocol=_SECURITY_PROTOCOL_IDS.get(
                                reg.listener_security_protocol_map.get(name, "PLAINTEXT"), 0
                            ),
                        )
                        for name, h, p in map(znodes.parse_endpoint, reg.endpoints)
                    ]
                live_brokers.append(b)
            body = cls(
                **header,
                live_brokers=live_brokers,
            )
            _place_states(
                body,
                version >= 5,
                [p[0] for p in parts],
                states,
                cls.UpdateMetadataTopicState,
                topic_ids,
            )
            return body

        return build

    def stop_replica(
        self, broker_id: int, tps: Iterable[TP], *, delete: bool
    ) -> Callable[[int], Any]:
        """A StopReplica for ``broker_id``: stop following ``tps``, and delete their logs
        if ``delete`` (one flag per request, so every version can carry it)."""
        header = self._control_header(broker_id)
        chosen = sorted(set(tps))
        epochs = {
            tp: (
                EPOCH_DURING_DELETE
                if delete
                else (self.states[tp].leader_epoch if tp in self.states else -1)
            )
            for tp in chosen
        }
        cls = StopReplicaRequest

        def build(version: int) -> Any:
            body = cls(**header)
            by_topic: dict[str, list[int]] = {}
            for t, p in chosen:
                by_topic.setdefault(t, []).append(p)
            if version == 0:
                body.delete_partitions = delete
                body.ungrouped_partitions = [
                    cls.StopReplicaPartitionV0(topic_name=t, partition_index=p) for t, p in chosen
                ]
            elif version <= 2:
                body.delete_partitions = delete
                body.topics = [
                    cls.StopReplicaTopicV1(name=t, partition_indexes=ps)
                    for t, ps in by_topic.items()
                ]
            else:
                body.topic_states = [
                    cls.StopReplicaTopicState(
                        topic_name=t,
                        partition_states=[
                            cls.StopReplicaPartitionState(
                                partition_index=p,
                                leader_epoch=epochs[(t, p)],
                                delete_partition=delete,
                            )
                            for p in ps
                        ],
                    )
                    for t, ps in by_topic.items()
                ]
            return body

        return build


def _log_error_response(broker_id: int, response: Any) -> None:
    """Kafka's controller does not resend a request a broker refused; it logs it."""
    code = getattr(response, "error_code", 0)
    if code:
        log.warning(
            "broker %d refused %s: %s",
            broker_id,
            type(response).__name__,
            ErrorCode(code).name if code in ErrorCode._value2member_map_ else code,
        )


def _partition_state(
    tp: TP, s: PartitionState, replicas: Iterable[int], *, named: bool
) -> dict[str, Any]:
    """The fields LeaderAndIsr and UpdateMetadata partition states share: Kafka's
    ControllerChannelManager fills both from the same LeaderIsrAndControllerEpoch. ``named``:
    the request version still carries the topic name in each partition (before topic ids)."""
    return {
        "topic_name": tp[0] if named else "",
        "partition_index": tp[1],
        "controller_epoch": s.controller_epoch,
        "leader": s.leader,
        "leader_epoch": s.leader_epoch,
        "isr": list(s.isr),
        "replicas": list(replicas),
    }


def _place_states(
    body: Any,
    grouped: bool,
    tps: list[TP],
    states: list[Any],
    make: Callable[..., Any],
    topic_ids: dict[str, uuid.UUID | None],
) -> None:
    """Put the partition states in ``body``: one flat list in the old versions, grouped per
    topic (``make`` builds one topic entry) in LeaderAndIsr v2+ and UpdateMetadata v5+."""
    if not grouped:
        body.ungrouped_partition_states = states
        return
    by_topic: dict[str, list[Any]] = {}
    for tp, st in zip(tps, states, strict=True):
        by_topic.setdefault(tp[0], []).append(st)
    body.topic_states = [
        make(topic_name=t, topic_id=_uuid(topic_ids.get(t)), partition_states=sts)
        for t, sts in by_topic.items()
    ]


def _uuid(value: uuid.UUID | None) -> uuid.UUID:
    return value if value is not None else uuid.UUID(int=0)


# --- the async controller -------------------------------------------------------------


@dataclass
class _Event:
    kind: str
    payload: Any = None
    generation: int = -1  # the term it belongs to (-1: any); stale ones are dropped
    reply: Any = None  # a one-shot channel for API calls


class Controller:
    """Campaigns for /controller and, while it holds it, runs the cluster."""

    def __init__(
        self,
        zk: ZkClient,
        *,
        broker_id: int,
        config: Any = None,
        clock: Callable[[], float] = time.time,
        connect: Connector | None = None,
    ) -> None:
        self.zk = zk
        self.broker_id = broker_id
        self.config = config
        self.clock = clock
        self._connect = connect
        self.unclean = bool(_config(config, "unclean.leader.election.enable", False))
        self.auto_rebalance = bool(_config(config, "auto.leader.rebalance.enable", True))
        self.rebalance_interval_s = float(
            _config(config, "leader.imbalance.check.interval.seconds", 300)
        )
        self.imbalance_percentage = int(
            _config(config, "leader.imbalance.per.broker.percentage", 10)
        )
        self.session_timeout_s = int(_config(config, "zookeeper.session.timeout.ms", 18000)) / 1000
        self.core: ControllerCore | None = None
        self.epoch = -1  # the controller epoch of our current (or last) term
        self.epoch_zk_version = -1
        self.active_controller_id = -1
        self._generation = 0
        self._send, self._recv = trio.open_memory_channel[_Event](math.inf)
        self._term_scope: trio.CancelScope | None = None
        self._channel: ControllerChannel | None = None
        self._nursery: trio.Nursery | None = None
        self._topic_watches: dict[str, trio.CancelScope] = {}
        self._term_nursery: trio.Nursery | None = None
        # topic -> replicas that have not yet confirmed StopReplica(delete) this term
        self._deletion_pending: dict[str, set[int]] = {}
        self._zk_reassignment_czxid: int | None = None  # the /admin/reassign_partitions acted on
        self.became_active = trio.Event()

    # --- public -----------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.core is not None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            sessions = self.zk.session_events()
            nursery.start_soon(self._forward_sessions, sessions)
            await nursery.start(self._watch_controller)
            task_status.started()
            try:
                await self._event_loop()
            finally:
                self._resign("shutting down")
                nursery.cancel_scope.cancel()

    async def controlled_shutdown(self, broker_id: int, broker_epoch: int = -1) -> list[TP]:
        """Move leadership off ``broker_id`` (it is about to stop); returns the partitions
        it still leads. KafkaApiError(NOT_CONTROLLER / STALE_BROKER_EPOCH / ...)."""
        return await self._call("controlled_shutdown", (broker_id, broker_epoch))  # type: ignore[no-any-return]

    async def elect_leaders(
        self, partitions: Iterable[TP] | None, election_type: int = PREFERRED
    ) -> dict[TP, tuple[int, str | None]]:
        """ElectLeaders (KIP-460): per partition (error code, message). ``None``: all
        partitions, and only those where an election was needed are reported."""
        tps = None if partitions is None else list(partitions)
        return await self._call("elect_leaders", (tps, election_type))  # type: ignore[no-any-return]

    async def alter_partition_reassignments(
        self, reassignments: dict[TP, list[int] | None]
    ) -> dict[TP, tuple[int, str | None]]:
        """AlterPartitionReassignments (KIP-455): per partition (error code, message); a
        ``None`` target cancels that partition's reassignment. Answers once each
        reassignment is started, not finished. KafkaApiError(NOT_CONTROLLER)."""
        return await self._call("alter_reassignments", dict(reassignments))  # type: ignore[no-any-return]

    async def list_partition_reassignments(
        self, partitions: Iterable[TP] | None
    ) -> dict[TP, tuple[list[int], list[int], list[int]]]:
        """ListPartitionReassignments: (replicas, adding, removing) of each partition
        being reassigned among ``partitions`` (None: all). KafkaApiError(NOT_CONTROLLER)."""
        tps = None if partitions is None else list(partitions)
        return await self._call("list_reassignments", tps)  # type: ignore[no-any-return]

    async def _call(self, kind: str, payload: Any) -> Any:
        if not self.is_active:
            raise KafkaApiError(ErrorCode.NOT_CONTROLLER, "This broker is not the controller")
        send, recv = trio.open_memory_channel[Any](1)
        self._send.send_nowait(_Event(kind, payload, self._generation, send))
        async with recv:
            try:
                ok, value = await recv.receive()
            except trio.EndOfChannel:
                raise KafkaApiError(ErrorCode.NOT_CONTROLLER, "controller moved") from None
        if not ok:
            raise value
        return value

    # --- event plumbing -----------------------------------------------------------------

    def _post(self, kind: str, payload: Any = None, generation: int = -1) -> None:
        self._send.send_nowait(_Event(kind, payload, generation))

    async def _forward(self, recv: Any, kind: str, generation: int, extra: Any = None) -> None:
        async with recv:
            async for item in recv:
                self._post(kind, item if extra is None else (extra, item), generation)

    async def _forward_sessions(self, recv: Any) -> None:
        """Session changes. Kafka resigns on session expiry; kazoo reports that (LOST)
        only once reconnected, so a controller cut off for longer than the session
        timeout also resigns then: its session is certainly gone by that time."""
        deadline_scope: trio.CancelScope | None = None
        async with trio.open_nursery() as nursery:
            async for state in recv:
                if deadline_scope is not None:
                    deadline_scope.cancel()
                    deadline_scope = None
                if state == SessionState.SUSPENDED:
                    deadline_scope = trio.CancelScope()
                    nursery.start_soon(self._resign_after_timeout, deadline_scope)
                self._post("session", state)

    async def _resign_after_timeout(self, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(self.session_timeout_s)
            self._post("session", SessionState.LOST)

    async def _watch_controller(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        recv = await self.zk.watch_data(znodes.CONTROLLER)
        task_status.started()
        await self._forward(recv, "controller_znode", -1)

    async def _event_loop(self) -> None:
        async for event in self._recv:
            if event.generation != -1 and event.generation != self._generation:
                if event.reply is not None:
                    event.reply.close()
                continue
            try:
                await self._handle(event)
            except KafkaApiError as exc:
                if event.reply is not None:
                    event.reply.send_nowait((False, exc))
                else:
                    log.warning("controller event %s failed: %s", event.kind, exc)
            except Exception as exc:
                # ControllerMoved, a ZooKeeper error, or a bug: ZooKeeper is the truth, so
                # drop everything, give up /controller, and start over from it.
                if isinstance(exc, ControllerMoved | ZkError):
                    log.info("controller event %s: %s", event.kind, exc)
                else:
                    log.exception("controller event %s failed", event.kind)
                was_active = self.is_active
                self._resign(f"{type(exc).__name__}: {exc}")
                if was_active and not isinstance(exc, ControllerMoved):
                    await self._abdicate()
                if event.reply is not None:
                    event.reply.send_nowait(
                        (False, KafkaApiError(ErrorCode.NOT_CONTROLLER, "controller moved"))
                    )
                self._post("campaign")

    async def _handle(self, event: _Event) -> None:
        kind, payload = event.kind, event.payload
        if kind == "controller_znode":
            # The payload may be stale (watch callbacks queue up behind other events):
            # act on what /controller holds now.
            owner = await self._controller_owner()
            if owner is None:
                self._resign("/controller was deleted")
                await self._campaign()
            elif owner != self.broker_id:
                self.active_controller_id = owner
                self._resign(f"broker {owner} is the controller now")
            elif not self.is_active:
                await self._campaign()
            return
        if kind == "campaign":
            if not self.is_active:
                await self._campaign()
            return
        if kind == "session":
            if payload == SessionState.LOST:
                self._resign("ZooKeeper session lost")
            elif payload == SessionState.CONNECTED and not self.is_active:
                await self._campaign()
            return
        if not self.is_active:
            if event.reply is not None:
                event.reply.send_nowait(
                    (False, KafkaApiError(ErrorCode.NOT_CONTROLLER, "not the controller"))
                )
            return
        if kind == "brokers":
            await self._on_brokers(payload)
        elif kind == "topics":
            await self._on_topics(payload)
        elif kind == "topic_data":
            await self._on_topic_data(*payload)
        elif kind == "delete_topics":
            await self._on_delete_topics(payload)
        elif kind == "isr_change":
            await self._on_isr_change(payload)
        elif kind == "preferred_election":
            await self._on_preferred_znode(payload)
        elif kind == "stop_replica_done":
            await self._on_stop_replica_done(*payload)
        elif kind == "rebalance":
            await self._auto_rebalance()
        elif kind == "controlled_shutdown":
            event.reply.send_nowait((True, await self._controlled_shutdown(*payload)))
        elif kind == "elect_leaders":
            event.reply.send_nowait((True, await self._elect_leaders(*payload)))
        elif kind == "zk_reassignment":
            await self._on_zk_reassignment(payload)
        elif kind == "alter_reassignments":
            event.reply.send_nowait((True, await self._alter_reassignments(payload)))
        elif kind == "list_reassignments":
            event.reply.send_nowait((True, self._list_reassignments(payload)))

    # --- election of the controller -----------------------------------------------------

    async def _campaign(self) -> None:
        """KafkaController.elect: read /controller; if free, create it and bump
        /controller_epoch in one multi-op (KafkaZkClient.registerControllerAndIncrementControllerEpoch)."""
        try:
            data, stat = await self.zk.get(znodes.CONTROLLER)
            owner = znodes.ControllerInfo.decode(data).broker_id
            if owner != self.broker_id or stat.ephemeralOwner != self.zk.session_id:
                self.active_controller_id = owner
                return
            # Our own /controller from a term we resigned (e.g. after an error): give
            # it up and campaign afresh, so the new term has its own epoch.
            await self.zk.delete(znodes.CONTROLLER, stat.version)
        except NoNode:
            pass
        except ZkError as exc:
            log.info("cannot read /controller: %s", exc)
            return
        try:
            try:
                raw, stat = await self.zk.get(znodes.CONTROLLER_EPOCH)
                epoch, version = znodes.decode_controller_epoch(raw), stat.version
            except NoNode:
                try:
                    await self.zk.create(znodes.CONTROLLER_EPOCH, znodes.encode_controller_epoch(0))
                except NodeExists:
                    pass
                raw, stat = await self.zk.get(znodes.CONTROLLER_EPOCH)
                epoch, version = znodes.decode_controller_epoch(raw), stat.version
            info = znodes.ControllerInfo(self.broker_id, int(self.clock() * 1000))
            await self.zk.multi(
                [
                    CreateOp(znodes.CONTROLLER, info.encode(), ephemeral=True),
                    SetOp(
                        znodes.CONTROLLER_EPOCH, znodes.encode_controller_epoch(epoch + 1), version
                    ),
                ]
            )
        except (NodeExists, BadVersion):
            return  # another broker won; the /controller watch tells us who
        except ZkError as exc:
            log.info("campaign for controller failed: %s", exc)
            return
        self.epoch, self.epoch_zk_version = epoch + 1, version + 1
        self.active_controller_id = self.broker_id
        log.info("broker %d is the controller (epoch %d)", self.broker_id, self.epoch)
        await self._on_failover()

    async def _controller_owner(self) -> int | None:
        try:
            data, _ = await self.zk.get(znodes.CONTROLLER)
        except NoNode:
            return None
        return znodes.ControllerInfo.decode(data).broker_id

    async def _abdicate(self) -> None:
        """Give /controller up after a failure while active (KafkaController's
        triggerControllerMove), so another broker, or this one afresh, takes over."""
        try:
            data, _ = await self.zk.get(znodes.CONTROLLER)
            if znodes.ControllerInfo.decode(data).broker_id == self.broker_id:
                await self.zk.multi([self._fence(), DeleteOp(znodes.CONTROLLER)])
        except (ZkError, ValueError) as exc:
            log.info("cannot give up /controller: %s", exc)

    def _resign(self, why: str) -> None:
        """Stop acting as controller at once (KafkaController.onControllerResignation)."""
        if self.core is None:
            return
        log.info("broker %d resigns as controller: %s", self.broker_id, why)
        self.core = None
        self._generation += 1
        if self._term_scope is not None:
            self._term_scope.cancel()
            self._term_scope = None
        if self._channel is not None:
            self._channel.remove_all()
            self._channel = None
        self._topic_watches.clear()
        self._deletion_pending.clear()
        self._zk_reassignment_czxid = None
        if self.active_controller_id == self.broker_id:
            self.active_controller_id = -1

    async def _on_failover(self) -> None:
        """KafkaController.onControllerFailover: read the cluster from ZooKeeper, start the
        watches, tell every broker the full state, then start every partition that needs a
        leader."""
        assert self._nursery is not None
        self._generation += 1
        gen = self._generation
        core = ControllerCore(
            self.broker_id,
            self.epoch,
            unclean_leader_election=self.unclean,
            inter_broker_listener=getattr(self.config, "inter_broker_listener_name", "PLAINTEXT"),
        )
        for path in (
            znodes.BROKER_IDS,
            znodes.TOPICS,
            znodes.DELETE_TOPICS,
            znodes.ISR_CHANGE_NOTIFICATION,
        ):
            await self.zk.ensure_path(path)
        core.live = await self._read_brokers(await self.zk.get_children(znodes.BROKER_IDS))
        for topic in await self.zk.get_children(znodes.TOPICS):
            await self._load_topic(core, topic)
        marked = set(await self.zk.get_children(znodes.DELETE_TOPICS))
        core.deleting = marked & set(core.topics)

        channel = ControllerChannel(
            **({"connect": self._connect} if self._connect else {}),
            request_timeout_s=int(_config(self.config, "controller.socket.timeout.ms", 30000))
            / 1000,
        )
        scope = trio.CancelScope()
        self._term_scope = scope
        self._channel = channel
        self.core = core
        term_started = trio.Event()

        async def term() -> None:
            with scope:
                async with trio.open_nursery() as n:
                    await n.start(channel.run)
                    for b in core.live.values():
                        channel.add_broker(b.id, *core._endpoint(b.id))
                    for path, kind in (
                        (znodes.BROKER_IDS, "brokers"),
                        (znodes.TOPICS, "topics"),
                        (znodes.DELETE_TOPICS, "delete_topics"),
                        (znodes.ISR_CHANGE_NOTIFICATION, "isr_change"),
                    ):
                        n.start_soon(self._forward, await self.zk.watch_children(path), kind, gen)
                    n.start_soon(
                        self._forward,
                        await self.zk.watch_data(znodes.PREFERRED_REPLICA_ELECTION),
                        "preferred_election",
                        gen,
                    )
                    n.start_soon(
                        self._forward,
                        await self.zk.watch_data(znodes.REASSIGN_PARTITIONS),
                        "zk_reassignment",
                        gen,
                    )
                    for topic in core.topics:
                        await self._start_topic_watch(n, topic, gen)
                    self._term_nursery = n
                    if self.auto_rebalance:
                        n.start_soon(self._rebalance_timer, gen)
                    term_started.set()
                    await trio.sleep_forever()

        self._nursery.start_soon(term)
        await term_started.wait()

        # Full state to everyone, then every replica its partitions (FULL LeaderAndIsr).
        for b in core.live:
            self._send_update_metadata([b], None)
        for b in core.live:
            self._send_leader_and_isr_to(b, core.partitions_on(b), full=True)
        await self._elect(core.new_partitions(), Election.NEW)
        await self._elect(core.offline_partitions(), Election.OFFLINE)
        # initializePartitionReassignments: ones asked for in /admin/reassign_partitions
        # meanwhile (the znode's watch delivers it), and those left by the last term, go on.
        try:
            data, stat = await self.zk.get(znodes.REASSIGN_PARTITIONS)
            resumed = await self._on_zk_reassignment((data, stat))
        except NoNode:
            resumed = set()
        for tp in core.reassigning_partitions():
            if tp not in resumed:
                await self._on_partition_reassignment(tp, core.target_replicas(tp))
        await self._try_deletions()
        self.became_active.set()

    async def _start_topic_watch(self, nursery: trio.Nursery, topic: str, gen: int) -> None:
        """Kafka's PartitionModificationsHandler: a data watch per topic for added partitions."""
        if topic in self._topic_watches:
            return
        scope = trio.CancelScope()
        self._topic_watches[topic] = scope
        recv = await self.zk.watch_data(znodes.topic_path(topic))

        async def forward() -> None:
            with scope:
                await self._forward(recv, "topic_data", gen, extra=topic)

        nursery.start_soon(forward)

    async def _rebalance_timer(self, gen: int) -> None:
        while True:
            await trio.sleep(self.rebalance_interval_s)
            self._post("rebalance", None, gen)

    # --- reading ZooKeeper ----------------------------------------------------------------

    async def _read_brokers(self, ids: Iterable[str]) -> dict[int, LiveBroker]:
        out: dict[int, LiveBroker] = {}
        for name in ids:
            try:
                bid = int(name)
                data, stat = await self.zk.get(znodes.broker_path(bid))
            except (ValueError, NoNode):
                continue
            out[bid] = LiveBroker(BrokerRegistration.decode(bid, data), int(stat.czxid))
        return out

    async def _load_topic(self, core: ControllerCore, topic: str) -> None:
        try:
            data, _ = await self.zk.get(znodes.topic_path(topic))
        except NoNode:
            return
        assignment = TopicAssignment.decode(data)
        core.topics[topic] = assignment
        for p in assignment.partitions:
            await self._load_state(core, (topic, p))

    async def _load_state(self, core: ControllerCore, tp: TP) -> None:
        try:
            data, stat = await self.zk.get(znodes.partition_state_path(*tp))
        except NoNode:
            core.states.pop(tp, None)
            return
        core.states[tp] = PartitionState.decode(data, zk_version=stat.version)

    # --- writing partition state ----------------------------------------------------------

    def _fence(self) -> CheckOp:
        return CheckOp(znodes.CONTROLLER_EPOCH, self.epoch_zk_version)

    async def _write(self, changes: list[Change]) -> list[TP]:
        """Write the changes, fenced by the controller epoch. Returns the partitions whose
        state changed under us (a leader's ISR update): the caller re-reads and re-decides."""
        core = self.core
        assert core is not None
        if not changes:
            return []
        for c in changes:
            if c.old is None:
                await self.zk.ensure_path(f"{znodes.partitions_path(c.tp[0])}/{c.tp[1]}")
        ops: list[Any] = [self._fence()]
        for c in changes:
            path = znodes.partition_state_path(*c.tp)
            if c.old is None:
                ops.append(CreateOp(path, c.new.encode()))
            else:
                ops.append(SetOp(path, c.new.encode(), c.old.zk_version))
        try:
            await self.zk.multi(ops)
        except (BadVersion, NodeExists, NoNode) as exc:
            if exc.failed_op == 0:
                raise ControllerMoved("controller epoch changed") from exc
            if len(changes) == 1:
                return [changes[0].tp]
            # Someone else wrote one of them: write each on its own to find which.
            conflicts: list[TP] = []
            for c in changes:
                conflicts += await self._write([c])
            return conflicts
        for c in changes:
            version = 0 if c.old is None else c.old.zk_version + 1
            core.applied(c.tp, replace(c.new, zk_version=version))
        return []

    async def _elect(
        self, tps: Iterable[TP], kind: Election, *, notify: bool = True
    ) -> tuple[dict[TP, tuple[ErrorCode, str | None]], list[TP]]:
        """Decide, write (re-deciding partitions that changed under us), and tell the
        replicas (LeaderAndIsr) and every live broker (UpdateMetadata). Returns the outcome
        per partition and the partitions that changed."""
        core = self.core
        assert core is not None
        pending = list(tps)
        outcome: dict[TP, tuple[ErrorCode, str | None]] = {}
        changed: list[TP] = []
        for _ in range(10):
            if not pending:
                break
            changes, result = core.plan(pending, kind)
            outcome.update(result)
            conflicts = await self._write(changes)
            changed += [c.tp for c in changes if c.tp not in conflicts]
            for tp in conflicts:
                await self._load_state(core, tp)
            pending = conflicts
        for tp in pending:
            outcome[tp] = (ErrorCode.UNKNOWN_SERVER_ERROR, "partition state kept changing")
        if notify and changed:
            new = changed if kind is Election.NEW else ()
            self._send_leader_and_isr(changed, new=new)
            self._send_update_metadata(list(core.live), changed)
        return outcome, changed

    # --- sending --------------------------------------------------------------------------

    def _send_leader_and_isr(self, tps: Iterable[TP], *, new: Iterable[TP] = ()) -> None:
        core = self.core
        assert core is not None
        by_broker: dict[int, list[TP]] = {}
        for tp in tps:
            for b in core.replicas(tp):
                if core.is_live(b):
                    by_broker.setdefault(b, []).append(tp)
        for b, parts in sorted(by_broker.items()):
            self._send_leader_and_isr_to(b, parts, new=new)

    def _send_leader_and_isr_to(
        self, broker: int, tps: list[TP], *, full: bool = False, new: Iterable[TP] = ()
    ) -> None:
        core, channel = self.core, self._channel
        assert core is not None and channel is not None
        if not tps and not full:
            return
        channel.send(
            broker,
            LEADER_AND_ISR,
            core.leader_and_isr(broker, tps, full=full, new=new),
            _log_error_response,
        )

    def _send_update_metadata(
        self, brokers: Iterable[int], tps: Iterable[TP] | None, *, deleted: Iterable[TP] = ()
    ) -> None:
        core, channel = self.core, self._channel
        assert core is not None and channel is not None
        tps = None if tps is None else list(tps)
        deleted = list(deleted)
        for b in sorted(set(brokers)):
            channel.send(
                b,
                UPDATE_METADATA,
                core.update_metadata(b, tps, deleted=deleted),
                _log_error_response,
            )

    # --- events ---------------------------------------------------------------------------

    async def _on_brokers(self, children: list[str]) -> None:
        """KafkaController.processBrokerChange: deaths first, then (re)starts."""
        core, channel = self.core, self._channel
        assert core is not None and channel is not None
        current = await self._read_brokers(children)
        dead = sorted(set(core.live) - set(current))
        bounced = sorted(
            b for b in set(core.live) & set(current) if current[b].epoch != core.live[b].epoch
        )
        new = sorted(set(current) - set(core.live))
        if not dead and not new and not bounced:
            return
        for b in dead + bounced:
            log.info("controller: broker %d is gone", b)
            core.live.pop(b, None)
            core.shutting_down.discard(b)
            channel.remove_broker(b)  # its queued requests go with it
            for topic, pending in list(self._deletion_pending.items()):
                if b in pending:  # its StopReplica may be lost: start over when it is back
                    del self._deletion_pending[topic]
        if dead or bounced:
            gone = set(dead + bounced)
            affected = [tp for tp in core.all_partitions() if gone & set(core.replicas(tp))]
            _, changed = await self._elect(
                [tp for tp in core.offline_partitions() if tp in set(affected)], Election.OFFLINE
            )
            # Everyone learns the new broker list and the now offline replicas.
            rest = [tp for tp in affected if tp not in set(changed)]
            self._send_update_metadata(list(core.live), rest)
        for b in new + bounced:
            log.info("controller: broker %d is up", b)
            core.live[b] = current[b]
            channel.add_broker(b, *core._endpoint(b))
        if new or bounced:
            started = new + bounced
            # KafkaController.onBrokerStartup: everyone gets the new broker list; the new
            # brokers get all metadata and their replicas; then leaderless and
            # not-yet-started partitions may have a leader now.
            self._send_update_metadata([b for b in core.live if b not in started], [])
            self._send_update_metadata(started, None)
            for b in started:
                self._send_leader_and_isr_to(b, core.partitions_on(b), full=True)
            await self._elect(core.new_partitions(), Election.NEW)
            await self._elect(core.offline_partitions(), Election.OFFLINE)
            # onBrokerStartup: reassignments waiting for these brokers go on.
            for tp in core.reassigning_partitions():
                if set(core.target_replicas(tp)) & set(started):
                    await self._on_partition_reassignment(tp, core.target_replicas(tp))
            await self._try_deletions()

    async def _on_topics(self, children: list[str]) -> None:
        """KafkaController.processTopicChange: start new topics; forget removed ones."""
        core = self.core
        assert core is not None
        present = set(children)
        for topic in sorted(set(core.topics) - present):
            core.forget_topic(topic)
            scope = self._topic_watches.pop(topic, None)
            if scope is not None:
                scope.cancel()
        for topic in sorted(present - set(core.topics)):
            await self._load_topic(core, topic)
            if topic not in core.topics:
                continue
            assert self._term_nursery is not None
            await self._start_topic_watch(self._term_nursery, topic, self._generation)
            log.info("controller: new topic %s", topic)
            await self._elect(core.partitions_of(topic), Election.NEW)

    async def _on_topic_data(self, topic: str, item: tuple[bytes | None, Any]) -> None:
        """Partitions added to an existing topic (CreatePartitions)."""
        core = self.core
        assert core is not None
        data, _stat = item
        if data is None or topic not in core.topics:
            return
        assignment = TopicAssignment.decode(data)
        old = core.topics[topic]
        added = sorted(set(assignment.partitions) - set(old.partitions))
        core.topics[topic] = assignment
        if added:
            log.info("controller: topic %s gains partitions %s", topic, added)
            await self._elect([(topic, p) for p in added], Election.NEW)

    async def _on_delete_topics(self, children: list[str]) -> None:
        core = self.core
        assert core is not None
        for topic in sorted(children):
            if topic not in core.topics:
                # Nothing to delete (already gone): drop the mark, as Kafka does.
                try:
                    await self.zk.delete(znodes.delete_topic_path(topic))
                except NoNode:
                    pass
                continue
            core.deleting.add(topic)
        await self._try_deletions()

    async def _try_deletions(self) -> None:
        """TopicDeletionManager: once every replica of a marked topic is live, every broker
        forgets its partitions (UpdateMetadata with leader -2) and the replicas stop and
        delete them (StopReplica delete_partitions=true); when every replica has confirmed,
        the topic's znodes go. A topic with a replica on a dead broker waits for it, as in
        Kafka, so no broker keeps a log of a deleted topic."""
        core, channel = self.core, self._channel
        assert core is not None and channel is not None
        for topic in sorted(core.deleting):
            if topic in self._deletion_pending:
                continue  # StopReplica sent, waiting for the replicas' answers
            tps = core.partitions_of(topic)
            if any(core.is_reassigning(tp) for tp in tps):
                # markTopicIneligibleForDeletion: resumed when the reassignment completes.
                log.info("controller: deletion of %s waits for its reassignment", topic)
                continue
            replicas = {b for tp in tps for b in core.replicas(tp)}
            if not all(core.is_live(b) for b in replicas):
                log.info("controller: deletion of %s waits for its replicas", topic)
                continue
            self._deletion_pending[topic] = set(replicas)
            self._send_update_metadata(list(core.live), [], deleted=tps)
            gen = self._generation
            for b in sorted(replicas):
                parts = [tp for tp in tps if b in core.replicas(tp)]

                def answered(
                    broker: int, response: Any, topic: str = topic, gen: int = gen
                ) -> None:
                    ok = response.error_code == 0 and all(
                        e.error_code == 0 for e in response.partition_errors
                    )
                    _log_error_response(broker, response)
                    self._post("stop_replica_done", (topic, broker, ok), gen)

                channel.send(b, STOP_REPLICA, core.stop_replica(b, parts, delete=True), answered)
            if not replicas:
                await self._finish_deletion(topic)

    async def _on_stop_replica_done(self, topic: str, broker: int, ok: bool) -> None:
        pending = self._deletion_pending.get(topic)
        if pending is None:
            return
        if not ok:
            # Kafka marks the replica ineligible and retries later: the next broker
            # change (or controller term) sends StopReplica again.
            del self._deletion_pending[topic]
            return
        pending.discard(broker)
        if not pending:
            await self._finish_deletion(topic)

    async def _finish_deletion(self, topic: str) -> None:
        core = self.core
        assert core is not None
        self._deletion_pending.pop(topic, None)
        await self._delete_topic_znodes(topic, core.partitions_of(topic))
        core.forget_topic(topic)
        scope = self._topic_watches.pop(topic, None)
        if scope is not None:
            scope.cancel()
        log.info("controller: topic %s deleted", topic)

    async def _delete_topic_znodes(self, topic: str, tps: list[TP]) -> None:
        ops: list[Any] = [self._fence()]
        for name in await self._children_or_empty(znodes.partitions_path(topic)):
            base = f"{znodes.partitions_path(topic)}/{name}"
            for leaf in await self._children_or_empty(base):
                ops.append(DeleteOp(f"{base}/{leaf}"))
            ops.append(DeleteOp(base))
        if await self.zk.exists(znodes.partitions_path(topic)) is not None:
            ops.append(DeleteOp(znodes.partitions_path(topic)))
        ops.append(DeleteOp(znodes.topic_path(topic)))
        if await self.zk.exists(znodes.topic_config_path(topic)) is not None:
            ops.append(DeleteOp(znodes.topic_config_path(topic)))
        ops.append(DeleteOp(znodes.delete_topic_path(topic)))
        try:
            await self.zk.multi(ops)
        except BadVersion as exc:
            if exc.failed_op == 0:
                raise ControllerMoved("controller epoch changed") from exc
            raise

    async def _children_or_empty(self, path: str) -> list[str]:
        try:
            return await self.zk.get_children(path)
        except NoNode:
            return []

    async def _on_isr_change(self, children: list[str]) -> None:
        """Leaders changed ISRs in ZooKeeper and left notifications: re-read those
        partitions and tell every broker (KafkaController.processIsrChangeNotification)."""
        core = self.core
        assert core is not None
        tps: set[TP] = set()
        for name in sorted(children):
            path = f"{znodes.ISR_CHANGE_NOTIFICATION}/{name}"
            try:
                data, _ = await self.zk.get(path)
                tps |= znodes.decode_partition_list(data)
                await self.zk.delete(path)
            except NoNode:
                continue
            except ValueError:
                log.warning("ignoring malformed ISR change notification %s", name)
                await self.zk.delete(path)
        known = sorted(tp for tp in tps if core.replicas(tp))
        for tp in known:
            await self._load_state(core, tp)
        if known:
            self._send_update_metadata(list(core.live), known)
        # processPartitionReassignmentIsrChange: a target replica may have caught up.
        for tp in known:
            if core.is_reassigning(tp) and core.reassignment_complete(tp):
                log.info(
                    "controller: target replicas %s of %s-%d caught up",
                    list(core.target_replicas(tp)),
                    *tp,
                )
                await self._on_partition_reassignment(tp, core.target_replicas(tp))

    async def _on_preferred_znode(self, item: tuple[bytes | None, Any]) -> None:
        data, _ = item
        if data is None:
            return
        try:
            tps = znodes.decode_partition_list(data)
        except ValueError:
            tps = set()
        await self._elect(sorted(tps), Election.PREFERRED)
        try:
            await self.zk.delete(znodes.PREFERRED_REPLICA_ELECTION)
        except NoNode:
            pass

    async def _auto_rebalance(self) -> None:
        core = self.core
        assert core is not None
        tps = core.imbalanced(self.imbalance_percentage)
        if tps:
            log.info("controller: moving %d partition(s) back to their preferred leader", len(tps))
            await self._elect(tps, Election.PREFERRED)

    async def _controlled_shutdown(self, broker_id: int, broker_epoch: int) -> list[TP]:
        """KafkaController.doControlledShutdown."""
        core, channel = self.core, self._channel
        assert core is not None and channel is not None
        live = core.live.get(broker_id)
        if live is None:
            raise KafkaApiError(
                ErrorCode.BROKER_NOT_AVAILABLE, f"Broker id {broker_id} does not exist."
            )
        if broker_epoch != -1 and broker_epoch < live.epoch:
            raise KafkaApiError(
                ErrorCode.STALE_BROKER_EPOCH,
                f"Received controlled shutdown request from an old broker epoch {broker_epoch}",
            )
        core.shutting_down.add(broker_id)
        hosted = [tp for tp in core.partitions_on(broker_id) if tp in core.states]
        led = [
            tp
            for tp in hosted
            if core.states[tp].leader == broker_id and len(core.replicas(tp)) > 1
        ]
        followed = [
            tp for tp in hosted if tp not in set(led) and core.states[tp].leader != broker_id
        ]
        await self._elect(led, Election.CONTROLLED_SHUTDOWN)
        # Followers on the broker stop fetching and leave the ISR (OfflineReplica).
        if followed:
            channel.send(
                broker_id,
                STOP_REPLICA,
                core.stop_replica(broker_id, followed, delete=False),
                _log_error_response,
            )
            await self._elect(followed, Election.CONTROLLED_SHUTDOWN)
        return [
            tp
            for tp in core.partitions_on(broker_id)
            if tp in core.states
            and core.states[tp].leader == broker_id
            and len(core.replicas(tp)) > 1
        ]

    async def _elect_leaders(
        self, tps: list[TP] | None, election_type: int
    ) -> dict[TP, tuple[int, str | None]]:
        core = self.core
        assert core is not None
        kind = Election.UNCLEAN if election_type == UNCLEAN else Election.PREFERRED
        requested = core.all_partitions() if tps is None else tps
        known = [tp for tp in requested if core.replicas(tp) and tp[0] not in core.deleting]
        outcome, _ = await self._elect(known, kind)
        results: dict[TP, tuple[int, str | None]] = {
            tp: (int(code), msg) for tp, (code, msg) in outcome.items()
        }
        for tp in requested:
            if tp not in results:
                results[tp] = (
                    int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                    "The partition does not exist.",
                )
        if tps is None:
            results = {tp: r for tp, r in results.items() if r[0] != ErrorCode.ELECTION_NOT_NEEDED}
        return results

    # --- partition reassignment (KIP-455) ---------------------------------------------------

    async def _alter_reassignments(
        self, reassignments: dict[TP, list[int] | None]
    ) -> dict[TP, tuple[int, str | None]]:
        """KafkaController.processApiPartitionReassignment."""
        core = self.core
        assert core is not None
        results: dict[TP, tuple[int, str | None]] = {}
        # The latest request wins over one made through /admin/reassign_partitions.
        await self._remove_from_zk_reassignment(lambda tp, _: tp in reassignments)
        for tp, target in sorted(reassignments.items()):
            if target is not None:
                invalid = core.validate_reassignment(tp, list(target))
                if invalid is not None:
                    results[tp] = (int(invalid[0]), invalid[1])
                    continue
            if tp[0] in core.deleting or not core.replicas(tp):
                results[tp] = (
                    int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                    "The partition does not exist.",
                )
                continue
            if target is None:
                # Cancellation: back to the original replicas (maybeBuildReassignment).
                if not core.is_reassigning(tp):
                    results[tp] = (int(ErrorCode.NO_REASSIGNMENT_IN_PROGRESS), None)
                    continue
                target = list(core.origin_replicas(tp))
            await self._on_partition_reassignment(tp, tuple(target))
            results[tp] = (int(ErrorCode.NONE), None)
        return results

    def _list_reassignments(
        self, tps: list[TP] | None
    ) -> dict[TP, tuple[list[int], list[int], list[int]]]:
        core = self.core
        assert core is not None
        chosen = core.reassigning_partitions() if tps is None else tps
        return {
            tp: (list(core.replicas(tp)), list(core.adding(tp)), list(core.removing(tp)))
            for tp in chosen
            if core.is_reassigning(tp)
        }

    async def _write_assignment(self, topic: str, assignment: TopicAssignment) -> None:
        """The topic znode, fenced by the controller epoch (setTopicAssignment)."""
        try:
            await self.zk.multi(
                [self._fence(), SetOp(znodes.topic_path(topic), assignment.encode(), -1)]
            )
        except BadVersion as exc:
            if exc.failed_op == 0:
                raise ControllerMoved("controller epoch changed") from exc
            raise
        assert self.core is not None
        self.core.topics[topic] = assignment

    async def _on_partition_reassignment(self, tp: TP, target: tuple[int, ...]) -> None:
        """KafkaController.onPartitionReassignment: record RS = TRS + ORS, AR and RR, start
        the new replicas (phase A); once every target replica is in the ISR, move the
        leader into TRS if needed, drop the removed replicas and record RS = TRS (phase B).
        The final assignment is written last: until then ZooKeeper holds ORS, so a new
        controller can resume or revert."""
        core = self.core
        assert core is not None
        current = core.replicas(tp)
        full, adding, removing = core.reassign_to(tp, target)
        if (full, adding, removing) != (current, core.adding(tp), core.removing(tp)):
            # U1/U2, and U3: replicas of a replaced reassignment no longer wanted stop.
            await self._write_assignment(tp[0], core.with_assignment(tp, full, adding, removing))
            unneeded = [b for b in current if b not in full]
            if unneeded:
                await self._stop_removed_replicas(tp, unneeded)
        if not core.reassignment_complete(tp):
            # A1/A2: a new leader epoch to every replica of RS; the added ones create
            # their log and start fetching from the leader.
            log.info(
                "controller: reassigning %s-%d to %s (adding %s, removing %s)",
                *tp,
                list(target),
                list(adding),
                list(removing),
            )
            await self._elect([tp], Election.EPOCH_BUMP)
            return
        # B2: RS = TRS in memory (ZooKeeper still has RS = TRS + ORS until B6).
        removing = core.removing(tp)
        completed = core.with_assignment(tp, core.target_replicas(tp))
        core.topics[tp[0]] = completed
        # B3: the leader must be one of TRS; either way a new leader epoch with RS = TRS.
        await self._elect([tp], Election.REASSIGN)
        # B4/B5: the removed replicas leave the ISR, stop and delete their logs.
        await self._stop_removed_replicas(tp, list(removing))
        # B6/B8: the final assignment, and every broker hears of it.
        await self._write_assignment(tp[0], completed)
        # B7: done, so out of /admin/reassign_partitions if it was asked for there.
        final = core.replicas(tp)
        await self._remove_from_zk_reassignment(lambda t, r: t == tp and r == final)
        self._send_update_metadata(list(core.live), [tp])
        log.info("controller: reassignment of %s-%d to %s complete", *tp, list(target))
        await self._try_deletions()

    async def _stop_removed_replicas(self, tp: TP, removed: list[int]) -> None:
        """stopRemovedReplicasOfReassignedPartition: OfflineReplica (out of the ISR,
        StopReplica without delete), then NonExistentReplica (StopReplica with delete)."""
        core, channel = self.core, self._channel
        assert core is not None and channel is not None
        await self._elect([tp], Election.SHRINK_TO_REPLICAS)
        for b in sorted(removed):
            if not core.is_live(b):
                continue
            channel.send(
                b, STOP_REPLICA, core.stop_replica(b, [tp], delete=False), _log_error_response
            )
            channel.send(
                b, STOP_REPLICA, core.stop_replica(b, [tp], delete=True), _log_error_response
            )

    async def _on_zk_reassignment(self, item: tuple[bytes | None, Any]) -> set[TP]:
        """processZkPartitionReassignment: a reassignment asked for by creating
        /admin/reassign_partitions (the pre-KIP-455 tools). Acted on once per znode
        (its creation, as Kafka's handler); partitions that cannot be moved are taken out
        of it. The partitions started."""
        core = self.core
        assert core is not None
        data, stat = item
        if data is None or stat is None:
            self._zk_reassignment_czxid = None
            return set()
        if stat.czxid == self._zk_reassignment_czxid:
            return set()  # our own update of a znode already acted on
        self._zk_reassignment_czxid = stat.czxid
        try:
            wanted = znodes.decode_reassignment(data)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed %s: %r", znodes.REASSIGN_PARTITIONS, data)
            return set()
        started: set[TP] = set()
        failed: set[TP] = set()
        for tp, target in sorted(wanted.items()):
            if tp[0] in core.deleting or not core.replicas(tp) or not target:
                failed.add(tp)
                continue
            await self._on_partition_reassignment(tp, target)
            started.add(tp)
        if failed:
            log.warning(
                "controller: failed reassignment through ZooKeeper of %s: the partition does not exist",
                sorted(failed),
            )
            await self._remove_from_zk_reassignment(lambda t, _: t in failed)
        return started

    async def _remove_from_zk_reassignment(
        self, remove: Callable[[TP, tuple[int, ...]], bool]
    ) -> None:
        """maybeRemoveFromZkReassignment: rewrite /admin/reassign_partitions without the
        chosen partitions, or delete it when none is left (fenced writes)."""
        try:
            data, stat = await self.zk.get(znodes.REASSIGN_PARTITIONS)
        except NoNode:
            return
        try:
            wanted = znodes.decode_reassignment(data)
        except (ValueError, KeyError, TypeError):
            wanted = {}
        rest = {tp: r for tp, r in wanted.items() if not remove(tp, r)}
        if wanted and len(rest) == len(wanted):
            return
        if rest:
            op: Any = SetOp(
                znodes.REASSIGN_PARTITIONS, znodes.encode_reassignment(rest), stat.version
            )
        else:
            op = DeleteOp(znodes.REASSIGN_PARTITIONS, stat.version)
        try:
            await self.zk.multi([self._fence(), op])
        except (BadVersion, NoNode) as exc:
            if exc.failed_op == 0:
                raise ControllerMoved("controller epoch changed") from exc
            # Changed by a tool meanwhile: its watch brings the new content.
