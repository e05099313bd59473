"""Idempotent producers over the wire: InitProducerId, sequences, epochs, duplicates, restarts."""

from __future__ import annotations

from typing import Any

import pytest

from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import InitProducerIdRequest
from tests.kbroker.helpers import (
    all_values,
    batch,
    create_topic,
    fetch,
    produce,
    records,
)


async def init_pid(client: Any, *, version: int | None = None, **kw: Any) -> Any:
    """InitProducerId for an idempotent (non-transactional) producer."""
    return await client.request(
        InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=-1, **kw),
        version=version,
    )


async def fetched_values(client: Any, server: Any, topic: str) -> list[bytes | None]:
    """Every record value in partition 0, in offset order."""
    part = await fetch(client, server, topic, 0, 0)
    data = bytes(part.records or b"")
    return all_values(data)


async def test_init_producer_id_gives_distinct_ids_epoch_zero(server: Any) -> None:
    async with await server.connect() as c:
        ids = set()
        for version in (0, 2, 3, 4, 5):
            resp = await init_pid(c, version=version)
            assert resp.error_code == ErrorCode.NONE
            assert resp.producer_epoch == 0
            ids.add(resp.producer_id)
        assert len(ids) == 5 and min(ids) >= 0


async def test_in_order_batches_append_and_a_retry_gets_original_offsets(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        pid = (await init_pid(c)).producer_id
        first = await produce(c, "t", 0, batch(pid, 0, 0))
        second = await produce(c, "t", 0, batch(pid, 0, 2))
        assert (first.error_code, first.base_offset) == (0, 0)
        assert (second.error_code, second.base_offset) == (0, 2)
        # The first batch retried (its response was lost): same offsets, nothing written.
        retry = await produce(c, "t", 0, batch(pid, 0, 0))
        assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, 0)
        assert server.broker.topics.partition("t", 0).log.log_end_offset == 4
        assert len(await fetched_values(c, server, "t")) == 4


async def test_only_the_last_five_batches_are_recognised_as_duplicates(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        pid = (await init_pid(c)).producer_id
        for i in range(6):
            assert (await produce(c, "t", 0, batch(pid, 0, 2 * i))).error_code == 0
        # Batch 0 fell out of the window: a resend is out of sequence, not a duplicate.
        old = await produce(c, "t", 0, batch(pid, 0, 0))
        assert old.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        recent = await produce(c, "t", 0, batch(pid, 0, 2))
        assert (recent.error_code, recent.base_offset) == (0, 2)


async def test_sequence_gap_is_out_of_order_and_writes_nothing(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        pid = (await init_pid(c)).producer_id
        await produce(c, "t", 0, batch(pid, 0, 0))
        gap = await produce(c, "t", 0, batch(pid, 0, 5))
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert gap.base_offset == -1
        assert server.broker.topics.partition("t", 0).log.log_end_offset == 2


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(
            [(1, 0, ErrorCode.NONE), (0, 2, ErrorCode.INVALID_PRODUCER_EPOCH)],
            id="older_epoch_is_invalid_producer_epoch",
        ),
        pytest.param(
            [
                (0, 0, ErrorCode.NONE),
                (1, 7, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
                (1, 0, ErrorCode.NONE),
            ],
            id="new_epoch_must_restart_at_sequence_zero",
        ),
    ],
)
async def test_producer_epochs(server: Any, steps: list[tuple[int, int, ErrorCode]]) -> None:
    """Batches of (epoch, base sequence) produced in turn, each answered as given."""
    create_topic(server, "t")
    async with await server.connect() as c:
        pid = (await init_pid(c)).producer_id
        for epoch, sequence, expected in steps:
            resp = await produce(c, "t", 0, batch(pid, epoch, sequence))
            assert resp.error_code == expected, (epoch, sequence)


async def test_unknown_producer_may_start_at_any_sequence(server: Any) -> None:
    # KIP-360 (Kafka 2.5+): no UNKNOWN_PRODUCER_ID; e.g. after its state expired.
    create_topic(server, "t")
    async with await server.connect() as c:
        resp = await produce(c, "t", 0, batch(4242, 3, 17))
        assert (resp.error_code, resp.base_offset) == (ErrorCode.NONE, 0)
        nxt = await produce(c, "t", 0, batch(4242, 3, 19))
        assert nxt.error_code == 0


async def test_sequence_wraps_after_int32_max(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        top = 2**31 - 1
        assert (await produce(c, "t", 0, batch(77, 0, top - 1))).error_code == 0
        wrapped = await produce(c, "t", 0, batch(77, 0, 0))
        assert wrapped.error_code == ErrorCode.NONE


async def test_duplicate_detection_survives_an_unclean_restart(
    make_server: Any, tmp_path: Any
) -> None:
    data = tmp_path / "crash"
    server = await make_server(log_dirs=str(data))
    create_topic(server, "t")
    async with await server.connect() as c:
        pid = (await init_pid(c)).producer_id
        for i in range(3):
            await produce(c, "t", 0, batch(pid, 0, 2 * i))
    # kill -9: descriptors dropped, no clean-shutdown marker, no producer snapshot.
    for part in server.broker.topics.all_partitions():
        part.log.abandon()
    await server.stop()
    server = await make_server(log_dirs=str(data))
    async with await server.connect() as c:
        retry = await produce(c, "t", 0, batch(pid, 0, 4))
        assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, 4)
        gap = await produce(c, "t", 0, batch(pid, 0, 9))
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert len(await fetched_values(c, server, "t")) == 6
        # Producer ids are never handed out twice across restarts.
        assert (await init_pid(c)).producer_id > pid


async def test_idle_producer_state_expires(make_server: Any) -> None:
    now = [1_000_000.0]
    server = await make_server(producer_id_expiration_ms=60_000)
    server.broker.clock = lambda: now[0]
    create_topic(server, "t")
    log = server.broker.topics.partition("t", 0).log
    async with await server.connect() as c:
        await produce(c, "t", 0, batch(5, 0, 0, ts=int(now[0] * 1000)))
        assert log.producer_state.lookup(5) is not None
        now[0] += 3600  # an hour later (past the 10-minute check interval too)
        await produce(c, "t", 0, records(1))  # any produce to the partition runs the check
        await produce(c, "t", 0, records(1))
        assert log.producer_state.lookup(5) is None


async def test_producer_expiry_runs_once_per_check_interval_of_each_partition(
    make_server: Any,
) -> None:
    # Kafka checks every producer.id.expiration.check.interval.ms (10 minutes): an idle
    # producer outlives producer.id.expiration.ms until its partition's next check, and
    # each partition keeps its own schedule from its first produce.
    now = [1_000_000.0]
    server = await make_server(producer_id_expiration_ms=60_000)
    server.broker.clock = lambda: now[0]
    create_topic(server, "t", partitions=2)
    logs = [server.broker.topics.partition("t", i).log for i in (0, 1)]
    async with await server.connect() as c:
        await produce(c, "t", 0, batch(5, 0, 0, ts=int(now[0] * 1000)))
        now[0] += 300  # 5 minutes: idle past expiration, but no check is due
        await produce(c, "t", 1, batch(6, 0, 0, ts=int(now[0] * 1000)))
        await produce(c, "t", 0, records(1))
        assert logs[0].producer_state.lookup(5) is not None
        now[0] += 360  # 11 minutes after partition 0's first produce, 6 after 1's
        await produce(c, "t", 0, records(1))
        await produce(c, "t", 1, records(1))
        assert logs[0].producer_state.lookup(5) is None
        assert logs[1].producer_state.lookup(6) is not None
        now[0] += 300  # 11 minutes after partition 1's first produce
        await produce(c, "t", 1, records(1))
        assert logs[1].producer_state.lookup(6) is None
