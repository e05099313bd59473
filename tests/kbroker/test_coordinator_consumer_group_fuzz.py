"""KIP-848 reconciliation under random joins, leaves, heartbeats, expiries and topic growth.

Simulated clients do what a real one does with each response (adopt the assignment it is
sent, rejoin with epoch 0 when fenced or unknown). Two properties: no partition is ever
owned by two live members, and once everyone keeps heartbeating the group converges to
Stable with each member owning exactly its target assignment.
"""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.coordinator.consumer_group import ConsumerGroup, ConsumerGroupState
from kbroker.wire.errors import ErrorCode

T = uuid.UUID(int=1)
U = uuid.UUID(int=2)
SESSION = 10000

op = st.one_of(
    st.tuples(st.just("join"), st.integers(0, 3), st.sampled_from([["t"], ["t", "u"], ["u"]])),
    st.tuples(st.just("heartbeat"), st.integers(0, 3), st.none()),
    st.tuples(st.just("heartbeat"), st.integers(0, 3), st.none()),
    st.tuples(st.just("heartbeat"), st.integers(0, 3), st.none()),
    st.tuples(st.just("leave"), st.integers(0, 3), st.none()),
    st.tuples(st.just("tick"), st.sampled_from([1000, 6000, 11000]), st.none()),
    st.tuples(st.just("grow"), st.integers(1, 3), st.none()),
)


class Client:
    def __init__(self) -> None:
        self.member_id = ""
        self.epoch = -1  # -1: not in the group
        self.owned: dict[uuid.UUID, set[int]] = {}


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=40), st.sampled_from(["uniform", "range"]))
def test_no_double_ownership_and_convergence(ops, assignor):
    g = ConsumerGroup("g", session_timeout_ms=SESSION, heartbeat_interval_ms=1000)
    topics = {"t": (T, 3), "u": (U, 2)}
    clients = [Client() for _ in range(4)]
    now = 0

    def heartbeat(c: Client, names: list[str] | None = None) -> None:
        joining = c.epoch < 0 or names is not None
        r = g.heartbeat(
            c.member_id if not joining or c.member_id else f"m{id(c)}",
            0 if joining else c.epoch,
            now_ms=now,
            topics=topics,
            subscribed_names=names if joining else None,
            server_assignor=assignor,
            rebalance_timeout_ms=SESSION,
            owned={t: set(p) for t, p in c.owned.items()},
        )
        if r.error_code in (ErrorCode.FENCED_MEMBER_EPOCH, ErrorCode.UNKNOWN_MEMBER_ID):
            c.epoch, c.owned = -1, {}  # the client drops everything and rejoins later
            return
        assert r.error_code == ErrorCode.NONE, r
        c.member_id, c.epoch = r.member_id, r.member_epoch
        if r.assignment is not None:
            c.owned = {t: set(p) for t, p in r.assignment.items()}

    def check_disjoint() -> None:
        seen: set[tuple[uuid.UUID, int]] = set()
        for c in clients:
            if c.epoch >= 0 and c.member_id in g.members:
                for t, parts in c.owned.items():
                    for p in parts:
                        assert (t, p) not in seen, "partition owned by two live members"
                        seen.add((t, p))

    for name, i, arg in ops:
        if name == "join":
            heartbeat(clients[i], arg)
        elif name == "heartbeat" and clients[i].epoch >= 0:
            heartbeat(clients[i])
        elif name == "leave" and clients[i].epoch >= 0:
            g.heartbeat(clients[i].member_id, -1, now_ms=now, topics=topics)
            clients[i].epoch, clients[i].owned = -1, {}
        elif name == "tick":
            now += i
            g.poll(now)
        elif name == "grow":
            tid, count = topics["t"]
            topics = dict(topics, t=(tid, count + i))
        check_disjoint()

    # Everyone still in the group keeps heartbeating: the group must settle.
    for _ in range(8):
        for c in clients:
            if c.epoch >= 0:
                heartbeat(c)
                check_disjoint()
    if g.members:
        assert g.state is ConsumerGroupState.STABLE
        for c in clients:
            if c.epoch >= 0 and c.member_id in g.members:
                assert c.owned == g.target.get(c.member_id, {})
        # Every subscribed partition is assigned to exactly one member.
        assigned = [(t, p) for a in g.target.values() for t, ps in a.items() for p in ps]
        expected = {
            (topics[n][0], p) for n in g.all_subscribed_topics() for p in range(topics[n][1])
        }
        assert sorted(assigned, key=str) == sorted(expected, key=str)
