"""The topics record: a change costs its own bytes, a crash loses nothing acknowledged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbroker.config import ConfigError
from kbroker.topics import TopicManager
from kbroker.topics_store import JOURNAL_MIN, SNAPSHOT_FILE, TopicStore, read_entries
from tests.kbroker.helpers import broker_config


def _journals(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.glob("kbroker-topics.*.journal"))


def _entry(n: int) -> dict:
    return {"topic_id": f"id-{n}", "partitions": 1, "configs": {}, "internal": False}


def test_creating_topics_appends_to_the_journal_not_the_snapshot(tmp_path: Path) -> None:
    manager = TopicManager(tmp_path, broker_config(tmp_path))
    manager.create("first", 1)
    snapshot = (
        (tmp_path / SNAPSHOT_FILE).read_bytes() if (tmp_path / SNAPSHOT_FILE).exists() else b""
    )
    for i in range(10):
        manager.create(f"t{i}", 1)
    # Ten topics later the snapshot is untouched; the journal grew by one line each.
    current = (
        (tmp_path / SNAPSHOT_FILE).read_bytes() if (tmp_path / SNAPSHOT_FILE).exists() else b""
    )
    assert current == snapshot
    [journal] = _journals(tmp_path)
    assert len((tmp_path / journal).read_bytes().splitlines()) == 11
    manager.set_configs("t3", {"retention.ms": "1000"})
    manager.delete("t4")
    reopened = TopicManager(tmp_path, manager.config)
    manager.close()
    try:
        assert sorted(reopened.topics) == sorted({"first", *(f"t{i}" for i in range(10))} - {"t4"})
        assert reopened.topics["t3"].configs == {"retention.ms": "1000"}
    finally:
        reopened.close()


def test_many_changes_rewrite_the_snapshot_rarely(tmp_path: Path) -> None:
    store = TopicStore(tmp_path)
    assert store.load() == {}
    entries: dict = {}
    snapshots = 0
    for n in range(10 * JOURNAL_MIN):
        entries[f"t{n}"] = _entry(n)
        before = store._generation
        store.save(entries)
        snapshots += store._generation != before
    # Compacted when the journal holds as many records as there are topics: the
    # snapshot is rewritten a logarithmic number of times, not once per topic.
    assert 1 <= snapshots <= 6
    assert read_entries(tmp_path)[0] == entries


def _two_saves(tmp_path: Path) -> str:
    """A store that saved topic a, then a and b: the name of the journal holding both."""
    store = TopicStore(tmp_path)
    store.load()
    store.save({"a": _entry(1)})
    store.save({"a": _entry(1), "b": _entry(2)})
    [journal] = _journals(tmp_path)
    return journal


def test_a_torn_last_journal_line_is_dropped_and_folded_away(tmp_path: Path) -> None:
    journal = _two_saves(tmp_path)
    with open(tmp_path / journal, "ab") as f:
        f.write(b'{"set": {"c": {"topic_')  # a crash in the middle of an append
    again = TopicStore(tmp_path)
    assert again.load() == {"a": _entry(1), "b": _entry(2)}
    assert _journals(tmp_path) == []  # folded into a fresh snapshot: no append follows a torn line
    assert json.loads((tmp_path / SNAPSHOT_FILE).read_text())["topics"] == again._saved


def test_damage_inside_the_journal_is_refused(tmp_path: Path) -> None:
    journal = _two_saves(tmp_path)
    lines = (tmp_path / journal).read_bytes().splitlines()
    (tmp_path / journal).write_bytes(b"garbage\n" + lines[1] + b"\n")
    with pytest.raises(ConfigError, match="damaged at line 1"):
        TopicStore(tmp_path).load()


def test_a_journal_older_than_the_snapshot_is_ignored(tmp_path: Path) -> None:
    # A crash after the new snapshot and before the old journal's removal.
    store = TopicStore(tmp_path)
    store.load()
    store.save({"a": _entry(1)})
    [journal] = _journals(tmp_path)
    old = (tmp_path / journal).read_bytes()
    store._compact({"b": _entry(2)})
    (tmp_path / journal).write_bytes(old)
    assert TopicStore(tmp_path).load() == {"b": _entry(2)}
    assert _journals(tmp_path) == []


def test_a_snapshot_from_before_the_journal_still_loads(tmp_path: Path) -> None:
    doc = {"version": 1, "topics": {"legacy": _entry(7)}}
    (tmp_path / SNAPSHOT_FILE).write_text(json.dumps(doc))
    store = TopicStore(tmp_path)
    assert store.load() == {"legacy": _entry(7)}
    store.save({"legacy": _entry(7), "new": _entry(8)})
    assert TopicStore(tmp_path).load() == {"legacy": _entry(7), "new": _entry(8)}


def test_a_failed_append_leaves_no_partial_line(tmp_path: Path, monkeypatch) -> None:
    import errno
    import os

    store = TopicStore(tmp_path)
    store.load()
    store.save({"a": _entry(1)})
    real_write = os.write

    def half_then_full(fd: int, data) -> int:
        real_write(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError):
        store.save({"a": _entry(1), "b": _entry(2)})
    monkeypatch.setattr(os, "write", real_write)
    store.save({"a": _entry(1), "c": _entry(3)})  # space is back
    assert TopicStore(tmp_path).load() == {"a": _entry(1), "c": _entry(3)}
