"""ZkClient against a real ZooKeeper: operations, fenced multi, watches, chroot, sessions."""

from __future__ import annotations

import pytest
import trio
from kazoo.client import KazooClient

from kbroker.cluster.zk import (
    BadVersion,
    CheckOp,
    CreateOp,
    NodeExists,
    NoNode,
    SessionState,
    SetOp,
    ZkClient,
    ZkUnavailable,
    split_chroot,
)
from tests.cluster.sessions import expire_session


def test_split_chroot() -> None:
    assert split_chroot("h1:2181,h2:2181/kbroker/a") == ("h1:2181,h2:2181", "/kbroker/a")
    assert split_chroot("h1:2181") == ("h1:2181", "")
    assert split_chroot("h1:2181/") == ("h1:2181", "")


async def test_basic_operations_and_missing_chroot_is_created(zk_connect: str) -> None:
    async with await ZkClient.connect(zk_connect, session_timeout_ms=6000) as zk:
        await zk.create("/a/b", b"x", makepath=True)
        data, stat = await zk.get("/a/b")
        assert data == b"x" and stat.version == 0
        with pytest.raises(NodeExists):
            await zk.create("/a/b", b"y")
        stat = await zk.set("/a/b", b"y", version=0)
        assert stat.version == 1
        with pytest.raises(BadVersion):
            await zk.set("/a/b", b"z", version=0)
        seq = await zk.create("/a/s_", sequence=True)
        assert seq.startswith("/a/s_") and len(seq) == len("/a/s_") + 10
        assert sorted(await zk.get_children("/a")) == ["b", seq.rsplit("/", 1)[1]]
        await zk.delete("/a", recursive=True)
        assert await zk.exists("/a") is None
        with pytest.raises(NoNode):
            await zk.get("/a")
    # The chroot exists at the server root, and our znodes were made inside it.
    hosts, chroot = split_chroot(zk_connect)
    raw = KazooClient(hosts=hosts)
    raw.start(10)
    try:
        assert raw.exists(chroot) is not None
    finally:
        raw.stop()
        raw.close()


async def test_multi_is_all_or_nothing(zk_connect: str) -> None:
    async with await ZkClient.connect(zk_connect) as zk:
        await zk.create("/epoch", b"1")
        # A fenced write: only if /epoch is still at version 0.
        await zk.multi([CheckOp("/epoch", 0), CreateOp("/x", b"1")])
        assert (await zk.get("/x"))[0] == b"1"
        await zk.set("/epoch", b"2")  # another controller took over
        with pytest.raises(BadVersion):
            await zk.multi([CheckOp("/epoch", 0), SetOp("/x", b"zombie")])
        assert (await zk.get("/x"))[0] == b"1"


async def test_ephemeral_goes_with_the_session(zk_connect: str) -> None:
    async with await ZkClient.connect(zk_connect) as watcher:
        await watcher.ensure_path("/ids")
        children = await watcher.watch_children("/ids")
        assert await children.receive() == []
        other = await ZkClient.connect(zk_connect)
        await other.create("/ids/1", b"{}", ephemeral=True)
        with trio.fail_after(10):
            assert await children.receive() == ["1"]
        await other.close()
        with trio.fail_after(10):
            assert await children.receive() == []


async def test_watch_data_sees_create_change_delete(zk_connect: str) -> None:
    async with await ZkClient.connect(zk_connect) as zk:
        updates = await zk.watch_data("/node")
        with trio.fail_after(10):
            assert await updates.receive() == (None, None)
            await zk.create("/node", b"a")
            data, stat = await updates.receive()
            assert data == b"a" and stat is not None
            await zk.set("/node", b"b")
            assert (await updates.receive())[0] == b"b"
            await zk.delete("/node")
            assert await updates.receive() == (None, None)


async def test_unreachable_zookeeper_fails_within_the_connection_timeout() -> None:
    with trio.socket.socket() as s:  # a port nobody listens on
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = trio.current_time()
    with pytest.raises(ZkUnavailable):
        await ZkClient.connect(f"127.0.0.1:{port}", connection_timeout_ms=1500)
    assert trio.current_time() - start < 10


async def test_session_expiry_is_reported_and_the_session_comes_back(zk_connect: str) -> None:
    async with await ZkClient.connect(zk_connect, session_timeout_ms=2000) as zk:
        events = zk.session_events()
        await zk.create("/eph", ephemeral=True)
        # Expire the session the way ZooKeeper does when a broker is cut off: another
        # client with the same session id and password closes it.
        await expire_session(zk, zk_connect)
        seen = []
        with trio.fail_after(20):
            while SessionState.CONNECTED not in seen or SessionState.LOST not in seen:
                seen.append(await events.receive())
        assert seen[-1] == SessionState.CONNECTED  # a new session after the LOST one
        assert await zk.exists("/eph") is None  # the old session's ephemeral is gone
        await zk.create("/eph", ephemeral=True)  # and the new session works
