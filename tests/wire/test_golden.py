"""Request frames captured from real clients decode to what those clients sent."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kbroker.wire import protocol
from kbroker.wire.errors import DecodeError, UnsupportedVersion
from kbroker.wire.messages import (
    ApiVersionsResponse,
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

GOLDEN = Path(__file__).parent / "golden"
TOPIC_ID = uuid.UUID("6f1c2a10-0000-4000-8000-000000000001")


def load(name: str) -> bytes:
    return bytes.fromhex((GOLDEN / f"{name}.hex").read_text())


def decode(name: str):  # type: ignore[no-untyped-def]
    return protocol.decode_request(load(name))


def test_all_golden_frames_are_present_and_decode() -> None:
    files = sorted(GOLDEN.glob("*.hex"))
    assert len(files) >= 25
    for f in files:
        header, body = protocol.decode_request(bytes.fromhex(f.read_text()))
        assert f.name.endswith(f"-{type(body).__name__}-v{header.request_api_version}.hex")


@pytest.mark.parametrize(
    ("name", "client_id", "version", "software"),
    [
        ("kafka-python-ApiVersionsRequest-v4", "golden-kp", 4, "kafka-python"),
        ("confluent-ApiVersionsRequest-v3", "golden-ck", 3, "confluent-kafka-python"),
    ],
)
def test_api_versions_request(name: str, client_id: str, version: int, software: str) -> None:
    header, body = decode(name)
    assert header.request_api_key == 18 and header.request_api_version == version
    assert header.correlation_id == 1 and header.client_id == client_id
    assert body.client_software_name == software
    assert body.client_software_version


def test_metadata_requests() -> None:
    header, body = decode("confluent-MetadataRequest-v12")
    assert header.client_id == "golden-ck"
    assert [t.name for t in body.topics] == ["golden-topic"]
    assert body.topics[0].topic_id == uuid.UUID(int=0)
    assert body.allow_auto_topic_creation is True
    _, body = decode("kafka-python-MetadataRequest-v12")
    assert body.topics == []  # empty list = no topics; null would mean all


@pytest.mark.parametrize(
    ("name", "acks"),
    [
        ("kafka-python-ProduceRequest-v9", 1),
        ("confluent-ProduceRequest-v10", -1),
    ],
)
def test_produce_requests(name: str, acks: int) -> None:
    frame = load(name)
    _, body = protocol.decode_request(frame)
    assert body.acks == acks and body.timeout_ms == 30000 and body.transactional_id is None
    (topic,) = body.topic_data
    assert topic.name == "golden-topic"
    (part,) = topic.partition_data
    assert part.index == 0
    records = part.records
    assert isinstance(records, memoryview)
    assert records.obj is frame  # zero copy: a view of the frame itself
    assert records[16] == 2  # record batch magic v2
    assert b"hello golden" in bytes(records) and b"k1" in bytes(records)


def test_list_offsets_requests() -> None:
    _, body = decode("confluent-ListOffsetsRequest-v7")
    assert body.isolation_level == 1  # librdkafka defaults to read_committed
    part = body.topics[0].partitions[0]
    assert (body.topics[0].name, part.partition_index, part.timestamp) == ("golden-topic", 0, -2)
    _, body = decode("kafka-python-ListOffsetsRequest-v10")
    assert body.topics[0].partitions[0].timestamp == -2  # EARLIEST


def test_fetch_requests() -> None:
    _, body = decode("confluent-FetchRequest-v16")
    # Fetch v13+ names topics by id only (KIP-516).
    assert body.topics[0].topic_id == TOPIC_ID and body.topics[0].topic == ""
    part = body.topics[0].partitions[0]
    assert (part.partition, part.fetch_offset, part.partition_max_bytes) == (0, 0, 1048576)
    assert body.max_wait_ms == 500 and body.max_bytes == 52428800 and body.replica_id == -1
    _, body = decode("kafka-python-FetchRequest-v12")
    assert body.topics[0].topic == "golden-topic" and body.isolation_level == 0


def test_find_coordinator_request() -> None:
    header, body = decode("confluent-FindCoordinatorRequest-v2")
    assert header.client_id == "golden-ck-consumer"
    assert body.key == "golden-group" and body.key_type == 0


def test_reencoding_a_golden_request_gives_the_same_bytes() -> None:
    for f in sorted(GOLDEN.glob("*.hex")):
        frame = bytes.fromhex(f.read_text())
        header, body = protocol.decode_request(frame)
        again = protocol.encode_request(
            header.request_api_key,
            header.request_api_version,
            header.correlation_id,
            header.client_id,
            body,
        )
        assert again[4:] == frame, f.name


def test_api_versions_response_uses_header_v0_even_when_flexible() -> None:
    # KIP-511: no tagged-field byte after the correlation id, so clients can always parse it.
    frame = protocol.encode_response(18, 3, 1, ApiVersionsResponse())
    assert frame[4:8] == b"\x00\x00\x00\x01" and frame[8:10] == b"\x00\x00"  # error_code
    assert protocol.response_header_version(18, 3) == 0
    assert protocol.response_header_version(3, 12) == 1


def test_too_new_api_versions_request_raises_unsupported_with_correlation_id() -> None:
    # A future client sends ApiVersions v9; the header (v2) still parses (KIP-511), so the
    # server learns the correlation id and can answer UNSUPPORTED_VERSION.
    frame = bytearray(load("kafka-python-ApiVersionsRequest-v4"))
    frame[2:4] = (9).to_bytes(2, "big")
    with pytest.raises(UnsupportedVersion) as exc:
        protocol.decode_request(bytes(frame))
    assert (exc.value.api_key, exc.value.api_version, exc.value.correlation_id) == (18, 9, 1)


def test_undeclared_api_key_raises_unsupported() -> None:
    frame = bytearray(load("kafka-python-MetadataRequest-v12"))
    frame[0:2] = (7).to_bytes(2, "big")  # ControlledShutdown: not served
    with pytest.raises(UnsupportedVersion) as exc:
        protocol.decode_request(bytes(frame))
    assert exc.value.api_key == 7 and exc.value.correlation_id == 2


@pytest.mark.parametrize(
    ("name", "sub_version"),
    [
        ("kafka-python-group-JoinGroupRequest-v7", 0),
        ("confluent-group-JoinGroupRequest-v5", 3),
    ],
)
def test_join_group_carries_a_consumer_subscription(name: str, sub_version: int) -> None:
    _, body = decode(name)
    assert body.group_id == "golden-group" and body.member_id == ""
    assert body.protocol_type == "consumer" and body.session_timeout_ms == 45000
    assert [p.name for p in body.protocols] == ["range", "roundrobin"]
    version, sub = protocol.decode_versioned_data(
        ConsumerProtocolSubscription, body.protocols[0].metadata
    )
    assert version == sub_version and sub.topics == ["golden-topic"]
    assert sub.owned_partitions == [] and sub.generation_id == -1
    # The embedded bytes re-encode identically: our schema is the client's schema.
    assert protocol.encode_versioned_data(ConsumerProtocolSubscription, version, sub) == bytes(
        body.protocols[0].metadata
    )


@pytest.mark.parametrize(
    "name", ["kafka-python-group-SyncGroupRequest-v5", "confluent-group-SyncGroupRequest-v3"]
)
def test_sync_group_leader_assignment(name: str) -> None:
    _, body = decode(name)
    assert body.generation_id == 1 and body.member_id == "member-1"
    (a,) = body.assignments
    version, assignment = protocol.decode_versioned_data(ConsumerProtocolAssignment, a.assignment)
    assert [(tp.topic, tp.partitions) for tp in assignment.assigned_partitions] == [
        ("golden-topic", [0])
    ]
    assert protocol.encode_versioned_data(ConsumerProtocolAssignment, version, assignment) == bytes(
        a.assignment
    )


def test_newer_subscription_version_reads_as_the_highest_known() -> None:
    # KIP-429 forward compatibility: a v9 subscription is read with our newest schema.
    _, body = decode("confluent-group-JoinGroupRequest-v5")
    raw = b"\x00\x09" + bytes(body.protocols[0].metadata)[2:] + b"future-fields"
    version, sub = protocol.decode_versioned_data(ConsumerProtocolSubscription, raw)
    assert version == 3 and sub.topics == ["golden-topic"]


@pytest.mark.parametrize(
    ("name", "metadata", "require_stable"),
    [
        ("kafka-python-group-OffsetCommitRequest-v8", "meta", False),
        ("confluent-group-OffsetCommitRequest-v9", "", True),
    ],
)
def test_offset_commit_and_fetch(name: str, metadata: str, require_stable: bool) -> None:
    _, body = decode(name)
    assert body.group_id == "golden-group" and body.generation_id_or_member_epoch == 1
    part = body.topics[0].partitions[0]
    assert (body.topics[0].name, part.partition_index, part.committed_offset) == (
        "golden-topic",
        0,
        0,
    )
    assert part.committed_metadata == metadata
    _, fetch = decode(name.replace("OffsetCommit", "OffsetFetch"))
    # OffsetFetch v8+ batches groups (KIP-709).
    (group,) = fetch.groups
    assert group.group_id == "golden-group" and group.topics[0].partition_indexes == [0]
    assert fetch.require_stable is require_stable


def test_heartbeat_and_leave_group() -> None:
    _, hb = decode("kafka-python-group-HeartbeatRequest-v4")
    assert (hb.group_id, hb.generation_id, hb.member_id) == ("golden-group", 1, "member-1")
    _, leave = decode("kafka-python-group-LeaveGroupRequest-v5")
    # LeaveGroup v3+ names members in a batch (KIP-345); v0-2 use the top-level member id.
    assert leave.member_id == "" and [m.member_id for m in leave.members] == ["member-1"]
    _, leave = decode("confluent-group-LeaveGroupRequest-v1")
    assert leave.member_id == "member-1" and leave.members == []


def test_find_coordinator_v6_batches_keys() -> None:
    _, body = decode("kafka-python-group-FindCoordinatorRequest-v6")
    assert body.key == "" and body.coordinator_keys == ["golden-group"]  # KIP-699


def test_every_prefix_of_a_golden_frame_is_a_decode_error() -> None:
    for f in sorted(GOLDEN.glob("*.hex")):
        frame = bytes.fromhex(f.read_text())
        for cut in range(len(frame)):
            with pytest.raises(DecodeError):
                protocol.decode_request(frame[:cut])


@pytest.mark.parametrize(
    ("name", "timeout_ms"),
    [
        ("kafka-python-admin-CreateTopicsRequest-v7", 30000),
        ("confluent-admin-CreateTopicsRequest-v4", 60000),
    ],
)
def test_create_topics(name: str, timeout_ms: int) -> None:
    header, body = decode(name)
    assert header.client_id.endswith("-admin")
    (t,) = body.topics
    assert (t.name, t.num_partitions, t.replication_factor) == ("golden-new", 3, 1)
    assert [(c.name, c.value) for c in t.configs] == [("retention.ms", "1000")]
    assert t.assignments == [] and body.timeout_ms == timeout_ms and body.validate_only is False


def test_create_partitions_and_describe_configs() -> None:
    for name in (
        "kafka-python-admin-CreatePartitionsRequest-v3",
        "confluent-admin-CreatePartitionsRequest-v2",
    ):
        _, body = decode(name)
        (t,) = body.topics
        assert (t.name, t.count, t.assignments) == ("golden-new", 6, None)
    for name, synonyms in (
        ("kafka-python-admin-DescribeConfigsRequest-v4", False),
        ("confluent-admin-DescribeConfigsRequest-v1", True),
    ):
        _, body = decode(name)
        (r,) = body.resources
        # resource type 2 = TOPIC; null configuration keys = all configs
        assert (r.resource_type, r.resource_name, r.configuration_keys) == (2, "golden-new", None)
        assert body.include_synonyms is synonyms


def test_delete_topics_by_name_before_and_after_v6() -> None:
    _, body = decode("confluent-admin-DeleteTopicsRequest-v4")
    assert body.topic_names == ["golden-new"] and body.topics == []
    _, body = decode("kafka-python-admin-DeleteTopicsRequest-v6")
    # v6+ (KIP-516) names topics in DeleteTopicState, by name or id.
    assert [(t.name, t.topic_id) for t in body.topics] == [("golden-new", uuid.UUID(int=0))]
    assert body.topic_names == []


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_transactional_producer_flow(client: str) -> None:
    _, fc = decode(next(p.stem for p in GOLDEN.glob(f"{client}-txn-FindCoordinator*")))
    assert fc.key_type == 1 and "golden-txn" in (fc.key, *fc.coordinator_keys)
    _, init = decode(f"{client}-txn-InitProducerIdRequest-v4")
    assert init.transactional_id == "golden-txn" and init.transaction_timeout_ms == 60000
    assert (init.producer_id, init.producer_epoch) == (-1, -1)
    _, add = decode(next(p.stem for p in GOLDEN.glob(f"{client}-txn-AddPartitionsToTxn*")))
    assert add.v3_and_below_transactional_id == "golden-txn"
    assert (add.v3_and_below_producer_id, add.v3_and_below_producer_epoch) == (1000, 0)
    assert [(t.name, t.partitions) for t in add.v3_and_below_topics] == [("golden-topic", [0])]
    _, produce = decode(next(p.stem for p in GOLDEN.glob(f"{client}-txn-ProduceRequest*")))
    assert produce.transactional_id == "golden-txn" and produce.acks == -1
    records = produce.topic_data[0].partition_data[0].records
    assert records[22] & 0x10  # low byte of the int16 batch attributes: transactional bit
    _, end = decode(next(p.stem for p in GOLDEN.glob(f"{client}-txn-EndTxn*")))
    assert (end.transactional_id, end.producer_id, end.committed) == ("golden-txn", 1000, True)
