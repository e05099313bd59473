"""Issue 15's failover scenarios on a 3-broker cluster, for any client with an adapter.

Each scenario drives a real client against ``kbroker.Cluster`` (real ZooKeeper, three
real broker processes, replication factor 3, ``min.insync.replicas=2``, acks=all,
idempotent producer), records every send / acknowledgement / read in a
``compat.checker.History`` and asserts what acks=all promises: nothing acknowledged is
lost, nothing is read twice, per-partition order holds, and no consumer sees an offset
go back. The figures (acked, read, lost, duplicated, failover times) are returned and
the test modules record them for the results table (compat/results.py).

Scenarios (issue 15's numbering): 1 ``leader_kills``; 2 and 6 ``two_of_three_down``
(the ISR as ``kbroker topics describe`` shows it); 3 ``paused_follower``; 4
``old_leader_truncates``; 5 ``group_coordinator_killed`` (the consumer-group half; the
commit path is also checked at the protocol level by
tests/cluster/test_replication_coordinators.py) and ``transaction_coordinator_killed``
(the transactional consume-transform-produce half).

``KBROKER_REPLICATION_KILLS`` sets how many leader kills scenario 1 makes (default 3
per client, so both clients' modules stay within a few minutes; the issue's "ten times
in a row" is ``KBROKER_REPLICATION_KILLS=10``).
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from compat.checker import Analysis, History
from compat.http_broker import HTTP_READY, scrape, total
from kbroker.cluster_runner import Cluster, request
from kbroker.wire.messages import FetchRequest

# Kafka settings of the scenarios' cluster: acks=all needs 2 of 3 replicas; a follower
# that stops fetching leaves the ISR after 3 s; a killed broker's session ends after 6 s.
CLUSTER_CONFIG = {
    "min.insync.replicas": 2,
    "default.replication.factor": 3,
    "offsets.topic.replication.factor": 3,
    "transaction.state.log.replication.factor": 3,
    "replica.lag.time.max.ms": 3000,
    "zookeeper.session.timeout.ms": 6000,
    "offsets.topic.num.partitions": 3,
    "transaction.state.log.num.partitions": 3,
    # Kafka's default, set here because old_leader_truncates waits out fetches parked this long.
    "replica.fetch.wait.max.ms": 500,
    # Each broker's /metrics, so a scenario can wait for what a broker answered.
    "kbroker.http.listener": "127.0.0.1:0",
}
PARTITIONS = 3
RATE_PER_S = 300  # records per second of the steady producer
KILLS = int(os.environ.get("KBROKER_REPLICATION_KILLS", "3"))
SETTLE_S = 60.0  # time allowed for a cluster to elect, catch up and refill its ISRs


@dataclass(frozen=True)
class ProducerSettings:
    """How a scenario's producer is configured."""

    acks: str = "all"
    idempotent: bool = True
    retries: int | None = None  # None: the client's default (retry until the delivery timeout)


# What acks=all promises are checked against: an idempotent acks=all producer.
SAFE = ProducerSettings()
# Scenario 4's divergent tail: records the leader alone acknowledges, never retried.
LEADER_ONLY = ProducerSettings(acks="1", idempotent=False, retries=0)


@dataclass
class GroupReading:
    """A member of ``group`` reading ``topic`` into ``history`` (as ``reader``) until ``stop``."""

    bootstrap: str
    topic: str
    group: str
    history: History
    reader: str
    stop: threading.Event = field(default_factory=threading.Event)
    committed: int = 0  # how many of the reader's reads the last successful commit covers
    # Partitions the member has read to their end: it has handed over every record below
    # the high watermark its latest fetch saw (the adapter keeps this, from its client).
    caught_up: set[int] = field(default_factory=set)

    def reads(self) -> int:
        """How many records this member has handed over so far."""
        return len(self.history.reads.get(self.reader, []))

    def commit(self, commit: Callable[[], object], failed: type[Exception]) -> None:
        """``commit()`` (a synchronous commit of what the member has handed over so far,
        called from the member's own thread between its reads) until it succeeds or ``stop``
        is set, then ``committed`` covers those reads. A commit failing with ``failed`` is
        tried again: the group has no coordinator yet, and the client finds the next."""
        while not self.stop.is_set():
            try:
                commit()
            except failed:
                time.sleep(0.2)
                continue
            self.committed = self.reads()
            return


@dataclass
class TransformLoop:
    """A consume-transform-produce loop: what it reads and writes, and how far it got."""

    bootstrap: str
    source: str
    sink: str
    group: str
    transactional_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    committed: int = 0  # source records whose transaction committed
    aborted: int = 0  # transactions aborted


class ProducerHandle(Protocol):
    """One client's producer, as the scenarios use it."""

    def send(self, topic: str, partition: int, value: bytes) -> None:
        """Hand one record to the client; the history hears of its delivery report."""

    def poll(self) -> None:
        """Serve delivery reports (clients that need it)."""

    def flush(self, timeout_s: float) -> None:
        """Wait for every outstanding delivery report."""

    def close(self) -> None:
        """Release the client."""


class ClientAdapter(Protocol):
    """What a client library must offer the scenarios."""

    name: str

    def producer(
        self, bootstrap: str, history: History | None, settings: ProducerSettings = SAFE
    ) -> ProducerHandle:
        """A producer configured by ``settings``, reporting to ``history``; ``retries=0``
        fails at once."""

    def create_topic(self, bootstrap: str, topic: str, partitions: int, rf: int) -> None:
        """Create a topic and return once it exists."""

    def read_all(
        self, bootstrap: str, topic: str, partitions: int, history: History, reader: str
    ) -> None:
        """Read every partition from its start to its current end into ``history``."""

    def live_reader(
        self, bootstrap: str, topic: str, partitions: int, history: History, stop: threading.Event
    ) -> None:
        """Read from the start until ``stop`` is set (a consumer running through failovers)."""

    def send_error(self, bootstrap: str, topic: str, partition: int) -> str:
        """Produce one record with acks=all and no retry: the error's name ("" on success)."""

    def group_reader(self, reading: GroupReading) -> None:
        """A group member reading as ``reading`` says, committing synchronously through
        ``reading.commit`` after each record it hands over; ``reading.caught_up`` holds the
        partitions it has read to their high watermark."""

    def transform_loop(self, loop: TransformLoop) -> None:
        """The loop until ``loop.stop``: a read_committed member of ``loop.group`` reads
        ``loop.source``; each batch's records go to ``loop.sink`` (same partition, value
        prefixed ``out-``) with the batch's offsets, in one transaction. A failed
        transaction is aborted and the consumer rewound to the committed offsets (Kafka's
        exactly-once recipe). The loop counts ``committed`` and ``aborted`` as it goes."""

    def read_committed(
        self, bootstrap: str, topic: str, partitions: int, history: History, reader: str
    ) -> None:
        """Read every partition from its start with read_committed into ``history``, up to
        its end (the last stable offset; nothing writes to it any more)."""


# -- cluster helpers -------------------------------------------------------------------------------
def reset(cluster: Cluster) -> None:
    """Every broker running and unpaused again (a scenario may have left one down)."""
    for broker_id in cluster.broker_ids:
        broker = cluster.broker(broker_id)
        if broker.paused:
            cluster.resume(broker_id)
    down = [i for i in cluster.broker_ids if not cluster.broker(i).is_running()]
    if down:
        cluster.start_brokers(down)


def wait_full_isr(
    cluster: Cluster, topic: str, timeout: float = SETTLE_S, partitions: int = PARTITIONS
) -> None:
    """Wait until every partition has a leader and all its replicas in the ISR."""

    def full() -> bool:
        parts = cluster.partitions(topic)
        return len(parts) == partitions and all(
            p.leader > 0 and set(p.isr) == set(p.replicas) for p in parts.values()
        )

    cluster.wait_for(full, timeout, interval=0.2, message=f"the full ISR of {topic}")


def new_topic(client: ClientAdapter, cluster: Cluster, topic: str, partitions: int) -> None:
    """Every broker running again, then ``topic`` created (RF 3) with its full ISR."""
    reset(cluster)
    client.create_topic(cluster.bootstrap_servers, topic, partitions, 3)
    wait_full_isr(cluster, topic, partitions=partitions)


def replica_bytes(cluster: Cluster, topic: str, partition: int) -> dict[int, bytes]:
    """Each broker's log of one partition: its segments' bytes in offset order."""
    out = {}
    for broker_id in cluster.broker_ids:
        directory = Path(cluster.broker(broker_id).data_dir) / f"{topic}-{partition}"
        out[broker_id] = b"".join(p.read_bytes() for p in sorted(directory.glob("*.log")))
    return out


def wait_identical_replicas(cluster: Cluster, topic: str, partitions: int = PARTITIONS) -> int:
    """Wait until every partition's replicas hold the same bytes; the total size."""

    def identical() -> bool:
        return all(
            len(set(replica_bytes(cluster, topic, p).values())) == 1 for p in range(partitions)
        )

    cluster.wait_for(identical, SETTLE_S, interval=0.5, message=f"identical replicas of {topic}")
    first = cluster.broker_ids[0]
    return sum(len(replica_bytes(cluster, topic, p)[first]) for p in range(partitions))


def _consumer_fetch(cluster: Cluster, broker_id: int, topic: str, offset: int, wait_ms: int) -> int:
    """One consumer Fetch of partition 0 at ``offset`` from ``broker_id`` (its leader), with
    ``max_wait_ms`` ``wait_ms``; the high watermark it answers."""
    fetch = FetchRequest(
        replica_id=-1,
        max_wait_ms=wait_ms,
        min_bytes=1,
        max_bytes=1024 * 1024,
        topics=[
            FetchRequest.FetchTopic(
                topic=topic,
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=0, fetch_offset=offset, partition_max_bytes=1024 * 1024
                    )
                ],
            )
        ],
    )
    response = request("127.0.0.1", cluster.broker(broker_id).port, fetch, 12, timeout=SETTLE_S)
    (answer,) = response.responses[0].partitions
    assert answer.error_code == 0, answer
    high_watermark: int = answer.high_watermark
    return high_watermark


def wait_out_parked_fetches(cluster: Cluster, leader: int, topic: str) -> None:
    """Return once ``leader`` has answered every follower fetch of ``topic``'s partition 0
    parked at it, its followers being paused (they send no new one).

    A parked fetch is answered after replica.fetch.wait.max.ms on the leader's clock, which
    on a loaded machine runs late against the test's: so the leader itself measures the
    time. A consumer fetch parked at the high watermark (which cannot move while the
    followers are paused) for as long comes back only after the leader's timers have
    fired that far. Two in a row: the second is parked after the first came back, so
    it also covers a follower fetch the leader read just after the first, and leaves
    every woken one a whole wait to be sent."""
    wait_ms = int(CLUSTER_CONFIG["replica.fetch.wait.max.ms"])
    high_watermark = _consumer_fetch(cluster, leader, topic, 0, 0)
    for _ in range(2):
        _consumer_fetch(cluster, leader, topic, high_watermark, wait_ms)


def wait_read_to_end(cluster: Cluster, history: History, reader: str) -> None:
    """Wait until ``reader`` has read each partition up to its last acknowledged offset."""
    ends: dict[int, int] = {}
    for partition, offset in list(history.acks.values()):
        ends[partition] = max(offset, ends.get(partition, -1))

    def read_to_end() -> bool:
        last: dict[int, int] = {}
        for partition, offset, _value in list(history.reads.get(reader, [])):
            last[partition] = max(offset, last.get(partition, -1))
        return all(last.get(partition, -1) >= end for partition, end in ends.items())

    cluster.wait_for(read_to_end, SETTLE_S, message=f"{reader} to read up to the last ack")


def produce_refusals(cluster: Cluster, broker_id: int) -> float:
    """How many Produce partitions ``broker_id`` has answered NOT_ENOUGH_REPLICAS so far
    (RequestMetrics ErrorsPerSec on its /metrics, at the address its log names last)."""
    urls = [
        match.group(1)
        for line in cluster.broker(broker_id).output_since(0).splitlines()
        if (match := HTTP_READY.search(line))
    ]
    assert urls, f"broker {broker_id} logged no HTTP address"
    return total(
        scrape(urls[-1]),
        "kafka_network_requestmetrics_errors_total",
        request="Produce",
        error="NOT_ENOUGH_REPLICAS",
    )


def describe(cluster: Cluster, topic: str) -> dict[str, Any]:
    """Partition 0 as ``kbroker topics describe --json TOPIC`` shows it to a user
    (leader, replicas, isr, offsets), asked of a running broker."""
    via = cluster.running_broker_ids[0]
    result = subprocess.run(
        [sys.executable, "-m", "kbroker", "topics", "describe", "--json", topic]
        + ["--bootstrap-server", cluster.address(via)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (entry,) = json.loads(result.stdout)
    partition: dict[str, Any] = entry["partitions"][0]
    return partition


# -- a steady producer -------------------------------------------------------------------------
@dataclass
class SteadyProducer:
    """Sends ``RATE_PER_S`` records a second round-robin over the partitions, in a thread."""

    producer: ProducerHandle
    history: History
    topic: str
    tag: str
    partitions: int = PARTITIONS
    sent: int = field(default=0, init=False)
    error: BaseException | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        interval = 1.0 / RATE_PER_S
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                partition = self.sent % self.partitions
                value = f"{self.tag}-{self.sent}".encode()
                self.history.sent(partition, value)
                self.producer.send(self.topic, partition, value)
                self.sent += 1
                self.producer.poll()
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def finish(self, timeout_s: float = SETTLE_S) -> None:
        """Stop sending and wait for every delivery report."""
        self._stop.set()
        self._thread.join(30)
        self.producer.flush(timeout_s)
        if self.error is not None:
            raise self.error


@contextmanager
def live_reading(
    client: ClientAdapter, cluster: Cluster, topic: str, history: History
) -> Iterator[None]:
    """A consumer reading ``topic`` throughout the block (its reads go into ``history``)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=client.live_reader,
        args=(cluster.bootstrap_servers, topic, PARTITIONS, history, stop),
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def check(
    client: ClientAdapter, cluster: Cluster, topic: str, history: History, partitions: int
) -> Analysis:
    """Read everything back and analyse; fails the test on any anomaly."""
    client.read_all(cluster.bootstrap_servers, topic, partitions, history, "final")
    analysis = history.analyse()
    assert analysis.acknowledged > 0, "nothing was acknowledged"
    assert not analysis.problems(), analysis.problems()
    return analysis


def send_each(
    producer: ProducerHandle, history: History, topic: str, records: Iterable[tuple[int, bytes]]
) -> None:
    """Hand each (partition, value) to the producer, telling the history first."""
    for partition, value in records:
        history.sent(partition, value)
        producer.send(topic, partition, value)


def produce_acknowledged(
    client: ClientAdapter, cluster: Cluster, topic: str, history: History, tag: str, total: int
) -> None:
    """``total`` records round-robin over the partitions with an idempotent acks=all
    producer; every one of them acknowledged."""
    producer = client.producer(cluster.bootstrap_servers, history)
    try:
        send_each(
            producer,
            history,
            topic,
            ((i % PARTITIONS, f"{tag}-{i}".encode()) for i in range(total)),
        )
        producer.flush(30)
    finally:
        producer.close()
    assert history.acked_count == total, history.failure_kinds()


def wait_acked(cluster: Cluster, history: History, more_than: int, timeout: float) -> None:
    """Wait until the history has more than ``more_than`` acknowledgements."""
    cluster.wait_for(
        lambda: history.acked_count > more_than,
        timeout,
        message=f"more than {more_than} acknowledgements",
    )


# -- scenario 1 -----------------------------------------------------------------------------------
def leader_kills(client: ClientAdapter, cluster: Cluster, topic: str) -> dict[str, Any]:
    """Steady acks=all produce while the leader of each partition in turn is killed -9 and
    restarted: nothing acknowledged lost or duplicated, replicas byte-identical after."""
    new_topic(client, cluster, topic, PARTITIONS)
    history = History()
    failovers: list[float] = []
    producer = client.producer(cluster.bootstrap_servers, history)
    try:
        with (
            live_reading(client, cluster, topic, history),
            SteadyProducer(producer, history, topic, "k") as steady,
        ):
            wait_acked(cluster, history, 200, 30)
            for kill in range(KILLS):
                partition = kill % PARTITIONS
                leader = cluster.leader_of(topic, partition)
                killed_at = time.monotonic()
                cluster.kill(leader)
                first = cluster.wait_for(
                    functools.partial(history.first_ack_after, partition, killed_at),
                    SETTLE_S,
                    message=f"an acknowledgement on partition {partition} after the kill",
                )
                assert first is not None
                failovers.append(first - killed_at)
                cluster.start_broker(leader)
                wait_full_isr(cluster, topic)
            steady.finish()
    finally:
        producer.close()
    size = wait_identical_replicas(cluster, topic)
    analysis = check(client, cluster, topic, history, PARTITIONS)
    return {
        **analysis.figures(),
        "kills": KILLS,
        "failover_p50_s": round(statistics.median(failovers), 2),
        "failover_max_s": round(max(failovers), 2),
        "replica_bytes": size,
    }


# -- scenario 2 -----------------------------------------------------------------------------------
def two_of_three_down(client: ClientAdapter, cluster: Cluster, topic: str) -> dict[str, Any]:
    """Two brokers killed: acks=all is refused with NOT_ENOUGH_REPLICAS; one restarted:
    the producer succeeds again and nothing acknowledged is lost. ``kbroker topics
    describe`` shows the ISR shrink and grow back (scenario 6)."""
    new_topic(client, cluster, topic, 1)
    described_before = describe(cluster, topic)
    history = History()
    producer = client.producer(cluster.bootstrap_servers, history)
    try:
        send_each(producer, history, topic, ((0, f"before-{i}".encode()) for i in range(50)))
        producer.flush(30)
        assert history.acked_count == 50, history.failure_kinds()
        survivor = cluster.leader_of(topic, 0)
        victims = [b for b in cluster.broker_ids if b != survivor]
        for victim in victims:
            cluster.kill(victim)
        cluster.wait_for(
            lambda: cluster.partitions(topic, via=survivor)[0].isr == (survivor,),
            SETTLE_S,
            message="the ISR to shrink to the survivor",
        )
        described_alone = describe(cluster, topic)
        refused = client.send_error(cluster.address(survivor), topic, 0)
        assert refused == "NOT_ENOUGH_REPLICAS", refused
        # The idempotent producer keeps retrying these until a replica is back. Once the
        # survivor has refused a send after the probe (its /metrics count them), the
        # producer's batches have reached it: none may be acknowledged.
        refused_before = produce_refusals(cluster, survivor)
        for i in range(50):
            history.sent(0, f"during-{i}".encode())
            producer.send(topic, 0, f"during-{i}".encode())
            producer.poll()

        def producer_refused() -> bool:
            producer.poll()
            assert history.acked_count == 50, "acknowledged with one replica in the ISR"
            return produce_refusals(cluster, survivor) > refused_before

        cluster.wait_for(
            producer_refused, SETTLE_S, message="the survivor to refuse the producer's sends"
        )
        producer.poll()
        assert history.acked_count == 50, "acknowledged with one replica in the ISR"
        restarted_at = time.monotonic()
        cluster.start_broker(victims[0])
        producer.flush(SETTLE_S)
        recovered_s = time.monotonic() - restarted_at
        assert history.acked_count == 100, history.failure_kinds()
        expected = sorted([survivor, victims[0]])

        def isr_back() -> dict[str, Any] | None:
            described = describe(cluster, topic)
            return described if sorted(described["isr"]) == expected else None

        cluster.wait_for(
            isr_back,
            SETTLE_S,
            message=f"describe to show the ISR {expected}",
        )
    finally:
        producer.close()
    # What a user sees from the command line: the ISR went down to one broker and back.
    assert sorted(described_before["isr"]) == sorted(cluster.broker_ids), described_before
    assert described_alone["leader"] == survivor, described_alone
    assert described_alone["isr"] == [survivor], described_alone
    analysis = check(client, cluster, topic, history, 1)
    reset(cluster)
    return {**analysis.figures(), "recovered_after_restart_s": round(recovered_s, 2)}


# -- scenario 3 -----------------------------------------------------------------------------------
def paused_follower(client: ClientAdapter, cluster: Cluster, topic: str) -> dict[str, Any]:
    """A follower SIGSTOPped past replica.lag.time.max.ms leaves the ISR, acks=all carries
    on with the other two; after SIGCONT it catches up and rejoins."""
    new_topic(client, cluster, topic, 1)
    leader = cluster.leader_of(topic, 0)
    controller = cluster.controller_id()
    # A follower that is not the controller: pausing the controller would also stop the
    # cluster's reaction to the ISR change this scenario is about.
    follower = next(b for b in cluster.broker_ids if b not in (leader, controller))
    history = History()
    producer = client.producer(cluster.bootstrap_servers, history)
    try:
        with SteadyProducer(producer, history, topic, "p", 1) as steady:
            wait_acked(cluster, history, 100, 30)
            paused_at = time.monotonic()
            cluster.pause(follower)
            try:
                cluster.wait_for(
                    lambda: follower not in cluster.partitions(topic, via=leader)[0].isr,
                    SETTLE_S,
                    message=f"broker {follower} to leave the ISR",
                )
                left_s = time.monotonic() - paused_at
                acked = history.acked_count
                wait_acked(cluster, history, acked + 100, 30)  # acks=all carries on
            finally:
                cluster.resume(follower)
            resumed_at = time.monotonic()
            cluster.wait_for(
                lambda: follower in cluster.partitions(topic, via=leader)[0].isr,
                SETTLE_S,
                message=f"broker {follower} to rejoin the ISR",
            )
            rejoined_s = time.monotonic() - resumed_at
            steady.finish()
    finally:
        producer.close()
    analysis = check(client, cluster, topic, history, 1)
    return {
        **analysis.figures(),
        "left_isr_after_s": round(left_s, 2),
        "rejoined_after_s": round(rejoined_s, 2),
    }


# -- scenario 4 -----------------------------------------------------------------------------------
def old_leader_truncates(client: ClientAdapter, cluster: Cluster, topic: str) -> dict[str, Any]:
    """A leader gets records its followers never copied (acks=1, followers paused), is cut
    off (SIGSTOP past the session timeout) while another is elected and takes acks=all
    writes, then comes back: it truncates its divergent tail, the replicas end up
    identical, nothing acknowledged with acks=all is lost, and no consumer ever read a
    truncated record (they stay above the high watermark)."""
    new_topic(client, cluster, topic, 1)
    old = cluster.leader_of(topic, 0)
    followers = [b for b in cluster.broker_ids if b != old]
    history = History()  # acks=all records, and every consumer's reads
    tail = History()  # acks=1 records only the old leader gets
    safe = client.producer(cluster.bootstrap_servers, history)
    unsafe = client.producer(cluster.address(old), tail, LEADER_ONLY)
    try:
        with live_reading(client, cluster, topic, history):
            send_each(safe, history, topic, ((0, f"before-{i}".encode()) for i in range(50)))
            safe.flush(30)
            # The acks=1 producer connected and holding metadata before anything is paused:
            # the followers must stay paused well within the session timeout.
            send_each(unsafe, history, topic, [(0, b"warm-up")])
            unsafe.flush(30)
            assert tail.acked_count == 1, tail.failure_kinds()
            for follower in followers:
                cluster.pause(follower)
            try:
                # Fetches the followers had parked at the leader are answered (empty) within
                # replica.fetch.wait.max.ms; after that no fetch of theirs can carry the tail.
                wait_out_parked_fetches(cluster, old, topic)
                send_each(unsafe, tail, topic, ((0, f"tail-{i}".encode()) for i in range(20)))
                unsafe.flush(3)
            finally:
                cut_at = time.monotonic()
                cluster.pause(old)
                for follower in followers:
                    cluster.resume(follower)
            try:
                new = cluster.wait_for(
                    lambda: (
                        (leader := cluster.leader_of(topic, 0, via=followers[0])) in followers
                        and leader
                    ),
                    SETTLE_S,
                    message="a new leader among the followers",
                )
                elected_s = time.monotonic() - cut_at
            finally:
                # Back at once: clients would otherwise wait out request timeouts on it.
                cluster.resume(old)
            send_each(safe, history, topic, ((0, f"after-{i}".encode()) for i in range(50)))
            safe.flush(SETTLE_S)
            cluster.wait_for(
                lambda: len(cluster.partitions(topic, via=new)[0].isr) == 3,
                SETTLE_S,
                message=f"broker {old} back in the ISR",
            )
            wait_identical_replicas(cluster, topic, partitions=1)
            wait_read_to_end(cluster, history, "live")  # its reads span the whole story
    finally:
        safe.close()
        unsafe.close()
    analysis = check(client, cluster, topic, history, 1)
    acked_tail = set(tail.acks)
    final = {value for _, _, value in history.reads["final"]}
    truncated = len(acked_tail - final)
    assert tail.acks, "the old leader acknowledged no acks=1 record"
    assert truncated > 0, "the old leader's unreplicated acks=1 records were not truncated"
    return {
        **analysis.figures(),
        "acks1_tail_truncated": truncated,
        "new_leader_after_s": round(elected_s, 2),
    }


# -- scenario 5 -----------------------------------------------------------------------------------
def group_coordinator_killed(client: ClientAdapter, cluster: Cluster, topic: str) -> dict[str, Any]:
    """A consumer group committing after every record keeps going when its coordinator's
    broker is killed -9: every acknowledged record is consumed once, and a new member of
    the group afterwards finds nothing left (the committed offsets survived)."""
    new_topic(client, cluster, topic, PARTITIONS)
    group = f"{topic}-group"
    history = History()
    total = 300
    produce_acknowledged(client, cluster, topic, history, "g", total)

    def group_reads(reader: str) -> int:
        return len(history.reads.get(reader, []))

    def group_reader(reader: str) -> tuple[GroupReading, threading.Thread]:
        reading = GroupReading(cluster.bootstrap_servers, topic, group, history, reader)
        thread = threading.Thread(target=client.group_reader, args=(reading,), daemon=True)
        thread.start()
        return reading, thread

    reading, thread = group_reader("group")
    try:
        cluster.wait_for(lambda: group_reads("group") >= total // 3, SETTLE_S, message="reads")
        coordinator = cluster.wait_for(lambda: max(cluster.coordinator_of(group), 0), 30)
        killed_at = time.monotonic()
        cluster.kill(coordinator)

        def everything_read_and_committed() -> bool:
            # Distinct records: a rebalance after the failover may hand some over twice.
            # The late member below must find nothing, so the wait is for the commit that
            # covers the last read too, not only for the read.
            read = {(p, o) for p, o, _ in list(history.reads.get("group", []))}
            return len(read) >= total and reading.committed == reading.reads()

        cluster.wait_for(
            everything_read_and_committed,
            SETTLE_S * 2,
            message="the group to read and commit everything",
        )
        resumed_s = time.monotonic() - killed_at
    finally:
        reading.stop.set()
        thread.join(60)
    # A new member of the group starts from the committed offsets: nothing is left. It
    # reads until its own fetches have reached the end of every partition (a member still
    # joining would find nothing either, so no fixed time can stand for that).
    late_reading, late = group_reader("group-after")
    try:
        cluster.wait_for(
            lambda: late_reading.caught_up >= set(range(PARTITIONS)),
            SETTLE_S,
            message="the new member to read every partition to its end",
        )
    finally:
        late_reading.stop.set()
        late.join(60)
    reread = group_reads("group-after")
    analysis = check(client, cluster, topic, history, PARTITIONS)
    assert reread == 0, f"{reread} records consumed again after the coordinator failover"
    reset(cluster)
    return {
        **analysis.figures(),
        "read_again_after_failover": reread,
        "group_done_after_kill_s": round(resumed_s, 2),
    }


def transaction_coordinator_killed(
    client: ClientAdapter, cluster: Cluster, topic: str, *, settle_s: float = SETTLE_S
) -> dict[str, Any]:
    """A transactional consume-transform-produce loop keeps going when the broker leading
    its transaction coordinator's ``__transaction_state`` partition is killed -9: every
    source record's output is in the sink exactly once for a read_committed consumer, in
    source order per partition (KIP-98's exactly-once promise across a failover).

    ``settle_s`` bounds the wait for the loop to finish after the kill, and for it to
    stop (a client known to hang there is given less, so its case ends quickly)."""
    reset(cluster)
    sink = f"{topic}-out"
    for name in (topic, sink):
        client.create_topic(cluster.bootstrap_servers, name, PARTITIONS, 3)
        wait_full_isr(cluster, name)
    source_history = History()
    total = 600
    produce_acknowledged(client, cluster, topic, source_history, "t", total)

    transactional_id = f"{topic}-txn"
    loop = TransformLoop(cluster.bootstrap_servers, topic, sink, f"{topic}-group", transactional_id)
    thread = threading.Thread(target=client.transform_loop, args=(loop,), daemon=True)
    thread.start()
    try:
        cluster.wait_for(lambda: loop.committed >= total // 4, SETTLE_S, message="transactions")
        coordinator = cluster.wait_for(
            lambda: max(cluster.coordinator_of(transactional_id, key_type=1), 0), 30
        )
        killed_at = time.monotonic()
        cluster.kill(coordinator)
        cluster.wait_for(
            lambda: loop.committed >= total,
            settle_s,
            message="the loop to commit every source record",
        )
        done_s = time.monotonic() - killed_at
    finally:
        loop.stop.set()
        thread.join(settle_s)
    assert not thread.is_alive(), "the transform loop did not stop"

    # The sink, read_committed, holds each source record's output once, in source order.
    output = History()
    source_values = sorted(source_history.acks.items(), key=lambda item: item[1])
    for value, (partition, _offset) in source_values:
        output.sent(partition, b"out-" + value)
    client.read_committed(cluster.bootstrap_servers, sink, PARTITIONS, output, "final")
    analysis = output.analyse()
    seen = {value for _p, _o, value in output.reads.get("final", [])}
    missing = [value for value, _ in source_values if b"out-" + value not in seen]
    assert not analysis.problems(), analysis.problems()
    assert not missing, f"{len(missing)} source records have no output, e.g. {missing[:5]}"
    assert analysis.read == total, (analysis.read, total)
    reset(cluster)
    return {
        **analysis.figures(),
        "source_records": total,
        "lost": len(missing),
        "aborted_transactions": loop.aborted,
        "all_committed_after_kill_s": round(done_s, 2),
    }


# -- the scenarios as tests -------------------------------------------------------------------
# A client module runs them by subclassing as a ``Test...`` class whose ``client`` is its
# ClientAdapter; the tests take the ``replication_cluster`` fixture, record their figures for
# the results table, and their names are its rows (compat/results.py drops the class from the
# cell name).
Scenario = Callable[[ClientAdapter, Cluster, str], dict[str, Any]]


class _WithClient(Protocol):
    client: ClientAdapter


def _as_test(scenario: Scenario) -> Callable[..., None]:
    """A test method that runs ``scenario`` and records its figures."""

    def test(
        self: _WithClient,
        replication_cluster: Cluster,
        topic_name: str,
        record_property: Callable[[str, object], None],
    ) -> None:
        record_property("figures", scenario(self.client, replication_cluster, topic_name))

    test.__doc__ = scenario.__doc__
    return test


class ReplicationScenarios:
    """Scenarios 1 to 5 (the consumer-group half), for a client module's ``Test...`` class."""

    test_leader_killed_repeatedly_loses_nothing = _as_test(leader_kills)
    test_two_of_three_down_refuses_then_recovers = _as_test(two_of_three_down)
    test_paused_follower_leaves_and_rejoins_the_isr = _as_test(paused_follower)
    test_old_leader_truncates_its_divergent_tail = _as_test(old_leader_truncates)
    test_group_keeps_its_offsets_when_the_coordinator_is_killed = _as_test(group_coordinator_killed)


class TransactionReplicationScenarios:
    """Scenario 5's transactional half, for a client module's ``Test...`` class whose adapter
    has ``transform_loop`` and ``read_committed``."""

    test_transactions_survive_a_killed_transaction_coordinator = _as_test(
        transaction_coordinator_killed
    )
