"""DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and DescribeLogDirs over the wire.

What users rely on: the values, sources and synonyms Kafka tools print; that a
changed retention / segment setting reaches the live partition logs and
survives a restart; and Kafka's codes and messages for every refusal.
"""

from __future__ import annotations

import os
import types
from typing import Any

import pytest

from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AlterConfigsRequest,
    DescribeConfigsRequest,
    DescribeLogDirsRequest,
    IncrementalAlterConfigsRequest,
)
from kbroker.wire.records import build_batch
from tests.kbroker.admin_helpers import create_topic

A = AlterConfigsRequest
I = IncrementalAlterConfigsRequest  # noqa: E741 - mirrors the other one-letter aliases
DC = DescribeConfigsRequest
L = DescribeLogDirsRequest
TOPIC, BROKER = 2, 4
DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


async def describe(
    client: Any,
    resource_type: int,
    name: str,
    keys: list[str] | None = None,
    *,
    version: int = 4,
    synonyms: bool = False,
    docs: bool = False,
) -> Any:
    """DescribeConfigs of one resource; its result."""
    body = DC(
        resources=[
            DC.DescribeConfigsResource(
                resource_type=resource_type, resource_name=name, configuration_keys=keys
            )
        ]
    )
    if version >= 1:
        body.include_synonyms = synonyms
    if version >= 3:
        body.include_documentation = docs
    response = await client.request(body, version=version)
    [result] = response.results
    assert (result.resource_type, result.resource_name) == (resource_type, name)
    return result


def by_name(result: Any) -> dict[str, Any]:
    """The described configs by name."""
    return {c.name: c for c in result.configs}


async def _alter_one(
    client: Any,
    request: Any,
    name: str,
    configs: list[Any],
    *,
    resource_type: int = TOPIC,
    version: int | None = None,
    validate_only: bool = False,
) -> tuple[int, str | None]:
    """``request`` (AlterConfigs or IncrementalAlterConfigs: the same frame) of one
    resource; (error code, message)."""
    response = await client.request(
        request(
            resources=[
                request.AlterConfigsResource(
                    resource_type=resource_type, resource_name=name, configs=configs
                )
            ],
            validate_only=validate_only,
        ),
        version=version,
    )
    [result] = response.responses
    return result.error_code, result.error_message


async def alter(
    client: Any, name: str, configs: dict[str, str | None], **kw: Any
) -> tuple[int, str | None]:
    """Legacy AlterConfigs of one resource (``kw``: resource_type, version,
    validate_only); (error code, message)."""
    entries = [A.AlterableConfig(name=k, value=v) for k, v in configs.items()]
    return await _alter_one(client, A, name, entries, **kw)


async def incremental(
    client: Any, name: str, *ops: tuple[str, int, str | None], **kw: Any
) -> tuple[int, str | None]:
    """IncrementalAlterConfigs of one resource, ``ops`` (name, operation, value) (``kw``:
    resource_type, version, validate_only); (error code, message)."""
    entries = [I.AlterableConfig(name=k, config_operation=op, value=v) for k, op, v in ops]
    return await _alter_one(client, I, name, entries, **kw)


# --- DescribeConfigs --------------------------------------------------------------------


@pytest.mark.parametrize("version", range(5))
async def test_describe_topic_every_version(server: Any, version: int) -> None:
    client = await server.connect()
    await create_topic(client, "t", configs={"retention.ms": "1000"})
    result = await describe(client, TOPIC, "t", version=version, synonyms=True, docs=True)
    assert result.error_code == 0
    configs = by_name(result)
    assert configs["retention.ms"].value == "1000"
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["cleanup.policy"].value == "delete"
    assert configs["max.message.bytes"].value == "1048588"
    assert configs["message.timestamp.type"].value == "CreateTime"
    assert configs["min.insync.replicas"].value == "1"
    assert configs["retention.bytes"].value == "-1"
    assert all(not c.read_only and not c.is_sensitive for c in result.configs)
    if version == 0:
        assert not configs["retention.ms"].is_default
        assert configs["segment.bytes"].is_default
        return
    assert configs["retention.ms"].config_source == DYNAMIC_TOPIC_CONFIG
    assert configs["segment.bytes"].config_source == DEFAULT_CONFIG
    # Synonyms: the topic override first, then the broker settings behind it.
    synonyms = [(s.name, s.value, s.source) for s in configs["retention.ms"].synonyms]
    assert synonyms[0] == ("retention.ms", "1000", DYNAMIC_TOPIC_CONFIG)
    segment = [(s.name, s.source) for s in configs["segment.bytes"].synonyms]
    assert segment == [("log.segment.bytes", DEFAULT_CONFIG)]
    if version >= 3:
        assert configs["retention.ms"].config_type == 5  # LONG
        assert configs["segment.bytes"].config_type == 3  # INT
        assert configs["cleanup.policy"].config_type == 7  # LIST
        assert configs["message.timestamp.type"].config_type == 2  # STRING
        assert configs["segment.bytes"].documentation


async def test_describe_filters_keys_and_omits_extras(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "t")
    result = await describe(
        client, TOPIC, "t", ["retention.ms", "no.such.config"], synonyms=False, docs=False
    )
    assert [c.name for c in result.configs] == ["retention.ms"]
    [entry] = result.configs
    assert entry.value == "604800000" and entry.synonyms == [] and entry.documentation is None


async def test_topic_defaults_come_from_the_broker_file(make_server: Any) -> None:
    srv = await make_server(log_retention_hours=1, log_segment_bytes=1048576)
    client = await srv.connect()
    await create_topic(client, "t")
    configs = by_name(await describe(client, TOPIC, "t", synonyms=True))
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].config_source == STATIC_BROKER_CONFIG
    assert ("log.retention.hours", "1", STATIC_BROKER_CONFIG) in [
        (s.name, s.value, s.source) for s in configs["retention.ms"].synonyms
    ]
    assert configs["segment.bytes"].value == "1048576"
    assert configs["segment.bytes"].config_source == STATIC_BROKER_CONFIG
    # ... and the partition log runs with them.
    log_config = srv.broker.topics.get("t").partitions[0].log.config
    assert (log_config.retention_ms, log_config.segment_bytes) == (3600000, 1048576)


@pytest.mark.parametrize("version", [0, 1, 4])
async def test_describe_broker(make_server: Any, version: int) -> None:
    srv = await make_server(num_partitions=3)
    client = await srv.connect()
    node = str(srv.broker.node_id)
    result = await describe(client, BROKER, node, version=version, synonyms=True)
    assert result.error_code == 0
    configs = by_name(result)
    assert configs["num.partitions"].value == "3"
    assert configs["log.segment.bytes"].value == "1073741824"
    assert configs["auto.create.topics.enable"].value == "true"
    # Dynamic broker configs are not implemented: everything is read-only.
    assert all(c.read_only for c in result.configs)
    if version == 0:
        assert not configs["num.partitions"].is_default
        assert configs["log.segment.bytes"].is_default
    else:
        assert configs["num.partitions"].config_source == STATIC_BROKER_CONFIG
        assert configs["log.segment.bytes"].config_source == DEFAULT_CONFIG
        assert [(s.name, s.value, s.source) for s in configs["num.partitions"].synonyms] == [
            ("num.partitions", "3", STATIC_BROKER_CONFIG),
            ("num.partitions", "1", DEFAULT_CONFIG),
        ]
    only = await describe(client, BROKER, node, ["num.partitions"], version=version)
    assert [c.name for c in only.configs] == ["num.partitions"]


async def test_describe_errors(server: Any) -> None:
    client = await server.connect()
    missing = await describe(client, TOPIC, "missing")
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and missing.configs == []
    bad_name = await describe(client, TOPIC, "bad name")
    assert bad_name.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    other_broker = await describe(client, BROKER, "42")
    assert other_broker.error_code == ErrorCode.INVALID_REQUEST
    assert other_broker.error_message == (
        "Unexpected broker id, expected 1 or empty string, but received 42"
    )
    not_a_number = await describe(client, BROKER, "one")
    assert not_a_number.error_code == ErrorCode.INVALID_REQUEST
    assert not_a_number.error_message == "Broker id must be an integer, but it is: one"
    unsupported = await describe(client, 99, "x")
    assert unsupported.error_code == ErrorCode.INVALID_REQUEST
    # The cluster-wide dynamic defaults: there are none, which is not an error.
    defaults = await describe(client, BROKER, "")
    assert (defaults.error_code, defaults.configs) == (0, [])


async def test_describe_many_resources_answers_each(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "a")
    response = await client.request(
        DC(
            resources=[
                DC.DescribeConfigsResource(
                    resource_type=TOPIC, resource_name=n, configuration_keys=None
                )
                for n in ("a", "missing")
            ]
        )
    )
    assert [(r.resource_name, r.error_code) for r in response.results] == [
        ("a", 0),
        ("missing", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]


# --- AlterConfigs -----------------------------------------------------------------------


@pytest.mark.parametrize("version", range(3))
async def test_alter_configs_replaces_all_overrides(server: Any, version: int) -> None:
    client = await server.connect()
    await create_topic(client, "t", configs={"retention.ms": "1000", "cleanup.policy": "compact"})
    assert await alter(
        client, "t", {"segment.bytes": "1048576", "retention.bytes": "5000"}, version=version
    ) == (0, None)
    topic = server.broker.topics.get("t")
    assert topic.configs == {"segment.bytes": "1048576", "retention.bytes": "5000"}
    configs = by_name(await describe(client, TOPIC, "t"))
    assert configs["retention.ms"].config_source == DEFAULT_CONFIG  # the override is gone
    assert configs["segment.bytes"].config_source == DYNAMIC_TOPIC_CONFIG
    # The live log runs with the new settings.
    log_config = topic.partitions[0].log.config
    assert (log_config.segment_bytes, log_config.retention_bytes) == (1048576, 5000)
    assert log_config.retention_ms == 604800000 and log_config.cleanup_policy == "delete"


async def test_alter_configs_validate_only(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "t", configs={"retention.ms": "1000"})
    assert await alter(client, "t", {"retention.ms": "2000"}, validate_only=True) == (0, None)
    assert server.broker.topics.get("t").configs == {"retention.ms": "1000"}
    code, message = await alter(client, "t", {"retention.ms": "x"}, validate_only=True)
    assert code == ErrorCode.INVALID_CONFIG


async def test_alter_configs_errors(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "t", configs={"retention.ms": "1000"})
    assert await alter(client, "missing", {"retention.ms": "1"}) == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        "The topic 'missing' does not exist.",
    )
    assert await alter(client, "t", {"retention.mss": "1"}) == (
        ErrorCode.INVALID_CONFIG,
        "Unknown topic config name: retention.mss",
    )
    code, message = await alter(client, "t", {"segment.bytes": "huge"})
    assert code == ErrorCode.INVALID_CONFIG
    assert message.startswith("Invalid value huge for configuration segment.bytes")
    assert await alter(client, "t", {"retention.ms": None}) == (
        ErrorCode.INVALID_REQUEST,
        "Null value not supported for : retention.ms",
    )
    code, message = await alter(client, "1", {"log.retention.ms": "1"}, resource_type=BROKER)
    assert code == ErrorCode.INVALID_REQUEST and "log.retention.ms" in message
    code, _ = await alter(client, "x", {"a": "b"}, resource_type=8)
    assert code == ErrorCode.INVALID_REQUEST
    assert server.broker.topics.get("t").configs == {"retention.ms": "1000"}


async def test_alter_configs_duplicates(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "t")
    resource = A.AlterConfigsResource(
        resource_type=TOPIC,
        resource_name="t",
        configs=[A.AlterableConfig(name="retention.ms", value="1")],
    )
    response = await client.request(A(resources=[resource, resource]))
    assert [(r.error_code, r.error_message) for r in response.responses] == [
        (ErrorCode.INVALID_REQUEST, "Each resource must appear at most once.")
    ] * 2
    keys = A.AlterConfigsResource(
        resource_type=TOPIC,
        resource_name="t",
        configs=[
            A.AlterableConfig(name="retention.ms", value="1"),
            A.AlterableConfig(name="retention.ms", value="2"),
        ],
    )
    response = await client.request(A(resources=[keys]))
    assert (response.responses[0].error_code, response.responses[0].error_message) == (
        ErrorCode.INVALID_REQUEST,
        "Error due to duplicate config keys",
    )
    assert server.broker.topics.get("t").configs == {}


# --- IncrementalAlterConfigs ------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
async def test_incremental_set_and_delete(server: Any, version: int) -> None:
    client = await server.connect()
    await create_topic(client, "t", configs={"retention.ms": "1000"})
    assert await incremental(
        client,
        "t",
        ("segment.bytes", SET, "2097152"),
        ("retention.ms", DELETE, None),
        version=version,
    ) == (0, None)
    topic = server.broker.topics.get("t")
    assert topic.configs == {"segment.bytes": "2097152"}
    assert topic.partitions[0].log.config.segment_bytes == 2097152
    assert topic.partitions[0].log.config.retention_ms == 604800000
    # Keys not named are kept (unlike the legacy AlterConfigs).
    assert await incremental(client, "t", ("retention.bytes", SET, "10"), version=version) == (
        0,
        None,
    )
    assert topic.configs == {"segment.bytes": "2097152", "retention.bytes": "10"}


async def test_incremental_append_and_subtract_lists(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "t")
    # APPEND starts from the default value when the topic has no override (Kafka's getParts).
    assert await incremental(client, "t", ("cleanup.policy", APPEND, "compact")) == (0, None)
    assert server.broker.topics.get("t").configs == {"cleanup.policy": "delete,compact"}
    assert await incremental(client, "t", ("cleanup.policy", APPEND, "compact")) == (0, None)
    assert await incremental(client, "t", ("cleanup.policy", SUBTRACT, "delete")) == (0, None)
    assert server.broker.topics.get("t").configs == {"cleanup.policy": "compact"}
    assert server.broker.topics.get("t").partitions[0].log.config.compact
    configs = by_name(await describe(client, TOPIC, "t", ["cleanup.policy"]))
    assert configs["cleanup.policy"].value == "compact"


async def test_incremental_errors(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "t", configs={"retention.ms": "1000"})
    assert await incremental(client, "t", ("retention.ms", APPEND, "5")) == (
        ErrorCode.INVALID_CONFIG,
        "Can't APPEND to key retention.ms because its type is not LIST.",
    )
    assert await incremental(client, "t", ("segment.ms", SUBTRACT, "5")) == (
        ErrorCode.INVALID_CONFIG,
        "Can't SUBTRACT to key segment.ms because its type is not LIST.",
    )
    assert await incremental(client, "t", ("retention.ms", 9, "5")) == (
        ErrorCode.INVALID_REQUEST,
        "Unknown operations type 9",
    )
    assert await incremental(client, "t", ("retention.ms", SET, None)) == (
        ErrorCode.INVALID_REQUEST,
        "Null value not supported for : retention.ms",
    )
    assert await incremental(client, "t", ("retention.mss", SET, "1")) == (
        ErrorCode.INVALID_CONFIG,
        "Unknown topic config name: retention.mss",
    )
    code, message = await incremental(client, "t", ("cleanup.policy", APPEND, "shred"))
    assert code == ErrorCode.INVALID_CONFIG and "cleanup.policy" in message
    assert await incremental(client, "missing", ("retention.ms", SET, "1")) == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        "The topic 'missing' does not exist.",
    )
    code, message = await incremental(
        client, "", ("log.retention.ms", SET, "1"), resource_type=BROKER
    )
    assert code == ErrorCode.INVALID_REQUEST and "log.retention.ms" in message
    # A resource is changed all or nothing: a good SET next to a bad one is not applied.
    code, _ = await incremental(
        client, "t", ("segment.bytes", SET, "2097152"), ("retention.ms", SET, "forever")
    )
    assert code == ErrorCode.INVALID_CONFIG
    assert server.broker.topics.get("t").configs == {"retention.ms": "1000"}


async def test_incremental_validate_only(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "t")
    assert await incremental(client, "t", ("retention.ms", SET, "5"), validate_only=True) == (
        0,
        None,
    )
    assert server.broker.topics.get("t").configs == {}
    assert server.broker.topics.get("t").partitions[0].log.config.retention_ms == 604800000


async def test_altered_configs_survive_a_restart(make_server: Any, tmp_path: Any) -> None:
    data = str(tmp_path / "restart")
    srv = await make_server(log_dirs=data)
    client = await srv.connect()
    await create_topic(client, "t", 2)
    assert await incremental(
        client, "t", ("retention.ms", SET, "123456"), ("cleanup.policy", SET, "compact,delete")
    ) == (0, None)
    await client.aclose()
    await srv.stop()

    again = await make_server(log_dirs=data)
    client = await again.connect()
    configs = by_name(await describe(client, TOPIC, "t"))
    assert (configs["retention.ms"].value, configs["retention.ms"].config_source) == (
        "123456",
        DYNAMIC_TOPIC_CONFIG,
    )
    assert configs["cleanup.policy"].value == "compact,delete"
    for partition in again.broker.topics.get("t").partitions:
        assert partition.log.config.retention_ms == 123456


# --- DescribeLogDirs --------------------------------------------------------------------


def append_records(partition: Any, count: int) -> None:
    """Write ``count`` records straight into a partition's log."""
    records = [
        types.SimpleNamespace(key=None, value=b"v" * 100, headers=[], timestamp=1000 + i)
        for i in range(count)
    ]
    partition.log.append(build_batch(records))


@pytest.mark.parametrize("version", range(5))
async def test_describe_log_dirs_every_version(server: Any, version: int) -> None:
    client = await server.connect()
    await create_topic(client, "logs", 2)
    topic = server.broker.topics.get("logs")
    append_records(topic.partitions[1], 10)
    response = await client.request(L(topics=None), version=version)
    [result] = response.results
    assert result.error_code == 0
    assert result.log_dir == os.path.abspath(server.broker.data_dir)
    sizes = {
        (t.name, p.partition_index): (p.partition_size, p.offset_lag, p.is_future_key)
        for t in result.topics
        for p in t.partitions
    }
    assert sizes[("logs", 0)] == (0, 0, False)
    size1 = topic.partitions[1].log.size_in_bytes
    assert size1 > 1000
    assert sizes[("logs", 1)] == (size1, 0, False)
    if version >= 4:
        # KIP-827: the volume's space.
        assert result.total_bytes > 0
        assert 0 <= result.usable_bytes <= result.total_bytes


async def test_describe_log_dirs_filters_partitions(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "a", 3)
    await create_topic(client, "b", 1)
    response = await client.request(
        L(
            topics=[
                L.DescribableLogDirTopic(topic="a", partitions=[2, 0, 9]),
                L.DescribableLogDirTopic(topic="missing", partitions=[0]),
            ]
        )
    )
    [result] = response.results
    assert [(t.name, sorted(p.partition_index for p in t.partitions)) for t in result.topics] == [
        ("a", [0, 2])
    ]
    empty = await client.request(L(topics=[]))
    assert empty.results[0].topics == []


async def test_altered_segment_and_retention_act_on_the_live_log(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "t")
    partition = server.broker.topics.get("t").partitions[0]
    log = partition.log
    append_records(partition, 5)
    assert log.segment_base_offsets() == [0]
    # Small segments: the next appends roll new segment files.
    assert await incremental(client, "t", ("segment.bytes", SET, "1024")) == (0, None)
    for _ in range(4):
        append_records(partition, 10)
    assert len(log.segment_base_offsets()) > 2
    # A size limit: retention removes the oldest segments.
    assert await incremental(client, "t", ("retention.bytes", SET, "2048")) == (0, None)
    assert log.enforce_retention() > 0
    assert log.log_start_offset > 0
    assert log.size_in_bytes <= 2048 + 1024


async def test_each_resource_is_answered_on_its_own(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "ok")
    resources = [
        ("ok", TOPIC, "retention.ms", "5"),
        ("1", BROKER, "num.partitions", "3"),
        ("missing", TOPIC, "retention.ms", "5"),
        ("ok2", 8, "root", "INFO"),
    ]
    response = await client.request(
        I(
            resources=[
                I.AlterConfigsResource(
                    resource_type=kind,
                    resource_name=name,
                    configs=[I.AlterableConfig(name=key, config_operation=SET, value=value)],
                )
                for name, kind, key, value in resources
            ]
        )
    )
    assert [(r.resource_name, r.resource_type, r.error_code) for r in response.responses] == [
        ("ok", TOPIC, 0),
        ("1", BROKER, ErrorCode.INVALID_REQUEST),
        ("missing", TOPIC, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("ok2", 8, ErrorCode.INVALID_REQUEST),
    ]
    assert server.broker.topics.get("ok").configs == {"retention.ms": "5"}


async def test_compression_levels_are_validated_and_described_as_kafka_does(server: Any) -> None:
    # KIP-390 topic configs and their validators (Kafka's CompressionType.levelValidator).
    client = await server.connect()
    await create_topic(
        client, "lv", configs={"compression.zstd.level": "-5", "compression.gzip.level": "-1"}
    )

    def levels(described: dict[str, Any]) -> dict[str, str]:
        return {c: described[f"compression.{c}.level"].value for c in ("gzip", "lz4", "zstd")}

    described = by_name(await describe(client, TOPIC, "lv"))
    assert levels(described) == {"gzip": "-1", "lz4": "9", "zstd": "-5"}
    assert described["compression.lz4.level"].config_source == DEFAULT_CONFIG
    assert described["compression.zstd.level"].config_source == DYNAMIC_TOPIC_CONFIG
    for name, value, why in [
        ("compression.gzip.level", "0", "Value must be between 1 and 9 or equal to -1"),
        ("compression.gzip.level", "10", "Value must be between 1 and 9 or equal to -1"),
        ("compression.lz4.level", "0", "Value must be at least 1"),
        ("compression.lz4.level", "18", "Value must be no more than 17"),
        ("compression.zstd.level", "23", "Value must be no more than 22"),
        ("compression.zstd.level", "-131073", "Value must be at least -131072"),
    ]:
        code, message = await alter(client, "lv", {name: value})
        assert code == ErrorCode.INVALID_CONFIG
        assert message == f"Invalid value {value} for configuration {name}: {why}"
    broker = by_name(await describe(client, BROKER, "1"))
    assert levels(broker) == {"gzip": "-1", "lz4": "9", "zstd": "3"}
