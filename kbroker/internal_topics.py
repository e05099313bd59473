"""The internal topics: their names, and replaying one's partition log.

Both coordinators rebuild their state at load time by walking each partition
from its log start, batch by batch, in Kafka's record-batch v2 format (as
Kafka's GroupMetadataManager / TransactionStateManager do). The walk is shared
here; what a record *means* stays with each store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.log.producer_state import control_type
from kbroker.wire.records import BatchHeader, iter_records, parse_header

if TYPE_CHECKING:
    from kbroker.broker import BrokerState
    from kbroker.topics import Partition, Topic

# Kafka's Topic.GROUP_METADATA_TOPIC_NAME and TRANSACTION_STATE_TOPIC_NAME; Topic.isInternal
# is exactly these names.
OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC})


def coordinated_partitions(broker: BrokerState, topic: Topic) -> list[Partition]:
    """The partitions of an internal topic whose state this broker's coordinator loads:
    all of them on a single node; in cluster mode those it leads (Kafka's coordinators
    load a partition when they become its leader, and never act on a follower's copy)."""
    cluster = broker.cluster
    if cluster is None:
        return list(topic.partitions)
    return [p for p in topic.partitions if cluster.replicas.is_leader(topic.name, p.index)]


# How much of the log one read brings in; a larger batch is still read whole (min_one).
READ_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """One batch of an internal topic's log, with where the read that found it started."""

    header: BatchHeader
    data: bytes
    pos: int
    # The offset the read started at: the first batch of a read may begin before it,
    # and what lies before it was already replayed.
    read_from: int

    def keyed_records(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        """(offset, key, value) of each keyed record at or after ``read_from``.

        Every internal-topic record has a key; a keyless one means nothing here.
        """
        for rec in iter_records(self.data, self.pos):
            if rec.offset < self.read_from or rec.key is None:
                continue
            yield rec.offset, rec.key, rec.value

    def commits(self) -> bool:
        """Whether this control batch, not seen before, is a COMMIT marker (KIP-98)."""
        return self.header.base_offset >= self.read_from and control_type(self.data, self.pos) == 1


def iter_stored_batches(parts: list[Partition]) -> Iterator[tuple[Partition, StoredBatch]]:
    """Every batch of ``parts``' logs, partition by partition, from each log start.

    The walk follows each log's end: a coordinator loads in the background
    (kbroker.coordinator.loading), and a batch appended to one of its partitions while it
    reads (a transaction marker: nothing else writes to a partition still loading) must be
    read too, even in a partition already walked. Once a pass over every partition finds
    nothing more the walk ends, with no yield between that pass and the end, so whoever
    drains it without yielding to other tasks has each log whole as it then is.
    """
    reached: dict[int, int] = {}
    more = True
    while more:
        more = False
        for part in parts:
            log = part.log
            offset = max(reached.get(part.index, 0), log.log_start_offset)
            while offset < log.log_end_offset:
                result = log.read(offset, READ_CHUNK)
                data = result.read_bytes()
                if not data or result.next_offset <= offset:
                    break
                more = True
                pos = 0
                while pos < len(data):
                    header = parse_header(data, pos)
                    yield part, StoredBatch(header, data, pos, offset)
                    pos += header.size
                offset = result.next_offset
            reached[part.index] = offset
