"""Producer ids in cluster mode: blocks taken from ZooKeeper's /latest_producer_id_block.

Kafka's ZkProducerIdManager: each broker takes a block of 1000 ids with a
version-checked write of /latest_producer_id_block, so no two brokers ever hand
out the same id. ``next_id`` stays synchronous for the transaction coordinator;
``ensure`` (awaited by InitProducerId before it asks for an id) takes a new block
when the current one is used up.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from kbroker.errors import KafkaApiError
from kbroker.wire.errors import ErrorCode

__all__ = ["ClusterProducerIds"]

logger = logging.getLogger(__name__)


class ClusterProducerIds:
    """Hands out this broker's producer ids, a ZooKeeper block at a time."""

    def __init__(self, zk: Any, broker_id: int) -> None:
        self._zk = zk
        self._broker_id = broker_id
        self._next = 0
        self._end = 0  # exclusive
        self._lock = trio.Lock()

    @property
    def available(self) -> int:
        """Ids left in the current block."""
        return self._end - self._next

    async def ensure(self) -> None:
        """Make sure ``next_id`` has an id to give (one ZooKeeper write per 1000 ids)."""
        from kbroker.cluster import admin_zk

        async with self._lock:
            if self._next < self._end:
                return
            first, count = await admin_zk.allocate_producer_ids(self._zk, self._broker_id)
            self._next, self._end = first, first + count
            logger.info("producer id block %d..%d taken", first, first + count - 1)

    def next_id(self) -> int:
        """A producer id no broker of the cluster has handed out."""
        if self._next >= self._end:
            # RPCProducerIdManager answers this while its next block is on the way.
            raise KafkaApiError(
                ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, "Producer id block not yet available"
            )
        pid = self._next
        self._next += 1
        return pid
