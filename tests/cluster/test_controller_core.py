"""The controller's decisions, without ZooKeeper: Kafka's leader election rules."""

from __future__ import annotations

import uuid

import pytest

from kbroker.cluster.controller import ControllerCore, Election, LiveBroker
from kbroker.cluster.znodes import BrokerRegistration, PartitionState, TopicAssignment
from kbroker.wire import protocol
from kbroker.wire.errors import ErrorCode

T0 = ("t", 0)


def _live(*ids: int, rack: str | None = None) -> dict[int, LiveBroker]:
    return {
        b: LiveBroker(
            BrokerRegistration(
                broker_id=b,
                host="127.0.0.1",
                port=9000 + b,
                endpoints=(f"PLAINTEXT://127.0.0.1:{9000 + b}",),
                rack=rack,
            ),
            epoch=100 + b,
        )
        for b in ids
    }


def _core(
    live: tuple[int, ...] = (1, 2, 3), replicas: tuple[int, ...] = (1, 2, 3)
) -> ControllerCore:
    core = ControllerCore(broker_id=1, epoch=4)
    core.live = _live(*live)
    core.topics["t"] = TopicAssignment(partitions={0: replicas}, topic_id=uuid.uuid4())
    return core


def _state(leader: int, isr: tuple[int, ...], epoch: int = 0) -> PartitionState:
    return PartitionState(
        leader=leader, leader_epoch=epoch, isr=isr, controller_epoch=1, zk_version=3
    )


def test_new_partition_leader_is_first_live_replica_and_isr_the_live_ones() -> None:
    core = _core(live=(2, 3), replicas=(1, 2, 3))
    new, code, _ = core.decide(T0, Election.NEW)
    assert code == ErrorCode.NONE and new is not None
    assert (new.leader, new.isr, new.leader_epoch, new.controller_epoch) == (2, (2, 3), 0, 4)
    nobody = _core(live=(), replicas=(1, 2))
    assert nobody.decide(T0, Election.NEW)[0] is None  # waits for a replica to come up


def test_dead_leader_is_replaced_from_the_isr_and_the_epoch_goes_up() -> None:
    core = _core(live=(2, 3))
    core.states[T0] = _state(1, (1, 2, 3), epoch=5)
    new, code, _ = core.decide(T0, Election.OFFLINE)
    assert code == ErrorCode.NONE and new is not None
    assert (new.leader, new.isr, new.leader_epoch, new.controller_epoch) == (2, (2, 3), 6, 4)
    assert new.zk_version == 3  # the version the conditional write expects


def test_dead_follower_leaves_the_isr() -> None:
    core = _core(live=(1, 3))
    core.states[T0] = _state(1, (1, 2, 3))
    new, _, _ = core.decide(T0, Election.OFFLINE)
    assert new is not None and (new.leader, new.isr, new.leader_epoch) == (1, (1, 3), 1)
    core.states[T0] = _state(1, (1, 3))
    assert core.decide(T0, Election.OFFLINE)[0] is None  # nothing to change


def test_no_unclean_election_by_default() -> None:
    # Only broker 2 is live, and it is not in the ISR: the partition goes offline,
    # keeping the last ISR member so that it can lead again when it returns.
    core = _core(live=(2,))
    core.states[T0] = _state(1, (1,))
    new, code, _ = core.decide(T0, Election.OFFLINE)
    assert code == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    assert new is not None and (new.leader, new.isr) == (-1, (1,))
    core.states[T0] = new
    assert core.decide(T0, Election.OFFLINE)[0] is None  # no rewrite while nothing changes
    # Broker 1 returns: it is the clean choice.
    core.live.update(_live(1))
    back, code, _ = core.decide(T0, Election.OFFLINE)
    assert back is not None and (back.leader, back.isr) == (1, (1,)) and code == ErrorCode.NONE


def test_unclean_election_when_enabled_or_asked_for() -> None:
    core = _core(live=(2, 3))
    core.states[T0] = _state(1, (1,))
    assert core.decide(T0, Election.OFFLINE)[0].leader == -1  # type: ignore[union-attr]
    forced, code, _ = core.decide(T0, Election.UNCLEAN)
    assert forced is not None and (forced.leader, forced.isr) == (2, (2,))
    core.unclean_leader_election = True
    new, _, _ = core.decide(T0, Election.OFFLINE)
    assert new is not None and (new.leader, new.isr) == (2, (2,))


def test_unclean_request_when_the_leader_is_fine() -> None:
    core = _core()
    core.states[T0] = _state(1, (1, 2, 3))
    assert core.decide(T0, Election.UNCLEAN)[1] == ErrorCode.ELECTION_NOT_NEEDED


def test_preferred_election() -> None:
    core = _core()
    core.states[T0] = _state(1, (1, 2, 3))
    assert core.decide(T0, Election.PREFERRED)[1] == ErrorCode.ELECTION_NOT_NEEDED
    core.states[T0] = _state(2, (2, 3))  # preferred replica 1 is not in the ISR
    assert core.decide(T0, Election.PREFERRED)[1] == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    core.states[T0] = _state(2, (2, 3, 1), epoch=7)
    new, code, _ = core.decide(T0, Election.PREFERRED)
    assert code == ErrorCode.NONE and new is not None
    assert (new.leader, new.isr, new.leader_epoch) == (1, (2, 3, 1), 8)


def test_controlled_shutdown_moves_leadership_and_shrinks_isr() -> None:
    core = _core()
    core.shutting_down.add(1)
    core.states[T0] = _state(1, (1, 2, 3))
    new, _, _ = core.decide(T0, Election.CONTROLLED_SHUTDOWN)
    assert new is not None and (new.leader, new.isr) == (2, (2, 3))
    core.states[T0] = _state(2, (1, 2, 3))  # broker 1 only follows
    new, _, _ = core.decide(T0, Election.CONTROLLED_SHUTDOWN)
    assert new is not None and (new.leader, new.isr) == (2, (2, 3))
    # A broker being shut down is never chosen by other elections either.
    core.states[T0] = _state(3, (3, 1))
    core.live.pop(3)
    assert core.decide(T0, Election.OFFLINE)[0].leader == -1  # type: ignore[union-attr]


def test_imbalance_check() -> None:
    core = _core()
    core.topics["t"] = TopicAssignment(
        partitions={p: ((1, 2, 3), (2, 3, 1), (3, 1, 2))[p % 3] for p in range(6)}
    )
    for p in range(6):
        core.states[("t", p)] = _state(core.replicas(("t", p))[0], (1, 2, 3))
    assert core.imbalanced(10) == []
    core.states[("t", 0)] = _state(2, (1, 2, 3))  # broker 1 leads 1 of its 2: 50% > 10%
    core.states[("t", 1)] = _state(3, (3,))  # broker 2 is not in the ISR: cannot move back
    assert core.imbalanced(10) == [("t", 0)]
    assert core.imbalanced(50) == []


@pytest.mark.parametrize("version", range(0, 8))
def test_leader_and_isr_encodes_at_every_version(version: int) -> None:
    core = _core()
    core.states[T0] = _state(1, (1, 2, 3))
    build = core.leader_and_isr(2, [T0], full=True, new=[T0])
    frame = protocol.encode_request(4, version, 1, "c", build(version))
    _, body = protocol.decode_request(frame[4:])
    assert (body.controller_id, body.controller_epoch) == (1, 4)
    parts = (
        body.ungrouped_partition_states
        if version < 2
        else [p for t in body.topic_states for p in t.partition_states]
    )
    assert [(p.partition_index, p.leader, p.isr, p.replicas) for p in parts] == [
        (0, 1, [1, 2, 3], [1, 2, 3])
    ]
    assert parts[0].partition_epoch == 3
    assert [(b.broker_id, b.port) for b in body.live_leaders] == [(1, 9001)]
    if version >= 1:
        assert parts[0].is_new
    if version >= 2:
        assert body.broker_epoch == 102 and body.topic_states[0].topic_name == "t"
    if version >= 5:
        assert body.type == 1


@pytest.mark.parametrize("version", range(0, 9))
def test_update_metadata_encodes_at_every_version(version: int) -> None:
    core = _core(live=(1, 3))
    core.states[T0] = _state(1, (1, 3))
    frame = protocol.encode_request(6, version, 1, "c", core.update_metadata(3, None)(version))
    _, body = protocol.decode_request(frame[4:])
    parts = (
        body.ungrouped_partition_states
        if version < 5
        else [p for t in body.topic_states for p in t.partition_states]
    )
    assert [(p.leader, p.isr, p.replicas) for p in parts] == [(1, [1, 3], [1, 2, 3])]
    if version >= 4:
        assert parts[0].offline_replicas == [2]
    assert [b.id for b in body.live_brokers] == [1, 3]
    if version >= 1:
        assert body.live_brokers[1].endpoints[0].port == 9003


@pytest.mark.parametrize("version", range(0, 5))
def test_stop_replica_encodes_at_every_version(version: int) -> None:
    core = _core()
    core.states[T0] = _state(1, (1, 2, 3))
    frame = protocol.encode_request(
        5, version, 1, "c", core.stop_replica(2, [T0], delete=True)(version)
    )
    _, body = protocol.decode_request(frame[4:])
    if version <= 2:
        assert body.delete_partitions
    else:
        p = body.topic_states[0].partition_states[0]
        assert (p.partition_index, p.delete_partition, p.leader_epoch) == (0, True, -2)


# --- partition reassignment (KIP-455) ------------------------------------------------------


def test_reassignment_replica_set_is_target_then_original() -> None:
    # KafkaController's example: ORS {1,2,3}, TRS {4,5,6} -> RS {4,5,6,1,2,3}.
    core = _core(live=(1, 2, 3, 4, 5, 6))
    assert core.reassign_to(T0, [4, 5, 6]) == ((4, 5, 6, 1, 2, 3), (4, 5, 6), (1, 2, 3))
    assert core.reassign_to(T0, [3, 4, 2]) == ((3, 4, 2, 1), (4,), (1,))
    # A replacement while a reassignment runs starts again from the original replicas.
    core.topics["t"] = core.with_assignment(T0, (4, 5, 6, 1, 2, 3), (4, 5, 6), (1, 2, 3))
    assert core.is_reassigning(T0)
    assert core.origin_replicas(T0) == (1, 2, 3)
    assert core.target_replicas(T0) == (4, 5, 6)
    assert core.reassign_to(T0, [1, 5]) == ((1, 5, 2, 3), (5,), (2, 3))
    assert core.reassigning_partitions() == [T0]


def test_reassignment_validation_messages_are_kafkas() -> None:
    core = _core(live=(1, 2, 3), replicas=(1,))
    assert core.validate_reassignment(T0, [2, 3]) is None
    cases = {
        (): "Empty replica list specified in partition reassignment.",
        (2, 2): "Duplicate replica ids in partition reassignment replica list: [2, 2]",
        (2, -1): "Invalid broker id in replica list: [2, -1]",
        (2, 7): "Replica assignment has brokers that are not alive. Replica list: [2, 7], "
        "live broker list: [1, 2, 3]",
    }
    for target, message in cases.items():
        assert core.validate_reassignment(T0, list(target)) == (
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            message,
        )
    # An original replica that is down may stay: only added replicas must be alive.
    down = _core(live=(2, 3), replicas=(1,))
    assert down.validate_reassignment(T0, [1, 2]) is None


def test_reassignment_completes_when_every_target_replica_is_in_the_isr() -> None:
    core = _core(replicas=(1,))
    core.states[T0] = _state(1, (1,), epoch=2)
    assert core.reassignment_complete(T0)  # nothing in progress
    core.topics["t"] = core.with_assignment(T0, *core.reassign_to(T0, [2, 3]))
    assert core.topics["t"].partitions[0] == (2, 3, 1)
    assert core.topics["t"].adding_replicas[0] == (2, 3)
    assert core.topics["t"].removing_replicas[0] == (1,)
    assert not core.reassignment_complete(T0)
    core.states[T0] = _state(1, (1, 2), epoch=3)
    assert not core.reassignment_complete(T0)
    core.states[T0] = _state(1, (1, 2, 3), epoch=3)
    assert core.reassignment_complete(T0)


def test_reassignment_leader_epoch_bump_then_leader_moves_into_the_target() -> None:
    core = _core(replicas=(1,))
    core.states[T0] = _state(1, (1,), epoch=2)
    core.topics["t"] = core.with_assignment(T0, *core.reassign_to(T0, [2, 3]))
    # Phase A: same leader and ISR, a new leader epoch for every replica of RS.
    new, code, _ = core.decide(T0, Election.EPOCH_BUMP)
    assert code == ErrorCode.NONE and new is not None
    assert (new.leader, new.isr, new.leader_epoch) == (1, (1,), 3)
    # Phase B: RS = TRS; the leader (1) is not in it: the first target replica in the ISR.
    core.states[T0] = _state(1, (1, 2, 3), epoch=3)
    core.topics["t"] = core.with_assignment(T0, core.target_replicas(T0))
    assert not core.is_reassigning(T0) and core.replicas(T0) == (2, 3)
    new, code, _ = core.decide(T0, Election.REASSIGN)
    assert code == ErrorCode.NONE and new is not None
    assert (new.leader, new.isr, new.leader_epoch) == (2, (1, 2, 3), 4)
    core.states[T0] = new
    # ... then the removed replica leaves the ISR.
    new, _, _ = core.decide(T0, Election.SHRINK_TO_REPLICAS)
    assert new is not None and (new.leader, new.isr, new.leader_epoch) == (2, (2, 3), 5)
    core.states[T0] = new
    assert core.decide(T0, Election.SHRINK_TO_REPLICAS)[0] is None


def test_reassignment_keeps_a_live_leader_that_stays_and_skips_dead_targets() -> None:
    core = _core(live=(1, 3), replicas=(1, 2))
    core.states[T0] = _state(1, (1, 2, 3), epoch=1)
    core.topics["t"] = TopicAssignment(partitions={0: (2, 1, 3)})
    # Leader 1 stays in the replica set and is alive: only the epoch moves.
    new, _, _ = core.decide(T0, Election.REASSIGN)
    assert new is not None and (new.leader, new.leader_epoch) == (1, 2)
    # Leader 1 is not in the new replicas and 2 is dead: 3, the next one in the ISR.
    core.topics["t"] = TopicAssignment(partitions={0: (2, 3)})
    new, _, _ = core.decide(T0, Election.REASSIGN)
    assert new is not None and new.leader == 3
    core.states[T0] = _state(1, (1,), epoch=1)
    assert core.decide(T0, Election.REASSIGN)[1] == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
