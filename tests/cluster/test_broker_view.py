"""The broker side of cluster mode against a scripted controller (no ZooKeeper).

A real broker is served on 127.0.0.1:0 with a ``ClusterNode`` attached; the test plays
the controller, sending UpdateMetadata / LeaderAndIsr / StopReplica over the wire as
Kafka's controller does, then checks what clients see: Metadata and DescribeCluster
for the whole cluster, NOT_LEADER_OR_FOLLOWER on partitions led elsewhere, the
controller's leader epochs, FindCoordinator naming the leader of the group's
``__consumer_offsets`` partition.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from kbroker.cluster.metadata_cache import LEADER_DURING_DELETE
from kbroker.coordinator.group import partition_for
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    DescribeClusterRequest,
    DescribeLogDirsRequest,
    ElectLeadersRequest,
    FindCoordinatorRequest,
    MetadataRequest,
)
from tests.cluster.scripted_controller import BROKERS, ME, TOPIC_ID, Harness, served
from tests.kbroker.helpers import (
    LATEST,
    commit_request,
    fetch,
    fetch_request,
    list_offsets_request,
    produce,
    records,
)


@pytest.fixture
async def cluster(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Harness]:
    async with served(
        nursery, tmp_path, **{"broker.rack": "r1", "offsets.topic.num.partitions": "3"}
    ) as harness:
        yield harness


# Partition 0 led here at epoch 5, partition 1 led by broker 2 (a follower here),
# partition 2 hosted only by brokers 2 and 3.
PARTITIONS = [
    ("t", 0, 1, 5, [1, 2, 3], [1, 2, 3]),
    ("t", 1, 2, 3, [2, 1, 3], [2, 1]),
    ("t", 2, 3, 0, [3, 2], [3, 2]),
]


async def _set_up(cluster: Harness) -> None:
    resp = await cluster.update_metadata(PARTITIONS)
    assert resp.error_code == ErrorCode.NONE
    resp = await cluster.leader_and_isr([p for p in PARTITIONS if ME in p[4]])
    assert resp.error_code == ErrorCode.NONE
    codes = {(p.partition_index, p.error_code) for t in resp.topics for p in t.partition_errors}
    assert codes == {(0, 0), (1, 0)}


async def test_leader_and_isr_creates_the_local_log_with_the_controllers_topic_id(
    cluster: Harness,
) -> None:
    await _set_up(cluster)
    local = cluster.broker.topics.get("t")
    assert local is not None and local.topic_id == TOPIC_ID
    # The cluster's partition count, so partition indexes mean the same everywhere.
    assert len(local.partitions) == 3
    replicas = cluster.broker.cluster.replicas
    assert replicas.is_leader("t", 0) and not replicas.is_leader("t", 1)
    assert replicas.leader_epoch("t", 0) == 5


async def test_produce_only_on_the_leader_and_with_its_epoch(cluster: Harness) -> None:
    await _set_up(cluster)
    ok = await produce(cluster.client, "t", 0, records(2))
    assert ok.error_code == ErrorCode.NONE and ok.base_offset == 0
    # Led by broker 2 (we follow it), and not hosted here at all: both elsewhere.
    assert (await produce(cluster.client, "t", 1, records(2))).error_code == (
        ErrorCode.NOT_LEADER_OR_FOLLOWER
    )
    assert (await produce(cluster.client, "t", 2, records(2))).error_code == (
        ErrorCode.NOT_LEADER_OR_FOLLOWER
    )
    # A topic the cluster does not know stays UNKNOWN_TOPIC_OR_PARTITION.
    assert (await produce(cluster.client, "nope", 0, records(1))).error_code == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    )
    # The batch carries the controller's leader epoch (KIP-101).
    data = await fetch(cluster.client, cluster.server, "t", 0, 0)
    assert data.error_code == ErrorCode.NONE
    raw = bytes(data.records)
    assert int.from_bytes(raw[12:16], "big", signed=True) == 5  # partitionLeaderEpoch


async def test_fetch_checks_the_clients_leader_epoch_against_the_controllers(
    cluster: Harness,
) -> None:
    await _set_up(cluster)
    await produce(cluster.client, "t", 0, records(1))
    fenced = await fetch(cluster.client, cluster.server, "t", 0, 0, version=12)
    assert fenced.error_code == ErrorCode.NONE  # no epoch given (-1): no check
    for given, expected in (
        (4, ErrorCode.FENCED_LEADER_EPOCH),
        (6, ErrorCode.UNKNOWN_LEADER_EPOCH),
    ):
        req = fetch_request("t", 0, 0)
        req.topics[0].partitions[0].current_leader_epoch = given
        resp = await cluster.client.request(req, version=12)
        assert resp.responses[0].partitions[0].error_code == expected
    follower = await cluster.client.request(fetch_request("t", 1, 0), version=12)
    assert follower.responses[0].partitions[0].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER


async def test_list_offsets_answers_not_leader_for_a_partition_led_elsewhere(
    cluster: Harness,
) -> None:
    await _set_up(cluster)
    req = list_offsets_request("t", *((i, LATEST) for i in (0, 1, 2)))
    resp = await cluster.client.request(req, version=7)
    parts = {p.partition_index: p for p in resp.topics[0].partitions}
    assert parts[0].error_code == ErrorCode.NONE and parts[0].leader_epoch == 5
    assert parts[1].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert parts[2].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER


async def test_metadata_describes_the_whole_cluster(cluster: Harness) -> None:
    await _set_up(cluster)
    # Broker 3 goes away: partition 2 it led has no live leader until the controller acts.
    await cluster.update_metadata(
        [("t", 2, 3, 0, [3, 2], [3, 2])], brokers=[1, 2], offline={("t", 2): [3]}
    )
    resp = await cluster.client.request(
        MetadataRequest(topics=None, allow_auto_topic_creation=False), version=12
    )
    assert resp.controller_id == 2
    assert {(b.node_id, b.host, b.rack) for b in resp.brokers} == {
        (1, "127.0.0.1", "r1"),
        (2, "10.0.0.2", "r2"),
    }
    (topic,) = resp.topics
    assert topic.name == "t" and topic.topic_id == TOPIC_ID and not topic.is_internal
    got = {
        p.partition_index: (
            p.error_code,
            p.leader_id,
            p.leader_epoch,
            list(p.replica_nodes),
            list(p.isr_nodes),
            list(p.offline_replicas),
        )
        for p in topic.partitions
    }
    assert got == {
        0: (0, 1, 5, [1, 2, 3], [1, 2, 3], []),
        1: (0, 2, 3, [2, 1, 3], [2, 1], []),
        2: (ErrorCode.LEADER_NOT_AVAILABLE, -1, 0, [3, 2], [3, 2], [3]),
    }
    described = await cluster.client.request(
        DescribeClusterRequest(include_cluster_authorized_operations=False), version=0
    )
    assert described.controller_id == 2
    assert sorted(b.broker_id for b in described.brokers) == [1, 2]


async def test_a_stale_controller_is_refused(cluster: Harness) -> None:
    await _set_up(cluster)
    cluster.controller_epoch = 2
    assert (await cluster.update_metadata(PARTITIONS)).error_code == ErrorCode.NONE
    # A zombie controller of epoch 1 must not move leadership.
    stale = await cluster.leader_and_isr([("t", 0, 2, 9, [1, 2, 3], [2])], epoch=1)
    assert stale.error_code == ErrorCode.STALE_CONTROLLER_EPOCH
    assert cluster.broker.cluster.replicas.is_leader("t", 0)
    stale_meta = await cluster.update_metadata([], epoch=1)
    assert stale_meta.error_code == ErrorCode.STALE_CONTROLLER_EPOCH


async def test_an_older_leader_epoch_is_refused_per_partition(cluster: Harness) -> None:
    await _set_up(cluster)
    resp = await cluster.leader_and_isr([("t", 0, 2, 4, [1, 2, 3], [2])])
    (err,) = [p for t in resp.topics for p in t.partition_errors]
    assert err.error_code == ErrorCode.STALE_CONTROLLER_EPOCH
    assert cluster.broker.cluster.replicas.leader_epoch("t", 0) == 5
    # A newer epoch moves leadership away: produce now goes elsewhere.
    await cluster.leader_and_isr([("t", 0, 2, 6, [1, 2, 3], [2, 1])])
    assert (await produce(cluster.client, "t", 0, records(1))).error_code == (
        ErrorCode.NOT_LEADER_OR_FOLLOWER
    )


async def test_a_same_epoch_state_older_than_the_znode_we_wrote_is_skipped(
    cluster: Harness,
) -> None:
    """The leader wrote an ISR change (state znode version 3) while the controller sent
    state it had read before (version 2, same leader epoch): applying it would bring back
    the old ISR and a version every later conditional write fails on (Kafka's
    Partition.makeLeader skips a partition epoch older than its own)."""
    await _set_up(cluster)
    await cluster.leader_and_isr([("t", 0, 1, 5, [1, 2, 3], [1, 3])], partition_epoch=3)
    resp = await cluster.leader_and_isr([("t", 0, 1, 5, [1, 2, 3], [1, 2, 3])], partition_epoch=2)
    assert [p.error_code for t in resp.topics for p in t.partition_errors] == [ErrorCode.NONE]
    state = cluster.broker.cluster.replicas.states[("t", 0)]
    assert (state.isr, state.zk_version) == ((1, 3), 3)


async def test_stop_replica_with_delete_removes_the_local_log(cluster: Harness) -> None:
    await _set_up(cluster)
    data_dir = cluster.broker.data_dir
    assert (data_dir / "t-0").is_dir()
    await cluster.stop_replica("t", 0, delete=True)
    assert cluster.broker.topics.get("t") is not None  # partition 1 is still hosted
    resp = await cluster.stop_replica("t", 1, delete=True)
    assert [p.error_code for p in resp.partition_errors] == [ErrorCode.NONE]
    assert cluster.broker.topics.get("t") is None
    assert not (data_dir / "t-0").exists()
    # The controller then removes the partitions from every cache.
    await cluster.update_metadata([("t", i, LEADER_DURING_DELETE, 0, [], []) for i in range(3)])
    assert cluster.broker.cluster.metadata.topic("t") is None


async def test_stop_replica_with_delete_of_one_partition_empties_only_its_log(
    cluster: Harness,
) -> None:
    """A reassignment moved partition 0 away while partition 1 stays: partition 0's records
    go, its folder is left empty like any partition index this broker does not host, and
    DescribeLogDirs no longer lists it."""
    await _set_up(cluster)
    for index in (0, 1):
        partition = cluster.broker.topics.partition("t", index)
        assert partition is not None
        partition.log.append(records(3), leader_epoch=0)
    await cluster.stop_replica("t", 0, delete=True)
    data_dir = cluster.broker.data_dir
    wiped = cluster.broker.topics.partition("t", 0)
    assert wiped is not None and wiped.log.log_end_offset == 0
    assert wiped.log.size_in_bytes == 0 and (data_dir / "t-0").is_dir()
    kept = cluster.broker.topics.partition("t", 1)
    assert kept is not None and kept.log.log_end_offset == 3
    resp = await cluster.client.request(DescribeLogDirsRequest(topics=None))
    listed = {(t.name, p.partition_index) for t in resp.results[0].topics for p in t.partitions}
    assert ("t", 0) not in listed and ("t", 1) in listed


async def test_stop_replica_deleting_every_hosted_partition_deletes_the_topic_at_once(
    cluster: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Topic deletion: one StopReplica names all of the topic's partitions here; the local
    topic goes as a whole, no partition is emptied on its own first."""
    await _set_up(cluster)
    with caplog.at_level("INFO", logger="kbroker.topics"):
        resp = await cluster.stop_replica("t", 0, 1, delete=True)
    assert [p.error_code for p in resp.partition_errors] == [0, 0]
    assert cluster.broker.topics.get("t") is None
    assert not (cluster.broker.data_dir / "t-0").exists()
    assert "deleted the local replica" not in caplog.text
    assert "deleted topic t" in caplog.text


async def test_find_coordinator_names_the_leader_of_the_groups_partition(
    cluster: Harness,
) -> None:
    offsets = [("__consumer_offsets", i, [2, 3, 1][i], 0, [2, 3, 1], [2, 3, 1]) for i in range(3)]
    await cluster.update_metadata(offsets)
    for group in ("g1", "orders", "another-group"):
        leader = [2, 3, 1][partition_for(group, 3)]
        resp = await cluster.client.request(
            FindCoordinatorRequest(key_type=0, coordinator_keys=[group]), version=4
        )
        (found,) = resp.coordinators
        assert found.error_code == ErrorCode.NONE
        assert found.node_id == leader
        expected_port = cluster.server.address[1] if leader == ME else BROKERS[leader][1]
        assert (found.host, found.port) == (BROKERS[leader][0], expected_port)
    # A partition with no live leader: retriable COORDINATOR_NOT_AVAILABLE.
    await cluster.update_metadata(offsets, brokers=[1, 2])
    group = next(g for g in (f"g{i}" for i in range(100)) if partition_for(g, 3) == 1)
    resp = await cluster.client.request(
        FindCoordinatorRequest(key_type=0, coordinator_keys=[group]), version=4
    )
    assert resp.coordinators[0].error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE


async def test_only_the_moved_partitions_group_coordinator_reloads(
    cluster: Harness,
) -> None:
    # Each __consumer_offsets partition led here has its own coordinator; a leadership
    # move unloads that partition's alone (Kafka's onResignation / onElection).
    parts = [("__consumer_offsets", i, 1, 0, [1, 2], [1, 2]) for i in range(3)]
    await cluster.update_metadata(parts)
    topic_id = uuid.uuid4()
    await cluster.leader_and_isr(parts, topic_id=topic_id)
    from kbroker.coordinator.service import coordinator_for

    # Each partition gained is loaded by a background task (COORDINATOR_LOAD_IN_PROGRESS
    # until it has run).
    await trio.testing.wait_all_tasks_blocked()
    assert partition_for("c", 3) == 0 and partition_for("g", 3) == 1
    moved, kept = coordinator_for(cluster.broker, "c"), coordinator_for(cluster.broker, "g")
    assert moved is not kept
    await cluster.leader_and_isr(
        [("__consumer_offsets", 0, 2, 1, [1, 2], [1, 2])], topic_id=topic_id
    )
    assert moved.unloaded and not kept.unloaded
    assert coordinator_for(cluster.broker, "g") is kept
    with pytest.raises(KafkaApiError) as refused:
        coordinator_for(cluster.broker, "c")
    assert refused.value.code == ErrorCode.NOT_COORDINATOR
    # Led here again: loaded afresh from the log, not the unloaded one reused.
    await cluster.leader_and_isr(
        [("__consumer_offsets", 0, 1, 2, [1, 2], [1, 2])], topic_id=topic_id
    )
    await trio.testing.wait_all_tasks_blocked()
    again = coordinator_for(cluster.broker, "c")
    assert again is not moved and not again.unloaded
    assert coordinator_for(cluster.broker, "g") is kept


async def test_elect_leaders_without_a_controller_here_is_not_controller(
    cluster: Harness,
) -> None:
    await _set_up(cluster)
    resp = await cluster.client.request(
        ElectLeadersRequest(
            election_type=0,
            topic_partitions=[ElectLeadersRequest.TopicPartitions(topic="t", partitions=[0])],
            timeout_ms=1000,
        ),
        version=1,
    )
    assert resp.error_code == ErrorCode.NOT_CONTROLLER


async def test_not_leader_answers_name_the_current_leader_kip_951(cluster: Harness) -> None:
    await _set_up(cluster)
    from kbroker.wire.messages import ProduceRequest

    resp = await cluster.client.request(
        ProduceRequest(
            acks=1,
            timeout_ms=1000,
            topic_data=[
                ProduceRequest.TopicProduceData(
                    name="t",
                    partition_data=[
                        ProduceRequest.PartitionProduceData(index=1, records=records(1))
                    ],
                )
            ],
        ),
        version=11,
    )
    (part,) = resp.responses[0].partition_responses
    assert part.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert (part.current_leader.leader_id, part.current_leader.leader_epoch) == (2, 3)
    assert [(n.node_id, n.host, n.port, n.rack) for n in resp.node_endpoints] == [
        (2, "10.0.0.2", 9092, "r2")
    ]
    fetched = await cluster.client.request(fetch_request("t", 1, 0, topic_id=TOPIC_ID), version=16)
    (fpart,) = fetched.responses[0].partitions
    assert fpart.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert (fpart.current_leader.leader_id, fpart.current_leader.leader_epoch) == (2, 3)
    assert [n.node_id for n in fetched.node_endpoints] == [2]


async def test_group_requests_for_a_group_coordinated_elsewhere_are_not_coordinator(
    cluster: Harness,
) -> None:
    from kbroker.wire.messages import HeartbeatRequest, OffsetCommitRequest, OffsetFetchRequest

    await _set_up(cluster)
    offsets = [("__consumer_offsets", i, [2, 3, 1][i], 0, [2, 3, 1], [2, 3, 1]) for i in range(3)]
    await cluster.update_metadata(offsets + PARTITIONS)
    await cluster.leader_and_isr([offsets[2]], topic_id=uuid.uuid4())
    mine = next(g for g in (f"g{i}" for i in range(100)) if partition_for(g, 3) == 2)
    theirs = next(g for g in (f"g{i}" for i in range(100)) if partition_for(g, 3) == 0)
    beat = await cluster.client.request(
        HeartbeatRequest(group_id=theirs, generation_id=1, member_id="m"), version=4
    )
    assert beat.error_code == ErrorCode.NOT_COORDINATOR

    def commit(group: str) -> OffsetCommitRequest:
        # Partition 2 is not hosted here: the cluster knows it, so it counts.
        return commit_request(group, {("t", 2): 7})

    refused = await cluster.client.request(commit(theirs), version=8)
    assert refused.topics[0].partitions[0].error_code == ErrorCode.NOT_COORDINATOR
    stored = await cluster.client.request(commit(mine), version=8)
    assert stored.topics[0].partitions[0].error_code == ErrorCode.NONE
    fetched = await cluster.client.request(
        OffsetFetchRequest(
            groups=[
                OffsetFetchRequest.OffsetFetchRequestGroup(group_id=g, topics=None)
                for g in (mine, theirs)
            ]
        ),
        version=8,
    )
    by_group = {g.group_id: g for g in fetched.groups}
    assert by_group[theirs].error_code == ErrorCode.NOT_COORDINATOR
    assert by_group[mine].topics[0].partitions[0].committed_offset == 7
    from kbroker.wire.messages import DeleteGroupsRequest, DescribeGroupsRequest

    described = await cluster.client.request(
        DescribeGroupsRequest(groups=[mine, theirs]), version=5
    )
    codes = {g.group_id: g.error_code for g in described.groups}
    assert codes == {mine: ErrorCode.NONE, theirs: ErrorCode.NOT_COORDINATOR}
    deleted = await cluster.client.request(
        DeleteGroupsRequest(groups_names=[theirs, mine]), version=2
    )
    codes = {r.group_id: r.error_code for r in deleted.results}
    assert codes == {mine: ErrorCode.NONE, theirs: ErrorCode.NOT_COORDINATOR}


async def test_a_groups_offsets_are_reloaded_when_leadership_comes_back(cluster: Harness) -> None:
    from kbroker.wire.messages import OffsetFetchRequest

    await _set_up(cluster)
    offsets_id = uuid.uuid4()
    led_here = ("__consumer_offsets", 0, 1, 0, [1, 2], [1, 2])
    await cluster.update_metadata([led_here, ("__consumer_offsets", 1, 2, 0, [2, 1], [2, 1])])
    await cluster.leader_and_isr([led_here], topic_id=offsets_id)
    group = next(g for g in (f"g{i}" for i in range(100)) if partition_for(g, 2) == 0)
    commit = commit_request(group, {("t", 0): 42})
    assert (await cluster.client.request(commit, version=8)).topics[0].partitions[0].error_code == 0

    async def fetch_offset() -> tuple[int, int]:
        resp = await cluster.client.request(
            OffsetFetchRequest(
                groups=[OffsetFetchRequest.OffsetFetchRequestGroup(group_id=group, topics=None)]
            ),
            version=8,
        )
        (g,) = resp.groups
        if g.error_code:
            return g.error_code, -1
        return 0, g.topics[0].partitions[0].committed_offset

    assert await fetch_offset() == (0, 42)
    # Broker 2 takes the partition over: this broker unloads it and refuses the group.
    await cluster.leader_and_isr(
        [("__consumer_offsets", 0, 2, 1, [1, 2], [2, 1])], topic_id=offsets_id
    )
    assert await fetch_offset() == (ErrorCode.NOT_COORDINATOR, -1)
    # Leadership comes back: the group's offsets are loaded again from the local log.
    await cluster.leader_and_isr(
        [("__consumer_offsets", 0, 1, 2, [1, 2], [1, 2])], topic_id=offsets_id
    )
    assert await fetch_offset() == (0, 42)


async def test_transaction_requests_for_an_id_coordinated_elsewhere_are_not_coordinator(
    cluster: Harness,
) -> None:
    from kbroker.wire.messages import EndTxnRequest, InitProducerIdRequest

    state = [("__transaction_state", i, [2, 3][i], 0, [2, 3], [2, 3]) for i in range(2)]
    await cluster.update_metadata(state)
    init = await cluster.client.request(
        InitProducerIdRequest(transactional_id="tx-1", transaction_timeout_ms=60000), version=4
    )
    assert init.error_code == ErrorCode.NOT_COORDINATOR
    end = await cluster.client.request(
        EndTxnRequest(transactional_id="tx-1", producer_id=5, producer_epoch=0, committed=True),
        version=3,
    )
    assert end.error_code == ErrorCode.NOT_COORDINATOR


async def test_only_an_older_broker_epoch_is_stale(cluster: Harness) -> None:
    node = cluster.broker.cluster
    node.broker_epoch = 40
    # The controller may know our registration before we read it back (KIP-380).
    assert (await cluster.update_metadata(PARTITIONS, broker_epoch=41)).error_code == 0
    assert (await cluster.update_metadata(PARTITIONS, broker_epoch=40)).error_code == 0
    stale = await cluster.update_metadata(PARTITIONS, broker_epoch=39)
    assert stale.error_code == ErrorCode.STALE_BROKER_EPOCH
