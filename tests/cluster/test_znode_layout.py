"""The znode tree a running 3-broker cluster writes, read with kazoo as an operator would with
zookeeper-shell: every node type's path, JSON field names and value types are Kafka's
(ZkData.scala of Kafka 3.9's ZooKeeper mode), so Kafka's own tooling reads it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from kazoo.client import KazooClient

from kbroker.cluster_runner import Cluster
from kbroker.testing.zookeeper import ZooKeeperServer
from tests.cluster.real_cluster import zk_json

TIMEOUT_S = 30.0
TOPIC = "layout-topic"


@pytest.fixture(scope="module")
def cluster(
    zookeeper: ZooKeeperServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One cluster for the module, with a topic, a config change and an idempotent producer."""
    with Cluster(3, zookeeper=zookeeper, data_dir=tmp_path_factory.mktemp("layout")) as cluster:
        _populate(cluster)
        yield cluster


def _populate(cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    futures = admin.create_topics([NewTopic(TOPIC, 3, 3, config={"retention.ms": "123456"})])
    futures[TOPIC].result(TIMEOUT_S)
    cluster.wait_for(
        lambda: (
            len(cluster.partitions(TOPIC)) == 3
            and all(p.leader in (1, 2, 3) for p in cluster.partitions(TOPIC).values())
        ),
        TIMEOUT_S,
    )
    # A config change on one broker: /config/topics/<t> and a /config/changes notification.
    resource = ConfigResource(
        ResourceType.TOPIC,
        TOPIC,
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(TIMEOUT_S)
    # An idempotent producer: its producer id comes from a /latest_producer_id_block block.
    producer = Producer(
        {"bootstrap.servers": cluster.bootstrap_servers, "enable.idempotence": True}
    )
    producer.produce(TOPIC, value=b"v", partition=0)
    assert producer.flush(TIMEOUT_S) == 0


@pytest.fixture
def zk(cluster: Cluster) -> Iterator[KazooClient]:
    with cluster.zookeeper_client() as client:
        yield client


def is_ms_timestamp(value: object) -> bool:
    return isinstance(value, str) and value.isdigit() and len(value) >= 13


def test_top_level_paths(zk: KazooClient) -> None:
    for path in (
        "/cluster/id",
        "/brokers/ids",
        "/brokers/topics",
        "/brokers/seqid",
        "/controller",
        "/controller_epoch",
        "/config/topics",
        "/config/changes",
        "/admin/delete_topics",
        "/isr_change_notification",
        "/latest_producer_id_block",
    ):
        assert zk.exists(path) is not None, path
    # ISR change notifications are consumed by the controller as they come; any still there
    # have Kafka's sequential names and JSON.
    for child in zk.get_children("/isr_change_notification"):
        assert re.fullmatch(r"isr_change_\d{10}", child)
        node = zk_json(zk, f"/isr_change_notification/{child}")
        assert node["version"] == 1
        assert all(set(p) == {"topic", "partition"} for p in node["partitions"])


def test_cluster_id(zk: KazooClient, cluster: Cluster) -> None:
    node = zk_json(zk, "/cluster/id")
    assert set(node) == {"version", "id"}
    assert node["version"] == "1"  # a string in Kafka's ClusterIdZNode
    assert node["id"] == cluster.metadata([]).cluster_id


def test_broker_registrations(zk: KazooClient, cluster: Cluster) -> None:
    assert sorted(zk.get_children("/brokers/ids"), key=int) == ["1", "2", "3"]
    for broker_id in (1, 2, 3):
        data, stat = zk.get(f"/brokers/ids/{broker_id}")
        assert stat.ephemeralOwner != 0  # gone when the broker's session ends
        node = json.loads(data)
        assert set(node) == {
            "listener_security_protocol_map",
            "endpoints",
            "jmx_port",
            "features",
            "host",
            "timestamp",
            "port",
            "version",
            "rack",
        }
        port = cluster.broker(broker_id).port
        assert node["listener_security_protocol_map"] == {"PLAINTEXT": "PLAINTEXT"}
        assert node["endpoints"] == [f"PLAINTEXT://127.0.0.1:{port}"]
        assert (node["host"], node["port"]) == ("127.0.0.1", port)
        assert node["jmx_port"] == -1
        assert node["version"] == 5
        assert node["features"] == {}
        assert node["rack"] is None
        assert is_ms_timestamp(node["timestamp"])


def test_controller_and_epoch(zk: KazooClient, cluster: Cluster) -> None:
    data, stat = zk.get("/controller")
    assert stat.ephemeralOwner != 0
    node = json.loads(data)
    assert set(node) == {"version", "brokerid", "timestamp"}
    assert node["version"] == 1
    assert node["brokerid"] == cluster.controller_id()
    assert is_ms_timestamp(node["timestamp"])
    epoch = zk.get("/controller_epoch")[0].decode("ascii")
    assert re.fullmatch(r"[1-9][0-9]*", epoch), epoch  # a plain integer, not JSON


def test_topic_assignment(zk: KazooClient, cluster: Cluster) -> None:
    node = zk_json(zk, f"/brokers/topics/{TOPIC}")
    assert set(node) == {
        "partitions",
        "topic_id",
        "adding_replicas",
        "removing_replicas",
        "version",
    }
    assert node["version"] == 3
    assert node["adding_replicas"] == {} and node["removing_replicas"] == {}
    assert set(node["partitions"]) == {"0", "1", "2"}
    metadata = cluster.partitions(TOPIC)
    for key, replicas in node["partitions"].items():
        assert replicas == list(metadata[int(key)].replicas)
        assert sorted(replicas) == [1, 2, 3]
    # Kafka's Uuid.toString: 16 bytes, URL-safe base64 without padding.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", node["topic_id"])
    assert len(base64.urlsafe_b64decode(node["topic_id"] + "==")) == 16


def test_partition_state(zk: KazooClient, cluster: Cluster) -> None:
    assert sorted(zk.get_children(f"/brokers/topics/{TOPIC}/partitions")) == ["0", "1", "2"]
    epoch = int(zk.get("/controller_epoch")[0])
    metadata = cluster.partitions(TOPIC)
    for partition in range(3):
        node = zk_json(zk, f"/brokers/topics/{TOPIC}/partitions/{partition}/state")
        assert set(node) == {"controller_epoch", "leader", "version", "leader_epoch", "isr"}
        assert node["version"] == 1
        assert 1 <= node["controller_epoch"] <= epoch
        assert node["leader"] == metadata[partition].leader
        assert node["leader_epoch"] == metadata[partition].leader_epoch
        assert node["isr"] == list(metadata[partition].isr)


def test_topic_config_and_change_notification(zk: KazooClient) -> None:
    node = zk_json(zk, f"/config/topics/{TOPIC}")
    assert set(node) == {"version", "config"}
    assert node["version"] == 1
    assert node["config"] == {"retention.ms": "123456", "cleanup.policy": "compact"}
    changes = zk.get_children("/config/changes")
    assert changes and all(re.fullmatch(r"config_change_\d{10}", c) for c in changes)
    notifications = [zk_json(zk, f"/config/changes/{c}") for c in sorted(changes)]
    assert {"version": 2, "entity_path": f"topics/{TOPIC}"} in notifications
    assert all(set(n) == {"version", "entity_path"} for n in notifications)


def test_producer_id_block(zk: KazooClient, cluster: Cluster) -> None:
    node = zk_json(zk, "/latest_producer_id_block")
    assert set(node) == {"version", "broker", "block_start", "block_end"}
    assert node["version"] == 1
    assert node["broker"] in (1, 2, 3)
    # Strings in Kafka's ProducerIdBlockZNode; blocks of 1000 ids.
    assert isinstance(node["block_start"], str) and isinstance(node["block_end"], str)
    assert int(node["block_end"]) - int(node["block_start"]) == 999
