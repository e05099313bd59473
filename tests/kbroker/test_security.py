"""TLS and SASL listeners: what a client sees (kbroker.security)."""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from kbroker.config import BrokerConfig, ConfigError
from kbroker.security.jaas import parse_jaas, plain_users
from kbroker.security.tls import map_principal, parse_mapping_rules
from kbroker.wire.errors import ErrorCode
from kbroker.wire.frames import frame
from kbroker.wire.messages import (
    AlterUserScramCredentialsRequest,
    ApiVersionsRequest,
    DescribeUserScramCredentialsRequest,
    MetadataRequest,
    SaslAuthenticateRequest,
    SaslHandshakeRequest,
)
from tests.kbroker.conftest import RawClient, RunningServer
from tests.kbroker.security_kit import (
    Certificates,
    make_certificates,
    plain_login,
    plain_token,
    sasl_authenticate,
    sasl_handshake,
    scram_login,
    scram_upsertion,
    tls_client,
)

_API_VERSIONS = ApiVersionsRequest(
    client_software_name="kbroker-tests", client_software_version="1"
)
MakeServer = Callable[..., Awaitable[RunningServer]]
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" '
    'user_alice="alice-secret";'
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _tls_settings(certs: Certificates, **extra: Any) -> dict[str, Any]:
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca_file),
        **extra,
    }


async def _connect(server: RunningServer, listener: str) -> RawClient:
    stream = await trio.open_tcp_stream(*server.server.addresses[listener])
    return RawClient(stream)


async def _closed(client: RawClient) -> bool:
    """Whether the broker closed the connection (within a few seconds)."""
    with trio.fail_after(5):
        return await client.receive_raw() is None


def _metadata_port(response: Any) -> int:
    (broker,) = response.brokers
    return int(broker.port)


# --- configuration ---------------------------------------------------------------------------


def test_listener_settings_and_overrides() -> None:
    config = BrokerConfig.from_properties(
        {
            "listeners": "PLAINTEXT://:9092,SECURE://:9094,CONTROLLER://:9093",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL,"
            "CONTROLLER:PLAINTEXT",
            "advertised.listeners": "PLAINTEXT://a.example:19092,SECURE://b.example:19094",
            "ssl.client.auth": "none",
            "listener.name.SECURE.ssl.client.auth": "required",
            "listener.name.secure.plain.sasl.jaas.config": JAAS,
        }
    )
    assert [(x.name, x.port) for x in config.listeners] == [("PLAINTEXT", 9092), ("SECURE", 9094)]
    assert config.security_protocol("SECURE") == "SASL_SSL"
    assert config.for_listener("SECURE", "ssl.client.auth") == "required"
    assert config.for_listener("PLAINTEXT", "ssl.client.auth") == "none"
    assert config.for_listener("SECURE", "sasl.jaas.config", mechanism="PLAIN") == JAAS
    secure = config.advertised_for("SECURE")
    assert secure is not None and (secure.host, secure.port) == ("b.example", 19094)


def test_jaas_plain_users() -> None:
    assert plain_users(JAAS) == {"admin": "admin-secret", "alice": "alice-secret"}
    (module,) = parse_jaas('a.b.C optional k=v q="x \\" y";')
    assert (module.flag, module.options) == ("optional", {"k": "v", "q": 'x " y'})
    for bad in ('a.b.C required user_a="x"', "a.b.C always;", 'a.b.C required k="v" junk;'):
        with pytest.raises(ConfigError) as info:
            parse_jaas(bad)
        assert "x" not in str(info.value).replace("expected", "")  # never echoes values


def test_principal_mapping_rules() -> None:
    dn = "CN=Alice,OU=Eng,O=Example,C=US"
    assert map_principal(dn, parse_mapping_rules("DEFAULT")) == dn
    rules = parse_mapping_rules(
        "RULE:^CN=([^,]*),OU=Ops,.*$/ops-$1/, RULE:^CN=([^,]*),.*$/$1/L, DEFAULT"
    )
    assert map_principal(dn, rules) == "alice"
    assert map_principal("CN=Bob,OU=Ops,O=X", rules) == "ops-Bob"
    assert map_principal("O=NoCommonName", rules) == "O=NoCommonName"
    with pytest.raises(ConfigError):
        parse_mapping_rules("RULE:broken")


async def test_a_bad_keystore_stops_the_start(make_server: MakeServer, tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("")
    with pytest.raises(ConfigError, match="SSL: cannot load its TLS key material"):
        await make_server(
            listeners="SSL://127.0.0.1:0", **{"ssl.keystore.location": str(tmp_path / "empty.pem")}
        )
    with pytest.raises(ConfigError, match="no JAAS configuration"):
        await make_server(
            listeners="SASL_PLAINTEXT://127.0.0.1:0", **{"sasl.enabled.mechanisms": "PLAIN"}
        )


# --- TLS ---------------------------------------------------------------------------------------


async def test_ssl_listener_beside_plaintext(make_server: MakeServer, certs: Certificates) -> None:
    server = await make_server(
        listeners="PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", **_tls_settings(certs)
    )
    ports = {name: address[1] for name, address in server.server.addresses.items()}
    assert ports["SSL"] != ports["PLAINTEXT"]
    async with await tls_client(server.server.addresses["SSL"], certs.client_context()) as tls:
        assert (await tls.request(_API_VERSIONS)).error_code == 0
        # Metadata names the listener the client came in on.
        assert _metadata_port(await tls.request(MetadataRequest(topics=[]))) == ports["SSL"]
    async with await _connect(server, "PLAINTEXT") as plain:
        assert _metadata_port(await plain.request(MetadataRequest(topics=[]))) == ports["PLAINTEXT"]
    # Plain Kafka bytes on the TLS port are not a ClientHello: that connection closes.
    async with await _connect(server, "SSL") as confused:
        await confused.send_request(_API_VERSIONS)
        assert await _closed(confused)


async def test_mutual_tls(make_server: MakeServer, certs: Certificates) -> None:
    server = await make_server(
        listeners="SSL://127.0.0.1:0",
        **_tls_settings(
            certs,
            **{
                "ssl.client.auth": "required",
                "ssl.principal.mapping.rules": "RULE:^CN=([^,]*),.*$/$1/, DEFAULT",
            },
        ),
    )
    address = server.server.addresses["SSL"]
    async with await tls_client(address, certs.client_context(with_certificate=True)) as client:
        assert (await client.request(_API_VERSIONS)).error_code == 0
        (connection,) = server.server.connections
        assert connection.principal == "User:alice"
    # Without a certificate the handshake (or the first read after it, with TLS 1.3) fails.
    answer: bytes | None = b""
    try:
        client = await tls_client(address, certs.client_context())
        await client.send_request(_API_VERSIONS)
        answer = await client.receive_raw()
    except trio.BrokenResourceError:
        answer = None
    assert answer is None


async def test_garbage_instead_of_client_hello(
    make_server: MakeServer, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(listeners="SSL://127.0.0.1:0", **_tls_settings(certs))
    address = server.server.addresses["SSL"]
    caplog.set_level(logging.INFO, logger="kbroker")
    async with await _connect(server, "SSL") as garbage:
        await garbage.send_raw(os.urandom(4096))
        assert await _closed(garbage)
        peer = f"127.0.0.1:{garbage.stream.socket.getsockname()[1]}"
    lines = [r for r in caplog.records if peer in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    async with await tls_client(address, certs.client_context()) as fine:
        assert (await fine.request(_API_VERSIONS)).error_code == 0


async def test_a_stalled_handshake_is_dropped_without_stalling_others(
    make_server: MakeServer, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(
        listeners="SSL://127.0.0.1:0",
        **_tls_settings(certs, **{"kbroker.authentication.timeout.ms": 300}),
    )
    address = server.server.addresses["SSL"]
    caplog.set_level(logging.INFO, logger="kbroker")
    # Half a ClientHello, then nothing.
    async with await _connect(server, "SSL") as stalled:
        await stalled.send_raw(bytes.fromhex("16030100c8010000c40303") + os.urandom(20))
        with trio.fail_after(2):
            # Meanwhile others handshake and are served.
            async with await tls_client(address, certs.client_context()) as other:
                assert (await other.request(_API_VERSIONS)).error_code == 0
        assert await _closed(stalled)
    assert any("TLS handshake not finished within 300 ms" in r.getMessage() for r in caplog.records)


# --- SASL ------------------------------------------------------------------------------------


async def _sasl_server(
    make_server: MakeServer, certs: Certificates | None = None, **extra: Any
) -> RunningServer:
    settings: dict[str, Any] = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "connection.failed.authentication.delay.ms": 50,
        **extra,
    }
    return await make_server(**settings)


async def test_sasl_plain_login_kip152(make_server: MakeServer) -> None:
    server = await _sasl_server(make_server)
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        versions = await client.request(_API_VERSIONS)  # allowed before logging in
        keys = {k.api_key for k in versions.api_keys}
        assert {SaslHandshakeRequest.API_KEY, SaslAuthenticateRequest.API_KEY} <= keys
        assert await plain_login(client, "alice", "alice-secret") == (0, None)
        assert (
            _metadata_port(await client.request(MetadataRequest(topics=[])))
            == (server.server.addresses["SASL_PLAINTEXT"][1])
        )
        (connection,) = [
            c for c in server.server.connections if c.listener_name == "SASL_PLAINTEXT"
        ]
        assert connection.principal == "User:alice"


async def test_sasl_plain_wrong_password(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await _sasl_server(make_server)
    caplog.set_level(logging.INFO, logger="kbroker")
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        started = trio.current_time()
        code, message = await plain_login(client, "alice", "wrong-password")
        assert code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert message == "Authentication failed: Invalid username or password"
        assert trio.current_time() - started >= 0.05  # connection.failed.authentication.delay.ms
        assert await _closed(client)
    assert not any("wrong-password" in r.getMessage() for r in caplog.records)
    assert any("failed SASL PLAIN authentication" in r.getMessage() for r in caplog.records)


async def test_sasl_legacy_v0_framing(make_server: MakeServer) -> None:
    server = await _sasl_server(make_server)
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await sasl_handshake(client, "PLAIN", version=0) == 0
        await client.send_raw(frame(plain_token("admin", "admin-secret")))
        assert await client.receive_raw() == b""  # PLAIN's empty server token
        assert (await client.request(MetadataRequest(topics=[]))).brokers
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await sasl_handshake(client, "PLAIN", version=0) == 0
        await client.send_raw(frame(plain_token("admin", "nope")))
        assert await _closed(client)


async def test_sasl_refuses_everything_else_before_login(make_server: MakeServer) -> None:
    server = await _sasl_server(make_server)
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        await client.send_request(MetadataRequest(topics=[]))
        assert await _closed(client)
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        response = await client.request(SaslHandshakeRequest(mechanism="GSSAPI"))
        assert response.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
        assert response.mechanisms == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        assert await _closed(client)
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        code, _, _ = await sasl_authenticate(client, b"\0a\0b")  # no handshake first
        assert code == ErrorCode.ILLEGAL_SASL_STATE
        assert await _closed(client)
    # On a listener without SASL, Kafka answers the SASL APIs with ILLEGAL_SASL_STATE.
    async with await _connect(server, "PLAINTEXT") as client:
        assert await sasl_handshake(client, "PLAIN") == ErrorCode.ILLEGAL_SASL_STATE


async def test_a_huge_token_before_login_costs_nothing(make_server: MakeServer) -> None:
    server = await _sasl_server(make_server)
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await sasl_handshake(client, "PLAIN") == 0
        # A SaslAuthenticate claiming 100 MB: refused at its size prefix
        # (sasl.server.max.receive.size), long before the bytes could be held.
        await client.send_raw(struct.pack(">i", 100 * 1024 * 1024) + b"\x00\x24\x00\x02")
        assert await _closed(client)
        assert server.server.request_bytes < 1024 * 1024
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await plain_login(client, "admin", "admin-secret") == (0, None)


# --- SCRAM -------------------------------------------------------------------------------------


async def test_scram_credentials_created_described_used_and_kept(
    make_server: MakeServer, tmp_path: Path
) -> None:
    data = str(tmp_path / "scram-data")
    server = await _sasl_server(make_server, log_dirs=data)
    async with await _connect(server, "PLAINTEXT") as admin:
        # With no authorizer, a PLAINTEXT client creates SCRAM users, as on Kafka.
        response = await admin.request(
            AlterUserScramCredentialsRequest(
                deletions=[],
                upsertions=[
                    scram_upsertion("bob", "bob-secret", mechanism=1),
                    scram_upsertion("bob", "bob-secret-512", mechanism=2, iterations=8192),
                    scram_upsertion("carol", "carol-secret", iterations=1000),
                ],
            )
        )
        results = {r.user: (r.error_code, r.error_message) for r in response.results}
        assert results["bob"] == (0, None)
        assert results["carol"][0] == ErrorCode.UNACCEPTABLE_CREDENTIAL
        assert "iterations" in (results["carol"][1] or "")
        described = await admin.request(DescribeUserScramCredentialsRequest(users=None))
        assert [
            (r.user, [(c.mechanism, c.iterations) for c in r.credential_infos])
            for r in described.results
        ] == [("bob", [(1, 4096), (2, 8192)])]
        missing = await admin.request(
            DescribeUserScramCredentialsRequest(
                users=[DescribeUserScramCredentialsRequest.UserName(name="carol")]
            )
        )
        assert missing.results[0].error_code == ErrorCode.RESOURCE_NOT_FOUND
    stored = (Path(data) / "kbroker-scram-credentials.json").read_text()
    assert "bob-secret" not in stored
    for mechanism, password in (
        ("SCRAM-SHA-256", "bob-secret"),
        ("SCRAM-SHA-512", "bob-secret-512"),
    ):
        async with await _connect(server, "SASL_PLAINTEXT") as client:
            assert await scram_login(client, mechanism, "bob", password) == 0
            assert (await client.request(MetadataRequest(topics=[]))).brokers
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await scram_login(client, "SCRAM-SHA-256", "bob", "wrong") == (
            ErrorCode.SASL_AUTHENTICATION_FAILED
        )
        assert await _closed(client)
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        # Unknown users fail exactly like wrong passwords.
        assert await scram_login(client, "SCRAM-SHA-256", "nobody", "x") == (
            ErrorCode.SASL_AUTHENTICATION_FAILED
        )
    await server.stop()
    restarted = await _sasl_server(make_server, log_dirs=data)
    async with await _connect(restarted, "SASL_PLAINTEXT") as client:
        assert await scram_login(client, "SCRAM-SHA-256", "bob", "bob-secret") == 0


async def test_scram_with_a_wrong_nonce_fails(make_server: MakeServer) -> None:
    server = await _sasl_server(make_server)
    async with await _connect(server, "PLAINTEXT") as admin:
        await admin.request(
            AlterUserScramCredentialsRequest(
                deletions=[], upsertions=[scram_upsertion("bob", "bob-secret")]
            )
        )
    import scramp

    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await sasl_handshake(client, "SCRAM-SHA-256") == 0
        scram = scramp.ScramClient(["SCRAM-SHA-256"], "bob", "bob-secret")
        _, _, server_first = await sasl_authenticate(client, scram.get_client_first().encode())
        scram.set_server_first(server_first.decode())
        final = scram.get_client_final()
        nonce = final.split(",r=")[1].split(",")[0]
        tampered = final.replace(nonce, nonce[:-4] + "AAAA")
        code, message, _ = await sasl_authenticate(client, tampered.encode())
        assert code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert message is not None and "SCRAM-SHA-256" in message
        assert await _closed(client)


async def test_a_client_stopping_mid_login_is_dropped(make_server: MakeServer) -> None:
    server = await _sasl_server(make_server, **{"kbroker.authentication.timeout.ms": 300})
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await sasl_handshake(client, "PLAIN") == 0
        assert await _closed(client)  # never sent its token
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await plain_login(client, "alice", "alice-secret") == (0, None)
        # A connection opened after this one that never logs in: once the broker has
        # dropped it for the login timeout, this one's has passed too. Logged-in
        # clients stay.
        async with await _connect(server, "SASL_PLAINTEXT") as later:
            assert await sasl_handshake(later, "PLAIN") == 0
            assert await _closed(later)
        assert (await client.request(_API_VERSIONS)).error_code == 0


async def test_sasl_ssl_scram_512(make_server: MakeServer, certs: Certificates) -> None:
    server = await make_server(
        listeners="PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        **{"sasl.enabled.mechanisms": "SCRAM-SHA-512"},
        **_tls_settings(certs),
    )
    async with await _connect(server, "PLAINTEXT") as admin:
        await admin.request(
            AlterUserScramCredentialsRequest(
                deletions=[], upsertions=[scram_upsertion("dave", "dave-secret", mechanism=2)]
            )
        )
    address = server.server.addresses["SASL_SSL"]
    async with await tls_client(address, certs.client_context()) as client:
        assert await scram_login(client, "SCRAM-SHA-512", "dave", "dave-secret") == 0
        assert _metadata_port(await client.request(MetadataRequest(topics=[]))) == address[1]


def test_the_kafka_style_properties_file_loads(certs: Certificates, tmp_path: Path) -> None:
    from kbroker.config import parse_properties
    from kbroker.security.connection import connection_factory

    text = f"""
listeners=PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094
advertised.listeners=PLAINTEXT://localhost:9092,SASL_SSL://localhost:9094
log.dirs={tmp_path}
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\
    username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";
ssl.keystore.type=PEM
ssl.keystore.location={certs.keystore}
"""
    config = BrokerConfig.from_properties(parse_properties(text))
    for listener in config.listeners:
        assert connection_factory(config, listener) is not None
    sasl = connection_factory(config, config.listeners[1]).keywords["sasl"]
    assert sasl.plain_users == {"admin": "admin-secret", "alice": "alice-secret"}
    advertised = config.advertised_for("SASL_SSL")
    assert advertised is not None and advertised.port == 9094


async def test_a_thousand_failed_logins(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await _sasl_server(make_server, **{"connection.failed.authentication.delay.ms": 0})
    caplog.set_level(logging.INFO, logger="kbroker")
    good = await _connect(server, "SASL_PLAINTEXT")
    assert await plain_login(good, "alice", "alice-secret") == (0, None)
    peers: list[str] = []

    async def fail_once() -> None:
        async with await _connect(server, "SASL_PLAINTEXT") as client:
            peers.append(f"127.0.0.1:{client.stream.socket.getsockname()[1]}")
            code, _ = await plain_login(client, "alice", "guess")
            assert code == ErrorCode.SASL_AUTHENTICATION_FAILED
            assert await _closed(client)

    for _ in range(20):
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(fail_once)
            # The logged-in client is served meanwhile.
            with trio.fail_after(5):
                assert (await good.request(_API_VERSIONS)).error_code == 0
    assert len(peers) == 1000
    with trio.fail_after(5):
        while len(server.server.connections) > 1:
            await trio.sleep(0.01)
    messages = [r.getMessage() for r in caplog.records]
    failures = [m for m in messages if "failed SASL PLAIN authentication" in m]
    assert len(failures) == 1000
    # One line per failed login, naming its peer (plus the ApiVersions line of the client).
    assert {m.split("connection from ")[1].split(" ")[0] for m in failures} == set(peers)
    assert server.server.request_bytes < 64 * 1024
    await good.aclose()


def _unsecured_jws(**claims: Any) -> str:
    import base64
    import json

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}."


def _bearer(token: str) -> bytes:
    return f"n,,\x01auth=Bearer {token}\x01\x01".encode()


async def test_oauthbearer_unsecured_jws(make_server: MakeServer) -> None:
    import time

    server = await _sasl_server(make_server, **{"sasl.enabled.mechanisms": "OAUTHBEARER"})
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await sasl_handshake(client, "OAUTHBEARER") == 0
        token = _unsecured_jws(sub="erin", exp=time.time() + 60, iat=time.time())
        assert (await sasl_authenticate(client, _bearer(token)))[0] == 0
        assert (await client.request(MetadataRequest(topics=[]))).brokers
        (connection,) = [
            c for c in server.server.connections if c.listener_name == "SASL_PLAINTEXT"
        ]
        assert connection.principal == "User:erin"
    # An expired token: RFC 7628's error challenge, then SASL_AUTHENTICATION_FAILED.
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await sasl_handshake(client, "OAUTHBEARER") == 0
        expired = _unsecured_jws(sub="erin", exp=time.time() - 60)
        code, _, challenge = await sasl_authenticate(client, _bearer(expired))
        assert (code, challenge) == (0, b'{"status": "invalid_token"}')
        code, message, _ = await sasl_authenticate(client, b"\x01")
        assert code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert message == "Authentication failed: the token has expired"
        assert await _closed(client)
    # A signed token is not an unsecured one.
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert await sasl_handshake(client, "OAUTHBEARER") == 0
        signed = _unsecured_jws(sub="erin", exp=time.time() + 60)[:-1] + ".c2ln"
        signed = signed.replace(signed.split(".")[0], "eyJhbGciOiJIUzI1NiJ9")
        code, _, challenge = await sasl_authenticate(client, _bearer(signed))
        assert challenge == b'{"status": "invalid_token"}'


async def test_the_sasl_principal_is_what_acls_check(make_server: MakeServer) -> None:
    from kbroker.wire.messages import CreateAclsRequest
    from tests.kbroker.helpers import create_topic, fetch_request, produce, records

    server = await _sasl_server(
        make_server,
        **{
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "super.users": "User:admin",
        },
    )
    create_topic(server, "orders")
    async with await _connect(server, "SASL_PLAINTEXT") as admin:
        assert await plain_login(admin, "admin", "admin-secret") == (0, None)
        granted = await admin.request(
            CreateAclsRequest(
                creations=[
                    CreateAclsRequest.AclCreation(
                        resource_type=2,  # TOPIC
                        resource_name="orders",
                        resource_pattern_type=3,  # LITERAL
                        principal="User:alice",
                        host="*",
                        operation=4,  # WRITE
                        permission_type=3,  # ALLOW
                    )
                ]
            )
        )
        assert [r.error_code for r in granted.results] == [0]
    async with await _connect(server, "SASL_PLAINTEXT") as alice:
        assert await plain_login(alice, "alice", "alice-secret") == (0, None)
        assert (await produce(alice, "orders", 0, records(2))).error_code == 0
        fetched = await alice.request(fetch_request("orders", 0, 0), version=12)
        code = fetched.responses[0].partitions[0].error_code
        assert code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    # The same PLAINTEXT client is User:ANONYMOUS, with no ACL at all.
    async with await _connect(server, "PLAINTEXT") as anonymous:
        part = await produce(anonymous, "orders", 0, records(1))
        assert part.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED


async def test_reauthentication_kip368(
    make_server: MakeServer, autojump_clock: trio.testing.MockClock
) -> None:
    # Virtual time: each sleep below lands where it says against the 400 ms sessions,
    # however slowly the machine runs the logins between them.
    server = await _sasl_server(make_server, **{"connections.max.reauth.ms": 400})

    async def login(client: RawClient, user: str, password: str) -> Any:
        assert await sasl_handshake(client, "PLAIN") == 0
        return await client.request(SaslAuthenticateRequest(auth_bytes=plain_token(user, password)))

    async with await _connect(server, "SASL_PLAINTEXT") as client:
        response = await login(client, "alice", "alice-secret")
        assert (response.error_code, response.session_lifetime_ms) == (0, 400)
        await trio.sleep(0.25)
        # Re-authenticating (same principal) before the session ends starts a new one.
        assert (await login(client, "alice", "alice-secret")).error_code == 0
        await trio.sleep(0.25)  # past the first session's end, inside the second
        assert (await client.request(MetadataRequest(topics=[]))).brokers
        await trio.sleep(0.45)
        # The session ended without re-authentication: the next request closes the connection.
        await client.send_request(MetadataRequest(topics=[]))
        assert await _closed(client)
    async with await _connect(server, "SASL_PLAINTEXT") as client:
        assert (await login(client, "alice", "alice-secret")).error_code == 0
        # A re-authentication may not change who the connection is.
        response = await login(client, "admin", "admin-secret")
        assert response.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert "Cannot change principals" in response.error_message
        assert await _closed(client)


def test_passwords_stay_out_of_the_config_repr() -> None:
    config = BrokerConfig.from_properties(
        {
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
            "ssl.key.password": "key-secret",
            "num.partitions": "2",
        }
    )
    text = repr(config)
    assert "alice-secret" not in text and "key-secret" not in text
    assert "'num.partitions': '2'" in text
