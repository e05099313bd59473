"""aiokafka against kbroker's TLS and SASL listeners: produce, consume in a group, commit; a
wrong password fails with aiokafka's authentication error. pytest-trio owns `async def` tests,
so each test runs its asyncio coroutine with asyncio.run."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from compat.security_kit import (
    CASES,
    WRONG_PASSWORD,
    Case,
    Secured,
    UnsecuredTokens,
    python_client_settings,
)

pytestmark = pytest.mark.compat
TIMEOUT_S = 30.0


class _UnsecuredTokens(UnsecuredTokens, AbstractTokenProvider):
    """aiokafka's token provider hook, handing out unsecured JWS tokens."""

    async def token(self) -> str:
        return self.jws()


def settings(secured: Secured, case: Case) -> dict[str, object]:
    """The client settings a case connects with."""
    live, material = secured
    tls: dict[str, object] = {}
    if case.protocol in ("SSL", "SASL_SSL"):
        tls["ssl_context"] = create_ssl_context(
            cafile=str(material.ca_file),
            certfile=str(material.client_cert) if case.client_certificate else None,
            keyfile=str(material.client_key) if case.client_certificate else None,
        )
    return python_client_settings(live.bootstrap(case.listener), case, tls, _UnsecuredTokens)


async def _produce_consume_commit(conf: dict[str, object], topic: str) -> None:
    admin = AIOKafkaAdminClient(**conf)  # type: ignore[arg-type]
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**conf)  # type: ignore[arg-type]
    await producer.start()
    try:
        offsets = [
            (await producer.send_and_wait(topic, f"value-{i}".encode())).offset for i in range(5)
        ]
        assert offsets == [0, 1, 2, 3, 4]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        group_id=f"group-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **conf,  # type: ignore[arg-type]
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        async with asyncio.timeout(TIMEOUT_S):
            async for msg in consumer:
                values.append(msg.value)
                if len(values) == 5:
                    break
        assert values == [f"value-{i}".encode() for i in range(5)]
        await consumer.commit()
        assert await consumer.committed(TopicPartition(topic, 0)) == 5
    finally:
        await consumer.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_produce_consume_commit(secured: Secured, name: str) -> None:
    topic = f"security-aio-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    asyncio.run(_produce_consume_commit(settings(secured, CASES[name]), topic))


async def _start_producer(conf: dict[str, object]) -> None:
    producer = AIOKafkaProducer(**conf)  # type: ignore[arg-type]
    try:
        await producer.start()
    finally:
        await producer.stop()


@pytest.mark.parametrize("name", list(WRONG_PASSWORD))
def test_wrong_password_fails_authentication(
    secured: Secured, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aiokafka")
    # aiokafka's start() fails with "Unable to bootstrap"; why is in its error log: the
    # broker's SASL_AUTHENTICATION_FAILED (error 58) with Kafka's message.
    with pytest.raises(KafkaError):
        asyncio.run(_start_producer(settings(secured, WRONG_PASSWORD[name])))
    reported = [
        r.getMessage() for r in caplog.records if "SaslAuthenticationFailed" in r.getMessage()
    ]
    assert reported and "Authentication failed" in reported[0], reported
