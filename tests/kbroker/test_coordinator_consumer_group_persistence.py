"""KIP-848 groups survive a coordinator reload: records written, decoded and replayed."""

from __future__ import annotations

import dataclasses
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.coordinator.consumer_group import (
    ConsumerGroupEpochRecord,
    ConsumerGroupTopicsRecord,
    CurrentAssignmentRecord,
    MemberAssignment,
    MemberMetadataRecord,
    MemberSubscription,
    TargetAssignmentRecord,
    TargetEpochRecord,
)
from kbroker.coordinator.group import (
    CoordinatorConfig,
    GroupCoordinator,
    GroupRecord,
    GroupSnapshot,
)
from kbroker.coordinator.offsets import OffsetAndMetadata
from kbroker.coordinator.store import decode_record, encode_record
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode

E = ErrorCode
T = uuid.UUID(int=1)
TOPICS = {"t": (T, 4)}
SESSION = 45000


class ListStore:
    """A GroupStore that keeps the encoded (key, value) pairs, as the log would."""

    def __init__(self) -> None:
        self.pairs: list[tuple[bytes, bytes | None]] = []
        self.fail = False
        # What a failed write raises: OffsetsTopicStore's error for a disk that fails.
        self.error: Exception = KafkaApiError(E.KAFKA_STORAGE_ERROR, "disk full")

    def write(self, partition, records) -> None:
        if self.fail:
            raise self.error
        self.pairs += [encode_record(r) for r in records]

    def records(self):
        return [d for d in (decode_record(k, v) for k, v in self.pairs) if d is not None]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def coordinator(store: ListStore, clock: Clock) -> GroupCoordinator:
    config = CoordinatorConfig(consumer_session_timeout_ms=SESSION, num_partitions=3)
    return GroupCoordinator(config=config, clock=clock, store=store)


def reload(store: ListStore, clock: Clock) -> GroupCoordinator:
    gc = coordinator(store, clock)
    gc.replay(store.records())
    return gc


def hb(gc, member_id, epoch, **kw):
    return gc.consumer_group_heartbeat("g", member_id, epoch, topics=TOPICS, **kw)


def test_every_record_type_round_trips_with_kafka_key_versions():
    sub = MemberSubscription(
        instance_id="i",
        rack_id="r",
        client_id="c",
        client_host="/h",
        subscribed_names=["a", "b"],
        regex="x.*",
        rebalance_timeout_ms=3000,
        server_assignor="range",
    )
    cur = MemberAssignment(
        epoch=5, previous_epoch=4, state=1, assigned={T: {0, 2}}, pending_revocation={T: {1}}
    )
    cases = [
        (3, ConsumerGroupEpochRecord("g", 7)),
        (4, ConsumerGroupTopicsRecord("g", {"t": (T, 4)})),
        (5, MemberMetadataRecord("g", "m", sub)),
        (6, TargetEpochRecord("g", 7)),
        (7, TargetAssignmentRecord("g", "m", {T: {0, 1, 3}})),
        (8, CurrentAssignmentRecord("g", "m", cur)),
    ]
    for key_version, rec in cases:
        key, value = encode_record(rec)
        assert struct.unpack(">h", key[:2])[0] == key_version
        assert value is not None and value[:2] == b"\x00\x00"  # value version 0
        assert decode_record(key, value) == rec
        # The same key with a null value is that record's tombstone.
        payload = dataclasses.fields(rec)[-1].name
        assert decode_record(key, None) == dataclasses.replace(rec, **{payload: None})


def test_members_resume_after_reload_with_their_id_and_epoch():
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    a = hb(gc, "a", 0, subscribed_names=["t"], rebalance_timeout_ms=20000, client_id="ca")
    b = hb(gc, "b", 0, subscribed_names=["t"])
    assert (a.member_epoch, b.member_epoch) == (1, 2)
    before = gc.consumer_group("g")
    assert before is not None
    target, epoch = before.target, before.group_epoch

    clock.now += 100  # a restart; kill -9 loses nothing that was acknowledged
    gc2 = reload(store, clock)
    g = gc2.consumer_group("g")
    assert g is not None
    assert (g.group_epoch, g.assignment_epoch, g.target) == (epoch, epoch, target)
    assert g.members["a"].client_id == "ca" and g.members["a"].rebalance_timeout_ms == 20000
    # a still owes the revocation; it reconciles where it left off, no UNKNOWN_MEMBER_ID.
    ra = hb(gc2, "a", 1)
    assert ra.error_code == E.NONE and ra.member_epoch == 1
    assert ra.assignment == target["a"]  # resent: the reloaded broker does not know what a saw
    ra = hb(gc2, "a", 1, owned=target["a"])
    assert ra.member_epoch == 2
    rb = hb(gc2, "b", 2)
    assert rb.error_code == E.NONE and rb.assignment == target["b"]
    assert gc2.describe_group("g").state == "Stable"
    assert gc2.describe_group("g").protocol_type == "consumer"


def test_session_timer_restarts_at_load():
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    hb(gc, "a", 0, subscribed_names=["t"])
    clock.now += SESSION / 1000 - 1  # almost expired when the broker went down
    gc2 = reload(store, clock)
    clock.now += SESSION / 1000 - 1
    gc2.poll()
    assert hb(gc2, "a", 1).error_code == E.NONE
    clock.now += SESSION / 1000
    gc2.poll()
    assert "a" not in gc2.consumer_group("g").members
    # The expiry itself was written: a further reload does not bring a back.
    assert reload(store, clock).consumer_group("g").members == {}


def test_departed_member_and_deleted_group_stay_gone():
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    hb(gc, "a", 0, subscribed_names=["t"])
    hb(gc, "b", 0, subscribed_names=["t"])
    assert hb(gc, "b", -1).error_code == E.NONE
    gc2 = reload(store, clock)
    assert set(gc2.consumer_group("g").members) == {"a"}
    assert hb(gc2, "b", 2).error_code == E.UNKNOWN_MEMBER_ID
    assert hb(gc2, "a", -1).error_code == E.NONE
    gc3 = reload(store, clock)
    assert gc3.describe_group("g").state == "Empty"  # an empty group keeps its epoch
    assert gc3.consumer_group("g").group_epoch == 4
    assert gc3.delete_groups(["g"]) == {"g": E.NONE}
    gc4 = reload(store, clock)
    assert gc4.consumer_group("g") is None
    assert gc4.describe_group("g").state == "Dead"


def test_taking_over_an_empty_classic_group_tombstones_it():
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    # An empty classic group, as a previous classic consumer left it.
    store.write(0, [GroupRecord("g", GroupSnapshot("consumer", 3, "range", None, 0, []))])
    gc.replay(store.records())
    assert gc.describe_group("g").protocol_type == "consumer"
    assert gc.group_state("g").value == "Empty"
    assert hb(gc, "a", 0, subscribed_names=["t"]).error_code == E.NONE
    assert GroupRecord("g", None) in store.records()
    gc2 = reload(store, clock)
    assert gc2.group_ids() == []  # no classic group left behind
    assert gc2.list_groups() == [("g", "consumer", "Stable", "consumer")]


@pytest.mark.parametrize(
    ("raised", "answered"),
    [
        # CoordinatorOperationExceptionHelper.handleOperationException's table for the
        # exception a failed append throws (CoordinatorPartitionWriter.append).
        (KafkaApiError(E.KAFKA_STORAGE_ERROR), E.NOT_COORDINATOR),
        (KafkaApiError(E.NOT_LEADER_OR_FOLLOWER), E.NOT_COORDINATOR),
        (KafkaApiError(E.NOT_ENOUGH_REPLICAS), E.COORDINATOR_NOT_AVAILABLE),
        (KafkaApiError(E.UNKNOWN_TOPIC_OR_PARTITION), E.COORDINATOR_NOT_AVAILABLE),
        (KafkaApiError(E.RECORD_LIST_TOO_LARGE), E.UNKNOWN_SERVER_ERROR),
        (KafkaApiError(E.CORRUPT_MESSAGE), E.CORRUPT_MESSAGE),
        (RuntimeError("a bug"), E.UNKNOWN_SERVER_ERROR),
    ],
    ids=lambda v: v.name if isinstance(v, E) else repr(v),
)
def test_failed_write_fails_the_heartbeat_and_changes_nothing(raised, answered):
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    hb(gc, "a", 0, subscribed_names=["t"])
    store.fail, store.error = True, raised
    r = hb(gc, "b", 0, subscribed_names=["t"])
    assert (r.error_code, r.member_epoch, r.assignment) == (answered, 0, None)
    g = gc.consumer_group("g")
    assert set(g.members) == {"a"} and g.group_epoch == 1
    store.fail = False
    assert hb(gc, "b", 0, subscribed_names=["t"]).member_epoch == 2
    assert reload(store, clock).consumer_group("g").group_epoch == 2


def test_failed_conversion_or_deletion_of_an_empty_group_is_not_coordinator():
    # A classic JoinGroup that takes over an empty KIP-848 group, and a DeleteGroups of
    # one, are writes of the new coordinator too: a storage error is NOT_COORDINATOR
    # (handleOperationException) and the group stays as it was.
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    hb(gc, "a", 0, subscribed_names=["t"])
    assert hb(gc, "a", -1).error_code == E.NONE
    store.fail = True
    joined = gc.join_group(
        "g",
        "",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=[("range", b"")],
        session_timeout_ms=SESSION,
        rebalance_timeout_ms=SESSION,
    )
    assert joined.result is not None and joined.result.error_code == E.NOT_COORDINATOR
    assert gc.delete_groups(["g"]) == {"g": E.NOT_COORDINATOR}
    assert gc.consumer_group("g").group_epoch == 2
    assert gc.group_ids() == []
    store.fail = False
    assert gc.delete_groups(["g"]) == {"g": E.NONE}
    assert reload(store, clock).consumer_group("g") is None


def test_an_empty_group_without_offsets_goes_at_the_next_retention_check():
    # Kafka's GroupCoordinatorShard.cleanupGroupMetadata, every
    # offsets.retention.check.interval.ms: a group none of whose offsets remain
    # (OffsetMetadataManager.cleanupExpiredOffsets holds for one that never committed
    # any) is deleted if it is empty (GroupMetadataManager.maybeDeleteGroup), whether or
    # not that check expired offsets. A failed write keeps the group for the next check.
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    hb(gc, "a", 0, subscribed_names=["t"])
    assert hb(gc, "a", -1).error_code == E.NONE
    interval_s = gc.config.offsets_retention_check_interval_ms / 1000
    store.fail = True
    clock.now += interval_s
    gc.poll()
    assert gc.consumer_group("g") is not None
    store.fail = False
    clock.now += interval_s
    gc.poll()
    assert gc.consumer_group("g") is None
    assert gc.describe_group("g").state == "Dead"
    assert reload(store, clock).consumer_group("g") is None


def test_a_group_with_members_or_offsets_stays_at_the_retention_check():
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    interval_s = gc.config.offsets_retention_check_interval_ms / 1000
    hb(gc, "a", 0, subscribed_names=["t"])
    # A member that keeps heartbeating, through a whole check interval.
    for _ in range(int(interval_s // (SESSION / 2000)) + 1):
        clock.now += SESSION / 2000
        assert hb(gc, "a", 1).error_code == E.NONE
    assert gc.consumer_group("g") is not None
    # An empty group with a commit in flight (an admin's, epoch -1) keeps it, and itself.
    assert hb(gc, "a", -1).error_code == E.NONE
    tp = ("t", 0)
    codes, commit = gc.prepare_offset_commit("g", -1, "", {tp: OffsetAndMetadata(3)})
    assert codes == {tp: E.NONE} and commit is not None
    clock.now += interval_s
    gc.poll()
    assert gc.consumer_group("g") is not None
    # Committed now, and not expired yet: the same.
    gc.complete_offset_commit(commit, replicated=True)
    clock.now += interval_s
    gc.poll()
    assert gc.consumer_group("g") is not None
    assert reload(store, clock).fetch_offsets("g", [tp])[tp].offset == 3


def test_refused_first_heartbeat_writes_nothing():
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    assert hb(gc, "a", 0).error_code == E.INVALID_REQUEST  # no subscription
    assert store.pairs == [] and gc.consumer_group("g") is None


def _image(gc: GroupCoordinator):
    group = gc.consumer_group("g")
    return group.image() if group is not None else None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["join", "beat", "beat", "leave", "tick"]),
            st.integers(0, 2),
            st.sampled_from(["replicated", "replicated", "failed", "failed, log down"]),
        ),
        max_size=30,
    )
)
def test_undone_writes_leave_the_committed_state_and_a_log_that_replays_to_it(ops):
    # A write that is not replicated is undone in memory but stays in the log: the
    # committed state is written again after it, or, if the log refuses that too, the
    # next write is diffed against what the log holds; either way a reload finds the
    # group as memory has it once something could be written.
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    epochs: dict[str, int] = {}
    owned: dict[str, dict] = {}
    behind = False  # the log holds an undone write nothing was written after
    for kind, who, outcome in ops:
        if kind == "tick":
            clock.now += 20  # members not heard from for a session expire
            gc.poll()
            if not behind:
                assert _image(reload(store, clock)) == _image(gc)
            continue
        member = f"m{who}"
        epoch = {"join": 0, "leave": -1}.get(kind, epochs.get(member, 0))
        before = _image(gc)
        result, write = gc.prepare_consumer_group_heartbeat(
            "g",
            member,
            epoch,
            topics=TOPICS,
            subscribed_names=["t"] if epoch == 0 else None,
            owned=owned.get(member, {}),
        )
        if write is not None and outcome != "replicated":
            store.fail = outcome == "failed, log down"
            gc.complete_consumer_write(write, E.COORDINATOR_NOT_AVAILABLE)
            store.fail = False
            assert _image(gc) == before
            behind = outcome == "failed, log down"
            if not behind:
                assert _image(reload(store, clock)) == _image(gc)
            continue
        if write is not None:
            gc.complete_consumer_write(write, E.NONE)
            assert _image(reload(store, clock)) == _image(gc)
            behind = False
        if result.error_code != E.NONE or kind == "leave":
            epochs.pop(member, None)
            owned.pop(member, None)
            continue
        epochs[member] = result.member_epoch
        if result.assignment is not None:
            owned[member] = {t: set(p) for t, p in result.assignment.items()}


def test_failed_offset_deletion_of_a_consumer_group_deletes_nothing():
    # A KIP-848 group's OffsetDelete is a write of the new coordinator: its failure is
    # answered as handleOperationException maps it (a storage error NOT_COORDINATOR), and
    # the offsets stay (unlike a classic group's, whose tombstones are best effort).
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    epoch = hb(gc, "a", 0, subscribed_names=["t"]).member_epoch
    tp = ("u", 0)
    assert gc.commit_offsets("g", epoch, "a", {tp: OffsetAndMetadata(4)}) == {tp: E.NONE}
    store.fail = True
    assert gc.delete_offsets("g", [tp]) == (E.NOT_COORDINATOR, {})
    assert gc.fetch_offsets("g", [tp]) == {tp: OffsetAndMetadata(4)}
    store.fail = False
    assert gc.delete_offsets("g", [tp]) == (E.NONE, {tp: E.NONE})
    assert gc.fetch_offsets("g", [tp]) == {tp: None}


def test_offsets_staged_by_an_open_transaction_keep_an_empty_group_and_their_offset():
    # OffsetMetadataManager.cleanupExpiredOffsets: an offset with a transactional commit
    # pending for its partition does not expire yet, and a group with an open
    # transaction (openTransactionsByGroup) is not deleted, however empty.
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    staged: set[tuple[str, int]] = {("t", 0)}
    gc.pending_txn_partitions = lambda group_id: set(staged) if group_id == "g" else set()
    hb(gc, "a", 0, subscribed_names=["t"])
    assert hb(gc, "a", -1).error_code == E.NONE  # empty: every topic unsubscribed
    for tp in (("t", 0), ("t", 1)):
        codes, commit = gc.prepare_offset_commit("g", -1, "", {tp: OffsetAndMetadata(3)})
        assert codes == {tp: E.NONE} and commit is not None
        gc.complete_offset_commit(commit, replicated=True)
    clock.now += gc.config.offsets_retention_ms / 1000
    interval_s = gc.config.offsets_retention_check_interval_ms / 1000
    clock.now += interval_s
    gc.poll()
    assert gc.consumer_group("g") is not None
    assert set(gc.fetch_offsets("g", None)) == {("t", 0)}
    # The transaction ended (its offsets published or dropped): the next check expires
    # the offset and deletes the group.
    staged.clear()
    clock.now += interval_s
    gc.poll()
    assert gc.consumer_group("g") is None
    assert reload(store, clock).consumer_group("g") is None


def _empty_group_with_commits(gc: GroupCoordinator):
    """Group "g", empty, with (t, 0) committed at 4 and admin commits (epoch -1) of 6 on
    (t, 1) and 7 on (t, 2) written but not replicated yet: those two commits."""
    hb(gc, "a", 0, subscribed_names=["t"])
    assert hb(gc, "a", -1).error_code == E.NONE
    assert gc.commit_offsets("g", -1, "", {("t", 0): OffsetAndMetadata(4)}) == {("t", 0): E.NONE}
    commits = []
    for tp, offset in ((("t", 1), 6), (("t", 2), 7)):
        codes, commit = gc.prepare_offset_commit("g", -1, "", {tp: OffsetAndMetadata(offset)})
        assert codes == {tp: E.NONE} and commit is not None
        commits.append(commit)
    return commits


def _committed(gc: GroupCoordinator) -> dict[tuple[str, int], int]:
    return {tp: om.offset for tp, om in gc.fetch_offsets("g", None).items()}


def test_a_deletion_not_replicated_gives_back_every_offset_commits_in_flight_included():
    # Kafka's runtime applies a commit at once and reverts a failed write's timeline
    # snapshot: a deletion that is not committed leaves the offsets as they would be
    # without it, a commit completing meanwhile or afterwards included.
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    meanwhile, after = _empty_group_with_commits(gc)
    deleted, writes = gc.prepare_delete_groups(["g"])
    assert deleted == {"g": E.NONE} and len(writes) == 1
    gc.complete_offset_commit(meanwhile, replicated=True)
    gc.complete_consumer_write(writes[0], E.COORDINATOR_NOT_AVAILABLE)
    assert gc.consumer_group("g").group_epoch == 2
    assert _committed(gc) == {("t", 0): 4, ("t", 1): 6}
    gc.complete_offset_commit(after, replicated=True)
    assert _committed(gc) == {("t", 0): 4, ("t", 1): 6, ("t", 2): 7}
    assert _committed(reload(store, clock)) == _committed(gc)
    # Retried, the deletion goes through.
    assert gc.delete_groups(["g"]) == {"g": E.NONE}
    assert gc.consumer_group("g") is None and _committed(gc) == {}
    reloaded = reload(store, clock)
    assert reloaded.consumer_group("g") is None and _committed(reloaded) == {}


def test_a_deletion_removes_the_commits_in_flight_in_the_log_too():
    # OffsetMetadataManager.deleteAllOffsets tombstones every offset the runtime holds,
    # commits not yet replicated included: a reload does not bring them back.
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    commits = _empty_group_with_commits(gc)
    assert gc.delete_groups(["g"]) == {"g": E.NONE}
    for commit in commits:
        gc.complete_offset_commit(commit, replicated=True)
    assert _committed(gc) == {}
    reloaded = reload(store, clock)
    assert reloaded.consumer_group("g") is None and _committed(reloaded) == {}
    assert reloaded.group_ids() == []


def test_offsets_committed_while_a_deletion_is_in_flight_stay_with_the_group_it_gives_back():
    # A standalone commit (epoch -1, no member) finds no group while the deletion is in
    # flight and makes one to hold its offset; if the deletion fails, that offset is the
    # given-back group's, and there is one group "g", as a reload finds it.
    store, clock = ListStore(), Clock()
    gc = coordinator(store, clock)
    hb(gc, "a", 0, subscribed_names=["t"])
    assert hb(gc, "a", -1).error_code == E.NONE
    assert gc.commit_offsets("g", -1, "", {("t", 0): OffsetAndMetadata(4)}) == {("t", 0): E.NONE}
    deleted, writes = gc.prepare_delete_groups(["g"])
    assert deleted == {"g": E.NONE}
    assert gc.commit_offsets("g", -1, "", {("t", 1): OffsetAndMetadata(9)}) == {("t", 1): E.NONE}
    gc.complete_consumer_write(writes[0], E.COORDINATOR_NOT_AVAILABLE)
    assert gc.list_groups() == [("g", "consumer", "Empty", "consumer")]
    assert _committed(gc) == {("t", 0): 4, ("t", 1): 9}
    reloaded = reload(store, clock)
    assert reloaded.list_groups() == gc.list_groups()
    assert _committed(reloaded) == _committed(gc)
    assert gc.delete_groups(["g"]) == {"g": E.NONE}
    assert gc.list_groups() == [] and _committed(gc) == {}
