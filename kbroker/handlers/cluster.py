"""The controller-to-broker requests (LeaderAndIsr 4, StopReplica 5, UpdateMetadata 6),
ControlledShutdown (7, broker to controller) and ElectLeaders (43, admin to controller).

In cluster mode the controller tells every broker what it leads and what the
cluster looks like with these requests, as Kafka's ZooKeeper-mode controller does;
``kbroker.cluster.replicas`` and ``kbroker.cluster.metadata_cache`` apply them.
A request carrying an older controller epoch than one already seen comes from a
deposed controller and is refused with STALE_CONTROLLER_EPOCH (KafkaApis).

A single node has no controller: it refuses 4/5/6 with STALE_CONTROLLER_EPOCH and
7 with NOT_CONTROLLER, and ElectLeaders finds every partition already led by its
preferred (and only) replica.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from kbroker.authz.acl import Operation
from kbroker.authz.checks import allowed_cluster
from kbroker.cluster.replicas import LeaderAndIsrPartition
from kbroker.coordinator.service import on_topics_deleted
from kbroker.handlers import RequestContext, handles
from kbroker.wire.classes import ZERO_UUID
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ControlledShutdownRequest,
    ControlledShutdownResponse,
    ElectLeadersRequest,
    ElectLeadersResponse,
    LeaderAndIsrRequest,
    LeaderAndIsrResponse,
    StopReplicaRequest,
    StopReplicaResponse,
    UpdateMetadataRequest,
    UpdateMetadataResponse,
)

if TYPE_CHECKING:
    from kbroker.cluster.node import ClusterNode

logger = logging.getLogger(__name__)

# ElectLeaders election types (ElectionType.PREFERRED / UNCLEAN).
PREFERRED = 0


def _admit(ctx: RequestContext, request: Any) -> tuple[ClusterNode | None, ErrorCode]:
    """The node to apply LeaderAndIsr, StopReplica or UpdateMetadata to, or (None, why not).

    The inter-broker APIs need ClusterAction, as in KafkaApis. No controller here (a single
    node), or a deposed one: STALE_CONTROLLER_EPOCH. KIP-380: a request addressed to an
    earlier registration of this broker: STALE_BROKER_EPOCH. Only an older epoch is stale
    (KafkaApis.isBrokerEpochStale): the controller may learn our new registration, and send
    with its epoch, before we have read it back ourselves.
    """
    if not allowed_cluster(ctx, Operation.CLUSTER_ACTION):
        return None, ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    cluster = ctx.broker.cluster
    if cluster is None or not cluster.replicas.check_controller_epoch(request.controller_epoch):
        return None, ErrorCode.STALE_CONTROLLER_EPOCH
    epoch = getattr(request, "broker_epoch", -1)
    if epoch != -1 and epoch < cluster.broker_epoch:
        return None, ErrorCode.STALE_BROKER_EPOCH
    return cluster, ErrorCode.NONE


# --- LeaderAndIsr (4) -------------------------------------------------------------------


@handles(LeaderAndIsrRequest.API_KEY, 0, 7)
async def handle_leader_and_isr(
    ctx: RequestContext, request: LeaderAndIsrRequest
) -> LeaderAndIsrResponse:
    """Lead or follow the partitions named; create their local logs if new here."""
    version = ctx.api_version
    cluster, refused = _admit(ctx, request)
    if cluster is None:
        return LeaderAndIsrResponse(error_code=refused)
    parts: list[LeaderAndIsrPartition] = []
    topic_ids: dict[str, uuid.UUID] = {}
    if version >= 2:
        for topic_state in request.topic_states:
            topic_id = getattr(topic_state, "topic_id", None) or ZERO_UUID
            topic_ids[topic_state.topic_name] = topic_id
            for p in topic_state.partition_states:
                parts.append(_partition(topic_state.topic_name, topic_id, p))
    else:
        for p in request.ungrouped_partition_states:
            parts.append(_partition(p.topic_name, ZERO_UUID, p))
    errors = await cluster.replicas.become_leader_or_follower(parts)
    if version >= 5:
        by_topic: dict[str, list[Any]] = {}
        for (topic, index), code in errors.items():
            by_topic.setdefault(topic, []).append(
                LeaderAndIsrResponse.LeaderAndIsrPartitionError(
                    partition_index=index, error_code=code
                )
            )
        return LeaderAndIsrResponse(
            error_code=ErrorCode.NONE,
            topics=[
                LeaderAndIsrResponse.LeaderAndIsrTopicError(
                    topic_id=topic_ids.get(topic, ZERO_UUID), partition_errors=errs
                )
                for topic, errs in by_topic.items()
            ],
        )
    return LeaderAndIsrResponse(
        error_code=ErrorCode.NONE,
        partition_errors=[
            LeaderAndIsrResponse.LeaderAndIsrPartitionError(
                topic_name=topic, partition_index=index, error_code=code
            )
            for (topic, index), code in errors.items()
        ],
    )


def _partition(topic: str, topic_id: uuid.UUID, p: Any) -> LeaderAndIsrPartition:
    return LeaderAndIsrPartition(
        topic=topic,
        topic_id=topic_id,
        index=p.partition_index,
        controller_epoch=p.controller_epoch,
        leader=p.leader,
        leader_epoch=p.leader_epoch,
        isr=tuple(p.isr),
        replicas=tuple(p.replicas),
        is_new=bool(getattr(p, "is_new", False)),
        partition_epoch=int(getattr(p, "partition_epoch", 0)),
    )


# --- StopReplica (5) ----------------------------------------------------------------------


@handles(StopReplicaRequest.API_KEY, 0, 4)
async def handle_stop_replica(
    ctx: RequestContext, request: StopReplicaRequest
) -> StopReplicaResponse:
    """Stop hosting partitions (deleting their logs when asked: topic deletion)."""
    version = ctx.api_version
    cluster, refused = _admit(ctx, request)
    if cluster is None:
        return StopReplicaResponse(error_code=refused)
    targets: list[tuple[str, int, bool]] = []
    if version >= 3:
        for topic_state in request.topic_states:
            for p in topic_state.partition_states:
                targets.append((topic_state.topic_name, p.partition_index, p.delete_partition))
    elif version >= 1:
        for t in request.topics:
            for index in t.partition_indexes:
                targets.append((t.name, index, request.delete_partitions))
    else:
        for ungrouped in request.ungrouped_partitions:
            targets.append(
                (ungrouped.topic_name, ungrouped.partition_index, request.delete_partitions)
            )
    # Every partition stops first, then the logs go: when a request deletes all the
    # partitions of a topic this broker hosts (topic deletion) the whole local topic goes
    # at once, and only a partition moved away from a topic that stays here is emptied
    # on its own.
    codes = {(t, i): cluster.replicas.stop_replica(t, i, delete=False) for t, i, _ in targets}
    for topic, index, delete in targets:
        if delete:
            codes[(topic, index)] = cluster.replicas.stop_replica(topic, index, delete=True)
    errors = []
    for topic, index, _ in targets:
        code = codes[(topic, index)]
        errors.append(
            StopReplicaResponse.StopReplicaPartitionError(
                topic_name=topic, partition_index=index, error_code=code
            )
        )
    return StopReplicaResponse(error_code=ErrorCode.NONE, partition_errors=errors)


# --- UpdateMetadata (6) ----------------------------------------------------------------------


@handles(UpdateMetadataRequest.API_KEY, 0, 8)
async def handle_update_metadata(
    ctx: RequestContext, request: UpdateMetadataRequest
) -> UpdateMetadataResponse:
    """Replace this broker's view of the cluster (live brokers, partition states)."""
    cluster, refused = _admit(ctx, request)
    if cluster is None:
        return UpdateMetadataResponse(error_code=refused)
    deleted = cluster.metadata.apply_update_metadata(request, ctx.api_version)
    if deleted:
        # KafkaApis.handleUpdateMetadataRequest: the group coordinator drops the deleted
        # partitions' offsets (GroupCoordinator.onPartitionsDeleted) on every broker, as
        # each coordinates its own groups; a topic re-created under the same name is then
        # read from the reset policy, not from where the old one's consumers were.
        try:
            on_topics_deleted(ctx.broker, deleted)
        except Exception:  # noqa: BLE001 - the metadata is applied; the offsets stay
            logger.exception("dropping the offsets of deleted topics %s failed", deleted)
    return UpdateMetadataResponse(error_code=ErrorCode.NONE)


# --- ControlledShutdown (7) -------------------------------------------------------------------


@handles(ControlledShutdownRequest.API_KEY, 0, 3)
async def handle_controlled_shutdown(
    ctx: RequestContext, request: ControlledShutdownRequest
) -> ControlledShutdownResponse:
    """The controller moves leadership off a broker that is about to stop; the answer
    lists the partitions it still leads (KafkaController.doControlledShutdown)."""
    # The inter-broker APIs (keys 4-7) need ClusterAction, as in KafkaApis.
    if not allowed_cluster(ctx, Operation.CLUSTER_ACTION):
        return ControlledShutdownResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, remaining_partitions=[]
        )
    cluster = ctx.broker.cluster
    controller = None if cluster is None else cluster.controller
    if controller is None or not controller.is_active:
        return ControlledShutdownResponse(error_code=ErrorCode.NOT_CONTROLLER)
    broker_epoch = request.broker_epoch if ctx.api_version >= 2 else -1
    try:
        remaining = await controller.controlled_shutdown(request.broker_id, broker_epoch)
    except Exception as exc:  # noqa: BLE001 - the controller's own error, as Kafka answers it
        code = getattr(exc, "code", ErrorCode.UNKNOWN_SERVER_ERROR)
        logger.info("controlled shutdown of broker %d failed: %s", request.broker_id, exc)
        return ControlledShutdownResponse(error_code=code)
    return ControlledShutdownResponse(
        error_code=ErrorCode.NONE,
        remaining_partitions=[
            ControlledShutdownResponse.RemainingPartition(topic_name=t, partition_index=p)
            for t, p in sorted(remaining)
        ],
    )


# --- ElectLeaders (43, KIP-460) ------------------------------------------------------------


@handles(ElectLeadersRequest.API_KEY, 0, 2)
async def handle_elect_leaders(
    ctx: RequestContext, request: ElectLeadersRequest
) -> ElectLeadersResponse:
    """Elect preferred (or unclean) leaders; only the active controller does it."""
    version = ctx.api_version
    election_type = request.election_type if version >= 1 else PREFERRED
    cluster = ctx.broker.cluster
    requested: list[tuple[str, int]] | None = (
        None
        if request.topic_partitions is None
        else [(t.topic, p) for t in request.topic_partitions for p in t.partitions]
    )
    if not allowed_cluster(ctx, Operation.ALTER):
        # KafkaApis.handleElectLeaders: Alter on the cluster, else every partition fails.
        denied = _elect_response(
            dict.fromkeys(requested or [], (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None))
        )
        denied.error_code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return denied
    if cluster is None:
        # One broker: every partition is led by its only, preferred replica.
        if requested is None:
            requested = [
                (t.name, p.index) for t in ctx.broker.topics.topics.values() for p in t.partitions
            ]
        results = {
            tp: (
                (ErrorCode.ELECTION_NOT_NEEDED, None)
                if ctx.broker.topics.partition(*tp) is not None
                else (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None)
            )
            for tp in requested
        }
        return _elect_response(results)
    controller = cluster.controller
    if controller is None or not controller.is_active:
        if version >= 1:
            return ElectLeadersResponse(
                throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER, replica_election_results=[]
            )
        return _elect_response({tp: (ErrorCode.NOT_CONTROLLER, None) for tp in requested or []})
    raw = await controller.elect_leaders(requested, election_type)
    return _elect_response(_normalise(raw))


def _normalise(raw: Any) -> dict[tuple[str, int], tuple[int, str | None]]:
    """The controller's results as {(topic, partition): (error code, message)}."""
    out: dict[tuple[str, int], tuple[int, str | None]] = {}
    for tp, value in dict(raw).items():
        if isinstance(value, tuple):
            code, message = value[0], value[1] if len(value) > 1 else None
        else:
            code, message = value, None
        out[tp] = (int(code), message)
    return out


def _elect_response(results: dict[tuple[str, int], Any]) -> ElectLeadersResponse:
    by_topic: dict[str, list[Any]] = {}
    for (topic, index), (code, message) in sorted(results.items()):
        by_topic.setdefault(topic, []).append(
            ElectLeadersResponse.PartitionResult(
                partition_id=index, error_code=code, error_message=message
            )
        )
    return ElectLeadersResponse(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        replica_election_results=[
            ElectLeadersResponse.ReplicaElectionResult(topic=t, partition_result=parts)
            for t, parts in by_topic.items()
        ],
    )
