"""Kafka's ZooKeeper layout: znode paths and the JSON of each znode, without any I/O.

Field names, versions and value types follow Kafka's ``kafka.zk.ZkData`` exactly, so
that ``zookeeper-shell`` (or Kafka's own tools) reading our tree sees what a Kafka
cluster in ZooKeeper mode writes: timestamps and producer id bounds are JSON strings,
``/controller_epoch`` is a plain integer, topic ids are Kafka's ``Uuid.toString``
(URL-safe base64 without padding). Decoders accept what Kafka's decoders accept
(missing optional keys get Kafka's defaults).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BROKER_IDS",
    "BROKER_SEQID",
    "CLUSTER_ID",
    "CONFIG_CHANGES",
    "CONFIG_CHANGE_PREFIX",
    "CONFIG_TOPICS",
    "CONTROLLER",
    "CONTROLLER_EPOCH",
    "DELETE_TOPICS",
    "ISR_CHANGE_NOTIFICATION",
    "ISR_CHANGE_PREFIX",
    "LATEST_PRODUCER_ID_BLOCK",
    "PERSISTENT_PATHS",
    "PREFERRED_REPLICA_ELECTION",
    "REASSIGN_PARTITIONS",
    "TOPICS",
    "BrokerRegistration",
    "ControllerInfo",
    "PartitionState",
    "ProducerIdBlock",
    "TopicAssignment",
    "TopicPartition",
    "broker_path",
    "decode_cluster_id",
    "decode_config_change",
    "decode_controller_epoch",
    "decode_partition_list",
    "decode_reassignment",
    "decode_topic_config",
    "delete_topic_path",
    "encode_cluster_id",
    "encode_config_change",
    "encode_controller_epoch",
    "encode_partition_list",
    "encode_reassignment",
    "encode_topic_config",
    "partition_state_path",
    "partitions_path",
    "topic_config_path",
    "topic_id_from_string",
    "topic_id_to_string",
    "topic_path",
]

TopicPartition = tuple[str, int]

# --- Paths (ZkData.scala objects of the same names) --------------------------------
CLUSTER_ID = "/cluster/id"
BROKER_IDS = "/brokers/ids"
TOPICS = "/brokers/topics"
BROKER_SEQID = "/brokers/seqid"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
CONFIG_TOPICS = "/config/topics"
CONFIG_CHANGES = "/config/changes"
CONFIG_CHANGE_PREFIX = "config_change_"
DELETE_TOPICS = "/admin/delete_topics"
PREFERRED_REPLICA_ELECTION = "/admin/preferred_replica_election"
# The pre-KIP-455 way to ask for a reassignment (ReassignPartitionsZNode), still honoured.
REASSIGN_PARTITIONS = "/admin/reassign_partitions"
ISR_CHANGE_NOTIFICATION = "/isr_change_notification"
ISR_CHANGE_PREFIX = "isr_change_"
LATEST_PRODUCER_ID_BLOCK = "/latest_producer_id_block"

# ZkData.PersistentZkPaths: created (if missing) by every broker at start-up, so that
# watches and sequential children always have a parent.
PERSISTENT_PATHS: tuple[str, ...] = (
    "/consumers",
    BROKER_IDS,
    TOPICS,
    CONFIG_CHANGES,
    DELETE_TOPICS,
    BROKER_SEQID,
    ISR_CHANGE_NOTIFICATION,
    LATEST_PRODUCER_ID_BLOCK,
    "/log_dir_event_notification",
    CONFIG_TOPICS,
    "/config/clients",
    "/config/users",
    "/config/brokers",
    "/config/ips",
)


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(topic: str) -> str:
    return f"{TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{TOPICS}/{topic}/partitions"


def partition_state_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}/state"


def topic_config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def delete_topic_path(topic: str) -> str:
    return f"{DELETE_TOPICS}/{topic}"


# --- JSON helpers ------------------------------------------------------------------


def _dump(obj: Mapping[str, Any]) -> bytes:
    # Jackson (Kafka's Json.encodeAsBytes) writes compact JSON.
    return json.dumps(obj, separators=(",", ":")).encode()


def _load(data: bytes) -> dict[str, Any]:
    obj = json.loads(data.decode())
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {data!r}")
    return obj


def topic_id_to_string(topic_id: uuid.UUID) -> str:
    """Kafka's ``Uuid.toString``: URL-safe base64 of the 16 bytes, no padding."""
    return base64.urlsafe_b64encode(topic_id.bytes).rstrip(b"=").decode()


def topic_id_from_string(text: str) -> uuid.UUID:
    """Kafka's ``Uuid.fromString``."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 16:
        raise ValueError(f"not a Kafka Uuid: {text!r}")
    return uuid.UUID(bytes=raw)


# --- /cluster/id --------------------------------------------------------------------


def encode_cluster_id(cluster_id: str) -> bytes:
    # ClusterIdZNode.toJson: the version is a string here, unlike everywhere else.
    return _dump({"version": "1", "id": cluster_id})


def decode_cluster_id(data: bytes) -> str:
    return str(_load(data)["id"])


# --- /brokers/ids/<id> --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    """BrokerIdZNode v5: what a broker writes to its ephemeral registration znode."""

    broker_id: int
    host: str
    port: int
    endpoints: tuple[str, ...]  # "PLAINTEXT://host:port", one per advertised listener
    rack: str | None = None
    timestamp_ms: int = 0
    jmx_port: int = -1
    listener_security_protocol_map: Mapping[str, str] = field(
        default_factory=lambda: {"PLAINTEXT": "PLAINTEXT"}
    )
    features: Mapping[str, Any] = field(default_factory=dict)
    version: int = 5

    def encode(self) -> bytes:
        return _dump(
            {
                "listener_security_protocol_map": dict(self.listener_security_protocol_map),
                "endpoints": list(self.endpoints),
                "jmx_port": self.jmx_port,
                "features": dict(self.features),
                "host": self.host or None,  # null without a PLAINTEXT listener
                "timestamp": str(self.timestamp_ms),
                "port": self.port,
                "version": self.version,
                "rack": self.rack,
            }
        )

    @classmethod
    def decode(cls, broker_id: int, data: bytes) -> BrokerRegistration:
        js = _load(data)
        version = int(js["version"])
        if version < 1:
            raise ValueError(f"unsupported broker registration version {version}")
        if version == 1:
            endpoints: tuple[str, ...] = (f"PLAINTEXT://{js['host']}:{js['port']}",)
        else:
            endpoints = tuple(str(e) for e in js["endpoints"])
        host = js.get("host")
        port = js.get("port")
        if host is None and endpoints:  # non-PLAINTEXT-only brokers write host null
            host, port = parse_endpoint(endpoints[0])[1:]
        return cls(
            broker_id=broker_id,
            host=str(host or ""),
            port=int(port if port is not None else -1),
            endpoints=endpoints,
            rack=js.get("rack"),
            timestamp_ms=int(js.get("timestamp", 0)),
            jmx_port=int(js.get("jmx_port", -1)),
            listener_security_protocol_map=dict(
                js.get("listener_security_protocol_map") or {"PLAINTEXT": "PLAINTEXT"}
            ),
            features=dict(js.get("features") or {}),
            version=version,
        )

    def endpoint(self, listener: str = "PLAINTEXT") -> tuple[str, int] | None:
        """(host, port) of the named listener, or None if the broker has no such listener."""
        for text in self.endpoints:
            name, host, port = parse_endpoint(text)
            if name == listener:
                return host, port
        return None


def parse_endpoint(text: str) -> tuple[str, str, int]:
    """``NAME://host:port`` -> (NAME, host, port); IPv6 hosts come in brackets."""
    name, _, rest = text.partition("://")
    host, _, port = rest.rpartition(":")
    return name, host.strip("[]"), int(port)


# --- /controller and /controller_epoch ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ControllerInfo:
    """The ephemeral /controller znode: which broker is the controller."""

    broker_id: int
    timestamp_ms: int = 0
    version: int = 1

    def encode(self) -> bytes:
        return _dump(
            {
                "version": self.version,
                "brokerid": self.broker_id,
                "timestamp": str(self.timestamp_ms),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> ControllerInfo:
        js = _load(data)
        return cls(
            broker_id=int(js["brokerid"]),
            timestamp_ms=int(js.get("timestamp", 0)),
            version=int(js.get("version", 1)),
        )


def encode_controller_epoch(epoch: int) -> bytes:
    return str(epoch).encode()


def decode_controller_epoch(data: bytes) -> int:
    return int(data.decode())


# --- /brokers/topics/<t> ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicAssignment:
    """TopicZNode v3: replica assignment per partition, reassignment state and topic id."""

    partitions: Mapping[int, tuple[int, ...]]
    topic_id: uuid.UUID | None = None
    adding_replicas: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    removing_replicas: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def encode(self) -> bytes:
        def table(m: Mapping[int, tuple[int, ...]]) -> dict[str, list[int]]:
            return {str(p): list(r) for p, r in sorted(m.items()) if r}

        obj: dict[str, Any] = {
            "partitions": {str(p): list(r) for p, r in sorted(self.partitions.items())},
        }
        if self.topic_id is not None:
            obj["topic_id"] = topic_id_to_string(self.topic_id)
        obj["adding_replicas"] = table(self.adding_replicas)
        obj["removing_replicas"] = table(self.removing_replicas)
        obj["version"] = 3
        return _dump(obj)

    @classmethod
    def decode(cls, data: bytes) -> TopicAssignment:
        js = _load(data)

        def table(key: str) -> dict[int, tuple[int, ...]]:
            return {int(p): tuple(int(b) for b in r) for p, r in (js.get(key) or {}).items()}

        tid = js.get("topic_id")
        return cls(
            partitions=table("partitions"),
            topic_id=topic_id_from_string(tid) if tid else None,
            adding_replicas=table("adding_replicas"),
            removing_replicas=table("removing_replicas"),
        )


# --- /brokers/topics/<t>/partitions/<p>/state ----------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionState:
    """TopicPartitionStateZNode: leader, leader epoch, ISR and the controller epoch that wrote it.

    ``zk_version`` is the znode's version when read (Kafka's ``partitionEpoch``, sent in
    LeaderAndIsr and used for conditional ISR updates); it is not part of the JSON.
    """

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    leader_recovery_state: int = 0  # 0 RECOVERED, 1 RECOVERING (KIP-704)
    zk_version: int = 0

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "controller_epoch": self.controller_epoch,
            "leader": self.leader,
            "version": 1,
            "leader_epoch": self.leader_epoch,
            "isr": list(self.isr),
        }
        # Written only when not RECOVERED, as Kafka does.
        if self.leader_recovery_state != 0:
            obj["leader_recovery_state"] = self.leader_recovery_state
        return _dump(obj)

    @classmethod
    def decode(cls, data: bytes, zk_version: int = 0) -> PartitionState:
        js = _load(data)
        return cls(
            leader=int(js["leader"]),
            leader_epoch=int(js["leader_epoch"]),
            isr=tuple(int(b) for b in js["isr"]),
            controller_epoch=int(js["controller_epoch"]),
            leader_recovery_state=int(js.get("leader_recovery_state", 0)),
            zk_version=zk_version,
        )


# --- /config/topics/<t> and /config/changes -----------------------------------------


def encode_topic_config(configs: Mapping[str, str]) -> bytes:
    return _dump({"version": 1, "config": {k: str(v) for k, v in configs.items()}})


def decode_topic_config(data: bytes | None) -> dict[str, str]:
    if not data:
        return {}
    config = _load(data).get("config") or {}
    return {str(k): str(v) for k, v in config.items()}


def encode_config_change(entity_path: str) -> bytes:
    """ConfigEntityChangeNotificationSequenceZNode v2: ``entity_path`` is e.g. ``topics/t``."""
    return _dump({"version": 2, "entity_path": entity_path})


def decode_config_change(data: bytes) -> str:
    js = _load(data)
    if int(js.get("version", 0)) != 2:
        raise ValueError(f"unsupported config change notification {data!r}")
    return str(js["entity_path"])


# --- /isr_change_notification/isr_change_N and /admin/preferred_replica_election -----


def encode_partition_list(partitions: Iterable[TopicPartition]) -> bytes:
    """The ``{"version":1,"partitions":[{"topic":..,"partition":..}]}`` shape both use."""
    return _dump(
        {
            "version": 1,
            "partitions": [{"topic": t, "partition": p} for t, p in sorted(set(partitions))],
        }
    )


def decode_partition_list(data: bytes) -> set[TopicPartition]:
    js = _load(data)
    return {(str(e["topic"]), int(e["partition"])) for e in js.get("partitions") or []}


# --- /admin/reassign_partitions ----------------------------------------------------------


def encode_reassignment(reassignment: Mapping[TopicPartition, Iterable[int]]) -> bytes:
    """ReassignPartitionsZNode (LegacyPartitionAssignment v1)."""
    return _dump(
        {
            "version": 1,
            "partitions": [
                {"topic": t, "partition": p, "replicas": list(r)}
                for (t, p), r in sorted(reassignment.items())
            ],
        }
    )


def decode_reassignment(data: bytes) -> dict[TopicPartition, tuple[int, ...]]:
    js = _load(data)
    return {
        (str(e["topic"]), int(e["partition"])): tuple(int(b) for b in e["replicas"])
        for e in js.get("partitions") or []
    }


# --- /latest_producer_id_block --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProducerIdBlock:
    """ProducerIdBlockZNode v1: the last block handed out; bounds are inclusive strings."""

    broker_id: int
    block_start: int
    block_end: int

    @property
    def size(self) -> int:
        return self.block_end - self.block_start + 1

    def encode(self) -> bytes:
        return _dump(
            {
                "version": 1,
                "broker": self.broker_id,
                "block_start": str(self.block_start),
                "block_end": str(self.block_end),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> ProducerIdBlock:
        js = _load(data)
        return cls(
            broker_id=int(js["broker"]),
            block_start=int(js["block_start"]),
            block_end=int(js["block_end"]),
        )
