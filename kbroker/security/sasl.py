"""Server side of the SASL mechanisms kbroker offers: PLAIN (RFC 4616) and SCRAM-SHA-256 /
SCRAM-SHA-512 (RFC 5802, RFC 7677; the exchange itself is the ``scramp`` library's).

Each mechanism server takes the client's tokens one at a time (``step``) and answers the
server's token, until ``complete``; a failure is ``AuthenticationFailed`` whose message
is what Kafka tells the client (never a password).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import scramp

from kbroker.config import BrokerConfig, ConfigError
from kbroker.security.jaas import parse_jaas, plain_users
from kbroker.security.scram import MECHANISM_CODES, MIN_ITERATIONS, scram_store

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

logger = logging.getLogger(__name__)

SUPPORTED_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
OAUTHBEARER_LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


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

        self._server = scramp.ScramMechanism(mechanism).make_server(
            credential, s_nonce=_server_nonce()
        )
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


class OAuthBearerServer:
    """OAUTHBEARER (RFC 7628) with Kafka's unsecured JWS validator
    (OAuthBearerUnsecuredValidatorCallbackHandler), for development: the token is an
    unsigned JWT (``alg: none``) whose ``sub`` names the principal and whose ``exp`` must
    not be past. A refused token gets the RFC 7628 error challenge; the client's one-byte
    answer to it ends the exchange with SASL_AUTHENTICATION_FAILED, as on Kafka."""

    def __init__(self, options: dict[str, str], clock: Callable[[], float] = time.time) -> None:
        self.principal_claim = options.get("unsecuredValidatorPrincipalClaimName", "sub")
        self.scope_claim = options.get("unsecuredValidatorScopeClaimName", "scope")
        self.required_scope = options.get("unsecuredValidatorRequiredScope", "").split()
        self.skew_s = int(options.get("unsecuredValidatorAllowableClockSkewMs", "0")) / 1000.0
        self.clock = clock
        self.complete = False
        self.user: str | None = None
        self._error: str | None = None

    def step(self, token: bytes) -> bytes:
        if self._error is not None:
            if token == b"\x01":
                raise AuthenticationFailed(f"Authentication failed: {self._error}")
            raise AuthenticationFailed("Authentication failed: unexpected OAUTHBEARER message")
        try:
            self.user = self._validate(self._bearer_token(token))
        except AuthenticationFailed as exc:
            self._error = str(exc)
            # RFC 7628 §3.2.2: the error as a JSON challenge; the client answers %x01.
            return json.dumps({"status": "invalid_token"}).encode()
        self.complete = True
        return b""

    @staticmethod
    def _bearer_token(message: bytes) -> str:
        # gs2-header, then %x01-separated key=value pairs: auth=Bearer <token> (RFC 7628 §3.1).
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid OAUTHBEARER client first message") from None
        header, sep, rest = text.partition("\x01")
        if not sep or not header.startswith(("n,", "y,")):
            raise AuthenticationFailed("Invalid OAUTHBEARER client first message")
        for pair in rest.split("\x01"):
            key, _, value = pair.partition("=")
            if key == "auth":
                scheme, _, bearer = value.partition(" ")
                if scheme.lower() == "bearer" and bearer:
                    return bearer.strip()
        raise AuthenticationFailed("Invalid OAUTHBEARER client first message: no bearer token")

    def _validate(self, token: str) -> str:
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthenticationFailed("malformed unsecured JWS: expected 3 parts")
        try:
            header = json.loads(_b64url(parts[0]))
            claims = json.loads(_b64url(parts[1]))
        except (ValueError, binascii.Error):
            raise AuthenticationFailed("malformed unsecured JWS: bad base64url or JSON") from None
        if not isinstance(header, dict) or header.get("alg") != "none" or parts[2]:
            raise AuthenticationFailed('unsecured JWS must have "alg": "none" and no signature')
        if not isinstance(claims, dict):
            raise AuthenticationFailed("malformed unsecured JWS: claims are not a JSON object")
        now = self.clock()
        expires = claims.get("exp")
        if (
            not isinstance(expires, int | float)
            or isinstance(expires, bool)
            or not math.isfinite(expires)
        ):
            raise AuthenticationFailed('the token has no numeric "exp" claim')
        if now > expires + self.skew_s:
            raise AuthenticationFailed("the token has expired")
        issued = claims.get("iat")
        if isinstance(issued, int | float) and issued > now + self.skew_s:
            raise AuthenticationFailed("the token was issued in the future")
        principal = claims.get(self.principal_claim)
        if not isinstance(principal, str) or not principal:
            raise AuthenticationFailed(f'the token has no "{self.principal_claim}" claim')
        if self.required_scope:
            scope = claims.get(self.scope_claim, [])
            scopes = scope.split() if isinstance(scope, str) else scope
            missing = [s for s in self.required_scope if s not in scopes]
            if missing:
                raise AuthenticationFailed(f"the token lacks the required scope {missing}")
        return principal


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _server_nonce() -> str:
    """A server nonce as Kafka's ScramFormatter.secureRandomString makes it: 130 random bits
    in base 36 (about 26 characters).

    The client must echo the combined nonce exactly (RFC 5802 §7); Kafka once accepted any
    final nonce that merely ended with it, and librdkafka 2.0.x (kcat 1.7's builtin) relies
    on that by sending its own nonce twice. Like Kafka since, kbroker refuses it."""
    value = secrets.randbits(130)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while value:
        value, digit = divmod(value, 36)
        text = digits[digit] + text
    return text or "0"


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
        self.oauthbearer_options: dict[str, str] = {}
        if "OAUTHBEARER" in self.mechanisms:
            jaas = config.for_listener(listener, "sasl.jaas.config", mechanism="OAUTHBEARER")
            if jaas:
                for module in parse_jaas(str(jaas)):
                    if module.name == OAUTHBEARER_LOGIN_MODULE:
                        self.oauthbearer_options = dict(module.options)
        self.failed_delay_s = (
            config.for_listener(listener, "connection.failed.authentication.delay.ms") / 1000.0
        )
        self.max_receive_size: int = config["sasl.server.max.receive.size"]
        self.reauth_ms: int = config.for_listener(listener, "connections.max.reauth.ms")

    def server_for(self, mechanism: str, broker: BrokerState) -> MechanismServer:
        """A new exchange for an enabled mechanism."""
        if mechanism == "PLAIN":
            return PlainServer(self.plain_users)
        if mechanism == "OAUTHBEARER":
            return OAuthBearerServer(self.oauthbearer_options)
        assert mechanism in MECHANISM_CODES
        return ScramServer(mechanism, broker)


__all__ = [
    "MIN_ITERATIONS",
    "AuthenticationFailed",
    "MechanismServer",
    "OAuthBearerServer",
    "PlainServer",
    "SaslSettings",
    "ScramServer",
]
