"""Znode JSON is byte-for-byte what Kafka's ZkData writes, and reads back what Kafka writes."""

from __future__ import annotations

import json
import uuid

import pytest

from kbroker.cluster import znodes
from kbroker.cluster.znodes import (
    BrokerRegistration,
    ControllerInfo,
    PartitionState,
    ProducerIdBlock,
    TopicAssignment,
)


def test_paths_are_kafkas() -> None:
    assert znodes.broker_path(3) == "/brokers/ids/3"
    assert znodes.topic_path("t") == "/brokers/topics/t"
    assert znodes.partition_state_path("t", 2) == "/brokers/topics/t/partitions/2/state"
    assert znodes.topic_config_path("t") == "/config/topics/t"
    assert znodes.delete_topic_path("t") == "/admin/delete_topics/t"
    assert znodes.CONTROLLER_EPOCH == "/controller_epoch"
    assert znodes.PREFERRED_REPLICA_ELECTION == "/admin/preferred_replica_election"
    assert znodes.LATEST_PRODUCER_ID_BLOCK == "/latest_producer_id_block"
    assert znodes.BROKER_SEQID == "/brokers/seqid"


def test_broker_registration_has_kafkas_v5_fields() -> None:
    reg = BrokerRegistration(
        broker_id=1,
        host="h",
        port=9092,
        endpoints=("PLAINTEXT://h:9092",),
        rack=None,
        timestamp_ms=1700000000000,
    )
    js = json.loads(reg.encode())
    assert js == {
        "listener_security_protocol_map": {"PLAINTEXT": "PLAINTEXT"},
        "endpoints": ["PLAINTEXT://h:9092"],
        "jmx_port": -1,
        "features": {},
        "host": "h",
        "timestamp": "1700000000000",  # a string, as Kafka writes it
        "port": 9092,
        "version": 5,
        "rack": None,
    }
    assert BrokerRegistration.decode(1, reg.encode()) == reg
    assert reg.endpoint("PLAINTEXT") == ("h", 9092)
    assert reg.endpoint("SSL") is None


def test_broker_registration_reads_a_kafka_broker() -> None:
    # As written by a Kafka 3.x broker with a rack and two listeners.
    raw = (
        b'{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT",'
        b'"INTERNAL":"PLAINTEXT"},"endpoints":["PLAINTEXT://a:9092","INTERNAL://a:9093"],'
        b'"jmx_port":-1,"port":9092,"host":"a","version":5,"timestamp":"1","rack":"r1"}'
    )
    reg = BrokerRegistration.decode(7, raw)
    assert (reg.broker_id, reg.rack, reg.host, reg.port) == (7, "r1", "a", 9092)
    assert reg.endpoint("INTERNAL") == ("a", 9093)


def test_controller_and_epoch() -> None:
    info = ControllerInfo(broker_id=2, timestamp_ms=5)
    assert json.loads(info.encode()) == {"version": 1, "brokerid": 2, "timestamp": "5"}
    assert ControllerInfo.decode(info.encode()) == info
    # Kafka 3.9 writes version 2 with a KRaft epoch; the broker id is what matters.
    kafka = b'{"version":2,"brokerid":4,"timestamp":"9","kraftControllerEpoch":-1}'
    assert ControllerInfo.decode(kafka).broker_id == 4
    assert znodes.encode_controller_epoch(12) == b"12"
    assert znodes.decode_controller_epoch(b"12") == 12


def test_topic_assignment_json_and_topic_id() -> None:
    tid = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    a = TopicAssignment(partitions={1: (2, 3, 1), 0: (1, 2, 3)}, topic_id=tid)
    js = json.loads(a.encode())
    assert js == {
        "partitions": {"0": [1, 2, 3], "1": [2, 3, 1]},
        "topic_id": znodes.topic_id_to_string(tid),
        "adding_replicas": {},
        "removing_replicas": {},
        "version": 3,
    }
    # Kafka's Uuid.toString: 22 characters of URL-safe base64, no padding.
    assert len(js["topic_id"]) == 22 and "=" not in js["topic_id"]
    assert TopicAssignment.decode(a.encode()) == a
    assert znodes.topic_id_from_string("AAAAAAAAAAAAAAAAAAAAAA") == uuid.UUID(int=0)


def test_topic_assignment_reads_kafka_v1_without_topic_id() -> None:
    a = TopicAssignment.decode(b'{"version":1,"partitions":{"0":[1],"1":[2]}}')
    assert a.partitions == {0: (1,), 1: (2,)} and a.topic_id is None


def test_partition_state() -> None:
    s = PartitionState(leader=1, leader_epoch=0, isr=(1, 2, 3), controller_epoch=1)
    assert json.loads(s.encode()) == {
        "controller_epoch": 1,
        "leader": 1,
        "version": 1,
        "leader_epoch": 0,
        "isr": [1, 2, 3],
    }
    assert PartitionState.decode(s.encode(), zk_version=4) == PartitionState(
        leader=1, leader_epoch=0, isr=(1, 2, 3), controller_epoch=1, zk_version=4
    )
    # leader_recovery_state only appears when not RECOVERED (KIP-704).
    rec = PartitionState(
        leader=-1, leader_epoch=3, isr=(), controller_epoch=2, leader_recovery_state=1
    )
    assert json.loads(rec.encode())["leader_recovery_state"] == 1


def test_configs_and_change_notifications() -> None:
    assert json.loads(znodes.encode_topic_config({"retention.ms": "100"})) == {
        "version": 1,
        "config": {"retention.ms": "100"},
    }
    assert znodes.decode_topic_config(b'{"version":1,"config":{"a":"b"}}') == {"a": "b"}
    assert json.loads(znodes.encode_config_change("topics/t")) == {
        "version": 2,
        "entity_path": "topics/t",
    }
    assert znodes.decode_config_change(znodes.encode_config_change("topics/t")) == "topics/t"
    with pytest.raises(ValueError):
        znodes.decode_config_change(b'{"version":1,"entity_type":"topics","entity_name":"t"}')


def test_partition_lists() -> None:
    raw = znodes.encode_partition_list([("t", 1), ("a", 0), ("t", 1)])
    assert json.loads(raw) == {
        "version": 1,
        "partitions": [{"topic": "a", "partition": 0}, {"topic": "t", "partition": 1}],
    }
    assert znodes.decode_partition_list(raw) == {("a", 0), ("t", 1)}


def test_producer_id_block() -> None:
    b = ProducerIdBlock(broker_id=1, block_start=0, block_end=999)
    assert json.loads(b.encode()) == {
        "version": 1,
        "broker": 1,
        "block_start": "0",
        "block_end": "999",
    }
    assert ProducerIdBlock.decode(b.encode()) == b and b.size == 1000


def test_cluster_id() -> None:
    assert json.loads(znodes.encode_cluster_id("abc")) == {"version": "1", "id": "abc"}
    assert znodes.decode_cluster_id(znodes.encode_cluster_id("abc")) == "abc"


def test_reassign_partitions_znode_is_kafkas_legacy_format() -> None:
    data = znodes.encode_reassignment({("t", 1): [3, 1], ("a", 0): [2]})
    assert json.loads(data) == {
        "version": 1,
        "partitions": [
            {"topic": "a", "partition": 0, "replicas": [2]},
            {"topic": "t", "partition": 1, "replicas": [3, 1]},
        ],
    }
    assert znodes.decode_reassignment(data) == {("a", 0): (2,), ("t", 1): (3, 1)}
    assert znodes.REASSIGN_PARTITIONS == "/admin/reassign_partitions"
