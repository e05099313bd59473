"""Transaction APIs: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
WriteTxnMarkers, TxnOffsetCommit, DescribeProducers, DescribeTransactions,
ListTransactions.

Each handler translates between the wire messages and the synchronous
``TransactionCoordinator`` (kbroker.txn.coordinator). Version quirks live
here: KIP-588 introduced PRODUCER_FENCED (90), and Kafka answers older request
versions INVALID_PRODUCER_EPOCH (47) instead because their clients do not know
the new code (InitProducerId < 4, AddPartitionsToTxn / AddOffsetsToTxn /
EndTxn < 2, TxnOffsetCommit < 2 — KafkaApis).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import trio

from kbroker.authz.acl import Operation, ResourceType
from kbroker.authz.checks import allowed, allowed_cluster, filter_allowed, may_write_any_topic
from kbroker.cluster.producer_ids import ClusterProducerIds
from kbroker.coordinator.group import partition_for
from kbroker.coordinator.offsets import OffsetAndMetadata
from kbroker.coordinator.service import coordinator_for, group_loading
from kbroker.errors import KafkaApiError
from kbroker.handlers import RequestContext, handles
from kbroker.handlers.groups import (
    KEY_TYPE_GROUP,
    coordinator_write_replicated,
)
from kbroker.handlers.partitions import (
    partition_errors,
    refused_partitions,
    requested_partitions,
)
from kbroker.internal_topics import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kbroker.replication.leader_writes import wait_replicated
from kbroker.txn import offsets as txn_offsets
from kbroker.txn.coordinator import InitResult, Outcome, TxnMetadata, TxnState
from kbroker.txn.service import (
    MARKER_ACKS_TIMEOUT_S,
    poll,
    producer_ids,
    txn_coordinator,
    txn_coordinators,
    txn_loading,
    write_markers,
)
from kbroker.txn.service import loading as txn_partitions_loading
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    DescribeProducersRequest,
    DescribeProducersResponse,
    DescribeTransactionsRequest,
    DescribeTransactionsResponse,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ListTransactionsRequest,
    ListTransactionsResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
    WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def _answer(outcome: Outcome[T]) -> T:
    """The coordinator's answer once its ``__transaction_state`` writes are complete
    (replicated to the ISR in cluster mode; at once on a single node)."""
    if not outcome.done:
        written = trio.Event()
        outcome.on_done(lambda _answer: written.set())
        await written.wait()
    return outcome.result()


def _fenced_code(code: int, version: int, first_fenced_version: int) -> int:
    """PRODUCER_FENCED for clients that know it, INVALID_PRODUCER_EPOCH for older ones."""
    if code == ErrorCode.PRODUCER_FENCED and version < first_fenced_version:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return code


def _storage_failure(exc: Exception) -> ErrorCode:
    """A failed __transaction_state or marker write: retriable, as Kafka's failed coordinator append."""
    logger.warning("transaction coordinator write failed: %s", exc)
    return ErrorCode.COORDINATOR_NOT_AVAILABLE


def _ensure_state_topic(ctx: RequestContext) -> None:
    # Kafka creates __transaction_state when the coordinator is first needed.
    ctx.broker.topics.create_internal(TRANSACTION_STATE_TOPIC)


# --- InitProducerId (22) -----------------------------------------------------------------


@handles(InitProducerIdRequest.API_KEY, 0, 5)
async def handle_init_producer_id(
    ctx: RequestContext, request: InitProducerIdRequest
) -> InitProducerIdResponse:
    """A new producer id (idempotent), or the transactional id's id with a bumped epoch."""
    version = ctx.api_version
    tid = request.transactional_id
    expected_pid = request.producer_id if version >= 3 else -1
    expected_epoch = request.producer_epoch if version >= 3 else -1
    # KafkaApis.handleInitProducerIdRequest: Write on the transactional id; without one,
    # IdempotentWrite on the cluster (Kafka 3.x also accepts Write on any topic).
    if tid is not None:
        denied = not allowed(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, tid)
        code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    else:
        denied = not (allowed_cluster(ctx, Operation.IDEMPOTENT_WRITE) or may_write_any_topic(ctx))
        code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    if denied:
        return InitProducerIdResponse(throttle_time_ms=0, error_code=code, producer_id=-1)
    cluster = ctx.broker.cluster
    if cluster is not None:
        from kbroker.cluster.coordinators import KEY_TYPE_TRANSACTION, leads_coordinator

        if tid is not None and not leads_coordinator(cluster, KEY_TYPE_TRANSACTION, tid):
            return InitProducerIdResponse(
                throttle_time_ms=0, error_code=ErrorCode.NOT_COORDINATOR, producer_id=-1
            )
        pids = producer_ids(ctx.broker)
        if isinstance(pids, ClusterProducerIds):
            try:
                await pids.ensure()
            except Exception as exc:  # noqa: BLE001 - ZooKeeper unreachable: retriable
                logger.warning("cannot take a producer id block: %s", exc)
                return InitProducerIdResponse(
                    throttle_time_ms=0,
                    error_code=ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                    producer_id=-1,
                )
    try:
        if tid is not None and cluster is None:
            _ensure_state_topic(ctx)
        if tid is None and cluster is not None:
            # An idempotent producer: any broker hands out a producer id, whatever
            # transactional ids it coordinates.
            outcome = Outcome.of(InitResult(ErrorCode.NONE, producer_ids(ctx.broker).next_id(), 0))
        else:
            try:
                tc = txn_coordinator(ctx.broker, tid)
            except KafkaApiError as exc:
                # COORDINATOR_LOAD_IN_PROGRESS while the id's partition loads
                # (TransactionStateManager.getTransactionState): the producer retries.
                outcome = Outcome.of(InitResult(exc.code))
            else:
                outcome = tc.init_producer_id(
                    tid, request.transaction_timeout_ms, expected_pid, expected_epoch
                )
    except Exception as exc:  # noqa: BLE001 - answered in the body
        outcome = Outcome.of(InitResult(ErrorCode(_storage_failure(exc))))
    result = await _answer(outcome)
    return InitProducerIdResponse(
        throttle_time_ms=0,
        error_code=_fenced_code(result.error, version, 4),
        producer_id=result.producer_id,
        producer_epoch=result.producer_epoch,
    )


# --- AddPartitionsToTxn (24) ------------------------------------------------------------


@handles(AddPartitionsToTxnRequest.API_KEY, 0, 5)
async def handle_add_partitions_to_txn(
    ctx: RequestContext, request: AddPartitionsToTxnRequest
) -> AddPartitionsToTxnResponse:
    """Add partitions to a transaction; v4+ batches transactions and has a verify-only form."""
    version = ctx.api_version
    R = AddPartitionsToTxnResponse
    if version <= 3:
        results = await _add_partitions(
            ctx,
            request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id,
            request.v3_and_below_producer_epoch,
            request.v3_and_below_topics,
            False,
            version,
        )
        return R(throttle_time_ms=0, results_by_topic_v3_and_below=results)
    by_txn = [
        R.AddPartitionsToTxnResult(
            transactional_id=t.transactional_id,
            topic_results=await _add_partitions(
                ctx,
                t.transactional_id,
                t.producer_id,
                t.producer_epoch,
                t.topics,
                t.verify_only,
                version,
            ),
        )
        for t in request.transactions
    ]
    return R(throttle_time_ms=0, error_code=0, results_by_transaction=by_txn)


async def _add_partitions(
    ctx: RequestContext,
    tid: str,
    pid: int,
    epoch: int,
    topics: list[Any],
    verify_only: bool,
    version: int,
) -> list[Any]:
    wanted = [(t.name, p) for t in topics for p in t.partitions]
    # KafkaApis.handleAddPartitionsToTxnRequest: Write on the transactional id, then on
    # each topic (a refused topic fails the request, the rest OPERATION_NOT_ATTEMPTED).
    refused = _txn_refusal(ctx, tid)
    if refused is not None:
        return _partition_results(topics, dict.fromkeys(wanted, refused))
    tc = txn_coordinator(ctx.broker, tid)
    codes = refused_partitions(ctx, Operation.WRITE, wanted)
    if codes:
        # KafkaApis: if any partition is unknown, none is added; the others are
        # answered OPERATION_NOT_ATTEMPTED.
        for tp in wanted:
            codes.setdefault(tp, ErrorCode.OPERATION_NOT_ATTEMPTED)
    elif verify_only:
        codes.update(tc.verify_partitions(tid, pid, epoch, wanted))
    else:
        try:
            added = tc.add_partitions(tid, pid, epoch, wanted)
        except Exception as exc:  # noqa: BLE001 - answered in the body
            added = Outcome.of(_storage_failure(exc))
        code = await _answer(added)
        codes.update(dict.fromkeys(wanted, _fenced_code(code, version, 2)))
    return _partition_results(topics, codes)


def _partition_results(topics: list[Any], codes: dict[tuple[str, int], int]) -> list[Any]:
    R = AddPartitionsToTxnResponse
    out: dict[str, list[Any]] = {}
    for t in topics:
        out.setdefault(t.name, [])
        for p in t.partitions:
            out[t.name].append(
                R.AddPartitionsToTxnPartitionResult(
                    partition_index=p, partition_error_code=codes[(t.name, p)]
                )
            )
    return [
        R.AddPartitionsToTxnTopicResult(name=name, results_by_partition=parts)
        for name, parts in out.items()
    ]


# --- AddOffsetsToTxn (25) -----------------------------------------------------------------


def _offsets_partition(ctx: RequestContext, group_id: str) -> int:
    cluster = ctx.broker.cluster
    if cluster is not None:
        from kbroker.cluster.coordinators import KEY_TYPE_GROUP, coordinator_partition

        return coordinator_partition(cluster, KEY_TYPE_GROUP, group_id)[1]
    topic = ctx.broker.topics.create_internal(OFFSETS_TOPIC)
    return partition_for(group_id, len(topic.partitions))


def _txn_elsewhere(ctx: RequestContext, transactional_id: str | None) -> bool:
    """Cluster mode: another broker coordinates this transactional id (NOT_COORDINATOR)."""
    cluster = ctx.broker.cluster
    if cluster is None or transactional_id is None:
        return False
    from kbroker.cluster.coordinators import KEY_TYPE_TRANSACTION, leads_coordinator

    return not leads_coordinator(cluster, KEY_TYPE_TRANSACTION, transactional_id)


def _txn_refusal(ctx: RequestContext, transactional_id: str) -> ErrorCode | None:
    """Why the coordinator may not act on ``transactional_id`` for this request:
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED without Write on it (KafkaApis), NOT_COORDINATOR
    when another broker coordinates it, COORDINATOR_LOAD_IN_PROGRESS while its
    ``__transaction_state`` partition is still loading here
    (TransactionStateManager.getTransactionState); None when it may."""
    if not allowed(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    if _txn_elsewhere(ctx, transactional_id):
        return ErrorCode.NOT_COORDINATOR
    if txn_loading(ctx.broker, transactional_id):
        return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    return None


@handles(AddOffsetsToTxnRequest.API_KEY, 0, 4)
async def handle_add_offsets_to_txn(
    ctx: RequestContext, request: AddOffsetsToTxnRequest
) -> AddOffsetsToTxnResponse:
    """Add the group's __consumer_offsets partition to the transaction."""
    if not allowed(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        return AddOffsetsToTxnResponse(
            throttle_time_ms=0, error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        )
    if not allowed(ctx, Operation.READ, ResourceType.GROUP, request.group_id):
        return AddOffsetsToTxnResponse(
            throttle_time_ms=0, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED
        )
    if _txn_elsewhere(ctx, request.transactional_id):
        return AddOffsetsToTxnResponse(throttle_time_ms=0, error_code=ErrorCode.NOT_COORDINATOR)
    if txn_loading(ctx.broker, request.transactional_id):
        return AddOffsetsToTxnResponse(
            throttle_time_ms=0, error_code=ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        )
    tc = txn_coordinator(ctx.broker, request.transactional_id)
    tp = (OFFSETS_TOPIC, _offsets_partition(ctx, request.group_id))
    try:
        added = tc.add_partitions(
            request.transactional_id, request.producer_id, request.producer_epoch, [tp]
        )
    except Exception as exc:  # noqa: BLE001 - answered in the body
        added = Outcome.of(_storage_failure(exc))
    code = await _answer(added)
    return AddOffsetsToTxnResponse(
        throttle_time_ms=0, error_code=_fenced_code(code, ctx.api_version, 2)
    )


# --- EndTxn (26) -------------------------------------------------------------------------------


@handles(EndTxnRequest.API_KEY, 0, 4)
async def handle_end_txn(ctx: RequestContext, request: EndTxnRequest) -> EndTxnResponse:
    """Commit or abort; the markers are written before the answer."""
    refused = _txn_refusal(ctx, request.transactional_id)
    if refused is not None:
        return EndTxnResponse(throttle_time_ms=0, error_code=refused)
    tc = txn_coordinator(ctx.broker, request.transactional_id)
    try:
        ended = tc.end_txn(
            request.transactional_id, request.producer_id, request.producer_epoch, request.committed
        )
    except Exception as exc:  # noqa: BLE001 - answered in the body
        ended = Outcome.of(_storage_failure(exc))
    # Answered once the outcome is in __transaction_state's ISR (acks=all).
    code = await _answer(ended)
    return EndTxnResponse(throttle_time_ms=0, error_code=_fenced_code(code, ctx.api_version, 2))


# --- WriteTxnMarkers (27) ---------------------------------------------------------------------


@handles(WriteTxnMarkersRequest.API_KEY, 0, 1)
async def handle_write_txn_markers(
    ctx: RequestContext, request: WriteTxnMarkersRequest
) -> WriteTxnMarkersResponse:
    """Write markers as a transaction coordinator asks: another broker's (ClusterNode
    .send_txn_markers; a coordinator writes the markers of partitions it leads in-process)
    or a tool's (kafka-transactions.sh abort)."""
    R = WriteTxnMarkersResponse
    results = []
    written: list[tuple[Any, str, int]] = []
    # An inter-broker API: ClusterAction on the cluster (KafkaApis.handleWriteTxnMarkersRequest).
    cluster_denied = not allowed_cluster(ctx, Operation.CLUSTER_ACTION)
    for m in request.markers:
        topics = []
        for t in m.topics:
            parts = []
            for index in t.partition_indexes:
                code = ErrorCode.NONE
                part = ctx.broker.topics.partition(t.name, index)
                cluster = ctx.broker.cluster
                if cluster_denied:
                    code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
                elif cluster is not None and not cluster.replicas.is_leader(t.name, index):
                    code = (
                        ErrorCode.NOT_LEADER_OR_FOLLOWER
                        if cluster.metadata.partition(t.name, index) is not None
                        else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    )
                elif part is None:
                    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                else:
                    # ProducerAppendInfo.appendEndTxnMarker: a marker from an older
                    # producer epoch than the log has seen is INVALID_PRODUCER_EPOCH, one
                    # from an older coordinator epoch than the producer's last marker
                    # TRANSACTION_COORDINATOR_FENCED; neither is written.
                    try:
                        refused = write_markers(
                            ctx.broker,
                            m.producer_id,
                            m.producer_epoch,
                            m.transaction_result,
                            [(t.name, index)],
                            coordinator_epoch=m.coordinator_epoch,
                        )
                        code = refused.get((t.name, index), ErrorCode.NONE)
                    except Exception:  # noqa: BLE001 - per-partition answer
                        code = ErrorCode.KAFKA_STORAGE_ERROR
                result = R.WritableTxnMarkerPartitionResult(partition_index=index, error_code=code)
                if code == ErrorCode.NONE:
                    written.append((result, t.name, index))
                parts.append(result)
            topics.append(R.WritableTxnMarkerTopicResult(name=t.name, partitions=parts))
        results.append(R.WritableTxnMarkerResult(producer_id=m.producer_id, topics=topics))
    # KafkaApis.handleWriteTxnMarkersRequest appends with acks=all: a marker is written
    # once its partition's ISR has it, else the coordinator sends it again.
    for result, topic, index in written:
        result.error_code = await wait_replicated(
            ctx.broker, topic, index, timeout_ms=int(MARKER_ACKS_TIMEOUT_S * 1000)
        )
    return R(markers=results)


# --- TxnOffsetCommit (28) ---------------------------------------------------------------------


@handles(TxnOffsetCommitRequest.API_KEY, 0, 4)
async def handle_txn_offset_commit(
    ctx: RequestContext, request: TxnOffsetCommitRequest
) -> TxnOffsetCommitResponse:
    """Stage offsets in the transaction; they become visible when it commits."""
    version = ctx.api_version
    R = TxnOffsetCommitResponse
    tp_offsets = (OFFSETS_TOPIC, _offsets_partition(ctx, request.group_id))
    cluster = ctx.broker.cluster
    meta = None
    if not allowed(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        error: int | None = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif not allowed(ctx, Operation.READ, ResourceType.GROUP, request.group_id):
        error = ErrorCode.GROUP_AUTHORIZATION_FAILED
    elif cluster is not None and not cluster.replicas.is_leader(*tp_offsets):
        # Sent to the group coordinator (the leader of the group's partition).
        error = ErrorCode.NOT_COORDINATOR
    elif group_loading(ctx.broker, request.group_id):
        # GroupCoordinator.validateGroupStatus: the group's partition is still loading.
        error = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    elif cluster is not None and _txn_elsewhere(ctx, request.transactional_id):
        # The transaction lives on another broker's coordinator: as Kafka's group
        # coordinator, check only the group; the marker the transaction coordinator
        # sends later (WriteTxnMarkers) resolves the staged offsets.
        error = coordinator_for(ctx.broker, request.group_id).validate_transactional_commit(
            request.group_id, request.generation_id, request.member_id, request.group_instance_id
        )
    elif txn_loading(ctx.broker, request.transactional_id):
        error = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    elif (
        meta := txn_coordinator(ctx.broker, request.transactional_id).describe(
            request.transactional_id
        )
    ) is None or (meta.producer_id != request.producer_id):
        error = ErrorCode.INVALID_PRODUCER_ID_MAPPING
    elif meta.producer_epoch != request.producer_epoch:
        error = _fenced_code(ErrorCode.PRODUCER_FENCED, version, 2)
    elif meta.state is not TxnState.ONGOING or tp_offsets not in meta.partitions:
        # The group must be added first (AddOffsetsToTxn).
        error = ErrorCode.INVALID_TXN_STATE
    else:
        # KIP-447 (v3+): a consumer-group-aware producer sends the member's generation, and
        # a zombie from an old generation is refused as in OffsetCommit. Older versions
        # send none (generation -1, empty member), which is always accepted.
        error = coordinator_for(ctx.broker, request.group_id).validate_transactional_commit(
            request.group_id, request.generation_id, request.member_id, request.group_instance_id
        )
    requested = requested_partitions(request.topics)
    # KafkaApis.handleTxnOffsetCommitRequest: Read on each topic, as OffsetCommit.
    codes = (
        dict.fromkeys(requested, error)
        if error is not None
        else refused_partitions(ctx, Operation.READ, requested)
    )
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    now = int(ctx.broker.clock() * 1000)
    for t in request.topics:
        for p in t.partitions:
            tp = (t.name, p.partition_index)
            if tp not in codes:
                offsets[tp] = OffsetAndMetadata(
                    offset=p.committed_offset,
                    leader_epoch=p.committed_leader_epoch if version >= 2 else -1,
                    metadata=p.committed_metadata or "",
                    commit_timestamp=now,
                    expire_timestamp=None,
                )
    if offsets:
        codes.update(
            txn_offsets.stage(
                ctx.broker,
                request.group_id,
                request.producer_id,
                request.producer_epoch,
                offsets,
                max_metadata_bytes=int(ctx.broker.config["offset.metadata.max.bytes"]),
            )
        )
        stored = [tp for tp in offsets if codes[tp] == ErrorCode.NONE]
        if stored:
            # A KIP-848 group's offsets are written as the new group coordinator writes
            # (acks=1, waiting for the high watermark: CoordinatorPartitionWriter.append),
            # a classic group's as GroupMetadataManager.storeOffsets does (acks=all).
            acks_all = (
                coordinator_for(ctx.broker, request.group_id).consumer_group(request.group_id)
                is None
            )
            error = await coordinator_write_replicated(
                ctx, KEY_TYPE_GROUP, request.group_id, acks_all=acks_all
            )
            if error != ErrorCode.NONE:
                # GroupMetadata.failPendingTxnOffsetCommit: the client is told the commit
                # failed and sends it again; the marker must not publish this one.
                txn_offsets.unstage(ctx.broker, request.group_id, request.producer_id, stored)
            for tp in stored:
                codes[tp] = error
    return R(
        throttle_time_ms=0,
        topics=partition_errors(
            request.topics,
            codes,
            R.TxnOffsetCommitResponseTopic,
            R.TxnOffsetCommitResponsePartition,
        ),
    )


# --- DescribeProducers (61) -------------------------------------------------------------------


@handles(DescribeProducersRequest.API_KEY, 0, 0)
async def handle_describe_producers(
    ctx: RequestContext, request: DescribeProducersRequest
) -> DescribeProducersResponse:
    """The active producers of each partition (kafka-transactions.sh describe-producers)."""
    poll(ctx.broker)
    R = DescribeProducersResponse
    topics = []
    for t in request.topics:
        parts = []
        readable = allowed(ctx, Operation.READ, ResourceType.TOPIC, t.name)
        for index in t.partition_indexes:
            part = ctx.broker.topics.partition(t.name, index)
            if not readable or part is None:
                # KafkaApis.handleDescribeProducersRequest: Read on the topic.
                error = (
                    ErrorCode.TOPIC_AUTHORIZATION_FAILED
                    if not readable
                    else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                )
                parts.append(R.PartitionResponse(partition_index=index, error_code=error))
                continue
            active = [
                R.ProducerState(
                    producer_id=e.producer_id,
                    producer_epoch=e.producer_epoch,
                    last_sequence=e.last_seq,
                    last_timestamp=e.last_timestamp,
                    coordinator_epoch=e.coordinator_epoch,
                    current_txn_start_offset=e.current_txn_first_offset,
                )
                for e in part.log.producer_state.entries.values()
            ]
            parts.append(R.PartitionResponse(partition_index=index, active_producers=active))
        topics.append(R.TopicResponse(name=t.name, partitions=parts))
    return R(throttle_time_ms=0, topics=topics)


# --- DescribeTransactions (65) / ListTransactions (66) ---------------------------------------


@handles(DescribeTransactionsRequest.API_KEY, 0, 0)
async def handle_describe_transactions(
    ctx: RequestContext, request: DescribeTransactionsRequest
) -> DescribeTransactionsResponse:
    """State, producer and partitions of each transactional id."""
    R = DescribeTransactionsResponse
    states = []
    for tid in request.transactional_ids:
        if not allowed(ctx, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, tid):
            found: TxnMetadata | ErrorCode = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        else:
            found = _described(ctx, tid)
        if not isinstance(found, TxnMetadata):
            error = found
            states.append(
                R.TransactionState(
                    error_code=error,
                    transactional_id=tid,
                    producer_id=-1,
                    producer_epoch=-1,
                    transaction_start_time_ms=-1,
                )
            )
            continue
        meta = found
        by_topic: dict[str, list[int]] = {}
        for topic, p in sorted(meta.partitions):
            by_topic.setdefault(topic, []).append(p)
        states.append(
            R.TransactionState(
                error_code=0,
                transactional_id=tid,
                transaction_state=meta.state.display,
                transaction_timeout_ms=meta.timeout_ms,
                transaction_start_time_ms=meta.start_ms,
                producer_id=meta.producer_id,
                producer_epoch=meta.producer_epoch,
                topics=[R.TopicData(topic=t, partitions=ps) for t, ps in by_topic.items()],
            )
        )
    return R(throttle_time_ms=0, transaction_states=states)


def _described(ctx: RequestContext, tid: str) -> TxnMetadata | ErrorCode:
    """A transactional id's metadata, TRANSACTIONAL_ID_NOT_FOUND if unknown; in cluster
    mode NOT_COORDINATOR when another broker coordinates it
    (TransactionStateManager.getTransactionState)."""
    try:
        meta = txn_coordinator(ctx.broker, tid).describe(tid)
    except KafkaApiError as exc:
        return ErrorCode(exc.code)
    return meta if meta is not None else ErrorCode.TRANSACTIONAL_ID_NOT_FOUND


@handles(ListTransactionsRequest.API_KEY, 0, 1)
async def handle_list_transactions(
    ctx: RequestContext, request: ListTransactionsRequest
) -> ListTransactionsResponse:
    """Transactional ids, filtered by state, producer id and (v1, KIP-994) running time."""
    txns = {tid: meta for tc in txn_coordinators(ctx.broker) for tid, meta in tc.txns.items()}
    R = ListTransactionsResponse
    if txn_partitions_loading(ctx.broker):
        # TransactionStateManager.listTransactionStates: nothing is listed while a
        # partition of this broker loads.
        return R(
            throttle_time_ms=0,
            error_code=ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
            unknown_state_filters=[],
            transaction_states=[],
        )
    unknown = [s for s in request.state_filters if TxnState.from_display(s) is None]
    wanted_states = {TxnState.from_display(s) for s in request.state_filters} - {None}
    pids = set(request.producer_id_filters)
    duration = request.duration_filter if ctx.api_version >= 1 else -1
    now = int(ctx.broker.clock() * 1000)
    out = []
    # KafkaApis.handleListTransactionsRequest: only ids the principal may Describe.
    visible = filter_allowed(ctx, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, txns)
    for tid, meta in sorted(txns.items()):
        if tid not in visible:
            continue
        if request.state_filters and meta.state not in wanted_states:
            continue
        if pids and meta.producer_id not in pids:
            continue
        if duration >= 0 and (meta.state is not TxnState.ONGOING or now - meta.start_ms < duration):
            continue
        out.append(
            R.TransactionState(
                transactional_id=tid,
                producer_id=meta.producer_id,
                transaction_state=meta.state.display,
            )
        )
    return R(
        throttle_time_ms=0, error_code=0, unknown_state_filters=unknown, transaction_states=out
    )
