"""Partition reassignment (KIP-455): AlterPartitionReassignments (45) and
ListPartitionReassignments (46).

In ZooKeeper mode only the active controller serves them (KafkaController's
processApiPartitionReassignment / processListPartitionReassignments): any other broker
answers a top-level NOT_CONTROLLER and the admin client, which sends these to the
controller named by Metadata, refreshes its metadata and retries.

A single node is its own controller with one live broker: a partition can only be
"moved" to the replica it already has, so there is never a reassignment in progress.
"""

from __future__ import annotations

import logging
from typing import Any

from kbroker.authz.acl import Operation
from kbroker.authz.checks import allowed_cluster
from kbroker.cluster.reassignment import dead_replicas, invalid_replica_list
from kbroker.errors import KafkaApiError
from kbroker.handlers import RequestContext, handles
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
)

logger = logging.getLogger(__name__)

TP = tuple[str, int]


def _active_controller(ctx: RequestContext, operation: Operation) -> Any:
    """The active controller once the cluster-level ACL is checked (KafkaApis: Alter to
    reassign, Describe to list), or None on a single node (its own controller); otherwise
    KafkaApiError, which answers the whole request."""
    if not allowed_cluster(ctx, operation):
        raise KafkaApiError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None)
    cluster = ctx.broker.cluster
    if cluster is None:
        return None
    if cluster.controller is None or not cluster.controller.is_active:
        raise KafkaApiError(ErrorCode.NOT_CONTROLLER, None)
    return cluster.controller


def _single_node_alter(
    ctx: RequestContext, tp: TP, target: list[int] | None
) -> tuple[int, str | None]:
    """KafkaController.validateReplicas with this node as the only live broker."""
    node_id = ctx.broker.config.node_id
    if target is not None:
        error = invalid_replica_list(target)
        if error is not None:
            return error
        adding = [b for b in target if b != node_id]
        if adding:
            return dead_replicas(adding, [node_id])
    if ctx.broker.topics.partition(*tp) is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist."
    if target is None:
        return ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None
    return ErrorCode.NONE, None


@handles(AlterPartitionReassignmentsRequest.API_KEY, 0, 0)
async def handle_alter_partition_reassignments(
    ctx: RequestContext, request: AlterPartitionReassignmentsRequest
) -> AlterPartitionReassignmentsResponse:
    """Start (or cancel, with null replicas) moving partitions to new replicas."""
    wanted: dict[TP, list[int] | None] = {}
    for topic in request.topics:
        for p in topic.partitions:
            wanted[(topic.name, p.partition_index)] = (
                None if p.replicas is None else list(p.replicas)
            )
    results: dict[TP, tuple[int, str | None]]
    try:
        controller = _active_controller(ctx, Operation.ALTER)
        if controller is None:
            results = {tp: _single_node_alter(ctx, tp, target) for tp, target in wanted.items()}
        else:
            results = await controller.alter_partition_reassignments(wanted)
    except KafkaApiError as exc:
        return AlterPartitionReassignmentsResponse(
            throttle_time_ms=0, error_code=exc.code, error_message=None, responses=[]
        )
    by_topic: dict[str, list[Any]] = {}
    for (topic_name, index), (code, message) in sorted(results.items()):
        by_topic.setdefault(topic_name, []).append(
            AlterPartitionReassignmentsResponse.ReassignablePartitionResponse(
                partition_index=index, error_code=int(code), error_message=message
            )
        )
    return AlterPartitionReassignmentsResponse(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        responses=[
            AlterPartitionReassignmentsResponse.ReassignableTopicResponse(
                name=name, partitions=parts
            )
            for name, parts in by_topic.items()
        ],
    )


@handles(ListPartitionReassignmentsRequest.API_KEY, 0, 0)
async def handle_list_partition_reassignments(
    ctx: RequestContext, request: ListPartitionReassignmentsRequest
) -> ListPartitionReassignmentsResponse:
    """The partitions being reassigned: their replica set, and the replicas being added
    and removed."""
    requested: list[TP] | None = (
        None
        if request.topics is None
        else [(t.name, p) for t in request.topics for p in t.partition_indexes]
    )
    ongoing: dict[TP, tuple[list[int], list[int], list[int]]] = {}
    try:
        controller = _active_controller(ctx, Operation.DESCRIBE)
        # A single node never has a reassignment in progress.
        if controller is not None:
            ongoing = await controller.list_partition_reassignments(requested)
    except KafkaApiError as exc:
        return ListPartitionReassignmentsResponse(
            throttle_time_ms=0, error_code=exc.code, error_message=None, topics=[]
        )
    by_topic: dict[str, list[Any]] = {}
    for (topic_name, index), (replicas, adding, removing) in sorted(ongoing.items()):
        by_topic.setdefault(topic_name, []).append(
            ListPartitionReassignmentsResponse.OngoingPartitionReassignment(
                partition_index=index,
                replicas=replicas,
                adding_replicas=adding,
                removing_replicas=removing,
            )
        )
    return ListPartitionReassignmentsResponse(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        topics=[
            ListPartitionReassignmentsResponse.OngoingTopicReassignment(name=name, partitions=parts)
            for name, parts in by_topic.items()
        ],
    )
