"""Client quotas: AlterClientQuotas / DescribeClientQuotas, and produce / fetch byte
rates enforced with throttle_time_ms and a muted connection (kbroker.quotas)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from kbroker.quotas import (
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    InvalidQuota,
    QuotaManager,
    make_entity,
)
from kbroker.server import _BusyTime
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AlterClientQuotasRequest,
    ApiVersionsRequest,
    DescribeClientQuotasRequest,
    MetadataRequest,
)
from tests.kbroker.acl_helpers import connect_as, secured
from tests.kbroker.helpers import create_topic, fetch_request, produce, produce_request, records

MakeServer = Callable[..., Awaitable[Any]]


# --- the rules ---------------------------------------------------------------------------


def test_the_most_specific_quota_applies_in_kafkas_order() -> None:
    q = QuotaManager()
    q.alter(make_entity([("client-id", None)]), [(PRODUCER_BYTE_RATE, 1.0, False)])
    q.alter(make_entity([("client-id", "app")]), [(PRODUCER_BYTE_RATE, 2.0, False)])
    q.alter(make_entity([("user", None)]), [(PRODUCER_BYTE_RATE, 3.0, False)])
    q.alter(make_entity([("user", "alice")]), [(PRODUCER_BYTE_RATE, 4.0, False)])
    q.alter(
        make_entity([("user", "alice"), ("client-id", "app")]), [(PRODUCER_BYTE_RATE, 5.0, False)]
    )
    found = q._quota_for
    assert found("alice", "app", PRODUCER_BYTE_RATE) == (5.0, "alice", "app")
    assert found("alice", "other", PRODUCER_BYTE_RATE) == (4.0, "alice", "")
    # A default user quota is per user (each user its own rate), before any client quota.
    assert found("bob", "app", PRODUCER_BYTE_RATE) == (3.0, "bob", "")
    assert found("alice", "app", CONSUMER_BYTE_RATE) is None


def test_client_quotas_without_user_quotas() -> None:
    q = QuotaManager()
    q.alter(make_entity([("client-id", None)]), [(CONSUMER_BYTE_RATE, 1.0, False)])
    q.alter(make_entity([("client-id", "app")]), [(CONSUMER_BYTE_RATE, 2.0, False)])
    assert q._quota_for("bob", "app", CONSUMER_BYTE_RATE) == (2.0, "", "app")
    assert q._quota_for("bob", "x", CONSUMER_BYTE_RATE) == (1.0, "", "x")


def test_throttle_time_is_kafkas_formula() -> None:
    q = QuotaManager()
    q.alter(make_entity([("user", "alice")]), [(PRODUCER_BYTE_RATE, 1000.0, False)])
    # Within the quota: the rate is measured over at least 10 full windows of 1 s.
    assert q.record(PRODUCER_BYTE_RATE, "User:alice", "c", 9_000, 100.0) == 0
    # 21,000 bytes over 10.5 s (0.5 s elapsed, padded with 10 windows) is 2,000 B/s:
    # (2000 - 1000) / 1000 * 10.5 s.
    assert q.record(PRODUCER_BYTE_RATE, "User:alice", "c", 12_000, 100.5) == 10_500
    # Other users and the consumer rate are not affected.
    assert q.record(PRODUCER_BYTE_RATE, "User:bob", "c", 50_000, 100.5) == 0
    # Samples older than 11 windows are forgotten.
    assert q.record(PRODUCER_BYTE_RATE, "User:alice", "c", 1, 112.0) == 0


def test_request_time_is_a_percentage_of_a_thread_with_kafkas_throttle() -> None:
    q = QuotaManager()
    assert q.record_request_time("User:alice", "c", 100.0, 100.0) == 0  # no request quota
    q.alter(make_entity([("user", "alice")]), [(REQUEST_PERCENTAGE, 50.0, False)])
    # 4 s of handler time over the padded 10 s window: 40% of one thread, within 50%.
    assert q.record_request_time("User:alice", "c", 4.0, 100.0) == 0
    # 5.2 s: 52%, throttled (52 - 50) / 50 * 10 s.
    assert q.record_request_time("User:alice", "c", 1.2, 100.0) == 400
    # Far over: never more than one quota window (ClientRequestQuotaManager).
    assert q.record_request_time("User:alice", "c", 5.0, 100.0) == 1000
    assert q.record_request_time("User:bob", "c", 50.0, 100.0) == 0


async def test_busy_time_counts_the_handler_running_not_waiting() -> None:
    def burn(seconds: float) -> None:
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            pass

    async def handler() -> int:
        burn(0.02)
        await trio.sleep(0.01)  # another task runs meanwhile: not this request's time
        burn(0.02)
        return 7

    async def other() -> None:
        await trio.sleep(0)
        burn(0.5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        timed = _BusyTime(handler())
        assert await timed == 7
    # 0.04 s of its own; counting the other task's turn would be over 0.5 s. The margin
    # between is for a loaded machine, where each step's wall time runs a little long.
    assert 0.04 <= timed.busy_s < 0.4
    # Cancellation reaches the wrapped coroutine.
    with trio.move_on_after(0.01) as scope:
        await _BusyTime(trio.sleep(5))
    assert scope.cancelled_caught


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("producer_byte_rate", 0.0, "must be positive"),
        ("producer_byte_rate", 1.5, "must be a long"),
        ("consumer_byte_rate", float("nan"), "must be positive"),
        ("consumer_byte_rate", float("inf"), "must be positive"),
        ("bytes_per_week", 1.0, "Invalid configuration key"),
    ],
)
def test_bad_values_are_refused(key: str, value: float, message: str) -> None:
    with pytest.raises(InvalidQuota, match=message):
        QuotaManager.check_op(key, value, False)


def test_bad_entities_are_refused() -> None:
    with pytest.raises(InvalidQuota, match="Unsupported"):
        make_entity([("ip", "1.2.3.4")])
    with pytest.raises(InvalidQuota, match="Duplicate"):
        make_entity([("user", "a"), ("user", "b")])
    with pytest.raises(InvalidQuota, match="empty"):
        make_entity([])


# --- over the wire ------------------------------------------------------------------------


def alter(entity: list[tuple[str, str | None]], *ops: tuple[str, float, bool]) -> Any:
    R = AlterClientQuotasRequest
    return R(
        entries=[
            R.EntryData(
                entity=[R.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                ops=[R.OpData(key=k, value=v, remove=rm) for k, v, rm in ops],
            )
        ],
        validate_only=False,
    )


def describe(components: list[tuple[str, int, str | None]], strict: bool = False) -> Any:
    R = DescribeClientQuotasRequest
    return R(
        components=[
            R.ComponentData(entity_type=t, match_type=m, match=n) for t, m, n in components
        ],
        strict=strict,
    )


def listed(resp: Any) -> list[tuple[tuple[tuple[str, str | None], ...], dict[str, float]]]:
    assert resp.error_code == 0, resp
    return [
        (
            tuple((e.entity_type, e.entity_name) for e in entry.entity),
            {v.key: v.value for v in entry.values},
        )
        for entry in resp.entries
    ]


async def test_quotas_are_altered_described_and_kept(
    make_server: MakeServer, tmp_path: Path
) -> None:
    data = str(tmp_path / "kept")
    server = await make_server(log_dirs=data)
    async with await server.connect() as client:
        resp = await client.request(
            alter([("user", "alice"), ("client-id", None)], (PRODUCER_BYTE_RATE, 1024.0, False))
        )
        assert resp.entries[0].error_code == 0
        resp = await client.request(
            alter([("client-id", "app")], (CONSUMER_BYTE_RATE, 2048.0, False))
        )
        assert resp.entries[0].error_code == 0
        bad = await client.request(alter([("client-id", "app")], ("nonsense", 1.0, False)))
        assert bad.entries[0].error_code == ErrorCode.INVALID_REQUEST
        assert bad.entries[0].error_message == "Invalid configuration key nonsense"

        every = listed(await client.request(describe([])))
        assert sorted(every, key=repr) == sorted(
            [
                ((("client-id", None), ("user", "alice")), {PRODUCER_BYTE_RATE: 1024.0}),
                ((("client-id", "app"),), {CONSUMER_BYTE_RATE: 2048.0}),
            ],
            key=repr,
        )
        # Strict: only entities of exactly the filter's types.
        only_clients = listed(await client.request(describe([("client-id", 2, None)], strict=True)))
        assert only_clients == [((("client-id", "app"),), {CONSUMER_BYTE_RATE: 2048.0})]
        defaults = listed(await client.request(describe([("client-id", 1, None)])))
        assert [e for e, _ in defaults] == [(("client-id", None), ("user", "alice"))]
    await server.stop()
    again = await make_server(log_dirs=data)
    async with await again.connect() as client:
        assert len(listed(await client.request(describe([("user", 0, "alice")])))) == 1
        resp = await client.request(
            alter([("user", "alice"), ("client-id", None)], (PRODUCER_BYTE_RATE, 0.0, True))
        )
        assert resp.entries[0].error_code == 0
        assert listed(await client.request(describe([("user", 0, "alice")]))) == []


async def test_a_producer_over_its_quota_is_throttled(make_server: MakeServer) -> None:
    server = await make_server()
    create_topic(server, "t")
    batch = records(100)
    # Three batches stay within the quota over the 10 s the rate is measured on; the
    # fourth takes the rate 3% over it: throttled for about 0.3 s.
    quota = float(int(4 * len(batch) / 10 / 1.03))
    async with await server.connect(client_id="fast") as client:
        await client.request(alter([("client-id", "fast")], (PRODUCER_BYTE_RATE, quota, False)))
        for _ in range(3):
            resp = await client.request(produce_request("t", 0, batch))
            assert resp.throttle_time_ms == 0
        resp = await client.request(produce_request("t", 0, batch))
        expected = (4 * len(batch) / 10 - quota) / quota * 10_000
        assert resp.throttle_time_ms == pytest.approx(expected, abs=50)
        assert resp.responses[0].partition_responses[0].error_code == 0  # still appended
        # The connection reads nothing more until the throttle time has passed.
        start = trio.current_time()
        await client.request(ApiVersionsRequest(), version=0)
        assert trio.current_time() - start >= resp.throttle_time_ms / 1000 * 0.9
    # Another client id has no quota.
    async with await server.connect(client_id="other") as other:
        resp = await other.request(produce_request("t", 0, batch))
        assert resp.throttle_time_ms == 0


async def test_a_consumer_over_its_quota_gets_no_data(make_server: MakeServer) -> None:
    server = await make_server()
    create_topic(server, "t")
    async with await server.connect() as client:
        for _ in range(4):
            await produce(client, "t", 0, records(200))
        await client.request(alter([("user", "ANONYMOUS")], (CONSUMER_BYTE_RATE, 100.0, False)))
        resp = await client.request(fetch_request("t", 0, 0), version=12)
        # The fetch that goes over is not counted, and answers nothing but the throttle time.
        assert resp.throttle_time_ms > 0
        assert resp.responses == []


async def test_a_client_over_its_request_quota_is_throttled(make_server: MakeServer) -> None:
    server = await make_server()
    async with await server.connect(client_id="admin") as admin:
        # A millionth of a thread: any request goes over; the throttle is one window.
        quota = alter([("client-id", "busy")], (REQUEST_PERCENTAGE, 1e-6, False))
        assert (await admin.request(quota)).entries[0].error_code == 0
    async with await server.connect(client_id="busy") as busy:
        resp = await busy.request(MetadataRequest(topics=None), version=12)
        assert resp.throttle_time_ms == 1000
    # Another client id has no request quota.
    async with await server.connect(client_id="other") as other:
        resp = await other.request(MetadataRequest(topics=None), version=12)
        assert resp.throttle_time_ms == 0


async def test_quotas_need_configs_permissions_on_the_cluster(make_server: MakeServer) -> None:
    server = await secured(make_server)
    async with await connect_as(server, "User:alice") as alice:
        resp = await alice.request(alter([("user", "alice")], (PRODUCER_BYTE_RATE, 1e9, False)))
        assert resp.entries[0].error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        resp = await alice.request(describe([]))
        assert resp.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    async with await connect_as(server, "User:admin") as admin:
        resp = await admin.request(alter([("user", "alice")], (PRODUCER_BYTE_RATE, 1e9, False)))
        assert resp.entries[0].error_code == 0
