"""The pytest plugin: a session ``kbroker`` fixture any installed project gets via pytest11."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from kbroker.pytest_plugin import parse_config_lines
from tests.kbroker.conftest import RunningServer

# pytester runs a user's test session in-process, plugins loaded from entry points as in a
# real run (setuptools entry points are not disabled).
pytest_plugins = ["pytester"]

USER_TESTS = """
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

SEEN = []


def test_produce_and_consume(kbroker):
    SEEN.append(kbroker.bootstrap_servers)
    producer = Producer({"bootstrap.servers": kbroker.bootstrap_servers})
    producer.produce("plugin-topic", value=b"hello", partition=0)
    assert producer.flush(20) == 0
    consumer = Consumer({"bootstrap.servers": kbroker.bootstrap_servers, "group.id": "g",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition("plugin-topic", 0, 0)])
    msg = None
    for _ in range(40):
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            break
    consumer.close()
    assert msg is not None and msg.value() == b"hello"
    Path("data_dir.txt").write_text(str(kbroker.data_dir))


def test_same_broker_for_the_session(kbroker):
    # Session scope: the second test sees the first one's broker and topic.
    assert SEEN == [kbroker.bootstrap_servers]
    admin = AdminClient({"bootstrap.servers": kbroker.bootstrap_servers})
    topics = admin.list_topics(timeout=20).topics
    assert "plugin-topic" in topics
    assert len(topics["plugin-topic"].partitions) == 4  # from kbroker_config in pytest.ini
"""

PYTEST_INI = """
[pytest]
kbroker_config =
    # Kafka broker names, one per line
    num.partitions=4
"""


FACTORY_TESTS = """
import socket
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

ADDRESSES = []


def test_fresh_brokers_with_their_own_settings(kbroker_factory, tmp_path):
    first = kbroker_factory()
    second = kbroker_factory({"num.partitions": 2})
    assert first.bootstrap_servers != second.bootstrap_servers
    assert first.data_dir != second.data_dir and first.data_dir.parent == tmp_path
    producer = KafkaProducer(bootstrap_servers=second.bootstrap_servers)
    producer.send("words", b"hello", partition=1).get(timeout=20)
    producer.close()
    admin = KafkaAdminClient(bootstrap_servers=second.bootstrap_servers)
    (topic,) = admin.describe_topics(["words"])
    admin.close()
    assert len(topic["partitions"]) == 2  # the call's setting, over the ini's 4
    ADDRESSES.extend(b.address for b in (first, second))


def test_a_first_group_consumer_gets_records_within_three_seconds(kbroker_factory):
    # The dev default group.initial.rebalance.delay.ms=0: a one-member group is assigned at
    # once, as with Kafka's shipped server.properties.
    broker = kbroker_factory()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    producer.send("events", b"first").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(
        "events",
        bootstrap_servers=broker.bootstrap_servers,
        group_id="my-group",
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    values = [record.value for record in consumer]
    consumer.close()
    assert values == [b"first"]


def test_restart_on_the_same_data(kbroker_factory, tmp_path):
    data = tmp_path / "kept"
    broker = kbroker_factory(data_dir=data)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    producer.send("kept", b"v").get(timeout=20)
    producer.close()
    broker.stop()
    again = kbroker_factory(data_dir=data)
    consumer = KafkaConsumer(
        "kept", bootstrap_servers=again.bootstrap_servers, auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    assert [record.value for record in consumer] == [b"v"]
    consumer.close()


def test_the_previous_tests_brokers_were_stopped():
    assert len(ADDRESSES) == 2
    for host, port in ADDRESSES:
        with socket.socket() as sock:
            assert sock.connect_ex((host, port)) != 0
"""


def _run(
    pytester: pytest.Pytester, tests: str, ini: str | None = None, *args: str
) -> pytest.RunResult:
    """Run ``tests`` (the source of test_user.py) in a user project with ``ini``."""
    pytester.makepyfile(test_user=tests)
    if ini is not None:
        pytester.makeini(ini)
    return pytester.runpytest(*args)


def test_entry_point_is_registered() -> None:
    points = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert points.get("kbroker") == "kbroker.pytest_plugin"


def test_a_user_project_gets_a_session_broker_without_any_conftest(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, USER_TESTS, PYTEST_INI)
    result.assert_outcomes(passed=2)
    data_dir = Path((pytester.path / "data_dir.txt").read_text())
    # Stopped cleanly at the end of the session: each partition log closed with its marker.
    assert (data_dir / "plugin-topic-0" / ".kafka_cleanshutdown").exists()


def test_bad_kbroker_config_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester, "def test_x(kbroker):\n    pass\n", "[pytest]\nkbroker_config = no.such.key=1\n"
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*no.such.key*"])


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "def test_x(kbroker):\n    pass\n", None, "-p", "no:kbroker")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'kbroker' not found*"])


def test_config_lines_skip_comments_and_reject_garbage() -> None:
    assert parse_config_lines(["# c", "", " num.partitions = 2 "]) == {"num.partitions": "2"}
    with pytest.raises(pytest.UsageError, match="not key=value"):
        parse_config_lines(["num.partitions"])


async def test_fixture_lives_beside_the_projects_own_server_fixture(
    kbroker: object, server: RunningServer
) -> None:
    # kbroker's own suite uses `server` / `make_server`; the plugin's `kbroker` is separate.
    bootstrap = kbroker.bootstrap_servers  # type: ignore[attr-defined]
    assert bootstrap.startswith("127.0.0.1:")
    assert int(bootstrap.rsplit(":", 1)[1]) != server.address[1]


def test_factory_gives_each_call_a_fresh_broker_stopped_after_the_test(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, FACTORY_TESTS, PYTEST_INI)
    result.assert_outcomes(passed=4)


def test_bad_factory_config_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester, "def test_x(kbroker_factory):\n    kbroker_factory({'no.such.key': 1})\n"
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*no.such.key*"])
