"""``with thing as t:`` for the runners that start a process or thread and stop it again.

The embedded broker, the test ZooKeeper and the test cluster all follow the same contract:
``start()`` returns the started object, and leaving the block stops it. Only what "stop"
means differs (a cluster keeps its data for a post-mortem when the block failed), so that is
the one method each runner supplies.
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_R = TypeVar("_R", bound="Runner")


class Runner:
    """A context manager over ``start()`` and ``_leave()``."""

    def start(self: _R) -> _R:
        raise NotImplementedError

    def _leave(self, exc_type: type[BaseException] | None) -> None:
        """Stop on leaving the ``with`` block; ``exc_type`` is what ended it, or None."""
        raise NotImplementedError

    def __enter__(self: _R) -> _R:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave(exc_type)
