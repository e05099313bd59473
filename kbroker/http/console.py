"""The web console: server-rendered pages over the broker's state (read-only by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.stats import BrokerStats

if TYPE_CHECKING:
    from kbroker.http.app import Request, Response
    from kbroker.server import Server


class Console:
    """The console's pages for one running ``Server``."""

    def __init__(self, server: Server, stats: BrokerStats, *, actions: bool = False) -> None:
        self.server = server
        self.stats = stats
        self.actions = actions

    async def route(self, request: Request) -> Response:
        from kbroker.http.app import text

        return text("not found\n", 404)
