"""The controller's channels to the brokers (Kafka's ControllerChannelManager).

One queue and one sender task per live broker. A sender takes its queue's requests one
at a time, sends each on its connection and waits for the answer before the next, so
a broker sees the controller's requests in the order the controller made them (an
UpdateMetadata never overtakes the LeaderAndIsr before it). When the connection fails
the sender reconnects, with a short back-off, and sends the same request again, as
Kafka's RequestSendThread does; it gives up only when the broker is removed (it died:
the controller will send it fresh state when it registers again).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from kbroker.cluster.client import ConnectionLost, KafkaClient, KafkaClientError
from kbroker.wire.errors import ErrorCode

__all__ = ["ControllerChannel", "Connector", "ResponseCallback"]

log = logging.getLogger(__name__)

ResponseCallback = Callable[[int, Any], None]  # (broker id, response body)
Connector = Callable[[str, int], Awaitable[KafkaClient]]

RETRY_BACKOFF_S = 0.1  # Kafka's controller retries a failed send after ~100 ms
STALE_EPOCH_RETRIES = 50  # ~5 s of resending a request refused with STALE_BROKER_EPOCH


async def _default_connect(host: str, port: int) -> KafkaClient:
    return await KafkaClient.connect(host, port, client_id="controller")


@dataclass
class _Queued:
    api_key: int
    body: Any  # a request body, or a function of the negotiated version returning one
    callback: ResponseCallback | None


@dataclass
class _BrokerChannel:
    broker_id: int
    host: str
    port: int
    send: trio.MemorySendChannel[_Queued]
    recv: trio.MemoryReceiveChannel[_Queued]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class ControllerChannel:
    """Start with ``await nursery.start(channel.run)``; then ``add_broker`` / ``send``."""

    def __init__(
        self, *, connect: Connector = _default_connect, request_timeout_s: float = 30.0
    ) -> None:
        self._connect = connect
        # controller.socket.timeout.ms: a broker that does not answer in time (e.g. it
        # is frozen) gets a new connection and the request again.
        self._request_timeout_s = request_timeout_s
        self._brokers: dict[int, _BrokerChannel] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for b in self._brokers.values():
                b.send.close()
            self._brokers.clear()

    @property
    def brokers(self) -> set[int]:
        return set(self._brokers)

    def add_broker(self, broker_id: int, host: str, port: int) -> None:
        """Open a channel to a broker (replacing an old one to a different address)."""
        old = self._brokers.get(broker_id)
        if old is not None:
            if (old.host, old.port) == (host, port):
                return
            self.remove_broker(broker_id)
        assert self._nursery is not None, "ControllerChannel.run is not running"
        send, recv = trio.open_memory_channel[_Queued](math.inf)
        ch = _BrokerChannel(broker_id, host, port, send, recv)
        self._brokers[broker_id] = ch
        self._nursery.start_soon(self._sender, ch)

    def remove_broker(self, broker_id: int) -> None:
        """Drop a broker's channel and every request still queued for it."""
        ch = self._brokers.pop(broker_id, None)
        if ch is not None:
            ch.send.close()
            ch.scope.cancel()

    def remove_all(self) -> None:
        for b in list(self._brokers):
            self.remove_broker(b)

    def send(
        self, broker_id: int, api_key: int, body: Any, callback: ResponseCallback | None = None
    ) -> bool:
        """Queue a request for a broker; False (and nothing queued) if it has no channel.

        ``body`` may be a function ``version -> body``: controller requests differ in
        shape across versions (LeaderAndIsr v0-1 vs v2+), and the version is only known
        once the connection has negotiated it."""
        ch = self._brokers.get(broker_id)
        if ch is None:
            return False
        ch.send.send_nowait(_Queued(api_key, body, callback))
        return True

    async def _sender(self, ch: _BrokerChannel) -> None:
        client: KafkaClient | None = None
        failing = False
        stale_retries = 0
        with ch.scope:
            try:
                async for item in ch.recv:
                    while True:
                        try:
                            if client is None or client.closed:
                                client = await self._connect(ch.host, ch.port)
                            version = client.version_for(item.api_key)
                            if version is None:
                                raise KafkaClientError(f"api key {item.api_key} not supported")
                            body = item.body(version) if callable(item.body) else item.body
                            with trio.move_on_after(self._request_timeout_s) as waited:
                                response = await client.request(item.api_key, body, version=version)
                            if waited.cancelled_caught:
                                raise ConnectionLost(
                                    f"no answer within {self._request_timeout_s:g} s"
                                )
                        except ConnectionLost as exc:
                            # Once per outage at INFO: a dead broker stays "live" until its
                            # session times out, and we retry every 100 ms meanwhile.
                            log.log(
                                logging.DEBUG if failing else logging.INFO,
                                "controller channel to broker %d (%s:%d): %s; retrying",
                                ch.broker_id,
                                ch.host,
                                ch.port,
                                exc,
                            )
                            failing = True
                            client = None
                            await trio.sleep(RETRY_BACKOFF_S)
                            continue
                        except KafkaClientError as exc:
                            log.warning(
                                "broker %d cannot take api key %d: %s; dropped",
                                ch.broker_id,
                                item.api_key,
                                exc,
                            )
                            break
                        failing = False
                        if (
                            getattr(response, "error_code", 0) == ErrorCode.STALE_BROKER_EPOCH
                            and stale_retries < STALE_EPOCH_RETRIES
                        ):
                            # The broker has not learned its own epoch yet: we saw its
                            # registration znode before its create() returned. Kafka's
                            # broker only refuses epochs older than its own; one that
                            # refuses a newer one gets the request again shortly. A truly
                            # stale epoch ends with the retries, or sooner when the
                            # controller replaces this channel for the new registration.
                            stale_retries += 1
                            await trio.sleep(RETRY_BACKOFF_S)
                            continue
                        stale_retries = 0
                        if item.callback is not None:
                            item.callback(ch.broker_id, response)
                        break
            finally:
                if client is not None:
                    await client.aclose()
