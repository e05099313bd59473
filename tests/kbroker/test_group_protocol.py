"""Group APIs over TCP against a live broker (RawClient speaks the wire codec)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from kbroker.coordinator.group import GroupRecord, partition_for
from kbroker.coordinator.offsets import OffsetRecord
from kbroker.coordinator.store import decode_record
from kbroker.internal_topics import OFFSETS_TOPIC
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    DeleteGroupsRequest,
    DeleteTopicsRequest,
    DescribeGroupsRequest,
    FindCoordinatorRequest,
    HeartbeatRequest,
    LeaveGroupRequest,
    ListGroupsRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from kbroker.wire.records import iter_records, parse_header
from tests.kbroker.helpers import (
    commit_request,
    first_heartbeat,
    join,
    join_req,
    offset_delete_request,
    subscription,
)

E = ErrorCode
# Few offsets partitions: creating 50 partition logs dominates these tests otherwise.
FAST = {"group.initial.rebalance.delay.ms": 0, "offsets.topic.num.partitions": 3}


def commit_req(group, generation, member, offsets, **kw) -> OffsetCommitRequest:
    return commit_request(group, offsets, generation=generation, member=member, metadata="m", **kw)


async def test_find_coordinator_every_version_and_creates_offsets_topic(make_server):
    srv = await make_server(offsets_topic_num_partitions=5)
    async with await srv.connect() as c:
        for v in range(0, 4):
            r = await c.request(FindCoordinatorRequest(key="g"), version=v)
            assert (r.error_code, r.node_id, r.host, r.port) == (E.NONE, 1, *srv.address)
        r = await c.request(
            FindCoordinatorRequest(key_type=1, coordinator_keys=["a", "b"]), version=4
        )
        assert [(x.key, x.node_id, x.port, x.error_code) for x in r.coordinators] == [
            ("a", 1, srv.address[1], E.NONE),
            ("b", 1, srv.address[1], E.NONE),
        ]
        r = await c.request(FindCoordinatorRequest(key="g", key_type=7), version=3)
        assert r.error_code == E.INVALID_REQUEST
    topic = srv.broker.topics.get(OFFSETS_TOPIC)
    assert topic is not None and topic.internal and len(topic.partitions) == 5
    assert topic.configs.get("cleanup.policy") == "compact"


async def test_full_member_lifecycle(make_server):
    srv = await make_server(**FAST)
    srv.broker.topics.create("t", 2)
    async with await srv.connect() as c:
        first = await c.request(join_req("g"))
        assert first.error_code == E.MEMBER_ID_REQUIRED and first.member_id
        j = await c.request(join_req("g", first.member_id))
        assert (j.error_code, j.generation_id, j.leader, j.protocol_name, j.protocol_type) == (
            E.NONE,
            1,
            first.member_id,
            "range",
            "consumer",
        )
        assert [(m.member_id, bytes(m.metadata)) for m in j.members] == [
            (first.member_id, subscription("t"))
        ]
        s = await c.request(
            SyncGroupRequest(
                group_id="g",
                generation_id=1,
                member_id=j.member_id,
                protocol_type="consumer",
                protocol_name="range",
                assignments=[
                    SyncGroupRequest.SyncGroupRequestAssignment(
                        member_id=j.member_id, assignment=b"all of t"
                    )
                ],
            )
        )
        assert (s.error_code, bytes(s.assignment), s.protocol_name) == (
            E.NONE,
            b"all of t",
            "range",
        )
        h = await c.request(HeartbeatRequest(group_id="g", generation_id=1, member_id=j.member_id))
        assert h.error_code == E.NONE
        oc = await c.request(
            commit_req("g", 1, j.member_id, {("t", 0): 5, ("t", 1): 7, ("nope", 0): 1})
        )
        assert {
            (t.name, p.partition_index): p.error_code for t in oc.topics for p in t.partitions
        } == {("t", 0): E.NONE, ("t", 1): E.NONE, ("nope", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
        d = await c.request(DescribeGroupsRequest(groups=["g"], include_authorized_operations=True))
        g = d.groups[0]
        assert (g.group_state, g.protocol_type, g.protocol_data) == ("Stable", "consumer", "range")
        assert [
            (m.member_id, m.client_id, m.client_host, bytes(m.member_assignment)) for m in g.members
        ] == [(j.member_id, "kbroker-tests", "/127.0.0.1", b"all of t")]
        lv = await c.request(
            LeaveGroupRequest(
                group_id="g", members=[LeaveGroupRequest.MemberIdentity(member_id=j.member_id)]
            )
        )
        assert lv.error_code == E.NONE and [m.error_code for m in lv.members] == [E.NONE]
        d = await c.request(DescribeGroupsRequest(groups=["g"]))
        assert d.groups[0].group_state == "Empty" and d.groups[0].members == []
        f = await c.request(
            OffsetFetchRequest(
                groups=[OffsetFetchRequest.OffsetFetchRequestGroup(group_id="g", topics=None)]
            )
        )
        assert sorted(
            (t.name, p.partition_index, p.committed_offset, p.metadata)
            for t in f.groups[0].topics
            for p in t.partitions
        ) == [("t", 0, 5, "m"), ("t", 1, 7, "m")]


async def test_second_member_triggers_rebalance(make_server):
    srv = await make_server(**FAST)
    async with await srv.connect() as a, await srv.connect() as b:
        ja = await join(a, "g")
        await a.request(
            SyncGroupRequest(group_id="g", generation_id=1, member_id=ja.member_id, assignments=[])
        )
        results = {}

        async def join_b():
            results["b"] = await join(b, "g")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(join_b)
            # The first member learns about the rebalance from its heartbeat. Between
            # heartbeats, let b's JoinGroup reach the broker (no wall-clock wait).
            while True:
                h = await a.request(
                    HeartbeatRequest(group_id="g", generation_id=1, member_id=ja.member_id)
                )
                if h.error_code == E.REBALANCE_IN_PROGRESS:
                    break
                await trio.testing.wait_all_tasks_blocked()
            results["a"] = await a.request(join_req("g", ja.member_id))
        ra, rb = results["a"], results["b"]
        assert ra.generation_id == rb.generation_id == 2
        assert ra.leader == ja.member_id and len(ra.members) == 2 and rb.members == []


async def test_join_v0_and_errors(make_server):
    srv = await make_server(**FAST)
    async with await srv.connect() as c:
        r = await c.request(join_req("g0"), version=0)
        assert r.error_code == E.NONE and r.member_id  # no MEMBER_ID_REQUIRED before v4
        r = await c.request(join_req("g0", session=1000))
        assert r.error_code == E.INVALID_SESSION_TIMEOUT
        r = await c.request(join_req("g0", "stranger"))
        assert r.error_code == E.UNKNOWN_MEMBER_ID and r.protocol_name is None
        r = await c.request(join_req("g0", "stranger"), version=6)
        assert r.error_code == E.UNKNOWN_MEMBER_ID and r.protocol_name == ""
        h = await c.request(HeartbeatRequest(group_id="g0", generation_id=9, member_id="x"))
        assert h.error_code == E.UNKNOWN_MEMBER_ID
        lv = await c.request(LeaveGroupRequest(group_id="g0", member_id="x"), version=0)
        assert lv.error_code == E.UNKNOWN_MEMBER_ID


async def test_static_member_rejoins_with_same_generation(make_server):
    srv = await make_server(**FAST)

    def member(joined: Any) -> dict[str, Any]:
        """The fields naming static member host-1 of group gs, as ``joined`` made it."""
        return {
            "group_id": "gs",
            "generation_id": joined.generation_id,
            "member_id": joined.member_id,
            "group_instance_id": "host-1",
        }

    async with await srv.connect() as c:
        j = await join(c, "gs", instance="host-1")
        assert j.error_code == E.NONE
        assignment = SyncGroupRequest.SyncGroupRequestAssignment(
            member_id=j.member_id, assignment=b"A"
        )
        await c.request(SyncGroupRequest(**member(j), assignments=[assignment]))
    async with await srv.connect() as c:  # "restarted" client, same instance id
        again = await c.request(join_req("gs", instance="host-1"))
        assert again.error_code == E.NONE and again.generation_id == j.generation_id
        assert again.member_id != j.member_id
        s = await c.request(SyncGroupRequest(**member(again)))
        assert bytes(s.assignment) == b"A"
        # The old member id of the same instance is fenced.
        h = await c.request(HeartbeatRequest(**member(j)))
        assert h.error_code == E.FENCED_INSTANCE_ID


async def test_offsets_and_group_survive_restart_in_kafka_format(make_server, tmp_path):
    data = str(tmp_path / "persist")
    srv = await make_server(log_dirs=data, **FAST)
    srv.broker.topics.create("t", 1)
    async with await srv.connect() as c:
        j = await join(c, "gp")
        await c.request(
            SyncGroupRequest(group_id="gp", generation_id=1, member_id=j.member_id, assignments=[])
        )
        r = await c.request(commit_req("gp", 1, j.member_id, {("t", 0): 42}))
        assert r.topics[0].partitions[0].error_code == E.NONE
        r = await c.request(commit_req("solo", -1, "", {("t", 0): 9}), version=2)
        assert r.topics[0].partitions[0].error_code == E.NONE
    # The records are Kafka's, in the group's partition.
    part = srv.broker.topics.get(OFFSETS_TOPIC).partitions[partition_for("gp", 3)]
    data_bytes = part.log.read(0, 1 << 20).read_bytes()
    decoded, pos = [], 0
    while pos < len(data_bytes):
        decoded += [decode_record(r.key, r.value) for r in iter_records(data_bytes, pos)]
        pos += parse_header(data_bytes, pos).size
    assert any(isinstance(x, GroupRecord) and x.group_id == "gp" for x in decoded)
    assert any(isinstance(x, OffsetRecord) and x.value.offset == 42 for x in decoded)
    await srv.stop()

    srv = await make_server(log_dirs=data, **FAST)
    async with await srv.connect() as c:
        f = await c.request(OffsetFetchRequest(group_id="gp", topics=None), version=7)
        assert [
            (t.name, p.partition_index, p.committed_offset) for t in f.topics for p in t.partitions
        ] == [("t", 0, 42)]
        f = await c.request(
            OffsetFetchRequest(
                group_id="solo",
                topics=[
                    OffsetFetchRequest.OffsetFetchRequestTopic(name="t", partition_indexes=[0, 1])
                ],
            ),
            version=1,
        )
        assert [(p.partition_index, p.committed_offset) for p in f.topics[0].partitions] == [
            (0, 9),
            (1, -1),
        ]
        # The member is still known after the restart (same generation) until its session ends.
        h = await c.request(HeartbeatRequest(group_id="gp", generation_id=1, member_id=j.member_id))
        assert h.error_code == E.NONE


async def test_list_describe_delete_groups(make_server):
    srv = await make_server(**FAST)
    srv.broker.topics.create("t", 1)
    async with await srv.connect() as c:
        j = await join(c, "busy")
        await c.request(commit_req("idle", -1, "", {("t", 0): 1}))
        lg = await c.request(ListGroupsRequest())
        assert sorted((g.group_id, g.group_state, g.group_type) for g in lg.groups) == [
            ("busy", "CompletingRebalance", "classic"),
            ("idle", "Empty", "classic"),
        ]
        lg = await c.request(ListGroupsRequest(states_filter=["empty"]))
        assert [g.group_id for g in lg.groups] == ["idle"]
        lg = await c.request(ListGroupsRequest(types_filter=["consumer"]))
        assert lg.groups == []
        lg = await c.request(ListGroupsRequest(), version=0)
        assert sorted(g.group_id for g in lg.groups) == ["busy", "idle"]
        d = await c.request(DescribeGroupsRequest(groups=["nope"]))
        assert (d.groups[0].error_code, d.groups[0].group_state) == (E.NONE, "Dead")
        od = await c.request(offset_delete_request("idle", "t", 0))
        assert od.error_code == E.NONE and od.topics[0].partitions[0].error_code == E.NONE
        # Its last offset gone, the Empty group is Dead (GroupCoordinator.handleDeleteOffsets
        # runs it through cleanupGroupMetadata): nothing left to delete.
        d = await c.request(DescribeGroupsRequest(groups=["idle"]))
        assert d.groups[0].group_state == "Dead"
        await c.request(commit_req("idle2", -1, "", {("t", 0): 1}))
        dg = await c.request(DeleteGroupsRequest(groups_names=["busy", "idle", "idle2", "nope"]))
        assert {r.group_id: r.error_code for r in dg.results} == {
            "busy": E.NON_EMPTY_GROUP,
            "idle": E.GROUP_ID_NOT_FOUND,
            "idle2": E.NONE,
            "nope": E.GROUP_ID_NOT_FOUND,
        }
        assert j.error_code == E.NONE


async def test_rebalance_completes_at_timeout_without_the_silent_member(make_server):
    """A member that never rejoins is dropped when the rebalance timeout passes: the
    waiting JoinGroup itself fires the timer (no background task needed)."""
    srv = await make_server(**FAST)
    async with await srv.connect() as a, await srv.connect() as b:
        # a's rebalance timeout bounds how long the group waits for it to rejoin.
        ja = await join(a, "gt", rebalance=300)
        await a.request(
            SyncGroupRequest(group_id="gt", generation_id=1, member_id=ja.member_id, assignments=[])
        )
        jb = await join(b, "gt", rebalance=300)  # a stays silent
        assert (jb.error_code, jb.generation_id, jb.leader) == (E.NONE, 2, jb.member_id)
        assert [m.member_id for m in jb.members] == [jb.member_id]
        h = await a.request(
            HeartbeatRequest(group_id="gt", generation_id=1, member_id=ja.member_id)
        )
        assert h.error_code == E.UNKNOWN_MEMBER_ID


async def test_a_kip848_member_commits_with_offset_commit_v9_or_later(make_server):
    """ConsumerGroup.validateOffsetCommit: a member of a KIP-848 group commits with
    OffsetCommit v9+ (the version that carries its member epoch); before v9 its commit is
    UNSUPPORTED_VERSION. An admin's commit (epoch -1) to the empty group may use any."""
    from kbroker.wire.messages import ConsumerGroupHeartbeatRequest

    srv = await make_server(**FAST)
    srv.broker.topics.create("t", 2)
    tp = ("t", 0)
    async with await srv.connect() as c:
        r = await c.request(first_heartbeat("kg", "t"), version=0)
        assert (r.error_code, r.member_epoch) == (E.NONE, 1)
        for version in (1, 8):
            old = await c.request(commit_req("kg", 1, r.member_id, {tp: 3}), version=version)
            assert old.topics[0].partitions[0].error_code == E.UNSUPPORTED_VERSION
        ok = await c.request(commit_req("kg", 1, r.member_id, {tp: 3}), version=9)
        assert ok.topics[0].partitions[0].error_code == E.NONE
        left = await c.request(
            ConsumerGroupHeartbeatRequest(group_id="kg", member_id=r.member_id, member_epoch=-1),
            version=0,
        )
        assert left.error_code == E.NONE
        admin = await c.request(commit_req("kg", -1, "", {tp: 4}), version=8)
        assert admin.topics[0].partitions[0].error_code == E.NONE


async def test_kip848_consumer_group_heartbeat_describe_and_commit(make_server):
    """ConsumerGroupHeartbeat v0: the broker assigns; commits carry the member epoch."""
    from kbroker.wire.messages import (
        ConsumerGroupDescribeRequest,
        ConsumerGroupHeartbeatRequest,
    )

    srv = await make_server(**FAST)
    topic = srv.broker.topics.create("t", 2)
    async with await srv.connect() as c:
        r = await c.request(
            first_heartbeat("kg", "t"),
            version=0,
        )
        assert r.error_code == E.NONE and r.member_epoch == 1 and r.member_id
        assert r.heartbeat_interval_ms == 5000
        assert [(tp.topic_id, sorted(tp.partitions)) for tp in r.assignment.topic_partitions] == [
            (topic.topic_id, [0, 1])
        ]
        stale = await c.request(commit_req("kg", 0, r.member_id, {("t", 0): 3}), version=9)
        assert stale.topics[0].partitions[0].error_code == E.STALE_MEMBER_EPOCH
        ok = await c.request(commit_req("kg", 1, r.member_id, {("t", 0): 3}), version=9)
        assert ok.topics[0].partitions[0].error_code == E.NONE
        d = await c.request(ConsumerGroupDescribeRequest(group_ids=["kg", "nope"]))
        g, missing = d.groups
        assert (g.group_state, g.group_epoch, g.assignor_name) == ("Stable", 1, "uniform")
        assert [(m.member_id, m.member_epoch, m.subscribed_topic_names) for m in g.members] == [
            (r.member_id, 1, ["t"])
        ]
        assert missing.error_code == E.GROUP_ID_NOT_FOUND
        lg = await c.request(ListGroupsRequest(types_filter=["consumer"]))
        assert [(x.group_id, x.group_type) for x in lg.groups] == [("kg", "consumer")]
        left = await c.request(
            ConsumerGroupHeartbeatRequest(group_id="kg", member_id=r.member_id, member_epoch=-1),
            version=0,
        )
        assert left.error_code == E.NONE and left.member_epoch == -1
        f = await c.request(
            OffsetFetchRequest(
                groups=[OffsetFetchRequest.OffsetFetchRequestGroup(group_id="kg", topics=None)]
            )
        )
        assert [
            (p.partition_index, p.committed_offset)
            for t in f.groups[0].topics
            for p in t.partitions
        ] == [(0, 3)]


async def test_require_stable_reports_offsets_pending_in_a_transaction(make_server):
    """KIP-447: while a transaction holds offsets for the group, OffsetFetch with
    require_stable answers UNSTABLE_OFFSET_COMMIT; after the commit the offset shows."""
    from kbroker.wire.messages import (
        AddOffsetsToTxnRequest,
        EndTxnRequest,
        InitProducerIdRequest,
        TxnOffsetCommitRequest,
    )

    srv = await make_server(**FAST)
    srv.broker.topics.create("t", 1)
    async with await srv.connect() as c:
        init = await c.request(
            InitProducerIdRequest(transactional_id="tx", transaction_timeout_ms=60000)
        )
        assert init.error_code == E.NONE
        pid, epoch = init.producer_id, init.producer_epoch
        added = await c.request(
            AddOffsetsToTxnRequest(
                transactional_id="tx", producer_id=pid, producer_epoch=epoch, group_id="gx"
            )
        )
        assert added.error_code == E.NONE
        staged = await c.request(
            TxnOffsetCommitRequest(
                transactional_id="tx",
                group_id="gx",
                producer_id=pid,
                producer_epoch=epoch,
                generation_id=-1,
                member_id="",
                topics=[
                    TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(
                        name="t",
                        partitions=[
                            TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition(
                                partition_index=0, committed_offset=11
                            )
                        ],
                    )
                ],
            )
        )
        assert staged.topics[0].partitions[0].error_code == E.NONE

        def fetch(stable: bool) -> OffsetFetchRequest:
            return OffsetFetchRequest(
                require_stable=stable,
                groups=[
                    OffsetFetchRequest.OffsetFetchRequestGroup(
                        group_id="gx",
                        topics=[
                            OffsetFetchRequest.OffsetFetchRequestTopics(
                                name="t", partition_indexes=[0]
                            )
                        ],
                    )
                ],
            )

        f = await c.request(fetch(True))
        p = f.groups[0].topics[0].partitions[0]
        assert (p.error_code, p.committed_offset) == (E.UNSTABLE_OFFSET_COMMIT, -1)
        f = await c.request(fetch(False))
        p = f.groups[0].topics[0].partitions[0]
        assert (p.error_code, p.committed_offset) == (E.NONE, -1)  # not committed yet
        end = await c.request(
            EndTxnRequest(
                transactional_id="tx", producer_id=pid, producer_epoch=epoch, committed=True
            )
        )
        assert end.error_code == E.NONE
        f = await c.request(fetch(True))
        p = f.groups[0].topics[0].partitions[0]
        assert (p.error_code, p.committed_offset) == (E.NONE, 11)


async def test_deleting_a_topic_drops_its_committed_offsets(make_server):
    """A topic deleted and re-created under the same name does not resume from the old
    group's offsets (Kafka removes offsets of deleted partitions); other topics keep theirs."""
    srv = await make_server(**FAST)
    srv.broker.topics.create("gone", 1)
    srv.broker.topics.create("kept", 1)
    async with await srv.connect() as c:
        r = await c.request(commit_req("solo", -1, "", {("gone", 0): 7, ("kept", 0): 5}), version=2)
        assert [p.error_code for t in r.topics for p in t.partitions] == [E.NONE, E.NONE]
        d = await c.request(DeleteTopicsRequest(topic_names=["gone"], timeout_ms=1000), version=4)
        assert d.responses[0].error_code == E.NONE
        srv.broker.topics.create("gone", 1)
        f = await c.request(OffsetFetchRequest(group_id="solo", topics=None), version=7)
        assert [
            (t.name, p.partition_index, p.committed_offset) for t in f.topics for p in t.partitions
        ] == [("kept", 0, 5)]


async def test_deleting_a_topic_without_groups_does_not_create_offsets_topic(make_server):
    srv = await make_server(**FAST)
    srv.broker.topics.create("t", 1)
    async with await srv.connect() as c:
        d = await c.request(DeleteTopicsRequest(topic_names=["t"], timeout_ms=1000), version=4)
        assert d.responses[0].error_code == E.NONE
    assert srv.broker.topics.get(OFFSETS_TOPIC) is None


async def test_kip848_group_survives_broker_restart(make_server, tmp_path):
    """A KIP-848 member heartbeats on after a restart with its id and epoch, and the
    group epoch and assignment are those it had (Kafka replays the ConsumerGroup records)."""
    from kbroker.wire.messages import ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest

    data = str(tmp_path / "kip848")
    srv = await make_server(log_dirs=data, **FAST)
    topic = srv.broker.topics.create("t", 2)
    async with await srv.connect() as c:
        a = await c.request(
            first_heartbeat("kr", "t"),
            version=0,
        )
        owned = [
            ConsumerGroupHeartbeatRequest.TopicPartitions(
                topic_id=topic.topic_id, partitions=[0, 1]
            )
        ]
        assert a.error_code == E.NONE and a.member_epoch == 1
        ok = await c.request(commit_req("kr", 1, a.member_id, {("t", 1): 17}), version=9)
        assert ok.topics[0].partitions[0].error_code == E.NONE
    await srv.stop()

    srv = await make_server(log_dirs=data, **FAST)
    async with await srv.connect() as c:
        r = await c.request(
            ConsumerGroupHeartbeatRequest(
                group_id="kr", member_id=a.member_id, member_epoch=1, topic_partitions=owned
            ),
            version=0,
        )
        assert (r.error_code, r.member_id, r.member_epoch) == (E.NONE, a.member_id, 1)
        d = await c.request(ConsumerGroupDescribeRequest(group_ids=["kr"]))
        g = d.groups[0]
        assert (g.error_code, g.group_state, g.group_epoch, g.assignment_epoch) == (
            E.NONE,
            "Stable",
            1,
            1,
        )
        assert [
            (
                m.member_id,
                m.member_epoch,
                m.subscribed_topic_names,
                [(tp.topic_id, sorted(tp.partitions)) for tp in m.assignment.topic_partitions],
            )
            for m in g.members
        ] == [(a.member_id, 1, ["t"], [(topic.topic_id, [0, 1])])]
        dg = await c.request(DescribeGroupsRequest(groups=["kr"]))
        assert (dg.groups[0].protocol_type, [m.member_id for m in dg.groups[0].members]) == (
            "consumer",
            [a.member_id],
        )
        # Commits from the restored member are accepted at its epoch.
        ok = await c.request(commit_req("kr", 1, a.member_id, {("t", 0): 5}), version=9)
        assert ok.topics[0].partitions[0].error_code == E.NONE
