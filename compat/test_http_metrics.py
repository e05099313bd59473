"""/metrics, /healthz and /readyz of a live kbroker after a known kafka-python workload.

The figures are checked against what the clients did: the records produced, the bytes
the broker stored for them, the offsets a consumer group committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from compat.adapters.kafka_python import consumer, create_topic, producer
from compat.http_broker import base_url, get, http_broker, scrape, total, value
from compat.livebroker import LiveBroker

pytestmark = pytest.mark.compat

PARTITIONS = 2
PER_PARTITION = 40


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveBroker, str]]:
    broker = http_broker(Path(tmp_path_factory.mktemp("kbroker-http")))
    broker.start()
    try:
        yield broker, base_url(broker)
    finally:
        broker.stop()


def _produce(broker: LiveBroker, topic: str) -> list[tuple[bytes, bytes]]:
    create_topic(broker, topic, PARTITIONS)
    sent = []
    with producer(broker, linger_ms=5) as prod:
        for p in range(PARTITIONS):
            for i in range(PER_PARTITION):
                key, val = f"k{i}".encode(), f"value {p}-{i} ".encode() * (1 + i % 5)
                prod.send(topic, key=key, value=val, partition=p)
                sent.append((key, val))
        prod.flush(timeout=15)
    return sent


def test_health_and_readiness(live: tuple[LiveBroker, str]) -> None:
    _, base = live
    assert get(f"{base}/healthz") == (200, "ok\n")
    assert get(f"{base}/readyz") == (200, "ready\n")


def test_messages_and_bytes_in_match_what_was_produced(
    live: tuple[LiveBroker, str], topic_name: str
) -> None:
    broker, base = live
    sent = _produce(broker, topic_name)
    samples = scrape(base)
    assert value(
        samples, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic_name
    ) == len(sent)
    # Uncompressed v2 batches are stored as sent: the bytes in are the log's bytes.
    stored = total(samples, "kafka_log_log_size", topic=topic_name)
    assert stored > sum(len(k) + len(v) for k, v in sent)
    assert (
        value(samples, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic_name) == stored
    )
    for p in range(PARTITIONS):
        assert (
            value(samples, "kafka_log_log_logendoffset", topic=topic_name, partition=str(p))
            == PER_PARTITION
        )
    assert (
        value(
            samples, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic=topic_name
        )
        == 0
    )
    # RequestMetrics: every Produce was timed, and the histogram holds them all.
    produces = total(samples, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert produces >= 1
    assert (
        value(samples, "kafka_network_requestmetrics_totaltimems_count", request="Produce")
        == produces
    )
    assert (
        value(
            samples, "kafka_network_requestmetrics_totaltimems_bucket", request="Produce", le="+Inf"
        )
        == produces
    )


def test_lag_matches_committed_offsets_and_bytes_out_count_fetches(
    live: tuple[LiveBroker, str], topic_name: str
) -> None:
    broker, base = live
    _produce(broker, topic_name)
    group = f"lag-{topic_name}"
    with consumer(
        broker, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    ) as cons:
        parts = [TopicPartition(topic_name, p) for p in range(PARTITIONS)]
        cons.assign(parts)
        seen = 0
        while seen < PARTITIONS * PER_PARTITION:
            batch = cons.poll(timeout_ms=5000)
            assert batch, "no records fetched within 5 s"
            seen += sum(len(records) for records in batch.values())
        committed = {parts[0]: 13, parts[1]: 31}
        cons.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in committed.items()})
        samples = scrape(base)
        assert (
            value(
                samples, "kafka_server_socket_server_metrics_connection_count", listener="PLAINTEXT"
            )
            >= 1
        )  # type: ignore[operator]
    for tp, offset in committed.items():
        labels = {"group": group, "topic": topic_name, "partition": str(tp.partition)}
        assert value(samples, "kafka_consumergroup_current_offset", **labels) == offset
        assert value(samples, "kafka_consumergroup_lag", **labels) == PER_PARTITION - offset
    assert value(samples, "kafka_consumergroup_lag_sum", group=group) == sum(
        PER_PARTITION - o for o in committed.values()
    )
    # Everything stored was fetched at least once (fetches may repeat a batch).
    stored = total(samples, "kafka_log_log_size", topic=topic_name)
    out = value(samples, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic_name)
    assert out is not None and out >= stored
    assert (
        total(samples, "kafka_network_requestmetrics_requests_total", request="FetchConsumer") >= 1
    )
