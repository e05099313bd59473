"""Writes the broker makes itself as a partition's leader: coordinator records and markers.

Kafka's group and transaction coordinators append to ``__consumer_offsets`` /
``__transaction_state`` through ``ReplicaManager.appendRecords`` with acks=all (the
new group coordinator of KIP-848 with acks=1, waiting for the high watermark), and
the transaction coordinator's markers go through the same leader append path as a
Produce. Two things follow, which this module gives the broker's own writes:

- ``append_as_leader``: the batch is stamped with the leader's current epoch (as
  every leader append is; a follower copies the epoch with the batch and its
  leader-epoch-checkpoint follows it, KIP-101), and the high watermark moves as for
  a Produce (a leader alone in its ISR commits at once);
- ``wait_replicated``: the coordinator answers only once the ISR has the write
  (Kafka's DelayedProduce for the coordinator's append), so a committed offset or a
  transaction's state survives the coordinator's failover. Errors are the acks=all
  ones; ``coordinator_error`` maps them as GroupMetadataManager.storeOffsets and
  TransactionStateManager.appendTransactionToLog do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import BrokerState
    from kbroker.log import AppendResult

__all__ = ["append_as_leader", "coordinator_error", "wait_replicated"]


def append_as_leader(partition: Any, records: bytes | bytearray | memoryview) -> AppendResult:
    """Append ``records`` on this leader with its leader epoch; moves the HW like a Produce."""
    replica = partition.replica
    # Without replication state (a single node) epoch 0, as the Produce path stamps.
    epoch = replica.leader_epoch if replica is not None and replica.leader_epoch >= 0 else 0
    result: AppendResult = partition.log.append(records, leader_epoch=epoch)
    if replica is not None:
        replica.on_leader_append()
    return result


async def wait_replicated(
    broker: BrokerState, topic: str, index: int, *, timeout_ms: int, acks_all: bool = True
) -> ErrorCode:
    """Wait until every ISR member has what this leader appended to ``topic``-``index`` so
    far; NONE at once on a partition without replication state (a single node).

    ``acks_all`` (the classic group and transaction coordinators) is an acks=all wait,
    answering NOT_ENOUGH_REPLICAS_AFTER_APPEND once the HW passes if the ISR is then
    below min.insync.replicas. Without it (a KIP-848 group's write, Kafka's
    CoordinatorRuntime) only the high watermark counts: ``wait_for_high_watermark``.

    Returns NONE, NOT_ENOUGH_REPLICAS_AFTER_APPEND (acks=all only),
    NOT_LEADER_OR_FOLLOWER or REQUEST_TIMED_OUT.
    """
    partition = broker.topics.partition(topic, index)
    if partition is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    replica = partition.replica
    if replica is None:
        return ErrorCode.NONE
    required = partition.log.log_end_offset
    if not acks_all:
        return await replica.wait_for_high_watermark(required, timeout_ms / 1000)
    return await replica.wait_for_acks(required, timeout_ms / 1000)


# The part of the table every coordinator applies to a failed append of its own records
# (GroupMetadataManager.storeGroup / storeOffsets, TransactionStateManager
# .appendTransactionToLog): the partition is not writable here now, so the client looks
# for the coordinator again instead of failing.
COORDINATOR_APPEND_ERRORS: dict[ErrorCode, ErrorCode] = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
}


def coordinator_error(error: ErrorCode) -> ErrorCode:
    """What a coordinator answers for a failed append of its own records (Kafka's
    GroupMetadataManager.storeOffsets / TransactionStateManager.appendTransactionToLog):
    the common table, and an acks timeout is COORDINATOR_NOT_AVAILABLE too."""
    if error == ErrorCode.REQUEST_TIMED_OUT:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    return COORDINATOR_APPEND_ERRORS.get(error, error)
