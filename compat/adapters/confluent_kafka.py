"""confluent-kafka (librdkafka), default settings, as the shared record, exactly-once and group
scenarios drive it."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from compat.group_scenarios import DEADLINE_S, PolledMember
from compat.livebroker import LiveBroker
from compat.record_scenarios import PLAIN, Config, Got, Out, Producing, Refused, Sent

POLL_DEADLINE_S = 15.0
TIMEOUT_S = 15.0


def admin_client(broker: LiveBroker) -> AdminClient:
    """An admin client with default settings."""
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


class Delivery:
    """Collects delivery reports in produce order."""

    def __init__(self) -> None:
        self.reports: list[tuple[KafkaError | None, Message]] = []

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        self.reports.append((err, msg))

    def errors(self) -> list[KafkaError]:
        """The delivery errors, in produce order."""
        return [err for err, _ in self.reports if err is not None]

    def ok(self) -> list[Message]:
        """The delivered messages; fails on any delivery error."""
        errors = self.errors()
        assert not errors, f"delivery failed: {errors[:3]}"
        return [msg for _, msg in self.reports]


@contextmanager
def producer(broker: LiveBroker, **configs: object) -> Iterator[Producer]:
    """A producer with default settings plus the scenario's own; flushed on exit."""
    prod = Producer({"bootstrap.servers": broker.bootstrap_servers, **configs})
    yield prod
    remaining = prod.flush(TIMEOUT_S)
    assert remaining == 0, f"{remaining} messages still undelivered after {TIMEOUT_S:.0f} s"


@contextmanager
def consumer(broker: LiveBroker, **configs: object) -> Iterator[Consumer]:
    """An assign-only consumer: a group.id is mandatory in librdkafka, but nothing is committed."""
    cons = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "kbroker-compat-assign-only",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **configs,
        }
    )
    try:
        yield cons
    finally:
        cons.close()


def create_topic(
    broker: LiveBroker, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    """Create a topic through the admin API and wait for the result."""
    # Keep the client referenced until the result arrives: a collected AdminClient purges
    # its queue and the future never completes.
    admin = admin_client(broker)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=configs or {})],
        request_timeout=TIMEOUT_S,
    )
    futures[name].result(TIMEOUT_S)


def kafka_error(excinfo: pytest.ExceptionInfo[KafkaException]) -> KafkaError:
    """The KafkaError inside a KafkaException."""
    return excinfo.value.args[0]


def poll_messages(
    cons: Consumer, count: int, *, deadline_s: float = POLL_DEADLINE_S
) -> list[Message]:
    """Consume until `count` messages arrived or the deadline passed; errors fail the test."""
    messages: list[Message] = []
    deadline = time.monotonic() + deadline_s
    while len(messages) < count and time.monotonic() < deadline:
        for msg in cons.consume(num_messages=count - len(messages), timeout=0.2):
            if msg.error() is not None and msg.error().code() == KafkaError._PARTITION_EOF:
                continue  # only with enable.partition.eof: an event, not a record
            assert msg.error() is None, f"consumer error: {msg.error()}"
            messages.append(msg)
    assert len(messages) >= count, (
        f"consumer received {len(messages)} of {count} messages within {deadline_s:.0f} s"
    )
    return messages


# librdkafka numbers timestamp types from 1 (0 is "not available"); Kafka's batch attribute
# is 0 for CreateTime and 1 for LogAppendTime. "Not available" becomes -1, which no scenario
# accepts.
_TIMESTAMP_TYPE = {TIMESTAMP_CREATE_TIME: 0, TIMESTAMP_LOG_APPEND_TIME: 1}


def timestamp_type(msg: Message) -> int:
    """Kafka's timestamp type of a delivered or consumed message."""
    return _TIMESTAMP_TYPE.get(msg.timestamp()[0], -1)


def expected_partition(key: bytes, partitions: int) -> int:
    """librdkafka's default partitioner (consistent_random): CRC-32 of the key."""
    return zlib.crc32(key) % partitions


def consume_all(broker: LiveBroker, topic: str, partitions: int, count: int) -> list[Message]:
    """Read `count` messages from the beginning of every partition of `topic`."""
    with consumer(broker) as cons:
        cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        return poll_messages(cons, count)


def produce_values(
    broker: LiveBroker, topic: str, values: list[bytes], timestamps: list[int] | None = None
) -> list[Message]:
    """Produce values with acks=all and return the delivery reports."""
    delivery = Delivery()
    with producer(broker, acks="all") as prod:
        for i, value in enumerate(values):
            extra = {} if timestamps is None else {"timestamp": timestamps[i]}
            prod.produce(topic, value=value, on_delivery=delivery, **extra)
    return delivery.ok()


def topic_configs(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    """Every config of a topic as DescribeConfigs reports it."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(TIMEOUT_S)


def _error_code(wait: Callable[[], object]) -> int:
    """0 when ``wait`` (an admin future's result) succeeds, else Kafka's error code."""
    try:
        wait()
    except KafkaException as exc:
        return int(exc.args[0].code())
    return 0


class ConfluentKafkaClient:
    """confluent-kafka as a ``compat.record_scenarios.RecordClient``."""

    partition_known_without_acks = True  # the partitioner runs before the send
    reports_low_watermark = True

    create_topic = staticmethod(create_topic)
    expected_partition = staticmethod(expected_partition)

    @staticmethod
    def produce(
        broker: LiveBroker, topic: str, records: list[Out], how: Producing = PLAIN
    ) -> list[Sent]:
        configs = how.settings(dotted=True)
        # Delivery reports come per partition in order, but not in produce order across
        # partitions: each record's report goes to its own slot.
        reports: list[tuple[KafkaError | None, Message] | None] = [None] * len(records)

        def report_to(slot: int) -> Callable[[KafkaError | None, Message], None]:
            def on_delivery(err: KafkaError | None, msg: Message) -> None:
                reports[slot] = (err, msg)

            return on_delivery

        with producer(broker, **configs) as prod:
            for slot, r in enumerate(records):
                extra: dict[str, Any] = {}
                if r.partition is not None:
                    extra["partition"] = r.partition
                if r.timestamp is not None:
                    extra["timestamp"] = r.timestamp
                if r.headers:
                    extra["headers"] = r.headers
                prod.produce(topic, key=r.key, value=r.value, on_delivery=report_to(slot), **extra)
        sent = []
        for report in reports:
            assert report is not None, "a record got no delivery report"
            err, m = report
            if err is not None:
                raise Refused(err.code(), str(err))
            sent.append(Sent(m.partition(), m.offset(), m.timestamp()[1], timestamp_type(m)))
        return sent

    @staticmethod
    def read(
        broker: LiveBroker, topic: str, partitions: int, count: int, *, seek: int | None = None
    ) -> list[Got]:
        starts = [OFFSET_BEGINNING] * partitions
        if seek is not None:
            starts[0] = seek
        with consumer(broker) as cons:  # auto.offset.reset=earliest
            cons.assign([TopicPartition(topic, p, starts[p]) for p in range(partitions)])
            messages = poll_messages(cons, count)
        return [
            Got(
                m.partition(),
                m.offset(),
                m.key(),
                m.value(),
                m.headers() or [],
                m.timestamp()[1],
                timestamp_type(m),
            )
            for m in messages
        ]

    @staticmethod
    def offsets(broker: LiveBroker, topic: str, partition: int) -> tuple[int, int]:
        with consumer(broker) as cons:
            low, high = cons.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=TIMEOUT_S
            )
        return low, high

    @staticmethod
    def partitions(broker: LiveBroker, topic: str) -> list[int]:
        metadata = admin_client(broker).list_topics(topic, timeout=TIMEOUT_S)
        return sorted(metadata.topics[topic].partitions)

    @staticmethod
    def topics(broker: LiveBroker) -> set[str]:
        return set(admin_client(broker).list_topics(timeout=TIMEOUT_S).topics)

    @staticmethod
    def create_partitions(broker: LiveBroker, topic: str, count: int) -> int:
        admin = admin_client(broker)
        futures = admin.create_partitions([NewPartitions(topic, count)], request_timeout=TIMEOUT_S)
        return _error_code(lambda: futures[topic].result(TIMEOUT_S))

    @staticmethod
    def delete_topic(broker: LiveBroker, topic: str) -> int:
        admin = admin_client(broker)
        futures = admin.delete_topics([topic], request_timeout=TIMEOUT_S)
        return _error_code(lambda: futures[topic].result(TIMEOUT_S))

    @staticmethod
    def delete_records(
        broker: LiveBroker, topic: str, partition: int, before: int
    ) -> tuple[int, int | None]:
        admin = admin_client(broker)
        [future] = admin.delete_records(
            [TopicPartition(topic, partition, before)], request_timeout=TIMEOUT_S
        ).values()
        try:
            return 0, future.result(TIMEOUT_S).low_watermark
        except KafkaException as exc:
            return int(exc.args[0].code()), None

    @staticmethod
    def topic_configs(broker: LiveBroker, topic: str) -> dict[str, Config]:
        return {
            name: Config(entry.value, entry.source, entry.is_default)
            for name, entry in topic_configs(admin_client(broker), topic).items()
        }


# -- transactions -----------------------------------------------------------------------------
TXN_DEADLINE_S = 20.0


def tx_producer(broker: LiveBroker, tid: str, **extra: object) -> Producer:
    """A transactional producer, initialised."""
    p = Producer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "transactional.id": tid,
            "transaction.timeout.ms": 30000,
            **extra,
        }
    )
    p.init_transactions(TXN_DEADLINE_S)
    return p


def read_all(broker: LiveBroker, topic: str, isolation: str, *, partitions: int = 1) -> list[bytes]:
    """Values readable at ``isolation`` from the start of every partition up to its end."""
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"r-{time.time()}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values: list[bytes] = []
        at_eof: set[int] = set()
        deadline = time.monotonic() + TXN_DEADLINE_S
        while len(at_eof) < partitions and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_eof.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            values.append(msg.value())
        assert len(at_eof) == partitions, "consumer never reached the end of the partitions"
        return values
    finally:
        c.close()


class ConfluentKafkaTxProducer:
    """A transactional librdkafka Producer as a ``compat.txn_scenarios.TxProducer``."""

    def __init__(self, broker: LiveBroker, tid: str, **extra: object) -> None:
        self.producer = tx_producer(broker, tid, **extra)

    def begin(self) -> None:
        self.producer.begin_transaction()

    def send(self, topic: str, value: bytes) -> None:
        self.producer.produce(topic, value=value)

    def flush(self) -> None:
        assert self.producer.flush(TXN_DEADLINE_S) == 0

    def commit(self) -> None:
        self.producer.commit_transaction(TXN_DEADLINE_S)

    def abort(self) -> None:
        self.producer.abort_transaction(TXN_DEADLINE_S)

    def commit_fails_fenced(self) -> None:
        with pytest.raises(KafkaException) as info:
            self.producer.commit_transaction(TXN_DEADLINE_S)
        assert info.value.args[0].fatal() or info.value.args[0].code() in (
            KafkaError._FENCED,
            KafkaError.PRODUCER_FENCED,
            KafkaError.INVALID_PRODUCER_EPOCH,
        )

    def close(self) -> None:
        """Nothing to do: librdkafka's producer is destroyed when collected."""


class ConfluentKafkaTxn:
    """confluent-kafka as a ``compat.txn_scenarios.TxnClient``."""

    create_topic = staticmethod(create_topic)

    @staticmethod
    def tx_producer(
        broker: LiveBroker, tid: str, *, fast_reconnect: bool = False
    ) -> ConfluentKafkaTxProducer:
        extra = {"reconnect.backoff.max.ms": 200} if fast_reconnect else {}
        return ConfluentKafkaTxProducer(broker, tid, **extra)

    @staticmethod
    def produce(broker: LiveBroker, topic: str, values: list[bytes]) -> None:
        plain = Producer({"bootstrap.servers": broker.bootstrap_servers})
        for value in values:
            plain.produce(topic, value=value)
        assert plain.flush(TXN_DEADLINE_S) == 0

    @staticmethod
    def read_all(broker: LiveBroker, topic: str, isolation: str) -> list[bytes]:
        return read_all(broker, topic, isolation)

    @staticmethod
    def produce_idempotent(
        bootstrap: str, topic: str, values: list[bytes], after_send: Callable[[int], None]
    ) -> None:
        p = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "linger.ms": 2,
                "reconnect.backoff.max.ms": 100,
                # A record not acknowledged in 30 s fails (librdkafka's default is 300 s), so
                # a broker that does not recover fails the scenario instead of stalling it.
                "message.timeout.ms": 30000,
            }
        )
        errors: list[object] = []
        for i, value in enumerate(values):
            p.produce(
                topic, value=value, on_delivery=lambda err, _m: err is None or errors.append(err)
            )
            p.poll(0)
            deadline = time.monotonic() + TXN_DEADLINE_S
            while len(p) > 500:  # keep a few requests' worth in flight
                assert errors == [], errors[:3]
                assert time.monotonic() < deadline, f"{len(p)} records unacknowledged"
                p.poll(0.002)
            after_send(i)
        assert p.flush(TXN_DEADLINE_S * 2) == 0
        assert errors == []

    @staticmethod
    def transform(
        broker: LiveBroker, src: str, dst: str, group: str, tid: str, count: int
    ) -> tuple[int, int]:
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        producer = tx_producer(broker, tid)
        try:
            consumer.subscribe([src])
            seen = 0
            deadline = time.monotonic() + TXN_DEADLINE_S
            while seen < count and time.monotonic() < deadline:
                batch = consumer.consume(10, 0.5)
                batch = [m for m in batch if not m.error()]
                if not batch:
                    continue
                producer.begin_transaction()
                for m in batch:
                    producer.produce(dst, value=b"x" + m.value())
                producer.send_offsets_to_transaction(
                    consumer.position(consumer.assignment()),
                    consumer.consumer_group_metadata(),
                    TXN_DEADLINE_S,
                )
                producer.commit_transaction(TXN_DEADLINE_S)
                seen += len(batch)
            [committed] = consumer.committed([TopicPartition(src, 0)], TXN_DEADLINE_S)
            return seen, committed.offset
        finally:
            consumer.close()


# -- consumer groups --------------------------------------------------------------------------
FAST_GROUP = {"heartbeat.interval.ms": 200, "session.timeout.ms": 6000}


def produce_per_partition(
    broker: LiveBroker, topic: str, partitions: int, per_partition: int, prefix: str = ""
) -> None:
    """Write ``per_partition`` records to every partition (values "<prefix>p<partition>-<i>")."""
    prod = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for p in range(partitions):
        for i in range(per_partition):
            prod.produce(topic, value=f"{prefix}p{p}-{i}".encode(), partition=p)
    assert prod.flush(DEADLINE_S) == 0, "records left unacknowledged"


class CkMember(PolledMember):
    """One confluent-kafka group consumer polled by its own thread."""

    def __init__(self, broker: LiveBroker, topic: str, group: str, **configs: object) -> None:
        super().__init__()
        conf = {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FAST_GROUP,
        }
        conf.update({k.replace("_", "."): v for k, v in configs.items()})
        if conf.get("group.protocol") == "consumer":
            # KIP-848 moves session and heartbeat timing to the broker; librdkafka refuses
            # the client-side settings with this protocol.
            for name in FAST_GROUP:
                conf.pop(name)
        self.consumer = Consumer(conf)
        self.revoked: list[set[int]] = []
        self.assigned: list[set[int]] = []
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.append({tp.partition for tp in partitions})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.revoked.append({tp.partition for tp in partitions})

    def poll_once(self) -> None:
        msg = self.consumer.poll(0.1)
        if msg is not None and msg.error() is None:
            self.values.append(msg.value())
        self.assignment = frozenset(tp.partition for tp in self.consumer.assignment())

    def commit_now(self) -> None:
        self.consumer.commit(asynchronous=False)

    def close_consumer(self) -> None:
        self.consumer.close()


def group_committed(broker: LiveBroker, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets as a consumer of the group reads them (OffsetFetch)."""
    cons = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    try:
        found = cons.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=DEADLINE_S
        )
    finally:
        cons.close()
    return {tp.partition: tp.offset for tp in found}


class ConfluentGroups:
    """confluent-kafka, as the shared group scenarios use it."""

    create_topic = staticmethod(create_topic)
    produce = staticmethod(produce_per_partition)
    committed = staticmethod(group_committed)

    @staticmethod
    def member(broker: LiveBroker, topic: str, group: str) -> CkMember:
        return CkMember(broker, topic, group)
