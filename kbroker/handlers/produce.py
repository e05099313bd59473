"""Produce (api key 0): validate each partition's record batch, append it, answer per partition.

How it works: every partition is judged on its own, in the order Kafka's
KafkaApis / ReplicaManager / UnifiedLog / LogValidator check it, and a partition
that fails any check gets its error code while nothing is written for it; the
other partitions of the same request are unaffected. A valid batch is appended
as received (the log only rewrites base offset, leader epoch and, for
LogAppendTime topics, the max timestamp) and fetchers parked in a long poll
are woken. acks=0 gets no response at all.

The request producers send most (one topic, one partition, acks=1 or all, on a
single node without an authorizer) is recognised first and served without the
general loop, by the same per-partition helpers; every other request, and every
failure to recognise it, goes to handle_produce_request.

Idempotent and transactional batches (KIP-98) are checked against the
partition's producer state first (kbroker.txn.service.check_producer_batch):
a retried batch is answered with its original offsets and not written again.

The topic's compression.type (falling back to the broker's compression.type)
is applied after validation, as Kafka's LogValidator does: "producer" keeps
the producer's codec; a named codec ("uncompressed", "gzip", "snappy", "lz4",
"zstd") that differs from the batch's makes the broker rebuild the batch with
it (wire.records.recompress_batch), and a rebuilt batch is checked against
max.message.bytes again (UnifiedLog.append re-validates sizes when
messageSizeMaybeChanged). A recompression uses the topic's level for its codec
(KIP-390: compression.gzip.level, compression.lz4.level, compression.zstd.level,
each falling back to the broker setting, defaults as in wire.compression.
DEFAULT_LEVELS); a level alone never triggers a recompression, in Kafka either:
only a different codec does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from kbroker.authz.acl import Operation, ResourceType
from kbroker.authz.checks import allowed, authorizer_of
from kbroker.errors import KafkaApiError
from kbroker.handlers import CloseConnection, RequestContext, handles
from kbroker.handlers.partitions import (
    error_code_of,
    leader_epoch,
    led_partition,
    local_log,
    lookup_topic,
    point_to_leaders,
    topic_value,
)
from kbroker.quotas import PRODUCER_BYTE_RATE, QuotaManager, quota_manager
from kbroker.replication.partition import ReplicatedPartition
from kbroker.topics import Partition, Topic
from kbroker.txn.service import check_producer_batch
from kbroker.wire import records as wire_records
from kbroker.wire.compression import CODEC_NAMES, DEFAULT_LEVELS, NONE, ZSTD
from kbroker.wire.errors import ErrorCode, InvalidRecordBatch
from kbroker.wire.messages import ProduceRequest, ProduceResponse
from kbroker.wire.produce import NO_LEADER, new_produce_answer

logger = logging.getLogger(__name__)

# Kafka lets only its own admin client write to internal topics
# (KafkaApis: internalTopicsAllowed = clientId == AdminUtils.ADMIN_CLIENT_ID).
ADMIN_CLIENT_ID = "__admin_client"

# compression.type values (Kafka's BrokerCompressionType) → codec id; "producer"
# (the default) maps to None: keep whatever codec the producer used. The codecs keep
# their own names, except that "none" is spelled "uncompressed" here.
_TARGET_CODECS: dict[str, int | None] = {
    "producer": None,
    "uncompressed": NONE,
    **{name: codec for codec, name in CODEC_NAMES.items() if codec != NONE},
}
_LOG_APPEND_TIME = 1
_LOG_OVERHEAD = wire_records.LOG_OVERHEAD
_COMPRESSION_MASK = wire_records.ATTR_COMPRESSION_MASK
_CONTROL = wire_records.ATTR_CONTROL
_LOG_APPEND_TIME_FLAG = wire_records.ATTR_TIMESTAMP_TYPE
_MAGIC_POS = wire_records.MAGIC_POS
_MAGIC = wire_records.MAGIC
# Read once: an Enum member lookup goes through the enum's metaclass (~75 ns on
# CPython 3.11), and the topic check runs for every topic of every Produce request.
_WRITE = Operation.WRITE
_TOPIC = ResourceType.TOPIC
_NO_TIMESTAMP = -1
# The Java default for the timestamp bounds (Long.MAX_VALUE): no check.
_NO_BOUND = 2**63 - 1


@dataclass(slots=True)
class RejectedBatch(Exception):
    """A partition's records fail validation: the code, message and record errors Kafka answers."""

    code: ErrorCode
    message: str | None = None
    record_errors: list[tuple[int, str]] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class ProduceSettings:
    """The topic settings Produce validation needs."""

    max_message_bytes: int = 1048588
    compacted: bool = False
    log_append_time: bool = False
    timestamp_before_max_ms: int = _NO_BOUND
    timestamp_after_max_ms: int = _NO_BOUND
    min_insync_replicas: int = 1
    target_compression: int | None = None  # codec the topic stores; None = producer's
    target_level: int | None = None  # its compression.<codec>.level (KIP-390); None = default
    # Whether the broker checks ACLs (authorizer.class.name is set): a static broker
    # setting, kept here so that handle_produce reads it with the topic's settings.
    authorize: bool = False
    # Whether LogValidator.validateRecord has per-record work whatever the batch says
    # (keys on a compacted topic, timestamp bounds): derived once per settings, not
    # per batch. A batch stamped LogAppendTime by its producer is walked as well.
    walk_records: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        walk = (
            self.compacted
            or self.timestamp_before_max_ms != _NO_BOUND
            or self.timestamp_after_max_ms != _NO_BOUND
        )
        object.__setattr__(self, "walk_records", walk)


def validate_produce_records(
    records: Any, *, version: int, settings: ProduceSettings, now_ms: int = 0
) -> wire_records.BatchHeader:
    """Validate one partition's Produce ``records`` the way Kafka does; raise RejectedBatch.

    Order follows Kafka: ProduceRequest.validateRecords (exactly one magic-2
    batch, no zstd before v7), UnifiedLog.analyzeAndValidateRecords (base offset
    0, max.message.bytes, CRC), then LogValidator (offset range vs count, no
    control batches, sequence set with producer id, per-record checks).
    """
    # The header's fields are read once (one unpack) and its size, codec and control
    # flag computed from them, not read through BatchHeader's properties: each read is
    # a Python call or a lookup, and this runs for every batch of every Produce request
    # (a request served after the broker idled pays for each with cold caches).
    n = 0 if records is None else len(records)
    if n == 0:
        raise RejectedBatch(
            ErrorCode.INVALID_RECORD,
            f"Produce requests with version {version} must have at least one record batch per partition",
        )
    buf = memoryview(records)
    # Produce v3+ accepts only magic 2 (message format v2).
    if n > _MAGIC_POS and buf[_MAGIC_POS] != _MAGIC:
        raise RejectedBatch(
            ErrorCode.INVALID_RECORD,
            f"Produce requests with version {version} are only allowed to contain record "
            "batches with magic version 2",
        )
    try:
        header = wire_records.parse_header(buf, 0)
    except InvalidRecordBatch as exc:
        raise RejectedBatch(ErrorCode(exc.error_code)) from exc
    (
        base_offset,
        batch_length,
        _,
        _,
        _,
        attributes,
        last_offset_delta,
        _,
        _,
        producer_id,
        _,
        base_sequence,
        records_count,
    ) = header
    size = batch_length + _LOG_OVERHEAD
    if size > n:
        # A truncated batch: the Java batch iterator finds no complete batch and
        # the broker reports a corrupt request.
        raise RejectedBatch(ErrorCode.CORRUPT_MESSAGE)
    if size < n:
        raise RejectedBatch(
            ErrorCode.INVALID_RECORD,
            f"Produce requests with version {version} are only allowed to contain exactly "
            "one record batch",
        )
    compression = attributes & _COMPRESSION_MASK
    if compression == ZSTD and version < 7:
        # KIP-110: zstd needs Produce v7+.
        raise RejectedBatch(
            ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
            f"Produce requests with version {version} are not allowed to use ZStandard compression",
        )
    if base_offset != 0:
        raise RejectedBatch(
            ErrorCode.INVALID_RECORD,
            f"The baseOffset of the record batch in the append should be 0, but it is "
            f"{base_offset}",
        )
    if size > settings.max_message_bytes:
        # Kafka compares the whole batch (log overhead included) to max.message.bytes.
        raise RejectedBatch(ErrorCode.MESSAGE_TOO_LARGE)
    try:
        wire_records.validate_batch(buf, 0, header)
    except InvalidRecordBatch as exc:
        code = ErrorCode(exc.error_code)
        raise RejectedBatch(code, None if code == ErrorCode.CORRUPT_MESSAGE else str(exc)) from exc
    # LogValidator.validateBatch, client-origin rules.
    if last_offset_delta < 0:
        raise RejectedBatch(ErrorCode.INVALID_RECORD, "Batch has an invalid offset range")
    if records_count <= 0:
        raise RejectedBatch(
            ErrorCode.INVALID_RECORD,
            f"Invalid reported count for record batch: {records_count}",
        )
    if last_offset_delta + 1 != records_count:
        raise RejectedBatch(
            ErrorCode.INVALID_RECORD,
            f"Inconsistent batch offset range [0, {last_offset_delta}] and count of "
            f"records {records_count}",
        )
    if attributes & _CONTROL:
        raise RejectedBatch(
            ErrorCode.INVALID_RECORD, "Clients are not allowed to write control records"
        )
    if producer_id >= 0 and base_sequence < 0:
        raise RejectedBatch(
            ErrorCode.INVALID_RECORD,
            f"Invalid sequence number {base_sequence} in record batch with producerId "
            f"{producer_id}",
        )
    walk = settings.walk_records or attributes & _LOG_APPEND_TIME_FLAG
    try:
        if compression == NONE and not walk:
            # Uncompressed: the records must tile the batch (Java's batch iterator);
            # the CRC checked above covers the bytes inside each record. Kafka's
            # LogValidator also parses every field of every record, which costs
            # ~15x more per record here and is what made 100 B produce CPU-bound;
            # it is skipped (see check_record_framing). When records are walked
            # anyway (compacted topic, timestamp bounds, LogAppendTime), do it in full.
            wire_records.check_record_framing(buf, 0, header)
        else:
            # Deep check: decompress, walk every record, counts and offset deltas.
            wire_records.check_records(buf, 0)
    except InvalidRecordBatch as exc:
        raise RejectedBatch(ErrorCode(exc.error_code), str(exc)) from exc
    if walk:
        _validate_each_record(buf, header, settings, now_ms)
    return header


def _validate_each_record(
    buf: memoryview, header: wire_records.BatchHeader, settings: ProduceSettings, now_ms: int
) -> None:
    """LogValidator.validateRecord: keys on compacted topics, timestamps; collects record errors."""
    bounded = (
        settings.timestamp_before_max_ms != _NO_BOUND
        or settings.timestamp_after_max_ms != _NO_BOUND
    )
    batch_lat = header.timestamp_type == _LOG_APPEND_TIME
    if not (settings.compacted or bounded or batch_lat):
        return  # nothing per-record to check: skip the second decompression
    errors: list[tuple[int, str]] = []
    bad_timestamp = False
    for index, record in enumerate(wire_records.iter_records(buf, 0)):
        if settings.compacted and record.key is None:
            errors.append((index, "Compacted topic cannot accept message without key"))
            continue
        if not settings.log_append_time and record.timestamp != _NO_TIMESTAMP:
            diff = now_ms - record.timestamp
            if diff > settings.timestamp_before_max_ms or -diff > settings.timestamp_after_max_ms:
                bad_timestamp = True
                errors.append(
                    (
                        index,
                        f"Timestamp {record.timestamp} of message with offset {record.offset} is "
                        f"out of range. The timestamp should be within "
                        f"[{now_ms - settings.timestamp_before_max_ms}, "
                        f"{now_ms + settings.timestamp_after_max_ms}]",
                    )
                )
        elif batch_lat:
            # Only the broker may stamp LogAppendTime.
            bad_timestamp = True
            errors.append(
                (
                    index,
                    "Invalid timestamp type in message. Producer should not set timestamp "
                    "type to LogAppendTime.",
                )
            )
    if not errors:
        return
    # LogValidator.processRecordErrors: any timestamp error wins over INVALID_RECORD.
    if bad_timestamp:
        raise RejectedBatch(
            ErrorCode.INVALID_TIMESTAMP,
            "One or more records have been rejected due to invalid timestamp",
            errors,
        )
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in errors[:3])
    raise RejectedBatch(
        ErrorCode.INVALID_RECORD,
        f"One or more records have been rejected due to {len(errors)} record errors in total, "
        f"and only showing the first three errors at most: [{shown}]",
        errors,
    )


def produce_settings(ctx: RequestContext, topic: Topic) -> ProduceSettings:
    """The ProduceSettings of ``topic``, cached on it until its config overrides are replaced."""
    cached = topic.produce_settings
    # TopicManager.set_configs installs a new overrides dict, so identity tells
    # whether the cached settings are still current. (Broker settings, the
    # fallbacks, are static: kbroker refuses dynamic broker config changes.) On the
    # topic itself rather than in a WeakKeyDictionary: that lookup built a weak
    # reference per request.
    if cached is not None and cached[0] is topic.configs:
        return cached[1]  # type: ignore[return-value]
    settings = _compute_settings(ctx, topic)
    topic.produce_settings = (topic.configs, settings)
    return settings


def _compute_settings(ctx: RequestContext, topic: Topic) -> ProduceSettings:
    before = topic_value(ctx, topic, "message.timestamp.before.max.ms")
    after = topic_value(ctx, topic, "message.timestamp.after.max.ms")
    # KIP-937: the deprecated message.timestamp.difference.max.ms still bounds
    # both sides when the newer before/after settings are left at their default.
    diff = topic_value(ctx, topic, "message.timestamp.difference.max.ms")
    codec_name = str(topic_value(ctx, topic, "compression.type"))
    return ProduceSettings(
        authorize=authorizer_of(ctx.broker) is not None,
        max_message_bytes=int(topic_value(ctx, topic, "max.message.bytes")),
        compacted="compact" in topic_value(ctx, topic, "cleanup.policy"),
        log_append_time=topic_value(ctx, topic, "message.timestamp.type") == "LogAppendTime",
        timestamp_before_max_ms=int(diff if before == _NO_BOUND else before),
        timestamp_after_max_ms=int(diff if after == _NO_BOUND else after),
        min_insync_replicas=int(topic_value(ctx, topic, "min.insync.replicas")),
        target_compression=_TARGET_CODECS[codec_name],
        # The codecs with levels (KIP-390) each have a compression.<codec>.level setting.
        target_level=(
            int(topic_value(ctx, topic, f"compression.{codec_name}.level"))
            if _TARGET_CODECS[codec_name] in DEFAULT_LEVELS
            else None
        ),
    )


def apply_compression_type(
    records: Any, header: wire_records.BatchHeader, settings: ProduceSettings
) -> tuple[Any, wire_records.BatchHeader]:
    """The validated batch in the topic's codec (recompressed only if it differs); raise RejectedBatch.

    LogValidator.validateMessagesAndAssignOffsetsCompressed: offsets are
    assigned in place only when source and target codecs match; otherwise the
    batch is rebuilt with the target codec (buildRecordsAndAssignOffsets).
    """
    target = settings.target_compression
    if target is None or target == header.compression or header.is_control:
        return records, header
    # validate_produce_records has checked the records already (deep walk, or
    # for a plain uncompressed batch framing + CRC, see check_record_framing), so
    # the rebuild does not walk them again: the walk costs ~3 us per record,
    # 10x more than zstd-compressing them (1 MiB of 100 B records: 30 ms vs 2.5 ms).
    try:
        rebuilt = wire_records.recompress_batch(
            records, 0, target, deep_check=False, level=settings.target_level
        )
    except InvalidRecordBatch as exc:
        raise RejectedBatch(ErrorCode(exc.error_code), str(exc)) from exc
    new_header = wire_records.parse_header(rebuilt, 0)
    if new_header.size > settings.max_message_bytes:
        # UnifiedLog.append: a batch whose size may have changed (recompression)
        # is checked against max.message.bytes again (RecordTooLargeException).
        raise RejectedBatch(ErrorCode.MESSAGE_TOO_LARGE)
    return rebuilt, new_header


@handles(ProduceRequest.API_KEY, 3, 11)
async def handle_produce(ctx: RequestContext, request: ProduceRequest) -> ProduceResponse | None:
    """Append each partition's batch; answer per partition (nothing at all for acks=0)."""
    # The request a producer sends most: one topic, one partition, acks=1 or all, on a
    # single node with no authorizer. It is served here without the general loop's lists
    # and per-topic branches (every request is served after the broker idled a few ms,
    # with cold caches, so each call and object costs several times its warm price).
    # Only the recognition is special: the partition is appended, checked and answered
    # by the same helpers as in handle_produce_request; anything else goes there.
    acks = request.acks
    topic_data = request.topic_data
    broker = ctx.broker
    if (acks == 1 or acks == -1) and len(topic_data) == 1 and broker.cluster is None:
        only = topic_data[0]
        asked = only.partition_data
        topic = broker.topics.topics.get(only.name)
        if topic is not None and len(asked) == 1:
            try:
                settings = produce_settings(ctx, topic)
            except Exception:  # noqa: BLE001 - the general path answers it per partition
                return await handle_produce_request(ctx, request)
            data = asked[0]
            index = data.index
            partitions = topic.partitions
            if not settings.authorize and 0 <= index < len(partitions):
                partition = partitions[index]
                version = ctx.api_version
                response, resp = new_produce_answer(only.name, index)
                waits = None
                try:
                    required = _produce_partition(
                        ctx,
                        topic,
                        partition,
                        data.records,
                        resp,
                        version,
                        acks,
                        settings,
                        request.transactional_id,
                    )
                    if acks == -1 and partition.replica is not None:
                        waits = [(resp, partition.replica, required, settings.min_insync_replicas)]
                except Exception as exc:  # noqa: BLE001 - every failure is a per-partition answer
                    _answer_failure(resp, exc, version)
                if waits:
                    await _wait_for_acks(request, waits)
                quotas = quota_manager(broker)
                if quotas.quotas:  # with none set (the usual case) there is nothing to count
                    _record_quota(ctx, quotas, request)
                response.throttle_time_ms = ctx.throttle_ms
                return response
    return await handle_produce_request(ctx, request)


async def handle_produce_request(
    ctx: RequestContext, request: ProduceRequest
) -> ProduceResponse | None:
    """Any Produce request: each topic's checks, then each partition's; the answer."""
    version = ctx.api_version
    acks = request.acks
    responses = []
    # acks=all appends on a replicated partition wait for the ISR (DelayedProduce).
    waits: list[tuple[Any, ReplicatedPartition, int, int]] = []
    # KafkaApis.handleProduceRequest: transactional records need Write on their
    # transactional id, and each topic needs Write. With no authorizer configured
    # (authorizer.class.name, a static setting) every check answers yes: none is made.
    acls = authorizer_of(ctx.broker) is not None
    txn_id = request.transactional_id
    txn_denied = (
        acls
        and txn_id is not None
        and not allowed(ctx, _WRITE, ResourceType.TRANSACTIONAL_ID, txn_id)
    )
    for topic_data in request.topic_data:
        parts = []
        settings: ProduceSettings | None = None
        topic: Topic | None = None
        topic_error: ErrorCode | None = None
        if acks not in (0, 1, -1):
            # KafkaApis: every partition answers INVALID_REQUIRED_ACKS.
            topic_error = ErrorCode.INVALID_REQUIRED_ACKS
        elif txn_denied:
            topic_error = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        elif acls and not allowed(ctx, _WRITE, _TOPIC, topic_data.name):
            topic_error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        else:
            try:
                # Kafka never auto-creates topics on Produce (only Metadata does).
                topic = lookup_topic(ctx, topic_data.name)
            except Exception as exc:  # noqa: BLE001
                topic_error = error_code_of(exc)
        for partition_data in topic_data.partition_data:
            # log_append_time_ms and log_start_offset default to -1.
            resp = _PartitionResponse(
                index=partition_data.index, base_offset=-1, current_leader=NO_LEADER
            )
            if topic is None:
                resp.error_code = topic_error or ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                try:
                    partition = led_partition(ctx, topic, partition_data.index)
                    if settings is None:
                        settings = produce_settings(ctx, topic)
                    required = _produce_partition(
                        ctx,
                        topic,
                        partition,
                        partition_data.records,
                        resp,
                        version,
                        acks,
                        settings,
                        txn_id,
                    )
                    if acks == -1 and partition.replica is not None:
                        waits.append(
                            (resp, partition.replica, required, settings.min_insync_replicas)
                        )
                except Exception as exc:  # noqa: BLE001 - every failure is a per-partition answer
                    _answer_failure(resp, exc, version)
            parts.append(resp)
        responses.append(_TopicResponse(name=topic_data.name, partition_responses=parts))
    if waits:
        await _wait_for_acks(request, waits)
    quotas = quota_manager(ctx.broker)
    if quotas.quotas:  # with none set (the usual case) there is nothing to count
        _record_quota(ctx, quotas, request)
    if acks == 0:
        # The producer does not read a response to acks=0 (Kafka sends none). A
        # failure can only be signalled by closing the connection, as KafkaApis does,
        # so the client notices, refreshes its metadata and retries elsewhere.
        failed = [
            f"{t.name}-{p.index}: {ErrorCode(p.error_code).name}"
            for t in responses
            for p in t.partition_responses
            if p.error_code
        ]
        if failed:
            logger.info(
                "closing connection from %s: acks=0 produce (correlation id %d, "
                "client id %s) failed: %s",
                ctx.peer,
                ctx.correlation_id,
                ctx.client_id,
                ", ".join(failed),
            )
            raise CloseConnection
        return None
    response = ProduceResponse(responses=responses, throttle_time_ms=ctx.throttle_ms)
    if version >= 10 and ctx.broker.cluster is not None:
        response.node_endpoints = point_to_leaders(
            ctx,
            ((t.name, p.index, p) for t in responses for p in t.partition_responses),
            ProduceResponse,
        )
    return response


_PartitionResponse = ProduceResponse.PartitionProduceResponse
_TopicResponse = ProduceResponse.TopicProduceResponse


def _answer_failure(
    resp: ProduceResponse.PartitionProduceResponse, exc: Exception, version: int
) -> None:
    """Fill a partition's answer for the failure ``exc`` of its append."""
    if isinstance(exc, RejectedBatch):
        resp.error_code = exc.code
        if version >= 8:
            # record_errors / error_message exist from v8 (KIP-467).
            resp.error_message = exc.message
            resp.record_errors = [
                ProduceResponse.BatchIndexAndErrorMessage(
                    batch_index=i, batch_index_error_message=m
                )
                for i, m in exc.record_errors
            ]
        return
    resp.error_code = error_code_of(exc)
    if version >= 8 and isinstance(exc, KafkaApiError):
        resp.error_message = exc.message


async def _wait_for_acks(
    request: ProduceRequest, waits: list[tuple[Any, ReplicatedPartition, int, int]]
) -> None:
    """acks=all: each (answer, replica, offset, min ISR) waits for the ISR to reach the
    offset within the request's timeout (DelayedProduce); a failure is its answer's code."""
    deadline = trio.current_time() + max(0, request.timeout_ms) / 1000
    for resp, replica, required, min_isr in waits:
        error = await replica.wait_for_acks(
            required, deadline - trio.current_time(), min_insync_replicas=min_isr
        )
        if error:
            resp.error_code = error


def _record_quota(ctx: RequestContext, quotas: QuotaManager, request: ProduceRequest) -> None:
    """Produce byte-rate quota (KafkaApis: recorded after the append, acks=0 included)."""
    ctx.throttle_ms = quotas.record(
        PRODUCER_BYTE_RATE,
        ctx.principal,
        ctx.client_id or "",
        sum(len(p.records or b"") for t in request.topic_data for p in t.partition_data),
        trio.current_time(),
    )


def _produce_partition(
    ctx: RequestContext,
    topic: Topic,
    partition: Partition,
    records: Any,
    resp: ProduceResponse.PartitionProduceResponse,
    version: int,
    acks: int,
    settings: ProduceSettings,
    transactional_id: str | None,
) -> int:
    """Validate and append one partition's batch, filling ``resp``; the offset after it."""
    if topic.internal and ctx.client_id != ADMIN_CLIENT_ID:
        # ReplicaManager.appendToLocalLog rejects client writes to internal topics.
        raise KafkaApiError(
            ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic.name}"
        )
    replica = partition.replica
    if replica is not None:
        # Partition.appendRecordsToLeader: only the leader appends; acks=all needs
        # min.insync.replicas members in the ISR before anything is written.
        local_log(ctx, partition, -1)
        if acks == -1:
            replica.check_enough_replicas(settings.min_insync_replicas)
    elif acks == -1:
        min_isr = settings.min_insync_replicas
        if min_isr > 1:
            # One replica is the whole ISR; acks=all needs min.insync.replicas of them
            # (Partition.appendRecordsToLeader).
            raise KafkaApiError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"The size of the current ISR 1 is insufficient to satisfy the min.isr "
                f"requirement of {min_isr} for partition {topic.name}-{partition.index}",
            )
    broker = ctx.broker
    now_ms = int(broker.clock() * 1000)
    header = validate_produce_records(records, version=version, settings=settings, now_ms=now_ms)
    if settings.target_compression is not None:
        # Kafka's order: LogValidator (where recompression happens) runs before the
        # producer-state checks of UnifiedLog.analyzeAndValidateProducerState.
        records, header = apply_compression_type(records, header, settings)
    duplicate = check_producer_batch(broker, topic, partition, header, transactional_id, now_ms)
    if duplicate is not None:
        # Kafka >= 2.x answers a retried batch with its original offsets and
        # error NONE (not DUPLICATE_SEQUENCE_NUMBER), writing nothing.
        resp.base_offset = duplicate.first_offset
        resp.log_append_time_ms = -1
        resp.log_start_offset = partition.log.log_start_offset
        return duplicate.last_offset + 1
    result = partition.log.append(
        records,
        leader_epoch=replica.leader_epoch
        if replica is not None
        else leader_epoch(ctx, topic.name, partition.index),
        log_append_time=settings.log_append_time,
        header=header,
    )
    if replica is not None:
        replica.on_leader_append()
    broker.notify_append(partition)
    resp.base_offset = result.base_offset
    resp.log_append_time_ms = result.log_append_time_ms
    resp.log_start_offset = result.log_start_offset
    return result.last_offset + 1
