"""``__transaction_state``: the transaction coordinator's records, written and replayed.

Kafka's format (TransactionLog): key = int16 version 0 + TransactionLogKey
(transactional id); value = int16 version 0 + TransactionLogValue (producer id
and epoch, timeout, state byte, partitions by topic, last update and start
timestamps); a null value is a tombstone. The topic is compacted, with
transaction.state.log.num.partitions partitions, and a transactional id lives
in partition ``abs(javaHashCode(id)) % n`` (Utils.abs, as for groups).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import trio

from kbroker.coordinator.group import partition_for
from kbroker.errors import KafkaApiError
from kbroker.internal_topics import (
    TRANSACTION_STATE_TOPIC,
    coordinated_partitions,
    iter_stored_batches,
)
from kbroker.replication.leader_writes import append_as_leader, coordinator_error
from kbroker.topic_config import effective_topic_value
from kbroker.txn.coordinator import AppendDone, TxnMetadata, TxnState
from kbroker.wire.errors import ErrorCode, ProtocolError
from kbroker.wire.messages import TransactionLogKey, TransactionLogValue
from kbroker.wire.protocol import decode_versioned_data, encode_versioned_data
from kbroker.wire.records import Record, build_batch

if TYPE_CHECKING:
    from kbroker.broker import BrokerState
    from kbroker.replication.partition import ReplicatedPartition

logger = logging.getLogger(__name__)


def encode_txn_record(tid: str, meta: TxnMetadata | None) -> tuple[bytes, bytes | None]:
    """The (key, value) bytes Kafka writes for a transactional id's state."""
    key = encode_versioned_data(TransactionLogKey, 0, TransactionLogKey(transactional_id=tid))
    if meta is None:
        return key, None
    by_topic: dict[str, list[int]] = {}
    for topic, part in sorted(meta.partitions):
        by_topic.setdefault(topic, []).append(part)
    Parts = TransactionLogValue.PartitionsSchema
    value = encode_versioned_data(
        TransactionLogValue,
        0,
        TransactionLogValue(
            producer_id=meta.producer_id,
            producer_epoch=meta.producer_epoch,
            transaction_timeout_ms=meta.timeout_ms,
            transaction_status=meta.state.id,
            transaction_partitions=[Parts(topic=t, partition_ids=p) for t, p in by_topic.items()],
            transaction_last_update_timestamp_ms=meta.last_update_ms,
            transaction_start_timestamp_ms=meta.start_ms,
        ),
    )
    return key, value


def decode_txn_record(key: bytes, value: bytes | None) -> tuple[str, TxnMetadata | None]:
    """Inverse of encode_txn_record (value versions 0 and 1)."""
    _, k = decode_versioned_data(TransactionLogKey, key)
    if value is None:
        return k.transactional_id, None
    _, v = decode_versioned_data(TransactionLogValue, value)
    meta = TxnMetadata(
        transactional_id=k.transactional_id,
        producer_id=v.producer_id,
        producer_epoch=v.producer_epoch,
        timeout_ms=v.transaction_timeout_ms,
        state=TxnState.from_id(v.transaction_status),
        partitions={
            (p.topic, i) for p in (v.transaction_partitions or []) for i in p.partition_ids
        },
        start_ms=v.transaction_start_timestamp_ms,
        last_update_ms=v.transaction_last_update_timestamp_ms,
    )
    return k.transactional_id, meta


class TxnStateTopicStore:
    """``TxnStore`` backed by the broker's ``__transaction_state`` partitions."""

    def __init__(self, broker: BrokerState, partitions: Sequence[int] | None = None) -> None:
        self._broker = broker
        # The partitions it loads and writes (None: every one this broker coordinates).
        self._partitions = None if partitions is None else set(partitions)

    def num_partitions(self) -> int:
        """Partitions of the topic once it exists (the cluster's, in cluster mode), else
        the configured count."""
        cluster = self._broker.cluster
        if cluster is not None:
            info = cluster.metadata.topic(TRANSACTION_STATE_TOPIC)
            if info is not None and info.partitions:
                return len(info.partitions)
        topic = self._broker.topics.get(TRANSACTION_STATE_TOPIC)
        if topic is not None:
            return len(topic.partitions)
        return int(self._broker.config["transaction.state.log.num.partitions"])

    def partition_of(self, tid: str) -> int:
        """The partition holding ``tid``'s state."""
        return partition_for(tid, self.num_partitions())

    def append(self, transactional_id: str, meta: TxnMetadata | None, done: AppendDone) -> None:
        """Append one record for ``transactional_id`` (the topic is created on first use)
        with acks=all, as TransactionStateManager.appendTransactionToLog: ``done`` hears
        NONE once every ISR member has it, else the coordinator error.

        A partition without replication state (a single node) is durable at once. A
        replicated one refuses the write below the topic's min.insync.replicas
        (transaction.state.log.min.isr; NOT_ENOUGH_REPLICAS, nothing appended) and
        otherwise waits, within the transaction's timeout as Kafka does, in a task of
        its own: the coordinator's callbacks are the rest of the request.
        """
        topic = self._broker.topics.create_internal(TRANSACTION_STATE_TOPIC)
        index = partition_for(transactional_id, len(topic.partitions))
        if self._partitions is not None and index not in self._partitions:
            # Another partition's coordinator holds that id.
            done(ErrorCode.NOT_COORDINATOR)
            return
        part = topic.partitions[index]
        replica = part.replica
        min_isr = int(
            effective_topic_value("min.insync.replicas", topic.configs, self._broker.config)
        )
        if replica is not None:
            try:
                replica.check_enough_replicas(min_isr)
            except KafkaApiError as exc:
                done(coordinator_error(ErrorCode(exc.code)))
                return
        key, value = encode_txn_record(transactional_id, meta)
        now = int(self._broker.clock() * 1000)
        append_as_leader(part, build_batch([Record(key=key, value=value, timestamp=now)]))
        # Followers parked in a long poll copy it at once.
        self._broker.notify_append(part)
        if replica is None:
            done(ErrorCode.NONE)
            return
        required = part.log.log_end_offset
        finished, error = replica.ack_status(required, min_isr)
        if finished:
            done(coordinator_error(error))
            return
        timeout_ms = meta.timeout_ms if meta is not None else _TOMBSTONE_TIMEOUT_MS
        # A system task: the wait outlives the request that started it (a client that
        # hangs up does not undo the write) and is bounded by the timeout.
        trio.lowlevel.spawn_system_task(
            _await_isr, replica, required, min_isr, timeout_ms / 1000, done
        )

    def load(self) -> Iterator[tuple[str, TxnMetadata | None]]:
        """Every record of the store's partitions, partition by partition, oldest first."""
        topic = self._broker.topics.get(TRANSACTION_STATE_TOPIC)
        if topic is None:
            return
        parts = [
            part
            for part in coordinated_partitions(self._broker, topic)
            if self._partitions is None or part.index in self._partitions
        ]
        for part, batch in iter_stored_batches(parts):
            if batch.header.is_control:
                continue
            for offset, key, value in batch.keyed_records():
                try:
                    yield decode_txn_record(key, value)
                except (ProtocolError, ValueError):
                    logger.warning(
                        "%s-%d offset %d: undecodable record skipped",
                        TRANSACTION_STATE_TOPIC,
                        part.index,
                        offset,
                    )


# The wait for a tombstone's replication (transactional.id.expiration.ms): Kafka bounds
# it by the expired transaction's timeout, whose default this is.
_TOMBSTONE_TIMEOUT_MS = 60_000


async def _await_isr(
    replica: ReplicatedPartition,
    required: int,
    min_isr: int,
    timeout_s: float,
    done: AppendDone,
) -> None:
    """Wait for the ISR to have ``required`` (acks=all), then tell ``done``."""
    epoch = replica.leader_epoch
    error = await replica.wait_for_acks(required, timeout_s, min_insync_replicas=min_isr)
    if error == ErrorCode.NONE and replica.leader_epoch != epoch:
        # Led again under a newer epoch meanwhile: Kafka's coordinator epoch check.
        error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    try:
        done(coordinator_error(error))
    except Exception:  # a system task must not raise: that would end the broker
        logger.exception("completing a __transaction_state write failed")
