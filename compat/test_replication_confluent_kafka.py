"""Issue 15's replication scenarios with confluent-kafka (librdkafka) on a 3-broker cluster.

The scenarios and the checker are shared (compat/replication_scenarios.py,
compat/checker.py); this module is confluent-kafka's adapter. Each test records its
figures (acked, read, lost, duplicated, failover times) for the results table.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from compat import replication_scenarios as scenarios
from compat.checker import History

pytestmark = pytest.mark.compat
# How long one send_offsets_to_transaction may take (see transform_loop).
OFFSETS_TIMEOUT_S = 10


class ConfluentProducer:
    """A confluent-kafka producer reporting to a History."""

    def __init__(self, bootstrap: str, history: History | None, settings: dict[str, Any]) -> None:
        self.history = history
        self.producer = Producer({"bootstrap.servers": bootstrap, **settings})

    def _report(self, err: KafkaError | None, msg: Any) -> None:
        if self.history is None:
            return
        if err is not None:
            self.history.failed(msg.value(), err.name())
        else:
            self.history.acked(msg.partition(), msg.offset(), msg.value())

    def send(self, topic: str, partition: int, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value, partition=partition, on_delivery=self._report)
                return
            except BufferError:  # the local queue is full while no leader answers
                self.producer.poll(0.1)

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        self.producer.flush(timeout_s)

    def close(self) -> None:
        self.producer.flush(5)


class ConfluentClient:
    """confluent-kafka's adapter for the scenarios."""

    name = "confluent-kafka"

    def producer(
        self,
        bootstrap: str,
        history: History | None,
        settings: scenarios.ProducerSettings = scenarios.SAFE,
    ) -> ConfluentProducer:
        config: dict[str, Any] = {
            "acks": settings.acks,
            "enable.idempotence": settings.idempotent,
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
        }
        if settings.retries is not None:
            config["retries"] = settings.retries
        return ConfluentProducer(bootstrap, history, config)

    def create_topic(self, bootstrap: str, topic: str, partitions: int, rf: int) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(topic, partitions, rf)]).values():
            future.result(30)

    def _consumer(
        self, bootstrap: str, group: str = "replication-checker", **settings: object
    ) -> Consumer:
        """A consumer committing only when told, from the start where it has no offset."""
        return Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **settings,
            }
        )

    def read_all(
        self, bootstrap: str, topic: str, partitions: int, history: History, reader: str
    ) -> None:
        consumer = self._consumer(bootstrap)
        try:
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(partitions)
            }
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
            positions = dict.fromkeys(range(partitions), 0)
            deadline = time.monotonic() + scenarios.SETTLE_S
            while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                history.read(reader, msg.partition(), msg.offset(), msg.value())
                positions[msg.partition()] = msg.offset() + 1
            assert all(positions[p] >= ends[p] for p in ends), (positions, ends)
        finally:
            consumer.close()

    def live_reader(
        self, bootstrap: str, topic: str, partitions: int, history: History, stop: threading.Event
    ) -> None:
        consumer = self._consumer(bootstrap)
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
            while not stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                history.read("live", msg.partition(), msg.offset(), msg.value())
        finally:
            consumer.close()

    def send_error(self, bootstrap: str, topic: str, partition: int) -> str:
        errors: list[str] = []
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": False,
                "retries": 0,
                "message.timeout.ms": 15_000,
            }
        )
        producer.produce(
            topic,
            b"probe",
            partition=partition,
            on_delivery=lambda err, _msg: errors.append(err.name() if err else ""),
        )
        producer.flush(20)
        return errors[0] if errors else "no delivery report"

    def group_reader(self, reading: scenarios.GroupReading) -> None:
        # librdkafka tells when a fetch reaches the high watermark, after the records
        # before it: what ``reading.caught_up`` is kept from.
        consumer = self._consumer(
            reading.bootstrap, reading.group, **{"enable.partition.eof": True}
        )
        try:
            consumer.subscribe([reading.topic])
            while not reading.stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        reading.caught_up.add(msg.partition())
                    continue
                reading.caught_up.discard(msg.partition())
                reading.history.read(reading.reader, msg.partition(), msg.offset(), msg.value())
                reading.commit(
                    functools.partial(consumer.commit, message=msg, asynchronous=False),
                    KafkaException,
                )
        finally:
            consumer.close()

    def transform_loop(self, loop: scenarios.TransformLoop) -> None:
        consumer = self._consumer(
            loop.bootstrap, loop.group, **{"isolation.level": "read_committed"}
        )
        producer = Producer(
            {
                "bootstrap.servers": loop.bootstrap,
                "transactional.id": loop.transactional_id,
                "linger.ms": 5,
                # librdkafka caches the group coordinator for TxnOffsetCommit and, when that
                # broker is gone from the metadata (kill -9 of a broker that was both this
                # group's and this transaction's coordinator), waits for it forever
                # instead of asking FindCoordinator again (librdkafka issue #5511). Its
                # cache entries expire after metadata.max.age.ms unused (default 15 min):
                # a short age lets the next transaction find the new coordinator.
                "metadata.max.age.ms": 5000,
            }
        )
        try:
            producer.init_transactions(60)
            consumer.subscribe([loop.source])
            while not loop.stop.is_set():
                batch = [m for m in consumer.consume(50, 0.5) if not m.error()]
                if not batch:
                    continue
                offsets: dict[int, int] = {}
                try:
                    producer.begin_transaction()
                    for msg in batch:
                        value = b"out-" + msg.value()
                        producer.produce(loop.sink, value, partition=msg.partition())
                        offsets[msg.partition()] = msg.offset() + 1
                    # Each attempt to add the offsets is bounded well within the scenario's
                    # wait: one stuck on a stale group coordinator (see above) times out as an
                    # abortable error, and the transaction is aborted and redone as any other.
                    _while_retriable(
                        producer.send_offsets_to_transaction,
                        [TopicPartition(loop.source, p, o) for p, o in offsets.items()],
                        consumer.consumer_group_metadata(),
                        OFFSETS_TIMEOUT_S,
                    )
                    _while_retriable(producer.commit_transaction, 60)
                    loop.committed += len(batch)
                except KafkaException as exc:
                    error = exc.args[0]
                    if not error.txn_requires_abort():
                        raise
                    producer.abort_transaction(60)
                    loop.aborted += 1
                    _rewind_to_committed(consumer)
        finally:
            consumer.close()
            producer.flush(5)

    def read_committed(
        self, bootstrap: str, topic: str, partitions: int, history: History, reader: str
    ) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "replication-checker",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # Reported when a fetch reaches the last stable offset: the end for this
                # reader, since nothing writes to the topic any more.
                "enable.partition.eof": True,
            }
        )
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
            at_end: set[int] = set()
            deadline = time.monotonic() + scenarios.SETTLE_S
            while len(at_end) < partitions and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                    continue
                at_end.discard(msg.partition())
                history.read(reader, msg.partition(), msg.offset(), msg.value())
            assert len(at_end) == partitions, f"read to the end of partitions {sorted(at_end)} only"
        finally:
            consumer.close()


def _while_retriable(call: Callable[..., object], *args: object) -> None:
    """``call(*args)`` until it succeeds, again while its error is retriable (the transaction
    coordinator is moving), as librdkafka documents for the transactional calls."""
    while True:
        try:
            call(*args)
            return
        except KafkaException as exc:
            if not exc.args[0].retriable():
                raise
            time.sleep(0.2)


def _rewind_to_committed(consumer: Consumer) -> None:
    """Seek every assigned partition back to its committed offset (after an abort)."""
    while True:
        try:
            committed = consumer.committed(consumer.assignment(), 30)
            break
        except KafkaException:
            time.sleep(0.2)  # no group coordinator yet
    for tp in committed:
        if tp.offset < 0:
            tp.offset = OFFSET_BEGINNING
        consumer.seek(tp)


class TestReplicationScenarios(
    # pytest collects the last base's tests first: scenario 5's transactional half runs last.
    scenarios.TransactionReplicationScenarios,
    scenarios.ReplicationScenarios,
):
    """Issue 15's scenarios, through this module's adapter."""

    client = ConfluentClient()
