"""Coordinators load and unload per internal partition (cluster mode).

Kafka's group and transaction coordinators load a ``__consumer_offsets`` /
``__transaction_state`` partition when this broker becomes its leader and unload it
when it stops (GroupCoordinator / TransactionCoordinator onElection, onResignation):
the groups and transactions of the other partitions go on undisturbed. A broker that
comes back and takes its partitions back (preferred leader election) must not make
unrelated groups rebalance.

The broker is served in-process with a ClusterNode; the tests play the controller
(UpdateMetadata / LeaderAndIsr), as tests/cluster/test_broker_view.py does.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from kbroker.coordinator import loading
from kbroker.coordinator.group import GroupState, partition_for
from kbroker.coordinator.service import coordinator_for, loaded_coordinators
from kbroker.txn.coordinator import TxnState
from kbroker.txn.producer_ids import ProducerIdManager
from kbroker.txn.service import loaded_txn_coordinators, txn_coordinator
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    DescribeGroupsRequest,
    DescribeTransactionsRequest,
    HeartbeatRequest,
    ListGroupsRequest,
    ListTransactionsRequest,
    OffsetFetchRequest,
)
from tests.cluster.scripted_controller import ME, Harness, served
from tests.kbroker.conftest import RawClient
from tests.kbroker.helpers import commit_request, join, join_req, sole_member_sync
from tests.kbroker.isr_helpers import confirm, replicate
from tests.kbroker.txn_helpers import (
    add,
    add_offsets,
    end,
    init,
    tx_produce,
    txn_batch,
    txn_commit_offset,
    write_marker,
)

OFFSETS = "__consumer_offsets"
TXN_STATE = "__transaction_state"
OFFSETS_ID = uuid.uuid4()
TXN_STATE_ID = uuid.uuid4()
DATA_ID = uuid.uuid4()
# Group "g" lives in __consumer_offsets-1, which stays here; "c" in partition 0, which
# moves. Transactional id "kept" lives in __transaction_state-0, "moved" in partition 1.
KEPT_GROUP, MOVED_GROUP = "g", "c"
KEPT_TID, MOVED_TID = "kept", "moved"


@pytest.fixture
async def cluster(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Harness]:
    props = {
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.num.partitions": "2",
        "group.initial.rebalance.delay.ms": "0",
    }
    async with served(nursery, tmp_path, **props) as harness:
        # Producer ids from the data dir: there is no ZooKeeper to take blocks from.
        broker = harness.broker
        broker.state["kbroker.txn.producer_ids"] = ProducerIdManager(broker.data_dir)
        await _lead_everything(harness)
        yield harness


async def _lead_everything(harness: Harness) -> None:
    """Everything led here with this broker alone in the ISR (writes are acknowledged at
    once), broker 2 a replica that can take over."""
    offsets = [(OFFSETS, i, ME, 0, [ME, 2], [ME]) for i in range(3)]
    txn_state = [(TXN_STATE, i, ME, 0, [ME, 2], [ME]) for i in range(2)]
    data = [("t", 0, ME, 0, [ME, 2], [ME])]
    assert (await harness.update_metadata(offsets + txn_state + data)).error_code == 0
    for parts, topic_id in ((offsets, OFFSETS_ID), (txn_state, TXN_STATE_ID), (data, DATA_ID)):
        assert (await harness.leader_and_isr(parts, topic_id=topic_id)).error_code == 0


async def _move(cluster: Harness, topic: str, index: int, leader: int, epoch: int) -> None:
    """The controller moves the partition's leadership to ``leader`` (this broker or 2):
    LeaderAndIsr, which makes this broker load or unload the partition (the metadata
    cache, which only FindCoordinator reads, is left as it is)."""
    topic_id = OFFSETS_ID if topic == OFFSETS else TXN_STATE_ID
    isr = [leader]
    resp = await cluster.leader_and_isr(
        [(topic, index, leader, epoch, [ME, 2], isr)], topic_id=topic_id
    )
    assert resp.error_code == ErrorCode.NONE


async def _connect(cluster: Harness) -> RawClient:
    return RawClient(await trio.open_tcp_stream(*cluster.server.address))


class Pending:
    """A request running in the background; ``answer`` once it is answered."""

    def __init__(self) -> None:
        self.answered = trio.Event()
        self.answer: Any = None

    async def run(self, request: Any) -> None:
        self.answer = await request
        self.answered.set()


async def _stable_member(client: RawClient, group: str) -> tuple[str, int]:
    """A member that joined ``group`` alone and synced: (member id, generation)."""
    joined = await join(client, group, session=30_000, rebalance=30_000)
    assert joined.error_code == ErrorCode.NONE
    synced = await client.request(sole_member_sync(group, joined))
    assert synced.error_code == ErrorCode.NONE
    return joined.member_id, joined.generation_id


async def _waiting_join(client: RawClient, group: str) -> Any:
    """A new member's JoinGroup, which waits for the group's members to rejoin."""
    return await join(client, group, session=30_000, rebalance=30_000)


async def _described(client: RawClient, group: str) -> tuple[int, str, int]:
    """(error, state, member count) of ``group`` by DescribeGroups."""
    (d,) = (await client.request(DescribeGroupsRequest(groups=[group]))).groups
    return d.error_code, d.group_state, len(d.members)


async def _committed(client: RawClient, group: str) -> tuple[int, int]:
    """(error, committed offset of "t"-0) of ``group``."""
    OF = OffsetFetchRequest
    resp = await client.request(
        OF(groups=[OF.OffsetFetchRequestGroup(group_id=group, topics=None)]), version=8
    )
    (g,) = resp.groups
    if g.error_code or not g.topics:
        return g.error_code, -1
    return 0, g.topics[0].partitions[0].committed_offset


async def _settled() -> None:
    """Let the background requests reach their waits: every task, the broker's included
    (it is served in this process), blocked. Loopback delivers a sent request at once,
    so a request still to be read keeps its connection's task runnable."""
    await trio.testing.wait_all_tasks_blocked(cushion=0.01)


async def test_a_group_of_another_partition_is_undisturbed_when_a_partition_moves(
    cluster: Harness,
) -> None:
    assert partition_for(KEPT_GROUP, 3) == 1 and partition_for(MOVED_GROUP, 3) == 0
    kept_a, kept_b, moved_x, moved_y = [await _connect(cluster) for _ in range(4)]
    a, generation = await _stable_member(kept_a, KEPT_GROUP)
    x, x_generation = await _stable_member(moved_x, MOVED_GROUP)
    committed = commit_request(MOVED_GROUP, {("t", 0): 42}, generation=x_generation, member=x)
    assert (await moved_x.request(committed, version=8)).topics[0].partitions[0].error_code == 0
    kept_coordinator = coordinator_for(cluster.broker, KEPT_GROUP)
    b, y = Pending(), Pending()
    async with trio.open_nursery() as nursery:
        # A rebalance in each group: the new member waits for the old one to rejoin.
        nursery.start_soon(b.run, _waiting_join(kept_b, KEPT_GROUP))
        nursery.start_soon(y.run, _waiting_join(moved_y, MOVED_GROUP))
        await _settled()
        assert not b.answered.is_set() and not y.answered.is_set()
        # Broker 2 takes __consumer_offsets-0 over: its group's waiter is told to find
        # the new coordinator ...
        await _move(cluster, OFFSETS, 0, leader=2, epoch=1)
        with trio.fail_after(5):
            await y.answered.wait()
        assert y.answer.error_code == ErrorCode.NOT_COORDINATOR
        assert await _committed(moved_x, MOVED_GROUP) == (ErrorCode.NOT_COORDINATOR, -1)
        # ... and this broker takes it back (a preferred leader election).
        await _move(cluster, OFFSETS, 0, leader=ME, epoch=2)
        await _settled()
        # The other group's rebalance went on meanwhile, untouched: its waiter still
        # waits, its member is asked to rejoin (not to find another coordinator).
        assert not b.answered.is_set()
        beat = await kept_a.request(
            HeartbeatRequest(group_id=KEPT_GROUP, generation_id=generation, member_id=a)
        )
        assert beat.error_code == ErrorCode.REBALANCE_IN_PROGRESS
        rejoined = await kept_a.request(join_req(KEPT_GROUP, a, session=30_000, rebalance=30_000))
        with trio.fail_after(5):
            await b.answered.wait()
    # One rebalance, the one the new member started: generation + 1, nobody refused.
    assert rejoined.error_code == ErrorCode.NONE and b.answer.error_code == ErrorCode.NONE
    assert rejoined.generation_id == b.answer.generation_id == generation + 1
    assert coordinator_for(cluster.broker, KEPT_GROUP) is kept_coordinator
    assert not kept_coordinator.unloaded
    # The moved group is loaded again from the log: as its last record left it (the
    # member that waited never got in), with its offsets.
    assert await _described(moved_x, MOVED_GROUP) == (ErrorCode.NONE, "Stable", 1)
    assert await _committed(moved_x, MOVED_GROUP) == (0, 42)


async def test_a_partition_regained_is_loaded_from_the_log_not_from_memory(
    cluster: Harness,
) -> None:
    # While another broker led __consumer_offsets-0, the group's offsets moved on there;
    # this broker, a follower meanwhile, copied the new record. Taking the partition
    # back, it must serve what its log says, not what it held before.
    client = await _connect(cluster)
    first = commit_request(MOVED_GROUP, {("t", 0): 5})
    assert (await client.request(first, version=8)).topics[0].partitions[0].error_code == 0
    assert await _committed(client, MOVED_GROUP) == (0, 5)
    await _move(cluster, OFFSETS, 0, leader=2, epoch=1)
    # What the follower copies from the new leader (appended as a replica would).
    from kbroker.coordinator.offsets import OffsetAndMetadata, OffsetRecord
    from kbroker.coordinator.store import encode_record
    from kbroker.wire.records import Record, build_batch

    part = cluster.broker.topics.partition(OFFSETS, 0)
    key, value = encode_record(
        OffsetRecord(MOVED_GROUP, "t", 0, OffsetAndMetadata(9, -1, "", 1, None))
    )
    part.log.append(build_batch([Record(key=key, value=value, timestamp=1)]), leader_epoch=1)
    await _move(cluster, OFFSETS, 0, leader=ME, epoch=2)
    assert await _committed(client, MOVED_GROUP) == (0, 9)


async def test_transactions_of_another_partition_are_undisturbed_when_a_partition_moves(
    cluster: Harness,
) -> None:
    assert partition_for(KEPT_TID, 2) == 0 and partition_for(MOVED_TID, 2) == 1
    client = await _connect(cluster)
    producers = {}
    for tid in (KEPT_TID, MOVED_TID):
        r = await init(client, tid)
        assert r.error_code == ErrorCode.NONE
        producers[tid] = (r.producer_id, r.producer_epoch)
        assert await add(client, *producers[tid], [("t", 0)], tid=tid) == {("t", 0): 0}
    # The kept id's partition is replicated to follower 2 (the harness has no fetchers
    # of its own): its writes now wait for it.
    replica = replicate(cluster.server, TXN_STATE)
    kept = txn_coordinator(cluster.broker, KEPT_TID)
    ending = Pending()
    async with trio.open_nursery() as nursery:
        written = replica.log.log_end_offset
        nursery.start_soon(ending.run, end(client, *producers[KEPT_TID], True, tid=KEPT_TID))
        with trio.fail_after(5):
            while replica.log.log_end_offset == written:  # its PrepareCommit is written
                await trio.sleep(0.005)
        # Meanwhile broker 2 takes the other id's partition over ...
        await _move(cluster, TXN_STATE, 1, leader=2, epoch=1)
        # ... which leaves the kept id's write in flight alone: once replicated, the
        # commit goes on in the same coordinator to its end.
        with trio.fail_after(5):
            while not ending.answered.is_set():  # PrepareCommit, then CompleteCommit
                confirm(replica)
                await trio.sleep(0.005)
    assert ending.answer == ErrorCode.NONE
    assert txn_coordinator(cluster.broker, KEPT_TID) is kept and not kept.unloaded
    # The moved id's transaction is the new leader's now.
    other = await _connect(cluster)
    assert await end(other, *producers[MOVED_TID], True, tid=MOVED_TID) == (
        ErrorCode.NOT_COORDINATOR
    )
    # Taken back: the moved id is loaded from the log, its transaction still open, and
    # its producer can end it.
    await _move(cluster, TXN_STATE, 1, leader=ME, epoch=2)
    assert txn_coordinator(cluster.broker, KEPT_TID) is kept and not kept.unloaded
    described = await other.request(DescribeTransactionsRequest(transactional_ids=[MOVED_TID]))
    (state,) = described.transaction_states
    assert (state.error_code, state.transaction_state) == (ErrorCode.NONE, "Ongoing")
    assert await end(other, *producers[MOVED_TID], False, tid=MOVED_TID) == ErrorCode.NONE


async def test_staged_offsets_follow_their_partition(cluster: Harness) -> None:
    # A TxnOffsetCommit staged in __consumer_offsets-0 waits for its transaction's
    # marker. The partition moves away and back meanwhile: its staged offsets are
    # loaded again with it, and the COMMIT marker publishes them.
    from tests.kbroker.txn_helpers import tx_produce

    client = await _connect(cluster)
    r = await init(client, KEPT_TID)
    pid, epoch = r.producer_id, r.producer_epoch
    assert await add(client, pid, epoch, [("t", 0)], tid=KEPT_TID) == {("t", 0): 0}
    produced = await tx_produce(client, "t", txn_batch(pid, epoch, 0), tid=KEPT_TID)
    assert produced.error_code == ErrorCode.NONE
    assert await add_offsets(client, pid, epoch, tid=KEPT_TID, group=MOVED_GROUP) == 0
    staged = await txn_commit_offset(client, pid, epoch, 7, tid=KEPT_TID, group=MOVED_GROUP)
    assert staged == ErrorCode.NONE
    await _move(cluster, OFFSETS, 0, leader=2, epoch=1)
    await _move(cluster, OFFSETS, 0, leader=ME, epoch=2)
    assert await _committed(client, MOVED_GROUP) == (0, -1)
    assert await end(client, pid, epoch, True, tid=KEPT_TID) == ErrorCode.NONE
    assert await _committed(client, MOVED_GROUP) == (0, 7)


async def test_delete_groups_answers_a_group_whose_partition_moved_while_it_waited(
    cluster: Harness,
) -> None:
    # DeleteGroups of groups in two partitions: it waits for the KIP-848 group of the
    # first to settle, and meanwhile the second's partition moves away. That group is
    # answered NOT_COORDINATOR (the client asks the new coordinator), the request is not
    # lost with its connection.
    from kbroker.wire.messages import DeleteGroupsRequest
    from tests.kbroker.helpers import first_heartbeat

    busy, gone = MOVED_GROUP, KEPT_GROUP
    assert partition_for(busy, 3) == 0 and partition_for(gone, 3) == 1
    replica = replicate(cluster.server, OFFSETS)
    member, deleter = await _connect(cluster), await _connect(cluster)
    joined, deleted = Pending(), Pending()
    async with trio.open_nursery() as nursery:
        written = replica.log.log_end_offset
        # The member's join is written, not yet replicated: the group has a write in flight.
        nursery.start_soon(joined.run, member.request(first_heartbeat(busy, "t")))
        with trio.fail_after(5):
            while replica.log.log_end_offset == written:
                await trio.sleep(0.005)
        nursery.start_soon(
            deleted.run, deleter.request(DeleteGroupsRequest(groups_names=[busy, gone]))
        )
        await _settled()
        assert not deleted.answered.is_set()
        await _move(cluster, OFFSETS, 1, leader=2, epoch=1)
        with trio.fail_after(5):
            while not deleted.answered.is_set():
                confirm(replica)
                await trio.sleep(0.005)
    assert joined.answer.error_code == ErrorCode.NONE
    results = {r.group_id: r.error_code for r in deleted.answer.results}
    assert results == {busy: ErrorCode.NON_EMPTY_GROUP, gone: ErrorCode.NOT_COORDINATOR}


async def test_delete_groups_cancelled_while_it_waits_leaves_no_group_in_flight(
    cluster: Harness,
) -> None:
    # DeleteGroups of an empty KIP-848 group (its deletion prepared, tombstones written)
    # and of a group of another partition whose write is in flight (waited for). The
    # request is cancelled during that wait: the first deletion is settled all the
    # same, failed, so the group is back and whoever changes it next is not stuck
    # behind a write nothing would ever settle.
    from kbroker.handlers import RequestContext
    from kbroker.handlers.groups import handle_delete_groups
    from kbroker.wire.messages import ConsumerGroupHeartbeatRequest, DeleteGroupsRequest
    from kbroker.wire.protocol import decode_request, encode_request
    from tests.kbroker.helpers import first_heartbeat

    emptied, busy = KEPT_GROUP, MOVED_GROUP
    assert partition_for(emptied, 3) == 1 and partition_for(busy, 3) == 0
    member = await _connect(cluster)
    joined = await member.request(first_heartbeat(emptied, "t"))
    assert joined.error_code == ErrorCode.NONE
    left = await member.request(
        ConsumerGroupHeartbeatRequest(
            group_id=emptied, member_id=joined.member_id, member_epoch=-1, topic_partitions=[]
        )
    )
    assert left.error_code == ErrorCode.NONE
    emptied_gc = coordinator_for(cluster.broker, emptied)
    replica = replicate(cluster.server, OFFSETS)
    body = DeleteGroupsRequest(groups_names=[emptied, busy])
    header, request = decode_request(encode_request(body.API_KEY, 2, 7, "client", body)[4:])
    ctx = RequestContext(cluster.broker, header, 2, "127.0.0.1:1", ("127.0.0.1", 0))
    deleting = trio.CancelScope()

    async def delete() -> None:
        with deleting:
            await handle_delete_groups(ctx, request)

    beat = Pending()
    async with trio.open_nursery() as nursery:
        written = replica.log.log_end_offset
        # The member's join is written, not yet replicated: the group has a write in flight.
        nursery.start_soon(beat.run, member.request(first_heartbeat(busy, "t")))
        with trio.fail_after(5):
            while replica.log.log_end_offset == written:
                await trio.sleep(0.005)
        nursery.start_soon(delete)
        await _settled()
        assert emptied_gc.consumer_write_in_flight(emptied) is not None  # prepared, waiting
        deleting.cancel()
        await _settled()
        assert emptied_gc.consumer_write_in_flight(emptied) is None
        with trio.fail_after(5):
            while not beat.answered.is_set():
                confirm(replica)
                await trio.sleep(0.005)
    assert beat.answer.error_code == ErrorCode.NONE
    # The cancelled deletion is undone: the group is there, and deleted by the next one.
    (described,) = (await member.request(DescribeGroupsRequest(groups=[emptied]))).groups
    assert described.group_state == "Empty"
    with trio.fail_after(5):
        again = await member.request(DeleteGroupsRequest(groups_names=[emptied]))
    assert [(r.group_id, r.error_code) for r in again.results] == [(emptied, ErrorCode.NONE)]


async def test_a_deleted_topics_offsets_go_from_every_group_coordinated_here(
    cluster: Harness,
) -> None:
    # The controller tells every broker of a deleted topic's partitions by UpdateMetadata
    # (leader -2, LeaderDuringDelete); Kafka's KafkaApis.handleUpdateMetadataRequest then
    # has its group coordinator drop their committed offsets (onPartitionsDeleted), so a
    # topic re-created under the same name is read from the reset policy, not from where
    # groups of the old one were.
    client = await _connect(cluster)
    for group in (KEPT_GROUP, MOVED_GROUP):  # two __consumer_offsets partitions
        commit = commit_request(group, {("t", 0): 42})
        assert (await client.request(commit, version=8)).topics[0].partitions[0].error_code == 0
        assert await _committed(client, group) == (0, 42)
    deleted = await cluster.update_metadata([("t", 0, -2, 1, [ME, 2], [ME])])
    assert deleted.error_code == ErrorCode.NONE
    for group in (KEPT_GROUP, MOVED_GROUP):
        assert await _committed(client, group) == (0, -1)
    # Reloaded from the log (the partition moves away and back): still gone.
    await _move(cluster, OFFSETS, 0, leader=2, epoch=1)
    await _move(cluster, OFFSETS, 0, leader=ME, epoch=2)
    assert await _committed(client, MOVED_GROUP) == (0, -1)


async def test_a_marker_publishes_the_offsets_staged_in_its_own_partition_only(
    cluster: Harness,
) -> None:
    # One transaction staged offsets for groups of two __consumer_offsets partitions.
    # A COMMIT marker written to one of them publishes that partition's offsets, not the
    # other's, whose marker is still to come (GroupMetadataManager.handleTxnCompletion
    # completes the groups of the marked partitions only): what OffsetFetch shows is
    # what the partition's log holds, and loading it again gives the same.
    client = await _connect(cluster)
    r = await init(client, KEPT_TID)
    pid, epoch = r.producer_id, r.producer_epoch
    for group in (MOVED_GROUP, KEPT_GROUP):  # __consumer_offsets-0 and -1
        assert await add_offsets(client, pid, epoch, tid=KEPT_TID, group=group) == 0
        staged = await txn_commit_offset(client, pid, epoch, 7, tid=KEPT_TID, group=group)
        assert staged == ErrorCode.NONE
    marked = await write_marker(
        cluster.client, pid, epoch, commit=True, coordinator_epoch=0, topic=OFFSETS, partition=0
    )
    assert marked == ErrorCode.NONE
    assert await _committed(client, MOVED_GROUP) == (0, 7)
    assert await _committed(client, KEPT_GROUP) == (0, -1)
    # Its own marker publishes the other.
    marked = await write_marker(
        cluster.client, pid, epoch, commit=True, coordinator_epoch=0, topic=OFFSETS, partition=1
    )
    assert marked == ErrorCode.NONE
    assert await _committed(client, KEPT_GROUP) == (0, 7)


async def test_a_partition_gained_is_loaded_and_its_members_expire_without_a_request(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # A coordinator that takes over a partition loads its groups then
    # (GroupCoordinator.onElection), not when a member next asks: a group whose members
    # died with the old coordinator must still become Empty after their session timeout
    # on the new one, though none of them ever sends another request.
    props = {
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.num.partitions": "2",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "100",
        # The maintenance loop's period for coordinator timers.
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "50",
    }
    async with served(nursery, tmp_path, **props) as harness:
        await _lead_everything(harness)
        client = await _connect(harness)
        joined = await join(client, MOVED_GROUP, session=2_000, rebalance=30_000)
        assert joined.error_code == ErrorCode.NONE
        synced = await client.request(sole_member_sync(MOVED_GROUP, joined))
        assert synced.error_code == ErrorCode.NONE
        index = partition_for(MOVED_GROUP, 3)
        await _move(harness, OFFSETS, index, 2, 1)  # the coordinator moves away ...
        await _move(harness, OFFSETS, index, ME, 2)  # ... and back: loaded from the log
        # No request for the group from here on.
        with trio.fail_after(15):
            while True:
                states = [gc.group_state(MOVED_GROUP) for gc in loaded_coordinators(harness.broker)]
                if GroupState.EMPTY in states:
                    break
                await trio.sleep(0.05)
        assert await _described(client, MOVED_GROUP) == (ErrorCode.NONE, "Empty", 0)
        await client.aclose()


# --- loading in the background (COORDINATOR_LOAD_IN_PROGRESS meanwhile) ----------------


@pytest.fixture
def held_loads(monkeypatch: pytest.MonkeyPatch) -> trio.Event:
    """A partition with records is read one record a slice, and its background load
    waits for the returned event after its first slice: it stays loading until the test
    sets the event."""
    gate = trio.Event()
    monkeypatch.setattr(loading, "SLICE_S", 0.0)
    monkeypatch.setattr(loading, "between_slices", gate.wait)
    return gate


def _group_loaded(cluster: Harness, group: str) -> bool:
    return any(group in gc.group_ids() for gc in loaded_coordinators(cluster.broker))


async def _list_groups(client: RawClient) -> tuple[int, set[str]]:
    resp = await client.request(ListGroupsRequest())
    return resp.error_code, {g.group_id for g in resp.groups}


async def test_a_partition_gained_is_loaded_at_once_without_a_request(cluster: Harness) -> None:
    # GroupCoordinator.onElection loads the partition when leadership arrives, not when
    # a request (or the maintenance pass, 10 s later by default) first needs it.
    client = await _connect(cluster)
    x, generation = await _stable_member(client, MOVED_GROUP)
    await _move(cluster, OFFSETS, 0, leader=2, epoch=1)
    assert not _group_loaded(cluster, MOVED_GROUP)
    await _move(cluster, OFFSETS, 0, leader=ME, epoch=2)
    # Nothing asks for the group from here on (and the maintenance pass is 10 s away):
    # LeaderAndIsr alone has it loaded.
    with trio.fail_after(1):
        await _settled()
    assert _group_loaded(cluster, MOVED_GROUP)
    beat = await client.request(
        HeartbeatRequest(group_id=MOVED_GROUP, generation_id=generation, member_id=x)
    )
    assert beat.error_code == ErrorCode.NONE


async def test_a_group_whose_partition_loads_is_load_in_progress_until_it_is_loaded(
    cluster: Harness, held_loads: trio.Event
) -> None:
    client = await _connect(cluster)
    x, x_generation = await _stable_member(client, MOVED_GROUP)
    committed = commit_request(MOVED_GROUP, {("t", 0): 42}, generation=x_generation, member=x)
    assert (await client.request(committed, version=8)).topics[0].partitions[0].error_code == 0
    a, generation = await _stable_member(client, KEPT_GROUP)
    await _move(cluster, OFFSETS, 0, leader=2, epoch=1)
    await _move(cluster, OFFSETS, 0, leader=ME, epoch=2)  # loading, held
    # The loading partition's group: Kafka's answers per API (validateGroupStatus).
    assert await _committed(client, MOVED_GROUP) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, -1)
    assert (await _described(client, MOVED_GROUP))[0] == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    commit = await client.request(committed, version=8)
    assert commit.topics[0].partitions[0].error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    rejoin = await client.request(join_req(MOVED_GROUP, x, session=30_000, rebalance=30_000))
    assert rejoin.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    # A heartbeat is answered blindly; a SyncGroup sends the member back to JoinGroup.
    beat = await client.request(
        HeartbeatRequest(group_id=MOVED_GROUP, generation_id=x_generation, member_id=x)
    )
    assert beat.error_code == ErrorCode.NONE
    sync = await client.request(
        sole_member_sync(
            MOVED_GROUP, type("J", (), {"generation_id": x_generation, "member_id": x})
        )
    )
    assert sync.error_code == ErrorCode.REBALANCE_IN_PROGRESS
    # ListGroups: the groups loaded, and the error while a partition loads.
    assert await _list_groups(client) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, {KEPT_GROUP})
    # The group of another partition is served meanwhile.
    beat = await client.request(
        HeartbeatRequest(group_id=KEPT_GROUP, generation_id=generation, member_id=a)
    )
    assert beat.error_code == ErrorCode.NONE
    assert await _described(client, KEPT_GROUP) == (ErrorCode.NONE, "Stable", 1)
    assert not _group_loaded(cluster, MOVED_GROUP)
    held_loads.set()
    await _settled()
    # Loaded in the background, nothing asked for it: served from its log.
    assert _group_loaded(cluster, MOVED_GROUP)
    assert await _committed(client, MOVED_GROUP) == (0, 42)
    assert await _described(client, MOVED_GROUP) == (ErrorCode.NONE, "Stable", 1)
    assert await _list_groups(client) == (ErrorCode.NONE, {KEPT_GROUP, MOVED_GROUP})


async def test_a_partition_lost_while_it_loads_installs_nothing(
    cluster: Harness, held_loads: trio.Event
) -> None:
    client = await _connect(cluster)
    x, x_generation = await _stable_member(client, MOVED_GROUP)
    committed = commit_request(MOVED_GROUP, {("t", 0): 42}, generation=x_generation, member=x)
    assert (await client.request(committed, version=8)).topics[0].partitions[0].error_code == 0
    await _move(cluster, OFFSETS, 0, leader=2, epoch=1)
    await _move(cluster, OFFSETS, 0, leader=ME, epoch=2)  # loading, held
    await _move(cluster, OFFSETS, 0, leader=2, epoch=3)  # lost before the load is over
    held_loads.set()
    await _settled()
    assert not _group_loaded(cluster, MOVED_GROUP)
    assert await _committed(client, MOVED_GROUP) == (ErrorCode.NOT_COORDINATOR, -1)
    assert await _list_groups(client) == (ErrorCode.NONE, set())
    # Gained again: read from the log afresh.
    await _move(cluster, OFFSETS, 0, leader=ME, epoch=4)
    await _settled()
    assert await _committed(client, MOVED_GROUP) == (0, 42)


async def test_a_marker_written_while_its_partition_loads_is_applied(
    cluster: Harness, held_loads: trio.Event
) -> None:
    # Offsets staged in __consumer_offsets-0, whose COMMIT marker lands while the
    # partition is being loaded again: the load reads the marker too.
    client = await _connect(cluster)
    earlier = await client.request(commit_request(MOVED_GROUP, {("t", 0): 1}), version=8)
    assert earlier.topics[0].partitions[0].error_code == ErrorCode.NONE
    r = await init(client, KEPT_TID)
    pid, epoch = r.producer_id, r.producer_epoch
    assert await add_offsets(client, pid, epoch, tid=KEPT_TID, group=MOVED_GROUP) == 0
    staged = await txn_commit_offset(client, pid, epoch, 7, tid=KEPT_TID, group=MOVED_GROUP)
    assert staged == ErrorCode.NONE
    await _move(cluster, OFFSETS, 0, leader=2, epoch=1)
    await _move(cluster, OFFSETS, 0, leader=ME, epoch=2)  # loading, held
    marked = await write_marker(
        cluster.client, pid, epoch, commit=True, coordinator_epoch=0, topic=OFFSETS
    )
    assert marked == ErrorCode.NONE
    assert await _committed(client, MOVED_GROUP) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, -1)
    held_loads.set()
    await _settled()
    assert await _committed(client, MOVED_GROUP) == (0, 7)


async def test_a_transactional_id_whose_partition_loads_is_load_in_progress_until_loaded(
    cluster: Harness, held_loads: trio.Event
) -> None:
    client = await _connect(cluster)
    first = await init(client, MOVED_TID)
    assert first.error_code == ErrorCode.NONE
    assert (await init(client, KEPT_TID)).error_code == ErrorCode.NONE
    await _move(cluster, TXN_STATE, 1, leader=2, epoch=1)
    await _move(cluster, TXN_STATE, 1, leader=ME, epoch=2)  # loading, held
    loading_init = await init(client, MOVED_TID)
    assert loading_init.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    described = await client.request(DescribeTransactionsRequest(transactional_ids=[MOVED_TID]))
    assert described.transaction_states[0].error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    listed = await client.request(ListTransactionsRequest())
    assert listed.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert await add(
        client, first.producer_id, first.producer_epoch, [("t", 0)], tid=MOVED_TID
    ) == {("t", 0): ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}
    assert await end(client, first.producer_id, first.producer_epoch, True, tid=MOVED_TID) == (
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    )
    # The other partition's transactional ids are served meanwhile.
    assert (await init(client, KEPT_TID)).error_code == ErrorCode.NONE
    held_loads.set()
    await _settled()
    assert any(MOVED_TID in tc.txns for tc in loaded_txn_coordinators(cluster.broker))
    again = await init(client, MOVED_TID)
    assert again.error_code == ErrorCode.NONE
    assert (again.producer_id, again.producer_epoch) == (
        first.producer_id,
        first.producer_epoch + 1,
    )
    listed = await client.request(ListTransactionsRequest())
    assert listed.error_code == ErrorCode.NONE
    assert {t.transactional_id for t in listed.transaction_states} == {KEPT_TID, MOVED_TID}


async def test_requests_over_every_partition_leave_the_loads_they_start_to_the_background(
    cluster: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ListGroups, ListTransactions and a transaction's offsets ask for every partition
    # led here. Those neither loaded nor loading (here dropped, as after a failed load)
    # are loaded in the background, none of them read in the request (a slice of each
    # held the event loop ~100 ms with 50 partitions of data): meanwhile the answer is
    # COORDINATOR_LOAD_IN_PROGRESS, as Kafka's handleListGroups / listTransactionStates.
    from kbroker.coordinator import service as groups
    from kbroker.txn import service as transactions
    from kbroker.txn.offsets import load_pending

    client = await _connect(cluster)
    await _stable_member(client, KEPT_GROUP)
    await _stable_member(client, MOVED_GROUP)
    assert (await init(client, KEPT_TID)).error_code == ErrorCode.NONE
    assert (await init(client, MOVED_TID)).error_code == ErrorCode.NONE
    # A slice would read a whole partition: a request reading one would be served.
    monkeypatch.setattr(loading, "SLICE_S", float("inf"))
    groups.drop(cluster.broker)
    assert await _list_groups(client) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, set())
    await _settled()
    assert await _list_groups(client) == (ErrorCode.NONE, {KEPT_GROUP, MOVED_GROUP})

    groups.drop(cluster.broker)
    load_pending(cluster.broker)  # what a marker for __consumer_offsets asks first
    assert loaded_coordinators(cluster.broker) == []
    await _settled()
    assert len(loaded_coordinators(cluster.broker)) == 3

    transactions.drop(cluster.broker)
    listed = await client.request(ListTransactionsRequest())
    assert (listed.error_code, listed.transaction_states) == (
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        [],
    )
    await _settled()
    listed = await client.request(ListTransactionsRequest())
    assert listed.error_code == ErrorCode.NONE
    assert {t.transactional_id for t in listed.transaction_states} == {KEPT_TID, MOVED_TID}


def _coordinator_epoch_on_t0(cluster: Harness, pid: int) -> int:
    """The coordinator epoch of producer ``pid``'s last marker on "t"-0."""
    partition = cluster.broker.topics.partition("t", 0)
    assert partition is not None
    entry = partition.log.producer_state.lookup(pid)
    assert entry is not None
    return entry.coordinator_epoch


async def _open_transaction(client: RawClient, tid: str, pid: int, epoch: int, seq: int) -> None:
    """A transaction of ``tid`` that wrote two records from sequence ``seq`` to "t"-0."""
    assert await add(client, pid, epoch, [("t", 0)], tid=tid) == {("t", 0): 0}
    produced = await tx_produce(client, "t", txn_batch(pid, epoch, seq), tid=tid)
    assert produced.error_code == ErrorCode.NONE


async def _commit_one_transaction(
    client: RawClient, tid: str, pid: int, epoch: int, seq: int
) -> None:
    """A transaction of ``tid`` writing to "t"-0, committed."""
    await _open_transaction(client, tid, pid, epoch, seq)
    assert await end(client, pid, epoch, True, tid=tid) == ErrorCode.NONE


async def test_markers_carry_the_epoch_of_the_coordinators_leadership_and_fence_older_ones(
    cluster: Harness,
) -> None:
    # TransactionCoordinator.onElection(partition, leader epoch): the epoch of its
    # __transaction_state partition's leadership goes into every marker, and a data
    # partition's leader refuses a marker older than the producer's last one
    # (ProducerAppendInfo.appendEndTxnMarker: TRANSACTION_COORDINATOR_FENCED).
    client = await _connect(cluster)
    r = await init(client, MOVED_TID)
    pid, epoch = r.producer_id, r.producer_epoch
    assert txn_coordinator(cluster.broker, MOVED_TID).coordinator_epoch == 0
    await _commit_one_transaction(client, MOVED_TID, pid, epoch, 0)
    assert _coordinator_epoch_on_t0(cluster, pid) == 0
    # Broker 2 leads __transaction_state-1 at epoch 4, then this broker again at 7: the
    # coordinator loaded from the log then is the one of leader epoch 7.
    await _move(cluster, TXN_STATE, 1, leader=2, epoch=4)
    await _move(cluster, TXN_STATE, 1, leader=ME, epoch=7)
    # Loaded by a background task started at the election (COORDINATOR_LOAD_IN_PROGRESS
    # until it has run).
    await trio.testing.wait_all_tasks_blocked()
    successor = txn_coordinator(cluster.broker, MOVED_TID)
    assert successor.coordinator_epoch == 7
    # Its markers carry 7 and are accepted over the producer's last one (0).
    await _commit_one_transaction(client, MOVED_TID, pid, epoch, 2)
    assert _coordinator_epoch_on_t0(cluster, pid) == 7
    # The coordinator of another partition keeps its own leadership's epoch.
    r = await init(client, KEPT_TID)
    assert txn_coordinator(cluster.broker, KEPT_TID).coordinator_epoch == 0
    await _commit_one_transaction(client, KEPT_TID, r.producer_id, r.producer_epoch, 0)
    assert _coordinator_epoch_on_t0(cluster, r.producer_id) == 0

    # A coordinator of epoch 4 that missed its leadership's end (a zombie) ends the
    # producer's next transaction otherwise: refused, nothing written.
    await _open_transaction(client, MOVED_TID, pid, epoch, 4)
    log = cluster.broker.topics.partition("t", 0).log  # type: ignore[union-attr]
    end_offset, stable = log.log_end_offset, log.last_stable_offset
    zombie = await write_marker(cluster.client, pid, epoch, commit=False, coordinator_epoch=4)
    assert zombie == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert (log.log_end_offset, log.last_stable_offset) == (end_offset, stable)
    # The current coordinator commits it.
    assert await end(client, pid, epoch, True, tid=MOVED_TID) == ErrorCode.NONE
    assert log.last_stable_offset == log.log_end_offset > end_offset
    assert _coordinator_epoch_on_t0(cluster, pid) == 7


async def test_a_coordinator_whose_markers_are_fenced_leaves_the_transaction_to_the_newer_one(
    cluster: Harness,
) -> None:
    # This broker's coordinator of __transaction_state-1 was loaded at epoch 0; a
    # coordinator of epoch 3 (a newer leader this broker has not heard of) already wrote
    # a marker for the producer on "t"-0. This one's own marker there is then refused,
    # nothing is written, and it sends no more: the transaction is the newer one's.
    client = await _connect(cluster)
    r = await init(client, MOVED_TID)
    pid, epoch = r.producer_id, r.producer_epoch
    zombie = txn_coordinator(cluster.broker, MOVED_TID)
    assert zombie.coordinator_epoch == 0
    await _open_transaction(client, MOVED_TID, pid, epoch, 0)
    newer = await write_marker(cluster.client, pid, epoch, commit=False, coordinator_epoch=3)
    assert newer == ErrorCode.NONE
    await _open_transaction(client, MOVED_TID, pid, epoch, 2)  # open again on "t"-0
    log = cluster.broker.topics.partition("t", 0).log  # type: ignore[union-attr]
    end_offset, stable = log.log_end_offset, log.last_stable_offset
    # EndTxn is answered once PrepareCommit is written, as Kafka answers it.
    assert await end(client, pid, epoch, True, tid=MOVED_TID) == ErrorCode.NONE
    assert (log.log_end_offset, log.last_stable_offset) == (end_offset, stable)
    assert _coordinator_epoch_on_t0(cluster, pid) == 3
    described = await client.request(DescribeTransactionsRequest(transactional_ids=[MOVED_TID]))
    assert described.transaction_states[0].transaction_state == "PrepareCommit"
    # Left pending, not tried again: Kafka's removeMarkersForTxn, until it is unloaded.
    meta = zombie.describe(MOVED_TID)
    assert meta is not None and meta.pending_state is TxnState.COMPLETE_COMMIT
    assert zombie.poll() == [] and zombie.next_deadline_ms() is None
    assert log.log_end_offset == end_offset
