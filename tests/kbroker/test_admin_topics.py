"""CreateTopics, DeleteTopics and CreatePartitions over the wire, several versions each.

Every error case asserts Kafka's error code and, where the version carries one,
Kafka's message: admin tools show those messages to users verbatim.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
)
from tests.kbroker.admin_helpers import create, grow, new_topic

C = CreateTopicsRequest
P = CreatePartitionsRequest
D = DeleteTopicsRequest
ZERO = uuid.UUID(int=0)


# --- CreateTopics -----------------------------------------------------------------------


@pytest.mark.parametrize("version", range(8))
async def test_create_topic_every_version(server: Any, version: int) -> None:
    client = await server.connect()
    [result] = await create(
        client, new_topic("orders", 3, 1, configs={"retention.ms": "5000"}), version=version
    )
    assert result.name == "orders"
    assert result.error_code == 0
    topic = server.broker.topics.get("orders")
    assert topic is not None and len(topic.partitions) == 3
    assert topic.configs == {"retention.ms": "5000"}
    if version >= 5:
        # KIP-525: the response describes the created topic.
        assert result.num_partitions == 3
        assert result.replication_factor == 1
        configs = {c.name: (c.value, c.config_source) for c in result.configs}
        assert configs["retention.ms"] == ("5000", 1)  # DYNAMIC_TOPIC_CONFIG
        assert configs["segment.bytes"] == ("1073741824", 5)  # DEFAULT_CONFIG
        assert configs["cleanup.policy"] == ("delete", 5)
        assert all(not c.read_only and not c.is_sensitive for c in result.configs)
    if version >= 7:
        assert result.topic_id == topic.topic_id != ZERO


async def test_minus_one_uses_broker_defaults(make_server: Any) -> None:
    srv = await make_server(num_partitions=4)
    client = await srv.connect()
    [result] = await create(client, new_topic("defaults", -1, -1), version=4)
    assert result.error_code == 0
    assert len(srv.broker.topics.get("defaults").partitions) == 4
    [result] = await create(client, new_topic("defaults7", -1, -1), version=7)
    assert (result.num_partitions, result.replication_factor) == (4, 1)


async def test_validate_only_creates_nothing(server: Any) -> None:
    client = await server.connect()
    for version in (1, 4, 7):
        [result] = await create(client, new_topic("dry", 2), version=version, validate_only=True)
        assert result.error_code == 0
        assert server.broker.topics.get("dry") is None
    [result] = await create(
        client, new_topic("dry", 2, configs={"retention.ms": "x"}), validate_only=True
    )
    assert result.error_code == ErrorCode.INVALID_CONFIG


@pytest.mark.parametrize("version", [1, 4, 7])
async def test_replication_factor_above_one_is_refused(server: Any, version: int) -> None:
    client = await server.connect()
    [result] = await create(client, new_topic("rf3", 1, 3), version=version)
    assert result.error_code == ErrorCode.INVALID_REPLICATION_FACTOR == 38
    assert result.error_message == (
        "Unable to replicate the partition 3 time(s): The target replication factor of 3 "
        "cannot be reached because only 1 broker(s) are registered."
    )
    assert server.broker.topics.get("rf3") is None


async def test_non_positive_counts_are_refused(server: Any) -> None:
    client = await server.connect()
    results = await create(
        client, new_topic("rf0", 1, 0), new_topic("p0", 0, 1), new_topic("pm2", -2, 1)
    )
    codes = [(r.name, r.error_code) for r in results]
    assert codes == [
        ("rf0", ErrorCode.INVALID_REPLICATION_FACTOR),
        ("p0", ErrorCode.INVALID_PARTITIONS),
        ("pm2", ErrorCode.INVALID_PARTITIONS),
    ]
    assert results[1].error_message == (
        "Number of partitions was set to an invalid non-positive value."
    )
    assert server.broker.topics.topics == {}


async def test_existing_and_invalid_names(server: Any) -> None:
    client = await server.connect()
    await create(client, new_topic("taken"))
    results = await create(
        client,
        new_topic("taken"),
        new_topic("bad name!"),
        new_topic(""),
        new_topic("x" * 250),
        version=4,
    )
    assert [r.error_code for r in results] == [ErrorCode.TOPIC_ALREADY_EXISTS] + [
        ErrorCode.INVALID_TOPIC_EXCEPTION
    ] * 3
    assert results[0].error_message == "Topic 'taken' already exists."
    # v0 has no error message field, but still the code.
    [old] = await create(client, new_topic("taken"), version=0)
    assert old.error_code == ErrorCode.TOPIC_ALREADY_EXISTS


async def test_bad_configs_are_invalid_config(server: Any) -> None:
    client = await server.connect()
    results = await create(
        client,
        new_topic("unknown-cfg", configs={"retention.mss": "1"}),
        new_topic("bad-value", configs={"retention.ms": "soon"}),
        new_topic("bad-enum", configs={"cleanup.policy": "shred"}),
        new_topic("null-value", configs={"retention.ms": None, "segment.ms": None}),
        new_topic("too-small", configs={"segment.bytes": "13"}),
    )
    assert all(r.error_code == ErrorCode.INVALID_CONFIG == 40 for r in results)
    messages = [r.error_message for r in results]
    assert messages[0] == "Unknown topic config name: retention.mss"
    assert messages[1].startswith("Invalid value soon for configuration retention.ms")
    assert "cleanup.policy" in messages[2]
    assert messages[3] == "Null value not supported for topic configs: retention.ms,segment.ms"
    assert "segment.bytes" in messages[4]
    assert server.broker.topics.topics == {}


async def test_duplicate_names_in_one_request(server: Any) -> None:
    client = await server.connect()
    results = await create(client, new_topic("twice"), new_topic("once"), new_topic("twice"))
    by_name = {r.name: r for r in results}
    assert len(results) == 2
    assert by_name["twice"].error_code == ErrorCode.INVALID_REQUEST
    assert by_name["twice"].error_message == "Found multiple entries for this topic."
    assert by_name["once"].error_code == 0
    assert server.broker.topics.get("twice") is None


async def test_manual_assignment(server: Any) -> None:
    client = await server.connect()
    node = server.broker.node_id
    ok, other, empty, dup, counts, rf = await create(
        client,
        new_topic("manual", -1, -1, assignments=[[node], [node]]),
        new_topic("other-broker", -1, -1, assignments=[[node + 1]]),
        new_topic("empty-list", -1, -1, assignments=[[]]),
        new_topic("twice-listed", -1, -1, assignments=[[node, node]]),
        new_topic("with-count", 2, -1, assignments=[[node]]),
        new_topic("with-rf", -1, 1, assignments=[[node]]),
    )
    assert ok.error_code == 0 and ok.num_partitions == 2
    assert len(server.broker.topics.get("manual").partitions) == 2
    assert other.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT == 39
    assert other.error_message == (
        f"The manual partition assignment includes broker "
        f"{node + 1}, but no such broker is registered."
    )
    assert empty.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert dup.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert counts.error_code == rf.error_code == ErrorCode.INVALID_REQUEST
    assert counts.error_message == (
        "A manual partition assignment was specified, but numPartitions was not set to -1."
    )


async def test_gapped_assignment_is_refused(server: Any) -> None:
    client = await server.connect()
    topic = C.CreatableTopic(
        name="gap",
        num_partitions=-1,
        replication_factor=-1,
        assignments=[
            C.CreatableReplicaAssignment(partition_index=0, broker_ids=[server.broker.node_id]),
            C.CreatableReplicaAssignment(partition_index=2, broker_ids=[server.broker.node_id]),
        ],
    )
    [result] = await create(client, topic)
    assert result.error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert result.error_message == "partitions should be a consecutive 0-based integer sequence"


async def test_internal_topic_names_are_reserved(server: Any) -> None:
    client = await server.connect()
    [result] = await create(client, new_topic("__consumer_offsets"))
    assert result.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


# --- DeleteTopics -----------------------------------------------------------------------


@pytest.mark.parametrize("version", range(6))
async def test_delete_by_name(server: Any, version: int) -> None:
    client = await server.connect()
    await create(client, new_topic("doomed", 2), new_topic("kept"))
    directory = server.broker.data_dir / "doomed-0"
    assert directory.exists()
    response = await client.request(
        D(topic_names=["doomed", "missing"], timeout_ms=5000), version=version
    )
    results = {r.name: r.error_code for r in response.responses}
    assert results == {"doomed": 0, "missing": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert server.broker.topics.get("doomed") is None
    assert server.broker.topics.get("kept") is not None
    assert not directory.exists()


async def test_delete_by_topic_id_v6(server: Any) -> None:
    client = await server.connect()
    await create(client, new_topic("by-id"), new_topic("by-name"))
    topic_id = server.broker.topics.get("by-id").topic_id
    unknown = uuid.uuid4()
    response = await client.request(
        D(
            topics=[
                D.DeleteTopicState(name=None, topic_id=topic_id),
                D.DeleteTopicState(name="by-name", topic_id=ZERO),
                D.DeleteTopicState(name=None, topic_id=unknown),
            ],
            timeout_ms=5000,
        ),
        version=6,
    )
    results = {(r.name, r.topic_id): r.error_code for r in response.responses}
    by_name_id = next(r.topic_id for r in response.responses if r.name == "by-name")
    assert results == {
        ("by-id", topic_id): 0,
        ("by-name", by_name_id): 0,
        (None, unknown): ErrorCode.UNKNOWN_TOPIC_ID,
    }
    assert by_name_id != ZERO
    assert server.broker.topics.topics == {}


async def test_delete_v6_request_errors(server: Any) -> None:
    client = await server.connect()
    await create(client, new_topic("t"), new_topic("dup"))
    topic_id = server.broker.topics.get("t").topic_id
    response = await client.request(
        D(
            topics=[
                D.DeleteTopicState(name=None, topic_id=ZERO),
                D.DeleteTopicState(name="t", topic_id=topic_id),
                D.DeleteTopicState(name="dup", topic_id=ZERO),
                D.DeleteTopicState(name="dup", topic_id=ZERO),
            ],
            timeout_ms=5000,
        ),
        version=6,
    )
    got = [(r.name, r.error_code, r.error_message) for r in response.responses]
    assert got == [
        (None, ErrorCode.INVALID_REQUEST, "Neither topic name nor id were specified."),
        ("t", ErrorCode.INVALID_REQUEST, "You may not specify both topic name and topic id."),
        ("dup", ErrorCode.INVALID_REQUEST, "Duplicate topic name."),
    ]
    assert set(server.broker.topics.topics) == {"t", "dup"}


async def test_delete_then_recreate_gets_a_new_id(server: Any) -> None:
    client = await server.connect()
    [first] = await create(client, new_topic("phoenix"), version=7)
    await client.request(D(topic_names=["phoenix"], timeout_ms=5000), version=5)
    [second] = await create(client, new_topic("phoenix"), version=7)
    assert second.error_code == 0 and second.topic_id != first.topic_id


async def test_deletion_disabled(make_server: Any) -> None:
    srv = await make_server(delete_topic_enable=False)
    client = await srv.connect()
    await create(client, new_topic("stays"))
    new = await client.request(D(topic_names=["stays"], timeout_ms=5000), version=5)
    assert new.responses[0].error_code == ErrorCode.TOPIC_DELETION_DISABLED
    old = await client.request(D(topic_names=["stays"], timeout_ms=5000), version=2)
    assert old.responses[0].error_code == ErrorCode.INVALID_REQUEST
    assert srv.broker.topics.get("stays") is not None


# --- CreatePartitions -------------------------------------------------------------------


@pytest.mark.parametrize("version", range(4))
async def test_create_partitions_grows_the_topic(server: Any, version: int) -> None:
    client = await server.connect()
    await create(client, new_topic("grow", 1))
    result = await grow(
        client, P.CreatePartitionsTopic(name="grow", count=3, assignments=None), version=version
    )
    assert result == {"grow": (0, None)}
    assert [p.index for p in server.broker.topics.get("grow").partitions] == [0, 1, 2]
    assert (server.broker.data_dir / "grow-2").is_dir()


async def test_create_partitions_errors(server: Any) -> None:
    client = await server.connect()
    await create(client, new_topic("four", 4))
    result = await grow(
        client,
        P.CreatePartitionsTopic(name="four", count=2, assignments=None),
        P.CreatePartitionsTopic(name="missing", count=2, assignments=None),
    )
    assert result == {
        "four": (
            ErrorCode.INVALID_PARTITIONS,
            "The topic four currently has 4 partition(s); 2 would not be an increase.",
        ),
        "missing": (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None),
    }
    same = await grow(client, P.CreatePartitionsTopic(name="four", count=4, assignments=None))
    assert same == {"four": (ErrorCode.INVALID_PARTITIONS, "Topic already has 4 partition(s).")}
    assert len(server.broker.topics.get("four").partitions) == 4


async def test_create_partitions_validate_only_and_assignments(server: Any) -> None:
    client = await server.connect()
    await create(client, new_topic("t", 1))
    node = server.broker.node_id
    dry = await grow(
        client, P.CreatePartitionsTopic(name="t", count=5, assignments=None), validate_only=True
    )
    assert dry == {"t": (0, None)}
    assert len(server.broker.topics.get("t").partitions) == 1

    def assign(*lists: list[int]) -> list[Any]:
        return [P.CreatePartitionsAssignment(broker_ids=ids) for ids in lists]

    too_few = await grow(
        client, P.CreatePartitionsTopic(name="t", count=3, assignments=assign([node]))
    )
    assert too_few == {
        "t": (
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified.",
        )
    }
    elsewhere = await grow(
        client, P.CreatePartitionsTopic(name="t", count=2, assignments=assign([7]))
    )
    assert elsewhere["t"][0] == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    ok = await grow(
        client, P.CreatePartitionsTopic(name="t", count=3, assignments=assign([node], [node]))
    )
    assert ok == {"t": (0, None)}
    assert len(server.broker.topics.get("t").partitions) == 3


async def test_create_partitions_duplicate_names(server: Any) -> None:
    client = await server.connect()
    await create(client, new_topic("t", 1))
    topic = P.CreatePartitionsTopic(name="t", count=2, assignments=None)
    response = await client.request(P(topics=[topic, topic], timeout_ms=5000))
    assert [(r.name, r.error_code, r.error_message) for r in response.results] == [
        ("t", ErrorCode.INVALID_REQUEST, "Duplicate topic name.")
    ]
    assert len(server.broker.topics.get("t").partitions) == 1


async def test_topics_survive_a_restart(make_server: Any, tmp_path: Any) -> None:
    data = str(tmp_path / "restart")
    srv = await make_server(log_dirs=data)
    client = await srv.connect()
    [created] = await create(
        client, new_topic("durable", 2, configs={"retention.ms": "777"}), version=7
    )
    await grow(client, P.CreatePartitionsTopic(name="durable", count=3, assignments=None))
    await create(client, new_topic("gone"))
    await client.request(D(topic_names=["gone"], timeout_ms=5000), version=4)
    await client.aclose()
    await srv.stop()

    again = await make_server(log_dirs=data)
    topic = again.broker.topics.get("durable")
    assert topic is not None and topic.topic_id == created.topic_id
    assert len(topic.partitions) == 3
    assert topic.configs == {"retention.ms": "777"}
    assert again.broker.topics.get("gone") is None
