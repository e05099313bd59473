"""Helpers for tests of a coordinator whose internal partition is replicated: the
partition made a replicated one led here with a follower in its ISR, and that follower
catching up, so a test decides when a coordinator write reaches the ISR."""

from __future__ import annotations

from typing import Any

from kbroker.replication.partition import ReplicatedPartition

# replica.lag.time.max.ms of the internal partitions: short, so a test can let the
# silent follower fall out of the ISR.
LAG_MS = 100


def replicate(
    server: Any, topic: str, *, replicas: list[int] | None = None, min_isr: int = 2
) -> ReplicatedPartition:
    """Make ``topic``-0 a replicated partition led here, ISR {1, 2}, min ISR ``min_isr``
    (the topic's min.insync.replicas, as transaction.state.log.min.isr sets it in a
    cluster); replicas {1, 2} unless ``replicas`` says otherwise."""
    internal = server.broker.topics.create_internal(topic)
    internal.configs["min.insync.replicas"] = str(min_isr)
    part = internal.partitions[0]
    part.replica = ReplicatedPartition(
        part.log,
        broker_id=1,
        replica_lag_time_max_ms=LAG_MS,
        min_insync_replicas=min_isr,
        on_high_watermark_change=server.broker.notify_append,
    )
    part.replica.make_leader(leader_epoch=1, isr=[1, 2], replicas=replicas or [1, 2])
    return part.replica


def confirm(replica: ReplicatedPartition) -> None:
    """Follower 2 fetches from the leader's log end: it has everything written so far."""
    replica.on_follower_fetch(2, replica.log.log_end_offset)
