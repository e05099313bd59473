"""Replication figures between two in-process brokers (one trio process, one core's worth).

Run: `.venv/bin/python bench/replication.py [--megabytes 200] [--records 2000]`
Prints, asserting nothing:
- follower catch-up: a follower's fetcher copying a leader's log from offset 0, in MB/s,
  next to a consumer fetching the same log from the leader (the single-broker consume
  rate; target: catch-up >= half of it);
- produce latency with 100 B records, one request at a time: acks=1 against acks=all with
  the follower in the ISR (p50/p99 ms; target p99 < 20 ms).
Both brokers and the client share one event loop here, so the figures are lower bounds
for separate processes; compat/ and bench/failover.py run real clusters.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio  # noqa: E402

from bench._requests import fetch_request, produce_request  # noqa: E402
from kbroker.config import BrokerConfig  # noqa: E402
from kbroker.replication.fetcher import (  # noqa: E402
    FetcherConfig,
    KafkaConnection,
    ReplicaFetcherManager,
)
from kbroker.replication.partition import ReplicatedPartition  # noqa: E402
from kbroker.server import serve  # noqa: E402
from kbroker.wire.records import Record, build_batch  # noqa: E402

MB = 1_000_000
LEADER, FOLLOWER = 1, 2


async def _broker(nursery: trio.Nursery, data_dir: Path) -> Any:
    config = BrokerConfig.from_properties(
        {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(data_dir)}
    )
    return await nursery.start(serve, config)


async def _pair(
    nursery: trio.Nursery, tmp: Path, topic: str, configs: dict[str, str]
) -> tuple[Any, Any]:
    """A leader and a follower broker in ``tmp``, each with one-partition ``topic``."""
    leader = await _broker(nursery, tmp / "leader")
    follower = await _broker(nursery, tmp / "follower")
    for s in (leader, follower):
        s.broker.topics.create(topic, 1, configs)
    return leader, follower


def _batch(n: int, size: int, start: int = 0) -> bytes:
    return build_batch(
        [Record(key=None, value=b"v" * size, timestamp=1_700_000_000_000 + i) for i in range(n)]
    )


def _partition(server: Any, topic: str) -> Any:
    return server.broker.topics.get(topic).partitions[0]


async def _consume_rate(server: Any, topic: str, total: int) -> float:
    conn = await KafkaConnection.open(*server.address, client_id="bench-consumer")
    offset, got = 0, 0
    start = time.perf_counter()
    end = _partition(server, topic).log.log_end_offset
    while offset < end:
        req = fetch_request(topic, 0, offset, max_bytes=10 * 1024 * 1024)
        resp = await conn.request(req, version=12)
        data = bytes(resp.responses[0].partitions[0].records or b"")
        got += len(data)
        log = _partition(server, topic).log
        offset = log.read(offset, len(data)).next_offset if data else end
    await conn.aclose()
    return got / (time.perf_counter() - start) / MB


async def bench_catch_up(megabytes: int) -> None:
    """Fill a leader's log, then time a follower copying it from scratch."""
    with tempfile.TemporaryDirectory() as tmp:
        async with trio.open_nursery() as nursery:
            leader, follower = await _pair(nursery, Path(tmp), "catchup", {})
            lp, fp = _partition(leader, "catchup"), _partition(follower, "catchup")
            batch = _batch(160, 100)  # ~19 KB batches of 100 B records, as producers send
            while lp.log.size_in_bytes < megabytes * MB:
                lp.log.append(batch)
            lp.replica = ReplicatedPartition(lp.log, broker_id=LEADER)
            lp.replica.make_leader(leader_epoch=0, isr=[LEADER], replicas=[LEADER, FOLLOWER])
            total = lp.log.size_in_bytes
            consume = await _consume_rate(leader, "catchup", total)
            fp.replica = ReplicatedPartition(fp.log, broker_id=FOLLOWER)
            fp.replica.make_follower(
                leader_id=LEADER, leader_epoch=0, isr=[LEADER], replicas=[LEADER, FOLLOWER]
            )
            manager = ReplicaFetcherManager(broker_id=FOLLOWER, config=FetcherConfig())
            await nursery.start(manager.run)
            start = time.perf_counter()
            manager.add_fetcher_for_partitions([(fp, LEADER, leader.address, 0)])
            while fp.log.log_end_offset < lp.log.log_end_offset:
                await trio.sleep(0.005)
            catch_up = total / (time.perf_counter() - start) / MB
            print(f"log of {total / MB:.0f} MB in {len(batch)}-byte batches")
            print(f"  consumer fetch from the leader : {consume:8.1f} MB/s")
            print(
                f"  follower catch-up              : {catch_up:8.1f} MB/s  (target >= {consume / 2:.1f})"
            )
            nursery.cancel_scope.cancel()


async def bench_acks(records: int) -> None:
    """Sequential 100 B produce latency: acks=1 vs acks=all with one follower in the ISR."""
    with tempfile.TemporaryDirectory() as tmp:
        async with trio.open_nursery() as nursery:
            leader, follower = await _pair(nursery, Path(tmp), "acks", {"min.insync.replicas": "2"})
            lp, fp = _partition(leader, "acks"), _partition(follower, "acks")
            lp.replica = ReplicatedPartition(
                lp.log, broker_id=LEADER, on_high_watermark_change=leader.broker.notify_append
            )
            lp.replica.make_leader(
                leader_epoch=0, isr=[LEADER, FOLLOWER], replicas=[LEADER, FOLLOWER]
            )
            fp.replica = ReplicatedPartition(fp.log, broker_id=FOLLOWER)
            fp.replica.make_follower(
                leader_id=LEADER,
                leader_epoch=0,
                isr=[LEADER, FOLLOWER],
                replicas=[LEADER, FOLLOWER],
            )
            manager = ReplicaFetcherManager(broker_id=FOLLOWER)
            await nursery.start(manager.run)
            manager.add_fetcher_for_partitions([(fp, LEADER, leader.address, 0)])
            conn = await KafkaConnection.open(*leader.address, client_id="bench-producer")
            value = _batch(1, 100)
            for acks in (1, -1):
                lat = []
                for _ in range(records):
                    req = produce_request("acks", [value], acks=acks)
                    t = time.perf_counter()
                    resp = await conn.request(req, version=9)
                    lat.append((time.perf_counter() - t) * 1000)
                    assert resp.responses[0].partition_responses[0].error_code == 0
                lat.sort()
                p50 = statistics.median(lat)
                p99 = lat[int(len(lat) * 0.99) - 1]
                name = "acks=1  " if acks == 1 else "acks=all"
                print(
                    f"  {name}: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                    f"({records / (sum(lat) / 1000):.0f} sequential requests/s)"
                )
            await conn.aclose()
            nursery.cancel_scope.cancel()


def main() -> None:
    """Run both benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    trio.run(bench_catch_up, args.megabytes)
    print("produce, 100 B records, one request at a time (leader + follower in-process):")
    trio.run(bench_acks, args.records)


if __name__ == "__main__":
    main()
