"""A minimal Kafka-protocol client on Trio: one connection, typed requests, typed responses.

Broker-to-broker traffic (the controller's LeaderAndIsr / UpdateMetadata / StopReplica,
later the replica fetcher's Fetch) needs no more than Kafka's NetworkClient gives a
single in-flight request: connect, learn the peer's API versions, send a request with a
fresh correlation id, read its response. Requests on one connection are serialised, so
they reach the peer, and are answered, in the order they were sent.
"""

from __future__ import annotations

import itertools
from typing import Any

import trio

from kbroker.wire import protocol
from kbroker.wire.errors import DecodeError, ErrorCode
from kbroker.wire.frames import FrameDecoder
from kbroker.wire.messages import REQUESTS

__all__ = ["KafkaClient", "KafkaClientError", "ConnectionLost"]

API_VERSIONS = 18
_RECEIVE_CHUNK = 65536


class KafkaClientError(Exception):
    """The request could not be completed on this connection."""


class ConnectionLost(KafkaClientError):
    """The connection failed or closed; reconnect to retry."""


class KafkaClient:
    """One connection to one broker. Create with ``await KafkaClient.connect(host, port)``."""

    def __init__(self, stream: trio.abc.Stream, *, client_id: str, max_frame_size: int) -> None:
        self._stream = stream
        self._client_id = client_id
        self._decoder = FrameDecoder(max_frame_size=max_frame_size)
        self._lock = trio.Lock()
        self._correlation = itertools.count(1)
        self._closed = False
        # api key -> (min, max) both sides speak; filled by connect()
        self.versions: dict[int, tuple[int, int]] = {}

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        client_id: str = "kbroker",
        timeout: float = 10.0,
        max_frame_size: int = 100 * 1024 * 1024,
    ) -> KafkaClient:
        """Open the connection and negotiate versions (ApiVersions), or raise ConnectionLost."""
        try:
            with trio.fail_after(timeout):
                stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
        client = cls(stream, client_id=client_id, max_frame_size=max_frame_size)
        try:
            with trio.fail_after(timeout):
                await client._negotiate()
        except trio.TooSlowError as exc:
            await client.aclose()
            raise ConnectionLost(f"{host}:{port} did not answer ApiVersions") from exc
        except BaseException:
            await client.aclose()
            raise
        return client

    async def _negotiate(self) -> None:
        version = min(3, protocol.SUPPORTED[API_VERSIONS][1])
        body = REQUESTS[API_VERSIONS](client_software_name="kbroker", client_software_version="1")
        resp = await self.request(API_VERSIONS, body, version=version)
        if resp.error_code != ErrorCode.NONE:
            raise KafkaClientError(f"ApiVersions failed: {ErrorCode(resp.error_code).name}")
        for k in resp.api_keys:
            ours = protocol.SUPPORTED.get(k.api_key)
            if ours is None:
                continue
            lo, hi = max(ours[0], k.min_version), min(ours[1], k.max_version)
            if lo <= hi:
                self.versions[k.api_key] = (lo, hi)

    def version_for(self, api_key: int) -> int | None:
        """The newest version of ``api_key`` both sides speak, or None."""
        rng = self.versions.get(api_key)
        return None if rng is None else rng[1]

    async def request(self, api_key: int, body: Any, *, version: int | None = None) -> Any:
        """Send one request and return its decoded response body.

        ``version`` defaults to the newest both sides speak. Raises ConnectionLost when
        the connection breaks (the request may or may not have been processed), and
        KafkaClientError when the peer does not speak this API at all."""
        if version is None:
            version = self.version_for(api_key)
            if version is None:
                raise KafkaClientError(f"the peer does not support api key {api_key}")
        async with self._lock:
            if self._closed:
                raise ConnectionLost("connection closed")
            correlation_id = next(self._correlation)
            frame = protocol.encode_request(api_key, version, correlation_id, self._client_id, body)
            try:
                await self._stream.send_all(frame)
                payload = await self._read_frame()
                got, response = protocol.decode_response(api_key, version, payload)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                await self._abort()
                raise ConnectionLost(str(exc) or type(exc).__name__) from exc
            except DecodeError as exc:
                await self._abort()
                raise ConnectionLost(f"undecodable response: {exc}") from exc
            except BaseException:
                # Cancelled mid-request: the connection's state is unknown, so drop it.
                await self._abort()
                raise
            if got != correlation_id:
                await self._abort()
                raise ConnectionLost(f"correlation id {got} answered request {correlation_id}")
            return response

    async def _read_frame(self) -> bytes:
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return bytes(frame)
            data = await self._stream.receive_some(_RECEIVE_CHUNK)
            if not data:
                raise trio.BrokenResourceError("connection closed by the peer")
            self._decoder.feed(data)

    async def _abort(self) -> None:
        self._closed = True
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self._stream)

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with trio.CancelScope(shield=True):
                await self._stream.aclose()

    async def __aenter__(self) -> KafkaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
