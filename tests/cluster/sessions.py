"""Test helper: end a ZooKeeper session from outside, as the server does to a broker
that went quiet for longer than its session timeout."""

from __future__ import annotations

import trio
from kazoo.client import KazooClient

from kbroker.cluster.zk import ZkClient


async def expire_session(zk: ZkClient, connect_string: str) -> None:
    """Another client attaches to the same session (id and password) and closes it:
    the server expires it, and the owner learns so when it reconnects (LOST)."""
    sid, passwd = zk._client.client_id
    thief = KazooClient(hosts=connect_string, client_id=(sid, passwd))
    await trio.to_thread.run_sync(thief.start, 10)
    await trio.to_thread.run_sync(thief.stop)
    thief.close()
