"""Requests a careful client never sends, answered as Apache Kafka answers them.

Where Kafka itself accepts something surprising (deleting an internal topic, a
negative committed offset), kbroker does too, and the broker keeps working after.
"""

from __future__ import annotations

from kbroker.internal_topics import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    DeleteTopicsRequest,
    FindCoordinatorRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
)
from tests.kbroker.helpers import create_topic

FAST = {"offsets.topic.num.partitions": 1, "transaction.state.log.num.partitions": 1}


def _commit(group: str, offset: int) -> OffsetCommitRequest:
    return OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[
            OffsetCommitRequest.OffsetCommitRequestTopic(
                name="t",
                partitions=[
                    OffsetCommitRequest.OffsetCommitRequestPartition(
                        partition_index=0, committed_offset=offset
                    )
                ],
            )
        ],
    )


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
