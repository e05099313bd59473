"""Broker settings and topic configs behave like Kafka's (names, defaults, validation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbroker.config import CONFIG_DEFS, BrokerConfig, ConfigError, parse_listener, parse_properties
from kbroker.errors import KafkaApiError
from kbroker.topic_config import (
    TOPIC_CONFIGS,
    ConfigSource,
    effective_topic_configs,
    to_log_config,
    validate_topic_configs,
)
from kbroker.wire.errors import ErrorCode


def test_kafka_defaults() -> None:
    config = BrokerConfig.from_properties({})
    assert config["node.id"] == 1
    assert config["num.partitions"] == 1
    assert config["auto.create.topics.enable"] is True
    assert config["message.max.bytes"] == 1048588
    assert config["socket.request.max.bytes"] == 104857600
    assert config["connections.max.idle.ms"] == 600000
    assert config["log.retention.check.interval.ms"] == 300000
    assert config["offsets.topic.num.partitions"] == 50
    # The one dev default: Kafka's shipped server.properties, not its code default of 3000.
    assert config["group.initial.rebalance.delay.ms"] == 0
    assert config.log_retention_ms == 7 * 24 * 3600 * 1000
    assert config.data_dir == Path("/tmp/kafka-logs")


def test_every_setting_is_documented() -> None:
    for name, defn in CONFIG_DEFS.items():
        assert defn.doc.strip(), name


def test_values_are_typed() -> None:
    config = BrokerConfig.from_properties(
        {
            "num.partitions": "3",
            "auto.create.topics.enable": "FALSE",
            "log.cleanup.policy": "compact, delete",
            "log.cleaner.min.cleanable.ratio": "0.25",
        }
    )
    assert config["num.partitions"] == 3
    assert config["auto.create.topics.enable"] is False
    assert config["log.cleanup.policy"] == ["compact", "delete"]
    assert config["log.cleaner.min.cleanable.ratio"] == 0.25


@pytest.mark.parametrize(
    "props, fragment",
    [
        ({"no.such.setting": "1"}, "unknown config key 'no.such.setting'"),
        (
            {"log.retention.hour": "1"},
            "unknown config key 'log.retention.hour' (did you mean log.retention.hours?)",
        ),
        ({"auto.create.topic.enable": "false"}, "did you mean auto.create.topics.enable?"),
        ({"ssl.keystore.type": "JKS"}, "ssl.keystore.type"),
        ({"ssl.client.auth": "always"}, "ssl.client.auth"),
        ({"ssl.enabled.protocols": "TLSv1"}, "ssl.enabled.protocols"),
        ({"listener.name.client.ssl.client.auth": "x"}, "listener.name.client.ssl.client.auth"),
        ({"listener.name.client.log.dirs": "/x"}, "is not supported"),
        ({"authorizer.class.name": "x"}, "authorizer.class.name: String must be one of"),
        ({"sasl.oauthbearer.jwks.endpoint.url": "x"}, "is not supported"),
        ({"num.partitions": "zero"}, "num.partitions"),
        ({"num.partitions": "0"}, "at least 1"),
        ({"node.id": str(2**31)}, "node.id"),
        ({"auto.create.topics.enable": "yes"}, "true or false"),
        ({"log.message.timestamp.type": "Later"}, "CreateTime"),
        ({"log.cleanup.policy": "delete,shred"}, "log.cleanup.policy"),
        ({"listeners": "localhost:9092"}, "NAME://host:port"),
        ({"listeners": "GSS://:9093"}, "uses GSS; supported: PLAINTEXT, SSL"),
        ({"listeners": "SSL://:9093,SSL://:9094"}, "used more than once"),
        ({"listeners": "PLAINTEXT://:70000"}, "port"),
        ({"broker.id": "2", "node.id": "3"}, "disagrees"),
    ],
)
def test_bad_settings_give_one_line_errors(props: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_properties(props)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_an_unknown_key_like_no_known_one_gets_no_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_properties({"no.such.setting": "1"})
    assert str(info.value) == "unknown config key 'no.such.setting'"


def test_retention_precedence_ms_over_minutes_over_hours() -> None:
    assert BrokerConfig.from_properties({"log.retention.hours": "1"}).log_retention_ms == 3600000
    assert (
        BrokerConfig.from_properties(
            {"log.retention.hours": "1", "log.retention.minutes": "2"}
        ).log_retention_ms
        == 120000
    )
    assert (
        BrokerConfig.from_properties(
            {"log.retention.minutes": "2", "log.retention.ms": "5"}
        ).log_retention_ms
        == 5
    )
    assert BrokerConfig.from_properties({"log.retention.ms": "-1"}).log_retention_ms == -1


def test_broker_id_is_a_synonym_of_node_id() -> None:
    assert BrokerConfig.from_properties({"broker.id": "7"}).node_id == 7


def test_listeners() -> None:
    config = BrokerConfig.from_properties(
        {
            "listeners": "CLIENT://0.0.0.0:9092,OTHER://:9093",
            "listener.security.protocol.map": "CLIENT:PLAINTEXT,OTHER:PLAINTEXT",
            "advertised.listeners": "CLIENT://kafka.example:19092",
        }
    )
    assert (config.listener.host, config.listener.port) == ("0.0.0.0", 9092)
    assert config.advertised_listener is not None
    assert (config.advertised_listener.host, config.advertised_listener.port) == (
        "kafka.example",
        19092,
    )
    assert parse_listener("PLAINTEXT://[::1]:9092").host == "::1"
    assert parse_listener("PLAINTEXT://:9092").host == ""


def test_inter_broker_listener_as_kafka_chooses_it() -> None:
    two = "SASL_PLAINTEXT://:9093,PLAINTEXT://:9092,INTERNAL://:9094"
    mapping = "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT"
    props = {"listeners": two, "listener.security.protocol.map": mapping}
    # security.inter.broker.protocol (default PLAINTEXT) names the listener, not the first.
    assert BrokerConfig.from_properties(props).inter_broker_listener_name == "PLAINTEXT"
    named = {**props, "inter.broker.listener.name": "internal"}
    assert BrokerConfig.from_properties(named).inter_broker_listener_name == "INTERNAL"
    both = {**named, "security.inter.broker.protocol": "PLAINTEXT"}
    with pytest.raises(ValueError, match="only one of"):
        _ = BrokerConfig.from_properties(both).inter_broker_listener_name
    missing = {**props, "inter.broker.listener.name": "OTHER"}
    with pytest.raises(ValueError, match="not in listeners"):
        _ = BrokerConfig.from_properties(missing).inter_broker_listener_name
    sasl = {**props, "inter.broker.listener.name": "SASL_PLAINTEXT"}
    with pytest.raises(ValueError, match="PLAINTEXT only"):
        _ = BrokerConfig.from_properties(sasl).inter_broker_listener_name


def test_log_dirs_first_entry_wins_over_log_dir() -> None:
    config = BrokerConfig.from_properties({"log.dirs": "/a,/b", "log.dir": "/c"})
    assert config.data_dir == Path("/a")
    assert BrokerConfig.from_properties({"log.dir": "/c"}).data_dir == Path("/c")


def test_properties_file_syntax() -> None:
    text = (
        "# comment\n"
        "! also a comment\n"
        "   \n"
        "num.partitions=3\n"
        "log.dirs : /var/lib/kafka\n"
        "broker.rack  rack-1\n"
        "listeners = PLAINTEXT://localhost:9092,\\\n"
        "            OTHER://localhost:9093\n"
        "key\\=with\\:seps = v\\u00e9\\tx\n"
        "empty=\n"
    )
    props = parse_properties(text)
    assert props == {
        "num.partitions": "3",
        "log.dirs": "/var/lib/kafka",
        "broker.rack": "rack-1",
        "listeners": "PLAINTEXT://localhost:9092,OTHER://localhost:9093",
        "key=with:seps": "vé\tx",
        "empty": "",
    }


def test_kafka_sample_server_properties_loads() -> None:
    # The settings of Kafka's own config/kraft/server.properties sample must load.
    text = """
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""
    config = BrokerConfig.from_properties(parse_properties(text))
    assert config.listener.port == 9092
    assert config.data_dir == Path("/tmp/kraft-combined-logs")


# --- topic configs ----------------------------------------------------------------------


def test_topic_config_validation() -> None:
    assert validate_topic_configs({"retention.ms": " 1000 ", "cleanup.policy": "compact"}) == {
        "retention.ms": "1000",
        "cleanup.policy": "compact",
    }
    for bad, fragment in [
        ({"retention.mss": "1"}, "Unknown topic config name"),
        ({"retention.ms": "soon"}, "retention.ms"),
        ({"retention.ms": "-2"}, "at least -1"),
        ({"cleanup.policy": "shred"}, "cleanup.policy"),
        ({"min.insync.replicas": "0"}, "at least 1"),
        ({"retention.ms": None}, "Null value"),
    ]:
        with pytest.raises(KafkaApiError) as info:
            validate_topic_configs(bad)
        assert info.value.code == ErrorCode.INVALID_CONFIG
        assert fragment in (info.value.message or "")


def test_effective_topic_configs_sources() -> None:
    broker = BrokerConfig.from_properties(
        {"log.retention.hours": "1", "log.cleanup.policy": "compact"}
    )
    effective = effective_topic_configs({"segment.bytes": "1048576"}, broker)
    assert effective["segment.bytes"] == ("1048576", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert effective["retention.ms"] == ("3600000", ConfigSource.STATIC_BROKER_CONFIG)
    assert effective["cleanup.policy"] == ("compact", ConfigSource.STATIC_BROKER_CONFIG)
    assert effective["max.message.bytes"] == ("1048588", ConfigSource.DEFAULT_CONFIG)
    assert set(effective) == set(TOPIC_CONFIGS)


def test_to_log_config_follows_overrides_and_broker() -> None:
    broker = BrokerConfig.from_properties(
        {"log.segment.bytes": "2048", "log.flush.interval.messages": "1"}
    )
    log_config = to_log_config({"retention.ms": "-1", "cleanup.policy": "compact,delete"}, broker)
    assert log_config.segment_bytes == 2048
    assert log_config.retention_ms == -1
    assert log_config.cleanup_policy == "compact,delete"
    assert log_config.fsync_every_append is True
    assert log_config.flush_interval_ms is None


def test_negative_idle_timeout_disables_it() -> None:
    import math

    assert BrokerConfig.from_properties({}).connections_max_idle_s == 600.0
    assert (
        BrokerConfig.from_properties({"connections.max.idle.ms": "-1"}).connections_max_idle_s
        == math.inf
    )
