"""Schema DSL, message classes and the one generic codec built from them.

How it works
------------
Each message is declared once, as data, in a compact indentation-based notation
that mirrors Kafka's JSON message definitions (see ``wire/_defs_api.py``)::

    ProduceRequest request key=0 versions=0-11 flexible=9+
      TransactionalId string v3+ nullable=3+ default=null
      TopicData []TopicProduceData
        Name string
      struct SomeCommonStruct v0+
        Field int32

A header line may end with ``unstable`` (Kafka's latestVersionUnstable).
A field line is ``Name type [vVERSIONS] [nullable=V] [tag=N tagged=V]
[flexible=V] [default=TOKEN] [ignorable]``; ``v0+`` is implied. Versions are
written like Kafka's: ``3``, ``0-11``, ``9+`` or ``none``.

``parse_declarations`` turns that text into ``MessageDecl`` trees;
``make_message_class`` builds slotted keyword-only dataclasses from them (the
struct classes hang flat off the top-level class); ``codec(cls, version)``
compiles, once per (message, version), a reader and a writer: straight-line
Python generated with ``exec`` so a decode does no schema walking, with runs of
fixed-size fields folded into one ``struct.Struct``.

Every length read from the wire is checked against the bytes that remain
before anything is allocated (CVE-2022-34917). Readers take a memoryview and
return ``(value, new_pos)``; writers append to a bytearray. Records values that
are not bytes-like are recorded as (offset, object) in ``ext`` so the caller can
send them separately (sendfile).
"""

from __future__ import annotations

import dataclasses
import operator
import re
import struct
import uuid
from collections.abc import Callable
from typing import Any

from kbroker.wire.errors import DecodeError, EncodeError

MAX_VERSION = 0x7FFF

# ---------------------------------------------------------------------------
# Declarations
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Versions:
    """An inclusive version range; empty when lo > hi (Kafka's "none")."""

    lo: int
    hi: int

    def __contains__(self, v: object) -> bool:
        return isinstance(v, int) and self.lo <= v <= self.hi

    @property
    def empty(self) -> bool:
        """True for the "none" range."""
        return self.lo > self.hi

    def __str__(self) -> str:
        if self.empty:
            return "none"
        if self.hi == MAX_VERSION:
            return f"{self.lo}+"
        if self.lo == self.hi:
            return str(self.lo)
        return f"{self.lo}-{self.hi}"


NONE = Versions(1, 0)


def parse_versions(text: str) -> Versions:
    """Parse Kafka's version-range notation: "3", "0-11", "9+" or "none"."""
    if text == "none":
        return NONE
    if text.endswith("+"):
        return Versions(int(text[:-1]), MAX_VERSION)
    if "-" in text:
        lo, hi = text.split("-")
        return Versions(int(lo), int(hi))
    return Versions(int(text), int(text))


PRIMITIVES = frozenset(
    [
        "int8",
        "int16",
        "int32",
        "int64",
        "uint16",
        "float64",
        "bool",
        "string",
        "bytes",
        "uuid",
        "records",
    ]
)


@dataclasses.dataclass(slots=True)
class FieldDecl:
    """One field of a struct, as declared."""

    name: str
    type: str
    versions: Versions
    nullable: Versions = NONE
    tag: int | None = None
    tagged: Versions = NONE
    flexible: Versions | None = None  # per-field override (RequestHeader.ClientId)
    default: str | None = None
    ignorable: bool = False
    fields: list[FieldDecl] | None = None  # inline struct definition
    attr: str = ""

    @property
    def is_array(self) -> bool:
        """True for ``[]T`` types."""
        return self.type.startswith("[]")

    @property
    def elem(self) -> str:
        """The element type of an array, or the type itself."""
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self) -> bool:
        """True when the (element) type is a struct."""
        return self.elem not in PRIMITIVES


@dataclasses.dataclass(slots=True)
class StructDecl:
    """A named struct: inline in a field or a common struct."""

    name: str
    versions: Versions
    fields: list[FieldDecl]


@dataclasses.dataclass(slots=True)
class MessageDecl:
    """A top-level message (request, response, header or data)."""

    name: str
    kind: str
    api_key: int | None
    versions: Versions
    flexible: Versions
    fields: list[FieldDecl]
    structs: dict[str, StructDecl]
    # Kafka's latestVersionUnstable: the top version is still in development and a
    # released broker does not advertise it (unstable.api.versions.enable=false).
    latest_unstable: bool = False


_SNAKE1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE2 = re.compile(r"([a-z0-9])([A-Z])")


_SNAKE_CACHE: dict[str, str] = {}


def _join(m: re.Match[str]) -> str:
    return f"{m[1]}_{m[2]}"


def snake(name: str) -> str:
    """Kafka's CamelCase field name to snake_case (ThrottleTimeMs -> throttle_time_ms)."""
    # Cached: the same few hundred names recur across messages (start-up time).
    out = _SNAKE_CACHE.get(name)
    if out is None:
        out = _SNAKE_CACHE[name] = _SNAKE2.sub(_join, _SNAKE1.sub(_join, name)).lower()
    return out


def _parse_field(tokens: list[str]) -> FieldDecl:
    f = FieldDecl(name=tokens[0], type=tokens[1], versions=Versions(0, MAX_VERSION))
    f.attr = snake(f.name)
    for tok in tokens[2:]:
        if tok == "ignorable":
            f.ignorable = True
        elif tok.startswith("v"):
            f.versions = parse_versions(tok[1:])
        else:
            key, _, val = tok.partition("=")
            if key == "nullable":
                f.nullable = parse_versions(val)
            elif key == "tag":
                f.tag = int(val)
            elif key == "tagged":
                f.tagged = parse_versions(val)
            elif key == "flexible":
                f.flexible = parse_versions(val)
            elif key == "default":
                f.default = "" if val == '""' else val
            else:
                raise ValueError(f"unknown field attribute {tok!r}")
    return f


def _parse_block(lines: list[str]) -> MessageDecl:
    head = lines[0].split()
    attrs = dict(t.split("=", 1) for t in head[2:] if "=" in t)
    flags = {t for t in head[2:] if "=" not in t}
    msg = MessageDecl(
        name=head[0],
        kind=head[1],
        api_key=int(attrs["key"]) if "key" in attrs else None,
        versions=parse_versions(attrs["versions"]),
        flexible=parse_versions(attrs["flexible"]),
        fields=[],
        structs={},
        latest_unstable="unstable" in flags,
    )
    # stack of (indent of the children, list to append them to, owning field)
    stack: list[tuple[int, list[FieldDecl], FieldDecl | None]] = [(2, msg.fields, None)]
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip(" "))
        while indent < stack[-1][0]:
            stack.pop()
        if indent != stack[-1][0]:
            raise ValueError(f"{msg.name}: bad indentation: {line!r}")
        tokens = line.split()
        if tokens[0] == "struct":
            sd = StructDecl(tokens[1], parse_versions(tokens[2][1:]), [])
            msg.structs[sd.name] = sd
            stack.append((indent + 2, sd.fields, None))
            continue
        f = _parse_field(tokens)
        stack[-1][1].append(f)
        f.fields = []
        stack.append((indent + 2, f.fields, f))
    _collect_inline(msg, msg.fields)
    for sd in list(msg.structs.values()):
        _collect_inline(msg, sd.fields)
    return msg


def _collect_inline(msg: MessageDecl, fields: list[FieldDecl]) -> None:
    for f in fields:
        if f.fields:
            msg.structs[f.elem] = StructDecl(f.elem, f.versions, f.fields)
            _collect_inline(msg, f.fields)
        else:
            f.fields = None


def parse_declarations(text: str) -> list[MessageDecl]:
    """Parse a block of DSL text (messages separated by blank lines)."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if lines:
            out.append(_parse_block(lines))
    return out


# ---------------------------------------------------------------------------
# Message classes
# ---------------------------------------------------------------------------

_INT_TYPES = {"int8", "int16", "int32", "int64", "uint16"}
PY_TYPES = {
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "int",
    "uint16": "int",
    "float64": "float",
    "bool": "bool",
    "string": "str",
    "bytes": "bytes",
    "uuid": "uuid.UUID",
    "records": "Any",
}
ZERO_UUID = uuid.UUID(int=0)


def default_value(f: FieldDecl, classes: dict[str, type]) -> tuple[Any, Callable[[], Any] | None]:
    """(constant default, or None with a factory for mutable defaults) of a field."""
    d = f.default
    if d == "null":
        return None, None
    if f.is_array:
        return None, list
    t = f.type
    if t in _INT_TYPES:
        return (int(d, 0) if d else 0), None
    if t == "float64":
        return (float(d) if d else 0.0), None
    if t == "bool":
        return (d == "true"), None
    if t == "string":
        return (d or ""), None
    if t == "bytes":
        return b"", None
    if t == "uuid":
        return ZERO_UUID, None
    if t == "records":
        return None, None  # Kafka's default for records is null
    return None, classes[t]


def make_message_class(decl: MessageDecl, module: str) -> type:
    """Build the top-level dataclass of a message, with its struct classes attached."""
    classes: dict[str, type] = {}

    def build(name: str, qualname: str, fields: list[FieldDecl]) -> type:
        for f in fields:
            if f.is_struct and f.elem not in classes:
                sd = decl.structs[f.elem]
                build(sd.name, f"{decl.name}.{sd.name}", sd.fields)
        specs: list[tuple[str, str, Any, Callable[[], Any] | None]] = []
        for f in fields:
            const, factory = default_value(f, classes)
            pytype = (
                f"list[{PY_TYPES.get(f.elem, f.elem)}]"
                if f.is_array
                else PY_TYPES.get(f.type, f.type)
            )
            specs.append((f.attr, pytype, const, factory))
        specs.append(("unknown_tagged_fields", "dict[int, bytes]", None, dict))
        doc = f"Kafka {decl.name} {'struct ' + name if name != decl.name else ''}".strip()
        cls = _fast_dataclass(name, qualname, module, doc, specs)
        if name != decl.name:
            classes[name] = cls
        return cls

    top = build(decl.name, decl.name, decl.fields)
    for name, c in classes.items():
        setattr(top, name, c)
    top.SCHEMA = decl  # type: ignore[attr-defined]
    top.STRUCTS = classes  # type: ignore[attr-defined]
    if decl.api_key is not None:
        top.API_KEY = decl.api_key  # type: ignore[attr-defined]
    return top


# Why not dataclasses.make_dataclass: it compiles __init__/__repr__/__eq__ for every
# class and, for slots=True, builds each class twice; for the ~270 message and
# struct classes that was most of the broker's start-up time. Here a class is one
# type() call with what @dataclass(slots=True, kw_only=True) would give it
# (__slots__, __dataclass_fields__/__dataclass_params__ so dataclasses.fields(),
# replace() and asdict() work, __match_args__ = (), __hash__ = None since eq=True),
# __repr__ is shared, driven by the class's field names, and __init__ and __eq__
# are generated on first instantiation or inspect.signature() (most classes are
# only ever built by the decoders, which bypass __init__; until then a shared
# __eq__ compares the same field tuples).


class _Factory:
    """Default of a field with a default factory (shown as dataclasses show it)."""

    def __repr__(self) -> str:
        return "<factory>"


_MISSING: Any = _Factory()
_DATACLASS_PARAMS = dataclasses.make_dataclass(
    "_Params", [], slots=True, kw_only=True
).__dataclass_params__  # type: ignore[attr-defined]
_KEY = "__kbroker_fields__"  # class attribute: (names, attrgetter of them, init specs)


def _dataclass_repr(self: Any) -> str:
    names = type(self).__kbroker_fields__[0]
    return (
        f"{type(self).__qualname__}("
        + ", ".join([f"{n}={getattr(self, n)!r}" for n in names])
        + ")"
    )


def _dataclass_eq(self: Any, other: Any) -> Any:
    # Same rule as dataclass's __eq__: equal class, then the tuple of fields.
    if other.__class__ is self.__class__:
        get = self.__kbroker_fields__[1]
        return get(self) == get(other)
    return NotImplemented


def _field_objects(
    specs: list[tuple[str, str, Any, Callable[[], Any] | None]],
) -> dict[str, dataclasses.Field]:
    out: dict[str, dataclasses.Field] = {}
    for attr, pytype, const, factory in specs:
        if factory is not None:
            fo: dataclasses.Field = dataclasses.field(default_factory=factory, kw_only=True)
        else:
            fo = dataclasses.field(default=const, kw_only=True)
        fo.name = attr
        fo.type = pytype
        fo._field_type = dataclasses._FIELD  # type: ignore[attr-defined]  # what fields() keeps
        out[attr] = fo
    return out


class _LazyFields:
    """__dataclass_fields__ built on first access (dataclasses.fields/replace/is_dataclass)."""

    def __get__(self, obj: Any, owner: type) -> dict[str, dataclasses.Field]:
        fields = _field_objects(owner.__kbroker_fields__[2])  # type: ignore[attr-defined]
        owner.__dataclass_fields__ = fields  # type: ignore[attr-defined]  # replaces this descriptor
        return fields


_LAZY_FIELDS = _LazyFields()


def _compile_methods(cls: type) -> tuple[Callable[..., None], Callable[[Any, Any], Any]]:
    """Generate cls.__init__ (keyword-only, every field defaulted, mutable ones per call)
    and the tuple-comparing __eq__ dataclasses would write, in one exec."""
    specs = cls.__kbroker_fields__[2]  # type: ignore[attr-defined]
    ns: dict[str, Any] = {"_MISSING": _MISSING}
    params: list[str] = []
    body: list[str] = []
    for i, (attr, _pytype, const, factory) in enumerate(specs):
        if factory is None:
            ns[f"_d{i}"] = const
            params.append(f"{attr}=_d{i}")
            body.append(f"    self.{attr} = {attr}")
        else:
            params.append(f"{attr}=_MISSING")
            if factory is list:
                make = "[]"
            elif factory is dict:
                make = "{}"
            else:
                ns[f"_f{i}"] = factory
                make = f"_f{i}()"
            body.append(f"    self.{attr} = {make} if {attr} is _MISSING else {attr}")
    names = [s[0] for s in specs]
    mine = "".join(f"self.{n}," for n in names)
    theirs = "".join(f"other.{n}," for n in names)
    src = (
        f"def __init__(self, *, {', '.join(params)}):\n" + "\n".join(body) + "\n"
        "def __eq__(self, other):\n"
        f"    if other.__class__ is self.__class__: return ({mine}) == ({theirs})\n"
        "    return NotImplemented\n"
    )
    exec(src, ns)  # noqa: S102 - generated from our own declarations only
    init, eq = ns["__init__"], ns["__eq__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    eq.__qualname__ = f"{cls.__qualname__}.__eq__"
    return init, eq


def _install_methods(cls: type) -> Callable[..., None]:
    """Replace the lazy __init__ (and the shared __eq__, half as fast) by generated ones."""
    while "__kbroker_fields__" not in cls.__dict__:  # a subclass: the declaring class
        cls = cls.__mro__[1]
    if cls.__dict__["__init__"] is not _lazy_init:
        return cls.__init__  # type: ignore[misc]
    init, eq = _compile_methods(cls)
    cls.__init__ = init  # type: ignore[misc]
    cls.__eq__ = eq  # type: ignore[method-assign, assignment]
    try:
        del cls.__signature__  # type: ignore[attr-defined]  # inspect now sees the real __init__
    except AttributeError:
        pass  # another thread installed them at the same time
    return init


def _lazy_init(self: Any, **kwargs: Any) -> None:
    # First instantiation of this class: install the generated methods, then run
    # __init__. Only keyword arguments are accepted, like the real one.
    _install_methods(type(self))(self, **kwargs)


class _LazySignature:
    """Makes inspect.signature(cls) (hypothesis' builds, IDEs) see the generated __init__."""

    def __get__(self, obj: Any, owner: type) -> None:
        _install_methods(owner)
        return None  # "no __signature__": inspect falls back to __init__


_LAZY_SIGNATURE = _LazySignature()


def _fast_dataclass(
    name: str,
    qualname: str,
    module: str,
    doc: str,
    specs: list[tuple[str, str, Any, Callable[[], Any] | None]],
) -> type:
    """A class equivalent to make_dataclass(name, specs, slots=True, kw_only=True)."""
    names = tuple(s[0] for s in specs)
    ns: dict[str, Any] = {
        "__slots__": names,
        "__module__": module,
        "__qualname__": qualname,
        "__doc__": doc,
        "__annotations__": {s[0]: s[1] for s in specs},
        "__init__": _lazy_init,
        "__repr__": _dataclass_repr,
        "__eq__": _dataclass_eq,
        "__hash__": None,
        "__match_args__": (),
        "__dataclass_params__": _DATACLASS_PARAMS,
        "__dataclass_fields__": _LAZY_FIELDS,
        "__signature__": _LAZY_SIGNATURE,
        _KEY: (names, operator.attrgetter(*names), specs),
    }
    return type(name, (), ns)


# ---------------------------------------------------------------------------
# Primitive readers: (buf: memoryview, pos) -> (value, pos)
# ---------------------------------------------------------------------------

_S_I8 = struct.Struct(">b")
_S_I16 = struct.Struct(">h")
_S_I32 = struct.Struct(">i")
_S_I64 = struct.Struct(">q")
_FIXED_FMT = {
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint16": "H",
    "float64": "d",
    "bool": "?",
}
_FIXED_SIZE = {"b": 1, "h": 2, "i": 4, "q": 8, "H": 2, "d": 8, "?": 1}


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Unsigned varint of at most 5 bytes (32 bits), as Kafka's readUnsignedVarint."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if value > 0xFFFFFFFF:
                raise DecodeError("unsigned varint overflows 32 bits")
            return value, pos
        shift += 7
        if shift >= 35:
            raise DecodeError("unsigned varint longer than 5 bytes")


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Zigzag varint (int32)."""
    v, pos = read_uvarint(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def read_varlong(buf: memoryview, pos: int) -> tuple[int, int]:
    """Zigzag varlong (int64, at most 10 bytes)."""
    value = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift >= 70:
            raise DecodeError("varlong longer than 10 bytes")
    if value >> 64:
        raise DecodeError("varlong overflows 64 bits")
    return (value >> 1) ^ -(value & 1), pos


def write_uvarint(out: bytearray, v: int) -> None:
    """Append an unsigned varint."""
    if v < 0x4000 and v >= 0:  # one or two bytes: the common lengths, no loop
        if v < 0x80:
            out.append(v)
        else:
            out += bytes(((v & 0x7F) | 0x80, v >> 7))
        return
    if not 0 <= v <= 0xFFFFFFFF:
        raise EncodeError(f"unsigned varint {v} out of range")
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def write_varint(out: bytearray, v: int) -> None:
    """Append a zigzag varint (int32)."""
    if not -0x80000000 <= v <= 0x7FFFFFFF:
        raise EncodeError(f"varint {v} out of range")
    write_uvarint(out, ((v << 1) ^ (v >> 31)) & 0xFFFFFFFF)


def write_varlong(out: bytearray, v: int) -> None:
    """Append a zigzag varlong (int64)."""
    if not -(1 << 63) <= v < (1 << 63):
        raise EncodeError(f"varlong {v} out of range")
    z = ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def _len_classic16(buf: memoryview, pos: int, nullable: bool, what: str) -> tuple[int, int]:
    (n,) = _S_I16.unpack_from(buf, pos)
    pos += 2
    if n < 0:
        if n == -1 and nullable:
            return -1, pos
        raise DecodeError(f"{what}: invalid length {n}")
    if n > len(buf) - pos:
        raise DecodeError(f"{what}: length {n} exceeds the {len(buf) - pos} bytes left")
    return n, pos


def _len_classic32(buf: memoryview, pos: int, nullable: bool, what: str) -> tuple[int, int]:
    (n,) = _S_I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        if n == -1 and nullable:
            return -1, pos
        raise DecodeError(f"{what}: invalid length {n}")
    if n > len(buf) - pos:
        raise DecodeError(f"{what}: length {n} exceeds the {len(buf) - pos} bytes left")
    return n, pos


def _len_compact(buf: memoryview, pos: int, nullable: bool, what: str) -> tuple[int, int]:
    n, pos = read_uvarint(buf, pos)
    n -= 1
    if n < 0:
        if nullable:
            return -1, pos
        raise DecodeError(f"{what}: null where the schema does not allow it")
    if n > len(buf) - pos:
        raise DecodeError(f"{what}: length {n} exceeds the {len(buf) - pos} bytes left")
    return n, pos


# Strings decode like Java's new String(bytes, UTF_8), which Kafka uses: malformed
# UTF-8 becomes U+FFFD instead of failing the request.
def _make_string_reader(compact: bool, nullable: bool, what: str) -> Callable:
    if compact:

        def read(buf: memoryview, pos: int) -> tuple[str | None, int]:
            n = buf[pos]
            if n < 0x80:
                pos += 1
            elif buf[pos + 1] < 0x80:  # two-byte lengths (128..16383) are common too
                n = (n & 0x7F) | (buf[pos + 1] << 7)
                pos += 2
            else:
                n, pos = read_uvarint(buf, pos)
            n -= 1
            if n < 0:
                if nullable:
                    return None, pos
                raise DecodeError(f"{what}: null string where the schema does not allow it")
            end = pos + n
            if end > len(buf):
                raise DecodeError(f"{what}: length {n} exceeds the bytes left")
            return str(buf[pos:end], "utf-8", "replace"), end
    else:

        def read(buf: memoryview, pos: int) -> tuple[str | None, int]:
            n, pos = _len_classic16(buf, pos, nullable, what)
            if n < 0:
                return None, pos
            end = pos + n
            return str(buf[pos:end], "utf-8", "replace"), end

    return read


def _make_bytes_reader(compact: bool, nullable: bool, what: str, zero_copy: bool) -> Callable:
    length = _len_compact if compact else _len_classic32
    if compact:

        def read_compact(buf: memoryview, pos: int) -> tuple[Any, int]:
            n = buf[pos]
            if n < 0x80:
                pos += 1
            elif buf[pos + 1] < 0x80:  # two-byte lengths (128..16383) are common too
                n = (n & 0x7F) | (buf[pos + 1] << 7)
                pos += 2
            else:
                n, pos = read_uvarint(buf, pos)
            n -= 1
            if n < 0:
                if nullable:
                    return None, pos
                raise DecodeError(f"{what}: null where the schema does not allow it")
            end = pos + n
            if end > len(buf):
                raise DecodeError(f"{what}: length {n} exceeds the {len(buf) - pos} bytes left")
            return (buf[pos:end] if zero_copy else bytes(buf[pos:end])), end

        return read_compact

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        n, pos = length(buf, pos, nullable, what)
        if n < 0:
            return None, pos
        end = pos + n
        return (buf[pos:end] if zero_copy else bytes(buf[pos:end])), end

    return read


def _read_uuid(buf: memoryview, pos: int) -> tuple[uuid.UUID, int]:
    end = pos + 16
    if end > len(buf):
        raise DecodeError("uuid: truncated")
    return uuid.UUID(bytes=bytes(buf[pos:end])), end


def _make_array_reader(
    compact: bool, nullable: bool, what: str, elem_type: str, elem_reader: Callable
) -> Callable:
    length = _len_compact if compact else _len_classic32
    fmt = _FIXED_FMT.get(elem_type)
    if fmt is not None:
        s = struct.Struct(">" + fmt)
        size = s.size

        def read_fixed(buf: memoryview, pos: int) -> tuple[list | None, int]:
            n, pos = length(buf, pos, nullable, what)
            if n < 0:
                return None, pos
            end = pos + n * size
            if end > len(buf):
                raise DecodeError(f"{what}: {n} elements exceed the bytes left")
            return [x for (x,) in s.iter_unpack(buf[pos:end])], end

        return read_fixed

    def read(buf: memoryview, pos: int) -> tuple[list | None, int]:
        # Kafka checks the element count against the bytes remaining (CVE-2022-34917).
        n, pos = length(buf, pos, nullable, what)
        if n < 0:
            return None, pos
        out: list[Any] = []
        append = out.append
        for _ in range(n):
            v, pos = elem_reader(buf, pos)
            append(v)
        return out, pos

    return read


def _make_nullable_struct_reader(inner: Callable, tagged: bool) -> Callable:
    # Nullable structs, as Kafka's generator reads them: an int8 marker (< 0 = null,
    # 1 = present); inside a tagged field the marker is an unsigned varint (0 = null).
    if tagged:

        def read_tagged(buf: memoryview, pos: int) -> tuple[Any, int]:
            m, pos = read_uvarint(buf, pos)
            if m == 0:
                return None, pos
            return inner(buf, pos)

        return read_tagged

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        (m,) = _S_I8.unpack_from(buf, pos)
        if m < 0:
            return None, pos + 1
        return inner(buf, pos + 1)

    return read


def read_tagged_fields(
    buf: memoryview, pos: int, obj: Any, known: dict[int, tuple[str, Callable]]
) -> int:
    """Read a tagged-field section into obj; unknown tags go to unknown_tagged_fields."""
    n, pos = read_uvarint(buf, pos)
    if n > len(buf) - pos:
        raise DecodeError(f"tagged fields: count {n} exceeds the bytes left")
    if not n:
        return pos
    unknown = obj.unknown_tagged_fields
    for _ in range(n):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        end = pos + size
        if end > len(buf):
            raise DecodeError(f"tagged field {tag}: size {size} exceeds the bytes left")
        k = known.get(tag)
        if k is None:
            unknown[tag] = bytes(buf[pos:end])
        else:
            val, used = k[1](buf[pos:end], 0)
            if used != size:
                raise DecodeError(f"tagged field {tag}: {size - used} unused bytes")
            setattr(obj, k[0], val)
        pos = end
    return pos


# ---------------------------------------------------------------------------
# Primitive writers: (out: bytearray, value, ext) -> None
# ---------------------------------------------------------------------------


def _make_string_writer(compact: bool, nullable: bool, what: str) -> Callable:
    def write(out: bytearray, v: str | None, ext: list) -> None:
        if v is None:
            if not nullable:
                raise EncodeError(f"{what}: None is not allowed in this version")
            if compact:
                out.append(0)
            else:
                out += b"\xff\xff"
            return
        b = v.encode()
        if compact:
            write_uvarint(out, len(b) + 1)
        else:
            if len(b) > 0x7FFF:
                raise EncodeError(f"{what}: string of {len(b)} bytes is too long")
            out += _S_I16.pack(len(b))
        out += b

    return write


def _make_bytes_writer(compact: bool, nullable: bool, what: str, records: bool) -> Callable:
    def write(out: bytearray, v: Any, ext: list) -> None:
        if v is None:
            if not nullable:
                raise EncodeError(f"{what}: None is not allowed in this version")
            if compact:
                out.append(0)
            else:
                out += b"\xff\xff\xff\xff"
            return
        n = len(v)
        if compact:
            write_uvarint(out, n + 1)
        else:
            out += _S_I32.pack(n)
        if isinstance(v, (bytes, bytearray, memoryview)):
            out += v
        elif records:
            # A file region (sendfile): keep it out of line; encode_response_parts splits here.
            ext.append((len(out), v))
        else:
            out += bytes(v)

    return write


def _write_uuid(out: bytearray, v: uuid.UUID, ext: list) -> None:
    out += v.bytes


def _make_array_writer(
    compact: bool, nullable: bool, what: str, elem_type: str, elem_writer: Callable
) -> Callable:
    fmt = _FIXED_FMT.get(elem_type)
    pack = struct.Struct(">" + fmt).pack if fmt else None

    def write(out: bytearray, v: list | None, ext: list) -> None:
        if v is None:
            if not nullable:
                raise EncodeError(f"{what}: None is not allowed in this version")
            if compact:
                out.append(0)
            else:
                out += b"\xff\xff\xff\xff"
            return
        if compact:
            n = len(v) + 1
            if n < 0x80:
                out.append(n)
            else:
                write_uvarint(out, n)
        else:
            out += _S_I32.pack(len(v))
        if pack is not None:
            for x in v:
                out += pack(x)
        else:
            for x in v:
                elem_writer(out, x, ext)

    return write


def _make_nullable_struct_writer(inner: Callable, tagged: bool) -> Callable:
    null = 0 if tagged else 0xFF  # uvarint 0 in a tagged field, else int8 -1

    def write(out: bytearray, v: Any, ext: list) -> None:
        if v is None:
            out.append(null)
        else:
            out.append(1)
            inner(out, v, ext)

    return write


def _make_fixed_reader(fmt: str) -> Callable:
    s = struct.Struct(">" + fmt)
    unpack = s.unpack_from
    size = s.size

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        return unpack(buf, pos)[0], pos + size

    return read


def _make_fixed_writer(fmt: str) -> Callable:
    pack = struct.Struct(">" + fmt).pack

    def write(out: bytearray, v: Any, ext: list) -> None:
        out += pack(v)

    return write


# ---------------------------------------------------------------------------
# The codec compiler
# ---------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Codec:
    """Compiled reader/writer of one message at one version."""

    read: Callable[[memoryview, int], tuple[Any, int]]
    write: Callable[[bytearray, Any, list], None]
    cls: type
    version: int


class _Compiler:
    """Compiles the readers/writers of one message class at one version."""

    def __init__(self, cls: type, version: int) -> None:
        self.cls = cls
        self.decl: MessageDecl = cls.SCHEMA  # type: ignore[attr-defined]
        self.version = version
        self.flexible = version in self.decl.flexible
        self.done: dict[str, tuple[Callable, Callable]] = {}

    def struct_class(self, name: str) -> type:
        return self.cls if name == self.decl.name else self.cls.STRUCTS[name]  # type: ignore[attr-defined]

    def value_codec(self, f: FieldDecl, *, tagged: bool = False) -> tuple[Callable, Callable]:
        """Reader/writer of a field's value at this version."""
        v = self.version
        compact = (v in f.flexible) if f.flexible is not None else self.flexible
        if tagged:
            compact = True
        nullable = v in f.nullable
        what = f.name
        t = f.type
        if f.is_array:
            er, ew = self.elem_codec(f.elem, compact)
            return (
                _make_array_reader(compact, nullable, what, f.elem, er),
                _make_array_writer(compact, nullable, what, f.elem, ew),
            )
        if t in _FIXED_FMT:
            return _make_fixed_reader(_FIXED_FMT[t]), _make_fixed_writer(_FIXED_FMT[t])
        if t == "string":
            return (
                _make_string_reader(compact, nullable, what),
                _make_string_writer(compact, nullable, what),
            )
        if t in ("bytes", "records"):
            rec = t == "records"
            return (
                _make_bytes_reader(compact, nullable, what, rec),
                _make_bytes_writer(compact, nullable, what, rec),
            )
        if t == "uuid":
            return _read_uuid, _write_uuid
        r, w = self.struct_codec(t)
        if nullable:
            return (
                _make_nullable_struct_reader(r, tagged),
                _make_nullable_struct_writer(w, tagged),
            )
        return r, _nonnull_struct_writer(w, what)

    def elem_codec(self, t: str, compact: bool, *, raw: bool = False) -> tuple[Callable, Callable]:
        """Reader/writer of one array element; raw=True skips the None check of struct
        elements (a None element then fails with AttributeError -> EncodeError)."""
        if t in _FIXED_FMT:
            return _make_fixed_reader(_FIXED_FMT[t]), _make_fixed_writer(_FIXED_FMT[t])
        if t == "string":
            return (_make_string_reader(compact, False, t), _make_string_writer(compact, False, t))
        if t in ("bytes", "records"):
            return (
                _make_bytes_reader(compact, False, t, False),
                _make_bytes_writer(compact, False, t, False),
            )
        if t == "uuid":
            return _read_uuid, _write_uuid
        r, w = self.struct_codec(t)
        return r, (w if raw else _nonnull_struct_writer(w, t))

    def struct_codec(self, name: str) -> tuple[Callable, Callable]:
        if name in self.done:
            return self.done[name]
        fields = self.decl.fields if name == self.decl.name else self.decl.structs[name].fields
        # Placeholder for (impossible in Kafka's schemas, but cheap) recursion.
        slot: list[tuple[Callable, Callable]] = []
        self.done[name] = (lambda b, p: slot[0][0](b, p), lambda o, v, e: slot[0][1](o, v, e))
        rw = self.compile_struct(name, fields)
        slot.append(rw)
        self.done[name] = rw
        return rw

    def compile_struct(self, name: str, fields: list[FieldDecl]) -> tuple[Callable, Callable]:
        v = self.version
        cls = self.struct_class(name)
        classes = self.cls.STRUCTS  # type: ignore[attr-defined]
        ns: dict[str, Any] = {
            "_new": object.__new__,
            "_cls": cls,
            "_tags": read_tagged_fields,
            "EncodeError": EncodeError,
            "_wtags": _write_tagged_fields,
            "_DecodeError": DecodeError,
            "_uv": read_uvarint,
            "_wuv": write_uvarint,
            "_S16": _S_I16,
            "_S32": _S_I32,
            "_UUID": uuid.UUID,
            "_BYTESLIKE": (bytes, bytearray, memoryview),
        }
        rd: list[str] = ["def read(buf, pos):", "    o = _new(_cls)"]
        wr: list[str] = ["def write(out, o, ext):"]
        pending: list[tuple[FieldDecl, str]] = []  # run of fixed-size fields
        known_tags: dict[int, tuple[str, Callable]] = {}
        tag_writers: list[tuple[int, str, Callable, Any, Callable | None]] = []
        counter = [0]

        def sym(prefix: str, value: Any) -> str:
            counter[0] += 1
            s = f"_{prefix}{counter[0]}"
            ns[s] = value
            return s

        def flush() -> None:
            if not pending:
                return
            fmt = ">" + "".join(p[1] for p in pending)
            s = struct.Struct(fmt)
            name_s = sym("s", s)
            attrs = [p[0].attr for p in pending]
            targets = ", ".join(f"o.{a}" for a in attrs)
            rd.append(f"    ({targets},) = {name_s}.unpack_from(buf, pos)")
            rd.append(f"    pos += {s.size}")
            wr.append(f"    out += {name_s}.pack({', '.join(f'o.{a}' for a in attrs)})")
            pending.clear()

        for f in fields:
            const, factory = default_value(f, classes)
            is_tagged = self.flexible and v in f.tagged and f.tag is not None
            present = v in f.versions
            if is_tagged:
                r, w = self.value_codec(f, tagged=True)
                known_tags[f.tag] = (f.attr, r)  # type: ignore[index]
                cmp_default = factory() if factory is not None else const
                tag_writers.append((f.tag, f.attr, w, cmp_default, None))  # type: ignore[arg-type]
                rd.append(
                    f"    o.{f.attr} = "
                    + (f"{sym('f', factory)}()" if factory else sym("d", const))
                )
                continue
            if not present:
                # Absent in this version: decode gives the default; encoding a
                # non-default value fails unless the field is ignorable (Kafka's
                # generated writers throw UnsupportedVersionException the same way).
                rd.append(
                    f"    o.{f.attr} = "
                    + (f"{sym('f', factory)}()" if factory else sym("d", const))
                )
                if not f.ignorable:
                    cmp_default = factory() if factory is not None else const
                    d = sym("d", cmp_default)
                    wr.append(
                        f"    if o.{f.attr} != {d}: raise EncodeError("
                        f"{f.name + ' cannot be set in version ' + str(v)!r})"
                    )
                continue
            fmt = _FIXED_FMT.get(f.type)
            if fmt is not None:
                pending.append((f, fmt))
                continue
            flush()
            if f.type in ("string", "bytes", "records", "uuid"):
                # Hot leaf types are inlined into the struct's code: no call per field.
                compact = (v in f.flexible) if f.flexible is not None else self.flexible
                rd.extend(_inline_read(f, compact, v in f.nullable, sym))
                wr.extend(_inline_write(f, compact, v in f.nullable, sym))
                continue
            if f.is_array:
                compact = (v in f.flexible) if f.flexible is not None else self.flexible
                er, ew = self.elem_codec(f.elem, compact, raw=True)
                rd.extend(_inline_array_read(f, compact, v in f.nullable, er, sym))
                wr.extend(_inline_array_write(f, compact, v in f.nullable, ew, sym))
                continue
            r, w = self.value_codec(f)
            rn = sym("r", r)
            wn = sym("w", w)
            rd.append(f"    o.{f.attr}, pos = {rn}(buf, pos)")
            wr.append(f"    {wn}(out, o.{f.attr}, ext)")
        flush()
        if self.flexible:
            rd.append("    o.unknown_tagged_fields = {}")
            # Fast path: an empty tagged-field section is a single zero byte.
            rd.append("    if buf[pos] == 0: pos += 1")
            rd.append(f"    else: pos = _tags(buf, pos, o, {sym('k', known_tags)})")
            # Fast path: nothing to tag -> a single zero byte (the common case).
            conds = ["o.unknown_tagged_fields"] + [
                f"o.{attr} != {sym('d', default)}" for _, attr, _, default, _ in tag_writers
            ]
            wr.append(f"    if {' or '.join(conds)}: _wtags(out, o, ext, {sym('t', tag_writers)})")
            wr.append("    else: out.append(0)")
        else:
            rd.append("    o.unknown_tagged_fields = {}")
            wr.append(
                "    if o.unknown_tagged_fields: raise EncodeError("
                f"{'tagged fields need a flexible version, not ' + str(v)!r})"
            )
        rd.append("    return o, pos")
        wr.append("    return None")
        exec("\n".join(rd), ns)  # noqa: S102 - generated from our own declarations only
        exec("\n".join(wr), ns)  # noqa: S102
        return ns["read"], ns["write"]


def _inline_read(f: FieldDecl, compact: bool, nullable: bool, sym: Callable) -> list[str]:
    """Generated lines that read one string/bytes/records/uuid field into o.<attr>."""
    a = f.attr
    if f.type == "uuid":
        return [
            "    end = pos + 16",
            f"    if end > len(buf): raise _DecodeError({sym('m', f.name + ': truncated uuid')})",
            f"    o.{a} = _UUID(bytes=bytes(buf[pos:end]))",
            "    pos = end",
        ]
    if compact:
        lines = [
            "    n = buf[pos]",
            "    if n < 0x80: pos += 1",
            "    else: n, pos = _uv(buf, pos)",
            "    n -= 1",
        ]
    elif f.type == "string":
        lines = ["    (n,) = _S16.unpack_from(buf, pos)", "    pos += 2"]
    else:
        lines = ["    (n,) = _S32.unpack_from(buf, pos)", "    pos += 4"]
    bad = sym("m", f"{f.name}: invalid length or null where not allowed")
    over = sym("m", f"{f.name}: length exceeds the bytes left")
    if f.type == "string":
        conv = "str(buf[pos:end], 'utf-8', 'replace')"
    elif f.type == "bytes":
        conv = "bytes(buf[pos:end])"
    else:
        conv = "buf[pos:end]"  # records: zero-copy view of the frame
    lines += [
        "    if n < 0:",
        f"        if n != -1 or {not nullable}: raise _DecodeError({bad})",
        f"        o.{a} = None",
        "    else:",
        "        end = pos + n",
        f"        if end > len(buf): raise _DecodeError({over})",
        f"        o.{a} = {conv}",
        "        pos = end",
    ]
    return lines


def _inline_write(f: FieldDecl, compact: bool, nullable: bool, sym: Callable) -> list[str]:
    """Generated lines that write o.<attr> for a string/bytes/records/uuid field."""
    a = f.attr
    if f.type == "uuid":
        return [f"    out += o.{a}.bytes"]
    if nullable:
        null = (
            "out.append(0)"
            if compact
            else (
                "out += b'\\xff\\xff'" if f.type == "string" else "out += b'\\xff\\xff\\xff\\xff'"
            )
        )
    else:
        null = f"raise EncodeError({sym('m', f.name + ': None is not allowed in this version')})"
    lines = [f"    v = o.{a}", "    if v is None:", f"        {null}", "    else:"]
    if f.type == "string":
        lines.append("        v = v.encode()")
    if compact:
        lines += [
            "        n = len(v) + 1",
            "        if n < 0x80: out.append(n)",
            "        elif n < 0x4000: out.append((n & 0x7F) | 0x80); out.append(n >> 7)",
            "        else: _wuv(out, n)",
        ]
    elif f.type == "string":
        lines += [
            "        if len(v) > 0x7FFF: raise EncodeError("
            f"{sym('m', f.name + ': string longer than 32767 bytes')})",
            "        out += _S16.pack(len(v))",
        ]
    else:
        lines.append("        out += _S32.pack(len(v))")
    if f.type == "records":
        # A file region (sendfile) stays out of line; encode_response_parts splits there.
        lines += [
            "        if isinstance(v, _BYTESLIKE): out += v",
            "        else: ext.append((len(out), v))",
        ]
    elif f.type == "bytes":
        lines.append("        out += v")
    else:
        lines.append("        out += v")
    return lines


def _inline_array_read(
    f: FieldDecl, compact: bool, nullable: bool, er: Callable, sym: Callable
) -> list[str]:
    """Generated lines that read an array field into o.<attr>."""
    a = f.attr
    if compact:
        lines = [
            "    n = buf[pos]",
            "    if n < 0x80: pos += 1",
            "    else: n, pos = _uv(buf, pos)",
            "    n -= 1",
        ]
    else:
        lines = ["    (n,) = _S32.unpack_from(buf, pos)", "    pos += 4"]
    bad = sym("m", f"{f.name}: invalid array length or null where not allowed")
    # Kafka checks an array's count against the bytes remaining (CVE-2022-34917).
    over = sym("m", f"{f.name}: array count exceeds the bytes left")
    lines += [
        "    if n < 0:",
        f"        if n != -1 or {not nullable}: raise _DecodeError({bad})",
        f"        o.{a} = None",
        f"    elif n > len(buf) - pos: raise _DecodeError({over})",
    ]
    fmt = _FIXED_FMT.get(f.elem)
    if fmt is not None:
        st = struct.Struct(">" + fmt)
        sn = sym("s", st)
        lines += [
            "    else:",
            f"        end = pos + n * {st.size}",
            f"        if end > len(buf): raise _DecodeError({over})",
            f"        o.{a} = [e for (e,) in {sn}.iter_unpack(buf[pos:end])]",
            "        pos = end",
        ]
    else:
        rn = sym("r", er)
        lines += [
            "    else:",
            "        lst = []",
            "        for _ in range(n):",
            f"            e, pos = {rn}(buf, pos)",
            "            lst.append(e)",
            f"        o.{a} = lst",
        ]
    return lines


def _inline_array_write(
    f: FieldDecl, compact: bool, nullable: bool, ew: Callable, sym: Callable
) -> list[str]:
    """Generated lines that write the array field o.<attr>."""
    if nullable:
        null = "out.append(0)" if compact else "out += b'\\xff\\xff\\xff\\xff'"
    else:
        null = f"raise EncodeError({sym('m', f.name + ': None is not allowed in this version')})"
    lines = [f"    v = o.{f.attr}", "    if v is None:", f"        {null}", "    else:"]
    if compact:
        lines += [
            "        n = len(v) + 1",
            "        if n < 0x80: out.append(n)",
            "        else: _wuv(out, n)",
        ]
    else:
        lines.append("        out += _S32.pack(len(v))")
    fmt = _FIXED_FMT.get(f.elem)
    if fmt is not None:
        pn = sym("p", struct.Struct(">" + fmt).pack)
        lines += ["        for e in v: out += " + pn + "(e)"]
    else:
        wn = sym("w", ew)
        lines += ["        for e in v: " + wn + "(out, e, ext)"]
    return lines


def _nonnull_struct_writer(w: Callable, what: str) -> Callable:
    def write(out: bytearray, v: Any, ext: list) -> None:
        if v is None:
            raise EncodeError(f"{what}: None is not allowed in this version")
        w(out, v, ext)

    return write


def _write_tagged_fields(
    out: bytearray, o: Any, ext: list, writers: list[tuple[int, str, Callable, Any, Any]]
) -> None:
    """Write a tagged-field section: known fields that differ from their default plus
    the unknown ones kept from a decode, all in ascending tag order (KIP-482)."""
    unknown = o.unknown_tagged_fields
    items: list[tuple[int, bytes]] = []
    for tag, attr, w, default, _ in writers:
        val = getattr(o, attr)
        if val != default:
            tmp = bytearray()
            w(tmp, val, ext)
            items.append((tag, bytes(tmp)))
    if unknown:
        for tag, raw in unknown.items():
            items.append((tag, raw))
        items.sort(key=lambda kv: kv[0])
        for i in range(1, len(items)):
            if items[i][0] == items[i - 1][0]:
                raise EncodeError(f"tag {items[i][0]} is both a known and an unknown tagged field")
    write_uvarint(out, len(items))
    for tag, raw in items:
        write_uvarint(out, tag)
        write_uvarint(out, len(raw))
        out += raw


_CODECS: dict[tuple[type, int], Codec] = {}


def codec(cls: type, version: int) -> Codec:
    """The compiled codec of a top-level message class at one version (cached)."""
    key = (cls, version)
    c = _CODECS.get(key)
    if c is None:
        if version not in cls.SCHEMA.versions:  # type: ignore[attr-defined]
            raise EncodeError(f"{cls.__name__} has no version {version}")
        r, w = _Compiler(cls, version).struct_codec(cls.SCHEMA.name)  # type: ignore[attr-defined]
        c = _CODECS[key] = Codec(r, w, cls, version)
    return c


# Exceptions a malformed buffer can raise inside the generated readers; the entry
# points turn them into DecodeError so nothing else escapes a decode.
DECODE_FAILURES = (
    struct.error,
    IndexError,
    UnicodeDecodeError,
    ValueError,
    OverflowError,
    TypeError,
)
ENCODE_FAILURES = (
    struct.error,
    TypeError,
    AttributeError,
    ValueError,
    OverflowError,
    UnicodeEncodeError,
)


def decode_struct(cls: type, version: int, buf: Any, pos: int = 0) -> tuple[Any, int]:
    """Decode one top-level struct from buf at pos; (value, end position)."""
    c = codec(cls, version)
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    try:
        return c.read(mv, pos)
    except DecodeError:
        raise
    except DECODE_FAILURES as e:
        raise DecodeError(f"{cls.__name__} v{version}: malformed ({e})") from e


def encode_struct(cls: type, version: int, value: Any, out: bytearray, ext: list) -> None:
    """Append the encoding of value (an instance of cls) to out."""
    c = codec(cls, version)
    if not isinstance(value, cls):
        raise EncodeError(f"expected {cls.__name__}, got {type(value).__name__}")
    try:
        c.write(out, value, ext)
    except EncodeError:
        raise
    except ENCODE_FAILURES as e:
        raise EncodeError(f"{cls.__name__} v{version}: cannot encode ({e})") from e
