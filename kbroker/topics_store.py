"""The record of which topics exist: a snapshot plus a journal of changes.

Rewriting the whole topic list for each topic created made creating n topics
cost O(n^2) bytes written (10,000 topics: gigabytes) and held the event loop
longer with every topic. Instead:

- ``kbroker-topics.json`` is a snapshot ``{"version": 1, "generation": g,
  "topics": {name: entry}}``, replaced atomically (temporary file, fsync,
  ``os.replace``, fsync of the directory);
- ``kbroker-topics.<g>.journal`` holds the changes made since snapshot ``g``, one
  JSON line each (``{"set": {name: entry}, "del": [name]}``), appended and
  fdatasync'ed before the change is visible: a change costs its own bytes;
- once the journal holds as many records as there are topics (and at least
  ``JOURNAL_MIN``), the next snapshot ``g + 1`` is written and journal ``g``
  removed: rewriting stays O(1) per change, amortized. A crash between the two
  leaves journal ``g`` beside snapshot ``g + 1``; it is ignored (its changes are
  in the snapshot) and removed.

At start-up the snapshot is read and its journal replayed; a last line cut short
by a crash (a change never acknowledged) is dropped, then a fresh snapshot is
written so appends never follow a torn line. Damage anywhere else is refused.
A snapshot without ``generation`` (written before the journal) is generation 0.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from kbroker.config import ConfigError
from kbroker.log.checkpoint import atomic_write, fsync_dir

__all__ = ["JOURNAL_MIN", "SNAPSHOT_FILE", "TopicStore", "read_entries"]

SNAPSHOT_FILE = "kbroker-topics.json"
JOURNAL_MIN = 64
_JOURNAL = re.compile(r"kbroker-topics\.(\d+)\.journal")

Entries = dict[str, dict[str, Any]]


def _copy(entries: Entries) -> Entries:
    # Deep: an entry's configs dict is the live topic's, changed in place later.
    result: Entries = json.loads(json.dumps(entries))
    return result


def _journals(data_dir: Path) -> list[Path]:
    return [data_dir / name for name in os.listdir(data_dir) if _JOURNAL.fullmatch(name)]


def read_entries(data_dir: Path) -> tuple[Entries, int, int]:
    """(entries, snapshot generation, journal records replayed), changing nothing on disk."""
    data_dir = Path(data_dir)
    entries: Entries = {}
    generation = 0
    path = data_dir / SNAPSHOT_FILE
    if path.exists():
        try:
            doc = json.loads(path.read_text())
            entries = dict(doc["topics"])
            generation = int(doc.get("generation", 0))
        except (ValueError, KeyError, TypeError) as exc:
            # Written atomically, so this is outside damage: refuse rather than guess.
            raise ConfigError(
                f"{path} is damaged ({exc}); restore it or remove the data dir"
            ) from None
    journal = data_dir / f"kbroker-topics.{generation}.journal"
    try:
        lines = journal.read_bytes().split(b"\n")
    except FileNotFoundError:
        return entries, generation, 0
    replayed = 0
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            record = json.loads(line)
            changed, removed = dict(record["set"]), list(record["del"])
        except (ValueError, KeyError, TypeError) as exc:
            if all(not rest for rest in lines[number:]):
                break  # the last line, cut short by a crash: never acknowledged
            raise ConfigError(
                f"{journal} is damaged at line {number} ({exc}); restore it or remove the data dir"
            ) from None
        for name in removed:
            entries.pop(name, None)
        entries.update(changed)
        replayed += 1
    return entries, generation, replayed or 1  # an existing journal is folded in


class TopicStore:
    """Persist ``name -> entry`` (JSON-able dicts); ``save`` writes only what changed."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._saved: Entries = {}
        self._generation = 0
        self._records = 0
        self._torn = False

    @property
    def snapshot_path(self) -> Path:
        return self.data_dir / SNAPSHOT_FILE

    def _journal_path(self, generation: int) -> Path:
        return self.data_dir / f"kbroker-topics.{generation}.journal"

    # --- reading ----------------------------------------------------------------------------

    def load(self) -> Entries:
        """Every topic's entry (snapshot and journal); folds the journal into a new snapshot."""
        entries, self._generation, replayed = read_entries(self.data_dir)
        self._saved = _copy(entries)
        stale = [p for p in _journals(self.data_dir) if p != self._journal_path(self._generation)]
        if replayed or stale:
            self._compact(entries)
        return entries

    # --- writing ----------------------------------------------------------------------------

    def save(self, entries: Entries) -> None:
        """Persist ``entries`` durably: the changes since the last save, or a new snapshot."""
        changed = {n: e for n, e in entries.items() if self._saved.get(n) != e}
        removed = [n for n in self._saved if n not in entries]
        if not changed and not removed:
            return
        if self._torn or self._records + 1 >= max(JOURNAL_MIN, len(entries)):
            self._compact(entries)
            return
        line = json.dumps({"set": changed, "del": removed}, sort_keys=True).encode() + b"\n"
        path = self._journal_path(self._generation)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            created = size == 0
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fdatasync(fd)
            except BaseException:
                # A full disk can leave part of the line: cut it off, or a later
                # line would follow it and the journal would read as damaged.
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    self._torn = True  # the next save writes a snapshot instead
                raise
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.data_dir)  # the journal's directory entry
        self._records += 1
        self._remember(changed, removed)

    def _compact(self, entries: Entries) -> None:
        """Snapshot ``generation + 1``, then drop the journals it makes redundant."""
        generation = self._generation + 1
        doc = {"version": 1, "generation": generation, "topics": entries}
        atomic_write(self.snapshot_path, json.dumps(doc, indent=1, sort_keys=True).encode())
        self._generation, self._records, self._torn = generation, 0, False
        self._saved = _copy(entries)
        removed_any = False
        for journal in _journals(self.data_dir):
            journal.unlink(missing_ok=True)
            removed_any = True
        if removed_any:
            fsync_dir(self.data_dir)

    def _remember(self, changed: Entries, removed: list[str]) -> None:
        for name in removed:
            self._saved.pop(name, None)
        self._saved.update(_copy(changed))
