"""What loading a large ``__consumer_offsets`` costs the rest of the broker.

Run: `.venv/bin/python bench/coordinator_load.py [--groups 2000] [--partitions 50]`
Writes groups x partitions committed offsets into ``__consumer_offsets`` (one
partition, so one coordinator load reads them all), restarts the broker on that data
dir (in this process), then, while one connection asks OffsetFetch (retrying on
COORDINATOR_LOAD_IN_PROGRESS) until the group is served, another sends Metadata
requests back to back. Printed, for the background load (the default) and for the
same log read in one step (what a synchronous load did): the time until OffsetFetch
is served, and the Metadata latency (median, worst) while the load ran: the stall
every other connection sees.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbroker.config import BrokerConfig  # noqa: E402
from kbroker.coordinator import loading  # noqa: E402
from kbroker.coordinator.offsets import OffsetAndMetadata, OffsetRecord  # noqa: E402
from kbroker.coordinator.store import OffsetsTopicStore  # noqa: E402
from kbroker.server import serve  # noqa: E402
from kbroker.wire.errors import ErrorCode  # noqa: E402
from kbroker.wire.frames import FrameDecoder  # noqa: E402
from kbroker.wire.messages import MetadataRequest, OffsetFetchRequest  # noqa: E402
from kbroker.wire.protocol import decode_response, encode_request  # noqa: E402


class Conn:
    """One request at a time over a Trio stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()
        self.correlation = 0

    async def request(self, body: Any, version: int) -> Any:
        self.correlation += 1
        data = encode_request(body.API_KEY, version, self.correlation, "bench", body)
        await self.stream.send_all(data)
        while (frame := self.decoder.next_frame()) is None:
            self.decoder.feed(await self.stream.receive_some(1 << 16))
        return decode_response(body.API_KEY, version, frame)[1]


def _config(data: str) -> BrokerConfig:
    return BrokerConfig.from_properties(
        {
            "listeners": "PLAINTEXT://127.0.0.1:0",
            "log.dirs": data,
            "offsets.topic.num.partitions": "1",
        }
    )


async def _fill(data: str, groups: int, partitions: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, _config(data))
        store = OffsetsTopicStore(server.broker)
        for g in range(groups):
            records = [
                OffsetRecord(f"group-{g}", "t", p, OffsetAndMetadata(offset=g + p))
                for p in range(partitions)
            ]
            store.write(0, records)
        server.shutdown()


async def _measure(data: str, slice_s: float) -> tuple[float, list[float]]:
    loading.SLICE_S = slice_s
    latencies: list[float] = []
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, _config(data))
        fetcher = Conn(await trio.open_tcp_stream(*server.address))
        prober = Conn(await trio.open_tcp_stream(*server.address))
        await prober.request(MetadataRequest(topics=[]), 4)  # connection warmed up
        probing = trio.CancelScope()

        async def probe() -> None:
            with probing:
                while True:
                    t0 = time.perf_counter()
                    await prober.request(MetadataRequest(topics=[]), 4)
                    latencies.append(time.perf_counter() - t0)

        nursery.start_soon(probe)
        await trio.sleep(0.05)
        latencies.clear()
        t0 = time.perf_counter()
        fetch = OffsetFetchRequest(
            group_id="group-0",
            topics=[OffsetFetchRequest.OffsetFetchRequestTopic(name="t", partition_indexes=[0])],
        )
        while True:
            resp = await fetcher.request(fetch, 5)
            if resp.error_code != ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
                break
            await trio.sleep(0.01)  # a client's retry backoff, shortened
        elapsed = time.perf_counter() - t0
        assert resp.error_code == 0 and resp.topics[0].partitions[0].committed_offset == 0
        probing.cancel()
        server.shutdown()
    return elapsed, latencies


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        t0 = time.perf_counter()
        await _fill(data, args.groups, args.partitions)
        records = args.groups * args.partitions
        print(f"{records} offset records written in {time.perf_counter() - t0:.1f} s")
        default = loading.SLICE_S
        for label, slice_s in (("background", default), ("one step", math.inf)):
            elapsed, lat = await _measure(data, slice_s)
            median = statistics.median(lat) * 1000 if lat else float("nan")
            worst = max(lat) * 1000 if lat else float("nan")
            print(
                f"{label:>10}: OffsetFetch served after {elapsed * 1000:.0f} ms; "
                f"Metadata meanwhile: {len(lat)} answered, median {median:.2f} ms, "
                f"worst {worst:.0f} ms"
            )


if __name__ == "__main__":
    trio.run(main)
