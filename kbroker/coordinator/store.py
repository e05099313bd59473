"""``__consumer_offsets``: the coordinator's records, written and replayed.

Kafka's record formats (GroupMetadataManager): every record's key is an int16
version followed by a struct, the value likewise.

- key version 0/1: OffsetCommitKey (group, topic, partition) → OffsetCommitValue
  (we write v3: offset, leader epoch, metadata, commit timestamp; v1 when an
  OffsetCommit v2-4 asked for an explicit retention time, the only version with
  an expire timestamp).
- key version 2: GroupMetadataKey (group) → GroupMetadataValue v3 (members
  with subscription and assignment).
- key versions 3-8: the KIP-848 consumer group records (ConsumerGroupMetadata,
  PartitionMetadata, MemberMetadata, TargetAssignmentMetadata, TargetAssignmentMember,
  CurrentMemberAssignment), each value at version 0; see consumer_group.py for when
  they are written.
- A null value is a tombstone; the topic is compacted so only the latest record
  per key survives.

The topic is created on first write with offsets.topic.num.partitions
partitions and cleanup.policy=compact. TxnOffsetCommit records
are written in a transactional batch (the producer's id and epoch) and count
only once that producer's COMMIT marker follows them. A write is one batch appended to the
group's partition before the caller answers the client: once an OffsetCommit
is acknowledged its batch is in the OS page cache, which survives kill -9.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from kbroker.coordinator.consumer_group import (
    Assignment,
    ConsumerGroupEpochRecord,
    ConsumerGroupRecord,
    ConsumerGroupTopicsRecord,
    CurrentAssignmentRecord,
    MemberAssignment,
    MemberMetadataRecord,
    MemberSubscription,
    TargetAssignmentRecord,
    TargetEpochRecord,
    TopicsView,
)
from kbroker.coordinator.group import GroupRecord, GroupSnapshot, MemberSnapshot
from kbroker.coordinator.offsets import OffsetAndMetadata, OffsetRecord
from kbroker.errors import KafkaApiError
from kbroker.failures import warn_storage_failure
from kbroker.internal_topics import OFFSETS_TOPIC, coordinated_partitions, iter_stored_batches
from kbroker.replication.leader_writes import append_as_leader
from kbroker.wire.errors import ErrorCode, ProtocolError
from kbroker.wire.messages import (
    ConsumerGroupCurrentMemberAssignmentKey,
    ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupMemberMetadataKey,
    ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataKey,
    ConsumerGroupMetadataValue,
    ConsumerGroupPartitionMetadataKey,
    ConsumerGroupPartitionMetadataValue,
    ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue,
    GroupMetadataKey,
    GroupMetadataValue,
    OffsetCommitKey,
    OffsetCommitValue,
)
from kbroker.wire.protocol import decode_versioned_data, encode_versioned_data
from kbroker.wire.records import Record, build_batch

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

__all__ = [
    "CoordinatorRecord",
    "OffsetsTopicStore",
    "decode_record",
    "encode_record",
]

logger = logging.getLogger(__name__)


CoordinatorRecord = OffsetRecord | GroupRecord | ConsumerGroupRecord


def _topic_partitions(cls: Any, assignment: Assignment) -> list[Any]:
    return [cls(topic_id=t, partitions=sorted(ps)) for t, ps in sorted(assignment.items())]


def _assignment(entries: list[Any]) -> Assignment:
    return {e.topic_id: set(e.partitions) for e in entries if e.partitions}


def _topics_value(topics: TopicsView) -> Any:
    Meta = ConsumerGroupPartitionMetadataValue.TopicMetadata
    return ConsumerGroupPartitionMetadataValue(
        topics=[
            Meta(topic_id=tid, topic_name=name, num_partitions=count)
            for name, (tid, count) in sorted(topics.items())
        ]
    )


# MemberSubscription's fields as ConsumerGroupMemberMetadataValue names them.
_SUBSCRIPTION_NAMES = {
    "subscribed_names": "subscribed_topic_names",
    "regex": "subscribed_topic_regex",
}


def _subscription_value(sub: MemberSubscription) -> Any:
    return ConsumerGroupMemberMetadataValue(
        **{_SUBSCRIPTION_NAMES.get(name, name): value for name, value in asdict(sub).items()}
    )


def _subscription(v: Any) -> MemberSubscription:
    return MemberSubscription.of(v, _SUBSCRIPTION_NAMES)


def _current_value(cur: MemberAssignment) -> Any:
    TP = ConsumerGroupCurrentMemberAssignmentValue.TopicPartitions
    return ConsumerGroupCurrentMemberAssignmentValue(
        member_epoch=cur.epoch,
        previous_member_epoch=cur.previous_epoch,
        state=cur.state,
        assigned_partitions=_topic_partitions(TP, cur.assigned),
        partitions_pending_revocation=_topic_partitions(TP, cur.pending_revocation),
    )


def _current(v: Any) -> MemberAssignment:
    return MemberAssignment(
        epoch=v.member_epoch,
        previous_epoch=v.previous_member_epoch,
        state=v.state,
        assigned=_assignment(v.assigned_partitions),
        pending_revocation=_assignment(v.partitions_pending_revocation),
    )


@dataclass(frozen=True, slots=True)
class _Kip848Kind:
    """One KIP-848 record kind. Every such record is a key (the group id, and the member
    id for per-member kinds) at a fixed key version, and a value at version 0 (None: a
    tombstone); our record classes hold the ids, then the value's content (the payload)."""

    record: type
    key_version: int
    key_class: Any
    value_class: Any
    to_value: Callable[[Any], Any]  # payload -> value message
    from_value: Callable[[Any], Any]  # value message -> payload


_KIP848_KINDS = [
    _Kip848Kind(
        ConsumerGroupEpochRecord,
        3,
        ConsumerGroupMetadataKey,
        ConsumerGroupMetadataValue,
        lambda epoch: ConsumerGroupMetadataValue(epoch=epoch),
        lambda v: v.epoch,
    ),
    _Kip848Kind(
        ConsumerGroupTopicsRecord,
        4,
        ConsumerGroupPartitionMetadataKey,
        ConsumerGroupPartitionMetadataValue,
        _topics_value,
        lambda v: {t.topic_name: (t.topic_id, t.num_partitions) for t in v.topics},
    ),
    _Kip848Kind(
        MemberMetadataRecord,
        5,
        ConsumerGroupMemberMetadataKey,
        ConsumerGroupMemberMetadataValue,
        _subscription_value,
        _subscription,
    ),
    _Kip848Kind(
        TargetEpochRecord,
        6,
        ConsumerGroupTargetAssignmentMetadataKey,
        ConsumerGroupTargetAssignmentMetadataValue,
        lambda epoch: ConsumerGroupTargetAssignmentMetadataValue(assignment_epoch=epoch),
        lambda v: v.assignment_epoch,
    ),
    _Kip848Kind(
        TargetAssignmentRecord,
        7,
        ConsumerGroupTargetAssignmentMemberKey,
        ConsumerGroupTargetAssignmentMemberValue,
        lambda assignment: ConsumerGroupTargetAssignmentMemberValue(
            topic_partitions=_topic_partitions(
                ConsumerGroupTargetAssignmentMemberValue.TopicPartition, assignment
            )
        ),
        lambda v: _assignment(v.topic_partitions),
    ),
    _Kip848Kind(
        CurrentAssignmentRecord,
        8,
        ConsumerGroupCurrentMemberAssignmentKey,
        ConsumerGroupCurrentMemberAssignmentValue,
        _current_value,
        _current,
    ),
]
_KIP848_BY_RECORD = {kind.record: kind for kind in _KIP848_KINDS}
_KIP848_BY_VERSION = {kind.key_version: kind for kind in _KIP848_KINDS}


def _encode_consumer_group(rec: ConsumerGroupRecord) -> tuple[bytes, bytes | None]:
    """A KIP-848 record: key at its fixed version (3-8), value at version 0."""
    kind = _KIP848_BY_RECORD[type(rec)]
    *ids, payload = (getattr(rec, f.name) for f in fields(rec))
    names = ("group_id", "member_id")[: len(ids)]
    key = encode_versioned_data(
        kind.key_class, kind.key_version, kind.key_class(**dict(zip(names, ids, strict=True)))
    )
    if payload is None:
        return key, None
    return key, encode_versioned_data(kind.value_class, 0, kind.to_value(payload))


def _decode_consumer_group(
    version: int, key: bytes, value: bytes | None
) -> ConsumerGroupRecord | None:
    """The KIP-848 record for key versions 3-8 (None for other versions)."""
    kind = _KIP848_BY_VERSION.get(version)
    if kind is None:
        return None
    _, k = decode_versioned_data(kind.key_class, key)
    ids = [k.group_id] if len(fields(kind.record)) == 2 else [k.group_id, k.member_id]
    if value is None:
        return kind.record(*ids, None)
    _, v = decode_versioned_data(kind.value_class, value)
    return kind.record(*ids, kind.from_value(v))


def encode_record(rec: CoordinatorRecord) -> tuple[bytes, bytes | None]:
    """A coordinator record as the (key, value) bytes Kafka writes."""
    if not isinstance(rec, OffsetRecord | GroupRecord):
        return _encode_consumer_group(rec)
    if isinstance(rec, OffsetRecord):
        key = encode_versioned_data(
            OffsetCommitKey,
            1,
            OffsetCommitKey(group=rec.group_id, topic=rec.topic, partition=rec.partition),
        )
        om = rec.value
        if om is None:
            return key, None
        # v1, the only version with an expire timestamp, when there is one; else v3 with the
        # leader epoch. Both fields are ignorable: the version without one leaves it out.
        value = encode_versioned_data(
            OffsetCommitValue,
            3 if om.expire_timestamp is None else 1,
            OffsetCommitValue(
                offset=om.offset,
                leader_epoch=om.leader_epoch,
                metadata=om.metadata,
                commit_timestamp=om.commit_timestamp,
                expire_timestamp=-1 if om.expire_timestamp is None else om.expire_timestamp,
            ),
        )
        return key, value
    key = encode_versioned_data(GroupMetadataKey, 2, GroupMetadataKey(group=rec.group_id))
    snap = rec.value
    if snap is None:
        return key, None
    Member = GroupMetadataValue.MemberMetadata
    value = encode_versioned_data(
        GroupMetadataValue,
        3,
        GroupMetadataValue(
            protocol_type=snap.protocol_type,
            generation=snap.generation,
            protocol=snap.protocol,
            leader=snap.leader,
            current_state_timestamp=snap.state_timestamp,
            members=[
                Member(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout=m.rebalance_timeout_ms,
                    session_timeout=m.session_timeout_ms,
                    subscription=m.subscription,
                    assignment=m.assignment,
                )
                for m in snap.members
            ],
        ),
    )
    return key, value


def decode_record(key: bytes, value: bytes | None) -> CoordinatorRecord | None:
    """The coordinator record for a (key, value) pair; None for keys we do not use."""
    if len(key) < 2:
        return None
    version = int.from_bytes(key[:2], "big", signed=True)
    if version in (0, 1):
        _, k = decode_versioned_data(OffsetCommitKey, key)
        if value is None:
            return OffsetRecord(k.group, k.topic, k.partition, None)
        vv, v = decode_versioned_data(OffsetCommitValue, value)
        return OffsetRecord(
            k.group,
            k.topic,
            k.partition,
            OffsetAndMetadata(
                offset=v.offset,
                leader_epoch=v.leader_epoch if vv >= 3 else -1,
                metadata=v.metadata,
                commit_timestamp=v.commit_timestamp,
                expire_timestamp=v.expire_timestamp
                if vv == 1 and v.expire_timestamp >= 0
                else None,
            ),
        )
    if version == 2:
        _, k = decode_versioned_data(GroupMetadataKey, key)
        if value is None:
            return GroupRecord(k.group, None)
        _, v = decode_versioned_data(GroupMetadataValue, value)
        return GroupRecord(
            k.group,
            GroupSnapshot(
                protocol_type=v.protocol_type,
                generation=v.generation,
                protocol=v.protocol,
                leader=v.leader,
                state_timestamp=v.current_state_timestamp,
                members=[
                    MemberSnapshot(
                        member_id=m.member_id,
                        group_instance_id=m.group_instance_id,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        # v0 has no rebalance timeout; Kafka uses the session timeout then.
                        rebalance_timeout_ms=(
                            m.rebalance_timeout if m.rebalance_timeout >= 0 else m.session_timeout
                        ),
                        session_timeout_ms=m.session_timeout,
                        subscription=bytes(m.subscription),
                        assignment=bytes(m.assignment),
                    )
                    for m in v.members
                ],
            ),
        )
    # Key versions 3-8: KIP-848 consumer groups; later versions (share groups, ...)
    # are not ours and are skipped.
    return _decode_consumer_group(version, key, value)


def _drop_staged(staged: dict[int, list[CoordinatorRecord]], tombstone: OffsetRecord) -> None:
    """A KIP-848 group's offset tombstone removes what open transactions staged for that
    partition before it (OffsetMetadataManager.replay): its deletion (DeleteGroups,
    OffsetDelete) took those too, and their commit must not bring them back. A classic
    group's does not: the old coordinator's loader keeps them (and its offset expiry
    tombstones offsets a transaction has staged a new one for)."""
    for producer_id, records in list(staged.items()):
        # The producer stays known (its marker still ends its transaction) with whatever
        # else it staged.
        staged[producer_id] = [
            r
            for r in records
            if not (
                isinstance(r, OffsetRecord)
                and r.group_id == tombstone.group_id
                and (r.topic, r.partition) == (tombstone.topic, tombstone.partition)
            )
        ]


class OffsetsTopicStore:
    """``GroupStore`` backed by the broker's ``__consumer_offsets`` partitions."""

    def __init__(self, broker: BrokerState, partitions: Sequence[int] | None = None) -> None:
        self._broker = broker
        # The partitions ``load`` reads (None: every one this broker coordinates).
        self._partitions = None if partitions is None else set(partitions)
        # Producer id -> TxnOffsetCommit records without a marker yet (set by load()).
        self.pending_txn_offsets: dict[int, list[CoordinatorRecord]] = {}

    def write(
        self,
        partition: int,
        records: Sequence[CoordinatorRecord],
        *,
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> None:
        """Append the records as one batch to ``partition`` (created on first use).

        With a producer id the batch is transactional (TxnOffsetCommit, KIP-98). A store
        of some partitions writes to no other: the groups of those belong to another
        coordinator (NOT_COORDINATOR, as an append to a partition not led here).
        """
        if self._partitions is not None and partition not in self._partitions:
            raise KafkaApiError(
                ErrorCode.NOT_COORDINATOR, f"{OFFSETS_TOPIC}-{partition} is not this store's"
            )
        try:
            self._append(partition, records, producer_id, producer_epoch)
        except Exception as exc:
            # Kafka: KafkaStorageException on the append, which the coordinator
            # answers as NOT_COORDINATOR (offsets.append_error_code for classic groups
            # and offsets, offsets.operation_error_code for KIP-848 groups).
            warn_storage_failure(
                exc,
                logger,
                "coordinator",
                "cannot write to %s-%d: %s",
                OFFSETS_TOPIC,
                partition,
                exc,
            )
            raise KafkaApiError(ErrorCode.KAFKA_STORAGE_ERROR, str(exc)) from exc

    def _append(
        self,
        partition: int,
        records: Sequence[CoordinatorRecord],
        producer_id: int,
        producer_epoch: int,
    ) -> None:
        topic = self._broker.topics.get(OFFSETS_TOPIC)
        if topic is None:
            topic = self._broker.topics.create_internal(OFFSETS_TOPIC)
        now = int(self._broker.clock() * 1000)
        batch = build_batch(
            (
                Record(key=key, value=value, timestamp=now)
                for key, value in map(encode_record, records)
            ),
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            transactional=producer_id >= 0,
        )
        part = topic.partitions[partition]
        append_as_leader(part, batch)
        self._broker.notify_append(part)

    def load(self) -> Iterator[CoordinatorRecord]:
        """Every coordinator record of the store's partitions, partition by partition,
        oldest first (a batch appended meanwhile is read too: ``iter_stored_batches``)."""
        topic = self._broker.topics.get(OFFSETS_TOPIC)
        if topic is None:
            return
        self.pending_txn_offsets = {}
        parts = [
            part
            for part in coordinated_partitions(self._broker, topic)
            if self._partitions is None or part.index in self._partitions
        ]
        # Per partition: producer id -> its TxnOffsetCommit records without a marker yet.
        pending: dict[int, dict[int, list[CoordinatorRecord]]] = {p.index: {} for p in parts}
        # The KIP-848 groups the log holds so far (their epoch record not tombstoned).
        consumer_groups: set[str] = set()
        for part, batch in iter_stored_batches(parts):
            header = batch.header
            staged_here = pending[part.index]
            if header.is_control:
                # A transaction marker: TxnOffsetCommit records of that
                # producer count only if it committed (KIP-98).
                staged = staged_here.pop(header.producer_id, [])
                if batch.commits():
                    yield from staged
                continue
            for offset, key, value in batch.keyed_records():
                try:
                    decoded = decode_record(key, value)
                except ProtocolError:
                    logger.warning(
                        "%s-%d offset %d: undecodable record skipped",
                        OFFSETS_TOPIC,
                        part.index,
                        offset,
                    )
                    continue
                if decoded is None:
                    continue
                if header.is_transactional:
                    staged_here.setdefault(header.producer_id, []).append(decoded)
                    continue
                if isinstance(decoded, ConsumerGroupEpochRecord):
                    if decoded.epoch is None:
                        consumer_groups.discard(decoded.group_id)
                    else:
                        consumer_groups.add(decoded.group_id)
                elif (
                    isinstance(decoded, OffsetRecord)
                    and decoded.value is None
                    and decoded.group_id in consumer_groups
                ):
                    _drop_staged(staged_here, decoded)
                yield decoded
        for staged_here in pending.values():
            for pid, staged in staged_here.items():
                # Transactions still open at load: their offsets wait for the marker.
                if staged:
                    self.pending_txn_offsets.setdefault(pid, []).extend(staged)
