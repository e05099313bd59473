"""aiokafka against kbroker's TLS and SASL listeners: produce, consume in a group, commit; a
wrong password fails with aiokafka's authentication error. pytest-trio owns `async def` tests,
so each test runs its asyncio coroutine with asyncio.run."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

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


class AiokafkaSecured:
    """aiokafka as a ``compat.security_scenarios.SecuredClient``: each step runs its coroutine
    with asyncio.run."""

    tag = "aio"
    settings = staticmethod(settings)

    @staticmethod
    def create_topic(conf: dict[str, object], topic: str) -> None:
        async def create() -> None:
            admin = AIOKafkaAdminClient(**conf)  # type: ignore[arg-type]
            await admin.start()
            try:
                await admin.create_topics([NewTopic(topic, 1, 1)])
            finally:
                await admin.close()

        asyncio.run(create())

    @staticmethod
    def produce(conf: dict[str, object], topic: str, values: list[bytes]) -> list[int]:
        async def produce() -> list[int]:
            producer = AIOKafkaProducer(**conf)  # type: ignore[arg-type]
            await producer.start()
            try:
                return [(await producer.send_and_wait(topic, v)).offset for v in values]
            finally:
                await producer.stop()

        return asyncio.run(produce())

    @staticmethod
    def consume_and_commit(
        conf: dict[str, object], topic: str, group: str, count: int
    ) -> tuple[list[bytes], int]:
        async def consume() -> tuple[list[bytes], int]:
            consumer = AIOKafkaConsumer(
                topic,
                group_id=group,
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
                        if len(values) == count:
                            break
                await consumer.commit()
                return values, await consumer.committed(TopicPartition(topic, 0))
            finally:
                await consumer.stop()

        return asyncio.run(consume())


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


class TestSecurityScenarios(SecurityScenarios):
    """The secured-listener scenario of every Python client, through AiokafkaSecured."""

    client = AiokafkaSecured()
