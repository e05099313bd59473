"""Our schema declarations match Kafka's JSON message definitions, field by field.

Both references live with the test dependencies and the repository (see kafka_defs.py): the
JSON definitions kafka-python ships, compared version by version, and kafka_facts.json (made
by gen_facts.py from the Kafka release kbroker follows) for every header and for the messages
that kafka-python's copy lacks or lays out differently.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from kbroker.wire import protocol
from kbroker.wire.messages import ALL, API_DECLS, DATA_DECLS, REQUESTS, RESPONSES
from kbroker.wire.schema import FieldDecl, MessageDecl, Versions
from tests.wire.kafka_defs import (
    expected_default,
    kafka_python_schemas,
    layout,
    load_facts,
    vset,
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


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict]:
    """The facts file: every declared message's header, and fields where kafka-python lacks them."""
    return load_facts()


@pytest.fixture(scope="module")
def shipped() -> dict[str, dict]:
    """The JSON definitions inside the installed kafka-python package."""
    return kafka_python_schemas()


def _ours(v: Versions | None) -> set[int]:
    if v is None:
        return set()
    return set(range(v.lo, min(v.hi, 99) + 1)) if v.hi >= v.lo else set()


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
        assert _ours(o.versions) == vset(t.get("versions", t.get("taggedVersions"))), w
        assert _ours(o.nullable) == vset(t.get("nullableVersions")), w
        assert o.tag == t.get("tag"), w
        assert _ours(o.tagged) == vset(t.get("taggedVersions")), w
        if "flexibleVersions" in t:  # per-field override, e.g. RequestHeader.ClientId "none"
            assert o.flexible is not None and _ours(o.flexible) == vset(t["flexibleVersions"]), w
        else:
            assert o.flexible is None, w
        assert o.ignorable == bool(t.get("ignorable", False)), w
        assert o.attr == _snake(t["name"]), w
        value = getattr(instance, o.attr)
        expected = expected_default(t)
        if expected == "STRUCT":
            assert value == structs[t["type"]](), w
        else:
            assert value == expected and type(value) is type(expected), w
        if "fields" in t:
            sub = structs[o.elem]
            _compare_fields(w, o.fields or [], t["fields"], sub, structs)


def _check_header(name: str, facts: dict) -> None:
    d = ALL[name].SCHEMA
    assert d.kind == facts["type"], name
    assert d.api_key == facts.get("apiKey"), name
    assert _ours(d.versions) == vset(facts["validVersions"]), name
    assert _ours(d.flexible) == vset(facts["flexibleVersions"]), name
    assert d.latest_unstable == bool(facts.get("latestVersionUnstable", False)), name


def _check_message(name: str, t: dict) -> None:
    """Field by field against a full definition of the same Kafka release."""
    cls = ALL[name]
    d = cls.SCHEMA
    _compare_fields(name, d.fields, t["fields"], cls, cls.STRUCTS)
    common = {s["name"]: s for s in t.get("commonStructs", [])}
    for sname, s in common.items():
        ours = d.structs[sname]
        assert _ours(ours.versions) == vset(s["versions"]), f"{name}.{sname}"
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


def _as_json(decl: MessageDecl, cls: type) -> dict:
    """Our declaration in Kafka's JSON shape, each field carrying its class's real default."""
    structs: dict[str, type] = cls.STRUCTS  # type: ignore[attr-defined]

    def fields(decls: list[FieldDecl], owner: type) -> list[dict]:
        instance = owner()
        out = []
        for o in decls:
            assert o.attr == _snake(o.name), o.name
            value = getattr(instance, o.attr)
            if o.type in structs and value == structs[o.type]():
                value = "STRUCT"
            f: dict[str, Any] = {"name": o.name, "type": o.type, "versions": str(o.versions)}
            f["_value"] = value
            if not o.nullable.empty:
                f["nullableVersions"] = str(o.nullable)
            if o.tag is not None:
                f["tag"] = o.tag
                f["taggedVersions"] = str(o.tagged)
            if o.flexible is not None:
                f["flexibleVersions"] = str(o.flexible)
            if o.ignorable:
                f["ignorable"] = True
            if o.fields is not None:
                f["fields"] = fields(o.fields, structs[o.elem])
            out.append(f)
        return out

    return {
        "validVersions": str(decl.versions),
        "flexibleVersions": str(decl.flexible),
        "fields": fields(decl.fields, cls),
        # Inline and common structs alike: layout() only looks one up for a field without
        # its own "fields", so listing the inline ones too changes nothing.
        "commonStructs": [
            {"name": n, "fields": fields(s.fields, structs[n])} for n, s in decl.structs.items()
        ],
    }


def _default_repr(f: dict) -> str:
    # Ours: the value the generated class really has; Kafka's: what its "default" gives.
    return repr(f["_value"]) if "_value" in f else repr(expected_default(f))


def _check_against_shipped(name: str, theirs: dict) -> None:
    """Version by version against kafka-python's copy (of another Kafka release)."""
    cls = ALL[name]
    ours = _as_json(cls.SCHEMA, cls)
    shipped_versions = vset(theirs["validVersions"])
    for v in sorted(_ours(cls.SCHEMA.versions)):
        assert v in shipped_versions, f"{name} v{v}: not in kafka-python's copy"
        assert layout(ours, v, _default_repr) == layout(theirs, v, _default_repr), f"{name} v{v}"


def test_every_declaration_matches_kafka(
    schemas: dict[str, dict], shipped: dict[str, dict]
) -> None:
    names = [d.name for d in API_DECLS + DATA_DECLS]
    assert len(names) == len(set(names))
    checked_against_shipped = []
    for name in names:
        assert name in schemas, (
            f"{name} is declared but not in tests/wire/kafka_facts.json: regenerate it with "
            "`python tests/wire/gen_facts.py KAFKA_JSON_DIR` (Kafka's JSON message schemas)"
        )
        facts = schemas[name]
        _check_header(name, facts)
        if "fields" in facts:
            _check_message(name, facts)
        else:
            _check_against_shipped(name, shipped[name])
            checked_against_shipped.append(name)
    # The facts file keeps fields only for what kafka-python lacks: most APIs come from it.
    assert len(checked_against_shipped) >= 40, checked_against_shipped


def test_kafka_python_ships_the_definitions(shipped: dict[str, dict]) -> None:
    # An independent copy of Kafka's clients/src/main/resources/common/message.
    for name in ("ApiVersionsRequest", "MetadataResponse", "JoinGroupRequest"):
        assert shipped[name]["name"] == name
        assert shipped[name]["type"] in ("request", "response")


def test_every_required_api_is_declared_over_its_valid_versions(schemas: dict[str, dict]) -> None:
    by_key = {(d["apiKey"], d["type"]): d for d in schemas.values() if "apiKey" in d}
    for key in REQUIRED_API_KEYS:
        for kind, table in (("request", REQUESTS), ("response", RESPONSES)):
            j = by_key[(key, kind)]
            cls = table[key]
            assert cls.__name__ == j["name"] and cls.API_KEY == key
            assert _ours(cls.SCHEMA.versions) == vset(j["validVersions"]), j["name"]
        lo, hi = protocol.SUPPORTED[key]
        req = by_key[(key, "request")]
        assert set(range(lo, hi + 1)) == vset(req["validVersions"])
        # STABLE drops a latest version Kafka marks unstable, as a released broker does.
        slo, shi = protocol.STABLE[key]
        assert (slo, shi) == (lo, hi - 1 if req.get("latestVersionUnstable") else hi)


def test_required_data_schemas_are_declared(schemas: dict[str, dict]) -> None:
    for name in REQUIRED_DATA:
        assert name in ALL, name
        assert _ours(ALL[name].SCHEMA.versions) == vset(schemas[name]["validVersions"])


def test_message_classes_are_slotted_keyword_only_dataclasses() -> None:
    for cls in ALL.values():
        for c in [cls, *cls.STRUCTS.values()]:
            assert dataclasses.is_dataclass(c) and hasattr(c, "__slots__"), c
            with pytest.raises(TypeError):
                c(1)
