"""Random operation sequences against the classic group state machine.

Whatever members do (join, rejoin, sync, heartbeat, commit, leave, go silent) and however
the clock moves, the coordinator must never make an invalid transition or break its
invariants, and every JoinGroup/SyncGroup must be answered once the timeouts have run.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kbroker.coordinator.classic_group import GroupState, Pending
from kbroker.coordinator.group import CoordinatorConfig, GroupCoordinator
from kbroker.coordinator.offsets import OffsetAndMetadata
from kbroker.wire.errors import ErrorCode

S = GroupState
SESSION = 6000
REBALANCE = 8000

op = st.one_of(
    st.tuples(st.just("join"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("rejoin"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("sync"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("sync"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("heartbeat"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("commit"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("leave"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([1, 500, 3000, 7000]), st.booleans()),
)


class ListStore:
    def __init__(self) -> None:
        self.records: list = []

    def write(self, partition: int, records: list) -> None:
        self.records.extend(records)


class Clock:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return self.ms / 1000


def check_invariants(gc: GroupCoordinator) -> None:
    for group in gc._groups.values():
        if group.state is S.EMPTY:
            assert not group.members
        if group.state in (S.STABLE, S.COMPLETING_REBALANCE):
            assert group.members and group.leader_id in group.members
            assert group.protocol_name is not None
        for instance_id, member_id in group.static_members.items():
            assert group.members[member_id].group_instance_id == instance_id
        if group.state is S.PREPARING_REBALANCE:
            assert group.join_deadline_ms is not None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=40), st.sampled_from([0, 3000]))
def test_random_operations_keep_invariants_and_answer_everyone(ops, delay):
    clock = Clock()
    ids = itertools.count()
    store = ListStore()
    gc = GroupCoordinator(
        config=CoordinatorConfig(initial_rebalance_delay_ms=delay),
        clock=clock,
        store=store,
        new_member_id=lambda c: f"{c}-{next(ids)}",
    )
    # What each of 4 simulated clients believes: member id and generation.
    known: dict[int, tuple[str, int]] = {}
    pendings: list[Pending] = []
    joins: dict[int, Pending] = {}

    def instance(i: int, static: bool) -> str | None:
        return f"inst-{i}" if static else None

    for name, i, flag in ops:
        member_id, generation = known.get(i, ("", -1))
        if name in ("join", "rejoin"):
            p = gc.join_group(
                "g",
                "" if name == "join" else member_id,
                group_instance_id=instance(i, flag),
                protocol_type="consumer",
                protocols=[("range", bytes([i]))],
                session_timeout_ms=SESSION,
                rebalance_timeout_ms=REBALANCE,
                client_id=f"c{i}",
                require_known_member_id=not flag,
            )
            pendings.append(p)
            joins[i] = p
        elif name == "sync":
            p = gc.sync_group(
                "g",
                generation,
                member_id,
                group_instance_id=instance(i, flag),
                assignments=[(member_id, b"a")],
            )
            pendings.append(p)
        elif name == "heartbeat":
            gc.heartbeat("g", generation, member_id, instance(i, flag))
        elif name == "commit":
            gc.commit_offsets(
                "g",
                generation if flag else -1,
                member_id if flag else "",
                {("t", i): OffsetAndMetadata(i)},
            )
        elif name == "leave":
            gc.leave_group("g", [(member_id, instance(i, flag))])
        else:
            clock.ms += i
            gc.poll()
        for k, p in list(joins.items()):
            if p.result is not None:
                del joins[k]
                if p.result.member_id:
                    known[k] = (p.result.member_id, p.result.generation_id)
        check_invariants(gc)
        event(f"state {gc.group_state('g').value}")

    # Liveness: once every timeout has passed, nobody is left waiting.
    for _ in range(6):
        clock.ms += REBALANCE + SESSION + delay
        gc.poll()
        check_invariants(gc)
        event(f"state {gc.group_state('g').value}")
    assert all(p.done for p in pendings)
    assert all(p.result.error_code in set(ErrorCode) for p in pendings)
    # What was written is enough to rebuild the committed offsets after a restart.
    fresh = GroupCoordinator(config=gc.config, clock=clock)
    fresh.replay(store.records)
    assert fresh.fetch_offsets("g", None) == gc.fetch_offsets("g", None)
