"""kafka-python against kbroker's TLS and SASL listeners: produce, consume in a group, commit;
a wrong password fails with kafka-python's authentication error."""

from __future__ import annotations

import logging
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from kafka.net.sasl.oauth import AbstractTokenProvider

from compat.security_kit import (
    WRONG_PASSWORD,
    Case,
    Secured,
    UnsecuredTokens,
    python_client_settings,
)
from compat.security_scenarios import TIMEOUT_S, SecurityScenarios

pytestmark = pytest.mark.compat


class _UnsecuredTokens(UnsecuredTokens, AbstractTokenProvider):
    """kafka-python's token provider hook, handing out unsecured JWS tokens."""

    def token(self) -> str:
        return self.jws()


def settings(secured: Secured, case: Case) -> dict[str, object]:
    """The client settings a case connects with."""
    live, material = secured
    tls: dict[str, object] = {}
    if case.protocol in ("SSL", "SASL_SSL"):
        tls["ssl_cafile"] = str(material.ca_file)
    if case.client_certificate:
        tls["ssl_certfile"] = str(material.client_cert)
        tls["ssl_keyfile"] = str(material.client_key)
    return python_client_settings(live.bootstrap(case.listener), case, tls, _UnsecuredTokens)


class KafkaPythonSecured:
    """kafka-python as a ``compat.security_scenarios.SecuredClient``."""

    tag = "kp"
    settings = staticmethod(settings)

    @staticmethod
    def create_topic(conf: dict[str, object], topic: str) -> None:
        admin = KafkaAdminClient(**conf)
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            admin.close()

    @staticmethod
    def produce(conf: dict[str, object], topic: str, values: list[bytes]) -> list[int]:
        producer = KafkaProducer(**conf)
        try:
            futures = [producer.send(topic, value) for value in values]
            return [f.get(TIMEOUT_S).offset for f in futures]
        finally:
            producer.close()

    @staticmethod
    def consume_and_commit(
        conf: dict[str, object], topic: str, group: str, count: int
    ) -> tuple[list[bytes], int]:
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
                if len(values) == count:
                    break
            consumer.commit()
            return values, consumer.committed(TopicPartition(topic, 0))
        finally:
            consumer.close()


@pytest.mark.parametrize("name", list(WRONG_PASSWORD))
def test_wrong_password_fails_authentication(
    secured: Secured, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    live, _ = secured
    conf = settings(secured, WRONG_PASSWORD[name])
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


class TestSecurityScenarios(SecurityScenarios):
    """The secured-listener scenario of every Python client, through KafkaPythonSecured."""

    client = KafkaPythonSecured()
