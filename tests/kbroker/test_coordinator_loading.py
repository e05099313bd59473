"""A single node loads its coordinators in the background: at start when their topic
exists (Kafka's broker leads every partition from start-up, and onElection loads
them), else on first use.

Until the whole ``__consumer_offsets`` / ``__transaction_state`` log is read, the
groups and transactional ids answer COORDINATOR_LOAD_IN_PROGRESS (Kafka's answer for
a partition in ``loadingPartitions``, which clients retry), while the rest of the
broker goes on serving. The cluster-mode cases (load on election, a partition lost
while it loads) are in tests/cluster/test_coordinator_partitions.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from kbroker.coordinator import loading
from kbroker.txn.coordinator import TransactionCoordinator
from kbroker.txn.service import loaded_txn_coordinators
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    HeartbeatRequest,
    ListGroupsRequest,
    MetadataRequest,
    OffsetFetchRequest,
)
from tests.kbroker.helpers import commit_request, create_topic, join, sole_member_sync
from tests.kbroker.txn_helpers import add_offsets, end, init, txn_commit_offset

OFFSETS = "__consumer_offsets"
SMALL = {"transaction_state_log_num_partitions": 2, "offsets_topic_num_partitions": 2}
GROUP, TID = "g", "tx"


@pytest.fixture
def held_loads(monkeypatch: pytest.MonkeyPatch) -> trio.Event:
    """A log with records is read one record a slice, and its background load waits for
    the returned event after its first slice."""
    gate = trio.Event()
    monkeypatch.setattr(loading, "SLICE_S", 0.0)
    monkeypatch.setattr(loading, "between_slices", gate.wait)
    return gate


async def _committed(c: Any) -> tuple[int, int]:
    """(error, committed offset of t-0) of GROUP."""
    resp = await c.request(
        OffsetFetchRequest(
            group_id=GROUP,
            topics=[OffsetFetchRequest.OffsetFetchRequestTopic(name="t", partition_indexes=[0])],
        ),
        version=5,
    )
    if resp.error_code:
        return resp.error_code, -1
    return 0, resp.topics[0].partitions[0].committed_offset


async def test_coordinators_load_in_the_background_from_start(
    make_server: Any, tmp_path: Path, held_loads: trio.Event
) -> None:
    data = str(tmp_path / "restarted")
    server = await make_server(log_dirs=data, **SMALL)
    create_topic(server, "t")
    async with await server.connect() as c:
        joined = await join(c, GROUP, session=30_000)
        assert (await c.request(sole_member_sync(GROUP, joined))).error_code == 0
        commit = commit_request(
            GROUP, {("t", 0): 42}, generation=joined.generation_id, member=joined.member_id
        )
        assert (await c.request(commit, version=8)).topics[0].partitions[0].error_code == 0
        first = await init(c, TID)
        assert first.error_code == ErrorCode.NONE
    await server.stop()
    server = await make_server(log_dirs=data, **SMALL)
    async with await server.connect() as c:
        # Both loads started with the broker, and wait after their first record.
        assert await _committed(c) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, -1)
        assert (await init(c, TID)).error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        listed = await c.request(ListGroupsRequest())
        assert (listed.error_code, listed.groups) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, [])
        beat = await c.request(
            HeartbeatRequest(
                group_id=GROUP, generation_id=joined.generation_id, member_id=joined.member_id
            )
        )
        assert beat.error_code == ErrorCode.NONE  # answered blindly while loading
        assert await add_offsets(c, first.producer_id, 0, tid=TID, group=GROUP) == (
            ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        )
        staged = await txn_commit_offset(c, first.producer_id, 0, 7, tid=TID, group=GROUP)
        assert staged == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        # Every other request is served meanwhile.
        meta = await c.request(MetadataRequest(topics=None))
        assert [t.name for t in meta.topics if t.name == "t"] == ["t"]
        held_loads.set()
        await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        assert await _committed(c) == (0, 42)
        again = await init(c, TID)
        assert again.error_code == ErrorCode.NONE
        assert (again.producer_id, again.producer_epoch) == (first.producer_id, 1)
        listed = await c.request(ListGroupsRequest())
        assert (listed.error_code, [g.group_id for g in listed.groups]) == (0, [GROUP])


async def test_a_restarted_node_loads_its_groups_without_a_request(
    make_server: Any, tmp_path: Path
) -> None:
    from kbroker.coordinator.service import loaded_coordinators

    data = str(tmp_path / "restarted")
    server = await make_server(log_dirs=data, **SMALL)
    create_topic(server, "t")
    async with await server.connect() as c:
        commit = commit_request(GROUP, {("t", 0): 42})
        assert (await c.request(commit, version=8)).topics[0].partitions[0].error_code == 0
    await server.stop()
    server = await make_server(log_dirs=data, **SMALL)
    await trio.testing.wait_all_tasks_blocked()
    assert [gc.group_ids() for gc in loaded_coordinators(server.broker)] == [[GROUP]]
    async with await server.connect() as c:
        assert await _committed(c) == (0, 42)


async def test_a_small_log_is_served_by_the_request_that_loads_it(
    make_server: Any, tmp_path: Path
) -> None:
    # The first slice is read by the request itself: a log read within it (an empty
    # one always) is served at once, no client sent into a retry. Its topic created
    # after start, __consumer_offsets is loaded on first use.
    server = await make_server(**SMALL)
    create_topic(server, "t")
    async with await server.connect() as c:
        assert await _committed(c) == (0, -1)
        commit = commit_request(GROUP, {("t", 0): 42})
        assert (await c.request(commit, version=8)).topics[0].partitions[0].error_code == 0
        assert await _committed(c) == (0, 42)


async def test_a_transaction_coordinator_whose_replay_fails_is_not_installed(
    make_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a failed group load: nothing half-loaded stays installed, and the next request
    # loads the partition again, so the transactional id keeps its producer id.
    data = str(tmp_path / "restarted")
    server = await make_server(log_dirs=data, **SMALL)
    async with await server.connect() as c:
        first = await init(c, TID)
        assert first.error_code == ErrorCode.NONE
    await server.stop()
    replay = TransactionCoordinator.load
    failures = [RuntimeError("replay failed")]

    def fails_once(self: TransactionCoordinator, records: Any) -> None:
        if failures:
            raise failures.pop()
        replay(self, records)

    monkeypatch.setattr(TransactionCoordinator, "load", fails_once)
    server = await make_server(log_dirs=data, **SMALL)
    await trio.testing.wait_all_tasks_blocked()
    assert not failures  # the load at start failed
    assert loaded_txn_coordinators(server.broker) == []
    async with await server.connect() as c:
        again = await init(c, TID)
        assert again.error_code == ErrorCode.NONE
        assert (again.producer_id, again.producer_epoch) == (first.producer_id, 1)


def _load_tasks() -> list[str]:
    """The names of the coordinator loads running in this Trio run (system tasks)."""
    found: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                if child.name.startswith("load "):
                    found.append(child.name)
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return sorted(found)


async def test_a_broker_stopped_while_it_loads_stops_its_loads_quietly(
    make_server: Any, tmp_path: Path, held_loads: trio.Event, caplog: pytest.LogCaptureFixture
) -> None:
    # GroupCoordinator / TransactionCoordinator.shutdown: loads under way end with the
    # broker; none reads the logs it closed, nor outlives it.
    data = str(tmp_path / "restarted")
    server = await make_server(log_dirs=data, **SMALL)
    create_topic(server, "t")
    async with await server.connect() as c:
        commit = commit_request(GROUP, {("t", 0): 42})
        assert (await c.request(commit, version=8)).topics[0].partitions[0].error_code == 0
        assert (await init(c, TID)).error_code == ErrorCode.NONE
    await server.stop()
    server = await make_server(log_dirs=data, **SMALL)
    await trio.testing.wait_all_tasks_blocked()
    assert _load_tasks() == ["load __consumer_offsets", "load __transaction_state"]
    caplog.clear()
    await server.stop()
    await trio.testing.wait_all_tasks_blocked()
    assert _load_tasks() == []
    held_loads.set()  # what a load still waiting would go on with
    await trio.testing.wait_all_tasks_blocked()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_marker_written_while_the_groups_load_leaves_them_to_it(
    make_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A transaction with staged offsets commits while __consumer_offsets still loads
    # (the transaction coordinator loaded first). Its marker needs the staged offsets:
    # the request does not read the whole topic for them (~1 s for 100k records), the
    # load under way reads the marker and publishes them.
    from kbroker.coordinator.store import OffsetsTopicStore
    from kbroker.txn import offsets as txn_offsets

    data = str(tmp_path / "restarted")
    server = await make_server(log_dirs=data, **SMALL)
    create_topic(server, "t")
    async with await server.connect() as c:
        commit = commit_request(GROUP, {("t", 0): 42})
        assert (await c.request(commit, version=8)).topics[0].partitions[0].error_code == 0
        first = await init(c, TID)
        pid = first.producer_id
        assert await add_offsets(c, pid, 0, tid=TID, group=GROUP) == ErrorCode.NONE
        assert await txn_commit_offset(c, pid, 0, 7, tid=TID, group=GROUP) == ErrorCode.NONE
    await server.stop()
    gate = trio.Event()

    async def hold_the_groups() -> None:
        if trio.lowlevel.current_task().name == f"load {OFFSETS}":
            await gate.wait()
        else:
            await trio.lowlevel.checkpoint()

    monkeypatch.setattr(loading, "SLICE_S", 0.0)
    monkeypatch.setattr(loading, "between_slices", hold_the_groups)
    read_here = []

    class Counted(OffsetsTopicStore):
        def load(self) -> Any:
            for record in super().load():
                read_here.append(record)
                yield record

    monkeypatch.setattr(txn_offsets, "OffsetsTopicStore", Counted)
    server = await make_server(log_dirs=data, **SMALL)
    await trio.testing.wait_all_tasks_blocked()
    async with await server.connect() as c:
        assert await end(c, pid, 0, True, tid=TID) == ErrorCode.NONE
        assert read_here == []
        assert await _committed(c) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, -1)
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert await _committed(c) == (0, 7)
