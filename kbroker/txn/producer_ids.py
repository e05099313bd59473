"""Producer id allocation that survives restarts.

Kafka hands producer ids out in blocks (ProducerIdManager, KIP-730): the
controller records the end of every block it grants before any id of it is
used. We do the same with a file in the data dir: ``producer-id-block`` holds
the first id NOT yet granted; it is rewritten atomically (temp + fsync +
rename) before the ids of a new block are handed out, so a crash can waste
the rest of a block but never hand out an id twice.
"""

from __future__ import annotations

import os
from pathlib import Path

BLOCK_SIZE = 1000
FILE_NAME = "producer-id-block"


class ProducerIdManager:
    """Hands out unique producer ids, persisted in blocks under ``directory``."""

    def __init__(self, directory: Path, *, block_size: int = BLOCK_SIZE) -> None:
        self.path = Path(directory) / FILE_NAME
        self.block_size = block_size
        try:
            self._granted_end = int(self.path.read_text().strip())
        except FileNotFoundError:
            self._granted_end = 0
        except ValueError as exc:
            raise ValueError(f"damaged producer id block file {self.path}") from exc
        self._next = self._granted_end

    def next_id(self) -> int:
        """A producer id never returned before (by this or an earlier run)."""
        if self._next >= self._granted_end:
            end = self._next + self.block_size
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, f"{end}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self._granted_end = end
        pid = self._next
        self._next += 1
        return pid
