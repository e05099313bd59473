"""kafkajs (Node.js) against a 3-broker kbroker cluster with a real ZooKeeper.

A subset of issue 14's scenarios, driven through compat/kafkajs/cluster.js (one JSON line
per run, as in test_kafkajs.py): leaders on every broker with any single broker as
bootstrap, and a produce that rides out a leader's kill -9 on kafkajs's own retries.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from compat.clusterkit import BROKERS, wait_for_leaders, wait_for_new_leader
from compat.conftest import KAFKAJS_DIR
from kbroker.cluster_runner import Cluster

pytestmark = pytest.mark.compat


DEADLINE_S = 90.0


def run(node: str, name: str, bootstrap: str, topic: str, arg: str = "") -> Any:
    """One kafkajs cluster scenario; its JSON result, or a failure with kafkajs's error."""
    args = [node, str(KAFKAJS_DIR / "cluster.js"), name, bootstrap, topic]
    proc = subprocess.run(
        args + ([arg] if arg else []), capture_output=True, text=True, timeout=DEADLINE_S
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result = json.loads(lines[-1]) if lines else {"error": {"message": "no output"}}
    if proc.returncode != 0 or "error" in result:
        pytest.fail(
            f"kafkajs {name}: {json.dumps(result.get('error'), indent=1)}\n"
            f"kafkajs log:\n{proc.stderr[-3000:]}"
        )
    return result


def test_leaders_on_every_broker_and_any_bootstrap(
    node: str,
    cluster: Cluster,
    topic_name: str,
) -> None:
    run(node, "create", cluster.address(1), topic_name, "6")
    parts = wait_for_leaders(cluster, topic_name, 6)
    assert {p.leader for p in parts.values()} == set(BROKERS)
    expected: list[str] = []
    for broker_id in BROKERS:
        seen = run(node, "metadata", cluster.address(broker_id), topic_name)
        assert seen["brokers"] == BROKERS
        assert seen["controller"] in BROKERS
        assert {p["partition"]: p["leader"] for p in seen["partitions"]} == {
            i: p.leader for i, p in parts.items()
        }
        sent = run(node, "produce", cluster.address(broker_id), topic_name, f"6:via-{broker_id}")
        assert all(r["errorCode"] == 0 for r in sent["sent"])
        expected += [f"via-{broker_id}-p{p}" for p in range(6)]
    for broker_id in BROKERS:
        got = run(node, "consume", cluster.address(broker_id), topic_name, str(len(expected)))
        assert got["values"] == sorted(expected)


def test_kill_leader_produce_rides_out_the_failover(
    node: str,
    cluster: Cluster,
    topic_name: str,
) -> None:
    run(node, "create", cluster.bootstrap_servers, topic_name, "1")
    before = wait_for_leaders(cluster, topic_name, 1)[0]
    run(node, "produce", cluster.bootstrap_servers, topic_name, "1:before")
    cluster.kill(before.leader)
    # Started while the dead broker still leads in every broker's Metadata: kafkajs's own
    # retries carry the record to the new leader.
    sent = run(node, "produce", cluster.bootstrap_servers, topic_name, "1:after")
    assert sent["sent"] == [{"partition": 0, "errorCode": 0}]
    new_leader = wait_for_new_leader(cluster, topic_name, 0, before.leader)
    assert new_leader in before.isr
    # A consumer finds the record on the new leader. ("before" was acknowledged with acks=1
    # by the old leader alone, so it may be gone with it, as in Kafka.)
    live = cluster.address(new_leader)
    assert "after-p0" in run(node, "consume", live, topic_name, "until:after-p0")["values"]
