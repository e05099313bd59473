"""The data dir's replication-offset-checkpoint and recovery-point-offset-checkpoint (Kafka's format)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from kbroker.log import LogError
from kbroker.log.checkpoint import read_offsets, write_offsets
from kbroker.replication.checkpoints import (
    RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
    OffsetCheckpoints,
)
from kbroker.replication.partition import ReplicatedPartition
from tests.kbroker.helpers import create_topic, produce, records


def test_offset_checkpoint_format(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    write_offsets(path, {("orders", 0): 42, ("orders.v2", 11): 0})
    assert path.read_text() == "0\n2\norders 0 42\norders.v2 11 0\n"
    assert read_offsets(path) == {("orders", 0): 42, ("orders.v2", 11): 0}
    assert read_offsets(tmp_path / "missing") == {}
    for bad in ("1\n0\n", "0\n2\nt 0 1\n", "0\n1\nt x 1\n", "0\n1\nt 0\n"):
        path.write_text(bad)
        with pytest.raises(LogError):
            read_offsets(path)


async def test_broker_writes_both_checkpoints(make_server: Any) -> None:
    server = await make_server()
    client = await server.connect()
    create_topic(server, "cpa", partitions=2)
    create_topic(server, "cpb")
    assert (await produce(client, "cpa", 1, records(3))).error_code == 0
    assert (await produce(client, "cpb", 0, records(2))).error_code == 0
    # A replicated partition whose follower has not confirmed everything.
    partition = server.broker.topics.get("cpb").partitions[0]
    partition.replica = ReplicatedPartition(partition.log, broker_id=1)
    partition.replica.make_leader(leader_epoch=1, isr=[1, 2], replicas=[1, 2])
    partition.replica.on_follower_fetch(2, 1)
    data_dir = Path(server.config.data_dir)
    await client.aclose()
    await server.stop()
    assert read_offsets(data_dir / REPLICATION_OFFSET_CHECKPOINT) == {
        ("cpa", 0): 0,
        ("cpa", 1): 3,
        ("cpb", 0): 1,
    }
    # Closing flushed every log: the recovery points are the log ends.
    assert read_offsets(data_dir / RECOVERY_POINT_CHECKPOINT) == {
        ("cpa", 0): 0,
        ("cpa", 1): 3,
        ("cpb", 0): 2,
    }
    assert (data_dir / REPLICATION_OFFSET_CHECKPOINT).read_text().startswith("0\n3\n")
    # A replica created after a restart starts from the checkpointed high watermark.
    hws = OffsetCheckpoints(data_dir).high_watermarks()
    assert hws[("cpb", 0)] == 1


def test_unchanged_checkpoints_are_not_rewritten(tmp_path: Path) -> None:
    checkpoints = OffsetCheckpoints(tmp_path)
    assert checkpoints.write_high_watermarks([])
    assert not checkpoints.write_high_watermarks([])
    (tmp_path / REPLICATION_OFFSET_CHECKPOINT).write_text("garbage")
    assert checkpoints.high_watermarks() == {}


async def test_checkpoint_writes_leave_the_event_loop_free(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkpoint fsyncs; on a disk busy flushing that can take long. The broker keeps
    # answering meanwhile, and the file gets the offsets as they were when it started.
    server = await make_server()
    client = await server.connect()
    create_topic(server, "cpc")
    assert (await produce(client, "cpc", 0, records(3))).error_code == 0
    writing, release = threading.Event(), threading.Event()

    def slow_disk(path: Path, entries: Any) -> None:
        writing.set()
        if not release.wait(5):
            raise AssertionError("the broker answered nothing while the checkpoint was written")
        write_offsets(path, entries)

    monkeypatch.setattr("kbroker.replication.checkpoints.write_offsets", slow_disk)
    data_dir = Path(server.config.data_dir)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.broker.checkpoint_high_watermarks_in_thread)
        await trio.to_thread.run_sync(writing.wait, 5)
        assert (await produce(client, "cpc", 0, records(2))).error_code == 0
        release.set()
    assert read_offsets(data_dir / REPLICATION_OFFSET_CHECKPOINT) == {("cpc", 0): 3}
    await client.aclose()
