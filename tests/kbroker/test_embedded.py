"""kbroker.Broker: the embeddable broker, used from plain threaded code and from a Trio program."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import trio
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import kbroker
from kbroker.config import ConfigError
from kbroker.wire.messages import MetadataRequest
from tests.kbroker.conftest import RawClient

DEADLINE_S = 20.0  # a failure bound for client round trips, not a speed check


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Produce values (acks=all) and fail the test on any delivery error."""
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    errors: list[object] = []
    for value in values:
        producer.produce(
            topic, value=value, on_delivery=lambda err, _m: errors.append(err) if err else None
        )
    assert producer.flush(DEADLINE_S) == 0
    assert errors == []


def consume_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """Read ``count`` values of partition 0 from the beginning, without a group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
    finally:
        consumer.close()
    return values


def partition_count(bootstrap: str, topic: str) -> int:
    """Number of partitions of ``topic`` per the broker's metadata."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    return len(admin.list_topics(topic, timeout=DEADLINE_S).topics[topic].partitions)


def test_context_manager_serves_real_clients_and_removes_its_temp_dir() -> None:
    with kbroker.Broker() as broker:
        host, port = broker.bootstrap_servers.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        data_dir = broker.data_dir
        assert data_dir is not None and data_dir.is_dir()
        produce(broker.bootstrap_servers, "embedded", [b"one", b"two"])
        assert consume_all(broker.bootstrap_servers, "embedded", 2) == [b"one", b"two"]
    assert not data_dir.exists(), "the default temporary data dir must be removed on exit"
    assert not broker.running


def test_given_data_dir_is_kept_with_clean_shutdown_markers_and_reused(tmp_path: Path) -> None:
    with kbroker.Broker(data_dir=tmp_path) as broker:
        produce(broker.bootstrap_servers, "kept", [b"v1"])
    markers = list(tmp_path.glob("kept-0/.kafka_cleanshutdown"))
    assert markers, f"no clean-shutdown marker after exit: {sorted(tmp_path.rglob('*'))}"
    with kbroker.Broker(data_dir=tmp_path) as again:
        produce(again.bootstrap_servers, "kept", [b"v2"])
        assert consume_all(again.bootstrap_servers, "kept", 2) == [b"v1", b"v2"]


def test_broker_config_dict_uses_kafka_names() -> None:
    with kbroker.Broker(config={"num.partitions": 3, "auto.create.topics.enable": True}) as b:
        produce(b.bootstrap_servers, "auto3", [b"x"])
        assert partition_count(b.bootstrap_servers, "auto3") == 3


def test_bad_config_raises_in_the_caller_and_leaves_no_temp_dir() -> None:
    broker = kbroker.Broker(config={"no.such.setting": "1"})
    with pytest.raises(ConfigError, match="no.such.setting"):
        broker.start()
    assert broker.data_dir is None and not broker.running


def test_port_in_use_raises_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError), kbroker.Broker(port=port):
            pass


def test_fixed_port_and_two_brokers_side_by_side() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with kbroker.Broker(port=free) as first, kbroker.Broker() as second:
        assert first.bootstrap_servers == f"127.0.0.1:{free}"
        assert first.bootstrap_servers != second.bootstrap_servers
        produce(first.bootstrap_servers, "only-first", [b"a"])
        produce(second.bootstrap_servers, "only-second", [b"b"])
        admin = AdminClient({"bootstrap.servers": second.bootstrap_servers, "log_level": 3})
        assert "only-first" not in admin.list_topics(timeout=DEADLINE_S).topics


def test_started_from_worker_threads() -> None:
    results: dict[str, list[bytes]] = {}

    def worker(name: str) -> None:
        with kbroker.Broker() as broker:
            produce(broker.bootstrap_servers, name, [name.encode()])
            results[name] = consume_all(broker.bootstrap_servers, name, 1)

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S * 2)
    assert results == {"t0": [b"t0"], "t1": [b"t1"]}


async def test_usable_from_inside_a_trio_program() -> None:
    # The broker runs its own trio.run on its own thread, so a Trio program (this test's
    # loop) can start it and talk to it with Trio sockets at the same time.
    with kbroker.Broker(config={"num.partitions": 2}) as broker:
        host, port = broker.address
        async with RawClient(await trio.open_tcp_stream(host, port)) as client:
            reply = await client.request(
                MetadataRequest(
                    topics=[MetadataRequest.MetadataRequestTopic(name="from-trio")],
                    allow_auto_topic_creation=True,
                )
            )
        assert [b.port for b in reply.brokers] == [port]
        assert reply.topics[0].name == "from-trio"
        assert len(reply.topics[0].partitions) == 2
    assert not broker.running


async def test_start_from_trio_worker_thread_keeps_the_loop_free() -> None:
    broker = kbroker.Broker()
    await trio.to_thread.run_sync(broker.start)
    try:
        host, port = broker.address
        async with RawClient(await trio.open_tcp_stream(host, port)) as client:
            reply = await client.request(MetadataRequest(topics=[]))
        assert reply.brokers[0].port == port
    finally:
        await trio.to_thread.run_sync(broker.stop)
    assert not broker.running
