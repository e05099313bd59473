"""Kafka's JSON message definitions, as the conformance test and the facts generator read them.

Two sources, neither outside the repository:

- the JSON definitions kafka-python ships inside its package
  (``kafka/protocol/schemas/resources/*.json``, copied from Apache Kafka): an independent
  copy, but of a different Kafka release than the one kbroker follows, and without the
  coordinator record schemas (``__consumer_offsets``, ``__transaction_state``);
- ``kafka_facts.json`` beside this module, generated from the Kafka release kbroker follows by
  ``gen_facts.py``: every declared message's header (api key, valid and flexible versions,
  latest-version-unstable), and its fields (names, types, versions, defaults; no prose) only
  where kafka-python's copy lacks the message or differs at some version kbroker declares.

A released version of a Kafka message never changes on the wire (new fields come with new
versions), so two releases' definitions agree on every version both define; ``layout`` is that
per-version view, the one the comparisons use.
"""

from __future__ import annotations

import importlib.util
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

FACTS_PATH = Path(__file__).with_name("kafka_facts.json")
# The keys a facts entry keeps: what the wire and the generated classes depend on.
HEADER_KEYS = ("name", "type", "apiKey", "validVersions", "flexibleVersions")
FIELD_KEYS = (
    "name",
    "type",
    "versions",
    "nullableVersions",
    "tag",
    "taggedVersions",
    "flexibleVersions",
    "default",
    "ignorable",
)


def load_json(path: Path) -> dict:
    """Parse a Kafka JSON schema file, dropping its // comment lines."""
    text = re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)
    return json.loads(text)


def kafka_python_dir() -> Path:
    """The directory of the JSON definitions inside the installed kafka-python package."""
    # find_spec, not import: importing kafka would parse all its definitions on the way.
    spec = importlib.util.find_spec("kafka")
    assert spec is not None and spec.origin is not None, "kafka-python is not installed"
    path = Path(spec.origin).parent / "protocol" / "schemas" / "resources"
    assert path.is_dir(), f"this kafka-python ships no JSON definitions in {path}"
    return path


def kafka_python_schemas() -> dict[str, dict]:
    """kafka-python's copy of Kafka's message definitions, by message name."""
    return {p.stem: load_json(p) for p in sorted(kafka_python_dir().glob("*.json"))}


def load_facts() -> dict[str, dict]:
    """The repository's facts file, by message name."""
    return json.loads(FACTS_PATH.read_text())["messages"]


def vset(text: str | None) -> set[int]:
    """Independent reading of Kafka's version notation, as a set of versions 0..99."""
    if text is None or text == "none":
        return set()
    if text.endswith("+"):
        return set(range(int(text[:-1]), 100))
    lo, _, hi = text.partition("-")
    return set(range(int(lo), int(hi or lo) + 1))


def expected_default(f: dict) -> Any:
    """The Python value a field's default gives (``"STRUCT"`` for a struct-typed field)."""
    t = f["type"]
    d = f.get("default")
    if d is None and "default" in f or d == "null":
        return None
    if t.startswith("[]"):
        return []
    if t in ("int8", "int16", "int32", "int64", "uint16"):
        return int(str(d), 0) if d is not None else 0
    if t == "float64":
        return float(d) if d is not None else 0.0
    if t == "bool":
        return str(d).lower() == "true"
    if t == "string":
        return d if d is not None else ""
    if t == "bytes":
        return b""
    if t == "uuid":
        return uuid.UUID(int=0)
    if t == "records":
        return None
    return "STRUCT"


def _field_versions(f: dict) -> set[int]:
    return vset(f.get("versions", f.get("taggedVersions")))


def default_repr(f: dict) -> str:
    """How ``layout`` shows a field's default: the Python value its JSON "default" gives."""
    return repr(expected_default(f))


def layout(schema: dict, version: int, default_of: Callable[[dict], str] = default_repr) -> tuple:
    """What one version of a message looks like on the wire, with its fields' defaults.

    Common structs are inlined where a field uses them, so two definitions that organise
    their structs differently but agree on the wire compare equal.
    """
    common = {s["name"]: s["fields"] for s in schema.get("commonStructs", [])}

    def fields_at(fields: list[dict]) -> tuple:
        out = []
        for f in fields:
            if version not in _field_versions(f):
                continue
            elem = f["type"].removeprefix("[]")
            sub = f.get("fields", common.get(elem))
            out.append(
                (
                    f["name"],
                    f["type"],
                    version in vset(f.get("nullableVersions")),
                    f.get("tag") if version in vset(f.get("taggedVersions")) else None,
                    version in vset(f["flexibleVersions"]) if "flexibleVersions" in f else None,
                    bool(f.get("ignorable", False)),
                    default_of(f),
                    fields_at(sub) if sub is not None else None,
                )
            )
        return tuple(out)

    return (version in vset(schema["flexibleVersions"]), fields_at(schema["fields"]))


def differing_versions(ours: dict, theirs: dict) -> list[int]:
    """The versions of ``ours`` that ``theirs`` lacks or lays out differently."""
    have = vset(theirs["validVersions"])
    return [
        v
        for v in sorted(vset(ours["validVersions"]))
        if v not in have or layout(ours, v) != layout(theirs, v)
    ]


def facts_entry(schema: dict, *, with_fields: bool) -> dict:
    """A facts-file entry: the header, and the fields (no prose) when ``with_fields``."""
    entry: dict[str, Any] = {k: schema[k] for k in HEADER_KEYS if k in schema}
    if schema.get("latestVersionUnstable"):
        entry["latestVersionUnstable"] = True
    if with_fields:
        entry["fields"] = _strip_fields(schema["fields"])
        if schema.get("commonStructs"):
            entry["commonStructs"] = [
                {"name": s["name"], "versions": s["versions"], "fields": _strip_fields(s["fields"])}
                for s in schema["commonStructs"]
            ]
    return entry


def _strip_fields(fields: list[dict]) -> list[dict]:
    out = []
    for f in fields:
        g = {k: f[k] for k in FIELD_KEYS if k in f}
        if "fields" in f:
            g["fields"] = _strip_fields(f["fields"])
        out.append(g)
    return out
