"""Exactly once with aiokafka (asyncio): transactional producer, read_committed consumer.

The scenarios are defined once in compat/txn_scenarios.py and run here through
compat/adapters/aiokafka.py (each adapter call runs its coroutine on an event loop of its own:
pytest-trio owns `async def` tests here).
"""

from __future__ import annotations

import pytest

from compat import txn_scenarios
from compat.adapters.aiokafka import AiokafkaTxn
from compat.txn_scenarios import SMALL_INTERNAL_TOPICS

pytestmark = pytest.mark.compat

BROKER_OVERRIDES = SMALL_INTERNAL_TOPICS  # a broker that starts fast


@pytest.fixture(scope="module")
def txn_client() -> AiokafkaTxn:
    """aiokafka as the shared exactly-once scenarios drive it."""
    return AiokafkaTxn()


class TestSharedScenarios(txn_scenarios.TxnScenarios):
    """The exactly-once scenarios of every client, through compat/adapters/aiokafka.py."""
