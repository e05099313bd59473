"""A kbroker started the way a secured Kafka is: `kbroker --config server.properties` with
five listeners (PLAINTEXT, SSL, mutual TLS, SASL_PLAINTEXT, SASL_SSL), PEM key material made
at test time (trustme), PLAIN users in Kafka's JAAS syntax and SCRAM users created with
AlterUserScramCredentials over the PLAINTEXT listener, as on Kafka.

``CASES`` names the client x security settings the compat modules run; each module turns a
case into its library's settings.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from compat.livebroker import LiveBroker

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" '
    'user_alice="alice-secret";'
)
SCRAM_USERS = {
    "SCRAM-SHA-256": ("scram256", "s256-secret"),
    "SCRAM-SHA-512": ("scram512", "s512-secret"),
}
_LISTENER_LINE = re.compile(r"kbroker listener (\w+) \((\w+)\) at (\S+):(\d+)")


@dataclass(frozen=True)
class Case:
    """One security setting a client connects with."""

    listener: str  # listener name on the broker
    protocol: str  # the client's security.protocol
    mechanism: str | None = None
    user: str | None = None
    password: str | None = None
    client_certificate: bool = False

    def login(self, mechanism: str, username: str, password: str) -> dict[str, object]:
        """The SASL mechanism, user and password (PLAIN, SCRAM) under the names a library
        gives those settings."""
        return {mechanism: self.mechanism, username: self.user, password: self.password}


CASES = {
    "ssl": Case("SSL", "SSL"),
    "mtls": Case("MTLS", "SSL", client_certificate=True),
    "sasl_plaintext_plain": Case(
        "SASL_PLAINTEXT", "SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret"
    ),
    "sasl_plaintext_scram_sha_256": Case(
        "SASL_PLAINTEXT", "SASL_PLAINTEXT", "SCRAM-SHA-256", *SCRAM_USERS["SCRAM-SHA-256"]
    ),
    "sasl_ssl_scram_sha_512": Case(
        "SASL_SSL", "SASL_SSL", "SCRAM-SHA-512", *SCRAM_USERS["SCRAM-SHA-512"]
    ),
    # Kafka's unsecured JWS validator (development tokens, alg "none"), user "erin".
    "sasl_plaintext_oauthbearer": Case("SASL_PLAINTEXT", "SASL_PLAINTEXT", "OAUTHBEARER", "erin"),
}


def unsecured_jws(principal: str, lifetime_s: float = 3600.0) -> str:
    """An unsigned JWT (alg "none") as Kafka's unsecured login module makes them."""
    now = time.time()
    claims = {"sub": principal, "iat": now, "exp": now + lifetime_s}

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}."


class UnsecuredTokens:
    """An OAUTHBEARER token provider's state: the unsecured JWS it hands out for a case's
    user. A client module adds its library's provider base class and ``token`` method."""

    def __init__(self, principal: str | None) -> None:
        self.principal = principal or "anonymous"

    def jws(self) -> str:
        return unsecured_jws(self.principal)


def python_client_settings(
    bootstrap: str,
    case: Case,
    tls: dict[str, object],
    token_provider: Callable[[str | None], object],
) -> dict[str, object]:
    """A case as kafka-python names its settings (aiokafka uses the same names): the
    library's own TLS settings ``tls``, and ``token_provider(user)`` for OAUTHBEARER."""
    conf: dict[str, object] = {"bootstrap_servers": bootstrap, "security_protocol": case.protocol}
    conf.update(tls)
    if case.mechanism == "OAUTHBEARER":
        conf["sasl_mechanism"] = "OAUTHBEARER"
        conf["sasl_oauth_token_provider"] = token_provider(case.user)
    elif case.mechanism:
        conf.update(case.login("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"))
    return conf


WRONG_PASSWORD = {
    "sasl_plaintext_plain": Case("SASL_PLAINTEXT", "SASL_PLAINTEXT", "PLAIN", "alice", "wrong"),
    "sasl_ssl_scram_sha_512": Case("SASL_SSL", "SASL_SSL", "SCRAM-SHA-512", "scram512", "wrong"),
}


@dataclass
class Material:
    """The files a client needs: CA, client certificate and key."""

    ca_file: Path
    client_cert: Path
    client_key: Path


class ConfigFileBroker(LiveBroker):
    """`python -m kbroker --config FILE`, with every listener's bound address."""

    def __init__(self, data_dir: Path, properties: Path) -> None:
        super().__init__(data_dir)
        self.properties = properties
        self.listeners: dict[str, tuple[str, int]] = {}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "kbroker", "--config", str(self.properties)]

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 10
        while len(self.listeners) < 5 and time.monotonic() < deadline:
            for match in _LISTENER_LINE.finditer(self.log):
                self.listeners[match.group(1)] = (match.group(3), int(match.group(4)))
            time.sleep(0.05)
        assert len(self.listeners) == 5, self.log_tail()

    def bootstrap(self, listener: str) -> str:
        host, port = self.listeners[listener]
        return f"{host}:{port}"


# What the ``secured`` fixture (compat/conftest.py) gives a test: the broker and the key
# material its certificates were made with.
Secured = tuple[ConfigFileBroker, Material]


def write_material(directory: Path) -> tuple[Material, Path, Path]:
    """CA, broker key store (one PEM: key + chain) and a client certificate (CN=alice)."""
    ca = trustme.CA()
    broker = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("client.example", common_name="alice")
    directory.mkdir(parents=True, exist_ok=True)
    keystore = directory / "broker.pem"
    broker.private_key_and_cert_chain_pem.write_to_path(str(keystore))
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_cert, client_key = directory / "client.pem", directory / "client.key"
    client.cert_chain_pems[0].write_to_path(str(client_cert))
    client.private_key_pem.write_to_path(str(client_key))
    return Material(ca_file, client_cert, client_key), keystore, ca_file


def server_properties(data_dir: Path, keystore: Path, ca_file: Path) -> str:
    """A server.properties as a Kafka user writes one (Kafka's names and syntax)."""
    return f"""\
listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,MTLS://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs={data_dir}
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=1
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,OAUTHBEARER
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}
connection.failed.authentication.delay.ms=100
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={ca_file}
listener.name.mtls.ssl.client.auth=required
"""


@contextmanager
def secured_broker(directory: Path, extra: str = "") -> Iterator[tuple[ConfigFileBroker, Material]]:
    """The broker, started, with the SCRAM users created; killed at the end. ``extra``:
    more server.properties lines."""
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    material, keystore, ca_file = write_material(directory / "tls")
    properties = directory / "server.properties"
    properties.write_text(server_properties(directory / "data", keystore, ca_file) + extra)
    live = ConfigFileBroker(directory / "data", properties)
    live.start()
    try:
        admin = AdminClient({"bootstrap.servers": live.bootstrap("PLAINTEXT")})
        upsertions = [
            UserScramCredentialUpsertion(
                user,
                ScramCredentialInfo(getattr(ScramMechanism, mechanism.replace("-", "_")), 4096),
                password.encode(),
            )
            for mechanism, (user, password) in SCRAM_USERS.items()
        ]
        for future in admin.alter_user_scram_credentials(upsertions).values():
            future.result(15)
        yield live, material
        assert live.is_running(), f"kbroker died during the module\n{live.log_tail()}"
    finally:
        live.kill()


def librdkafka_settings(secured: Secured, case: Case) -> dict[str, object]:
    """librdkafka's settings for a case (confluent-kafka, kcat, the security bench)."""
    live, material = secured
    conf: dict[str, object] = {
        "bootstrap.servers": live.bootstrap(case.listener),
        "security.protocol": case.protocol,
    }
    if case.protocol in ("SSL", "SASL_SSL"):
        conf["ssl.ca.location"] = str(material.ca_file)
    if case.client_certificate:
        conf["ssl.certificate.location"] = str(material.client_cert)
        conf["ssl.key.location"] = str(material.client_key)
    if case.mechanism == "OAUTHBEARER":
        # librdkafka's built-in unsecured JWT builder (sasl.oauthbearer.config principal=...).
        conf.update(
            {
                "sasl.mechanism": "OAUTHBEARER",
                "enable.sasl.oauthbearer.unsecure.jwt": True,
                "sasl.oauthbearer.config": f"principal={case.user}",
            }
        )
    elif case.mechanism:
        conf.update(case.login("sasl.mechanism", "sasl.username", "sasl.password"))
    return conf
