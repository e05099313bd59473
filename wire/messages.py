"""Message classes, one per declared Kafka message, built from the declarations.

``from kbroker.wire.messages import ProduceRequest``; struct classes hang flat off the
top-level class (``ProduceResponse.PartitionProduceResponse``). Instances are
slotted keyword-only dataclasses whose every field has a default, plus
``unknown_tagged_fields`` (kept across decode/encode). Top-level API classes
carry ``API_KEY``; every top-level class carries ``SCHEMA`` (its declaration).
"""

from __future__ import annotations

from typing import Any

from kbroker.wire import _defs_api, _defs_data
from kbroker.wire.schema import MessageDecl, make_message_class, parse_declarations

API_DECLS: list[MessageDecl] = parse_declarations(_defs_api.DECLARATIONS)
DATA_DECLS: list[MessageDecl] = parse_declarations(_defs_data.DECLARATIONS)

# name -> class, for every declared message
ALL: dict[str, Any] = {}
# api key -> request / response class
REQUESTS: dict[int, Any] = {}
RESPONSES: dict[int, Any] = {}

for _decl in API_DECLS + DATA_DECLS:
    _cls = make_message_class(_decl, __name__)
    ALL[_decl.name] = _cls
    globals()[_decl.name] = _cls
    if _decl.kind == "request":
        REQUESTS[_decl.api_key] = _cls  # type: ignore[index]
    elif _decl.kind == "response":
        RESPONSES[_decl.api_key] = _cls  # type: ignore[index]
del _decl, _cls


def __getattr__(name: str) -> Any:
    """Only reached for names not built above: a clear error instead of a bare one.

    It also tells mypy (PEP 562) that the classes built at import exist, typed Any.
    """
    raise AttributeError(f"wire.messages has no message {name!r}")
