"""Helpers for transaction tests over the wire: the transactional producer's and the
transaction coordinator's requests (InitProducerId, AddPartitionsToTxn, EndTxn,
AddOffsetsToTxn, TxnOffsetCommit, WriteTxnMarkers), transactional produce, and what a
reader sees."""

from __future__ import annotations

from typing import Any

from kbroker.wire.messages import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    OffsetFetchRequest,
    TxnOffsetCommitRequest,
    WriteTxnMarkersRequest,
)
from tests.kbroker.helpers import LATEST, batch, list_offset, produce_request

TID = "txn-1"


async def init(c: Any, tid: str = TID, timeout_ms: int = 60_000, **kw: Any) -> Any:
    """InitProducerId for a transactional id."""
    return await c.request(
        InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=timeout_ms, **kw)
    )


async def add(
    c: Any, pid: int, epoch: int, parts: list[tuple[str, int]], *, tid: str = TID, version: int = 3
) -> dict[tuple[str, int], int]:
    """AddPartitionsToTxn (v3 form); partition -> error code."""
    topics: dict[str, list[int]] = {}
    for t, p in parts:
        topics.setdefault(t, []).append(p)
    T = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic
    resp = await c.request(
        AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=tid,
            v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch,
            v3_and_below_topics=[T(name=n, partitions=ps) for n, ps in topics.items()],
        ),
        version=version,
    )
    return {
        (t.name, r.partition_index): r.partition_error_code
        for t in resp.results_by_topic_v3_and_below
        for r in t.results_by_partition
    }


async def end(
    c: Any, pid: int, epoch: int, commit: bool, *, tid: str = TID, version: int | None = None
) -> int:
    """EndTxn; its error code."""
    resp = await c.request(
        EndTxnRequest(
            transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit
        ),
        version=version,
    )
    return resp.error_code


def txn_batch(pid: int, epoch: int, seq: int, n: int = 2, **kw: Any) -> bytes:
    """A transactional batch."""
    return batch(pid, epoch, seq, n, transactional=True, **kw)


async def tx_produce(c: Any, topic: str, data: bytes, tid: str = TID) -> Any:
    """Produce a transactional batch to partition 0 with the request's transactional id."""
    req = produce_request(topic, 0, data)
    req.transactional_id = tid
    resp = await c.request(req)
    return resp.responses[0].partition_responses[0]


async def latest(c: Any, topic: str, isolation: int) -> int:
    """ListOffsets LATEST for partition 0 at the given isolation level."""
    return (await list_offset(c, topic, LATEST, isolation_level=isolation)).offset


async def add_offsets(c: Any, pid: int, epoch: int, *, tid: str = TID, group: str = "g") -> int:
    """AddOffsetsToTxn for ``group``; its error code."""
    resp = await c.request(
        AddOffsetsToTxnRequest(
            transactional_id=tid, producer_id=pid, producer_epoch=epoch, group_id=group
        )
    )
    return resp.error_code


async def txn_commit_offsets(
    c: Any,
    pid: int,
    epoch: int,
    offsets: dict[int, int],
    *,
    version: int | None = None,
    tid: str = TID,
    group: str = "g",
    **member: Any,
) -> list[int]:
    """TxnOffsetCommit of ``offsets`` (partition of "t" -> offset) for ``group``; each
    partition's error code, in order."""
    T = TxnOffsetCommitRequest
    resp = await c.request(
        T(
            transactional_id=tid,
            group_id=group,
            producer_id=pid,
            producer_epoch=epoch,
            **member,
            topics=[
                T.TxnOffsetCommitRequestTopic(
                    name="t",
                    partitions=[
                        T.TxnOffsetCommitRequestPartition(partition_index=p, committed_offset=o)
                        for p, o in offsets.items()
                    ],
                )
            ],
        ),
        version=version,
    )
    return [p.error_code for p in resp.topics[0].partitions]


async def txn_commit_offset(
    c: Any,
    pid: int,
    epoch: int,
    offset: int,
    *,
    version: int | None = None,
    tid: str = TID,
    group: str = "g",
    **member: Any,
) -> int:
    """TxnOffsetCommit of ``offset`` for ``group`` on "t"-0; its error code."""
    (code,) = await txn_commit_offsets(
        c, pid, epoch, {0: offset}, version=version, tid=tid, group=group, **member
    )
    return code


def marker_request(
    pid: int,
    epoch: int,
    *,
    commit: bool,
    coordinator_epoch: int,
    topic: str = "t",
    partitions: tuple[int, ...] = (0,),
) -> WriteTxnMarkersRequest:
    """WriteTxnMarkers of one COMMIT (``commit``) or ABORT marker of producer ``pid``,
    as the transaction coordinator of ``coordinator_epoch`` sends it."""
    W = WriteTxnMarkersRequest
    return W(
        markers=[
            W.WritableTxnMarker(
                producer_id=pid,
                producer_epoch=epoch,
                transaction_result=commit,
                coordinator_epoch=coordinator_epoch,
                topics=[W.WritableTxnMarkerTopic(name=topic, partition_indexes=list(partitions))],
            )
        ]
    )


async def write_marker(
    c: Any,
    pid: int,
    epoch: int,
    *,
    commit: bool,
    coordinator_epoch: int,
    topic: str = "t",
    partition: int = 0,
) -> int:
    """``marker_request`` for one partition, sent; that partition's error code."""
    request = marker_request(
        pid,
        epoch,
        commit=commit,
        coordinator_epoch=coordinator_epoch,
        topic=topic,
        partitions=(partition,),
    )
    answer = await c.request(request)
    return answer.markers[0].topics[0].partitions[0].error_code


async def committed(c: Any) -> int:
    """The offset group "g" has committed (visibly) for "t"-0, by OffsetFetch v7."""
    OF = OffsetFetchRequest
    resp = await c.request(
        OF(group_id="g", topics=[OF.OffsetFetchRequestTopic(name="t", partition_indexes=[0])]),
        version=7,
    )
    return resp.topics[0].partitions[0].committed_offset
