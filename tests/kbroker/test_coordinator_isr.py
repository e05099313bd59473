"""Coordinator writes wait for the ISR: what a client sees before, after and when it fails.

Kafka's coordinators append to ``__consumer_offsets`` / ``__transaction_state`` with
acks=all and change their in-memory state only once the append is replicated
(GroupMetadataManager's pending offset commits, TransactionStateManager
.appendTransactionToLog's pending state). Here the broker's internal partitions are
given replication state with a second, silent replica (broker 2); the test plays that
follower by reporting its fetch position, so every step is observed in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio
import trio.testing

from kbroker.broker import BrokerState
from kbroker.cluster.coordinators import unload
from kbroker.cluster.node import ClusterNode, _TxnMarkers
from kbroker.config import BrokerConfig
from kbroker.coordinator.group import GroupCoordinator, partition_for
from kbroker.coordinator.service import coordinator_config, coordinator_for
from kbroker.coordinator.store import OffsetsTopicStore
from kbroker.handlers import RequestContext, advertised_versions, load_handlers, lookup
from kbroker.handlers import groups as groups_handlers
from kbroker.handlers.groups import handle_consumer_group_heartbeat
from kbroker.internal_topics import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kbroker.log.partition import PartitionLog
from kbroker.replication.partition import ReplicatedPartition
from kbroker.txn.coordinator import TransactionCoordinator
from kbroker.txn.service import txn_coordinator
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ConsumerGroupDescribeRequest,
    ConsumerGroupHeartbeatRequest,
    DeleteGroupsRequest,
    DescribeGroupsRequest,
    DescribeTransactionsRequest,
    HeartbeatRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
    WriteTxnMarkersRequest,
)
from kbroker.wire.protocol import decode_request, encode_request
from tests.kbroker.helpers import (
    commit_request,
    create_topic,
    described_members,
    first_heartbeat,
    join,
    join_req,
    offset_delete_request,
)
from tests.kbroker.isr_helpers import LAG_MS
from tests.kbroker.isr_helpers import confirm as _confirm
from tests.kbroker.isr_helpers import replicate as _replicate
from tests.kbroker.txn_helpers import (
    TID,
    add,
    add_offsets,
    committed,
    end,
    init,
    latest,
    tx_produce,
    txn_batch,
    txn_commit_offset,
    txn_commit_offsets,
)

READ_COMMITTED = 1
ONE_PARTITION = {
    "transaction_state_log_num_partitions": 1,
    "offsets_topic_num_partitions": 1,
    "offsets_commit_timeout_ms": 30_000,
}


@pytest.fixture
async def server(make_server: Any) -> Any:
    """A broker whose internal topics have one partition each."""
    return await make_server(**ONE_PARTITION)


async def _drop_follower(replica: ReplicatedPartition) -> None:
    """Follower 2 stays silent past replica.lag.time.max.ms and leaves the ISR."""
    await trio.sleep(2 * LAG_MS / 1000)
    assert replica.maybe_shrink_isr() == [2]


async def _settled() -> None:
    """Until every task is blocked: the broker has done all it can without the follower,
    so a check that no answer came yet means something (a fixed sleep proves nothing on a
    machine too slow to have answered within it)."""
    await trio.testing.wait_all_tasks_blocked()


async def _appended(replica: ReplicatedPartition, end: int) -> None:
    """Wait until the leader's log goes past ``end`` (the coordinator wrote its record)."""
    with trio.fail_after(5):
        while replica.log.log_end_offset <= end:
            await trio.sleep(0.005)


class Pending:
    """A request running in the background; ``answer`` once it is answered."""

    def __init__(self) -> None:
        self.answered = trio.Event()
        self.answer: Any = None

    async def run(self, request: Awaitable[Any]) -> None:
        self.answer = await request
        self.answered.set()


@asynccontextmanager
async def _in_flight(
    replica: ReplicatedPartition, request: Awaitable[Any]
) -> AsyncIterator[Pending]:
    """Send ``request`` in the background and wait until the coordinator has appended
    its record to ``replica``'s log; the block runs while the write is in flight, and
    leaving it waits for the answer."""
    pending = Pending()
    end_before = replica.log.log_end_offset
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pending.run, request)
        await _appended(replica, end_before)
        yield pending


async def _state(client: Any, tid: str = TID) -> str:
    resp = await client.request(DescribeTransactionsRequest(transactional_ids=[tid]))
    return str(resp.transaction_states[0].transaction_state)


async def _stable(client: Any) -> tuple[int, int]:
    """OffsetFetch v7 with require_stable (KIP-447): (error, offset) of group "g" on "t"-0."""
    OF = OffsetFetchRequest
    resp = await client.request(
        OF(
            group_id="g",
            topics=[OF.OffsetFetchRequestTopic(name="t", partition_indexes=[0])],
            require_stable=True,
        ),
        version=7,
    )
    p = resp.topics[0].partitions[0]
    return p.error_code, p.committed_offset


async def _commit(client: Any, offset: int) -> int:
    resp = await client.request(commit_request("g", {("t", 0): offset}))
    return int(resp.topics[0].partitions[0].error_code)


async def test_a_commit_is_fetched_only_once_replicated(server: Any) -> None:
    create_topic(server, "t")
    replica = _replicate(server, OFFSETS_TOPIC)
    committer, probe = await server.connect(), await server.connect()

    async with _in_flight(replica, _commit(committer, 5)) as first:
        # Written on the leader, not yet on the follower: not committed for anybody.
        assert await committed(probe) == -1
        assert await _stable(probe) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)
        assert not first.answered.is_set()
        _confirm(replica)
    assert first.answer == ErrorCode.NONE
    assert await committed(probe) == 5
    assert await _stable(probe) == (ErrorCode.NONE, 5)

    # The follower drops out of the ISR while a commit waits: below min.insync.replicas,
    # NOT_ENOUGH_REPLICAS_AFTER_APPEND, which a coordinator answers COORDINATOR_NOT_AVAILABLE.
    # The pending commit is dropped: the committed offset stays the last replicated one.
    async with _in_flight(replica, _commit(committer, 9)) as second:
        await _drop_follower(replica)
    assert second.answer == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert await committed(probe) == 5
    assert await _stable(probe) == (ErrorCode.NONE, 5)

    # The follower catches up and rejoins the ISR; the client's retry is committed.
    _confirm(replica)
    assert replica.isr == [1, 2]
    async with _in_flight(replica, _commit(committer, 9)) as retry:
        _confirm(replica)
    assert retry.answer == ErrorCode.NONE
    assert await committed(probe) == 9


async def test_a_commit_that_times_out_is_not_committed(make_server: Any) -> None:
    server = await make_server(**{**ONE_PARTITION, "offsets_commit_timeout_ms": 200})
    create_topic(server, "t")
    _replicate(server, OFFSETS_TOPIC)
    client = await server.connect()
    # The follower never fetches: REQUEST_TIMED_OUT, answered COORDINATOR_NOT_AVAILABLE.
    assert await _commit(client, 3) == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert await committed(client) == -1
    assert await _stable(client) == (ErrorCode.NONE, -1)


async def _group_state(client: Any) -> tuple[str, list[bytes]]:
    """DescribeGroups of group "g": its state and the assignment shown for each member."""
    group = (await client.request(DescribeGroupsRequest(groups=["g"]))).groups[0]
    return group.group_state, [bytes(m.member_assignment) for m in group.members]


async def _join_two(a: Any, b: Any) -> tuple[dict[str, Any], str, str, int]:
    """Members on ``a`` and ``b`` join group "g" in one generation: (each member's client,
    leader, follower, generation); the initial rebalance delay gathers them."""
    joined: dict[str, Any] = {}

    async def one(name: str, client: Any) -> None:
        joined[name] = await join(client, "g")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, "a", a)
        nursery.start_soon(one, "b", b)
    ra, rb = joined["a"], joined["b"]
    assert ra.error_code == rb.error_code == ErrorCode.NONE
    assert ra.generation_id == rb.generation_id
    leader = ra.leader
    (follower,) = {ra.member_id, rb.member_id} - {leader}
    return {ra.member_id: a, rb.member_id: b}, leader, follower, ra.generation_id


async def _sync(client: Any, member_id: str, generation: int, **assignment: bytes) -> Any:
    """SyncGroup of group "g": (error, the member's assignment)."""
    SG = SyncGroupRequest
    resp = await client.request(
        SG(
            group_id="g",
            generation_id=generation,
            member_id=member_id,
            assignments=[
                SG.SyncGroupRequestAssignment(member_id=m, assignment=a)
                for m, a in assignment.items()
            ],
        )
    )
    return resp.error_code, bytes(resp.assignment)


async def _sync_both(
    replica: ReplicatedPartition,
    clients: dict[str, Any],
    generation: int,
    leader: str,
    follower: str,
    meanwhile: Any,
) -> dict[str, Any]:
    """The follower and the leader (with its assignment) send SyncGroup; once the group's
    record is written, ``meanwhile()`` plays the ISR. Their answers by member id."""
    answers = {leader: Pending(), follower: Pending()}
    end_before = replica.log.log_end_offset
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answers[follower].run, _sync(clients[follower], follower, generation))
        nursery.start_soon(
            answers[leader].run,
            _sync(
                clients[leader],
                leader,
                generation,
                **{leader: b"to-" + leader.encode(), follower: b"to-" + follower.encode()},
            ),
        )
        await _appended(replica, end_before)
        await meanwhile()
    return {member: pending.answer for member, pending in answers.items()}


async def test_a_group_assignment_is_handed_out_only_once_replicated(make_server: Any) -> None:
    # GroupCoordinator.doSyncGroup: the leader's assignment reaches the members, and the
    # group is Stable, in the callback of storeGroup's acks=all append; a write the ISR
    # does not confirm is answered with its error and the members rejoin.
    server = await make_server(**ONE_PARTITION, group_initial_rebalance_delay_ms=100)
    replica = _replicate(server, OFFSETS_TOPIC)
    a, b, probe = await server.connect(), await server.connect(), await server.connect()
    clients, leader, follower, generation = await _join_two(a, b)

    async def not_yet_then_drop_the_follower() -> None:
        await _settled()
        # Written on the leader only: nobody has an assignment, the group is not Stable.
        assert await _group_state(probe) == ("CompletingRebalance", [b"", b""])
        await _drop_follower(replica)

    # The follower falls out of the ISR while the record waits: below min.insync.replicas
    # (NOT_ENOUGH_REPLICAS_AFTER_APPEND), which storeGroup answers COORDINATOR_NOT_AVAILABLE.
    answers = await _sync_both(
        replica, clients, generation, leader, follower, not_yet_then_drop_the_follower
    )
    assert answers == {
        leader: (ErrorCode.COORDINATOR_NOT_AVAILABLE, b""),
        follower: (ErrorCode.COORDINATOR_NOT_AVAILABLE, b""),
    }
    assert (await _group_state(probe))[0] == "PreparingRebalance"

    # The follower catches up and rejoins the ISR; the members rejoin the group, and this
    # time the assignment is handed out once the follower has the record.
    _confirm(replica)
    assert replica.isr == [1, 2]
    rejoined: dict[str, Any] = {}

    async def rejoin(member: str) -> None:
        rejoined[member] = await clients[member].request(join_req("g", member))

    async with trio.open_nursery() as nursery:
        for member in (leader, follower):
            nursery.start_soon(rejoin, member)
    assert {r.error_code for r in rejoined.values()} == {ErrorCode.NONE}
    generation = rejoined[leader].generation_id
    assert generation == rejoined[follower].generation_id > 1
    leader = rejoined[leader].leader

    async def confirm() -> None:
        await _settled()
        assert (await _group_state(probe))[0] == "CompletingRebalance"
        _confirm(replica)

    follower = next(m for m in clients if m != leader)
    answers = await _sync_both(replica, clients, generation, leader, follower, confirm)
    assert answers == {
        leader: (ErrorCode.NONE, b"to-" + leader.encode()),
        follower: (ErrorCode.NONE, b"to-" + follower.encode()),
    }
    state, assignments = await _group_state(probe)
    assert state == "Stable" and sorted(assignments) == sorted(b"to-" + m.encode() for m in clients)


async def test_a_group_assignment_whose_write_times_out_is_not_handed_out(
    make_server: Any,
) -> None:
    server = await make_server(
        **{**ONE_PARTITION, "offsets_commit_timeout_ms": 200},
        group_initial_rebalance_delay_ms=100,
    )
    replica = _replicate(server, OFFSETS_TOPIC)
    a, b, probe = await server.connect(), await server.connect(), await server.connect()
    clients, leader, follower, generation = await _join_two(a, b)

    async def never() -> None:
        pass  # the follower never fetches

    # storeGroup: an acks=all timeout is REBALANCE_IN_PROGRESS, the members rejoin.
    answers = await _sync_both(replica, clients, generation, leader, follower, never)
    assert answers == {
        leader: (ErrorCode.REBALANCE_IN_PROGRESS, b""),
        follower: (ErrorCode.REBALANCE_IN_PROGRESS, b""),
    }
    assert (await _group_state(probe))[0] == "PreparingRebalance"


async def test_a_static_member_gets_its_new_id_only_once_replicated(server: Any) -> None:
    # KIP-345: a restarted static member takes over its slot in a Stable group; Kafka's
    # updateStaticMemberAndRebalance answers its JoinGroup in storeGroup's callback and
    # gives the slot back to the old member id if the record is not replicated.
    replica = _replicate(server, OFFSETS_TOPIC)
    first, probe = await server.connect(), await server.connect()
    joined = await join(first, "g", instance="i")
    assignment = {joined.member_id: b"mine"}
    async with _in_flight(replica, _sync(first, joined.member_id, 1, **assignment)) as synced:
        _confirm(replica)
    assert synced.answer == (ErrorCode.NONE, b"mine")

    async def rejoin() -> Any:
        return await join(await server.connect(), "g", instance="i")

    async with _in_flight(replica, rejoin()) as refused:
        await _settled()
        assert not refused.answered.is_set()
        await _drop_follower(replica)
    assert refused.answer.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert refused.answer.member_id == ""
    # The old incarnation still holds the slot.
    beat = HeartbeatRequest(
        group_id="g", generation_id=1, member_id=joined.member_id, group_instance_id="i"
    )
    assert (await first.request(beat)).error_code == ErrorCode.NONE

    _confirm(replica)
    async with _in_flight(replica, rejoin()) as accepted:
        await _settled()
        assert not accepted.answered.is_set()
        _confirm(replica)
    assert accepted.answer.error_code == ErrorCode.NONE
    assert accepted.answer.generation_id == 1
    assert accepted.answer.member_id != joined.member_id
    assert (await first.request(beat)).error_code == ErrorCode.FENCED_INSTANCE_ID
    assert (await _group_state(probe)) == ("Stable", [b"mine"])


async def test_transaction_state_changes_only_once_replicated(server: Any) -> None:
    create_topic(server, "t")
    replica = _replicate(server, TRANSACTION_STATE_TOPIC)
    client, probe = await server.connect(), await server.connect()

    # InitProducerId: answered once its Empty record is in the ISR; meanwhile the id
    # has a write in flight and a second InitProducerId is told to retry.
    async with _in_flight(replica, init(client)) as started:
        assert (await init(probe)).error_code == ErrorCode.CONCURRENT_TRANSACTIONS
        assert not started.answered.is_set()
        _confirm(replica)
    assert started.answer.error_code == ErrorCode.NONE
    pid, epoch = started.answer.producer_id, started.answer.producer_epoch

    # AddPartitionsToTxn: the partition is in the transaction only once replicated, so a
    # transactional write to it is refused until then (KIP-890 verification).
    async with _in_flight(replica, add(client, pid, epoch, [("t", 0)])) as added:
        assert await _state(probe) == "Empty"
        refused = await tx_produce(probe, "t", txn_batch(pid, epoch, 0))
        assert refused.error_code == ErrorCode.INVALID_TXN_STATE
        _confirm(replica)
    assert added.answer == {("t", 0): ErrorCode.NONE}
    assert await _state(probe) == "Ongoing"
    assert (await tx_produce(probe, "t", txn_batch(pid, epoch, 0))).error_code == 0

    # EndTxn: PrepareCommit must be replicated before any marker is written, and the
    # answer waits for CompleteCommit.
    async with _in_flight(replica, end(client, pid, epoch, True)) as ended:
        assert await _state(probe) == "Ongoing"
        assert await latest(probe, "t", READ_COMMITTED) == 0  # no marker yet
        end_before = replica.log.log_end_offset
        _confirm(replica)
        await _appended(replica, end_before)  # the markers, then CompleteCommit
        assert await _state(probe) == "PrepareCommit"
        assert await latest(probe, "t", READ_COMMITTED) == 3
        assert not ended.answered.is_set()
        _confirm(replica)
    assert ended.answer == ErrorCode.NONE
    assert await _state(probe) == "CompleteCommit"


async def test_transaction_writes_that_fail_map_to_kafkas_coordinator_errors(
    server: Any,
) -> None:
    create_topic(server, "t")
    replica = _replicate(server, TRANSACTION_STATE_TOPIC)
    client = await server.connect()
    async with _in_flight(replica, init(client)) as started:
        _confirm(replica)
    pid, epoch = started.answer.producer_id, started.answer.producer_epoch

    # ISR below transaction.state.log.min.isr: NOT_ENOUGH_REPLICAS before anything is
    # written (acks=all), answered COORDINATOR_NOT_AVAILABLE so the client retries.
    replica.make_leader(leader_epoch=1, isr=[1], replicas=[1, 2])
    end_before = replica.log.log_end_offset
    codes = await add(client, pid, epoch, [("t", 0)])
    assert codes == {("t", 0): ErrorCode.COORDINATOR_NOT_AVAILABLE}
    assert replica.log.log_end_offset == end_before
    assert await _state(client) == "Empty"

    # Leadership lost while the write waits: NOT_LEADER_OR_FOLLOWER -> NOT_COORDINATOR,
    # and the state is unchanged.
    replica.make_leader(leader_epoch=2, isr=[1, 2], replicas=[1, 2])
    async with _in_flight(replica, add(client, pid, epoch, [("t", 0)])) as added:
        replica.make_follower(leader_id=2, leader_epoch=3, isr=[1, 2], replicas=[1, 2])
    assert added.answer == {("t", 0): ErrorCode.NOT_COORDINATOR}
    assert await _state(client) == "Empty"

    # The follower never confirms: REQUEST_TIMED_OUT after the transaction timeout (the
    # bound Kafka gives the append), answered COORDINATOR_NOT_AVAILABLE.
    replica.make_leader(leader_epoch=4, isr=[1, 2], replicas=[1, 2])
    with trio.fail_after(5):
        timed_out = await init(client, "short", timeout_ms=300)
    assert timed_out.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE


async def test_a_transactional_commit_not_replicated_is_not_published(server: Any) -> None:
    create_topic(server, "t")
    offsets = _replicate(server, OFFSETS_TOPIC)
    client = await server.connect()
    r = await init(client)
    pid, epoch = r.producer_id, r.producer_epoch
    assert await add_offsets(client, pid, epoch) == ErrorCode.NONE
    async with _in_flight(offsets, txn_commit_offset(client, pid, epoch, 7)) as staged:
        await _drop_follower(offsets)
    assert staged.answer == ErrorCode.COORDINATOR_NOT_AVAILABLE
    # The producer commits anyway (a client that ignored the error): the marker must not
    # publish offsets whose write failed (GroupMetadata.failPendingTxnOffsetCommit).
    _confirm(offsets)
    assert offsets.isr == [1, 2]
    ended = Pending()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ended.run, end(client, pid, epoch, True))
        while not ended.answered.is_set():
            _confirm(offsets)
            await trio.sleep(0.01)
    assert ended.answer == ErrorCode.NONE
    assert await committed(client) == -1


async def test_write_txn_markers_answers_once_the_marker_is_replicated(server: Any) -> None:
    # KafkaApis.handleWriteTxnMarkersRequest appends with acks=all: the coordinator counts
    # a marker as written (and may then write CompleteCommit) only once it is replicated.
    create_topic(server, "t")
    part = server.broker.topics.partition("t", 0)
    part.log.append(txn_batch(900, 0, 0))  # an open transaction of producer 900
    part.replica = ReplicatedPartition(part.log, broker_id=1, min_insync_replicas=2)
    part.replica.make_leader(leader_epoch=1, isr=[1, 2], replicas=[1, 2])
    client = await server.connect()
    W = WriteTxnMarkersRequest
    request = W(
        markers=[
            W.WritableTxnMarker(
                producer_id=900,
                producer_epoch=0,
                transaction_result=True,
                coordinator_epoch=0,
                topics=[W.WritableTxnMarkerTopic(name="t", partition_indexes=[0])],
            )
        ]
    )
    async with _in_flight(part.replica, client.request(request)) as answered:
        # The marker is written after the batch's two records, but not yet replicated.
        await _settled()
        assert not answered.answered.is_set()
        _confirm(part.replica)
    assert answered.answer.markers[0].topics[0].partitions[0].error_code == ErrorCode.NONE


# --- KIP-848 consumer groups ------------------------------------------------------------


async def _first_beat(client: Any, member_id: str) -> Any:
    """Member ``member_id`` joins consumer group "g" subscribed to "t"."""
    return await client.request(first_heartbeat("g", "t", member_id=member_id))


async def _beat(client: Any, member_id: str, epoch: int, owned: dict[Any, list[int]]) -> Any:
    """A member's heartbeat at ``epoch``, owning ``owned`` (topic id -> partitions)."""
    CGH = ConsumerGroupHeartbeatRequest
    return await client.request(
        CGH(
            group_id="g",
            member_id=member_id,
            member_epoch=epoch,
            topic_partitions=[
                CGH.TopicPartitions(topic_id=topic_id, partitions=parts)
                for topic_id, parts in owned.items()
            ],
        )
    )


def _assigned(answer: Any) -> dict[Any, list[int]] | None:
    if answer.assignment is None:
        return None
    return {tp.topic_id: sorted(tp.partitions) for tp in answer.assignment.topic_partitions}


async def _described(client: Any) -> tuple[int, dict[str, tuple[int, list[int]]]] | None:
    """ConsumerGroupDescribe of group "g": (group epoch, member -> (epoch, partitions of
    "t")), None if there is no such group."""
    group = (await client.request(ConsumerGroupDescribeRequest(group_ids=["g"]))).groups[0]
    if group.error_code == ErrorCode.GROUP_ID_NOT_FOUND:
        return None
    return described_members(group)


def _reloaded(server: Any) -> GroupCoordinator:
    """A coordinator loaded from this broker's __consumer_offsets, as a successor would."""
    store = OffsetsTopicStore(server.broker)
    reloaded = GroupCoordinator(
        config=coordinator_config(server.broker), clock=server.broker.clock, store=store
    )
    reloaded.replay(store.load())
    return reloaded


def _replayed(server: Any) -> Any:
    """Group "g" as a coordinator loading this broker's __consumer_offsets would see it
    (its image), or None."""
    group = _reloaded(server).consumer_group("g")
    return group.image() if group is not None else None


def _live(server: Any) -> Any:
    group = coordinator_for(server.broker).consumer_group("g")
    return group.image() if group is not None else None


async def _write_timing_out(make_server: Any) -> Any:
    """A broker whose coordinator writes time out after 1 s (offsets.commit.timeout.ms):
    with a silent follower still in the ISR the high watermark never passes a write, so
    it fails. Tests using it run on virtual time (autojump_clock), so nothing times out
    just because the machine is slow."""
    return await make_server(**{**ONE_PARTITION, "offsets_commit_timeout_ms": 1000})


async def test_a_consumer_group_heartbeat_is_answered_only_once_replicated(
    make_server: Any, autojump_clock: trio.testing.MockClock
) -> None:
    # Kafka's CoordinatorRuntime completes ConsumerGroupHeartbeat once the high watermark
    # passes its records; a write it never passes times out, is answered with
    # handleOperationException's mapping and, here, undone.
    server = await _write_timing_out(make_server)
    topic = create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC)
    a, b, probe = await server.connect(), await server.connect(), await server.connect()

    async with _in_flight(replica, _first_beat(a, "a")) as joined:
        await _settled()
        assert not joined.answered.is_set()
        # Reads see the committed state: no group yet.
        assert await _described(probe) is None
        _confirm(replica)
    assert joined.answer.error_code == ErrorCode.NONE
    assert (joined.answer.member_epoch, _assigned(joined.answer)) == (1, {topic.topic_id: [0, 1]})
    committed_state = (1, {"a": (1, [0, 1])})
    assert await _described(probe) == committed_state

    # b's join is written (group epoch 2, a target giving b a partition), and the
    # follower, still in the ISR, never fetches it: the write times out,
    # COORDINATOR_NOT_AVAILABLE, and the group is back to what was replicated.
    async with _in_flight(replica, _first_beat(b, "b")) as refused:
        assert await _described(probe) == committed_state
    assert refused.answer.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert replica.isr == [1, 2]
    assert refused.answer.member_epoch == 0 and refused.answer.assignment is None
    assert await _described(probe) == committed_state

    # The log still holds b's records; the committed state is written again after them,
    # so the log replays to the group as it is.
    assert _replayed(server) == _live(server)
    # a keeps everything: nothing changed, so it is answered without a write.
    kept = await _beat(a, "a", 1, {topic.topic_id: [0, 1]})
    assert kept.error_code == ErrorCode.NONE and kept.member_epoch == 1
    assert _assigned(kept) in (None, {topic.topic_id: [0, 1]})

    _confirm(replica)
    async with _in_flight(replica, _first_beat(b, "b")) as accepted:
        _confirm(replica)
    assert accepted.answer.error_code == ErrorCode.NONE
    assert accepted.answer.member_epoch == 2
    assert _replayed(server) == _live(server)
    epoch, members = await _described(probe) or (0, {})
    assert epoch == 2 and set(members) == {"a", "b"}


async def test_a_consumer_group_write_that_times_out_creates_no_group(make_server: Any) -> None:
    server = await make_server(**{**ONE_PARTITION, "offsets_commit_timeout_ms": 200})
    create_topic(server, "t", 2)
    _replicate(server, OFFSETS_TOPIC)
    client = await server.connect()
    # The follower never fetches: REQUEST_TIMED_OUT, COORDINATOR_NOT_AVAILABLE for the
    # new coordinator (handleOperationException), and the join is undone.
    with trio.fail_after(5):
        answer = await _first_beat(client, "a")
    assert answer.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert await _described(client) is None


async def test_a_consumer_group_write_is_committed_with_the_isr_below_min_insync(
    make_server: Any, autojump_clock: trio.testing.MockClock
) -> None:
    # Kafka's new group coordinator appends with acks=1 (CoordinatorPartitionWriter
    # .append; Partition.appendRecordsToLeader checks min.insync.replicas only for
    # acks=-1) and completes an operation once the high watermark passes its records
    # (CoordinatorRuntime): an ISR below min.insync.replicas does not fail it. (A classic
    # group's commit is acks=all and does: test_a_commit_is_fetched_only_once_replicated.)
    server = await _write_timing_out(make_server)
    create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC)
    a, probe = await server.connect(), await server.connect()
    async with _in_flight(replica, _first_beat(a, "a")) as joined:
        await _settled()
        assert not joined.answered.is_set()  # the follower has not fetched it: HW behind
        # The follower leaves the ISR: {1}, below min.insync.replicas (2), and the HW
        # moves to the leader's log end, past the write.
        await _drop_follower(replica)
    assert replica.isr == [1]
    assert (joined.answer.error_code, joined.answer.member_epoch) == (ErrorCode.NONE, 1)
    assert await _described(probe) == (1, {"a": (1, [0, 1])})

    # The member's commit (OffsetCommit v9, its member epoch) and a second member's join
    # are committed too, each once the HW passes it.
    resp = await a.request(commit_request("g", {("t", 0): 7}, generation=1, member="a"), version=9)
    assert resp.topics[0].partitions[0].error_code == ErrorCode.NONE
    assert await committed(probe) == 7
    b = await _first_beat(await server.connect(), "b")
    assert (b.error_code, b.member_epoch) == (ErrorCode.NONE, 2)
    assert replica.high_watermark == replica.log.log_end_offset
    assert _replayed(server) == _live(server)
    assert _reloaded(server).fetch_offsets("g", [("t", 0)])[("t", 0)].offset == 7


async def test_a_consumer_group_write_the_high_watermark_never_passes_times_out(
    make_server: Any, autojump_clock: trio.testing.MockClock
) -> None:
    # Replicas {1, 2, 3}, ISR {1, 2}: below min.insync.replicas (3) all along. A write
    # waits for the HW only, so it is answered once follower 2 has it; while follower 2
    # stays in the ISR without fetching, the HW never passes the next write, which times
    # out after offsets.commit.timeout.ms (1 s; the runtime's OperationTimeout):
    # COORDINATOR_NOT_AVAILABLE (GroupCoordinatorService.handleOperationException), undone.
    server = await _write_timing_out(make_server)
    create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC, replicas=[1, 2, 3], min_isr=3)
    a, b, probe = await server.connect(), await server.connect(), await server.connect()
    async with _in_flight(replica, _first_beat(a, "a")) as joined:
        await _settled()
        assert not joined.answered.is_set()
        _confirm(replica)
    assert (joined.answer.error_code, joined.answer.member_epoch) == (ErrorCode.NONE, 1)

    start = trio.current_time()
    async with _in_flight(replica, _first_beat(b, "b")) as refused:
        await _settled()
        assert not refused.answered.is_set()
    assert refused.answer.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert trio.current_time() - start == pytest.approx(1.0, abs=0.1)
    assert replica.isr == [1, 2] and replica.high_watermark < replica.log.log_end_offset
    assert await _described(probe) == (1, {"a": (1, [0, 1])})


async def test_a_consumer_group_write_losing_leadership_is_not_coordinator(server: Any) -> None:
    create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC)
    client = await server.connect()
    async with _in_flight(replica, _first_beat(client, "a")) as joined:
        written = replica.log.log_end_offset
        replica.make_follower(leader_id=2, leader_epoch=2, isr=[1, 2], replicas=[1, 2])
    assert joined.answer.error_code == ErrorCode.NOT_COORDINATOR
    assert _live(server) is None
    # A follower now: nothing more is written to its log (the leader's is the group's).
    assert replica.log.log_end_offset == written


async def test_a_heartbeat_waits_for_the_groups_write_in_flight(
    make_server: Any, autojump_clock: trio.testing.MockClock
) -> None:
    # One write in flight per group: a second member's heartbeat is neither answered nor
    # written while the first's write may still be undone, and then works from what the
    # first write became. Virtual time: c's write must time out (300 ms) and b's, behind
    # it, must not before the follower confirms it, however slowly the machine runs.
    server = await make_server(**{**ONE_PARTITION, "offsets_commit_timeout_ms": 300})
    topic = create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC)
    a, b, probe = await server.connect(), await server.connect(), await server.connect()
    async with _in_flight(replica, _first_beat(a, "a")) as first:
        written = replica.log.log_end_offset
        second = Pending()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(second.run, _first_beat(b, "b"))
            await _settled()
            assert not first.answered.is_set() and not second.answered.is_set()
            assert replica.log.log_end_offset == written  # b's join is not written yet
            _confirm(replica)
            await first.answered.wait()
            await _appended(replica, written)  # now b's join is
            assert not second.answered.is_set()
            _confirm(replica)
    assert (first.answer.error_code, first.answer.member_epoch) == (ErrorCode.NONE, 1)
    assert (second.answer.error_code, second.answer.member_epoch) == (ErrorCode.NONE, 2)

    # a gives up the partition b's target holds and moves to epoch 2.
    async with _in_flight(replica, _beat(a, "a", 1, _assigned(first.answer) or {})) as revoked:
        _confirm(replica)
    a_keeps = _assigned(revoked.answer) or {}
    assert revoked.answer.member_epoch == 1 and len(a_keeps[topic.topic_id]) == 1
    async with _in_flight(replica, _beat(a, "a", 1, a_keeps)) as released:
        _confirm(replica)
    assert released.answer.member_epoch == 2

    # c's join is written (group epoch 3) but never replicated; b's heartbeat waits behind
    # it, and once c's write is undone gets the partition a released at epoch 2, not an
    # epoch 3 assignment the group would not know after the undo.
    async with _in_flight(replica, _first_beat(await server.connect(), "c")) as third:
        written = replica.log.log_end_offset
        waiting = Pending()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiting.run, _beat(b, "b", 2, {}))
            await third.answered.wait()  # the 300 ms acks timeout
            assert third.answer.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
            await _appended(replica, written)
            assert not waiting.answered.is_set()
            _confirm(replica)
    assert waiting.answer.error_code == ErrorCode.NONE
    assert waiting.answer.member_epoch == 2
    b_gets = _assigned(waiting.answer) or {}
    assert len(b_gets[topic.topic_id]) == 1 and b_gets[topic.topic_id] != a_keeps[topic.topic_id]
    epoch, members = await _described(probe) or (0, {})
    assert epoch == 2 and set(members) == {"a", "b"}
    assert _replayed(server) == _live(server)


async def _empty_consumer_group(replica: Any, client: Any, offset: int) -> None:
    """Group "g" of the KIP-848 protocol, its only member "a" joined and gone, with
    ``offset`` committed for "t"-0; each write replicated."""
    async with _in_flight(replica, _first_beat(client, "a")) as joined:
        _confirm(replica)
    assert joined.answer.error_code == ErrorCode.NONE
    CGH = ConsumerGroupHeartbeatRequest
    async with _in_flight(
        replica, client.request(CGH(group_id="g", member_id="a", member_epoch=-1))
    ) as left:
        _confirm(replica)
    assert left.answer.error_code == ErrorCode.NONE
    async with _in_flight(replica, _commit(client, offset)) as commit:
        _confirm(replica)
    assert commit.answer == ErrorCode.NONE


async def _delete_group(client: Any) -> int:
    """DeleteGroups of group "g"; its error code."""
    resp = await client.request(DeleteGroupsRequest(groups_names=["g"]))
    return int(resp.results[0].error_code)


async def test_a_consumer_group_deletion_not_replicated_is_undone(
    make_server: Any, autojump_clock: trio.testing.MockClock
) -> None:
    server = await _write_timing_out(make_server)
    create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC)
    client, probe = await server.connect(), await server.connect()
    await _empty_consumer_group(replica, client, 4)

    # The follower never fetches the tombstones: the deletion times out.
    async with _in_flight(replica, _delete_group(client)) as deleted:
        pass
    assert deleted.answer == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert await _described(probe) == (2, {})
    assert await committed(probe) == 4
    # The tombstones stay in the log, and the group and its offsets are written again.
    assert _replayed(server) == _live(server)
    assert _reloaded(server).fetch_offsets("g", [("t", 0)])[("t", 0)].offset == 4

    _confirm(replica)
    async with _in_flight(replica, _delete_group(client)) as again:
        await _settled()
        assert not again.answered.is_set()
        _confirm(replica)
    assert again.answer == ErrorCode.NONE
    assert await _described(probe) is None
    assert await committed(probe) == -1
    assert _replayed(server) is None


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "abort"])
@pytest.mark.parametrize("ends", ["after the deletion", "while the deletion is in flight"])
async def test_a_consumer_group_deletion_not_replicated_gives_back_staged_offsets(
    make_server: Any, autojump_clock: trio.testing.MockClock, commit: bool, ends: str
) -> None:
    # The deletion removes what open transactions staged for the group too
    # (OffsetMetadataManager.deleteAllOffsets); Kafka's runtime reverts a failed write's
    # timeline snapshot, so a deletion that is not committed leaves them to their
    # transaction: its commit publishes them and its abort drops them, whether it ends
    # after the failed deletion or while the deletion was still in flight.
    server = await _write_timing_out(make_server)
    create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC)
    client, probe = await server.connect(), await server.connect()
    producer = await server.connect()
    await _empty_consumer_group(replica, client, 4)
    started = await init(client, timeout_ms=600_000)
    pid, epoch = started.producer_id, started.producer_epoch
    assert await add_offsets(client, pid, epoch) == ErrorCode.NONE
    async with _in_flight(replica, txn_commit_offset(client, pid, epoch, 5)) as staged:
        _confirm(replica)
    assert staged.answer == ErrorCode.NONE
    assert await _stable(probe) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)

    ended = Pending()
    async with trio.open_nursery() as nursery:
        # The follower never fetches the tombstones: the deletion times out.
        async with _in_flight(replica, _delete_group(client)) as deleted:
            if ends != "after the deletion":
                # The marker is appended (and resolves the staged offsets) at once; its
                # replication, which would commit the tombstones too, waits.
                nursery.start_soon(ended.run, end(producer, pid, epoch, commit))
                await _settled()
        assert deleted.answer == ErrorCode.COORDINATOR_NOT_AVAILABLE
        assert await _described(probe) == (2, {})
        if ends == "after the deletion":
            # Committed and staged by the open transaction, as before the deletion.
            assert await committed(probe) == 4
            assert await _stable(probe) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)
            nursery.start_soon(ended.run, end(producer, pid, epoch, commit))
        while not ended.answered.is_set():
            _confirm(replica)
            await trio.sleep(0.01)
    assert ended.answer == ErrorCode.NONE
    expected = 5 if commit else 4
    assert await _stable(probe) == (ErrorCode.NONE, expected)
    # The log replays to the same group and offsets.
    assert _replayed(server) == _live(server)
    assert _reloaded(server).fetch_offsets("g", [("t", 0)])[("t", 0)].offset == expected

    # Retried, the deletion goes through, and the offsets with it.
    async with _in_flight(replica, _delete_group(client)) as again:
        _confirm(replica)
    assert again.answer == ErrorCode.NONE
    assert await _described(probe) is None
    assert await committed(probe) == -1
    assert _replayed(server) is None
    assert _reloaded(server).fetch_offsets("g", [("t", 0)])[("t", 0)] is None


async def test_offsets_staged_for_a_deleted_consumer_group_stay_deleted_after_a_reload(
    server: Any,
) -> None:
    # OffsetMetadataManager.deleteAllOffsets tombstones every partition an open
    # transaction staged an offset for, committed or not, and replaying a tombstone
    # removes what was staged before it: the transaction's commit brings back none of
    # the deleted group's offsets, neither now nor for a coordinator loaded from the log.
    create_topic(server, "t", 2)
    client, probe, producer = await server.connect(), await server.connect(), await server.connect()
    assert (await _first_beat(client, "a")).error_code == ErrorCode.NONE
    CGH = ConsumerGroupHeartbeatRequest
    left = await client.request(CGH(group_id="g", member_id="a", member_epoch=-1))
    assert left.error_code == ErrorCode.NONE
    assert await _commit(client, 4) == ErrorCode.NONE
    started = await init(producer, timeout_ms=600_000)
    pid, epoch = started.producer_id, started.producer_epoch
    assert await add_offsets(producer, pid, epoch) == ErrorCode.NONE
    # "t"-1 has no committed offset: staged only.
    staged = await txn_commit_offsets(producer, pid, epoch, {0: 5, 1: 6})
    assert staged == [ErrorCode.NONE] * 2
    assert await _stable(probe) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)
    deleted = await client.request(DeleteGroupsRequest(groups_names=["g"]))
    assert deleted.results[0].error_code == ErrorCode.NONE
    assert await end(producer, pid, epoch, True) == ErrorCode.NONE
    assert await _stable(probe) == (ErrorCode.NONE, -1)
    assert coordinator_for(server.broker).fetch_offsets("g", None) == {}
    reloaded = _reloaded(server)
    assert reloaded.fetch_offsets("g", None) == {} and reloaded.group_ids() == []


async def test_a_single_node_answers_a_consumer_group_heartbeat_without_waiting(
    server: Any,
) -> None:
    # No replication state: the write needs no waiting, so the handler runs to its answer
    # without ever yielding (no added latency), and the group is in the log.
    topic = create_topic(server, "t", 2)
    body = first_heartbeat("g", "t", member_id="a")
    frame = encode_request(body.API_KEY, 1, 7, "client", body)
    header, request = decode_request(frame[4:])
    ctx = RequestContext(server.broker, header, 1, "127.0.0.1:1", ("127.0.0.1", 0))
    coordinator_for(server.broker)  # loaded beforehand: loading reads the log
    with trio.testing.assert_no_checkpoints():
        coro = handle_consumer_group_heartbeat(ctx, request)
        try:
            coro.send(None)
        except StopIteration as done:
            answer = done.value
    assert answer.error_code == ErrorCode.NONE
    assert (answer.member_epoch, _assigned(answer)) == (1, {topic.topic_id: [0, 1]})
    assert _replayed(server) == _live(server)


async def test_a_classic_group_taken_over_stays_until_the_conversion_is_replicated(
    make_server: Any, autojump_clock: trio.testing.MockClock
) -> None:
    # An empty classic group (offsets only) becomes a consumer group with its first
    # member's heartbeat; until that write is committed, reads see the classic group,
    # and if it is undone (here: it times out) the classic group and its offsets are
    # back, in the log too.
    server = await _write_timing_out(make_server)
    create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC)
    client, probe = await server.connect(), await server.connect()
    async with _in_flight(replica, _commit(client, 3)) as commit:
        _confirm(replica)
    assert commit.answer == ErrorCode.NONE
    assert await _group_state(probe) == ("Empty", [])

    async with _in_flight(replica, _first_beat(client, "a")) as refused:
        assert await _group_state(probe) == ("Empty", [])
        assert await _described(probe) is None
    assert refused.answer.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert await _group_state(probe) == ("Empty", [])
    assert await committed(probe) == 3
    reloaded = _reloaded(server)
    assert reloaded.consumer_group("g") is None
    assert reloaded.fetch_offsets("g", [("t", 0)])[("t", 0)].offset == 3

    _confirm(replica)
    async with _in_flight(replica, _first_beat(client, "a")) as converted:
        _confirm(replica)
    assert converted.answer.error_code == ErrorCode.NONE
    assert (await _group_state(probe))[0] == "Stable"
    assert await _described(probe) == (1, {"a": (1, [0, 1])})
    assert await committed(probe) == 3


async def test_an_unloaded_coordinator_leaves_the_log_to_its_successor(
    make_server: Any, autojump_clock: trio.testing.MockClock
) -> None:
    # Leadership of any __consumer_offsets partition moving drops the whole coordinator
    # (kbroker.cluster.coordinators.unload); the next request loads a successor from the
    # log, a write still in flight included. If that write then fails (times out), the
    # dropped coordinator must not append its undo after it: the successor, which holds
    # the write's state, would no longer be what its log replays to.
    server = await _write_timing_out(make_server)
    create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC)
    a, b, probe = await server.connect(), await server.connect(), await server.connect()
    async with _in_flight(replica, _first_beat(a, "a")) as joined:
        _confirm(replica)
    assert joined.answer.error_code == ErrorCode.NONE
    async with _in_flight(replica, _first_beat(b, "b")) as refused:
        unload(cast(Any, SimpleNamespace(broker=server.broker)), OFFSETS_TOPIC, 1, True)
        epoch, members = await _described(probe) or (0, {})
        assert (epoch, set(members)) == (2, {"a", "b"})  # the successor, loaded from the log
        written = replica.log.log_end_offset
    assert refused.answer.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert replica.log.log_end_offset == written
    assert _replayed(server) == _live(server)
    # The follower is back: b, told to retry, joins again and the log goes on from the
    # successor's state.
    _confirm(replica)
    async with _in_flight(replica, _first_beat(b, "b")) as again:
        _confirm(replica)
    assert again.answer.error_code == ErrorCode.NONE
    assert _replayed(server) == _live(server)


async def test_a_deletion_waiting_for_a_write_checks_the_coordinator_again(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DeleteGroups waits for the group's write in flight; if the partition's leadership
    # moves meanwhile, the deletion is NOT_COORDINATOR (the client finds the new
    # coordinator), as a waiting heartbeat is, and nothing is written here.
    create_topic(server, "t", 2)
    replica = _replicate(server, OFFSETS_TOPIC)
    client, admin = await server.connect(), await server.connect()
    async with _in_flight(replica, _first_beat(client, "a")) as joined:
        _confirm(replica)
    assert joined.answer.error_code == ErrorCode.NONE
    moved = False
    monkeypatch.setattr(groups_handlers, "elsewhere", lambda ctx, group_id: moved)
    CGH = ConsumerGroupHeartbeatRequest
    async with _in_flight(
        replica, client.request(CGH(group_id="g", member_id="a", member_epoch=-1))
    ) as left:
        deletion = Pending()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(deletion.run, admin.request(DeleteGroupsRequest(groups_names=["g"])))
            write = coordinator_for(server.broker).consumer_write_in_flight("g")
            assert write is not None
            with trio.fail_after(5):
                while not write._watchers:  # the deletion waits for the leave
                    await trio.sleep(0.005)
            written = replica.log.log_end_offset
            moved = True
            replica.make_follower(leader_id=2, leader_epoch=2, isr=[1, 2], replicas=[1, 2])
    assert left.answer.error_code == ErrorCode.NOT_COORDINATOR
    assert deletion.answer.results[0].error_code == ErrorCode.NOT_COORDINATOR
    assert replica.log.log_end_offset == written


# --- A coordinator dropped while a classic group's request waits in it -----------------


class InProcessClient:
    """A RawClient's ``request`` without the socket: the request is encoded, decoded and
    handed to its handler, so a test on virtual time (MockClock) drives the broker."""

    def __init__(self, broker: BrokerState) -> None:
        self.broker = broker

    async def request(self, body: Any, *, version: int | None = None) -> Any:
        version = advertised_versions()[body.API_KEY][1] if version is None else version
        frame = encode_request(body.API_KEY, version, 1, "client", body)
        header, request = decode_request(frame[4:])
        ctx = RequestContext(self.broker, header, version, "127.0.0.1:1", ("127.0.0.1", 0))
        handler = lookup(body.API_KEY, version)
        assert handler is not None
        return await handler(ctx, request)


@pytest.fixture
async def virtual_broker(tmp_path: Any) -> AsyncIterator[BrokerState]:
    """A single node whose wall clock is trio's clock (virtual in a test that asks for
    ``autojump_clock``), so group timers fall due as that time passes: offsets expire
    after a minute, checked every second. ``__transaction_state`` has two partitions, and
    the test's transactional id lives in partition 0."""
    config = BrokerConfig.from_properties(
        {
            "log.dirs": str(tmp_path / "data"),
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.num.partitions": 2,
            "group.initial.rebalance.delay.ms": 0,
            "offsets.retention.minutes": 1,
            "offsets.retention.check.interval.ms": 1000,
        }
    )
    broker = BrokerState(config, clock=lambda: 1_800_000_000 + trio.current_time())
    load_handlers()
    yield broker
    broker.close()


async def test_a_join_waiting_in_an_unloaded_coordinator_is_not_coordinator(
    autojump_clock: trio.testing.MockClock, virtual_broker: BrokerState
) -> None:
    # Kafka's onResignation unloads the partition's groups (GroupCoordinator
    # .onGroupUnloaded): each is Dead, and a member waiting in JoinGroup is answered
    # NOT_COORDINATOR, so it looks the coordinator up again and rejoins there. Here the
    # whole coordinator is dropped; a JoinGroup still waiting in it must be answered so
    # too, and its waiting must not fire the dropped coordinator's timers: they would
    # append to a log that is now its successor's (or another broker's).
    broker = virtual_broker
    create_topic(cast(Any, SimpleNamespace(broker=broker)), "t")
    client = InProcessClient(broker)
    # Offsets of a standalone consumer, which expire a minute from now.
    assert (await client.request(commit_request("solo", {("t", 0): 5}))).topics[0].partitions[
        0
    ].error_code == ErrorCode.NONE
    a = await join(client, "g", session=300_000, rebalance=300_000)
    assert a.error_code == ErrorCode.NONE
    assert await _sync(client, a.member_id, a.generation_id, **{a.member_id: b"all"}) == (
        ErrorCode.NONE,
        b"all",
    )
    await trio.sleep(30)
    # b's JoinGroup waits for a to rejoin (up to the 300 s rebalance timeout).
    b = Pending()
    log = broker.topics.partition(OFFSETS_TOPIC, 0).log
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.run, join(client, "g", session=300_000, rebalance=300_000))
        await _settled()
        assert not b.answered.is_set()
        dropped = coordinator_for(broker)
        unload(cast(Any, SimpleNamespace(broker=broker)), OFFSETS_TOPIC, 0, False)
        written = log.log_end_offset
        with trio.fail_after(1):
            await b.answered.wait()
    assert b.answer.error_code == ErrorCode.NOT_COORDINATOR
    # The dropped coordinator's timers (the offsets' expiry, a's session) fire nothing.
    await trio.sleep(600)
    dropped.poll()
    assert log.log_end_offset == written
    # Its successor, loaded from the log, has the group as it was, and b joins there.
    successor = coordinator_for(broker)
    assert successor is not dropped
    assert successor.describe_group("g").state == "Stable"


async def test_queued_consumer_group_writes_time_out_together(
    autojump_clock: trio.testing.MockClock, virtual_broker: BrokerState
) -> None:
    # A follower that died but is still in the ISR (replica.lag.time.max.ms not over
    # yet): no write of the group is replicated. Kafka's runtime appends the queued
    # heartbeats at once and times each out offsets.commit.timeout.ms (5 s) after it;
    # here they wait for each other, and share the first's deadline instead of waiting
    # 5 s each in turn: every member is answered COORDINATOR_NOT_AVAILABLE after 5 s.
    broker = virtual_broker
    holder = cast(Any, SimpleNamespace(broker=broker))
    create_topic(holder, "t", 2)
    replica = _replicate(holder, OFFSETS_TOPIC)
    client = InProcessClient(broker)
    start = trio.current_time()
    answered: dict[str, tuple[int, float]] = {}

    async def first_beat(member: str) -> None:
        answer = await _first_beat(client, member)
        answered[member] = (answer.error_code, trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for member in ("a", "b", "c", "d"):
            nursery.start_soon(first_beat, member)
    assert answered == {
        m: (ErrorCode.COORDINATOR_NOT_AVAILABLE, pytest.approx(5.0)) for m in "abcd"
    }
    assert replica.isr == [1, 2]
    # Nothing is left half done: the log replays to the group memory has (none).
    assert _live(holder) is None and _replayed(holder) is None

    # The follower is back: queued writes go through one after the other, each on top
    # of the last, well within the timeout.
    async def confirm() -> None:
        while len(answered) < 3:
            _confirm(replica)
            await trio.sleep(0.01)

    answered.clear()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(confirm)
        for member in ("a", "b", "c"):
            nursery.start_soon(first_beat, member)
    assert {code for code, _ in answered.values()} == {ErrorCode.NONE}
    assert max(elapsed for _, elapsed in answered.values()) < 1
    epoch, members = await _described(client) or (0, {})
    assert epoch == 3 and set(members) == {"a", "b", "c"}


# --- A transaction coordinator dropped while its writes, markers or timers are due -----


def _state_partition(broker: BrokerState) -> Any:
    """The ``__transaction_state`` partition of the transactional id TID (created here)."""
    topic = broker.topics.create_internal(TRANSACTION_STATE_TOPIC)
    index = partition_for(TID, len(topic.partitions))
    assert index == 0  # so that moving partition 1 leaves TID's partition led here
    return topic.partitions[index]


def _drop_txn_coordinator(broker: BrokerState, index: int) -> TransactionCoordinator:
    """Leadership of ``__transaction_state``-``index`` moves: the loaded coordinator is
    dropped (kbroker.cluster.coordinators.unload); returns the dropped one."""
    dropped = txn_coordinator(broker)
    unload(cast(Any, SimpleNamespace(broker=broker)), TRANSACTION_STATE_TOPIC, index, False)
    return dropped


async def _ongoing(
    broker: BrokerState, timeout_ms: int = 60_000
) -> tuple[InProcessClient, PartitionLog, int, int]:
    """TID's transaction on ``broker``, with a new topic "t", "t"-0 added and a batch of
    two records written to it: a client, the ``__transaction_state`` log, the producer."""
    create_topic(cast(Any, SimpleNamespace(broker=broker)), "t")
    state_log = _state_partition(broker).log
    client = InProcessClient(broker)
    started = await init(client, timeout_ms=timeout_ms)
    assert started.error_code == ErrorCode.NONE
    pid, epoch = started.producer_id, started.producer_epoch
    assert await add(client, pid, epoch, [("t", 0)]) == {("t", 0): ErrorCode.NONE}
    assert (await tx_produce(client, "t", txn_batch(pid, epoch, 0))).error_code == ErrorCode.NONE
    return client, state_log, pid, epoch


async def test_an_unloaded_transaction_coordinator_leaves_its_completion_to_its_successor(
    autojump_clock: trio.testing.MockClock, virtual_broker: BrokerState
) -> None:
    # Kafka answers EndTxn once PrepareCommit is written and sends the markers after. When
    # the coordinator resigns meanwhile (TransactionCoordinator.onResignation), the markers
    # still queued are dropped (TransactionMarkerChannelManager
    # .removeMarkersForTxnTopicPartition) and a completion whose markers arrive later is
    # not appended (writeTxnCompletion: no longer the coordinator): the successor loads
    # PrepareCommit and finishes the transaction itself. Here EndTxn waits for its markers;
    # a dropped coordinator must answer it at once and write no CompleteCommit after.
    broker = virtual_broker
    client, state_log, pid, epoch = await _ongoing(broker)
    # "t"-0 gets a second, silent replica: the COMMIT marker waits for its ISR.
    part = broker.topics.partition("t", 0)
    part.replica = ReplicatedPartition(part.log, broker_id=1, min_insync_replicas=2)
    part.replica.make_leader(leader_epoch=1, isr=[1, 2], replicas=[1, 2])
    ended = Pending()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ended.run, end(client, pid, epoch, True))
        await trio.testing.wait_all_tasks_blocked()
        assert not ended.answered.is_set()  # PrepareCommit written, the marker in flight
        assert part.log.log_end_offset == 3
        dropped = _drop_txn_coordinator(broker, 0)
        written = state_log.log_end_offset
        with trio.fail_after(1):
            await ended.answered.wait()
    assert ended.answer == ErrorCode.NONE
    _confirm(part.replica)  # the marker reaches the ISR: nothing more for the dropped one
    await trio.testing.wait_all_tasks_blocked()
    assert state_log.log_end_offset == written
    assert dropped.describe(TID) is not None
    # The successor, loaded from the log, finishes the transaction: its markers again (a
    # repeated marker closes nothing), then CompleteCommit.
    assert await _state(client) == "PrepareCommit"
    _confirm(part.replica)
    await trio.testing.wait_all_tasks_blocked()
    assert await _state(client) == "CompleteCommit"
    assert state_log.log_end_offset == written + 1
    assert await end(client, pid, epoch, True) == ErrorCode.NONE


async def test_a_transaction_write_completing_in_an_unloaded_coordinator_is_not_coordinator(
    autojump_clock: trio.testing.MockClock, virtual_broker: BrokerState
) -> None:
    # TransactionStateManager.appendTransactionToLog: a write that completes once its
    # partition is unloaded or loaded again (a new coordinator epoch) changes nothing and
    # is answered NOT_COORDINATOR, and EndTxn then sends no marker. Leadership of any
    # __transaction_state partition moving drops the whole coordinator; when TID's
    # PrepareCommit is replicated afterwards, the dropped coordinator must write neither
    # the markers nor CompleteCommit: the successor, loaded from the log, does.
    broker = virtual_broker
    create_topic(cast(Any, SimpleNamespace(broker=broker)), "t", 2)
    state = _state_partition(broker)
    replica = _replicate(SimpleNamespace(broker=broker), TRANSACTION_STATE_TOPIC)
    assert state.replica is replica
    client = InProcessClient(broker)
    async with _in_flight(replica, init(client)) as started:
        _confirm(replica)
    pid, epoch = started.answer.producer_id, started.answer.producer_epoch
    async with _in_flight(replica, add(client, pid, epoch, [("t", 0)])) as added:
        _confirm(replica)
    assert added.answer == {("t", 0): ErrorCode.NONE}
    assert (await tx_produce(client, "t", txn_batch(pid, epoch, 0))).error_code == ErrorCode.NONE
    data_log = broker.topics.partition("t", 0).log
    before_marker = data_log.log_end_offset

    # AddPartitionsToTxn in flight when partition 1 moves: NOT_COORDINATOR, though its
    # record is in the log (the successor has it; the client's retry there succeeds).
    async with _in_flight(replica, add(client, pid, epoch, [("t", 1)])) as moved:
        _drop_txn_coordinator(broker, 1)
        _confirm(replica)
    assert moved.answer == {("t", 1): ErrorCode.NOT_COORDINATOR}
    assert await add(client, pid, epoch, [("t", 1)]) == {("t", 1): ErrorCode.NONE}

    async with _in_flight(replica, end(client, pid, epoch, True)) as ended:
        _drop_txn_coordinator(broker, 1)
        written = replica.log.log_end_offset
        _confirm(replica)  # PrepareCommit is replicated
    assert ended.answer == ErrorCode.NOT_COORDINATOR
    await trio.testing.wait_all_tasks_blocked()
    assert replica.log.log_end_offset == written
    assert data_log.log_end_offset == before_marker

    # The client looks the coordinator up again and retries: the successor writes the
    # markers (once), then CompleteCommit.
    assert await end(client, pid, epoch, True) == ErrorCode.CONCURRENT_TRANSACTIONS
    assert data_log.log_end_offset == before_marker + 1
    _confirm(replica)
    await trio.testing.wait_all_tasks_blocked()
    assert await end(client, pid, epoch, True) == ErrorCode.NONE
    assert await _state(client) == "CompleteCommit"
    assert data_log.log_end_offset == before_marker + 1


async def test_an_unloaded_transaction_coordinator_fires_no_timer(
    autojump_clock: trio.testing.MockClock, virtual_broker: BrokerState
) -> None:
    # Timeouts and transactional.id expiry are the coordinator's only writes of its own
    # (TransactionCoordinator.abortTimedOutTransactions, TransactionStateManager
    # .removeExpiredTransactionalIds); both walk only the partitions still loaded, so a
    # dropped coordinator aborts and expires nothing: its successor does.
    broker = virtual_broker
    client, state_log, pid, epoch = await _ongoing(broker, timeout_ms=1000)
    data_log = broker.topics.partition("t", 0).log
    dropped = _drop_txn_coordinator(broker, 0)
    written, data_end = state_log.log_end_offset, data_log.log_end_offset
    await trio.sleep(7 * 24 * 3600 + 10)  # past the timeout and transactional.id expiry
    assert dropped.next_deadline_ms() is None
    assert dropped.poll() == []
    assert (state_log.log_end_offset, data_log.log_end_offset) == (written, data_end)
    # The successor aborts the transaction under a bumped epoch: the producer is fenced.
    assert await _state(client) == "CompleteAbort"
    assert data_log.log_end_offset == data_end + 1
    assert await end(client, pid, epoch, True) == ErrorCode.PRODUCER_FENCED


async def test_markers_an_unloaded_coordinator_still_sends_are_dropped(
    autojump_clock: trio.testing.MockClock, virtual_broker: BrokerState
) -> None:
    # TransactionMarkerChannelManager.removeMarkersForTxnTopicPartition: the markers a
    # resigned coordinator has not delivered yet are dropped (its successor sends them
    # again) instead of being retried up to transaction.max.timeout.ms.
    node = ClusterNode(virtual_broker, zk=None)
    # "t"-0 has no live leader: the markers wait, asked again every 200 ms.
    node.metadata = cast(
        Any, SimpleNamespace(partition=lambda *tp: object(), leader_of=lambda *tp: None)
    )
    unloaded = False
    markers = _TxnMarkers(7, 0, True, (("t", 0),), 0)
    delivered: list[ErrorCode] = []
    async with trio.open_nursery() as nursery:
        node._nursery = nursery
        node.send_txn_markers(7, 0, True, [("t", 0)], 0, on_done=delivered.append)
        node.send_txn_markers(
            7, 0, True, [("t", 0)], 0, on_done=delivered.append, abandoned=lambda: unloaded
        )
        await trio.sleep(60)
        assert delivered == []
        unloaded = True
        with trio.fail_after(1):
            while not delivered:
                await trio.sleep(0.01)
        assert delivered == [ErrorCode.NOT_COORDINATOR]  # the abandoned one; the other goes on
        assert await node._send_txn_markers(markers, lambda: unloaded) == (
            ErrorCode.NOT_COORDINATOR
        )
        nursery.cancel_scope.cancel()


async def test_markers_a_leader_fences_are_not_sent_again(
    autojump_clock: trio.testing.MockClock,
    virtual_broker: BrokerState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # TransactionMarkerRequestCompletionHandler: TRANSACTION_COORDINATOR_FENCED from a
    # partition's leader ends the sending (a coordinator of a newer epoch owns the
    # transaction), where NOT_ENOUGH_REPLICAS and the like are retried.
    from kbroker.cluster import node as node_module
    from kbroker.wire.messages import WriteTxnMarkersResponse

    node = ClusterNode(virtual_broker, zk=None)
    node.metadata = cast(
        Any,
        SimpleNamespace(
            partition=lambda *tp: object(),
            leader_of=lambda *tp: 2,
            brokers={2: SimpleNamespace(host="10.0.0.2", port=9092)},
        ),
    )
    answers = [ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.TRANSACTION_COORDINATOR_FENCED]
    sent: list[int] = []

    async def leader(host: str, port: int, body: Any, *, version: int) -> Any:
        (marker,) = body.markers
        sent.append(marker.coordinator_epoch)
        R = WriteTxnMarkersResponse
        code = answers.pop(0)
        return R(
            markers=[
                R.WritableTxnMarkerResult(
                    producer_id=marker.producer_id,
                    topics=[
                        R.WritableTxnMarkerTopicResult(
                            name="t",
                            partitions=[
                                R.WritableTxnMarkerPartitionResult(
                                    partition_index=0, error_code=code
                                )
                            ],
                        )
                    ],
                )
            ]
        )

    monkeypatch.setattr(node_module, "request_once", leader)
    markers = _TxnMarkers(7, 0, True, (("t", 0),), 5)
    with trio.fail_after(60):
        result = await node._send_txn_markers(markers)
    assert result == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert sent == [5, 5] and not answers


# --- Offsets staged by an open transaction keep an Empty classic group ------------------


async def _staged_in_open_transaction(broker: BrokerState) -> tuple[InProcessClient, int, int]:
    """Group "g": a standalone commit of 3 on "t"-0 (an Empty classic group, offsets
    only), then TxnOffsetCommit of 5 on "t"-0 in a transaction left open (its timeout
    far away): a client, the producer id and epoch."""
    create_topic(cast(Any, SimpleNamespace(broker=broker)), "t")
    client = InProcessClient(broker)
    assert await _commit(client, 3) == ErrorCode.NONE
    started = await init(client, timeout_ms=600_000)
    pid, epoch = started.producer_id, started.producer_epoch
    assert await add_offsets(client, pid, epoch) == ErrorCode.NONE
    assert await txn_commit_offset(client, pid, epoch, 5) == ErrorCode.NONE
    assert await _group_state(client) == ("Empty", [])
    return client, pid, epoch


async def test_offsets_staged_by_an_open_transaction_keep_an_empty_group(
    autojump_clock: trio.testing.MockClock, virtual_broker: BrokerState
) -> None:
    # GroupMetadataManager.cleanupGroupMetadata makes an Empty group Dead only once
    # GroupMetadata.hasOffsets is false, and pending transactional offset commits count:
    # the retention check expires the committed offset but keeps the group, and the
    # transaction's commit then lands in it.
    client, pid, epoch = await _staged_in_open_transaction(virtual_broker)
    await trio.sleep(65)  # past offsets.retention.minutes (1), checked every second
    assert await committed(client) == -1  # the committed offset expired
    assert await _group_state(client) == ("Empty", [])
    assert await end(client, pid, epoch, True) == ErrorCode.NONE
    assert await committed(client) == 5
    assert await _group_state(client) == ("Empty", [])
    # Nothing staged any more: once the offset expires the group goes at the next check.
    await trio.sleep(65)
    assert await committed(client) == -1
    assert await _group_state(client) == ("Dead", [])


async def test_deleting_a_group_drops_the_offsets_its_open_transaction_staged(
    autojump_clock: trio.testing.MockClock, virtual_broker: BrokerState
) -> None:
    # GroupCoordinator.handleDeleteGroups deletes an Empty group whatever its open
    # transactions staged; their commit finds no group (handleTxnCompletion) and adds
    # nothing. OffsetDelete likewise drops the staged offsets of the partitions it
    # deletes (GroupMetadata.removeOffsets).
    client, pid, epoch = await _staged_in_open_transaction(virtual_broker)
    deleted = await client.request(DeleteGroupsRequest(groups_names=["g"]))
    assert deleted.results[0].error_code == ErrorCode.NONE
    assert await end(client, pid, epoch, True) == ErrorCode.NONE
    assert await committed(client) == -1
    assert await _group_state(client) == ("Dead", [])

    # OffsetDelete: the same, partition by partition.
    assert await _commit(client, 3) == ErrorCode.NONE
    started = await init(client, timeout_ms=600_000)
    pid, epoch = started.producer_id, started.producer_epoch
    assert await add_offsets(client, pid, epoch) == ErrorCode.NONE
    assert await txn_commit_offset(client, pid, epoch, 5) == ErrorCode.NONE
    answer = await client.request(offset_delete_request("g", "t", 0))
    assert answer.error_code == ErrorCode.NONE
    assert answer.topics[0].partitions[0].error_code == ErrorCode.NONE
    # Nothing committed, in flight or staged is left: the Empty group is Dead
    # (cleanupGroupMetadata after handleDeleteOffsets).
    assert await _group_state(client) == ("Dead", [])
    assert await end(client, pid, epoch, True) == ErrorCode.NONE
    assert await committed(client) == -1


async def test_offsets_staged_by_an_open_transaction_keep_a_consumer_groups_offsets(
    autojump_clock: trio.testing.MockClock, virtual_broker: BrokerState
) -> None:
    # KIP-848 groups: OffsetMetadataManager.cleanupExpiredOffsets keeps an offset an open
    # transaction staged a new one for, and the empty group with it while the
    # transaction is open; once it committed, the offset ages and the group goes.
    broker = virtual_broker
    create_topic(cast(Any, SimpleNamespace(broker=broker)), "t", 2)
    client = InProcessClient(broker)
    assert (await _first_beat(client, "a")).error_code == ErrorCode.NONE
    commit = commit_request("g", {("t", 0): 3}, generation=1, member="a")
    assert (await client.request(commit, version=9)).topics[0].partitions[
        0
    ].error_code == ErrorCode.NONE
    CGH = ConsumerGroupHeartbeatRequest
    left = await client.request(CGH(group_id="g", member_id="a", member_epoch=-1))
    assert left.error_code == ErrorCode.NONE
    started = await init(client, timeout_ms=600_000)
    pid, epoch = started.producer_id, started.producer_epoch
    assert await add_offsets(client, pid, epoch) == ErrorCode.NONE
    assert await txn_commit_offset(client, pid, epoch, 5) == ErrorCode.NONE

    await trio.sleep(65)  # past offsets.retention.minutes (1), checked every second
    assert await committed(client) == 3
    assert await _described(client) == (2, {})
    assert await end(client, pid, epoch, True) == ErrorCode.NONE
    assert await committed(client) == 5
    await trio.sleep(65)
    assert await committed(client) == -1
    assert await _described(client) is None
