"""__consumer_offsets record encoding: Kafka's byte layout, round trips, tombstones."""

from __future__ import annotations

import struct

from kbroker.coordinator.group import GroupRecord, GroupSnapshot, MemberSnapshot
from kbroker.coordinator.offsets import OffsetAndMetadata, OffsetRecord
from kbroker.coordinator.store import decode_record, encode_record


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
