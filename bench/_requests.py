"""The Produce and Fetch requests the benchmarks send, built one way."""

from __future__ import annotations

from kbroker.wire.messages import FetchRequest, ProduceRequest


def produce_request(topic: str, batches: list[bytes], *, acks: int = -1) -> ProduceRequest:
    """A Produce request to ``topic``; partition i carries ``batches[i]``."""
    parts = [ProduceRequest.PartitionProduceData(index=i, records=b) for i, b in enumerate(batches)]
    return ProduceRequest(
        acks=acks,
        timeout_ms=30_000,
        topic_data=[ProduceRequest.TopicProduceData(name=topic, partition_data=parts)],
    )


def fetch_request(
    topic: str,
    partition: int,
    offset: int,
    *,
    max_wait_ms: int = 0,
    max_bytes: int,
    partition_max_bytes: int = 1024 * 1024,
) -> FetchRequest:
    """A consumer's Fetch of one partition from ``offset``."""
    return FetchRequest(
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=1,
        max_bytes=max_bytes,
        topics=[
            FetchRequest.FetchTopic(
                topic=topic,
                partitions=[
                    FetchRequest.FetchPartition(
                        partition=partition,
                        fetch_offset=offset,
                        partition_max_bytes=partition_max_bytes,
                    )
                ],
            )
        ],
    )
