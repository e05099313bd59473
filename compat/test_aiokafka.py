"""aiokafka (asyncio), with its default settings, against a live kbroker.

Scenario names are shared with the other clients' modules so the results table lines the
clients up; the scenarios common to several clients are defined once in
compat/record_scenarios.py and run here through compat/adapters/aiokafka.py. pytest-trio owns
`async def` tests here, so each scenario of this module's own is a plain function that runs
its asyncio coroutine with asyncio.run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import OffsetAndMetadata

from compat import group_scenarios, record_scenarios
from compat.adapters.aiokafka import (
    DEADLINE_S,
    AiokafkaClient,
    AiokafkaGroups,
    admin_client,
    create_topic,
    read_from,
    run,
)
from compat.conftest import DEFAULT_CONFIG
from compat.livebroker import GROUP_BROKER_OVERRIDES, LiveBroker

pytestmark = pytest.mark.compat


GROUPS = AiokafkaGroups()
BROKER_OVERRIDES = GROUP_BROKER_OVERRIDES  # a short initial rebalance delay for the group tests


async def fetch(consumer: AIOKafkaConsumer, tp: TopicPartition, count: int) -> list[Any]:
    """Records of ``tp`` fetched until there are ``count`` (within DEADLINE_S)."""
    got: list[Any] = []
    async with asyncio.timeout(DEADLINE_S):
        while len(got) < count:
            batch = await consumer.getmany(tp, timeout_ms=500)
            got += batch.get(tp, [])
    return got


# -- bootstrap and admin ----------------------------------------------------------------------
def test_bootstrap(broker: LiveBroker, topic_name: str) -> None:
    """Cluster metadata names the one broker at the bootstrap address; topics are listed."""

    async def scenario() -> None:
        async with admin_client(broker.bootstrap_servers) as admin:
            cluster = await admin.describe_cluster()
            assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [
                (broker.host, broker.port)
            ]
            assert cluster["cluster_id"]
            await admin.create_topics([NewTopic(topic_name, 2, 1)])
            assert topic_name in await admin.list_topics()
            [described] = await admin.describe_topics([topic_name])
            assert described["error_code"] == 0
            assert sorted(p["partition"] for p in described["partitions"]) == [0, 1]

    run(scenario)


def test_create_topic_with_configs(broker: LiveBroker, topic_name: str) -> None:
    """CreateTopics applies configs (DescribeConfigs shows them); Kafka's errors otherwise."""

    async def scenario() -> None:
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        async with admin_client(broker.bootstrap_servers) as admin:
            await admin.create_topics(
                [
                    NewTopic(
                        topic_name,
                        3,
                        1,
                        topic_configs={"retention.ms": "3600000", "cleanup.policy": "compact"},
                    )
                ]
            )
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic_name)]
            )
            [resource] = response.resources
            configs = {entry[0]: entry[1] for entry in resource[4]}
            assert configs["retention.ms"] == "3600000"
            assert configs["cleanup.policy"] == "compact"
            # aiokafka hands back the CreateTopics response rather than raising per topic.
            again = await admin.create_topics([NewTopic(topic_name, 1, 1)])
            assert [t[1] for t in again.topic_errors] == [36]  # TOPIC_ALREADY_EXISTS
            rf = await admin.create_topics([NewTopic(topic_name + ".rf", 1, 3)])
            assert [t[1] for t in rf.topic_errors] == [38]  # INVALID_REPLICATION_FACTOR

    run(scenario)


# -- produce and consume ----------------------------------------------------------------------
def test_consume_from_beginning(broker: LiveBroker, topic_name: str) -> None:
    """seek_to_beginning reads every record from 0; beginning/end offsets agree."""

    async def scenario() -> None:
        values = [f"m{i}".encode() for i in range(10)]
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            for v in values:
                await producer.send_and_wait(topic_name, v, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
        await consumer.start()
        tp = TopicPartition(topic_name, 0)
        try:
            consumer.assign([tp])
            assert await consumer.beginning_offsets([tp]) == {tp: 0}
            assert await consumer.end_offsets([tp]) == {tp: 10}
            await consumer.seek_to_beginning(tp)
            got = await fetch(consumer, tp, 10)
        finally:
            await consumer.stop()
        assert [(m.offset, m.value) for m in got] == list(enumerate(values))

    run(scenario)


def test_consume_from_end(broker: LiveBroker, topic_name: str) -> None:
    """seek_to_end skips what is there and delivers only what is produced afterwards."""

    async def scenario() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
        await consumer.start()
        tp = TopicPartition(topic_name, 0)
        try:
            for v in (b"old-1", b"old-2", b"old-3"):
                await producer.send_and_wait(topic_name, v, partition=0)
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
            assert await consumer.position(tp) == 3  # resolved: later records come after
            for v in (b"new-1", b"new-2"):
                await producer.send_and_wait(topic_name, v, partition=0)
            got = await fetch(consumer, tp, 2)
        finally:
            await consumer.stop()
            await producer.stop()
        assert [(m.offset, m.value) for m in got] == [(3, b"new-1"), (4, b"new-2")]

    run(scenario)


# -- consumer groups --------------------------------------------------------------------------
def test_group_subscribe_and_consume(broker: LiveBroker, topic_name: str) -> None:
    """A subscribed member gets every partition, reads everything, commits; admin agrees."""
    group = f"g-{topic_name}"
    group_scenarios.consume_all_and_commit(GROUPS, broker, topic_name, group)

    async def listed() -> set[str]:
        async with admin_client(broker.bootstrap_servers) as admin:
            return {g[0] for g in await admin.list_consumer_groups()}

    assert group in run(listed)


def test_group_commit_and_fetch_offsets(broker: LiveBroker, topic_name: str) -> None:
    """Offsets committed with metadata are fetched back and a new member resumes there."""
    group = f"g-{topic_name}"
    GROUPS.create_topic(broker, topic_name, 2)
    GROUPS.produce(broker, topic_name, 2, 10)

    async def commit_7_and_3() -> None:
        tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap_servers, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign([tp0, tp1])
            await consumer.commit(
                {tp0: OffsetAndMetadata(7, "seven"), tp1: OffsetAndMetadata(3, "")}
            )
            assert (await consumer.committed(tp0), await consumer.committed(tp1)) == (7, 3)
        finally:
            await consumer.stop()

    run(commit_7_and_3)
    group_scenarios.resumes_at_commits_7_and_3(GROUPS, broker, topic_name, group)


def test_group_rebalance_on_join_and_leave(broker: LiveBroker, topic_name: str) -> None:
    """A second member takes half the partitions; when it leaves the first gets them back."""
    group = f"g-{topic_name}"
    GROUPS.create_topic(broker, topic_name, 4)
    group_scenarios.join_split_and_leave(lambda: GROUPS.member(broker, topic_name, group))


# -- configs, offsets by time, out of range, DeleteRecords ------------------------------------
async def produce_values(
    bootstrap: str, topic: str, values: list[bytes], stamps: list[int] | None = None
) -> None:
    """Send ``values`` to partition 0 in order (with CreateTime ``stamps`` if given)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send_and_wait(
                topic, value, partition=0, timestamp_ms=stamps[i] if stamps else None
            )
    finally:
        await producer.stop()


def test_consume_from_timestamp(broker: LiveBroker, topic_name: str) -> None:
    """offsets_for_times finds the first record at or after a timestamp (ListOffsets v1+)."""

    async def scenario() -> None:
        await create_topic(broker.bootstrap_servers, topic_name)
        base = 1_700_000_000_000
        await produce_values(
            broker.bootstrap_servers,
            topic_name,
            [f"t{i}".encode() for i in range(5)],
            [base + i * 1000 for i in range(5)],
        )
        tp = TopicPartition(topic_name, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
        await consumer.start()
        try:
            found = (await consumer.offsets_for_times({tp: base + 1500}))[tp]
            assert (found.offset, found.timestamp) == (2, base + 2000)
            assert (await consumer.offsets_for_times({tp: base - 1}))[tp].offset == 0
            assert await consumer.offsets_for_times({tp: base + 60_000}) == {tp: None}
        finally:
            await consumer.stop()
        got = await read_from(broker.bootstrap_servers, tp, 3, seek=found.offset)
        assert [(m.offset, m.value, m.timestamp) for m in got] == [
            (2, b"t2", base + 2000),
            (3, b"t3", base + 3000),
            (4, b"t4", base + 4000),
        ]

    run(scenario)


def test_auto_create_topic(broker: LiveBroker, topic_name: str) -> None:
    """Producing to an unknown topic creates it (auto.create.topics.enable, num.partitions=1)."""

    async def scenario() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            md = await producer.send_and_wait(topic_name, b"first")
        finally:
            await producer.stop()
        assert (md.partition, md.offset) == (0, 0)
        async with admin_client(broker.bootstrap_servers) as admin:
            [described] = await admin.describe_topics([topic_name])
        assert [p["partition"] for p in described["partitions"]] == [0]

    run(scenario)


def test_alter_configs_legacy(broker: LiveBroker, topic_name: str) -> None:
    """The pre-KIP-339 AlterConfigs (whole-set replace): omitted overrides revert."""

    async def scenario() -> None:
        await create_topic(
            broker.bootstrap_servers, topic_name, configs={"cleanup.policy": "compact"}
        )
        async with admin_client(broker.bootstrap_servers) as admin:
            [altered] = await admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC,
                        topic_name,
                        {"retention.ms": "90000", "max.message.bytes": "20000"},
                    )
                ]
            )
            assert [r[0] for r in altered.resources] == [0]  # error code
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic_name)]
            )
        configs = {e[0]: e for e in response.resources[0][4]}
        assert configs["retention.ms"][1] == "90000"
        assert configs["max.message.bytes"][1] == "20000"
        assert (configs["cleanup.policy"][1], configs["cleanup.policy"][3]) == (
            "delete",
            DEFAULT_CONFIG,
        )

    run(scenario)


# -- the shared scenarios (compat/record_scenarios.py) ------------------------------------------
@pytest.fixture(scope="module")
def client() -> AiokafkaClient:
    """aiokafka as the shared scenarios drive it."""
    return AiokafkaClient()


class TestSharedScenarios(
    record_scenarios.ProduceScenarios,
    record_scenarios.AdminScenarios,
    record_scenarios.AssignedScenarios,
):
    """The scenarios every client runs, through compat/adapters/aiokafka.py."""
