"""Shared helpers for the log tests: batch builders and an injectable clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbroker.log import LogConfig, PartitionLog
from kbroker.wire.records import Record, build_batch


class FakeClock:
    """A settable clock (seconds), injected into PartitionLog instead of time.time."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms / 1000

    def advance_ms(self, ms: int) -> None:
        """Move time forward."""
        self.now_ms += ms


def batch(
    n: int = 1,
    *,
    ts: int = 1_000,
    key: bytes | None = b"k",
    value_size: int = 10,
    keys: list[bytes | None] | None = None,
    values: list[bytes | None] | None = None,
    timestamps: list[int] | None = None,
    **kwargs: object,
) -> bytes:
    """A v2 batch of `n` records (per-record keys/values/timestamps optional)."""
    recs = []
    for i in range(n):
        recs.append(
            Record(
                key=keys[i] if keys is not None else key,
                value=values[i] if values is not None else bytes([65 + i % 26]) * value_size,
                timestamp=timestamps[i] if timestamps is not None else ts + i,
            )
        )
    return build_batch(recs, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fast_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make fsync only check its fd: crash tests cut files by hand, they never lose the page cache.

    Real fsyncs make a test that reopens a log hundreds of times take
    many seconds on slow disks, and prove nothing extra there.
    """

    def fake(fd: int) -> None:
        os.fstat(fd)  # still fails on a closed or bogus descriptor

    monkeypatch.setattr(os, "fsync", fake)
    monkeypatch.setattr(os, "fdatasync", fake)


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of every file fsynced during the test, in order (the real fsync still
    happens); clear it to watch one step."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


@pytest.fixture
def clock() -> FakeClock:
    """An injected clock."""
    return FakeClock()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A partition directory named as Kafka names them."""
    return tmp_path / "topic-0"


@pytest.fixture
def open_log(log_dir: Path, clock: FakeClock) -> Iterator:
    """open_log(**config) -> PartitionLog in log_dir with the fake clock; closed at teardown."""
    opened: list[PartitionLog] = []

    def _open(**config: object) -> PartitionLog:
        log = PartitionLog.open(log_dir, LogConfig(**config), clock=clock)  # type: ignore[arg-type]
        opened.append(log)
        return log

    yield _open
    for log in opened:
        log.abandon()
