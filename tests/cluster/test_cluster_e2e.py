"""Three real kbroker processes, a real ZooKeeper, a real client (confluent-kafka).

What a user of a cluster sees end to end: topics spread over the brokers with
Kafka's placement, produce and consume through any bootstrap broker, the
replication factor bounded by the live brokers, the group coordinator on the
leader of the group's ``__consumer_offsets`` partition, a killed leader replaced
by the controller within the session timeout while the producer carries on by
itself, and topic deletion removing every broker's copy.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import (  # noqa: E402
    Consumer,
    ElectionType,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from kbroker.cluster_runner import Cluster  # noqa: E402
from kbroker.coordinator.group import partition_for  # noqa: E402
from tests.cluster.real_cluster import needs_zookeeper, zk_json  # noqa: E402

pytestmark = needs_zookeeper

SESSION_MS = 6000
OFFSETS_PARTITIONS = 3


def _produce(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "message.timeout.ms": 30000, "linger.ms": 0}
    )
    errors: list[object] = []
    for value in values:
        producer.produce(
            topic, value, partition=partition, on_delivery=lambda e, m: e and errors.append(e)
        )
    assert producer.flush(40) == 0
    assert not errors


def _consume(bootstrap: str, topic: str, group: str, want: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got.append(msg.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def test_a_three_broker_cluster_end_to_end(tmp_path: Path) -> None:
    config = {
        "zookeeper.session.timeout.ms": SESSION_MS,
        "offsets.topic.num.partitions": OFFSETS_PARTITIONS,
        "group.initial.rebalance.delay.ms": 0,
        "controlled.shutdown.max.retries": 1,
    }
    with Cluster(brokers=3, config=config, data_dir=tmp_path / "cluster") as cluster:
        bootstrap = cluster.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("orders", 6, 3)], operation_timeout=30)["orders"].result(40)

        def placed() -> dict[int, object] | None:
            parts = cluster.partitions("orders")
            return parts if len(parts) == 6 and all(p.leader > 0 for p in parts.values()) else None

        parts = cluster.wait_for(placed, 30, message="6 partitions with leaders")
        # Kafka's placement: leaders round-robin over every broker, 3 replicas each.
        assert {p.leader for p in parts.values()} == {1, 2, 3}
        assert all(sorted(p.replicas) == [1, 2, 3] for p in parts.values())
        # Every broker answers for the whole cluster (once the controller's UpdateMetadata
        # reached it: each broker's cache is updated on its own, as in Kafka).
        for broker_id in (1, 2, 3):
            cluster.wait_for(
                lambda b=broker_id: cluster.partitions("orders", via=b).keys() == parts.keys(),
                30,
                message=f"broker {broker_id} to know orders",
            )
            assert cluster.controller_id(via=broker_id) == cluster.controller_id()

        too_big = admin.create_topics([NewTopic("big", 1, 4)], operation_timeout=10)["big"]
        with pytest.raises(KafkaException) as info:
            too_big.result(20)
        assert info.value.args[0].name() == "INVALID_REPLICATION_FACTOR"

        for partition in range(6):
            _produce(bootstrap, "orders", partition, [b"p%d-%d" % (partition, i) for i in range(5)])
        group = "e2e-group"
        got = _consume(bootstrap, "orders", group, 30)
        assert sorted(got) == sorted(b"p%d-%d" % (p, i) for p in range(6) for i in range(5))

        # The group's coordinator is the leader of its __consumer_offsets partition.
        offsets_leader = cluster.leader_of("__consumer_offsets", partition_for(group, 3))
        (described,) = admin.describe_consumer_groups([group]).values()
        assert described.result(20).coordinator.id == offsets_leader

        # Kafka's znodes: the registration of each broker, read with kazoo.
        with cluster.zookeeper_client() as zk:
            registration = zk_json(zk, "/brokers/ids/2")
            assert registration["version"] == 5 and registration["jmx_port"] == -1
            assert registration["endpoints"] == [f"PLAINTEXT://127.0.0.1:{registration['port']}"]
            epoch_before = int(zk.get("/controller_epoch")[0])

        # kill -9 the leader of partition 0: another replica of the ISR takes over within
        # the session timeout, and a producer started before carries on by itself.
        victim = parts[0].leader
        producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 60000})
        producer.produce("orders", b"before", partition=0)
        assert producer.flush(30) == 0
        killed_at = time.monotonic()
        cluster.kill(victim)
        survivor = next(b for b in (1, 2, 3) if b != victim)
        new_leader = cluster.wait_for(
            lambda: (
                (lead := cluster.leader_of("orders", 0, via=survivor)) not in (victim, -1) and lead
            ),
            SESSION_MS / 1000 + 10,
            message="a new leader of orders-0",
        )
        assert new_leader != victim
        assert time.monotonic() - killed_at < SESSION_MS / 1000 + 10
        delivered: list[object] = []
        producer.produce(
            "orders", b"after", partition=0, on_delivery=lambda e, m: delivered.append(e)
        )
        assert producer.flush(60) == 0
        assert delivered == [None]

        # What was acknowledged (acks=all) before the kill was replicated: the new
        # leader serves it.
        got_back = _consume(bootstrap, "orders", "after-failover", 32)
        assert b"before" in got_back and b"after" in got_back

        # The killed broker comes back, catches up into the ISR, and a preferred election
        # (ElectLeaders) gives it its partition back.
        cluster.restart(victim)
        cluster.wait_for(
            lambda: victim in cluster.metadata([], via=victim).brokers, 30, message="rejoin"
        )
        cluster.wait_for(
            lambda: victim in cluster.partitions("orders")[0].isr, 30, message="back in the ISR"
        )
        controller_admin = AdminClient({"bootstrap.servers": bootstrap})
        elected = controller_admin.elect_leaders(
            ElectionType.PREFERRED, [TopicPartition("orders", 0)]
        )
        elected.result(30)
        cluster.wait_for(
            lambda: cluster.leader_of("orders", 0) == victim, 30, message="preferred leader back"
        )
        assert int(_controller_epoch(cluster)) >= epoch_before

        # Deleting the topic removes it from every broker.
        admin.delete_topics(["orders"], operation_timeout=30)["orders"].result(40)
        cluster.wait_for(
            lambda: all("orders" not in cluster.metadata(None, via=b).topics for b in (1, 2, 3)),
            30,
            message="orders deleted everywhere",
        )
        data_dir = tmp_path / "cluster"
        cluster.wait_for(
            lambda: not list(data_dir.glob("broker-*/orders-*")), 30, message="local copies removed"
        )

        # SIGTERM: the broker asks the controller to move its leadership away first.
        admin.create_topics([NewTopic("moving", 3, 3)], operation_timeout=30)["moving"].result(40)
        cluster.wait_for(
            lambda: (
                all(p.leader > 0 for p in cluster.partitions("moving").values())
                and len(cluster.partitions("moving")) == 3
            ),
            30,
            message="moving has leaders",
        )
        leaders = {p.leader for p in cluster.partitions("moving").values()}
        leaving = next(b for b in sorted(leaders) if b != cluster.controller_id())
        assert cluster.stop(leaving) == 0
        log = cluster.broker(leaving).log_path.read_text()
        assert "controlled shutdown complete" in log
        remaining = cluster.partitions("moving", via=cluster.controller_id())
        assert all(p.leader not in (leaving, -1) for p in remaining.values())


def _controller_epoch(cluster: Cluster) -> int:
    with cluster.zookeeper_client() as zk:
        return int(zk.get("/controller_epoch")[0])


def test_a_broker_whose_session_expired_registers_again(tmp_path: Path) -> None:
    config = {"zookeeper.session.timeout.ms": 2000, "controlled.shutdown.max.retries": 1}
    with Cluster(brokers=2, config=config, data_dir=tmp_path / "cluster") as cluster:
        frozen = next(b for b in (1, 2) if b != cluster.controller_id())
        other = 3 - frozen
        cluster.pause(frozen)  # SIGSTOP: its ZooKeeper session expires meanwhile
        cluster.wait_for(
            lambda: frozen not in cluster.metadata([], via=other).brokers,
            30,
            message="the controller to see the frozen broker gone",
        )
        cluster.resume(frozen)
        # A new session: the broker registers again and the controller takes it back.
        cluster.wait_for(
            lambda: (
                frozen in cluster.metadata([], via=other).brokers
                and set(cluster.metadata([], via=frozen).brokers) == {1, 2}
            ),
            30,
            message="the broker to be registered again",
        )


def test_exactly_once_across_brokers(tmp_path: Path) -> None:
    """A transaction whose coordinator, group coordinator and partition leaders are on
    different brokers: markers reach every leader, offsets commit with the transaction."""
    config = {
        "offsets.topic.num.partitions": OFFSETS_PARTITIONS,
        "transaction.state.log.num.partitions": 3,
        "group.initial.rebalance.delay.ms": 0,
        "controlled.shutdown.max.retries": 1,
    }
    with Cluster(brokers=3, config=config, data_dir=tmp_path / "cluster") as cluster:
        bootstrap = cluster.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for name in ("in", "out"):
            admin.create_topics([NewTopic(name, 3, 2)], operation_timeout=30)[name].result(40)
        cluster.wait_for(
            lambda: all(
                len(cluster.partitions(t)) == 3
                and all(p.leader > 0 for p in cluster.partitions(t).values())
                for t in ("in", "out")
            ),
            30,
            message="topics with leaders",
        )
        for partition in range(3):
            _produce(bootstrap, "in", partition, [b"m%d-%d" % (partition, i) for i in range(10)])

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "eos",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe(["in"])
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-e2e"})
        producer.init_transactions(30)
        seen: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(seen) < 30 and time.monotonic() < deadline:
            msgs = consumer.consume(30, 1.0)
            msgs = [m for m in msgs if not m.error()]
            if not msgs:
                continue
            producer.begin_transaction()
            for m in msgs:
                producer.produce("out", m.value().upper(), partition=m.partition())
                seen.append(m.value())
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
            )
            producer.commit_transaction(30)
        assert len(seen) == 30
        producer.begin_transaction()
        producer.produce("out", b"aborted", partition=0)
        producer.abort_transaction(30)
        consumer.close()

        reader = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "reader",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        reader.subscribe(["out"])
        out: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(out) < 30 and time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is not None and not msg.error():
                out.append(msg.value())
        # Nothing more arrives: the aborted record stays invisible.
        end = time.monotonic() + 2
        while time.monotonic() < end:
            msg = reader.poll(0.2)
            if msg is not None and not msg.error():
                out.append(msg.value())
        reader.close()
        assert sorted(out) == sorted(v.upper() for v in seen)

        check = Consumer({"bootstrap.servers": bootstrap, "group.id": "eos"})
        committed = check.committed([TopicPartition("in", p) for p in range(3)], 30)
        check.close()
        assert sorted(tp.offset for tp in committed) == [10, 10, 10]
