"""Produce over the wire (RawClient): acks, per-partition errors, validation, timestamps."""

from __future__ import annotations

from typing import Any

import pytest

from kbroker.wire.errors import ErrorCode
from kbroker.wire.protocol import encode_request
from kbroker.wire.records import Record, build_batch
from tests.kbroker.helpers import (
    LATEST,
    batches,
    create_topic,
    fetch,
    fetched_records,
    list_offset,
    log_end,
    produce,
    produce_request,
    records,
)

# -- tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 5, 8, 11])
async def test_produce_then_fetch_back_identical_records(server: Any, version: int) -> None:
    create_topic(server, "t")
    client = await server.connect()
    first = await produce(client, "t", 0, records(3), version=version)
    second = await produce(client, "t", 0, records(2, start=3), version=version)
    assert (first.error_code, first.base_offset) == (0, 0)
    assert (second.error_code, second.base_offset) == (0, 3)
    assert second.log_append_time_ms == -1  # CreateTime topic
    if version >= 5:
        assert second.log_start_offset == 0
    part = await fetch(client, server, "t", 0, 0)
    assert fetched_records(part.records) == [(i, b"k%d" % i, b"v%d" % i) for i in range(5)]


@pytest.mark.parametrize("compression", [1, 2, 3, 4], ids=["gzip", "snappy", "lz4", "zstd"])
async def test_compressed_batches_are_stored_and_fetched_back(
    server: Any, compression: int
) -> None:
    create_topic(server, "c")
    client = await server.connect()
    data = records(50, compression=compression)
    resp = await produce(client, "c", 0, data)
    assert resp.error_code == 0
    part = await fetch(client, server, "c", 0, 0)
    (h,) = batches(part.records)
    assert h.compression == compression  # stored as sent (compression.type=producer)
    assert [v for _, _, v in fetched_records(part.records)] == [b"v%d" % i for i in range(50)]


async def test_zstd_before_produce_v7_is_rejected(server: Any) -> None:
    create_topic(server, "z")
    client = await server.connect()
    resp = await produce(client, "z", 0, records(compression=4), version=6)
    assert resp.error_code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    assert log_end(server, "z") == 0


async def test_corrupted_crc_writes_nothing_and_spares_other_partitions(server: Any) -> None:
    create_topic(server, "crc", partitions=2)
    client = await server.connect()
    bad = bytearray(records(3))
    bad[-1] ^= 0x55
    resp = await client.request(produce_request("crc", 0, bytes(bad), extra=[(1, records(2))]))
    p0, p1 = resp.responses[0].partition_responses
    assert (p0.index, p0.error_code, p0.base_offset) == (0, ErrorCode.CORRUPT_MESSAGE, -1)
    assert (p1.index, p1.error_code, p1.base_offset) == (1, 0, 0)
    assert log_end(server, "crc", 0) == 0
    assert log_end(server, "crc", 1) == 2


async def test_batch_over_topic_max_message_bytes_is_message_too_large(server: Any) -> None:
    create_topic(server, "big", configs={"max.message.bytes": "200"})
    client = await server.connect()
    big = build_batch([Record(key=b"k", value=b"x" * 500, timestamp=1)])
    resp = await produce(client, "big", 0, big)
    assert resp.error_code == ErrorCode.MESSAGE_TOO_LARGE
    assert log_end(server, "big") == 0
    ok = await produce(client, "big", 0, records(1))
    assert ok.error_code == 0


async def test_unknown_topic_is_not_auto_created_by_produce(server: Any) -> None:
    client = await server.connect()
    resp = await produce(client, "nope", 0, records())
    assert resp.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert resp.base_offset == -1
    assert server.broker.topics.get("nope") is None


async def test_unknown_partition_is_unknown_topic_or_partition(server: Any) -> None:
    create_topic(server, "p1")
    client = await server.connect()
    resp = await produce(client, "p1", 3, records())
    assert resp.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


async def test_invalid_acks_answers_every_partition_and_writes_nothing(server: Any) -> None:
    create_topic(server, "acks")
    client = await server.connect()
    resp = await produce(client, "acks", 0, records(), acks=2)
    assert resp.error_code == ErrorCode.INVALID_REQUIRED_ACKS
    assert log_end(server, "acks") == 0


async def test_acks_0_gets_no_response_but_is_written(server: Any) -> None:
    create_topic(server, "fire")
    client = await server.connect()
    req = produce_request("fire", 0, records(4), acks=0)
    await client.send_raw(encode_request(0, 9, 4242, "test", req))
    # The next request on the connection gets its own answer first: nothing
    # was sent for the acks=0 produce (the client would choke on it).
    assert (await list_offset(client, "fire", LATEST)).offset == 4


async def test_log_append_time_topic_stamps_batches(server: Any) -> None:
    create_topic(server, "lat", configs={"message.timestamp.type": "LogAppendTime"})
    client = await server.connect()
    resp = await produce(client, "lat", 0, records(3, ts=5))
    assert resp.error_code == 0
    assert resp.log_append_time_ms > 1_000_000_000_000  # a wall-clock time, not the record's 5
    part = await fetch(client, server, "lat", 0, 0)
    (h,) = batches(part.records)
    assert h.timestamp_type == 1
    assert h.max_timestamp == resp.log_append_time_ms


@pytest.mark.parametrize("version", [7, 8, 11])
async def test_null_key_on_compacted_topic_is_invalid_record(server: Any, version: int) -> None:
    create_topic(server, "cmp", configs={"cleanup.policy": "compact"})
    client = await server.connect()
    data = build_batch(
        [Record(key=b"a", value=b"1", timestamp=1), Record(key=None, value=b"2", timestamp=2)]
    )
    resp = await produce(client, "cmp", 0, data, version=version)
    assert resp.error_code == ErrorCode.INVALID_RECORD
    if version >= 8:  # KIP-467 record errors
        assert [e.batch_index for e in resp.record_errors] == [1]
        assert "without key" in resp.record_errors[0].batch_index_error_message
        assert resp.error_message
    assert log_end(server, "cmp") == 0


async def test_internal_topic_rejects_client_produce(server: Any) -> None:
    server.broker.topics.create_internal("__consumer_offsets")
    client = await server.connect()
    resp = await produce(client, "__consumer_offsets", 0, records())
    assert resp.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


async def test_acks_all_with_min_insync_replicas_2_is_not_enough_replicas(server: Any) -> None:
    create_topic(server, "isr", configs={"min.insync.replicas": "2"})
    client = await server.connect()
    resp = await produce(client, "isr", 0, records(), acks=-1)
    assert resp.error_code == ErrorCode.NOT_ENOUGH_REPLICAS
    assert log_end(server, "isr") == 0
    # acks=1 does not wait for the ISR.
    assert (await produce(client, "isr", 0, records(), acks=1)).error_code == 0


async def test_idempotent_batches_are_stored_with_their_producer_fields(server: Any) -> None:
    create_topic(server, "eos")
    client = await server.connect()
    data = records(2, producer_id=9, producer_epoch=0, base_sequence=0)
    resp = await produce(client, "eos", 0, data)
    assert resp.error_code == 0
    part = await fetch(client, server, "eos", 0, 0)
    (h,) = batches(part.records)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (9, 0, 0)


async def test_topic_config_changes_apply_to_the_next_produce(server: Any) -> None:
    create_topic(server, "alter")
    client = await server.connect()
    big = build_batch([Record(key=b"k", value=b"x" * 500, timestamp=1)])
    assert (await produce(client, "alter", 0, big)).error_code == 0
    server.broker.topics.set_configs(
        "alter", {"max.message.bytes": "100", "message.timestamp.type": "LogAppendTime"}
    )
    assert (await produce(client, "alter", 0, big)).error_code == ErrorCode.MESSAGE_TOO_LARGE
    stamped = await produce(client, "alter", 0, records(1))
    assert (stamped.error_code, stamped.base_offset) == (0, 1)
    assert stamped.log_append_time_ms > 0


async def test_per_record_checks_follow_the_topic_config_from_the_next_produce(
    server: Any,
) -> None:
    # Whether a batch's records are walked (keys of a compacted topic, timestamp bounds)
    # is derived once per topic settings: an altered config must switch it both ways.
    create_topic(server, "walk")
    client = await server.connect()
    keyless = build_batch([Record(value=b"v", timestamp=1)])
    assert (await produce(client, "walk", 0, keyless)).error_code == 0
    server.broker.topics.set_configs("walk", {"cleanup.policy": "compact"})
    assert (await produce(client, "walk", 0, keyless)).error_code == ErrorCode.INVALID_RECORD
    server.broker.topics.set_configs("walk", {"message.timestamp.before.max.ms": "60000"})
    # Timestamp 1 (1970) is far outside a minute's bound; the key no longer matters.
    assert (await produce(client, "walk", 0, keyless)).error_code == ErrorCode.INVALID_TIMESTAMP
    server.broker.topics.set_configs("walk", {})
    part = await produce(client, "walk", 0, keyless)
    assert (part.error_code, part.base_offset) == (0, 1)


async def test_a_recreated_topic_is_produced_to_with_its_own_configs(server: Any) -> None:
    # Produce settings are cached per topic; the new topic of the same name must not
    # inherit the deleted one's (a max.message.bytes both ways, a timestamp type).
    create_topic(server, "again", configs={"max.message.bytes": "100"})
    client = await server.connect()
    big = build_batch([Record(key=b"k", value=b"x" * 500, timestamp=1)])
    assert (await produce(client, "again", 0, big)).error_code == ErrorCode.MESSAGE_TOO_LARGE
    server.broker.topics.delete("again")
    create_topic(server, "again", configs={"message.timestamp.type": "LogAppendTime"})
    stamped = await produce(client, "again", 0, big)
    assert (stamped.error_code, stamped.base_offset) == (0, 0)
    assert stamped.log_append_time_ms > 0
    server.broker.topics.delete("again")
    create_topic(server, "again", configs={"max.message.bytes": "100"})
    assert (await produce(client, "again", 0, big)).error_code == ErrorCode.MESSAGE_TOO_LARGE
