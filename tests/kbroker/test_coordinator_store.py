"""__consumer_offsets records: Kafka's byte layout, round trips, tombstones, replay."""

from __future__ import annotations

import struct

from kbroker.coordinator.consumer_group import ConsumerGroupEpochRecord
from kbroker.coordinator.group import GroupRecord, GroupSnapshot, MemberSnapshot
from kbroker.coordinator.offsets import OffsetAndMetadata, OffsetRecord
from kbroker.coordinator.store import OffsetsTopicStore, decode_record, encode_record


def kstr(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


def test_offset_commit_record_bytes_match_kafka_layout():
    key, value = encode_record(OffsetRecord("g", "t", 3, OffsetAndMetadata(42, 5, "m", 1000)))
    # Key: version 1, group, topic, partition (GroupMetadataManager.offsetCommitKey).
    assert key == struct.pack(">h", 1) + kstr("g") + kstr("t") + struct.pack(">i", 3)
    # Value v3: offset, leader epoch, metadata, commit timestamp.
    assert value == struct.pack(">hqi", 3, 42, 5) + kstr("m") + struct.pack(">q", 1000)


def test_group_metadata_key_bytes_match_kafka_layout():
    key, value = encode_record(GroupRecord("grp", None))
    assert key == struct.pack(">h", 2) + kstr("grp") and value is None


def test_round_trips_and_tombstones():
    records = [
        OffsetRecord("g", "t", 0, OffsetAndMetadata(1, -1, "", 5)),
        OffsetRecord("g", "t", 1, OffsetAndMetadata(2, -1, "x", 5, expire_timestamp=99)),
        OffsetRecord("g", "t", 2, None),
        GroupRecord(
            "g",
            GroupSnapshot(
                "consumer",
                3,
                "range",
                "m1",
                77,
                [
                    MemberSnapshot(
                        "m1", "inst", "client", "/10.0.0.1", 30000, 10000, b"sub", b"asg"
                    ),
                    MemberSnapshot("m2", None, "client", "/10.0.0.2", 30000, 10000, b"", b""),
                ],
            ),
        ),
        GroupRecord("empty", GroupSnapshot("consumer", 4, None, None, 78, [])),
        GroupRecord("g", None),
    ]
    for rec in records:
        assert decode_record(*encode_record(rec)) == rec


def test_unknown_key_versions_are_ignored():
    # Key versions past the KIP-848 ones (3-8), e.g. share groups, are not ours to load.
    assert decode_record(struct.pack(">h", 42) + kstr("g"), b"\x00\x00") is None
    assert decode_record(b"", None) is None


async def test_a_kip848_groups_offset_tombstone_removes_the_offsets_staged_before_it(server):
    # OffsetMetadataManager.replay: a KIP-848 group's offset tombstone (DeleteGroups,
    # OffsetDelete) removes what open transactions staged for that partition before it,
    # so their commit does not bring the offset back on a reload. A classic group's is
    # replayed as the old coordinator's loader does (its offset expiry may tombstone an
    # offset a transaction has since staged a new one for, which the commit publishes).
    store = OffsetsTopicStore(server.broker)
    partition = 0

    def om(offset: int) -> OffsetAndMetadata:
        return OffsetAndMetadata(offset, -1, "", 5)

    store.write(partition, [ConsumerGroupEpochRecord("new", 1)])
    for group in ("new", "classic"):
        store.write(partition, [OffsetRecord(group, "t", 0, om(4))])
        store.write(
            partition,
            [OffsetRecord(group, "t", 0, om(5)), OffsetRecord(group, "t", 1, om(6))],
            producer_id=7,
            producer_epoch=0,
        )
        store.write(partition, [OffsetRecord(group, "t", 0, None)])
    # Staged after the tombstone: kept.
    store.write(partition, [OffsetRecord("new", "t", 0, om(8))], producer_id=9, producer_epoch=0)
    loaded = [r for r in store.load() if isinstance(r, OffsetRecord)]
    assert [(r.group_id, r.partition, r.value) for r in loaded] == [
        ("new", 0, om(4)),
        ("new", 0, None),
        ("classic", 0, om(4)),
        ("classic", 0, None),
    ]
    staged = {
        pid: [(r.group_id, r.partition, r.value.offset) for r in records]  # type: ignore[union-attr]
        for pid, records in store.pending_txn_offsets.items()
    }
    assert staged == {
        7: [("new", 1, 6), ("classic", 0, 5), ("classic", 1, 6)],
        9: [("new", 0, 8)],
    }
