"""KIP-848 consumer groups: epochs, server-side assignment, incremental reconciliation."""

from __future__ import annotations

import uuid
from typing import Any

from kbroker.coordinator.consumer_group import ConsumerGroup, ConsumerGroupState
from kbroker.coordinator.group import CoordinatorConfig, GroupCoordinator
from kbroker.coordinator.offsets import OffsetAndMetadata
from kbroker.wire.errors import ErrorCode

E = ErrorCode
T = uuid.UUID(int=1)
U = uuid.UUID(int=2)
TOPICS = {"t": (T, 4), "u": (U, 2), "__consumer_offsets": (uuid.UUID(int=3), 50)}
SESSION = 45000


def group() -> ConsumerGroup:
    return ConsumerGroup("g", session_timeout_ms=SESSION, heartbeat_interval_ms=5000)


def hb(g, member_id, epoch, now=0, topics=TOPICS, **kw):
    return g.heartbeat(member_id, epoch, now_ms=now, topics=topics, **kw)


def test_first_member_gets_everything_at_epoch_1():
    g = group()
    r = hb(g, "a", 0, subscribed_names=["t"])
    assert (r.error_code, r.member_id, r.member_epoch) == (E.NONE, "a", 1)
    assert r.assignment == {T: {0, 1, 2, 3}}
    assert g.state is ConsumerGroupState.STABLE
    # Nothing changed: the next heartbeat carries no assignment.
    assert hb(g, "a", 1).assignment is None


def test_broker_generates_member_id_for_v0_clients():
    r = hb(group(), "", 0, subscribed_names=["t"])
    assert r.error_code == E.NONE and uuid.UUID(r.member_id)


def test_joining_member_waits_until_partitions_are_revoked():
    g = group()
    hb(g, "a", 0, subscribed_names=["t"])
    b = hb(g, "b", 0, subscribed_names=["t"])
    assert b.member_epoch == 2 and b.assignment == {}  # a still owns everything
    assert g.state is ConsumerGroupState.RECONCILING
    a = hb(g, "a", 1)
    # a is told to keep only its target share; its epoch stays until it confirms.
    assert a.member_epoch == 1 and a.assignment is not None
    kept = a.assignment
    assert sum(len(p) for p in kept.values()) == 2
    a = hb(g, "a", 1, owned=kept)
    assert a.member_epoch == 2
    b = hb(g, "b", 2)
    assert b.assignment is not None and b.assignment[T] == {0, 1, 2, 3} - kept[T]
    assert g.state is ConsumerGroupState.STABLE


def test_epoch_checks():
    g = group()
    hb(g, "a", 0, subscribed_names=["t"])
    assert hb(g, "a", 7).error_code == E.FENCED_MEMBER_EPOCH
    assert hb(g, "x", 1).error_code == E.UNKNOWN_MEMBER_ID
    assert hb(g, "b", 0).error_code == E.INVALID_REQUEST  # first request needs a subscription
    assert (
        hb(g, "b", 0, subscribed_names=["t"], server_assignor="nope").error_code
        == E.UNSUPPORTED_ASSIGNOR
    )
    hb(g, "b", 0, subscribed_names=["t"])
    kept = hb(g, "a", 1, owned={T: {0, 1, 2, 3}}).assignment
    assert hb(g, "a", 1, owned=kept).member_epoch == 2
    # A lost response: the previous epoch with nothing new owned is tolerated.
    assert hb(g, "a", 1, owned=kept).error_code == E.NONE
    assert hb(g, "a", 1, owned={T: {0, 1, 2, 3}}).error_code == E.FENCED_MEMBER_EPOCH


def test_leave_and_session_expiry_hand_partitions_back():
    g = group()
    hb(g, "a", 0, subscribed_names=["t"])
    hb(g, "b", 0, subscribed_names=["t"])
    a = hb(g, "a", 1)
    hb(g, "a", 1, owned=a.assignment)
    hb(g, "b", 2)
    assert hb(g, "b", -1).member_epoch == -1
    assert hb(g, "a", 2, now=1000).assignment == {T: {0, 1, 2, 3}}
    assert not g.poll(1000 + SESSION - 1)
    assert g.poll(1000 + SESSION)
    assert g.state is ConsumerGroupState.EMPTY and g.members == {}


def test_member_that_never_revokes_is_removed_at_rebalance_timeout():
    g = group()
    hb(g, "a", 0, subscribed_names=["t"], rebalance_timeout_ms=1000)
    hb(g, "b", 0, subscribed_names=["t"])
    hb(g, "a", 1, now=10)  # told to revoke, never confirms
    assert g.next_deadline_ms() == 1010
    assert g.poll(1010)
    assert "a" not in g.members
    assert hb(g, "b", g.members["b"].epoch, now=1010).assignment == {T: {0, 1, 2, 3}}


def test_range_assignor_regex_and_metadata_change():
    g = group()
    hb(g, "a", 0, regex="t|u", server_assignor="range")
    hb(g, "b", 0, subscribed_names=["t"], server_assignor="range")
    assert g.assignor == "range"
    assert g.target == {"a": {T: {0, 1}, U: {0, 1}}, "b": {T: {2, 3}}}
    epoch = g.group_epoch
    grown = dict(TOPICS, t=(T, 6))
    hb(g, "b", g.members["b"].epoch, topics=grown)
    assert g.group_epoch == epoch + 1 and g.target["b"] == {T: {3, 4, 5}}


def test_uniform_assignor_is_sticky():
    g = group()
    hb(g, "a", 0, subscribed_names=["t"])
    hb(g, "b", 0, subscribed_names=["t"])
    before = {m: {t: set(p) for t, p in a.items()} for m, a in g.target.items()}
    hb(g, "c", 0, subscribed_names=["t"])
    # Existing owners keep what they can; only moved partitions change hands.
    for m in ("a", "b"):
        assert g.target[m][T] <= before[m][T]
    assert sorted(len(g.target[m].get(T, ())) for m in "abc") == [1, 1, 2]


def _classic_join(gc: GroupCoordinator, group: str) -> Any:
    """A new member's classic JoinGroup (a consumer, the range protocol)."""
    return gc.join_group(
        group,
        "",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=[("range", b"")],
        session_timeout_ms=10000,
        rebalance_timeout_ms=10000,
    )


def test_coordinator_integration_offsets_and_namespaces():
    gc = GroupCoordinator(config=CoordinatorConfig(initial_rebalance_delay_ms=0), clock=lambda: 0.0)
    r = gc.consumer_group_heartbeat("g", "a", 0, topics=TOPICS, subscribed_names=["t"])
    tp = ("t", 0)
    assert gc.commit_offsets("g", r.member_epoch, "a", {tp: OffsetAndMetadata(5)}) == {tp: E.NONE}
    assert gc.commit_offsets("g", 0, "a", {tp: OffsetAndMetadata(6)}) == {tp: E.STALE_MEMBER_EPOCH}
    assert gc.commit_offsets("g", -1, "", {tp: OffsetAndMetadata(6)}) == {tp: E.UNKNOWN_MEMBER_ID}
    assert gc.fetch_offsets("g", [tp])[tp].offset == 5
    assert gc.validate_offset_fetch("g", "a", 0) == E.STALE_MEMBER_EPOCH
    assert gc.validate_offset_fetch("g", "a", 1) == E.NONE
    join = _classic_join(gc, "g")
    assert join.result.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert gc.list_groups() == [("g", "consumer", "Stable", "consumer")]
    assert gc.delete_groups(["g"]) == {"g": E.NON_EMPTY_GROUP}
    gc.consumer_group_heartbeat("g", "a", -1, topics=TOPICS)
    assert gc.delete_groups(["g"]) == {"g": E.NONE}
    # A classic group with members is not taken over by a KIP-848 member.
    _classic_join(gc, "c")
    r = gc.consumer_group_heartbeat("c", "x", 0, topics=TOPICS, subscribed_names=["t"])
    assert r.error_code == E.GROUP_ID_NOT_FOUND
