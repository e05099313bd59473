"""A fake broker for controller tests: a Trio TCP server that speaks the Kafka protocol,
answers ApiVersions and records every controller request (LeaderAndIsr, UpdateMetadata,
StopReplica) it receives, in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from kbroker.wire import protocol
from kbroker.wire.frames import FrameDecoder
from kbroker.wire.messages import RESPONSES


@dataclass
class FakeBroker:
    broker_id: int
    port: int = 0
    received: list[tuple[int, Any]] = field(default_factory=list)  # (api key, body)
    versions: dict[int, tuple[int, int]] = field(default_factory=lambda: dict(protocol.SUPPORTED))
    drop_next: int = 0  # close the connection instead of answering the next N requests
    refuse_stale_epoch: int = 0  # answer the next N requests with STALE_BROKER_EPOCH
    hang_next: int = 0  # never answer the next N requests (the connection stays open)
    connections: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)
    _scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with self._scope:
            listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            async with trio.open_nursery() as n:
                await n.start(trio.serve_listeners, self._handle, listeners)
                task_status.started(self.port)

    def stop(self) -> None:
        self._scope.cancel()

    def of(self, api_key: int) -> list[Any]:
        return [b for k, b in self.received if k == api_key]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        decoder = FrameDecoder(max_frame_size=2**30)
        async with stream:
            while True:
                frame = decoder.next_frame()
                if frame is None:
                    try:
                        data = await stream.receive_some(65536)
                    except trio.BrokenResourceError:
                        return
                    if not data:
                        return
                    decoder.feed(data)
                    continue
                header, body = protocol.decode_request(frame)
                key, version = header.request_api_key, header.request_api_version
                if self.drop_next > 0 and key != 18:
                    self.drop_next -= 1
                    return
                if self.hang_next > 0 and key != 18:
                    self.hang_next -= 1
                    await trio.sleep_forever()
                if key == 18:
                    cls = RESPONSES[18]
                    resp = cls(
                        api_keys=[
                            cls.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                            for k, (lo, hi) in sorted(self.versions.items())
                        ]
                    )
                else:
                    self.received.append((key, body))
                    self._changed.set()
                    self._changed = trio.Event()
                    resp = RESPONSES[key]()
                    if self.refuse_stale_epoch > 0 and hasattr(resp, "error_code"):
                        self.refuse_stale_epoch -= 1
                        resp.error_code = 77  # STALE_BROKER_EPOCH
                await stream.send_all(
                    protocol.encode_response(key, version, header.correlation_id, resp)
                )


__all__ = ["FakeBroker"]
