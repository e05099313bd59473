"""The broker's own ZooKeeper use against a real ZooKeeper: producer id blocks shared by
brokers, and joining a cluster (chroot created, /cluster/id read or created)."""

from __future__ import annotations

import json

import trio

from kbroker.cluster.node import open_zookeeper
from kbroker.cluster.producer_ids import ClusterProducerIds
from kbroker.cluster.zk import ZkClient
from kbroker.config import BrokerConfig
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode


async def test_two_brokers_never_hand_out_the_same_producer_id(zk_connect: str) -> None:
    async with await ZkClient.connect(zk_connect) as zk:
        one, two = ClusterProducerIds(zk, 1), ClusterProducerIds(zk, 2)
        try:
            one.next_id()
        except KafkaApiError as exc:
            # No block taken yet: retriable, as Kafka's RPCProducerIdManager answers.
            assert exc.code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        else:
            raise AssertionError("an id before any block was taken")
        seen: list[int] = []

        async def take(manager: ClusterProducerIds, n: int) -> None:
            for _ in range(n):
                await manager.ensure()
                seen.append(manager.next_id())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(take, one, 1500)
            nursery.start_soon(take, two, 1500)
        assert len(seen) == len(set(seen)) == 3000
        data, _ = await zk.get("/latest_producer_id_block")
        block = json.loads(data)
        assert block["version"] == 1 and int(block["block_end"]) >= 3999


async def test_joining_creates_the_chroot_and_shares_one_cluster_id(zk_connect: str) -> None:
    config = BrokerConfig.from_properties({"zookeeper.connect": zk_connect, "broker.id": "1"})
    first, cluster_id = await open_zookeeper(config)
    await first.close()
    other = BrokerConfig.from_properties({"zookeeper.connect": zk_connect, "broker.id": "2"})
    second, same = await open_zookeeper(other)
    try:
        assert same == cluster_id and len(cluster_id) == 22
        data, _ = await second.get("/cluster/id")
        assert json.loads(data) == {"version": "1", "id": cluster_id}
    finally:
        await second.close()
