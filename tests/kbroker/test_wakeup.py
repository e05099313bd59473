"""A parked Fetch is released by the append itself, not by any timer (end-to-end latency)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from tests.kbroker.helpers import (
    create_topic,
    fetch_request,
    fetched_records,
    parked_fetch,
    produce,
    records,
)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that stands still while anything can run: a wake-up that needed a
    timer (polling, or max_wait running out) would show up as virtual time passing."""
    return trio.testing.MockClock(autojump_threshold=1.0)


async def test_append_releases_a_parked_fetch_with_no_time_passing(
    clock: trio.testing.MockClock, server: Any
) -> None:
    create_topic(server, "wake", 2)
    # The consumer's default fetch.wait.max.ms (librdkafka / the Java client): 500 ms.
    request = fetch_request("wake", 0, 0, max_wait_ms=500, min_bytes=1)
    async with parked_fetch(server, request, version=12) as (producer, got):
        assert got == []
        # An append to another partition does not answer it...
        await produce(producer, "wake", 1, records(1))
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        parked_at = trio.current_time()
        await produce(producer, "wake", 0, records(1))
    answered_at, part = got[0]
    assert answered_at == parked_at  # released by the append: no virtual time passed
    assert [v for _, _, v in fetched_records(part.records)] == [b"v0"]
