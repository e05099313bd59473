"""One-off generator: Kafka's JSON message definitions -> kbroker's compact DSL.

Not part of the build: the declarations it printed were committed to wire/_defs_*.py
and are the source of truth from then on (test_conformance.py guards them). It keeps
only wire-relevant keys; "about" prose, entityType, mapKey and zeroCopy are dropped.
Usage: python tests/wire/gen_declarations.py KAFKA_JSON_DIR NAME... > out.txt
(KAFKA_JSON_DIR: any directory holding Kafka's JSON message schemas, searched recursively).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def load(path: Path) -> dict:
    """Parse a Kafka JSON schema file, dropping // comments."""
    text = re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)
    return json.loads(text)


def find(root: Path, name: str) -> Path:
    """The schema file of message ``name`` under ``root`` (Kafka names files by message)."""
    for path in sorted(root.rglob(f"{name}.json")):
        return path
    raise SystemExit(f"no {name}.json under {root}")


def default_token(value: object) -> str:
    """Render a JSON default as one DSL token."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text == "":
        return '""'
    if text in ("True", "False"):
        return text.lower()
    assert " " not in text, text
    return text


def field_lines(fields: list[dict], indent: int, out: list[str]) -> None:
    """Emit one DSL line per field, nested struct fields indented below."""
    for f in fields:
        versions = f.get("versions", f.get("taggedVersions"))
        parts = [f["name"], f["type"]]
        if versions != "0+":
            parts.append("v" + versions)
        if "nullableVersions" in f:
            parts.append("nullable=" + f["nullableVersions"])
        if "tag" in f:
            parts.append(f"tag={f['tag']}")
            parts.append("tagged=" + f["taggedVersions"])
        if "flexibleVersions" in f:
            parts.append("flexible=" + f["flexibleVersions"])
        if "default" in f:
            parts.append("default=" + default_token(f["default"]))
        if f.get("ignorable"):
            parts.append("ignorable")
        out.append(" " * indent + " ".join(parts))
        if "fields" in f:
            field_lines(f["fields"], indent + 2, out)


def declare(root: Path, name: str) -> str:
    """Return the DSL block for one JSON schema by name."""
    d = load(find(root, name))
    head = [d["name"], d["type"]]
    if "apiKey" in d:
        head.append(f"key={d['apiKey']}")
    head.append("versions=" + d["validVersions"])
    head.append("flexible=" + d["flexibleVersions"])
    if d.get("latestVersionUnstable"):
        head.append("unstable")
    out = [" ".join(head)]
    field_lines(d["fields"], 2, out)
    for s in d.get("commonStructs", []):
        out.append(f"  struct {s['name']} v{s['versions']}")
        field_lines(s["fields"], 4, out)
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    root = Path(sys.argv[1])
    print("\n\n".join(declare(root, n) for n in sys.argv[2:]))
