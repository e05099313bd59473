"""Test helpers for TLS and SASL: certificates made at test time (trustme), TLS and SASL
clients over the raw wire codec."""

from __future__ import annotations

import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import scramp
import trio
import trustme

from kbroker.wire.messages import (
    AlterUserScramCredentialsRequest,
    SaslAuthenticateRequest,
    SaslHandshakeRequest,
)
from tests.kbroker.conftest import RawClient


@dataclass
class Certificates:
    """A CA, a broker key store (one PEM file: key + chain) and a client certificate."""

    ca: trustme.CA
    ca_file: Path
    keystore: Path
    client: trustme.LeafCert

    def client_context(self, *, with_certificate: bool = False) -> ssl.SSLContext:
        """A client SSLContext trusting the CA, with the client certificate if asked."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if with_certificate:
            self.client.configure_cert(context)
        return context


def make_certificates(directory: Path) -> Certificates:
    """A fresh CA, a broker certificate for localhost / 127.0.0.1 and a client one (CN=alice)."""
    ca = trustme.CA()
    broker = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("client.example", common_name="alice", organization_name="Example")
    directory.mkdir(parents=True, exist_ok=True)
    keystore = directory / "broker.pem"
    broker.private_key_and_cert_chain_pem.write_to_path(str(keystore))
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Certificates(ca, ca_file, keystore, client)


async def tls_client(
    address: tuple[str, int], context: ssl.SSLContext, *, handshake: bool = True
) -> RawClient:
    """A RawClient over TLS to ``address``."""
    stream = await trio.open_tcp_stream(*address)
    tls = trio.SSLStream(stream, context, server_hostname="localhost")
    if handshake:
        await tls.do_handshake()
    return RawClient(tls)  # type: ignore[arg-type]


def plain_token(user: str, password: str) -> bytes:
    """A SASL/PLAIN token (RFC 4616)."""
    return f"\0{user}\0{password}".encode()


async def sasl_handshake(client: RawClient, mechanism: str, *, version: int = 1) -> int:
    """SaslHandshake; returns the error code."""
    response = await client.request(SaslHandshakeRequest(mechanism=mechanism), version=version)
    return int(response.error_code)


async def sasl_authenticate(client: RawClient, token: bytes) -> tuple[int, str | None, bytes]:
    """One SaslAuthenticate; (error code, error message, server token)."""
    response = await client.request(SaslAuthenticateRequest(auth_bytes=token))
    return int(response.error_code), response.error_message, bytes(response.auth_bytes)


async def plain_login(client: RawClient, user: str, password: str) -> tuple[int, str | None]:
    """KIP-152 PLAIN login; (error code, error message)."""
    assert await sasl_handshake(client, "PLAIN") == 0
    code, message, _ = await sasl_authenticate(client, plain_token(user, password))
    return code, message


async def scram_login(client: RawClient, mechanism: str, user: str, password: str) -> int:
    """KIP-152 SCRAM login with scramp's client; the error code of the failing step or 0."""
    assert await sasl_handshake(client, mechanism) == 0
    scram = scramp.ScramClient([mechanism], user, password)
    code, _, server_first = await sasl_authenticate(client, scram.get_client_first().encode())
    if code:
        return code
    scram.set_server_first(server_first.decode())
    code, _, server_final = await sasl_authenticate(client, scram.get_client_final().encode())
    if code:
        return code
    scram.set_server_final(server_final.decode())  # checks the server's signature
    return 0


def scram_upsertion(
    user: str, password: str, *, mechanism: int = 1, iterations: int = 4096
) -> AlterUserScramCredentialsRequest.ScramCredentialUpsertion:
    """What an admin client sends to set a SCRAM password (KIP-554: salted client-side)."""
    salt = os.urandom(16)
    digest = "sha256" if mechanism == 1 else "sha512"
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
    return AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
        name=user, mechanism=mechanism, iterations=iterations, salt=salt, salted_password=salted
    )
