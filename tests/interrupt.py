"""Starting a child process that takes Ctrl-C (SIGINT) whatever this test run inherited."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def ctrl_c_reaches_children() -> Iterator[None]:
    """Children started inside the block take SIGINT as when started from an interactive
    shell (Python's KeyboardInterrupt).

    A process started with SIGINT ignored keeps it ignored (Python, like sh or a JVM,
    installs no handler then), and a test run under ``nohup`` or as a background job of
    a non-interactive shell has it ignored: a test sending SIGINT to its child would
    wait for an exit that never comes. A handled signal is reset to its default at
    exec, so SIGINT is handled here while the children start.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
