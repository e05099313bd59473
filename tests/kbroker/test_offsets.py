"""ListOffsets, OffsetForLeaderEpoch and DeleteRecords over the wire (RawClient)."""

from __future__ import annotations

from typing import Any

import pytest

from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    DeleteRecordsRequest,
)
from tests.kbroker.helpers import (
    EARLIEST,
    EARLIEST_LOCAL,
    LATEST,
    LATEST_TIERED,
    MAX_TS,
    create_topic,
    end_offset,
    fetch,
    list_offset,
    list_offsets_request,
    produce,
    records,
)


async def filled(server: Any, topic: str) -> Any:
    """A client that created ``topic`` and produced three batches to it: offsets 0-2 at
    ts 1000.., 3-5 at ts 3000.., 6-8 at ts 2000.."""
    client = await server.connect()
    create_topic(server, topic)
    for start, ts in ((0, 1_000), (3, 3_000), (6, 2_000)):
        assert (await produce(client, topic, 0, records(3, start=start, ts=ts))).error_code == 0
    return client


# -- ListOffsets ------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 5, 10])
async def test_list_offsets_on_an_empty_partition(server: Any, version: int) -> None:
    create_topic(server, "empty")
    client = await server.connect()
    for ts in (EARLIEST, LATEST):
        p = await list_offset(client, "empty", ts, version=version)
        assert (p.error_code, p.offset, p.timestamp) == (0, 0, -1)
    p = await list_offset(client, "empty", 12345, version=version)
    assert (p.error_code, p.offset, p.timestamp) == (0, -1, -1)
    p = await list_offset(client, "empty", MAX_TS, version=version)
    assert (p.error_code, p.offset, p.timestamp) == (0, -1, -1)


@pytest.mark.parametrize("version", [1, 4, 7, 10])
async def test_list_offsets_earliest_latest_and_by_timestamp(server: Any, version: int) -> None:
    client = await filled(server, "lo")
    earliest = await list_offset(client, "lo", EARLIEST, version=version)
    latest = await list_offset(client, "lo", LATEST, version=version)
    assert (earliest.offset, earliest.timestamp) == (0, -1)
    assert (latest.offset, latest.timestamp) == (9, -1)
    # First record with timestamp >= 2000 in offset order: offset 3 (ts 3000)
    # comes before offset 6 (ts 2000).
    by_ts = await list_offset(client, "lo", 2_000, version=version)
    assert (by_ts.offset, by_ts.timestamp) == (3, 3_000)
    exact = await list_offset(client, "lo", 1_001, version=version)
    assert (exact.offset, exact.timestamp) == (1, 1_001)
    none = await list_offset(client, "lo", 10_000, version=version)
    assert (none.error_code, none.offset, none.timestamp) == (0, -1, -1)
    if version >= 4:
        assert earliest.leader_epoch == latest.leader_epoch == by_ts.leader_epoch == 0
        assert none.leader_epoch == -1


@pytest.mark.parametrize("version", [7, 10])
async def test_list_offsets_max_timestamp(server: Any, version: int) -> None:
    # KIP-734: the offset of the record with the largest timestamp.
    client = await filled(server, "mx")
    p = await list_offset(client, "mx", MAX_TS, version=version)
    assert (p.error_code, p.offset, p.timestamp) == (0, 5, 3_002)


@pytest.mark.parametrize("version", [8, 10])
async def test_list_offsets_earliest_local_is_log_start(server: Any, version: int) -> None:
    client = await filled(server, "el")
    p = await list_offset(client, "el", EARLIEST_LOCAL, version=version)
    assert (p.error_code, p.offset) == (0, 0)


@pytest.mark.parametrize("version", [9, 10])
async def test_list_offsets_latest_tiered_without_tiered_storage(server: Any, version: int) -> None:
    client = await filled(server, "lt")
    p = await list_offset(client, "lt", LATEST_TIERED, version=version)
    assert (p.error_code, p.offset, p.leader_epoch) == (0, -1, -1)


async def test_list_offsets_read_committed_latest_is_the_lso(server: Any) -> None:
    client = await filled(server, "rcl")
    resp = await client.request(
        list_offsets_request("rcl", (0, LATEST), isolation_level=1), version=5
    )
    assert resp.topics[0].partitions[0].offset == 9


async def test_list_offsets_errors(server: Any) -> None:
    create_topic(server, "two", partitions=2)
    client = await server.connect()
    p = await list_offset(client, "ghost", LATEST, version=5)
    assert (p.error_code, p.offset) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)
    p = await list_offset(client, "two", LATEST, version=5, partition=9)
    assert p.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    # The same partition twice: INVALID_REQUEST for it, the others answered.
    resp = await client.request(
        list_offsets_request("two", (0, LATEST), (0, EARLIEST), (1, LATEST)), version=5
    )
    codes = [(p.partition_index, p.error_code) for p in resp.topics[0].partitions]
    assert codes == [(0, ErrorCode.INVALID_REQUEST), (0, ErrorCode.INVALID_REQUEST), (1, 0)]


async def test_list_offsets_current_leader_epoch(server: Any) -> None:
    create_topic(server, "cle")
    client = await server.connect()
    req = list_offsets_request("cle", (0, LATEST))
    req.topics[0].partitions[0].current_leader_epoch = 3
    resp = await client.request(req, version=5)
    assert resp.topics[0].partitions[0].error_code == ErrorCode.UNKNOWN_LEADER_EPOCH


# -- OffsetForLeaderEpoch --------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, 4])
async def test_offset_for_leader_epoch(server: Any, version: int) -> None:
    client = await filled(server, "ofle")
    current = await end_offset(client, "ofle", 0, version=version)
    # The current epoch's end is the log end offset (a consumer validating its
    # position after a leader change, KIP-320).
    assert (current.error_code, current.end_offset) == (0, 9)
    future = await end_offset(client, "ofle", 5, version=version)
    assert (future.error_code, future.end_offset) == (0, -1)
    if version >= 1:
        assert current.leader_epoch == 0
        assert future.leader_epoch == -1
    undefined = await end_offset(client, "ofle", -1, version=version)
    assert (undefined.error_code, undefined.end_offset) == (0, -1)
    unknown = await end_offset(client, "nope", 0, version=version)
    assert (unknown.error_code, unknown.end_offset) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)


async def test_offset_for_leader_epoch_current_epoch_check(server: Any) -> None:
    create_topic(server, "ofc")
    client = await server.connect()
    newer = await end_offset(client, "ofc", 0, version=4, current=2)
    assert newer.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    same = await end_offset(client, "ofc", 0, version=4, current=0)
    assert (same.error_code, same.end_offset) == (0, 0)


# -- DeleteRecords ------------------------------------------------------------------------------


def delete_request(topic: str, *offsets: tuple[int, int]) -> DeleteRecordsRequest:
    """DeleteRecords for (partition, offset) pairs of one topic."""
    return DeleteRecordsRequest(
        timeout_ms=30_000,
        topics=[
            DeleteRecordsRequest.DeleteRecordsTopic(
                name=topic,
                partitions=[
                    DeleteRecordsRequest.DeleteRecordsPartition(partition_index=p, offset=o)
                    for p, o in offsets
                ],
            )
        ],
    )


async def delete_records(
    client: Any, topic: str, offset: int, *, version: int, partition: int = 0
) -> Any:
    """One DeleteRecords answer."""
    resp = await client.request(delete_request(topic, (partition, offset)), version=version)
    (t,) = resp.topics
    (p,) = t.partitions
    assert (t.name, p.partition_index) == (topic, partition)
    return p


@pytest.mark.parametrize("version", [0, 1, 2])
async def test_delete_records_then_fetch_below_is_out_of_range(server: Any, version: int) -> None:
    client = await filled(server, "dr")
    p = await delete_records(client, "dr", 4, version=version)
    assert (p.error_code, p.low_watermark) == (0, 4)
    below = await fetch(client, server, "dr", 0, 2)
    assert below.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert below.log_start_offset == 4
    at = await fetch(client, server, "dr", 0, 4)
    assert at.error_code == 0
    earliest = await list_offset(client, "dr", EARLIEST, version=5)
    assert earliest.offset == 4
    # Deleting below the current start is a no-op that reports the start.
    again = await delete_records(client, "dr", 1, version=version)
    assert (again.error_code, again.low_watermark) == (0, 4)


async def test_delete_records_to_high_watermark_and_beyond(server: Any) -> None:
    client = await filled(server, "drh")
    beyond = await delete_records(client, "drh", 10, version=2)
    assert (beyond.error_code, beyond.low_watermark) == (ErrorCode.OFFSET_OUT_OF_RANGE, -1)
    hw = await delete_records(client, "drh", -1, version=2)
    assert (hw.error_code, hw.low_watermark) == (0, 9)
    # New records still append after the deleted range.
    assert (await produce(client, "drh", 0, records(1))).base_offset == 9


async def test_delete_records_errors(server: Any) -> None:
    create_topic(server, "compacted", configs={"cleanup.policy": "compact"})
    server.broker.topics.create_internal("__consumer_offsets")
    client = await server.connect()
    p = await delete_records(client, "ghost", 0, version=2)
    assert (p.error_code, p.low_watermark) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)
    p = await delete_records(client, "compacted", 0, version=2)
    assert p.error_code == ErrorCode.POLICY_VIOLATION
    p = await delete_records(client, "__consumer_offsets", 0, version=2)
    assert p.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
