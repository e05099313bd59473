"""confluent-kafka (librdkafka) against kbroker's TLS and SASL listeners: produce, consume in a
group, commit; a wrong password fails with librdkafka's authentication error."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat.security_kit import CASES, WRONG_PASSWORD, Secured, librdkafka_settings, secured_broker

pytestmark = pytest.mark.compat
TIMEOUT_S = 30.0


@pytest.mark.parametrize("name", list(CASES))
def test_produce_consume_commit(secured: Secured, name: str) -> None:
    conf = librdkafka_settings(secured, CASES[name])
    topic = f"security-ck-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
    producer = Producer(conf)
    delivered: list[object] = []
    for i in range(5):
        producer.produce(
            topic, f"value-{i}".encode(), on_delivery=lambda err, msg: delivered.append(err)
        )
    assert producer.flush(TIMEOUT_S) == 0
    assert delivered == [None] * 5
    group = f"group-{uuid.uuid4().hex[:6]}"
    consumer = Consumer(
        {**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    try:
        consumer.subscribe([topic])
        values: list[bytes] = []
        while len(values) < 5:
            msg = consumer.poll(TIMEOUT_S)
            assert msg is not None, f"only {len(values)} of 5 messages consumed"
            assert msg.error() is None, msg.error()
            values.append(msg.value())
        assert values == [f"value-{i}".encode() for i in range(5)]
        consumer.commit(asynchronous=False)
        (committed,) = consumer.committed([TopicPartition(topic, 0)], TIMEOUT_S)
        assert committed.offset == 5
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
        deadline = time.monotonic() + 4.5
        sent = 0
        while time.monotonic() < deadline:
            producer.produce(topic, b"x", on_delivery=lambda err, msg: errors.append(err))
            sent += 1
            producer.flush(TIMEOUT_S)
            time.sleep(0.3)
        assert errors == [None] * sent
        assert "re-authenticated as User:scram256" in live.log
        assert "session expired" not in live.log
