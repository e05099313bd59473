"""A served broker with a ``ClusterNode`` attached, and the connection a scripted
controller drives it through (UpdateMetadata, LeaderAndIsr, StopReplica), for tests of
the broker side of cluster mode without ZooKeeper."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from kbroker.cluster.node import ClusterNode
from kbroker.config import BrokerConfig
from kbroker.server import serve
from kbroker.wire.messages import (
    LeaderAndIsrRequest,
    StopReplicaRequest,
    UpdateMetadataRequest,
)
from tests.kbroker.conftest import RawClient

ME = 1
TOPIC_ID = uuid.UUID("6f1c1b0e-3d5e-4b4a-9a55-0e2c0b1e4f11")
BROKERS = {1: ("127.0.0.1", 0, "r1"), 2: ("10.0.0.2", 9092, "r2"), 3: ("10.0.0.3", 9093, None)}


class Harness:
    """A served broker with a ClusterNode, and a controller's connection to it."""

    def __init__(self, server: Any, client: RawClient) -> None:
        self.server = server
        self.broker = server.broker
        self.client = client
        self.controller_epoch = 1

    def _states(
        self,
        partitions: list[tuple[str, int, int, int, list[int], list[int]]],
        state: Any,
        **extra: Any,
    ) -> dict[str, list[Any]]:
        """Each (topic, index, leader, leader epoch, replicas, isr) as a ``state`` (the
        partition state of UpdateMetadata or LeaderAndIsr: the same fields), by topic."""
        by_topic: dict[str, list[Any]] = {}
        for topic, index, leader, leader_epoch, replicas, isr in partitions:
            by_topic.setdefault(topic, []).append(
                state(
                    partition_index=index,
                    controller_epoch=self.controller_epoch,
                    leader=leader,
                    leader_epoch=leader_epoch,
                    isr=isr,
                    replicas=replicas,
                    **extra,
                )
            )
        return by_topic

    async def update_metadata(
        self,
        partitions: list[tuple[str, int, int, int, list[int], list[int]]],
        *,
        brokers: list[int] | None = None,
        controller: int = 2,
        epoch: int | None = None,
        offline: dict[tuple[str, int], list[int]] | None = None,
        broker_epoch: int = -1,
    ) -> Any:
        """partitions: (topic, index, leader, leader epoch, replicas, isr)."""
        live = []
        for b in brokers or sorted(BROKERS):
            host, port, rack = BROKERS[b]
            if b == ME:
                port = self.server.address[1]
            live.append(
                UpdateMetadataRequest.UpdateMetadataBroker(
                    id=b,
                    endpoints=[
                        UpdateMetadataRequest.UpdateMetadataEndpoint(
                            port=port, host=host, listener="PLAINTEXT", security_protocol=0
                        )
                    ],
                    rack=rack,
                )
            )
        by_topic = self._states(
            partitions, UpdateMetadataRequest.UpdateMetadataPartitionState, zk_version=0
        )
        for topic, states in by_topic.items():
            for state in states:
                state.offline_replicas = (offline or {}).get((topic, state.partition_index), [])
        request = UpdateMetadataRequest(
            controller_id=controller,
            controller_epoch=self.controller_epoch if epoch is None else epoch,
            broker_epoch=broker_epoch,
            topic_states=[
                UpdateMetadataRequest.UpdateMetadataTopicState(
                    topic_name=t,
                    topic_id=TOPIC_ID if t == "t" else uuid.uuid4(),
                    partition_states=p,
                )
                for t, p in by_topic.items()
            ],
            live_brokers=live,
        )
        return await self.client.request(request, version=7)

    async def leader_and_isr(
        self,
        partitions: list[tuple[str, int, int, int, list[int], list[int]]],
        *,
        epoch: int | None = None,
        topic_id: uuid.UUID = TOPIC_ID,
        partition_epoch: int = 0,
    ) -> Any:
        by_topic = self._states(
            partitions,
            LeaderAndIsrRequest.LeaderAndIsrPartitionState,
            partition_epoch=partition_epoch,
            is_new=True,
        )
        request = LeaderAndIsrRequest(
            controller_id=2,
            controller_epoch=self.controller_epoch if epoch is None else epoch,
            broker_epoch=-1,
            type=0,
            topic_states=[
                LeaderAndIsrRequest.LeaderAndIsrTopicState(
                    topic_name=t, topic_id=topic_id, partition_states=p
                )
                for t, p in by_topic.items()
            ],
            live_leaders=[],
        )
        return await self.client.request(request, version=5)

    async def stop_replica(self, topic: str, *indexes: int, delete: bool) -> Any:
        """StopReplica of partitions ``indexes`` of ``topic``, in one request."""
        request = StopReplicaRequest(
            controller_id=2,
            controller_epoch=self.controller_epoch,
            broker_epoch=-1,
            topic_states=[
                StopReplicaRequest.StopReplicaTopicState(
                    topic_name=topic,
                    partition_states=[
                        StopReplicaRequest.StopReplicaPartitionState(
                            partition_index=index, leader_epoch=-1, delete_partition=delete
                        )
                        for index in indexes
                    ],
                )
            ],
        )
        return await self.client.request(request, version=3)


@asynccontextmanager
async def served(nursery: trio.Nursery, tmp_path: Path, **props: str) -> AsyncIterator[Harness]:
    """Broker ``ME`` served in ``nursery`` with a ClusterNode but no ZooKeeper (the test
    plays the controller), its data in ``tmp_path``, with the extra config ``props``."""
    config = BrokerConfig.from_properties(
        {
            "listeners": "PLAINTEXT://127.0.0.1:0",
            "log.dirs": str(tmp_path / "data"),
            "broker.id": str(ME),
            **props,
        }
    )
    server = await nursery.start(serve, config)
    # What serve() builds with a ZooKeeper session; the tests play the controller instead.
    server.broker.cluster = ClusterNode(server.broker, zk=None)
    client = RawClient(await trio.open_tcp_stream(*server.address))
    try:
        yield Harness(server, client)
    finally:
        await client.aclose()
        server.shutdown()
