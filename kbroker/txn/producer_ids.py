"""Producer id allocation that survives restarts.

Kafka hands producer ids out in blocks (ProducerIdManager, KIP-730): the
controller records the end of every block it grants before any id of it is
used. We do the same with a file in the data dir: ``producer-id-block`` holds
the first id NOT yet granted; it is rewritten atomically (``atomic_write``)
before the ids of a new block are handed out, so a crash can waste the rest
of a block but never hand out an id twice.
"""

from __future__ import annotations

from pathlib import Path

from kbroker.log.checkpoint import atomic_write

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
            atomic_write(self.path, f"{end}\n".encode())
            self._granted_end = end
        pid = self._next
        self._next += 1
        return pid
