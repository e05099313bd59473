"""The HTTP listener: off by default, on with kbroker.http.listener, on the broker's loop."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from kbroker.wire.messages import ApiVersionsRequest, MetadataRequest
from tests.kbroker.helpers import http_get


async def test_off_by_default(make_server: Callable[..., Awaitable[Any]]) -> None:
    running = await make_server()
    assert running.server.http_address is None
    # Nothing observes requests: the Kafka path pays nothing for the feature.
    assert running.server.observer is None


async def test_health_readiness_and_metrics_on_the_broker_loop(
    make_server: Callable[..., Awaitable[Any]],
) -> None:
    running = await make_server(**{"kbroker.http.listener": "127.0.0.1:0"})
    address = running.server.http_address
    assert address is not None and address[1] > 0
    status, _, body = await http_get(address, "/healthz")
    assert (status, body) == (200, b"ok\n")
    status, _, body = await http_get(address, "/readyz")
    assert (status, body) == (200, b"ready\n")
    async with await running.connect() as client:
        await client.request(ApiVersionsRequest(), version=3)
        await client.request(MetadataRequest(topics=[]), version=9)
    status, headers, body = await http_get(address, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert (
        'kafka_network_requestmetrics_requests_total{request="ApiVersions",version="3"} 1.0' in text
    )
    assert 'kafka_network_requestmetrics_requests_total{request="Metadata",version="9"} 1.0' in text
    status, _, _ = await http_get(address, "/no-such-page")
    assert status == 404


async def test_debug_logs_each_request(
    make_server: Callable[..., Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kbroker.requests")
    running = await make_server()
    async with await running.connect(client_id="debug-client") as client:
        await client.request(ApiVersionsRequest(), version=3)
    lines = [r.getMessage() for r in caplog.records if r.name == "kbroker.requests"]
    assert len(lines) == 1
    assert lines[0].startswith("ApiVersions v3 from 127.0.0.1:")
    assert "client id debug-client" in lines[0] and " ms" in lines[0]


async def test_readyz_says_not_ready_while_shutting_down(
    make_server: Callable[..., Awaitable[Any]],
) -> None:
    from tests.kbroker.helpers import create_topic, fetch_request

    running = await make_server(**{"kbroker.http.listener": "127.0.0.1:0"})
    create_topic(running, "quiet")
    address = running.server.http_address
    async with await running.connect() as client:
        # A long-polling Fetch keeps the broker draining (it finishes its in-flight requests).
        await client.send_request(fetch_request("quiet", 0, 0, max_wait_ms=5000), version=11)
        await trio.testing.wait_all_tasks_blocked()
        assert any(c.busy for c in running.server.connections)
        assert (await http_get(address, "/readyz"))[0] == 200
        running.server.shutdown()
        status, _, body = await http_get(address, "/readyz")
        assert (status, body) == (503, b"not ready: shutting down\n")
        # Liveness is another question: the process still answers.
        assert (await http_get(address, "/healthz"))[0] == 200
