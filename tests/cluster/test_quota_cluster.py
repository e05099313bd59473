"""Client quotas in cluster mode: kept in ZooKeeper as Kafka keeps them (/config/users,
/config/clients with /config/changes notifications), so every broker sees them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kbroker.cluster_runner import HOST, Cluster, request
from kbroker.wire.messages import AlterClientQuotasRequest, DescribeClientQuotasRequest
from tests.cluster.real_cluster import needs_zookeeper, zk_json

pytestmark = needs_zookeeper


def _alter(
    cluster: Cluster, broker_id: int, entity: list[tuple[str, str | None]], key: str, value: float
) -> Any:
    R = AlterClientQuotasRequest
    body = R(
        entries=[
            R.EntryData(
                entity=[R.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                ops=[R.OpData(key=key, value=value, remove=False)],
            )
        ],
        validate_only=False,
    )
    return request(HOST, cluster.broker(broker_id).port, body, 1, timeout=30)


def _described(cluster: Cluster, broker_id: int) -> set[tuple[Any, ...]]:
    body = DescribeClientQuotasRequest(components=[], strict=False)
    resp = request(HOST, cluster.broker(broker_id).port, body, 1, timeout=30)
    assert resp.error_code == 0
    return {
        (tuple((e.entity_type, e.entity_name) for e in entry.entity), v.key, v.value)
        for entry in resp.entries
        for v in entry.values
    }


def test_quotas_are_shared_through_zookeeper(tmp_path: Path) -> None:
    with Cluster(brokers=2, config={}, data_dir=tmp_path / "cluster") as cluster:
        resp = _alter(cluster, 1, [("user", "alice")], "producer_byte_rate", 1048576.0)
        assert resp.entries[0].error_code == 0
        resp = _alter(
            cluster, 1, [("user", None), ("client-id", "app x")], "consumer_byte_rate", 2048.0
        )
        assert resp.entries[0].error_code == 0
        expected = {
            ((("user", "alice"),), "producer_byte_rate", 1048576.0),
            ((("client-id", "app x"), ("user", None)), "consumer_byte_rate", 2048.0),
        }
        deadline = time.monotonic() + 20
        while _described(cluster, 2) != expected:
            assert time.monotonic() < deadline, _described(cluster, 2)
            time.sleep(0.1)

        with cluster.zookeeper_client() as zk:
            alice = zk_json(zk, "/config/users/alice")
            assert alice == {"version": 1, "config": {"producer_byte_rate": "1048576"}}
            default = zk_json(zk, "/config/users/<default>/clients/app%20x")
            assert default["config"] == {"consumer_byte_rate": "2048"}
            notified = {
                zk_json(zk, f"/config/changes/{c}")["entity_path"]
                for c in zk.get_children("/config/changes")
            }
            assert {"users/alice", "users/<default>/clients/app%20x"} <= notified
        # A broker restarted reads them from ZooKeeper.
        cluster.restart(2)
        assert _described(cluster, 2) == expected
