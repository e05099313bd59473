"""Group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit, OffsetFetch, OffsetDelete, DescribeGroups, ListGroups, DeleteGroups.

Each handler translates between the wire messages and the synchronous
``GroupCoordinator`` (kbroker.coordinator.group); JoinGroup and SyncGroup wait
for their answer through ``kbroker.coordinator.service.wait_pending``. Version
differences (where a field moved or became nullable) are handled here.
"""

from __future__ import annotations

from typing import Any

import trio

from kbroker.authz.acl import Operation, ResourceType
from kbroker.authz.checks import (
    allowed,
    allowed_cluster,
    authorized_operations,
    denied_code,
    filter_allowed,
)
from kbroker.coordinator.group import ConsumerGroupWrite, GroupCoordinator, partition_for
from kbroker.coordinator.offsets import OffsetAndMetadata, write_error_code
from kbroker.coordinator.service import (
    coordinator_for,
    coordinators,
    group_loading,
    loading,
    settled,
    wait_pending,
)
from kbroker.errors import KafkaApiError
from kbroker.handlers import RequestContext, handles
from kbroker.handlers.meta import AUTHORIZED_OPERATIONS_OMITTED, advertised_endpoint
from kbroker.handlers.partitions import (
    partition_errors,
    refused_partitions,
    requested_partitions,
)
from kbroker.internal_topics import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kbroker.replication.leader_writes import coordinator_error, wait_replicated
from kbroker.txn.offsets import pending_partitions
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    ListGroupsRequest,
    ListGroupsResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetDeleteRequest,
    OffsetDeleteResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)

# AclOperation codes a group supports (READ 3, DELETE 6, DESCRIBE 8): without an
# authorizer Kafka reports all of them when asked (KIP-430).
GROUP_OPERATIONS = sum(1 << op for op in (3, 6, 8))
KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1


def client_host(ctx: RequestContext) -> str:
    """The client's address as Kafka shows it in DescribeGroups ("/127.0.0.1")."""
    host = ctx.peer.rsplit(":", 1)[0] if ":" in ctx.peer else ctx.peer
    return "/" + host.strip("[]")


# --- FindCoordinator (10) ---------------------------------------------------------------


def _may(ctx: RequestContext, operation: Operation, group_id: str) -> bool:
    """Whether the principal may do ``operation`` on the group (KafkaApis' checks)."""
    return allowed(ctx, operation, ResourceType.GROUP, group_id)


def _group_ops(ctx: RequestContext, group_id: str, include: bool) -> int:
    """KIP-430: the operations the principal may do on the group, when asked for."""
    if not include:
        return AUTHORIZED_OPERATIONS_OMITTED
    return authorized_operations(ctx, ResourceType.GROUP, group_id, GROUP_OPERATIONS)


@handles(FindCoordinatorRequest.API_KEY, 0, 6)
async def handle_find_coordinator(
    ctx: RequestContext, request: FindCoordinatorRequest
) -> FindCoordinatorResponse:
    """This node coordinates every group and transactional id (in cluster mode: the
    leader of the key's internal-topic partition)."""
    response = await _find_coordinator(ctx, request)
    # KafkaApis.handleFindCoordinatorRequest: Describe on the group / transactional id.
    version = ctx.api_version
    key_type = request.key_type if version >= 1 else KEY_TYPE_GROUP
    resource_type = {
        KEY_TYPE_GROUP: ResourceType.GROUP,
        KEY_TYPE_TRANSACTION: ResourceType.TRANSACTIONAL_ID,
    }.get(key_type)
    if resource_type is None:
        return response
    entries: list[Any] = response.coordinators if version >= 4 else [response]
    keys = request.coordinator_keys if version >= 4 else [request.key]
    for entry, key in zip(entries, keys, strict=False):
        if not allowed(ctx, Operation.DESCRIBE, resource_type, key):
            entry.error_code = denied_code(resource_type)
            entry.error_message = None
            entry.node_id, entry.host, entry.port = -1, "", -1
    return response


async def _find_coordinator(
    ctx: RequestContext, request: FindCoordinatorRequest
) -> FindCoordinatorResponse:
    if ctx.broker.cluster is not None:
        return await _find_coordinator_in_cluster(ctx, request)
    host, port = advertised_endpoint(ctx)
    node_id = ctx.broker.node_id
    version = ctx.api_version
    key_type = request.key_type if version >= 1 else KEY_TYPE_GROUP
    if key_type not in (KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION):
        error, message = ErrorCode.INVALID_REQUEST, f"Unknown coordinator type {key_type}"
    else:
        error, message = ErrorCode.NONE, None
        if key_type == KEY_TYPE_GROUP:
            # Kafka creates __consumer_offsets when a client first looks for a coordinator.
            try:
                ctx.broker.topics.create_internal(OFFSETS_TOPIC)
            except Exception:  # noqa: BLE001 - reported as Kafka reports it: retriable
                error, message = ErrorCode.COORDINATOR_NOT_AVAILABLE, None
    ok = error == ErrorCode.NONE
    if version >= 4:  # KIP-699: batched keys
        return FindCoordinatorResponse(
            coordinators=[
                FindCoordinatorResponse.Coordinator(
                    key=key,
                    node_id=node_id if ok else -1,
                    host=host if ok else "",
                    port=port if ok else -1,
                    error_code=error,
                    error_message=message,
                )
                for key in request.coordinator_keys
            ]
        )
    return FindCoordinatorResponse(
        error_code=error,
        error_message=message,
        node_id=node_id if ok else -1,
        host=host if ok else "",
        port=port if ok else -1,
    )


async def _find_coordinator_in_cluster(
    ctx: RequestContext, request: FindCoordinatorRequest
) -> FindCoordinatorResponse:
    from kbroker.cluster.coordinators import locate

    cluster = ctx.broker.cluster
    assert cluster is not None
    version = ctx.api_version
    key_type = request.key_type if version >= 1 else KEY_TYPE_GROUP
    keys = list(request.coordinator_keys) if version >= 4 else [request.key]
    answers: list[tuple[ErrorCode, str | None, int, str, int]] = []
    for key in keys:
        if key_type not in (KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION):
            answers.append(
                (ErrorCode.INVALID_REQUEST, f"Unknown coordinator type {key_type}", -1, "", -1)
            )
            continue
        try:
            node_id, host, port = await locate(cluster, key_type, key, ctx.listener)
        except KafkaApiError as exc:
            answers.append((exc.code, None, -1, "", -1))
        else:
            answers.append((ErrorCode.NONE, None, node_id, host, port))
    if version >= 4:  # KIP-699: batched keys
        return FindCoordinatorResponse(
            coordinators=[
                FindCoordinatorResponse.Coordinator(
                    key=key,
                    node_id=node_id,
                    host=host,
                    port=port,
                    error_code=error,
                    error_message=message,
                )
                for key, (error, message, node_id, host, port) in zip(keys, answers, strict=True)
            ]
        )
    error, message, node_id, host, port = answers[0]
    return FindCoordinatorResponse(
        error_code=error, error_message=message, node_id=node_id, host=host, port=port
    )


def elsewhere(ctx: RequestContext, group_id: str) -> bool:
    """Cluster mode: whether another broker coordinates ``group_id`` (this one does not
    lead its __consumer_offsets partition); the request is then NOT_COORDINATOR, and the
    client asks FindCoordinator again (GroupCoordinator.validateGroupStatus)."""
    cluster = ctx.broker.cluster
    if cluster is None:
        return False
    from kbroker.cluster.coordinators import leads_coordinator

    return not leads_coordinator(cluster, KEY_TYPE_GROUP, group_id)


def _coordinator_key(ctx: RequestContext, group_id: str) -> int:
    """Which coordinator holds ``group_id``: its ``__consumer_offsets`` partition in
    cluster mode; on a single node one coordinator holds every group."""
    cluster = ctx.broker.cluster
    if cluster is None:
        return 0
    from kbroker.cluster.coordinators import coordinator_partition

    return coordinator_partition(cluster, KEY_TYPE_GROUP, group_id)[1]


def _group_refusal(ctx: RequestContext, operation: Operation, group_id: str) -> ErrorCode | None:
    """Why this broker may not act on ``group_id`` for the request: GROUP_AUTHORIZATION_FAILED
    without ``operation`` on the group (KafkaApis), NOT_COORDINATOR when another broker
    coordinates it, COORDINATOR_LOAD_IN_PROGRESS while its ``__consumer_offsets``
    partition is still loading here (GroupCoordinator.validateGroupStatus; the client
    retries); None when it may."""
    if not _may(ctx, operation, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED
    if elsewhere(ctx, group_id):
        return ErrorCode.NOT_COORDINATOR
    if group_loading(ctx.broker, group_id):
        return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    return None


def _write_deadline(ctx: RequestContext) -> float:
    """When a coordinator write the request makes must be answered by (trio time):
    offsets.commit.timeout.ms from now, waiting for an earlier write of its group
    included. Kafka's CoordinatorRuntime appends the writes of a partition one after
    the other without waiting for their replication, and times each out
    offsets.commit.timeout.ms after its append (CoordinatorWriteEvent's
    OperationTimeout): writes queued behind a write that cannot be replicated time out
    together, not one after the other. Here a group's writes wait for each other (see
    GroupCoordinator.prepare_consumer_group_heartbeat), so they share this deadline
    instead of each waiting the whole timeout in turn."""
    return trio.current_time() + ctx.broker.config["offsets.commit.timeout.ms"] / 1000


async def _settled_coordinator(
    ctx: RequestContext, operation: Operation, group_id: str, deadline: float
) -> GroupCoordinator | ErrorCode:
    """The coordinator to act on ``group_id`` once its KIP-848 group has no write in
    flight (``settled``: at once, without yielding, if it has none), or the refusal to
    answer. The refusals are checked again after every wait: the group's partition may
    have moved meanwhile, and a group led elsewhere is NOT_COORDINATOR. A group still
    not settled at ``deadline`` is COORDINATOR_NOT_AVAILABLE, what Kafka answers for a
    write that timed out (handleOperationException's REQUEST_TIMED_OUT)."""
    while True:
        refused = _group_refusal(ctx, operation, group_id)
        if refused is not None:
            return refused
        gc = coordinator_for(ctx.broker, group_id)  # polled: timers due meanwhile fire
        if gc.consumer_write_in_flight(group_id) is None:
            return gc
        if trio.current_time() >= deadline:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        await settled(gc, group_id, deadline)


async def coordinator_write_replicated(
    ctx: RequestContext,
    key_type: int,
    key: str,
    deadline: float | None = None,
    *,
    acks_all: bool = True,
) -> ErrorCode:
    """Wait until the ISR of ``key``'s coordinator partition has what this coordinator
    wrote to it (Kafka's coordinators append with acks=all and answer once the write is
    replicated, within offsets.commit.timeout.ms, or by ``deadline``, trio time, if
    given: ``_write_deadline``); the coordinator error to answer if it is not
    (COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR), NONE if it is. A partition without
    replication state (a single node) has it at once. ``acks_all`` False is a KIP-848
    group's write: see ``_consumer_write_replicated``."""
    return coordinator_error(
        await coordinator_write_wait(ctx, key_type, key, deadline, acks_all=acks_all)
    )


async def coordinator_write_wait(
    ctx: RequestContext,
    key_type: int,
    key: str,
    deadline: float | None = None,
    *,
    acks_all: bool = True,
) -> ErrorCode:
    """``coordinator_write_replicated``'s wait, answering the acks=all error itself
    (NONE, NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT),
    for a caller that maps it its own way.

    Shielded: the wait decides what becomes of a pending write (a commit, a group's
    assignment), whether or not the client is still there to hear it (it is bounded by
    the timeout)."""
    cluster = ctx.broker.cluster
    if cluster is not None:
        from kbroker.cluster.coordinators import coordinator_partition

        topic, index = coordinator_partition(cluster, key_type, key)
    else:
        topic = OFFSETS_TOPIC if key_type == KEY_TYPE_GROUP else TRANSACTION_STATE_TOPIC
        local = ctx.broker.topics.get(topic)
        if local is None:
            return ErrorCode.NONE
        index = partition_for(key, len(local.partitions))
    if deadline is None:
        timeout_ms = int(ctx.broker.config["offsets.commit.timeout.ms"])
    else:
        timeout_ms = max(0, int((deadline - trio.current_time()) * 1000))
    with trio.CancelScope(shield=True):
        error = await wait_replicated(
            ctx.broker, topic, index, timeout_ms=timeout_ms, acks_all=acks_all
        )
    return error


# --- JoinGroup (11) / SyncGroup (14) / Heartbeat (12) / LeaveGroup (13) -----------------


@handles(JoinGroupRequest.API_KEY, 0, 9)
async def handle_join_group(ctx: RequestContext, request: JoinGroupRequest) -> JoinGroupResponse:
    """Join (or rejoin) a group; answered when the rebalance completes."""
    # An empty KIP-848 group it would take over must not have a write in flight.
    gc = await _settled_coordinator(ctx, Operation.READ, request.group_id, _write_deadline(ctx))
    if not isinstance(gc, GroupCoordinator):
        return JoinGroupResponse(
            error_code=gc,
            generation_id=-1,
            protocol_name=None if ctx.api_version >= 7 else "",
            leader="",
            member_id=request.member_id,
            members=[],
        )
    version = ctx.api_version
    event = trio.Event()
    pending, takeover = gc.prepare_join_group(
        request.group_id,
        request.member_id,
        group_instance_id=request.group_instance_id if version >= 5 else None,
        protocol_type=request.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
        session_timeout_ms=request.session_timeout_ms,
        # v0 has no rebalance timeout: the session timeout bounds the join phase.
        rebalance_timeout_ms=(
            request.rebalance_timeout_ms if version >= 1 else request.session_timeout_ms
        ),
        client_id=ctx.client_id or "",
        client_host=client_host(ctx),
        # KIP-394: from v4 a new member first gets MEMBER_ID_REQUIRED and its id.
        require_known_member_id=version >= 4,
        supports_skip_assignment=version >= 9,
        on_done=event.set,
    )
    if takeover is not None:
        # A static member that took over its slot (KIP-345) learns its new member id only
        # once the group's record with it is replicated: a failover that lost it would
        # fence the member (Kafka's updateStaticMemberAndRebalance, storeGroup's callback).
        error = await coordinator_write_wait(ctx, KEY_TYPE_GROUP, request.group_id)
        gc.complete_static_join(takeover, write_error_code(error, offsets=False))
    result = await wait_pending(gc, pending, event)
    protocol_name = result.protocol_name
    if protocol_name is None and version < 7:
        protocol_name = ""  # nullable only from v7
    return JoinGroupResponse(
        error_code=result.error_code,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=protocol_name,
        leader=result.leader,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=[
            JoinGroupResponse.JoinGroupResponseMember(
                member_id=member_id, group_instance_id=instance_id, metadata=metadata
            )
            for member_id, instance_id, metadata in result.members
        ],
    )


@handles(SyncGroupRequest.API_KEY, 0, 5)
async def handle_sync_group(ctx: RequestContext, request: SyncGroupRequest) -> SyncGroupResponse:
    """Receive the leader's assignment / hand each member its own."""
    refused = _group_refusal(ctx, Operation.READ, request.group_id)
    if refused == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
        # GroupCoordinator.handleSyncGroup: the rebalance under way was lost with the
        # coordinator's state, so the member rejoins; older clients do not expect
        # COORDINATOR_LOAD_IN_PROGRESS here.
        refused = ErrorCode.REBALANCE_IN_PROGRESS
    if refused is not None:
        return SyncGroupResponse(error_code=refused, assignment=b"")
    gc = coordinator_for(ctx.broker, request.group_id)
    version = ctx.api_version
    event = trio.Event()
    pending, stored = gc.prepare_sync_group(
        request.group_id,
        request.generation_id,
        request.member_id,
        group_instance_id=request.group_instance_id if version >= 3 else None,
        protocol_type=request.protocol_type if version >= 5 else None,
        protocol_name=request.protocol_name if version >= 5 else None,
        assignments=[(a.member_id, bytes(a.assignment)) for a in request.assignments],
        on_done=event.set,
    )
    if stored is not None:
        # The leader's assignment is handed out, and the group Stable, only once its
        # record is replicated (Kafka's doSyncGroup: storeGroup's callback), so no member
        # acts on an assignment a coordinator failover would lose.
        error = await coordinator_write_wait(ctx, KEY_TYPE_GROUP, request.group_id)
        gc.complete_assignment(stored, write_error_code(error, offsets=False))
    result = await wait_pending(gc, pending, event)
    ok = result.error_code == ErrorCode.NONE
    return SyncGroupResponse(
        error_code=result.error_code,
        protocol_type=result.protocol_type if ok else None,
        protocol_name=result.protocol_name if ok else None,
        assignment=result.assignment,
    )


@handles(HeartbeatRequest.API_KEY, 0, 4)
async def handle_heartbeat(ctx: RequestContext, request: HeartbeatRequest) -> HeartbeatResponse:
    """Keep a member alive; REBALANCE_IN_PROGRESS tells it to rejoin."""
    refused = _group_refusal(ctx, Operation.READ, request.group_id)
    if refused == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
        # GroupCoordinator.handleHeartbeat: while the group loads, answered blindly.
        refused = ErrorCode.NONE
    if refused is not None:
        return HeartbeatResponse(error_code=refused)
    gc = coordinator_for(ctx.broker, request.group_id)
    error = gc.heartbeat(
        request.group_id,
        request.generation_id,
        request.member_id,
        request.group_instance_id if ctx.api_version >= 3 else None,
    )
    return HeartbeatResponse(error_code=error)


@handles(LeaveGroupRequest.API_KEY, 0, 5)
async def handle_leave_group(ctx: RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse:
    """Remove members (one before v3; a batch, possibly by instance id, from v3, KIP-345)."""
    refused = _group_refusal(ctx, Operation.READ, request.group_id)
    if refused is not None:
        return LeaveGroupResponse(error_code=refused, members=[])
    gc = coordinator_for(ctx.broker, request.group_id)
    if ctx.api_version < 3:
        top, errors = gc.leave_group(request.group_id, [(request.member_id, None)])
        # Before v3 the member's error is the response's error.
        return LeaveGroupResponse(error_code=top if top != ErrorCode.NONE else errors[0])
    identities = [(m.member_id, m.group_instance_id) for m in request.members]
    top, errors = gc.leave_group(request.group_id, identities)
    return LeaveGroupResponse(
        error_code=top,
        members=[
            LeaveGroupResponse.MemberResponse(
                member_id=member_id, group_instance_id=instance_id, error_code=error
            )
            for (member_id, instance_id), error in zip(identities, errors, strict=False)
        ]
        if top == ErrorCode.NONE
        else [],
    )


# --- OffsetCommit (8) / OffsetFetch (9) / OffsetDelete (47) -----------------------------


@handles(OffsetCommitRequest.API_KEY, 0, 9)
async def handle_offset_commit(
    ctx: RequestContext, request: OffsetCommitRequest
) -> OffsetCommitResponse:
    """Store committed offsets (in __consumer_offsets before answering)."""
    refused = _group_refusal(ctx, Operation.READ, request.group_id)
    codes = (
        dict.fromkeys(requested_partitions(request.topics), refused)
        if refused is not None
        else await _commit_offsets(ctx, request)
    )
    return OffsetCommitResponse(
        topics=partition_errors(
            request.topics,
            codes,
            OffsetCommitResponse.OffsetCommitResponseTopic,
            OffsetCommitResponse.OffsetCommitResponsePartition,
        )
    )


async def _commit_offsets(
    ctx: RequestContext, request: OffsetCommitRequest
) -> dict[tuple[str, int], int]:
    """OffsetCommit for a group the principal may Read: each partition's error code."""
    gc = coordinator_for(ctx.broker, request.group_id)
    version = ctx.api_version
    now = gc.now_ms()
    retention = request.retention_time_ms if 2 <= version <= 4 else -1
    codes = refused_partitions(ctx, Operation.READ, requested_partitions(request.topics))
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    for t in request.topics:
        for p in t.partitions:
            tp = (t.name, p.partition_index)
            if tp in codes:
                continue
            commit_ts = p.commit_timestamp if version == 1 and p.commit_timestamp != -1 else now
            offsets[tp] = OffsetAndMetadata(
                offset=p.committed_offset,
                leader_epoch=p.committed_leader_epoch if version >= 6 else -1,
                metadata=p.committed_metadata or "",
                commit_timestamp=commit_ts,
                # OffsetCommit v2-4 may set a per-request retention (removed by KIP-211).
                expire_timestamp=now + retention if retention != -1 else None,
            )
    if offsets:
        # A KIP-848 group's commit is the new group coordinator's write (acks=1, waiting
        # for the high watermark: see _consumer_write_replicated). A classic group's is
        # acks=all, as in the Kafka that kbroker's cluster mode follows: in ZooKeeper
        # mode Kafka 3.9's KafkaServer runs the old GroupCoordinator, whose
        # GroupMetadataManager.storeOffsets appends (appendForGroup) with requiredAcks =
        # offsets.commit.required.acks, default -1 (deprecated in 3.9, gone in 4.0,
        # and not a kbroker setting); only the new coordinator, KRaft-only there,
        # writes every group's offsets with acks=1.
        acks_all = gc.consumer_group(request.group_id) is None
        accepted, commit = gc.prepare_offset_commit(
            request.group_id,
            request.generation_id_or_member_epoch if version >= 1 else -1,
            request.member_id if version >= 1 else "",
            offsets,
            group_instance_id=request.group_instance_id if version >= 7 else None,
            api_version=version,
        )
        codes.update(accepted)
        if commit is not None:
            # A commit is acknowledged, and shown by OffsetFetch, once replicated, so it
            # survives a coordinator failover; one that is not is dropped again.
            error = await coordinator_write_replicated(
                ctx, KEY_TYPE_GROUP, request.group_id, acks_all=acks_all
            )
            gc.complete_offset_commit(commit, replicated=error == ErrorCode.NONE)
            for tp in commit.offsets:
                codes[tp] = error
    return codes


# OffsetFetch's answer for one group: topic -> [(partition, committed offset or None, error)].
_Found = dict[str, list[tuple[int, OffsetAndMetadata | None, int]]]


def _fetch_group(
    ctx: RequestContext,
    group_id: str,
    topics: list[tuple[str, list[int]]] | None,
    require_stable: bool,
) -> _Found:
    """topic → [(partition, OffsetAndMetadata | None, error)] in request order (or all)."""
    gc = coordinator_for(ctx.broker, group_id)
    wanted = None if topics is None else [(name, p) for name, parts in topics for p in parts]
    found = gc.fetch_offsets(group_id, wanted)
    # KIP-447: with require_stable, a partition whose offset an open transaction or a
    # commit not yet replicated is about to change is UNSTABLE_OFFSET_COMMIT (no offset),
    # so the consumer retries after it (GroupMetadata.hasPendingOffsetCommitsForTopicPartition).
    unstable = (
        pending_partitions(ctx.broker, group_id) | gc.pending_offset_partitions(group_id)
        if require_stable
        else set()
    )
    # KafkaApis.handleOffsetFetchRequest: a topic the principal may not Describe is
    # TOPIC_AUTHORIZATION_FAILED when named, and left out when all topics are asked for.
    visible = filter_allowed(ctx, Operation.DESCRIBE, ResourceType.TOPIC, {t for t, _ in found})
    out: _Found = {}
    if topics is not None:
        for name, _ in topics:
            out.setdefault(name, [])
    for (topic, partition), om in found.items():
        if topic not in visible:
            if topics is not None:
                out[topic].append((partition, None, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            continue
        if (topic, partition) in unstable:
            out.setdefault(topic, []).append((partition, None, ErrorCode.UNSTABLE_OFFSET_COMMIT))
        else:
            out.setdefault(topic, []).append((partition, om, ErrorCode.NONE))
    return out


@handles(OffsetFetchRequest.API_KEY, 0, 9)
async def handle_offset_fetch(
    ctx: RequestContext, request: OffsetFetchRequest
) -> OffsetFetchResponse:
    """Committed offsets of one group (v0-7) or several (v8+); null topics = all."""
    version = ctx.api_version
    require_stable = version >= 7 and request.require_stable
    R = OffsetFetchResponse
    if version >= 8:
        groups = []
        for g in request.groups:
            # v9+: KIP-848 members identify themselves; a stale one must not read offsets.
            member = (g.member_id, g.member_epoch) if version >= 9 else None
            error, found = _group_offsets(ctx, g.group_id, g.topics, require_stable, member)
            groups.append(
                R.OffsetFetchResponseGroup(
                    group_id=g.group_id,
                    error_code=error,
                    topics=_offset_topics(
                        found, R.OffsetFetchResponseTopics, R.OffsetFetchResponsePartitions
                    ),
                )
            )
        return R(groups=groups)
    error, found = _group_offsets(ctx, request.group_id, request.topics, require_stable)
    return R(
        error_code=error,
        topics=_offset_topics(found, R.OffsetFetchResponseTopic, R.OffsetFetchResponsePartition),
    )


def _group_offsets(
    ctx: RequestContext,
    group_id: str,
    topics: list[Any] | None,
    require_stable: bool,
    member: tuple[str | None, int] | None = None,
) -> tuple[int, _Found]:
    """One group's part of OffsetFetch: an error for the whole group (and no offsets), or
    NONE and the offsets of the topics asked for (None: all the group has)."""
    refused = _group_refusal(ctx, Operation.DESCRIBE, group_id)
    if refused is not None:
        return refused, {}
    if member is not None:
        error = coordinator_for(ctx.broker, group_id).validate_offset_fetch(group_id, *member)
        if error != ErrorCode.NONE:
            return error, {}
    wanted = None if topics is None else [(t.name, list(t.partition_indexes)) for t in topics]
    return ErrorCode.NONE, _fetch_group(ctx, group_id, wanted, require_stable)


def _offset_topics(
    found: _Found,
    topic_class: Any,
    partition_class: Any,
) -> list[Any]:
    """OffsetFetch's topics (the v0-7 or the v8+ classes): -1 and "" where nothing is
    committed."""
    return [
        topic_class(
            name=name,
            partitions=[
                partition_class(
                    partition_index=p,
                    committed_offset=om.offset if om else -1,
                    committed_leader_epoch=om.leader_epoch if om else -1,
                    metadata=om.metadata if om else "",
                    error_code=error,
                )
                for p, om, error in parts
            ],
        )
        for name, parts in found.items()
    ]


@handles(OffsetDeleteRequest.API_KEY, 0, 0)
async def handle_offset_delete(
    ctx: RequestContext, request: OffsetDeleteRequest
) -> OffsetDeleteResponse:
    """Delete committed offsets of topics the group no longer subscribes to (KIP-496)."""
    refused = _group_refusal(ctx, Operation.DELETE, request.group_id)
    if refused is not None:
        return OffsetDeleteResponse(error_code=refused)
    gc = coordinator_for(ctx.broker, request.group_id)
    requested = requested_partitions(request.topics)
    codes = refused_partitions(ctx, Operation.READ, requested)
    error, result = gc.delete_offsets(request.group_id, [tp for tp in requested if tp not in codes])
    if error != ErrorCode.NONE:
        return OffsetDeleteResponse(error_code=error)
    codes.update(result)
    return OffsetDeleteResponse(
        topics=partition_errors(
            request.topics,
            codes,
            OffsetDeleteResponse.OffsetDeleteResponseTopic,
            OffsetDeleteResponse.OffsetDeleteResponsePartition,
        )
    )


# --- DescribeGroups (15) / ListGroups (16) / DeleteGroups (42) --------------------------


@handles(DescribeGroupsRequest.API_KEY, 0, 5)
async def handle_describe_groups(
    ctx: RequestContext, request: DescribeGroupsRequest
) -> DescribeGroupsResponse:
    """State, protocol and members of each group (unknown groups are Dead)."""
    include_ops = ctx.api_version >= 3 and request.include_authorized_operations
    out = []
    for group_id in request.groups:
        refused = _group_refusal(ctx, Operation.DESCRIBE, group_id)
        if refused is not None:
            out.append(
                DescribeGroupsResponse.DescribedGroup(
                    error_code=refused,
                    group_id=group_id,
                    group_state="",
                    protocol_type="",
                    protocol_data="",
                    members=[],
                    authorized_operations=_group_ops(ctx, group_id, include_ops),
                )
            )
            continue
        d = coordinator_for(ctx.broker, group_id).describe_group(group_id)
        out.append(
            DescribeGroupsResponse.DescribedGroup(
                error_code=d.error_code,
                group_id=d.group_id,
                group_state=d.state,
                protocol_type=d.protocol_type,
                protocol_data=d.protocol_data,
                members=[
                    DescribeGroupsResponse.DescribedGroupMember(
                        member_id=m.member_id,
                        group_instance_id=m.group_instance_id,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        member_metadata=m.metadata,
                        member_assignment=m.assignment,
                    )
                    for m in d.members
                ],
                authorized_operations=_group_ops(ctx, group_id, include_ops),
            )
        )
    return DescribeGroupsResponse(groups=out)


@handles(ListGroupsRequest.API_KEY, 0, 5)
async def handle_list_groups(ctx: RequestContext, request: ListGroupsRequest) -> ListGroupsResponse:
    """Every group, filtered by state (v4+, KIP-518) and type (v5+, KIP-848)."""
    version = ctx.api_version
    states = {s.lower() for s in request.states_filter} if version >= 4 else set()
    types = {t.lower() for t in request.types_filter} if version >= 5 else set()
    groups = []
    # KafkaApis.handleListGroupsRequest: Describe on the cluster lists every group,
    # else only the groups the principal may Describe.
    see_all = allowed_cluster(ctx, Operation.DESCRIBE)
    listed = [g for gc in coordinators(ctx.broker) for g in gc.list_groups()]
    # GroupCoordinator.handleListGroups: the groups of the partitions loaded, and
    # COORDINATOR_LOAD_IN_PROGRESS while some partition of this broker still loads.
    error = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if loading(ctx.broker) else ErrorCode.NONE
    for group_id, protocol_type, state, group_type in listed:
        if not see_all and not _may(ctx, Operation.DESCRIBE, group_id):
            continue
        if states and state.lower() not in states:
            continue
        if types and group_type not in types:
            continue
        groups.append(
            ListGroupsResponse.ListedGroup(
                group_id=group_id,
                protocol_type=protocol_type,
                group_state=state,
                group_type=group_type,
            )
        )
    return ListGroupsResponse(error_code=error, groups=groups)


@handles(DeleteGroupsRequest.API_KEY, 0, 2)
async def handle_delete_groups(
    ctx: RequestContext, request: DeleteGroupsRequest
) -> DeleteGroupsResponse:
    """Delete empty groups and their offsets (NON_EMPTY_GROUP while members remain)."""
    deadline = _write_deadline(ctx)
    # Results are keyed by group id (Kafka's response is a map): duplicates collapse.
    names = list(dict.fromkeys(request.groups_names))
    refusals = {g: _group_refusal(ctx, Operation.DELETE, g) for g in names}
    # The groups of each coordinator together (in cluster mode one coordinator per
    # __consumer_offsets partition, as Kafka's new coordinator deletes per partition).
    shards: dict[int, list[str]] = {}
    for g in names:
        if refusals[g] is None:
            shards.setdefault(_coordinator_key(ctx, g), []).append(g)
    result: dict[str, int] = {}
    writes: list[tuple[GroupCoordinator, ConsumerGroupWrite]] = []
    try:
        for shard_names in shards.values():
            # Checked again: an earlier shard may have waited, and this one's partition may
            # have moved meanwhile (NOT_COORDINATOR, not a request that fails whole).
            refusals.update({g: _group_refusal(ctx, Operation.DELETE, g) for g in shard_names})
            allowed_names = [g for g in shard_names if refusals[g] is None]
            if not allowed_names:
                continue
            gc = coordinator_for(ctx.broker, allowed_names[0])
            while (
                busy := next(filter(gc.consumer_write_in_flight, allowed_names), None)
            ) is not None:
                if trio.current_time() >= deadline:
                    # Not settled in time: a timed-out write (see _settled_coordinator).
                    refusals[busy] = ErrorCode.COORDINATOR_NOT_AVAILABLE
                else:
                    await settled(gc, busy, deadline)
                    # Checked again, as a heartbeat does: the partition may have moved
                    # meanwhile, and a group led elsewhere is NOT_COORDINATOR, not what this
                    # broker's log says.
                    refusals.update(
                        {g: _group_refusal(ctx, Operation.DELETE, g) for g in allowed_names}
                    )
                allowed_names = [g for g in shard_names if refusals[g] is None]
                if not allowed_names:
                    break
                gc = coordinator_for(ctx.broker, allowed_names[0])
            if allowed_names:
                deleted, shard_writes = gc.prepare_delete_groups(allowed_names)
                result.update(deleted)
                writes.extend((gc, write) for write in shard_writes)
        for gc, write in writes:
            # A KIP-848 group's deletion is answered once its tombstones are replicated; the
            # deletions were all appended first, so their waits share the deadline.
            result[write.group_id] = await _consumer_write_replicated(ctx, gc, write, deadline)
    finally:
        # Torn down (the request cancelled while it waits for a later partition's group,
        # or for an earlier deletion's replication): every deletion prepared is settled,
        # as failed if its wait never ran (the group and its offsets come back), so no
        # group is left with a write in flight that nothing will ever settle.
        for gc, write in writes:
            gc.complete_consumer_write(write, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    result.update({g: refused for g, refused in refusals.items() if refused is not None})
    return DeleteGroupsResponse(
        results=[
            DeleteGroupsResponse.DeletableGroupResult(group_id=g, error_code=result[g])
            for g in names
        ]
    )


# --- KIP-848: ConsumerGroupHeartbeat (68) / ConsumerGroupDescribe (69) ------------------


def _topics_view(ctx: RequestContext) -> dict[str, tuple[Any, int]]:
    cluster = ctx.broker.cluster
    if cluster is not None:  # the cluster's topics, not this broker's copies
        return {
            name: (info.topic_id, len(info.partitions))
            for name, info in cluster.metadata.topics.items()
        }
    return {
        name: (topic.topic_id, len(topic.partitions))
        for name, topic in ctx.broker.topics.topics.items()
    }


async def _consumer_write_replicated(
    ctx: RequestContext, gc: GroupCoordinator, write: ConsumerGroupWrite, deadline: float
) -> ErrorCode:
    """Wait for a KIP-848 group's write to be committed and settle it: NONE, or the
    error to answer, the group being back to its committed state.

    Kafka's new group coordinator appends with acks=1 (CoordinatorPartitionWriter
    .append) and completes the operation once the high watermark passes its records
    (CoordinatorRuntime), so an ISR below min.insync.replicas does not fail it: only a
    high watermark that does not get there within the timeout does. Errors as
    GroupCoordinatorService.handleOperationException maps a failed write:
    REQUEST_TIMED_OUT is COORDINATOR_NOT_AVAILABLE, a lost leadership NOT_COORDINATOR
    (``coordinator_error``)."""
    error = ErrorCode.COORDINATOR_NOT_AVAILABLE
    try:
        error = await coordinator_write_replicated(
            ctx, KEY_TYPE_GROUP, write.group_id, deadline, acks_all=False
        )
    finally:
        # Settled even if the wait is torn down, so the group's next writer goes on.
        gc.complete_consumer_write(write, error)
    return error


@handles(ConsumerGroupHeartbeatRequest.API_KEY, 0, 1)
async def handle_consumer_group_heartbeat(
    ctx: RequestContext, request: ConsumerGroupHeartbeatRequest
) -> ConsumerGroupHeartbeatResponse:
    """The KIP-848 protocol: join, heartbeat, reconcile and leave in one API."""
    # One write in flight per group: see GroupCoordinator.prepare_consumer_group_heartbeat.
    deadline = _write_deadline(ctx)
    gc = await _settled_coordinator(ctx, Operation.READ, request.group_id, deadline)
    if not isinstance(gc, GroupCoordinator):
        return ConsumerGroupHeartbeatResponse(error_code=gc)
    owned = None
    if request.topic_partitions is not None:
        owned = {
            tp.topic_id: set(tp.partitions) for tp in request.topic_partitions if tp.partitions
        }
    result, write = gc.prepare_consumer_group_heartbeat(
        request.group_id,
        request.member_id,
        request.member_epoch,
        topics=_topics_view(ctx),
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=request.rebalance_timeout_ms,
        subscribed_names=(
            list(request.subscribed_topic_names)
            if request.subscribed_topic_names is not None
            else None
        ),
        regex=request.subscribed_topic_regex if ctx.api_version >= 1 else None,
        server_assignor=request.server_assignor,
        owned=owned,
        client_id=ctx.client_id or "",
        client_host=client_host(ctx),
    )
    if write is not None:
        # Answered once the group's records are replicated, so a member never acts on
        # an epoch or assignment a coordinator failover would lose (Kafka's
        # CoordinatorRuntime completes the write when the high watermark passes it).
        error = await _consumer_write_replicated(ctx, gc, write, deadline)
        if error != ErrorCode.NONE:
            return ConsumerGroupHeartbeatResponse(error_code=error)
    if result.error_code != ErrorCode.NONE:
        return ConsumerGroupHeartbeatResponse(
            error_code=result.error_code, error_message=result.error_message
        )
    assignment = None
    if result.assignment is not None:
        R = ConsumerGroupHeartbeatResponse
        assignment = R.Assignment(
            topic_partitions=[
                R.TopicPartitions(topic_id=topic_id, partitions=sorted(parts))
                for topic_id, parts in sorted(result.assignment.items(), key=lambda kv: str(kv[0]))
            ]
        )
    return ConsumerGroupHeartbeatResponse(
        error_code=ErrorCode.NONE,
        member_id=result.member_id,
        member_epoch=result.member_epoch,
        heartbeat_interval_ms=gc.config.consumer_heartbeat_interval_ms,
        assignment=assignment,
    )


@handles(ConsumerGroupDescribeRequest.API_KEY, 0, 0)
async def handle_consumer_group_describe(
    ctx: RequestContext, request: ConsumerGroupDescribeRequest
) -> ConsumerGroupDescribeResponse:
    """Members, epochs and (target) assignments of KIP-848 groups."""
    names = {topic_id: name for name, (topic_id, _) in _topics_view(ctx).items()}
    R = ConsumerGroupDescribeResponse

    def assignment(a: dict) -> Any:
        return R.Assignment(
            topic_partitions=[
                R.TopicPartitions(
                    topic_id=topic_id, topic_name=names.get(topic_id, ""), partitions=sorted(parts)
                )
                for topic_id, parts in sorted(a.items(), key=lambda kv: str(kv[0]))
            ]
        )

    out = []
    for group_id in request.group_ids:
        refused = _group_refusal(ctx, Operation.DESCRIBE, group_id)
        if refused is not None:
            out.append(R.DescribedGroup(error_code=refused, group_id=group_id))
            continue
        group = coordinator_for(ctx.broker, group_id).consumer_group(group_id)
        if group is None:
            out.append(
                R.DescribedGroup(
                    error_code=ErrorCode.GROUP_ID_NOT_FOUND,
                    error_message=f"Group {group_id} not found.",
                    group_id=group_id,
                )
            )
            continue
        out.append(
            R.DescribedGroup(
                group_id=group_id,
                group_state=group.state.value,
                group_epoch=group.group_epoch,
                assignment_epoch=group.assignment_epoch,
                assignor_name=group.assignor,
                authorized_operations=_group_ops(
                    ctx, group_id, request.include_authorized_operations
                ),
                members=[
                    R.Member(
                        member_id=m.member_id,
                        instance_id=m.instance_id,
                        rack_id=m.rack_id,
                        member_epoch=m.epoch,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        subscribed_topic_names=list(m.subscribed_names),
                        subscribed_topic_regex=m.regex,
                        assignment=assignment(m.assigned),
                        target_assignment=assignment(group.target.get(m.member_id, {})),
                    )
                    for m in group.members.values()
                ],
            )
        )
    return R(groups=out)
