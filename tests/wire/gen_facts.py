"""Regenerate tests/wire/kafka_facts.json from a directory of Kafka's JSON message definitions.

Usage: python tests/wire/gen_facts.py KAFKA_JSON_DIR [--kafka REVISION]

KAFKA_JSON_DIR is searched recursively for ``*.json`` schemas: a Kafka source tree's
``clients/src/main/resources/common/message`` and the coordinators' ``common/message``
folders, or any folder holding copies of them. For every message kbroker declares, the facts
file keeps the header (api key, valid and flexible versions), and the fields (names, types,
versions, defaults; never the "about" prose, comments or license text) only where the JSON
definitions shipped inside the installed kafka-python package lack the message or differ from
it at some version kbroker declares; test_conformance.py reads the rest from kafka-python.
Run it when kbroker moves to a newer Kafka release or kafka-python's copy changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kbroker.wire.messages import API_DECLS, DATA_DECLS  # noqa: E402
from tests.wire.kafka_defs import (  # noqa: E402
    FACTS_PATH,
    differing_versions,
    facts_entry,
    kafka_python_schemas,
    load_json,
)


def find_schemas(root: Path) -> dict[str, dict]:
    """Every JSON schema under ``root``, by its "name"."""
    found: dict[str, dict] = {}
    for path in sorted(root.rglob("*.json")):
        schema = load_json(path)
        if isinstance(schema, dict) and "name" in schema and "validVersions" in schema:
            found[schema["name"]] = schema
    return found


def build(root: Path, kafka_revision: str) -> dict:
    """The facts file's content for the schemas under ``root``."""
    schemas = find_schemas(root)
    shipped = kafka_python_schemas()
    messages: dict[str, dict] = {}
    for name in sorted(d.name for d in API_DECLS + DATA_DECLS):
        if name not in schemas:
            raise SystemExit(f"{name} is declared but has no JSON definition under {root}")
        schema = schemas[name]
        covered = name in shipped and not differing_versions(schema, shipped[name])
        messages[name] = facts_entry(schema, with_fields=not covered)
    return {"kafka": kafka_revision, "messages": messages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a directory of Kafka's JSON message schemas")
    parser.add_argument(
        "--kafka",
        default="trunk 1eb7644349cb (4.0.0-SNAPSHOT, 2024-10-25)",
        help="the Kafka revision the schemas come from, recorded in the file",
    )
    args = parser.parse_args()
    facts = build(args.root, args.kafka)
    # One message per line: small, and a regeneration diffs message by message.
    lines = [
        f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
        for k, v in facts["messages"].items()
    ]
    text = (
        "{\n"
        f' "kafka": {json.dumps(facts["kafka"])},\n'
        ' "messages": {\n' + ",\n".join(lines) + "\n }\n}\n"
    )
    FACTS_PATH.write_text(text)
    with_fields = sum("fields" in v for v in facts["messages"].values())
    print(
        f"{FACTS_PATH}: {len(lines)} messages, {with_fields} with fields "
        f"(the others are checked against kafka-python's copy)"
    )


if __name__ == "__main__":
    main()
