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


def _confluent_consumer(server: Any, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": server.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 200,
        }
    )


def _lead_at(server: Any, topic: str, epoch: int) -> Any:
    """This broker takes topic-0 over at `epoch` (what LeaderAndIsr does after a failover)."""
    partition = server.broker.topics.get(topic).partitions[0]
    partition.replica = ReplicatedPartition(partition.log, broker_id=server.broker.node_id)
    partition.replica.make_leader(leader_epoch=epoch, isr=[1], replicas=[1])
    return partition


async def _old_records(server: Any, topic: str) -> None:
    """Offsets 0-6 and 7-9 in two batches (truncation cuts whole batches)."""
    for values in ([b"old%d" % i for i in range(7)], [b"old%d" % i for i in range(7, 10)]):
        await trio.to_thread.run_sync(_produce, server.bootstrap, topic, values)


async def _fail_over_with_truncation(server: Any, topic: str) -> None:
    """Epoch 1 starts on a log whose epoch 0 ended at 7 (a failover cut 7-9); new records there."""
    partition = server.broker.topics.get(topic).partitions[0]
    partition.log.truncate_to(7)
    assert partition.log.log_end_offset == 7
    _lead_at(server, topic, 1)
    await trio.to_thread.run_sync(
        _produce, server.bootstrap, topic, [b"new%d" % i for i in range(7, 10)]
    )


def _record_validations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(current leader epoch, leader epoch) of every OffsetForLeaderEpoch partition asked."""
    asked: list[tuple[int, int]] = []
    registration = HANDLERS[API_KEY]

    async def recording(ctx: Any, request: Any) -> Any:
        for t in request.topics:
            asked.extend((p.current_leader_epoch, p.leader_epoch) for p in t.partitions)
        return await registration.handler(ctx, request)

    monkeypatch.setitem(HANDLERS, API_KEY, dataclasses.replace(registration, handler=recording))
    return asked


async def test_confluent_consumer_validates_its_position_after_a_leader_change(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_topic(server, "epochs")
    asked = _record_validations(monkeypatch)
    await trio.to_thread.run_sync(
        _produce, server.bootstrap, "epochs", [b"a%d" % i for i in range(5)]
    )
    consumer = _confluent_consumer(server, "g-epochs")
    try:
        consumer.assign([TopicPartition("epochs", 0, 0)])
        first = await trio.to_thread.run_sync(_consume, consumer, 5)
        assert [m.offset() for m in first] == [0, 1, 2, 3, 4]
        assert {m.leader_epoch() for m in first} == {0}
        # A new leader epoch, as after a failover: new batches carry it, metadata shows it.
        _lead_at(server, "epochs", 4)
        # librdkafka's metadata refresh notices the new epoch and validates the position
        # before any record of it exists (a fixed wait could end before the refresh).
        with trio.fail_after(30):
            while (4, 0) not in asked:
                await trio.sleep(0.05)
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


class _KafkaPythonReader:
    """kafka-python's KafkaConsumer assigned topic-0 from offset 0, read as (offset, value,
    leader epoch)."""

    def __init__(self, server: Any, topic: str) -> None:
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KTopicPartition

        tp = KTopicPartition(topic, 0)
        # Constructed off the event loop: it connects while the broker must answer.
        self.consumer = KafkaConsumer(
            bootstrap_servers=server.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=200,
        )
        self.consumer.assign([tp])
        self.consumer.seek(tp, 0)

    def read(self, n: int) -> list[tuple[int, bytes, int]]:
        out: list[Any] = []
        for _ in range(100):
            if len(out) >= n:
                break
            for batch in self.consumer.poll(timeout_ms=100).values():
                out += batch
        return [(r.offset, r.value, r.leader_epoch) for r in out]

    def close(self) -> None:
        self.consumer.close()


class _ConfluentReader:
    """confluent-kafka's Consumer assigned topic-0 from offset 0, read the same way."""

    def __init__(self, server: Any, topic: str) -> None:
        self.consumer = _confluent_consumer(server, f"g-{topic}")
        self.consumer.assign([TopicPartition(topic, 0, 0)])

    def read(self, n: int) -> list[tuple[int, bytes, int]]:
        return [(m.offset(), m.value(), m.leader_epoch()) for m in _consume(self.consumer, n)]

    def close(self) -> None:
        self.consumer.close()


@pytest.mark.parametrize(
    ("reader", "topic"), [(_KafkaPythonReader, "trunc"), (_ConfluentReader, "ctrunc")]
)
async def test_consumer_follows_a_truncation_after_a_leader_change(
    server: Any, monkeypatch: pytest.MonkeyPatch, reader: Any, topic: str
) -> None:
    create_topic(server, topic)
    asked = _record_validations(monkeypatch)
    await _old_records(server, topic)
    consumer = await trio.to_thread.run_sync(reader, server, topic)
    try:
        first = await trio.to_thread.run_sync(consumer.read, 10)
        assert [offset for offset, _, _ in first] == list(range(10))
        await _fail_over_with_truncation(server, topic)
        after = await trio.to_thread.run_sync(consumer.read, 3)
    finally:
        await trio.to_thread.run_sync(consumer.close)
    # The consumer checked its position (offset 10, epoch 0) against the new leader,
    # learned epoch 0 ends at 7, and went back there: it reads the new records.
    assert (1, 0) in asked
    assert after == [(7 + i, b"new%d" % (7 + i), 1) for i in range(3)]
