"""A parked Fetch is released by the append itself, not by any timer (end-to-end latency)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from kbroker.handlers import fetch as fetch_handler
from kbroker.replication.partition import ReplicatedPartition
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import FetchRequest
from tests.kbroker.helpers import (
    create_topic,
    fetch_request,
    fetched_records,
    parked_fetch,
    produce,
    records,
)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that stands still while anything can run: a wake-up that needed a
    timer (polling, or max_wait running out) would show up as virtual time passing."""
    return trio.testing.MockClock(autojump_threshold=1.0)


async def test_append_releases_a_parked_fetch_with_no_time_passing(
    clock: trio.testing.MockClock, server: Any
) -> None:
    create_topic(server, "wake", 2)
    # The consumer's default fetch.wait.max.ms (librdkafka / the Java client): 500 ms.
    request = fetch_request("wake", 0, 0, max_wait_ms=500, min_bytes=1)
    async with parked_fetch(server, request, version=12) as (producer, got):
        assert got == []
        # An append to another partition does not answer it...
        await produce(producer, "wake", 1, records(1))
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        parked_at = trio.current_time()
        await produce(producer, "wake", 0, records(1))
    answered_at, part = got[0]
    assert answered_at == parked_at  # released by the append: no virtual time passed
    assert [v for _, _, v in fetched_records(part.records)] == [b"v0"]


async def test_a_parked_fetch_wakes_for_what_its_isolation_reads(
    clock: trio.testing.MockClock, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka's DelayedFetch: a follower's fetch waits for the log end, a consumer's for the HW.

    Broker 1 leads with followers 2 and 3. Follower 2 parks at the log end and a consumer
    at the high watermark; follower 3 catching up moves only the HW. That answers the
    consumer at once and leaves follower 2 parked without reading its partition again (a
    read would find nothing and park again: leader CPU on every acks=all produce); the
    next append answers follower 2, which learns the HW from that response.
    """
    create_topic(server, "iso")
    partition = server.broker.topics.get("iso").partitions[0]
    partition.replica = ReplicatedPartition(
        partition.log, broker_id=1, on_high_watermark_change=server.broker.notify_append
    )
    partition.replica.make_leader(leader_epoch=1, isr=[1, 2, 3], replicas=[1, 2, 3])
    leader = await server.connect()
    assert (await produce(leader, "iso", 0, records(2), acks=1)).error_code == 0

    reads: dict[int, int] = {}  # replica id -> partition reads of its fetches
    real_read_all = fetch_handler._read_all

    def counting_read_all(ctx: Any, request: FetchRequest, version: int) -> Any:
        rid = fetch_handler.replica_id_of(request, version)
        reads[rid] = reads.get(rid, 0) + 1
        return real_read_all(ctx, request, version)

    monkeypatch.setattr(fetch_handler, "_read_all", counting_read_all)

    def follower_fetch(replica_id: int, offset: int, max_wait_ms: int) -> FetchRequest:
        req = fetch_request("iso", 0, offset, max_wait_ms=max_wait_ms, min_bytes=1)
        req.replica_id = replica_id
        return req

    # Follower 2 copies offsets 0-1 (past the HW, which stays 0 until follower 3 has them).
    follower2, follower3 = await server.connect(), await server.connect()
    copied = (await follower2.request(follower_fetch(2, 0, 0), version=12)).responses
    assert len(fetched_records(copied[0].partitions[0].records)) == 2
    assert partition.log.high_watermark == 0

    consumer = await server.connect()
    got: dict[str, tuple[float, Any]] = {}

    async def parked(name: str, client: Any, request: FetchRequest) -> None:
        resp = await client.request(request, version=12)
        got[name] = (trio.current_time(), resp.responses[0].partitions[0])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(parked, "follower", follower2, follower_fetch(2, 2, 500))
        nursery.start_soon(
            parked, "consumer", consumer, fetch_request("iso", 0, 0, max_wait_ms=500)
        )
        await trio.testing.wait_all_tasks_blocked()
        assert got == {} and reads == {2: 2, -1: 1}
        moved_at = trio.current_time()
        # Follower 3 catches up: the HW moves to 2, the log end does not.
        await follower3.request(follower_fetch(3, 2, 0), version=12)
        await trio.testing.wait_all_tasks_blocked()
        assert partition.log.high_watermark == 2
        assert list(got) == ["consumer"]
        answered_at, part = got["consumer"]
        assert answered_at == moved_at  # woken by the HW itself, no timer
        assert [o for o, _, _ in fetched_records(part.records)] == [0, 1]
        # The follower's fetch was neither answered nor read again.
        assert reads[2] == 2
        # New data answers it at once, with the HW it had not been told yet.
        await produce(leader, "iso", 0, records(1, start=2), acks=1)
    answered_at, part = got["follower"]
    assert answered_at == moved_at
    assert [o for o, _, _ in fetched_records(part.records)] == [2]
    assert part.high_watermark == 2
    assert reads[2] == 3


async def test_a_parked_consumer_is_not_woken_by_records_above_the_high_watermark(
    clock: trio.testing.MockClock, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append the ISR does not have yet is invisible to consumers: their parked fetch
    neither answers nor reads again until the HW reaches it (DelayedFetch, HIGH_WATERMARK)."""
    create_topic(server, "above")
    partition = server.broker.topics.get("above").partitions[0]
    partition.replica = ReplicatedPartition(
        partition.log, broker_id=1, on_high_watermark_change=server.broker.notify_append
    )
    partition.replica.make_leader(leader_epoch=1, isr=[1, 2], replicas=[1, 2])
    reads = [0]
    real_read_all = fetch_handler._read_all

    def counting_read_all(ctx: Any, request: FetchRequest, version: int) -> Any:
        reads[0] += 1
        return real_read_all(ctx, request, version)

    monkeypatch.setattr(fetch_handler, "_read_all", counting_read_all)
    request = fetch_request("above", 0, 0, max_wait_ms=500, min_bytes=1)
    async with parked_fetch(server, request, version=12) as (producer, got):
        assert (await produce(producer, "above", 0, records(2), acks=1)).error_code == 0
        await trio.testing.wait_all_tasks_blocked()
        assert got == [] and reads == [1]
        committed_at = trio.current_time()
        follower = await server.connect()
        caught_up = fetch_request("above", 0, 2, max_wait_ms=0)
        caught_up.replica_id = 2
        await follower.request(caught_up, version=12)
    answered_at, part = got[0]
    assert answered_at == committed_at
    assert [o for o, _, _ in fetched_records(part.records)] == [0, 1]


async def test_a_parked_fetch_answers_at_once_when_the_leader_changes(
    clock: trio.testing.MockClock, server: Any
) -> None:
    """DelayedFetch's "no longer the leader" case: LeaderAndIsr making this broker a follower
    wakes the parked fetches (ReplicaManager.makeFollowers), which answer
    NOT_LEADER_OR_FOLLOWER then, not after max_wait_ms, so the client looks for the new leader."""
    create_topic(server, "moved")
    partition = server.broker.topics.get("moved").partitions[0]
    partition.replica = ReplicatedPartition(
        partition.log, broker_id=1, on_high_watermark_change=server.broker.notify_append
    )
    partition.replica.make_leader(leader_epoch=1, isr=[1, 2], replicas=[1, 2])
    request = fetch_request("moved", 0, 0, max_wait_ms=500, min_bytes=1)
    async with parked_fetch(server, request, version=12) as (_, got):
        moved_at = trio.current_time()
        # What ClusterReplicas does on a LeaderAndIsr naming broker 2 the leader.
        partition.replica.make_follower(leader_id=2, leader_epoch=2, isr=[1, 2], replicas=[1, 2])
        server.broker.notify_append(partition)
    answered_at, part = got[0]
    assert answered_at == moved_at
    assert part.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
