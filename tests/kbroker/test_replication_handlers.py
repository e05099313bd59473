"""Leader epochs over the wire: OffsetForLeaderEpoch from the log's epochs, Fetch's epoch checks
and diverging_epoch (KIP-101, KIP-320), follower fetches and high-watermark-bounded reads."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from kbroker.log.leader_epoch import LEADER_EPOCH_FILE
from kbroker.replication.partition import ReplicatedPartition
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import FetchRequest
from tests.kbroker.helpers import (
    LATEST,
    create_topic,
    end_offset,
    epoch_request,
    fetch,
    fetch_request,
    fetched_records,
    list_offset,
    produce,
    produce_request,
    records,
)


def _lead(server: Any, topic: str, *, epoch: int, isr: list[int], replicas: list[int]) -> Any:
    """Make broker 1 the leader of topic-0 at `epoch` (what LeaderAndIsr does in a cluster)."""
    partition = server.broker.topics.get(topic).partitions[0]
    if partition.replica is None:
        partition.replica = ReplicatedPartition(
            partition.log,
            broker_id=1,
            on_high_watermark_change=server.broker.notify_append,
        )
    partition.replica.make_leader(leader_epoch=epoch, isr=isr, replicas=replicas)
    return partition


async def _three_epochs(server: Any, client: Any, topic: str) -> Any:
    """Offsets 0-2 by epoch 0, 3-5 by epoch 2, 6-8 by epoch 5."""
    create_topic(server, topic)
    assert (await produce(client, topic, 0, records(3))).error_code == 0
    _lead(server, topic, epoch=2, isr=[1], replicas=[1])
    assert (await produce(client, topic, 0, records(3, start=3, ts=3_000))).error_code == 0
    partition = _lead(server, topic, epoch=5, isr=[1], replicas=[1])
    assert (await produce(client, topic, 0, records(3, start=6, ts=6_000))).error_code == 0
    return partition


async def test_offset_for_leader_epoch_answers_from_the_epoch_file(server: Any) -> None:
    client = await server.connect()
    partition = await _three_epochs(server, client, "ep")
    assert (partition.log.directory / LEADER_EPOCH_FILE).read_text() == "0\n3\n0 0\n2 3\n5 6\n"
    answers = {}
    for epoch in (0, 1, 2, 3, 5, 6, -1):
        p = await end_offset(client, "ep", epoch, version=4)
        assert p.error_code == 0
        answers[epoch] = (p.leader_epoch, p.end_offset)
    assert answers == {
        0: (0, 3),  # epoch 0 ended where epoch 2 began
        1: (0, 3),  # unknown epoch: the largest one below it
        2: (2, 6),
        3: (2, 6),
        5: (5, 9),  # the current epoch: the log end
        6: (-1, -1),  # newer than any
        -1: (-1, -1),
    }
    # The client's view of the current leader epoch is checked first.
    assert (await end_offset(client, "ep", 2, version=4, current=4)).error_code == (
        ErrorCode.FENCED_LEADER_EPOCH
    )
    assert (await end_offset(client, "ep", 2, version=4, current=6)).error_code == (
        ErrorCode.UNKNOWN_LEADER_EPOCH
    )
    assert (await end_offset(client, "ep", 2, version=4, current=5)).end_offset == 6
    # ListOffsets answers each offset with the epoch that wrote it (KIP-320).
    by_time = await list_offset(client, "ep", 3_000, version=6)
    assert (by_time.offset, by_time.leader_epoch) == (3, 2)
    assert (await list_offset(client, "ep", -2, version=6)).leader_epoch == 0
    assert (await list_offset(client, "ep", LATEST, version=6)).leader_epoch == 5


async def test_a_follower_answers_not_leader(server: Any) -> None:
    client = await server.connect()
    create_topic(server, "fol")
    partition = server.broker.topics.get("fol").partitions[0]
    partition.replica = ReplicatedPartition(partition.log, broker_id=1)
    partition.replica.make_follower(leader_id=2, leader_epoch=1, isr=[1, 2], replicas=[1, 2])
    # A consumer (replica id -1) is sent to the leader; a debugging tool (-2) may ask anyone.
    req = epoch_request("fol", 0, 0)
    req.replica_id = -1
    resp = await client.request(req, version=4)
    assert resp.topics[0].partitions[0].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert (await end_offset(client, "fol", 0, version=4)).error_code == 0
    data = await fetch(client, server, "fol", 0, 0)
    assert data.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    # Nor does it take client writes: only the leader appends.
    for acks in (1, -1):
        answer = await produce(client, "fol", 0, records(1), acks=acks)
        assert answer.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert partition.log.log_end_offset == 0


@pytest.mark.parametrize("version", [9, 12, 17])
async def test_fetch_checks_the_current_leader_epoch(server: Any, version: int) -> None:
    client = await server.connect()
    create_topic(server, "fce")
    await produce(client, "fce", 0, records(2))
    _lead(server, "fce", epoch=3, isr=[1], replicas=[1])

    async def with_epoch(epoch: int) -> Any:
        req_version = version

        def shape(req: FetchRequest) -> FetchRequest:
            req.topics[0].partitions[0].current_leader_epoch = epoch
            return req

        return await _fetch(client, server, "fce", 0, version=req_version, shape=shape)

    assert (await with_epoch(2)).error_code == ErrorCode.FENCED_LEADER_EPOCH
    assert (await with_epoch(4)).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    same = await with_epoch(3)
    assert same.error_code == 0 and len(fetched_records(same.records)) == 2


def _set_replica_id(req: FetchRequest, replica_id: int, version: int) -> None:
    """A follower's fetch: ReplicaState from v15 (KIP-903), ReplicaId before."""
    if version >= 15:
        req.replica_state = FetchRequest.ReplicaState(replica_id=replica_id, replica_epoch=-1)
    else:
        req.replica_id = replica_id


async def _fetch(
    client: Any, server: Any, topic: str, offset: int, *, version: int, shape: Any, **kw: Any
) -> Any:
    """One-partition fetch whose request `shape` may adjust."""
    topic_id = server.broker.topics.get(topic).topic_id if version >= 13 else None
    req = shape(fetch_request(topic, 0, offset, topic_id=topic_id, **kw))
    resp = await client.request(req, version=version)
    (t,) = resp.responses
    (p,) = t.partitions
    return p


@pytest.mark.parametrize("version", [12, 17])
async def test_fetch_reports_a_diverging_epoch(server: Any, version: int) -> None:
    client = await server.connect()
    await _three_epochs(server, client, "div")

    async def fetch_after(last_epoch: int, offset: int) -> Any:
        def shape(req: FetchRequest) -> FetchRequest:
            req.topics[0].partitions[0].last_fetched_epoch = last_epoch
            return req

        return await _fetch(client, server, "div", offset, version=version, shape=shape)

    # A fetcher whose last batch was epoch 0 and that asks for offset 3 is in line.
    ok = await fetch_after(0, 3)
    assert ok.error_code == 0 and ok.diverging_epoch.epoch == -1
    assert [o for o, _, _ in fetched_records(ok.records)][:1] == [3]
    # One that holds epoch-0 records up to offset 4: ours ended epoch 0 at 3.
    div = await fetch_after(0, 5)
    assert div.error_code == 0 and len(div.records or b"") == 0
    assert (div.diverging_epoch.epoch, div.diverging_epoch.end_offset) == (0, 3)
    assert div.high_watermark == 9
    # An epoch we never had (written by a leader we never followed): the largest below it.
    div = await fetch_after(4, 8)
    assert (div.diverging_epoch.epoch, div.diverging_epoch.end_offset) == (2, 6)
    # An epoch newer than any we know cannot be placed.
    assert (await fetch_after(7, 9)).error_code == ErrorCode.OFFSET_OUT_OF_RANGE


async def test_fetch_from_a_broker_that_is_not_a_replica(server: Any) -> None:
    client = await server.connect()
    create_topic(server, "stranger")
    await produce(client, "stranger", 0, records(2))

    def as_replica(epoch: int, version: int) -> Any:
        def shape(req: FetchRequest) -> FetchRequest:
            _set_replica_id(req, 7, version)
            req.topics[0].partitions[0].current_leader_epoch = epoch
            return req

        return shape

    # A single node has no followers; Kafka's followerReplicaOrThrow.
    p = await _fetch(client, server, "stranger", 0, version=12, shape=as_replica(-1, 12))
    assert p.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    p = await _fetch(client, server, "stranger", 0, version=17, shape=as_replica(0, 17))
    assert p.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    _lead(server, "stranger", epoch=1, isr=[1, 2], replicas=[1, 2])
    p = await _fetch(client, server, "stranger", 0, version=17, shape=as_replica(1, 17))
    assert p.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    # Nothing was truncated or hidden by the refused fetches.
    assert server.broker.topics.get("stranger").partitions[0].log.log_end_offset == 2


@pytest.mark.parametrize("version", [11, 15])
async def test_consumers_read_only_up_to_the_high_watermark(server: Any, version: int) -> None:
    client = await server.connect()
    create_topic(server, "hw")
    partition = _lead(server, "hw", epoch=1, isr=[1, 2], replicas=[1, 2])
    assert (await produce(client, "hw", 0, records(4), acks=1)).error_code == 0
    # Written on the leader only: not committed, so not visible.
    data = await fetch(client, server, "hw", 0, 0, version=version)
    assert (data.high_watermark, fetched_records(data.records)) == (0, [])
    assert (await list_offset(client, "hw", LATEST, version=6)).offset == 0

    def as_follower(req: FetchRequest) -> FetchRequest:
        _set_replica_id(req, 2, version)
        return req

    # The follower reads past the high watermark (it must copy everything)...
    copied = await _fetch(client, server, "hw", 0, version=version, shape=as_follower)
    assert len(fetched_records(copied.records)) == 4 and copied.high_watermark == 0

    # ...and its next fetch, at offset 4, commits them; a parked consumer wakes up.
    follower = await server.connect()
    got: list[Any] = []

    async def consume() -> None:
        got.append(await fetch(client, server, "hw", 0, 0, version=version, max_wait_ms=10_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()  # the consumer's fetch is parked
        assert got == []
        start = trio.current_time()
        caught_up = await _fetch(follower, server, "hw", 4, version=version, shape=as_follower)
        assert caught_up.high_watermark == 4
    assert trio.current_time() - start < 5
    assert [o for o, _, _ in fetched_records(got[0].records)] == [0, 1, 2, 3]
    assert partition.log.high_watermark == 4
    assert (await list_offset(client, "hw", LATEST, version=6)).offset == 4


async def test_acks_all_answers_once_the_isr_has_the_batch(server: Any) -> None:
    client = await server.connect()
    create_topic(server, "acks", configs={"min.insync.replicas": "2"})
    partition = _lead(server, "acks", epoch=1, isr=[1, 2], replicas=[1, 2])
    follower = await server.connect()
    answers: list[Any] = []

    async def producer() -> None:
        answers.append(await produce(client, "acks", 0, records(3), acks=-1))

    def as_follower(req: FetchRequest) -> FetchRequest:
        _set_replica_id(req, 2, 12)
        return req

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        # The follower fetches below only once the batch is on the leader (the producer's
        # request may not even have been read yet), and everything has settled before
        # each check that no answer came.
        with trio.fail_after(10):
            while partition.log.log_end_offset < 3:
                await trio.sleep(0.005)
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []  # appended on the leader only
        await _fetch(follower, server, "acks", 0, version=12, shape=as_follower)
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []  # the follower has read it but not confirmed it
        await _fetch(follower, server, "acks", 3, version=12, shape=as_follower)
    assert (answers[0].error_code, answers[0].base_offset) == (0, 0)
    # acks=1 does not wait.
    assert (await produce(client, "acks", 0, records(1), acks=1)).error_code == 0
    # With the ISR down to the leader alone, acks=all is refused before the append...
    partition.replica.make_leader(leader_epoch=1, isr=[1], replicas=[1, 2])
    end = partition.log.log_end_offset
    refused = await produce(client, "acks", 0, records(1), acks=-1)
    assert refused.error_code == ErrorCode.NOT_ENOUGH_REPLICAS
    assert partition.log.log_end_offset == end


async def test_acks_all_times_out_without_the_follower(server: Any) -> None:
    client = await server.connect()
    create_topic(server, "slow")
    _lead(server, "slow", epoch=1, isr=[1, 2], replicas=[1, 2])
    req = produce_request("slow", 0, records(1), acks=-1)
    req.timeout_ms = 200
    resp = await client.request(req)
    assert resp.responses[0].partition_responses[0].error_code == ErrorCode.REQUEST_TIMED_OUT


async def test_a_follower_fetching_past_the_log_end_moves_nothing(server: Any) -> None:
    client = await server.connect()
    create_topic(server, "past")
    partition = _lead(server, "past", epoch=1, isr=[1], replicas=[1, 2])
    assert (await produce(client, "past", 0, records(3), acks=1)).error_code == 0

    def as_follower(req: FetchRequest) -> FetchRequest:
        _set_replica_id(req, 2, 12)
        return req

    p = await _fetch(client, server, "past", 10, version=12, shape=as_follower)
    assert p.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    # The bogus position was not recorded: follower 2 is still unknown and outside the ISR.
    assert partition.replica.followers[2].log_end_offset == -1
    assert partition.replica.isr == [1]
