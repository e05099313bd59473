"""Broker settings: Kafka's names, types, defaults and documentation.

``BrokerConfig.from_properties`` takes the ``key -> str`` pairs of a Kafka
``server.properties`` file (see ``parse_properties``), CLI overrides or test
fixtures, checks every key against ``CONFIG_DEFS`` and converts every value to
its type. An unknown key or a bad value raises ``ConfigError`` with a one-line
message, as Kafka's ``ConfigDef`` does at startup.

Cluster mode (``zookeeper.connect`` set) reads Kafka's ZooKeeper-mode keys
(``broker.id``, ``zookeeper.*``, replication factors, leader balancing,
controlled shutdown). Settings that matter to nothing here (thread counts,
KRaft quorum voters...) are accepted so an unmodified ``server.properties``
loads, and documented as having no effect.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_DEFS",
    "BrokerConfig",
    "ConfigDef",
    "ConfigError",
    "Listener",
    "parse_listener",
    "parse_properties",
]

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1

Validator = Callable[[Any], "str | None"]  # returns an error text, or None if fine


@dataclass(frozen=True, slots=True)
class ConfigDef:
    """One setting: Kafka type name, default (already typed; None = null), doc, validator."""

    name: str
    type: str  # boolean, short, int, long, double, string, list, password
    default: Any
    doc: str
    validator: Validator | None = None
    effective: bool = True  # False: accepted for compatibility, no effect here


def at_least(minimum: int | float) -> Validator:
    """Kafka's ``Range.atLeast``."""

    def check(value: Any) -> str | None:
        if value is not None and value < minimum:
            return f"Value must be at least {minimum}"
        return None

    return check


def in_range(minimum: int, maximum: int) -> Validator:
    """Kafka's ``Range.between``."""

    def check(value: Any) -> str | None:
        if value is not None and value < minimum:
            return f"Value must be at least {minimum}"
        if value is not None and value > maximum:
            return f"Value must be no more than {maximum}"
        return None

    return check


def gzip_level() -> Validator:
    """Kafka's CompressionType.GZIP level validator (KIP-390): 1..9, or -1 for the default."""

    def check(value: Any) -> str | None:
        if value is not None and value != -1 and not 1 <= value <= 9:
            return "Value must be between 1 and 9 or equal to -1"
        return None

    return check


def parse_ip_overrides(value: str | None) -> dict[str, int]:
    """max.connections.per.ip.overrides as host -> count; ValueError if malformed."""
    overrides: dict[str, int] = {}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        if not sep or not host or not count.strip().isdigit():
            raise ValueError(f"{item!r} is not host:count")
        overrides[host.strip()] = int(count)
    return overrides


def _check_ip_overrides(value: Any) -> str | None:
    # Kafka's DynamicConfig validation of the same key.
    try:
        parse_ip_overrides(value)
    except ValueError as exc:
        return f"Invalid format: {exc}"
    return None


def one_of(*choices: str, case_insensitive: bool = False) -> Validator:
    """Kafka's ``ValidString.in`` / ``ValidList.in`` (lists: every item)."""

    def check(value: Any) -> str | None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            probe = item.lower() if case_insensitive else item
            pool = [c.lower() for c in choices] if case_insensitive else choices
            if probe not in pool:
                return f"String must be one of: {', '.join(choices)}"
        return None

    return check


_TYPES_INT_RANGE = {
    "short": (-(2**15), 2**15 - 1),
    "int": (-(2**31), INT_MAX),
    "long": (-(2**63), LONG_MAX),
}


def convert(defn: ConfigDef, raw: Any) -> Any:
    """Parse ``raw`` (usually a str) into ``defn.type``; ValueError with Kafka's wording."""
    if raw is None:
        return None
    kind = defn.type
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise ValueError("Expected value to be either true or false")
    if kind in _TYPES_INT_RANGE:
        if isinstance(raw, bool):
            raise ValueError(f"Expected value to be a {kind} number")
        try:
            value = raw if isinstance(raw, int) else int(str(raw).strip())
        except ValueError:
            raise ValueError(f"Not a number of type {kind.upper()}") from None
        low, high = _TYPES_INT_RANGE[kind]
        if not low <= value <= high:
            raise ValueError(f"Not a number of type {kind.upper()}")
        return value
    if kind == "double":
        try:
            return float(raw)
        except ValueError:
            raise ValueError("Not a number of type DOUBLE") from None
    if kind == "list":
        if isinstance(raw, list):
            return [str(x) for x in raw]
        text = str(raw).strip()
        return [item.strip() for item in text.split(",") if item.strip()] if text else []
    return str(raw).strip()  # string / password


def _defs(*defs: ConfigDef) -> dict[str, ConfigDef]:
    return {d.name: d for d in defs}


def _c(
    name: str,
    kind: str,
    default: Any,
    doc: str,
    validator: Validator | None = None,
    *,
    effective: bool = True,
) -> ConfigDef:
    return ConfigDef(name, kind, default, doc, validator, effective)


_NO_EFFECT = "Accepted for compatibility; no effect on a single-node kbroker."

CONFIG_DEFS: dict[str, ConfigDef] = _defs(
    # --- identity and networking -------------------------------------------------
    _c(
        "node.id",
        "int",
        1,
        "The id of this broker, returned as the leader, replica and controller of every partition.",
        at_least(0),
    ),
    _c(
        "broker.id",
        "int",
        None,
        "Older name of node.id (CLI --broker-id); if set it must agree with node.id. In "
        "cluster mode it names the broker in ZooKeeper (/brokers/ids/<id>).",
        at_least(-1),
    ),
    _c(
        "broker.rack",
        "string",
        None,
        "Rack of the broker, returned in Metadata; replica placement spreads replicas "
        "over racks when every broker has one.",
    ),
    _c(
        "listeners",
        "list",
        ["PLAINTEXT://:9092"],
        "The addresses to listen on, as "
        "NAME://host:port, comma-separated; each listener's security protocol comes from "
        "listener.security.protocol.map (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL). Listeners "
        "named in controller.listener.names are not served. An empty host "
        "or 0.0.0.0 binds every interface.",
    ),
    _c(
        "advertised.listeners",
        "list",
        None,
        "The addresses given to clients in Metadata, as "
        "NAME://host:port; a client gets the one named like the listener it connected to. "
        "If unset: the listen address, or the address the client connected "
        "to when listening on every interface.",
    ),
    _c(
        "listener.security.protocol.map",
        "string",
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "Listener name to security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).",
    ),
    _c(
        "inter.broker.listener.name",
        "string",
        None,
        "Cluster mode: the listener brokers use to reach each other (controller channel, "
        "replica fetchers, transaction markers). Unset: the listener named after "
        "security.inter.broker.protocol.",
    ),
    _c("controller.listener.names", "string", None, _NO_EFFECT, effective=False),
    _c("controller.quorum.voters", "list", [], _NO_EFFECT, effective=False),
    _c("controller.quorum.bootstrap.servers", "list", [], _NO_EFFECT, effective=False),
    _c("process.roles", "list", [], _NO_EFFECT, effective=False),
    _c(
        "zookeeper.connect",
        "string",
        None,
        "ZooKeeper ensemble as host:port[,host:port...][/chroot]. Set: the broker joins "
        "the cluster kept at that path (a missing chroot is created). Unset: single node.",
    ),
    _c(
        "zookeeper.session.timeout.ms",
        "int",
        18000,
        "ZooKeeper session timeout; a broker silent this long is considered gone.",
        at_least(1),
    ),
    _c(
        "zookeeper.connection.timeout.ms",
        "int",
        None,
        "How long start-up waits to reach ZooKeeper (unset: zookeeper.session.timeout.ms).",
        at_least(1),
    ),
    _c("num.network.threads", "int", 3, _NO_EFFECT, at_least(1), effective=False),
    _c("num.io.threads", "int", 8, _NO_EFFECT, at_least(1), effective=False),
    _c("background.threads", "int", 10, _NO_EFFECT, at_least(1), effective=False),
    _c("num.recovery.threads.per.data.dir", "int", 2, _NO_EFFECT, at_least(1), effective=False),
    _c("socket.send.buffer.bytes", "int", 102400, _NO_EFFECT, effective=False),
    _c("socket.receive.buffer.bytes", "int", 102400, _NO_EFFECT, effective=False),
    _c(
        "socket.request.max.bytes",
        "int",
        104857600,
        "The largest request frame accepted; a connection sending a larger size prefix is closed.",
        at_least(1),
    ),
    _c(
        "connections.max.idle.ms",
        "long",
        600000,
        "Close a connection after this many ms waiting on its client with no progress: "
        "no request arriving, or a response left unread (negative: never).",
    ),
    _c("queued.max.requests", "int", 500, _NO_EFFECT, at_least(1), effective=False),
    _c(
        "queued.max.request.bytes",
        "long",
        -1,
        "Bytes of received requests not yet answered, over all connections, beyond which "
        "no connection starts reading a new request until memory frees up (-1: no limit).",
    ),
    _c(
        "max.connections",
        "int",
        INT_MAX,
        "Connections accepted at once; beyond it new connections wait in the listen "
        "backlog until one closes.",
        at_least(0),
    ),
    _c(
        "max.connections.per.ip",
        "int",
        INT_MAX,
        "Connections from one client address; one more is closed as soon as it is accepted.",
        at_least(0),
    ),
    _c(
        "max.connections.per.ip.overrides",
        "string",
        "",
        "Per-address exceptions to max.connections.per.ip, as host:count[,host:count...] "
        "(a host name is resolved once, at start-up).",
        lambda value: _check_ip_overrides(value),
    ),
    _c(
        "fetch.max.bytes",
        "int",
        57671680,
        "Upper bound on the bytes returned by one Fetch.",
        at_least(1024),
    ),
    # --- storage ---------------------------------------------------------------------
    _c(
        "log.dirs",
        "list",
        None,
        "Data directory (only the first entry is used). Falls back to log.dir.",
    ),
    _c("log.dir", "string", "/tmp/kafka-logs", "Data directory when log.dirs is not set."),
    _c(
        "num.partitions",
        "int",
        1,
        "Default partition count for auto-created topics and CreateTopics with -1.",
        at_least(1),
    ),
    _c(
        "default.replication.factor",
        "int",
        1,
        "Replication factor of auto-created topics and CreateTopics with -1 (only 1 is "
        "possible on a single node).",
        at_least(1),
    ),
    _c("min.insync.replicas", "int", 1, "Minimum in-sync replicas for acks=all.", at_least(1)),
    _c(
        "auto.create.topics.enable",
        "boolean",
        True,
        "Create a topic when a client asks Metadata for one that does not exist.",
    ),
    _c("delete.topic.enable", "boolean", True, "Allow DeleteTopics."),
    _c(
        "auto.create.topics.max.per.request",
        "int",
        100,
        "Topics one Metadata request may auto-create; the rest are answered "
        "LEADER_NOT_AVAILABLE and created when the client asks again.",
        at_least(0),
    ),
    _c(
        "max.partitions.per.request",
        "int",
        10000,
        "Partitions one CreateTopics or CreatePartitions request may add (Kafka's fixed "
        "limit); beyond it every topic of the request fails with POLICY_VIOLATION.",
        at_least(1),
    ),
    _c(
        "max.broker.partitions",
        "int",
        INT_MAX,
        "Partitions this broker hosts at most (KIP-578's name); creating beyond it fails "
        "with POLICY_VIOLATION. Internal topics are never refused.",
        at_least(1),
    ),
    _c(
        "log.max.open.files",
        "int",
        0,
        "Segment files (.log, .index, .timeindex of every partition) kept open at once; "
        "the least recently used is closed beyond it and reopened on demand. 0: half of "
        "what the open file limit leaves after the share kept for connections.",
        at_least(0),
    ),
    _c(
        "message.max.bytes",
        "int",
        1048588,
        "Largest record batch accepted (topic-level: max.message.bytes).",
        at_least(0),
    ),
    _c(
        "compression.type",
        "string",
        "producer",
        "Final compression of topic data; 'producer' keeps what the producer sent.",
        one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
    ),
    # KIP-390: the level used when the broker compresses (compression.type names a codec
    # other than the batch's); a batch already in that codec is kept as sent.
    _c(
        "compression.gzip.level",
        "int",
        -1,
        "Level of gzip when the broker compresses (-1: zlib's default).",
        gzip_level(),
    ),
    _c(
        "compression.lz4.level",
        "int",
        9,
        "Level of lz4 when the broker compresses.",
        in_range(1, 17),
    ),
    _c(
        "compression.zstd.level",
        "int",
        3,
        "Level of zstd when the broker compresses.",
        in_range(-131072, 22),
    ),
    _c("log.segment.bytes", "int", 1073741824, "Size at which a segment is rolled.", at_least(14)),
    _c(
        "log.roll.ms",
        "long",
        None,
        "Age at which a segment is rolled (falls back to log.roll.hours).",
    ),
    _c("log.roll.hours", "int", 168, "Age in hours at which a segment is rolled.", at_least(1)),
    _c("log.roll.jitter.ms", "long", None, _NO_EFFECT, effective=False),
    _c("log.roll.jitter.hours", "int", 0, _NO_EFFECT, at_least(0), effective=False),
    _c(
        "log.retention.ms",
        "long",
        None,
        "How long to keep a segment; -1 = forever. Takes "
        "precedence over log.retention.minutes and log.retention.hours.",
    ),
    _c(
        "log.retention.minutes", "int", None, "Retention in minutes (if log.retention.ms is unset)."
    ),
    _c("log.retention.hours", "int", 168, "Retention in hours (if neither ms nor minutes is set)."),
    _c(
        "log.retention.bytes",
        "long",
        -1,
        "Partition size above which the oldest segments are deleted; -1 = no limit.",
    ),
    _c("log.retention.check.interval.ms", "long", 300000, "How often retention runs.", at_least(1)),
    _c("log.segment.delete.delay.ms", "long", 60000, _NO_EFFECT, at_least(0), effective=False),
    _c(
        "log.flush.interval.messages",
        "long",
        LONG_MAX,
        "fsync after this many messages.",
        at_least(1),
    ),
    _c(
        "log.flush.interval.ms",
        "long",
        None,
        "fsync a partition that has unflushed data "
        "this often (unset: never by time, the OS decides).",
    ),
    _c(
        "log.flush.scheduler.interval.ms",
        "long",
        LONG_MAX,
        "How often the time-based flush check runs when log.flush.interval.ms is unset.",
    ),
    _c(
        "log.flush.offset.checkpoint.interval.ms",
        "int",
        60000,
        _NO_EFFECT,
        at_least(0),
        effective=False,
    ),
    _c("log.index.interval.bytes", "int", 4096, "Bytes between offset-index entries.", at_least(0)),
    _c(
        "log.index.size.max.bytes", "int", 10485760, "Maximum size of an offset index.", at_least(4)
    ),
    _c("log.preallocate", "boolean", False, _NO_EFFECT, effective=False),
    _c(
        "log.message.timestamp.type",
        "string",
        "CreateTime",
        "Whether a record's timestamp "
        "is the producer's (CreateTime) or the broker's (LogAppendTime).",
        one_of("CreateTime", "LogAppendTime"),
    ),
    _c(
        "log.message.timestamp.difference.max.ms",
        "long",
        LONG_MAX,
        "Maximum distance between a CreateTime timestamp and the broker clock.",
        at_least(0),
    ),
    _c(
        "log.message.timestamp.before.max.ms",
        "long",
        LONG_MAX,
        "Maximum age of a CreateTime timestamp (KIP-937).",
        at_least(0),
    ),
    _c(
        "log.message.timestamp.after.max.ms",
        "long",
        LONG_MAX,
        "Maximum future skew of a CreateTime timestamp (KIP-937).",
        at_least(0),
    ),
    _c("log.message.downconversion.enable", "boolean", True, _NO_EFFECT, effective=False),
    _c(
        "log.cleanup.policy",
        "list",
        ["delete"],
        "delete, compact, or both.",
        one_of("delete", "compact"),
    ),
    _c("log.cleaner.enable", "boolean", True, "Run compaction for compacted topics."),
    _c(
        "log.cleaner.backoff.ms",
        "long",
        15000,
        "How often compaction checks for work.",
        at_least(0),
    ),
    _c("log.cleaner.threads", "int", 1, _NO_EFFECT, at_least(0), effective=False),
    _c("log.cleaner.dedupe.buffer.size", "long", 134217728, _NO_EFFECT, effective=False),
    _c(
        "log.cleaner.delete.retention.ms",
        "long",
        86400000,
        "How long tombstones are kept after compaction.",
        at_least(0),
    ),
    _c(
        "log.cleaner.min.compaction.lag.ms",
        "long",
        0,
        "Minimum age before a record may be compacted.",
        at_least(0),
    ),
    _c(
        "log.cleaner.max.compaction.lag.ms",
        "long",
        LONG_MAX,
        "Maximum time a record stays uncompacted.",
        at_least(1),
    ),
    _c(
        "log.cleaner.min.cleanable.ratio",
        "double",
        0.5,
        "Dirty ratio that triggers compaction.",
        in_range(0, 1),
    ),
    # --- authorization (kbroker.authz) ------------------------------------------------
    _c(
        "authorizer.class.name",
        "string",
        "",
        "The authorizer enforcing ACLs: kafka.security.authorizer.AclAuthorizer or "
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer (both get Kafka's ACL "
        "rules); empty: no authorization, every request is allowed.",
        one_of(
            "",
            "kafka.security.authorizer.AclAuthorizer",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
    ),
    _c(
        "super.users",
        "string",
        None,
        "Principals allowed everything whatever the ACLs, separated by semicolons "
        "(User:admin;User:ops).",
    ),
    _c(
        "allow.everyone.if.no.acl.found",
        "boolean",
        False,
        "Whether a resource without any ACL is open to everyone (else only super users).",
    ),
    # --- cluster mode (zookeeper.connect set) ------------------------------------------
    _c(
        "unclean.leader.election.enable",
        "boolean",
        False,
        "Cluster mode: elect a leader outside the ISR when no in-sync replica is alive "
        "(may lose data).",
    ),
    _c(
        "auto.leader.rebalance.enable",
        "boolean",
        True,
        "Cluster mode: the controller moves leadership back to preferred replicas.",
    ),
    _c(
        "leader.imbalance.check.interval.seconds",
        "long",
        300,
        "Cluster mode: how often the controller checks leader imbalance.",
        at_least(1),
    ),
    _c(
        "leader.imbalance.per.broker.percentage",
        "int",
        10,
        "Cluster mode: share of non-preferred leaders on a broker that triggers a rebalance.",
        at_least(0),
    ),
    _c(
        "controlled.shutdown.enable",
        "boolean",
        True,
        "Cluster mode: on SIGTERM ask the controller to move leadership away before stopping.",
    ),
    _c(
        "controlled.shutdown.max.retries",
        "int",
        3,
        "Cluster mode: ControlledShutdown attempts before stopping anyway.",
        at_least(0),
    ),
    _c(
        "controlled.shutdown.retry.backoff.ms",
        "long",
        5000,
        "Cluster mode: pause between ControlledShutdown attempts.",
        at_least(0),
    ),
    _c(
        "replica.lag.time.max.ms",
        "long",
        30000,
        "Cluster mode: a follower that has not caught up for this long leaves the ISR.",
        at_least(1),
    ),
    _c(
        "replica.fetch.wait.max.ms",
        "int",
        500,
        "Cluster mode: longest wait of a follower's fetch.",
        at_least(0),
    ),
    _c(
        "replica.fetch.max.bytes",
        "int",
        1048576,
        "Cluster mode: bytes a follower asks per partition.",
        at_least(0),
    ),
    _c(
        "num.replica.fetchers",
        "int",
        1,
        "Cluster mode: fetcher tasks per source broker.",
        at_least(1),
    ),
    _c(
        "controller.socket.timeout.ms",
        "int",
        30000,
        "Cluster mode: timeout of controller-to-broker requests.",
        at_least(1),
    ),
    # --- internal topics, groups, transactions ----------------------------------------
    _c("offsets.topic.num.partitions", "int", 50, "Partitions of __consumer_offsets.", at_least(1)),
    _c(
        "offsets.topic.replication.factor",
        "short",
        3,
        "Replication factor of __consumer_offsets in cluster mode (capped at the live "
        "brokers when it is created).",
        at_least(1),
    ),
    _c(
        "offsets.topic.segment.bytes",
        "int",
        104857600,
        "Segment size of __consumer_offsets.",
        at_least(1),
    ),
    _c(
        "offsets.retention.minutes",
        "int",
        10080,
        "How long committed offsets of an empty group are kept.",
        at_least(1),
    ),
    _c(
        "offsets.retention.check.interval.ms",
        "long",
        600000,
        "How often expired offsets are removed.",
        at_least(1),
    ),
    _c(
        "offsets.commit.timeout.ms",
        "int",
        5000,
        "How long a coordinator waits for the ISR of its __consumer_offsets or "
        "__transaction_state partition to have its write (cluster mode; a single node "
        "answers at once).",
        at_least(1),
    ),
    _c("offsets.load.buffer.size", "int", 5242880, _NO_EFFECT, at_least(1), effective=False),
    _c(
        "offset.metadata.max.bytes",
        "int",
        4096,
        "Largest metadata string stored with a committed offset.",
    ),
    # Kafka's code default is 3000, but the server.properties Kafka ships sets 0 "for
    # development and testing"; kbroker is a development broker, so it follows the file: a
    # first group test (one member, a 3 s consumer timeout) would otherwise receive nothing.
    _c(
        "group.initial.rebalance.delay.ms",
        "int",
        0,
        "Delay before the first rebalance of a new group, to let more members join "
        "(Kafka's code default is 3000; its shipped server.properties, like kbroker, uses 0).",
    ),
    _c(
        "group.min.session.timeout.ms",
        "int",
        6000,
        "Smallest session timeout a member may ask for.",
    ),
    _c(
        "group.max.session.timeout.ms",
        "int",
        1800000,
        "Largest session timeout a member may ask for.",
    ),
    _c("group.max.size", "int", INT_MAX, "Most members in one group.", at_least(1)),
    _c(
        "group.consumer.session.timeout.ms",
        "int",
        45000,
        "Session timeout of members of "
        "KIP-848 consumer groups (set by the broker, not the client).",
        at_least(1),
    ),
    _c(
        "group.consumer.heartbeat.interval.ms",
        "int",
        5000,
        "Heartbeat interval the broker gives members of KIP-848 consumer groups.",
        at_least(1),
    ),
    _c(
        "transaction.state.log.num.partitions",
        "int",
        50,
        "Partitions of __transaction_state.",
        at_least(1),
    ),
    _c(
        "transaction.state.log.replication.factor",
        "short",
        3,
        "Replication factor of __transaction_state in cluster mode (capped at the live "
        "brokers when it is created).",
        at_least(1),
    ),
    _c(
        "transaction.state.log.min.isr",
        "int",
        2,
        "min.insync.replicas of __transaction_state in cluster mode (set on the topic when "
        "it is created, at most its replication factor): the coordinator's writes need "
        "that many in-sync replicas.",
        at_least(1),
    ),
    _c(
        "transaction.state.log.segment.bytes",
        "int",
        104857600,
        "Segment size of __transaction_state.",
        at_least(1),
    ),
    _c(
        "transaction.max.timeout.ms",
        "int",
        900000,
        "Largest transaction timeout a producer may ask for.",
        at_least(1),
    ),
    _c(
        "transactional.id.expiration.ms",
        "int",
        604800000,
        "How long an idle transactional id is kept.",
        at_least(1),
    ),
    _c(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "int",
        10000,
        "How often timed-out transactions are aborted.",
        at_least(1),
    ),
    _c(
        "producer.id.expiration.ms",
        "int",
        86400000,
        "How long the state of an idle producer id is kept.",
        at_least(1),
    ),
    # --- security (kbroker.security): TLS and SASL ------------------------------------
    # Any of these may also be set for one listener as listener.name.<name>.<key>
    # (sasl.jaas.config as listener.name.<name>.<mechanism>.sasl.jaas.config), as in Kafka.
    _c(
        "ssl.keystore.type",
        "string",
        "PEM",
        "Format of the key store; kbroker reads PEM (Kafka's default is JKS, which needs a JVM).",
        one_of("PEM", case_insensitive=True),
    ),
    _c(
        "ssl.keystore.location",
        "string",
        None,
        "PEM file with the private key and the certificate chain of SSL/SASL_SSL listeners.",
    ),
    _c("ssl.keystore.password", "password", None, "Not needed for PEM key stores."),
    _c("ssl.key.password", "password", None, "Password of an encrypted PEM private key."),
    _c("ssl.keystore.key", "password", None, "The private key in PEM, inline."),
    _c(
        "ssl.keystore.certificate.chain",
        "string",
        None,
        "The certificate chain in PEM, inline (with ssl.keystore.key).",
    ),
    _c(
        "ssl.truststore.type",
        "string",
        "PEM",
        "Format of the trust store (PEM).",
        one_of("PEM", case_insensitive=True),
    ),
    _c(
        "ssl.truststore.location",
        "string",
        None,
        "PEM file with the CA certificates client certificates are checked against.",
    ),
    _c("ssl.truststore.password", "password", None, "Not needed for PEM trust stores."),
    _c("ssl.truststore.certificates", "string", None, "Trusted CA certificates in PEM, inline."),
    _c(
        "ssl.client.auth",
        "string",
        "none",
        "Client certificates: none, requested (checked when given) or required (mutual TLS).",
        one_of("none", "requested", "required"),
    ),
    _c(
        "ssl.enabled.protocols",
        "list",
        ["TLSv1.2", "TLSv1.3"],
        "TLS versions accepted.",
        one_of("TLSv1.2", "TLSv1.3"),
    ),
    _c("ssl.protocol", "string", "TLSv1.3", _NO_EFFECT, effective=False),
    _c("ssl.cipher.suites", "list", [], "TLS 1.2 cipher suites (OpenSSL names); empty: defaults."),
    _c("ssl.endpoint.identification.algorithm", "string", "https", _NO_EFFECT, effective=False),
    _c(
        "ssl.principal.mapping.rules",
        "string",
        "DEFAULT",
        "Rules turning a client certificate's distinguished name into a principal name "
        "(RULE:pattern/replacement/[LU], ..., DEFAULT), as Kafka's SslPrincipalMapper.",
    ),
    _c(
        "sasl.enabled.mechanisms",
        "list",
        ["GSSAPI"],
        "SASL mechanisms of SASL_PLAINTEXT/SASL_SSL listeners: PLAIN, SCRAM-SHA-256, "
        "SCRAM-SHA-512, OAUTHBEARER (unsecured JWS tokens, as Kafka's default validator); "
        "GSSAPI, Kafka's default, is not offered.",
    ),
    _c(
        "sasl.jaas.config",
        "password",
        None,
        'JAAS login module configuration: PlainLoginModule\'s user_<name>="password" '
        "options; OAuthBearerLoginModule's unsecuredValidator* options.",
    ),
    _c("sasl.mechanism.inter.broker.protocol", "string", "GSSAPI", _NO_EFFECT, effective=False),
    _c(
        "security.inter.broker.protocol",
        "string",
        "PLAINTEXT",
        "Cluster mode: names the inter-broker listener when inter.broker.listener.name is "
        "unset (the listener called like the protocol, as in Kafka).",
    ),
    _c(
        "connection.failed.authentication.delay.ms",
        "int",
        100,
        "How long a failed authentication is held before its connection closes.",
        at_least(0),
    ),
    _c(
        "connections.max.reauth.ms",
        "long",
        0,
        "KIP-368: a SASL client must re-authenticate within this many ms of its login (told "
        "in SaslAuthenticate's session_lifetime_ms), else its next request closes the "
        "connection; 0: sessions never expire.",
        at_least(0),
    ),
    _c(
        "sasl.server.max.receive.size",
        "int",
        524288,
        "Largest request accepted from a client that has not authenticated yet.",
        at_least(1),
    ),
    _c(
        "kbroker.authentication.timeout.ms",
        "int",
        10000,
        "How long a client has to finish its TLS handshake and SASL authentication before "
        "the connection is dropped.",
        at_least(1),
    ),
    # --- kbroker's own (no Kafka equivalent) ------------------------------------------
    _c(
        "kbroker.http.listener",
        "string",
        None,
        "HOST:PORT of the HTTP listener serving the web console, /metrics (Prometheus), "
        "/healthz and /readyz; null: no HTTP listener. Same as --http.",
    ),
    _c(
        "kbroker.http.console.actions",
        "boolean",
        False,
        "Let the web console change things (create/delete topics, reset a group's offsets, "
        "produce a test message); read-only when false. Same as --http-actions.",
    ),
)

_PROTOCOLS_SUPPORTED = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class ConfigError(Exception):
    """A broker setting is unknown or has a bad value; ``str(error)`` is one stderr line."""


# Kafka's security settings kbroker does not implement yet (delegation tokens, other
# SASL mechanisms' options, authorizer plug-in settings): "unknown" would mislead, since Kafka knows them
# and a server.properties copied from a secured cluster has them.
_SECURITY_PREFIXES = (
    "ssl.",
    "sasl.",
    "security.",
    "listener.name.",
    "authorizer.",
    "principal.builder.",
    "delegation.token.",
    "password.encoder.",
)
_SECURITY_KEYS = frozenset(
    {
        "super.users",
        "allow.everyone.if.no.acl.found",
    }
)
# How alike a key must be to a known one to be suggested (difflib's ratio).
_SUGGEST_CUTOFF = 0.8


def unknown_key_message(key: str) -> str:
    """Why ``key`` is refused: not supported (a security setting), or unknown with the
    closest known key suggested ("did you mean log.retention.hours?")."""
    if key in _SECURITY_KEYS or key.startswith(_SECURITY_PREFIXES):
        return (
            f"config key {key!r} is not supported: kbroker has TLS, SASL (PLAIN, SCRAM) "
            "and ACLs, but not this setting (delegation tokens, GSSAPI, OAuth JWKS...)"
        )
    close = difflib.get_close_matches(key, CONFIG_DEFS, n=1, cutoff=_SUGGEST_CUTOFF)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown config key {key!r}{hint}"


@dataclass(frozen=True, slots=True)
class Listener:
    """A parsed ``NAME://host:port`` listener; host "" means every interface."""

    name: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


_LISTENER_RE = re.compile(r"^([A-Za-z0-9_]+)://(\[[0-9a-fA-F:.]*\]|[^:\[\]]*):(-?\d+)$")


def parse_listener(text: str) -> Listener:
    """Parse ``NAME://host:port`` (host may be empty or a [v6] literal); ValueError if bad."""
    match = _LISTENER_RE.match(text.strip())
    if not match:
        raise ValueError(f"listener {text!r} is not of the form NAME://host:port")
    name, host, port = match.group(1).upper(), match.group(2), int(match.group(3))
    if host.startswith("["):
        host = host[1:-1]
    if not 0 <= port <= 65535:
        raise ValueError(f"listener {text!r} has port outside 0..65535")
    return Listener(name, host, port)


def _protocol_map(text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, proto = item.partition(":")
        if not sep:
            raise ValueError(f"entry {item!r} is not NAME:PROTOCOL")
        result[name.strip().upper()] = proto.strip().upper()
    return result


_ANY = ConfigDef("", "string", None, "")
_LISTENER_KEY_RE = re.compile(r"^listener\.name\.([A-Za-z0-9_]+)\.(.+)$")


def _normalise_listener_key(key: str) -> str:
    """listener.name.<NAME>.x → listener.name.<name>.x (Kafka lower-cases the name)."""
    match = _LISTENER_KEY_RE.match(key)
    return f"listener.name.{match.group(1).lower()}.{match.group(2)}" if match else key


def _listener_scoped_def(key: str) -> ConfigDef | None:
    """The definition of a per-listener key (listener.name.<l>.ssl.*, .sasl.*, and
    listener.name.<l>.<mechanism>.sasl.jaas.config), or None."""
    match = _LISTENER_KEY_RE.match(key)
    if match is None:
        return None
    inner = match.group(2)
    if inner.endswith(".sasl.jaas.config"):
        return CONFIG_DEFS["sasl.jaas.config"]
    if inner.startswith(("ssl.", "sasl.", "connection.failed.authentication.")) or inner == (
        "connections.max.reauth.ms"
    ):
        return CONFIG_DEFS.get(inner)
    return None


class BrokerConfig:
    """Typed, validated broker settings; read with ``config["name"]`` or the properties."""

    def __init__(self, values: dict[str, Any], originals: dict[str, str]) -> None:
        self._values = values
        self.originals: dict[str, str] = originals  # what was set explicitly (as strings)

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> BrokerConfig:
        """Validate ``props`` (Kafka names → str); ConfigError on unknown key or bad value."""
        values: dict[str, Any] = {name: d.default for name, d in CONFIG_DEFS.items()}
        originals: dict[str, str] = {}
        for key, raw in props.items():
            key = key.strip()
            if key.startswith("listener.name."):
                key = _normalise_listener_key(key)
            defn = CONFIG_DEFS.get(key) or _listener_scoped_def(key)
            if defn is None:
                raise ConfigError(unknown_key_message(key))
            try:
                value = convert(defn, raw)
            except ValueError as exc:
                raise ConfigError(f"invalid value {raw!r} for configuration {key}: {exc}") from None
            problem = defn.validator(value) if defn.validator else None
            if problem:
                raise ConfigError(f"invalid value {raw!r} for configuration {key}: {problem}")
            values[key] = value
            originals[key] = _to_text(raw)
        config = cls(values, originals)
        config._check_cross_field()
        return config

    def with_overrides(self, props: Mapping[str, Any]) -> BrokerConfig:
        """A new config: these settings on top of the ones set explicitly here."""
        return BrokerConfig.from_properties({**self.originals, **props})

    def _check_cross_field(self) -> None:
        broker_id = self._values["broker.id"]
        if broker_id is not None and broker_id >= 0:
            if "node.id" in self.originals and broker_id != self._values["node.id"]:
                raise ConfigError(
                    f"broker.id={broker_id} disagrees with node.id={self._values['node.id']}"
                )
            self._values["node.id"] = broker_id
        try:
            self.listeners  # noqa: B018 - validates the listener settings
            self.advertised_listeners  # noqa: B018
        except ValueError as exc:
            raise ConfigError(f"invalid listeners: {exc}") from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def is_set(self, name: str) -> bool:
        """Whether ``name`` was given explicitly (Kafka's STATIC_BROKER_CONFIG source)."""
        return name in self.originals

    def items(self) -> Iterable[tuple[str, Any]]:
        """Every setting and its typed value."""
        return self._values.items()

    # --- derived settings -------------------------------------------------------------

    @property
    def node_id(self) -> int:
        """This broker's id."""
        return int(self._values["node.id"])

    def security_protocol(self, listener_name: str) -> str:
        """The security protocol of a listener (listener.security.protocol.map; a listener
        named like a protocol uses that protocol, as in Kafka)."""
        protocols = _protocol_map(self._values["listener.security.protocol.map"])
        return protocols.get(listener_name.upper(), listener_name.upper())

    def _parse_listeners(self, entries: list[str]) -> list[Listener]:
        listeners = [parse_listener(e) for e in entries]
        names = [listener.name for listener in listeners]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"listener name {name} is used more than once")
        return listeners

    @functools.cached_property
    def listeners(self) -> list[Listener]:
        """The listeners we bind: ``listeners`` less the KRaft controller listeners."""
        controllers = {
            name.strip().upper()
            for name in (self._values["controller.listener.names"] or "").split(",")
        }
        served = [
            listener
            for listener in self._parse_listeners(self._values["listeners"])
            if listener.name not in controllers
        ]
        if not served:
            raise ValueError("no listener configured")
        for listener in served:
            protocol = self.security_protocol(listener.name)
            if protocol not in _PROTOCOLS_SUPPORTED:
                raise ValueError(
                    f"listener {listener} uses {protocol}; supported: "
                    + ", ".join(_PROTOCOLS_SUPPORTED)
                )
        return served

    @property
    def listener(self) -> Listener:
        """The first listener we bind (the one cluster mode registers)."""
        return self.listeners[0]

    @functools.cached_property
    def advertised_listeners(self) -> dict[str, Listener]:
        """advertised.listeners by listener name."""
        entries = self._values["advertised.listeners"] or []
        return {listener.name: listener for listener in self._parse_listeners(entries)}

    @property
    def advertised_listener(self) -> Listener | None:
        """The advertised address of the first listener, or None to derive it from the
        bound socket."""
        return self.advertised_for(self.listener.name)

    def advertised_for(self, listener_name: str) -> Listener | None:
        """The address advertised for clients of this listener, or None if not set."""
        advertised = self.advertised_listeners
        found = advertised.get(listener_name.upper())
        if found is None and len(advertised) == 1 and len(self.listeners) == 1:
            # One listener advertised under another name: it is the one.
            found = next(iter(advertised.values()))
        return found

    @functools.cached_property
    def inter_broker_listener_name(self) -> str:
        """The listener other brokers reach us on (KafkaConfig.interBrokerListenerName):
        inter.broker.listener.name, else the listener named like
        security.inter.broker.protocol. Kafka rejects setting both."""
        names = [listener.name for listener in self.listeners]
        explicit = self._values["inter.broker.listener.name"]
        if explicit:
            if self.is_set("security.inter.broker.protocol"):
                raise ValueError(
                    "only one of inter.broker.listener.name and "
                    "security.inter.broker.protocol may be set"
                )
            name = explicit.strip().upper()
            if name not in names:
                raise ValueError(f"inter.broker.listener.name {name} is not in listeners")
        else:
            name = str(self._values["security.inter.broker.protocol"]).strip().upper()
            if name not in names:
                if self.is_set("security.inter.broker.protocol"):
                    raise ValueError(f"security.inter.broker.protocol {name}: no such listener")
                # Neither key given and no PLAINTEXT listener (a single-node setup, where
                # Kafka would refuse to start): the first listener serves.
                name = names[0]
        # Brokers talk to each other with kbroker's plain client: no TLS or SASL yet.
        protocol = self.security_protocol(name)
        if protocol != "PLAINTEXT":
            raise ValueError(
                f"inter-broker listener {name} uses {protocol}; kbroker brokers talk to "
                "each other over PLAINTEXT only"
            )
        return name

    def for_listener(self, listener_name: str, key: str, mechanism: str | None = None) -> Any:
        """``key`` for one listener: listener.name.<listener>.[<mechanism>.]<key>, else ``key``."""
        prefix = f"listener.name.{listener_name.lower()}."
        if mechanism is not None:
            scoped = f"{prefix}{mechanism.lower()}.{key}"
            if scoped in self._values:
                return self._values[scoped]
        return self._values.get(prefix + key, self._values[key])

    @property
    def cluster_mode(self) -> bool:
        """Whether the broker joins a ZooKeeper cluster (zookeeper.connect is set)."""
        return bool(self._values["zookeeper.connect"])

    @property
    def zookeeper_connection_timeout_ms(self) -> int:
        """zookeeper.connection.timeout.ms, defaulting to the session timeout as in Kafka."""
        value = self._values["zookeeper.connection.timeout.ms"]
        return int(value if value is not None else self._values["zookeeper.session.timeout.ms"])

    @property
    def data_dir(self) -> Path:
        """The data directory: first of log.dirs, else log.dir."""
        dirs = self._values["log.dirs"]
        return Path(dirs[0] if dirs else self._values["log.dir"])

    @property
    def log_retention_ms(self) -> int:
        """Effective retention: log.retention.ms, else minutes, else hours (Kafka's order)."""
        if self._values["log.retention.ms"] is not None:
            return int(self._values["log.retention.ms"])
        if self._values["log.retention.minutes"] is not None:
            return int(self._values["log.retention.minutes"]) * 60_000
        return int(self._values["log.retention.hours"]) * 3_600_000

    @property
    def log_roll_ms(self) -> int:
        """Effective segment age limit: log.roll.ms, else log.roll.hours."""
        if self._values["log.roll.ms"] is not None:
            return int(self._values["log.roll.ms"])
        return int(self._values["log.roll.hours"]) * 3_600_000

    @property
    def connections_max_idle_s(self) -> float:
        """connections.max.idle.ms in seconds (trio deadlines); negative = never (as Kafka)."""
        idle_ms = self._values["connections.max.idle.ms"]
        return math.inf if idle_ms < 0 else idle_ms / 1000.0

    def __repr__(self) -> str:
        # Passwords (ssl.key.password, sasl.jaas.config's user_ entries...) never reach a log.
        shown = {
            key: "[hidden]"
            if (CONFIG_DEFS.get(key) or _listener_scoped_def(key) or _ANY).type == "password"
            else value
            for key, value in self.originals.items()
        }
        return f"BrokerConfig({shown!r})"


def _to_text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, list):
        return ",".join(str(x) for x in raw)
    return str(raw)


# --- Java .properties parsing ---------------------------------------------------------

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _logical_lines(text: str) -> list[str]:
    """Join continuation lines: a line ending in an odd number of backslashes continues,
    and the next line's leading whitespace is dropped (java.util.Properties.load)."""
    lines: list[str] = []
    pending: str | None = None
    for physical in text.splitlines():
        line = physical.lstrip() if pending is not None else physical
        if pending is None:
            stripped = line.lstrip()
            if not stripped or stripped[0] in "#!":
                continue
            line = stripped
        trailing = len(line) - len(line.rstrip("\\"))
        continues = trailing % 2 == 1
        if continues:
            line = line[:-1]
        pending = line if pending is None else pending + line
        if not continues:
            lines.append(pending)
            pending = None
    if pending is not None:
        lines.append(pending)
    return lines


def add_pairs_option(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    """A repeatable ``flag KEY=VALUE`` command-line option: its values gather in a list
    (empty when the option is absent), for ``parse_pairs`` or the caller's own parsing."""
    parser.add_argument(flag, action="append", default=[], metavar="KEY=VALUE", help=help)


def parse_pairs(
    items: Iterable[str], option: str, error: type[Exception] = ValueError
) -> dict[str, str]:
    """``KEY=VALUE`` command-line settings (``--override``, ``--config``, ...) to a dict,
    key and value stripped; ``error`` naming ``option`` for one without a key or "="."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise error(f"{option} {item!r} is not KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java .properties text: # and ! comments, key=value / key: value / key value,
    backslash line continuations and escapes."""
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        i = 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                break
            i += 1
        key = line[:i]
        # One "=" or ":" may follow the key, with whitespace either side.
        rest = line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        result[_unescape(key)] = _unescape(rest)
    return result
