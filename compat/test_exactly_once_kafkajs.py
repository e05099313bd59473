"""Exactly-once with kafkajs (its own protocol implementation): transactions and sendOffsets.

kafkajs's transactional producer drives InitProducerId, AddPartitionsToTxn, EndTxn and,
for sendOffsets, AddOffsetsToTxn and TxnOffsetCommit. The scenarios are defined once in
compat/txn_scenarios.py and drive kafkajs through compat/adapters/kafkajs.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from compat import txn_scenarios
from compat.adapters.kafkajs import KafkajsClient, KafkajsTxn
from compat.livebroker import GROUP_BROKER_OVERRIDES

pytestmark = pytest.mark.compat

BROKER_OVERRIDES = GROUP_BROKER_OVERRIDES  # kafkajs always consumes through groups


@pytest.fixture(scope="module")
def txn_client(node: str) -> Iterator[KafkajsTxn]:
    """kafkajs as the shared exactly-once scenarios drive it (a node driver for the module)."""
    client = KafkajsClient(node)
    try:
        yield KafkajsTxn(client)
    finally:
        client.close()


class TestSharedScenarios(txn_scenarios.TxnScenarios):
    """The exactly-once scenarios of every client, through compat/adapters/kafkajs.py."""
