"""DescribeLogDirs' offset lag of a replica: how far its log end is behind the leader's
high watermark (0 on the leader, and on a single node where there is no replica state)."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbroker.handlers.admin_topics import _offset_lag
from kbroker.log import LogConfig, PartitionLog
from kbroker.replication.partition import ReplicatedPartition
from tests.log.conftest import batch


@pytest.fixture
def log(tmp_path: Path) -> Iterator[PartitionLog]:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    yield log
    log.close()


def _replica(log: PartitionLog) -> ReplicatedPartition:
    return ReplicatedPartition(
        log, broker_id=2, replica_lag_time_max_ms=10_000, min_insync_replicas=1
    )


async def test_follower_lag_is_the_leaders_high_watermark_minus_its_log_end(
    log: PartitionLog,
) -> None:
    replica = _replica(log)
    partition = types.SimpleNamespace(log=log, replica=replica)
    replica.make_follower(leader_id=1, leader_epoch=0, isr=[1], replicas=[1, 2])
    assert _offset_lag(partition) == 0  # no fetch answered yet: nothing known
    log.append(batch(3), leader_epoch=0)
    replica.update_follower_high_watermark(10)  # the leader has 10 committed records
    assert log.high_watermark == 3  # its own HW stops at its log end ...
    assert _offset_lag(partition) == 7  # ... the lag is what it still misses
    log.append(batch(7), leader_epoch=0)
    replica.update_follower_high_watermark(10)
    assert _offset_lag(partition) == 0


async def test_leader_and_single_node_have_no_lag(log: PartitionLog) -> None:
    replica = _replica(log)
    replica.make_leader(leader_epoch=1, isr=[2], replicas=[2])
    log.append(batch(4), leader_epoch=1)
    assert _offset_lag(types.SimpleNamespace(log=log, replica=replica)) == 0
    assert _offset_lag(types.SimpleNamespace(log=log, replica=None)) == 0
