"""The server: ordering, acks=0, per-connection failure isolation, idle close, shutdown."""

from __future__ import annotations

import itertools
import logging
import socket
import struct

import pytest
import trio

from kbroker.errors import KafkaApiError
from kbroker.handlers import HANDLERS, Registration
from kbroker.server import RECEIVE_SIZE
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ApiVersionsRequest,
    DescribeClusterRequest,
    FetchRequest,
    MetadataRequest,
    ProduceRequest,
)
from kbroker.wire.protocol import decode_response, encode_request
from kbroker.wire.records import Record, build_batch
from tests.kbroker.helpers import all_values, fetch, produce_request


def _api_versions() -> ApiVersionsRequest:
    return ApiVersionsRequest(client_software_name="kbroker-tests", client_software_version="1")


def _produce(topic: str, acks: int, value: bytes) -> ProduceRequest:
    batch = build_batch([Record(value=value, timestamp=1)])
    return produce_request(topic, 0, batch, acks=acks, timeout_ms=1000)


async def test_bound_address_is_real(server) -> None:
    host, port = server.address
    assert host == "127.0.0.1" and port > 0
    assert server.broker.listen_address == server.address


async def test_pipelined_requests_are_answered_in_order(server) -> None:
    client = await server.connect()
    bodies = [MetadataRequest(topics=[]), _api_versions(), DescribeClusterRequest()] * 5
    frames = b"".join(
        encode_request(b.API_KEY, client.default_version(b.API_KEY), 100 + i, "pipeline", b)
        for i, b in enumerate(bodies)
    )
    await client.send_raw(frames)  # all at once: one TCP write, many requests
    for i, body in enumerate(bodies):
        frame = await client.receive_raw()
        assert frame is not None
        correlation_id, response = decode_response(
            body.API_KEY, client.default_version(body.API_KEY), frame
        )
        assert correlation_id == 100 + i
        assert type(response).__name__ == type(body).__name__.replace("Request", "Response")


async def test_pipelined_requests_leave_other_tasks_their_turn(server) -> None:
    """A client that keeps the socket full of pipelined requests (acks=0 Produce: no
    answer to write) does not hold the event loop: between two turns of another task
    the connection serves about one read's worth of requests, although its reads seldom
    end where a request does."""
    log = server.broker.topics.create("flood", 1).partitions[0].log
    frame = encode_request(0, 9, 1, "flood", _produce("flood", 0, b"v" * 900))
    count = 4000
    per_read = RECEIVE_SIZE // len(frame) + 1
    sock = socket.create_connection(server.address)
    seen = [0]
    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                # A thread keeps sending while the broker reads, as a real producer does.
                nursery.start_soon(trio.to_thread.run_sync, sock.sendall, frame * count)
                while seen[-1] < count:
                    await trio.lowlevel.checkpoint()
                    seen.append(log.log_end_offset)
    finally:
        sock.close()
    # Tasks run in a random order within a batch, so two of the connection's turns may
    # fall between two of ours, and a turn may end a short read's request with a full
    # read: a few reads' worth at most (without the scheduling point, all 4000 at once).
    assert max(b - a for a, b in itertools.pairwise(seen)) <= 3 * per_read


async def test_produce_acks_0_gets_no_response_but_is_written(server) -> None:
    topic = server.broker.topics.create("fire-and-forget", 1)
    client = await server.connect()
    await client.send_request(_produce("fire-and-forget", 0, b"x"), version=9)
    # The next response on the wire must be the one to the next request.
    correlation_id = await client.send_request(ApiVersionsRequest(), version=0)
    response = await client.receive_response(18, 0, correlation_id)
    assert response.error_code == ErrorCode.NONE
    assert topic.partitions[0].log.log_end_offset == 1


async def test_failed_acks_0_produce_closes_only_its_connection(server, caplog) -> None:
    # KafkaApis: with acks=0 the producer reads no response, so a failure is signalled
    # by closing the connection (the client then refreshes metadata and retries).
    topic = server.broker.topics.create("fire-and-forget", 1)
    failing = await server.connect()
    other = await server.connect()
    with caplog.at_level(logging.INFO, logger="kbroker.handlers.produce"):
        await failing.send_request(_produce("no-such-topic", 0, b"x"), version=9)
        with trio.fail_after(10):
            assert await failing.receive_raw() is None  # closed, nothing sent
    assert any(
        "acks=0" in r.getMessage()
        and "no-such-topic-0: UNKNOWN_TOPIC_OR_PARTITION" in r.getMessage()
        and "127.0.0.1:" in r.getMessage()
        for r in caplog.records
    )
    # Everyone else is served, and an acks=0 produce that succeeds keeps its connection.
    await other.send_request(_produce("fire-and-forget", 0, b"y"), version=9)
    correlation_id = await other.send_request(ApiVersionsRequest(), version=0)
    assert (await other.receive_response(18, 0, correlation_id)).error_code == ErrorCode.NONE
    assert topic.partitions[0].log.log_end_offset == 1


async def test_produce_is_applied_in_request_order(server) -> None:
    topic = server.broker.topics.create("ordered", 1)
    client = await server.connect()
    frames = b"".join(
        encode_request(0, 9, i, "p", _produce("ordered", 1, b"%d" % i)) for i in range(20)
    )
    await client.send_raw(frames)
    for i in range(20):
        frame = await client.receive_raw()
        assert frame is not None
        correlation_id, response = decode_response(0, 9, frame)
        assert correlation_id == i
        assert response.responses[0].partition_responses[0].base_offset == i
    assert topic.partitions[0].log.log_end_offset == 20


@pytest.mark.parametrize(("first", "later"), [(400_000, 400_000), (1_000_000, 150_000)])
async def test_two_large_produce_requests_in_one_write_are_answered_in_order(
    server, first: int, later: int
) -> None:
    # A large request's first read may bring all of it and part (or all) of the next
    # one: both are written byte for byte and answered in order. The first request gives
    # the connection its large requests' buffer (512 KiB, or 1 MiB): the two that follow
    # overflow it (400 KB each) or both fit in it (150 KB each).
    topic = server.broker.topics.create("big", 1)
    client = await server.connect()
    values = [bytes([i]) * n + b"%d" % i for i, n in enumerate([first, later, later])]
    frames = [encode_request(0, 9, i, "p", _produce("big", -1, v)) for i, v in enumerate(values)]
    await client.send_raw(frames[0])
    answers = [await client.receive_raw()]
    await client.send_raw(frames[1] + frames[2])  # one write, two requests
    answers += [await client.receive_raw(), await client.receive_raw()]
    for i, answer in enumerate(answers):
        assert answer is not None
        correlation_id, response = decode_response(0, 9, answer)
        assert correlation_id == i
        partition = response.responses[0].partition_responses[0]
        assert partition.error_code == ErrorCode.NONE and partition.base_offset == i
    part = await fetch(client, server, "big", 0, 0, partition_max_bytes=4 * first)
    assert all_values(bytes(part.records)) == values
    assert topic.partitions[0].log.log_end_offset == 3


def _replace_handler(monkeypatch: pytest.MonkeyPatch, api_key: int, fn) -> None:
    old = HANDLERS[api_key]
    monkeypatch.setitem(
        HANDLERS, api_key, Registration(api_key, old.min_version, old.max_version, fn)
    )


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), KafkaApiError(ErrorCode.UNKNOWN_SERVER_ERROR, "leaked")]
)
async def test_handler_bug_closes_only_that_connection(
    server, monkeypatch, caplog, error: Exception
) -> None:
    async def broken(ctx, request):
        raise error

    _replace_handler(monkeypatch, DescribeClusterRequest.API_KEY, broken)
    bystander = await server.connect()
    victim = await server.connect()
    with caplog.at_level(logging.ERROR, logger="kbroker.server"):
        await victim.send_request(DescribeClusterRequest(), version=0)
        assert await victim.receive_raw() is None  # closed, no response
    local = victim.stream.socket.getsockname()
    messages = [r for r in caplog.records if r.name == "kbroker.server"]
    assert any(f"{local[0]}:{local[1]}" in r.getMessage() and r.exc_info for r in messages)
    response = await bystander.request(MetadataRequest(topics=[]))
    assert response.brokers[0].port == server.address[1]
    fresh = await server.connect()
    assert (await fresh.request(_api_versions())).error_code == ErrorCode.NONE


async def test_unknown_api_key_closes_connection(server, caplog) -> None:
    client = await server.connect()
    payload = struct.pack(">hhih", 9999, 0, 7, 1) + b"x"
    with caplog.at_level(logging.WARNING, logger="kbroker.server"):
        await client.send_raw(struct.pack(">i", len(payload)) + payload)
        assert await client.receive_raw() is None
    local = client.stream.socket.getsockname()
    assert any(
        f"{local[0]}:{local[1]}" in r.getMessage() and "9999" in r.getMessage()
        for r in caplog.records
    )


async def test_unsupported_version_of_other_api_closes_connection(server) -> None:
    client = await server.connect()
    # Fetch v0..v3 exist in Kafka's schema but are not served (KIP-896).
    served_low = client.default_version(FetchRequest.API_KEY)
    assert served_low >= 4
    await client.send_raw(encode_request(1, 3, 1, "old", FetchRequest()))
    assert await client.receive_raw() is None


async def test_idle_connections_are_closed(make_server, autojump_clock, caplog) -> None:
    server = await make_server(connections_max_idle_ms=60_000)
    client = await server.connect()
    assert (await client.request(_api_versions())).error_code == ErrorCode.NONE
    with caplog.at_level(logging.INFO, logger="kbroker.server"):
        before = trio.current_time()
        assert await client.receive_raw() is None  # the broker hangs up on us
    assert trio.current_time() - before >= 60
    local = client.stream.socket.getsockname()
    assert any(
        "idle" in r.getMessage() and f"{local[0]}:{local[1]}" in r.getMessage()
        for r in caplog.records
    )


async def test_only_the_idle_connection_of_several_is_closed(make_server, autojump_clock) -> None:
    """The idle limit counts from each connection's own last request: a connection that
    keeps asking stays open past the limit, one that went quiet closes on time, and one
    that sent half a request and stopped is idle too."""
    server = await make_server(connections_max_idle_ms=1000)
    quiet = await server.connect()
    busy = await server.connect()
    stalled = await server.connect()
    frame = encode_request(18, 3, 1, "half", _api_versions())
    start = trio.current_time()
    assert (await quiet.request(_api_versions())).error_code == ErrorCode.NONE
    await stalled.send_raw(frame[: len(frame) // 2])
    closed: dict[str, float] = {}

    async def watch(name: str, client) -> None:
        assert await client.receive_raw() is None
        closed[name] = trio.current_time() - start

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, "quiet", quiet)
        nursery.start_soon(watch, "stalled", stalled)
        for _ in range(10):  # 4 s in all, a request every 0.4 s
            await trio.sleep(0.4)
            assert (await busy.request(_api_versions())).error_code == ErrorCode.NONE
    assert 1.0 <= closed["quiet"] < 1.1 and 1.0 <= closed["stalled"] < 1.1
    assert len(server.server.connections) == 1  # busy, 4 s after it began
    await trio.sleep(1.5)
    assert not server.server.connections  # and closed once it goes quiet


async def test_slow_request_is_not_idleness(make_server, autojump_clock, monkeypatch) -> None:
    server = await make_server(connections_max_idle_ms=1000)
    original = HANDLERS[DescribeClusterRequest.API_KEY].handler

    async def slow(ctx, request):
        await trio.sleep(5)  # virtual time: five idle periods while we work
        return await original(ctx, request)

    _replace_handler(monkeypatch, DescribeClusterRequest.API_KEY, slow)
    client = await server.connect()
    response = await client.request(DescribeClusterRequest(), version=1)
    assert response.cluster_id == server.broker.cluster_id
    assert (await client.request(_api_versions())).error_code == ErrorCode.NONE


async def test_graceful_shutdown_finishes_in_flight_request(make_server, monkeypatch) -> None:
    server = await make_server()
    release = trio.Event()
    entered = trio.Event()
    original = HANDLERS[DescribeClusterRequest.API_KEY].handler

    async def slow(ctx, request):
        entered.set()
        await release.wait()
        return await original(ctx, request)

    _replace_handler(monkeypatch, DescribeClusterRequest.API_KEY, slow)
    busy = await server.connect()
    idle = await server.connect()
    await idle.request(_api_versions())
    correlation_id = await busy.send_request(DescribeClusterRequest(), version=1)
    await entered.wait()
    server.server.shutdown()
    assert await idle.receive_raw() is None  # idle connections close at once
    with pytest.raises(OSError):
        await trio.open_tcp_stream(*server.address)  # no longer accepting
    release.set()
    response = await busy.receive_response(60, 1, correlation_id)
    assert response.cluster_id == server.broker.cluster_id
    assert await busy.receive_raw() is None
    with trio.fail_after(5):
        await server._done.wait()


async def test_shutdown_is_not_reported_as_idleness(make_server, caplog) -> None:
    """A connection waiting for its next request closes at shutdown at once, and the log
    says shutdown, not connections.max.idle.ms."""
    server = await make_server(connections_max_idle_ms=60_000)
    client = await server.connect()
    assert (await client.request(_api_versions())).error_code == ErrorCode.NONE
    with caplog.at_level(logging.INFO, logger="kbroker.server"):
        server.server.shutdown()
        with trio.fail_after(5):
            assert await client.receive_raw() is None
    assert not any("idle for more than" in r.getMessage() for r in caplog.records)


async def test_stopped_broker_releases_its_data_dir(make_server, tmp_path) -> None:
    data = str(tmp_path / "shared")
    first = await make_server(log_dirs=data)
    first.broker.topics.create("t", 1).partitions[0].log.append(
        build_batch([Record(value=b"v", timestamp=1)])
    )
    await first.stop()
    second = await make_server(log_dirs=data)
    partition = second.broker.topics.partition("t", 0)
    assert partition is not None and partition.log.log_end_offset == 1


async def test_second_broker_on_same_data_dir_is_refused(make_server, tmp_path) -> None:
    from kbroker.config import ConfigError

    data = str(tmp_path / "locked")
    await make_server(log_dirs=data)
    with pytest.raises(ConfigError, match="in use"):
        await make_server(log_dirs=data)


async def test_maintenance_runs_retention_on_its_interval(
    make_server, autojump_clock, monkeypatch
) -> None:
    server = await make_server(log_retention_check_interval_ms=1000)
    calls: list[float] = []
    monkeypatch.setattr(
        server.broker, "enforce_retention", lambda: calls.append(trio.current_time()) or 0
    )
    start = trio.current_time()
    await trio.sleep(3.5)  # virtual time (MockClock)
    assert [round(t - start) for t in calls] == [1, 2, 3]


async def test_wait_for_append_is_woken_by_appends(server) -> None:
    broker = server.broker
    woke: list[bool] = []

    async def waiter() -> None:
        await broker.wait_for_append(30)
        woke.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        broker.notify_append()
    assert woke == [True]


# --- maintenance steps (BrokerState, synchronous, injected clock) ------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def broker_with_clock(tmp_path):
    from kbroker.broker import BrokerState
    from kbroker.config import BrokerConfig

    clock = FakeClock()
    broker = BrokerState(
        BrokerConfig.from_properties({"log.dirs": str(tmp_path / "b")}), clock=clock
    )
    yield broker, clock
    broker.close()


def _count_calls(monkeypatch, obj, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(obj, name)

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, counting)
    return calls


def test_compaction_only_for_compacted_topics_that_grew(broker_with_clock, monkeypatch) -> None:
    broker, _ = broker_with_clock
    compacted = broker.topics.create("compacted", 1, {"cleanup.policy": "compact"})
    plain = broker.topics.create("plain", 1)
    compacted_calls = _count_calls(monkeypatch, compacted.partitions[0].log, "compact")
    plain_calls = _count_calls(monkeypatch, plain.partitions[0].log, "compact")
    batch = build_batch([Record(key=b"k", value=b"v", timestamp=1)])
    compacted.partitions[0].log.append(batch)
    broker.compact()
    broker.compact()  # nothing new: no second pass
    assert (len(compacted_calls), len(plain_calls)) == (1, 0)
    compacted.partitions[0].log.append(batch)
    broker.compact()
    assert len(compacted_calls) == 2


def test_retention_skips_compact_only_topics(broker_with_clock, monkeypatch) -> None:
    broker, _ = broker_with_clock
    compacted = broker.topics.create("compacted", 1, {"cleanup.policy": "compact"})
    both = broker.topics.create("both", 1, {"cleanup.policy": "compact,delete"})
    compacted_calls = _count_calls(monkeypatch, compacted.partitions[0].log, "enforce_retention")
    both_calls = _count_calls(monkeypatch, both.partitions[0].log, "enforce_retention")
    broker.enforce_retention()
    assert (len(compacted_calls), len(both_calls)) == (0, 1)


def test_time_based_flush_follows_flush_ms(broker_with_clock, monkeypatch) -> None:
    broker, clock = broker_with_clock
    assert broker.next_flush_interval_s() is None  # Kafka default: never flush by time
    fast = broker.topics.create("fast", 1, {"flush.ms": "1000"})
    slow = broker.topics.create("slow", 1)
    fast_calls = _count_calls(monkeypatch, fast.partitions[0].log, "flush")
    slow_calls = _count_calls(monkeypatch, slow.partitions[0].log, "flush")
    assert broker.next_flush_interval_s() == 1.0
    broker.flush_due()  # first sighting starts the clock
    clock.now += 0.5
    broker.flush_due()
    assert fast_calls == []
    clock.now += 0.6
    broker.flush_due()
    assert (len(fast_calls), len(slow_calls)) == (1, 0)


async def test_failing_maintenance_step_does_not_stop_the_broker(
    make_server, autojump_clock, monkeypatch, caplog
) -> None:
    server = await make_server(log_retention_check_interval_ms=1000)

    def broken() -> int:
        raise OSError("disk on fire")

    monkeypatch.setattr(server.broker, "enforce_retention", broken)
    with caplog.at_level(logging.ERROR, logger="kbroker.server"):
        await trio.sleep(2.5)  # virtual time: two failing runs
    assert sum("retention" in r.getMessage() for r in caplog.records) == 2
    client = await server.connect()
    assert (await client.request(_api_versions())).error_code == ErrorCode.NONE


async def test_accepting_a_connection_leaves_the_quota_store_to_the_first_request(
    tmp_path,
) -> None:
    # serve() starts accepting just before it sets broker.cluster on a cluster node, and the
    # quota manager is created on first use from broker.cluster (quotas.json on a single
    # node, ZooKeeper in cluster mode): a connection accepted in between must not create
    # it, or a cluster node would keep the single-node store for good.
    from kbroker.broker import BrokerState
    from kbroker.config import BrokerConfig
    from kbroker.quotas import quota_manager
    from kbroker.server import Connection, Server

    config = BrokerConfig.from_properties({"log.dirs": str(tmp_path / "b")})
    broker = BrokerState(config)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    accepted = await listeners[0].accept()
    try:
        server = Server(("127.0.0.1", port), broker, config)
        Connection(server, accepted)
        # Where quota_manager keeps the broker's one manager: still empty after the accept.
        assert "kbroker.quotas" not in broker.state
        assert quota_manager(broker) is broker.state["kbroker.quotas"]
    finally:
        await accepted.aclose()
        await client.aclose()
        await listeners[0].aclose()
        broker.close()
