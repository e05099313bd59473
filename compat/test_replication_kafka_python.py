"""Issue 15's replication scenarios with kafka-python on a 3-broker cluster.

The scenarios and the checker are shared (compat/replication_scenarios.py,
compat/checker.py); this module is kafka-python's adapter.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from compat import replication_scenarios as scenarios
from compat.checker import History

pytestmark = pytest.mark.compat


def _error_name(exc: BaseException) -> str:
    # kafka-python's broker errors carry Kafka's name in ``message`` (NotEnoughReplicasError:
    # "NOT_ENOUGH_REPLICAS"); anything else is named by its class.
    return str(getattr(exc, "message", None) or type(exc).__name__)


class KafkaPythonProducer:
    """A KafkaProducer reporting to a History."""

    def __init__(self, bootstrap: str, history: History | None, settings: dict[str, Any]) -> None:
        self.history = history
        self.producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), **settings)

    def send(self, topic: str, partition: int, value: bytes) -> None:
        future = self.producer.send(topic, value=value, partition=partition)
        history = self.history
        if history is not None:
            future.add_callback(lambda md: history.acked(md.partition, md.offset, value))
            future.add_errback(lambda exc: history.failed(value, _error_name(exc)))

    def poll(self) -> None:
        pass  # kafka-python's sender thread runs the callbacks

    def flush(self, timeout_s: float) -> None:
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaError:
            pass  # the records that could not be sent are failed in the history

    def close(self) -> None:
        self.producer.close(timeout=5)


class KafkaPythonClient:
    """kafka-python's adapter for the scenarios."""

    name = "kafka-python"

    def producer(
        self,
        bootstrap: str,
        history: History | None,
        *,
        idempotent: bool,
        retries: int | None,
        acks: str = "all",
    ) -> KafkaPythonProducer:
        settings: dict[str, Any] = {
            "acks": acks if acks == "all" else int(acks),
            "enable_idempotence": idempotent,
            "linger_ms": 5,
            "delivery_timeout_ms": 120_000,
            "request_timeout_ms": 30_000,
        }
        if retries is not None:
            settings["retries"] = retries
        return KafkaPythonProducer(bootstrap, history, settings)

    def create_topic(self, bootstrap: str, topic: str, partitions: int, rf: int) -> None:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
        try:
            admin.create_topics([NewTopic(topic, partitions, rf)])
        finally:
            admin.close()

    def _from_start(
        self, bootstrap: str, topic: str, partitions: int
    ) -> tuple[KafkaConsumer, list[TopicPartition]]:
        """A consumer assigned every partition of ``topic``, at its start."""
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return consumer, tps

    def read_all(
        self, bootstrap: str, topic: str, partitions: int, history: History, reader: str
    ) -> None:
        consumer, tps = self._from_start(bootstrap, topic, partitions)
        try:
            ends = consumer.end_offsets(tps)
            deadline = time.monotonic() + scenarios.SETTLE_S
            while (
                any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline
            ):
                for tp, records in consumer.poll(timeout_ms=500).items():
                    for r in records:
                        history.read(reader, tp.partition, r.offset, r.value)
            assert all(consumer.position(tp) >= ends[tp] for tp in tps), ends
        finally:
            consumer.close()

    def live_reader(
        self, bootstrap: str, topic: str, partitions: int, history: History, stop: threading.Event
    ) -> None:
        consumer, _ = self._from_start(bootstrap, topic, partitions)
        try:
            while not stop.is_set():
                try:
                    polled = consumer.poll(timeout_ms=200)
                except KafkaError:
                    continue  # the client re-discovers the leader by itself
                for tp, records in polled.items():
                    for r in records:
                        history.read("live", tp.partition, r.offset, r.value)
        finally:
            consumer.close()

    def send_error(self, bootstrap: str, topic: str, partition: int) -> str:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap.split(","),
            acks="all",
            enable_idempotence=False,
            retries=0,
        )
        try:
            producer.send(topic, value=b"probe", partition=partition).get(timeout=20)
            return ""
        except KafkaError as exc:
            return _error_name(exc)
        finally:
            producer.close(timeout=5)

    def group_reader(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        history: History,
        reader: str,
        stop: threading.Event,
    ) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1,
        )
        try:
            consumer.subscribe([topic])
            while not stop.is_set():
                try:
                    polled = consumer.poll(timeout_ms=200)
                except KafkaError:
                    continue
                if not polled:
                    continue
                for tp, records in polled.items():
                    for r in records:
                        history.read(reader, tp.partition, r.offset, r.value)
                while not stop.is_set():
                    try:
                        consumer.commit()  # the positions after what was just handed over
                        break
                    except KafkaError:
                        time.sleep(0.2)  # no coordinator yet: the client finds the next
        finally:
            consumer.close()


class TestReplicationScenarios(scenarios.ReplicationScenarios):
    """Issue 15's scenarios, through this module's adapter."""

    client = KafkaPythonClient()
