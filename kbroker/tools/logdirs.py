"""Partition sizes on disk, from DescribeLogDirs (what ``rpk topic describe -p`` shows).

confluent-kafka has no DescribeLogDirs call, so this one request goes over a plain
socket, encoded and decoded by kbroker.wire; it works against any Kafka broker (the
API exists since Kafka 1.0, KIP-113). Sizes are an extra: any failure means "unknown".
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from kbroker.wire.frames import FrameDecoder
from kbroker.wire.messages import DescribeLogDirsRequest
from kbroker.wire.protocol import decode_response, encode_request

API_KEY = 35
# Version 1: the oldest one Kafka 4 still serves, non-flexible, understood since 1.1.
VERSION = 1


def _exchange(host: str, port: int, frame: bytes, timeout: float) -> memoryview:
    decoder = FrameDecoder()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(frame)
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed before the answer")
            decoder.feed(data)
            answer = decoder.next_frame()
            if answer is not None:
                return memoryview(answer)


def partition_sizes(
    host: str, port: int, topics: Iterable[tuple[str, list[int]]], timeout: float
) -> dict[tuple[str, int], int]:
    """Bytes per (topic, partition) on the broker at host:port, summed over its log dirs.

    Partitions the broker does not host are absent; so is everything if it cannot be asked.
    """
    request = DescribeLogDirsRequest(
        topics=[
            DescribeLogDirsRequest.DescribableLogDirTopic(topic=name, partitions=parts)
            for name, parts in topics
        ]
    )
    try:
        frame = encode_request(API_KEY, VERSION, 1, "kbroker-topics", request)
        _, response = decode_response(API_KEY, VERSION, _exchange(host, port, frame, timeout))
    except (OSError, ValueError):
        return {}
    sizes: dict[tuple[str, int], int] = {}
    for result in response.results:
        if result.error_code:
            continue
        for topic in result.topics:
            for p in topic.partitions:
                if not p.is_future_key:  # a copy being moved between dirs (KIP-113)
                    key = (topic.name, p.partition_index)
                    sizes[key] = sizes.get(key, 0) + p.partition_size
    return sizes
