"""The ASGI app and its Hypercorn (Trio worker) listener, on the broker's event loop.

Routes: ``/healthz`` (the event loop answers), ``/readyz`` (listening, not shutting
down, and in cluster mode registered in ZooKeeper), ``/metrics`` (Prometheus), and the
console under ``/`` (``kbroker.http.console``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import trio

from kbroker.http import metrics
from kbroker.stats import BrokerStats

if TYPE_CHECKING:
    from kbroker.server import Server

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# How often the console's charts get a point (kbroker.stats.Sample).
SAMPLE_INTERVAL_S = 5.0


class Request:
    """What a page needs from an HTTP request."""

    def __init__(self, scope: Scope, body: bytes = b"") -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: dict[str, list[str]] = parse_qs(
            scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        self.headers: dict[str, str] = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        self.form: dict[str, list[str]] = (
            parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if body else {}
        )

    def same_origin(self) -> bool:
        """Whether a browser sent this from one of our own pages (no Origin: not a browser's
        cross-site form post). Actions refuse other origins, so a page elsewhere cannot
        drive a broker on localhost."""
        origin = self.headers.get("origin")
        if origin is None:
            return True
        return origin.split("://", 1)[-1] == self.headers.get("host")

    def arg(self, name: str, default: str = "") -> str:
        """The first value of a query (or form) parameter."""
        values = self.query.get(name) or self.form.get(name)
        return values[0] if values else default


class Response:
    """A whole response: status, content type, body, extra headers."""

    def __init__(
        self,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = "text/html; charset=utf-8",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.content_type = content_type
        self.headers = headers or []

    async def send(self, send: Send, *, head: bool = False) -> None:
        headers = [
            (b"content-type", self.content_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
            (b"cache-control", b"no-store"),
            *((k.encode(), v.encode()) for k, v in self.headers),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else self.body})


def text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/plain; charset=utf-8")


class BrokerApp:
    """The ASGI application for one running ``Server``."""

    def __init__(self, server: Server, stats: BrokerStats, *, actions: bool = False) -> None:
        from kbroker.http.console import Console

        self.server = server
        self.stats = stats
        self.registry = metrics.registry_for(server, stats)
        self.console = Console(server, stats, actions=actions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        if scope["method"] == "POST":
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > 1024 * 1024:
                    await text("request too large\n", 413).send(send)
                    return
        request = Request(scope, body)
        try:
            response = await self.route(request)
        except Exception:
            logger.exception("HTTP %s %s failed", request.method, request.path)
            response = text("internal error (see the broker's log)\n", 500)
        await response.send(send, head=scope["method"] == "HEAD")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def route(self, request: Request) -> Response:
        path = request.path
        if path == "/healthz":
            return text("ok\n")
        if path == "/readyz":
            reason = self.not_ready()
            return text(f"not ready: {reason}\n", 503) if reason else text("ready\n")
        if path == "/metrics":
            return Response(metrics.render(self.registry), content_type=metrics.CONTENT_TYPE)
        return await self.console.route(request)

    def not_ready(self) -> str | None:
        """Why the broker cannot take traffic yet (None: it can)."""
        server = self.server
        if server.draining:
            return "shutting down"
        if server.broker.listen_address is None:
            return "not listening yet"
        cluster = server.broker.cluster
        if cluster is not None and not cluster.registered.is_set():
            return "not registered in ZooKeeper yet"
        return None


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (``[v6]:port`` too) as (host, port)."""
    from kbroker.config import ConfigError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"HTTP listener {text!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


async def _sample(server: Server, stats: BrokerStats) -> None:
    while True:
        try:
            stats.sample(metrics.group_lag(server))
        except Exception:
            logger.exception("sampling figures for the console failed")
        await trio.sleep(SAMPLE_INTERVAL_S)


async def serve_http(
    server: Server,
    stats: BrokerStats,
    address: str,
    *,
    actions: bool = False,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the app on ``address`` until cancelled; ``task_status.started`` gets the bound
    (host, port)."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    host, port = parse_address(address)
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("kbroker.http.server")  # type: ignore[assignment]
    config.graceful_timeout = 1.0
    app = BrokerApp(server, stats, actions=actions)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        bound = binds[0].removeprefix("http://")
        bound_host, _, bound_port = bound.rpartition(":")
        result = (bound_host.strip("[]"), int(bound_port))
        nursery.start_soon(_sample, server, stats)
        logger.info("HTTP console and metrics on http://%s/", bound)
        task_status.started(result)
