"""Requests a careful client never sends, answered as Apache Kafka answers them.

Where Kafka itself accepts something surprising (deleting an internal topic, a
negative committed offset), kbroker does too, and the broker keeps working after.
"""

from __future__ import annotations

import os

import trio

from kbroker import partition_limits
from kbroker.internal_topics import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ApiVersionsRequest,
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    FindCoordinatorRequest,
    MetadataRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
)
from tests.kbroker.admin_helpers import create, grow, new_topic
from tests.kbroker.helpers import commit_request, create_topic

C = CreateTopicsRequest
P = CreatePartitionsRequest
FAST = {"offsets.topic.num.partitions": 1, "transaction.state.log.num.partitions": 1}


def _commit(group: str, offset: int, topic: str = "t") -> OffsetCommitRequest:
    return commit_request(group, {(topic, 0): offset})


async def _committed(client, group: str) -> int:
    fetched = await client.request(
        OffsetFetchRequest(
            groups=[OffsetFetchRequest.OffsetFetchRequestGroup(group_id=group, topics=None)]
        )
    )
    return fetched.groups[0].topics[0].partitions[0].committed_offset


async def test_internal_topics_are_deleted_as_kafka_does_and_come_back(make_server) -> None:
    # Kafka (KafkaApis / ControllerApis.deleteTopics) has no check for internal
    # topics: only authorization stands in the way, and kafka-topics.sh refuses them
    # on the client side. Without ACLs the deletion succeeds; the coordinators
    # create their topic again at the next write.
    server = await make_server(**FAST)
    create_topic(server, "t")
    client = await server.connect()
    assert (await client.request(_commit("g", 3))).topics[0].partitions[0].error_code == 0
    server.broker.topics.create_internal(TRANSACTION_STATE_TOPIC)
    deleted = await client.request(
        DeleteTopicsRequest(topic_names=[OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC], timeout_ms=1000),
        version=4,
    )
    assert [(r.name, r.error_code) for r in deleted.responses] == [
        (OFFSETS_TOPIC, ErrorCode.NONE),
        (TRANSACTION_STATE_TOPIC, ErrorCode.NONE),
    ]
    assert server.broker.topics.get(OFFSETS_TOPIC) is None
    assert (await client.request(_commit("g", 4))).topics[0].partitions[0].error_code == 0
    assert server.broker.topics.get(OFFSETS_TOPIC) is not None
    assert await _committed(client, "g") == 4
    find = FindCoordinatorRequest(key_type=1, coordinator_keys=["tx"])
    assert (await client.request(find)).coordinators[0].error_code == 0


async def test_negative_committed_offsets_are_kept_as_kafka_keeps_them(make_server) -> None:
    # Kafka validates only the metadata's length (GroupMetadataManager.storeOffsets,
    # OffsetMetadataManager): a raw commit of -5 is stored and fetched back. (The
    # Java client refuses a negative offset before sending it.)
    server = await make_server(**FAST)
    create_topic(server, "t")
    client = await server.connect()
    assert (await client.request(_commit("g", -5))).topics[0].partitions[0].error_code == 0
    assert await _committed(client, "g") == -5
    await server.stop()
    server = await make_server(log_dirs=server.config["log.dirs"][0], **FAST)
    client = await server.connect()
    assert await _committed(client, "g") == -5  # and it survives a restart


# --- partition caps (kbroker.partition_limits) --------------------------------------------


async def test_a_million_partitions_in_one_request_is_a_policy_violation(server) -> None:
    # KAFKA-17870: more than 10,000 partitions in one request are refused outright,
    # every topic of the request with the same error; nothing is created.
    client = await server.connect()
    [huge, small] = await create(client, new_topic("huge", 1_000_000), new_topic("small", 1))
    for result in (huge, small):
        assert result.error_code == ErrorCode.POLICY_VIOLATION
        assert result.error_message == "Excessively large number of partitions per request."
    assert server.broker.topics.get("huge") is None and server.broker.topics.get("small") is None
    ping = await client.request(
        ApiVersionsRequest(client_software_name="t", client_software_version="1")
    )
    assert ping.error_code == ErrorCode.NONE


async def test_max_broker_partitions_refuses_creation_beyond_it(make_server) -> None:
    server = await make_server(max_broker_partitions=5, **FAST)
    client = await server.connect()
    [ok] = await create(client, new_topic("a", 3))
    assert ok.error_code == ErrorCode.NONE
    [refused] = await create(client, new_topic("b", 3))
    assert refused.error_code == ErrorCode.POLICY_VIOLATION
    assert "max.broker.partitions (5)" in refused.error_message
    assert "hosts 3" in refused.error_message
    grown = await grow(client, P.CreatePartitionsTopic(name="a", count=6, assignments=None))
    assert grown["a"][0] == ErrorCode.POLICY_VIOLATION
    assert len(server.broker.topics.get("a").partitions) == 3
    # Auto-creation is refused the same way; internal topics never are.
    metadata = await client.request(
        MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name=n) for n in ("c", "d", "e")]
        )
    )
    assert [(t.name, t.error_code) for t in metadata.topics] == [
        ("c", ErrorCode.NONE),
        ("d", ErrorCode.NONE),
        ("e", ErrorCode.POLICY_VIOLATION),
    ]
    committed = await client.request(_commit("g", 1, "a"))
    assert committed.topics[0].partitions[0].error_code == 0
    assert server.broker.topics.get(OFFSETS_TOPIC) is not None


async def test_metadata_auto_creates_a_bounded_number_of_topics_per_request(make_server) -> None:
    server = await make_server(auto_create_topics_max_per_request=3)
    client = await server.connect()
    names = [f"new-{i}" for i in range(7)]
    request = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=n) for n in names])
    first = await client.request(request)
    assert [t.error_code for t in first.topics] == [0, 0, 0] + [ErrorCode.LEADER_NOT_AVAILABLE] * 4
    assert sorted(server.broker.topics.topics) == names[:3]
    # The client asks again (LEADER_NOT_AVAILABLE is retriable) and gets further.
    second = await client.request(request)
    assert [t.error_code for t in second.topics] == [0] * 6 + [ErrorCode.LEADER_NOT_AVAILABLE]
    third = await client.request(request)
    assert [t.error_code for t in third.topics] == [0] * 7


async def test_creating_many_topics_lets_other_clients_be_served(make_server) -> None:
    # Topic creation is synchronous (files, an fsync of the topics file): between
    # topics the handler yields, so a ping on another connection is answered before
    # a CreateTopics of many topics is.
    server = await make_server()
    creator, pinger = await server.connect(), await server.connect()
    await creator.send_request(C(topics=[new_topic(f"t{i}") for i in range(40)], timeout_ms=5000))
    with trio.fail_after(30):
        while server.broker.topics.get("t0") is None:  # creation has begun
            await trio.sleep(0.001)
    ping = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    await pinger.send_request(ping)
    with trio.fail_after(30):
        assert (await pinger.receive_response(18, pinger.default_version(18))).error_code == 0
    assert len(server.broker.topics.topics) < 40  # answered while topics were being created
    response = await creator.receive_response(19, creator.default_version(19))
    assert all(t.error_code == 0 for t in response.topics)


async def test_partitions_never_take_the_descriptors_connections_need(
    make_server, monkeypatch
) -> None:
    # With 1,024 descriptors and three per partition, a few hundred partitions
    # locked new clients out (EMFILE on accept) and the broker could not reopen its
    # data dir. Whatever max.broker.partitions says, creation stops short of the
    # quarter of the limit kept for connections.
    server = await make_server(**FAST)
    client = await server.connect()
    in_use = len(os.listdir("/proc/self/fd"))
    limit = in_use + 64 + 3 * 10 + 2  # room for 10 partitions above the reserve
    monkeypatch.setattr(partition_limits, "_fd_limit", lambda: max(limit, 4 * 64))
    room = partition_limits.partitions_fds_allow()
    assert room is not None and 2 <= room < 200
    [refused] = await create(client, new_topic("wide", room + 1))
    assert refused.error_code == ErrorCode.POLICY_VIOLATION
    assert "file descriptors" in refused.error_message
    assert server.broker.topics.get("wide") is None
    [ok] = await create(client, new_topic("narrow", 2))
    assert ok.error_code == ErrorCode.NONE


async def test_one_topic_of_thousands_of_partitions_lets_other_clients_be_served(
    make_server,
) -> None:
    # One topic of 5,000 partitions was opened in one synchronous loop: the broker
    # answered nobody for seconds. Now a ping on another connection is answered all
    # along, each far sooner than the whole creation, and the topic only appears
    # once it is whole. (Relative, not absolute, times: the machine's speed varies.)
    count = 3000
    server = await make_server(**FAST)
    creator, pinger = await server.connect(), await server.connect()
    ping = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    gaps: list[float] = []
    partial: list[int] = []
    done = trio.Event()

    async def keep_pinging() -> None:
        while not done.is_set():
            sent = trio.current_time()
            assert (await pinger.request(ping)).error_code == ErrorCode.NONE
            gaps.append(trio.current_time() - sent)
            seen = server.broker.topics.get("wide")
            if seen is not None and len(seen.partitions) != count:
                partial.append(len(seen.partitions))

    async with trio.open_nursery() as nursery:
        started = trio.current_time()
        nursery.start_soon(keep_pinging)
        [result] = await create(creator, new_topic("wide", count))
        took = trio.current_time() - started
        done.set()
    assert result.error_code == ErrorCode.NONE
    topic = server.broker.topics.get("wide")
    assert topic is not None and len(topic.partitions) == count
    assert [p.index for p in topic.partitions] == list(range(count))
    assert partial == []  # never seen half made
    assert len(gaps) >= 10, (len(gaps), took)
    assert max(gaps) < took / 5, (max(gaps), took)
