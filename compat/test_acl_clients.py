"""ACLs as real clients meet them: kafka-python and confluent-kafka log in with SASL PLAIN
to a kbroker with Kafka's AclAuthorizer on, and get Kafka's authorization errors.

- a principal with Write but no Read on a topic produces, and its consumer gets
  TOPIC_AUTHORIZATION_FAILED;
- a principal without Read on its group gets GROUP_AUTHORIZATION_FAILED;
- a PREFIXED ACL grants a family of topics (and nothing else);
- a DENY overrides an ALLOW.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from compat.livebroker import LiveBroker, shared_broker

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
pytest.importorskip("kbroker.security.sasl", reason="kbroker without SASL")

from confluent_kafka import Consumer, KafkaError, Producer  # noqa: E402
from confluent_kafka.admin import (  # noqa: E402
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.errors import (  # noqa: E402
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)

PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" '
    + " ".join(f'user_{u}="{p}"' for u, p in PASSWORDS.items())
    + ";"
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    # The listener keeps its name PLAINTEXT (what the harness listens on) but speaks
    # SASL_PLAINTEXT, as Kafka's listener.security.protocol.map allows.
    overrides = {
        "listener.security.protocol.map": "PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.plaintext.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.num.partitions": "1",
    }
    with shared_broker(tmp_path_factory.mktemp("acl"), overrides=overrides) as live:
        yield live


def _librdkafka(broker: LiveBroker, user: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": broker.bootstrap_servers,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": PASSWORDS[user],
        **extra,
    }


def _kafka_python(broker: LiveBroker, user: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": user,
        "sasl_plain_password": PASSWORDS[user],
    }


def _name(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _admin(broker: LiveBroker) -> Any:
    return AdminClient(_librdkafka(broker, "admin"))


def _topics(broker: LiveBroker, *names: str) -> None:
    admin = _admin(broker)  # kept referenced: a destroyed client fails its futures
    futures = admin.create_topics([NewTopic(n, 1, 1) for n in names])
    for future in futures.values():
        future.result(30)


def _allow(
    broker: LiveBroker,
    rtype: Any,
    name: str,
    user: str,
    *ops: Any,
    pattern: Any = ResourcePatternType.LITERAL,
    permission: Any = AclPermissionType.ALLOW,
) -> None:
    bindings = [AclBinding(rtype, name, pattern, f"User:{user}", "*", op, permission) for op in ops]
    admin = _admin(broker)
    for future in admin.create_acls(bindings).values():
        future.result(30)


def _write_only_topic(broker: LiveBroker) -> tuple[str, str]:
    """A new topic alice may write but not read, and a new group she may use."""
    topic, group = _name(), _name("g")
    _topics(broker, topic)
    _allow(broker, ResourceType.TOPIC, topic, "alice", AclOperation.WRITE)
    _allow(broker, ResourceType.GROUP, group, "alice", AclOperation.READ)
    return topic, group


def _confluent_produce(broker: LiveBroker, user: str, topic: str) -> Any:
    """Produce one record; the delivery error (None when delivered)."""
    results: list[Any] = []
    producer = Producer(_librdkafka(broker, user, **{"message.timeout.ms": 15000}))
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: results.append(err))
    producer.flush(30)
    assert len(results) == 1
    return results[0]


def _confluent_consume_error(broker: LiveBroker, user: str, topic: str, group: str) -> Any:
    """The first error a consumer of ``topic`` in ``group`` polls (None if it gets a record)."""
    consumer = Consumer(
        _librdkafka(broker, user, **{"group.id": group, "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            return msg.error()
        raise AssertionError("neither a record nor an error within 30 s")
    finally:
        consumer.close()


# --- confluent-kafka ------------------------------------------------------------------


def test_confluent_write_without_read_produces_but_cannot_consume(broker: LiveBroker) -> None:
    topic, group = _write_only_topic(broker)
    assert _confluent_produce(broker, "alice", topic) is None
    error = _confluent_consume_error(broker, "alice", topic, group)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_confluent_no_read_on_the_group(broker: LiveBroker) -> None:
    topic, group = _name(), _name("g")
    _topics(broker, topic)
    _allow(broker, ResourceType.TOPIC, topic, "bob", AclOperation.READ, AclOperation.WRITE)
    assert _confluent_produce(broker, "bob", topic) is None
    error = _confluent_consume_error(broker, "bob", topic, group)
    assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_confluent_prefixed_acl_grants_a_family_and_deny_overrides(broker: LiveBroker) -> None:
    family = _name("fam")
    _topics(broker, f"{family}-a", f"{family}-b", f"{family}-locked", _name("other"))
    _allow(
        broker,
        ResourceType.TOPIC,
        f"{family}-",
        "alice",
        AclOperation.WRITE,
        pattern=ResourcePatternType.PREFIXED,
    )
    _allow(
        broker,
        ResourceType.TOPIC,
        f"{family}-locked",
        "alice",
        AclOperation.WRITE,
        permission=AclPermissionType.DENY,
    )
    assert _confluent_produce(broker, "alice", f"{family}-a") is None
    assert _confluent_produce(broker, "alice", f"{family}-b") is None
    denied = _confluent_produce(broker, "alice", f"{family}-locked")
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    outside = _confluent_produce(broker, "alice", f"x{family}-a")
    assert outside is not None and outside.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


# --- kafka-python -----------------------------------------------------------------------


def _kp_produce(broker: LiveBroker, user: str, topic: str) -> None:
    producer = KafkaProducer(**_kafka_python(broker, user), max_block_ms=15000)
    try:
        producer.send(topic, b"v").get(timeout=30)
    finally:
        producer.close(timeout=10)


def _kp_consume(broker: LiveBroker, user: str, topic: str, group: str) -> None:
    consumer = KafkaConsumer(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        consumer_timeout_ms=20000,
        **_kafka_python(broker, user),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if consumer.poll(timeout_ms=500):
                return
        raise AssertionError("nothing consumed within 30 s")
    finally:
        consumer.close()


def test_kafka_python_write_without_read_produces_but_cannot_consume(broker: LiveBroker) -> None:
    topic, group = _write_only_topic(broker)
    _kp_produce(broker, "alice", topic)
    with pytest.raises(TopicAuthorizationFailedError):
        _kp_consume(broker, "alice", topic, group)


def test_kafka_python_no_read_on_the_group(broker: LiveBroker) -> None:
    topic, group = _name(), _name("g")
    _topics(broker, topic)
    _allow(broker, ResourceType.TOPIC, topic, "bob", AclOperation.READ, AclOperation.WRITE)
    _kp_produce(broker, "bob", topic)
    with pytest.raises(GroupAuthorizationFailedError):
        _kp_consume(broker, "bob", topic, group)


def test_kafka_python_prefixed_acl_and_deny(broker: LiveBroker) -> None:
    family = _name("kfam")
    _topics(broker, f"{family}-a", f"{family}-locked")
    _allow(
        broker,
        ResourceType.TOPIC,
        f"{family}-",
        "bob",
        AclOperation.WRITE,
        AclOperation.READ,
        pattern=ResourcePatternType.PREFIXED,
    )
    _allow(
        broker,
        ResourceType.GROUP,
        "kp-",
        "bob",
        AclOperation.READ,
        pattern=ResourcePatternType.PREFIXED,
    )
    _allow(
        broker,
        ResourceType.TOPIC,
        f"{family}-locked",
        "bob",
        AclOperation.WRITE,
        permission=AclPermissionType.DENY,
    )
    _kp_produce(broker, "bob", f"{family}-a")
    _kp_consume(broker, "bob", f"{family}-a", _name("kp-"))
    with pytest.raises(TopicAuthorizationFailedError):
        _kp_produce(broker, "bob", f"{family}-locked")
