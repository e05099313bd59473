"""Fetch over the wire (RawClient): records back, long polling, byte limits, errors, sessions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio
import trio.testing

from kbroker.wire.compression import GZIP, ZSTD
from kbroker.wire.errors import ErrorCode
from tests.kbroker.helpers import (
    batches,
    create_topic,
    fetch,
    fetch_request,
    fetched_records,
    parked_fetch,
    produce,
    records,
)

VERSIONS = [4, 11, 13, 17]


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time for long-poll tests (pytest-trio runs the test on any Clock fixture).

    Time jumps ahead once every task has been idle for a moment, so a fetch
    that is wrongly left waiting for its max_wait returns at once (and empty,
    failing the test) instead of hanging it; a correct wake-up never waits.
    """
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.mark.parametrize("version", VERSIONS)
async def test_fetch_returns_what_was_produced_with_offsets(server: Any, version: int) -> None:
    create_topic(server, "f")
    client = await server.connect()
    sent = records(3)
    await produce(client, "f", 0, sent)
    await produce(client, "f", 0, records(2, start=3))
    part = await fetch(client, server, "f", 0, 0, version=version)
    assert part.error_code == 0
    assert part.high_watermark == 5
    assert part.last_stable_offset == 5
    if version >= 5:
        assert part.log_start_offset == 0
    assert part.aborted_transactions is None  # read_uncommitted
    if version >= 11:
        assert part.preferred_read_replica == -1
    assert fetched_records(part.records) == [(i, b"k%d" % i, b"v%d" % i) for i in range(5)]
    # Byte-identical to what the producer sent, apart from the base offset and
    # leader epoch the broker assigned (bytes 0-7 and 12-15).
    first = bytes(part.records)[: len(sent)]
    assert first[16:] == sent[16:]
    assert first[8:12] == sent[8:12]


@pytest.mark.parametrize("version", VERSIONS)
async def test_fetch_from_the_middle_and_the_end(server: Any, version: int) -> None:
    create_topic(server, "mid")
    client = await server.connect()
    await produce(client, "mid", 0, records(3))
    await produce(client, "mid", 0, records(3, start=3))
    part = await fetch(client, server, "mid", 0, 4, version=version)
    # Whole batches: the one holding offset 4 starts at 3; clients skip below.
    assert [h.base_offset for h in batches(part.records)] == [3]
    end = await fetch(client, server, "mid", 0, 6, version=version)
    assert (end.error_code, bytes(end.records)) == (0, b"")


async def test_long_poll_is_woken_by_a_produce_from_another_connection(
    clock: trio.testing.MockClock, server: Any
) -> None:
    create_topic(server, "lp")
    start = trio.current_time()
    request = fetch_request("lp", 0, 0, max_wait_ms=600_000, min_bytes=1)
    async with parked_fetch(server, request, version=11) as (producer, got):
        assert got == []  # parked: nothing to read yet, and max_wait is ten minutes
        resp = await produce(producer, "lp", 0, records(2))
        assert resp.error_code == 0
    # Woken by the append, not by max_wait running out (virtual time).
    assert trio.current_time() - start < 600.0
    ((_, part),) = got
    assert [v for _, _, v in fetched_records(part.records)] == [b"v0", b"v1"]


async def test_long_poll_waits_for_min_bytes_across_appends(
    clock: trio.testing.MockClock, server: Any
) -> None:
    create_topic(server, "mb")
    one = records(1)
    start = trio.current_time()
    request = fetch_request("mb", 0, 0, max_wait_ms=600_000, min_bytes=2 * len(one) + 1)
    async with parked_fetch(server, request, version=11) as (producer, got):
        await produce(producer, "mb", 0, records(1))
        await produce(producer, "mb", 0, records(1))
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # two batches are still below min_bytes
        await produce(producer, "mb", 0, records(1))
    assert trio.current_time() - start < 600.0
    assert len(batches(got[0][1].records)) == 3


async def test_append_to_another_partition_does_not_answer_a_parked_fetch(
    clock: trio.testing.MockClock, server: Any
) -> None:
    create_topic(server, "quiet")
    create_topic(server, "busy")
    start = trio.current_time()
    request = fetch_request("quiet", 0, 0, max_wait_ms=600_000, min_bytes=1)
    async with parked_fetch(server, request, version=11) as (producer, got):
        for _ in range(3):
            await produce(producer, "busy", 0, records(1))
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        await produce(producer, "quiet", 0, records(1, ts=77))
    assert trio.current_time() - start < 600.0
    assert fetched_records(got[0][1].records) == [(0, b"k0", b"v0")]


async def test_max_wait_elapses_with_nothing_to_read(
    clock: trio.testing.MockClock, server: Any
) -> None:
    create_topic(server, "idle")
    client = await server.connect()
    start = trio.current_time()
    part = await fetch(client, server, "idle", 0, 0, max_wait_ms=90_000, min_bytes=1)
    assert part.error_code == 0
    assert bytes(part.records or b"") == b""
    assert part.high_watermark == 0
    # Answered when max_wait ran out (virtual time), not before.
    assert trio.current_time() - start >= 90.0


@pytest.mark.parametrize("version", VERSIONS)
async def test_first_batch_is_whole_even_over_partition_max_bytes(
    server: Any, version: int
) -> None:
    # KIP-74: a batch larger than the limit still comes back whole, so a
    # consumer can never get stuck behind it.
    create_topic(server, "kip74")
    client = await server.connect()
    big = records(20)
    await produce(client, "kip74", 0, big)
    await produce(client, "kip74", 0, records(20, start=20))
    part = await fetch(client, server, "kip74", 0, 0, version=version, partition_max_bytes=10)
    assert [h.base_offset for h in batches(part.records)] == [0]
    assert len(bytes(part.records)) == len(big)
    part = await fetch(client, server, "kip74", 0, 0, version=version, max_bytes=10)
    assert [h.base_offset for h in batches(part.records)] == [0]


async def test_response_max_bytes_is_shared_across_partitions(server: Any) -> None:
    create_topic(server, "share", partitions=2)
    client = await server.connect()
    batch = records(10)
    for p in (0, 1):
        await produce(client, "share", p, batch)
        await produce(client, "share", p, records(10, start=10))
    req = fetch_request("share", (0, 1), 0, max_bytes=len(batch) + 10)
    resp = await client.request(req, version=11)
    p0, p1 = resp.responses[0].partitions
    # The first partition spends the budget on one batch; the second gets
    # nothing (only the first non-empty partition may overshoot).
    assert [h.base_offset for h in batches(p0.records)] == [0]
    assert batches(p1.records) == []
    assert p1.error_code == 0 and p1.high_watermark == 20


async def test_first_non_empty_partition_may_overshoot_max_bytes(server: Any) -> None:
    # KIP-74: "first" means the first partition that has data, not the first listed.
    create_topic(server, "skip", partitions=2)
    client = await server.connect()
    batch = records(10)
    await produce(client, "skip", 1, batch)
    req = fetch_request("skip", (0, 1), 0, max_bytes=10)
    resp = await client.request(req, version=11)
    p0, p1 = resp.responses[0].partitions
    assert batches(p0.records) == []
    assert bytes(p1.records)[16:] == batch[16:]


@pytest.mark.parametrize("version", VERSIONS)
async def test_offset_out_of_range_reports_the_valid_range(server: Any, version: int) -> None:
    create_topic(server, "oor")
    client = await server.connect()
    await produce(client, "oor", 0, records(3))
    part = await fetch(client, server, "oor", 0, 100, version=version, max_wait_ms=600_000)
    assert part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert part.high_watermark == 3
    if version >= 5:
        assert part.log_start_offset == 0
    assert bytes(part.records or b"") == b""
    below = await fetch(client, server, "oor", 0, -5, version=version)
    assert below.error_code == ErrorCode.OFFSET_OUT_OF_RANGE


@pytest.mark.parametrize("version", [4, 11, 12])
async def test_unknown_topic_or_partition_by_name(server: Any, version: int) -> None:
    create_topic(server, "known")
    client = await server.connect()
    part = await fetch(client, server, "missing", 0, 0, version=version, max_wait_ms=600_000)
    assert part.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert part.high_watermark == -1
    part = await fetch(client, server, "known", 7, 0, version=version)
    assert part.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


@pytest.mark.parametrize("version", [13, 17])
async def test_unknown_topic_id(server: Any, version: int) -> None:
    client = await server.connect()
    stray = uuid.uuid4()
    resp = await client.request(
        fetch_request("", 0, 0, topic_id=stray, max_wait_ms=600_000), version=version
    )
    (t,) = resp.responses
    assert t.topic_id == stray
    assert t.partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID


async def test_incremental_fetch_for_a_session_never_issued(server: Any) -> None:
    create_topic(server, "s")
    client = await server.connect()
    req = fetch_request("s", 0, 0, session_id=1234, session_epoch=3)
    resp = await client.request(req, version=11)
    assert resp.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    assert resp.session_id == 0
    assert resp.responses == []


@pytest.mark.parametrize("epoch", [0, -1])
async def test_full_fetch_asking_for_a_session_is_answered_sessionless(
    server: Any, epoch: int
) -> None:
    # KIP-227: session id 0 in the answer tells the client to keep sending
    # full fetches.
    create_topic(server, "s0")
    client = await server.connect()
    await produce(client, "s0", 0, records(1))
    topic_id = server.broker.topics.get("s0").topic_id
    resp = await client.request(
        fetch_request("s0", 0, 0, topic_id=topic_id, session_id=0, session_epoch=epoch), version=17
    )
    assert (resp.error_code, resp.session_id) == (0, 0)
    assert len(fetched_records(resp.responses[0].partitions[0].records)) == 1


async def test_read_committed_gets_lso_and_aborted_transaction_list(server: Any) -> None:
    create_topic(server, "rc")
    client = await server.connect()
    await produce(client, "rc", 0, records(2))
    part = await fetch(client, server, "rc", 0, 0, version=11, isolation_level=1)
    assert part.last_stable_offset == 2
    assert part.aborted_transactions == []
    assert len(fetched_records(part.records)) == 2


async def test_current_leader_epoch_checks(server: Any) -> None:
    create_topic(server, "ep")
    client = await server.connect()

    async def with_epoch(epoch: int) -> int:
        req = fetch_request("ep", 0, 0)
        req.topics[0].partitions[0].current_leader_epoch = epoch
        resp = await client.request(req, version=11)
        return resp.responses[0].partitions[0].error_code

    assert await with_epoch(0) == 0
    assert await with_epoch(-1) == 0
    assert await with_epoch(7) == ErrorCode.UNKNOWN_LEADER_EPOCH


async def test_zstd_is_refused_to_fetch_versions_that_predate_it(server: Any) -> None:
    """KIP-110: a consumer fetching below v10 cannot decode zstd, so its partition answer is
    UNSUPPORTED_COMPRESSION_TYPE with no records; v10+ get the batch; gzip is fine for all."""
    create_topic(server, "z")
    create_topic(server, "g")
    client = await server.connect()
    assert (await produce(client, "z", 0, records(5, compression=ZSTD))).error_code == 0
    assert (await produce(client, "g", 0, records(5, compression=GZIP))).error_code == 0
    old = await fetch(client, server, "z", 0, 0, version=9)
    assert old.error_code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    assert not bytes(old.records or b"")
    new = await fetch(client, server, "z", 0, 0, version=10)
    assert new.error_code == 0 and len(fetched_records(new.records)) == 5
    gzip_old = await fetch(client, server, "g", 0, 0, version=4)
    assert gzip_old.error_code == 0 and len(fetched_records(gzip_old.records)) == 5
