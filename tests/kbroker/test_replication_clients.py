"""Real clients across a leader epoch change: librdkafka validates its position with
OffsetForLeaderEpoch (KIP-320) and must neither lose nor re-read a record."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio
from confluent_kafka import Consumer, Producer, TopicPartition

from kbroker.handlers import HANDLERS
from kbroker.replication.partition import ReplicatedPartition
from kbroker.wire.messages import OffsetForLeaderEpochRequest
from tests.kbroker.helpers import create_topic

API_KEY = OffsetForLeaderEpochRequest.API_KEY


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for v in values:
        producer.produce(topic, v, partition=0)
    assert producer.flush(10) == 0


def _consume(consumer: Consumer, n: int, polls: int = 200) -> list[Any]:
    out: list[Any] = []
    for _ in range(polls):
        if len(out) >= n:
            break
        msg = consumer.poll(0.1)
        if msg is not None and not msg.error():
            out.append(msg)
    return out


async def test_confluent_consumer_validates_its_position_after_a_leader_change(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_topic(server, "epochs")
    asked: list[tuple[int, int]] = []
    registration = HANDLERS[API_KEY]

    async def recording(ctx: Any, request: Any) -> Any:
        for t in request.topics:
            asked.extend((p.current_leader_epoch, p.leader_epoch) for p in t.partitions)
        return await registration.handler(ctx, request)

    monkeypatch.setitem(HANDLERS, API_KEY, dataclasses.replace(registration, handler=recording))
    await trio.to_thread.run_sync(
        _produce, server.bootstrap, "epochs", [b"a%d" % i for i in range(5)]
    )
    consumer = Consumer(
        {
            "bootstrap.servers": server.bootstrap,
            "group.id": "g-epochs",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 200,
        }
    )
    try:
        consumer.assign([TopicPartition("epochs", 0, 0)])
        first = await trio.to_thread.run_sync(_consume, consumer, 5)
        assert [m.offset() for m in first] == [0, 1, 2, 3, 4]
        assert {m.leader_epoch() for m in first} == {0}
        # A new leader epoch, as after a failover: new batches carry it, metadata shows it.
        partition = server.broker.topics.get("epochs").partitions[0]
        partition.replica = ReplicatedPartition(partition.log, broker_id=server.broker.node_id)
        partition.replica.make_leader(leader_epoch=4, isr=[1], replicas=[1])
        await trio.sleep(1)  # librdkafka's metadata refresh notices the new epoch
        await trio.to_thread.run_sync(
            _produce, server.bootstrap, "epochs", [b"b%d" % i for i in range(5)]
        )
        second = await trio.to_thread.run_sync(_consume, consumer, 5)
        more = await trio.to_thread.run_sync(_consume, consumer, 1, 10)
    finally:
        await trio.to_thread.run_sync(consumer.close)
    # Validated with the epoch of its last record against the new current epoch...
    assert (4, 0) in asked
    # ...and went on exactly where it was: nothing lost, nothing read twice.
    assert [(m.offset(), m.value()) for m in second] == [(5 + i, b"b%d" % i) for i in range(5)]
    assert {m.leader_epoch() for m in second} == {4}
    assert more == []


def _kp_consume(consumer: Any, n: int, polls: int = 100) -> list[Any]:
    out: list[Any] = []
    for _ in range(polls):
        if len(out) >= n:
            break
        for batch in consumer.poll(timeout_ms=100).values():
            out += batch
    return out


def _record_validations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    asked: list[tuple[int, int]] = []
    registration = HANDLERS[API_KEY]

    async def recording(ctx: Any, request: Any) -> Any:
        for t in request.topics:
            asked.extend((p.current_leader_epoch, p.leader_epoch) for p in t.partitions)
        return await registration.handler(ctx, request)

    monkeypatch.setitem(HANDLERS, API_KEY, dataclasses.replace(registration, handler=recording))
    return asked


async def test_kafka_python_consumer_follows_a_truncation_after_a_leader_change(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    create_topic(server, "trunc")
    asked = _record_validations(monkeypatch)
    # Two flushes: offsets 0-6 and 7-9 are separate batches (truncation cuts batches).
    await trio.to_thread.run_sync(
        _produce, server.bootstrap, "trunc", [b"old%d" % i for i in range(7)]
    )
    await trio.to_thread.run_sync(
        _produce, server.bootstrap, "trunc", [b"old%d" % i for i in range(7, 10)]
    )
    tp = KTopicPartition("trunc", 0)

    def open_consumer() -> Any:
        # Constructed off the event loop: it connects while the broker must answer.
        consumer = KafkaConsumer(
            bootstrap_servers=server.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=200,
        )
        consumer.assign([tp])
        consumer.seek(tp, 0)
        return consumer

    consumer = await trio.to_thread.run_sync(open_consumer)
    try:
        first = await trio.to_thread.run_sync(_kp_consume, consumer, 10)
        assert [r.offset for r in first] == list(range(10))
        # This broker becomes leader at epoch 1 of a log whose epoch 0 ended at 7 (a
        # failover truncated offsets 7-9, never committed), and writes new records there.
        partition = server.broker.topics.get("trunc").partitions[0]
        partition.log.truncate_to(7)
        assert partition.log.log_end_offset == 7
        partition.replica = ReplicatedPartition(partition.log, broker_id=server.broker.node_id)
        partition.replica.make_leader(leader_epoch=1, isr=[1], replicas=[1])
        await trio.to_thread.run_sync(
            _produce, server.bootstrap, "trunc", [b"new%d" % i for i in range(7, 10)]
        )
        after = await trio.to_thread.run_sync(_kp_consume, consumer, 3)
    finally:
        await trio.to_thread.run_sync(consumer.close)
    # The consumer checked its position (offset 10, epoch 0) against the new leader,
    # learned epoch 0 ends at 7, and went back there: it reads the new records.
    assert (1, 0) in asked
    assert [(r.offset, r.value, r.leader_epoch) for r in after] == [
        (7 + i, b"new%d" % (7 + i), 1) for i in range(3)
    ]


async def test_confluent_consumer_follows_a_truncation_after_a_leader_change(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_topic(server, "ctrunc")
    asked = _record_validations(monkeypatch)
    await trio.to_thread.run_sync(
        _produce, server.bootstrap, "ctrunc", [b"old%d" % i for i in range(7)]
    )
    await trio.to_thread.run_sync(
        _produce, server.bootstrap, "ctrunc", [b"old%d" % i for i in range(7, 10)]
    )
    consumer = Consumer(
        {
            "bootstrap.servers": server.bootstrap,
            "group.id": "g-ctrunc",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 200,
        }
    )
    try:
        consumer.assign([TopicPartition("ctrunc", 0, 0)])
        first = await trio.to_thread.run_sync(_consume, consumer, 10)
        assert [m.offset() for m in first] == list(range(10))
        partition = server.broker.topics.get("ctrunc").partitions[0]
        partition.log.truncate_to(7)
        assert partition.log.log_end_offset == 7
        partition.replica = ReplicatedPartition(partition.log, broker_id=server.broker.node_id)
        partition.replica.make_leader(leader_epoch=1, isr=[1], replicas=[1])
        await trio.to_thread.run_sync(
            _produce, server.bootstrap, "ctrunc", [b"new%d" % i for i in range(7, 10)]
        )
        after = await trio.to_thread.run_sync(_consume, consumer, 3, 100)
    finally:
        await trio.to_thread.run_sync(consumer.close)
    assert (1, 0) in asked
    assert [(m.offset(), m.value(), m.leader_epoch()) for m in after] == [
        (7 + i, b"new%d" % (7 + i), 1) for i in range(3)
    ]
