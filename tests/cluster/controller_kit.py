"""The controller tests' kit: fake brokers registered in ZooKeeper, a running Controller
on its own session, and waiting for what it writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from kbroker.cluster import admin_zk, znodes
from kbroker.cluster.controller import Controller
from kbroker.cluster.zk import ZkClient
from kbroker.cluster.znodes import BrokerRegistration, PartitionState
from tests.cluster.fake_broker import FakeBroker

# API keys of the requests the controller sends (org.apache.kafka.common.protocol.ApiKeys).
LEADER_AND_ISR, STOP_REPLICA, UPDATE_METADATA = 4, 5, 6


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    with trio.fail_after(timeout):
        while not await check():
            await trio.sleep(0.05)


async def register(zk_connect: str, fake: FakeBroker) -> ZkClient:
    """A broker registration in its own session (closing it is the broker dying)."""
    zk = await ZkClient.connect(zk_connect, session_timeout_ms=4000)
    reg = BrokerRegistration(
        broker_id=fake.broker_id,
        host="127.0.0.1",
        port=fake.port,
        endpoints=(f"PLAINTEXT://127.0.0.1:{fake.port}",),
    )
    await zk.ensure_path(znodes.BROKER_IDS)
    await zk.create(znodes.broker_path(fake.broker_id), reg.encode(), ephemeral=True)
    return zk


async def state(zk: ZkClient, topic: str, p: int) -> PartitionState | None:
    try:
        data, stat = await zk.get(znodes.partition_state_path(topic, p))
    except Exception:
        return None
    return PartitionState.decode(data, stat.version)


@asynccontextmanager
async def running_controller(
    nursery: trio.Nursery, zk_connect: str, broker_id: int, *, active: bool = True, **config: Any
) -> AsyncIterator[tuple[Controller, ZkClient, trio.CancelScope]]:
    """A running Controller on its own session; ``active``: wait until it is the controller."""
    session_ms = config.setdefault("zookeeper_session_timeout_ms", 4000)
    zk = await ZkClient.connect(zk_connect, session_timeout_ms=session_ms)
    ctl = Controller(
        zk, broker_id=broker_id, config={k.replace("_", "."): v for k, v in config.items()}
    )
    scope = trio.CancelScope()

    async def run() -> None:
        with scope:
            await ctl.run()

    nursery.start_soon(run)
    try:
        if active:
            with trio.fail_after(15):
                await ctl.became_active.wait()
        yield ctl, zk, scope
    finally:
        scope.cancel()
        await zk.close()


@asynccontextmanager
async def fake_brokers(
    nursery: trio.Nursery, zk_connect: str, ids: tuple[int, ...] = (1, 2, 3)
) -> AsyncIterator[tuple[dict[int, FakeBroker], dict[int, ZkClient]]]:
    """Fake brokers ``ids`` serving and registered, each in its own session: the fakes and
    their registration sessions by id (close one to kill that broker; put a new session
    in its place to bring it back). All are closed and stopped on the way out."""
    fakes = {i: FakeBroker(i) for i in ids}
    for f in fakes.values():
        await nursery.start(f.serve)
    regs = {i: await register(zk_connect, f) for i, f in fakes.items()}
    try:
        yield fakes, regs
    finally:
        for r in regs.values():
            await r.close()
        for f in fakes.values():
            f.stop()


async def create_started_topic(zk: ZkClient, topic: str, assignment: dict[int, list[int]]) -> None:
    """Create ``topic`` and wait until the controller has written every partition's state."""
    await admin_zk.create_topic(zk, topic, assignment)

    async def started() -> bool:
        return all([await state(zk, topic, p) is not None for p in assignment])

    await eventually(started)
