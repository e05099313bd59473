"""A coordinator's own writes are replicated before it answers (real processes).

Kafka's group coordinator appends committed offsets to ``__consumer_offsets`` with
acks=all and acknowledges the OffsetCommit only once the partition's ISR has the
write; so a commit that was acknowledged survives the coordinator's failover, and
one that cannot be replicated is answered COORDINATOR_NOT_AVAILABLE, not NONE. The
transaction coordinator's writes to ``__transaction_state`` likewise: its state changes
only once the ISR has the record (TransactionStateManager.appendTransactionToLog). And a
KIP-848 group's ConsumerGroupHeartbeat is answered once its records are committed (the
new group coordinator's CoordinatorRuntime), so the epochs and assignments members act
on survive the coordinator.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from kbroker.cluster_runner import HOST, Cluster, request  # noqa: E402
from kbroker.coordinator.group import partition_for  # noqa: E402
from kbroker.wire.errors import ErrorCode  # noqa: E402
from kbroker.wire.messages import (  # noqa: E402
    AddPartitionsToTxnRequest,
    ConsumerGroupDescribeRequest,
    ConsumerGroupHeartbeatRequest,
    DescribeGroupsRequest,
    DescribeProducersRequest,
    DescribeTransactionsRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    OffsetFetchRequest,
    WriteTxnMarkersRequest,
)
from tests.cluster.real_cluster import needs_zookeeper  # noqa: E402
from tests.kbroker.helpers import (  # noqa: E402
    LATEST,
    commit_request,
    described_members,
    join_req,
    list_offsets_request,
    sole_member_sync,
)

pytestmark = needs_zookeeper

CONFIG = {
    "zookeeper.session.timeout.ms": 10000,
    "min.insync.replicas": 2,
    "replica.lag.time.max.ms": 2000,
    "offsets.topic.num.partitions": 1,
    "offsets.topic.replication.factor": 3,
    "offsets.commit.timeout.ms": 5000,
}
GROUP = "replicated-commits"


def _commit(cluster: Cluster, broker_id: int, topic: str, offset: int) -> int:
    body = commit_request(GROUP, {(topic, 0): offset}, metadata="")
    response = request(HOST, cluster.broker(broker_id).port, body, 8, timeout=30)
    return int(response.topics[0].partitions[0].error_code)


# What a broker answers while it is not (yet) the group's coordinator: a client looks for the
# coordinator again and retries (ConsumerCoordinator), so a wait goes on through them.
_NOT_COORDINATOR_YET = (
    ErrorCode.NOT_COORDINATOR,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
)


def _committed(cluster: Cluster, broker_id: int, topic: str) -> int | None:
    """The group's committed offset as ``broker_id`` answers it; None while that broker is
    not yet the coordinator (FindCoordinator, answered from another broker's metadata,
    can name a successor before the controller's LeaderAndIsr has reached it)."""
    body = OffsetFetchRequest(
        group_id=GROUP,
        topics=[OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])],
    )
    response = request(HOST, cluster.broker(broker_id).port, body, 7, timeout=30)
    if response.error_code in _NOT_COORDINATOR_YET:
        return None
    assert response.error_code == ErrorCode.NONE
    return int(response.topics[0].partitions[0].committed_offset)


@contextmanager
def _cluster(tmp_path: Path, config: dict[str, Any], topic: str) -> Iterator[Cluster]:
    """Three brokers with ``config``, and ``topic`` created: one partition on all three."""
    with Cluster(3, config=config, data_dir=tmp_path) as cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        for future in admin.create_topics([NewTopic(topic, 1, 3)]).values():
            future.result(30)
        yield cluster


@contextmanager
def _followers_paused(cluster: Cluster, leader: int, topic: str) -> Iterator[None]:
    """Every broker but ``leader`` stopped (SIGSTOP) inside; on the way out they resume,
    and ``topic``-0's ISR (replication factor 3) is whole again before the test goes on."""
    followers = [b for b in cluster.broker_ids if b != leader]
    for follower in followers:
        cluster.pause(follower)
    try:
        yield
    finally:
        for follower in followers:
            cluster.resume(follower)
    cluster.wait_for(
        lambda: len(cluster.partitions(topic, via=leader)[0].isr) == 3,
        30,
        message="the followers back in the ISR",
    )


def test_commits_are_answered_once_replicated_and_survive_the_coordinator(
    tmp_path: Path,
) -> None:
    with _cluster(tmp_path, CONFIG, "orders") as cluster:
        coordinator = cluster.wait_for(lambda: max(cluster.coordinator_of(GROUP), 0), 30)
        cluster.wait_for(lambda: len(cluster.partitions("__consumer_offsets")[0].isr) == 3, 30)
        assert _commit(cluster, coordinator, "orders", 5) == ErrorCode.NONE

        # Both followers silent: the write cannot reach min.insync.replicas, so the commit
        # is not acknowledged (the ISR shrinks to the leader, NOT_ENOUGH_REPLICAS_AFTER_APPEND
        # for the append, which a coordinator answers as COORDINATOR_NOT_AVAILABLE).
        with _followers_paused(cluster, coordinator, "__consumer_offsets"):
            assert _commit(cluster, coordinator, "orders", 7) == (
                ErrorCode.COORDINATOR_NOT_AVAILABLE
            )
        # Clients retry COORDINATOR_NOT_AVAILABLE; once the followers are back it succeeds.
        cluster.wait_for(
            lambda: _commit(cluster, coordinator, "orders", 9) == ErrorCode.NONE,
            30,
            message="a replicated commit",
        )

        # The acknowledged commit is on the followers: the next coordinator has it.
        cluster.kill(coordinator)
        successor = cluster.wait_for(
            lambda: (c := cluster.coordinator_of(GROUP)) not in (-1, coordinator) and c,
            30,
            message="a new coordinator",
        )
        assert cluster.wait_for(lambda: _committed(cluster, successor, "orders") == 9, 30)


TXN_CONFIG = {
    **CONFIG,
    "transaction.state.log.num.partitions": 1,
    "transaction.state.log.replication.factor": 3,
}
TXN_ID = "replicated-txn"


def _txn_call(cluster: Cluster, broker_id: int, body: Any, version: int) -> Any:
    return request(HOST, cluster.broker(broker_id).port, body, version, timeout=90)


def _end_txn(cluster: Cluster, broker_id: int, pid: int, epoch: int) -> int:
    body = EndTxnRequest(
        transactional_id=TXN_ID, producer_id=pid, producer_epoch=epoch, committed=True
    )
    return int(_txn_call(cluster, broker_id, body, 3).error_code)


def _txn_state(cluster: Cluster, broker_id: int) -> tuple[str, int, int]:
    body = DescribeTransactionsRequest(transactional_ids=[TXN_ID])
    state = _txn_call(cluster, broker_id, body, 0).transaction_states[0]
    return str(state.transaction_state), int(state.producer_id), int(state.producer_epoch)


def test_transaction_state_is_changed_once_replicated_and_survives_the_coordinator(
    tmp_path: Path,
) -> None:
    with _cluster(tmp_path, TXN_CONFIG, "out") as cluster:
        coordinator = cluster.wait_for(
            lambda: max(cluster.coordinator_of(TXN_ID, key_type=1), 0), 30
        )
        cluster.wait_for(lambda: len(cluster.partitions("__transaction_state")[0].isr) == 3, 30)
        init = _txn_call(
            cluster,
            coordinator,
            InitProducerIdRequest(transactional_id=TXN_ID, transaction_timeout_ms=60_000),
            4,
        )
        assert init.error_code == ErrorCode.NONE
        pid, epoch = init.producer_id, init.producer_epoch
        T = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic
        added = _txn_call(
            cluster,
            coordinator,
            AddPartitionsToTxnRequest(
                v3_and_below_transactional_id=TXN_ID,
                v3_and_below_producer_id=pid,
                v3_and_below_producer_epoch=epoch,
                v3_and_below_topics=[T(name="out", partitions=[0])],
            ),
            3,
        )
        assert (
            added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == 0
        )

        # Both followers silent: PrepareCommit cannot reach transaction.state.log.min.isr
        # (2). The ISR shrinks to the leader while EndTxn waits (NOT_ENOUGH_REPLICAS_AFTER_
        # APPEND), answered COORDINATOR_NOT_AVAILABLE, and the transaction stays Ongoing.
        with _followers_paused(cluster, coordinator, "__transaction_state"):
            assert _end_txn(cluster, coordinator, pid, epoch) == (
                ErrorCode.COORDINATOR_NOT_AVAILABLE
            )
            assert _txn_state(cluster, coordinator) == ("Ongoing", pid, epoch)
        # The client retries; once replicated the commit completes.
        cluster.wait_for(
            lambda: _end_txn(cluster, coordinator, pid, epoch) == ErrorCode.NONE,
            60,
            message="a replicated EndTxn",
        )
        assert _txn_state(cluster, coordinator) == ("CompleteCommit", pid, epoch)

        # What was acknowledged is on the followers: the next coordinator has it.
        cluster.kill(coordinator)
        successor = cluster.wait_for(
            lambda: (
                (c := cluster.coordinator_of(TXN_ID, key_type=1)) not in (-1, coordinator) and c
            ),
            30,
            message="a new transaction coordinator",
        )
        cluster.wait_for(
            lambda: _txn_state(cluster, successor) == ("CompleteCommit", pid, epoch),
            30,
            message="the successor to load the committed transaction",
        )


FENCE_TXN_ID = "fenced-txn"


def _producer_on(cluster: Cluster, broker_id: int, topic: str) -> Any | None:
    """The one producer DescribeProducers shows on ``topic``-0 at ``broker_id`` (None
    while that broker does not lead it)."""
    body = DescribeProducersRequest(
        topics=[DescribeProducersRequest.TopicRequest(name=topic, partition_indexes=[0])]
    )
    (partition,) = _txn_call(cluster, broker_id, body, 0).topics[0].partitions
    if partition.error_code != ErrorCode.NONE or not partition.active_producers:
        return None
    (producer,) = partition.active_producers
    return producer


def _end_offset(cluster: Cluster, broker_id: int, topic: str) -> int:
    body = list_offsets_request(topic, (0, LATEST))
    (partition,) = _txn_call(cluster, broker_id, body, 5).topics[0].partitions
    assert partition.error_code == ErrorCode.NONE
    return int(partition.offset)


def test_a_new_transaction_coordinator_fences_the_markers_of_the_old_one(
    tmp_path: Path,
) -> None:
    # The coordinator epoch is the leader epoch of the __transaction_state partition
    # (TransactionCoordinator.onElection). After a kill -9 the successor's markers carry
    # its higher one and are written; the data partition's leader then refuses a marker
    # of the dead coordinator's epoch (TRANSACTION_COORDINATOR_FENCED), writing nothing.
    with Cluster(3, config=TXN_CONFIG, data_dir=tmp_path) as cluster:
        coordinator = cluster.wait_for(
            lambda: max(cluster.coordinator_of(FENCE_TXN_ID, key_type=1), 0), 30
        )
        cluster.wait_for(lambda: len(cluster.partitions("__transaction_state")[0].isr) == 3, 30)
        # The data partition is led elsewhere: its markers go out as WriteTxnMarkers.
        others = [b for b in cluster.broker_ids if b != coordinator]
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        topic = NewTopic("fenced", 1, replica_assignment=[[*others, coordinator]])
        for future in admin.create_topics([topic]).values():
            future.result(30)
        data_leader = others[0]
        cluster.wait_for(lambda: cluster.leader_of("fenced", 0) == data_leader, 30)
        producer = Producer(
            {"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": FENCE_TXN_ID}
        )
        producer.init_transactions(60)

        def commit_one(value: bytes) -> None:
            producer.begin_transaction()
            producer.produce("fenced", value, partition=0)
            producer.commit_transaction(90)

        commit_one(b"first")
        old_epoch = cluster.partitions("__transaction_state")[0].leader_epoch
        first = _producer_on(cluster, data_leader, "fenced")
        assert first is not None and first.coordinator_epoch == old_epoch

        cluster.kill(coordinator)
        cluster.wait_for(
            lambda: (
                (c := cluster.coordinator_of(FENCE_TXN_ID, key_type=1)) not in (-1, coordinator)
                and c
            ),
            30,
            message="a new transaction coordinator",
        )
        new_epoch = cluster.partitions("__transaction_state")[0].leader_epoch
        assert new_epoch > old_epoch
        # The producer goes on with the successor, whose markers are accepted.
        commit_one(b"second")
        second = _producer_on(cluster, data_leader, "fenced")
        assert second is not None and second.producer_id == first.producer_id
        assert second.coordinator_epoch == new_epoch
        producer.flush(10)

        # The dead coordinator's epoch, as a zombie of it would send: refused.
        written = _end_offset(cluster, data_leader, "fenced")
        W = WriteTxnMarkersRequest
        stale = W(
            markers=[
                W.WritableTxnMarker(
                    producer_id=second.producer_id,
                    producer_epoch=second.producer_epoch,
                    transaction_result=False,
                    coordinator_epoch=old_epoch,
                    topics=[W.WritableTxnMarkerTopic(name="fenced", partition_indexes=[0])],
                )
            ]
        )
        answer = _txn_call(cluster, data_leader, stale, 1)
        code = answer.markers[0].topics[0].partitions[0].error_code
        assert code == ErrorCode.TRANSACTION_COORDINATOR_FENCED
        assert _end_offset(cluster, data_leader, "fenced") == written


CONSUMER_GROUP = "replicated-consumer-group"
CGH = ConsumerGroupHeartbeatRequest
# A KIP-848 member's assignment as the test follows it: topic id -> partitions.
Owned = dict[Any, list[int]]


def _heartbeat(
    cluster: Cluster, broker_id: int, member_id: str, epoch: int, owned: Owned | None = None
) -> Any:
    """ConsumerGroupHeartbeat v1 of ``member_id`` at ``epoch`` (0: it joins, subscribed to
    "events"), owning ``owned``."""
    body = CGH(
        group_id=CONSUMER_GROUP,
        member_id=member_id,
        member_epoch=epoch,
        rebalance_timeout_ms=30_000 if epoch == 0 else -1,
        subscribed_topic_names=["events"] if epoch == 0 else None,
        topic_partitions=[
            CGH.TopicPartitions(topic_id=topic_id, partitions=parts)
            for topic_id, parts in (owned or {}).items()
        ],
    )
    return request(HOST, cluster.broker(broker_id).port, body, 1, timeout=30)


def _answered(cluster: Cluster, broker_id: int, member_id: str, epoch: int, owned: Owned) -> Any:
    """The heartbeat, retried through the coordinator errors a client retries on."""

    def attempt() -> Any:
        answer = _heartbeat(cluster, broker_id, member_id, epoch, owned)
        return None if answer.error_code in _NOT_COORDINATOR_YET else answer

    answer = cluster.wait_for(attempt, 30, message=f"{member_id}'s heartbeat answered")
    assert answer.error_code == ErrorCode.NONE, answer
    return answer


def _owned(answer: Any, before: Owned) -> Owned:
    """What the member owns after the answer (an absent assignment: unchanged)."""
    if answer.assignment is None:
        return before
    return {tp.topic_id: sorted(tp.partitions) for tp in answer.assignment.topic_partitions}


def _members(cluster: Cluster, broker_id: int) -> tuple[int, dict[str, tuple[int, list[int]]]]:
    """ConsumerGroupDescribe via ``broker_id``: (group epoch, member -> (epoch, partitions))."""
    body = ConsumerGroupDescribeRequest(group_ids=[CONSUMER_GROUP])
    group = request(HOST, cluster.broker(broker_id).port, body, 0, timeout=30).groups[0]
    assert group.error_code == ErrorCode.NONE, group
    return described_members(group)


def _events_and_coordinator(cluster: Cluster) -> int:
    """Create "events" (2 partitions, RF 3) and wait until the consumer group's coordinator
    is known and its offsets partition fully in sync; the coordinator's id."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    for future in admin.create_topics([NewTopic("events", 2, 3)]).values():
        future.result(30)
    coordinator = cluster.wait_for(lambda: max(cluster.coordinator_of(CONSUMER_GROUP), 0), 30)
    cluster.wait_for(lambda: len(cluster.partitions("__consumer_offsets")[0].isr) == 3, 30)
    return coordinator


def test_a_consumer_group_assignment_survives_the_coordinator(tmp_path: Path) -> None:
    # KIP-848: Kafka's group coordinator answers a ConsumerGroupHeartbeat once its records
    # are committed (the high watermark passes them), so an epoch and assignment a member
    # acted on survive a failover. Its writes are acks=1 (CoordinatorPartitionWriter
    # .append), so min.insync.replicas does not refuse them; a write the high watermark
    # does not pass within offsets.commit.timeout.ms is refused and undone
    # (tests/kbroker/test_coordinator_isr.py has both on a single broker).
    # The timeout is long enough for the ISR to shrink within it, however slow the machine.
    config = {**CONFIG, "offsets.commit.timeout.ms": 25_000}
    with _cluster(tmp_path, config, "orders") as cluster:
        coordinator = _events_and_coordinator(cluster)
        first = _answered(cluster, coordinator, "m1", 0, {})
        assert first.member_epoch == 1
        m1 = _owned(first, {})
        assert [len(parts) for parts in m1.values()] == [2]

        # Both followers silent: the ISR shrinks to the coordinator, below
        # min.insync.replicas (2), and the high watermark passes m2's join: answered.
        with _followers_paused(cluster, coordinator, "__consumer_offsets"):
            joined_alone = _heartbeat(cluster, coordinator, "m2", 0)
            assert (joined_alone.error_code, joined_alone.member_epoch) == (ErrorCode.NONE, 2)
            # (The metadata shows the shrink once the controller has propagated it.)
            cluster.wait_for(
                lambda: (
                    cluster.partitions("__consumer_offsets", via=coordinator)[0].isr
                    == (coordinator,)
                ),
                30,
                message="the ISR shrunk to the coordinator",
            )
        assert _members(cluster, coordinator) == (
            2,
            {"m1": (1, sorted(*m1.values())), "m2": (2, [])},
        )

        # m1 gives up a partition to m2, and each ends at epoch 2 with one.
        revoking = _answered(cluster, coordinator, "m1", 1, m1)
        m1 = _owned(revoking, m1)
        assert [len(parts) for parts in m1.values()] == [1]
        assert _answered(cluster, coordinator, "m1", 1, m1).member_epoch == 2
        joined = _answered(cluster, coordinator, "m2", 2, {})
        m2 = _owned(joined, {})
        assert [len(parts) for parts in m2.values()] == [1] and m2 != m1
        acknowledged = (2, {"m1": (2, sorted(*m1.values())), "m2": (2, sorted(*m2.values()))})
        assert _members(cluster, coordinator) == acknowledged

        # What was acknowledged is on the followers: the next coordinator has it, and the
        # members go on at their epochs (not FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID).
        cluster.kill(coordinator)
        successor = cluster.wait_for(
            lambda: (c := cluster.coordinator_of(CONSUMER_GROUP)) not in (-1, coordinator) and c,
            30,
            message="a new coordinator",
        )
        for member_id, owned in (("m1", m1), ("m2", m2)):
            answer = _answered(cluster, successor, member_id, 2, owned)
            assert (answer.member_epoch, _owned(answer, owned)) == (2, owned)
        assert _members(cluster, successor) == acknowledged


class _Member:
    """A librdkafka consumer of "events" with ``group.protocol=consumer`` (KIP-848), polled
    by its own thread; what its rebalance callbacks were told, and what it read."""

    def __init__(self, cluster: Cluster) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap_servers,
                "group.id": CONSUMER_GROUP,
                "group.protocol": "consumer",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                # librdkafka's statistics count the responses from each broker, its
                # group coordinator connection apart (the "logical" broker).
                "statistics.interval.ms": 100,
                "stats_cb": self._on_stats,
            }
        )
        # Coordinator address -> responses received from it as the group's coordinator,
        # as last reported: heartbeats, once the member is reconciled (it commits nothing).
        self.heartbeats: dict[str, int] = {}
        self.calls: list[tuple[str, set[int]]] = []  # ("assign" / "revoke" / "lost", parts)
        self.values: list[bytes] = []
        self.assignment: frozenset[int] = frozenset()
        self._stop = threading.Event()
        self.consumer.subscribe(
            ["events"],
            on_assign=lambda c, tps: self.calls.append(("assign", {tp.partition for tp in tps})),
            on_revoke=lambda c, tps: self.calls.append(("revoke", {tp.partition for tp in tps})),
            on_lost=lambda c, tps: self.calls.append(("lost", {tp.partition for tp in tps})),
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_stats(self, text: str) -> None:
        self.heartbeats = {
            broker["nodename"]: broker["rx"]
            for broker in json.loads(text).get("brokers", {}).values()
            if broker.get("source") == "logical"
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                self.values.append(msg.value())
            self.assignment = frozenset(tp.partition for tp in self.consumer.assignment())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.consumer.close()


def test_a_kip848_consumer_keeps_its_assignment_through_a_coordinator_kill(
    tmp_path: Path,
) -> None:
    # librdkafka's KIP-848 consumer: two members share "events"; the coordinator is
    # killed; the successor loads what was acknowledged, so neither member is fenced
    # (no on_lost, no new rebalance) and both go on reading their partitions.
    config = {**CONFIG, "group.consumer.heartbeat.interval.ms": 500}
    with _cluster(tmp_path, config, "orders") as cluster:
        coordinator = _events_and_coordinator(cluster)
        members = [_Member(cluster)]
        try:
            cluster.wait_for(lambda: members[0].assignment == {0, 1}, 60, message="one member")
            members.append(_Member(cluster))
            cluster.wait_for(
                lambda: (
                    sorted(len(m.assignment) for m in members) == [1, 1]
                    and _members(cluster, coordinator)[1].keys() != set()
                    and all(e == 2 for e, _ in _members(cluster, coordinator)[1].values())
                ),
                60,
                message="the partitions split between the two members at epoch 2",
            )
            before = _members(cluster, coordinator)
            calls_before = [list(m.calls) for m in members]

            cluster.kill(coordinator)
            successor = cluster.wait_for(
                lambda: (
                    (c := cluster.coordinator_of(CONSUMER_GROUP)) not in (-1, coordinator) and c
                ),
                30,
                message="a new coordinator",
            )
            # Both members read what is produced after the failover, each its partition.
            producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})
            for partition in (0, 1):
                producer.produce("events", value=b"after-%d" % partition, partition=partition)
            assert producer.flush(30) == 0
            cluster.wait_for(
                lambda: sorted(v for m in members for v in m.values) == [b"after-0", b"after-1"],
                60,
                message="the records produced after the failover read once",
            )
            # A few more heartbeats answered by the successor (each member's client counts
            # them): still the same members and epochs.
            address = cluster.address(successor)
            cluster.wait_for(
                lambda: all(m.heartbeats.get(address, 0) > 0 for m in members),
                30,
                message="both members heartbeating to the successor",
            )
            baseline = [m.heartbeats[address] for m in members]
            cluster.wait_for(
                lambda: all(
                    m.heartbeats.get(address, 0) >= sent + 3
                    for m, sent in zip(members, baseline, strict=True)
                ),
                30,
                message="three more heartbeats of each member answered by the successor",
            )
            assert _members(cluster, successor) == before
            assert [m.calls for m in members] == calls_before
            assert all(len(m.assignment) == 1 for m in members)
        finally:
            for member in members:
                member.close()


# --- A broker taking its partitions back disturbs no other partition's group ----------------

RETURN_CONFIG = {
    **CONFIG,
    "offsets.topic.num.partitions": 3,
    "group.initial.rebalance.delay.ms": 0,
    # The controller moves leadership back to the preferred replicas within a second.
    "leader.imbalance.check.interval.seconds": 1,
}
# Long enough that nothing expires or times out while the test moves leadership around.
_PATIENT_MS = 120_000


def _join(cluster: Cluster, broker_id: int, group: str, member_id: str = "") -> Any:
    """JoinGroup (v5, with the KIP-394 MEMBER_ID_REQUIRED round trip) sent to ``broker_id``."""

    def send(member: str) -> Any:
        body = join_req(group, member, session=_PATIENT_MS, rebalance=_PATIENT_MS)
        return request(HOST, cluster.broker(broker_id).port, body, 5, timeout=_PATIENT_MS / 1000)

    answer = send(member_id)
    if answer.error_code == ErrorCode.MEMBER_ID_REQUIRED:
        answer = send(answer.member_id)
    return answer


def _group_state(cluster: Cluster, broker_id: int, group: str) -> str | None:
    """The group's state as ``broker_id`` describes it; None if it is not its coordinator."""
    body = DescribeGroupsRequest(groups=[group])
    (described,) = request(HOST, cluster.broker(broker_id).port, body, 5, timeout=30).groups
    if described.error_code == ErrorCode.NOT_COORDINATOR:
        return None
    return str(described.group_state)


def test_a_returning_broker_taking_its_partition_back_disturbs_no_other_group(
    tmp_path: Path,
) -> None:
    # A broker goes away and its __consumer_offsets partition moves to another broker,
    # the "taker"; it comes back, and the preferred leader election gives the partition
    # back to it. A group the taker coordinates from another partition, mid-rebalance
    # meanwhile, must not notice: its waiting member is not told NOT_COORDINATOR, and the
    # rebalance ends with one generation more, not two (Kafka unloads the moved
    # partition's groups only: GroupCoordinator.onResignation).
    with _cluster(tmp_path, RETURN_CONFIG, "orders") as cluster:
        cluster.wait_for(lambda: cluster.coordinator_of("probe") > 0, 30)

        def offsets_partitions() -> dict[int, Any]:
            parts = cluster.partitions("__consumer_offsets")
            whole = len(parts) == 3 and all(len(p.isr) == 3 for p in parts.values())
            return parts if whole else {}

        leaders = {i: p.leader for i, p in cluster.wait_for(offsets_partitions, 30).items()}
        assert sorted(leaders.values()) == [1, 2, 3], leaders  # each leads its preferred one
        returning = leaders[0]
        cluster.stop(returning)
        taker = cluster.wait_for(
            lambda: (
                (leader := cluster.leader_of("__consumer_offsets", 0)) not in (-1, returning)
                and leader
            ),
            30,
            message="partition 0 led by another broker",
        )
        kept = next(i for i, leader in leaders.items() if leader == taker)
        group = next(g for g in (f"group-{i}" for i in range(1000)) if partition_for(g, 3) == kept)
        first = _join(cluster, taker, group)
        assert first.error_code == ErrorCode.NONE
        synced = request(HOST, cluster.broker(taker).port, sole_member_sync(group, first), 3)
        assert synced.error_code == ErrorCode.NONE
        # A second member joins: the group rebalances, waiting for the first to rejoin.
        second: list[Any] = []
        waiting = threading.Thread(
            target=lambda: second.append(_join(cluster, taker, group)), daemon=True
        )
        waiting.start()
        cluster.wait_for(
            lambda: _group_state(cluster, taker, group) == "PreparingRebalance",
            30,
            message="the second member waiting in the rebalance",
        )

        cluster.start_broker(returning)
        cluster.wait_for(
            lambda: cluster.leader_of("__consumer_offsets", 0, via=taker) == returning,
            60,
            message="the returning broker leading its partition again",
        )
        # The taker has given the partition up: its groups are another broker's now.
        moved = next(g for g in (f"group-{i}" for i in range(1000)) if partition_for(g, 3) == 0)
        cluster.wait_for(
            lambda: _group_state(cluster, taker, moved) is None,
            30,
            message="the taker to unload the partition it gave back",
        )
        assert not second, second  # still waiting, not told to look elsewhere
        rejoined = _join(cluster, taker, group, first.member_id)
        waiting.join(30)
        assert [rejoined.error_code, second[0].error_code] == [ErrorCode.NONE, ErrorCode.NONE]
        assert rejoined.generation_id == second[0].generation_id == first.generation_id + 1
