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
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

__all__ = ["check_broker_partitions", "check_request_partitions"]


def check_request_partitions(broker: BrokerState, requested: int) -> None:
    """POLICY_VIOLATION if one request asks for more than max.partitions.per.request."""
    if requested > broker.config["max.partitions.per.request"]:
        raise KafkaApiError(
            ErrorCode.POLICY_VIOLATION, "Excessively large number of partitions per request."
        )


def check_broker_partitions(broker: BrokerState, adding: int) -> None:
    """POLICY_VIOLATION if ``adding`` partitions would take the broker past max.broker.partitions."""
    limit = broker.config["max.broker.partitions"]
    hosted = sum(len(t.partitions) for t in broker.topics.topics.values())
    if hosted + adding > limit:
        raise KafkaApiError(
            ErrorCode.POLICY_VIOLATION,
            f"Adding {adding} partition(s) would exceed max.broker.partitions ({limit}): "
            f"this broker hosts {hosted}.",
        )
