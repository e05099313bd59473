"""Caps on partitions: per broker, per request, and topics auto-created per request.

Every partition costs descriptors, memory and start-up time; a client asking for a
million of them (one CreateTopics) or naming thousands of unknown topics (one
Metadata request with auto-creation on) must get an error code, not a broker that
stalls, runs out of descriptors and cannot start again.

- ``max.partitions.per.request``: Kafka 4.0 refuses a CreateTopics or
  CreatePartitions adding more than 10,000 partitions with POLICY_VIOLATION
  "Excessively large number of partitions per request." (KAFKA-17870); the limit
  is Kafka's, here configurable.
- ``max.broker.partitions``: the name KIP-578 gave a per-broker cap (managed Kafka
  services and Redpanda enforce one); creating beyond it is POLICY_VIOLATION with
  a message naming the setting. Internal topics are never refused: the
  coordinators need them.
- ``auto.create.topics.max.per.request``: a Metadata request auto-creates at most
  this many topics; the others are answered LEADER_NOT_AVAILABLE (what Kafka
  answers for a topic being created), so the client asks again and the creation
  spreads over its retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.errors import KafkaApiError
from kbroker.internal_topics import INTERNAL_TOPICS
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

__all__ = ["AutoCreateBudget", "check_broker_partitions", "check_request_partitions"]


def check_request_partitions(broker: BrokerState, requested: int) -> None:
    """POLICY_VIOLATION if one request asks for more than max.partitions.per.request."""
    if requested > broker.config["max.partitions.per.request"]:
        raise KafkaApiError(
            ErrorCode.POLICY_VIOLATION, "Excessively large number of partitions per request."
        )


def check_broker_partitions(broker: BrokerState, adding: int) -> None:
    """POLICY_VIOLATION if ``adding`` partitions would take the broker past max.broker.partitions."""
    _check(broker.config["max.broker.partitions"], hosted_partitions(broker), adding)


def hosted_partitions(broker: BrokerState) -> int:
    """Partitions of every topic on this broker."""
    return sum(len(t.partitions) for t in broker.topics.topics.values())


def _check(limit: int, hosted: int, adding: int) -> None:
    if hosted + adding > limit:
        raise KafkaApiError(
            ErrorCode.POLICY_VIOLATION,
            f"Adding {adding} partition(s) would exceed max.broker.partitions ({limit}): "
            f"this broker hosts {hosted}.",
        )


class AutoCreateBudget:
    """What one Metadata request may still auto-create (counted once per request:
    thousands of names must not cost a pass over every topic each)."""

    def __init__(self, broker: BrokerState) -> None:
        config = broker.config
        self.remaining = int(config["auto.create.topics.max.per.request"])
        self.limit = int(config["max.broker.partitions"])
        self.partitions = int(config["num.partitions"])
        self.hosted = hosted_partitions(broker)

    def admit(self, name: str) -> ErrorCode | None:
        """None: create ``name`` now; LEADER_NOT_AVAILABLE: not in this request.

        POLICY_VIOLATION (KafkaApiError) past max.broker.partitions; internal
        topics are always admitted.
        """
        internal = name in INTERNAL_TOPICS
        if not internal:
            _check(self.limit, self.hosted, self.partitions)
        if self.remaining <= 0:
            return ErrorCode.LEADER_NOT_AVAILABLE
        self.remaining -= 1
        if not internal:
            self.hosted += self.partitions
        return None
