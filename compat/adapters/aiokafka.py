"""aiokafka (asyncio), default settings, as the shared record, exactly-once and group scenarios
drive it.

Each adapter call runs its own event loop (``asyncio.run``): the scenarios are synchronous,
and pytest-trio owns ``async def`` tests in this suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import BrokerResponseError, ProducerFenced
from kafka.partitioner.default import murmur2

from compat.group_scenarios import PolledMember
from compat.livebroker import LiveBroker
from compat.record_scenarios import PLAIN, Config, Got, Out, Producing, Refused, Sent

DEADLINE_S = 30.0
T = TypeVar("T")


def run(scenario: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run one asyncio coroutine function with an overall deadline; its result."""

    async def bounded() -> T:
        return await asyncio.wait_for(scenario(*args), DEADLINE_S * 2)

    return asyncio.run(bounded())


def expected_partition(key: bytes, partitions: int) -> int:
    """aiokafka's DefaultPartitioner, as Java's: murmur2 of the key, positive, modulo."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """aiokafka's admin client, started, and closed at the end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_topic(
    bootstrap: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    """CreateTopics through aiokafka's admin client."""
    async with admin_client(bootstrap) as admin:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])


async def read_from(
    bootstrap: str, tp: TopicPartition, count: int, *, seek: int | None = None, **configs: Any
) -> list[Any]:
    """``count`` records of ``tp`` by assignment, from ``seek`` (or the reset policy)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **configs)
    await consumer.start()
    got: list[Any] = []
    try:
        consumer.assign([tp])
        if seek is not None:
            consumer.seek(tp, seek)
        async with asyncio.timeout(DEADLINE_S):
            while len(got) < count:
                got += (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
    finally:
        await consumer.stop()
    return got


async def _produce(
    bootstrap: str, topic: str, records: list[Out], configs: dict[str, Any]
) -> list[Sent]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **configs)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                r.value,
                key=r.key,
                partition=r.partition,
                timestamp_ms=r.timestamp,
                headers=r.headers or None,
            )
            for r in records
        ]
        metadata = await asyncio.gather(*futures)
    except BrokerResponseError as exc:
        raise Refused(exc.errno, str(exc)) from exc
    finally:
        await producer.stop()
    return [
        Sent(md.partition, md.offset, md.timestamp, md.timestamp_type)
        if md is not None
        else Sent(-1, -1, None)
        for md in metadata
    ]


async def _read(
    bootstrap: str, topic: str, partitions: int, count: int, seek: int | None
) -> list[Got]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        if seek is not None:
            consumer.seek(tps[0], seek)
        async with asyncio.timeout(DEADLINE_S):
            while len(got) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    got += batch
    finally:
        await consumer.stop()
    return [
        Got(m.partition, m.offset, m.key, m.value, list(m.headers), m.timestamp, m.timestamp_type)
        for m in got
    ]


async def _offsets(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        return (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    async with admin_client(bootstrap) as admin:
        [described] = await admin.describe_topics([topic])
    assert described["error_code"] == 0, described
    return sorted(p["partition"] for p in described["partitions"])


async def _topics(bootstrap: str) -> set[str]:
    async with admin_client(bootstrap) as admin:
        return set(await admin.list_topics())


async def _create_partitions(bootstrap: str, topic: str, count: int) -> int:
    async with admin_client(bootstrap) as admin:
        try:
            await admin.create_partitions({topic: NewPartitions(count)})
        except BrokerResponseError as exc:
            return int(exc.errno)
    return 0


async def _delete_records(
    bootstrap: str, topic: str, partition: int, before: int
) -> tuple[int, int | None]:
    tp = TopicPartition(topic, partition)
    async with admin_client(bootstrap) as admin:
        try:
            low_watermarks = await admin.delete_records({tp: RecordsToDelete(before)})
        except BrokerResponseError as exc:
            return int(exc.errno), None
    return 0, low_watermarks[tp]


async def _delete_topic(bootstrap: str, topic: str) -> int:
    async with admin_client(bootstrap) as admin:
        # aiokafka hands back the DeleteTopics response rather than raising per topic.
        response = await admin.delete_topics([topic])
    [(name, code, *_)] = response.topic_error_codes
    assert name == topic
    return int(code)


async def _topic_configs(bootstrap: str, topic: str) -> dict[str, Config]:
    async with admin_client(bootstrap) as admin:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [(error_code, _, _, name, entries)] = response.resources
    assert (error_code, name) == (0, topic)
    # (name, value, read_only, source, sensitive, ...)
    return {e[0]: Config(e[1], e[3]) for e in entries}


class AiokafkaClient:
    """aiokafka as a ``compat.record_scenarios.RecordClient``: each call one ``run``."""

    partition_known_without_acks = False  # acks=0: no metadata to report
    reports_low_watermark = True

    @staticmethod
    def create_topic(
        broker: LiveBroker, name: str, partitions: int = 1, configs: dict[str, str] | None = None
    ) -> None:
        run(create_topic, broker.bootstrap_servers, name, partitions, configs)

    expected_partition = staticmethod(expected_partition)

    @staticmethod
    def produce(
        broker: LiveBroker, topic: str, records: list[Out], how: Producing = PLAIN
    ) -> list[Sent]:
        return run(_produce, broker.bootstrap_servers, topic, records, how.settings(dotted=False))

    @staticmethod
    def read(
        broker: LiveBroker, topic: str, partitions: int, count: int, *, seek: int | None = None
    ) -> list[Got]:
        return run(_read, broker.bootstrap_servers, topic, partitions, count, seek)

    @staticmethod
    def offsets(broker: LiveBroker, topic: str, partition: int) -> tuple[int, int]:
        return run(_offsets, broker.bootstrap_servers, topic, partition)

    @staticmethod
    def partitions(broker: LiveBroker, topic: str) -> list[int]:
        return run(_partitions, broker.bootstrap_servers, topic)

    @staticmethod
    def topics(broker: LiveBroker) -> set[str]:
        return run(_topics, broker.bootstrap_servers)

    @staticmethod
    def create_partitions(broker: LiveBroker, topic: str, count: int) -> int:
        return run(_create_partitions, broker.bootstrap_servers, topic, count)

    @staticmethod
    def delete_topic(broker: LiveBroker, topic: str) -> int:
        return run(_delete_topic, broker.bootstrap_servers, topic)

    @staticmethod
    def delete_records(
        broker: LiveBroker, topic: str, partition: int, before: int
    ) -> tuple[int, int | None]:
        return run(_delete_records, broker.bootstrap_servers, topic, partition, before)

    @staticmethod
    def topic_configs(broker: LiveBroker, topic: str) -> dict[str, Config]:
        return run(_topic_configs, broker.bootstrap_servers, topic)


# -- transactions -----------------------------------------------------------------------------
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


class AiokafkaTxProducer:
    """aiokafka's transactional producer as a ``compat.txn_scenarios.TxProducer``: it lives
    on an event loop of its own (``asyncio.Runner``), driven one call at a time, so two
    instances (a zombie and its successor) can take turns."""

    def __init__(self, bootstrap: str, tid: str, **configs: Any) -> None:
        self._runner = asyncio.Runner()
        self._pending: list[asyncio.Future[Any]] = []

        async def started() -> AIOKafkaProducer:
            # aiokafka binds a producer to the running loop when it is built.
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, transactional_id=tid, **configs
            )
            await producer.start()
            return producer

        self.producer: AIOKafkaProducer = self._run(started())

    def _run(self, step: Awaitable[Any]) -> Any:
        async def bounded() -> Any:
            return await asyncio.wait_for(step, DEADLINE_S * 2)

        return self._runner.run(bounded())

    def begin(self) -> None:
        self._run(self.producer.begin_transaction())

    def send(self, topic: str, value: bytes) -> None:
        self._pending.append(self._run(self.producer.send(topic, value=value)))

    def flush(self) -> None:
        async def delivered() -> None:
            await self.producer.flush()
            await asyncio.gather(*self._pending)

        self._run(delivered())
        self._pending = []

    def commit(self) -> None:
        self._run(self.producer.commit_transaction())

    def abort(self) -> None:
        self._run(self.producer.abort_transaction())

    def commit_fails_fenced(self) -> None:
        with pytest.raises(ProducerFenced):
            self._run(self.producer.commit_transaction())

    def close(self) -> None:
        try:
            self._run(self.producer.stop())
        finally:
            self._runner.close()


async def _transform(
    bootstrap: str, src: str, dst: str, group: str, tid: str, count: int
) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
    await consumer.start()
    await producer.start()
    try:
        seen = 0
        while seen < count:
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
        return seen, await consumer.committed(TopicPartition(src, 0))
    finally:
        await consumer.stop()
        await producer.stop()


async def _produce_plain(bootstrap: str, topic: str, values: list[bytes]) -> None:
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await plain.start()
    try:
        for value in values:
            await plain.send(topic, value=value)
    finally:
        await plain.stop()


class AiokafkaTxn:
    """aiokafka as a ``compat.txn_scenarios.TxnClient``."""

    @staticmethod
    def create_topic(broker: LiveBroker, name: str) -> None:
        run(create_topic, broker.bootstrap_servers, name)

    @staticmethod
    def tx_producer(
        broker: LiveBroker, tid: str, *, fast_reconnect: bool = False
    ) -> AiokafkaTxProducer:
        # No scenario restarts the broker under aiokafka (fast_reconnect): its defaults.
        return AiokafkaTxProducer(broker.bootstrap_servers, f"aio-{tid}")

    @staticmethod
    def produce(broker: LiveBroker, topic: str, values: list[bytes]) -> None:
        run(_produce_plain, broker.bootstrap_servers, topic, values)

    @staticmethod
    def read_all(broker: LiveBroker, topic: str, isolation: str) -> list[bytes]:
        return run(read_all, broker.bootstrap_servers, topic, isolation)

    @staticmethod
    def transform(
        broker: LiveBroker, src: str, dst: str, group: str, tid: str, count: int
    ) -> tuple[int, int]:
        return run(_transform, broker.bootstrap_servers, src, dst, group, f"aio-{tid}", count)


# -- consumer groups --------------------------------------------------------------------------
# Short heartbeats make a rebalance visible to members quickly; 6 s is Kafka's minimum
# session timeout (group.min.session.timeout.ms).
FAST_GROUP = {"heartbeat_interval_ms": 200, "session_timeout_ms": 6000}


class AiokafkaMember(PolledMember):
    """One aiokafka group consumer, polled by its own thread on an event loop of that thread."""

    def __init__(self, broker: LiveBroker, topic: str, group: str) -> None:
        super().__init__()
        self._servers = broker.bootstrap_servers
        self._topic = topic
        self._group = group
        self._runner: asyncio.Runner | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def run(self) -> None:
        with asyncio.Runner() as runner:
            self._runner = runner
            super().run()

    def _loop_run(self, step: Awaitable[Any]) -> Any:
        assert self._runner is not None
        return self._runner.run(step)

    def poll_once(self) -> None:
        if self._consumer is None:

            async def started() -> AIOKafkaConsumer:
                # aiokafka binds a consumer to the running loop when it is built.
                consumer = AIOKafkaConsumer(
                    self._topic,
                    bootstrap_servers=self._servers,
                    group_id=self._group,
                    auto_offset_reset="earliest",
                    enable_auto_commit=False,
                    **FAST_GROUP,
                )
                await consumer.start()
                return consumer

            self._consumer = self._loop_run(started())
        consumer = self._consumer
        for batch in self._loop_run(consumer.getmany(timeout_ms=100)).values():
            self.values.extend(r.value for r in batch)
        self.assignment = frozenset(tp.partition for tp in consumer.assignment())

    def commit_now(self) -> None:
        assert self._consumer is not None
        self._loop_run(self._consumer.commit())

    def close_consumer(self) -> None:
        if self._consumer is not None:
            self._loop_run(self._consumer.stop())  # LeaveGroup


async def _produce_per_partition(
    bootstrap: str, topic: str, partitions: int, per_partition: int, prefix: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for p in range(partitions):
            for i in range(per_partition):
                await producer.send(topic, f"{prefix}p{p}-{i}".encode(), partition=p)
        await producer.flush()
    finally:
        await producer.stop()


async def _group_committed(
    bootstrap: str, group: str, topic: str, partitions: int
) -> dict[int, int]:
    async with admin_client(bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {
        tp.partition: om.offset
        for tp, om in offsets.items()
        if tp.topic == topic and tp.partition < partitions
    }


class AiokafkaGroups:
    """aiokafka as a ``compat.group_scenarios.GroupClient``."""

    @staticmethod
    def create_topic(broker: LiveBroker, name: str, partitions: int) -> None:
        run(create_topic, broker.bootstrap_servers, name, partitions)

    @staticmethod
    def produce(
        broker: LiveBroker, topic: str, partitions: int, per_partition: int, prefix: str = ""
    ) -> None:
        """Write ``per_partition`` records to every partition ("<prefix>p<partition>-<i>")."""
        run(
            _produce_per_partition,
            broker.bootstrap_servers,
            topic,
            partitions,
            per_partition,
            prefix,
        )

    @staticmethod
    def member(broker: LiveBroker, topic: str, group: str) -> AiokafkaMember:
        return AiokafkaMember(broker, topic, group)

    @staticmethod
    def committed(broker: LiveBroker, group: str, topic: str, partitions: int) -> dict[int, int]:
        """The group's committed offsets as the admin client reads them (OffsetFetch)."""
        return run(_group_committed, broker.bootstrap_servers, group, topic, partitions)
