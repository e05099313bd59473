"""Connections of SSL, SASL_PLAINTEXT and SASL_SSL listeners.

``SecureConnection`` is the server's ``Connection`` with two additions:

- TLS (SSL, SASL_SSL): the socket is wrapped in a ``trio.SSLStream``; the handshake runs
  on the event loop like any other I/O (never blocking other connections), and the
  principal of an SSL listener's client is its certificate's subject
  (``ssl.principal.mapping.rules``), or ANONYMOUS without one.
- SASL (SASL_PLAINTEXT, SASL_SSL): until the client has authenticated, only ApiVersions,
  SaslHandshake and SaslAuthenticate are served (Kafka's SaslServerAuthenticator); any
  other request closes the connection. SaslHandshake v1 is followed by SaslAuthenticate
  requests (KIP-152); after SaslHandshake v0 the client sends its tokens as bare
  size-prefixed frames and gets bare frames back (the legacy flow). Requests are limited
  to ``sasl.server.max.receive.size`` bytes until then, so a huge token costs nothing.
  A refused login is answered SASL_AUTHENTICATION_FAILED after
  ``connection.failed.authentication.delay.ms``, then the connection closes.

A client that has not finished its TLS handshake and SASL login within
``kbroker.authentication.timeout.ms`` is dropped.
"""

from __future__ import annotations

import logging
import ssl
import struct
from functools import partial
from typing import Any

import trio

from kbroker.config import BrokerConfig, Listener
from kbroker.security.sasl import AuthenticationFailed, MechanismServer, SaslSettings
from kbroker.security.tls import map_principal, parse_mapping_rules, server_context, subject_dn
from kbroker.server import (
    RECEIVE_SIZE,
    Connection,
    SendStalled,
    Server,
    _CloseConnection,
    _pread_region,
    _Region,
)
from kbroker.wire.errors import DecodeError, ErrorCode, UnsupportedVersion
from kbroker.wire.frames import FrameDecoder, frame
from kbroker.wire.messages import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)
from kbroker.wire.protocol import API_VERSIONS, decode_request, encode_response

logger = logging.getLogger(__name__)

_API_KEY_AND_VERSION = struct.Struct(">hh")
# SSLStream hands decrypted bytes out as new objects (it cannot read into the decoder's
# buffer); the server's read size keeps each such object, and its copy, small.
TLS_RECEIVE_SIZE = RECEIVE_SIZE
_SASL_APIS = frozenset({SaslHandshakeRequest.API_KEY, SaslAuthenticateRequest.API_KEY})


def connection_factory(config: BrokerConfig, listener: Listener) -> Any:
    """A callable (server, stream) → Connection for a listener's security protocol;
    ConfigError if the listener's TLS or SASL settings are unusable."""
    protocol = config.security_protocol(listener.name)
    if protocol == "PLAINTEXT":
        return partial(Connection, listener=listener)
    tls = server_context(config, listener.name) if protocol in ("SSL", "SASL_SSL") else None
    sasl = SaslSettings(config, listener.name) if protocol.startswith("SASL_") else None
    rules = parse_mapping_rules(config.for_listener(listener.name, "ssl.principal.mapping.rules"))
    return partial(
        SecureConnection, listener=listener, tls_context=tls, sasl=sasl, principal_rules=rules
    )


class SecureConnection(Connection):
    """A connection with TLS, SASL authentication, or both."""

    def __init__(
        self,
        server: Server,
        stream: trio.SocketStream,
        listener: Listener,
        tls_context: ssl.SSLContext | None,
        sasl: SaslSettings | None,
        principal_rules: list[Any],
    ) -> None:
        super().__init__(server, stream, listener)
        self.tls = (
            trio.SSLStream(stream, tls_context, server_side=True, https_compatible=True)
            if tls_context
            else None
        )
        # Through TLS, bytes come and go by the SSLStream (_receive, _send_items).
        self._direct = self.tls is None
        self.sasl = sasl
        self.principal_rules = principal_rules
        self.authenticated = False
        self._mechanism: MechanismServer | None = None
        self._mechanism_name = ""
        self._raw_tokens = False  # after SaslHandshake v0: bare token frames
        self._full_decoder = self.decoder
        if sasl is not None:
            limit = min(sasl.max_receive_size, self.decoder.max_frame_size)
            self.decoder = FrameDecoder(max_frame_size=limit)
        self._timeout_s = server.config["kbroker.authentication.timeout.ms"] / 1000.0
        self._watchdog = trio.CancelScope()
        # KIP-368: when the session ends (connections.max.reauth.ms), and whether a
        # re-authentication (SaslHandshake after login) is under way, with the principal
        # it must keep.
        self._session_expires: float | None = None
        self._reauthenticating = False
        self._previous_principal: str | None = None

    # --- set-up: TLS handshake, then requests -------------------------------------------

    async def _serve(self) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._authentication_watchdog)
        if self.tls is not None:
            await self.tls.do_handshake()
            if self.sasl is None:
                self._tls_principal()
                self._done_authenticating()
        await super()._serve()

    async def _authentication_watchdog(self) -> None:
        with self._watchdog:
            await trio.sleep(self._timeout_s)
            logger.warning(
                "closing connection from %s: %s not finished within %d ms",
                self.peer,
                "SASL authentication" if self.tls is None or self.tls_done else "TLS handshake",
                self._timeout_s * 1000,
            )
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()

    @property
    def tls_done(self) -> bool:
        """Whether the TLS handshake is over."""
        try:
            return self.tls is not None and self.tls.version() is not None
        except trio.NeedHandshakeError:
            return False

    def _tls_principal(self) -> None:
        assert self.tls is not None
        der = self.tls.getpeercert(binary_form=True)
        if der:
            dn = subject_dn(der)
            self.principal = "User:" + map_principal(dn, self.principal_rules)

    def _done_authenticating(self) -> None:
        self.authenticated = True
        self._watchdog.cancel()
        if self.decoder is not self._full_decoder and not self.decoder.buffered:
            # Authenticated: requests may be as large as socket.request.max.bytes now.
            self.decoder = self._full_decoder

    # --- the TLS stream -----------------------------------------------------------------

    def _read_available(self) -> bool | None:
        if self.tls is not None:
            return None  # what the socket holds is ciphertext: SSLStream reads it
        return super()._read_available()

    async def _receive(self) -> bool | None:
        assert self.tls is not None  # without TLS the connection reads the socket itself
        with trio.move_on_after(self.idle_s) as idle, trio.CancelScope() as self._read_scope:
            if self.server.draining:
                return None
            data = await self.tls.receive_some(TLS_RECEIVE_SIZE)
            if not data:
                return False
            self._held += len(data)
            self.server.hold_request_bytes(len(data))
            self.decoder.feed(data)
            return True
        if idle.cancelled_caught:
            self._log_idle_close()
        return None

    async def _send_items(self, items: list[Any]) -> None:
        if self.tls is None:
            await super()._send_items(items)
            return
        # No sendfile through TLS: file regions are read and encrypted like any bytes.
        data = b"".join(_pread_region(i) if isinstance(i, _Region) else i for i in items)
        with trio.move_on_after(self.idle_s):
            await self.tls.send_all(data)
            return
        raise SendStalled

    # --- SASL -----------------------------------------------------------------------------

    async def _process(self, frame_data: bytes | memoryview) -> None:
        if self.authenticated:
            if self.sasl is not None and len(frame_data) >= _API_KEY_AND_VERSION.size:
                api_key, _ = _API_KEY_AND_VERSION.unpack_from(frame_data)
                if api_key == SaslHandshakeRequest.API_KEY:
                    # KIP-368 re-authentication: the same exchange again, on this connection.
                    self.authenticated = False
                    self._reauthenticating = True
                    self._previous_principal = self.principal
                    self._mechanism = None
                    await self._before_authentication(frame_data)
                    return
                expires = self._session_expires
                if expires is not None and trio.current_time() >= expires:
                    logger.info(
                        "closing connection from %s: its SASL session expired "
                        "(connections.max.reauth.ms) without re-authentication",
                        self.peer,
                    )
                    raise _CloseConnection
            await super()._process(frame_data)
        elif self._raw_tokens:
            await self._raw_token(bytes(frame_data))
        else:
            await self._before_authentication(frame_data)

    async def _before_authentication(self, frame_data: bytes | memoryview) -> None:
        if len(frame_data) < _API_KEY_AND_VERSION.size:
            logger.warning("connection from %s sent a malformed request; closing it", self.peer)
            raise _CloseConnection
        api_key, _ = _API_KEY_AND_VERSION.unpack_from(frame_data)
        if api_key == API_VERSIONS:
            await super()._process(frame_data)
            return
        if api_key not in _SASL_APIS:
            # Kafka: "Unexpected Kafka request of type X during SASL handshake".
            logger.warning(
                "connection from %s sent api key %d before authenticating; closing it",
                self.peer,
                api_key,
            )
            raise _CloseConnection
        try:
            header, request = decode_request(frame_data)
        except (DecodeError, UnsupportedVersion) as exc:
            logger.warning(
                "connection from %s sent a malformed SASL request (%s); closing it", self.peer, exc
            )
            raise _CloseConnection from None
        if api_key == SaslHandshakeRequest.API_KEY:
            await self._handshake(header, request)
        else:
            await self._authenticate(header, request)

    async def _reply(self, header: Any, response: Any) -> None:
        data = encode_response(
            header.request_api_key, header.request_api_version, header.correlation_id, response
        )
        await self._send_raw(data)

    async def _send_raw(self, data: bytes) -> None:
        try:
            await self._send_items([data])
        except SendStalled:
            logger.info("closing connection from %s: it reads nothing", self.peer)
            raise _CloseConnection from None

    async def _handshake(self, header: Any, request: SaslHandshakeRequest) -> None:
        assert self.sasl is not None
        enabled = self.sasl.mechanisms
        if self._mechanism is not None:
            await self._reply(
                header,
                SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=enabled),
            )
            logger.warning("connection from %s sent a second SaslHandshake; closing it", self.peer)
            raise _CloseConnection
        mechanism = request.mechanism
        if self._reauthenticating and mechanism != self._mechanism_name:
            # Kafka: re-authentication must use the mechanism of the first login.
            await self._reply(
                header,
                SaslHandshakeResponse(
                    error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM, mechanisms=enabled
                ),
            )
            logger.warning(
                "connection from %s tried to re-authenticate with %r instead of %s; closing it",
                self.peer,
                mechanism[:64],
                self._mechanism_name,
            )
            raise _CloseConnection
        if mechanism not in enabled:
            # Kafka answers with the enabled mechanisms, then closes the connection.
            await self._reply(
                header,
                SaslHandshakeResponse(
                    error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM, mechanisms=enabled
                ),
            )
            logger.warning(
                "connection from %s asked for SASL mechanism %r, not enabled on listener %s; "
                "closing it",
                self.peer,
                mechanism[:64],
                self.listener_name,
            )
            raise _CloseConnection
        self._mechanism = self.sasl.server_for(mechanism, self.server.broker)
        self._mechanism_name = mechanism
        self._raw_tokens = header.request_api_version == 0
        await self._reply(
            header, SaslHandshakeResponse(error_code=ErrorCode.NONE, mechanisms=enabled)
        )

    async def _authenticate(self, header: Any, request: SaslAuthenticateRequest) -> None:
        if self._mechanism is None:
            await self._reply(
                header,
                SaslAuthenticateResponse(
                    error_code=ErrorCode.ILLEGAL_SASL_STATE,
                    error_message="SaslAuthenticate before SaslHandshake",
                    auth_bytes=b"",
                ),
            )
            logger.warning(
                "connection from %s sent SaslAuthenticate before SaslHandshake; closing it",
                self.peer,
            )
            raise _CloseConnection
        try:
            answer = self._mechanism.step(bytes(request.auth_bytes))
            if (
                self._mechanism.complete
                and self._reauthenticating
                and f"User:{self._mechanism.user}" != self._previous_principal
            ):
                raise AuthenticationFailed(
                    "Cannot change principals during re-authentication from "
                    f"{self._previous_principal}: User:{self._mechanism.user}"
                )
        except AuthenticationFailed as exc:
            await self._failed(exc)
            await self._reply(
                header,
                SaslAuthenticateResponse(
                    error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
                    error_message=str(exc),
                    auth_bytes=b"",
                ),
            )
            raise _CloseConnection from None
        lifetime_ms = 0
        assert self.sasl is not None
        if self._mechanism.complete and self.sasl.reauth_ms > 0:
            # KIP-368: the client learns how long its session lasts and re-authenticates
            # before; a client of SaslAuthenticate v0 cannot learn it and is closed then.
            lifetime_ms = self.sasl.reauth_ms
            self._session_expires = trio.current_time() + lifetime_ms / 1000.0
        await self._reply(
            header,
            SaslAuthenticateResponse(
                error_code=ErrorCode.NONE,
                error_message=None,
                auth_bytes=answer,
                session_lifetime_ms=lifetime_ms,
            ),
        )
        self._maybe_complete()

    async def _raw_token(self, token: bytes) -> None:
        assert self._mechanism is not None
        try:
            answer = self._mechanism.step(token)
        except AuthenticationFailed as exc:
            # The legacy framing has no error field: the client sees the connection close.
            await self._failed(exc)
            raise _CloseConnection from None
        await self._send_raw(frame(answer))
        self._maybe_complete()

    async def _failed(self, exc: AuthenticationFailed) -> None:
        logger.warning(
            "connection from %s failed SASL %s authentication: %s",
            self.peer,
            self._mechanism_name,
            exc,
        )
        assert self.sasl is not None
        # Kafka's connection.failed.authentication.delay.ms: slows password guessing; the
        # watchdog is off meanwhile (the connection closes right after anyway).
        self._watchdog.cancel()
        await trio.sleep(self.sasl.failed_delay_s)

    def _maybe_complete(self) -> None:
        mechanism = self._mechanism
        if mechanism is None or not mechanism.complete:
            return
        self.principal = f"User:{mechanism.user}"
        self._raw_tokens = False
        again, self._reauthenticating = self._reauthenticating, False
        self._done_authenticating()
        logger.info(
            "connection from %s %s as %s (SASL %s)",
            self.peer,
            "re-authenticated" if again else "authenticated",
            self.principal,
            self._mechanism_name,
        )
