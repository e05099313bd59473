"""The one generic codec: readers and writers compiled per (message class, version).

``codec(cls, version)`` compiles, once per (message, version), a reader and a writer
from the class's declaration (``cls.SCHEMA``, see ``wire.schema``): straight-line
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
import struct
import uuid
from collections.abc import Callable
from typing import Any

from kbroker.wire.classes import default_value
from kbroker.wire.errors import DecodeError, EncodeError
from kbroker.wire.schema import FieldDecl, MessageDecl

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
