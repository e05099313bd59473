"""kafka-python against kbroker's TLS and SASL listeners: produce, consume in a group, commit;
a wrong password fails with kafka-python's authentication error."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from kafka.net.sasl.oauth import AbstractTokenProvider

from compat.security_kit import (
    CASES,
    WRONG_PASSWORD,
    Case,
    ConfigFileBroker,
    Material,
    secured_broker,
    unsecured_jws,
)

pytestmark = pytest.mark.compat
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ConfigFileBroker, Material]]:
    with secured_broker(tmp_path_factory.mktemp("secured")) as pair:
        yield pair


class _UnsecuredTokens(AbstractTokenProvider):
    """kafka-python's token provider hook, handing out unsecured JWS tokens."""

    def __init__(self, principal: str | None) -> None:
        self.principal = principal or "anonymous"

    def token(self) -> str:
        return unsecured_jws(self.principal)


def settings(live: ConfigFileBroker, material: Material, case: Case) -> dict[str, object]:
    conf: dict[str, object] = {
        "bootstrap_servers": live.bootstrap(case.listener),
        "security_protocol": case.protocol,
    }
    if case.protocol in ("SSL", "SASL_SSL"):
        conf["ssl_cafile"] = str(material.ca_file)
    if case.client_certificate:
        conf["ssl_certfile"] = str(material.client_cert)
        conf["ssl_keyfile"] = str(material.client_key)
    if case.mechanism == "OAUTHBEARER":
        conf["sasl_mechanism"] = "OAUTHBEARER"
        conf["sasl_oauth_token_provider"] = _UnsecuredTokens(case.user)
    elif case.mechanism:
        conf.update(
            {
                "sasl_mechanism": case.mechanism,
                "sasl_plain_username": case.user,
                "sasl_plain_password": case.password,
            }
        )
    return conf


@pytest.mark.parametrize("name", list(CASES))
def test_produce_consume_commit(secured: tuple[ConfigFileBroker, Material], name: str) -> None:
    live, material = secured
    conf = settings(live, material, CASES[name])
    topic = f"security-kp-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(**conf)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(**conf)
    try:
        futures = [producer.send(topic, f"value-{i}".encode()) for i in range(5)]
        offsets = [f.get(TIMEOUT_S).offset for f in futures]
        assert offsets == [0, 1, 2, 3, 4]
    finally:
        producer.close()
    group = f"group-{uuid.uuid4().hex[:6]}"
    consumer = KafkaConsumer(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(TIMEOUT_S * 1000),
        **conf,
    )
    try:
        values = []
        for msg in consumer:
            values.append(msg.value)
            if len(values) == 5:
                break
        assert values == [f"value-{i}".encode() for i in range(5)]
        consumer.commit()
        assert consumer.committed(TopicPartition(topic, 0)) == 5
    finally:
        consumer.close()


@pytest.mark.parametrize("name", list(WRONG_PASSWORD))
def test_wrong_password_fails_authentication(
    secured: tuple[ConfigFileBroker, Material], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    live, material = secured
    conf = settings(live, material, WRONG_PASSWORD[name])
    caplog.set_level(logging.WARNING, logger="kafka")

    # kafka-python 3.0 keeps retrying its bootstrap after a failed login (as against Kafka),
    # so the application gets a timeout, and the client reports why: the broker's
    # SASL_AUTHENTICATION_FAILED (error 58) with Kafka's message. The broker answers after
    # connection.failed.authentication.delay.ms and closes at once, as Kafka does
    # (Selector.handleCloseOnAuthenticationFailure: send, then close). kafka-python reads
    # until the socket would block and drops what it read when that ends in EOF, so an
    # attempt whose answer and close arrive in one read reports only "socket disconnected";
    # under load that is about half of them, or more. So the client may attempt often
    # (its reconnect backoff capped at 0.5 s, where its exponential default lets a
    # producer make only ~10 attempts in its 30 s bootstrap timeout), and the application
    # tries again, each time failing, until the client has reported the broker's reason.
    def reported() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if "SaslAuthenticationFailedError" in r.getMessage()
        ]

    deadline = time.monotonic() + 90
    while not reported() and time.monotonic() < deadline:
        with pytest.raises(KafkaError):
            KafkaProducer(
                **conf,
                request_timeout_ms=3000,
                max_block_ms=5000,
                bootstrap_timeout_ms=5000,
                reconnect_backoff_max_ms=500,
            )
    assert reported(), "kafka-python reported no authentication failure"
    assert "Authentication failed" in reported()[0]
    assert "failed SASL" in live.log
