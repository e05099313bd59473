"""Exactly-once with kafkajs (its own protocol implementation): transactions and sendOffsets.

kafkajs's transactional producer drives InitProducerId, AddPartitionsToTxn, EndTxn and,
for sendOffsets, AddOffsetsToTxn and TxnOffsetCommit. The scenarios are defined once in
compat/txn_scenarios.py and drive kafkajs through compat/adapters/kafkajs.py.
"""

from __future__ import annotations

import pytest

from compat import txn_scenarios
from compat.adapters.kafkajs import KafkajsClient, KafkajsTxn
from compat.livebroker import GROUP_BROKER_OVERRIDES
from compat.test_kafkajs import client  # noqa: F401 - the module's kafkajs driver fixture

pytestmark = pytest.mark.compat

BROKER_OVERRIDES = GROUP_BROKER_OVERRIDES  # kafkajs always consumes through groups


@pytest.fixture(scope="module")
def txn_client(client: KafkajsClient) -> KafkajsTxn:  # noqa: F811
    """kafkajs as the shared exactly-once scenarios drive it (the module's node driver)."""
    return KafkajsTxn(client)


class TestSharedScenarios(txn_scenarios.TxnScenarios):
    """The exactly-once scenarios of every client, through compat/adapters/kafkajs.py."""
