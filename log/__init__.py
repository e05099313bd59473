"""Kafka's segmented on-disk partition log.

Synchronous and free of trio; depends only on ``wire.records`` for the
record-batch format. See ``log.partition`` for how it works.
"""

from __future__ import annotations

from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError, OffsetOutOfRange
from kbroker.log.partition import AppendResult, PartitionLog, ReadResult
from kbroker.log.producer_state import BatchMetadata, ProducerState, ProducerStateEntry
from kbroker.log.segment import FileRegion

__all__ = [
    "AppendResult",
    "BatchMetadata",
    "FileRegion",
    "LogConfig",
    "LogError",
    "OffsetOutOfRange",
    "PartitionLog",
    "ProducerState",
    "ProducerStateEntry",
    "ReadResult",
]
