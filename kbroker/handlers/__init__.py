"""The request handler registry and the context every handler receives.

A handler module registers one coroutine per API::

    @handles(XRequest.API_KEY, min_version, max_version)
    async def handle_x(ctx: RequestContext, request: XRequest) -> XResponse | None: ...

The key comes from the message declaration (wire/_defs_api.py), never a number
written again here.

Returning None sends nothing (Produce with acks=0). Each API reports its
errors inside its response body; a ``KafkaApiError`` (or anything else)
escaping a handler is a bug in that handler: the server logs it with the
peer's address and closes that connection. A handler that must close the
connection as Kafka does (a failed acks=0 produce) raises ``CloseConnection``
after logging why.

``load_handlers()`` imports every module of this package, so a new handler
module needs no registration anywhere else. ApiVersions advertises exactly
the registered ranges intersected with what the codec implements
(``advertised_versions``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker.wire.protocol import STABLE

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

__all__ = [
    "HANDLERS",
    "CloseConnection",
    "Handler",
    "RequestContext",
    "advertised_versions",
    "handles",
    "load_handlers",
]

Handler = Callable[["RequestContext", Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Registration:
    """A handler and the version range it serves."""

    api_key: int
    min_version: int
    max_version: int
    handler: Handler


HANDLERS: dict[int, Registration] = {}


class CloseConnection(Exception):
    """Raised by a handler to have the server close the connection without answering."""


def handles(api_key: int, min_version: int, max_version: int) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine for ``api_key`` versions min..max (inclusive)."""
    if min_version > max_version:
        raise ValueError(f"api key {api_key}: empty version range {min_version}..{max_version}")

    def register(fn: Handler) -> Handler:
        existing = HANDLERS.get(api_key)
        if (
            existing is not None
            and existing.handler is not fn
            and (existing.handler.__module__, existing.handler.__qualname__)
            != (fn.__module__, fn.__qualname__)
        ):
            raise ValueError(
                f"api key {api_key} already handled by "
                f"{existing.handler.__module__}.{existing.handler.__qualname__}"
            )
        HANDLERS[api_key] = Registration(api_key, min_version, max_version, fn)
        _advertised.clear()
        return fn

    return register


_loaded = False
_advertised: dict[int, tuple[int, int]] = {}  # cache of advertised_versions()


def load_handlers() -> dict[int, Registration]:
    """Import every handler module of this package (once) and return the registry."""
    global _loaded
    if not _loaded:
        for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
            if not module.startswith("_"):
                importlib.import_module(f"{__name__}.{module}")
        _loaded = True
    return HANDLERS


# Versions that the protocol definitions we conform to (a Kafka 4.0 pre-release) still
# mark unstable but that Kafka 4.0 released as stable. ConsumerGroupHeartbeat v1 is
# KIP-848's GA version (client-generated member ids, KIP-1082; regex subscriptions):
# librdkafka's `group.protocol=consumer` refuses to run without it.
RELEASED_SINCE_DEFINITIONS: dict[int, int] = {68: 1}


def advertised_versions() -> dict[int, tuple[int, int]]:
    """api key → (min, max): registered ranges ∩ the codec's ``wire.protocol.STABLE``.

    STABLE, not SUPPORTED: Kafka's released brokers never advertise a version its
    definitions mark ``latestVersionUnstable`` (EndTxn v5), with the exceptions in
    ``RELEASED_SINCE_DEFINITIONS``.
    """
    if _advertised:
        return _advertised
    result = _advertised
    for key, reg in sorted(load_handlers().items()):
        if key not in STABLE:
            continue
        low = max(reg.min_version, STABLE[key][0])
        high = min(reg.max_version, RELEASED_SINCE_DEFINITIONS.get(key, STABLE[key][1]))
        if low <= high:
            result[key] = (low, high)
    return result


def lookup(api_key: int, api_version: int) -> Handler | None:
    """The handler serving this key and version (within the advertised range), or None."""
    # The cache read here rather than through advertised_versions(): a call less per
    # request. The handler comes from HANDLERS, the registry (tests replace its entries).
    versions = (_advertised or advertised_versions()).get(api_key)
    if versions is None or not versions[0] <= api_version <= versions[1]:
        return None
    return HANDLERS[api_key].handler


@dataclass(slots=True)
class RequestContext:
    """What a handler knows about the request besides its body."""

    broker: BrokerState
    header: (
        Any  # wire RequestHeader: request_api_key, request_api_version, correlation_id, client_id
    )
    api_version: int
    peer: str  # "host:port" of the client, for logs
    local_address: tuple[str, int]  # our end of the connection (advertised when bound to 0.0.0.0)
    # Who the client authenticated as (Kafka's KafkaPrincipal, "User:name"), and the name
    # of the listener it came in on (Metadata answers with that listener's endpoints).
    principal: str = "User:ANONYMOUS"
    listener: str | None = None
    # Set by a handler whose client went over its quota (kbroker.quotas): the server
    # reads nothing more from the connection for that long after answering (KIP-219).
    throttle_ms: int = 0

    @property
    def client_id(self) -> str | None:
        """The client id from the request header."""
        return getattr(self.header, "client_id", None)

    @property
    def correlation_id(self) -> int:
        """The request's correlation id."""
        return int(self.header.correlation_id)
