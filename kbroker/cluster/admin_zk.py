"""Topic administration through ZooKeeper, as Kafka's AdminZkClient and AdminUtils do it.

A broker that receives CreateTopics / DeleteTopics / CreatePartitions / AlterConfigs writes
the request into ZooKeeper here; the controller (watching those znodes) does the rest:
initial leaders, LeaderAndIsr to the replicas, StopReplica on deletion. Errors are
``KafkaApiError`` subclasses carrying Kafka's error code, so handlers report them as is.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping, Sequence

from kbroker.cluster import znodes
from kbroker.cluster.zk import BadVersion, NodeExists, NoNode, ZkClient
from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode

__all__ = [
    "PRODUCER_ID_BLOCK_SIZE",
    "InvalidPartitionsError",
    "InvalidReplicaAssignmentError",
    "InvalidReplicationFactorError",
    "PreferredElectionInProgressError",
    "TopicExistsError",
    "TopicMarkedForDeletionError",
    "UnknownTopicError",
    "add_partitions",
    "allocate_producer_ids",
    "assign_replicas",
    "change_topic_config",
    "create_topic",
    "delete_topic",
    "read_topic_assignment",
    "read_topic_config",
    "request_preferred_election",
]

# ProducerIdManager.PID_BLOCK_SIZE: ids a broker takes from ZooKeeper at a time.
PRODUCER_ID_BLOCK_SIZE = 1000


class TopicExistsError(KafkaApiError):
    def __init__(self, topic: str) -> None:
        super().__init__(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{topic}' already exists.")


class UnknownTopicError(KafkaApiError):
    def __init__(self, topic: str) -> None:
        super().__init__(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic `{topic}` to delete does not exist"
        )


class TopicMarkedForDeletionError(KafkaApiError):
    def __init__(self, topic: str) -> None:
        # Kafka's TopicAlreadyMarkedForDeletionException; delete_topic() no longer raises
        # it (a repeat succeeds, as in Kafka), the name stays for callers that catch it.
        super().__init__(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {topic} is already marked for deletion"
        )


class InvalidReplicationFactorError(KafkaApiError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_REPLICATION_FACTOR, message)


class InvalidPartitionsError(KafkaApiError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_PARTITIONS, message)


class InvalidReplicaAssignmentError(KafkaApiError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_REPLICA_ASSIGNMENT, message)


class PreferredElectionInProgressError(KafkaApiError):
    def __init__(self) -> None:
        super().__init__(
            ErrorCode.UNKNOWN_SERVER_ERROR, "Preferred replica leader election is already running"
        )


# --- Replica placement (org.apache.kafka.admin.AdminUtils) -----------------------------


def assign_replicas(
    brokers: Sequence[tuple[int, str | None]],
    partitions: int,
    replication_factor: int,
    *,
    start_index: int | None = None,
    start_partition: int | None = None,
    rng: random.Random | None = None,
) -> dict[int, list[int]]:
    """Kafka's AdminUtils.assignReplicasToBrokers.

    Leaders go round-robin over the brokers from a random start; each follower is placed
    at a shift from its leader that grows by one every ``len(brokers)`` partitions, so the
    followers of one broker's partitions spread over all the others. When any broker has a
    rack, every broker must have one and the brokers are first arranged so that racks
    alternate, and a follower skips a rack (or broker) that already has a replica while
    another has none. ``brokers`` is (id, rack); Kafka sorts it by id first.
    """
    if partitions <= 0:
        raise InvalidPartitionsError("Number of partitions must be larger than 0.")
    if replication_factor <= 0:
        raise InvalidReplicationFactorError("Replication factor must be larger than 0.")
    if replication_factor > len(brokers):
        raise InvalidReplicationFactorError(
            f"Replication factor: {replication_factor} larger than available brokers: "
            f"{len(brokers)}."
        )
    rng = rng or random.Random()
    ordered = sorted(brokers)
    racks = {b: r for b, r in ordered}
    if all(r is None for r in racks.values()):
        broker_list = [b for b, _ in ordered]
        rack_aware = False
    else:
        if any(r is None for r in racks.values()):
            raise InvalidReplicaAssignmentError(
                "Not all brokers have rack information for replica rack aware assignment."
            )
        broker_list = rack_alternated_brokers({b: str(r) for b, r in racks.items()})
        rack_aware = True
    n = len(broker_list)
    num_racks = len(set(racks.values()))
    fixed = start_index is not None and start_index >= 0
    first = start_index if fixed else rng.randrange(n)
    shift = start_index if fixed else rng.randrange(n)
    assert first is not None and shift is not None
    current = max(0, start_partition or 0)
    out: dict[int, list[int]] = {}
    for _ in range(partitions):
        if current > 0 and current % n == 0:
            shift += 1
        first_index = (current + first) % n
        leader = broker_list[first_index]
        replicas = [leader]
        if not rack_aware:
            for j in range(replication_factor - 1):
                replicas.append(broker_list[_replica_index(first_index, shift, j, n)])
        else:
            racks_used = {racks[leader]}
            brokers_used = {leader}
            k = 0
            for _j in range(replication_factor - 1):
                while True:
                    broker = broker_list[_replica_index(first_index, shift * num_racks, k, n)]
                    rack = racks[broker]
                    k += 1
                    if (rack not in racks_used or len(racks_used) == num_racks) and (
                        broker not in brokers_used or len(brokers_used) == n
                    ):
                        replicas.append(broker)
                        racks_used.add(rack)
                        brokers_used.add(broker)
                        break
        out[current] = replicas
        current += 1
    return out


def _replica_index(first_index: int, second_shift: int, replica_index: int, n: int) -> int:
    shift = 1 + (second_shift + replica_index) % (n - 1)
    return (first_index + shift) % n


def rack_alternated_brokers(broker_racks: Mapping[int, str]) -> list[int]:
    """Kafka's getRackAlternatedBrokerList: one broker per rack in turn (racks and the
    brokers within a rack sorted), e.g. r1:[0,1,2] r2:[3] r3:[4,5] -> 0,3,4,1,5,2."""
    by_rack: dict[str, list[int]] = {}
    for b, r in broker_racks.items():
        by_rack.setdefault(r, []).append(b)
    queues = [sorted(by_rack[r]) for r in sorted(by_rack)]
    out: list[int] = []
    i = 0
    while len(out) < len(broker_racks):
        q = queues[i]
        if q:
            out.append(q.pop(0))
        i = (i + 1) % len(queues)
    return out


def validate_assignment(
    assignment: Mapping[int, Sequence[int]],
    live_brokers: Iterable[int],
    *,
    first_partition: int = 0,
) -> None:
    """AdminZkClient.validateReplicaAssignment: same replication factor everywhere, no
    duplicate replica, every replica a known broker, partitions consecutive from
    ``first_partition``."""
    live = set(live_brokers)
    if not assignment:
        raise InvalidReplicaAssignmentError("Replica assignment is empty")
    sizes = {len(r) for r in assignment.values()}
    if 0 in sizes:
        raise InvalidReplicaAssignmentError("Replica assignment must have at least one replica")
    if len(sizes) != 1:
        raise InvalidReplicaAssignmentError(
            "All partitions should have the same number of replicas"
        )
    for p, replicas in assignment.items():
        if len(set(replicas)) != len(replicas):
            raise InvalidReplicaAssignmentError(
                f"Duplicate replica assignment found: {p} -> {list(replicas)}"
            )
        unknown = set(replicas) - live
        if unknown:
            raise InvalidReplicaAssignmentError(
                f"Unknown broker(s) in replica assignment: {','.join(map(str, sorted(unknown)))}."
            )
    expected = list(range(first_partition, first_partition + len(assignment)))
    if sorted(assignment) != expected:
        raise InvalidReplicaAssignmentError(
            "Partitions should be a consecutive 0-based integer sequence"
        )


# --- Topic znodes ----------------------------------------------------------------------


async def read_topic_assignment(zk: ZkClient, name: str) -> znodes.TopicAssignment | None:
    try:
        data, _ = await zk.get(znodes.topic_path(name))
    except NoNode:
        return None
    return znodes.TopicAssignment.decode(data)


async def read_topic_config(zk: ZkClient, name: str) -> dict[str, str]:
    try:
        data, _ = await zk.get(znodes.topic_config_path(name))
    except NoNode:
        return {}
    return znodes.decode_topic_config(data)


async def _set_or_create(zk: ZkClient, path: str, value: bytes) -> None:
    try:
        await zk.set(path, value)
    except NoNode:
        try:
            await zk.create(path, value, makepath=True)
        except NodeExists:  # created meanwhile by someone else: last writer wins, as Kafka
            await zk.set(path, value)


async def create_topic(
    zk: ZkClient,
    name: str,
    assignment: Mapping[int, Sequence[int]],
    configs: Mapping[str, str] | None = None,
    topic_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """AdminZkClient.createTopicWithAssignment: the config first (not atomic with the
    assignment, as in Kafka), then /brokers/topics/<t>, which the controller watches.
    Returns the topic id. TopicExistsError if the topic (or one marked for deletion) exists."""
    if await zk.exists(znodes.topic_path(name)) is not None:
        raise TopicExistsError(name)
    topic_id = topic_id or uuid.uuid4()
    await _set_or_create(
        zk, znodes.topic_config_path(name), znodes.encode_topic_config(configs or {})
    )
    data = znodes.TopicAssignment(
        partitions={p: tuple(r) for p, r in assignment.items()}, topic_id=topic_id
    ).encode()
    try:
        await zk.create(znodes.topic_path(name), data, makepath=True)
    except NodeExists:
        raise TopicExistsError(name) from None
    return topic_id


async def delete_topic(zk: ZkClient, name: str) -> None:
    """AdminZkClient.deleteTopic: mark it in /admin/delete_topics; the controller deletes.

    A topic already marked is not an error: Kafka's ZkAdminManager swallows
    TopicAlreadyMarkedForDeletionException, so a repeated DeleteTopics succeeds."""
    if await zk.exists(znodes.topic_path(name)) is None:
        raise UnknownTopicError(name)
    try:
        await zk.create(znodes.delete_topic_path(name), makepath=True)
    except NodeExists:
        pass


async def add_partitions(zk: ZkClient, name: str, assignment: Mapping[int, Sequence[int]]) -> None:
    """Add the partitions in ``assignment`` (new ids only) to the topic's znode, keeping its
    topic id; the controller's watch on the znode starts them."""
    try:
        data, stat = await zk.get(znodes.topic_path(name))
    except NoNode:
        raise UnknownTopicError(name) from None
    current = znodes.TopicAssignment.decode(data)
    clash = set(assignment) & set(current.partitions)
    if clash:
        raise InvalidPartitionsError(f"Partitions {sorted(clash)} already exist")
    merged = dict(current.partitions)
    merged.update({p: tuple(r) for p, r in assignment.items()})
    updated = znodes.TopicAssignment(
        partitions=merged,
        topic_id=current.topic_id,
        adding_replicas=current.adding_replicas,
        removing_replicas=current.removing_replicas,
    )
    try:
        await zk.set(znodes.topic_path(name), updated.encode(), version=stat.version)
    except BadVersion:
        raise InvalidPartitionsError(
            f"Topic {name} was modified concurrently; retry the request"
        ) from None


async def change_topic_config(zk: ZkClient, name: str, configs: Mapping[str, str]) -> None:
    """AdminZkClient.changeTopicConfig: the full override set, then a change notification
    (/config/changes/config_change_N) that every broker's config listener acts on."""
    await _set_or_create(zk, znodes.topic_config_path(name), znodes.encode_topic_config(configs))
    await zk.ensure_path(znodes.CONFIG_CHANGES)
    await zk.create(
        f"{znodes.CONFIG_CHANGES}/{znodes.CONFIG_CHANGE_PREFIX}",
        znodes.encode_config_change(f"topics/{name}"),
        sequence=True,
    )


async def allocate_producer_ids(
    zk: ZkClient, broker_id: int, block_size: int = PRODUCER_ID_BLOCK_SIZE
) -> tuple[int, int]:
    """ZkProducerIdManager.getNewProducerIdBlock: take the next block after the one in
    /latest_producer_id_block with a version-checked write, retrying if another broker
    won the race, so no two brokers ever get the same ids. Returns (first id, count)."""
    path = znodes.LATEST_PRODUCER_ID_BLOCK
    while True:
        try:
            data, stat = await zk.get(path)
        except NoNode:
            data, stat = b"", None
        start = znodes.ProducerIdBlock.decode(data).block_end + 1 if data else 0
        if start > 2**63 - 1 - block_size:
            raise KafkaApiError(
                ErrorCode.UNKNOWN_SERVER_ERROR, "Exhausted all producerIds as the next block"
            )
        block = znodes.ProducerIdBlock(broker_id, start, start + block_size - 1)
        try:
            if stat is None:
                await zk.create(path, block.encode(), makepath=True)
            else:
                await zk.set(path, block.encode(), version=stat.version)
        except (BadVersion, NodeExists):
            continue
        return start, block_size


async def request_preferred_election(
    zk: ZkClient, partitions: Iterable[znodes.TopicPartition]
) -> None:
    """Write /admin/preferred_replica_election (Kafka's PreferredReplicaLeaderElectionCommand);
    the controller elects, then deletes the znode. One election at a time."""
    data = znodes.encode_partition_list(partitions)
    await zk.ensure_path("/admin")
    try:
        await zk.create(znodes.PREFERRED_REPLICA_ELECTION, data)
    except NodeExists:
        raise PreferredElectionInProgressError() from None
