"""A broker with two listeners, fed UpdateMetadata by a scripted controller: every client
is answered with the endpoints of the listener it came in on, and a broker without that
listener is left out, as Kafka's ZkMetadataCache does."""

from __future__ import annotations

import uuid
from pathlib import Path

import trio

from kbroker.cluster.node import ClusterNode
from kbroker.config import BrokerConfig
from kbroker.coordinator.group import partition_for
from kbroker.server import serve
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    DescribeClusterRequest,
    FindCoordinatorRequest,
    MetadataRequest,
    UpdateMetadataRequest,
)
from tests.kbroker.conftest import RawClient
from tests.kbroker.helpers import produce_request, records

R = UpdateMetadataRequest
# Brokers 1 (this one) and 2 have both listeners; broker 3 only PLAINTEXT.
PLAIN = {1: ("127.0.0.1", 0), 2: ("10.0.0.2", 9092), 3: ("10.0.0.3", 9092)}
EXTERNAL = {1: ("127.0.0.1", 0), 2: ("public-2", 19092)}


def _broker(broker_id: int, plain_port: int, external_port: int) -> R.UpdateMetadataBroker:
    endpoints = [
        R.UpdateMetadataEndpoint(
            host=PLAIN[broker_id][0], port=plain_port, listener="PLAINTEXT", security_protocol=0
        )
    ]
    if broker_id in EXTERNAL:
        host = EXTERNAL[broker_id][0]
        endpoints.append(
            R.UpdateMetadataEndpoint(
                host=host, port=external_port, listener="EXTERNAL", security_protocol=0
            )
        )
    return R.UpdateMetadataBroker(id=broker_id, endpoints=endpoints, rack=None)


async def test_each_listener_sees_its_own_endpoints(nursery: trio.Nursery, tmp_path: Path) -> None:
    config = BrokerConfig.from_properties(
        {
            "listeners": "PLAINTEXT://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(tmp_path / "data"),
            "broker.id": "1",
            "offsets.topic.num.partitions": "3",
        }
    )
    server = await nursery.start(serve, config)
    server.broker.cluster = cluster = ClusterNode(server.broker, zk=None)
    ports = server.addresses
    plain = RawClient(await trio.open_tcp_stream(*ports["PLAINTEXT"]))
    external = RawClient(await trio.open_tcp_stream(*ports["EXTERNAL"]))
    try:
        live = [_broker(1, ports["PLAINTEXT"][1], ports["EXTERNAL"][1])]
        live += [_broker(b, PLAIN[b][1], EXTERNAL.get(b, ("", 0))[1]) for b in (2, 3)]
        # t-0 led by broker 2, t-1 by broker 3 (no EXTERNAL listener); the offsets
        # partitions likewise.
        states = [
            (t, i, leader)
            for t in ("t", "__consumer_offsets")
            for i, leader in enumerate((2, 3, 1) if t != "t" else (2, 3))
        ]
        request = R(
            controller_id=2,
            controller_epoch=1,
            broker_epoch=-1,
            topic_states=[
                R.UpdateMetadataTopicState(
                    topic_name=topic,
                    topic_id=uuid.uuid4(),
                    partition_states=[
                        R.UpdateMetadataPartitionState(
                            partition_index=i,
                            controller_epoch=1,
                            leader=leader,
                            leader_epoch=0,
                            isr=[1, 2, 3],
                            zk_version=0,
                            replicas=[1, 2, 3],
                            offline_replicas=[],
                        )
                        for tt, i, leader in states
                        if tt == topic
                    ],
                )
                for topic in ("t", "__consumer_offsets")
            ],
            live_brokers=live,
        )
        assert (await plain.request(request, version=7)).error_code == 0
        # Inter-broker traffic keeps using the PLAINTEXT endpoints.
        assert (cluster.metadata.brokers[2].host, cluster.metadata.brokers[2].port) == PLAIN[2]

        md = await plain.request(MetadataRequest(topics=None), version=12)
        assert {b.node_id: (b.host, b.port) for b in md.brokers} == {
            1: ports["PLAINTEXT"],
            2: PLAIN[2],
            3: PLAIN[3],
        }
        md = await external.request(MetadataRequest(topics=None), version=12)
        assert {b.node_id: (b.host, b.port) for b in md.brokers} == {
            1: ports["EXTERNAL"],
            2: EXTERNAL[2],
        }
        (t,) = [topic for topic in md.topics if topic.name == "t"]
        answers = {p.partition_index: (p.error_code, p.leader_id) for p in t.partitions}
        # A live leader without the client's listener: LISTENER_NOT_FOUND, no leader.
        assert answers == {0: (ErrorCode.NONE, 2), 1: (ErrorCode.LISTENER_NOT_FOUND, -1)}

        described = await external.request(
            DescribeClusterRequest(include_cluster_authorized_operations=False), version=0
        )
        assert {b.broker_id: (b.host, b.port) for b in described.brokers} == {
            1: ports["EXTERNAL"],
            2: EXTERNAL[2],
        }

        # KIP-951 hints name the leader's endpoint on the client's listener, or nothing.
        resp = await external.request(
            produce_request("t", 0, records(1), extra=[(1, records(1))]), version=11
        )
        codes = {p.index: p.error_code for p in resp.responses[0].partition_responses}
        assert codes == {0: ErrorCode.NOT_LEADER_OR_FOLLOWER, 1: ErrorCode.NOT_LEADER_OR_FOLLOWER}
        assert [(n.node_id, n.host, n.port) for n in resp.node_endpoints] == [(2, *EXTERNAL[2])]

        def group_on(partition: int) -> str:
            return next(
                g for g in (f"g{i}" for i in range(200)) if partition_for(g, 3) == partition
            )

        for partition, expected in ((0, EXTERNAL[2]), (1, None)):
            resp = await external.request(
                FindCoordinatorRequest(key_type=0, coordinator_keys=[group_on(partition)]),
                version=4,
            )
            (found,) = resp.coordinators
            if expected is None:
                assert found.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
            else:
                assert (found.error_code, found.host, found.port) == (0, *expected)
    finally:
        await plain.aclose()
        await external.aclose()
        server.shutdown()
