"""The schema DSL: how a Kafka message is declared, and its parse into declarations.

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

``parse_declarations`` turns that text into ``MessageDecl`` trees. From them,
``wire.classes`` builds the message classes and ``wire.codec`` compiles their
readers and writers.
"""

from __future__ import annotations

import dataclasses
import re

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
