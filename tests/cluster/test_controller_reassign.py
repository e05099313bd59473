"""Partition reassignment (KIP-455) by the controller, against a real ZooKeeper and fake
brokers that record what the controller tells them."""

from __future__ import annotations

import json
from typing import Any

import trio

from kbroker.cluster import znodes
from kbroker.cluster.zk import ZkClient
from kbroker.cluster.znodes import PartitionState
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode
from tests.cluster.controller_kit import (
    LEADER_AND_ISR,
    STOP_REPLICA,
    create_started_topic,
    eventually,
    fake_brokers,
    running_controller,
    state,
)
from tests.cluster.fake_broker import FakeBroker


def _lai(f: FakeBroker) -> list[Any]:
    return [p for b in f.of(LEADER_AND_ISR) for t in b.topic_states for p in t.partition_states]


def _stops(f: FakeBroker) -> list[tuple[int, bool]]:
    return [
        (p.partition_index, p.delete_partition)
        for b in f.of(STOP_REPLICA)
        for t in b.topic_states
        for p in t.partition_states
    ]


async def _topic_json(zk: ZkClient, topic: str) -> dict[str, Any]:
    data, _ = await zk.get(znodes.topic_path(topic))
    return json.loads(data)  # type: ignore[no-any-return]


async def _isr_caught_up(zk: ZkClient, topic: str, p: int, isr: tuple[int, ...]) -> None:
    """What the leader does when followers catch up: a conditional ISR write and a
    notification for the controller (ZK-mode Partition.expandIsr)."""
    s = await state(zk, topic, p)
    assert s is not None
    await zk.set(
        znodes.partition_state_path(topic, p),
        PartitionState(
            leader=s.leader,
            leader_epoch=s.leader_epoch,
            isr=isr,
            controller_epoch=s.controller_epoch,
        ).encode(),
        s.zk_version,
    )
    await zk.create(
        f"{znodes.ISR_CHANGE_NOTIFICATION}/{znodes.ISR_CHANGE_PREFIX}",
        znodes.encode_partition_list([(topic, p)]),
        sequence=True,
    )


async def test_move_a_partition_off_its_leader(nursery: trio.Nursery, zk_connect: str) -> None:
    async with fake_brokers(nursery, zk_connect) as (fakes, regs):
        async with running_controller(
            nursery, zk_connect, 1, leader_imbalance_check_interval_seconds=3600
        ) as (ctl, zk, _):
            await create_started_topic(zk, "t", {0: [1], 1: [2]})
            s0 = await state(zk, "t", 0)
            assert s0 is not None
            assert await ctl.list_partition_reassignments(None) == {}

            results = await ctl.alter_partition_reassignments(
                {("t", 0): [2, 3], ("t", 1): None, ("t", 9): [1], ("t", 1 + 1000): []}
            )
            assert results[("t", 0)] == (0, None)
            assert results[("t", 1)] == (ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)
            assert results[("t", 9)] == (
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                "The partition does not exist.",
            )
            assert results[("t", 1001)][0] == ErrorCode.INVALID_REPLICA_ASSIGNMENT

            # Phase A: RS = TRS + ORS with AR and RR in the topic znode; a new leader epoch
            # to every replica of RS; the new replicas are told to follow broker 1.
            topic = await _topic_json(zk, "t")
            assert topic["partitions"]["0"] == [2, 3, 1]
            assert topic["adding_replicas"] == {"0": [2, 3]}
            assert topic["removing_replicas"] == {"0": [1]}
            assert topic["version"] == 3
            s = await state(zk, "t", 0)
            assert s is not None and (s.leader, s.isr, s.leader_epoch) == (
                1,
                (1,),
                s0.leader_epoch + 1,
            )
            for i in (1, 2, 3):
                f = fakes[i]
                await f.wait_for(
                    lambda f=f: any(
                        p.partition_index == 0 and list(p.replicas) == [2, 3, 1] and p.leader == 1
                        for p in _lai(f)
                    )
                )
            assert await ctl.list_partition_reassignments([("t", 0), ("t", 1)]) == {
                ("t", 0): ([2, 3, 1], [2, 3], [1])
            }

            # One target replica in the ISR is not enough.
            await _isr_caught_up(zk, "t", 0, (1, 2))
            await fakes[3].wait_for(
                lambda: any(p.partition_index == 0 and list(p.isr) == [1, 2] for p in _um(fakes[3]))
            )
            assert (await _topic_json(zk, "t"))["partitions"]["0"] == [2, 3, 1]
            assert not any(i == 0 for i, _ in _stops(fakes[1]))

            # Phase B once both are: leader 2 (first target replica in the ISR), broker 1
            # out of the ISR, stopped and deleted, and RS = TRS written last.
            await _isr_caught_up(zk, "t", 0, (1, 2, 3))

            async def done() -> bool:
                return (await _topic_json(zk, "t"))["partitions"]["0"] == [2, 3]

            await eventually(done)
            topic = await _topic_json(zk, "t")
            assert topic["adding_replicas"] == {} and topic["removing_replicas"] == {}
            assert topic["partitions"]["1"] == [2]
            s = await state(zk, "t", 0)
            assert s is not None and (s.leader, s.isr) == (2, (2, 3))
            await fakes[1].wait_for(lambda: _stops(fakes[1]) == [(0, False), (0, True)])
            assert not _stops(fakes[2]) and not _stops(fakes[3])
            await fakes[3].wait_for(
                lambda: any(
                    p.partition_index == 0 and p.leader == 2 and list(p.replicas) == [2, 3]
                    for p in _lai(fakes[3])
                )
            )
            assert await ctl.list_partition_reassignments(None) == {}


def _um(f: FakeBroker) -> list[Any]:
    return [p for b in f.of(6) for t in b.topic_states for p in t.partition_states]


async def test_cancel_reverts_and_a_new_controller_resumes(
    nursery: trio.Nursery, zk_connect: str
) -> None:
    async with fake_brokers(nursery, zk_connect) as (fakes, regs):
        async with running_controller(
            nursery, zk_connect, 1, leader_imbalance_check_interval_seconds=3600
        ) as (ctl, zk, scope):
            await create_started_topic(zk, "c", {0: [1, 2]})
            assert await ctl.alter_partition_reassignments({("c", 0): [3, 2]}) == {
                ("c", 0): (0, None)
            }
            assert (await _topic_json(zk, "c"))["partitions"]["0"] == [3, 2, 1]
            # A null replica list cancels: back to brokers 1 and 2 (in RS order minus AR, as
            # Kafka's ReplicaAssignment: the original order is not kept); broker 3, being
            # added, stops and deletes what it copied; leader 1 stays.
            assert await ctl.alter_partition_reassignments({("c", 0): None}) == {
                ("c", 0): (0, None)
            }
            topic = await _topic_json(zk, "c")
            assert topic["partitions"]["0"] == [2, 1]
            s = await state(zk, "c", 0)
            assert s is not None and (s.leader, s.isr) == (1, (1, 2))
            assert topic["adding_replicas"] == {} and topic["removing_replicas"] == {}
            await fakes[3].wait_for(lambda: (0, True) in _stops(fakes[3]))
            assert await ctl.list_partition_reassignments(None) == {}

            # Started again, then the controller dies: the next one finds the reassignment
            # in ZooKeeper and finishes it when the ISR has caught up.
            await ctl.alter_partition_reassignments({("c", 0): [3, 2]})
            scope.cancel()
        async with running_controller(
            nursery, zk_connect, 2, leader_imbalance_check_interval_seconds=3600
        ) as (ctl2, zk2, _):
            assert await ctl2.list_partition_reassignments(None) == {
                ("c", 0): ([3, 2, 1], [3], [1])
            }
            # (from [2, 1]: TRS [3, 2] first, then the rest of ORS)
            await _isr_caught_up(zk2, "c", 0, (1, 2, 3))

            async def done() -> bool:
                return (await _topic_json(zk2, "c"))["partitions"]["0"] == [3, 2]

            await eventually(done)
            s = await state(zk2, "c", 0)
            assert s is not None and (s.leader, s.isr) == (3, (2, 3))
            try:
                await ctl.list_partition_reassignments(None)
            except KafkaApiError as exc:
                assert exc.code == ErrorCode.NOT_CONTROLLER
            else:
                raise AssertionError("a deposed controller answered")


async def test_legacy_reassign_partitions_znode(nursery: trio.Nursery, zk_connect: str) -> None:
    """The pre-KIP-455 tools write /admin/reassign_partitions; the controller moves the
    partitions listed there and takes each out when done (the znode goes when empty);
    a partition that does not exist is taken out at once."""
    async with fake_brokers(nursery, zk_connect) as (fakes, regs):
        async with running_controller(
            nursery, zk_connect, 1, leader_imbalance_check_interval_seconds=3600
        ) as (ctl, zk, _):
            await create_started_topic(zk, "z", {0: [1], 1: [1]})
            await zk.create(
                znodes.REASSIGN_PARTITIONS,
                znodes.encode_reassignment({("z", 0): [2], ("z", 1): [3], ("gone", 0): [1]}),
            )

            async def both_moving() -> bool:
                return len(await ctl.list_partition_reassignments(None)) == 2

            await eventually(both_moving)
            assert await ctl.list_partition_reassignments(None) == {
                ("z", 0): ([2, 1], [2], [1]),
                ("z", 1): ([3, 1], [3], [1]),
            }

            async def gone_dropped() -> bool:
                data, _ = await zk.get(znodes.REASSIGN_PARTITIONS)
                return set(znodes.decode_reassignment(data)) == {("z", 0), ("z", 1)}

            await eventually(gone_dropped)
            # An API request for a partition supplants the znode's entry for it.
            assert await ctl.alter_partition_reassignments({("z", 1): [2]}) == {("z", 1): (0, None)}
            data, _ = await zk.get(znodes.REASSIGN_PARTITIONS)
            assert znodes.decode_reassignment(data) == {("z", 0): (2,)}
            await _isr_caught_up(zk, "z", 0, (1, 2))

            async def znode_gone() -> bool:
                return await zk.exists(znodes.REASSIGN_PARTITIONS) is None

            await eventually(znode_gone)
            assert (await _topic_json(zk, "z"))["partitions"] == {"0": [2], "1": [2, 1]}
            assert await ctl.list_partition_reassignments(None) == {("z", 1): ([2, 1], [2], [1])}
