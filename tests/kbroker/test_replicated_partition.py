"""ReplicatedPartition: high watermark over the ISR, ISR shrink/expand, acks=all (Kafka's Partition)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from kbroker.errors import KafkaApiError
from kbroker.log import LogConfig, PartitionLog
from kbroker.replication.partition import (
    ISR_CHANGE_PENDING,
    ReplicatedPartition,
    run_isr_expiration,
)
from kbroker.wire.errors import ErrorCode
from tests.log.conftest import batch

LAG_MS = 10_000


@pytest.fixture
def log(tmp_path: Path) -> Iterator[PartitionLog]:
    """A partition log; closed at teardown."""
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    yield log
    log.close()


def _leader(
    log: PartitionLog, isr_changes: list[list[int]], *, min_isr: int = 2
) -> ReplicatedPartition:
    p = ReplicatedPartition(
        log,
        broker_id=1,
        replica_lag_time_max_ms=LAG_MS,
        min_insync_replicas=min_isr,
        on_isr_change=isr_changes.append,
    )
    p.make_leader(leader_epoch=3, isr=[1, 2, 3], replicas=[1, 2, 3])
    return p


def _append(p: ReplicatedPartition, n: int) -> int:
    result = p.log.append(batch(n), leader_epoch=p.leader_epoch)
    p.on_leader_append()
    return result.last_offset + 1


async def test_high_watermark_is_the_smallest_isr_log_end(log: PartitionLog) -> None:
    p = _leader(log, [])
    end = _append(p, 5)
    # Appended, but no follower has it: consumers must not see it yet.
    assert p.high_watermark == log.high_watermark == 0
    p.on_follower_fetch(2, 5)
    assert p.high_watermark == 0  # follower 3's log end is still unknown
    p.on_follower_fetch(3, 2)
    assert p.high_watermark == 2
    p.on_follower_fetch(3, end)
    assert p.high_watermark == end == 5
    # A follower fetching from an older offset (it truncated) never moves the HW back.
    p.on_follower_fetch(3, 1)
    assert p.high_watermark == 5
    # The new epoch starts at the LEO the leader had when it took over.
    assert log.leader_epochs.entries() == [(3, 0)]


async def test_fetches_from_strangers_and_on_followers_are_refused(log: PartitionLog) -> None:
    p = _leader(log, [])
    with pytest.raises(KafkaApiError) as info:
        p.on_follower_fetch(9, 0)
    assert info.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    p.make_follower(leader_id=2, leader_epoch=4, isr=[1, 2, 3], replicas=[1, 2, 3])
    with pytest.raises(KafkaApiError):
        p.on_follower_fetch(2, 0)


async def test_a_lagging_follower_leaves_the_isr_and_rejoins(
    log: PartitionLog, autojump_clock: trio.testing.MockClock
) -> None:
    changes: list[list[int]] = []
    p = _leader(log, changes)
    end = _append(p, 4)
    p.on_follower_fetch(2, end)
    p.on_follower_fetch(3, end)
    assert p.high_watermark == 4
    await trio.sleep(LAG_MS / 2000)
    assert p.maybe_shrink_isr() == []  # caught up recently enough
    end = _append(p, 4)
    # Follower 2 keeps up; follower 3 stops fetching.
    for _ in range(4):
        await trio.sleep(LAG_MS / 4000)
        p.on_follower_fetch(2, end)
    assert p.high_watermark == 4  # 3 holds it back while in the ISR
    await trio.sleep(LAG_MS / 1000)
    p.on_follower_fetch(2, end)
    assert p.maybe_shrink_isr() == [3]
    assert p.isr == [1, 2] and changes == [[1, 2]]
    assert p.high_watermark == 8  # now only 1 and 2 count
    # 3 comes back: it rejoins only once it reaches the HW.
    p.on_follower_fetch(3, 6)
    assert p.isr == [1, 2]
    p.on_follower_fetch(3, 8)
    assert p.isr == [1, 2, 3] and changes == [[1, 2], [1, 2, 3]]


async def test_a_refused_isr_change_keeps_the_isr(
    log: PartitionLog, autojump_clock: trio.testing.MockClock
) -> None:
    p = _leader(log, [])
    p.on_isr_change = lambda isr: False  # e.g. the ZooKeeper write lost a race
    _append(p, 1)
    await trio.sleep(2 * LAG_MS / 1000)
    assert p.maybe_shrink_isr() == []
    assert p.isr == [1, 2, 3]


async def test_a_pending_shrink_holds_the_high_watermark_until_committed(
    log: PartitionLog, autojump_clock: trio.testing.MockClock
) -> None:
    # Cluster mode: the shrink is written to ZooKeeper first. Until it is, the controller
    # may still elect the dropped follower, so the HW must not pass what it has.
    requested: list[list[int]] = []

    def persist_later(isr: list[int]) -> str:
        requested.append(isr)
        return ISR_CHANGE_PENDING

    p = _leader(log, [])
    p.on_isr_change = persist_later
    end = _append(p, 2)
    p.on_follower_fetch(2, end)
    p.on_follower_fetch(3, end)
    end = _append(p, 3)
    await trio.sleep(2 * LAG_MS / 1000)
    p.on_follower_fetch(2, end)  # 3 stopped fetching
    assert p.maybe_shrink_isr() == []
    assert requested == [[1, 2]] and p.isr == [1, 2, 3]
    assert p.high_watermark == 2  # still waiting for 3
    assert p.maybe_shrink_isr() == [] and len(requested) == 1  # one change at a time
    p.complete_isr_change([1, 2], committed=False)  # ZooKeeper refused it
    assert p.isr == [1, 2, 3] and p.high_watermark == 2
    p.maybe_shrink_isr()
    p.complete_isr_change([1, 2], committed=True)
    assert p.isr == [1, 2] and p.high_watermark == end


@asynccontextmanager
async def waiting_producer(
    p: ReplicatedPartition, end: int, timeout: float
) -> AsyncIterator[list[ErrorCode]]:
    """An acks=all producer waiting (in the background) for offsets up to ``end``; its
    answer lands in the list. Leaving waits for the answer."""
    results: list[ErrorCode] = []

    async def produce() -> None:
        results.append(await p.wait_for_acks(end, timeout))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        yield results


async def test_acks_all_waits_for_every_isr_member(
    log: PartitionLog, autojump_clock: trio.testing.MockClock
) -> None:
    p = _leader(log, [])
    p.check_enough_replicas()
    end = _append(p, 3)
    async with waiting_producer(p, end, 30.0) as results:
        await trio.sleep(1)
        p.on_follower_fetch(2, end)
        await trio.sleep(1)
        assert results == []  # follower 3 does not have it yet
        p.on_follower_fetch(3, end)
    assert results == [ErrorCode.NONE]
    assert trio.current_time() < 3


async def test_acks_all_times_out(
    log: PartitionLog, autojump_clock: trio.testing.MockClock
) -> None:
    p = _leader(log, [])
    end = _append(p, 1)
    start = trio.current_time()
    assert await p.wait_for_acks(end, 5.0) == ErrorCode.REQUEST_TIMED_OUT
    assert trio.current_time() - start == pytest.approx(5.0)


async def test_not_enough_replicas_before_and_after_the_append(
    log: PartitionLog, autojump_clock: trio.testing.MockClock
) -> None:
    p = _leader(log, [], min_isr=3)
    end = _append(p, 2)
    p.on_follower_fetch(2, end)
    async with waiting_producer(p, end, 60.0) as results:
        # Follower 3 stops; after replica.lag.time.max.ms it leaves the ISR, the HW
        # moves, and the waiting producer learns the ISR is now too small.
        await trio.sleep(2 * LAG_MS / 1000)
        p.on_follower_fetch(2, end)
        assert p.maybe_shrink_isr() == [3]
    assert results == [ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND]
    # The next acks=all produce is refused before anything is written.
    with pytest.raises(KafkaApiError) as info:
        p.check_enough_replicas()
    assert info.value.code == ErrorCode.NOT_ENOUGH_REPLICAS


async def test_a_leader_alone_commits_at_once(log: PartitionLog) -> None:
    p = ReplicatedPartition(log, broker_id=1)
    p.make_leader(leader_epoch=0, isr=[1], replicas=[1])
    end = _append(p, 3)
    assert p.high_watermark == end
    assert await p.wait_for_acks(end, 0) == ErrorCode.NONE


async def test_losing_the_leadership_releases_waiting_producers(
    log: PartitionLog, autojump_clock: trio.testing.MockClock
) -> None:
    p = _leader(log, [])
    end = _append(p, 1)
    async with waiting_producer(p, end, 30.0) as results:
        await trio.sleep(1)
        p.make_follower(leader_id=2, leader_epoch=4, isr=[2, 3], replicas=[1, 2, 3])
    assert results == [ErrorCode.NOT_LEADER_OR_FOLLOWER]
    assert trio.current_time() < 2


async def test_follower_high_watermark_follows_the_leader(log: PartitionLog) -> None:
    p = ReplicatedPartition(log, broker_id=2)
    p.make_follower(leader_id=1, leader_epoch=0, isr=[1, 2], replicas=[1, 2])
    log.append(batch(4))
    p.update_follower_high_watermark(10)  # the leader is ahead: no further than our own end
    assert p.high_watermark == 4
    p.update_follower_high_watermark(2)
    assert p.high_watermark == 2


async def test_a_restarted_replica_starts_from_its_checkpointed_high_watermark(
    log: PartitionLog, tmp_path: Path
) -> None:
    log.append(batch(5))
    p = ReplicatedPartition(log, broker_id=2, high_watermark=3)
    assert p.high_watermark == 3  # not the LEO: offsets 3-4 may not be on the other replicas
    p = ReplicatedPartition(log, broker_id=2, high_watermark=10)
    assert p.high_watermark == 5  # never above its own log end
    other = PartitionLog.open(tmp_path / "t-1", LogConfig())
    other.append(batch(5))
    assert ReplicatedPartition(other, broker_id=2).high_watermark == 0  # no checkpoint
    other.close()


async def test_the_isr_expiration_task_shrinks_without_any_request(
    log: PartitionLog, autojump_clock: trio.testing.MockClock
) -> None:
    changes: list[list[int]] = []
    p = _leader(log, changes)
    _append(p, 1)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(run_isr_expiration, lambda: [p], replica_lag_time_max_ms=LAG_MS)
        )
        # Nobody fetches: within lag + one check interval both followers are out.
        await trio.sleep(LAG_MS / 1000 * 1.5 + 0.1)
        assert changes == [[1]]
        nursery.cancel_scope.cancel()
    assert p.high_watermark == 1
