"""Moving a partition between brokers with kafka-python's admin client (KIP-455), on a real
3-broker cluster: AlterPartitionReassignments, ListPartitionReassignments, DescribeLogDirs.

confluent-kafka's AdminClient has no partition reassignment API (librdkafka does not
implement KIP-455), so kafka-python is the client here, as `kafka-reassign-partitions.sh`
is in Kafka's own tooling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from kbroker.cluster.node import request_once
from kbroker.cluster_runner import Cluster
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import ListPartitionReassignmentsRequest

pytestmark = pytest.mark.compat

TOPIC = "moving"
RECORDS = 2000
SETTLE_S = 60.0


def partition_bytes(cluster: Cluster, broker_id: int, topic: str, partition: int) -> bytes | None:
    """One broker's log of a partition, its segments in offset order (None: no folder)."""
    directory = Path(cluster.broker(broker_id).data_dir) / f"{topic}-{partition}"
    if not directory.is_dir():
        return None
    return b"".join(p.read_bytes() for p in sorted(directory.glob("*.log")))


def log_dirs(admin: KafkaAdminClient) -> dict[int, dict[tuple[str, int], dict[str, Any]]]:
    """DescribeLogDirs of every broker: broker -> (topic, partition) -> partition entry."""
    out: dict[int, dict[tuple[str, int], dict[str, Any]]] = {}
    for answer in admin.describe_log_dirs():
        entries: dict[tuple[str, int], dict[str, Any]] = {}
        for log_dir in answer["log_dirs"]:
            assert log_dir["error_code"] == 0
            for topic in log_dir["topics"]:
                for p in topic["partitions"]:
                    entries[(topic["name"], p["partition_index"])] = p
        out[answer["broker"]] = entries
    return out


def test_move_a_partition_to_two_other_brokers(
    kbroker_cluster: Callable[..., Cluster], record_property: Callable[[str, object], None]
) -> None:
    cluster = kbroker_cluster(
        3,
        config={"zookeeper.session.timeout.ms": 10000, "replica.lag.time.max.ms": 3000},
    )
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(TOPIC, -1, -1, replica_assignments={0: [1]})])
        cluster.wait_for(lambda: cluster.leader_of(TOPIC, 0) == 1, SETTLE_S)
        producer = KafkaProducer(
            bootstrap_servers=cluster.bootstrap_servers, acks="all", linger_ms=5
        )
        values = [f"record-{i:05d}-".encode() + b"x" * 200 for i in range(RECORDS)]
        for value in values:
            producer.send(TOPIC, value, partition=0)
        producer.flush(30)
        producer.close()
        original = partition_bytes(cluster, 1, TOPIC, 0)
        assert original is not None and len(original) > RECORDS * 200

        # The reassignment stays in progress while one of its new replicas cannot fetch:
        # pause it (for less than the session timeout, so it stays registered).
        controller = cluster.controller_id()
        assert controller in (1, 2, 3)
        held = 3 if controller != 3 else 2
        other = ({2, 3} - {held}).pop()
        tp = TopicPartition(TOPIC, 0)
        cluster.pause(held)
        try:
            assert admin.alter_partition_reassignments({tp: [2, 3]}) == {tp: None}
            ongoing = admin.list_partition_reassignments()
            assert ongoing == {
                tp: {"replicas": [2, 3, 1], "adding_replicas": [2, 3], "removing_replicas": [1]}
            }
            assert admin.list_partition_reassignments([tp]) == ongoing
            # Only the controller answers; another broker says NOT_CONTROLLER (kafka-python
            # retries against the controller by itself).
            not_controller = next(b for b in (1, 2, 3) if b not in (controller, held))
            answer = trio.run(
                lambda: request_once(
                    "127.0.0.1",
                    cluster.broker(not_controller).port,
                    ListPartitionReassignmentsRequest(timeout_ms=1000, topics=None),
                    version=0,
                )
            )
            assert answer.error_code == ErrorCode.NOT_CONTROLLER
            # The unpaused new replica copies the data meanwhile and joins the ISR; once
            # the metadata shows it there, the controller has handled that ISR change,
            # and with the held replica still out the reassignment is still in progress.
            cluster.wait_for(
                lambda: partition_bytes(cluster, other, TOPIC, 0) == original,
                SETTLE_S,
                message="the first new replica to catch up",
            )
            cluster.wait_for(
                lambda: other in cluster.partitions(TOPIC)[0].isr,
                SETTLE_S,
                message="the first new replica in the ISR",
            )
            assert admin.list_partition_reassignments() == ongoing
        finally:
            cluster.resume(held)
        resumed = time.monotonic()

        cluster.wait_for(
            lambda: admin.list_partition_reassignments() == {},
            SETTLE_S,
            message="the reassignment to complete",
        )
        complete_s = time.monotonic() - resumed
        parts = cluster.partitions(TOPIC)
        assert list(parts[0].replicas) == [2, 3]
        assert sorted(parts[0].isr) == [2, 3]
        assert parts[0].leader == 2  # the first target replica in the ISR
        # Every batch is on both new replicas, byte for byte; the old replica is gone.
        assert partition_bytes(cluster, 2, TOPIC, 0) == original
        assert partition_bytes(cluster, 3, TOPIC, 0) == original
        cluster.wait_for(
            lambda: partition_bytes(cluster, 1, TOPIC, 0) is None,
            SETTLE_S,
            message="broker 1 to delete its replica",
        )

        consumer = KafkaConsumer(
            bootstrap_servers=cluster.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=10000,
        )
        consumer.assign([tp])
        read = [m.value for m in consumer]
        consumer.close()
        assert read == values

        # DescribeLogDirs: each new replica's size on disk, no lag; broker 1 lists nothing.
        dirs = cluster.wait_for(
            lambda: (
                (d := log_dirs(admin))
                and all(d[b].get((TOPIC, 0), {}).get("offset_lag") == 0 for b in (2, 3))
                and d
            ),
            SETTLE_S,
        )
        assert (TOPIC, 0) not in dirs[1]
        for b in (2, 3):
            entry = dirs[b][(TOPIC, 0)]
            assert entry["partition_size"] == len(original)
            assert entry["is_future_key"] is False
        record_property(
            "figures",
            {
                "moved_records": RECORDS,
                "moved_bytes": len(original),
                "complete_after_resume_s": round(complete_s, 2),
            },
        )
    finally:
        admin.close()


def test_move_one_partition_of_a_topic_the_old_broker_keeps(
    kbroker_cluster: Callable[..., Cluster],
) -> None:
    """Broker 1 loses partition 0 but keeps partition 1: partition 0's records go from its
    disk, partition 1 is untouched, and DescribeLogDirs on broker 1 lists only partition 1."""
    cluster = kbroker_cluster(3, config={"zookeeper.session.timeout.ms": 10000})
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic("split", -1, -1, replica_assignments={0: [1], 1: [1]})])
        cluster.wait_for(lambda: all(cluster.leader_of("split", p) == 1 for p in (0, 1)), SETTLE_S)
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
        for i in range(500):
            producer.send("split", b"v%d" % i, partition=i % 2)
        producer.flush(30)
        producer.close()
        before = {p: partition_bytes(cluster, 1, "split", p) for p in (0, 1)}
        assert all(before.values())

        tp = TopicPartition("split", 0)
        assert admin.alter_partition_reassignments({tp: [3]}) == {tp: None}
        cluster.wait_for(
            lambda: (
                admin.list_partition_reassignments() == {}
                and list(cluster.partitions("split")[0].replicas) == [3]
            ),
            SETTLE_S,
            message="the reassignment to complete",
        )
        assert cluster.leader_of("split", 0) == 3
        assert partition_bytes(cluster, 3, "split", 0) == before[0]
        cluster.wait_for(
            lambda: partition_bytes(cluster, 1, "split", 0) == b"",
            SETTLE_S,
            message="broker 1 to drop partition 0's records",
        )
        assert partition_bytes(cluster, 1, "split", 1) == before[1]
        dirs = log_dirs(admin)
        assert ("split", 0) not in dirs[1] and ("split", 1) in dirs[1]
        assert dirs[3][("split", 0)]["partition_size"] == len(before[0] or b"")
    finally:
        admin.close()
