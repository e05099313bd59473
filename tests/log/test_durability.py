"""Flush policy and the recovery point."""

from __future__ import annotations

from kbroker.log.checkpoint import RECOVERY_POINT_FILE, read_offset
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


def test_idle_partition_closes_without_redoing_durable_work(open_log, log_dir, monkeypatch):
    # A clean open that writes nothing finds everything fsynced by the close that wrote
    # it: closing again costs one directory fsync (the marker), not seven.
    import os

    from kbroker.log.checkpoint import CLEAN_SHUTDOWN_FILE
    from kbroker.log.producer_state import list_snapshots

    log = open_log()
    log.append(batch(3, producer_id=7, producer_epoch=0, base_sequence=0))
    log.close()
    snapshots = list_snapshots(log_dir)
    log = open_log()
    assert log.open_mode == "clean"
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    log.close()
    assert len(synced) == 1 and (log_dir / CLEAN_SHUTDOWN_FILE).exists()
    assert list_snapshots(log_dir) == snapshots
    # ...and what it vouches for is intact: the data and the producer's sequence.
    log = open_log()
    assert log.open_mode == "clean" and log.log_end_offset == 3
    assert log.producer_state.check_batch(7, 0, 3, 3, is_transactional=False) is None
    # One write after a clean open makes the next close flush everything again.
    synced.clear()
    log.append(batch(1, producer_id=7, producer_epoch=0, base_sequence=3))
    log.close()
    assert len(synced) > 3
    assert list_snapshots(log_dir)[-1] == 4
    log = open_log()
    assert log.open_mode == "clean" and log.log_end_offset == 4
