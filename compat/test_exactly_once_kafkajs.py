"""Exactly-once with kafkajs (its own protocol implementation): transactions and sendOffsets.

kafkajs's transactional producer drives InitProducerId, AddPartitionsToTxn, EndTxn and,
for sendOffsets, AddOffsetsToTxn and TxnOffsetCommit. The scenarios are defined once in
compat/txn_scenarios.py and drive kafkajs through compat/adapters/kafkajs.py.
"""

from __future__ import annotations

import pytest

from compat import txn_scenarios
from compat.adapters.kafkajs import KafkajsClient, KafkajsTxn
from compat.livebroker import LiveBroker
from compat.test_kafkajs import broker, client, node  # noqa: F401 - fixtures of that module

pytestmark = pytest.mark.compat


def test_commit_abort_commit_counts_per_isolation_level(
    client: KafkajsClient,  # noqa: F811
    broker: LiveBroker,  # noqa: F811
    topic_name: str,
) -> None:
    """read_committed sees the two committed transactions only; read_uncommitted sees all 15."""
    txn_scenarios.commit_abort_commit_counts_per_isolation_level(
        KafkajsTxn(client), broker, topic_name
    )


def test_consume_transform_produce_with_offsets(
    client: KafkajsClient,  # noqa: F811
    broker: LiveBroker,  # noqa: F811
    topic_name: str,
) -> None:
    """Output and consumed offsets commit together: all 10 transformed, group offset 10."""
    txn_scenarios.consume_transform_produce_with_offsets(KafkajsTxn(client), broker, topic_name)


def test_zombie_is_fenced_by_new_instance(
    client: KafkajsClient,  # noqa: F811
    broker: LiveBroker,  # noqa: F811
    topic_name: str,
) -> None:
    """A new instance fences the old one: the old commit fails, only the new record is read."""
    txn_scenarios.zombie_is_fenced_by_new_instance(KafkajsTxn(client), broker, topic_name)
