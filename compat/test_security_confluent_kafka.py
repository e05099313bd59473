"""confluent-kafka (librdkafka) against kbroker's TLS and SASL listeners: produce, consume in a
group, commit; a wrong password fails with librdkafka's authentication error."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat.security_kit import CASES, WRONG_PASSWORD, Secured, librdkafka_settings, secured_broker
from compat.security_scenarios import TIMEOUT_S, SecurityScenarios

pytestmark = pytest.mark.compat
# What the broker logs when a connection re-authenticates (KIP-368), and how long
# test_reauthentication waits for it with connections.max.reauth.ms=1500.
REAUTHENTICATED = "re-authenticated as User:scram256"
REAUTH_DEADLINE_S = 60.0


class ConfluentSecured:
    """confluent-kafka as a ``compat.security_scenarios.SecuredClient``."""

    tag = "ck"
    settings = staticmethod(librdkafka_settings)

    @staticmethod
    def create_topic(conf: dict[str, object], topic: str) -> None:
        admin = AdminClient(conf)
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)

    @staticmethod
    def produce(conf: dict[str, object], topic: str, values: list[bytes]) -> list[int]:
        producer = Producer(conf)
        delivered: list[tuple[KafkaError | None, Message]] = []
        for value in values:
            producer.produce(
                topic, value, on_delivery=lambda err, msg: delivered.append((err, msg))
            )
        assert producer.flush(TIMEOUT_S) == 0
        assert [err for err, _ in delivered] == [None] * len(values)
        return [msg.offset() for _, msg in delivered]

    @staticmethod
    def consume_and_commit(
        conf: dict[str, object], topic: str, group: str, count: int
    ) -> tuple[list[bytes], int]:
        consumer = Consumer(
            {
                **conf,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.subscribe([topic])
            values: list[bytes] = []
            while len(values) < count:
                msg = consumer.poll(TIMEOUT_S)
                assert msg is not None, f"only {len(values)} of {count} messages consumed"
                assert msg.error() is None, msg.error()
                values.append(msg.value())
            consumer.commit(asynchronous=False)
            (committed,) = consumer.committed([TopicPartition(topic, 0)], TIMEOUT_S)
            offset: int = committed.offset
            return values, offset
        finally:
            consumer.close()


@pytest.mark.parametrize("name", list(WRONG_PASSWORD))
def test_wrong_password_fails_authentication(secured: Secured, name: str) -> None:
    live, _ = secured
    errors: list[KafkaError] = []
    conf = librdkafka_settings(secured, WRONG_PASSWORD[name])
    producer = Producer({**conf, "error_cb": errors.append})
    for _ in range(100):
        producer.poll(0.2)
        if errors:
            break
    assert errors, "no error reported"
    assert errors[0].code() == KafkaError._AUTHENTICATION, errors[0]
    assert "Authentication failed" in errors[0].str()
    assert "failed SASL" in live.log


def test_reauthentication(tmp_path: Path) -> None:
    """KIP-368: with connections.max.reauth.ms, librdkafka re-authenticates its long-lived
    connections before their sessions end and keeps producing without a reconnect."""

    with secured_broker(tmp_path, extra="connections.max.reauth.ms=1500\n") as (live, material):
        conf = librdkafka_settings((live, material), CASES["sasl_plaintext_scram_sha_256"])
        topic = f"security-ck-reauth-{uuid.uuid4().hex[:6]}"
        admin = AdminClient(conf)
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
        producer = Producer(conf)
        errors: list[object] = []
        # Produce on the connection until the broker has logged a re-authentication, and
        # once more after it (the re-authenticated connection still takes records). The
        # deadline is for a client that never re-authenticates: a loaded machine may push
        # the first one well past 1.5 s, so no fixed window decides the outcome.
        deadline = time.monotonic() + REAUTH_DEADLINE_S
        sent = 0
        reauthenticated = False
        while True:
            producer.produce(topic, b"x", on_delivery=lambda err, msg: errors.append(err))
            sent += 1
            producer.flush(TIMEOUT_S)
            if reauthenticated or time.monotonic() > deadline:
                break
            reauthenticated = REAUTHENTICATED in live.log
            time.sleep(0.3)  # paces the records: the connection stays in use between them
        assert errors == [None] * sent
        assert REAUTHENTICATED in live.log
        assert "session expired" not in live.log


class TestSecurityScenarios(SecurityScenarios):
    """The secured-listener scenario of every Python client, through ConfluentSecured."""

    client = ConfluentSecured()
