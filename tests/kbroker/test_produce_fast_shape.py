"""handle_produce's common shape (one topic, one partition) answers as the general path does.

handle_produce serves a request of one topic and one partition (acks=1 or all, single
node, no authorizer) without the general loop; every check and append is shared, only
the recognition differs. Each scenario below is a sequence of such requests sent to two
fresh brokers, one through handle_produce and one through the general
handle_produce_request: the encoded answers and the logs must be the same, and the
first broker must never have left the common shape's code for these requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kbroker.broker import BrokerState
from kbroker.config import BrokerConfig
from kbroker.handlers import RequestContext
from kbroker.handlers import produce as produce_handler
from kbroker.wire.compression import GZIP
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import ProduceRequest
from kbroker.wire.protocol import decode_request, decode_response, encode_request, encode_response
from kbroker.wire.records import Record, build_batch, build_control_batch
from tests.kbroker.helpers import produce_request, records

# (topic, partition, records, acks, version) sent in order.
Step = tuple[str, int, Any, int, int]


def _corrupt(batch: bytes) -> bytes:
    out = bytearray(batch)
    out[-1] ^= 0xFF  # a record byte: the CRC no longer matches
    return bytes(out)


def _based(batch: bytes, base_offset: int) -> bytes:
    return base_offset.to_bytes(8, "big") + batch[8:]


_KEYLESS = build_batch([Record(value=b"v", timestamp=1)])
_BIG = build_batch([Record(key=b"k", value=b"x" * 500, timestamp=1)])
_IDEMPOTENT = records(2, producer_id=7, producer_epoch=0, base_sequence=0)
_GAP = records(2, producer_id=7, producer_epoch=0, base_sequence=5)

SCENARIOS: dict[str, list[Step]] = {
    "appends": [("plain", 0, records(3), 1, v) for v in (3, 5, 8, 9, 11)]
    + [("plain", 0, records(1), -1, 11)],
    "bad crc": [("plain", 0, _corrupt(records(2)), 1, 11), ("plain", 0, records(1), 1, 11)],
    "null records": [("plain", 0, None, 1, 9)],
    "two batches": [("plain", 0, records(1) + records(1), 1, 11)],
    "base offset": [("plain", 0, _based(records(2), 5), 1, 11)],
    "control batch": [
        (
            "plain",
            0,
            build_control_batch(
                commit=True, producer_id=1, producer_epoch=0, coordinator_epoch=0, timestamp=1
            ),
            1,
            11,
        )
    ],
    "too large": [("small", 0, _BIG, 1, 11), ("small", 0, records(1), 1, 11)],
    "compacted keyless": [("compacted", 0, _KEYLESS, 1, v) for v in (7, 8, 11)],
    "timestamp bounds": [("bounded", 0, _KEYLESS, 1, 11)],
    "log append time": [("stamped", 0, records(2), 1, 11)],
    "recompressed": [("gzipped", 0, records(3), 1, 11), ("gzipped", 0, records(2), -1, 11)],
    "idempotent retry": [
        ("plain", 0, _IDEMPOTENT, -1, 11),
        ("plain", 0, _IDEMPOTENT, -1, 11),
        ("plain", 0, _GAP, -1, 11),
    ],
    "internal topic": [("__consumer_offsets", 0, records(1), 1, 11)],
    "min insync replicas": [("isr2", 0, records(1), -1, 11), ("isr2", 0, records(1), 1, 11)],
    "compressed batch": [("plain", 0, records(4, compression=GZIP), 1, 11)],
}


# The topics the scenarios use, by name: their config overrides.
TOPICS: dict[str, dict[str, str]] = {
    "plain": {},
    "small": {"max.message.bytes": "100"},
    "compacted": {"cleanup.policy": "compact"},
    "bounded": {"message.timestamp.before.max.ms": "60000"},
    "stamped": {"message.timestamp.type": "LogAppendTime"},
    "gzipped": {"compression.type": "gzip"},
    "isr2": {"min.insync.replicas": "2"},
}


def _broker(data_dir: Path, names: set[str]) -> BrokerState:
    config = BrokerConfig.from_properties(
        {
            "listeners": "PLAINTEXT://127.0.0.1:0",
            "log.dirs": str(data_dir),
            "offsets.topic.num.partitions": "1",
        }
    )
    # A frozen clock: LogAppendTime stamps and timestamp bounds agree on both brokers.
    broker = BrokerState(config, clock=lambda: 1_700_000_000.0)
    for name in sorted(names):
        if name == "__consumer_offsets":
            broker.topics.create_internal(name)
        else:
            broker.topics.create(name, 1, TOPICS[name])
    return broker


async def _answers(broker: BrokerState, handler: Any, steps: list[Step]) -> list[bytes]:
    out = []
    for n, (topic, partition, data, acks, version) in enumerate(steps):
        body = produce_request(topic, partition, data, acks=acks)
        frame = encode_request(ProduceRequest.API_KEY, version, n, "client", body)
        header, request = decode_request(frame[4:])
        ctx = RequestContext(broker, header, version, "test", ("127.0.0.1", 0))
        response = await handler(ctx, request)
        out.append(encode_response(ProduceRequest.API_KEY, version, n, response))
    return out


def _logs(broker: BrokerState) -> dict[str, tuple[int, bytes]]:
    out = {}
    for name in sorted(broker.topics.topics):
        log = broker.topics.topics[name].partitions[0].log
        out[name] = (log.log_end_offset, log.read(0, 1 << 20).read_bytes())
    return out


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_the_common_shape_answers_as_the_general_path(
    scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = SCENARIOS[scenario]
    names = {step[0] for step in steps}
    general = _broker(tmp_path / "general", names)
    fast = _broker(tmp_path / "fast", names)
    try:
        expected = await _answers(general, produce_handler.handle_produce_request, steps)

        async def general_path(ctx: Any, request: Any) -> Any:
            raise AssertionError("the common shape went to the general path")

        with monkeypatch.context() as patch:
            patch.setattr(produce_handler, "handle_produce_request", general_path)
            got = await _answers(fast, produce_handler.handle_produce, steps)
        assert got == expected
        assert _logs(fast) == _logs(general)
    finally:
        general.close()
        fast.close()


async def test_other_shapes_take_the_general_path(tmp_path: Path) -> None:
    # Two partitions, an unknown topic or partition, acks=0 or an invalid acks: the
    # general path answers (it alone knows these shapes' rules).
    broker = _broker(tmp_path, {"plain", "small", "stamped", "isr2"})
    taken = []
    general = produce_handler.handle_produce_request

    async def spy(ctx: Any, request: Any) -> Any:
        taken.append(request.topic_data[0].name)
        return await general(ctx, request)

    produce_handler.handle_produce_request = spy  # type: ignore[assignment]
    try:
        for body in (
            produce_request("plain", 0, records(1), acks=1, extra=[(1, records(1))]),
            produce_request("nope", 0, records(1), acks=1),
            produce_request("small", 4, records(1), acks=1),
            produce_request("stamped", 0, records(1), acks=0),
            produce_request("isr2", 0, records(1), acks=2),
        ):
            frame = encode_request(ProduceRequest.API_KEY, 11, 1, "client", body)
            header, request = decode_request(frame[4:])
            ctx = RequestContext(broker, header, 11, "test", ("127.0.0.1", 0))
            await produce_handler.handle_produce(ctx, request)
    finally:
        produce_handler.handle_produce_request = general  # type: ignore[assignment]
        broker.close()
    assert taken == ["plain", "nope", "small", "stamped", "isr2"]


async def test_settings_that_cannot_be_read_are_a_partition_error_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A topic whose produce settings cannot be computed: the general path answers
    # UNKNOWN_SERVER_ERROR for the partition (the connection stays up); the common shape
    # must answer the same, not fail the whole request.
    broker = _broker(tmp_path, {"plain"})

    def broken(ctx: Any, topic: Any) -> Any:
        raise RuntimeError("unreadable topic config")

    monkeypatch.setattr(produce_handler, "produce_settings", broken)
    try:
        steps: list[Step] = [("plain", 0, records(1), 1, 11)]
        got = await _answers(broker, produce_handler.handle_produce, steps)
        expected = await _answers(broker, produce_handler.handle_produce_request, steps)
    finally:
        broker.close()
    assert got == expected
    _, response = decode_response(ProduceRequest.API_KEY, 11, got[0][4:])
    assert response.responses[0].partition_responses[0].error_code == ErrorCode.UNKNOWN_SERVER_ERROR
