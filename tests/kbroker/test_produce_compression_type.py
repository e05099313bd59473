"""Produce honours the topic's compression.type: batches are stored in the topic's codec.

Kafka's LogValidator: "producer" keeps the producer's codec; a named codec
different from the batch's makes the broker rebuild the batch with it, keeping
offsets, producer fields, timestamps, keys, values and headers.
"""

from __future__ import annotations

import os
from typing import Any

import crc32c
import pytest

from kbroker.wire.errors import ErrorCode
from kbroker.wire.records import Record, build_batch, check_records, iter_records
from tests.kbroker.helpers import batches, create_topic, fetch, produce

CODEC = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def sample(n: int = 20, *, start: int = 0) -> list[Record]:
    """Records with keys, headers and distinct timestamps, compressible values."""
    return [
        Record(
            key=b"k%d" % i,
            value=b"value %d " % i + b"compressible " * 10,
            timestamp=1_700_000_000_000 + 7 * i,
            headers=[("trace", b"t%d" % i), ("nil", None)],
        )
        for i in range(start, start + n)
    ]


def consumed(data: Any) -> list[tuple[int, int, bytes | None, bytes | None, list]]:
    """(offset, timestamp, key, value, headers) of every fetched record."""
    buf = bytes(data or b"")
    out, pos = [], 0
    for h in batches(buf):
        out += [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in iter_records(buf, pos)]
        pos += h.size
    return out


def expected(recs: list[Record], first_offset: int = 0) -> list[tuple]:
    """What a consumer should read back for ``recs`` stored from ``first_offset``."""
    return [(first_offset + i, r.timestamp, r.key, r.value, r.headers) for i, r in enumerate(recs)]


@pytest.mark.parametrize("source", [0, 3], ids=["none", "lz4"])
@pytest.mark.parametrize("topic_codec", ["uncompressed", "gzip", "snappy", "lz4", "zstd"])
async def test_topic_codec_is_what_the_log_stores(
    server: Any, topic_codec: str, source: int
) -> None:
    create_topic(server, "t", configs={"compression.type": topic_codec})
    client = await server.connect()
    first, second = sample(20), sample(5, start=20)
    r1 = await produce(client, "t", 0, build_batch(first, compression=source))
    r2 = await produce(client, "t", 0, build_batch(second, compression=source))
    assert (r1.error_code, r1.base_offset) == (0, 0)
    assert (r2.error_code, r2.base_offset) == (0, 20)
    part = await fetch(client, server, "t", 0, 0)
    stored = batches(part.records)
    assert [h.compression for h in stored] == [CODEC[topic_codec]] * 2
    assert [(h.base_offset, h.records_count) for h in stored] == [(0, 20), (20, 5)]
    assert consumed(part.records) == expected(first + second)
    check_records(bytes(part.records))


async def test_default_producer_keeps_each_batch_codec(server: Any) -> None:
    create_topic(server, "p")
    client = await server.connect()
    for codec in (0, 1, 4):
        assert (
            await produce(client, "p", 0, build_batch(sample(3), compression=codec))
        ).error_code == 0
    part = await fetch(client, server, "p", 0, 0)
    assert [h.compression for h in batches(part.records)] == [0, 1, 4]


async def test_recompressed_batch_keeps_producer_fields_and_timestamps(server: Any) -> None:
    create_topic(server, "eos", configs={"compression.type": "zstd"})
    client = await server.connect()
    recs = sample(4)
    recs[2].timestamp = 1_600_000_000_000  # max timestamp is not the last record's
    data = build_batch(recs, producer_id=11, producer_epoch=2, base_sequence=0)
    assert (await produce(client, "eos", 0, data)).error_code == 0
    part = await fetch(client, server, "eos", 0, 0)
    (h,) = batches(part.records)
    assert h.compression == 4
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (11, 2, 0)
    assert (h.base_timestamp, h.max_timestamp, h.timestamp_type) == (
        recs[0].timestamp,
        max(r.timestamp for r in recs),
        0,
    )
    assert consumed(part.records) == expected(recs)


async def test_retried_idempotent_batch_is_deduplicated_after_recompression(server: Any) -> None:
    create_topic(server, "dup", configs={"compression.type": "gzip"})
    client = await server.connect()
    data = build_batch(sample(3), producer_id=5, producer_epoch=0, base_sequence=0)
    first = await produce(client, "dup", 0, data)
    retry = await produce(client, "dup", 0, data)
    assert (first.error_code, first.base_offset) == (0, 0)
    assert (retry.error_code, retry.base_offset) == (0, 0)
    part = await fetch(client, server, "dup", 0, 0)
    assert [h.records_count for h in batches(part.records)] == [3]


async def test_log_append_time_topic_stamps_the_recompressed_batch(server: Any) -> None:
    create_topic(
        server,
        "lat",
        configs={"compression.type": "lz4", "message.timestamp.type": "LogAppendTime"},
    )
    client = await server.connect()
    resp = await produce(client, "lat", 0, build_batch(sample(3)))
    assert resp.error_code == 0 and resp.log_append_time_ms > 0
    part = await fetch(client, server, "lat", 0, 0)
    (h,) = batches(part.records)
    assert (h.compression, h.timestamp_type, h.max_timestamp) == (3, 1, resp.log_append_time_ms)
    assert {r.timestamp for r in iter_records(bytes(part.records))} == {resp.log_append_time_ms}


async def test_batch_that_grows_past_max_message_bytes_is_rejected(server: Any) -> None:
    # Incompressible bytes get larger under gzip (header + trailer), so a batch
    # that fits uncompressed no longer fits once the broker rebuilds it.
    data = build_batch([Record(value=os.urandom(2000), timestamp=1)])
    create_topic(
        server, "big", configs={"compression.type": "gzip", "max.message.bytes": str(len(data))}
    )
    client = await server.connect()
    resp = await produce(client, "big", 0, data)
    assert resp.error_code == ErrorCode.MESSAGE_TOO_LARGE
    assert server.broker.topics.get("big").partitions[0].log.log_end_offset == 0


async def test_batch_whose_records_do_not_tile_it_is_rejected_not_recompressed(
    server: Any,
) -> None:
    create_topic(server, "bad", configs={"compression.type": "zstd"})
    client = await server.connect()
    # One record more announced than the batch holds, behind a valid CRC.
    good = build_batch([Record(key=b"k", value=b"v", timestamp=1)] * 2)
    bad = bytearray(good)
    bad[23:27] = (2).to_bytes(4, "big")  # last offset delta
    bad[57:61] = (3).to_bytes(4, "big")  # records count
    bad[17:21] = crc32c.crc32c(bytes(bad[21:])).to_bytes(4, "big")
    resp = await produce(client, "bad", 0, bytes(bad))
    assert resp.error_code == ErrorCode.INVALID_RECORD
    assert server.broker.topics.get("bad").partitions[0].log.log_end_offset == 0


async def test_zstd_topic_accepts_old_produce_versions(server: Any) -> None:
    # KIP-110 forbids zstd *from the producer* before Produce v7; the broker's own
    # recompression into zstd does not depend on the request version.
    create_topic(server, "old", configs={"compression.type": "zstd"})
    client = await server.connect()
    resp = await produce(client, "old", 0, build_batch(sample(2)), version=3)
    assert resp.error_code == 0
    part = await fetch(client, server, "old", 0, 0)
    assert [h.compression for h in batches(part.records)] == [4]


async def test_config_change_applies_to_the_next_produce(server: Any) -> None:
    create_topic(server, "alter")
    client = await server.connect()
    assert (await produce(client, "alter", 0, build_batch(sample(2)))).error_code == 0
    server.broker.topics.set_configs("alter", {"compression.type": "snappy"})
    assert (await produce(client, "alter", 0, build_batch(sample(2)))).error_code == 0
    part = await fetch(client, server, "alter", 0, 0)
    assert [h.compression for h in batches(part.records)] == [0, 2]


async def test_broker_compression_type_is_the_topic_default(make_server: Any) -> None:
    srv = await make_server(**{"compression.type": "gzip"})
    create_topic(srv, "inherits")
    create_topic(srv, "keeps", configs={"compression.type": "producer"})
    client = await srv.connect()
    for topic in ("inherits", "keeps"):
        assert (
            await produce(client, topic, 0, build_batch(sample(2), compression=3))
        ).error_code == 0
    inherits = await fetch(client, srv, "inherits", 0, 0)
    keeps = await fetch(client, srv, "keeps", 0, 0)
    assert [h.compression for h in batches(inherits.records)] == [1]
    assert [h.compression for h in batches(keeps.records)] == [3]


def varied(n: int = 300) -> list[Record]:
    """Text-like values that compress differently at different levels."""
    import random

    rnd = random.Random(5)
    words = [
        bytes(rnd.choice(b"abcdefghij klmnop") for _ in range(rnd.randint(2, 8)))
        for _ in range(300)
    ]
    return [
        Record(
            key=b"k%d" % i,
            value=b" ".join(rnd.choice(words) for _ in range(60)),
            timestamp=1_700_000_000_000 + i,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("codec", "low", "high"), [("gzip", 1, 9), ("lz4", 1, 12), ("zstd", 1, 19)]
)
async def test_compression_level_applies_when_the_broker_compresses(
    server: Any, codec: str, low: int, high: int
) -> None:
    # KIP-390: compression.<codec>.level is the level the broker compresses at; a
    # higher level stores the same records in fewer bytes.
    recs = varied()
    sizes = {}
    for level in (low, high):
        topic = f"{codec}-{level}"
        create_topic(
            server,
            topic,
            configs={"compression.type": codec, f"compression.{codec}.level": str(level)},
        )
        client = await server.connect()
        assert (await produce(client, topic, 0, build_batch(recs))).error_code == 0
        part = await fetch(client, server, topic, 0, 0)
        [stored] = batches(part.records)
        assert stored.compression == CODEC[codec]
        assert consumed(part.records) == expected(recs)
        check_records(bytes(part.records))
        sizes[level] = stored.size
    assert sizes[high] < sizes[low]


async def test_compression_level_does_not_recompress_a_batch_already_in_the_codec(
    server: Any,
) -> None:
    # LogValidator recompresses only when the codecs differ; the level alone never does.
    create_topic(
        server, "same", configs={"compression.type": "zstd", "compression.zstd.level": "19"}
    )
    client = await server.connect()
    sent = build_batch(varied(50), compression=4)
    assert (await produce(client, "same", 0, sent)).error_code == 0
    part = await fetch(client, server, "same", 0, 0)
    assert bytes(part.records)[61:] == sent[61:]  # the records section as the producer sent it
