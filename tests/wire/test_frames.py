"""Length-prefixed framing: whole input, byte by byte, several frames per chunk."""

from __future__ import annotations

import struct

import pytest

from kbroker.wire.errors import FrameTooLarge
from kbroker.wire.frames import FrameDecoder, frame

PAYLOADS = [b"hello", b"", b"\x00" * 300, bytes(range(256))]


def drain(dec: FrameDecoder) -> list[bytes]:
    out = []
    while (f := dec.next_frame()) is not None:
        out.append(f)
    return out


def test_frame_prepends_size() -> None:
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(b"") == b"\x00\x00\x00\x00"


def test_whole_input_in_one_chunk() -> None:
    dec = FrameDecoder()
    dec.feed(b"".join(frame(p) for p in PAYLOADS))
    assert drain(dec) == PAYLOADS
    assert dec.buffered == 0


def test_byte_by_byte() -> None:
    stream = b"".join(frame(p) for p in PAYLOADS)
    dec = FrameDecoder()
    got = []
    for i in range(len(stream)):
        dec.feed(stream[i : i + 1])
        got.extend(drain(dec))
    assert got == PAYLOADS
    assert dec.buffered == 0


def test_trailing_partial_frame_is_kept() -> None:
    dec = FrameDecoder()
    dec.feed(frame(b"one") + frame(b"two")[:5])
    assert drain(dec) == [b"one"]
    assert dec.buffered == 5
    dec.feed(frame(b"two")[5:])
    assert drain(dec) == [b"two"]


@pytest.mark.parametrize("size", [-1, -(2**31), 101])
def test_bad_size_raises_before_buffering_payload(size: int) -> None:
    dec = FrameDecoder(max_frame_size=100)
    dec.feed(struct.pack(">i", size)[:3])
    assert dec.next_frame() is None  # prefix incomplete: no verdict yet
    with pytest.raises(FrameTooLarge) as e:
        dec.feed(struct.pack(">i", size)[3:])
    assert e.value.size == size


def test_bad_size_after_good_frame_in_same_chunk() -> None:
    # The good frame is delivered; the bad prefix behind it is reported the
    # moment that frame is taken, before anything more is buffered.
    dec = FrameDecoder(max_frame_size=100)
    dec.feed(frame(b"ok") + struct.pack(">i", 1000) + b"junk")
    assert dec.next_frame() == b"ok"
    with pytest.raises(FrameTooLarge):
        dec.next_frame()
    dec = FrameDecoder(max_frame_size=10)
    dec.feed(frame(b"a" * 10))
    dec.feed(struct.pack(">i", 11))  # prefix still behind an unconsumed frame
    assert dec.next_frame() == b"a" * 10
    with pytest.raises(FrameTooLarge):
        dec.next_frame()


def test_max_size_frame_accepted() -> None:
    dec = FrameDecoder(max_frame_size=10)
    dec.feed(frame(b"x" * 10))
    assert dec.next_frame() == b"x" * 10


@pytest.mark.parametrize(
    ("buffered", "data"),
    [
        (b"", frame(b"hello")),
        (b"", frame(b"")),
        (b"", frame(bytes(300))),
        (b"", frame(b"hello") + frame(b"next")),  # more than one frame
        (b"", frame(b"hello")[:-1]),  # not all of it yet
        (b"", frame(b"hello")[:3]),  # not even the size
        (b"", struct.pack(">i", -1) + b"abc"),  # a negative size
        (b"", frame(bytes(200))),  # over the limit (max_frame_size=100)
        (frame(b"first")[:6], frame(b"hello")),  # behind a partial frame
        (frame(b"first"), frame(b"hello")),  # behind a whole one not taken yet
    ],
)
def test_whole_frame_agrees_with_feed(buffered: bytes, data: bytes) -> None:
    """whole_frame takes a read that is exactly one frame with nothing buffered, as feed
    and next_frame would; anything else it leaves to them, size checks included."""
    fast, slow = FrameDecoder(max_frame_size=100), FrameDecoder(max_frame_size=100)
    for dec in (fast, slow):
        dec.feed(buffered)
    taken = fast.whole_frame(memoryview(data))
    try:
        slow.feed(data)
        expected = drain(slow)
    except FrameTooLarge:
        assert taken is None
        with pytest.raises(FrameTooLarge):
            fast.feed(data)
            drain(fast)
        return
    if taken is not None:
        assert not buffered and expected == [taken] and not slow.buffered
        assert fast.buffered == 0 and fast.next_frame() is None
    else:
        assert not (not buffered and len(expected) == 1 and not slow.buffered)
        fast.feed(data)
        assert drain(fast) == expected and fast.buffered == slow.buffered
