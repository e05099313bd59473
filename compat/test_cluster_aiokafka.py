"""aiokafka (asyncio) against a 3-broker kbroker cluster with a real ZooKeeper.

A subset of issue 14's scenarios (see test_cluster_confluent_kafka.py for all of them):
leaders on every broker and any bootstrap broker, kill -9 of a leader with the client
carrying on by itself, and the group coordinator. Each scenario is a plain function running
its coroutine with asyncio.run (pytest-trio owns ``async def`` tests here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from compat.clusterkit import (
    BROKERS,
    FAILOVER_DEADLINE_S,
    coordinator_views,
    wait_for_leaders,
    wait_for_new_leader,
)
from kbroker.cluster_runner import Cluster

pytestmark = pytest.mark.compat


TIMEOUT_S = 30.0


def run(scenario: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Run one asyncio scenario with an overall deadline."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(*args), FAILOVER_DEADLINE_S * 6)

    asyncio.run(bounded())


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 3)])
    finally:
        await admin.close()


async def consume_values(consumer: AIOKafkaConsumer, wanted: set[bytes]) -> set[bytes]:
    seen: set[bytes] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FAILOVER_DEADLINE_S * 2
    while not wanted <= seen and loop.time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            seen.update(r.value for r in records if r.value is not None)
    return seen


def test_leaders_on_every_broker_and_any_bootstrap(cluster: Cluster, topic_name: str) -> None:
    asyncio.run(create_topic(cluster.bootstrap_servers, topic_name, 6))
    parts = wait_for_leaders(cluster, topic_name, 6)
    assert {p.leader for p in parts.values()} == set(BROKERS)

    async def scenario() -> None:
        expected: set[bytes] = set()
        for broker_id in BROKERS:
            producer = AIOKafkaProducer(bootstrap_servers=cluster.address(broker_id), acks=1)
            await producer.start()
            try:
                for partition in range(6):
                    value = f"via-{broker_id}-p{partition}".encode()
                    expected.add(value)
                    meta = await producer.send_and_wait(topic_name, value, partition=partition)
                    assert meta.partition == partition
            finally:
                await producer.stop()
        for broker_id in BROKERS:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=cluster.address(broker_id),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            try:
                consumer.assign([TopicPartition(topic_name, p) for p in range(6)])
                await consumer.seek_to_beginning()
                assert await consume_values(consumer, expected) == expected
            finally:
                await consumer.stop()

    run(scenario)


def test_kill_leader_new_leader_from_isr_and_clients_carry_on(
    cluster: Cluster, topic_name: str
) -> None:
    asyncio.run(create_topic(cluster.bootstrap_servers, topic_name, 3))
    before = wait_for_leaders(cluster, topic_name, 3)[0]

    async def scenario() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=cluster.bootstrap_servers,
            acks=1,
            request_timeout_ms=int(FAILOVER_DEADLINE_S * 3000),
            retry_backoff_ms=200,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=cluster.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await producer.start()
        await consumer.start()
        try:
            tp = TopicPartition(topic_name, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            first = {f"before-{i}".encode() for i in range(5)}
            for value in sorted(first):
                await producer.send_and_wait(topic_name, value, partition=0)
            assert await consume_values(consumer, first) == first

            cluster.kill(before.leader)
            # Sent while the partition has no live leader: the client retries by itself.
            during = {f"during-{i}".encode() for i in range(5)}
            futures = [await producer.send(topic_name, v, partition=0) for v in sorted(during)]
            new_leader = await asyncio.to_thread(
                wait_for_new_leader, cluster, topic_name, 0, before.leader
            )
            assert new_leader in before.isr
            after = {f"after-{i}".encode() for i in range(5)}
            futures += [await producer.send(topic_name, v, partition=0) for v in sorted(after)]
            for future in futures:
                assert (await future).partition == 0
            assert after <= await consume_values(consumer, during | after)
        finally:
            await consumer.stop()
            await producer.stop()

    run(scenario)


def test_group_coordinator_leads_its_offsets_partition(cluster: Cluster, topic_name: str) -> None:
    asyncio.run(create_topic(cluster.bootstrap_servers, topic_name, 1))
    wait_for_leaders(cluster, topic_name, 1)
    group = f"{topic_name}-group"

    async def scenario() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=cluster.bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            tp = TopicPartition(topic_name, 0)
            consumer.assign([tp])
            await consumer.commit({tp: OffsetAndMetadata(5, "")})
            assert await consumer.committed(tp) == 5
        finally:
            await consumer.stop()

    run(scenario)
    leader, seen = coordinator_views(
        cluster, group, lambda _: [cluster.coordinator_of(group, via=b) for b in BROKERS]
    )
    assert seen == [leader] * len(BROKERS)
