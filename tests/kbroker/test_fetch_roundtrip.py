"""Property: whatever records a client produces, a fetch returns them unchanged.

Runs the real handlers in-process (no sockets) but through the codec both ways,
so each example is a Produce and a Fetch frame as a client would send them.
"""

from __future__ import annotations

import tempfile
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.broker import BrokerState
from kbroker.config import BrokerConfig
from kbroker.handlers import RequestContext
from kbroker.handlers.fetch import handle_fetch
from kbroker.handlers.produce import handle_produce
from kbroker.wire.errors import ErrorCode
from kbroker.wire.protocol import decode_request, decode_response, encode_request, encode_response
from kbroker.wire.records import Record, build_batch, iter_records, parse_header
from tests.kbroker.helpers import fetch_request, produce_request

optional_bytes = st.none() | st.binary(max_size=64)
record_st = st.builds(
    Record,
    key=optional_bytes,
    value=optional_bytes,
    headers=st.lists(st.tuples(st.text(max_size=8), optional_bytes), max_size=3),
    timestamp=st.integers(min_value=0, max_value=2**41),
)
batch_st = st.tuples(st.lists(record_st, min_size=1, max_size=8), st.sampled_from([0, 1, 2, 3, 4]))


async def _call(broker: BrokerState, handler: Any, body: Any, version: int) -> Any:
    """One request through the codec and the handler, back through the codec."""
    frame = encode_request(body.API_KEY, version, 7, "prop", body)
    header, request = decode_request(frame[4:])
    ctx = RequestContext(broker, header, version, "test", ("127.0.0.1", 0))
    response = await handler(ctx, request)
    out = encode_response(body.API_KEY, version, header.correlation_id, response)
    return decode_response(body.API_KEY, version, out[4:])[1]


def _fetched(data: Any) -> list[Any]:
    buf = bytes(data or b"")
    out, pos = [], 0
    while pos < len(buf):
        h = parse_header(buf, pos)
        out += [(r.key, r.value, r.headers, r.timestamp) for r in iter_records(buf, pos)]
        pos += h.size
    return out


@settings(max_examples=20, deadline=None)
@given(
    batches=st.lists(batch_st, min_size=1, max_size=4),
    produce_version=st.sampled_from([3, 7, 9, 11]),
    fetch_version=st.sampled_from([4, 7, 11, 12]),
)
def test_produced_records_come_back_unchanged(
    batches: list[Any], produce_version: int, fetch_version: int
) -> None:
    if produce_version < 7:
        batches = [(recs, 0 if codec == 4 else codec) for recs, codec in batches]  # zstd needs v7

    async def scenario(data_dir: str) -> None:
        config = BrokerConfig.from_properties(
            {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": data_dir}
        )
        broker = BrokerState(config)
        try:
            broker.topics.create("prop", 1, {})
            offset = 0
            for recs, codec in batches:
                data = build_batch(recs, compression=codec)
                req = produce_request("prop", 0, data, timeout_ms=1000)
                resp = await _call(broker, handle_produce, req, produce_version)
                part = resp.responses[0].partition_responses[0]
                assert (part.error_code, part.base_offset) == (0, offset)
                offset += len(recs)
            fetch = fetch_request("prop", 0, 0, max_bytes=1 << 24, partition_max_bytes=1 << 24)
            resp = await _call(broker, handle_fetch, fetch, fetch_version)
            part = resp.responses[0].partitions[0]
            assert part.high_watermark == offset
            if fetch_version < 10 and any(codec == 4 for _, codec in batches):
                # KIP-110: zstd is refused to fetch versions that predate it.
                assert part.error_code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
                assert _fetched(part.records) == []
                return
            expected = [
                (r.key, r.value, [(k, v) for k, v in r.headers], r.timestamp)
                for recs, _ in batches
                for r in recs
            ]
            got = [(k, v, [(hk, hv) for hk, hv in h], ts) for k, v, h, ts in _fetched(part.records)]
            assert got == expected
        finally:
            broker.close()

    with tempfile.TemporaryDirectory() as data_dir:
        trio.run(scenario, data_dir)
