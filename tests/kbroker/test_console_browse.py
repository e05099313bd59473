"""The console's record reads: off the event loop thread, bounded, decoded as a user reads them."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kbroker.http import browse
from kbroker.http.console import render_bytes
from kbroker.wire.records import Record, build_batch
from tests.kbroker.helpers import create_topic, produce
from tests.kbroker.test_http import http_get


async def _fill(running: Any, topic: str, batches: int, per_batch: int, size: int = 10) -> None:
    create_topic(running, topic)
    async with await running.connect() as client:
        for b in range(batches):
            recs = [
                Record(
                    key=b"k%d" % (b * per_batch + i),
                    value=b"x" * size,
                    timestamp=1_000 + b * per_batch + i,
                    headers=[("n", b"%d" % (b * per_batch + i))],
                )
                for i in range(per_batch)
            ]
            part = await produce(client, topic, 0, build_batch(recs))
            assert part.error_code == 0


async def test_records_are_read_in_a_worker_thread(
    make_server: Callable[..., Awaitable[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await make_server()
    await _fill(running, "events", batches=4, per_batch=5)
    readers: list[threading.Thread] = []
    real = browse.pread_exact

    def spy(fd: int, length: int, position: int) -> bytes:
        readers.append(threading.current_thread())
        return real(fd, length, position)

    monkeypatch.setattr(browse, "pread_exact", spy)
    partition = running.broker.topics.get("events").partitions[0]
    newest = await browse.newest(partition, 7)
    assert [m.offset for m in newest] == list(range(19, 12, -1))
    assert newest[0].key == b"k19" and newest[0].headers == [("n", b"19")]
    assert readers and all(t is not threading.main_thread() for t in readers)
    from_offset = await browse.read_partition(partition, 6, 3)
    assert [m.offset for m in from_offset] == [6, 7, 8]


async def test_a_page_reads_at_most_max_read_bytes(
    make_server: Callable[..., Awaitable[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await make_server()
    # 8 batches of 64 KiB values: a read from the start stops after about 256 KiB.
    await _fill(running, "blobs", batches=8, per_batch=1, size=64 * 1024)
    monkeypatch.setattr(browse, "MAX_READ_BYTES", 256 * 1024)
    read: list[int] = []
    real = browse.pread_exact

    def spy(fd: int, length: int, position: int) -> bytes:
        read.append(length)
        return real(fd, length, position)

    monkeypatch.setattr(browse, "pread_exact", spy)
    partition = running.broker.topics.get("blobs").partitions[0]
    found = await browse.read_partition(partition, 0, 100)
    assert sum(read) <= 256 * 1024 and 0 < len(found) < 8


def test_values_as_text_json_hex_and_truncated() -> None:
    value = b'{"a": [1, 2], "b": "<x>"}'
    assert render_bytes(value, "text", 1000) == (
        "<pre>{&quot;a&quot;: [1, 2], &quot;b&quot;: &quot;&lt;x&gt;&quot;}</pre>",
        False,
    )
    pretty, cut = render_bytes(value, "json", 1000)
    assert "\n  &quot;a&quot;: [\n    1," in pretty and not cut
    assert render_bytes(b"\x00\xff", "hex", 1000) == ('<code class="hex">00 ff</code>', False)
    assert render_bytes(b"y" * 50, "text", 10) == ("<pre>" + "y" * 10 + "</pre>", True)
    assert render_bytes(b"y" * 50, "text", 0) == ("<pre>" + "y" * 50 + "</pre>", False)
    assert render_bytes(None, "text", 10)[0] == '<span class="null">null</span>'


async def test_truncated_values_link_to_the_whole_record(
    make_server: Callable[..., Awaitable[Any]],
) -> None:
    running = await make_server(**{"kbroker.http.listener": "127.0.0.1:0"})
    await _fill(running, "big", batches=1, per_batch=1, size=5000)
    address = running.server.http_address
    status, _, body = await http_get(address, "/topics/big/messages")
    assert status == 200
    page = body.decode()
    assert "x" * 1000 in page and "x" * 1001 not in page
    assert (
        "/topics/big/messages?partition=0&amp;offset=0&amp;limit=1&amp;format=text&amp;max=0"
        in page
    )
    status, _, body = await http_get(
        address, "/topics/big/messages?partition=0&offset=0&limit=1&format=text&max=0"
    )
    assert status == 200 and "x" * 5000 in body.decode()


async def test_console_is_read_only_without_the_flag(
    make_server: Callable[..., Awaitable[Any]],
) -> None:
    running = await make_server(**{"kbroker.http.listener": "127.0.0.1:0"})
    import trio

    stream = await trio.open_tcp_stream(*running.server.http_address)
    async with stream:
        await stream.send_all(
            b"POST /topics HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n"
            b"Connection: close\r\n\r\nname=evil"
        )
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 405")
    assert running.broker.topics.get("evil") is None
