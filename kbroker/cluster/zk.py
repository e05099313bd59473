"""A Trio-friendly ZooKeeper client: kazoo underneath, never blocking the event loop.

kazoo runs its own connection and callback threads. Every blocking kazoo call here goes
through ``trio.to_thread.run_sync``; watch and session callbacks (which kazoo runs on its
threads) are handed to the Trio loop with ``TrioToken.run_sync_soon`` and land in memory
channels. ``run_sync_soon`` rather than ``trio.from_thread.run_sync``: it queues the call
and returns at once (FIFO, so snapshots keep their order), so a busy Trio loop never
stalls kazoo's threads, which also deliver the pings that keep the session alive.

Errors are translated to this module's exception tree so callers need not import kazoo.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import trio
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    ZookeeperError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo.retry import KazooRetry

__all__ = [
    "BadVersion",
    "CheckOp",
    "CreateOp",
    "DeleteOp",
    "NoNode",
    "NodeExists",
    "NotEmpty",
    "SessionState",
    "SetOp",
    "Stat",
    "ZkClient",
    "ZkError",
    "ZkUnavailable",
    "split_chroot",
]

log = logging.getLogger(__name__)

Stat: TypeAlias = ZnodeStat  # .version, .czxid, .mzxid, .ephemeralOwner, .numChildren ...


class ZkError(Exception):
    """Base of every ZooKeeper failure this module raises."""

    # For a failed multi(): the index of the operation that failed (e.g. 0 for a
    # fencing CheckOp placed first), else None.
    failed_op: int | None = None


class ZkUnavailable(ZkError):
    """ZooKeeper could not be reached (in time), or the connection is gone."""


class NoNode(ZkError):
    pass


class NodeExists(ZkError):
    pass


class BadVersion(ZkError):
    """A conditional write's expected version did not match: someone else wrote first."""


class NotEmpty(ZkError):
    pass


class SessionState:
    """What ``session_events`` reports, kazoo's KazooState names."""

    CONNECTED = "CONNECTED"  # connected, the session is valid
    SUSPENDED = "SUSPENDED"  # disconnected; the session may still come back
    LOST = "LOST"  # the session expired: every ephemeral znode and watch of it is gone


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, NoNodeError):
        return NoNode(str(exc) or "no node")
    if isinstance(exc, NodeExistsError):
        return NodeExists(str(exc) or "node exists")
    if isinstance(exc, BadVersionError):
        return BadVersion(str(exc) or "bad version")
    if isinstance(exc, NotEmptyError):
        return NotEmpty(str(exc) or "not empty")
    if isinstance(exc, KazooTimeoutError | ZookeeperError | KazooException):
        return ZkUnavailable(f"{type(exc).__name__}: {exc}")
    return exc


# --- multi() operations --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckOp:
    path: str
    version: int


@dataclass(frozen=True, slots=True)
class CreateOp:
    path: str
    value: bytes = b""
    ephemeral: bool = False
    sequence: bool = False


@dataclass(frozen=True, slots=True)
class SetOp:
    path: str
    value: bytes
    version: int = -1


@dataclass(frozen=True, slots=True)
class DeleteOp:
    path: str
    version: int = -1


Op = CheckOp | CreateOp | SetOp | DeleteOp


def split_chroot(connect_string: str) -> tuple[str, str]:
    """``h1:2181,h2:2181/kbroker`` -> (``h1:2181,h2:2181``, ``/kbroker``); no chroot -> ''."""
    hosts, slash, chroot = connect_string.partition("/")
    chroot = ("/" + chroot).rstrip("/") if slash else ""
    return hosts, chroot


class ZkClient:
    """One ZooKeeper session (re-established by kazoo after expiry) and its watches."""

    def __init__(self, client: KazooClient, token: trio.lowlevel.TrioToken) -> None:
        self._client = client
        self._token = token
        self._session_channels: list[trio.MemorySendChannel[str]] = []
        self._closed = False
        client.add_listener(self._on_state)

    @classmethod
    async def connect(
        cls,
        connect_string: str,
        *,
        session_timeout_ms: int = 18000,
        connection_timeout_ms: int | None = None,
    ) -> ZkClient:
        """Connect (creating a missing chroot, as Kafka does) or raise ZkUnavailable."""
        if connection_timeout_ms is None:
            connection_timeout_ms = session_timeout_ms
        hosts, chroot = split_chroot(connect_string)
        if chroot:
            # The chroot must exist before a chrooted session can use it: create it
            # through a session without one (Kafka's KafkaZkClient.createChrootIfNecessary).
            plain = await cls._start(hosts, session_timeout_ms, connection_timeout_ms)
            try:
                await trio.to_thread.run_sync(plain.ensure_path, chroot)
            except KazooException as exc:
                raise _translate(exc) from exc
            finally:
                await trio.to_thread.run_sync(cls._stop, plain)
        client = await cls._start(hosts + chroot, session_timeout_ms, connection_timeout_ms)
        return cls(client, trio.lowlevel.current_trio_token())

    @staticmethod
    async def _start(
        hosts: str, session_timeout_ms: int, connection_timeout_ms: int
    ) -> KazooClient:
        client = KazooClient(
            hosts=hosts,
            timeout=session_timeout_ms / 1000,
            # Reconnect forever after the first connection; a broker keeps trying.
            connection_retry=KazooRetry(max_tries=-1, max_delay=1.0),
            command_retry=KazooRetry(max_tries=3, max_delay=1.0),
        )
        try:
            await trio.to_thread.run_sync(client.start, connection_timeout_ms / 1000)
        except (KazooTimeoutError, KazooException, OSError) as exc:
            await trio.to_thread.run_sync(ZkClient._stop, client)
            raise ZkUnavailable(
                f"Timed out waiting for connection to ZooKeeper at {hosts} "
                f"after {connection_timeout_ms} ms"
            ) from exc
        return client

    @staticmethod
    def _stop(client: KazooClient) -> None:
        try:
            client.stop()
        finally:
            client.close()

    async def close(self) -> None:
        """End the session (its ephemeral znodes go at once) and the watch channels."""
        if self._closed:
            return
        self._closed = True
        await trio.to_thread.run_sync(self._stop, self._client)
        for ch in self._session_channels:
            ch.close()

    async def __aenter__(self) -> ZkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    @property
    def session_id(self) -> int | None:
        sid = self._client.client_id
        return None if sid is None else int(sid[0])

    # --- plain operations -----------------------------------------------------------

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            return fn(*args, **kwargs)

        try:
            return await trio.to_thread.run_sync(run, abandon_on_cancel=True)
        except (KazooException, KazooTimeoutError) as exc:
            raise _translate(exc) from exc

    async def get(self, path: str) -> tuple[bytes, Stat]:
        data, stat = await self._call(self._client.get, path)
        return data or b"", stat

    async def get_children(self, path: str) -> list[str]:
        return list(await self._call(self._client.get_children, path))

    async def exists(self, path: str) -> Stat | None:
        return await self._call(self._client.exists, path)

    async def create(
        self,
        path: str,
        value: bytes = b"",
        *,
        ephemeral: bool = False,
        sequence: bool = False,
        makepath: bool = False,
    ) -> str:
        """Create a znode; returns its actual path (with the sequence suffix, if any)."""
        return str(
            await self._call(
                self._client.create,
                path,
                value,
                ephemeral=ephemeral,
                sequence=sequence,
                makepath=makepath,
            )
        )

    async def ensure_path(self, path: str) -> None:
        await self._call(self._client.ensure_path, path)

    async def set(self, path: str, value: bytes, version: int = -1) -> Stat:
        return await self._call(self._client.set, path, value, version)

    async def delete(self, path: str, version: int = -1, *, recursive: bool = False) -> None:
        await self._call(self._client.delete, path, version, recursive)

    async def multi(self, ops: Sequence[Op]) -> list[Any]:
        """All of ``ops`` or none (ZooKeeper's multi). Raises the failing op's error, with
        ``failed_op`` set to its index."""

        def run() -> list[Any]:
            tx = self._client.transaction()
            for op in ops:
                if isinstance(op, CheckOp):
                    tx.check(op.path, op.version)
                elif isinstance(op, CreateOp):
                    tx.create(op.path, op.value, ephemeral=op.ephemeral, sequence=op.sequence)
                elif isinstance(op, SetOp):
                    tx.set_data(op.path, op.value, op.version)
                else:
                    tx.delete(op.path, op.version)
            return list(tx.commit())

        try:
            results = await trio.to_thread.run_sync(run, abandon_on_cancel=True)
        except (KazooException, KazooTimeoutError) as exc:
            raise _translate(exc) from exc
        for i, r in enumerate(results):
            if isinstance(r, Exception) and not isinstance(r, RolledBackError):
                err = _translate(r)
                if isinstance(err, ZkError):
                    err.failed_op = i
                raise err
        for r in results:
            if isinstance(r, Exception):
                raise _translate(r)
        return results

    # --- watches and session events --------------------------------------------------

    def _deliver(
        self, send: trio.MemorySendChannel[Any], item: Any, gone: list[bool] | None = None
    ) -> None:
        """Called on a kazoo thread: queue ``item`` into ``send`` on the Trio loop.
        ``gone`` is set once the reader has closed its end, so the watch can stop."""

        def put() -> None:
            try:
                send.send_nowait(item)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                if gone is not None:
                    gone.append(True)

        try:
            self._token.run_sync_soon(put)
        except trio.RunFinishedError:
            pass

    def _on_state(self, state: str) -> None:
        name = {
            KazooState.CONNECTED: SessionState.CONNECTED,
            KazooState.SUSPENDED: SessionState.SUSPENDED,
            KazooState.LOST: SessionState.LOST,
        }.get(state, str(state))
        for ch in list(self._session_channels):
            self._deliver(ch, name)

    def session_events(self) -> trio.MemoryReceiveChannel[str]:
        """A channel of SessionState changes from now on (CONNECTED after a LOST is a
        new session: re-create ephemeral znodes)."""
        send, recv = trio.open_memory_channel[str](math.inf)
        self._session_channels.append(send)
        return recv

    async def watch_children(self, path: str) -> trio.MemoryReceiveChannel[list[str]]:
        """A channel of the children of ``path``: the current list at once, then one list
        per change (re-armed across session loss). The path is created if missing."""
        await self.ensure_path(path)
        send, recv = trio.open_memory_channel[list[str]](math.inf)
        gone: list[bool] = []

        def on_children(children: list[str]) -> bool | None:
            if gone:  # the reader went away: returning False ends kazoo's watch
                return False
            self._deliver(send, sorted(children), gone)
            return None

        await self._call(ChildrenWatch, self._client, path, on_children)
        return recv

    async def watch_data(
        self, path: str
    ) -> trio.MemoryReceiveChannel[tuple[bytes | None, Stat | None]]:
        """A channel of (data, stat) of ``path``: now, then on each change; (None, None)
        while it does not exist."""
        send, recv = trio.open_memory_channel[tuple[bytes | None, Stat | None]](math.inf)
        gone: list[bool] = []

        def on_data(data: bytes | None, stat: Stat | None) -> bool | None:
            if gone:
                return False
            self._deliver(send, (data, stat), gone)
            return None

        await self._call(DataWatch, self._client, path, on_data)
        return recv
