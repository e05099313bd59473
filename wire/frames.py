"""Kafka's length-prefixed framing, sans I/O.

Every request and response on a Kafka connection is an int32 (big-endian)
size followed by that many bytes. ``FrameDecoder`` is fed whatever the socket
produced and hands out complete payloads; it checks the size prefix the moment
its four bytes arrive, so a hostile or confused peer cannot make us buffer
(or allocate) more than ``max_frame_size`` bytes. (Shape taken from h11's
``receive_data`` / ``next_event``; Kafka's own check is
``socket.request.max.bytes`` in NetworkReceive.)
"""

from __future__ import annotations

import struct

from wire.errors import FrameTooLarge

__all__ = ["FrameDecoder", "frame", "DEFAULT_MAX_FRAME_SIZE"]

DEFAULT_MAX_FRAME_SIZE = 100 * 1024 * 1024  # socket.request.max.bytes default

_SIZE = struct.Struct(">i")


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes in, take whole frames out with ``next_frame``."""

    __slots__ = ("_buf", "_max", "_need")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_frame_size
        # Size of the frame being assembled, or -1 while the prefix is incomplete.
        self._need = -1

    @property
    def buffered(self) -> int:
        """Number of bytes held that have not been returned as a frame yet."""
        return len(self._buf)

    @property
    def max_frame_size(self) -> int:
        """Largest payload accepted; a larger size prefix is FrameTooLarge."""
        return self._max

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes; raises FrameTooLarge as soon as a bad size prefix is complete."""
        self._buf += data
        self._check_prefix()

    def _check_prefix(self) -> None:
        if self._need < 0 and len(self._buf) >= 4:
            (size,) = _SIZE.unpack_from(self._buf, 0)
            if size < 0 or size > self._max:
                raise FrameTooLarge(size, self._max)
            self._need = size

    def next_frame(self) -> bytes | None:
        """Return the next complete payload (without its size prefix), or None if more bytes are needed."""
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
