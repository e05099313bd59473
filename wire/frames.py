"""Kafka's length-prefixed framing, sans I/O.

Every request and response on a Kafka connection is an int32 (big-endian)
size followed by that many bytes. ``FrameDecoder`` is fed whatever the socket
produced and hands out complete payloads; it checks the size prefix the moment
its four bytes arrive, so a hostile or confused peer cannot make us buffer
(or allocate) more than ``max_frame_size`` bytes. Below that, memory follows the
bytes that actually arrive: a large frame's buffer starts at ``GROW_START`` and
doubles as it fills, so a size prefix announcing 100 MiB followed by a trickle
holds what was sent, not what was announced. (Shape taken from h11's
``receive_data`` / ``next_event``; Kafka's own check is
``socket.request.max.bytes`` in NetworkReceive.)
"""

from __future__ import annotations

import struct
import sys

from kbroker.wire.errors import FrameTooLarge

__all__ = ["FrameDecoder", "frame", "DEFAULT_MAX_FRAME_SIZE", "GROW_START", "LARGE_FRAME"]

DEFAULT_MAX_FRAME_SIZE = 100 * 1024 * 1024  # socket.request.max.bytes default

_SIZE = struct.Struct(">i")


# Frames at least this large may be received straight into their own buffer
# (receive_buffer), sparing the copies through the shared buffer.
LARGE_FRAME = 64 * 1024
# The buffer of a large frame is kept for the next one, up to this size: a fresh
# multi-megabyte bytearray is zero-filled and page-faulted in on every request, which
# was the largest user-space cost of receiving 10 KB-record produce requests. Clients
# cap a request at about 1 MB by default (max.request.size, librdkafka's
# message.max.bytes), so 4 MiB covers them while bounding what an idle connection holds.
SPARE_MAX = 4 * 1024 * 1024
# First buffer of a large frame (then doubled as it fills, up to the frame's size).
# At the clients' usual request size (1 MB) nothing is copied while growing; beyond it
# growing costs at most one extra copy of what was received.
GROW_START = 1024 * 1024


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes in, take whole frames out with ``next_frame``.

    Large frames can also be received in place: ``receive_buffer()`` gives a
    writable view of the missing part of the frame being assembled, the caller
    reads into it and reports ``received(n)``, and ``next_frame_view()`` hands
    the finished frame out without copying it. ``start_buffer()`` / ``started(n)``
    do the same for the first read of a frame, whose size is not known yet.
    """

    __slots__ = (
        "_buf",
        "_max",
        "_need",
        "_big",
        "_big_size",
        "_big_filled",
        "_spare",
        "_spare_refs",
        "_wide",
    )

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_frame_size
        # Size of the frame being assembled, or -1 while the prefix is incomplete.
        self._need = -1
        # A large frame being received in place: a view of the room allocated so far
        # (at most the frame's size, into a buffer that may be larger), the frame's
        # size and the bytes filled so far.
        self._big: memoryview | None = None
        self._big_size = 0
        self._big_filled = 0
        # The buffer of the last large frame, reused once nothing refers to it, and its
        # reference count (as _buffer_for reads it) when nothing did.
        self._spare: bytearray | None = None
        self._spare_refs = 0
        # Whether the next first read may take all of the spare buffer (start_buffer):
        # not after one that began with a small frame, until a large frame begins.
        self._wide = True

    @property
    def buffered(self) -> int:
        """Number of bytes held that have not been returned as a frame yet."""
        if self._big is not None:
            return 4 + self._big_filled + len(self._buf)
        return len(self._buf)

    @property
    def max_frame_size(self) -> int:
        """Largest payload accepted; a larger size prefix is FrameTooLarge."""
        return self._max

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes; raises FrameTooLarge as soon as a bad size prefix is complete."""
        if self._big is not None:
            # The rest of the large frame first; what follows it belongs to later frames.
            data = memoryview(data)
            while data and self._big_filled < self._big_size:
                big = self._room()
                take = min(len(big) - self._big_filled, len(data))
                big[self._big_filled : self._big_filled + take] = data[:take]
                self._big_filled += take
                data = data[take:]
            if not data:
                return
        elif not self._buf and len(data) >= 4:
            # A new frame starts here: if it is large and incomplete, its bytes go
            # straight into its own buffer (one copy, not via _buf and then again).
            (size,) = _SIZE.unpack_from(data, 0)
            if size < 0 or size > self._max:
                # Refused before any of it is kept: a first read into the large frames'
                # buffer (started) may have brought megabytes behind this prefix.
                raise FrameTooLarge(size, self._max)
            if LARGE_FRAME <= size and len(data) < 4 + size:
                self._begin_large(size, memoryview(data)[4:])
                return
        self._buf += data
        self._check_prefix()

    def whole_frame(self, data: memoryview) -> bytes | None:
        """The payload of ``data`` if it is exactly one whole frame and nothing is buffered,
        else None (then ``feed`` it). What one read brings from a client that waits for
        each answer: taken out in one copy, without going through the buffer (feed then
        next_frame cost ~4x as much). A size over the limit is left to ``feed`` to reject.
        """
        if self._buf or self._big is not None or len(data) < 4:
            return None
        (size,) = _SIZE.unpack_from(data, 0)
        if size != len(data) - 4 or size > self._max:
            return None
        return bytes(data[4:])

    def receive_buffer(self) -> memoryview | None:
        """A writable view of the missing bytes of a large frame, or None.

        Only while a frame of at least LARGE_FRAME bytes is incomplete and
        nothing after it is buffered. Write received bytes into it, then call
        ``received(n)``; the view is valid until then.
        """
        big = self._big
        if big is None:
            if not self._buf:
                return None  # nothing begun (what every read of small requests finds)
            self._check_prefix()
            need = self._need
            if need < LARGE_FRAME or len(self._buf) >= 4 + need:
                return None
            head, self._buf = memoryview(self._buf)[4:], bytearray()
            self._begin_large(need, head)
        elif self._buf or self._big_filled == self._big_size:
            return None  # complete: next_frame_view() takes it
        return self._room()[self._big_filled :]

    def _begin_large(self, size: int, head: memoryview) -> None:
        """Receive a frame of ``size`` in its own buffer, starting with the ``head`` bytes."""
        big = self._buffer_for(min(size, max(GROW_START, len(head))))
        big[: len(head)] = head
        self._big, self._big_size, self._big_filled, self._need = big, size, len(head), size
        self._wide = True

    def _room(self) -> memoryview:
        """The large frame's buffer, grown (doubled) first if what was allocated is full."""
        big = self._big
        assert big is not None
        if self._big_filled == len(big) < self._big_size:
            grown = self._buffer_for(min(self._big_size, 2 * len(big)))
            grown[: self._big_filled] = big[: self._big_filled]
            self._big = big = grown
        return big

    def _buffer_for(self, need: int) -> memoryview:
        """A view of `need` writable bytes for a large frame: the spare buffer if no frame
        view still uses it. Each buffer starts with room for the frame's size prefix, so
        that a read can also land the prefix and the frame in place (start_buffer)."""
        spare = self._spare
        # A memoryview (and every slice of it) holds a reference to its bytearray, so a
        # count back at what it was when the buffer was new means no frame handed out
        # earlier is still in use and the bytes may be overwritten. The count is taken
        # the same way both times rather than assumed: interpreters differ in which
        # references (locals, arguments) they count.
        if (
            spare is not None
            and len(spare) >= 4 + need
            and sys.getrefcount(spare) == self._spare_refs
        ):
            return memoryview(spare)[4 : 4 + need]
        if need > SPARE_MAX:
            self._spare = None
            return memoryview(bytearray(4 + need))[4:]
        # Room for the next requests too: a producer's requests vary by a few bytes to
        # a few hundred KB around the same size, and one only a byte larger than the
        # buffer used to cost a new one (zero-filled, page-faulted in: measured at ~10%
        # of 10 KB-record produce requests). The next power of two, but never beyond
        # what the frame needs or GROW_START, so that a client is still given no more
        # memory than GROW_START for bytes it has not sent. A spare still in use (its
        # frame held, or a smaller one) is replaced by one at least as large: the
        # connection's requests were that large before and will be again.
        size = max(need, min(GROW_START, 1 << (need - 1).bit_length()))
        if spare is not None:
            size = max(size, len(spare) - 4)
        spare = bytearray(4 + size)
        self._spare = spare
        self._spare_refs = sys.getrefcount(spare)
        return memoryview(spare)[4 : 4 + need]

    def start_buffer(self, limit: int) -> memoryview | None:
        """Where to read the next bytes when nothing is buffered: the spare buffer of large
        frames, or None if there is none or a frame still uses it. Report what was read
        with ``started(n)``.

        The start of a large frame then stays where it was read (the rest is received in
        place after it), rather than being copied there from a shared receive buffer.
        While the connection's requests are large the read may fill the whole buffer: a
        large frame that has arrived whole by then is handed out where it was read, after
        one read rather than two or more. After a first read that began with a small
        frame, at most ``limit`` bytes until a large frame begins again: a client
        pipelining small requests has about that much read (and served) at a time, as
        from a shared buffer of that size.
        """
        if self._buf or self._big is not None:
            return None
        spare = self._spare
        if spare is None or sys.getrefcount(spare) != self._spare_refs:
            return None
        if self._wide:
            return memoryview(spare)
        return memoryview(spare)[: min(limit, len(spare))]

    def started(self, n: int) -> None:
        """Take the ``n`` bytes read into the last ``start_buffer()`` view."""
        spare = self._spare
        assert spare is not None and not self._buf and self._big is None
        if n >= 4:
            (size,) = _SIZE.unpack_from(spare, 0)
            if LARGE_FRAME <= size <= self._max:
                self._wide = True
                if size > len(spare) - 4:
                    # Larger than this buffer (so incomplete): it moves to one of its
                    # own size at once, while only this read's bytes need copying.
                    self._begin_large(size, memoryview(spare)[4:n])
                    return
                # It stays where it was read: complete (next_frame_view hands it out
                # without a copy) or continued in place (receive_buffer).
                end = 4 + size
                self._big = memoryview(spare)[4:end]
                self._big_size = self._need = size
                if n <= end:
                    self._big_filled = n - 4
                    return
                self._big_filled = size
                # What the read brought after it (a pipelining client's next requests)
                # is copied out, so that nothing still to be served lives in the
                # buffer once this frame is handed out: the buffer is then free again
                # as soon as the frame is released. Its size prefix is judged when the
                # frame ahead of it has been taken (next_frame), as after any large frame.
                with memoryview(spare) as view:
                    self._buf += view[end:n]
                return
        # Anything else is taken as from any read (small frames are copied out).
        self._wide = False
        with memoryview(spare) as view:
            self.feed(view[:n])

    def received(self, n: int) -> None:
        """Record that ``n`` bytes were written into the last ``receive_buffer()`` view."""
        assert self._big is not None and 0 <= n <= len(self._big) - self._big_filled
        self._big_filled += n

    def next_frame_view(self) -> bytes | memoryview | None:
        """Like ``next_frame``, but a large frame received in place comes without a copy."""
        big = self._big
        if big is not None:
            if self._big_filled < self._big_size:
                return None
            self._big, self._big_size, self._big_filled, self._need = None, 0, 0, -1
            return big
        return self.next_frame()

    def _check_prefix(self) -> None:
        if self._need < 0 and len(self._buf) >= 4:
            (size,) = _SIZE.unpack_from(self._buf, 0)
            if size < 0 or size > self._max:
                raise FrameTooLarge(size, self._max)
            self._need = size

    def next_frame(self) -> bytes | None:
        """Return the next complete payload (without its size prefix), or None if more bytes are needed."""
        big = self._big
        if big is not None:
            view = self.next_frame_view()
            return None if view is None else bytes(view)
        # A prefix that arrived behind an earlier frame is judged now, before
        # its payload is waited for.
        self._check_prefix()
        need = self._need
        if need < 0 or len(self._buf) < 4 + need:
            return None
        # One copy: through a memoryview (a bytearray slice would copy twice).
        with memoryview(self._buf) as mv:
            payload = bytes(mv[4 : 4 + need])
        del self._buf[: 4 + need]
        self._need = -1
        return payload


def frame(payload: bytes | bytearray | memoryview) -> bytes:
    """Prepend the int32 size to ``payload``."""
    return _SIZE.pack(len(payload)) + bytes(payload)
