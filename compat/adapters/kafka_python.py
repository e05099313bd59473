"""kafka-python, default settings, as the shared record, exactly-once and group scenarios
drive it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import kafka.errors as Errors
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from compat.group_scenarios import PolledMember
from compat.livebroker import LiveBroker
from compat.record_scenarios import PLAIN, Config, Got, Out, Producing, Refused, Sent

POLL_DEADLINE_S = 15.0
TXN_DEADLINE_S = 20.0


@contextmanager
def admin_client(broker: LiveBroker) -> Iterator[KafkaAdminClient]:
    """An admin client with default settings."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        yield admin
    finally:
        admin.close()


@contextmanager
def producer(broker: LiveBroker, **configs: object) -> Iterator[KafkaProducer]:
    """A producer with default settings plus the scenario's own."""
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, **configs)
    try:
        yield prod
    finally:
        prod.close(timeout=10)


@contextmanager
def consumer(
    broker: LiveBroker, *, group_id: str | None = None, **configs: object
) -> Iterator[KafkaConsumer]:
    """A consumer whose partitions are assigned by hand: group-less unless ``group_id`` names
    the group it commits offsets for."""
    cons = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=group_id, **configs)
    try:
        yield cons
    finally:
        cons.close()


def create_topic(
    broker: LiveBroker, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    """Create a topic through the admin API (explicit replication factor 1)."""
    with admin_client(broker) as admin:
        admin.create_topics(
            {
                name: {
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": configs or {},
                }
            }
        )


def poll_records(cons: KafkaConsumer, count: int, *, deadline_s: float = POLL_DEADLINE_S) -> list:
    """Poll until `count` records arrived or the deadline passed; returns them in arrival order."""
    records: list = []
    deadline = time.monotonic() + deadline_s
    while len(records) < count and time.monotonic() < deadline:
        for batch in cons.poll(timeout_ms=200).values():
            records.extend(batch)
    assert len(records) >= count, (
        f"consumer received {len(records)} of {count} records within {deadline_s:.0f} s: {records[:3]}"
    )
    return records


def expected_partition(key: bytes, partitions: int) -> int:
    """kafka-python's DefaultPartitioner: murmur2 of the key, Java-compatible."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def consume_all(broker: LiveBroker, topic: str, partitions: int, count: int) -> list:
    """Read `count` records from the beginning of every partition of `topic`."""
    with consumer(broker) as cons:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        cons.assign(tps)
        cons.seek_to_beginning(*tps)
        return poll_records(cons, count)


# kafka-python names a config's source; Kafka's ConfigSource ids are these names' positions.
CONFIG_SOURCES = [
    "UNKNOWN",
    "DYNAMIC_TOPIC_CONFIG",
    "DYNAMIC_BROKER_CONFIG",
    "DYNAMIC_DEFAULT_BROKER_CONFIG",
    "STATIC_BROKER_CONFIG",
    "DEFAULT_CONFIG",
    "DYNAMIC_BROKER_LOGGER_CONFIG",
]


def topic_configs(admin: KafkaAdminClient, topic: str) -> dict[str, dict]:
    """Every config of a topic as DescribeConfigs reports it."""
    result = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    return result["topic"][topic]


class KafkaPythonClient:
    """kafka-python as a ``compat.record_scenarios.RecordClient``."""

    partition_known_without_acks = True  # the partitioner runs before the send
    reports_low_watermark = True

    create_topic = staticmethod(create_topic)
    expected_partition = staticmethod(expected_partition)

    @staticmethod
    def produce(
        broker: LiveBroker, topic: str, records: list[Out], how: Producing = PLAIN
    ) -> list[Sent]:
        configs = how.settings(dotted=False)
        with producer(broker, **configs) as prod:
            futures = [
                prod.send(
                    topic,
                    key=r.key,
                    value=r.value,
                    headers=r.headers or None,
                    timestamp_ms=r.timestamp,
                    partition=r.partition,
                )
                for r in records
            ]
            prod.flush(timeout=15)
            try:
                metadata = [f.get(timeout=15) for f in futures]
            except Errors.BrokerResponseError as exc:
                raise Refused(exc.errno, str(exc)) from exc
        return [Sent(md.partition, md.offset, md.timestamp) for md in metadata]

    @staticmethod
    def read(
        broker: LiveBroker, topic: str, partitions: int, count: int, *, seek: int | None = None
    ) -> list[Got]:
        with consumer(broker, auto_offset_reset="earliest") as cons:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            cons.assign(tps)
            cons.seek_to_beginning(*tps)
            if seek is not None:
                cons.seek(tps[0], seek)
            records = poll_records(cons, count)
        return [
            Got(r.partition, r.offset, r.key, r.value, r.headers, r.timestamp, r.timestamp_type)
            for r in records
        ]

    @staticmethod
    def offsets(broker: LiveBroker, topic: str, partition: int) -> tuple[int, int]:
        with consumer(broker) as cons:
            tp = TopicPartition(topic, partition)
            return cons.beginning_offsets([tp])[tp], cons.end_offsets([tp])[tp]

    @staticmethod
    def partitions(broker: LiveBroker, topic: str) -> list[int]:
        with admin_client(broker) as admin:
            [described] = admin.describe_topics([topic])
        return sorted(p["partition_index"] for p in described["partitions"])

    @staticmethod
    def topics(broker: LiveBroker) -> set[str]:
        with admin_client(broker) as admin:
            return set(admin.list_topics())

    @staticmethod
    def create_partitions(broker: LiveBroker, topic: str, count: int) -> int:
        with admin_client(broker) as admin:
            try:
                admin.create_partitions({topic: count})
            except Errors.BrokerResponseError as exc:
                return int(exc.errno)
        return 0

    @staticmethod
    def delete_topic(broker: LiveBroker, topic: str) -> int:
        with admin_client(broker) as admin:
            try:
                admin.delete_topics([topic])
            except Errors.BrokerResponseError as exc:
                return int(exc.errno)
        return 0

    @staticmethod
    def delete_records(
        broker: LiveBroker, topic: str, partition: int, before: int
    ) -> tuple[int, int | None]:
        tp = TopicPartition(topic, partition)
        with admin_client(broker) as admin:
            try:
                deleted = admin.delete_records({tp: before})
            except Errors.BrokerResponseError as exc:
                return int(exc.errno), None
        return 0, deleted[tp]["low_watermark"]

    @staticmethod
    def topic_configs(broker: LiveBroker, topic: str) -> dict[str, Config]:
        with admin_client(broker) as admin:
            configs = topic_configs(admin, topic)
        return {
            name: Config(entry["value"], CONFIG_SOURCES.index(entry["config_source"]))
            for name, entry in configs.items()
        }


# -- transactions -----------------------------------------------------------------------------
class KafkaPythonTxProducer:
    """kafka-python's transactional KafkaProducer as a ``compat.txn_scenarios.TxProducer``."""

    def __init__(self, broker: LiveBroker, tid: str, **configs: Any) -> None:
        self.producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap_servers, transactional_id=tid, **configs
        )
        self.producer.init_transactions()

    def begin(self) -> None:
        self.producer.begin_transaction()

    def send(self, topic: str, value: bytes) -> None:
        self.producer.send(topic, value=value)

    def flush(self) -> None:
        self.producer.flush()

    def commit(self) -> None:
        self.producer.commit_transaction()

    def abort(self) -> None:
        self.producer.abort_transaction()

    def commit_fails_fenced(self) -> None:
        with pytest.raises((Errors.ProducerFencedError, Errors.KafkaError)):
            self.producer.commit_transaction()

    def close(self) -> None:
        self.producer.close(timeout=1)


def read_all(broker: LiveBroker, topic: str, isolation: str) -> list[bytes]:
    """Values readable at ``isolation`` from offset 0 to the partition's end for that level."""
    with consumer(
        broker, isolation_level=isolation, enable_auto_commit=False, auto_offset_reset="earliest"
    ) as c:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        end = c.end_offsets([tp])[tp]  # the LSO for read_committed
        values: list[bytes] = []
        deadline = time.monotonic() + TXN_DEADLINE_S
        while c.position(tp) < end and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                values += [r.value for r in records]
        assert c.position(tp) >= end, "consumer never reached the end offset"
        return values


class KafkaPythonTxn:
    """kafka-python as a ``compat.txn_scenarios.TxnClient``."""

    create_topic = staticmethod(create_topic)

    @staticmethod
    def tx_producer(
        broker: LiveBroker, tid: str, *, fast_reconnect: bool = False
    ) -> KafkaPythonTxProducer:
        extra = {"reconnect_backoff_max_ms": 200} if fast_reconnect else {}
        return KafkaPythonTxProducer(broker, tid, **extra)

    @staticmethod
    def produce(broker: LiveBroker, topic: str, values: list[bytes]) -> None:
        with producer(broker) as prod:
            for value in values:
                prod.send(topic, value=value)
            prod.flush()

    @staticmethod
    def read_all(broker: LiveBroker, topic: str, isolation: str) -> list[bytes]:
        return read_all(broker, topic, isolation)

    @staticmethod
    def produce_idempotent(
        bootstrap: str, topic: str, values: list[bytes], after_send: Callable[[int], None]
    ) -> None:
        p = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=2,
            reconnect_backoff_max_ms=100,
            retries=2**31 - 1,
            delivery_timeout_ms=60000,
        )
        futures = []
        for i, value in enumerate(values):
            futures.append(p.send(topic, value=value))
            if i >= 500:
                futures[i - 500].get(timeout=TXN_DEADLINE_S)  # a few requests' worth in flight
            after_send(i)
        p.flush(timeout=TXN_DEADLINE_S * 2)
        for f in futures:
            f.get(timeout=1)
        p.close()

    @staticmethod
    def transform(
        broker: LiveBroker, src: str, dst: str, group: str, tid: str, count: int
    ) -> tuple[int, int]:
        consumer = KafkaConsumer(
            src,
            bootstrap_servers=broker.bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        tx = KafkaPythonTxProducer(broker, tid)
        try:
            seen = 0
            deadline = time.monotonic() + TXN_DEADLINE_S
            while seen < count and time.monotonic() < deadline:
                polled = consumer.poll(timeout_ms=500)
                if not polled:
                    continue
                tx.producer.begin_transaction()
                offsets = {}
                for tp, records in polled.items():
                    for r in records:
                        tx.producer.send(dst, value=b"x" + r.value)
                    offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
                    seen += len(records)
                tx.producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
                tx.producer.commit_transaction()
            return seen, consumer.committed(TopicPartition(src, 0))
        finally:
            consumer.close()
            tx.producer.close()


# -- consumer groups --------------------------------------------------------------------------
# Short heartbeats make a rebalance visible to members quickly; 6 s is Kafka's minimum
# session timeout (group.min.session.timeout.ms).
FAST_GROUP = {"heartbeat_interval_ms": 200, "session_timeout_ms": 6000}


def produce_per_partition(
    broker: LiveBroker, topic: str, partitions: int, per_partition: int, prefix: str = ""
) -> None:
    """Write ``per_partition`` records to every partition (values "<prefix>p<partition>-<i>")."""
    # Not idempotent: producing is only the setup here (the produce suite covers it).
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    try:
        for p in range(partitions):
            for i in range(per_partition):
                prod.send(topic, value=f"{prefix}p{p}-{i}".encode(), partition=p)
        prod.flush(timeout=15)
    finally:
        prod.close(timeout=10)


class Counting(ConsumerRebalanceListener):
    """Counts rebalance callbacks, so a test can tell that none happened."""

    def __init__(self) -> None:
        self.revoked = 0
        self.assigned = 0

    def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
        self.revoked += 1

    def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
        self.assigned += 1


class GroupMember(PolledMember):
    """One kafka-python group consumer polled by its own thread."""

    def __init__(self, broker: LiveBroker, topic: str, group: str, **configs: object) -> None:
        super().__init__()
        self.listener = Counting()
        self.consumer = KafkaConsumer(
            bootstrap_servers=broker.bootstrap_servers,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **{**FAST_GROUP, **configs},
        )
        self.consumer.subscribe([topic], listener=self.listener)

    def poll_once(self) -> None:
        for batch in self.consumer.poll(timeout_ms=100).values():
            self.values.extend(r.value for r in batch)
        self.assignment = frozenset(tp.partition for tp in self.consumer.assignment())

    def commit_now(self) -> None:
        self.consumer.commit()

    def close_consumer(self) -> None:
        self.consumer.close()


def group_committed(broker: LiveBroker, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets as the admin client reads them (OffsetFetch)."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        found = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {
        tp.partition: om.offset
        for tp, om in found.items()
        if tp.topic == topic and tp.partition < partitions
    }


class KafkaPythonGroups:
    """kafka-python, as the shared group scenarios use it."""

    create_topic = staticmethod(create_topic)
    produce = staticmethod(produce_per_partition)
    committed = staticmethod(group_committed)

    @staticmethod
    def member(broker: LiveBroker, topic: str, group: str) -> GroupMember:
        return GroupMember(broker, topic, group)
