"""Run kbroker as a real subprocess (the way a user runs it) for the compat suite and bench."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"bootstrap_servers=(\S+):(\d+)")
# Starting the interpreter and importing trio takes well under a second; 20 s leaves room for
# a loaded 2-core CI machine without letting a hung broker stall the whole suite.
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
# Modules with group scenarios run their broker with a short initial rebalance delay, set
# explicitly (kbroker's dev default is 0, Kafka's code default 3 s): the delay is exercised
# while each test's fresh group still forms in well under 3 s.
GROUP_BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": "200"}


class BrokerStartError(RuntimeError):
    """The broker died or never printed its ready line."""


class LiveBroker:
    """One `python -m kbroker` process on 127.0.0.1:0 with a data dir that outlives restarts."""

    def __init__(self, data_dir: Path, *, overrides: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.overrides = dict(overrides or {})
        self.bootstrap_servers = ""
        self.host = ""
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._lines: deque[str] = deque(maxlen=5000)
        self._lock = threading.Lock()
        self.starts = 0
        # KBROKER_COMPAT_LOG_DIR=dir keeps every broker's full output (one file per data dir),
        # e.g. to look for errors the broker logged during tests that passed.
        log_dir = os.environ.get("KBROKER_COMPAT_LOG_DIR")
        self._log_file = None
        if log_dir:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            name = "_".join(self.data_dir.parts[-2:]) + ".log"
            self._log_file = open(Path(log_dir) / name, "a", encoding="utf-8")  # noqa: SIM115

    # -- lifecycle -------------------------------------------------------------------------
    def command(self) -> list[str]:
        """The exact command line used to start the broker."""
        cmd = [
            sys.executable,
            "-m",
            "kbroker",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(self.data_dir),
        ]
        for key, value in self.overrides.items():
            cmd += ["--override", f"{key}={value}"]
        return cmd

    def start(self) -> None:
        """Start the broker and block until it prints its ready line (or fail with its output)."""
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self._append(f"----- kbroker start #{self.starts}: {' '.join(self.command())}")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # stderr merged into stdout and drained by a thread: a full pipe must never block
        # the broker, and the ready line may be logged on either stream.
        self.proc = subprocess.Popen(
            self.command(),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        ready = threading.Event()
        found: list[tuple[str, int]] = []
        threading.Thread(target=self._drain, args=(self.proc, ready, found), daemon=True).start()
        if not ready.wait(START_TIMEOUT_S):
            self.kill()
            raise BrokerStartError(
                f"kbroker printed no 'bootstrap_servers=HOST:PORT' line within {START_TIMEOUT_S:.0f} s"
                f"\n{self.log_tail()}"
            )
        if not found:
            code = self.proc.wait()
            raise BrokerStartError(
                f"kbroker exited with code {code} before it was ready\n{self.log_tail()}"
            )
        self.host, self.port = found[0]
        self.bootstrap_servers = f"{self.host}:{self.port}"

    def _drain(
        self, proc: subprocess.Popen[bytes], ready: threading.Event, found: list[tuple[str, int]]
    ) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._append(line)
            if not found:
                match = READY.search(line)
                if match:
                    found.append((match.group(1), int(match.group(2))))
                    ready.set()
        ready.set()  # EOF: the process is gone; start() reports how

    def _append(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            if self._log_file is not None:
                self._log_file.write(line + "\n")
                self._log_file.flush()

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code (SIGKILL after a timeout)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._append(f"----- kbroker ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; SIGKILL")
            proc.kill()
            proc.wait()
            raise BrokerStartError(
                f"kbroker did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM\n{self.log_tail()}"
            ) from None

    def restart(self) -> None:
        """Clean stop (SIGTERM) then start on the same data dir; the port may change."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL: an unclean stop, as after a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        return self.proc is not None and self.proc.poll() is None

    # -- output ----------------------------------------------------------------------------
    @property
    def log(self) -> str:
        """Everything the broker printed (stdout + stderr), across restarts."""
        with self._lock:
            return "\n".join(self._lines)

    def log_tail(self, lines: int = 60) -> str:
        """The last lines the broker printed, for assertion messages."""
        with self._lock:
            tail = list(self._lines)[-lines:]
        body = "\n".join(tail)
        return f"kbroker output (last {len(tail)} lines):\n{body}"

    def __repr__(self) -> str:
        return f"LiveBroker({self.bootstrap_servers or 'not started'}, data_dir={self.data_dir})"


@contextmanager
def shared_broker(
    data_dir: Path, *, overrides: dict[str, str] | None = None
) -> Iterator[LiveBroker]:
    """A started broker for a whole test module, killed at the end.

    A broker that died mid-module is a failure even if each test's own checks passed.
    """
    with private_broker(data_dir, overrides=overrides) as live:
        yield live
        assert live.is_running(), f"kbroker died during the module\n{live.log_tail()}"


@contextmanager
def private_broker(
    data_dir: Path, *, overrides: dict[str, str] | None = None, kind: type[LiveBroker] = LiveBroker
) -> Iterator[LiveBroker]:
    """A started broker of one test's own (free to be restarted or killed), killed at the end."""
    live = kind(data_dir, overrides=overrides)
    live.start()
    try:
        yield live
    finally:
        live.kill()
