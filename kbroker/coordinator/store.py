"""``__consumer_offsets``: the coordinator's records, written and replayed.

Kafka's record formats (GroupMetadataManager): every record's key is an int16
version followed by a struct, the value likewise.

- key version 0/1: OffsetCommitKey (group, topic, partition) → OffsetCommitValue
  (we write v3: offset, leader epoch, metadata, commit timestamp; v1 when an
  OffsetCommit v2-4 asked for an explicit retention time, the only version with
  an expire timestamp).
- key version 2: GroupMetadataKey (group) → GroupMetadataValue v3 (members
  with subscription and assignment).
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
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kbroker.coordinator.group import (
    GroupRecord,
    GroupSnapshot,
    MemberSnapshot,
    OffsetAndMetadata,
    OffsetRecord,
)
from kbroker.internal_topics import iter_stored_batches
from wire.errors import ProtocolError
from wire.messages import (
    GroupMetadataKey,
    GroupMetadataValue,
    OffsetCommitKey,
    OffsetCommitValue,
)
from wire.protocol import decode_versioned_data, encode_versioned_data
from wire.records import Record, build_batch

if TYPE_CHECKING:
    from kbroker.broker import Broker

__all__ = ["OFFSETS_TOPIC", "OffsetsTopicStore", "decode_record", "encode_record"]

logger = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"


def encode_record(rec: OffsetRecord | GroupRecord) -> tuple[bytes, bytes | None]:
    """A coordinator record as the (key, value) bytes Kafka writes."""
    if isinstance(rec, OffsetRecord):
        key = encode_versioned_data(
            OffsetCommitKey, 1,
            OffsetCommitKey(group=rec.group_id, topic=rec.topic, partition=rec.partition))
        om = rec.value
        if om is None:
            return key, None
        if om.expire_timestamp is not None:
            value = encode_versioned_data(OffsetCommitValue, 1, OffsetCommitValue(
                offset=om.offset, metadata=om.metadata, commit_timestamp=om.commit_timestamp,
                expire_timestamp=om.expire_timestamp))
        else:
            value = encode_versioned_data(OffsetCommitValue, 3, OffsetCommitValue(
                offset=om.offset, leader_epoch=om.leader_epoch, metadata=om.metadata,
                commit_timestamp=om.commit_timestamp))
        return key, value
    key = encode_versioned_data(GroupMetadataKey, 2, GroupMetadataKey(group=rec.group_id))
    snap = rec.value
    if snap is None:
        return key, None
    Member = GroupMetadataValue.MemberMetadata
    value = encode_versioned_data(GroupMetadataValue, 3, GroupMetadataValue(
        protocol_type=snap.protocol_type,
        generation=snap.generation,
        protocol=snap.protocol,
        leader=snap.leader,
        current_state_timestamp=snap.state_timestamp,
        members=[
            Member(member_id=m.member_id, group_instance_id=m.group_instance_id,
                   client_id=m.client_id, client_host=m.client_host,
                   rebalance_timeout=m.rebalance_timeout_ms,
                   session_timeout=m.session_timeout_ms,
                   subscription=m.subscription, assignment=m.assignment)
            for m in snap.members
        ],
    ))
    return key, value


def decode_record(key: bytes, value: bytes | None) -> OffsetRecord | GroupRecord | None:
    """The coordinator record for a (key, value) pair; None for keys we do not use."""
    if len(key) < 2:
        return None
    version = int.from_bytes(key[:2], "big", signed=True)
    if version in (0, 1):
        _, k = decode_versioned_data(OffsetCommitKey, key)
        if value is None:
            return OffsetRecord(k.group, k.topic, k.partition, None)
        vv, v = decode_versioned_data(OffsetCommitValue, value)
        return OffsetRecord(k.group, k.topic, k.partition, OffsetAndMetadata(
            offset=v.offset,
            leader_epoch=v.leader_epoch if vv >= 3 else -1,
            metadata=v.metadata,
            commit_timestamp=v.commit_timestamp,
            expire_timestamp=v.expire_timestamp if vv == 1 and v.expire_timestamp >= 0 else None,
        ))
    if version == 2:
        _, k = decode_versioned_data(GroupMetadataKey, key)
        if value is None:
            return GroupRecord(k.group, None)
        _, v = decode_versioned_data(GroupMetadataValue, value)
        return GroupRecord(k.group, GroupSnapshot(
            protocol_type=v.protocol_type,
            generation=v.generation,
            protocol=v.protocol,
            leader=v.leader,
            state_timestamp=v.current_state_timestamp,
            members=[
                MemberSnapshot(
                    member_id=m.member_id, group_instance_id=m.group_instance_id,
                    client_id=m.client_id, client_host=m.client_host,
                    # v0 has no rebalance timeout; Kafka uses the session timeout then.
                    rebalance_timeout_ms=(m.rebalance_timeout if m.rebalance_timeout >= 0
                                          else m.session_timeout),
                    session_timeout_ms=m.session_timeout,
                    subscription=bytes(m.subscription), assignment=bytes(m.assignment))
                for m in v.members
            ],
        ))
    # Key versions 3+ belong to the KIP-848 consumer protocol, which we do not run.
    return None


class OffsetsTopicStore:
    """``GroupStore`` backed by the broker's ``__consumer_offsets`` partitions."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        # Producer id -> TxnOffsetCommit records without a marker yet (set by load()).
        self.pending_txn_offsets: dict[int, list[OffsetRecord | GroupRecord]] = {}

    def write(self, partition: int, records: list[OffsetRecord | GroupRecord], *,
              producer_id: int = -1, producer_epoch: int = -1) -> None:
        """Append the records as one batch to ``partition`` (created on first use).

        With a producer id the batch is transactional (TxnOffsetCommit, KIP-98).
        """
        topic = self._broker.topics.get(OFFSETS_TOPIC)
        if topic is None:
            topic = self._broker.topics.create_internal(OFFSETS_TOPIC)
        now = int(self._broker.clock() * 1000)
        batch = build_batch(
            (Record(key=key, value=value, timestamp=now)
             for key, value in map(encode_record, records)),
            producer_id=producer_id, producer_epoch=producer_epoch,
            transactional=producer_id >= 0,
        )
        part = topic.partitions[partition]
        part.log.append(batch)
        self._broker.notify_append(part)

    def load(self) -> Iterator[OffsetRecord | GroupRecord]:
        """Every coordinator record in the topic, partition by partition, oldest first."""
        topic = self._broker.topics.get(OFFSETS_TOPIC)
        if topic is None:
            return
        self.pending_txn_offsets = {}
        for part in topic.partitions:
            pending: dict[int, list[OffsetRecord | GroupRecord]] = {}
            for batch in iter_stored_batches(part.log):
                header = batch.header
                if header.is_control:
                    # A transaction marker: TxnOffsetCommit records of that
                    # producer count only if it committed (KIP-98).
                    staged = pending.pop(header.producer_id, [])
                    if batch.commits():
                        yield from staged
                    continue
                for offset, key, value in batch.keyed_records():
                    try:
                        decoded = decode_record(key, value)
                    except ProtocolError:
                        logger.warning("%s-%d offset %d: undecodable record skipped",
                                       OFFSETS_TOPIC, part.index, offset)
                        continue
                    if decoded is None:
                        continue
                    if header.is_transactional:
                        pending.setdefault(header.producer_id, []).append(decoded)
                    else:
                        yield decoded
            for pid, staged in pending.items():
                # Transactions still open at load: their offsets wait for the marker.
                self.pending_txn_offsets.setdefault(pid, []).extend(staged)
