"""The classic group state machine, driven by an injected clock (no sleeps, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from kbroker.coordinator.classic_group import ClassicGroup, GroupState, transition
from kbroker.coordinator.group import (
    GroupCoordinator,
    GroupRecord,
    java_string_hashcode,
    partition_for,
)
from kbroker.coordinator.offsets import OffsetAndMetadata, OffsetRecord, write_error_code
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode
from tests.kbroker.group_coordinator_helpers import REBALANCE, SESSION, join, make, stable_group
from tests.kbroker.helpers import subscription

E = ErrorCode
S = GroupState


def test_java_hashcode_and_partition_match_kafka():
    assert java_string_hashcode("hello") == 99162322
    # This string hashes to Integer.MIN_VALUE: Utils.abs maps it to 0, not to a negative.
    assert java_string_hashcode("polygenelubricants") == -(2**31)
    assert partition_for("polygenelubricants", 50) == 0
    # Non-BMP characters count as two UTF-16 code units, as in Java.
    assert java_string_hashcode("\U0001f600") == 0xD83D * 31 + 0xDE00


def test_member_id_required_round_trip_then_first_generation():
    gc, clock, _ = make()
    first = join(gc, require_known=True)
    assert first.result.error_code == E.MEMBER_ID_REQUIRED
    member_id = first.result.member_id
    assert member_id
    second = join(gc, member_id, require_known=True)
    assert gc.group_state("g") is S.PREPARING_REBALANCE
    gc.poll()
    r = second.result
    assert r.error_code == E.NONE and r.generation_id == 1 and r.leader == member_id
    assert r.protocol_name == "range" and r.protocol_type == "consumer"
    assert r.members == [(member_id, None, subscription("t"))]
    assert gc.group_state("g") is S.COMPLETING_REBALANCE


def test_unused_member_id_expires_after_session_timeout():
    gc, clock, _ = make()
    stable_group(gc, clock, n=1)
    pending = join(gc, require_known=True)
    assert pending.result.error_code == E.MEMBER_ID_REQUIRED
    clock.advance(SESSION)
    gc.poll()
    # The handed-out id is forgotten: using it now is UNKNOWN_MEMBER_ID.
    late = join(gc, pending.result.member_id)
    assert late.result.error_code == E.UNKNOWN_MEMBER_ID


def test_initial_rebalance_delay_batches_members_into_one_generation():
    gc, clock, _ = make(delay=3000)
    a = join(gc, client="a")
    clock.advance(2000)
    b = join(gc, client="b")
    gc.poll()
    assert not a.done and not b.done  # still inside the delay
    clock.advance(1000)
    gc.poll()
    # Someone joined during the delay, so Kafka waits one more delay period.
    assert not a.done
    clock.advance(3000)
    gc.poll()
    assert a.result.generation_id == b.result.generation_id == 1
    assert len(a.result.members) + len(b.result.members) == 2


def test_leader_assignment_reaches_followers_and_group_becomes_stable():
    gc, clock, store = make()
    (leader, follower), gen = stable_group(gc, clock)
    again = gc.sync_group("g", gen, follower)
    assert again.result.assignment == follower.encode()
    snap = [r for r in store.records() if isinstance(r, GroupRecord)][-1].value
    assert {m.member_id: m.assignment for m in snap.members} == {
        leader: leader.encode(),
        follower: follower.encode(),
    }


def joined_pair(gc):
    """Members a and b join group g and the join completes: (leader id, follower id)."""
    a, b = join(gc, client="a"), join(gc, client="b")
    gc.poll()
    leader = a.result.leader
    (follower,) = {a.result.member_id, b.result.member_id} - {leader}
    return leader, follower


def test_follower_sync_waits_for_leader():
    gc, clock, _ = make()
    leader, follower = joined_pair(gc)
    waiting = gc.sync_group("g", 1, follower)
    assert not waiting.done
    gc.sync_group("g", 1, leader, assignments=[(follower, b"mine")])
    assert waiting.result.error_code == E.NONE and waiting.result.assignment == b"mine"


def _sync_pending_replication(gc):
    """Two members joined; the follower waits in SyncGroup and the leader's assignment is
    written but not yet replicated: (leader, follower, both SyncGroups, the assignment)."""
    leader, follower = joined_pair(gc)
    waiting = gc.sync_group("g", 1, follower)
    leading, stored = gc.prepare_sync_group(
        "g", 1, leader, assignments=[(leader, b"L"), (follower, b"F")]
    )
    assert stored is not None
    return leader, follower, (leading, waiting), stored


def test_an_assignment_is_handed_out_only_once_its_record_is_replicated():
    # GroupCoordinator.doSyncGroup: groupManager.storeGroup writes the record; the members
    # get their assignment, and the group is Stable, in its callback.
    gc, clock, store = make()
    leader, follower, syncs, stored = _sync_pending_replication(gc)
    snap = [r for r in store.records() if isinstance(r, GroupRecord)][-1].value
    assert {m.member_id: m.assignment for m in snap.members} == {leader: b"L", follower: b"F"}
    assert not any(p.done for p in syncs)
    assert gc.group_state("g") is S.COMPLETING_REBALANCE
    assert [m.assignment for m in gc.describe_group("g").members] == [b"", b""]
    # The wait may outlast a session: members waiting in SyncGroup are not expired.
    clock.advance(SESSION + 1)
    gc.poll()
    assert gc.group_state("g") is S.COMPLETING_REBALANCE
    gc.complete_assignment(stored, E.NONE)
    assert [(p.result.error_code, p.result.assignment) for p in syncs] == [
        (E.NONE, b"L"),
        (E.NONE, b"F"),
    ]
    assert gc.group_state("g") is S.STABLE
    # Their sessions restart once answered (Kafka's propagateAssignment).
    assert gc.heartbeat("g", 1, follower) == E.NONE
    assert gc.sync_group("g", 1, follower).result.assignment == b"F"


@pytest.mark.parametrize(
    ("wait_error", "answered"),
    [
        # GroupMetadataManager.storeGroup's table: the ISR shrank below min.insync.replicas
        # while waiting, the leadership moved, the acks=all wait timed out.
        (E.NOT_ENOUGH_REPLICAS_AFTER_APPEND, E.COORDINATOR_NOT_AVAILABLE),
        (E.NOT_LEADER_OR_FOLLOWER, E.NOT_COORDINATOR),
        (E.REQUEST_TIMED_OUT, E.REBALANCE_IN_PROGRESS),
    ],
)
def test_an_assignment_whose_record_is_not_replicated_is_not_handed_out(wait_error, answered):
    gc, clock, store = make()
    leader, follower, syncs, stored = _sync_pending_replication(gc)
    gc.complete_assignment(stored, write_error_code(wait_error, offsets=False))
    # resetAndPropagateAssignmentError, then a rebalance: every member is told, none gets
    # its part, and they rejoin for a new generation.
    assert [(p.result.error_code, p.result.assignment) for p in syncs] == [
        (answered, b""),
        (answered, b""),
    ]
    assert gc.group_state("g") is S.PREPARING_REBALANCE
    assert gc.heartbeat("g", 1, follower) == E.REBALANCE_IN_PROGRESS
    rejoined = [join(gc, leader), join(gc, follower)]
    assert [p.result.generation_id for p in rejoined] == [2, 2]


def test_an_assignment_replicated_after_the_group_moved_on_is_dropped():
    # storeGroup's callback acts only if the group is still CompletingRebalance in the
    # same generation: a member that joined meanwhile started a new rebalance.
    gc, clock, store = make()
    leader, follower, syncs, stored = _sync_pending_replication(gc)
    late = join(gc, client="late")
    assert [p.result.error_code for p in syncs] == [E.REBALANCE_IN_PROGRESS] * 2
    gc.complete_assignment(stored, E.NONE)
    assert gc.group_state("g") is S.PREPARING_REBALANCE
    assert not late.done
    assert all(m.assignment == b"" for m in gc.describe_group("g").members)


def test_new_member_triggers_rebalance_and_existing_member_rejoins():
    gc, clock, _ = make()
    (a,), gen = stable_group(gc, clock, n=1)
    b = join(gc, client="b")
    assert gc.group_state("g") is S.PREPARING_REBALANCE
    assert gc.heartbeat("g", gen, a) == E.REBALANCE_IN_PROGRESS
    assert not b.done
    ra = join(gc, a)
    # Everyone known has rejoined: the join completes without waiting for the timeout.
    assert ra.result.generation_id == gen + 1 == b.result.generation_id
    assert gc.group_state("g") is S.COMPLETING_REBALANCE
    assert gc.heartbeat("g", gen, a) == E.ILLEGAL_GENERATION
    assert gc.heartbeat("g", gen + 1, a) == E.NONE


def test_member_that_does_not_rejoin_is_dropped_at_rebalance_timeout():
    gc, clock, _ = make()
    (a, b), gen = stable_group(gc, clock)
    gc.heartbeat("g", gen, b)
    ra = join(gc, a)  # leader rejoin forces a rebalance
    assert gc.group_state("g") is S.PREPARING_REBALANCE
    clock.advance(REBALANCE)
    gc.poll()
    assert ra.result.generation_id == gen + 1
    assert [m for m, _, _ in ra.result.members] == [a]
    assert gc.heartbeat("g", gen + 1, b) == E.UNKNOWN_MEMBER_ID


def test_session_timeout_expires_silent_member():
    gc, clock, _ = make()
    (a, b), gen = stable_group(gc, clock)
    clock.advance(SESSION - 1)
    assert gc.heartbeat("g", gen, a) == E.NONE
    gc.poll()
    assert gc.group_state("g") is S.STABLE
    assert gc.next_deadline_ms() == clock.ms + 1  # b's session ends next
    clock.advance(1)
    gc.poll()
    assert gc.group_state("g") is S.PREPARING_REBALANCE
    assert gc.heartbeat("g", gen, b) == E.UNKNOWN_MEMBER_ID
    ra = join(gc, a)
    assert ra.result.generation_id == gen + 1 and len(ra.result.members) == 1


def test_pending_sync_timeout_removes_member_that_never_syncs():
    gc, clock, _ = make()
    a, b = join(gc, client="a", rebalance=5000), join(gc, client="b", rebalance=5000)
    gc.poll()
    leader = a.result.leader
    other = ({a.result.member_id, b.result.member_id} - {leader}).pop()
    gc.sync_group("g", 1, leader, assignments=[])
    assert gc.group_state("g") is S.STABLE
    clock.advance(4999)
    gc.poll()
    assert gc.group_state("g") is S.STABLE
    clock.advance(1)
    gc.poll()
    assert gc.group_state("g") is S.PREPARING_REBALANCE
    assert gc.heartbeat("g", 1, other) == E.UNKNOWN_MEMBER_ID


def test_leave_group_rebalances_and_last_leave_empties_group():
    gc, clock, store = make()
    (a, b), gen = stable_group(gc, clock)
    assert gc.leave_group("g", [(b, None)]) == (E.NONE, [E.NONE])
    assert gc.group_state("g") is S.PREPARING_REBALANCE
    ra = join(gc, a)
    assert ra.result.generation_id == gen + 1
    gc.sync_group("g", gen + 1, a, assignments=[(a, b"x")])
    assert gc.leave_group("g", [(a, None), ("nobody", None)]) == (
        E.NONE,
        [E.NONE, E.UNKNOWN_MEMBER_ID],
    )
    assert gc.group_state("g") is S.EMPTY
    snap = [r for r in store.records() if isinstance(r, GroupRecord)][-1].value
    assert snap.generation == gen + 2 and snap.members == [] and snap.protocol is None


def test_leave_unknown_group_reports_each_member_unknown():
    gc, _, _ = make()
    assert gc.leave_group("nope", [("m", None)]) == (E.NONE, [E.UNKNOWN_MEMBER_ID])


def test_join_validation_errors():
    gc, clock, _ = make()
    assert join(gc, session=5999).result.error_code == E.INVALID_SESSION_TIMEOUT
    assert join(gc, session=1_800_001).result.error_code == E.INVALID_SESSION_TIMEOUT
    assert join(gc, group="").result.error_code == E.INVALID_GROUP_ID
    assert join(gc, "ghost").result.error_code == E.UNKNOWN_MEMBER_ID
    assert join(gc, protocols=[]).result.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert gc.list_groups() == []  # refused joins leave no group behind
    stable_group(gc, clock, n=1)
    assert join(gc, ptype="connect").result.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    other = [("roundrobin", b"")]
    assert join(gc, protocols=other).result.error_code == E.INCONSISTENT_GROUP_PROTOCOL


def test_protocol_chosen_by_vote():
    gc, clock, _ = make()
    a = join(gc, client="a", protocols=[("range", b"a"), ("sticky", b"a2")])
    b = join(gc, client="b", protocols=[("sticky", b"b"), ("range", b"b2")])
    c = join(gc, client="c", protocols=[("sticky", b"c"), ("range", b"c2")])
    gc.poll()
    assert a.result.protocol_name == b.result.protocol_name == c.result.protocol_name == "sticky"
    leader = next(r for r in (a.result, b.result, c.result) if r.members)
    assert sorted(m for _, _, m in leader.members) == [b"a2", b"b", b"c"]


def test_sync_and_heartbeat_errors():
    gc, clock, _ = make()
    (a,), gen = stable_group(gc, clock, n=1)
    assert gc.sync_group("g", gen + 5, a).result.error_code == E.ILLEGAL_GENERATION
    assert gc.sync_group("g", gen, "x").result.error_code == E.UNKNOWN_MEMBER_ID
    assert gc.sync_group("nope", gen, a).result.error_code == E.UNKNOWN_MEMBER_ID
    bad = gc.sync_group("g", gen, a, protocol_type="consumer", protocol_name="other")
    assert bad.result.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    ok = gc.sync_group("g", gen, a, protocol_type="consumer", protocol_name="range")
    assert ok.result.error_code == E.NONE
    assert gc.heartbeat("g", gen, "x") == E.UNKNOWN_MEMBER_ID
    assert gc.heartbeat("nope", gen, a) == E.UNKNOWN_MEMBER_ID
    join(gc, client="new")
    assert gc.sync_group("g", gen, a).result.error_code == E.REBALANCE_IN_PROGRESS


def test_duplicate_sync_answers_the_older_request():
    gc, clock, _ = make()
    _, follower = joined_pair(gc)
    first = gc.sync_group("g", 1, follower)
    second = gc.sync_group("g", 1, follower)
    assert first.result.error_code == E.REBALANCE_IN_PROGRESS and not second.done


def test_rebalance_during_completing_rebalance_fails_waiting_syncs():
    gc, clock, _ = make()
    _, follower = joined_pair(gc)
    waiting = gc.sync_group("g", 1, follower)
    join(gc, client="late")
    assert waiting.result.error_code == E.REBALANCE_IN_PROGRESS
    assert gc.group_state("g") is S.PREPARING_REBALANCE


def test_static_member_rejoins_without_rebalance():
    gc, clock, store = make()
    (leader, follower), gen = stable_group(gc, clock, instance_ids=["i0", "i1"])
    # The follower restarts: it has lost its member id but keeps its instance id.
    r = join(gc, instance="i1", client="c1").result
    assert r.error_code == E.NONE and r.generation_id == gen
    assert r.member_id != follower and r.leader == leader and r.members == []
    assert gc.group_state("g") is S.STABLE
    sync = gc.sync_group("g", gen, r.member_id, group_instance_id="i1")
    assert sync.result.assignment == follower.encode()  # its old assignment
    # The old incarnation is fenced.
    assert gc.heartbeat("g", gen, follower, "i1") == E.FENCED_INSTANCE_ID
    assert join(gc, follower, instance="i1").result.error_code == E.FENCED_INSTANCE_ID
    assert gc.heartbeat("g", gen, r.member_id, "i1") == E.NONE
    snap = [x for x in store.records() if isinstance(x, GroupRecord)][-1].value
    assert {m.group_instance_id: m.member_id for m in snap.members}["i1"] == r.member_id


def _static_takeover(gc, clock):
    """A Stable group of two static members; the follower restarts and takes over its
    slot, the group's record written but not yet replicated: (leader, old follower id,
    the JoinGroup, the takeover)."""
    (leader, follower), gen = stable_group(gc, clock, instance_ids=["i0", "i1"])
    joining, takeover = gc.prepare_join_group(
        "g",
        "",
        group_instance_id="i1",
        protocol_type="consumer",
        protocols=[("range", subscription("t"))],
        session_timeout_ms=SESSION,
        rebalance_timeout_ms=REBALANCE,
        client_id="c1",
    )
    assert takeover is not None and not joining.done
    return leader, follower, joining, takeover


def test_a_static_member_learns_its_new_id_once_the_record_is_replicated():
    # GroupCoordinator.updateStaticMemberAndRebalance: the JoinGroup is answered in
    # storeGroup's callback, once the record holding the new member id is replicated.
    gc, clock, store = make()
    leader, follower, joining, takeover = _static_takeover(gc, clock)
    new_id = takeover.member.member_id
    snap = [r for r in store.records() if isinstance(r, GroupRecord)][-1].value
    assert {m.member_id for m in snap.members} == {leader, new_id}
    gc.complete_static_join(takeover, E.NONE)
    r = joining.result
    assert r.error_code == E.NONE and r.member_id == new_id and r.generation_id == 1
    assert gc.group_state("g") is S.STABLE
    assert gc.sync_group("g", 1, new_id, group_instance_id="i1").result.assignment == (
        follower.encode()
    )


def test_a_static_takeover_whose_record_is_not_replicated_is_undone():
    # On a failed store Kafka puts the old member id back in the slot and answers the
    # JoinGroup with the error: the member joins again; the new id was never handed out.
    gc, clock, store = make()
    leader, follower, joining, takeover = _static_takeover(gc, clock)
    new_id = takeover.member.member_id
    gc.complete_static_join(
        takeover, write_error_code(E.NOT_ENOUGH_REPLICAS_AFTER_APPEND, offsets=False)
    )
    assert joining.result.error_code == E.COORDINATOR_NOT_AVAILABLE
    assert joining.result.member_id == ""
    assert gc.group_state("g") is S.STABLE
    assert gc.heartbeat("g", 1, follower, "i1") == E.NONE
    assert gc.heartbeat("g", 1, new_id, "i1") == E.FENCED_INSTANCE_ID
    # The member's retry takes the slot over again.
    retry = join(gc, instance="i1", client="c1").result
    assert retry.error_code == E.NONE and retry.member_id not in (follower, new_id)


def test_static_member_survives_rebalance_without_rejoining():
    gc, clock, _ = make()
    (leader, follower), gen = stable_group(
        gc, clock, instance_ids=["i0", "i1"], session=2 * REBALANCE
    )
    rl = join(gc, leader, instance="i0", session=2 * REBALANCE)
    clock.advance(REBALANCE)
    gc.poll()
    # KIP-345: the static member keeps its slot (and is in the leader's member list).
    assert {m for m, _, _ in rl.result.members} == {leader, follower}


def test_static_leave_by_instance_id_alone():
    gc, clock, _ = make()
    (leader, follower), gen = stable_group(gc, clock, instance_ids=["i0", "i1"])
    assert gc.leave_group("g", [("", "i1"), ("", "unknown")]) == (
        E.NONE,
        [E.NONE, E.UNKNOWN_MEMBER_ID],
    )
    assert gc.leave_group("g", [("wrong-id", "i0")]) == (E.NONE, [E.FENCED_INSTANCE_ID])
    assert gc.group_state("g") is S.PREPARING_REBALANCE


def test_standalone_commit_and_fetch():
    gc, clock, store = make()
    codes = gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(42, 3, "meta", 1)})
    assert codes == {("t", 0): E.NONE}
    got = gc.fetch_offsets("solo", [("t", 0), ("t", 1)])
    assert got[("t", 0)].offset == 42 and got[("t", 0)].metadata == "meta"
    assert got[("t", 1)] is None
    assert set(gc.fetch_offsets("solo", None)) == {("t", 0)}
    assert gc.fetch_offsets("unknown", None) == {}
    assert isinstance(store.records()[0], OffsetRecord)


def test_a_pending_commit_is_fetched_only_once_its_write_completes():
    # GroupMetadataManager.storeOffsets: a commit is pending until its append is
    # replicated (onOffsetCommitAppend), dropped if it is not (failPendingOffsetWrite).
    gc, clock, store = make()
    tp = ("t", 0)

    def prepare(offset: int) -> Any:
        """A standalone commit of ``offset``, written but not yet replicated."""
        codes, pending = gc.prepare_offset_commit("solo", -1, "", {tp: OffsetAndMetadata(offset)})
        assert codes == {tp: E.NONE} and pending is not None
        return pending

    def committed() -> int:
        return gc.fetch_offsets("solo", [tp])[tp].offset

    first = prepare(10)
    assert store.records()[-1].value.offset == 10  # written...
    assert gc.fetch_offsets("solo", [tp]) == {tp: None}  # ...but not committed yet
    assert gc.pending_offset_partitions("solo") == {tp}
    gc.complete_offset_commit(first, replicated=True)
    assert committed() == 10
    assert gc.pending_offset_partitions("solo") == set()

    gc.complete_offset_commit(prepare(20), replicated=False)
    assert committed() == 10
    assert gc.pending_offset_partitions("solo") == set()

    # Two commits in flight: the partition stays pending until the newer one completes,
    # and the older one completing last does not replace it.
    older, newer = prepare(30), prepare(40)
    gc.complete_offset_commit(newer, replicated=True)
    assert committed() == 40
    gc.complete_offset_commit(older, replicated=True)
    assert committed() == 40
    assert gc.pending_offset_partitions("solo") == set()
    older, newer = prepare(50), prepare(60)
    gc.complete_offset_commit(older, replicated=True)
    assert committed() == 50
    assert gc.pending_offset_partitions("solo") == {tp}  # 60 is still in flight
    gc.complete_offset_commit(newer, replicated=False)
    assert committed() == 50
    assert gc.pending_offset_partitions("solo") == set()


def test_commit_validation():
    gc, clock, store = make(offset_metadata_max_bytes=4)
    tp = ("t", 0)
    om = OffsetAndMetadata(1)
    assert gc.commit_offsets("new", 3, "m", {tp: om}) == {tp: E.ILLEGAL_GENERATION}
    (a, b), gen = stable_group(gc, clock)
    assert gc.commit_offsets("g", -1, "", {tp: om}) == {tp: E.UNKNOWN_MEMBER_ID}
    assert gc.commit_offsets("g", gen, "x", {tp: om}) == {tp: E.UNKNOWN_MEMBER_ID}
    assert gc.commit_offsets("g", gen - 1, a, {tp: om}) == {tp: E.ILLEGAL_GENERATION}
    big = OffsetAndMetadata(1, metadata="toolong")
    assert gc.commit_offsets("g", gen, a, {tp: om, ("t", 1): big}) == {
        tp: E.NONE,
        ("t", 1): E.OFFSET_METADATA_TOO_LARGE,
    }
    join(gc, a)  # PreparingRebalance: commits are still accepted
    assert gc.commit_offsets("g", gen, b, {tp: om}) == {tp: E.NONE}
    join(gc, b)
    assert gc.group_state("g") is S.COMPLETING_REBALANCE
    assert gc.commit_offsets("g", gen + 1, a, {tp: om}) == {tp: E.REBALANCE_IN_PROGRESS}
    store.fail = True
    gc.sync_group("g", gen + 1, a, assignments=[])
    assert gc.group_state("g") is S.PREPARING_REBALANCE  # store failed: rebalance again


def test_empty_group_id_is_valid_for_offsets_as_in_kafka():
    gc, _, _ = make()
    tp = ("t", 0)
    assert gc.commit_offsets("", -1, "", {tp: OffsetAndMetadata(4)}) == {tp: E.NONE}
    assert gc.fetch_offsets("", [tp])[tp].offset == 4
    assert gc.describe_group("").error_code == E.NONE
    assert gc.heartbeat("", 1, "m") == E.INVALID_GROUP_ID
    assert join(gc, group="").result.error_code == E.INVALID_GROUP_ID


def test_failed_write_is_not_acknowledged():
    gc, clock, store = make()
    store.fail = True
    codes = gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(5)})
    assert codes == {("t", 0): E.UNKNOWN_SERVER_ERROR}
    assert gc.fetch_offsets("solo", [("t", 0)]) == {("t", 0): None}


def test_replay_restores_offsets_groups_and_tombstones():
    gc, clock, store = make()
    (a, b), gen = stable_group(gc, clock, instance_ids=[None, "static"])
    gc.commit_offsets(
        "g", gen, a, {("t", 0): OffsetAndMetadata(10), ("t", 1): OffsetAndMetadata(11)}
    )
    gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(7)})
    gc.commit_offsets("gone", -1, "", {("t", 0): OffsetAndMetadata(1)})
    assert gc.delete_groups(["gone"]) == {"gone": E.NONE}
    assert gc.delete_offsets("solo", [("t", 0)]) == (E.NONE, {("t", 0): E.NONE})

    fresh = GroupCoordinator(config=gc.config, clock=clock, store=None)
    fresh.replay(store.records())
    assert fresh.fetch_offsets("g", None) == gc.fetch_offsets("g", None)
    assert fresh.fetch_offsets("solo", None) == {}
    assert "gone" not in fresh.group_ids()
    assert fresh.group_state("g") is S.STABLE
    # Loaded members keep their ids and generation, and must heartbeat to stay.
    assert fresh.heartbeat("g", gen, a) == E.NONE
    assert fresh.sync_group("g", gen, b, group_instance_id="static").result.assignment == b.encode()
    clock.advance(SESSION)
    fresh.poll()
    assert fresh.heartbeat("g", gen, b) == E.UNKNOWN_MEMBER_ID


def test_replayed_records_land_in_the_groups_partition():
    gc, clock, store = make(num_partitions=7)
    gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(7)})
    assert store.written[0][0] == partition_for("solo", 7)


def test_offsets_of_empty_group_expire_after_retention_and_group_dies():
    gc, clock, store = make(offsets_retention_ms=60_000, offsets_retention_check_interval_ms=1000)
    (a,), gen = stable_group(gc, clock, n=1)
    gc.commit_offsets("g", gen, a, {("t", 0): OffsetAndMetadata(10)})
    gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(5)})
    clock.advance(50_000)
    gc.heartbeat("g", gen, a)
    gc.leave_group("g", [(a, None)])
    assert gc.group_state("g") is S.EMPTY
    clock.advance(10_000)
    gc.poll()
    # The standalone group's offsets aged from their commit; g's from when it became empty.
    assert "solo" not in gc.group_ids()
    assert gc.fetch_offsets("g", None) != {}
    clock.advance(50_000)
    gc.poll()
    assert gc.group_state("g") is S.DEAD
    assert gc.fetch_offsets("g", None) == {}
    last = store.records()[-2:]
    assert isinstance(last[0], OffsetRecord) and last[0].value is None
    assert isinstance(last[1], GroupRecord) and last[1].value is None


def test_stable_group_keeps_subscribed_offsets_but_expires_others():
    gc, clock, _ = make(offsets_retention_ms=1000, offsets_retention_check_interval_ms=1000)
    (a,), gen = stable_group(gc, clock, n=1)
    gc.commit_offsets(
        "g", gen, a, {("t", 0): OffsetAndMetadata(1), ("old", 0): OffsetAndMetadata(2)}
    )
    clock.advance(1000)
    gc.heartbeat("g", gen, a)
    gc.poll()
    assert set(gc.fetch_offsets("g", None)) == {("t", 0)}


def test_delete_groups_and_offsets():
    gc, clock, _ = make()
    (a,), gen = stable_group(gc, clock, n=1)
    gc.commit_offsets("g", gen, a, {("t", 0): OffsetAndMetadata(1), ("u", 0): OffsetAndMetadata(1)})
    assert gc.delete_groups(["g", "nope", ""]) == {
        "g": E.NON_EMPTY_GROUP,
        "nope": E.GROUP_ID_NOT_FOUND,
        "": E.GROUP_ID_NOT_FOUND,
    }
    assert gc.delete_offsets("g", [("t", 0), ("u", 0)]) == (
        E.NONE,
        {("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC, ("u", 0): E.NONE},
    )
    assert set(gc.fetch_offsets("g", None)) == {("t", 0)}
    assert gc.delete_offsets("nope", [("t", 0)])[0] == E.GROUP_ID_NOT_FOUND
    gc.leave_group("g", [(a, None)])
    assert gc.delete_groups(["g"]) == {"g": E.NONE}
    assert gc.describe_group("g").state == "Dead"
    assert gc.list_groups() == []


def test_describe_and_list():
    gc, clock, _ = make()
    (a, b), gen = stable_group(gc, clock)
    d = gc.describe_group("g")
    assert (d.state, d.protocol_type, d.protocol_data) == ("Stable", "consumer", "range")
    assert {m.member_id: m.assignment for m in d.members} == {a: a.encode(), b: b.encode()}
    assert all(m.metadata == subscription("t") and m.client_host == "/127.0.0.1" for m in d.members)
    join(gc, client="new")
    d = gc.describe_group("g")
    assert d.state == "PreparingRebalance" and d.protocol_data == ""
    assert all(m.metadata == b"" for m in d.members)
    gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(1)})
    assert sorted(gc.list_groups()) == [
        ("g", "consumer", "PreparingRebalance", "classic"),
        ("solo", "", "Empty", "classic"),
    ]


def test_invalid_transition_is_a_bug():
    gc, clock, _ = make()
    stable_group(gc, clock, n=1)
    group = gc._groups["g"]
    with pytest.raises(AssertionError):
        gc._transition(group, S.COMPLETING_REBALANCE)


def test_deleted_topic_offsets_are_forgotten():
    gc, clock, store = make()
    (a,), gen = stable_group(gc, clock, n=1)
    gc.commit_offsets(
        "g", gen, a, {("t", 0): OffsetAndMetadata(1), ("gone", 0): OffsetAndMetadata(2)}
    )
    gc.commit_offsets("solo", -1, "", {("gone", 0): OffsetAndMetadata(3)})
    gc.delete_topic_offsets(["gone"])
    assert set(gc.fetch_offsets("g", None)) == {("t", 0)}
    # An empty group left without offsets is removed, as Kafka does.
    assert "solo" not in gc.group_ids()
    fresh = GroupCoordinator(config=gc.config, clock=clock)
    fresh.replay(store.records())
    assert set(fresh.fetch_offsets("g", None)) == {("t", 0)} and "solo" not in fresh.group_ids()


@pytest.mark.parametrize("v9", [True, False])
def test_static_leader_rejoin_skips_assignment_from_v9(v9):
    gc, clock, _ = make()
    (leader, follower), gen = stable_group(gc, clock, instance_ids=["i0", "i1"])
    r = join(gc, instance="i0", client="c0", skip=v9).result
    assert r.error_code == E.NONE and r.generation_id == gen
    assert gc.group_state("g") is S.STABLE
    if v9:
        # KIP-814: it is told it leads, with every member, and must not reassign.
        assert r.skip_assignment and r.leader == r.member_id
        assert {m for m, _, _ in r.members} == {r.member_id, follower}
    else:
        assert not r.skip_assignment and r.leader == leader and r.members == []


def test_transactional_commit_validation_kip447():
    gc, clock, _ = make()
    (a, b), gen = stable_group(gc, clock)
    assert gc.validate_transactional_commit("g", -1, "") is None  # no member id: allowed
    assert gc.validate_transactional_commit("g", gen, a) is None
    assert gc.validate_transactional_commit("g", gen - 1, a) == E.ILLEGAL_GENERATION
    assert gc.validate_transactional_commit("g", gen, "zombie") == E.UNKNOWN_MEMBER_ID
    assert gc.validate_transactional_commit("new", -1, "") is None


# Kafka's ClassicGroupState valid previous states (its static initialiser), by the names
# DescribeGroups reports: the spec the state machine is checked against.
KAFKA_VALID_PREVIOUS = {
    "Empty": {"PreparingRebalance"},
    "PreparingRebalance": {"Stable", "CompletingRebalance", "Empty"},
    "CompletingRebalance": {"PreparingRebalance"},
    "Stable": {"CompletingRebalance"},
    "Dead": {"Stable", "PreparingRebalance", "CompletingRebalance", "Empty", "Dead"},
}


@pytest.mark.parametrize("target", list(GroupState), ids=lambda s: s.value)
@pytest.mark.parametrize("source", list(GroupState), ids=lambda s: s.value)
def test_transition_allows_exactly_kafkas_valid_previous_states(
    source: GroupState, target: GroupState
) -> None:
    group = ClassicGroup("g", state=source)
    if source.value in KAFKA_VALID_PREVIOUS[target.value]:
        transition(group, target, 123)
        assert (group.state, group.state_timestamp_ms) == (target, 123)
    else:
        with pytest.raises(AssertionError):
            transition(group, target, 123)
        assert (group.state, group.state_timestamp_ms) == (source, None)


def test_storage_error_on_the_offsets_topic_answers_not_coordinator():
    # GroupMetadataManager: KAFKA_STORAGE_ERROR (and NOT_LEADER_OR_FOLLOWER) on the
    # append becomes NOT_COORDINATOR, for a commit and for a group's assignment; a
    # record too large becomes INVALID_COMMIT_OFFSET_SIZE for a commit.
    gc, clock, store = make()
    failure: list[Exception] = []

    def failing(partition, records):
        if failure:
            raise failure[0]
        store.written.append((partition, list(records)))

    store.write = failing  # type: ignore[method-assign]
    tp = ("t", 0)
    for code, expected in [
        (E.KAFKA_STORAGE_ERROR, E.NOT_COORDINATOR),
        (E.NOT_LEADER_OR_FOLLOWER, E.NOT_COORDINATOR),
        (E.NOT_ENOUGH_REPLICAS, E.COORDINATOR_NOT_AVAILABLE),
        (E.MESSAGE_TOO_LARGE, E.INVALID_COMMIT_OFFSET_SIZE),
        (E.CORRUPT_MESSAGE, E.UNKNOWN_SERVER_ERROR),
    ]:
        failure[:] = [KafkaApiError(code)]
        assert gc.commit_offsets("solo", -1, "", {tp: OffsetAndMetadata(5)}) == {tp: expected}
    failure.clear()
    (leader, follower), gen = stable_group(gc, clock)
    pendings = [join(gc, leader), join(gc, follower)]
    gc.poll()
    gen = pendings[0].result.generation_id
    failure[:] = [KafkaApiError(E.KAFKA_STORAGE_ERROR)]
    waiting = gc.sync_group("g", gen, follower, assignments=[])
    gc.sync_group("g", gen, leader, assignments=[(leader, b"a"), (follower, b"b")])
    assert waiting.result.error_code == E.NOT_COORDINATOR


def test_unloading_answers_waiting_members_not_coordinator_and_stops_writing():
    # GroupCoordinator.onGroupUnloaded: every group is Dead, a member waiting in
    # JoinGroup or SyncGroup is answered NOT_COORDINATOR (it finds the coordinator again
    # and rejoins there). The unloaded coordinator's timers fire nothing and it appends
    # nothing more: the log belongs to its successor.
    gc, clock, store = make()
    (leader, follower), gen = stable_group(gc, clock)
    rejoining = join(gc, leader)  # the leader rejoins: "g" waits for the follower
    assert rejoining.result is None
    (x, y), gen_h = stable_group(gc, clock, group="h")
    joined_h = [join(gc, x, group="h"), join(gc, y, group="h")]
    gc.poll()
    gen_h = joined_h[0].result.generation_id
    syncing = gc.sync_group("h", gen_h, y if x == joined_h[0].result.leader else x)
    assert syncing.result is None  # waits for the leader's assignment
    gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(5)})
    written = len(store.written)

    gc.unload()
    assert rejoining.result.error_code == E.NOT_COORDINATOR
    assert syncing.result.error_code == E.NOT_COORDINATOR
    assert gc.group_state("g") is S.DEAD and gc.group_state("h") is S.DEAD
    clock.advance(7 * 24 * 3600 * 1000 + REBALANCE + SESSION)  # every timer falls due
    gc.poll()
    # Anything still sent to it is refused as an append to a partition led elsewhere.
    tp = ("t", 0)
    assert gc.commit_offsets("other", -1, "", {tp: OffsetAndMetadata(6)}) == {tp: E.NOT_COORDINATOR}
    # Deletions too, though a classic group's tombstones are otherwise best effort: the
    # groups are not this coordinator's to delete (GroupCoordinator.validateGroupStatus).
    assert gc.delete_groups(["solo"]) == {"solo": E.NOT_COORDINATOR}
    assert gc.delete_offsets("solo", [tp]) == (E.NOT_COORDINATOR, {})
    assert len(store.written) == written


def test_a_classic_deletion_whose_tombstones_fail_is_still_answered_none():
    # GroupCoordinator.handleDeleteGroups / handleDeleteOffsets (Kafka 3.9's classic
    # coordinator) drop the group or the offsets from memory before
    # GroupMetadataManager.cleanupGroupMetadata appends the tombstones, with acks=0 and a
    # failed append only logged: the deletion is NONE, and the group is gone here until
    # the coordinator is loaded again from a log that has no tombstone.
    gc, clock, store = make()
    (a,), gen = stable_group(gc, clock, n=1)
    gc.commit_offsets("g", gen, a, {("t", 0): OffsetAndMetadata(1), ("u", 0): OffsetAndMetadata(2)})
    gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(3)})
    store.fail = True
    assert gc.delete_offsets("g", [("t", 0), ("u", 0)]) == (
        E.NONE,
        {("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC, ("u", 0): E.NONE},
    )
    assert set(gc.fetch_offsets("g", None)) == {("t", 0)}
    assert gc.delete_groups(["solo"]) == {"solo": E.NONE}
    assert gc.describe_group("solo").state == "Dead"
    assert gc.fetch_offsets("solo", None) == {}
    assert [group_id for group_id, *_ in gc.list_groups()] == ["g"]
    # Nothing reached the log: a coordinator loaded from it has both again.
    store.fail = False
    fresh = GroupCoordinator(config=gc.config, clock=clock, store=None)
    fresh.replay(store.records())
    assert set(fresh.fetch_offsets("g", None)) == {("t", 0), ("u", 0)}
    assert fresh.fetch_offsets("solo", None) == {("t", 0): OffsetAndMetadata(3)}


def test_offset_delete_leaves_an_empty_group_dead_once_nothing_is_staged():
    # GroupCoordinator.handleDeleteOffsets runs the group through cleanupGroupMetadata:
    # Empty and without offsets (GroupMetadata.hasOffsets counts those an open
    # transaction staged) it is Dead, and its tombstone written.
    gc, _clock, store = make()
    staged: set[tuple[str, int]] = {("t", 1)}
    gc.pending_txn_partitions = lambda group_id: set(staged) if group_id == "solo" else set()
    gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(1)})
    assert gc.delete_offsets("solo", [("t", 0)]) == (E.NONE, {("t", 0): E.NONE})
    assert gc.group_state("solo") is S.EMPTY
    staged.clear()
    gc.commit_offsets("solo", -1, "", {("t", 0): OffsetAndMetadata(2)})
    assert gc.delete_offsets("solo", [("t", 0)]) == (E.NONE, {("t", 0): E.NONE})
    assert "solo" not in gc.group_ids()
    last = store.records()[-1]
    assert isinstance(last, GroupRecord) and last.group_id == "solo" and last.value is None


def test_deleting_a_topic_drops_its_staged_offsets_and_keeps_a_group_with_others():
    # GroupCoordinator.onPartitionsDeleted runs each group through
    # GroupMetadata.removeOffsets, which drops the deleted partitions' offsets staged by
    # open transactions too (their commit must not bring them back to a re-created
    # topic), then cleanupGroupMetadata: an Empty group still holding offsets staged
    # on other topics (GroupMetadata.hasOffsets) stays.
    gc, _clock, store = make()
    staged: set[tuple[str, int]] = {("x", 0), ("t", 1)}
    gc.pending_txn_partitions = lambda group_id: set(staged) if group_id == "solo" else set()

    def discard(group_id: str, partitions: Any) -> None:
        assert group_id == "solo" and partitions is not None
        staged.difference_update(partitions)

    gc.discard_txn_offsets = discard
    gc.commit_offsets("solo", -1, "", {("x", 0): OffsetAndMetadata(1)})
    gc.delete_topic_offsets(["x"])
    assert staged == {("t", 1)}
    assert gc.fetch_offsets("solo", None) == {}
    assert gc.group_state("solo") is S.EMPTY
    # Nothing staged left: the next deletion that empties it makes it Dead.
    staged.clear()
    gc.commit_offsets("solo", -1, "", {("x", 0): OffsetAndMetadata(2)})
    gc.delete_topic_offsets(["x"])
    assert "solo" not in gc.group_ids()
    last = store.records()[-1]
    assert isinstance(last, GroupRecord) and last.group_id == "solo" and last.value is None
