"""Exactly once with kafka-python 3.x: idempotent and transactional KafkaProducer, read_committed.

The scenarios shared with the other clients are defined once in compat/txn_scenarios.py and run
here through compat/adapters/kafka_python.py; the rest are bounded the same way.
"""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient

from compat import txn_scenarios
from compat.adapters.kafka_python import KafkaPythonTxn, create_topic, read_all
from compat.livebroker import LiveBroker
from compat.txn_scenarios import SMALL_INTERNAL_TOPICS

pytestmark = pytest.mark.compat

BROKER_OVERRIDES = SMALL_INTERNAL_TOPICS  # a broker that starts fast


def test_transaction_tooling_lists_describes_and_aborts(
    broker: LiveBroker, topic_name: str
) -> None:
    # What kafka-transactions.sh does: list, describe, describe-producers, abort.
    from kafka.admin import AbortTransactionSpec

    create_topic(broker, topic_name)
    tid = f"tool-{topic_name}"
    p = KafkaPythonTxn.tx_producer(broker, tid).producer
    p.begin_transaction()
    p.send(topic_name, value=b"open")
    p.flush()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        by_broker = admin.list_transactions(state_filters=["Ongoing"])
        assert tid in {t.transactional_id for ts in by_broker.values() for t in ts}
        desc = admin.describe_transactions([tid])[tid]
        assert str(desc.state).lower().endswith("ongoing")
        assert desc.topic_partitions == {TopicPartition(topic_name, 0)}
        tp = TopicPartition(topic_name, 0)
        (producer,) = admin.describe_producers([tp])[tp].active_producers
        assert producer.producer_id == desc.producer_id
        assert producer.current_transaction_start_offset == 0
        # An operator aborts the open transaction on the partition (WriteTxnMarkers).
        admin.abort_transaction(AbortTransactionSpec(tp, desc.producer_id, desc.producer_epoch))
    finally:
        admin.close()
        p.close(timeout=1)
    assert read_all(broker, topic_name, "read_committed") == []
    assert read_all(broker, topic_name, "read_uncommitted") == [b"open"]


# -- the shared scenarios (compat/txn_scenarios.py) ---------------------------------------------
@pytest.fixture(scope="module")
def txn_client() -> KafkaPythonTxn:
    """kafka-python as the shared exactly-once scenarios drive it."""
    return KafkaPythonTxn()


class TestSharedScenarios(
    txn_scenarios.TxnScenarios, txn_scenarios.TxnKillScenarios, txn_scenarios.IdempotenceScenarios
):
    """The exactly-once scenarios of every client, through compat/adapters/kafka_python.py."""
