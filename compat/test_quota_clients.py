"""Client quotas as real clients meet them: a confluent-kafka producer and a kafka-python
consumer over their byte-rate quota see Kafka's throttle time (and slow down)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from compat.livebroker import LiveBroker, shared_broker
from kbroker.cluster_runner import request
from kbroker.wire.messages import AlterClientQuotasRequest

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")

from confluent_kafka import Producer  # noqa: E402
from kafka import KafkaConsumer  # noqa: E402


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    with shared_broker(tmp_path_factory.mktemp("quota")) as live:
        yield live


def _set_quota(broker: LiveBroker, client_id: str, key: str, value: float) -> None:
    R = AlterClientQuotasRequest
    body = R(
        entries=[
            R.EntryData(
                entity=[R.EntityData(entity_type="client-id", entity_name=client_id)],
                ops=[R.OpData(key=key, value=value, remove=False)],
            )
        ],
        validate_only=False,
    )
    resp = request(broker.host, broker.port, body, 1, timeout=30)
    assert resp.entries[0].error_code == 0


def test_confluent_producer_is_throttled(broker: LiveBroker) -> None:
    client_id, topic = f"slow-{uuid.uuid4().hex[:6]}", f"q{uuid.uuid4().hex[:8]}"
    _set_quota(broker, client_id, "producer_byte_rate", 20_000)
    throttles: list[int] = []

    def on_stats(text: str) -> None:
        for b in json.loads(text).get("brokers", {}).values():
            throttles.append(int(b.get("throttle", {}).get("max", 0)))

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "client.id": client_id,
            "statistics.interval.ms": 200,
            "stats_cb": on_stats,
            "linger.ms": 5,
        }
    )
    # 230 kB in one go at 20 kB/s, measured over 10 s windows: accepted (Kafka throttles
    # after the fact), with a throttle time of about (23 - 20) / 20 * 10 s = 1.5 s.
    for _ in range(23):
        producer.produce(topic, b"x" * 10_000)
    assert producer.flush(30) == 0
    deadline = time.monotonic() + 5
    while not any(throttles) and time.monotonic() < deadline:
        producer.poll(0.2)
    assert 1000 <= max(throttles) <= 2000
    # The next record waits for the throttle time (the broker mutes the connection and
    # librdkafka holds back by itself, KIP-219).
    start = time.monotonic()
    producer.produce(topic, b"z")
    assert producer.flush(30) == 0
    assert time.monotonic() - start > 0.5


def _throttle_max(consumer: Any) -> float:
    return max(
        (
            float(value)
            for group in consumer.metrics().values()
            for name, value in group.items()
            if name == "throttle-time-max" and value is not None
        ),
        default=0.0,
    )


def test_kafka_python_consumer_is_throttled(broker: LiveBroker) -> None:
    client_id, topic = f"slowc-{uuid.uuid4().hex[:6]}", f"q{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for _ in range(50):  # one batch each: a batch is fetched whole (KIP-74)
        producer.produce(topic, b"y" * 10_000)
        assert producer.flush(30) == 0
    del producer
    # 500 kB at 20 kB/s: past the first ~200 kB (10 s of quota) fetches are throttled.
    _set_quota(broker, client_id, "consumer_byte_rate", 20_000)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        client_id=client_id,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=50_000,
        fetch_max_bytes=50_000,
    )
    try:
        got = 0
        deadline = time.monotonic() + 30
        while _throttle_max(consumer) == 0 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got += len(records)
        assert _throttle_max(consumer) > 0
        # Held back, not failed: records keep coming, slower than without a quota.
        while got == 0 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got += len(records)
        assert 0 < got < 50
    finally:
        consumer.close()
