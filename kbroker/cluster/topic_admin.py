"""Topic administration in cluster mode: Kafka's ``ZkAdminManager``.

The admin handlers (CreateTopics, CreatePartitions, DeleteTopics, AlterConfigs,
IncrementalAlterConfigs) and Metadata's auto-creation write to ZooKeeper through
``kbroker.cluster.admin_zk``; the controller notices and tells the brokers. A
request then waits, up to its timeout, until this broker's metadata cache shows
the result, as Kafka's ``DelayedCreatePartitions`` / ``DelayedDeleteTopics`` do;
a request with timeout 0 answers at once (REQUEST_TIMED_OUT is only reported
when a positive timeout runs out, as in Kafka).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kbroker.errors import KafkaApiError, unknown_topic
from kbroker.internal_topics import INTERNAL_TOPICS, OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kbroker.topic_config import validate_topic_configs
from kbroker.topics import check_name, check_partition_increase, random_kafka_uuid
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.cluster.node import ClusterNode

__all__ = [
    "add_partitions",
    "auto_create",
    "change_topic_config",
    "create_topic",
    "delete_topic",
    "internal_topic_spec",
    "live_brokers",
]

logger = logging.getLogger(__name__)


def _collision_key(name: str) -> str:
    return name.replace(".", "_")


def live_brokers(cluster: ClusterNode) -> list[tuple[int, str | None]]:
    """(id, rack) of every live broker (this one at least, before the first UpdateMetadata)."""
    brokers = cluster.metadata.broker_racks()
    if not brokers:
        brokers = [(cluster.broker_id, cluster.broker.config["broker.rack"])]
    return brokers


def internal_topic_spec(cluster: ClusterNode, name: str) -> tuple[int, int, dict[str, str]]:
    """(partitions, replication factor, configs) of an internal topic: the replication
    factor is capped at the live brokers (as Kafka's AutoTopicCreationManager does when
    it would otherwise refuse the topic until enough brokers are up)."""
    config = cluster.broker.config
    if name == OFFSETS_TOPIC:
        partitions = config["offsets.topic.num.partitions"]
        factor = config["offsets.topic.replication.factor"]
        segment = config["offsets.topic.segment.bytes"]
    elif name == TRANSACTION_STATE_TOPIC:
        partitions = config["transaction.state.log.num.partitions"]
        factor = config["transaction.state.log.replication.factor"]
        segment = config["transaction.state.log.segment.bytes"]
    else:
        raise KafkaApiError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"{name} is not internal")
    factor = min(int(factor), len(live_brokers(cluster)))
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": str(segment),
        "compression.type": "producer",
    }
    if name == TRANSACTION_STATE_TOPIC:
        # TransactionStateManager.transactionTopicConfigs: the coordinator appends with
        # acks=all against this min.insync.replicas. Capped at the (capped) replication
        # factor, or a cluster smaller than the setting could never write a transaction.
        min_isr = min(int(config["transaction.state.log.min.isr"]), factor)
        configs["min.insync.replicas"] = str(min_isr)
    return int(partitions), factor, configs


def _check_new_name(cluster: ClusterNode, name: str, *, internal: bool) -> None:
    check_name(name)
    if cluster.metadata.topic(name) is not None:
        raise KafkaApiError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    if name in INTERNAL_TOPICS and not internal:
        raise KafkaApiError(
            ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic '{name}' is reserved for internal use."
        )
    key = _collision_key(name)
    for existing in cluster.metadata.topics:
        if _collision_key(existing) == key:
            raise KafkaApiError(
                ErrorCode.INVALID_TOPIC_EXCEPTION,
                f"Topic '{name}' collides with existing topic: {existing}",
            )


async def create_topic(
    cluster: ClusterNode,
    name: str,
    *,
    num_partitions: int,
    replication_factor: int,
    assignment: Mapping[int, Sequence[int]] | None = None,
    configs: Mapping[str, str | None] | None = None,
    validate_only: bool = False,
    timeout_ms: int = 0,
    internal: bool = False,
) -> tuple[uuid.UUID, dict[int, list[int]]]:
    """Create a topic in ZooKeeper (AdminZkClient.createTopic); wait for it to show.

    ``num_partitions`` / ``replication_factor`` of -1 take the broker defaults; with an
    ``assignment`` both come from it. Returns (topic id, assignment).
    """
    from kbroker.cluster import admin_zk

    _check_new_name(cluster, name, internal=internal)
    overrides = validate_topic_configs(configs or {})
    brokers = live_brokers(cluster)
    config = cluster.broker.config
    if assignment:
        admin_zk.validate_assignment(assignment, [b for b, _ in brokers])
        placed = {int(p): list(r) for p, r in assignment.items()}
    else:
        if num_partitions == -1:
            num_partitions = int(config["num.partitions"])
        if replication_factor == -1:
            replication_factor = int(config["default.replication.factor"])
        if num_partitions <= 0:
            raise KafkaApiError(
                ErrorCode.INVALID_PARTITIONS,
                "Number of partitions was set to an invalid non-positive value.",
            )
        if replication_factor <= 0:
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            )
        if replication_factor > len(brokers):
            # AdminUtils.assignReplicasToBrokers' InvalidReplicationFactorException.
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Replication factor: {replication_factor} larger than available "
                f"brokers: {len(brokers)}.",
            )
        placed = {
            int(p): list(r)
            for p, r in admin_zk.assign_replicas(
                brokers, num_partitions, replication_factor
            ).items()
        }
    topic_id = random_kafka_uuid()
    if validate_only:
        return topic_id, placed
    await admin_zk.create_topic(cluster.zk, name, placed, dict(overrides), topic_id)
    logger.info("created topic %s in ZooKeeper with assignment %s", name, placed)
    await _wait(
        cluster,
        lambda: _shows_partitions(cluster, name, len(placed)),
        timeout_ms,
        f"Topic {name} was created in ZooKeeper but is not ready yet",
    )
    return topic_id, placed


def _shows_partitions(cluster: ClusterNode, name: str, count: int) -> bool:
    info = cluster.metadata.topic(name)
    return info is not None and len(info.partitions) >= count


async def _wait(cluster: ClusterNode, predicate: Any, timeout_ms: int, message: str) -> None:
    if timeout_ms <= 0:
        return
    if not await cluster.metadata.wait_until(predicate, timeout_ms / 1000.0):
        raise KafkaApiError(ErrorCode.REQUEST_TIMED_OUT, message)


async def auto_create(cluster: ClusterNode, name: str) -> None:
    """Create a topic a Metadata request asked for (internal ones with their settings);
    a concurrent creation by another broker is fine. Does not wait: the client is
    answered LEADER_NOT_AVAILABLE and asks again, as with Kafka."""
    try:
        if name in INTERNAL_TOPICS:
            partitions, factor, configs = internal_topic_spec(cluster, name)
            await create_topic(
                cluster,
                name,
                num_partitions=partitions,
                replication_factor=factor,
                configs=configs,
                internal=True,
            )
        else:
            await create_topic(cluster, name, num_partitions=-1, replication_factor=-1)
    except KafkaApiError as exc:
        if exc.code != ErrorCode.TOPIC_ALREADY_EXISTS:
            raise


async def delete_topic(cluster: ClusterNode, name: str, *, timeout_ms: int) -> None:
    """Mark a topic for deletion (/admin/delete_topics/<t>); wait until it is gone."""
    from kbroker.cluster import admin_zk

    if not cluster.broker.config["delete.topic.enable"]:
        raise KafkaApiError(ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
    if cluster.metadata.topic(name) is None:
        raise KafkaApiError(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            "This server does not host this topic-partition.",
        )
    await admin_zk.delete_topic(cluster.zk, name)
    await _wait(
        cluster,
        lambda: cluster.metadata.topic(name) is None,
        timeout_ms,
        f"Topic {name} is marked for deletion but not deleted yet",
    )


async def add_partitions(
    cluster: ClusterNode,
    name: str,
    total: int,
    *,
    assignment: Sequence[Sequence[int]] | None = None,
    validate_only: bool = False,
    timeout_ms: int = 0,
) -> dict[int, list[int]]:
    """Grow a topic to ``total`` partitions (AdminZkClient.addPartitions); wait for them."""
    from kbroker.cluster import admin_zk

    info = cluster.metadata.topic(name)
    if info is None:
        raise unknown_topic(name)
    current = len(info.partitions)
    check_partition_increase(name, current, total)
    brokers = live_brokers(cluster)
    factor = len(info.partitions[0].replicas) if 0 in info.partitions else 1
    if assignment:
        if len(assignment) != total - current:
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"Increasing the number of partitions by {total - current} but "
                f"{len(assignment)} assignments provided.",
            )
        added = {current + i: list(r) for i, r in enumerate(assignment)}
        admin_zk.validate_assignment(added, [b for b, _ in brokers], first_partition=current)
        if any(len(r) != factor for r in added.values()):
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"Inconsistent replication factor between partitions, partition 0 has "
                f"{factor} while partitions [{', '.join(map(str, added))}] have "
                "replication factors [{}], respectively.".format(
                    ", ".join(str(len(r)) for r in added.values())
                ),
            )
    else:
        if factor > len(brokers):
            raise KafkaApiError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Replication factor: {factor} larger than available brokers: {len(brokers)}.",
            )
        # AdminZkClient.createNewPartitionsAssignment: continue the placement from where
        # partition 0's leader sits, starting at the first new partition.
        first_leader = info.partitions[0].replicas[0] if 0 in info.partitions else -1
        ids = [b for b, _ in brokers]
        start = ids.index(first_leader) if first_leader in ids else None
        added = {
            int(p): list(r)
            for p, r in admin_zk.assign_replicas(
                brokers, total - current, factor, start_index=start, start_partition=current
            ).items()
        }
        # assign_replicas numbers the new partitions from start_partition.
        if set(added) != set(range(current, total)):
            added = {current + i: r for i, (_, r) in enumerate(sorted(added.items()))}
    if validate_only:
        return added
    await admin_zk.add_partitions(cluster.zk, name, added)
    await _wait(
        cluster,
        lambda: _shows_partitions(cluster, name, total),
        timeout_ms,
        f"Partitions of {name} were added in ZooKeeper but are not ready yet",
    )
    return added


async def change_topic_config(
    cluster: ClusterNode, name: str, configs: Mapping[str, str], *, validate_only: bool = False
) -> None:
    """Replace a topic's overrides in /config/topics/<t> and announce it to every broker."""
    from kbroker.cluster import admin_zk

    if cluster.metadata.topic(name) is None:
        raise unknown_topic(name)
    clean = validate_topic_configs(configs)
    if validate_only:
        return
    await admin_zk.change_topic_config(cluster.zk, name, dict(clean))
    # Our own copy now, without waiting for the notification to come back.
    await cluster.apply_topic_configs(name)
