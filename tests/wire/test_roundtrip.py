"""Property-based round trips for every declared message, version and direction."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.wire import protocol
from kbroker.wire.codec import decode_struct, encode_struct
from kbroker.wire.errors import DecodeError
from kbroker.wire.messages import (
    ALL,
    API_DECLS,
    DATA_DECLS,
    REQUESTS,
    RESPONSES,
    ControlledShutdownRequest,
)
from tests.wire.strategies import struct_strategy

CASES = [
    pytest.param(d.name, v, id=f"{d.name}-v{v}")
    for d in API_DECLS + DATA_DECLS
    for v in range(d.versions.lo, d.versions.hi + 1)
]
SETTINGS = settings(
    max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def _encode(cls: type, version: int, value: object) -> bytes:
    out = bytearray()
    encode_struct(cls, version, value, out, [])
    return bytes(out)


@pytest.mark.parametrize(("name", "version"), CASES)
def test_round_trip_and_truncation(name: str, version: int) -> None:
    cls = ALL[name]

    @SETTINGS
    @given(struct_strategy(cls, name, version))
    def check(value: object) -> None:
        data = _encode(cls, version, value)
        back, end = decode_struct(cls, version, data)
        assert end == len(data)
        assert back == value
        assert _encode(cls, version, back) == data
        # Fed every proper prefix, the decoder raises DecodeError and nothing else.
        for cut in range(len(data)):
            with pytest.raises(DecodeError):
                decode_struct(cls, version, data[:cut])

    check()


API_CASES = [
    (k, v)
    for k in sorted(REQUESTS)
    for v in range(*protocol.SUPPORTED[k][:1], protocol.SUPPORTED[k][1] + 1)
]


@pytest.mark.parametrize(("key", "version"), API_CASES)
@settings(SETTINGS, max_examples=3)
@given(data=st.data())
def test_request_and_response_frames(key: int, version: int, data: st.DataObject) -> None:
    req_cls, resp_cls = REQUESTS[key], RESPONSES[key]
    req = data.draw(struct_strategy(req_cls, req_cls.__name__, version))
    client_id = data.draw(st.none() | st.text(max_size=6))
    frame = protocol.encode_request(key, version, 42, client_id, req)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    header, body = protocol.decode_request(frame[4:])
    assert (header.request_api_key, header.request_api_version) == (key, version)
    # Header v0 (ControlledShutdown v0 only) has no ClientId: it reads back as the default "".
    sent_id = client_id if protocol.request_header_version(key, version) >= 1 else ""
    assert header.correlation_id == 42 and header.client_id == sent_id
    assert body == req
    # Kafka ignores trailing bytes after a request body; so do we.
    assert protocol.decode_request(frame[4:] + b"\x00junk")[1] == req
    resp = data.draw(struct_strategy(resp_cls, resp_cls.__name__, version))
    rframe = protocol.encode_response(key, version, 7, resp)
    assert int.from_bytes(rframe[:4], "big") == len(rframe) - 4
    assert protocol.decode_response(key, version, rframe[4:]) == (7, resp)


def test_controlled_shutdown_v0_uses_request_header_v0() -> None:
    # Kafka's ApiKeys.requestHeaderVersion: ControlledShutdown v0 predates ClientId, so
    # its header is api key, version and correlation id only (8 bytes) before the body.
    req = REQUESTS[ControlledShutdownRequest.API_KEY](broker_id=3)
    frame = protocol.encode_request(7, 0, 9, "ignored", req)
    assert frame[4:] == b"\x00\x07\x00\x00\x00\x00\x00\x09\x00\x00\x00\x03"
    header, body = protocol.decode_request(frame[4:])
    assert (header.correlation_id, header.client_id, body.broker_id) == (9, "", 3)
