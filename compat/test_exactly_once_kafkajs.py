"""Exactly-once with kafkajs (its own protocol implementation): transactions and sendOffsets.

kafkajs's transactional producer drives InitProducerId, AddPartitionsToTxn, EndTxn and,
for sendOffsets, AddOffsetsToTxn and TxnOffsetCommit; its consumers read read_committed
unless told otherwise. The scenarios are in compat/kafkajs/scenarios.js.
"""

from __future__ import annotations

import pytest

from compat.livebroker import LiveBroker
from compat.test_kafkajs import broker, node, scenario  # noqa: F401 - fixtures of that module

pytestmark = pytest.mark.compat


def test_commit_abort_commit_counts_per_isolation_level(
    node: str, broker: LiveBroker, topic_name: str
) -> None:  # noqa: F811
    """read_committed sees the two committed transactions only; read_uncommitted sees all 15."""
    result = scenario(node, broker, "eos_commit_abort_commit", topic_name)
    assert result["committed"] == [f"0-{i}" for i in range(5)] + [f"2-{i}" for i in range(5)]
    assert result["uncommitted"] == [f"{n}-{i}" for n in range(3) for i in range(5)]


def test_consume_transform_produce_with_offsets(
    node: str, broker: LiveBroker, topic_name: str
) -> None:  # noqa: F811
    """Output and consumed offsets commit together: all 10 transformed, group offset 10."""
    result = scenario(node, broker, "eos_consume_transform_produce", topic_name)
    assert result["committed"] == {"0": 10}
    assert result["out"] == [f"t{i}" for i in range(10)]


def test_zombie_is_fenced_by_new_instance(node: str, broker: LiveBroker, topic_name: str) -> None:  # noqa: F811
    """A new instance fences the old one: the old commit fails, only the new record is read."""
    result = scenario(node, broker, "eos_zombie_fenced", topic_name)
    # kafkajs speaks EndTxn v0-v1, where PRODUCER_FENCED is sent as INVALID_PRODUCER_EPOCH
    # (KIP-588 keeps the old code for old versions).
    assert result["fenced"]["type"] == "INVALID_PRODUCER_EPOCH", result
    assert result["records"] == ["live"]
