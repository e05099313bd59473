"""Several listeners in cluster mode: each broker registers every listener in ZooKeeper,
brokers talk to each other on the inter-broker listener, and clients are answered with
the endpoints of the listener they came in on (as Kafka does)."""

from __future__ import annotations

from pathlib import Path

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from kbroker.cluster_runner import Cluster  # noqa: E402
from tests.cluster.real_cluster import needs_zookeeper, zk_json  # noqa: E402

pytestmark = needs_zookeeper

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_alice="alice-secret";'
)
SASL = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "PLAIN",
    "sasl.username": "alice",
    "sasl.password": "alice-secret",
}


def test_sasl_clients_get_sasl_endpoints_and_work_across_brokers(tmp_path: Path) -> None:
    config = {
        "offsets.topic.num.partitions": 1,
        "group.initial.rebalance.delay.ms": 0,
        "inter.broker.listener.name": "PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
    }
    with Cluster(
        brokers=2, config=config, data_dir=tmp_path / "cluster", listeners=["SASL_PLAINTEXT"]
    ) as cluster:
        sasl_addresses = {b: cluster.broker(b).listener_address("SASL_PLAINTEXT") for b in (1, 2)}
        plain_addresses = {b: cluster.broker(b).address for b in (1, 2)}

        # Kafka's BrokerIdZNode JSON lists both listeners and their protocols.
        with cluster.zookeeper_client() as zk:
            registration = zk_json(zk, "/brokers/ids/2")
        assert sorted(registration["endpoints"]) == [
            f"PLAINTEXT://{plain_addresses[2]}",
            f"SASL_PLAINTEXT://{sasl_addresses[2]}",
        ]
        assert registration["listener_security_protocol_map"] == {
            "PLAINTEXT": "PLAINTEXT",
            "SASL_PLAINTEXT": "SASL_PLAINTEXT",
        }
        assert (registration["host"], registration["port"]) == (
            "127.0.0.1",
            cluster.broker(2).port,
        )

        bootstrap = {"bootstrap.servers": sasl_addresses[1], **SASL}
        admin = AdminClient(bootstrap)
        topic = "across"
        for future in admin.create_topics(
            [NewTopic(topic, num_partitions=2, replication_factor=2)]
        ).values():
            future.result(30)

        def seen() -> tuple[dict[int, str], dict[int, int]]:
            md = admin.list_topics(timeout=20)
            brokers = {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()}
            leaders = {p.id: p.leader for p in md.topics[topic].partitions.values()}
            return brokers, leaders

        brokers, leaders = seen()
        # Only the SASL listener's endpoints: the client would otherwise be sent to a
        # PLAINTEXT port it cannot authenticate on.
        assert brokers == sasl_addresses
        # The PLAINTEXT listener answers with its own endpoints.
        plain_md = AdminClient({"bootstrap.servers": plain_addresses[1]}).list_topics(timeout=20)
        assert {b.id: f"{b.host}:{b.port}" for b in plain_md.brokers.values()} == plain_addresses

        # Leaders on both brokers (the controller spreads preferred leaders), so the
        # produce and fetch below go to each broker's SASL listener.
        assert set(leaders.values()) == {1, 2}
        producer = Producer({**bootstrap, "acks": "all"})
        for i in range(20):
            producer.produce(topic, value=f"v{i}".encode(), partition=i % 2)
        assert producer.flush(30) == 0

        consumer = Consumer(
            {
                **bootstrap,
                "group.id": "g",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.subscribe([topic])
            values: list[bytes] = []
            for _ in range(300):
                msg = consumer.poll(0.2)
                if msg is None:
                    if len(values) >= 20:
                        break
                    continue
                assert msg.error() is None, msg.error()
                values.append(msg.value())
            assert sorted(values) == sorted(f"v{i}".encode() for i in range(20))
            consumer.commit(asynchronous=False)
            committed = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], 20)
            assert sorted(tp.offset for tp in committed) == [10, 10]
        finally:
            consumer.close()
