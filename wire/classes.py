"""Message classes built from the declarations (``wire.schema``).

``make_message_class`` builds slotted keyword-only dataclasses from a
``MessageDecl`` (the struct classes hang flat off the top-level class); every
field has a default (``default_value``). ``wire.stubs`` renders their typed stub
from the same declarations.
"""

from __future__ import annotations

import dataclasses
import operator
import uuid
from collections.abc import Callable
from typing import Any

from kbroker.wire.schema import FieldDecl, MessageDecl

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
