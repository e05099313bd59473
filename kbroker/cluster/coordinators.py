"""Coordinators in cluster mode: where a group or transactional id lives, and loading.

As in Kafka, the group coordinator of a group is the leader of its
``__consumer_offsets`` partition (``abs(hash(group)) % partitions``) and the
transaction coordinator of a transactional id the leader of its
``__transaction_state`` partition. FindCoordinator answers that leader from the
metadata cache, creating the internal topic on first use (COORDINATOR_NOT_AVAILABLE
meanwhile, as KafkaApis.getCoordinator does).

Each of those partitions led here has its own coordinator, built from that
partition's log. When this broker starts or stops leading one, that partition's
coordinator alone is unloaded (a load under way cancelled); when it starts, the
partition's load begins at once, in the background (kbroker.coordinator.loading),
and its groups / transactional ids answer COORDINATOR_LOAD_IN_PROGRESS until it is
over: a new leader serves the groups and transactions of its new partitions from
what its log holds, and the groups and transactions of its other partitions go on
undisturbed (Kafka's GroupCoordinator and TransactionCoordinator onElection /
onResignation work per partition too, loading on the scheduler).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kbroker.coordinator.group import partition_for
from kbroker.coordinator.service import load_partition as load_groups
from kbroker.coordinator.service import unload_partition as unload_groups
from kbroker.errors import KafkaApiError
from kbroker.internal_topics import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kbroker.txn.service import load_partition as load_transactions
from kbroker.txn.service import unload_partition as unload_transactions
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.cluster.node import ClusterNode

__all__ = ["KEY_TYPE_GROUP", "KEY_TYPE_TRANSACTION", "coordinator_partition", "locate", "unload"]

logger = logging.getLogger(__name__)

KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1


def _topic_for(key_type: int) -> str:
    return OFFSETS_TOPIC if key_type == KEY_TYPE_GROUP else TRANSACTION_STATE_TOPIC


def coordinator_partition(cluster: ClusterNode, key_type: int, key: str) -> tuple[str, int]:
    """(internal topic, partition) that holds ``key``'s state."""
    topic = _topic_for(key_type)
    info = cluster.metadata.topic(topic)
    if info is not None and info.partitions:
        count = len(info.partitions)
    else:
        setting = (
            "offsets.topic.num.partitions"
            if key_type == KEY_TYPE_GROUP
            else "transaction.state.log.num.partitions"
        )
        count = int(cluster.broker.config[setting])
    return topic, partition_for(key, count)


async def locate(
    cluster: ClusterNode, key_type: int, key: str, listener: str | None = None
) -> tuple[int, str, int]:
    """(node id, host, port) of ``key``'s coordinator; KafkaApiError
    COORDINATOR_NOT_AVAILABLE while its partition has no live leader."""
    from kbroker.cluster.topic_admin import auto_create

    topic, partition = coordinator_partition(cluster, key_type, key)
    if cluster.metadata.topic(topic) is None:
        try:
            await auto_create(cluster, topic)
        except KafkaApiError as exc:
            logger.info("creating %s failed: %s", topic, exc)
        raise KafkaApiError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    leader = cluster.metadata.leader_of(topic, partition)
    if leader is None:
        raise KafkaApiError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    # The coordinator's endpoint on the client's listener; a coordinator without it is
    # not available to this client (Kafka answers COORDINATOR_NOT_AVAILABLE too).
    endpoint = cluster.metadata.brokers[leader].endpoint_for(listener)
    if endpoint is None:
        raise KafkaApiError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    return leader, endpoint[0], endpoint[1]


def leads_coordinator(cluster: ClusterNode, key_type: int, key: str) -> bool:
    """Whether this broker leads the partition holding ``key``'s state."""
    topic, partition = coordinator_partition(cluster, key_type, key)
    return cluster.replicas.is_leader(topic, partition)


def unload(cluster: ClusterNode, topic: str, index: int, leads: bool) -> None:
    """Leadership of an internal partition moved: unload its coordinator and, if this
    broker now leads the partition, start loading it again from the log at once. An
    unloaded coordinator answers whoever waits in it as Kafka's resigned coordinator does,
    NOT_COORDINATOR, and writes nothing more (``GroupCoordinator.unload``,
    ``TransactionCoordinator.unload``); those of the other partitions are untouched."""
    groups = topic == OFFSETS_TOPIC
    unloaded = (unload_groups if groups else unload_transactions)(cluster.broker, index)
    if unloaded:
        logger.info(
            "%s-%d %s: its %s coordinator is unloaded",
            topic,
            index,
            "now led here" if leads else "no longer led here",
            "group" if groups else "transaction",
        )
    if leads:
        # GroupCoordinator / TransactionCoordinator.onElection: loading starts now, not
        # at the first request (or maintenance pass) that needs the partition.
        (load_groups if groups else load_transactions)(cluster.broker, index)
