"""Exactly once with confluent-kafka (librdkafka): transactions, read_committed, fencing, kill -9.

The scenarios shared with the other clients are defined once in compat/txn_scenarios.py and run
here through compat/adapters/confluent_kafka.py. Every scenario is bounded: consumers read
until they reach a known end offset or a deadline, and the broker runs with small internal
topics so it starts fast.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from compat import txn_scenarios
from compat.adapters.confluent_kafka import ConfluentKafkaTxn, create_topic, read_all
from compat.livebroker import LiveBroker
from compat.txn_scenarios import SMALL_INTERNAL_TOPICS

pytestmark = pytest.mark.compat

BROKER_OVERRIDES = SMALL_INTERNAL_TOPICS  # a broker that starts fast

DEADLINE_S = 20.0


def test_idempotent_producer_survives_kill_9(same_port_broker: LiveBroker, topic_name: str) -> None:
    live = same_port_broker
    create_topic(live, topic_name)
    p = Producer(
        {
            "bootstrap.servers": live.bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 30000,
            "reconnect.backoff.max.ms": 200,
        }
    )
    errors: list[object] = []
    delivered = [0]

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered[0] += 1

    total = 20000
    killed = False
    for i in range(total):
        p.produce(topic_name, value=b"%06d" % i, on_delivery=on_delivery)
        p.poll(0)
        while len(p) > 500 and not killed:  # keep a few requests' worth in flight
            p.poll(0.002)
        if not killed and delivered[0] >= total // 4:
            # kill -9 while produce requests are in flight (some written, not answered).
            live.kill()
            live.start()  # same port: the producer reconnects and retries
            killed = True
    assert killed
    assert p.flush(DEADLINE_S * 2) == 0
    assert errors == []
    values = read_all(live, topic_name, "read_uncommitted")
    assert sorted(values) == [b"%06d" % i for i in range(total)]  # each exactly once
    assert values == sorted(values)  # and in order


class TestIdempotence(txn_scenarios.IdempotenceScenarios):
    """Idempotent retries through lost responses, through compat/adapters/confluent_kafka.py."""


# -- the shared scenarios (compat/txn_scenarios.py) ---------------------------------------------
@pytest.fixture(scope="module")
def txn_client() -> ConfluentKafkaTxn:
    """confluent-kafka as the shared exactly-once scenarios drive it."""
    return ConfluentKafkaTxn()


class TestSharedScenarios(txn_scenarios.TxnScenarios, txn_scenarios.TxnKillScenarios):
    """The exactly-once scenarios of every client, through compat/adapters/confluent_kafka.py."""
