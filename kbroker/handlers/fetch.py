"""Fetch (api key 1): read record batches from partition logs, with long polling.

How it works: the handler reads every requested partition in request order
(ReplicaManager.readFromLog), spending the response-wide ``max_bytes`` as it
goes; only the first partition that returns data may exceed its limit, and then
only by one whole batch (KIP-74). If the bytes read reach ``min_bytes``, or
``max_wait_ms`` is 0, or a partition failed, it answers at once. Otherwise it
parks on ``BrokerState.wait_for_append`` until an append, a high-watermark move or
a leader change wakes it, or ``max_wait_ms`` runs out (then answers with a fresh
read) — never by a polling timer (Kafka's DelayedFetch).

A woken fetch reads again only if, for one of its partitions, the end offset its
isolation reads up to moved, or the log start or the leader epoch did (then the
read answers the error: out of range, not leader, fenced): the log end offset for a
follower, the high watermark for a read_uncommitted consumer, the last stable
offset for read_committed (DelayedFetch.tryComplete's FetchIsolation LOG_END,
HIGH_WATERMARK, TXN_COMMITTED). So a follower parked at the leader's log end is
not woken by the high watermark moving (its read would find nothing new and park
again: on a replicated topic every acks=all produce moves the HW once per
follower); it learns the HW from its next response, like Kafka's followers. A
consumer is woken by the HW (or LSO) moving, which is what makes acks=all
records visible, and not by appends above it that it cannot read yet.

Fetch sessions (KIP-227): this broker never creates one, so every full fetch
is answered sessionless (session_id 0) and clients keep sending full fetches;
an incremental fetch (epoch > 0) names a session we never issued and gets
FETCH_SESSION_ID_NOT_FOUND, like a Kafka broker whose session cache lost it.
"""

from __future__ import annotations

import enum
from typing import Any

import trio

from kbroker.authz.acl import Operation, ResourceType
from kbroker.authz.checks import allowed, allowed_cluster
from kbroker.errors import KafkaApiError
from kbroker.handlers import RequestContext, handles
from kbroker.handlers.partitions import (
    end_offset_for_epoch,
    error_code_of,
    led_partition,
    local_log,
    lookup_topic,
    lookup_topic_id,
    point_to_leaders,
)
from kbroker.log.errors import OffsetOutOfRange
from kbroker.quotas import CONSUMER_BYTE_RATE, quota_manager
from kbroker.topics import Partition, Topic
from kbroker.txn.service import poll as poll_transactions
from kbroker.wire.compression import ZSTD
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import FetchRequest, FetchResponse
from kbroker.wire.records import RECORD_BATCH_OVERHEAD, parse_header

# FetchMetadata.INITIAL_EPOCH (open a session) and FINAL_EPOCH (sessionless).
_INITIAL_EPOCH = 0
_FINAL_EPOCH = -1
_READ_COMMITTED = 1
_FIRST_TOPIC_ID_VERSION = 13
_FIRST_ZSTD_VERSION = 10  # KIP-110


class FetchedRecords:
    """The batches one partition returns, as log file regions; bytes only when encoded.

    Has ``__len__`` / ``__bytes__`` so the codec can size and write it, and keeps
    ``regions`` so the server can hand them to sendfile instead.
    """

    __slots__ = ("regions", "_length")

    def __init__(self, regions: list[Any]) -> None:
        self.regions = regions
        self._length = sum(len(r) for r in regions)

    def __len__(self) -> int:
        return self._length

    def __bytes__(self) -> bytes:
        return b"".join(bytes(r) for r in self.regions)

    def __repr__(self) -> str:
        return f"FetchedRecords({len(self.regions)} regions, {self._length} bytes)"


@handles(FetchRequest.API_KEY, 4, 17)
async def handle_fetch(ctx: RequestContext, request: FetchRequest) -> FetchResponse:
    """Answer a fetch once min_bytes are available, a partition fails, or max_wait_ms passes."""
    version = ctx.api_version
    if request.session_epoch not in (_INITIAL_EPOCH, _FINAL_EPOCH):
        # FetchManager.newContext: an incremental fetch for a session not in the cache.
        return FetchResponse(
            throttle_time_ms=0,
            error_code=ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
            session_id=0,
            responses=[],
        )
    # Forgotten topics only matter to incremental sessions: ignored.
    max_wait_s = max(0, request.max_wait_ms) / 1000.0
    deadline = trio.current_time() + max_wait_s
    isolation = FetchIsolation.of(
        replica_id_of(request, version), request.isolation_level == _READ_COMMITTED
    )
    while True:
        responses, size, must_answer, watched = _read_all(ctx, request, version)
        if must_answer or request.max_wait_ms <= 0 or size >= request.min_bytes:
            break
        # No await between the read above and this wait, so no append can slip
        # in unnoticed (Trio runs one task at a time).
        if not await _wait_for_change(ctx, watched, isolation, deadline):
            # max_wait_ms ran out: answer with a fresh read (DelayedFetch.onComplete).
            responses = _read_all(ctx, request, version)[0]
            break
    if replica_id_of(request, version) < 0:
        # Consumer byte-rate quota (KafkaApis.handleFetchRequest): a fetch that takes the
        # client over its quota is not counted and answers no data, only the throttle time.
        quotas = quota_manager(ctx.broker)
        size = sum(len(p.records or b"") for t in responses for p in t.partitions)
        now = trio.current_time()
        client_id = ctx.client_id or ""
        ctx.throttle_ms = quotas.record(CONSUMER_BYTE_RATE, ctx.principal, client_id, size, now)
        if ctx.throttle_ms:
            quotas.unrecord(CONSUMER_BYTE_RATE, ctx.principal, client_id, size, now)
            return FetchResponse(
                throttle_time_ms=ctx.throttle_ms, error_code=0, session_id=0, responses=[]
            )
    response = FetchResponse(throttle_time_ms=0, error_code=0, session_id=0, responses=responses)
    cluster = ctx.broker.cluster
    if version >= 12 and cluster is not None:

        def name_of(t: Any) -> str | None:
            if version < 13:
                return str(t.topic)
            info = cluster.metadata.topic_by_id(t.topic_id)
            return None if info is None else info.name

        endpoints = point_to_leaders(
            ctx,
            ((name_of(t), p.partition_index, p) for t in responses for p in t.partitions),
            FetchResponse,
        )
        if version >= 16:
            response.node_endpoints = endpoints
    return response


class FetchIsolation(enum.Enum):
    """How far a fetch may read in each partition (Kafka's FetchIsolation)."""

    LOG_END = "log_end"  # a follower copies everything the leader has
    HIGH_WATERMARK = "high_watermark"  # a read_uncommitted consumer: committed records
    TXN_COMMITTED = "txn_committed"  # read_committed: below the last stable offset

    @classmethod
    def of(cls, replica_id: int, read_committed: bool) -> FetchIsolation:
        """Kafka's FetchIsolation.of: a broker's fetch (replica id >= 0) reads to the log end."""
        if replica_id >= 0:
            return cls.LOG_END
        return cls.TXN_COMMITTED if read_committed else cls.HIGH_WATERMARK

    def end_offset(self, log: Any) -> int:
        """The offset this isolation reads up to (DelayedFetch.tryComplete's endOffset)."""
        if self is FetchIsolation.LOG_END:
            return int(log.log_end_offset)
        if self is FetchIsolation.TXN_COMMITTED:
            return int(log.last_stable_offset)
        return int(log.high_watermark)


# What a parked fetch watches in one partition (``_watch``): the end offset its
# isolation reads to, the log start offset, and the leader epoch.
Watched = tuple[Partition, tuple[int, int, int]]


def _watch(partition: Partition, isolation: FetchIsolation) -> tuple[int, int, int]:
    """What, when it changes, may complete a parked fetch of ``partition``.

    DelayedFetch.tryComplete: new data up to the isolation's end offset (or a log
    truncated below the fetch offset), an offset now out of range, and a change of
    leader or leader epoch (the next read answers NOT_LEADER_OR_FOLLOWER or
    FENCED_LEADER_EPOCH instead of letting the fetcher wait out max_wait_ms).
    """
    log = partition.log
    replica = partition.replica
    epoch = -1 if replica is None else replica.leader_epoch
    return isolation.end_offset(log), log.log_start_offset, epoch


async def _wait_for_change(
    ctx: RequestContext, watched: list[Watched], isolation: FetchIsolation, deadline: float
) -> bool:
    """Wait until a watched partition changes in a way the fetch can see (True), or the
    deadline (False).

    Every append anywhere, every high-watermark move and every leader change
    (the broker's notify_append) wakes every parked fetch; comparing a few
    integers per partition spares re-reading the logs for changes this fetch
    cannot read: appends to partitions it does not fetch, a high watermark moving
    under a follower, an append above a consumer's HW.
    """
    while True:
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            return False
        await ctx.broker.wait_for_append(remaining)
        for partition, seen in watched:
            if _watch(partition, isolation) != seen:
                return True


def replica_id_of(request: FetchRequest, version: int) -> int:
    """The fetching broker's id (>= 0 for a follower), from ReplicaState from v15 (KIP-903)."""
    return request.replica_state.replica_id if version >= 15 else request.replica_id


# A file region keeps its segment file's descriptor (outside the bounded open-file cache,
# log/filecache.py) until the response is written, and the server duplicates it for
# sendfile. A consumer fetching thousands of partitions in one request would hold as many:
# past this many partitions a response carries copies of the bytes instead (bounded by the
# request's max_bytes), so one Fetch cannot exhaust the broker's descriptors.
REGIONS_HELD_PER_FETCH = 64


def _read_all(
    ctx: RequestContext, request: FetchRequest, version: int
) -> tuple[list[Any], int, bool, list[Watched]]:
    """Read every requested partition once.

    Returns (topic responses, bytes read, answer now?, and each partition read with
    what ``_watch`` saw of it, to notice when it changes).
    """
    by_id = version >= _FIRST_TOPIC_ID_VERSION
    limit = request.max_bytes if request.max_bytes > 0 else 0
    min_one = True  # KIP-74: the first non-empty partition returns at least one whole batch
    total = 0
    errored = False
    interesting = 0
    read_committed = request.isolation_level == _READ_COMMITTED
    replica_id = replica_id_of(request, version)
    isolation = FetchIsolation.of(replica_id, read_committed)
    if read_committed:
        # Abort timed-out transactions that would hold the LSO back.
        poll_transactions(ctx.broker)
    # KafkaApis.handleFetchRequest: a follower needs ClusterAction, a consumer Read on
    # each topic; a topic refused answers TOPIC_AUTHORIZATION_FAILED.
    if replica_id >= 0:
        follower_allowed = allowed_cluster(ctx, Operation.CLUSTER_ACTION)

        def may_read(name: str) -> bool:
            return follower_allowed

    else:

        def may_read(name: str) -> bool:
            return allowed(ctx, Operation.READ, ResourceType.TOPIC, name)

    responses = []
    watched: list[Watched] = []
    held = 0  # partitions answered with file regions (each holds its segment's descriptor)
    for fetch_topic in request.topics:
        topic: Topic | None = None
        topic_error: ErrorCode | None = None
        try:
            if by_id:
                topic = lookup_topic_id(ctx, fetch_topic.topic_id)
            elif may_read(fetch_topic.topic):
                topic = lookup_topic(ctx, fetch_topic.topic)
        except Exception as exc:  # noqa: BLE001 - per-partition answer
            topic_error = error_code_of(exc)
        if topic is not None and by_id and not may_read(topic.name):
            topic = None
        if topic is None and topic_error is None:
            topic_error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        parts = []
        for fp in fetch_topic.partitions:
            if topic is None:
                # KafkaApis filters unknown topics out before reading; they
                # neither complete nor delay the fetch.
                code = topic_error or ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                parts.append(_error_partition(fp.partition, code))
                continue
            try:
                partition = led_partition(ctx, topic, fp.partition)
            except Exception as exc:  # noqa: BLE001
                parts.append(_error_partition(fp.partition, error_code_of(exc)))
                continue
            interesting += 1
            data, size = _read_partition(
                ctx,
                partition,
                fp,
                min(fp.partition_max_bytes, limit),
                min_one,
                version=version,
                read_committed=read_committed,
                replica_id=replica_id,
            )
            watched.append((partition, _watch(partition, isolation)))
            if data.error_code:
                errored = True
            if size > 0 and isinstance(data.records, FetchedRecords):
                held += 1
                if held > REGIONS_HELD_PER_FETCH:
                    data.records = bytes(data.records)
            if size > 0:
                min_one = False
                limit = max(0, limit - size)
                total += size
            parts.append(data)
        if by_id:
            resp_topic = FetchResponse.FetchableTopicResponse(
                topic_id=fetch_topic.topic_id, partitions=parts
            )
        else:
            resp_topic = FetchResponse.FetchableTopicResponse(
                topic=fetch_topic.topic, partitions=parts
            )
        responses.append(resp_topic)
    # ReplicaManager.fetchMessages answers at once when nothing is readable or a read failed.
    return responses, total, errored or interesting == 0, watched


def _has_zstd(regions: list[Any]) -> bool:
    """Whether any batch in these file regions is zstd-compressed (old fetch versions only)."""
    data = b"".join(r.read_bytes() for r in regions)
    pos = 0
    while pos + RECORD_BATCH_OVERHEAD <= len(data):
        header = parse_header(data, pos)
        if header.compression == ZSTD:
            return True
        pos += header.size
    return False


def _error_partition(index: int, code: ErrorCode | int) -> Any:
    """A partition answer carrying only an error (FetchResponse.partitionResponse)."""
    return FetchResponse.PartitionData(
        partition_index=index,
        error_code=code,
        high_watermark=-1,
        last_stable_offset=-1,
        log_start_offset=-1,
        aborted_transactions=None,
        preferred_read_replica=-1,
        records=b"",
    )


def _read_partition(
    ctx: RequestContext,
    partition: Partition,
    fp: Any,
    max_bytes: int,
    min_one: bool,
    *,
    version: int,
    read_committed: bool,
    replica_id: int = -1,
) -> tuple[Any, int]:
    """Read one partition: (PartitionData, bytes of records returned).

    Kafka's Partition.fetchRecords: the current leader epoch is checked (v9+),
    a fetch naming its last fetched epoch (v12+, KIP-320) whose log diverges
    from ours gets ``diverging_epoch`` instead of records, and a follower's
    fetch reports its progress to the replication state and reads up to the
    log end rather than the high watermark.
    """
    log = partition.log
    follower = replica_id >= 0
    try:
        local_log(ctx, partition, fp.current_leader_epoch if version >= 9 else -1)
        if version >= 12 and fp.last_fetched_epoch >= 0:
            diverging = _diverging_epoch(ctx, partition, fp.last_fetched_epoch, fp.fetch_offset)
            if diverging is not None:
                data = _error_partition(fp.partition, 0)
                data.high_watermark = log.high_watermark
                data.last_stable_offset = log.last_stable_offset
                data.log_start_offset = log.log_start_offset
                data.diverging_epoch = FetchResponse.EpochEndOffset(
                    epoch=diverging[0], end_offset=diverging[1]
                )
                return data, 0
        if follower:
            _record_follower_fetch(partition, fp, replica_id, epoch_given=version >= 9)
    except KafkaApiError as exc:
        return _error_partition(fp.partition, exc.code), 0
    except OffsetOutOfRange:
        return _error_partition(fp.partition, ErrorCode.OFFSET_OUT_OF_RANGE), 0
    hw = log.high_watermark
    # KIP-98: read_committed consumers read only below the last stable offset.
    lso = log.last_stable_offset
    data = FetchResponse.PartitionData(
        partition_index=fp.partition,
        error_code=0,
        high_watermark=hw,
        last_stable_offset=lso,
        log_start_offset=log.log_start_offset,
        # Kafka sends null for read_uncommitted and a (here empty) list for read_committed.
        aborted_transactions=[] if read_committed else None,
        preferred_read_replica=-1,
        records=b"",
    )
    try:
        result = log.read(
            fp.fetch_offset,
            max(0, max_bytes),
            # A follower copies everything; consumers see only committed records.
            max_offset=None if follower else lso if read_committed else hw,
            min_one=min_one,
        )
    except OffsetOutOfRange:
        # Answered with the current log start / high watermark so a client can
        # see where the valid range is before applying auto.offset.reset.
        data.error_code = ErrorCode.OFFSET_OUT_OF_RANGE
        return data, 0
    except Exception as exc:  # noqa: BLE001 - per-partition answer
        return _error_partition(fp.partition, error_code_of(exc)), 0
    regions = list(result.regions)
    size = sum(len(r) for r in regions)
    if size and version < _FIRST_ZSTD_VERSION and _has_zstd(regions):
        # KIP-110: a consumer fetching below v10 cannot read zstd; Kafka answers the
        # partition UNSUPPORTED_COMPRESSION_TYPE rather than send batches it would choke on.
        data.error_code = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
        return data, 0
    if size:
        data.records = FetchedRecords(regions)
        if read_committed:
            # The aborted transactions overlapping what is returned, so the
            # consumer can skip their records (Kafka's collectAbortedTxns).
            data.aborted_transactions = [
                FetchResponse.AbortedTransaction(
                    producer_id=a.producer_id, first_offset=a.first_offset
                )
                for a in log.aborted_transactions(fp.fetch_offset, result.next_offset)
            ]
    return data, size


def _diverging_epoch(
    ctx: RequestContext, partition: Partition, last_fetched_epoch: int, fetch_offset: int
) -> tuple[int, int] | None:
    """(epoch, end offset) where the fetcher's log diverges from ours, None if it does not.

    Kafka's Partition.readRecords (KIP-320): our end offset for the fetcher's last
    epoch is below its fetch offset, or we know only an older epoch, so its log
    holds records ours does not. An epoch we cannot place, or a fetch offset
    below our log start, is OFFSET_OUT_OF_RANGE.
    """
    epoch, end = end_offset_for_epoch(ctx, partition, last_fetched_epoch)
    if epoch < 0 or end < 0:
        raise OffsetOutOfRange(fetch_offset, partition.log.log_start_offset, -1)
    if fetch_offset < partition.log.log_start_offset:
        raise OffsetOutOfRange(fetch_offset, partition.log.log_start_offset, -1)
    if epoch < last_fetched_epoch or end < fetch_offset:
        return epoch, end
    return None


def _record_follower_fetch(
    partition: Partition, fp: Any, replica_id: int, *, epoch_given: bool
) -> None:
    """A follower's fetch tells the leader how far its log goes (Partition.updateFollowerFetchState).

    A broker that is not one of the partition's replicas is refused as Kafka's
    followerReplicaOrThrow does: UNKNOWN_LEADER_EPOCH when the fetch names a
    leader epoch (the follower retries: it may be a replica we do not know of
    yet), NOT_LEADER_OR_FOLLOWER otherwise.
    """
    replica = partition.replica
    if replica is None or replica_id not in replica.followers:
        if replica is not None and not replica.is_leader:
            raise KafkaApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if epoch_given and fp.current_leader_epoch >= 0:
            raise KafkaApiError(ErrorCode.UNKNOWN_LEADER_EPOCH)
        raise KafkaApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    log = partition.log
    if not log.log_start_offset <= fp.fetch_offset <= log.log_end_offset:
        # Checked before the follower's position is recorded: Kafka's read fails first.
        raise OffsetOutOfRange(fp.fetch_offset, log.log_start_offset, log.log_end_offset)
    replica.on_follower_fetch(replica_id, fp.fetch_offset, log_start_offset=fp.log_start_offset)
