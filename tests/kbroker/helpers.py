"""Helpers the broker tests share: a broker config for a data directory, building and
sending Produce, Fetch, ListOffsets and group requests over a RawClient, reading fetched
record bytes back, running the kbroker command as a real process, and a plain HTTP GET."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

from kbroker.config import BrokerConfig
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ConsumerGroupHeartbeatRequest,
    FetchRequest,
    JoinGroupRequest,
    ListOffsetsRequest,
    OffsetCommitRequest,
    OffsetDeleteRequest,
    OffsetForLeaderEpochRequest,
    ProduceRequest,
    SyncGroupRequest,
)
from kbroker.wire.records import Record, build_batch, iter_records, parse_header

# -- config --------------------------------------------------------------------------------


def broker_config(tmp_path: Path, **props: str) -> BrokerConfig:
    """A BrokerConfig with its log directory ``tmp_path`` and the given properties."""
    return BrokerConfig.from_properties({"log.dirs": str(tmp_path), **props})


# -- records -------------------------------------------------------------------------------


def records(n: int = 3, *, start: int = 0, ts: int = 1_000, **kwargs: Any) -> bytes:
    """One batch of ``n`` records keyed k<i>, valued v<i> (i from ``start``), timestamps ts, ts+1..."""
    recs = [
        Record(key=b"k%d" % i, value=b"v%d" % i, timestamp=ts + i - start)
        for i in range(start, start + n)
    ]
    return build_batch(recs, **kwargs)


def create_topic(
    server: Any, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> Any:
    """Create a topic directly on the broker under test."""
    return server.broker.topics.create(name, partitions, configs or {})


def produce_request(
    topic: str,
    partition: int,
    data: bytes | None,
    *,
    acks: int = -1,
    timeout_ms: int = 30_000,
    extra: list[tuple[int, bytes | None]] = (),
) -> ProduceRequest:  # type: ignore[assignment]
    """A Produce request for one topic, partition ``partition`` (+ ``extra`` partitions)."""
    parts = [ProduceRequest.PartitionProduceData(index=partition, records=data)]
    parts += [ProduceRequest.PartitionProduceData(index=i, records=d) for i, d in extra]
    return ProduceRequest(
        acks=acks,
        timeout_ms=timeout_ms,
        topic_data=[ProduceRequest.TopicProduceData(name=topic, partition_data=parts)],
    )


async def produce(
    client: Any,
    topic: str,
    partition: int,
    data: bytes | None,
    *,
    version: int | None = None,
    acks: int = -1,
) -> Any:
    """Produce one batch; the partition's response."""
    resp = await client.request(produce_request(topic, partition, data, acks=acks), version=version)
    assert [t.name for t in resp.responses] == [topic]
    (part,) = resp.responses[0].partition_responses
    assert part.index == partition
    return part


def fetch_request(
    topic: str,
    partition: int | tuple[int, ...],
    offset: int,
    *,
    topic_id: Any = None,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    max_bytes: int = 50 * 1024 * 1024,
    partition_max_bytes: int = 1024 * 1024,
    **kwargs: Any,
) -> FetchRequest:
    """A Fetch request of one topic (by name, or by ``topic_id`` for v13+): one partition, or
    each of a tuple of partitions in that order, all from ``offset``."""
    ft = FetchRequest.FetchTopic(
        topic=topic if topic_id is None else "",
        partitions=[
            FetchRequest.FetchPartition(
                partition=p, fetch_offset=offset, partition_max_bytes=partition_max_bytes
            )
            for p in ((partition,) if isinstance(partition, int) else partition)
        ],
    )
    if topic_id is not None:
        ft.topic_id = topic_id
    return FetchRequest(
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        topics=[ft],
        **kwargs,
    )


async def fetch(
    client: Any,
    server: Any,
    topic: str,
    partition: int,
    offset: int,
    *,
    version: int | None = None,
    **kwargs: Any,
) -> Any:
    """Fetch one partition (by topic id when ``version`` >= 13); its PartitionData."""
    if version is None:
        version = client.default_version(FetchRequest.API_KEY)
    topic_id = None
    if version >= 13:
        topic_id = server.broker.topics.get(topic).topic_id
    resp = await client.request(
        fetch_request(topic, partition, offset, topic_id=topic_id, **kwargs), version=version
    )
    assert resp.error_code == 0
    (t,) = resp.responses
    (part,) = t.partitions
    return part


@asynccontextmanager
async def parked_fetch(
    server: Any, request: FetchRequest, *, version: int
) -> AsyncIterator[tuple[Any, list[tuple[float, Any]]]]:
    """Send the one-partition Fetch ``request`` on a connection of its own and wait until
    everything blocks (the fetch parked, if it had nothing to return). Inside: a producer's
    connection, and the answer as [(trio time it came, PartitionData)] once it has come.
    Leaving waits for the answer."""
    consumer = await server.connect()
    producer = await server.connect()
    got: list[tuple[float, Any]] = []

    async def long_fetch() -> None:
        resp = await consumer.request(request, version=version)
        got.append((trio.current_time(), resp.responses[0].partitions[0]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(long_fetch)
        await trio.testing.wait_all_tasks_blocked()
        yield producer, got


def batches(data: Any) -> list[Any]:
    """The batch headers in fetched record bytes."""
    buf = bytes(data or b"")
    out, pos = [], 0
    while pos < len(buf):
        h = parse_header(buf, pos)
        out.append(h)
        pos += h.size
    return out


def fetched_records(data: Any) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record in fetched record bytes."""
    buf = bytes(data or b"")
    out, pos = [], 0
    while pos < len(buf):
        h = parse_header(buf, pos)
        out += [(r.offset, r.key, r.value) for r in iter_records(buf, pos)]
        pos += h.size
    return out


def log_end(server: Any, topic: str, partition: int = 0) -> int:
    """The partition's log end offset, straight from the broker."""
    return server.broker.topics.get(topic).partitions[partition].log.log_end_offset


def batch(pid: int, epoch: int, seq: int, n: int = 2, **kw: Any) -> bytes:
    """A batch of ``n`` records from producer ``pid``/``epoch`` starting at sequence ``seq``."""
    return records(n, producer_id=pid, producer_epoch=epoch, base_sequence=seq, **kw)


def all_values(data: bytes) -> list[bytes | None]:
    """Values of every record of every batch in ``data``."""
    out: list[bytes | None] = []
    pos = 0
    while pos < len(data):
        out += [r.value for r in iter_records(data, pos)]
        pos += parse_header(data, pos).size
    return out


# -- offsets -------------------------------------------------------------------------------

# ListOffsets timestamps with a meaning (ListOffsetsRequest.EARLIEST_TIMESTAMP etc.).
EARLIEST, LATEST, MAX_TS, EARLIEST_LOCAL, LATEST_TIERED = -2, -1, -3, -4, -5


def list_offsets_request(
    topic: str, *queries: tuple[int, int], isolation_level: int = 0
) -> ListOffsetsRequest:
    """ListOffsets for (partition, timestamp) queries of one topic."""
    return ListOffsetsRequest(
        replica_id=-1,
        isolation_level=isolation_level,
        topics=[
            ListOffsetsRequest.ListOffsetsTopic(
                name=topic,
                partitions=[
                    ListOffsetsRequest.ListOffsetsPartition(partition_index=p, timestamp=ts)
                    for p, ts in queries
                ],
            )
        ],
    )


async def list_offset(
    client: Any,
    topic: str,
    timestamp: int,
    *,
    version: int | None = None,
    partition: int = 0,
    isolation_level: int = 0,
) -> Any:
    """One ListOffsets answer."""
    resp = await client.request(
        list_offsets_request(topic, (partition, timestamp), isolation_level=isolation_level),
        version=version,
    )
    (t,) = resp.topics
    assert t.name == topic
    (p,) = t.partitions
    assert p.partition_index == partition
    return p


def epoch_request(
    topic: str, partition: int, leader_epoch: int, current_leader_epoch: int = -1
) -> OffsetForLeaderEpochRequest:
    """OffsetForLeaderEpoch for one partition."""
    return OffsetForLeaderEpochRequest(
        topics=[
            OffsetForLeaderEpochRequest.OffsetForLeaderTopic(
                topic=topic,
                partitions=[
                    OffsetForLeaderEpochRequest.OffsetForLeaderPartition(
                        partition=partition,
                        leader_epoch=leader_epoch,
                        current_leader_epoch=current_leader_epoch,
                    )
                ],
            )
        ]
    )


async def end_offset(
    client: Any, topic: str, epoch: int, *, version: int, partition: int = 0, current: int = -1
) -> Any:
    """One OffsetForLeaderEpoch answer."""
    resp = await client.request(epoch_request(topic, partition, epoch, current), version=version)
    (t,) = resp.topics
    (p,) = t.partitions
    assert (t.topic, p.partition) == (topic, partition)
    return p


# -- groups --------------------------------------------------------------------------------


def subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0 for ``topics`` (no user data)."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def commit_request(
    group: str,
    offsets: dict[tuple[str, int], int],
    *,
    generation: int = -1,
    member: str = "",
    metadata: str | None = None,
    **kwargs: Any,
) -> OffsetCommitRequest:
    """An OffsetCommit of ``offsets`` ({(topic, partition): offset}); by default from outside
    any generation (-1 and no member id: a simple, "manual" commit), each with ``metadata``
    when one is given."""
    extra = {} if metadata is None else {"committed_metadata": metadata}
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), offset in offsets.items():
        by_topic.setdefault(topic, []).append(
            OffsetCommitRequest.OffsetCommitRequestPartition(
                partition_index=partition, committed_offset=offset, **extra
            )
        )
    return OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=generation,
        member_id=member,
        topics=[
            OffsetCommitRequest.OffsetCommitRequestTopic(name=t, partitions=ps)
            for t, ps in by_topic.items()
        ],
        **kwargs,
    )


def offset_delete_request(group: str, topic: str, *partitions: int) -> OffsetDeleteRequest:
    """An OffsetDelete of ``group``'s committed offsets of ``topic``'s ``partitions``."""
    OD = OffsetDeleteRequest
    return OD(
        group_id=group,
        topics=[
            OD.OffsetDeleteRequestTopic(
                name=topic,
                partitions=[OD.OffsetDeleteRequestPartition(partition_index=i) for i in partitions],
            )
        ],
    )


def first_heartbeat(group: str, *topics: str, member_id: str = "") -> ConsumerGroupHeartbeatRequest:
    """A KIP-848 member's first ConsumerGroupHeartbeat (epoch 0): join ``group`` subscribed
    to ``topics``, owning nothing yet."""
    return ConsumerGroupHeartbeatRequest(
        group_id=group,
        member_id=member_id,
        member_epoch=0,
        rebalance_timeout_ms=30000,
        subscribed_topic_names=list(topics),
        topic_partitions=[],
    )


def described_members(group: Any) -> tuple[int, dict[str, tuple[int, list[int]]]]:
    """A ConsumerGroupDescribe answer's group as (group epoch, member -> (member epoch,
    the partitions assigned to it, of every topic, sorted))."""
    return group.group_epoch, {
        m.member_id: (
            m.member_epoch,
            sorted(p for tp in m.assignment.topic_partitions for p in tp.partitions),
        )
        for m in group.members
    }


def join_req(
    group: str,
    member_id: str = "",
    *,
    instance: str | None = None,
    session: int = 10000,
    rebalance: int = 10000,
) -> JoinGroupRequest:
    return JoinGroupRequest(
        group_id=group,
        session_timeout_ms=session,
        rebalance_timeout_ms=rebalance,
        member_id=member_id,
        group_instance_id=instance,
        protocol_type="consumer",
        protocols=[
            JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=subscription("t"))
        ],
    )


async def join(
    client: Any,
    group: str,
    *,
    instance: str | None = None,
    version: int | None = None,
    session: int = 10000,
    rebalance: int = 10000,
) -> Any:
    """JoinGroup including the KIP-394 MEMBER_ID_REQUIRED round trip."""
    r = await client.request(
        join_req(group, instance=instance, session=session, rebalance=rebalance), version=version
    )
    if r.error_code == ErrorCode.MEMBER_ID_REQUIRED:
        r = await client.request(
            join_req(group, r.member_id, instance=instance, session=session, rebalance=rebalance),
            version=version,
        )
    return r


def sole_member_sync(group: str, joined: Any) -> SyncGroupRequest:
    """The SyncGroup of the one member of ``group`` (``joined``, its JoinGroup answer): as
    the leader it assigns itself everything."""
    return SyncGroupRequest(
        group_id=group,
        generation_id=joined.generation_id,
        member_id=joined.member_id,
        assignments=[
            SyncGroupRequest.SyncGroupRequestAssignment(
                member_id=joined.member_id, assignment=b"all"
            )
        ],
    )


# -- a real kbroker process ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def kbroker_process(
    cwd: Path, data: Path, *args: str, **popen: Any
) -> AsyncIterator[trio.Process]:
    """``python -m kbroker --listen 127.0.0.1:0 --data-dir DATA ARGS`` with stderr piped
    (``popen``: more open_process arguments); killed on the way out if still running."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "kbroker", "--listen", "127.0.0.1:0", "--data-dir", str(data)]
        + list(args),
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=str(cwd),
        **popen,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()


async def read_until(stream: trio.abc.ReceiveStream, marker: bytes, seen: bytearray) -> str:
    """Read ``stream`` into ``seen`` until ``marker`` and the end of its line; that line."""
    while marker not in seen or b"\n" not in seen[seen.index(marker) :]:
        chunk = await stream.receive_some(4096)
        assert chunk, f"kbroker exited before printing {marker!r}: {seen.decode()}"
        seen += chunk
    start = seen.index(marker)
    return seen[start : seen.index(b"\n", start)].decode()


# -- HTTP ----------------------------------------------------------------------------------


async def http_get(address: tuple[str, int], path: str) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP/1.1 GET: (status, headers, body)."""
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body
