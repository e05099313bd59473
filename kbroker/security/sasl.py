"""Server side of the SASL mechanisms kbroker offers: PLAIN (RFC 4616) and SCRAM-SHA-256 /
SCRAM-SHA-512 (RFC 5802, RFC 7677; the exchange itself is the ``scramp`` library's).

Each mechanism server takes the client's tokens one at a time (``step``) and answers the
server's token, until ``complete``; a failure is ``AuthenticationFailed`` whose message
is what Kafka tells the client (never a password).
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Protocol

import scramp

from kbroker.config import BrokerConfig, ConfigError
from kbroker.security.jaas import plain_users
from kbroker.security.scram import MECHANISM_CODES, MIN_ITERATIONS, scram_store

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

logger = logging.getLogger(__name__)

SUPPORTED_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class AuthenticationFailed(Exception):
    """The client's credentials were refused; ``str()`` is the message sent to it."""


class MechanismServer(Protocol):
    """One authentication exchange."""

    complete: bool
    user: str | None

    def step(self, token: bytes) -> bytes:
        """The server's answer to the client's next token; AuthenticationFailed if refused."""
        ...


class PlainServer:
    """PLAIN: one token ``authzid NUL authcid NUL password`` (Kafka's PlainSaslServer)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.complete = False
        self.user: str | None = None

    def step(self, token: bytes) -> bytes:
        parts = token.split(b"\x00")
        if len(parts) != 3:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        authzid, username, password = (p.decode("utf-8", "replace") for p in parts)
        if not username:
            raise AuthenticationFailed("Authentication failed: username not specified")
        if not password:
            raise AuthenticationFailed("Authentication failed: password not specified")
        expected = self.users.get(username)
        # compare_digest: no timing hint of how much of the password was right.
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        if authzid and authzid != username:
            raise AuthenticationFailed(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        self.user = username
        self.complete = True
        return b""


class ScramServer:
    """SCRAM-SHA-256/512: client-first → server-first, client-final → server-final."""

    def __init__(self, mechanism: str, broker: BrokerState) -> None:
        self.mechanism = mechanism
        self.complete = False
        self.user: str | None = None
        self._candidate: str | None = None
        store = scram_store(broker)

        def credential(username: str) -> tuple[bytes, bytes, bytes, int]:
            self._candidate = username
            found = store.get(username, mechanism)
            if found is None:
                raise scramp.ScramException("unknown user")
            return found.salt, found.stored_key, found.server_key, found.iterations

        self._server = scramp.ScramMechanism(mechanism).make_server(credential)
        self._steps = 0

    def step(self, token: bytes) -> bytes:
        self._steps += 1
        try:
            text = token.decode("utf-8")
            if self._steps == 1:
                self._server.set_client_first(text)
                return self._server.get_server_first().encode()
            if self._steps == 2:
                self._server.set_client_final(text)
                answer = self._server.get_server_final().encode()
                self.user = self._candidate
                self.complete = True
                return answer
        except (scramp.ScramException, UnicodeDecodeError, ValueError) as exc:
            logger.debug("SCRAM exchange refused: %s", exc)
        # Kafka's ScramSaslServer words every failure alike: nothing tells an attacker
        # whether the user exists.
        raise AuthenticationFailed(
            "Authentication failed during authentication due to invalid credentials with "
            f"SASL mechanism {self.mechanism}"
        )


def enabled_mechanisms(config: BrokerConfig, listener: str) -> list[str]:
    """sasl.enabled.mechanisms of a listener, checked; ConfigError if one is not offered."""
    mechanisms = [m.upper() for m in config.for_listener(listener, "sasl.enabled.mechanisms")]
    for mechanism in mechanisms:
        if mechanism not in SUPPORTED_MECHANISMS:
            raise ConfigError(
                f"listener {listener}: SASL mechanism {mechanism} is not supported "
                f"(sasl.enabled.mechanisms may name {', '.join(SUPPORTED_MECHANISMS)})"
            )
    if not mechanisms:
        raise ConfigError(f"listener {listener}: sasl.enabled.mechanisms is empty")
    return mechanisms


def listener_plain_users(config: BrokerConfig, listener: str) -> dict[str, str]:
    """The PLAIN users of a listener: listener.name.<l>.plain.sasl.jaas.config, else
    sasl.jaas.config; ConfigError if neither names any."""
    text = config.for_listener(listener, "sasl.jaas.config", mechanism="PLAIN")
    if not text:
        raise ConfigError(
            f"listener {listener} enables PLAIN but has no JAAS configuration "
            f"(listener.name.{listener.lower()}.plain.sasl.jaas.config)"
        )
    return plain_users(str(text))


class SaslSettings:
    """What a SASL listener's connections need: its mechanisms and PLAIN users."""

    def __init__(self, config: BrokerConfig, listener: str) -> None:
        self.mechanisms = enabled_mechanisms(config, listener)
        self.plain_users = (
            listener_plain_users(config, listener) if "PLAIN" in self.mechanisms else {}
        )
        self.failed_delay_s = (
            config.for_listener(listener, "connection.failed.authentication.delay.ms") / 1000.0
        )
        self.max_receive_size: int = config["sasl.server.max.receive.size"]

    def server_for(self, mechanism: str, broker: BrokerState) -> MechanismServer:
        """A new exchange for an enabled mechanism."""
        if mechanism == "PLAIN":
            return PlainServer(self.plain_users)
        assert mechanism in MECHANISM_CODES
        return ScramServer(mechanism, broker)


__all__ = [
    "MIN_ITERATIONS",
    "AuthenticationFailed",
    "MechanismServer",
    "PlainServer",
    "SaslSettings",
    "ScramServer",
]
