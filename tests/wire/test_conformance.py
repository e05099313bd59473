"""Our schema declarations match Kafka's JSON message definitions, field by field."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from kbroker.wire import protocol
from kbroker.wire.messages import ALL, API_DECLS, DATA_DECLS, REQUESTS, RESPONSES
from kbroker.wire.schema import FieldDecl, Versions

REPO = Path(__file__).resolve().parents[2]
PROTOCOL_DIR = Path(
    os.environ.get("KBROKER_PROTOCOL_DIR", REPO.parent / "shared" / "kafka-protocol")
)

# The APIs the broker serves; each must be declared over its full validVersions.
REQUIRED_API_KEYS = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    26,
    27,
    28,
    29,
    30,
    31,
    32,
    33,
    35,
    36,
    37,
    42,
    43,
    44,
    47,
    60,
    61,
    65,
    66,
    68,
    69,
    75,
]
REQUIRED_DATA = [
    "RequestHeader",
    "ResponseHeader",
    "ConsumerProtocolSubscription",
    "ConsumerProtocolAssignment",
    "OffsetCommitKey",
    "OffsetCommitValue",
    "GroupMetadataKey",
    "GroupMetadataValue",
    "TransactionLogKey",
    "TransactionLogValue",
    "ConsumerGroupMetadataKey",
    "ConsumerGroupMetadataValue",
    "ConsumerGroupMemberMetadataKey",
    "ConsumerGroupMemberMetadataValue",
    "ConsumerGroupPartitionMetadataKey",
    "ConsumerGroupPartitionMetadataValue",
    "ConsumerGroupTargetAssignmentMemberKey",
    "ConsumerGroupTargetAssignmentMemberValue",
    "ConsumerGroupTargetAssignmentMetadataKey",
    "ConsumerGroupTargetAssignmentMetadataValue",
    "ConsumerGroupCurrentMemberAssignmentKey",
    "ConsumerGroupCurrentMemberAssignmentValue",
]


def _load(path: Path) -> dict:
    text = re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)
    return json.loads(text)


def _json_schemas() -> dict[str, dict]:
    assert PROTOCOL_DIR.is_dir(), f"Kafka protocol definitions not found at {PROTOCOL_DIR}"
    out = {}
    for sub in ("messages", "records"):
        files = sorted((PROTOCOL_DIR / sub).glob("*.json"))
        assert files, f"no JSON files in {PROTOCOL_DIR / sub}"
        for p in files:
            d = _load(p)
            out[d["name"]] = d
    return out


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict]:
    return _json_schemas()


def _vset(text: str | None) -> set[int]:
    """Independent reading of Kafka's version notation, as a set of versions 0..99."""
    if text is None or text == "none":
        return set()
    if text.endswith("+"):
        return set(range(int(text[:-1]), 100))
    lo, _, hi = text.partition("-")
    return set(range(int(lo), int(hi or lo) + 1))


def _ours(v: Versions | None) -> set[int]:
    if v is None:
        return set()
    return set(range(v.lo, min(v.hi, 99) + 1)) if v.hi >= v.lo else set()


def _expected_default(f: dict) -> Any:
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


def _snake(name: str) -> str:
    return re.sub(
        r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z][a-z])",
        lambda m: "_" + (m.group(1) or m.group(2)),
        name,
    ).lower()


def _compare_fields(
    where: str, ours: list[FieldDecl], theirs: list[dict], cls: type, structs: dict[str, type]
) -> None:
    assert [f.name for f in ours] == [f["name"] for f in theirs], where
    instance = cls()
    for o, t in zip(ours, theirs, strict=True):
        w = f"{where}.{t['name']}"
        assert o.type == t["type"], w
        assert _ours(o.versions) == _vset(t.get("versions", t.get("taggedVersions"))), w
        assert _ours(o.nullable) == _vset(t.get("nullableVersions")), w
        assert o.tag == t.get("tag"), w
        assert _ours(o.tagged) == _vset(t.get("taggedVersions")), w
        if "flexibleVersions" in t:  # per-field override, e.g. RequestHeader.ClientId "none"
            assert o.flexible is not None and _ours(o.flexible) == _vset(t["flexibleVersions"]), w
        else:
            assert o.flexible is None, w
        assert o.ignorable == bool(t.get("ignorable", False)), w
        assert o.attr == _snake(t["name"]), w
        value = getattr(instance, o.attr)
        expected = _expected_default(t)
        if expected == "STRUCT":
            assert value == structs[t["type"]](), w
        else:
            assert value == expected and type(value) is type(expected), w
        if "fields" in t:
            sub = structs[o.elem]
            _compare_fields(w, o.fields or [], t["fields"], sub, structs)


def _check_message(name: str, schemas: dict[str, dict]) -> None:
    t = schemas[name]
    cls = ALL[name]
    d = cls.SCHEMA
    assert d.kind == t["type"], name
    assert d.api_key == t.get("apiKey"), name
    assert _ours(d.versions) == _vset(t["validVersions"]), name
    assert _ours(d.flexible) == _vset(t["flexibleVersions"]), name
    assert d.latest_unstable == bool(t.get("latestVersionUnstable", False)), name
    _compare_fields(name, d.fields, t["fields"], cls, cls.STRUCTS)
    common = {s["name"]: s for s in t.get("commonStructs", [])}
    for sname, s in common.items():
        ours = d.structs[sname]
        assert _ours(ours.versions) == _vset(s["versions"]), f"{name}.{sname}"
        _compare_fields(
            f"{name}.{sname}", ours.fields, s["fields"], cls.STRUCTS[sname], cls.STRUCTS
        )
    # Every struct class we build corresponds to a struct Kafka defines.
    inline: set[str] = set()

    def walk(fields: list[dict]) -> None:
        for f in fields:
            if "fields" in f:
                inline.add(f["type"].removeprefix("[]"))
                walk(f["fields"])

    walk(t["fields"])
    for s in common.values():
        walk(s["fields"])
    assert set(cls.STRUCTS) == inline | set(common), name


def test_every_declaration_matches_kafka(schemas: dict[str, dict]) -> None:
    names = [d.name for d in API_DECLS + DATA_DECLS]
    assert len(names) == len(set(names))
    for name in names:
        _check_message(name, schemas)


def test_every_required_api_is_declared_over_its_valid_versions(schemas: dict[str, dict]) -> None:
    by_key = {(d["apiKey"], d["type"]): d for d in schemas.values() if "apiKey" in d}
    for key in REQUIRED_API_KEYS:
        for kind, table in (("request", REQUESTS), ("response", RESPONSES)):
            j = by_key[(key, kind)]
            cls = table[key]
            assert cls.__name__ == j["name"] and cls.API_KEY == key
            assert _ours(cls.SCHEMA.versions) == _vset(j["validVersions"]), j["name"]
        lo, hi = protocol.SUPPORTED[key]
        req = by_key[(key, "request")]
        assert set(range(lo, hi + 1)) == _vset(req["validVersions"])
        # STABLE drops a latest version Kafka marks unstable, as a released broker does.
        slo, shi = protocol.STABLE[key]
        assert (slo, shi) == (lo, hi - 1 if req.get("latestVersionUnstable") else hi)


def test_required_data_schemas_are_declared(schemas: dict[str, dict]) -> None:
    for name in REQUIRED_DATA:
        assert name in ALL, name
        assert _ours(ALL[name].SCHEMA.versions) == _vset(schemas[name]["validVersions"])


def test_message_classes_are_slotted_keyword_only_dataclasses() -> None:
    for cls in ALL.values():
        for c in [cls, *cls.STRUCTS.values()]:
            assert dataclasses.is_dataclass(c) and hasattr(c, "__slots__"), c
            with pytest.raises(TypeError):
                c(1)
