"""Exactly once with confluent-kafka (librdkafka): transactions, read_committed, fencing, kill -9.

Every scenario is bounded: consumers read until they reach a known end offset
or a deadline, and the broker runs with small internal topics so it starts fast.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat.livebroker import LiveBroker, private_broker, shared_broker

pytestmark = pytest.mark.compat

DEADLINE_S = 20.0
SMALL_INTERNAL_TOPICS = {
    "transaction.state.log.num.partitions": "3",
    "offsets.topic.num.partitions": "3",
}


class SamePortBroker(LiveBroker):
    """A LiveBroker that comes back on the port it first bound (clients keep their bootstrap)."""

    def command(self) -> list[str]:
        """The start command, pinned to the first port after the first start."""
        cmd = super().command()
        if self.port:
            cmd[cmd.index("--listen") + 1] = f"127.0.0.1:{self.port}"
        return cmd


class LossyProxy:
    """A TCP proxy in front of the broker that can lose responses (the broker advertises it).

    ``lose_responses()`` swallows what the broker answers for a moment while the
    client's requests still reach it, then cuts every connection: those batches
    are written but never acknowledged, so the client must retry them.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target: tuple[str, int] = ("127.0.0.1", 0)
        self._swallow = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, responses: bool) -> None:
        try:
            while data := src.recv(65536):
                if not (responses and self._swallow.is_set()):
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def lose_responses(self, window_s: float = 0.05) -> None:
        """Drop the broker's answers for window_s, then reset every connection."""
        self._swallow.set()
        time.sleep(window_s)
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._swallow.clear()

    def close(self) -> None:
        """Stop accepting and drop every connection."""
        self.listener.close()
        self.lose_responses(0)


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[LiveBroker, LossyProxy]]:
    """A broker reachable only through a LossyProxy (it advertises the proxy's port)."""
    proxy = LossyProxy()
    with socket.create_server(("127.0.0.1", 0)) as probe:
        broker_port = probe.getsockname()[1]
    live = SamePortBroker(
        tmp_path / "proxied",
        overrides={
            **SMALL_INTERNAL_TOPICS,
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}",
        },
    )
    live.port = broker_port  # its ready line names the advertised (proxy) port instead
    proxy.target = ("127.0.0.1", broker_port)
    live.start()
    try:
        yield live, proxy
    finally:
        proxy.close()
        live.kill()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """A broker shared by the module's transaction scenarios."""
    with shared_broker(tmp_path_factory.mktemp("eos-ck"), overrides=SMALL_INTERNAL_TOPICS) as live:
        yield live


def create_topic(broker: LiveBroker, name: str, partitions: int = 1) -> None:
    """Create a topic and wait for it."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(DEADLINE_S)


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
        deadline = time.monotonic() + DEADLINE_S
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
    p.init_transactions(DEADLINE_S)
    return p


def test_commit_abort_commit_counts_per_isolation_level(
    broker: LiveBroker, topic_name: str
) -> None:
    create_topic(broker, topic_name)
    p = tx_producer(broker, f"tid-{topic_name}")
    for n, commit in enumerate((True, False, True)):
        p.begin_transaction()
        for i in range(5):
            p.produce(topic_name, value=b"%d-%d" % (n, i))
        # abort_transaction purges unsent messages: flush so the aborted ones reach the log.
        assert p.flush(DEADLINE_S) == 0
        if commit:
            p.commit_transaction(DEADLINE_S)
        else:
            p.abort_transaction(DEADLINE_S)
    committed = read_all(broker, topic_name, "read_committed")
    assert committed == [b"0-%d" % i for i in range(5)] + [b"2-%d" % i for i in range(5)]
    assert len(read_all(broker, topic_name, "read_uncommitted")) == 15


def test_consume_transform_produce_with_offsets(broker: LiveBroker, topic_name: str) -> None:
    src, dst, group = topic_name + ".in", topic_name + ".out", "g-" + topic_name
    create_topic(broker, src)
    create_topic(broker, dst)
    plain = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in range(10):
        plain.produce(src, value=b"%d" % i)
    assert plain.flush(DEADLINE_S) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    producer = tx_producer(broker, f"ctp-{topic_name}")
    try:
        consumer.subscribe([src])
        seen = 0
        deadline = time.monotonic() + DEADLINE_S
        while seen < 10 and time.monotonic() < deadline:
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
                DEADLINE_S,
            )
            producer.commit_transaction(DEADLINE_S)
            seen += len(batch)
        assert seen == 10
        committed = consumer.committed([TopicPartition(src, 0)], DEADLINE_S)
        assert committed[0].offset == 10
    finally:
        consumer.close()
    assert sorted(read_all(broker, dst, "read_committed")) == sorted(b"x%d" % i for i in range(10))


def test_zombie_is_fenced_by_new_instance(broker: LiveBroker, topic_name: str) -> None:
    create_topic(broker, topic_name)
    tid = f"zombie-{topic_name}"
    old = tx_producer(broker, tid)
    old.begin_transaction()
    old.produce(topic_name, value=b"zombie")
    old.flush(DEADLINE_S)
    new = tx_producer(broker, tid)  # fences the old instance, aborting its transaction
    new.begin_transaction()
    new.produce(topic_name, value=b"live")
    new.commit_transaction(DEADLINE_S)
    with pytest.raises(KafkaException) as info:
        old.commit_transaction(DEADLINE_S)
    assert info.value.args[0].fatal() or info.value.args[0].code() in (
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    )
    assert read_all(broker, topic_name, "read_committed") == [b"live"]


def test_idempotent_producer_survives_kill_9(tmp_path: Path, topic_name: str) -> None:
    with private_broker(
        tmp_path / "data", overrides=SMALL_INTERNAL_TOPICS, kind=SamePortBroker
    ) as live:
        create_topic(live, topic_name)
        p = Producer(
            {
                "bootstrap.servers": live.bootstrap_servers,
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 30000,
                "reconnect.backoff.max.ms": 200,
            }
        )
        errors: list[object] = []
        delivered = [0]

        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered[0] += 1

        total = 20000
        killed = False
        for i in range(total):
            p.produce(topic_name, value=b"%06d" % i, on_delivery=on_delivery)
            p.poll(0)
            while len(p) > 500 and not killed:  # keep a few requests' worth in flight
                p.poll(0.002)
            if not killed and delivered[0] >= total // 4:
                # kill -9 while produce requests are in flight (some written, not answered).
                live.kill()
                live.start()  # same port: the producer reconnects and retries
                killed = True
        assert killed
        assert p.flush(DEADLINE_S * 2) == 0
        assert errors == []
        values = read_all(live, topic_name, "read_uncommitted")
        assert sorted(values) == [b"%06d" % i for i in range(total)]  # each exactly once
        assert values == sorted(values)  # and in order


def test_transaction_commits_across_kill_9(tmp_path: Path, topic_name: str) -> None:
    with private_broker(
        tmp_path / "data", overrides=SMALL_INTERNAL_TOPICS, kind=SamePortBroker
    ) as live:
        create_topic(live, topic_name)
        p = tx_producer(live, f"crash-{topic_name}", **{"reconnect.backoff.max.ms": 200})
        p.begin_transaction()
        for i in range(100):
            p.produce(topic_name, value=b"%03d" % i)
        assert p.flush(DEADLINE_S) == 0
        live.kill()  # kill -9 with the transaction open
        live.start()  # the coordinator reloads it from __transaction_state
        p.commit_transaction(DEADLINE_S)
        assert read_all(live, topic_name, "read_committed") == [b"%03d" % i for i in range(100)]


def test_idempotent_retries_of_lost_responses_are_not_written_twice(
    proxied_broker: tuple[LiveBroker, LossyProxy], topic_name: str
) -> None:
    live, proxy = proxied_broker
    create_topic(live, topic_name)
    bootstrap = f"127.0.0.1:{proxy.port}"
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 2,
            "reconnect.backoff.max.ms": 100,
        }
    )
    errors: list[object] = []
    total, cuts = 20000, 0
    for i in range(total):
        p.produce(
            topic_name,
            value=b"%06d" % i,
            on_delivery=lambda err, _m: err is None or errors.append(err),
        )
        p.poll(0)
        while len(p) > 500:
            p.poll(0.002)
        if i % 5000 == 2500:
            proxy.lose_responses()  # written batches whose acks never arrive: retried
            cuts += 1
    assert p.flush(DEADLINE_S * 2) == 0
    assert errors == [] and cuts == 4
    values = read_all(live, topic_name, "read_uncommitted")
    assert len(values) == total and values == [b"%06d" % i for i in range(total)]
