"""ListOffsets, OffsetForLeaderEpoch and DeleteRecords.

How it works: each API walks the requested topics / partitions in request
order and answers every one of them in its own body entry; nothing here
fails the whole request. Epoch questions are answered from the log's leader
epochs (``log.leader_epochs``, Kafka's ``LeaderEpochFileCache``) and the
partition's current leader epoch (0 on a single node, which leads everything).
"""

from __future__ import annotations

from kbroker.authz.acl import Operation, ResourceType
from kbroker.authz.checks import allowed_cluster, require
from kbroker.errors import KafkaApiError
from kbroker.handlers import RequestContext, handles
from kbroker.handlers.partitions import (
    answer_partitions,
    current_leader_epoch,
    end_offset_for_epoch,
    leader_epochs,
    led_partition,
    local_log,
    lookup_partition,
    lookup_topic,
    topic_value,
)
from kbroker.topics import Partition, Topic
from kbroker.txn.service import poll as poll_transactions
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    DeleteRecordsRequest,
    DeleteRecordsResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
)

# ListOffsets special timestamps (ListOffsetsRequest.java; KIP-734 max, KIP-405 tiered).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5

# ListOffsets / OffsetForLeaderEpoch from a debugging tool: any replica answers.
DEBUGGING_REPLICA_ID = -2

# DeleteRecords: offset -1 means "up to the high watermark" (DeleteRecordsRequest.HIGH_WATERMARK).
DELETE_TO_HIGH_WATERMARK = -1


# -- ListOffsets (api key 2) ------------------------------------------------------


@handles(ListOffsetsRequest.API_KEY, 1, 10)
async def handle_list_offsets(
    ctx: RequestContext, request: ListOffsetsRequest
) -> ListOffsetsResponse:
    """Answer offsets by timestamp, including the special earliest/latest/max timestamps."""
    version = ctx.api_version
    # KafkaApis: a partition listed twice is answered INVALID_REQUEST (both times).
    seen: set[tuple[str, int]] = set()
    duplicates: set[tuple[str, int]] = set()
    for t in request.topics:
        for p in t.partitions:
            key = (t.name, p.partition_index)
            (duplicates if key in seen else seen).add(key)
    R = ListOffsetsResponse

    def fill(
        t: ListOffsetsRequest.ListOffsetsTopic,
        p: ListOffsetsRequest.ListOffsetsPartition,
        resp: ListOffsetsResponse.ListOffsetsPartitionResponse,
    ) -> None:
        if (t.name, p.partition_index) in duplicates:
            raise KafkaApiError(ErrorCode.INVALID_REQUEST)
        partition = _asked_partition(
            ctx,
            t.name,
            p.partition_index,
            p.current_leader_epoch if version >= 4 else -1,
            require_leader=request.replica_id != DEBUGGING_REPLICA_ID,
        )
        read_committed = version >= 2 and request.isolation_level == 1
        if read_committed:
            poll_transactions(ctx.broker)
        found = _offset_for(
            ctx,
            partition,
            p.timestamp,
            read_committed=read_committed,
            from_replica=request.replica_id >= 0,
        )
        if found is not None:
            resp.timestamp, resp.offset, epoch = found
            # LeaderEpoch exists from v4 (KIP-320); not ignorable, so never set below.
            if version >= 4:
                resp.leader_epoch = epoch

    answered = answer_partitions(
        request.topics,
        lambda p: R.ListOffsetsPartitionResponse(
            partition_index=p.partition_index, timestamp=-1, offset=-1
        ),
        fill,
    )
    return R(
        throttle_time_ms=0,
        topics=[R.ListOffsetsTopicResponse(name=t.name, partitions=ps) for t, ps in answered],
    )


def _asked_partition(
    ctx: RequestContext,
    topic: str,
    index: int,
    client_epoch: int,
    *,
    require_leader: bool,
    check_describe: bool = True,
) -> Partition:
    """The partition a ListOffsets or OffsetForLeaderEpoch question is about, once the
    principal may Describe its topic (when ``check_describe``), this broker has it, and
    the client's leader epoch and this replica's role allow an answer (``local_log``)."""
    if check_describe:
        require(ctx, Operation.DESCRIBE, ResourceType.TOPIC, topic)
    partition = lookup_partition(ctx, topic, index)
    local_log(ctx, partition, client_epoch, require_leader=require_leader)
    return partition


def _offset_for(
    ctx: RequestContext,
    partition: Partition,
    timestamp: int,
    *,
    read_committed: bool = False,
    from_replica: bool = False,
) -> tuple[int, int, int] | None:
    """(timestamp, offset, leader epoch) for a ListOffsets query, None when nothing matches.

    Follows UnifiedLog.fetchOffsetByTimestamp and Partition.fetchOffsetForTimestamp.
    The last fetchable offset is the high watermark; for read_committed
    (ListOffsets v2+, KIP-98) it is the last stable offset. The latest offset
    carries the current leader epoch, any other the epoch that wrote it.
    """
    log = partition.log
    epochs = leader_epochs(ctx, partition)
    hw = log.last_stable_offset if read_committed else log.high_watermark
    if from_replica:
        # A follower (replica id >= 0) reads the whole log: no isolation bound.
        hw = log.log_end_offset
    if timestamp == LATEST_TIMESTAMP:
        return (-1, hw, current_leader_epoch(ctx, partition))
    if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
        # No tiered storage: the local log start is the log start.
        start = log.log_start_offset
        return (-1, start, epochs.epoch_for_offset(start))
    if timestamp == LATEST_TIERED_TIMESTAMP:
        # Remote storage disabled: Kafka answers offset -1 with leader epoch -1.
        return (-1, -1, -1)
    if timestamp == MAX_TIMESTAMP:
        found = log.max_timestamp()
    else:
        found = log.offset_for_timestamp(timestamp)
    if found is None:
        return None
    offset, ts = found
    # Partition.fetchOffsetForTimestamp: never expose an offset at or past the
    # last fetchable offset.
    if offset >= hw:
        return None
    return (ts, offset, epochs.epoch_for_offset(offset))


# -- OffsetForLeaderEpoch (api key 23) -------------------------------------------------


@handles(OffsetForLeaderEpochRequest.API_KEY, 0, 4)
async def handle_offset_for_leader_epoch(
    ctx: RequestContext, request: OffsetForLeaderEpochRequest
) -> OffsetForLeaderEpochResponse:
    """End offset of a requested leader epoch (KIP-101 / KIP-320 truncation detection)."""
    version = ctx.api_version
    # KIP-320: followers ask with ClusterAction, consumers with Describe on the topic.
    follower_allowed = allowed_cluster(ctx, Operation.CLUSTER_ACTION)
    R = OffsetForLeaderEpochResponse

    def fill(
        t: OffsetForLeaderEpochRequest.OffsetForLeaderTopic,
        p: OffsetForLeaderEpochRequest.OffsetForLeaderPartition,
        resp: OffsetForLeaderEpochResponse.EpochEndOffset,
    ) -> None:
        # Partition.lastOffsetForLeaderEpoch: only the leader answers, except
        # to a debugging tool (replica id -2, v3+).
        partition = _asked_partition(
            ctx,
            t.topic,
            p.partition,
            p.current_leader_epoch if version >= 2 else -1,
            require_leader=version < 3 or request.replica_id != DEBUGGING_REPLICA_ID,
            check_describe=not follower_allowed,
        )
        epoch, end = end_offset_for_epoch(ctx, partition, p.leader_epoch)
        resp.end_offset = end
        if version >= 1:
            resp.leader_epoch = epoch

    answered = answer_partitions(
        request.topics,
        lambda p: R.EpochEndOffset(partition=p.partition, leader_epoch=-1, end_offset=-1),
        fill,
    )
    return R(
        throttle_time_ms=0,
        topics=[R.OffsetForLeaderTopicResult(topic=t.topic, partitions=ps) for t, ps in answered],
    )


# -- DeleteRecords (api key 21) ------------------------------------------------------------


@handles(DeleteRecordsRequest.API_KEY, 0, 2)
async def handle_delete_records(
    ctx: RequestContext, request: DeleteRecordsRequest
) -> DeleteRecordsResponse:
    """Move each partition's log start offset forward (deleting whole segments below it)."""
    R = DeleteRecordsResponse

    def fill(
        t: DeleteRecordsRequest.DeleteRecordsTopic,
        p: DeleteRecordsRequest.DeleteRecordsPartition,
        resp: DeleteRecordsResponse.DeleteRecordsPartitionResult,
    ) -> None:
        require(ctx, Operation.DELETE, ResourceType.TOPIC, t.name)
        topic = lookup_topic(ctx, t.name)
        partition = led_partition(ctx, topic, p.partition_index)
        resp.low_watermark = _delete_records(ctx, topic, partition, p.offset)

    answered = answer_partitions(
        request.topics,
        lambda p: R.DeleteRecordsPartitionResult(
            partition_index=p.partition_index, low_watermark=-1
        ),
        fill,
    )
    return R(
        throttle_time_ms=0,
        topics=[R.DeleteRecordsTopicResult(name=t.name, partitions=ps) for t, ps in answered],
    )


def _delete_records(ctx: RequestContext, topic: Topic, partition: Partition, offset: int) -> int:
    """Kafka's ReplicaManager.deleteRecordsOnLocalLog + Partition.deleteRecordsOnLeader."""
    if topic.internal:
        raise KafkaApiError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"Cannot delete records of internal topic {topic.name}",
        )
    if "delete" not in topic_value(ctx, topic, "cleanup.policy"):
        raise KafkaApiError(
            ErrorCode.POLICY_VIOLATION,
            f"Records of partition {topic.name}-{partition.index} can not be deleted "
            "due to the configured policy",
        )
    log = partition.log
    hw = log.high_watermark
    target = hw if offset == DELETE_TO_HIGH_WATERMARK else offset
    # A negative offset or one past the high watermark is OFFSET_OUT_OF_RANGE
    # (UnifiedLog.maybeIncrementLogStartOffset).
    if target < 0 or target > hw:
        raise KafkaApiError(ErrorCode.OFFSET_OUT_OF_RANGE)
    if target > log.log_start_offset:
        log.delete_records_before(target)
    return log.log_start_offset
