"""Flush policy and the recovery point."""

from __future__ import annotations

from log.checkpoint import RECOVERY_POINT_FILE, read_offset
from tests.log.conftest import batch


def test_default_policy_leaves_flushing_to_the_os(open_log, log_dir):
    log = open_log()
    for _ in range(5):
        log.append(batch(2))
    assert log.recovery_point == 0


def test_flush_interval_messages_advances_recovery_point(open_log, log_dir):
    log = open_log(flush_interval_messages=4)
    log.append(batch(3))
    assert log.recovery_point == 0
    log.append(batch(2))
    assert log.recovery_point == 5
    assert read_offset(log_dir / RECOVERY_POINT_FILE, -1) == 5


def test_flush_interval_ms_uses_the_clock(open_log, clock):
    log = open_log(flush_interval_ms=1000)
    log.append(batch(1))
    assert log.recovery_point == 0
    clock.advance_ms(1000)
    log.append(batch(1))
    assert log.recovery_point == 2


def test_fsync_every_append(open_log, monkeypatch):
    import os

    synced = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    log = open_log(fsync_every_append=True)
    log.append(batch(1))
    log.append(batch(1))
    assert synced == [log._active.fd] * 2


def test_close_checkpoints_and_is_idempotent(open_log, log_dir):
    log = open_log()
    log.append(batch(3))
    log.close()
    log.close()
    assert read_offset(log_dir / RECOVERY_POINT_FILE, -1) == 3
