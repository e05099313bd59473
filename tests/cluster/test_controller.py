"""The controller against a real ZooKeeper and fake brokers that record what they are told."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio

from kbroker.cluster import admin_zk, znodes
from kbroker.cluster.controller import PREFERRED
from kbroker.cluster.znodes import PartitionState
from kbroker.testing.zookeeper import ZooKeeperServer
from tests.cluster.controller_kit import (
    LEADER_AND_ISR,
    STOP_REPLICA,
    UPDATE_METADATA,
    create_started_topic,
    eventually,
    fake_brokers,
    register,
    running_controller,
    state,
)
from tests.cluster.fake_broker import FakeBroker
from tests.cluster.sessions import expire_session


async def test_one_controller_and_failover_bumps_the_epoch(
    nursery: trio.Nursery, zk_connect: str
) -> None:
    async with running_controller(nursery, zk_connect, 1) as (a, zka, scope_a):
        async with running_controller(nursery, zk_connect, 2, active=False) as (b, _zkb, _):

            async def b_sees_a() -> bool:
                return b.active_controller_id == 1

            await eventually(b_sees_a)
            assert a.is_active and not b.is_active and a.epoch == 1
            data, _ = await zka.get("/controller")
            assert json.loads(data)["brokerid"] == 1
            assert (await zka.get("/controller_epoch"))[0] == b"1"
            # The controller's broker dies: its session ends, /controller goes.
            scope_a.cancel()
            await zka.close()
            with trio.fail_after(15):
                await b.became_active.wait()
            assert b.epoch == 2 and b.active_controller_id == 2
            assert (await _zkb.get("/controller_epoch"))[0] == b"2"


async def test_topic_life_broker_death_and_return(nursery: trio.Nursery, zk_connect: str) -> None:
    async with fake_brokers(nursery, zk_connect) as (fakes, regs):
        async with running_controller(
            nursery, zk_connect, 1, leader_imbalance_check_interval_seconds=3600
        ) as (
            ctl,
            zk,
            _,
        ):
            assignment = {0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]}
            await create_started_topic(zk, "t", assignment)
            for p, replicas in assignment.items():
                s = await state(zk, "t", p)
                assert s is not None
                assert (s.leader, s.isr, s.leader_epoch, s.controller_epoch) == (
                    replicas[0],
                    tuple(replicas),
                    0,
                    1,
                )
            # Every replica hears about its partitions (as new), every broker the metadata.
            for f in fakes.values():
                await f.wait_for(lambda f=f: any(_lai_parts(b) for b in f.of(LEADER_AND_ISR)))
                parts = [p for b in f.of(LEADER_AND_ISR) for p in _lai_parts(b)]
                assert sorted((p.partition_index, p.leader) for p in parts) == [
                    (0, 1),
                    (1, 2),
                    (2, 3),
                ]
                assert all(p.is_new for p in parts)
                await f.wait_for(lambda f=f: any(_um_parts(b) for b in f.of(UPDATE_METADATA)))

            # Broker 1 dies: partition 0 moves to broker 2, the ISRs lose broker 1.
            await regs[1].close()

            async def moved() -> bool:
                s = await state(zk, "t", 0)
                return s is not None and s.leader == 2

            await eventually(moved)
            s0 = await state(zk, "t", 0)
            assert s0 is not None and (s0.isr, s0.leader_epoch, s0.controller_epoch) == (
                (2, 3),
                1,
                1,
            )
            s1 = await state(zk, "t", 1)
            assert s1 is not None and (s1.leader, s1.isr, s1.leader_epoch) == (2, (2, 3), 1)
            for i in (2, 3):
                f = fakes[i]
                await f.wait_for(
                    lambda f=f: any(
                        p.partition_index == 0 and p.leader == 2
                        for b in f.of(LEADER_AND_ISR)
                        for p in _lai_parts(b)
                    )
                )
                await f.wait_for(
                    lambda f=f: any(
                        p.partition_index == 0 and p.leader == 2 and list(p.offline_replicas) == [1]
                        for b in f.of(UPDATE_METADATA)
                        for p in _um_parts(b)
                    )
                )
            assert not any(
                p.leader == 2 and p.partition_index == 0
                for b in fakes[1].of(LEADER_AND_ISR)
                for p in _lai_parts(b)
            )

            # Broker 1 returns: it gets the full metadata and its replicas again.
            before = len(fakes[1].received)
            regs[1] = await register(zk_connect, fakes[1])
            f1 = fakes[1]
            await f1.wait_for(
                lambda: (
                    any(b.type == 1 and len(_lai_parts(b)) == 3 for b in f1.of(LEADER_AND_ISR)[-1:])
                    and len(f1.received) > before
                )
            )
            later = [b for k, b in f1.received[before:] if k == UPDATE_METADATA]
            assert later and sorted(x.id for x in later[0].live_brokers) == [1, 2, 3]

            # The leader of partition 0 takes broker 1 back into the ISR and says so.
            await zk.set(
                znodes.partition_state_path("t", 0),
                PartitionState(
                    leader=2, leader_epoch=1, isr=(2, 3, 1), controller_epoch=1
                ).encode(),
            )
            await zk.create(
                f"{znodes.ISR_CHANGE_NOTIFICATION}/{znodes.ISR_CHANGE_PREFIX}",
                znodes.encode_partition_list([("t", 0)]),
                sequence=True,
            )
            await fakes[3].wait_for(
                lambda: any(
                    p.partition_index == 0 and list(p.isr) == [2, 3, 1]
                    for b in fakes[3].of(UPDATE_METADATA)
                    for p in _um_parts(b)
                )
            )
            # A preferred election brings leadership back to broker 1.
            result = await ctl.elect_leaders([("t", 0), ("t", 1), ("nope", 0)], PREFERRED)
            assert result[("t", 0)][0] == 0
            assert result[("t", 1)][0] == 84  # ELECTION_NOT_NEEDED: broker 2 is preferred
            assert result[("nope", 0)][0] == 3
            s0 = await state(zk, "t", 0)
            assert s0 is not None and (s0.leader, s0.leader_epoch) == (1, 2)

            # Controlled shutdown of broker 2: what it leads moves away first.
            remaining = await ctl.controlled_shutdown(2, regs_epoch := -1)
            assert remaining == [] and regs_epoch == -1
            s1 = await state(zk, "t", 1)
            assert s1 is not None and s1.leader == 3 and 2 not in s1.isr

            # Deletion: every replica is told to delete, then the znodes go.
            await admin_zk.delete_topic(zk, "t")

            async def deleted() -> bool:
                return await zk.exists(znodes.topic_path("t")) is None

            await eventually(deleted)
            assert await zk.get_children(znodes.DELETE_TOPICS) == []
            assert await zk.exists(znodes.topic_config_path("t")) is None
            for f in fakes.values():
                await f.wait_for(
                    lambda f=f: any(
                        p.delete_partition
                        for b in f.of(STOP_REPLICA)
                        for t in b.topic_states
                        for p in t.partition_states
                    )
                )


async def test_zombie_controller_writes_are_fenced(nursery: trio.Nursery, zk_connect: str) -> None:
    fake = FakeBroker(1)
    await nursery.start(fake.serve)
    reg = await register(zk_connect, fake)
    async with running_controller(nursery, zk_connect, 1) as (ctl, zk, _):
        # The epoch moved on under the controller (as when a successor takes over): its
        # next write must fail. It then resigns and, still holding /controller here,
        # starts a new term from the current epoch, so the write lands with epoch 8.
        await zk.set(znodes.CONTROLLER_EPOCH, b"7")
        await admin_zk.create_topic(zk, "z", {0: [1]})

        async def written() -> bool:
            return await state(zk, "z", 0) is not None

        await eventually(written)
        s = await state(zk, "z", 0)
        assert s is not None and s.controller_epoch == 8 and s.zk_version == 0
        assert ctl.is_active and ctl.epoch == 8
        assert (await zk.get(znodes.CONTROLLER_EPOCH))[0] == b"8"
    await reg.close()
    fake.stop()


async def test_session_loss_resigns_then_campaigns_again(
    nursery: trio.Nursery, zk_connect: str
) -> None:
    async with running_controller(nursery, zk_connect, 1) as (ctl, zk, _):
        await expire_session(zk, zk_connect)

        async def lost_then_back() -> bool:
            return ctl.epoch == 2 and ctl.is_active

        await eventually(lost_then_back, timeout=20)
        data, _ = await zk.get("/controller")
        assert json.loads(data)["brokerid"] == 1


async def test_cut_off_from_zookeeper_it_stops_acting_then_comes_back(
    nursery: trio.Nursery,
) -> None:
    # Its own server, frozen with SIGSTOP: the controller's session cannot be renewed.
    with ZooKeeperServer() as server:
        async with running_controller(
            nursery, server.connect_string, 1, zookeeper_session_timeout_ms=2000
        ) as (ctl, _zk, _):
            server.pause()
            try:
                cut = trio.current_time()

                async def resigned() -> bool:
                    return not ctl.is_active

                await eventually(resigned, timeout=15)
                # Disconnection noticed (< 2/3 of the session) + the session timeout.
                assert trio.current_time() - cut < 2 + 2 + 2
            finally:
                server.resume()

            async def back() -> bool:
                return ctl.is_active and ctl.epoch == 2

            await eventually(back, timeout=30)


def _lai_parts(body: Any) -> list[Any]:
    return [p for t in body.topic_states for p in t.partition_states]


def _um_parts(body: Any) -> list[Any]:
    return [p for t in body.topic_states for p in t.partition_states]


async def test_auto_rebalance_returns_leadership_and_deletion_waits_for_replicas(
    nursery: trio.Nursery, zk_connect: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kbroker.cluster.controller")
    async with fake_brokers(nursery, zk_connect, (1, 2)) as (fakes, regs):
        async with running_controller(
            nursery, zk_connect, 9, leader_imbalance_check_interval_seconds=0.5
        ) as (_ctl, zk, _):
            await admin_zk.create_topic(zk, "r", {0: [1, 2], 1: [2, 1]})

            async def led_by(p: int, broker: int) -> bool:
                s = await state(zk, "r", p)
                return s is not None and s.leader == broker

            await eventually(lambda: led_by(0, 1))
            await regs[1].close()  # broker 1 dies: partition 0 goes to broker 2
            await eventually(lambda: led_by(0, 2))
            regs[1] = await register(zk_connect, fakes[1])
            # Broker 2, leading, takes broker 1 back into the ISR once it has caught up.
            s0 = await state(zk, "r", 0)
            assert s0 is not None and s0.isr == (2,)
            await zk.set(
                znodes.partition_state_path("r", 0),
                PartitionState(
                    leader=2, leader_epoch=s0.leader_epoch, isr=(2, 1), controller_epoch=1
                ).encode(),
                version=s0.zk_version,
            )
            await zk.create(
                f"{znodes.ISR_CHANGE_NOTIFICATION}/{znodes.ISR_CHANGE_PREFIX}",
                znodes.encode_partition_list([("r", 0)]),
                sequence=True,
            )
            # The periodic imbalance check hands partition 0 back to its preferred leader.
            await eventually(lambda: led_by(0, 1))

            # A topic with a replica on a dead broker is deleted only when it returns.
            await regs[2].close()
            # Partition 1's ISR is broker 2 alone: no clean leader is left.
            await eventually(lambda: led_by(1, -1))
            await admin_zk.delete_topic(zk, "r")

            # The controller has taken the deletion up and decided to wait (what it logs
            # then); nothing of the topic is deleted, not even on the live replica.
            async def deferred() -> bool:
                return any(
                    rec.getMessage() == "controller: deletion of r waits for its replicas"
                    for rec in caplog.records
                )

            await eventually(deferred)
            assert await zk.exists(znodes.topic_path("r")) is not None
            assert not any(
                p.delete_partition
                for body in fakes[1].of(STOP_REPLICA)
                for t in body.topic_states
                for p in t.partition_states
            )
            regs[2] = await register(zk_connect, fakes[2])

            async def gone() -> bool:
                return await zk.exists(znodes.topic_path("r")) is None

            await eventually(gone)
