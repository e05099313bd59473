"""The follower side of replication: Kafka's ReplicaFetcherManager / ReplicaFetcherThread.

How it works: a follower runs one ``ReplicaFetcher`` per source broker (the
leader of the partitions it copies), over one connection, speaking Kafka's own
requests with ``replica_id`` set to this broker's id:

1. Truncation (KIP-101/KIP-279). A partition just added (a new leader, or a
   restart) first asks the leader OffsetForLeaderEpoch for its own latest leader
   epoch. The answer says where that epoch ends on the leader; the follower cuts
   its log there (or where its own copy of the epoch ends, whichever is lower),
   and repeats with its new latest epoch until the epochs agree. Batches an old
   leader wrote but never committed are gone before anything is fetched.
2. Fetching. Every partition past truncation goes into one long-polled Fetch
   (``replica.fetch.wait.max.ms``, min_bytes 1) at its log end offset, with its
   last fetched epoch (KIP-320). The leader's batches are appended unchanged
   (``PartitionLog.append_as_follower``: same offsets, producer ids, sequences,
   markers, CRCs) and the follower's high watermark becomes min(leader's HW, own
   LEO). A ``diverging_epoch`` in the answer sends the partition back to step 1
   with that epoch; OFFSET_OUT_OF_RANGE truncates to the leader's log end when the
   follower is ahead, else restarts the log at the leader's log start
   (``handleOutOfRangeError``). Epoch and leadership errors back off and retry
   until the broker moves the partition elsewhere.

The broker adds and removes partitions (``ReplicaFetcherManager.add_fetcher_for_partitions``
/ ``remove_fetcher_for_partitions``) when LeaderAndIsr makes it a follower or a leader.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from kbroker.log.leader_epoch import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
from kbroker.log.scan import spans_in
from kbroker.topics import Partition
from kbroker.wire.errors import ErrorCode
from kbroker.wire.frames import FrameDecoder
from kbroker.wire.messages import (
    FetchRequest,
    ListOffsetsRequest,
    OffsetForLeaderEpochRequest,
)
from kbroker.wire.protocol import decode_response, encode_request

logger = logging.getLogger(__name__)

# Versions the fetcher speaks: Fetch v12 names topics (no topic ids needed) and
# carries last_fetched_epoch / diverging_epoch (KIP-320); OffsetForLeaderEpoch v3+
# and ListOffsets v1+ carry the replica id.
FETCH_VERSION = 12
OFFSET_FOR_LEADER_EPOCH_VERSION = 4
LIST_OFFSETS_VERSION = 6
_LATEST, _EARLIEST = -1, -2
# ListOffsets/OffsetForLeaderEpoch from a follower (not a consumer, not a debugging tool).
_SESSIONLESS = -1

TopicPartition = tuple[str, int]


class Connection(Protocol):
    """What the fetcher needs of a connection to the source broker."""

    async def request(self, body: Any, *, version: int) -> Any:
        """Send one request and return its decoded response."""
        ...

    async def aclose(self) -> None:
        """Close the connection."""
        ...


Connect = Callable[[str, int], Awaitable[Connection]]


class KafkaConnection:
    """One TCP connection speaking kbroker.wire, one request at a time."""

    def __init__(self, stream: trio.abc.Stream, *, client_id: str) -> None:
        self._stream = stream
        self._client_id = client_id
        self._correlation = itertools.count(1)
        self._decoder = FrameDecoder(max_frame_size=2**31 - 1)

    @classmethod
    async def open(cls, host: str, port: int, *, client_id: str) -> KafkaConnection:
        """Connect to host:port."""
        return cls(await trio.open_tcp_stream(host, port), client_id=client_id)

    async def request(self, body: Any, *, version: int) -> Any:
        """Send ``body`` and wait for its response."""
        correlation_id = next(self._correlation)
        api_key = body.API_KEY
        await self._stream.send_all(
            encode_request(api_key, version, correlation_id, self._client_id, body)
        )
        sock = getattr(self._stream, "socket", None)
        while True:
            frame = self._decoder.next_frame_view()
            if frame is not None:
                got, response = decode_response(api_key, version, frame)
                if got != correlation_id:
                    raise ConnectionError(f"correlation id {got}, expected {correlation_id}")
                return response
            # A large response (a fetch's batches) is read straight into its own
            # buffer, not copied out of a receive buffer (FrameDecoder.receive_buffer).
            target = self._decoder.receive_buffer()
            if target is not None and sock is not None:
                n = await sock.recv_into(target)
                if not n:
                    raise ConnectionError("the source broker closed the connection")
                self._decoder.received(n)
                continue
            data = await self._stream.receive_some(1 << 16)
            if not data:
                raise ConnectionError("the source broker closed the connection")
            self._decoder.feed(data)

    async def aclose(self) -> None:
        """Close the stream."""
        await self._stream.aclose()


@dataclass
class FetcherConfig:
    """The replica.* settings a fetcher uses (Kafka's names and defaults)."""

    fetch_wait_max_ms: int = 500  # replica.fetch.wait.max.ms
    fetch_max_bytes: int = 1_048_576  # replica.fetch.max.bytes (per partition)
    fetch_response_max_bytes: int = 10_485_760  # replica.fetch.response.max.bytes
    fetch_backoff_ms: int = 1_000  # replica.fetch.backoff.ms

    @classmethod
    def from_broker_config(cls, config: Any) -> FetcherConfig:
        """Read the replica.* keys the broker config has; defaults for the others."""

        def value(key: str, default: int) -> int:
            try:
                return int(config[key])
            except (KeyError, TypeError, ValueError):
                return default

        return cls(
            fetch_wait_max_ms=value("replica.fetch.wait.max.ms", 500),
            fetch_max_bytes=value("replica.fetch.max.bytes", 1_048_576),
            fetch_response_max_bytes=value("replica.fetch.response.max.bytes", 10_485_760),
            fetch_backoff_ms=value("replica.fetch.backoff.ms", 1_000),
        )


@dataclass(eq=False)
class _PartitionFetchState:
    partition: Partition
    leader_epoch: int
    truncating: bool = True
    # Epoch/offset a fetch's diverging_epoch named: truncate by it, no round trip.
    diverging: tuple[int, int] | None = None
    delayed_until: float = 0.0  # after an error: not fetched again before this time
    errors: int = field(default=0)


class ReplicaFetcher:
    """Copies the partitions led by one source broker into the local logs."""

    def __init__(
        self,
        *,
        broker_id: int,
        source_id: int,
        address: tuple[str, int],
        config: FetcherConfig | None = None,
        connect: Connect | None = None,
        on_append: Callable[[Partition], None] | None = None,
    ) -> None:
        self.broker_id = broker_id
        self.source_id = source_id
        self.address = address
        self.config = config or FetcherConfig()
        self._connect = connect or self._default_connect
        self._on_append = on_append
        self.partitions: dict[TopicPartition, _PartitionFetchState] = {}
        self._changed = trio.Event()
        self._cancel = trio.CancelScope()

    async def _default_connect(self, host: str, port: int) -> Connection:
        return await KafkaConnection.open(
            host, port, client_id=f"broker-{self.broker_id}-fetcher-{self.source_id}"
        )

    # -- membership ------------------------------------------------------------------
    def add_partitions(self, partitions: Iterable[tuple[Partition, int]]) -> None:
        """Start fetching (partition, leader epoch) pairs; each truncates first."""
        for partition, leader_epoch in partitions:
            key = (partition.topic.name, partition.index)
            self.partitions[key] = _PartitionFetchState(partition, leader_epoch)
        self._wake()

    def remove_partitions(self, keys: Iterable[TopicPartition]) -> None:
        """Stop fetching these partitions (an in-flight answer for them is dropped)."""
        for key in keys:
            self.partitions.pop(key, None)
        self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, trio.Event()
        event.set()

    def shutdown(self) -> None:
        """Stop the fetcher's task."""
        self._cancel.cancel()

    # -- the loop ----------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fetch until shut down; reconnects after connection failures."""
        task_status.started()
        with self._cancel:
            while True:
                if not self.partitions:
                    await self._changed.wait()
                    continue
                try:
                    conn = await self._connect(*self.address)
                except OSError as exc:
                    logger.info(
                        "fetcher %d: cannot reach broker %d: %s",
                        self.broker_id,
                        self.source_id,
                        exc,
                    )
                    await trio.sleep(self.config.fetch_backoff_ms / 1000)
                    continue
                try:
                    while self.partitions:
                        await self.do_work(conn)
                except (
                    OSError,
                    ConnectionError,
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                ) as exc:
                    logger.info(
                        "fetcher %d: connection to broker %d failed: %s",
                        self.broker_id,
                        self.source_id,
                        exc,
                    )
                    await trio.sleep(self.config.fetch_backoff_ms / 1000)
                finally:
                    with trio.CancelScope(shield=True):
                        await conn.aclose()

    async def do_work(self, conn: Connection) -> None:
        """One round: truncate what needs it, then one fetch (or wait for work)."""
        now = trio.current_time()
        truncating = [
            (k, s) for k, s in self.partitions.items() if s.truncating and s.delayed_until <= now
        ]
        if truncating:
            await self._truncate(conn, truncating)
            return
        fetching = [
            (k, s)
            for k, s in self.partitions.items()
            if not s.truncating and s.delayed_until <= now
        ]
        if not fetching:
            wake = min((s.delayed_until for s in self.partitions.values()), default=now + 1)
            with trio.move_on_at(wake):
                await self._changed.wait()
            return
        await self._fetch(conn, fetching)

    # -- truncation ------------------------------------------------------------------
    async def _truncate(
        self, conn: Connection, states: list[tuple[TopicPartition, _PartitionFetchState]]
    ) -> None:
        ask: list[tuple[TopicPartition, _PartitionFetchState]] = []
        for key, state in states:
            log = state.partition.log
            if state.diverging is not None:
                epoch, end = state.diverging
                state.diverging = None
                self._apply_truncation(key, state, epoch, end)
            elif log.leader_epochs.latest_epoch == UNDEFINED_EPOCH:
                # No epochs: nothing the leader could contradict but the uncommitted tail.
                if log.log_end_offset > log.high_watermark:
                    self._truncate_log(key, state, log.high_watermark)
                state.truncating = False
            else:
                ask.append((key, state))
        if not ask:
            return
        by_topic: dict[str, list[Any]] = {}
        for (topic, index), state in ask:
            by_topic.setdefault(topic, []).append(
                OffsetForLeaderEpochRequest.OffsetForLeaderPartition(
                    partition=index,
                    current_leader_epoch=state.leader_epoch,
                    leader_epoch=state.partition.log.leader_epochs.latest_epoch,
                )
            )
        request = OffsetForLeaderEpochRequest(
            replica_id=self.broker_id,
            topics=[
                OffsetForLeaderEpochRequest.OffsetForLeaderTopic(topic=t, partitions=ps)
                for t, ps in by_topic.items()
            ],
        )
        response = await conn.request(request, version=OFFSET_FOR_LEADER_EPOCH_VERSION)
        asked = dict(ask)
        for t in response.topics:
            for p in t.partitions:
                key = (t.topic, p.partition)
                current = asked.get(key)
                if current is None or self.partitions.get(key) is not current:
                    continue  # removed or re-added while we waited
                if p.error_code:
                    self._delay(key, current, ErrorCode(p.error_code))
                    continue
                self._apply_truncation(key, current, p.leader_epoch, p.end_offset)

    def _apply_truncation(
        self, key: TopicPartition, state: _PartitionFetchState, leader_epoch: int, end: int
    ) -> None:
        """Kafka's AbstractFetcherThread.getOffsetTruncationState, then truncate."""
        log = state.partition.log
        leo = log.log_end_offset
        done = True
        if end == UNDEFINED_EPOCH_OFFSET:
            # The leader cannot place our epoch: keep only what was committed.
            target = min(log.high_watermark, leo)
        elif leader_epoch == UNDEFINED_EPOCH:
            target = min(end, leo)
        else:
            ours_epoch, ours_end = log.leader_epochs.end_offset_for(leader_epoch, leo)
            if ours_end == UNDEFINED_EPOCH_OFFSET or ours_epoch == UNDEFINED_EPOCH:
                target = min(end, leo)
            elif ours_epoch == leader_epoch:
                target = min(end, ours_end, leo)
            else:
                # We never had the leader's epoch: cut to where our older one ends and
                # ask again with it.
                target = min(ours_end, leo)
                done = False
        if target < leo:
            self._truncate_log(key, state, target)
        state.truncating = not done
        if done:
            state.errors = 0

    def _truncate_log(self, key: TopicPartition, state: _PartitionFetchState, offset: int) -> None:
        log = state.partition.log
        logger.info(
            "follower %d truncates %s-%d from %d to %d (leader epoch %d)",
            self.broker_id,
            key[0],
            key[1],
            log.log_end_offset,
            offset,
            state.leader_epoch,
        )
        log.truncate_to(offset)
        replica = state.partition.replica
        if replica is not None:
            replica.update_follower_high_watermark(log.high_watermark)

    # -- fetching ----------------------------------------------------------------------
    def _fetch_request(self, states: list[tuple[TopicPartition, _PartitionFetchState]]) -> Any:
        by_topic: dict[str, list[Any]] = {}
        for (topic, index), state in states:
            log = state.partition.log
            by_topic.setdefault(topic, []).append(
                FetchRequest.FetchPartition(
                    partition=index,
                    current_leader_epoch=state.leader_epoch,
                    fetch_offset=log.log_end_offset,
                    last_fetched_epoch=log.leader_epochs.latest_epoch,
                    log_start_offset=log.log_start_offset,
                    partition_max_bytes=self.config.fetch_max_bytes,
                )
            )
        return FetchRequest(
            replica_id=self.broker_id,
            max_wait_ms=self.config.fetch_wait_max_ms,
            min_bytes=1,
            max_bytes=self.config.fetch_response_max_bytes,
            isolation_level=0,
            session_id=0,
            session_epoch=_SESSIONLESS,
            topics=[FetchRequest.FetchTopic(topic=t, partitions=ps) for t, ps in by_topic.items()],
            forgotten_topics_data=[],
            rack_id="",
        )

    async def _fetch(
        self, conn: Connection, states: list[tuple[TopicPartition, _PartitionFetchState]]
    ) -> None:
        sent = dict(states)
        offsets = {key: s.partition.log.log_end_offset for key, s in states}
        response = await conn.request(self._fetch_request(states), version=FETCH_VERSION)
        if response.error_code:
            for key, state in states:
                self._delay(key, state, ErrorCode(response.error_code))
            return
        for t in response.responses:
            for p in t.partitions:
                key = (t.topic, p.partition_index)
                current = sent.get(key)
                if current is None or self.partitions.get(key) is not current:
                    continue
                if current.partition.log.log_end_offset != offsets[key]:
                    continue  # the log changed under us (truncated by the broker): refetch
                await self._process_partition(conn, key, current, p)

    async def _process_partition(
        self, conn: Connection, key: TopicPartition, state: _PartitionFetchState, p: Any
    ) -> None:
        code = ErrorCode(p.error_code)
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            await self._handle_out_of_range(conn, key, state)
            return
        if code:
            self._delay(key, state, code)
            return
        if p.diverging_epoch.epoch >= 0 or p.diverging_epoch.end_offset >= 0:
            state.diverging = (p.diverging_epoch.epoch, p.diverging_epoch.end_offset)
            state.truncating = True
            return
        log = state.partition.log
        data = memoryview(bytes(p.records or b""))
        # A fetch may end in a partial batch (the byte limit cut it): drop it.
        whole, spans = spans_in(data)
        if whole:
            leo = log.log_end_offset
            first = spans[0]
            if leo == log.log_start_offset and first.base_offset < leo <= first.last_offset:
                # Our (empty) log starts inside the leader's first batch: the leader's log
                # start fell mid-batch (DeleteRecords). Start at the batch instead, as
                # Partition.appendRecordsToFollowerOrFutureReplica does.
                log.truncate_fully_and_start_at(first.base_offset)
            log.append_as_follower(data[:whole])
        state.errors = 0
        # The follower's HW: the leader's, never past our own log end.
        replica = state.partition.replica
        if replica is not None:
            replica.update_follower_high_watermark(p.high_watermark)
        else:
            log.update_high_watermark(min(p.high_watermark, log.log_end_offset))
        # The leader's log start moved (retention, DeleteRecords): follow it.
        if p.log_start_offset > log.log_start_offset and p.log_start_offset <= log.high_watermark:
            log.delete_records_before(p.log_start_offset)
        if whole and self._on_append is not None:
            self._on_append(state.partition)

    async def _handle_out_of_range(
        self, conn: Connection, key: TopicPartition, state: _PartitionFetchState
    ) -> None:
        """Kafka's fetchOffsetAndTruncate: to the leader's end if we are ahead, else start over."""
        log = state.partition.log
        leader_end = await self._list_offset(conn, key, state, _LATEST)
        if leader_end is None:
            return
        if leader_end < log.log_end_offset:
            self._truncate_log(key, state, leader_end)
            return
        leader_start = await self._list_offset(conn, key, state, _EARLIEST)
        if leader_start is None:
            return
        if leader_start > log.log_end_offset:
            logger.info(
                "follower %d restarts %s-%d at the leader's log start %d",
                self.broker_id,
                key[0],
                key[1],
                leader_start,
            )
            log.truncate_fully_and_start_at(leader_start)

    async def _list_offset(
        self, conn: Connection, key: TopicPartition, state: _PartitionFetchState, timestamp: int
    ) -> int | None:
        request = ListOffsetsRequest(
            replica_id=self.broker_id,
            isolation_level=0,
            topics=[
                ListOffsetsRequest.ListOffsetsTopic(
                    name=key[0],
                    partitions=[
                        ListOffsetsRequest.ListOffsetsPartition(
                            partition_index=key[1],
                            current_leader_epoch=state.leader_epoch,
                            timestamp=timestamp,
                        )
                    ],
                )
            ],
        )
        response = await conn.request(request, version=LIST_OFFSETS_VERSION)
        p = response.topics[0].partitions[0]
        if p.error_code:
            self._delay(key, state, ErrorCode(p.error_code))
            return None
        return int(p.offset)

    def _delay(self, key: TopicPartition, state: _PartitionFetchState, code: ErrorCode) -> None:
        state.errors += 1
        if state.errors == 1:
            logger.info(
                "follower %d: %s-%d from broker %d: %s; retrying",
                self.broker_id,
                key[0],
                key[1],
                self.source_id,
                code.name,
            )
        state.delayed_until = trio.current_time() + self.config.fetch_backoff_ms / 1000


class ReplicaFetcherManager:
    """One ReplicaFetcher per source broker (num.replica.fetchers = 1), as Kafka's manager.

    ``run`` hosts the fetchers' tasks; ``add_fetcher_for_partitions`` /
    ``remove_fetcher_for_partitions`` are what LeaderAndIsr handling calls.
    """

    def __init__(
        self,
        *,
        broker_id: int,
        config: FetcherConfig | None = None,
        connect: Connect | None = None,
        on_append: Callable[[Partition], None] | None = None,
    ) -> None:
        self.broker_id = broker_id
        self.config = config or FetcherConfig()
        self._connect = connect
        self._on_append = on_append
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the fetchers until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def add_fetcher_for_partitions(
        self, assignments: Iterable[tuple[Partition, int, tuple[str, int], int]]
    ) -> None:
        """Follow (partition, leader id, leader address, leader epoch) assignments."""
        if self._nursery is None:
            raise RuntimeError("ReplicaFetcherManager.run is not running")
        by_source: dict[int, list[tuple[Partition, int]]] = {}
        addresses: dict[int, tuple[str, int]] = {}
        for partition, leader_id, address, epoch in assignments:
            self.remove_fetcher_for_partitions([(partition.topic.name, partition.index)])
            by_source.setdefault(leader_id, []).append((partition, epoch))
            addresses[leader_id] = address
        for source, parts in by_source.items():
            fetcher = self.fetchers.get(source)
            if fetcher is not None and fetcher.address != addresses[source]:
                fetcher.shutdown()  # the broker moved: a new connection
                fetcher = None
            if fetcher is None:
                fetcher = ReplicaFetcher(
                    broker_id=self.broker_id,
                    source_id=source,
                    address=addresses[source],
                    config=self.config,
                    connect=self._connect,
                    on_append=self._on_append,
                )
                self.fetchers[source] = fetcher
                self._nursery.start_soon(fetcher.run)
            fetcher.add_partitions(parts)

    def remove_fetcher_for_partitions(self, keys: Iterable[TopicPartition]) -> None:
        """Stop fetching these partitions, whichever broker they came from."""
        keys = list(keys)
        for fetcher in self.fetchers.values():
            fetcher.remove_partitions(keys)

    def shutdown_idle_fetchers(self) -> None:
        """Stop fetchers left with no partitions."""
        for source, fetcher in list(self.fetchers.items()):
            if not fetcher.partitions:
                fetcher.shutdown()
                del self.fetchers[source]

    def fetcher_for(self, topic: str, index: int) -> ReplicaFetcher | None:
        """The fetcher copying topic-index, if any."""
        for fetcher in self.fetchers.values():
            if (topic, index) in fetcher.partitions:
                return fetcher
        return None
