"""The console's record reads: off the event loop thread, bounded, decoded as a user reads them."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
import trio

from kbroker.http import browse
from kbroker.http.console import render_bytes
from kbroker.wire.records import Record, build_batch
from tests.kbroker.helpers import create_topic, http_get, produce


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


async def http_post(
    address: tuple[str, int], path: str, form: dict[str, str], origin: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A form POST: (status, headers, body)."""

    body = urlencode(form).encode()
    extra = f"Origin: {origin}\r\n" if origin else ""
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(
            f"POST {path} HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n{extra}"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    return int(lines[0].split()[1]), headers, rest


async def test_actions_with_the_flag(make_server: Callable[..., Awaitable[Any]]) -> None:
    running = await make_server(
        **{"kbroker.http.listener": "127.0.0.1:0", "kbroker.http.console.actions": True}
    )
    address = running.server.http_address
    host = f"http://{address[0]}:{address[1]}"
    # Create a topic through the broker's own CreateTopics.
    status, headers, _ = await http_post(
        address, "/topics", {"name": "made", "partitions": "2"}, origin=host
    )
    assert status == 303 and headers["location"] == "/topics/made?done=created+topic+made"
    status, _, body = await http_get(address, headers["location"])
    assert status == 200 and '<p class="flash" id="flash">created topic made</p>' in body.decode()
    assert len(running.broker.topics.get("made").partitions) == 2
    # Produce a test message; the messages page shows it.
    status, headers, _ = await http_post(
        address,
        "/topics/made/produce",
        {"partition": "1", "key": "k", "value": "hello", "headers": "a=1\nb=2"},
    )
    assert status == 303 and "at+offset+0" in headers["location"]
    status, _, body = await http_get(address, "/topics/made/messages?partition=1")
    page = body.decode()
    assert "<pre>hello</pre>" in page and "<b>a</b>: 1" in page and "<b>b</b>: 2" in page
    # Reset a group's offsets (committed first by the group's own OffsetCommit).
    from kbroker.http import actions

    await actions.commit_offsets(running.server, "readers", {("made", 1): 0})
    status, _, _ = await http_post(address, "/groups/readers/reset", {"to": "latest"})
    assert status == 303
    gc = running.broker.state["kbroker.coordinator"]
    assert gc.fetch_offsets("readers", None)[("made", 1)].offset == 1
    # A page elsewhere cannot drive the broker.
    status, _, _ = await http_post(address, "/topics/made/delete", {}, origin="http://evil.example")
    assert status == 403 and running.broker.topics.get("made") is not None
    status, headers, _ = await http_post(address, "/topics/made/delete", {}, origin=host)
    assert status == 303 and running.broker.topics.get("made") is None
    # A refused action says why.
    status, _, body = await http_post(address, "/topics", {"name": "bad/name"})
    assert status == 400 and "INVALID_TOPIC_EXCEPTION" in body.decode()


async def test_kip848_group_members_and_assignments(
    make_server: Callable[..., Awaitable[Any]],
) -> None:
    from kbroker.wire.messages import ConsumerGroupHeartbeatRequest

    running = await make_server(**{"kbroker.http.listener": "127.0.0.1:0"})
    create_topic(running, "kip", partitions=2)
    async with await running.connect(client_id="new-consumer") as client:
        response = await client.request(
            ConsumerGroupHeartbeatRequest(
                group_id="modern",
                member_id="m-1",
                member_epoch=0,
                rebalance_timeout_ms=30000,
                subscribed_topic_names=["kip"],
                topic_partitions=[],
            ),
            version=1,
        )
        assert response.error_code == 0
    address = running.server.http_address
    status, _, body = await http_get(address, "/groups")
    assert status == 200
    assert '<tr data-group="modern">' in body.decode() and "<td>consumer</td>" in body.decode()
    status, _, body = await http_get(address, "/groups/modern")
    page = body.decode()
    assert status == 200
    assert (
        "<td>m-1</td>" in page and "<td>new-consumer</td>" in page and "<td>kip[0,1]</td>" in page
    )


async def test_transactions_page_shows_an_open_transaction(
    make_server: Callable[..., Awaitable[Any]],
) -> None:
    from kafka import KafkaProducer

    running = await make_server(**{"kbroker.http.listener": "127.0.0.1:0"})
    create_topic(running, "payments")

    def open_transaction() -> KafkaProducer:
        # Made in the worker thread: its constructor talks to the broker, whose event loop
        # must keep running.
        producer = KafkaProducer(bootstrap_servers=running.bootstrap, transactional_id="pay-tx")
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("payments", b"pending", partition=0)
        producer.flush()
        return producer

    producer = await trio.to_thread.run_sync(open_transaction)
    try:
        status, _, body = await http_get(running.server.http_address, "/transactions")
        page = body.decode()
        assert status == 200
        row = page[page.index('<tr data-txn="pay-tx">') :].split("</tr>")[0]
        assert "<td>Ongoing</td>" in row and "<td>payments-0</td>" in row
        assert "open since offset 0" in page
    finally:

        def finish() -> None:
            producer.abort_transaction()
            producer.close()

        await trio.to_thread.run_sync(finish)


def test_decoding_keeps_data_records_that_look_like_markers_and_skips_markers() -> None:
    from kbroker.wire.records import build_control_batch

    # A data record may have any key, even one shaped like a control key (version 0, type 1).
    data = build_batch([Record(key=b"\x00\x00\x00\x01", value=b"v", timestamp=5)])
    marker = build_control_batch(
        commit=True,
        producer_id=7,
        producer_epoch=0,
        coordinator_epoch=0,
        timestamp=6,
        base_offset=1,
    )
    found = browse.decode_batches(bytes(data) + marker, 0, 0, 10)
    assert [(m.offset, m.key, m.value) for m in found] == [(0, b"\x00\x00\x00\x01", b"v")]
