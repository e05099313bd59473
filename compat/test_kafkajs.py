"""kafkajs (Node.js, pure JavaScript protocol implementation) against a live kbroker.

The scenarios shared with the other clients are defined once in compat/record_scenarios.py and
drive kafkajs through compat/adapters/kafkajs.py (a node process answering one JSON request a
line, compat/kafkajs/driver.js). The rest are functions of compat/kafkajs/scenarios.js, run
with node; each prints one JSON line of what kafkajs observed and this module asserts on it. kafkajs is pinned in
compat/kafkajs/package.json (+ package-lock.json) and installed with `npm ci` into
compat/kafkajs/node_modules (gitignored) the first time. A missing node/npm is a failure,
never a skip. kafkajs consumes only through groups (it has no assign()), so the consume
scenarios read with a fresh group from the beginning.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from compat import group_scenarios, record_scenarios
from compat.adapters.kafkajs import KafkajsClient, KafkajsGroups
from compat.conftest import DEFAULT_CONFIG, DYNAMIC_TOPIC_CONFIG, KAFKAJS_DIR
from compat.livebroker import GROUP_BROKER_OVERRIDES, LiveBroker

pytestmark = pytest.mark.compat

# kafkajs always consumes through groups: a short initial rebalance delay.
BROKER_OVERRIDES = GROUP_BROKER_OVERRIDES
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def client(node: str) -> Iterator[KafkajsClient]:
    """kafkajs as the shared scenarios drive it (compat/kafkajs/driver.js)."""
    adapter = KafkajsClient(node)
    try:
        yield adapter
    finally:
        adapter.close()


def scenario(node: str, broker: LiveBroker, name: str, topic: str) -> Any:
    """Run one kafkajs scenario; its JSON result, or a failure with kafkajs's own error."""
    args = [node, str(KAFKAJS_DIR / "scenarios.js"), name, broker.bootstrap_servers, topic]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=DEADLINE_S)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result = json.loads(lines[-1]) if lines else {"error": {"message": "no output"}}
    if proc.returncode != 0 or "error" in result:
        error = result.get("error", {})
        pytest.fail(
            f"kafkajs {name}: {error.get('name')}: {error.get('message')} "
            f"(type {error.get('type')})\n{json.dumps(error, indent=1)}\n"
            f"kafkajs log:\n{proc.stderr[-3000:]}"
        )
    return result


def test_bootstrap(node: str, broker: LiveBroker, topic_name: str) -> None:
    """describeCluster names the one broker at the bootstrap address; topic metadata works."""
    result = scenario(node, broker, "bootstrap", topic_name)
    cluster = result["cluster"]
    assert [(b["nodeId"], b["host"], b["port"]) for b in cluster["brokers"]] == [
        (1, broker.host, broker.port)
    ]
    assert cluster["controller"] == 1 and cluster["clusterId"]
    assert result["created"] is True
    assert result["partitions"] == [{"id": 0, "leader": 1}, {"id": 1, "leader": 1}]


def test_create_topic_with_configs(node: str, broker: LiveBroker, topic_name: str) -> None:
    """CreateTopics applies configs; a bad value is INVALID_CONFIG; a duplicate is reported."""
    result = scenario(node, broker, "create_topic_with_configs", topic_name)
    assert result["created"] is True
    assert result["configs"]["retention.ms"] == {"value": "3600000", "isDefault": False}
    assert result["configs"]["cleanup.policy"] == {"value": "compact", "isDefault": False}
    assert result["configs"]["segment.bytes"] == {"value": "1073741824", "isDefault": True}
    assert result["again"] is False  # kafkajs's way of saying TOPIC_ALREADY_EXISTS
    assert [e["type"] for e in result["badConfig"]["errors"]] == ["INVALID_CONFIG"]


def test_alter_configs_legacy(node: str, broker: LiveBroker, topic_name: str) -> None:
    """AlterConfigs (pre-KIP-339) replaces the whole override set: omitted keys revert."""
    configs = scenario(node, broker, "alter_configs_legacy", topic_name)["configs"]
    assert configs["retention.ms"]["value"] == "90000"
    assert configs["max.message.bytes"]["value"] == "20000"
    assert configs["retention.ms"]["source"] == DYNAMIC_TOPIC_CONFIG
    assert configs["cleanup.policy"] == {
        "value": "delete",
        "isDefault": True,
        "source": DEFAULT_CONFIG,
    }


def test_consume_from_timestamp(node: str, broker: LiveBroker, topic_name: str) -> None:
    """ListOffsets by timestamp finds the first record at or after it; a seek reads from there."""
    result = scenario(node, broker, "consume_from_timestamp", topic_name)
    found = result["found"]
    assert (found["mid"], found["before"], found["after"]) == (
        [{"partition": 0, "offset": "2"}],
        [{"partition": 0, "offset": "0"}],
        [{"partition": 0, "offset": "5"}],
    )
    base = 1_700_000_000_000
    assert [(r["offset"], r["value"], r["timestamp"]) for r in result["records"]] == [
        (2, "t2", base + 2000),
        (3, "t3", base + 3000),
        (4, "t4", base + 4000),
    ]


def test_headers_and_create_time(node: str, broker: LiveBroker, topic_name: str) -> None:
    """Headers and the producer's CreateTime timestamp come back unchanged."""
    [record] = scenario(node, broker, "headers_and_create_time", topic_name)["records"]
    assert (record["key"], record["value"], record["timestamp"]) == ("k", "v", 1_600_000_000_123)
    assert record["headers"] == {"h1": "one", "h2": ""}


def test_consume_from_beginning(node: str, broker: LiveBroker, topic_name: str) -> None:
    """A new group with fromBeginning reads every record from 0; ListOffsets agrees."""
    result = scenario(node, broker, "consume_from_beginning", topic_name)
    assert result["offsets"] == [{"partition": 0, "offset": "10", "high": "10", "low": "0"}]
    assert [(r["offset"], r["value"]) for r in result["records"]] == [
        (i, f"m{i}") for i in range(10)
    ]


def test_group_subscribe_and_consume(
    client: KafkajsClient, broker: LiveBroker, topic_name: str
) -> None:
    """A member gets every partition, reads all, commits; admin lists and describes the group."""
    groups = KafkajsGroups(client)
    group = f"g-{topic_name}"
    group_scenarios.consume_all_and_commit(groups, broker, topic_name, group)
    assert groups.describe(broker, group) == {"listed": True, "state": "Empty", "members": 0}


def test_group_commit_and_fetch_offsets(
    client: KafkajsClient, broker: LiveBroker, topic_name: str
) -> None:
    """admin.setOffsets commits; fetchOffsets reads them back; a member resumes there."""
    groups = KafkajsGroups(client)
    group = f"g-{topic_name}"
    groups.create_topic(broker, topic_name, 2)
    groups.produce(broker, topic_name, 2, 10)
    groups.set_offsets(broker, group, topic_name, {0: 7, 1: 3})
    assert groups.committed(broker, group, topic_name, 2) == {0: 7, 1: 3}
    group_scenarios.resumes_at_commits_7_and_3(groups, broker, topic_name, group)


# -- the shared scenarios (compat/record_scenarios.py) ------------------------------------------
class TestSharedScenarios(record_scenarios.ProduceScenarios, record_scenarios.AdminScenarios):
    """The scenarios every client runs, through compat/adapters/kafkajs.py (``client``)."""

    topic_codec = "gzip"
    producer_codecs = (None,)  # no lz4 in kafkajs without a plugin: uncompressed only

    @pytest.mark.parametrize("codec", ["gzip"])  # kafkajs's only built-in codec
    def test_compression(
        self, client: KafkajsClient, broker: LiveBroker, topic_name: str, codec: str
    ) -> None:
        super().test_compression(client, broker, topic_name, codec)

    def test_delete_topic(self, client: KafkajsClient, broker: LiveBroker, topic_name: str) -> None:
        super().test_delete_topic(client, broker, topic_name)
        # kafkajs retries the retriable UNKNOWN_TOPIC_OR_PARTITION of the second deletion (the
        # last admin call that could fail), then wraps it (as with Kafka).
        again = client.last_error
        assert again is not None and again["name"] == "KafkaJSNumberOfRetriesExceeded", again
        assert (again["cause"]["type"], again["cause"]["code"]) == (
            "UNKNOWN_TOPIC_OR_PARTITION",
            3,
        )
