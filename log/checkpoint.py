"""Small crash-safe files: checkpoints and markers (temp name + fsync + os.replace + dir fsync)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kbroker.log.errors import LogError

# Kafka keeps recovery-point-offset-checkpoint and log-start-offset-checkpoint
# once per log dir (one line per partition). We keep one file per partition
# directory instead: the partition is the unit the log package owns, and a
# per-partition file needs no cross-partition coordination. Same text format:
# version line, entry count, then the offset. The broker also writes Kafka's
# per-log-dir files (write_offsets, kbroker.replication.checkpoints) for tools and
# replication; recovery itself reads the per-partition one.
RECOVERY_POINT_FILE = "recovery-point-offset-checkpoint"
LOG_START_FILE = "log-start-offset-checkpoint"
# Kafka's .kafka_cleanshutdown is per log dir; per partition for the same reason.
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"


def fsync_dir(directory: Path) -> None:
    """fsync a directory so renames/unlinks in it are durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_empty(path: Path) -> None:
    """Create `path` as an empty file (a marker); durable once its directory is fsynced."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))


def write_synced(path: Path, data: bytes) -> None:
    """Create or overwrite `path` with `data` and fsync it (the first half of a replace)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_unsynced(path: Path, data: bytes) -> None:
    """Replace `path` through a temporary file and a rename, without fsync: readers see
    the old or the new content, whole, but a crash may leave either (for files that are
    rebuilt or rewritten when missing or stale)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a crash leaves either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    write_synced(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_offset(path: Path, offset: int) -> None:
    """Write an offset checkpoint file."""
    atomic_write(path, f"0\n1\n{offset}\n".encode())


def read_offset(path: Path, default: int) -> int:
    """Read an offset checkpoint; a missing or damaged file gives `default`."""
    try:
        lines = path.read_text().split()
        if len(lines) == 3 and lines[0] == "0" and lines[1] == "1":
            value = int(lines[2])
            if value >= 0:
                return value
    except (OSError, ValueError):
        pass
    return default


def write_offsets(path: Path, entries: Mapping[tuple[str, int], int]) -> None:
    """Write a per-log-dir offset checkpoint in Kafka's OffsetCheckpointFile format.

    Version line ``0``, the entry count, then one ``topic partition offset`` line per
    partition (replication-offset-checkpoint, recovery-point-offset-checkpoint).
    """
    lines = [f"0\n{len(entries)}\n"]
    lines += [f"{topic} {partition} {offset}\n" for (topic, partition), offset in entries.items()]
    atomic_write(path, "".join(lines).encode())


def read_offsets(path: Path) -> dict[tuple[str, int], int]:
    """Read an offset checkpoint written by write_offsets; a missing file is empty.

    A malformed file raises LogError, as Kafka's CheckpointReadBuffer fails the log dir.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    lines = text.splitlines()
    try:
        if len(lines) < 2 or int(lines[0]) != 0 or int(lines[1]) != len(lines) - 2:
            raise ValueError("bad version or count")
        out: dict[tuple[str, int], int] = {}
        for line in lines[2:]:
            topic, partition, offset = line.split()
            out[(topic, int(partition))] = int(offset)
        return out
    except ValueError as exc:
        raise LogError(f"malformed offset checkpoint {path}: {exc}") from exc
