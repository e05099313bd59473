"""An in-process classic group coordinator for tests: a GroupCoordinator on a fake clock
and a fake offsets store (no sleeps, no I/O), JoinGroup with test defaults, and a group
brought to Stable."""

from __future__ import annotations

import itertools

from kbroker.coordinator.classic_group import GroupState
from kbroker.coordinator.group import CoordinatorConfig, GroupCoordinator, GroupRecord
from kbroker.coordinator.offsets import OffsetRecord
from kbroker.wire.errors import ErrorCode
from tests.kbroker.helpers import subscription

E = ErrorCode
S = GroupState
SESSION = 10_000
REBALANCE = 30_000


class FakeClock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += ms


class FakeStore:
    def __init__(self) -> None:
        self.written: list[tuple[int, list[OffsetRecord | GroupRecord]]] = []
        self.fail = False

    def write(self, partition: int, records: list[OffsetRecord | GroupRecord]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.written.append((partition, list(records)))

    def records(self) -> list[OffsetRecord | GroupRecord]:
        return [r for _, batch in self.written for r in batch]


def make(delay: int = 0, **kw: int) -> tuple[GroupCoordinator, FakeClock, FakeStore]:
    clock = FakeClock()
    store = FakeStore()
    ids = itertools.count(1)
    gc = GroupCoordinator(
        config=CoordinatorConfig(initial_rebalance_delay_ms=delay, **kw),
        clock=clock,
        store=store,
        new_member_id=lambda client: f"{client}-{next(ids)}",
    )
    return gc, clock, store


def join(
    gc,
    member_id="",
    *,
    group="g",
    instance=None,
    protocols=None,
    client="c",
    session=SESSION,
    rebalance=REBALANCE,
    require_known=False,
    ptype="consumer",
    skip=False,
):
    return gc.join_group(
        group,
        member_id,
        group_instance_id=instance,
        protocol_type=ptype,
        protocols=protocols if protocols is not None else [("range", subscription("t"))],
        session_timeout_ms=session,
        rebalance_timeout_ms=rebalance,
        client_id=client,
        client_host="/127.0.0.1",
        require_known_member_id=require_known,
        supports_skip_assignment=skip,
    )


def stable_group(gc, clock, n=2, group="g", instance_ids=None, session=SESSION):
    """Bring a group of n members to Stable; returns their member ids (leader first)."""
    pendings = [
        join(
            gc,
            group=group,
            client=f"c{i}",
            session=session,
            instance=instance_ids[i] if instance_ids else None,
        )
        for i in range(n)
    ]
    gc.poll()
    results = [p.result for p in pendings]
    assert all(r is not None and r.error_code == E.NONE for r in results)
    leader = results[0].leader
    gen = results[0].generation_id
    ids = [r.member_id for r in results]
    syncs = [
        gc.sync_group(
            group, gen, m, assignments=[(x, x.encode()) for x in ids] if m == leader else []
        )
        for m in ids
    ]
    assert all(s.result.error_code == E.NONE for s in syncs)
    assert gc.group_state(group) is S.STABLE
    return sorted(ids, key=lambda m: m != leader), gen
