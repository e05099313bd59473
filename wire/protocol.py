"""Entry points of the codec: frames in, typed requests out; typed responses in, frames out.

A request frame (without its 4-byte size prefix) is a request header followed by
the body; which header version applies depends on the API and version, with the
quirks listed in ONE table below. Trailing bytes after a request body are
ignored, as Kafka's broker does (RequestContext.parseRequest reads the body with
the generated reader and never checks ``remaining()``).
"""

from __future__ import annotations

import struct
from typing import Any

from kbroker.wire.codec import decode_struct, encode_struct
from kbroker.wire.errors import DecodeError, EncodeError, UnsupportedVersion
from kbroker.wire.messages import (
    ALL,
    REQUESTS,
    RESPONSES,
    ApiVersionsRequest,
    ControlledShutdownRequest,
    ProduceRequest,
    RequestHeader,
    ResponseHeader,
)
from kbroker.wire.produce import (
    PRODUCE_FAST_VERSIONS,
    decode_produce_request,
    encode_produce_response,
)

API_VERSIONS: int = ApiVersionsRequest.API_KEY
_PRODUCE: int = ProduceRequest.API_KEY

# --- Protocol quirks: the one table ------------------------------------------------
# (1) KIP-511: the ApiVersions response always uses response header v0 (no tagged
#     fields), even for flexible versions, so a client that sent a version the
#     broker does not know can still parse the error reply.
RESPONSE_HEADER_V0_ALWAYS: frozenset[int] = frozenset({API_VERSIONS})
# (2) KIP-511: an ApiVersions request of a version newer than we know is parsed with
#     request header v2 (the newest), so the server can answer UNSUPPORTED_VERSION
#     with the right correlation id instead of dropping the connection.
TOO_NEW_REQUEST_HEADER: dict[int, int] = {API_VERSIONS: 2}
# (3) RequestHeader.ClientId is never a compact string, even in header v2
#     (RequestHeader.json: flexibleVersions "none" on the field, so old brokers can
#     read any ApiVersions header). Enforced by the declaration in wire/_defs_data.py.
# (4) Request header v0 (no ClientId) is only used by ControlledShutdown v0 (api key
#     7; Kafka's ApiKeys.requestHeaderVersion); every other request uses v1 or v2.
REQUEST_HEADER_V0: frozenset[tuple[int, int]] = frozenset({(ControlledShutdownRequest.API_KEY, 0)})
# (5) The consumer embedded protocol is forward compatible (KIP-429): a
#     Subscription/Assignment of a newer version than known is read with the
#     highest known one (Kafka's ConsumerProtocol.checkSubscriptionVersion).
FORWARD_COMPATIBLE_DATA: frozenset[str] = frozenset(
    {"ConsumerProtocolSubscription", "ConsumerProtocolAssignment"}
)
# ------------------------------------------------------------------------------------

# api key -> (min, max) version the codec implements: the declared ranges.
SUPPORTED: dict[int, tuple[int, int]] = {
    key: (cls.SCHEMA.versions.lo, cls.SCHEMA.versions.hi) for key, cls in REQUESTS.items()
}

# What a broker advertises in ApiVersions: SUPPORTED without a latest version that
# Kafka marks unstable (latestVersionUnstable; Kafka hides it unless
# unstable.api.versions.enable=true), e.g. EndTxn v5 and ConsumerGroupHeartbeat v1.
STABLE: dict[int, tuple[int, int]] = {
    key: (lo, hi - 1 if REQUESTS[key].SCHEMA.latest_unstable else hi)
    for key, (lo, hi) in SUPPORTED.items()
}

if (
    not SUPPORTED[_PRODUCE][0]
    <= PRODUCE_FAST_VERSIONS[0]
    <= PRODUCE_FAST_VERSIONS[1]
    <= (SUPPORTED[_PRODUCE][1])
):
    # decode_request hands Produce frames to the fast path before checking the version.
    raise ImportError("wire.produce reads Produce versions the codec does not support")

_HDR = struct.Struct(">hhi")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")


def request_class(api_key: int) -> type:
    """The request class of an API key (KeyError if not declared)."""
    return REQUESTS[api_key]


def response_class(api_key: int) -> type:
    """The response class of an API key (KeyError if not declared)."""
    return RESPONSES[api_key]


def _flexible(api_key: int, api_version: int) -> bool:
    return api_version in REQUESTS[api_key].SCHEMA.flexible


def request_header_version(api_key: int, api_version: int) -> int:
    """Request header version for an (api key, version): 2 if flexible, else 1 (quirk 4)."""
    if (api_key, api_version) in REQUEST_HEADER_V0:
        return 0
    return 2 if _flexible(api_key, api_version) else 1


def response_header_version(api_key: int, api_version: int) -> int:
    """Response header version: 1 if flexible, else 0; ApiVersions always 0 (quirk 1)."""
    if api_key in RESPONSE_HEADER_V0_ALWAYS:
        return 0
    return 1 if _flexible(api_key, api_version) else 0


def _supported(api_key: int, api_version: int) -> bool:
    rng = SUPPORTED.get(api_key)
    return rng is not None and rng[0] <= api_version <= rng[1]


def decode_request(frame: Any) -> tuple[Any, Any]:
    """Decode a request frame (no size prefix) into (RequestHeader, request body)."""
    mv = frame if type(frame) is memoryview else memoryview(frame)
    if len(mv) < 8:
        raise DecodeError(f"request of {len(mv)} bytes is shorter than a request header")
    api_key, api_version, correlation_id = _HDR.unpack_from(mv, 0)
    if api_key == _PRODUCE:
        # The ordinary Produce frame, read in one pass (wire.produce; it reads only
        # supported versions, checked at import); anything else about it goes through
        # the generic codec below.
        fast = decode_produce_request(mv)
        if fast is not None:
            return fast
    if not _supported(api_key, api_version):
        too_new = TOO_NEW_REQUEST_HEADER.get(api_key)
        if too_new is not None and api_version > SUPPORTED[api_key][1]:
            decode_struct(RequestHeader, too_new, mv, 0)  # a malformed header is a DecodeError
        raise UnsupportedVersion(api_key, api_version, correlation_id)
    header, pos = decode_struct(RequestHeader, request_header_version(api_key, api_version), mv, 0)
    body, _ = decode_struct(REQUESTS[api_key], api_version, mv, pos)
    return header, body


def _check(api_key: int, api_version: int) -> None:
    if not _supported(api_key, api_version):
        raise EncodeError(f"api key {api_key} version {api_version} is not supported")


def _response_parts(
    api_key: int, api_version: int, correlation_id: int, body: Any
) -> tuple[bytearray, list[tuple[int, Any]]]:
    _check(api_key, api_version)
    out = bytearray(4)
    ext: list[tuple[int, Any]] = []
    encode_struct(
        ResponseHeader,
        response_header_version(api_key, api_version),
        ResponseHeader(correlation_id=correlation_id),
        out,
        ext,
    )
    encode_struct(RESPONSES[api_key], api_version, body, out, ext)
    size = len(out) - 4 + sum(len(obj) for _, obj in ext)
    out[0:4] = _I32.pack(size)
    return out, ext


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Any) -> bytes:
    """Encode a full response frame: size prefix, response header, body."""
    out, ext = _response_parts(api_key, api_version, correlation_id, body)
    if not ext:
        return bytes(out)
    return b"".join(bytes(p) for p in _split(out, ext))


def encode_response_parts(
    api_key: int, api_version: int, correlation_id: int, body: Any
) -> list[Any]:
    """Like encode_response, but records values that are not bytes-like (file regions)
    stay separate list items so the server can sendfile them; the size prefix counts them."""
    if api_key == _PRODUCE:
        fast = encode_produce_response(api_version, correlation_id, body)
        if fast is not None:
            return [fast]
    out, ext = _response_parts(api_key, api_version, correlation_id, body)
    if not ext:
        return [bytes(out)]
    return _split(out, ext)


def _split(out: bytearray, ext: list[tuple[int, Any]]) -> list[Any]:
    parts: list[Any] = []
    start = 0
    for off, obj in ext:
        if off > start:
            parts.append(bytes(out[start:off]))
        parts.append(obj)
        start = off
    if start < len(out):
        parts.append(bytes(out[start:]))
    return parts


def encode_request(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None, body: Any
) -> bytes:
    """Encode a full request frame (size prefix, request header, body); for tests and tools."""
    _check(api_key, api_version)
    out = bytearray(4)
    ext: list[tuple[int, Any]] = []
    header = RequestHeader(
        request_api_key=api_key,
        request_api_version=api_version,
        correlation_id=correlation_id,
        client_id=client_id,
    )
    encode_struct(RequestHeader, request_header_version(api_key, api_version), header, out, ext)
    encode_struct(REQUESTS[api_key], api_version, body, out, ext)
    if ext:
        out = bytearray(b"".join(bytes(p) for p in _split(out, ext)))
    out[0:4] = _I32.pack(len(out) - 4)
    return bytes(out)


def decode_response(api_key: int, api_version: int, frame: Any) -> tuple[int, Any]:
    """Decode a response frame (no size prefix) into (correlation_id, body)."""
    if not _supported(api_key, api_version):
        raise UnsupportedVersion(api_key, api_version, -1)
    mv = frame if isinstance(frame, memoryview) else memoryview(frame)
    header, pos = decode_struct(
        ResponseHeader, response_header_version(api_key, api_version), mv, 0
    )
    body, _ = decode_struct(RESPONSES[api_key], api_version, mv, pos)
    return header.correlation_id, body


def _data_class(cls: type) -> type:
    if not hasattr(cls, "SCHEMA") or ALL.get(cls.SCHEMA.name) is not cls:
        raise EncodeError(f"{cls!r} is not a declared message class")
    return cls


def encode_data(cls: type, version: int, value: Any) -> bytes:
    """Encode an embedded/record schema struct (no version prefix)."""
    out = bytearray()
    ext: list[tuple[int, Any]] = []
    encode_struct(_data_class(cls), version, value, out, ext)
    if ext:
        raise EncodeError("records values are not allowed in data schemas")
    return bytes(out)


def decode_data(cls: type, version: int, buf: Any) -> Any:
    """Decode an embedded/record schema struct (no version prefix); trailing bytes ignored."""
    _data_class(cls)
    if version not in cls.SCHEMA.versions:  # type: ignore[attr-defined]
        raise DecodeError(f"{cls.__name__} has no version {version}")
    value, _ = decode_struct(cls, version, buf, 0)
    return value


def encode_versioned_data(cls: type, version: int, value: Any) -> bytes:
    """Encode as written in __consumer_offsets / __transaction_state and the consumer
    embedded protocol: an int16 version followed by the struct."""
    return _I16.pack(version) + encode_data(cls, version, value)


def decode_versioned_data(cls: type, buf: Any) -> tuple[int, Any]:
    """Decode an int16 version followed by the struct; returns (version, value)."""
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    if len(mv) < 2:
        raise DecodeError(f"{cls.__name__}: missing version")
    (version,) = _I16.unpack_from(mv, 0)
    rng = cls.SCHEMA.versions  # type: ignore[attr-defined]
    if version > rng.hi and cls.SCHEMA.name in FORWARD_COMPATIBLE_DATA:  # type: ignore[attr-defined]
        version = rng.hi  # quirk 5
    return version, decode_data(cls, version, mv[2:])
