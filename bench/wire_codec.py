"""Codec speed on the hot paths: Produce request decode and Fetch response encode.

Run: .venv/bin/python bench/wire_codec.py   (prints figures; no thresholds)
"""

from __future__ import annotations

import time
import timeit

from kbroker.wire import protocol
from kbroker.wire.messages import FetchResponse, MetadataResponse, ProduceRequest


def best(fn: object, number: int = 500) -> float:
    """Best-of-5 mean CPU seconds per call."""
    # CPU time, not wall time: other processes on a shared machine distort wall time.
    return min(timeit.repeat(fn, number=number, repeat=5, timer=time.process_time)) / number  # type: ignore[arg-type]


def main() -> None:
    """Print per-call timings."""
    req = ProduceRequest(
        acks=-1,
        timeout_ms=1000,
        topic_data=[
            ProduceRequest.TopicProduceData(
                name="topic-a",
                partition_data=[
                    ProduceRequest.PartitionProduceData(index=i, records=b"x" * 200)
                    for i in range(100)
                ],
            )
        ],
    )
    for v in (7, 9, 11):
        frame = protocol.encode_request(0, v, 7, "cli", req)[4:]
        t = best(lambda f=frame: protocol.decode_request(f))
        print(f"decode_request Produce v{v}, 100 partitions: {t * 1e6:7.1f} us")
    resp = FetchResponse(
        responses=[
            FetchResponse.FetchableTopicResponse(
                topic="topic-a",
                partitions=[
                    FetchResponse.PartitionData(
                        partition_index=i, high_watermark=10, records=b"x" * 300
                    )
                    for i in range(100)
                ],
            )
        ]
    )
    for v in (11, 12, 16):
        t = best(lambda v=v: protocol.encode_response(1, v, 7, resp))
        print(f"encode_response Fetch v{v}, 100 partitions: {t * 1e6:7.1f} us")
    meta = MetadataResponse(
        topics=[
            MetadataResponse.MetadataResponseTopic(
                name=f"topic-{i}",
                partitions=[
                    MetadataResponse.MetadataResponsePartition(
                        partition_index=p, replica_nodes=[1], isr_nodes=[1]
                    )
                    for p in range(10)
                ],
            )
            for i in range(50)
        ]
    )
    t = best(lambda: protocol.encode_response(3, 12, 7, meta), number=100)
    print(f"encode_response Metadata v12, 50 topics x 10 partitions: {t * 1e6:7.1f} us")
    small = protocol.encode_request(18, 3, 1, "c", protocol.request_class(18)())[4:]
    t = best(lambda: protocol.decode_request(small), number=5000)
    print(f"decode_request ApiVersions v3: {t * 1e6:7.1f} us")


if __name__ == "__main__":
    main()
