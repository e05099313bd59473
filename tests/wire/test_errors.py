"""Kafka's error-code table and the codec's error tree."""

from __future__ import annotations

import confluent_kafka
import kafka.errors

from kbroker.wire.errors import (
    DecodeError,
    ErrorCode,
    FrameTooLarge,
    InvalidRecordBatch,
    ProtocolError,
)


def test_codes_are_contiguous_from_minus_one() -> None:
    # Kafka never leaves gaps in its table; a gap here means a missed code.
    assert sorted(int(c) for c in ErrorCode) == list(range(-1, len(ErrorCode) - 1))
    assert max(ErrorCode) >= 133


def test_well_known_codes() -> None:
    assert ErrorCode.NONE == 0
    assert ErrorCode.UNKNOWN_SERVER_ERROR == -1
    assert ErrorCode.CORRUPT_MESSAGE == 2
    assert ErrorCode.UNKNOWN_TOPIC_OR_PARTITION == 3
    assert ErrorCode.NOT_LEADER_OR_FOLLOWER == 6
    assert ErrorCode.MESSAGE_TOO_LARGE == 10
    assert ErrorCode.INVALID_TOPIC_EXCEPTION == 17
    assert ErrorCode.TOPIC_ALREADY_EXISTS == 36
    assert ErrorCode.UNSUPPORTED_COMPRESSION_TYPE == 76
    assert ErrorCode.INVALID_RECORD == 87
    assert ErrorCode.UNKNOWN_TOPIC_ID == 100


def test_names_agree_with_librdkafka() -> None:
    # librdkafka names broker errors after Kafka's Errors enum (with a few
    # historical spellings); every code it knows must be ours under that name.
    renamed = {
        "NOT_LEADER_FOR_PARTITION": "NOT_LEADER_OR_FOLLOWER",
        "MSG_SIZE_TOO_LARGE": "MESSAGE_TOO_LARGE",
        "TOPIC_EXCEPTION": "INVALID_TOPIC_EXCEPTION",
        "INVALID_MSG": "CORRUPT_MESSAGE",
        "UNKNOWN": "UNKNOWN_SERVER_ERROR",
        "NO_ERROR": "NONE",
        "INVALID_MSG_SIZE": "INVALID_FETCH_SIZE",
        "STALE_CTRL_EPOCH": "STALE_CONTROLLER_EPOCH",
        "UNKNOWN_TOPIC_OR_PART": "UNKNOWN_TOPIC_OR_PARTITION",
    }
    checked = 0
    for name in dir(confluent_kafka.KafkaError):
        code = getattr(confluent_kafka.KafkaError, name)
        if name.startswith("_") or not isinstance(code, int) or not -1 <= code < 1000:
            continue
        if code in {int(c) for c in ErrorCode}:
            ours = ErrorCode(code).name
            assert ours == renamed.get(name, name), (name, code)
            checked += 1
    assert checked > 100


def test_retriable_matches_client_libraries_where_they_agree_with_java() -> None:
    retriable = {c for c in ErrorCode if c.retriable}
    for c in (
        ErrorCode.CORRUPT_MESSAGE,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.UNKNOWN_TOPIC_ID,
        ErrorCode.CONCURRENT_TRANSACTIONS,
    ):
        assert c in retriable, c
    for c in (
        ErrorCode.NONE,
        ErrorCode.UNKNOWN_SERVER_ERROR,
        ErrorCode.OFFSET_OUT_OF_RANGE,
        ErrorCode.INVALID_RECORD,
        ErrorCode.TOPIC_ALREADY_EXISTS,
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.PRODUCER_FENCED,
        ErrorCode.UNSUPPORTED_VERSION,
    ):
        assert c not in retriable, c
    # kafka-python mirrors Java's flags for most codes; it deviates on
    # CORRUPT_MESSAGE (retriable in Java since CorruptRecordException extends
    # RetriableException).
    py = {
        e.errno: e.retriable
        for e in kafka.errors.BrokerResponseError.__subclasses__()
        if getattr(e, "errno", None) is not None
    }
    differ = {c for c in ErrorCode if c in py and py[c] != c.retriable}
    assert differ == {ErrorCode.CORRUPT_MESSAGE}
    assert len(py) > 100


def test_error_tree() -> None:
    assert issubclass(FrameTooLarge, DecodeError)
    assert issubclass(InvalidRecordBatch, DecodeError)
    assert issubclass(DecodeError, ProtocolError)
    e = InvalidRecordBatch("x", ErrorCode.INVALID_RECORD)
    assert e.error_code == 87
