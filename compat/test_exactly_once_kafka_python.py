"""Exactly once with kafka-python 3.x: idempotent and transactional KafkaProducer, read_committed.

The same scenarios as test_exactly_once_confluent_kafka.py, bounded the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from compat.livebroker import LiveBroker, private_broker, shared_broker
from compat.test_exactly_once_confluent_kafka import (
    SMALL_INTERNAL_TOPICS,
    LossyProxy,
    SamePortBroker,
    proxied_broker,  # noqa: F401 - a fixture shared with the confluent-kafka module
)

pytestmark = pytest.mark.compat

DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """A broker shared by the module's transaction scenarios."""
    with shared_broker(tmp_path_factory.mktemp("eos-kp"), overrides=SMALL_INTERNAL_TOPICS) as live:
        yield live


def create_topic(broker: LiveBroker, name: str) -> None:
    """Create a one-partition topic."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        admin.close()


def read_all(broker: LiveBroker, topic: str, isolation: str) -> list[bytes]:
    """Values readable at ``isolation`` from offset 0 to the partition's end for that level."""
    c = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        isolation_level=isolation,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        end = c.end_offsets([tp])[tp]  # the LSO for read_committed
        values: list[bytes] = []
        deadline = time.monotonic() + DEADLINE_S
        while c.position(tp) < end and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                values += [r.value for r in records]
        assert c.position(tp) >= end, "consumer never reached the end offset"
        return values
    finally:
        c.close()


def tx_producer(broker: LiveBroker, tid: str) -> KafkaProducer:
    """A transactional producer, initialised."""
    p = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, transactional_id=tid)
    p.init_transactions()
    return p


def test_commit_abort_commit_counts_per_isolation_level(
    broker: LiveBroker, topic_name: str
) -> None:
    create_topic(broker, topic_name)
    p = tx_producer(broker, f"tid-{topic_name}")
    try:
        for n, commit in enumerate((True, False, True)):
            p.begin_transaction()
            for i in range(5):
                p.send(topic_name, value=b"%d-%d" % (n, i))
            p.flush()
            if commit:
                p.commit_transaction()
            else:
                p.abort_transaction()
    finally:
        p.close()
    committed = read_all(broker, topic_name, "read_committed")
    assert committed == [b"0-%d" % i for i in range(5)] + [b"2-%d" % i for i in range(5)]
    assert len(read_all(broker, topic_name, "read_uncommitted")) == 15


def test_consume_transform_produce_with_offsets(broker: LiveBroker, topic_name: str) -> None:
    src, dst, group = topic_name + ".in", topic_name + ".out", "g-" + topic_name
    create_topic(broker, src)
    create_topic(broker, dst)
    plain = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for i in range(10):
        plain.send(src, value=b"%d" % i)
    plain.flush()
    plain.close()
    consumer = KafkaConsumer(
        src,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = tx_producer(broker, f"ctp-{topic_name}")
    try:
        seen = 0
        deadline = time.monotonic() + DEADLINE_S
        while seen < 10 and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=500)
            if not polled:
                continue
            producer.begin_transaction()
            offsets = {}
            for tp, records in polled.items():
                for r in records:
                    producer.send(dst, value=b"x" + r.value)
                offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
                seen += len(records)
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
        assert seen == 10
        assert consumer.committed(TopicPartition(src, 0)) == 10
    finally:
        consumer.close()
        producer.close()
    assert sorted(read_all(broker, dst, "read_committed")) == sorted(b"x%d" % i for i in range(10))


def test_zombie_is_fenced_by_new_instance(broker: LiveBroker, topic_name: str) -> None:
    create_topic(broker, topic_name)
    tid = f"zombie-{topic_name}"
    old = tx_producer(broker, tid)
    old.begin_transaction()
    old.send(topic_name, value=b"zombie")
    old.flush()
    new = tx_producer(broker, tid)  # fences the old instance, aborting its transaction
    new.begin_transaction()
    new.send(topic_name, value=b"live")
    new.commit_transaction()
    new.close()
    with pytest.raises((ProducerFencedError, KafkaError)):
        old.commit_transaction()
    old.close(timeout=1)
    assert read_all(broker, topic_name, "read_committed") == [b"live"]


def test_idempotent_producer_survives_kill_9(tmp_path: Path, topic_name: str) -> None:
    with private_broker(
        tmp_path / "data", overrides=SMALL_INTERNAL_TOPICS, kind=SamePortBroker
    ) as live:
        create_topic(live, topic_name)
        # kafka-python 3.x: idempotence is on by default.
        p = KafkaProducer(
            bootstrap_servers=live.bootstrap_servers,
            linger_ms=5,
            retries=2**31 - 1,
            delivery_timeout_ms=60000,
            reconnect_backoff_max_ms=200,
        )
        total = 2000
        futures = []
        for i in range(total):
            futures.append(p.send(topic_name, value=b"%06d" % i))
            if i == total // 2:
                live.kill()  # kill -9 mid-stream, unacknowledged batches in flight
                live.start()  # same port: the producer reconnects and retries
        p.flush(timeout=DEADLINE_S * 2)
        for f in futures:
            f.get(timeout=1)  # every send succeeded
        p.close()
        values = read_all(live, topic_name, "read_uncommitted")
        assert sorted(values) == [b"%06d" % i for i in range(total)]  # each exactly once
        assert values == sorted(values)  # and in order


def test_transaction_tooling_lists_describes_and_aborts(
    broker: LiveBroker, topic_name: str
) -> None:
    # What kafka-transactions.sh does: list, describe, describe-producers, abort.
    from kafka.admin import AbortTransactionSpec

    create_topic(broker, topic_name)
    tid = f"tool-{topic_name}"
    p = tx_producer(broker, tid)
    p.begin_transaction()
    p.send(topic_name, value=b"open")
    p.flush()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        by_broker = admin.list_transactions(state_filters=["Ongoing"])
        assert tid in {t.transactional_id for ts in by_broker.values() for t in ts}
        desc = admin.describe_transactions([tid])[tid]
        assert str(desc.state).lower().endswith("ongoing")
        assert desc.topic_partitions == {TopicPartition(topic_name, 0)}
        tp = TopicPartition(topic_name, 0)
        (producer,) = admin.describe_producers([tp])[tp].active_producers
        assert producer.producer_id == desc.producer_id
        assert producer.current_transaction_start_offset == 0
        # An operator aborts the open transaction on the partition (WriteTxnMarkers).
        admin.abort_transaction(AbortTransactionSpec(tp, desc.producer_id, desc.producer_epoch))
    finally:
        admin.close()
        p.close(timeout=1)
    assert read_all(broker, topic_name, "read_committed") == []
    assert read_all(broker, topic_name, "read_uncommitted") == [b"open"]


def test_transaction_commits_across_kill_9(tmp_path: Path, topic_name: str) -> None:
    with private_broker(
        tmp_path / "data", overrides=SMALL_INTERNAL_TOPICS, kind=SamePortBroker
    ) as live:
        create_topic(live, topic_name)
        p = KafkaProducer(
            bootstrap_servers=live.bootstrap_servers,
            transactional_id=f"crash-{topic_name}",
            reconnect_backoff_max_ms=200,
        )
        p.init_transactions()
        p.begin_transaction()
        for i in range(100):
            p.send(topic_name, value=b"%03d" % i)
        p.flush()
        live.kill()  # kill -9 with the transaction open
        live.start()  # the coordinator reloads it from __transaction_state
        p.commit_transaction()
        p.close()
        assert read_all(live, topic_name, "read_committed") == [b"%03d" % i for i in range(100)]


def test_idempotent_retries_of_lost_responses_are_not_written_twice(
    proxied_broker: tuple[LiveBroker, LossyProxy], topic_name: str
) -> None:  # noqa: F811
    live, proxy = proxied_broker
    create_topic(live, topic_name)
    p = KafkaProducer(
        bootstrap_servers=f"127.0.0.1:{proxy.port}",
        linger_ms=2,
        reconnect_backoff_max_ms=100,
        retries=2**31 - 1,
        delivery_timeout_ms=60000,
    )
    total, cuts = 20000, 0
    futures = []
    for i in range(total):
        futures.append(p.send(topic_name, value=b"%06d" % i))
        if i >= 500:
            futures[i - 500].get(timeout=DEADLINE_S)  # keep a few requests' worth in flight
        if i % 5000 == 2500:
            proxy.lose_responses()  # written batches whose acks never arrive: retried
            cuts += 1
    p.flush(timeout=DEADLINE_S * 2)
    for f in futures:
        f.get(timeout=1)
    p.close()
    assert cuts == 4
    values = read_all(live, topic_name, "read_uncommitted")
    assert len(values) == total and values == [b"%06d" % i for i in range(total)]
