"""Seeded mutated request frames for every API the broker serves (tests and bench/).

``seed_frames`` builds one valid request per (API, version), its fields filled
with small values naming a topic and a group that exist, so the handlers go past
their first checks; ``mutated_frames`` flips bits, overwrites bytes with boundary
values, truncates, splices and lengthens them. The same seed gives the same frames.
"""

from __future__ import annotations

import random
import struct
import uuid
from collections.abc import Iterator
from typing import Any

from kbroker.handlers import advertised_versions, load_handlers
from kbroker.wire.protocol import encode_request, request_class
from kbroker.wire.records import Record, build_batch

TOPIC = "fuzz"
GROUP = "fuzz-group"

_INTS = {"int8": 1, "int16": 1, "int32": 1, "int64": 1, "uint16": 1}
_BOUNDARY = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\x00\x00\x00\x00",
    b"\x00\x10\x00\x00",
]


def _value(kind: str, name: str) -> Any:
    if kind in _INTS:
        # 1, not 0: acks=1 (a response comes back), waits and timeouts of 1 ms,
        # partition 1 of a two-partition topic.
        return 1
    if kind == "string":
        lowered = name.lower()
        if "group" in lowered:
            return GROUP
        if "topic" in lowered or lowered == "name":
            return TOPIC
        return "x"
    if kind == "bytes":
        return b"\x00\x01"
    if kind == "records":
        return build_batch([Record(key=b"k", value=b"v", timestamp=1)])
    if kind == "bool":
        return False
    if kind == "uuid":
        return uuid.UUID(int=0)
    if kind == "float64":
        return 0.0
    return None


def _fill(obj: Any, fields: Any, structs: dict[str, type], version: int) -> Any:
    for decl in fields:
        if not decl.versions.lo <= version <= decl.versions.hi:
            continue  # left at its default, which this version does not carry
        kind = decl.type
        if kind.startswith("[]"):
            element = kind[2:]
            if decl.fields is not None and element in structs:
                setattr(obj, decl.attr, [_fill(structs[element](), decl.fields, structs, version)])
            elif element in _INTS or element == "string":
                setattr(obj, decl.attr, [_value(element, decl.name)])
            continue
        if decl.fields is not None and kind in structs:
            setattr(obj, decl.attr, _fill(structs[kind](), decl.fields, structs, version))
            continue
        value = _value(kind, decl.name)
        if value is not None:
            setattr(obj, decl.attr, value)
    return obj


def seed_frames() -> list[tuple[int, int, bytes]]:
    """(api key, version, frame without its size prefix) for every served (API, version)."""
    load_handlers()
    seeds: list[tuple[int, int, bytes]] = []
    for api_key, (low, high) in sorted(advertised_versions().items()):
        cls: Any = request_class(api_key)
        for version in range(low, high + 1):
            body = _fill(cls(), cls.SCHEMA.fields, cls.STRUCTS, version)
            try:
                frame = encode_request(api_key, version, 1, "fuzzer", body)
            except Exception:  # noqa: BLE001 - a field this version cannot carry
                try:
                    frame = encode_request(api_key, version, 1, "fuzzer", cls())
                except Exception:  # noqa: BLE001
                    continue
            seeds.append((api_key, version, frame[4:]))
    return seeds


def mutate(rng: random.Random, payload: bytes) -> bytes:
    """One to four mutations of ``payload`` (the API key and version are left alone)."""
    data = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        if len(data) <= 4:
            break
        pos = rng.randrange(4, len(data))
        op = rng.randrange(6)
        if op == 0:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            chunk = rng.choice(_BOUNDARY)
            data[pos : pos + len(chunk)] = chunk
        elif op == 2:
            del data[pos:]
        elif op == 3:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:
            start = rng.randrange(4, len(data))
            data[pos:pos] = data[start : start + rng.randint(1, 32)]
        else:
            data[pos] = rng.randrange(256)
    return bytes(data)


def mutated_frames(seed: int, count: int) -> Iterator[tuple[int, int, bytes]]:
    """``count`` framed mutants (api key, version, bytes with size prefix), from ``seed``."""
    rng = random.Random(seed)
    seeds = seed_frames()
    for _ in range(count):
        api_key, version, payload = rng.choice(seeds)
        body = mutate(rng, payload)
        yield api_key, version, struct.pack(">i", len(body)) + body
