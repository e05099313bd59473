"""One bounded, least-recently-used cache of the log's open file descriptors.

Every segment file (`.log`, `.index`, `.timeindex`) is opened on first use and
registered here; when more than `capacity` are open, the least recently used is
closed. A broker with ten thousand partitions then holds at most `capacity`
descriptors for its data, however many partitions it hosts, and can always
reopen its own data dir (Kafka holds every segment open and relies on a huge
`ulimit -n`; a bounded cache is what lets a small limit serve many partitions).

Rules the owners follow so that closing never breaks an operation:

- a descriptor is read through its owner's property each time it is needed, never
  kept in a variable across a call that may open another file (that open may close
  it, and the number could be reused by the next open);
- an evicted owner writes what it holds in memory first (index entries deferred
  until flush) and reopens on its next use;
- a `.log` descriptor being sent (a FileRegion refers to its FileHandle) is only
  forgotten by the cache: the FileHandle closes it when the last region lets go,
  so data already on its way keeps its own descriptor until sent.

Touching an open entry costs one OrderedDict move and no syscall: the active
segment's append path goes through here on every write.

The cache belongs to the thread that opens through it (`open_files()`): a broker
runs its log on one Trio thread, and a broker embedded in a thread of its own must
never have its descriptors closed by another broker's open in between two of its
syscalls. The main thread's cache is `OPEN_FILES`; owners remember the cache that
opened them.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

__all__ = ["DEFAULT_CAPACITY", "OPEN_FILES", "OpenFileCache", "Evictable", "open_files"]

# Used until the broker sizes the cache from its descriptor limit (log.max.open.files).
DEFAULT_CAPACITY = 256
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


class Evictable(Protocol):
    """An owner of one cached descriptor."""

    def evict(self) -> None:
        """Close the descriptor (after writing anything pending); reopen on next use."""


class OpenFileCache:
    """Open descriptors of the log, at most `capacity` of them (see the module docstring)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = max(1, capacity)
        self._lru: OrderedDict[Evictable, None] = OrderedDict()
        self.evictions = 0
        # touch(owner): mark an open entry as just used (the hot path: no syscall). The
        # OrderedDict's own method, bound here: every append and read calls it, and a
        # method of ours around it was one more Python frame each time.
        self.touch: Callable[[Evictable], None] = self._lru.move_to_end

    def __len__(self) -> int:
        return len(self._lru)

    def set_capacity(self, capacity: int) -> None:
        """Resize (closing the least recently used files beyond the new bound)."""
        self.capacity = max(1, capacity)
        self._trim()

    def open(self, owner: Evictable, path: str | os.PathLike[str], flags: int) -> int:
        """Open `path` for `owner` and register it, closing idle files to stay within the bound.

        Idle files are closed before the open (so the bound holds at every instant),
        and again when the process is out of descriptors all the same (EMFILE:
        sockets took them), as long as there is an idle file to close.
        """
        self._trim(room=1)
        while True:
            try:
                fd = os.open(path, flags, 0o644)
                break
            except OSError as exc:
                if exc.errno not in _OUT_OF_DESCRIPTORS or not self._evict_oldest():
                    raise
        self._lru[owner] = None
        return fd

    def forget(self, owner: Evictable) -> None:
        """The owner closed its descriptor itself."""
        self._lru.pop(owner, None)

    def _trim(self, room: int = 0) -> None:
        # A victim that cannot write its pending bytes (disk full) stays open and at
        # the recent end; each is tried once per trim, so a full disk never loops.
        for _ in range(len(self._lru)):
            if len(self._lru) + room <= self.capacity:
                return
            self._evict_oldest()

    def _evict_oldest(self) -> bool:
        if not self._lru:
            return False
        victim, _ = self._lru.popitem(last=False)
        try:
            victim.evict()
        except OSError:
            self._lru[victim] = None
            return False
        self.evictions += 1
        return True


# The one cache all partitions of the main thread share.
OPEN_FILES = OpenFileCache()


class _ThreadCache(threading.local):
    cache: OpenFileCache | None = None


_THREAD = _ThreadCache()


def open_files() -> OpenFileCache:
    """The cache of the calling thread (OPEN_FILES in the main thread)."""
    cache = _THREAD.cache
    if cache is None:
        main = threading.current_thread() is threading.main_thread()
        cache = _THREAD.cache = OPEN_FILES if main else OpenFileCache()
    return cache
