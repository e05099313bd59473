"""A broker process with 256 descriptors serves 3,000 partitions and restarts on its data.

Before segment files went through one bounded cache, each partition kept three
descriptors open: 256 allowed about 60 partitions, and a data dir with more could
not be opened again ("Too many open files").
"""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import trio

from kbroker import partition_limits
from kbroker.log.filecache import OPEN_FILES
from kbroker.wire.errors import ErrorCode
from tests.kbroker.admin_helpers import create, new_topic
from tests.kbroker.conftest import RawClient
from tests.kbroker.helpers import (
    fetch_request,
    kbroker_process,
    produce_request,
    read_until,
    records,
)

ROOT = Path(__file__).resolve().parents[2]
FD_LIMIT = 256
PARTITIONS = 3000
FAST = {"offsets.topic.num.partitions": 1, "transaction.state.log.num.partitions": 1}
TOPIC = "wide"
# Partitions per Fetch: more than the descriptor limit, so one request reads more segment
# files than the broker may hold open (a response keeps file regions for the first
# REGIONS_HELD_PER_FETCH partitions only, and copies the rest).
FETCH_GROUP = 1000


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def _connect(process: trio.Process) -> RawClient:
    """A client of the broker ``process``, once it says where it listens."""
    assert process.stderr is not None
    line = await read_until(process.stderr, b"bootstrap_servers=", bytearray())
    host, port = line.split("=", 1)[1].split()[0].rsplit(":", 1)
    return RawClient(await trio.open_tcp_stream(host, int(port)))


async def _stop(process: trio.Process) -> None:
    """SIGTERM, and the broker exits cleanly."""
    process.send_signal(signal.SIGTERM)
    assert process.stderr is not None
    while await process.stderr.receive_some(65536):
        pass
    assert await process.wait() == 0


async def _fetch_all(client: RawClient) -> dict[int, bytes]:
    """Every partition's records from offset 0, FETCH_GROUP partitions per request."""
    got: dict[int, bytes] = {}
    for first in range(0, PARTITIONS, FETCH_GROUP):
        group = range(first, min(first + FETCH_GROUP, PARTITIONS))
        response = await client.request(fetch_request(TOPIC, tuple(group), 0), version=12)
        for part in response.responses[0].partitions:
            assert part.error_code == ErrorCode.NONE, part
            got[part.partition_index] = bytes(part.records or b"")
    return got


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_3000_partitions_under_256_descriptors_then_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sent = {p: records(2, start=p) for p in range(PARTITIONS)}
    with trio.fail_after(600):  # a guard against hanging forever, not a speed assertion
        async with kbroker_process(tmp_path, data, preexec_fn=_low_fd_limit) as process:
            client = await _connect(process)
            [created] = await create(client, new_topic(TOPIC, PARTITIONS))
            assert created.error_code == ErrorCode.NONE, created.error_message
            for first in range(0, PARTITIONS, 500):
                request = produce_request(
                    TOPIC,
                    first,
                    sent[first],
                    extra=[(p, sent[p]) for p in range(first + 1, min(first + 500, PARTITIONS))],
                )
                response = await client.request(request)
                for part in response.responses[0].partition_responses:
                    assert part.error_code == ErrorCode.NONE, part
            got = await _fetch_all(client)
            assert all(got[p].endswith(sent[p][61:]) for p in range(PARTITIONS))
            assert _open_fds(process.pid) < FD_LIMIT
            await _stop(process)
        # The same data dir, the same limit: it opens, and every record is there.
        async with kbroker_process(tmp_path, data, preexec_fn=_low_fd_limit) as process:
            got = await _fetch_all(await _connect(process))
            assert all(got[p].endswith(sent[p][61:]) for p in range(PARTITIONS))
            await _stop(process)


async def test_partitions_beyond_the_old_descriptor_rule_take_turns_in_the_cache(
    make_server, monkeypatch
) -> None:
    # Three descriptors per partition used to be counted against the limit: with
    # room for 10 partitions above the reserve, 11 were refused. Now they only take
    # turns in the bounded cache, whose size is what must fit.
    saved = OPEN_FILES.capacity
    try:
        server = await make_server(**{"log.max.open.files": 16}, **FAST)
        client = await server.connect()
        in_use = len(os.listdir("/proc/self/fd"))
        limit = in_use + 64 + 3 * 10 + 2
        monkeypatch.setattr(partition_limits, "_fd_limit", lambda: max(limit, 4 * 64))
        [ok] = await create(client, new_topic("wide", 200))
        assert ok.error_code == ErrorCode.NONE, ok.error_message
        assert len(server.broker.topics.get("wide").partitions) == 200
        assert len(OPEN_FILES) <= 16
        assert len(os.listdir("/proc/self/fd")) <= in_use + 16
    finally:
        OPEN_FILES.set_capacity(saved)
