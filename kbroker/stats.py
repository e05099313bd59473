"""What the broker counts about its traffic, for /metrics, the console and request logs.

The server calls ``RequestObserver.observe`` once per request, after the response is
sent, only when something wants the figures (the HTTP listener is on, or DEBUG
request logging). Counting is plain integer arithmetic on dicts, so the Kafka path
pays a few hundred nanoseconds per request; ``kbroker.http.metrics`` turns the
counters into Prometheus families only when /metrics is scraped.

The counters follow Kafka's MBeans:

- ``BrokerTopicMetrics`` per topic: MessagesInPerSec, BytesInPerSec, BytesOutPerSec,
  FailedProduceRequestsPerSec, FailedFetchRequestsPerSec, TotalProduceRequestsPerSec,
  TotalFetchRequestsPerSec (counted per topic of a request, as ReplicaManager does);
- ``RequestMetrics`` per request name: RequestsPerSec (with the version), ErrorsPerSec
  (per error name) and TotalTimeMs (here a histogram). As in Kafka, Fetch is reported
  as FetchConsumer or FetchFollower.
"""

from __future__ import annotations

import bisect
import logging
import struct
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import REQUESTS

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

request_logger = logging.getLogger("kbroker.requests")

PRODUCE, FETCH, API_VERSIONS = 0, 1, 18
# Upper bounds (ms) of the TotalTimeMs histogram: a local broker answers in well under
# a millisecond; a long-polling Fetch waits up to fetch.max.wait.ms (500 ms by default).
TIME_BUCKETS_MS: tuple[float, ...] = (
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
)
# Kafka's request names (ApiKeys.name): the request class name without "Request".
API_NAMES: dict[int, str] = {
    key: cls.__name__.removesuffix("Request") for key, cls in REQUESTS.items()
}
_I32 = struct.Struct(">i")
_HISTORY_S = 15 * 60
_SAMPLE_EVERY_S = 5.0


def count_records(records: Any) -> int:
    """How many records a produced record set holds (v2 batches: recordsCount; v0/v1 message
    sets: one per entry, a compressed wrapper counting as one)."""
    end = len(records)
    count = pos = 0
    unpack = _I32.unpack_from
    while pos + 17 <= end:
        if records[pos + 16] >= 2 and pos + 61 <= end:
            count += max(0, unpack(records, pos + 57)[0])
        else:
            count += 1
        pos += 12 + max(0, unpack(records, pos + 8)[0])
    return count


@dataclass(slots=True)
class TopicCounters:
    """One topic's BrokerTopicMetrics counters."""

    messages_in: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    failed_produce: int = 0
    failed_fetch: int = 0
    produce_requests: int = 0
    fetch_requests: int = 0


@dataclass(slots=True)
class RequestCounters:
    """One request name's RequestMetrics: counts per version, errors, the time histogram."""

    by_version: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(TIME_BUCKETS_MS) + 1))
    time_sum_ms: float = 0.0
    count: int = 0


@dataclass(slots=True)
class Sample:
    """A point of the console's charts: per-topic totals and per-group lag at one time."""

    at: float
    messages_in: dict[str, int]
    bytes_out: dict[str, int]
    lag: dict[str, int]


class BrokerStats:
    """The broker's traffic counters (see the module docstring)."""

    def __init__(self) -> None:
        self.topics: dict[str, TopicCounters] = defaultdict(TopicCounters)
        self.requests: dict[str, RequestCounters] = defaultdict(RequestCounters)
        self.started = time.time()
        self.history: deque[Sample] = deque(maxlen=int(_HISTORY_S / _SAMPLE_EVERY_S))

    def record(self, name: str, version: int, elapsed_ms: float, errors: list[int]) -> None:
        """One request of ``name``: its version, total time and the error codes it answered."""
        counters = self.requests[name]
        counters.by_version[version] += 1
        counters.count += 1
        counters.time_sum_ms += elapsed_ms
        counters.buckets[bisect.bisect_left(TIME_BUCKETS_MS, elapsed_ms)] += 1
        for code in errors:
            counters.errors[_error_name(code)] += 1

    def sample(self, lag: dict[str, int]) -> None:
        """Remember the current totals (and the groups' lag) for the console's charts."""
        self.history.append(
            Sample(
                time.time(),
                {t: c.messages_in for t, c in self.topics.items()},
                {t: c.bytes_out for t, c in self.topics.items()},
                dict(lag),
            )
        )


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class RequestObserver:
    """Called by the server after each request: feeds ``stats`` and the DEBUG request log."""

    def __init__(self, broker: BrokerState, stats: BrokerStats | None, *, log: bool) -> None:
        self.broker = broker
        self.stats = stats
        self.log = log

    def observe(
        self,
        ctx: Any,
        request: Any,
        response: Any,
        started: float,
        size: int,
        *,
        failed: bool = False,
    ) -> None:
        """``started``: time.perf_counter() when the request was read; ``size`` its bytes."""
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        api_key = ctx.header.request_api_key
        name = API_NAMES.get(api_key, str(api_key))
        errors: list[int] = []
        if failed:
            # The handler raised: nothing was answered, so nothing is counted as moved.
            if api_key == FETCH:
                name = self._fetch_name(ctx, request)
        elif api_key == PRODUCE:
            errors = self._produce(request, response)
        elif api_key == FETCH:
            name, errors = self._fetch(ctx, request, response)
        elif response is not None:
            code = getattr(response, "error_code", 0)
            if code:
                errors.append(code)
        if failed:
            errors.append(ErrorCode.UNKNOWN_SERVER_ERROR)
        if self.stats is not None:
            self.stats.record(name, ctx.api_version, elapsed_ms, errors)
        if self.log:
            request_logger.debug(
                "%s v%d from %s (client id %s, correlation id %d): %d bytes, %.2f ms%s",
                name,
                ctx.api_version,
                ctx.peer,
                ctx.client_id,
                ctx.correlation_id,
                size,
                elapsed_ms,
                f", errors {sorted({_error_name(e) for e in errors})}" if errors else "",
            )

    def _produce(self, request: Any, response: Any) -> list[int]:
        failed: dict[tuple[str, int], int] | None = None
        if response is not None:
            for t in response.responses:
                for p in t.partition_responses:
                    if p.error_code:
                        if failed is None:
                            failed = {}
                        failed[(t.name, p.index)] = p.error_code
        stats = self.stats
        if stats is not None:
            for t in request.topic_data:
                counters = stats.topics[t.name]
                counters.produce_requests += 1
                for p in t.partition_data:
                    if failed is not None and (t.name, p.index) in failed:
                        counters.failed_produce += 1
                    elif p.records is not None:
                        # acks=0 gets no response: a failure closes the connection instead,
                        # and the request never reaches here.
                        counters.bytes_in += len(p.records)
                        counters.messages_in += count_records(p.records)
        return [] if failed is None else list(failed.values())

    @staticmethod
    def _fetch_name(ctx: Any, request: Any) -> str:
        from kbroker.handlers.fetch import replica_id_of

        follower = replica_id_of(request, ctx.api_version) >= 0
        return "FetchFollower" if follower else "FetchConsumer"

    def _fetch(self, ctx: Any, request: Any, response: Any) -> tuple[str, list[int]]:
        name = self._fetch_name(ctx, request)
        follower = name == "FetchFollower"
        errors: list[int] = []
        if response is None:
            return name, errors
        if response.error_code:
            errors.append(response.error_code)
        stats = self.stats
        for t in response.responses:
            topic = t.topic
            if not topic:
                found = self.broker.topics.get_by_id(t.topic_id)
                topic = found.name if found is not None else str(t.topic_id)
            counters = stats.topics[topic] if stats is not None else None
            if counters is not None:
                counters.fetch_requests += 1
            for p in t.partitions:
                if p.error_code:
                    errors.append(p.error_code)
                    if counters is not None:
                        counters.failed_fetch += 1
                elif counters is not None and p.records is not None and not follower:
                    # Kafka counts a follower's bytes as ReplicationBytesOutPerSec instead.
                    counters.bytes_out += len(p.records)
        return name, errors
