"""The TCP server: connections, framing, dispatch, ordering, shutdown, maintenance.

How it works:

- ``serve`` opens the ``BrokerState`` (data dir, logs), binds with ``trio.open_tcp_listeners``
  and reports a ``Server`` (bound ``address``, ``broker``, ``config``) through
  ``task_status``. Cancelling ``serve`` closes the broker; ``Server.shutdown()``
  does it gracefully (stop accepting, let in-flight requests finish within
  ``grace_s``, then close the logs with their clean-shutdown markers).
- One ``Connection`` per socket owns the frame decoder and the connection's
  state. It handles one request at a time, as Kafka's SocketServer does (it
  mutes a channel until its response is sent): responses leave in request
  order and a connection's produce requests apply in order, which idempotent
  producers rely on.
- Anything wrong on a connection (bad frame size, undecodable request, an API
  or version we do not serve, a handler bug, a broken socket, idleness beyond
  ``connections.max.idle.ms``) is logged with the peer address and closes that
  connection only. Idleness is time spent waiting on the client with no progress:
  for its next request, or for it to read a response it leaves unread (the one
  response a connection can have queued, since it reads nothing meanwhile).
- A request that may wait (long-poll Fetch, JoinGroup, SyncGroup) is cancelled
  when the peer closes its end meanwhile, so its socket and buffers are released
  at once rather than when the wait ends.
- Limits on what clients can hold: ``max.connections`` (the acceptor waits for a
  free slot, as Kafka's ConnectionQuotas does), ``max.connections.per.ip`` (a
  connection beyond it is closed at once), ``queued.max.request.bytes`` (beyond it
  no connection starts reading a new request until memory frees up). The one exception is KIP-511: an ApiVersions request of a
  version we do not know gets UNSUPPORTED_VERSION in a v0 body and the
  connection stays open so the client can retry with a version we do know.
- A maintenance task runs retention every ``log.retention.check.interval.ms``,
  compaction every ``log.cleaner.backoff.ms`` and time-based flushes by
  ``flush.ms``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import select
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from kbroker.broker import BrokerState, logged_failure
from kbroker.config import BrokerConfig, ConfigError, Listener, parse_ip_overrides
from kbroker.coordinator import service as group_service
from kbroker.failures import warn_rate_limited
from kbroker.handlers import CloseConnection, RequestContext, load_handlers, lookup
from kbroker.handlers.quotas import apply_request_quota
from kbroker.log.segment import pread_exact
from kbroker.partition_limits import raise_fd_limit
from kbroker.quotas import QuotaManager, quota_manager
from kbroker.replication.checkpoints import HIGH_WATERMARK_CHECKPOINT_INTERVAL_S
from kbroker.txn import service as txn_service
from kbroker.wire.errors import DecodeError, UnsupportedVersion
from kbroker.wire.frames import FrameDecoder
from kbroker.wire.messages import FetchRequest, JoinGroupRequest, SyncGroupRequest
from kbroker.wire.protocol import (
    API_VERSIONS,
    decode_request,
    encode_response,
    encode_response_parts,
)

logger = logging.getLogger(__name__)

# The first read of a request goes to the connection's buffer for large requests when
# it is free (FrameDecoder.start_buffer: all of it while the requests are large, so that
# one that has arrived whole takes one read; else this much), or else to a shared buffer
# of this size copied from (its size is not known yet); the rest of a large request is
# read in place. Keeping this read at the in-place threshold (wire.frames.LARGE_FRAME)
# bounds that copy to 64 KiB, and what pipelined small requests have read at a time.
RECEIVE_SIZE = 64 * 1024
SEND_COALESCE = 1024 * 1024
SENDFILE_MIN = 32 * 1024
SENDFILE_CHUNK = 4 * 1024 * 1024
DEFAULT_GRACE_S = 10.0
# Requests whose handler can wait for a long time (Fetch's max_wait_ms reaches
# 2^31-1 ms): while they wait, a closed peer is watched for.
_MAY_WAIT = frozenset({FetchRequest.API_KEY, JoinGroupRequest.API_KEY, SyncGroupRequest.API_KEY})
# accept(2) errors that mean "out of descriptors or memory": wait and retry
# (the same set and pause as trio.serve_listeners).
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_RETRY_S = 0.1


class _CloseConnection(Exception):
    """The connection must close; the reason was already logged."""


class SendStalled(Exception):
    """The peer read nothing of a response for longer than the idle limit."""


def _format_peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def _strip_mapped(host: str) -> str:
    # An IPv4 client of a dual-stack socket shows up as ::ffff:a.b.c.d.
    return host[7:] if host.startswith("::ffff:") and "." in host else host


@dataclass(eq=False)
class Server:
    """A running server: ``address`` actually bound, its ``broker`` and ``config``."""

    address: tuple[str, int]
    broker: BrokerState
    config: BrokerConfig
    # Every listener's bound (host, port) by listener name; ``address`` is the first's.
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    grace_s: float = DEFAULT_GRACE_S
    connections: set[Connection] = field(default_factory=set)
    draining: bool = False
    # kbroker.stats.RequestObserver.observe, called after each request when set (the HTTP
    # listener's metrics, DEBUG request logs); None costs the Kafka path nothing.
    observer: Any = None
    # kbroker.stats.BrokerStats and the HTTP listener's bound address, when it is on.
    stats: Any = None
    http_address: tuple[str, int] | None = None
    _accept_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    _shutdown_requested: trio.Event = field(default_factory=trio.Event)
    _all_closed: trio.Event = field(default_factory=trio.Event)
    # Connections per client address (max.connections.per.ip) and a wake-up for an
    # acceptor waiting for a slot (max.connections).
    per_ip: dict[str, int] = field(default_factory=dict)
    # max.connections.per.ip.overrides, host names resolved (as Kafka's
    # ConnectionQuotas does with InetAddress.getByName).
    ip_overrides: dict[str, int] = field(default_factory=dict)
    _slot_freed: trio.Event = field(default_factory=trio.Event)
    # Bytes of requests received and not yet answered, over all connections
    # (queued.max.request.bytes), and a wake-up for readers waiting for memory.
    request_bytes: int = 0
    # Made by the first reader that waits for memory: a release with nobody waiting
    # (every request, usually) then builds and sets no Event.
    _memory_freed: trio.Event | None = None
    # connections.max.idle.ms: the connections waiting for bytes from their client, each
    # with the time its wait began. An entry is made when a wait begins and removed when
    # it ends, so dict order is oldest first (Kafka's Selector keeps the same kind of LRU,
    # its IdleExpiryManager). close_idle_connections watches them.
    waiting: dict[Connection, float] = field(default_factory=dict)

    def hold_request_bytes(self, n: int) -> None:
        self.request_bytes += n

    def release_request_bytes(self, n: int) -> None:
        if n:
            self.request_bytes -= n
            freed = self._memory_freed
            if freed is not None:
                self._memory_freed = None
                freed.set()

    async def wait_for_request_memory(self) -> None:
        """queued.max.request.bytes: wait while requests in flight hold that much."""
        limit = self.config["queued.max.request.bytes"]
        while 0 < limit <= self.request_bytes:
            freed = self._memory_freed
            if freed is None:
                freed = self._memory_freed = trio.Event()
            await freed.wait()

    async def close_idle_connections(self) -> None:
        """connections.max.idle.ms: end the waits for a client that lasted that long (the
        connection then closes).

        One task for every connection instead of a trio deadline per wait: a cancel scope
        with a deadline, entered and left once per request of a client that waits for
        each answer, cost ~40 k instructions per request (scope and deadline bookkeeping,
        and the deadline heap's stale entries), a sixth of a 1-record produce.
        """
        idle_s = self.config.connections_max_idle_s
        waiting = self.waiting
        while True:
            now = trio.current_time()
            # A wait that begins after this point ends no sooner than this.
            wake = now + idle_s
            while waiting:
                connection, since = next(iter(waiting.items()))
                if since + idle_s > now:
                    wake = since + idle_s
                    break
                del waiting[connection]
                connection.end_wait()
            await trio.sleep_until(wake)

    def connection_closed(self, ip: str) -> None:
        left = self.per_ip.get(ip, 0) - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)
        self._slot_freed.set()
        self._slot_freed = trio.Event()

    async def wait_for_connection_slot(self) -> None:
        """max.connections: Kafka's acceptor waits for a slot (the backlog holds the rest)."""
        while len(self.connections) >= self.config["max.connections"]:
            await self._slot_freed.wait()

    async def controlled_shutdown(self) -> None:
        """Cluster mode with controlled.shutdown.enable: have the controller move the
        leadership of our partitions to other brokers first (Kafka's controlled
        shutdown); nothing to do on a single node."""
        cluster = self.broker.cluster
        if cluster is not None and self.config["controlled.shutdown.enable"]:
            await cluster.controlled_shutdown()

    def shutdown(self) -> None:
        """Stop accepting, close idle connections, let busy ones finish their request."""
        if self.draining:
            return
        logger.info(
            "shutting down: no new connections, finishing %d in-flight request(s)",
            sum(1 for c in self.connections if c.busy),
        )
        self.draining = True
        self._accept_scope.cancel()
        for connection in list(self.connections):
            connection.stop_reading()
        self._shutdown_requested.set()
        self._check_drained()

    def _check_drained(self) -> None:
        if self.draining and not self.connections:
            self._all_closed.set()


async def _mute(ctx: RequestContext) -> None:
    """KIP-219: a client over its quota has its answer at once, then the connection reads
    nothing more for the throttle time (Kafka mutes the channel). Called only when
    ctx.throttle_ms > 0: a coroutine per request costs ~1.5 k instructions."""
    await trio.sleep(ctx.throttle_ms / 1000)


class _BusyTime:
    """Await a coroutine, adding up the time it runs between its suspensions: Kafka's
    request thread time (RequestChannel.Request.requestThreadTimeNanos), which leaves out
    a request's time parked in purgatory, and here the turns of other tasks too."""

    __slots__ = ("coro", "busy_s")

    def __init__(self, coro: Any) -> None:
        self.coro = coro
        self.busy_s = 0.0

    def __await__(self) -> Any:
        coro = self.coro
        value: Any = None
        error: BaseException | None = None
        while True:
            started = time.perf_counter()
            try:
                trap = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                return done.value
            finally:
                self.busy_s += time.perf_counter() - started
            try:
                value, error = (yield trap), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                value, error = None, exc


class Connection:
    """One client connection: its decoder, its requests, in order, one at a time.

    A PLAINTEXT listener's; kbroker.security.connection.SecureConnection adds TLS and SASL.
    """

    # Kafka's KafkaPrincipal.ANONYMOUS: who a PLAINTEXT client is.
    principal = "User:ANONYMOUS"
    # Whether bytes go straight between the socket's descriptor and the decoder (not
    # through a TLS stream, SecureConnection): _serve then waits for them and _process
    # writes the answer in line, without a coroutine of their own per request.
    _direct = True

    def __init__(
        self, server: Server, stream: trio.SocketStream, listener: Listener | None = None
    ) -> None:
        self.server = server
        self.stream = stream
        self.listener_name = (listener or server.config.listener).name
        sock = stream.socket
        peer = sock.getpeername()
        self.peer = _format_peer(peer)
        self.ip = _strip_mapped(str(peer[0])) if isinstance(peer, tuple) else str(peer)
        local = sock.getsockname()
        self.local_address: tuple[str, int] = (_strip_mapped(local[0]), local[1])
        config = server.config
        self.decoder = FrameDecoder(max_frame_size=config["socket.request.max.bytes"])
        self.idle_s = config.connections_max_idle_s
        self.busy = False
        self._read_scope: trio.CancelScope | None = None
        self._stop_requested = False  # stop_reading() was called (not an idle close)
        self._nursery: trio.Nursery | None = None
        # Bytes this connection counts in the server's request_bytes.
        self._held = 0
        # One reused receive buffer: a fresh bytes object per recv is a malloc/free
        # pair in malloc, and its pages fault in again every time.
        self._fd = sock.fileno()
        self._rbuf = bytearray(RECEIVE_SIZE)
        self._rview = memoryview(self._rbuf)
        # When a request has been answered, is the next one there already? Waiting for it
        # with trio (wait_readable, a pass of the event loop) costs ~27 k instructions
        # more than reading it at once; a read that finds nothing raises BlockingIOError
        # (~7 k); asking the kernel with poll(2) costs ~1.5 k. So: read at once while
        # reads find bytes (a client that sends without waiting for answers), else poll
        # first (a client that waits for each answer, as most do between batches).
        self._expect_bytes = False
        # A request whose read brought exactly it (FrameDecoder.whole_frame), not yet served.
        self._whole: bytes | None = None
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        # trio.current_time() without its two layers of calls (the clock is the run's for
        # good): read once per request, when the connection starts waiting for its client.
        self._now = trio.lowlevel.current_clock().current_time
        # The broker's quotas (one object for good, kbroker.quotas.quota_manager): with
        # none set, as usual, a request looks no further than its `quotas` dict. Taken at
        # the first request, not here: a connection accepted as a cluster node starts
        # listening, before serve() sets broker.cluster, would create the single-node
        # (quotas.json) manager in cluster mode.
        self._quotas: QuotaManager | None = None

    def stop_reading(self) -> None:
        """Used by shutdown: stop waiting for new requests (a request in flight finishes)."""
        self._stop_requested = True
        if self._read_scope is not None:
            self._read_scope.cancel()  # a TLS connection's wait (SecureConnection)
        if self.server.waiting.pop(self, None) is not None:
            self.end_wait()

    def end_wait(self) -> None:
        """End the connection's wait for its client (in _serve, which then returns): for
        idleness unless stop_reading() asked. The socket is closed right after, which is
        what trio's notify_closing announces."""
        trio.lowlevel.notify_closing(self._fd)

    async def run(self) -> None:
        """Serve requests until EOF, an error, idleness or shutdown; then close."""
        # _serve runs in a nursery for the peer watchers (_call_watching_peer), in this
        # coroutine rather than one of its own: every wake-up of the connection resumes
        # each coroutine between Trio's run loop and the wait, so one level less is less
        # code run per request. The error comes out of the nursery as it is, not wrapped
        # in an exception group.
        try:
            error: Exception | None = None
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._serve()
                except Exception as exc:
                    error = exc
                nursery.cancel_scope.cancel()
            if error is not None:
                raise error
        except _CloseConnection:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            logger.info("connection from %s broken: %s", self.peer, exc or type(exc).__name__)
        except DecodeError as exc:  # FrameTooLarge and friends from the decoder
            logger.warning("connection from %s: %s; closing it", self.peer, exc)
        except Exception:
            logger.exception("connection from %s: unexpected error; closing it", self.peer)
        finally:
            self._nursery = None
            self.server.release_request_bytes(self._held)
            self._held = 0
            await trio.aclose_forcefully(self.stream)

    async def _serve(self) -> None:
        server = self.server
        # Whether a request was served since the last read: the next read is then a
        # scheduling point even if it continues a request (pipelined requests seldom end
        # where a read does, and _send_bytes relies on the next read to yield).
        served = False
        # Whether the decoder is known to hold nothing: after a read that brought exactly
        # one request (FrameDecoder.whole_frame, which takes it only from an empty
        # decoder), until the next read. The decoder is then not asked for a frame or
        # its buffered bytes: what a client that waits for each answer costs per request.
        empty = True
        while True:
            # A large request comes as a view of its own buffer (received in place).
            frame: bytes | memoryview | None = self._whole
            if frame is not None:
                self._whole = None
            elif not empty:
                frame = self.decoder.next_frame_view()
            if frame is None:
                if server.draining:
                    return
                buffered = 0 if empty else self.decoder.buffered
                if not buffered and server.request_bytes:
                    # A new request starts: only if requests in flight leave room
                    # (a request already begun is read to its end, or memory held
                    # by partial requests could never be freed).
                    await server.wait_for_request_memory()
                continuing = buffered > 0 and not served
                if buffered:
                    # A request already begun: the rest is likely arriving.
                    if served:
                        self._expect_bytes = True  # it came before its predecessor's answer
                    got = self._read_available()
                elif self._expect_bytes or self._poll.poll(0):
                    got = self._read_available()
                    self._expect_bytes = got is not None
                else:
                    got = None
                served = False
                if got is None and not self._direct:
                    got = await self._receive()
                elif got is None:
                    # Wait for the client; no cancel scope (this runs once per request of
                    # a client that waits for each answer). Both ways the wait ends early,
                    # Server.close_idle_connections and stop_reading(), take the
                    # connection out of Server.waiting and call end_wait(), which makes
                    # wait_readable raise ClosedResourceError.
                    if server.draining:
                        return
                    waiting = server.waiting
                    waiting[self] = self._now()
                    try:
                        while True:
                            try:
                                await trio.lowlevel.wait_readable(self._fd)
                            except trio.ClosedResourceError:
                                break
                            # Bytes (or EOF) count even if the wait was ended meanwhile.
                            got = self._read_available()
                            if got is not None or self not in waiting:
                                break  # else end_wait() came as the socket woke us
                    finally:
                        waiting.pop(self, None)
                    if got is None:
                        if not self._stop_requested:
                            self._log_idle_close()
                        return
                elif not continuing:
                    # Bytes were already waiting (a pipelining client): no cancel
                    # scopes or readiness wait needed, just a scheduling point. Once
                    # per request: the rest of a request that is already arriving is
                    # read without one (a 470 KB Produce took 3-4 reads, each a pass
                    # through Trio's scheduler and an epoll_wait), so other
                    # connections still get their turn between requests.
                    await trio.lowlevel.checkpoint()
                if not got:
                    if got is not None:
                        self._log_partial_request()
                    return
                empty = self._whole is not None
                continue
            self.busy = True
            served = True
            try:
                await self._process(frame)
            finally:
                self.busy = False
                held = self._held if empty else self._held - self.decoder.buffered
                self._held -= held
                server.release_request_bytes(held)
            if server.draining:
                return

    def _read_available(self) -> bool | None:
        """Read what the socket holds into the decoder: True, False at EOF, None if nothing yet.

        A large request is read straight into its own buffer (FrameDecoder.receive_buffer);
        anything else into one reused buffer the decoder copies from.
        """
        decoder = self.decoder
        target = decoder.receive_buffer()
        start = None
        if target is None:
            # A new request: into the large requests' buffer when it is free, so the
            # start of a large one is not copied out of the shared buffer, and one that
            # has arrived whole (usual by the time a request is read) takes one read.
            start = decoder.start_buffer(RECEIVE_SIZE)
        try:
            into = target if target is not None else start if start is not None else self._rbuf
            n = os.readv(self._fd, [into])
        except BlockingIOError:
            return None
        except OSError as exc:  # reset by the peer and friends
            raise trio.BrokenResourceError(str(exc)) from exc
        if not n:
            return False
        self._held += n
        self.server.request_bytes += n  # hold_request_bytes, without the call
        if target is not None:
            decoder.received(n)
        elif start is not None:
            decoder.started(n)
        else:
            data = self._rview[:n]
            self._whole = decoder.whole_frame(data)
            if self._whole is None:
                decoder.feed(data)
        return True

    def _log_partial_request(self) -> None:
        if self.decoder.buffered:
            logger.warning(
                "connection from %s closed in the middle of a request (%d bytes of it received)",
                self.peer,
                self.decoder.buffered,
            )

    async def _receive(self) -> bool | None:
        """Wait for bytes from a stream that is not the socket itself (``_direct`` False)
        and feed them to the decoder: True, False at EOF, None on idleness or shutdown."""
        raise NotImplementedError

    def _log_idle_close(self) -> None:
        # Kafka's connections.max.idle.ms: an idle connection is closed by the broker.
        logger.info(
            "closing connection from %s: idle for more than %d ms",
            self.peer,
            self.server.config["connections.max.idle.ms"],
        )

    async def _process(self, frame: bytes | memoryview) -> None:
        observer = self.server.observer
        started = time.perf_counter() if observer is not None else 0.0
        try:
            header, request = decode_request(frame)
        except UnsupportedVersion as exc:
            await self._unsupported(exc.api_key, exc.api_version, exc.correlation_id)
            return
        except DecodeError as exc:
            logger.warning(
                "connection from %s sent a malformed request (%s); closing it", self.peer, exc
            )
            raise _CloseConnection from None
        api_key = header.request_api_key
        api_version = header.request_api_version
        handler = lookup(api_key, api_version)
        if handler is None:
            await self._unsupported(api_key, api_version, header.correlation_id)
            return
        # Positional: keyword arguments cost a dict per call.
        ctx = RequestContext(
            self.server.broker,
            header,
            api_version,
            self.peer,
            self.local_address,
            self.principal,
            self.listener_name,
        )
        # The handler's busy time only counts against request_percentage quotas, so it
        # is measured only when one is set (Kafka records it only then, quotasEnabled):
        # the timing wrapper is a generator, two clock reads and a frame per request.
        # A quota set while this request runs counts from the next request on.
        call = handler(ctx, request)
        quotas = self._quotas
        if quotas is None:
            quotas = self._quotas = quota_manager(ctx.broker)
        timed = _BusyTime(call) if quotas.quotas and quotas.request_quotas_set else None
        awaited = call if timed is None else timed
        try:
            if api_key in _MAY_WAIT and self._nursery is not None:
                response = await self._call_watching_peer(lambda *_: awaited, ctx, request)
            else:
                response = await awaited
        except CloseConnection:
            raise _CloseConnection from None  # the handler has logged why
        except _CloseConnection:
            raise  # the peer left while its request waited: logged at INFO, not a failure
        except Exception:
            logger.exception(
                "connection from %s: handler for api key %d v%d failed "
                "(correlation id %d); closing it",
                self.peer,
                api_key,
                api_version,
                header.correlation_id,
            )
            if observer is not None:
                observer(ctx, request, None, started, len(frame), failed=True)
            raise _CloseConnection from None
        if timed is not None:
            apply_request_quota(ctx, request, response, timed.busy_s)
        if response is None:
            if observer is not None:
                observer(ctx, request, None, started, len(frame))
            if ctx.throttle_ms > 0:
                await _mute(ctx)
            return  # e.g. Produce with acks=0: Kafka sends nothing back
        try:
            parts = encode_response_parts(api_key, api_version, header.correlation_id, response)
            # Before the first await: file regions get their own descriptor (os.dup), so
            # retention, compaction or a closing log cannot pull the file from under us.
            # One bytes part (every Produce answer) needs no preparing.
            items = parts if len(parts) == 1 and type(parts[0]) is bytes else prepare_parts(parts)
        except Exception:
            logger.exception(
                "connection from %s: cannot encode the response to api key %d v%d; closing it",
                self.peer,
                api_key,
                api_version,
            )
            raise _CloseConnection from None
        try:
            if self._direct and items is parts:
                # One bytes part (every Produce answer): as _send_bytes does, on the
                # descriptor at hand; nearly always the socket takes it all at once.
                data = items[0]
                try:
                    sent = os.write(self._fd, data)
                except BlockingIOError:
                    sent = 0
                if sent != len(data):
                    await _send_bytes(self.stream.socket, memoryview(data)[sent:], self.idle_s)
            else:
                await self._send_items(items)
        except SendStalled:
            logger.info(
                "closing connection from %s: it read nothing of its response for more than %d ms",
                self.peer,
                self.server.config["connections.max.idle.ms"],
            )
            raise _CloseConnection from None
        except RegionTruncated as exc:
            # The size prefix is out already; nothing correct can follow (Kafka's
            # FileRecords.writeTo fails the same way and the channel is closed).
            logger.warning("connection from %s: %s; closing it", self.peer, exc)
            raise _CloseConnection from None
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        finally:
            if items is not parts:  # prepared: file regions hold descriptors of their own
                close_parts(items)
        if observer is not None:
            observer(ctx, request, response, started, len(frame))
        if ctx.throttle_ms > 0:
            await _mute(ctx)

    async def _send_items(self, items: list[Any]) -> None:
        """Send a prepared response (prepare_parts); SendStalled if the peer reads nothing."""
        if len(items) == 1 and type(items[0]) is bytes:
            await _send_bytes(self.stream.socket, items[0], self.idle_s)
        else:
            await send_parts(self.stream.socket, items, idle_s=self.idle_s)

    async def _call_watching_peer(self, handler: Any, ctx: RequestContext, request: Any) -> Any:
        """Run a handler that may wait; cancel it if the peer closes its end meanwhile."""
        assert self._nursery is not None
        with trio.CancelScope() as request_scope:
            watch_scope = trio.CancelScope()
            self._nursery.start_soon(self._watch_peer, request_scope, watch_scope)
            try:
                return await handler(ctx, request)
            finally:
                # Synchronous: the watcher's readiness wait is withdrawn before the
                # connection waits for its next request on the same socket.
                watch_scope.cancel()
        logger.info(
            "connection from %s closed while its request (api key %d) waited; cancelled it",
            self.peer,
            ctx.header.request_api_key,
        )
        raise _CloseConnection

    async def _watch_peer(
        self, request_scope: trio.CancelScope, watch_scope: trio.CancelScope
    ) -> None:
        sock = self.stream.socket
        with watch_scope:
            if watch_scope.cancel_called:
                return  # the request was over before this task ran
            try:
                data = await sock.recv(1, socket.MSG_PEEK)
            except OSError:
                data = b""  # reset by the peer
            if not data:
                request_scope.cancel()
            # Otherwise the next request (pipelined) is there: a close behind it
            # shows up when it is read.

    async def _unsupported(self, api_key: int, api_version: int, correlation_id: int) -> None:
        if api_key == API_VERSIONS:
            # KIP-511: answer UNSUPPORTED_VERSION in a v0 body (which every client can
            # parse) naming the ApiVersions versions we do serve; keep the connection.
            from kbroker.handlers.meta import unsupported_api_versions_response

            logger.info(
                "connection from %s asked for ApiVersions v%d; answering UNSUPPORTED_VERSION",
                self.peer,
                api_version,
            )
            await self._send_items(
                [
                    encode_response(
                        API_VERSIONS, 0, correlation_id, unsupported_api_versions_response()
                    )
                ]
            )
            return
        # Kafka closes the connection on a request it cannot parse.
        logger.warning(
            "connection from %s sent api key %d v%d, which we do not serve; closing it",
            self.peer,
            api_key,
            api_version,
        )
        raise _CloseConnection


# --- the write path -----------------------------------------------------------------------
# A response is a list of bytes and file regions (fetched record batches). Bytes are
# coalesced into writes of up to SEND_COALESCE; a region of at least SENDFILE_MIN bytes
# goes from the page cache to the socket with os.sendfile (no Python buffer), smaller
# ones are copied into the coalesced write (one syscall instead of two).


class RegionTruncated(Exception):
    """A file region ended early (its segment was truncated while being sent)."""


class _Region:
    """A file region with a descriptor of its own (os.dup), closed after sending."""

    __slots__ = ("fd", "position", "length")

    def __init__(self, fd: int, position: int, length: int) -> None:
        self.fd = os.dup(fd)
        self.position = position
        self.length = length

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _regions_of(part: Any) -> list[Any] | None:
    """The file regions a records value is made of (FetchedRecords.regions, a FileRegion)."""
    regions = getattr(part, "regions", None)
    if regions is not None:
        if all(hasattr(r, "fd") and hasattr(r, "position") for r in regions):
            return list(regions)
        return None
    if hasattr(part, "fd") and hasattr(part, "position") and hasattr(part, "length"):
        return [part]
    return None


def prepare_parts(parts: list[Any]) -> list[Any]:
    """Bytes stay; file regions become _Regions with a dup'ed fd; anything else becomes bytes.

    Synchronous on purpose: it runs before the first await of the send, so every
    region still names the file it was read from. The duplicate keeps that file
    (even unlinked by retention or replaced by compaction) readable until sent.
    """
    items: list[Any] = []
    try:
        for part in parts:
            if isinstance(part, bytes | bytearray | memoryview):
                items.append(part)
                continue
            regions = _regions_of(part)
            if regions is None:
                items.append(bytes(part))
                continue
            for region in regions:
                if region.length:
                    items.append(_Region(region.fd, region.position, region.length))
    except BaseException:
        close_parts(items)
        raise
    return items


def close_parts(items: list[Any]) -> None:
    """Close the duplicated descriptors of prepared parts."""
    for item in items:
        if isinstance(item, _Region):
            item.close()


def _pread_region(region: _Region) -> bytes:
    data = pread_exact(region.fd, region.length, region.position)
    if len(data) != region.length:
        raise RegionTruncated(
            f"file region of {region.length} bytes at {region.position} has only {len(data)}"
        )
    return data


async def send_parts(sock: Any, items: list[Any], *, idle_s: float = math.inf) -> None:
    """Send prepared parts in order on a trio socket: coalesced bytes, sendfile for regions.

    SendStalled if the socket stays full (the peer reads nothing) for ``idle_s``.
    """
    pending: list[Any] = []
    size = 0
    for item in items:
        if isinstance(item, _Region):
            if item.length < SENDFILE_MIN:
                item = _pread_region(item)
            else:
                if pending:
                    # Not MSG_MORE: corked bytes can sit ~200 ms when sendfile then hits a
                    # full socket buffer (measured: 10 KB consume 2.3x slower with it).
                    await _send_bytes(sock, b"".join(pending), idle_s)
                    pending, size = [], 0
                await _sendfile(sock, item, idle_s)
                continue
        pending.append(item)
        size += len(item)
        if size >= SEND_COALESCE:
            await _send_bytes(sock, b"".join(pending), idle_s)
            pending, size = [], 0
    if pending:
        await _send_bytes(sock, pending[0] if len(pending) == 1 else b"".join(pending), idle_s)


async def _wait_writable(sock: Any, idle_s: float) -> None:
    with trio.move_on_after(idle_s):
        await trio.lowlevel.wait_writable(sock)
        return
    raise SendStalled


async def _send_bytes(sock: Any, data: Any, idle_s: float = math.inf) -> None:
    """Write all of ``data``; wait for the socket only when its buffer is full.

    Straight to the non-blocking descriptor, like the sendfile path: trio's
    ``send`` ends with a scheduling point, which cost every response a second
    pass of the event loop (and an epoll) although the connection's next read
    yields anyway.
    """
    fd = sock.fileno()
    # Nearly always the socket takes it all at once: then no view, no loop.
    try:
        sent = os.write(fd, data)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)[sent:]
    while view:
        try:
            sent = os.write(fd, view)
        except BlockingIOError:
            await _wait_writable(sock, idle_s)
            continue
        view = view[sent:]


async def _sendfile(sock: Any, region: _Region, idle_s: float = math.inf) -> None:
    """os.sendfile the whole region: wait_writable on EAGAIN, loop on partial sends."""
    out = sock.fileno()
    position, remaining = region.position, region.length
    while remaining:
        try:
            sent = os.sendfile(out, region.fd, position, min(remaining, SENDFILE_CHUNK))
        except BlockingIOError:
            await _wait_writable(sock, idle_s)
            continue
        if sent == 0:
            raise RegionTruncated(
                f"file region of {region.length} bytes at {region.position} "
                f"ended after {region.length - remaining}"
            )
        position += sent
        remaining -= sent
        if remaining:
            # A fast reader never makes sendfile block: still let other connections run.
            await trio.lowlevel.checkpoint()
    await trio.lowlevel.checkpoint_if_cancelled()


async def _maintenance(broker: BrokerState) -> None:
    config = broker.config
    retention_s = config["log.retention.check.interval.ms"] / 1000.0
    cleaner_s = (
        config["log.cleaner.backoff.ms"] / 1000.0 if config["log.cleaner.enable"] else math.inf
    )
    # Coordinator timers also fire from the requests that touch them; this pass makes sure
    # a transaction or a group whose clients all went away still times out (Kafka checks
    # timed-out transactions every transaction.abort.timed.out.transaction.cleanup.interval.ms).
    coordinators_s = config["transaction.abort.timed.out.transaction.cleanup.interval.ms"] / 1000.0
    # replica.high.watermark.checkpoint.interval.ms (Kafka's default) and
    # log.flush.offset.checkpoint.interval.ms: the data dir's offset checkpoints.
    hw_checkpoint_s = HIGH_WATERMARK_CHECKPOINT_INTERVAL_S
    rp_checkpoint_s = config["log.flush.offset.checkpoint.interval.ms"] / 1000.0
    now = trio.current_time()
    next_retention, next_clean, next_flush = now + retention_s, now + cleaner_s, math.inf
    next_coordinators = now + coordinators_s
    next_hw_checkpoint, next_rp_checkpoint = now + hw_checkpoint_s, now + rp_checkpoint_s
    while True:
        flush_s = None
        with _logged("flush scheduling"):
            flush_s = broker.next_flush_interval_s()
        if flush_s is not None:
            next_flush = min(next_flush, trio.current_time() + flush_s)
        await trio.sleep_until(
            min(
                next_retention,
                next_clean,
                next_flush,
                next_coordinators,
                next_hw_checkpoint,
                next_rp_checkpoint,
            )
        )
        now = trio.current_time()
        if now >= next_hw_checkpoint:
            next_hw_checkpoint = now + hw_checkpoint_s
            with _logged("high watermark checkpoint"):
                # Off the event loop: the write fsyncs (kbroker.replication.checkpoints).
                await broker.checkpoint_high_watermarks_in_thread()
        if now >= next_rp_checkpoint:
            next_rp_checkpoint = now + rp_checkpoint_s
            with _logged("recovery point checkpoint"):
                await broker.checkpoint_recovery_points_in_thread()
        if now >= next_coordinators:
            next_coordinators = now + coordinators_s
            with _logged("coordinator timers"):
                group_service.poll_loaded(broker)
                txn_service.maintain(broker)
        # A failing step is logged and retried next time; it must not stop the broker.
        if now >= next_retention:
            next_retention = now + retention_s
            with _logged("retention"):
                removed = broker.enforce_retention()
                if removed:
                    logger.info("retention removed %d segment(s)", removed)
        if now >= next_clean:
            next_clean = now + cleaner_s
            with _logged("compaction"):
                broker.compact()
        if now >= next_flush:
            next_flush = math.inf
            with _logged("flush"):
                broker.flush_due()


async def _resolve_ip_overrides(value: str | None) -> dict[str, int]:
    """max.connections.per.ip.overrides by address; a name that does not resolve is
    a start-up error, as in Kafka."""
    resolved: dict[str, int] = {}
    for host, count in parse_ip_overrides(value).items():
        try:
            infos = await trio.socket.getaddrinfo(host, None)
        except OSError as exc:
            raise ConfigError(
                f"max.connections.per.ip.overrides: cannot resolve {host!r}: {exc}"
            ) from None
        for info in infos:
            resolved[_strip_mapped(str(info[4][0]))] = count
    return resolved


def _admit(server: Server, stream: trio.SocketStream, make: Any = Connection) -> Connection | None:
    """A Connection for an accepted socket, or None if it must be closed at once."""
    try:
        connection = make(server, stream)
    except OSError as exc:  # reset before we could even look at it
        logger.info("connection dropped while being accepted: %s", exc)
        return None
    limit = server.ip_overrides.get(connection.ip, server.config["max.connections.per.ip"])
    if server.per_ip.get(connection.ip, 0) >= limit:
        # Kafka's ConnectionQuotas: TooManyConnectionsException, the new connection
        # is closed (the client sees it closed and retries after its backoff).
        logger.info(
            "closing connection from %s: max.connections.per.ip (%d) reached for %s",
            connection.peer,
            limit,
            connection.ip,
        )
        return None
    return connection


def _logged(step: str) -> contextlib.AbstractContextManager[None]:
    """A maintenance step: a failure is logged, and the step runs again next time."""
    return logged_failure(logger, "maintenance step %s failed", step)


async def _start_observability(server: Server, nursery: trio.Nursery) -> None:
    """The HTTP listener (kbroker.http.listener) and the per-request observer it and the
    DEBUG request log (logger kbroker.requests) feed on; nothing when neither is on."""
    from kbroker.stats import BrokerStats, RequestObserver, request_logger

    address = server.config["kbroker.http.listener"]
    log_requests = request_logger.isEnabledFor(logging.DEBUG)
    if not address and not log_requests:
        return
    stats = BrokerStats() if address else None
    server.stats = stats
    server.observer = RequestObserver(server.broker, stats, log=log_requests).observe
    if address and stats is not None:
        from kbroker.http.app import serve_http

        server.http_address = await nursery.start(
            partial(
                serve_http,
                server,
                stats,
                address,
                actions=server.config["kbroker.http.console.actions"],
            )
        )


async def serve(
    config: BrokerConfig,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
    grace_s: float = DEFAULT_GRACE_S,
) -> None:
    """Run a broker for ``config`` until cancelled or ``Server.shutdown()`` drains it.

    ``task_status.started`` receives the ``Server`` (``.address`` is the bound
    (host, port), also with port 0). Startup errors (ConfigError, OSError such as
    a port in use) propagate before ``started``.
    """
    load_handlers()
    # Before the data dir is opened: sizes the cache of open segment files too.
    raise_fd_limit(config["log.max.open.files"])
    zk: Any = None
    joined: str | None = None
    if config.cluster_mode:
        # Cluster mode: reach ZooKeeper, check the broker id is free and learn the
        # cluster id before touching the data dir (kbroker.cluster.node).
        from kbroker.cluster.node import open_zookeeper

        zk, joined = await open_zookeeper(config)
    try:
        broker = BrokerState(config, cluster_id=joined)
    except BaseException:
        if zk is not None:
            with trio.CancelScope(shield=True):
                await zk.close()
        raise
    node: Any = None
    try:
        # Each listener's connection class (TLS and SASL ones from kbroker.security); a
        # listener whose key material or SASL settings are wrong stops the start here.
        from kbroker.security.connection import connection_factory

        factories = {
            listener.name: connection_factory(config, listener) for listener in config.listeners
        }
        async with trio.open_nursery() as nursery:
            server = Server(("", 0), broker, config, grace_s=grace_s)
            server.ip_overrides = await _resolve_ip_overrides(
                config["max.connections.per.ip.overrides"]
            )

            async def handle(connection: Connection) -> None:
                try:
                    await connection.run()
                finally:
                    server.connections.discard(connection)
                    server.connection_closed(connection.ip)
                    server._check_drained()

            async def accept_from(tcp: trio.SocketListener, make: Any) -> None:
                async with tcp:
                    while True:
                        await server.wait_for_connection_slot()
                        try:
                            stream = await tcp.accept()
                        except OSError as exc:
                            if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                                raise
                            # Retried every 100 ms while it lasts: logged once a minute.
                            warn_rate_limited(
                                logger,
                                f"accept:{exc.errno}",
                                "accept failed: %s; retrying every %.1f s",
                                os.strerror(exc.errno),
                                _ACCEPT_RETRY_S,
                            )
                            await trio.sleep(_ACCEPT_RETRY_S)
                            continue
                        connection = _admit(server, stream, make)
                        if connection is None:
                            await trio.aclose_forcefully(stream)
                            continue
                        server.connections.add(connection)
                        server.per_ip[connection.ip] = server.per_ip.get(connection.ip, 0) + 1
                        nursery.start_soon(handle, connection)

            async def accept(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                with server._accept_scope:
                    bound: dict[str, list[trio.SocketListener]] = {}
                    for listener in config.listeners:
                        # Kafka: an empty host binds every interface. With port 0 trio would
                        # give the IPv4 and IPv6 sockets different ports, so bind IPv4 only then.
                        host = listener.host or (None if listener.port else "0.0.0.0")
                        bound[listener.name] = await trio.open_tcp_listeners(
                            listener.port, host=host
                        )
                    async with trio.open_nursery() as accepting:
                        for name, tcp_listeners in bound.items():
                            for tcp in tcp_listeners:
                                accepting.start_soon(accept_from, tcp, factories[name])
                        task_status.started(bound)

            bound = await nursery.start(accept)
            for name, tcp_listeners in bound.items():
                sockname = tcp_listeners[0].socket.getsockname()
                server.addresses[name] = (_strip_mapped(sockname[0]), sockname[1])
            server.address = server.addresses[config.listener.name]
            broker.listen_address = server.address
            broker.listen_addresses = dict(server.addresses)
            if zk is not None:
                from kbroker.cluster.node import ClusterNode

                node = ClusterNode(broker, zk)
                broker.cluster = node
                await nursery.start(node.run)
            if zk is None:
                # Its coordinators' logs are read in the background from now (in cluster
                # mode, from each election).
                group_service.load_at_start(broker)
                txn_service.load_at_start(broker)
            nursery.start_soon(_maintenance, broker)
            nursery.start_soon(server.close_idle_connections)
            await _start_observability(server, nursery)
            logger.info(
                "kbroker node %d (cluster %s) listening on %s:%d, data in %s",
                broker.node_id,
                broker.cluster_id,
                server.address[0],
                server.address[1],
                broker.data_dir,
            )
            task_status.started(server)
            await server._shutdown_requested.wait()
            # Requests in flight finish and their connections close; wait at most grace_s
            # (a long-polling Fetch, a slow client) before cancelling what is left.
            with trio.move_on_after(server.grace_s):
                await server._all_closed.wait()
            nursery.cancel_scope.cancel()
    finally:
        # GroupCoordinator.shutdown / TransactionCoordinator.shutdown: the loads under way
        # stop (they would go on reading the logs closed below, as system tasks that
        # outlive this server) and the coordinators are dropped, their background marker
        # sends with them. Nothing can start another: requests, maintenance and
        # elections ended with the nursery.
        group_service.drop(broker)
        txn_service.drop(broker)
        if zk is not None:
            # Ending the session removes our registration at once: the controller
            # moves what we still lead without waiting for the session timeout.
            with trio.CancelScope(shield=True):
                await (node.close() if node is not None else zk.close())
        broker.close()
