"""aiokafka (asyncio) against a 3-broker kbroker cluster with a real ZooKeeper.

Issue 14's leadership scenarios (compat/clusterkit.py's LeadershipScenarios; see
test_cluster_confluent_kafka.py for all of them): leaders on every broker and any bootstrap
broker, kill -9 of a leader with the client carrying on by itself, and the group
coordinator. This module is aiokafka's adapter: its clients run on an event loop of their
own, on a thread of its own (pytest-trio owns the tests' loop), so they keep sending,
fetching and retrying while a scenario waits on the cluster.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from compat.clusterkit import FAILOVER_DEADLINE_S, LeadershipScenarios
from kbroker.cluster_runner import Cluster, PartitionInfo

pytestmark = pytest.mark.compat

T = TypeVar("T")


def bounded(coroutine: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
    """``coroutine`` with an overall deadline."""
    return asyncio.wait_for(coroutine, FAILOVER_DEADLINE_S * 6)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on an event loop of its own."""
    return asyncio.run(bounded(coroutine))


class EventLoop:
    """An asyncio event loop running on a thread of its own until ``close``: clients started
    on it keep working between the calls a scenario makes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop; its result."""
        return asyncio.run_coroutine_threadsafe(bounded(coroutine), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def consume_values(
    consumer: AIOKafkaConsumer, wanted: set[bytes], deadline_s: float
) -> set[bytes]:
    """Read until every value in ``wanted`` was seen (or the deadline); what was seen."""
    seen: set[bytes] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while not wanted <= seen and loop.time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            seen.update(r.value for r in records if r.value is not None)
    return seen


class AiokafkaPartition0:
    """aiokafka as a ``compat.clusterkit.Partition0``."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.loop = EventLoop()
        self.futures: list[asyncio.Future[Any]] = []
        self.producer, self.consumer = self.loop.run(self._start(bootstrap))

    async def _start(self, bootstrap: str) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks=1,
            request_timeout_ms=int(FAILOVER_DEADLINE_S * 3000),
            retry_backoff_ms=200,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await producer.start()
        await consumer.start()
        tp = TopicPartition(self.topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        return producer, consumer

    def send(self, values: list[bytes]) -> None:
        async def send() -> list[asyncio.Future[Any]]:
            return [await self.producer.send(self.topic, v, partition=0) for v in values]

        self.futures += self.loop.run(send())

    def wait_acknowledged(self, timeout_s: float) -> None:
        async def acknowledged() -> list[int]:
            return [(await future).partition for future in self.futures]

        partitions = self.loop.run(asyncio.wait_for(acknowledged(), timeout_s))
        assert partitions == [0] * len(self.futures)

    def read(self, wanted: set[bytes], deadline_s: float) -> set[bytes]:
        return self.loop.run(consume_values(self.consumer, wanted, deadline_s))

    def close(self) -> None:
        async def stop() -> None:
            await self.consumer.stop()
            await self.producer.stop()

        try:
            self.loop.run(stop())
        finally:
            self.loop.close()


class AiokafkaCluster:
    """aiokafka as a ``compat.clusterkit.LeadershipClient``."""

    @staticmethod
    def create_topic(
        bootstrap: str, topic: str, partitions: int, replication_factor: int = 3
    ) -> None:
        async def create() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(topic, partitions, replication_factor)])
            finally:
                await admin.close()

        run(create())

    @staticmethod
    def produce(bootstrap: str, topic: str, records: list[tuple[int, bytes]]) -> None:
        async def produce() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
            await producer.start()
            try:
                for partition, value in records:
                    meta = await producer.send_and_wait(topic, value, partition=partition)
                    assert meta.partition == partition
            finally:
                await producer.stop()

        run(produce())

    @staticmethod
    def read(bootstrap: str, topic: str, partitions: int, wanted: set[bytes]) -> set[bytes]:
        async def read() -> set[bytes]:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
            )
            await consumer.start()
            try:
                consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
                await consumer.seek_to_beginning()
                return await consume_values(consumer, wanted, FAILOVER_DEADLINE_S * 2)
            finally:
                await consumer.stop()

        return run(read())

    @staticmethod
    def check_metadata(cluster: Cluster, topic: str, parts: dict[int, PartitionInfo]) -> None:
        """aiokafka's metadata is what it produces and reads through each broker with."""

    partition_0 = AiokafkaPartition0

    @staticmethod
    def commit_in_group(bootstrap: str, topic: str, group: str) -> int:
        """An explicit commit of offset 5 by a consumer assigned the partition."""

        async def commit() -> int:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
            )
            await consumer.start()
            try:
                tp = TopicPartition(topic, 0)
                consumer.assign([tp])
                await consumer.commit({tp: OffsetAndMetadata(5, "")})
                committed: int = await consumer.committed(tp)
                return committed
            finally:
                await consumer.stop()

        committed = run(commit())
        assert committed == 5
        return committed

    @staticmethod
    def group_coordinator(bootstrap: str, group: str) -> int | None:
        async def find() -> int:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                coordinator: int = await admin.find_coordinator(group)
                return coordinator
            finally:
                await admin.close()

        return run(find())

    @staticmethod
    def group_offset(bootstrap: str, group: str, topic: str) -> int:
        async def offsets() -> int:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                listed = await admin.list_consumer_group_offsets(group)
            finally:
                await admin.close()
            offset: int = listed[TopicPartition(topic, 0)].offset
            return offset

        return run(offsets())


class TestLeadershipScenarios(LeadershipScenarios):
    """Issue 14's leadership scenarios, through AiokafkaCluster."""

    client = AiokafkaCluster()
