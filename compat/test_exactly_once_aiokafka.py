"""Exactly once with aiokafka (asyncio): transactional producer, read_committed consumer.

pytest-trio owns `async def` tests here, so each scenario is a plain function
that runs its asyncio coroutine with asyncio.run under a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import ProducerFenced

from compat.livebroker import LiveBroker, shared_broker
from compat.test_aiokafka import admin_client
from compat.test_exactly_once_confluent_kafka import SMALL_INTERNAL_TOPICS

pytestmark = pytest.mark.compat

DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """A broker shared by the module's scenarios."""
    with shared_broker(tmp_path_factory.mktemp("eos-aio"), overrides=SMALL_INTERNAL_TOPICS) as live:
        yield live


async def read_all(bootstrap: str, topic: str, isolation: str) -> list[bytes]:
    """Values readable at ``isolation`` from offset 0 to the end offset for that level."""
    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await c.start()
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        end = (await c.end_offsets([tp]))[tp]  # the LSO for read_committed
        values: list[bytes] = []
        while await c.position(tp) < end:
            for records in (await c.getmany(timeout_ms=500)).values():
                values += [r.value for r in records]
        return values
    finally:
        await c.stop()


async def commit_abort_commit(bootstrap: str, topic: str) -> None:
    async with admin_client(bootstrap) as admin:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"aio-{topic}")
    await p.start()
    try:
        for n, commit in enumerate((True, False, True)):
            await p.begin_transaction()
            for i in range(5):
                await p.send(topic, value=b"%d-%d" % (n, i))
            await p.flush()
            if commit:
                await p.commit_transaction()
            else:
                await p.abort_transaction()
    finally:
        await p.stop()
    committed = await read_all(bootstrap, topic, "read_committed")
    assert committed == [b"0-%d" % i for i in range(5)] + [b"2-%d" % i for i in range(5)]
    assert len(await read_all(bootstrap, topic, "read_uncommitted")) == 15


def test_commit_abort_commit_counts_per_isolation_level(
    broker: LiveBroker, topic_name: str
) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(
            commit_abort_commit(broker.bootstrap_servers, topic_name), DEADLINE_S * 2
        )

    asyncio.run(bounded())


async def consume_transform_produce(bootstrap: str, topic: str) -> None:
    src, dst, group = topic + ".in", topic + ".out", "g-" + topic
    async with admin_client(bootstrap) as admin:
        await admin.create_topics([NewTopic(src, 1, 1), NewTopic(dst, 1, 1)])
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await plain.start()
    try:
        for i in range(10):
            await plain.send(src, value=b"%d" % i)
    finally:
        await plain.stop()
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"aio-ctp-{topic}")
    await consumer.start()
    await producer.start()
    try:
        seen = 0
        while seen < 10:
            polled = await consumer.getmany(timeout_ms=500)
            if not polled:
                continue
            async with producer.transaction():
                offsets = {}
                for tp, records in polled.items():
                    for r in records:
                        await producer.send(dst, value=b"x" + r.value)
                    offsets[tp] = records[-1].offset + 1
                    seen += len(records)
                await producer.send_offsets_to_transaction(offsets, group)
        assert await consumer.committed(TopicPartition(src, 0)) == 10
    finally:
        await consumer.stop()
        await producer.stop()
    assert sorted(await read_all(bootstrap, dst, "read_committed")) == sorted(
        b"x%d" % i for i in range(10)
    )


def test_consume_transform_produce_with_offsets(broker: LiveBroker, topic_name: str) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(
            consume_transform_produce(broker.bootstrap_servers, topic_name), DEADLINE_S * 2
        )

    asyncio.run(bounded())


async def zombie_is_fenced(bootstrap: str, topic: str) -> None:
    async with admin_client(bootstrap) as admin:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    tid = f"aio-zombie-{topic}"
    old = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
    await old.start()
    try:
        await old.begin_transaction()
        await (await old.send(topic, value=b"zombie"))
        # A new instance with the same transactional id bumps the epoch (InitProducerId),
        # which aborts the old instance's open transaction and fences it.
        new = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
        await new.start()
        try:
            async with new.transaction():
                await new.send(topic, value=b"live")
        finally:
            await new.stop()
        with pytest.raises(ProducerFenced):
            await old.commit_transaction()
    finally:
        await old.stop()
    assert await read_all(bootstrap, topic, "read_committed") == [b"live"]


def test_zombie_is_fenced_by_new_instance(broker: LiveBroker, topic_name: str) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(
            zombie_is_fenced(broker.bootstrap_servers, topic_name), DEADLINE_S * 2
        )

    asyncio.run(bounded())
