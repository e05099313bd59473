"""Fixtures for broker tests: a live broker on 127.0.0.1:0 and a raw protocol client.

- ``server``: a broker with default settings and a fresh data dir.
- ``make_server(**overrides)``: the same with Kafka settings overridden; keys are
  Kafka names, with "_" accepted for "." (``make_server(num_partitions=3)`` or
  ``make_server(**{"auto.create.topics.enable": False})``). Passing the same
  ``log_dirs`` twice (after ``await srv.stop()``) restarts on the same data.
- ``await server.connect()`` → ``RawClient``: ``request(body, version=None)``
  sends one request and returns the decoded response (version defaults to the
  highest the server advertises); ``send_raw`` / ``receive_raw`` for bad input.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from kbroker.broker import BrokerState
from kbroker.config import CONFIG_DEFS, BrokerConfig
from kbroker.handlers import advertised_versions
from kbroker.server import Server, serve
from kbroker.wire.frames import FrameDecoder
from kbroker.wire.protocol import decode_response, encode_request


def _kafka_name(key: str) -> str:
    if key in CONFIG_DEFS:
        return key
    dotted = key.replace("_", ".")
    return dotted if dotted in CONFIG_DEFS else key


class RawClient:
    """A minimal Kafka client speaking the wire codec over one TCP connection."""

    def __init__(
        self, stream: trio.SocketStream, *, client_id: str | None = "kbroker-tests"
    ) -> None:
        self.stream = stream
        self.client_id = client_id
        self._correlation = itertools.count(1)
        self._decoder = FrameDecoder(max_frame_size=2**31 - 1)

    @staticmethod
    def default_version(api_key: int) -> int:
        """The highest version the server advertises for ``api_key``."""
        return advertised_versions()[api_key][1]

    async def send_request(
        self, body: Any, *, version: int | None = None, correlation_id: int | None = None
    ) -> int:
        """Send one request; returns its correlation id (pair with ``receive_response``)."""
        api_key = body.API_KEY
        version = self.default_version(api_key) if version is None else version
        correlation_id = next(self._correlation) if correlation_id is None else correlation_id
        await self.stream.send_all(
            encode_request(api_key, version, correlation_id, self.client_id, body)
        )
        return correlation_id

    async def receive_response(
        self, api_key: int, version: int, correlation_id: int | None = None
    ) -> Any:
        """Read one response frame and decode it; checks the correlation id if given."""
        frame = await self.receive_raw()
        assert frame is not None, "connection closed by the broker"
        got, body = decode_response(api_key, version, frame)
        if correlation_id is not None:
            assert got == correlation_id, f"correlation id {got}, expected {correlation_id}"
        return body

    async def request(self, body: Any, *, version: int | None = None) -> Any:
        """Send ``body`` and return the decoded response body."""
        api_key = body.API_KEY
        version = self.default_version(api_key) if version is None else version
        correlation_id = await self.send_request(body, version=version)
        return await self.receive_response(api_key, version, correlation_id)

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (no framing added)."""
        await self.stream.send_all(data)

    async def receive_raw(self) -> bytes | None:
        """The next frame's payload (size prefix removed), or None if the broker closed."""
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return frame
            try:
                data = await self.stream.receive_some(256 * 1024)
            except trio.BrokenResourceError:
                return None
            if not data:
                return None
            self._decoder.feed(data)

    async def aclose(self) -> None:
        """Close the connection."""
        await self.stream.aclose()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class RunningServer:
    """A broker served on 127.0.0.1:0 for one test."""

    def __init__(
        self, server: Server, config: BrokerConfig, done: trio.Event, scope: trio.CancelScope
    ) -> None:
        self.server = server
        self.address: tuple[str, int] = server.address
        self.broker: BrokerState = server.broker
        self.config = config
        self._done = done
        self._scope = scope

    async def connect(self, *, client_id: str | None = "kbroker-tests") -> RawClient:
        """Open a new RawClient connection to this broker."""
        stream = await trio.open_tcp_stream(*self.address)
        return RawClient(stream, client_id=client_id)

    @property
    def bootstrap(self) -> str:
        """ "host:port" for real Kafka clients."""
        return f"{self.address[0]}:{self.address[1]}"

    async def stop(self) -> None:
        """Stop the broker (cancel serve) and wait until its logs are closed."""
        self._scope.cancel()
        await self._done.wait()


@pytest.fixture
async def make_server(
    nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[RunningServer]]]:
    """Factory: ``await make_server(**kafka_overrides)`` → a running broker."""
    counter = itertools.count()

    async def start(**overrides: Any) -> RunningServer:
        props: dict[str, Any] = {
            "listeners": "PLAINTEXT://127.0.0.1:0",
            "log.dirs": str(tmp_path / f"data-{next(counter)}"),
        }
        props.update({_kafka_name(k): v for k, v in overrides.items()})
        config = BrokerConfig.from_properties(props)
        done = trio.Event()
        scope = trio.CancelScope()

        async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with scope:
                    await serve(config, task_status=task_status)
            finally:
                done.set()

        server = await nursery.start(run)
        return RunningServer(server, config, done, scope)

    yield start


@pytest.fixture
async def server(make_server: Callable[..., Awaitable[RunningServer]]) -> RunningServer:
    """A broker with default settings on 127.0.0.1:0 and a fresh data dir."""
    return await make_server()
