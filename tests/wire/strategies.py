"""Hypothesis strategies that build valid message values for one (class, version)."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from hypothesis import strategies as st

from kbroker.wire.classes import default_value
from kbroker.wire.schema import FieldDecl

_INT_RANGES = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
# Tags Kafka does not use in any struct we declare, for unknown tagged fields.
UNKNOWN_TAGS = st.integers(min_value=40, max_value=200)


def _scalar(t: str) -> st.SearchStrategy[Any]:
    if t in _INT_RANGES:
        bits = _INT_RANGES[t]
        return st.integers(min_value=-(2 ** (bits - 1)), max_value=2 ** (bits - 1) - 1)
    if t == "uint16":
        return st.integers(min_value=0, max_value=0xFFFF)
    if t == "float64":
        return st.floats(allow_nan=False)
    if t == "bool":
        return st.booleans()
    if t == "string":
        return st.text(max_size=8)
    if t in ("bytes", "records"):
        return st.binary(max_size=12)
    if t == "uuid":
        return st.builds(uuid.UUID, int=st.integers(min_value=0, max_value=2**128 - 1))
    raise KeyError(t)


@cache
def struct_strategy(top: type, name: str, version: int, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of struct `name` of message class `top`, valid at `version`."""
    decl = top.SCHEMA
    cls = top if name == decl.name else top.STRUCTS[name]
    fields = decl.fields if name == decl.name else decl.structs[name].fields
    flexible = version in decl.flexible
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for f in fields:
        tagged = flexible and f.tag is not None and version in f.tagged
        if version not in f.versions and not tagged:
            continue  # absent: stays at its default
        s = _field_value(top, f, version, depth)
        if tagged:
            const, factory = default_value(f, top.STRUCTS)
            s = st.one_of(st.just(factory() if factory else const), s)
        kwargs[f.attr] = s
    if flexible:
        kwargs["unknown_tagged_fields"] = st.dictionaries(
            UNKNOWN_TAGS, st.binary(max_size=4), max_size=2
        )
    return st.builds(cls, **kwargs)


def _field_value(top: type, f: FieldDecl, version: int, depth: int) -> st.SearchStrategy[Any]:
    if f.is_struct:
        elem = struct_strategy(top, f.elem, version, depth + 1)
    else:
        elem = _scalar(f.elem)
    if f.is_array:
        s: st.SearchStrategy[Any] = st.lists(elem, max_size=2 if depth < 2 else 1)
    else:
        s = elem
    if version in f.nullable:
        s = st.one_of(st.none(), s)
    return s
