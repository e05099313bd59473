"""A follower's fetcher between two in-process brokers: byte-identical copies, truncation by
leader epochs before fetching (KIP-101/KIP-279), the ISR and acks=all through real fetches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from kbroker.log.leader_epoch import LEADER_EPOCH_FILE
from kbroker.replication.fetcher import FetcherConfig, ReplicaFetcherManager
from kbroker.replication.partition import ReplicatedPartition
from kbroker.wire.records import build_control_batch
from tests.kbroker.helpers import create_topic, produce, records

LEADER, FOLLOWER = 1, 2


async def _wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def _pair(
    make_server: Any, topic: str, configs: dict[str, str] | None = None
) -> tuple[Any, Any]:
    """A leader and a follower broker, each with the one-partition ``topic``."""
    leader, follower = await make_server(), await make_server()
    for s in (leader, follower):
        create_topic(s, topic, configs=configs)
    return leader, follower


def _partition(server: Any, topic: str) -> Any:
    return server.broker.topics.get(topic).partitions[0]


def _make_leader(server: Any, topic: str, *, epoch: int, isr: list[int]) -> Any:
    """What LeaderAndIsr does on the leader (the broker's wiring will do this)."""
    p = _partition(server, topic)
    if p.replica is None:
        p.replica = ReplicatedPartition(
            p.log, broker_id=LEADER, on_high_watermark_change=server.broker.notify_append
        )
    p.replica.make_leader(leader_epoch=epoch, isr=isr, replicas=[LEADER, FOLLOWER])
    return p


async def _leading(
    make_server: Any,
    topic: str,
    *,
    epoch: int,
    isr: list[int] | None = None,
    configs: dict[str, str] | None = None,
) -> tuple[Any, Any, Any, Any]:
    """A leader and a follower broker with ``topic`` (see ``_pair``), the leader leading
    it at ``epoch`` with ``isr`` (itself alone by default): (leader, follower, the
    leader's partition, a client of the leader)."""
    leader, follower = await _pair(make_server, topic, configs)
    lp = _make_leader(leader, topic, epoch=epoch, isr=isr or [LEADER])
    return leader, follower, lp, await leader.connect()


async def _follow(
    nursery: trio.Nursery, follower: Any, leader: Any, topic: str, *, epoch: int
) -> ReplicaFetcherManager:
    """The test hook: tell `follower` to follow `leader` for topic-0 at `epoch`."""
    p = _partition(follower, topic)
    p.replica = ReplicatedPartition(p.log, broker_id=FOLLOWER)
    p.replica.make_follower(
        leader_id=LEADER, leader_epoch=epoch, isr=[LEADER], replicas=[LEADER, FOLLOWER]
    )
    manager = ReplicaFetcherManager(
        broker_id=FOLLOWER,
        config=FetcherConfig(fetch_wait_max_ms=200, fetch_backoff_ms=50),
        on_append=follower.broker.notify_append,
    )
    await nursery.start(manager.run)
    manager.add_fetcher_for_partitions([(p, LEADER, leader.address, epoch)])
    return manager


def _all_bytes(p: Any) -> bytes:
    log = p.log
    return log.read(log.log_start_offset, 1 << 30).read_bytes()


async def test_follower_copies_the_leader_byte_for_byte(
    make_server: Any, nursery: trio.Nursery
) -> None:
    leader, follower, lp, client = await _leading(make_server, "copy", epoch=1)
    assert (await produce(client, "copy", 0, records(3), acks=1)).error_code == 0
    # An idempotent producer's batch, a transaction and its abort marker, a new epoch.
    lp.log.append(records(2, producer_id=9, producer_epoch=0, base_sequence=0), leader_epoch=1)
    lp.log.append(
        records(2, producer_id=10, producer_epoch=3, base_sequence=0, transactional=True),
        leader_epoch=1,
    )
    lp.log.append(
        build_control_batch(
            commit=False, producer_id=10, producer_epoch=3, coordinator_epoch=0, timestamp=5
        ),
        leader_epoch=1,
    )
    lp.replica.make_leader(leader_epoch=3, isr=[LEADER], replicas=[LEADER, FOLLOWER])
    assert (await produce(client, "copy", 0, records(4), acks=1)).error_code == 0
    leader.broker.notify_append()
    fp = _partition(follower, "copy")
    await _follow(nursery, follower, leader, "copy", epoch=3)
    await _wait_until(lambda: fp.log.log_end_offset == lp.log.log_end_offset == 12)
    assert _all_bytes(fp) == _all_bytes(lp)
    # It caught up, so it joined the ISR, and every offset is committed on both.
    await _wait_until(lambda: lp.replica.isr == [LEADER, FOLLOWER])
    await _wait_until(lambda: fp.log.high_watermark == lp.log.high_watermark == 12)
    assert (fp.log.directory / LEADER_EPOCH_FILE).read_text() == (
        lp.log.directory / LEADER_EPOCH_FILE
    ).read_text()
    assert fp.log.leader_epochs.entries() == [(1, 0), (3, 8)]
    assert fp.log.producer_state.to_json() == lp.log.producer_state.to_json()
    assert [a.producer_id for a in fp.log.aborted_transactions(0, 12)] == [10]
    # New records keep flowing while it follows.
    assert (await produce(client, "copy", 0, records(2), acks=1)).error_code == 0
    await _wait_until(lambda: fp.log.log_end_offset == 14)
    assert _all_bytes(fp) == _all_bytes(lp)


async def test_acks_all_is_answered_when_the_follower_has_the_batch(
    make_server: Any, nursery: trio.Nursery
) -> None:
    leader, follower, lp, client = await _leading(
        make_server, "acks", epoch=0, isr=[LEADER, FOLLOWER], configs={"min.insync.replicas": "2"}
    )
    await _follow(nursery, follower, leader, "acks", epoch=0)
    for i in range(5):
        with trio.fail_after(10):
            answer = await produce(client, "acks", 0, records(2, start=2 * i), acks=-1)
        assert (answer.error_code, answer.base_offset) == (0, 2 * i)
        # Answered only once the follower had it: it is in the follower's log.
        assert _partition(follower, "acks").log.log_end_offset >= 2 * i + 2
    assert lp.log.high_watermark == 10


async def test_follower_truncates_a_divergent_tail_before_fetching(
    make_server: Any, nursery: trio.Nursery
) -> None:
    leader, follower = await _pair(make_server, "div")
    lp, fp = _partition(leader, "div"), _partition(follower, "div")
    # Both have offsets 0-2 of epoch 0. Then the follower, briefly leader in epochs 1
    # and 3, wrote offsets 3-4 and 5-6 nobody else got; the leader wrote 3-5 in epoch
    # 2 and 6-9 in epoch 4.
    lp.log.append(records(3), leader_epoch=0)
    fp.log.append_as_follower(_all_bytes(lp))
    fp.log.append(records(2, start=100), leader_epoch=1)
    fp.log.append(records(2, start=200), leader_epoch=3)
    lp.log.append(records(3, start=3), leader_epoch=2)
    lp.log.append(records(4, start=6), leader_epoch=4)
    _make_leader(leader, "div", epoch=4, isr=[LEADER])
    asked: list[tuple[int, int]] = []
    manager = await _follow(nursery, follower, leader, "div", epoch=4)
    fetcher = manager.fetchers[LEADER]
    original = fetcher._apply_truncation

    def spy(key: Any, state: Any, epoch: int, end: int) -> None:
        asked.append((epoch, end))
        original(key, state, epoch, end)

    fetcher._apply_truncation = spy  # type: ignore[method-assign]
    await _wait_until(lambda: fp.log.log_end_offset == lp.log.log_end_offset == 10)
    # Asked for epoch 3: the leader's epoch 2 ends at 6, ours at 5 -> cut to 5, ask
    # again for epoch 1: the leader's epoch 0 ends at 3 -> cut to 3, then fetch.
    assert asked == [(2, 6), (0, 3)]
    assert _all_bytes(fp) == _all_bytes(lp)
    assert fp.log.leader_epochs.entries() == [(0, 0), (2, 3), (4, 6)]


async def test_follower_behind_the_leaders_log_start_starts_over_there(
    make_server: Any, nursery: trio.Nursery
) -> None:
    leader, follower, lp, client = await _leading(make_server, "gone", epoch=0)
    for i in range(4):
        assert (await produce(client, "gone", 0, records(2, start=2 * i), acks=1)).error_code == 0
    lp.log.delete_records_before(5)  # DeleteRecords: offsets below 5 are gone
    fp = _partition(follower, "gone")
    await _follow(nursery, follower, leader, "gone", epoch=0)
    await _wait_until(lambda: fp.log.log_end_offset == 8)
    assert fp.log.log_start_offset >= 4
    assert fp.log.read(6, 1 << 20).read_bytes() == lp.log.read(6, 1 << 20).read_bytes()


async def test_fetcher_moves_to_a_restarted_leader_and_resumes(
    make_server: Any, nursery: trio.Nursery
) -> None:
    leader, follower, _, client = await _leading(make_server, "restart", epoch=0)
    assert (await produce(client, "restart", 0, records(3), acks=1)).error_code == 0
    fp = _partition(follower, "restart")
    manager = await _follow(nursery, follower, leader, "restart", epoch=0)
    await _wait_until(lambda: fp.log.log_end_offset == 3)
    # The leader goes down (the fetcher's connection breaks) and comes back on a new
    # port with the same data, leading at a new epoch.
    await client.aclose()
    await leader.stop()
    leader = await make_server(log_dirs=leader.config["log.dirs"])
    lp = _make_leader(leader, "restart", epoch=1, isr=[LEADER])
    client = await leader.connect()
    assert (await produce(client, "restart", 0, records(2, start=3), acks=1)).error_code == 0
    fp.replica.make_follower(
        leader_id=LEADER, leader_epoch=1, isr=[LEADER], replicas=[LEADER, FOLLOWER]
    )
    manager.add_fetcher_for_partitions([(fp, LEADER, leader.address, 1)])
    await _wait_until(lambda: fp.log.log_end_offset == 5)
    assert _all_bytes(fp) == _all_bytes(lp)
    assert manager.fetchers[LEADER].address == leader.address
    await _wait_until(lambda: lp.replica.isr == [LEADER, FOLLOWER])


def test_fetcher_settings_come_from_the_broker_config() -> None:
    from kbroker.config import BrokerConfig

    config = BrokerConfig.from_properties(
        {"replica.fetch.wait.max.ms": "250", "replica.fetch.max.bytes": "4096"}
    )
    settings = FetcherConfig.from_broker_config(config)
    assert (settings.fetch_wait_max_ms, settings.fetch_max_bytes) == (250, 4096)
    assert settings.fetch_backoff_ms == 1000  # Kafka's default where the broker has no key
