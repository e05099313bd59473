"""What the cluster scenarios of every client share: the cluster's settings, reading the
ZooKeeper tree, Kafka's group-to-partition rule, and putting killed brokers back.

The scenarios follow issue 14's list; each client module runs them on one 3-broker cluster
of its own (``module_cluster``, the ``cluster`` fixture of compat/conftest.py), each scenario
leaving every broker running again. The steps below are the parts of a scenario that only
the cluster takes part in; each client module adds what its own client sees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kazoo.client import KazooClient

from kbroker.cluster_runner import Cluster, PartitionInfo
from kbroker.testing.zookeeper import ZooKeeperServer

T = TypeVar("T")

BROKERS = [1, 2, 3]
SESSION_TIMEOUT_MS = 6000
# The controller learns of a dead broker when its ZooKeeper session expires; the deadline adds
# room for electing, writing the new state and telling the brokers on a loaded 2-core machine.
FAILOVER_DEADLINE_S = SESSION_TIMEOUT_MS / 1000 + 10
# Fewer __consumer_offsets partitions than Kafka's 50: the cluster creates them (RF 3) on the
# first group, and the group-to-partition rule is the same for any count.
OFFSETS_PARTITIONS = 10
CLUSTER_CONFIG: dict[str, object] = {
    "zookeeper.session.timeout.ms": SESSION_TIMEOUT_MS,
    "offsets.topic.num.partitions": OFFSETS_PARTITIONS,
    # Preferred leaders come back within seconds of a broker's return, not Kafka's 5 minutes.
    "leader.imbalance.check.interval.seconds": 2,
}
# Waits that involve a broker (re)starting, joining, loading a partition.
SETTLE_S = 60.0
# A client's own waits (a request, a delivery, a read) when no broker is down.
TIMEOUT_S = 30.0


@contextmanager
def module_cluster(zookeeper: ZooKeeperServer, data_dir: Path) -> Iterator[Cluster]:
    """A 3-broker cluster on the session's ZooKeeper (a chroot of its own) for one module."""
    with Cluster(len(BROKERS), zookeeper=zookeeper, config=CLUSTER_CONFIG, data_dir=data_dir) as c:
        yield c


def restore(cluster: Cluster) -> None:
    """Start every broker that a scenario killed or stopped, and wait until all see each other."""
    for broker_id in cluster.broker_ids:
        if cluster.broker(broker_id).paused:
            cluster.resume(broker_id)
    stopped = [i for i in cluster.broker_ids if not cluster.broker(i).is_running()]
    if stopped:
        cluster.start_brokers(stopped)
    cluster.wait_until_formed(SETTLE_S)


def collect_values(
    poll: Callable[[], Iterable[bytes | None]], wanted: set[bytes], deadline_s: float
) -> set[bytes]:
    """Call ``poll`` (one poll of a consumer: the values it returned) until every value in
    ``wanted`` was seen, or the deadline; returns what was seen."""
    seen: set[bytes] = set()
    deadline = time.monotonic() + deadline_s
    while not wanted <= seen and time.monotonic() < deadline:
        seen.update(value for value in poll() if value is not None)
    return seen


def java_string_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units), as a signed 32-bit int."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group_id: str, partitions: int = OFFSETS_PARTITIONS) -> int:
    """The __consumer_offsets partition of a group: Kafka's GroupMetadataManager.partitionFor,
    Utils.abs(groupId.hashCode) % partition count (Utils.abs masks the sign bit)."""
    return (java_string_hash(group_id) & 0x7FFFFFFF) % partitions


def wait_for_leaders(
    cluster: Cluster, topic: str, partitions: int, *, timeout: float = SETTLE_S
) -> dict[int, PartitionInfo]:
    """Wait until every running broker names a live leader for every partition, the same one."""

    def settled() -> dict[int, PartitionInfo] | None:
        running = set(cluster.running_broker_ids)
        views = [cluster.partitions(topic, via=b) for b in sorted(running)]
        first = views[0]
        if len(first) != partitions or any(p.leader not in running for p in first.values()):
            return None
        leaders = {i: p.leader for i, p in first.items()}
        if any({i: p.leader for i, p in v.items()} != leaders for v in views[1:]):
            return None
        return first

    return cluster.wait_for(
        settled, timeout, message=f"leaders of {topic}'s {partitions} partitions"
    )


def wait_for_preferred_leaders(cluster: Cluster, topic: str, *, timeout: float = SETTLE_S) -> None:
    """Wait until every partition is led by its preferred (first) replica."""

    def preferred() -> bool:
        parts = cluster.partitions(topic)
        return bool(parts) and all(p.leader == p.replicas[0] for p in parts.values())

    cluster.wait_for(preferred, timeout, message=f"preferred leaders of {topic}")


def while_leader_holds(
    cluster: Cluster, topic: str, partition: int, observe: Callable[[int], T]
) -> tuple[int, T]:
    """``observe(leader)`` at a moment when the partition's leader did not change around it.

    After a broker returns, the controller moves preferred leaders back within seconds
    (leader.imbalance.check.interval.seconds=2 here); a question about "the leader" asked
    while that happens compares two different moments. This asks again until the leader is
    the same before and after the observation, and returns both.
    """

    def steady() -> tuple[int, T] | None:
        leader = cluster.leader_of(topic, partition)
        seen = observe(leader)
        return (leader, seen) if cluster.leader_of(topic, partition) == leader else None

    return cluster.wait_for(steady, SETTLE_S, message=f"a steady leader of {topic}-{partition}")


def wait_for_new_leader(cluster: Cluster, topic: str, partition: int, old: int) -> int:
    """After ``old`` died: wait (within the failover deadline) until a running broker names
    another live leader; returns it."""

    def moved() -> int:
        running = cluster.running_broker_ids
        leader = cluster.leader_of(topic, partition)
        return leader if leader != old and leader in running else 0

    return cluster.wait_for(
        moved, FAILOVER_DEADLINE_S, message=f"a new leader of {topic}-{partition} after {old}"
    )


def kill_preferred_leader(cluster: Cluster, topic: str, partitions: int = 3) -> int:
    """Kill -9 the leader of partition 0 (its preferred replica at creation) and wait until
    another broker leads it; returns the killed broker."""
    parts = wait_for_leaders(cluster, topic, partitions)
    assert all(p.leader == p.replicas[0] for p in parts.values())  # preferred at creation
    victim = parts[0].leader
    cluster.kill(victim)
    wait_for_new_leader(cluster, topic, 0, victim)
    return victim


def rejoin(cluster: Cluster, topic: str, victim: int) -> None:
    """Once every live broker has dropped the killed ``victim``, start it again: every broker
    lists it, and it knows ``topic``'s leaders as the others do."""
    cluster.wait_for(
        lambda: all(
            victim not in cluster.metadata([], via=b).brokers for b in cluster.running_broker_ids
        ),
        10,
        message=f"every live broker to drop broker {victim}",
    )
    cluster.start_broker(victim)  # waits until every broker lists it again
    for broker_id in BROKERS:
        assert victim in cluster.metadata([], via=broker_id).brokers
    leaders = {i: p.leader for i, p in cluster.partitions(topic).items()}
    assert {i: p.leader for i, p in cluster.partitions(topic, via=victim).items()} == leaders


def kill_controller(cluster: Cluster) -> int:
    """Kill -9 the controller: another broker takes over with a higher epoch, and
    /controller names it; returns the new controller."""
    old = cluster.controller_id()
    assert old in BROKERS
    epoch = controller_epoch(cluster)
    cluster.kill(old)
    new: int = cluster.wait_for(
        lambda: (c := cluster.controller_id()) in cluster.running_broker_ids and c,
        FAILOVER_DEADLINE_S,
        message="a new controller",
    )
    assert new != old
    assert cluster.wait_for(lambda: controller_epoch(cluster) > epoch, 10)
    with cluster.zookeeper_client() as client:
        assert zk_json(client, "/controller")["brokerid"] == new
    return new


def fail_over_to_controller(cluster: Cluster, topic: str, partitions: int, controller: int) -> int:
    """After the old controller's kill: kill -9 the leader of a partition that ``controller``
    does not lead, and see ``controller``, the last broker running, elect itself its leader;
    returns the partition."""
    parts = wait_for_leaders(cluster, topic, partitions)
    partition, info = next((i, p) for i, p in parts.items() if p.leader != controller)
    cluster.kill(info.leader)
    assert wait_for_new_leader(cluster, topic, partition, info.leader) == controller
    return partition


def coordinator_views(cluster: Cluster, group: str, observe: Callable[[int], T]) -> tuple[int, T]:
    """The leader of the group's __consumer_offsets partition, one of the cluster's brokers,
    and ``observe(leader)`` at a moment it held (see ``while_leader_holds``)."""
    leader, seen = while_leader_holds(
        cluster, "__consumer_offsets", offsets_partition(group), observe
    )
    assert leader in BROKERS
    return leader, seen


def second_cluster(cluster: Cluster, kbroker_cluster: Callable[..., Cluster]) -> Cluster:
    """A 2-broker cluster on the same ZooKeeper as ``cluster``, in a chroot of its own."""
    other = kbroker_cluster(brokers=2)
    assert other.zookeeper_connect != cluster.zookeeper_connect
    return other


def zk_json(client: KazooClient, path: str) -> Any:
    """A znode's JSON."""
    return json.loads(client.get(path)[0].decode("utf-8"))


def controller_epoch(cluster: Cluster) -> int:
    """/controller_epoch: a plain integer."""
    with cluster.zookeeper_client() as client:
        return int(client.get("/controller_epoch")[0].decode("ascii"))


def znode_snapshot(client: KazooClient, root: str = "/") -> dict[str, tuple[bytes, int]]:
    """Every znode under ``root``: path -> (data, mzxid), to show that nothing was written."""
    found: dict[str, tuple[bytes, int]] = {}
    stack = [root]
    while stack:
        path = stack.pop()
        data, stat = client.get(path)
        found[path] = (data, stat.mzxid)
        for child in client.get_children(path):
            stack.append(path.rstrip("/") + "/" + child)
    return found


# -- the scenarios as tests ---------------------------------------------------------------------
class Partition0(Protocol):
    """A producer (acks=1, retrying through a leader's failover) and a consumer assigned
    partition 0 of one topic from its start, both knowing the cluster by its bootstrap list."""

    def send(self, values: list[bytes]) -> None:
        """Hand each value to the producer for partition 0, in order, without waiting."""

    def wait_acknowledged(self, timeout_s: float) -> None:
        """Wait until every value sent so far is acknowledged on partition 0; fails otherwise."""

    def read(self, wanted: set[bytes], deadline_s: float) -> set[bytes]:
        """Poll the consumer until every value in ``wanted`` was seen, or the deadline; what
        was seen."""

    def close(self) -> None:
        """Release both clients."""


class LeadershipClient(Protocol):
    """One client library, as the shared leadership scenarios use it."""

    def create_topic(
        self, bootstrap: str, topic: str, partitions: int, replication_factor: int = 3
    ) -> None:
        """Create a topic through the client's admin API."""

    def produce(self, bootstrap: str, topic: str, records: list[tuple[int, bytes]]) -> None:
        """Send each (partition, value) with acks=1 through a producer that knows only
        ``bootstrap``; fails unless every one is acknowledged on its partition."""

    def read(self, bootstrap: str, topic: str, partitions: int, wanted: set[bytes]) -> set[bytes]:
        """Read every partition from its start, through a consumer that knows only
        ``bootstrap``, until every value in ``wanted`` was seen or a deadline; what was seen."""

    def check_metadata(self, cluster: Cluster, topic: str, parts: dict[int, PartitionInfo]) -> None:
        """What the client's own metadata API shows of ``topic`` and the cluster, asked
        through each broker alone (``parts``: the partitions as kbroker reports them)."""

    def partition_0(self, bootstrap: str, topic: str) -> Partition0:
        """A producer and a consumer of ``topic``'s partition 0."""

    def commit_in_group(self, bootstrap: str, topic: str, group: str) -> int:
        """Commit an offset of ``topic``'s partition 0 for ``group`` the client's way and
        check that the client reads it back; returns it."""

    def group_coordinator(self, bootstrap: str, group: str) -> int | None:
        """The coordinator of ``group`` as the client's admin API names it, asked through
        ``bootstrap`` alone (None: the client's admin API does not name it)."""

    def group_offset(self, bootstrap: str, group: str, topic: str) -> int:
        """``group``'s committed offset of ``topic``'s partition 0 as the client's admin API
        lists it, asked through ``bootstrap`` alone."""


class ClusterClient(LeadershipClient, Protocol):
    """One client library, as every shared cluster scenario uses it."""

    def elect_preferred(self, cluster: Cluster, topic: str, victim: int) -> None:
        """After ``victim`` (partition 0's preferred leader) came back: what the client does
        for the preferred leaders to return (nothing: the controller's own rebalance)."""

    def check_controller(self, bootstrap: str, controller: int) -> None:
        """What the client's metadata says of the new ``controller`` (if it says anything)."""

    def topics(self, bootstrap: str) -> set[str]:
        """The topics the cluster at ``bootstrap`` lists."""

    def broker_ports(self, bootstrap: str) -> set[int]:
        """The ports of the brokers the cluster at ``bootstrap`` lists."""


class LeadershipScenarios:
    """Issue 14's leadership scenarios (leaders and bootstrap, a leader's kill -9, the group
    coordinator) for a client module's ``Test...`` class whose ``client`` is its
    LeadershipClient; the tests take the ``cluster`` fixture (compat/conftest.py), and their
    names are the results table's rows (compat/results.py drops the class from the cell
    name)."""

    client: LeadershipClient

    def test_kill_leader_new_leader_from_isr_and_clients_carry_on(
        self, cluster: Cluster, topic_name: str
    ) -> None:
        self.client.create_topic(cluster.bootstrap_servers, topic_name, 3)
        before = wait_for_leaders(cluster, topic_name, 3)[0]
        p0 = self.client.partition_0(cluster.bootstrap_servers, topic_name)
        try:
            first = {f"before-{i}".encode() for i in range(5)}
            p0.send(sorted(first))
            p0.wait_acknowledged(TIMEOUT_S)
            assert p0.read(first, TIMEOUT_S) == first

            cluster.kill(before.leader)
            # Sent while the partition has no live leader: the client holds them and retries.
            during = {f"during-{i}".encode() for i in range(5)}
            p0.send(sorted(during))
            new_leader = wait_for_new_leader(cluster, topic_name, 0, before.leader)
            assert new_leader in before.isr  # no unclean election
            after_kill = cluster.partitions(topic_name)[0]
            assert after_kill.leader_epoch > before.leader_epoch
            assert before.leader not in after_kill.isr
            # Every running broker's Metadata names it once the controller's UpdateMetadata has
            # reached it (sent to each broker on its own channel, so not at the same instant).
            cluster.wait_for(
                lambda: all(
                    cluster.leader_of(topic_name, 0, via=broker_id) == new_leader
                    for broker_id in cluster.running_broker_ids
                ),
                FAILOVER_DEADLINE_S,
                message=f"every broker naming {new_leader} as leader",
            )

            after = {f"after-{i}".encode() for i in range(5)}
            p0.send(sorted(after))
            p0.wait_acknowledged(FAILOVER_DEADLINE_S * 3)
            # The consumer follows the leader change by itself and reads what came after it.
            assert after <= p0.read(during | after, FAILOVER_DEADLINE_S * 2)
        finally:
            p0.close()

    def test_group_coordinator_leads_its_offsets_partition(
        self, cluster: Cluster, topic_name: str
    ) -> None:
        self.client.create_topic(cluster.bootstrap_servers, topic_name, 1)
        wait_for_leaders(cluster, topic_name, 1)
        group = f"{topic_name}-group"
        committed = self.client.commit_in_group(cluster.bootstrap_servers, topic_name, group)

        def coordinators(leader: int) -> list[tuple[int, int | None]]:
            """(FindCoordinator's answer, the client's admin API's) asked via each broker."""
            return [
                (
                    cluster.coordinator_of(group, via=broker_id),
                    self.client.group_coordinator(cluster.address(broker_id), group),
                )
                for broker_id in BROKERS
            ]

        leader, seen = coordinator_views(cluster, group, coordinators)
        assert [found for found, _ in seen] == [leader] * len(BROKERS), seen
        assert all(named in (None, leader) for _, named in seen), seen
        for broker_id in BROKERS:
            offset = self.client.group_offset(cluster.address(broker_id), group, topic_name)
            assert offset == committed, (broker_id, offset)

    def test_leaders_on_every_broker_and_any_bootstrap(
        self, cluster: Cluster, topic_name: str
    ) -> None:
        self.client.create_topic(cluster.bootstrap_servers, topic_name, 6)
        parts = wait_for_leaders(cluster, topic_name, 6)
        assert {p.leader for p in parts.values()} == set(BROKERS)
        assert all(sorted(p.replicas) == BROKERS for p in parts.values())
        # Every broker gives the same answer for the whole cluster.
        for broker_id in BROKERS:
            view = cluster.partitions(topic_name, via=broker_id)
            assert {i: p.leader for i, p in view.items()} == {i: p.leader for i, p in parts.items()}
        self.client.check_metadata(cluster, topic_name, parts)
        expected: set[bytes] = set()
        for broker_id in BROKERS:
            # Only one broker as bootstrap: the client finds the others from its Metadata.
            records = [(p, f"via-{broker_id}-p{p}".encode()) for p in range(6)]
            self.client.produce(cluster.address(broker_id), topic_name, records)
            expected |= {value for _, value in records}
        for broker_id in BROKERS:
            assert self.client.read(cluster.address(broker_id), topic_name, 6, expected) == expected


class ClusterScenarios(LeadershipScenarios):
    """Every issue 14 scenario (the leadership ones, then restarts, the controller and two
    clusters on one ZooKeeper), for a ``Test...`` class whose ``client`` is its ClusterClient."""

    client: ClusterClient

    def test_restarted_broker_rejoins(self, cluster: Cluster, topic_name: str) -> None:
        self.client.create_topic(cluster.bootstrap_servers, topic_name, 3)
        victim = kill_preferred_leader(cluster, topic_name)
        rejoin(cluster, topic_name, victim)
        # A client that knows only the returned broker finds every partition through it.
        self.client.produce(cluster.address(victim), topic_name, [(p, b"back") for p in range(3)])

    def test_preferred_leaders_return_after_restart(
        self, cluster: Cluster, topic_name: str
    ) -> None:
        self.client.create_topic(cluster.bootstrap_servers, topic_name, 3)
        victim = kill_preferred_leader(cluster, topic_name)
        cluster.start_broker(victim)
        self.client.elect_preferred(cluster, topic_name, victim)
        wait_for_preferred_leaders(cluster, topic_name)
        assert cluster.leader_of(topic_name, 0) == victim

    def test_kill_controller_new_controller_epoch_up_later_failover_works(
        self, cluster: Cluster, topic_name: str
    ) -> None:
        new = kill_controller(cluster)
        self.client.check_controller(cluster.bootstrap_servers, new)
        # The new controller runs the cluster: it places a new topic, then moves a leader.
        self.client.create_topic(cluster.bootstrap_servers, topic_name, 4, replication_factor=2)
        partition = fail_over_to_controller(cluster, topic_name, 4, new)
        self.client.produce(cluster.bootstrap_servers, topic_name, [(partition, b"later")])

    def test_two_chroots_are_two_clusters(
        self, cluster: Cluster, kbroker_cluster: Callable[..., Cluster], topic_name: str
    ) -> None:
        other = second_cluster(cluster, kbroker_cluster)
        self.client.create_topic(other.bootstrap_servers, topic_name, 2, replication_factor=2)
        wait_for_leaders(other, topic_name, 2)
        assert topic_name in self.client.topics(other.bootstrap_servers)
        assert topic_name not in self.client.topics(cluster.bootstrap_servers)
        ours = self.client.broker_ports(cluster.bootstrap_servers)
        assert ours == {cluster.broker(i).port for i in BROKERS}
        theirs = self.client.broker_ports(other.bootstrap_servers)
        assert theirs == {other.broker(i).port for i in other.broker_ids}
        assert controller_epoch(other) >= 1
