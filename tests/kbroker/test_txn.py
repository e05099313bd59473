"""Transactions over the wire: coordinator APIs, markers, LSO, read_committed, recovery."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AddPartitionsToTxnRequest,
    DescribeProducersRequest,
    DescribeTransactionsRequest,
    FindCoordinatorRequest,
    InitProducerIdRequest,
    ListTransactionsRequest,
)
from tests.kbroker.helpers import all_values, create_topic, fetch, join
from tests.kbroker.txn_helpers import (
    TID,
    add,
    add_offsets,
    committed,
    end,
    init,
    latest,
    marker_request,
    tx_produce,
    txn_batch,
    txn_commit_offset,
    write_marker,
)

# Small internal topics keep each test's broker start cheap.
SMALL = {"transaction_state_log_num_partitions": 2, "offsets_topic_num_partitions": 2}


@pytest.fixture
async def server(make_server: Any) -> Any:
    """A broker with 2-partition internal topics."""
    return await make_server(**SMALL)


async def begin(c: Any, **kw: Any) -> tuple[int, int]:
    """A transactional producer's InitProducerId (see ``init``): its id and epoch."""
    r = await init(c, **kw)
    assert r.error_code == 0, r
    return r.producer_id, r.producer_epoch


async def add_and_produce(c: Any, pid: int, epoch: int, seq: int, topic: str = "t") -> None:
    """Add ``topic``-0 to the transaction and write a two-record transactional batch there."""
    await add(c, pid, epoch, [(topic, 0)])
    await tx_produce(c, topic, txn_batch(pid, epoch, seq))


async def server_on_disk(make_server: Any, tmp_path: Any) -> tuple[Any, Any]:
    """A broker with topic t whose data dir (returned too) outlives it: for crash_and_restart."""
    data = tmp_path / "crash"
    server = await make_server(log_dirs=str(data), **SMALL)
    create_topic(server, "t")
    return server, data


async def crash_and_restart(server: Any, make_server: Any, data: Any) -> Any:
    """Stop ``server`` as kill -9 would (no clean-shutdown marker); a new one on its data."""
    for part in server.broker.topics.all_partitions():
        part.log.abandon()
    await server.stop()
    return await make_server(log_dirs=str(data), **SMALL)


async def test_find_coordinator_for_a_transactional_id(server: Any) -> None:
    async with await server.connect() as c:
        resp = await c.request(FindCoordinatorRequest(key=TID, key_type=1), version=3)
        assert resp.error_code == 0 and resp.node_id == server.broker.node_id


async def test_commit_makes_records_visible_to_read_committed(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        r = await init(c)
        assert r.error_code == 0 and r.producer_epoch == 0
        pid, epoch = r.producer_id, r.producer_epoch
        assert await add(c, pid, epoch, [("t", 0)]) == {("t", 0): 0}
        assert (await tx_produce(c, "t", txn_batch(pid, epoch, 0))).error_code == 0
        # Open transaction: the LSO stays at its first offset.
        assert await latest(c, "t", 1) == 0
        assert await latest(c, "t", 0) == 2
        part = await fetch(c, server, "t", 0, 0, isolation_level=1)
        assert part.last_stable_offset == 0 and part.high_watermark == 2
        assert not part.records
        assert await end(c, pid, epoch, True) == 0
        assert await latest(c, "t", 1) == 3  # two records + the COMMIT marker
        part = await fetch(c, server, "t", 0, 0, isolation_level=1)
        assert part.last_stable_offset == 3 and part.aborted_transactions == []
        assert all_values(bytes(part.records))[:2] == [b"v0", b"v1"]  # then the marker


async def test_abort_is_listed_for_read_committed_fetches(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        pid, epoch = await begin(c)
        await add_and_produce(c, pid, epoch, 0)
        assert await end(c, pid, epoch, False) == 0
        await add_and_produce(c, pid, epoch, 2)
        assert await end(c, pid, epoch, True) == 0
        part = await fetch(c, server, "t", 0, 0, isolation_level=1)
        assert [(a.producer_id, a.first_offset) for a in part.aborted_transactions] == [(pid, 0)]
        uncommitted = await fetch(c, server, "t", 0, 0, isolation_level=0)
        assert uncommitted.aborted_transactions is None
        # Fetching past the aborted range no longer lists it.
        later = await fetch(c, server, "t", 0, 3, isolation_level=1)
        assert later.aborted_transactions == []


async def test_end_txn_state_errors(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        pid, epoch = await begin(c)
        assert await end(c, pid, epoch, True) == ErrorCode.INVALID_TXN_STATE  # nothing begun
        await add(c, pid, epoch, [("t", 0)])
        assert await end(c, pid, epoch + 1, True) == ErrorCode.PRODUCER_FENCED
        assert await end(c, pid, epoch + 1, True, version=1) == ErrorCode.INVALID_PRODUCER_EPOCH
        assert await end(c, pid + 1, epoch, True) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
        assert await end(c, pid, epoch, True) == 0
        assert await end(c, pid, epoch, True) == 0  # a retried commit
        assert await end(c, pid, epoch, False) == ErrorCode.INVALID_TXN_STATE


async def test_invalid_timeout_and_unknown_partition(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        r = await init(c, timeout_ms=900_001)
        assert r.error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT
        r = await init(c)
        codes = await add(c, r.producer_id, r.producer_epoch, [("t", 0), ("nope", 0)])
        assert codes == {
            ("t", 0): ErrorCode.OPERATION_NOT_ATTEMPTED,
            ("nope", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        }


async def test_transactional_write_to_partition_not_added_is_refused(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        r = await init(c)
        resp = await tx_produce(c, "t", txn_batch(r.producer_id, r.producer_epoch, 0))
        assert resp.error_code == ErrorCode.INVALID_TXN_STATE
        assert server.broker.topics.partition("t", 0).log.log_end_offset == 0


async def test_new_instance_fences_zombie_and_aborts_its_transaction(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        old = await init(c)
        pid, e0 = old.producer_id, old.producer_epoch
        await add_and_produce(c, pid, e0, 0)
        # Kafka's TransactionCoordinator: the open transaction is aborted under a fenced
        # epoch and the new instance is told to retry; the retry gets the epoch after it.
        first = await init(c)
        assert first.error_code == ErrorCode.CONCURRENT_TRANSACTIONS
        new = await init(c)
        assert (new.error_code, new.producer_id, new.producer_epoch) == (0, pid, e0 + 2)
        # The zombie's writes and commit are refused.
        zombie = await tx_produce(c, "t", txn_batch(pid, e0, 2))
        assert zombie.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
        create_topic(server, "other")  # a partition the zombie never wrote to
        assert (
            await tx_produce(c, "other", txn_batch(pid, e0, 0))
        ).error_code == ErrorCode.INVALID_PRODUCER_EPOCH
        assert await end(c, pid, e0, True) == ErrorCode.PRODUCER_FENCED
        # Its open transaction was aborted: read_committed sees it aborted, LSO moved on.
        part = await fetch(c, server, "t", 0, 0, isolation_level=1)
        assert [a.first_offset for a in part.aborted_transactions] == [0]
        assert part.last_stable_offset == part.high_watermark == 3


async def test_kip360_init_with_current_epoch_bumps_and_stale_epoch_is_fenced(server: Any) -> None:
    async with await server.connect() as c:
        pid, e = await begin(c)
        again = await init(c, producer_id=pid, producer_epoch=e)
        assert (again.error_code, again.producer_id, again.producer_epoch) == (0, pid, e + 1)
        stale = await init(c, producer_id=pid, producer_epoch=e - 5 if e >= 5 else 99)
        assert stale.error_code == ErrorCode.PRODUCER_FENCED
        old_version = await c.request(
            InitProducerIdRequest(
                transactional_id=TID,
                transaction_timeout_ms=60_000,
                producer_id=pid,
                producer_epoch=99,
            ),
            version=3,
        )
        assert old_version.error_code == ErrorCode.INVALID_PRODUCER_EPOCH


async def test_transaction_timeout_aborts_and_fences(make_server: Any) -> None:
    now = [1_000.0]
    server = await make_server(**SMALL)
    server.broker.clock = lambda: now[0]
    create_topic(server, "t")
    async with await server.connect() as c:
        pid, e = await begin(c, timeout_ms=10_000)
        await add_and_produce(c, pid, e, 0)
        now[0] += 11
        # A read_committed fetch observes the expired transaction and aborts it.
        part = await fetch(c, server, "t", 0, 0, isolation_level=1)
        assert part.last_stable_offset == part.high_watermark == 3
        assert [a.producer_id for a in part.aborted_transactions] == [pid]
        assert await end(c, pid, e, True) == ErrorCode.PRODUCER_FENCED


async def test_txn_offset_commit_visible_only_after_commit(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        pid, e = await begin(c)
        # Without AddOffsetsToTxn the group is not part of the transaction.
        assert await txn_commit_offset(c, pid, e, 5) == ErrorCode.INVALID_TXN_STATE
        assert await add_offsets(c, pid, e) == 0
        assert await txn_commit_offset(c, pid, e, 5) == 0
        assert await committed(c) == -1
        assert await end(c, pid, e, False) == 0
        assert await committed(c) == -1  # aborted: never visible
        await add_offsets(c, pid, e)
        assert await txn_commit_offset(c, pid, e, 7) == 0
        assert await end(c, pid, e, True) == 0
        assert await committed(c) == 7


async def test_describe_and_list_transactions_and_producers(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        pid, e = await begin(c)
        await add_and_produce(c, pid, e, 0)
        d = await c.request(DescribeTransactionsRequest(transactional_ids=[TID, "unknown"]))
        known, unknown = d.transaction_states
        assert (known.transaction_state, known.producer_id) == ("Ongoing", pid)
        assert [(t.topic, t.partitions) for t in known.topics] == [("t", [0])]
        assert unknown.error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
        lst = await c.request(ListTransactionsRequest(state_filters=["Ongoing", "Bogus"]))
        assert [s.transactional_id for s in lst.transaction_states] == [TID]
        assert lst.unknown_state_filters == ["Bogus"]
        p = await c.request(
            DescribeProducersRequest(
                topics=[DescribeProducersRequest.TopicRequest(name="t", partition_indexes=[0])]
            )
        )
        (active,) = p.topics[0].partitions[0].active_producers
        assert (active.producer_id, active.last_sequence, active.current_txn_start_offset) == (
            pid,
            1,
            0,
        )


async def test_open_and_prepared_state_survive_an_unclean_restart(
    make_server: Any, tmp_path: Any
) -> None:
    server, data = await server_on_disk(make_server, tmp_path)
    async with await server.connect() as c:
        pid, e = await begin(c)
        await add_and_produce(c, pid, e, 0)
    server = await crash_and_restart(server, make_server, data)
    async with await server.connect() as c:
        # The open transaction is still open (LSO held) and can be committed.
        assert await latest(c, "t", 1) == 0
        assert await end(c, pid, e, True) == 0
        assert await latest(c, "t", 1) == 3
        # And an abort's index entry survives a crash too.
        await add_and_produce(c, pid, e, 2)
        assert await end(c, pid, e, False) == 0
    server = await crash_and_restart(server, make_server, data)
    async with await server.connect() as c:
        part = await fetch(c, server, "t", 0, 0, isolation_level=1)
        assert [a.first_offset for a in part.aborted_transactions] == [3]
        assert part.last_stable_offset == 6


async def test_add_partitions_v4_batched_and_verify_only(server: Any) -> None:
    create_topic(server, "t", partitions=2)
    async with await server.connect() as c:
        a = await init(c, tid="a")
        b = await init(c, tid="b")
        Rq = AddPartitionsToTxnRequest
        T = Rq.AddPartitionsToTxnTopic

        def txn(tid: str, r: Any, parts: list[int], verify: bool = False) -> Any:
            return Rq.AddPartitionsToTxnTransaction(
                transactional_id=tid,
                producer_id=r.producer_id,
                producer_epoch=r.producer_epoch,
                verify_only=verify,
                topics=[T(name="t", partitions=parts)],
            )

        resp = await c.request(Rq(transactions=[txn("a", a, [0]), txn("b", b, [1])]), version=4)
        assert resp.error_code == 0
        codes = {
            t.transactional_id: [
                (p.partition_index, p.partition_error_code)
                for tr in t.topic_results
                for p in tr.results_by_partition
            ]
            for t in resp.results_by_transaction
        }
        assert codes == {"a": [(0, 0)], "b": [(1, 0)]}
        verify = await c.request(Rq(transactions=[txn("a", a, [0, 1], verify=True)]), version=5)
        (result,) = verify.results_by_transaction
        got = [
            (p.partition_index, p.partition_error_code)
            for tr in result.topic_results
            for p in tr.results_by_partition
        ]
        assert got == [(0, ErrorCode.NONE), (1, ErrorCode.INVALID_TXN_STATE)]
        # Verify-only added nothing.
        d = await c.request(DescribeTransactionsRequest(transactional_ids=["a"]))
        assert [t.partitions for t in d.transaction_states[0].topics] == [[0]]


async def test_write_txn_markers_for_tools(server: Any) -> None:
    create_topic(server, "t")
    async with await server.connect() as c:
        # A hanging transaction (its coordinator lost it), written straight to the log.
        server.broker.topics.partition("t", 0).log.append(txn_batch(900, 0, 0))
        assert await latest(c, "t", 1) == 0
        resp = await c.request(
            marker_request(900, 0, commit=False, coordinator_epoch=0, partitions=(0, 5))
        )
        codes = [(p.partition_index, p.error_code) for p in resp.markers[0].topics[0].partitions]
        assert codes == [(0, 0), (5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
        assert await latest(c, "t", 1) == 3


async def _producer_on(c: Any, pid: int) -> Any:
    """DescribeProducers' view of producer ``pid`` on "t"-0."""
    d = await c.request(
        DescribeProducersRequest(
            topics=[DescribeProducersRequest.TopicRequest(name="t", partition_indexes=[0])]
        )
    )
    (found,) = [p for p in d.topics[0].partitions[0].active_producers if p.producer_id == pid]
    return found


async def test_a_marker_from_an_older_coordinator_epoch_is_fenced_and_writes_nothing(
    server: Any,
) -> None:
    # ProducerAppendInfo.appendEndTxnMarker: the producer's last marker came from
    # coordinator epoch 5, so one from epoch 4 is a zombie coordinator's.
    create_topic(server, "t")
    log = server.broker.topics.partition("t", 0).log
    async with await server.connect() as c:
        log.append(txn_batch(900, 0, 0))  # 0-1
        written = await write_marker(c, 900, 0, commit=False, coordinator_epoch=5)  # 2
        assert written == ErrorCode.NONE
        log.append(txn_batch(900, 0, 2))  # 3-4: the next transaction, open
        assert (await _producer_on(c, 900)).coordinator_epoch == 5
        stale = await write_marker(c, 900, 0, commit=True, coordinator_epoch=4)
        assert stale == ErrorCode.TRANSACTION_COORDINATOR_FENCED
        # Nothing written: the transaction is still open, read_committed stops before it.
        assert log.log_end_offset == 5 and await latest(c, "t", 1) == 3
        assert (await _producer_on(c, 900)).current_txn_start_offset == 3
        # The current coordinator's marker (same or newer epoch) ends it.
        current = await write_marker(c, 900, 0, commit=True, coordinator_epoch=5)
        assert current == ErrorCode.NONE
        assert log.log_end_offset == 6 and await latest(c, "t", 1) == 6


async def test_a_single_nodes_markers_carry_its_leader_epoch(server: Any) -> None:
    # A single node leads every partition at leader epoch 0: its coordinator's epoch.
    create_topic(server, "t")
    async with await server.connect() as c:
        pid, e = await begin(c)
        await add_and_produce(c, pid, e, 0)
        assert (await _producer_on(c, pid)).coordinator_epoch == -1  # no marker yet
        assert await end(c, pid, e, True) == ErrorCode.NONE
        assert (await _producer_on(c, pid)).coordinator_epoch == 0
        assert server.broker.topics.partition("t", 0).leader_epoch == 0


async def test_transactional_id_expires_after_idle_period(make_server: Any) -> None:
    now = [1_000.0]
    server = await make_server(transactional_id_expiration_ms=60_000, **SMALL)
    server.broker.clock = lambda: now[0]
    async with await server.connect() as c:
        first = await init(c)
        now[0] += 61
        lst = await c.request(ListTransactionsRequest())
        assert lst.transaction_states == []
        again = await init(c)  # a brand-new id
        assert again.producer_id != first.producer_id and again.producer_epoch == 0


async def test_api_versions_advertises_the_transaction_apis(server: Any) -> None:
    from kbroker.wire.messages import ApiVersionsRequest

    async with await server.connect() as c:
        resp = await c.request(
            ApiVersionsRequest(client_software_name="t", client_software_version="1")
        )
        listed = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
        assert listed[22] == (0, 5) and listed[24] == (0, 5) and listed[25] == (0, 4)
        assert listed[26] == (0, 4) and listed[27] == (0, 1) and listed[28] == (0, 4)
        assert listed[61] == (0, 0) and listed[65] == (0, 0) and listed[66] == (0, 1)


async def test_staged_offsets_are_reported_pending_until_the_transaction_ends(server: Any) -> None:
    from kbroker.txn.offsets import pending_partitions

    create_topic(server, "t")
    async with await server.connect() as c:
        pid, e = await begin(c)
        await add_offsets(c, pid, e)
        await txn_commit_offset(c, pid, e, 3)
        assert pending_partitions(server.broker, "g") == {("t", 0)}
        assert await end(c, pid, e, True) == 0
        assert pending_partitions(server.broker, "g") == set()


async def test_staged_offsets_survive_an_unclean_restart(make_server: Any, tmp_path: Any) -> None:
    server, data = await server_on_disk(make_server, tmp_path)
    async with await server.connect() as c:
        pid, e = await begin(c)
        await add_offsets(c, pid, e)
        await txn_commit_offset(c, pid, e, 9)
    server = await crash_and_restart(server, make_server, data)
    async with await server.connect() as c:
        assert await committed(c) == -1  # still inside the open transaction
        assert await end(c, pid, e, True) == 0
        assert await committed(c) == 9
    server = await crash_and_restart(server, make_server, data)
    async with await server.connect() as c:
        assert await committed(c) == 9  # replayed after the COMMIT


async def test_open_transaction_times_out_after_restart_without_its_producer(
    make_server: Any, tmp_path: Any
) -> None:
    server, data = await server_on_disk(make_server, tmp_path)
    async with await server.connect() as c:
        r = await init(c, timeout_ms=10_000)
        await add_and_produce(c, r.producer_id, r.producer_epoch, 0)
    server = await crash_and_restart(server, make_server, data)
    now = [server.broker.clock() + 60]  # well past the transaction's timeout
    server.broker.clock = lambda: now[0]
    async with await server.connect() as c:
        # Only a read_committed consumer is around: its fetch finds the stale transaction.
        part = await fetch(c, server, "t", 0, 0, isolation_level=1)
        assert part.last_stable_offset == part.high_watermark == 3


async def test_maintenance_aborts_a_timed_out_transaction_without_any_request(
    make_server: Any, autojump_clock: Any
) -> None:
    """A producer that vanished mid-transaction must not hold read_committed consumers
    back forever: the broker's own maintenance pass aborts it at transaction.timeout.ms,
    with no client request to trigger it."""
    now = [1_000.0]
    server = await make_server(
        **SMALL, transaction_abort_timed_out_transaction_cleanup_interval_ms=1000
    )
    server.broker.clock = lambda: now[0]
    create_topic(server, "t")
    async with await server.connect() as c:
        pid, e = await begin(c, timeout_ms=10_000)
        await add_and_produce(c, pid, e, 0)
    log = server.broker.topics.partition("t", 0).log
    assert log.last_stable_offset == 0  # the open transaction holds the LSO
    now[0] += 11
    await trio.sleep(1.5)  # virtual time (MockClock): one maintenance pass
    assert log.last_stable_offset == log.high_watermark == 3  # aborted: marker written


async def test_txn_offset_commit_checks_the_member_generation(server: Any) -> None:
    """KIP-447: a transactional producer that commits for a consumer group member from an
    old generation (a zombie after a rebalance) is refused; the live generation is accepted;
    a commit without member information (pre-KIP-447 clients) is accepted."""

    create_topic(server, "t")
    async with await server.connect() as c:
        joined = await join(c, "g")
        assert joined.error_code == 0
        pid, e = await begin(c)
        await add_offsets(c, pid, e)

        async def commit(generation: int, member: str) -> int:
            return await txn_commit_offset(
                c, pid, e, 1, version=3, generation_id=generation, member_id=member
            )

        assert (
            await commit(joined.generation_id + 1, joined.member_id) == ErrorCode.ILLEGAL_GENERATION
        )
        assert await commit(joined.generation_id, "someone-else") == ErrorCode.UNKNOWN_MEMBER_ID
        assert await commit(joined.generation_id, joined.member_id) == 0
        assert await commit(-1, "") == 0
