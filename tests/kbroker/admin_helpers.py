"""Helpers for the topic admin APIs over the wire: CreateTopics and CreatePartitions
requests built and sent through a RawClient."""

from __future__ import annotations

from typing import Any

from kbroker.wire.messages import CreatePartitionsRequest, CreateTopicsRequest

C = CreateTopicsRequest
P = CreatePartitionsRequest


def new_topic(
    name: str,
    partitions: int = 1,
    replication: int = 1,
    *,
    configs: dict[str, str | None] | None = None,
    assignments: list[list[int]] | None = None,
) -> Any:
    """A CreatableTopic."""
    return C.CreatableTopic(
        name=name,
        num_partitions=partitions,
        replication_factor=replication,
        configs=[C.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()],
        assignments=[
            C.CreatableReplicaAssignment(partition_index=i, broker_ids=ids)
            for i, ids in enumerate(assignments or [])
        ],
    )


async def create(
    client: Any, *topics: Any, version: int | None = None, validate_only: bool = False
) -> list[Any]:
    """Send CreateTopics; the per-topic results."""
    body = C(topics=list(topics), timeout_ms=5000)
    if version is None or version >= 1:
        body.validate_only = validate_only
    response = await client.request(body, version=version)
    return response.topics


async def create_topic(
    client: Any, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    """Create a topic over the wire (CreateTopics) and check it worked."""
    response = await client.request(
        C(
            topics=[
                C.CreatableTopic(
                    name=name,
                    num_partitions=partitions,
                    replication_factor=1,
                    configs=[
                        C.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()
                    ],
                )
            ],
            timeout_ms=5000,
        )
    )
    assert response.topics[0].error_code == 0, response.topics[0].error_message


async def grow(
    client: Any, *topics: Any, version: int | None = None, validate_only: bool = False
) -> dict[str, tuple[int, str | None]]:
    """Send CreatePartitions; name → (error code, message)."""
    response = await client.request(
        P(topics=list(topics), timeout_ms=5000, validate_only=validate_only), version=version
    )
    return {r.name: (r.error_code, r.error_message) for r in response.results}
