"""Kafka's replica placement, and topic administration written into a real ZooKeeper."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter

import pytest
import trio

from kbroker.cluster import admin_zk, znodes
from kbroker.cluster.admin_zk import (
    InvalidReplicaAssignmentError,
    InvalidReplicationFactorError,
    TopicExistsError,
    UnknownTopicError,
    assign_replicas,
)
from kbroker.cluster.zk import ZkClient

NO_RACK = [(b, None) for b in range(5)]


def test_rack_unaware_assignment_matches_kafkas() -> None:
    # Kafka's AdminTest.testReplicaAssignment: brokers 0-4, 10 partitions, RF 3, start 0.
    assert assign_replicas(NO_RACK, 10, 3, start_index=0) == {
        0: [0, 1, 2],
        1: [1, 2, 3],
        2: [2, 3, 4],
        3: [3, 4, 0],
        4: [4, 0, 1],
        5: [0, 2, 3],
        6: [1, 3, 4],
        7: [2, 4, 0],
        8: [3, 0, 1],
        9: [4, 1, 2],
    }


def test_random_start_spreads_leaders_evenly() -> None:
    brokers = [(1, None), (2, None), (3, None)]
    for seed in range(20):
        a = assign_replicas(brokers, 6, 3, rng=random.Random(seed))
        assert Counter(r[0] for r in a.values()) == {1: 2, 2: 2, 3: 2}
        assert all(sorted(r) == [1, 2, 3] for r in a.values())
    starts = {assign_replicas(brokers, 1, 1, rng=random.Random(s))[0][0] for s in range(30)}
    assert starts == {1, 2, 3}  # the start is random, not always the first broker


def test_added_partitions_continue_from_start_partition() -> None:
    # CreatePartitions: leaders continue the round-robin where the topic's stopped
    # (Kafka restarts the follower shift from start_index, it does not replay it).
    full = assign_replicas(NO_RACK, 10, 2, start_index=1)
    tail = assign_replicas(NO_RACK, 4, 2, start_index=1, start_partition=6)
    assert list(tail) == [6, 7, 8, 9]
    assert [r[0] for r in tail.values()] == [full[p][0] for p in range(6, 10)]


def test_rack_alternated_broker_list() -> None:
    racks = {0: "r1", 1: "r1", 2: "r1", 3: "r2", 4: "r3", 5: "r3"}
    assert admin_zk.rack_alternated_brokers(racks) == [0, 3, 4, 1, 5, 2]


def test_rack_aware_assignment_puts_replicas_on_distinct_racks() -> None:
    brokers = [(0, "a"), (1, "b"), (2, "b"), (3, "c"), (4, "c"), (5, "a")]
    for seed in range(10):
        a = assign_replicas(brokers, 12, 3, rng=random.Random(seed))
        rack = dict(brokers)
        for replicas in a.values():
            assert len({rack[b] for b in replicas}) == 3
            assert len(set(replicas)) == 3
        assert Counter(r[0] for r in a.values()) == {b: 2 for b in range(6)}


def test_rack_aware_needs_every_rack() -> None:
    with pytest.raises(InvalidReplicaAssignmentError):
        assign_replicas([(0, "a"), (1, None)], 1, 1)


def test_replication_factor_above_brokers() -> None:
    with pytest.raises(InvalidReplicationFactorError) as exc:
        assign_replicas([(0, None), (1, None)], 3, 3)
    assert "larger than available brokers: 2" in str(exc.value)


def test_validate_assignment() -> None:
    admin_zk.validate_assignment({0: [1, 2], 1: [2, 1]}, [1, 2])
    for bad in ({0: [1, 1]}, {0: [1], 1: [1, 2]}, {0: [9]}, {1: [1]}):
        with pytest.raises(InvalidReplicaAssignmentError):
            admin_zk.validate_assignment(bad, [1, 2])


async def test_create_delete_and_add_partitions(zk_connect: str) -> None:
    async with await ZkClient.connect(zk_connect) as zk:
        tid = uuid.uuid4()
        got = await admin_zk.create_topic(zk, "t", {0: [1, 2], 1: [2, 1]}, {"a": "1"}, tid)
        assert got == tid
        data, _ = await zk.get("/brokers/topics/t")
        assert json.loads(data)["partitions"] == {"0": [1, 2], "1": [2, 1]}
        assert json.loads(data)["topic_id"] == znodes.topic_id_to_string(tid)
        assert await admin_zk.read_topic_config(zk, "t") == {"a": "1"}
        with pytest.raises(TopicExistsError):
            await admin_zk.create_topic(zk, "t", {0: [1]})
        await admin_zk.add_partitions(zk, "t", {2: [1, 2]})
        a = await admin_zk.read_topic_assignment(zk, "t")
        assert a is not None and a.partitions == {0: (1, 2), 1: (2, 1), 2: (1, 2)}
        assert a.topic_id == tid
        await admin_zk.delete_topic(zk, "t")
        await admin_zk.delete_topic(zk, "t")  # a repeat is fine, as in Kafka
        assert await zk.get_children("/admin/delete_topics") == ["t"]
        with pytest.raises(UnknownTopicError):
            await admin_zk.delete_topic(zk, "nope")


async def test_config_change_writes_config_and_notification(zk_connect: str) -> None:
    async with await ZkClient.connect(zk_connect) as zk:
        await admin_zk.change_topic_config(zk, "t", {"retention.ms": "5"})
        await admin_zk.change_topic_config(zk, "t", {"retention.ms": "6"})
        data, _ = await zk.get("/config/topics/t")
        assert json.loads(data) == {"version": 1, "config": {"retention.ms": "6"}}
        changes = sorted(await zk.get_children("/config/changes"))
        assert changes == ["config_change_0000000000", "config_change_0000000001"]
        data, _ = await zk.get("/config/changes/" + changes[0])
        assert json.loads(data) == {"version": 2, "entity_path": "topics/t"}


async def test_producer_id_blocks_never_overlap(zk_connect: str) -> None:
    clients = [await ZkClient.connect(zk_connect) for _ in range(3)]
    blocks: list[tuple[int, int]] = []

    async def take(zk: ZkClient, broker: int) -> None:
        for _ in range(4):
            blocks.append(await admin_zk.allocate_producer_ids(zk, broker))

    try:
        async with trio.open_nursery() as n:
            for i, zk in enumerate(clients):
                n.start_soon(take, zk, i)
        starts = sorted(s for s, _ in blocks)
        assert starts == [i * 1000 for i in range(12)]
        assert all(c == 1000 for _, c in blocks)
        data, _ = await clients[0].get("/latest_producer_id_block")
        js = json.loads(data)
        assert (js["block_start"], js["block_end"]) == ("11000", "11999")
    finally:
        for zk in clients:
            await zk.close()


async def test_preferred_election_request(zk_connect: str) -> None:
    async with await ZkClient.connect(zk_connect) as zk:
        await admin_zk.request_preferred_election(zk, [("t", 0), ("u", 1)])
        data, _ = await zk.get("/admin/preferred_replica_election")
        assert znodes.decode_partition_list(data) == {("t", 0), ("u", 1)}
        with pytest.raises(admin_zk.PreferredElectionInProgressError):
            await admin_zk.request_preferred_election(zk, [("t", 0)])
