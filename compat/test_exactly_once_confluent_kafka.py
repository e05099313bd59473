"""Exactly once with confluent-kafka (librdkafka): transactions, read_committed, fencing, kill -9.

The scenarios shared with the other clients are defined once in compat/txn_scenarios.py and run
here through compat/adapters/confluent_kafka.py. Every scenario is bounded: consumers read
until they reach a known end offset or a deadline, and the broker runs with small internal
topics so it starts fast.
"""

from __future__ import annotations

import pytest

from compat import txn_scenarios
from compat.adapters.confluent_kafka import ConfluentKafkaTxn
from compat.txn_scenarios import SMALL_INTERNAL_TOPICS

pytestmark = pytest.mark.compat

BROKER_OVERRIDES = SMALL_INTERNAL_TOPICS  # a broker that starts fast


# -- the shared scenarios (compat/txn_scenarios.py) ---------------------------------------------
@pytest.fixture(scope="module")
def txn_client() -> ConfluentKafkaTxn:
    """confluent-kafka as the shared exactly-once scenarios drive it."""
    return ConfluentKafkaTxn()


class TestSharedScenarios(
    txn_scenarios.TxnScenarios, txn_scenarios.TxnKillScenarios, txn_scenarios.IdempotenceScenarios
):
    """The exactly-once scenarios of every client, through compat/adapters/confluent_kafka.py."""
