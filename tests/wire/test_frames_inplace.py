"""Large frames received in place (receive_buffer / received / next_frame_view).

The server reads big requests straight into their own buffer; whatever mix of
in-place reads and ordinary feeds a socket produces, the frames that come out
must be exactly the frames that went in, in order.
"""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.wire.errors import FrameTooLarge
from kbroker.wire.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    GROW_START,
    LARGE_FRAME,
    FrameDecoder,
    frame,
)


def _deliver(
    stream: bytes,
    chunks: list[int],
    in_place: list[bool],
    *,
    keep_views: bool = False,
) -> list[bytes]:
    """Push ``stream`` through a decoder in chunks, in place when the decoder offers a buffer.

    ``keep_views``: every frame handed out is kept until the end, and only then compared:
    a buffer must never be reused under a frame still held.
    """
    dec = FrameDecoder()
    out: list[bytes | memoryview] = []
    pos = 0
    step = 0
    while pos < len(stream):
        size = chunks[step % len(chunks)]
        target = dec.receive_buffer() if in_place[step % len(in_place)] else None
        start = None
        if target is None and in_place[step % len(in_place)]:
            # A first read, into the large frames' buffer (all of it after a large frame).
            start = dec.start_buffer(size)
        step += 1
        if target is not None:
            n = min(size, len(target), len(stream) - pos)
            target[:n] = stream[pos : pos + n]
            dec.received(n)
        elif start is not None:
            n = min(len(start), len(stream) - pos)
            start[:n] = stream[pos : pos + n]
            del start
            dec.started(n)
        else:
            n = min(size, len(stream) - pos)
            dec.feed(stream[pos : pos + n])
        del target
        pos += n
        while (f := dec.next_frame_view()) is not None:
            out.append(f if keep_views else bytes(f))
    assert dec.buffered == 0
    return [bytes(f) for f in out]


def test_large_frame_is_received_in_place_and_handed_out_without_copy() -> None:
    payload = bytes(range(256)) * (LARGE_FRAME // 256 + 3)
    dec = FrameDecoder()
    data = frame(payload) + frame(b"next")
    dec.feed(data[:1000])
    target = dec.receive_buffer()
    assert target is not None and len(target) == len(payload) - 996
    target[:] = data[1000 : 4 + len(payload)]
    dec.received(len(target))
    assert dec.receive_buffer() is None  # complete: nothing more to receive in place
    view = dec.next_frame_view()
    assert isinstance(view, memoryview) and view == payload
    dec.feed(data[4 + len(payload) :])
    assert dec.next_frame_view() == b"next"


def test_the_first_read_of_a_large_frame_lands_in_place() -> None:
    # The server reads a new request into the large frames' buffer when it is free:
    # the start of a large request then needs no copy into a buffer of its own.
    dec = FrameDecoder()
    assert dec.start_buffer(1000) is None  # no large frame yet: no buffer to offer
    _receive_in_place(dec, b"a" * (3 * LARGE_FRAME))  # the view is dropped at once
    payload = bytes(range(256)) * (2 * LARGE_FRAME // 256)
    data = frame(payload) + frame(b"next")
    start = dec.start_buffer(1000)
    # All of the buffer (3 LARGE_FRAME rounded up to 4, and the prefix): the last frame
    # was large. Here the read brings only the first 1000 bytes.
    assert start is not None and len(start) == 4 + 4 * LARGE_FRAME
    buffer = id(start.obj)  # an id: a reference would pin the buffer
    start[:1000] = data[:1000]
    del start
    dec.started(1000)
    target = dec.receive_buffer()
    assert target is not None and id(target.obj) == buffer
    target[:] = data[1000 : 4 + len(payload)]
    del target
    dec.received(4 + len(payload) - 1000)
    view = dec.next_frame_view()
    assert isinstance(view, memoryview) and id(view.obj) == buffer and view == payload
    # While that frame is in use its buffer is not offered; small frames still come
    # out of ordinary reads.
    assert dec.start_buffer(1000) is None
    dec.feed(data[4 + len(payload) :])
    assert dec.next_frame_view() == b"next"
    del view
    start = dec.start_buffer(100)
    assert start is not None
    start[:10] = frame(b"small!")
    del start
    dec.started(10)
    assert dec.next_frame_view() == b"small!"
    # A frame larger than the buffer (3 LARGE_FRAME rounded up to 4) moves to a buffer
    # of its own.
    larger = b"L" * (5 * LARGE_FRAME)
    start = dec.start_buffer(1000)
    assert start is not None
    start[:] = frame(larger)[:1000]
    del start
    dec.started(1000)
    target = dec.receive_buffer()
    assert target is not None and id(target.obj) != buffer and len(target) == len(larger) - 996
    target[:] = frame(larger)[1000:]
    del target
    dec.received(len(larger) - 996)
    assert dec.next_frame_view() == larger


def test_small_frames_are_never_received_in_place() -> None:
    dec = FrameDecoder()
    dec.feed(frame(b"x" * 100)[:10])
    assert dec.receive_buffer() is None


def test_bytes_fed_while_a_frame_is_received_in_place_go_in_order() -> None:
    big = b"b" * (LARGE_FRAME * 2)
    data = frame(big) + frame(b"after")
    dec = FrameDecoder()
    dec.feed(data[:10])
    assert dec.receive_buffer() is not None
    dec.feed(data[10:])  # a plain feed finishes the big frame and starts the next
    assert dec.receive_buffer() is None
    assert dec.next_frame() == big  # next_frame still returns bytes
    assert dec.next_frame() == b"after"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from([0, 5, 100, LARGE_FRAME - 4, LARGE_FRAME, 3 * LARGE_FRAME + 7]),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.integers(min_value=1, max_value=2 * LARGE_FRAME), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=1, max_size=4),
)
def test_any_mix_of_in_place_reads_and_feeds_yields_the_same_frames(
    sizes: list[int], chunks: list[int], in_place: list[bool]
) -> None:
    payloads = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    stream = b"".join(frame(p) for p in payloads)
    assert _deliver(stream, chunks, in_place) == payloads


@settings(max_examples=60, deadline=None)
@given(
    # LARGE_FRAME fills its buffer exactly (4 + 64 KiB); 3 LARGE_FRAME + 7 leaves a buffer
    # of 4 LARGE_FRAME with room for what follows.
    st.lists(
        st.sampled_from(
            [0, 5, 100, LARGE_FRAME - 4, LARGE_FRAME, LARGE_FRAME + 1, 3 * LARGE_FRAME + 7]
        ),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.integers(min_value=1, max_value=2 * LARGE_FRAME), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=1, max_size=4),
    st.booleans(),
)
def test_first_reads_of_the_whole_buffer_yield_the_same_frames_and_overwrite_none(
    sizes: list[int], chunks: list[int], in_place: list[bool], keep_views: bool
) -> None:
    # A first read may bring a whole large frame and, behind it, any part of what
    # follows (a pipelining client): the frames still come out whole and in order, and
    # with every frame kept alive none is overwritten by the reads after it.
    payloads = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    stream = b"".join(frame(p) for p in payloads)
    got = _deliver(stream, chunks, in_place, keep_views=keep_views)
    assert got == payloads


def _receive_in_place(dec: FrameDecoder, payload: bytes) -> memoryview:
    data = frame(payload)
    dec.feed(data[:4])
    target = dec.receive_buffer()
    assert target is not None
    target[:] = data[4:]
    dec.received(len(target))
    view = dec.next_frame_view()
    assert isinstance(view, memoryview)
    return view


def test_a_frame_still_in_use_is_never_overwritten_by_the_next() -> None:
    dec = FrameDecoder()
    payloads = [bytes([i]) * (LARGE_FRAME + 100 * i) for i in range(4)]
    held = [_receive_in_place(dec, p) for p in payloads]  # every view kept alive
    assert [bytes(v) for v in held] == payloads
    # A slice of a view pins the buffer just as well (a request's record batches are slices).
    part = held[-1][10:20]
    held.clear()
    assert _receive_in_place(dec, b"z" * LARGE_FRAME) == b"z" * LARGE_FRAME
    assert part == payloads[-1][10:20]


def test_the_buffer_is_reused_once_the_previous_frame_is_released() -> None:
    dec = FrameDecoder()
    first = _receive_in_place(dec, b"a" * (2 * LARGE_FRAME))
    del first
    # Smaller than the last: a prefix of the same (larger) buffer, not a new one
    # (every buffer has 4 bytes of room for a size prefix before the frame).
    second = _receive_in_place(dec, b"b" * LARGE_FRAME)
    assert second == b"b" * LARGE_FRAME and len(second.obj) == 4 + 2 * LARGE_FRAME  # type: ignore[arg-type]
    del second
    third = _receive_in_place(dec, b"c" * (3 * LARGE_FRAME))  # larger: a new buffer
    # ... with room to spare: the next power of two.
    assert third == b"c" * (3 * LARGE_FRAME) and len(third.obj) == 4 + 4 * LARGE_FRAME  # type: ignore[arg-type]


def test_requests_a_little_larger_than_the_last_reuse_its_buffer() -> None:
    # A producer's requests vary in size by a few bytes to a few hundred KB; each one
    # a little larger than the buffer must not cost a new (zero-filled) buffer.
    dec = FrameDecoder()
    sizes = [991_286, 991_294, 991_316, 1_000_000, 700_000, 1_048_576]
    buffers = set()
    for i, size in enumerate(sizes):
        view = _receive_in_place(dec, bytes([i]) * size)
        assert view == bytes([i]) * size
        buffers.add(id(view.obj))
        del view
    assert len(buffers) == 1


def test_a_buffer_replaced_while_in_use_keeps_its_size() -> None:
    # A smaller request that arrives while a large one is still held gets a buffer of
    # its own, as large as the held one: the large requests that follow fit in it.
    dec = FrameDecoder()
    held = _receive_in_place(dec, b"a" * 1_000_000)
    small = _receive_in_place(dec, b"b" * 100_000)
    replacement = id(small.obj)
    assert replacement != id(held.obj) and len(small.obj) >= 4 + 1_000_000  # type: ignore[arg-type]
    del held, small
    again = _receive_in_place(dec, b"c" * 1_000_016)
    assert again == b"c" * 1_000_016 and id(again.obj) == replacement


def test_a_claimed_size_gets_no_more_than_grow_start_before_its_bytes_arrive() -> None:
    # Rounding up never hands a client more memory than GROW_START for bytes it has
    # not sent: a frame claiming 1.5 MiB starts in a 1 MiB buffer.
    dec = FrameDecoder()
    dec.feed(frame(b"x" * (GROW_START + GROW_START // 2))[:100])
    target = dec.receive_buffer()
    assert target is not None and len(target.obj) == 4 + GROW_START  # type: ignore[arg-type]


def test_a_large_frame_finished_by_a_feed_that_starts_another_is_not_lost() -> None:
    first, second = b"\x00" * LARGE_FRAME, b"\x01" * LARGE_FRAME
    stream = frame(first) + frame(second)
    # Plain 6-byte feeds: the feed that completes the first frame also carries the
    # start of the second, which must wait until the first has been taken.
    assert _deliver(stream, [6], [False]) == [first, second]
    # And the first frame taken only after the second has started arriving.
    dec = FrameDecoder()
    cut = len(frame(first)) + 10
    dec.feed(stream[:cut])
    dec.feed(stream[cut:])
    assert bytes(dec.next_frame_view() or b"") == first
    assert bytes(dec.next_frame_view() or b"") == second


def test_frames_larger_than_the_first_buffer_grow_and_come_out_whole() -> None:
    # Past GROW_START the buffer is doubled as bytes arrive; in place or fed,
    # the frames must still come out byte for byte.
    big = bytes(range(256)) * (GROW_START * 3 // 256 + 7)
    stream = frame(b"a" * 10) + frame(big) + frame(b"b" * LARGE_FRAME) + frame(big[::-1])
    for in_place in ([True], [False], [True, False, False]):
        got = _deliver(stream, [300_000, 1_000_000, 77], in_place)
        assert got == [b"a" * 10, big, b"b" * LARGE_FRAME, big[::-1]]


def test_a_huge_size_prefix_allocates_what_arrives_not_what_it_announces() -> None:
    # A peer announcing 100 MiB and trickling bytes must not make us hold 100 MiB
    # (30 such connections held 3 GB).
    dec = FrameDecoder(max_frame_size=200 * 1024 * 1024)
    tracemalloc.start()
    try:
        dec.feed(struct.pack(">i", 100 * 1024 * 1024) + b"x")
        target = dec.receive_buffer()
        assert target is not None
        target[:1] = b"y"
        dec.received(1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= GROW_START + 64 * 1024
    assert dec.buffered == 4 + 2
    assert dec.next_frame_view() is None


def _start_read(dec: FrameDecoder, data: bytes, limit: int = 1000) -> int:
    """One first read of a new request into the large frames' buffer: how much of
    ``data`` it took."""
    start = dec.start_buffer(limit)
    assert start is not None
    n = min(len(start), len(data))
    start[:n] = data[:n]
    del start
    dec.started(n)
    return n


def _with_buffer(size: int) -> FrameDecoder:
    """A decoder whose large frames' buffer holds ``size`` bytes (prefix included), free."""
    dec = FrameDecoder()
    _receive_in_place(dec, b"w" * (size - 4))
    start = dec.start_buffer(1000)
    assert start is not None and len(start) == size  # all of it: the last frame was large
    return dec


def test_a_large_frame_read_whole_comes_out_of_that_one_read_without_a_copy() -> None:
    dec = _with_buffer(4 + 4 * LARGE_FRAME)
    buffer = id(dec.start_buffer(1000).obj)  # type: ignore[union-attr]
    payload = bytes(range(256)) * (3 * LARGE_FRAME // 256)
    assert _start_read(dec, frame(payload)) == 4 + len(payload)
    assert dec.receive_buffer() is None  # nothing left to read for it
    view = dec.next_frame_view()
    assert isinstance(view, memoryview) and id(view.obj) == buffer and view == payload
    assert dec.buffered == 0 and dec.next_frame_view() is None


def test_a_frame_filling_the_buffer_exactly_comes_out_whole() -> None:
    dec = _with_buffer(4 + 2 * LARGE_FRAME)
    payload = bytes(range(256)) * (2 * LARGE_FRAME // 256)
    data = frame(payload) + frame(b"after")
    assert _start_read(dec, data) == len(frame(payload))  # the buffer is full
    view = dec.next_frame_view()
    assert isinstance(view, memoryview) and view == payload
    assert dec.start_buffer(1000) is None  # the frame still holds the buffer
    dec.feed(data[len(frame(payload)) :])
    assert dec.next_frame_view() == b"after"
    assert view == payload


def test_small_frames_read_behind_a_large_one_come_out_in_order() -> None:
    dec = _with_buffer(4 + 4 * LARGE_FRAME)
    big = b"B" * (2 * LARGE_FRAME + 3)
    smalls = [b"one", b"", b"three" * 50]
    data = frame(big) + b"".join(frame(s) for s in smalls)
    assert _start_read(dec, data) == len(data)
    view = dec.next_frame_view()
    assert isinstance(view, memoryview) and view == big
    got = [dec.next_frame_view() for _ in smalls]
    assert got == smalls and all(isinstance(g, bytes) for g in got)  # small: copied out
    assert dec.next_frame_view() is None and dec.buffered == 0
    assert view == big


@pytest.mark.parametrize("second_size", [100, 3 * LARGE_FRAME])
def test_the_part_of_the_next_frame_read_behind_a_large_one_is_kept(second_size: int) -> None:
    # A pipelining client's next request, partly read with the first one (small or
    # large): it is completed by the next reads while the first is still in use.
    dec = _with_buffer(4 + 4 * LARGE_FRAME)
    first = bytes(range(256)) * (3 * LARGE_FRAME // 256)
    second = bytes(range(255, -1, -1)) * (second_size // 256) + b"!" * (second_size % 256)
    data = frame(first) + frame(second)
    cut = len(frame(first)) + 50
    assert _start_read(dec, data[:cut]) == cut
    view = dec.next_frame_view()
    assert isinstance(view, memoryview) and view == first
    assert dec.next_frame_view() is None and dec.buffered == 50
    assert dec.start_buffer(1000) is None  # a frame begun: no first read
    target = dec.receive_buffer()
    if target is None:  # small: fed as any read
        dec.feed(data[cut:])
    else:
        assert id(target.obj) != id(view.obj)  # not into the buffer the first one holds
        target[:] = data[cut:]
        dec.received(len(data) - cut)
        del target
    assert dec.next_frame_view() == second
    assert view == first  # never overwritten while held
    assert dec.buffered == 0


def test_a_bad_size_behind_a_large_frame_is_refused_once_that_frame_is_taken() -> None:
    dec = _with_buffer(4 + 2 * LARGE_FRAME)
    payload = b"p" * LARGE_FRAME
    data = frame(payload) + struct.pack(">i", dec.max_frame_size + 1) + b"xx"
    assert _start_read(dec, data) == len(data)
    assert dec.next_frame_view() == payload
    with pytest.raises(FrameTooLarge):
        dec.next_frame_view()


def test_after_a_small_frame_a_first_read_takes_no_more_than_its_limit() -> None:
    # A client pipelining small requests has no more read (and served) at a time than
    # from the shared buffer; once a large one begins, the whole buffer again.
    dec = _with_buffer(4 + 4 * LARGE_FRAME)
    smalls = b"".join(frame(b"s" * 100) for _ in range(3000))
    assert _start_read(dec, smalls, limit=1000) == 4 * LARGE_FRAME + 4  # after a large one
    assert all(dec.next_frame_view() == b"s" * 100 for _ in range(4 * LARGE_FRAME // 104))
    dec.feed(smalls[4 * LARGE_FRAME + 4 : 4 * LARGE_FRAME // 104 * 104 + 104])
    assert dec.next_frame_view() == b"s" * 100 and dec.buffered == 0
    assert _start_read(dec, smalls, limit=1000) == 1000  # after a small one
    while dec.next_frame_view() is not None:
        pass
    dec.feed(smalls[1000:1040])
    assert dec.next_frame_view() == b"s" * 100 and dec.buffered == 0
    big = b"b" * (2 * LARGE_FRAME)
    assert _start_read(dec, frame(big) * 2, limit=1000) == 1000
    target = dec.receive_buffer()
    assert target is not None
    target[:] = frame(big)[1000:]
    dec.received(len(target))
    del target
    assert dec.next_frame_view() == big
    assert _start_read(dec, frame(big), limit=1000) == len(frame(big))  # all of it again
    assert dec.next_frame_view() == big
    # A small frame, then the start of a large one in the same read: once the large one
    # has begun (out of the bytes fed), the next first read takes all of the buffer again.
    data = frame(b"s" * 100) + frame(big)
    assert _start_read(dec, data[:50_000], limit=1000) == 50_000  # after a large one
    assert dec.next_frame_view() == b"s" * 100
    target = dec.receive_buffer()
    assert target is not None
    target[:] = data[50_000:]
    dec.received(len(target))
    del target
    assert dec.next_frame_view() == big
    assert _start_read(dec, frame(big), limit=1000) == len(frame(big))
    assert dec.next_frame_view() == big


def test_a_first_read_with_a_bad_size_keeps_none_of_its_bytes() -> None:
    # The size prefix is judged before anything is kept (NetworkReceive reads the size
    # first): a first read that may fill the whole large frames' buffer must not copy
    # what came with an oversized (or negative) size before refusing it.
    for size in (DEFAULT_MAX_FRAME_SIZE + 1, -1):
        dec = _with_buffer(4 + 8 * LARGE_FRAME)
        start = dec.start_buffer(1000)
        assert start is not None
        start[:4] = struct.pack(">i", size)
        n = len(start)
        del start
        tracemalloc.start()
        try:
            with pytest.raises(FrameTooLarge):
                dec.started(n)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 64 * 1024  # not the 512 KiB read
        assert dec.buffered == 0
