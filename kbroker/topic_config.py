"""Topic-level configs: Kafka's names, types, validators and broker synonyms.

A topic stores only its overrides (``dict[str, str]``). The effective value of
a config is the override if set, else the broker setting it is a synonym of
(``retention.ms`` ← ``log.retention.ms``/``minutes``/``hours``, ...), else
Kafka's default. ``effective_topic_configs`` reports the value with its
DescribeConfigs source, and ``to_log_config`` turns the result into the
``log.LogConfig`` a ``PartitionLog`` runs with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from kbroker.config import (
    LONG_MAX,
    BrokerConfig,
    ConfigDef,
    Validator,
    at_least,
    convert,
    gzip_level,
)
from kbroker.config import in_range as _in_range
from kbroker.config import one_of as _one_of
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.log.config import LogConfig


class ConfigSource(IntEnum):
    """DescribeConfigs ``ConfigSource`` values (DescribeConfigsResponse v1+)."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


@dataclass(frozen=True, slots=True)
class TopicConfigDef:
    """A topic config: Kafka type, default, validator and the broker setting it falls back to."""

    name: str
    type: str
    default: Any
    synonym: str | None  # broker setting, or None
    validator: Validator | None = None
    # For synonyms whose broker value is derived (retention.ms from ms/minutes/hours):
    broker_value: Callable[[BrokerConfig], Any] | None = None
    broker_synonyms: tuple[str, ...] = ()  # every broker name that feeds broker_value


def _t(
    name: str,
    kind: str,
    default: Any,
    synonym: str | None,
    validator: Validator | None = None,
    **extra: Any,
) -> TopicConfigDef:
    return TopicConfigDef(name, kind, default, synonym, validator, **extra)


def _flush_ms(config: BrokerConfig) -> Any:
    # log.flush.interval.ms unset means "never by time", which Kafka shows as Long.MAX.
    value = config["log.flush.interval.ms"]
    return LONG_MAX if value is None else value


TOPIC_CONFIGS: dict[str, TopicConfigDef] = {
    d.name: d
    for d in (
        _t(
            "cleanup.policy", "list", ["delete"], "log.cleanup.policy", _one_of("delete", "compact")
        ),
        _t(
            "compression.type",
            "string",
            "producer",
            "compression.type",
            _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
        ),
        _t("compression.gzip.level", "int", -1, "compression.gzip.level", gzip_level()),
        _t("compression.lz4.level", "int", 9, "compression.lz4.level", _in_range(1, 17)),
        _t("compression.zstd.level", "int", 3, "compression.zstd.level", _in_range(-131072, 22)),
        _t("delete.retention.ms", "long", 86400000, "log.cleaner.delete.retention.ms", at_least(0)),
        _t("file.delete.delay.ms", "long", 60000, "log.segment.delete.delay.ms", at_least(0)),
        _t("flush.messages", "long", LONG_MAX, "log.flush.interval.messages", at_least(1)),
        _t(
            "flush.ms",
            "long",
            LONG_MAX,
            "log.flush.interval.ms",
            at_least(0),
            broker_value=_flush_ms,
            broker_synonyms=("log.flush.interval.ms",),
        ),
        _t("follower.replication.throttled.replicas", "list", [], None),
        _t("leader.replication.throttled.replicas", "list", [], None),
        _t("index.interval.bytes", "int", 4096, "log.index.interval.bytes", at_least(0)),
        _t("local.retention.bytes", "long", -2, None, at_least(-2)),
        _t("local.retention.ms", "long", -2, None, at_least(-2)),
        _t(
            "max.compaction.lag.ms",
            "long",
            LONG_MAX,
            "log.cleaner.max.compaction.lag.ms",
            at_least(1),
        ),
        _t("max.message.bytes", "int", 1048588, "message.max.bytes", at_least(0)),
        _t("message.downconversion.enable", "boolean", True, "log.message.downconversion.enable"),
        _t(
            "message.timestamp.after.max.ms",
            "long",
            LONG_MAX,
            "log.message.timestamp.after.max.ms",
            at_least(0),
        ),
        _t(
            "message.timestamp.before.max.ms",
            "long",
            LONG_MAX,
            "log.message.timestamp.before.max.ms",
            at_least(0),
        ),
        _t(
            "message.timestamp.difference.max.ms",
            "long",
            LONG_MAX,
            "log.message.timestamp.difference.max.ms",
            at_least(0),
        ),
        _t(
            "message.timestamp.type",
            "string",
            "CreateTime",
            "log.message.timestamp.type",
            _one_of("CreateTime", "LogAppendTime"),
        ),
        _t(
            "min.cleanable.dirty.ratio",
            "double",
            0.5,
            "log.cleaner.min.cleanable.ratio",
            _in_range(0, 1),
        ),
        _t("min.compaction.lag.ms", "long", 0, "log.cleaner.min.compaction.lag.ms", at_least(0)),
        _t("min.insync.replicas", "int", 1, "min.insync.replicas", at_least(1)),
        _t("preallocate", "boolean", False, "log.preallocate"),
        _t("remote.storage.enable", "boolean", False, None),
        _t("retention.bytes", "long", -1, "log.retention.bytes"),
        _t(
            "retention.ms",
            "long",
            604800000,
            "log.retention.ms",
            at_least(-1),
            broker_value=lambda c: c.log_retention_ms,
            broker_synonyms=("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
        ),
        _t("segment.bytes", "int", 1073741824, "log.segment.bytes", at_least(14)),
        _t("segment.index.bytes", "int", 10485760, "log.index.size.max.bytes", at_least(4)),
        _t(
            "segment.jitter.ms",
            "long",
            0,
            "log.roll.jitter.ms",
            at_least(0),
            broker_value=lambda c: c["log.roll.jitter.ms"] or 0,
            broker_synonyms=("log.roll.jitter.ms", "log.roll.jitter.hours"),
        ),
        _t(
            "segment.ms",
            "long",
            604800000,
            "log.roll.ms",
            at_least(1),
            broker_value=lambda c: c.log_roll_ms,
            broker_synonyms=("log.roll.ms", "log.roll.hours"),
        ),
        _t("unclean.leader.election.enable", "boolean", False, "unclean.leader.election.enable"),
    )
}


def _as_def(defn: TopicConfigDef) -> ConfigDef:
    return ConfigDef(defn.name, defn.type, defn.default, "", defn.validator)


def to_text(value: Any) -> str | None:
    """Render a typed config value as Kafka shows it in DescribeConfigs.

    Kafka's ConfigDef.convertToString: lists comma-joined, booleans lower-case.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check overrides (names, non-null, types, ranges); KafkaApiError(INVALID_CONFIG).

    Returns the overrides with values normalised (stripped, canonical booleans).
    """
    result: dict[str, str] = {}
    for name, raw in configs.items():
        defn = TOPIC_CONFIGS.get(name)
        if defn is None:
            raise KafkaApiError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
        if raw is None:
            # Kafka rejects nulls in CreateTopics/AlterConfigs for topic configs.
            raise KafkaApiError(
                ErrorCode.INVALID_CONFIG, f"Null value not supported for topic configs: {name}"
            )
        try:
            value = convert(_as_def(defn), raw)
        except ValueError as exc:
            raise KafkaApiError(
                ErrorCode.INVALID_CONFIG, f"Invalid value {raw} for configuration {name}: {exc}"
            ) from None
        problem = defn.validator(value) if defn.validator else None
        if problem:
            raise KafkaApiError(
                ErrorCode.INVALID_CONFIG, f"Invalid value {raw} for configuration {name}: {problem}"
            )
        result[name] = to_text(value) or ""
    return result


def _broker_default(defn: TopicConfigDef, broker: BrokerConfig) -> tuple[Any, ConfigSource]:
    synonyms = defn.broker_synonyms or ((defn.synonym,) if defn.synonym else ())
    if any(broker.is_set(s) for s in synonyms):
        value = defn.broker_value(broker) if defn.broker_value else broker[defn.synonym or ""]
        return value, ConfigSource.STATIC_BROKER_CONFIG
    return defn.default, ConfigSource.DEFAULT_CONFIG


def effective_topic_value(name: str, overrides: Mapping[str, str], broker: BrokerConfig) -> Any:
    """The typed effective value of one topic config."""
    defn = TOPIC_CONFIGS[name]
    if name in overrides:
        return convert(_as_def(defn), overrides[name])
    return _broker_default(defn, broker)[0]


def effective_topic_configs(
    overrides: Mapping[str, str], broker: BrokerConfig
) -> dict[str, tuple[str | None, ConfigSource]]:
    """Every topic config → (value as Kafka shows it, DescribeConfigs source)."""
    result: dict[str, tuple[str | None, ConfigSource]] = {}
    for name, defn in sorted(TOPIC_CONFIGS.items()):
        if name in overrides:
            value = convert(_as_def(defn), overrides[name])
            result[name] = (to_text(value), ConfigSource.DYNAMIC_TOPIC_CONFIG)
        else:
            value, source = _broker_default(defn, broker)
            result[name] = (to_text(value), source)
    return result


def topic_config_synonyms(
    name: str, overrides: Mapping[str, str], broker: BrokerConfig
) -> list[tuple[str, str | None, ConfigSource]]:
    """DescribeConfigs synonyms of a topic config, most specific first (KIP-226)."""
    defn = TOPIC_CONFIGS[name]
    out: list[tuple[str, str | None, ConfigSource]] = []
    if name in overrides:
        out.append((name, overrides[name], ConfigSource.DYNAMIC_TOPIC_CONFIG))
    synonyms = defn.broker_synonyms or ((defn.synonym,) if defn.synonym else ())
    for synonym in synonyms:
        if broker.is_set(synonym):
            out.append((synonym, to_text(broker[synonym]), ConfigSource.STATIC_BROKER_CONFIG))
    if defn.synonym:
        out.append((defn.synonym, to_text(defn.default), ConfigSource.DEFAULT_CONFIG))
    return out


def to_log_config(overrides: Mapping[str, str], broker: BrokerConfig) -> LogConfig:
    """The ``log.LogConfig`` a partition of a topic with these overrides runs with."""
    from kbroker.log.config import LogConfig  # the log package is the only consumer of this shape

    def value(name: str) -> Any:
        return effective_topic_value(name, overrides, broker)

    flush_messages = value("flush.messages")
    flush_ms = value("flush.ms")
    candidate = {
        "segment_bytes": value("segment.bytes"),
        "segment_ms": value("segment.ms"),
        "retention_ms": value("retention.ms"),
        "retention_bytes": value("retention.bytes"),
        "cleanup_policy": ",".join(sorted(value("cleanup.policy"))),
        "index_interval_bytes": value("index.interval.bytes"),
        "segment_index_bytes": value("segment.index.bytes"),
        # Long.MAX is Kafka's "never"; the log takes None for that.
        "flush_interval_messages": None if flush_messages >= LONG_MAX else flush_messages,
        "flush_interval_ms": None if flush_ms >= LONG_MAX else flush_ms,
        "fsync_every_append": flush_messages == 1,
        "delete_retention_ms": value("delete.retention.ms"),
        "min_compaction_lag_ms": value("min.compaction.lag.ms"),
        "max_compaction_lag_ms": value("max.compaction.lag.ms"),
        "min_cleanable_dirty_ratio": value("min.cleanable.dirty.ratio"),
        "max_message_bytes": value("max.message.bytes"),
        "message_timestamp_type": value("message.timestamp.type"),
    }
    # Pass only what this LogConfig declares, so the log can grow fields independently.
    accepted = {f.name for f in fields(LogConfig)}
    return LogConfig(**{k: v for k, v in candidate.items() if k in accepted})
