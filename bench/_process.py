"""A kbroker process for the benchmarks that measure one from the outside (start-up,
descriptors, memory): ``python -m kbroker`` from this checkout, its output kept."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class KbrokerProcess:
    """``python -m kbroker ARGS`` with stdin closed and stdout+stderr read into ``lines``
    by a daemon thread (so a chatty broker never blocks on a full pipe)."""

    def __init__(self, args: list[str], *, preexec_fn: Callable[[], None] | None = None) -> None:
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kbroker", *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            self.on_line(line)

    def on_line(self, line: str) -> None:
        """Called for each output line (on the reader thread)."""
