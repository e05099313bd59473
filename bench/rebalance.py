"""Rebalance time of a consumer group: from JoinGroup to every member holding its assignment.

Run: `.venv/bin/python bench/rebalance.py [--members 2 10] [--rounds 5]`
Starts its own kbroker subprocess (group.initial.rebalance.delay.ms=0, so the figure is
the coordinator's own cost, not the configured delay) and prints, per group size:

- protocol: N raw connections started at once, each a minimal consumer (JoinGroup with the
  KIP-394 MEMBER_ID_REQUIRED round trip, SyncGroup, heartbeat every 50 ms, rejoin on
  REBALANCE_IN_PROGRESS); time until all N hold an assignment of one generation, and
  the time for that stable group to absorb one more member (everyone rejoins). With no
  initial delay, members arriving one by one can cost several generations (printed).
- confluent-kafka: N real consumers (range, heartbeat.interval.ms=100) subscribe at once;
  time until every member reports a non-empty assignment covering all N partitions.
  This includes librdkafka's own pacing (coordinator lookup, metadata, heartbeats).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Consumer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from compat.livebroker import LiveBroker  # noqa: E402
from kbroker.wire.errors import ErrorCode  # noqa: E402
from kbroker.wire.frames import FrameDecoder  # noqa: E402
from kbroker.wire.messages import (  # noqa: E402
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    SyncGroupRequest,
)
from kbroker.wire.protocol import decode_response, encode_request  # noqa: E402


class Conn:
    """A blocking one-request-at-a-time protocol connection."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.decoder = FrameDecoder()
        self.correlation = 0

    def request(self, body, version: int):  # type: ignore[no-untyped-def]
        self.correlation += 1
        self.sock.sendall(encode_request(body.API_KEY, version, self.correlation, "bench", body))
        while (frame := self.decoder.next_frame()) is None:
            self.decoder.feed(self.sock.recv(1 << 16))
        _, resp = decode_response(body.API_KEY, version, frame)
        return resp

    def close(self) -> None:
        self.sock.close()


def subscription(topic: str) -> bytes:
    return struct.pack(">hih", 0, 1, len(topic)) + topic.encode() + struct.pack(">i", -1)


HEARTBEAT_S = 0.05


def member_loop(conn: Conn, group: str, stop: threading.Event, state: dict, key: int) -> None:
    """A minimal consumer: join (+ MEMBER_ID_REQUIRED retry), sync, heartbeat; rejoin on
    any error, as real clients do. Records (generation, time the assignment arrived)."""
    member_id = ""
    while not stop.is_set():
        r = conn.request(
            JoinGroupRequest(
                group_id=group,
                session_timeout_ms=30000,
                rebalance_timeout_ms=30000,
                member_id=member_id,
                protocol_type="consumer",
                protocols=[
                    JoinGroupRequest.JoinGroupRequestProtocol(
                        name="range", metadata=subscription("t")
                    )
                ],
            ),
            9,
        )
        if r.error_code == ErrorCode.MEMBER_ID_REQUIRED:
            member_id = r.member_id
            continue
        if r.error_code != ErrorCode.NONE:
            member_id = "" if r.error_code == ErrorCode.UNKNOWN_MEMBER_ID else member_id
            continue
        member_id = r.member_id
        assignments = []
        if r.leader == r.member_id:
            assignments = [
                SyncGroupRequest.SyncGroupRequestAssignment(
                    member_id=m.member_id, assignment=str(i).encode()
                )
                for i, m in enumerate(r.members)
            ]
        s = conn.request(
            SyncGroupRequest(
                group_id=group,
                generation_id=r.generation_id,
                member_id=member_id,
                assignments=assignments,
            ),
            5,
        )
        if s.error_code != ErrorCode.NONE:
            continue
        state[key] = (r.generation_id, time.perf_counter())
        while not stop.is_set():
            hb = conn.request(
                HeartbeatRequest(
                    group_id=group, generation_id=r.generation_id, member_id=member_id
                ),
                4,
            )
            if hb.error_code != ErrorCode.NONE:
                break
            time.sleep(HEARTBEAT_S)
    conn.request(
        LeaveGroupRequest(
            group_id=group, members=[LeaveGroupRequest.MemberIdentity(member_id=member_id)]
        ),
        5,
    )


def _settled(state: dict, n: int) -> tuple[int, float] | None:
    """(generation, time the last member got its assignment) once all n share a generation."""
    if len(state) < n:
        return None
    gens = {g for g, _ in state.values()}
    if len(gens) != 1:
        return None
    return gens.pop(), max(t for _, t in state.values())


def protocol_round(broker: LiveBroker, n: int, group: str) -> tuple[float, float, int]:
    """(form a group of n, absorb one more member) in seconds, and rebalances to form."""
    conns = [Conn(broker.host, broker.port) for _ in range(n + 1)]
    stop = threading.Event()
    state: dict = {}
    threads = []
    try:
        start = time.perf_counter()
        for i in range(n):
            threads.append(
                threading.Thread(target=member_loop, args=(conns[i], group, stop, state, i))
            )
            threads[-1].start()
        while (formed := _settled(state, n)) is None:
            time.sleep(0.001)
        generation, at = formed
        form = at - start
        start = time.perf_counter()
        threads.append(threading.Thread(target=member_loop, args=(conns[n], group, stop, state, n)))
        threads[-1].start()
        while (grown := _settled(state, n + 1)) is None or grown[0] == generation:
            time.sleep(0.001)
        return form, grown[1] - start, generation
    finally:
        stop.set()
        for t in threads:
            t.join()
        for c in conns:
            c.close()


def confluent_round(broker: LiveBroker, n: int, topic: str, group: str) -> float:
    """Seconds until n real consumers subscribing at once all hold their partitions."""
    consumers = [
        Consumer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "group.id": group,
                "partition.assignment.strategy": "range",
                "heartbeat.interval.ms": 100,
                "session.timeout.ms": 6000,
            }
        )
        for _ in range(n)
    ]
    assigned = [False] * n
    covered: list[set[int]] = [set() for _ in range(n)]
    done = threading.Event()

    def run(i: int) -> None:
        c = consumers[i]
        c.subscribe([topic])
        while not done.is_set():
            c.poll(0.01)
            parts = {tp.partition for tp in c.assignment()}
            covered[i] = parts
            assigned[i] = bool(parts)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    deadline = start + 60
    while time.perf_counter() < deadline:
        if all(assigned) and set().union(*covered) == set(range(n)):
            break
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    done.set()
    for t in threads:
        t.join()
    for c in consumers:
        c.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = LiveBroker(Path(tmp) / "data", overrides={"group.initial.rebalance.delay.ms": "0"})
        broker.start()
        try:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
            print(
                f"{'members':>7}  {'protocol form ms':>16}  {'protocol +1 ms':>14}  "
                f"{'confluent form ms':>17}   (median of {args.rounds}, min..max)"
            )
            for n in args.members:
                topic = f"bench-rebalance-{n}"
                admin.create_topics([NewTopic(topic, num_partitions=n, replication_factor=1)])[
                    topic
                ].result(30)
                forms, grows, reals, gens = [], [], [], []
                for r in range(args.rounds):
                    form, grow, generation = protocol_round(broker, n, f"proto-{n}-{r}")
                    gens.append(generation)
                    forms.append(form * 1000)
                    grows.append(grow * 1000)
                    reals.append(confluent_round(broker, n, topic, f"real-{n}-{r}") * 1000)

                def fmt(xs: list[float]) -> str:
                    return f"{statistics.median(xs):.1f} ({min(xs):.0f}..{max(xs):.0f})"

                print(
                    f"{n:>7}  {fmt(forms):>16}  {fmt(grows):>14}  {fmt(reals):>17}"
                    f"   generations to form: {gens}"
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
