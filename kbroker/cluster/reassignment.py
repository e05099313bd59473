"""Checks of a partition reassignment's replica list (KafkaController.validateReplicas).

Pure, and free of the controller's imports: the single-node AlterPartitionReassignments
handler uses them too, and a single node must never load kazoo.
"""

from __future__ import annotations

from kbroker.wire.errors import ErrorCode

__all__ = ["dead_replicas", "invalid_replica_list"]


def invalid_replica_list(target: list[int]) -> tuple[ErrorCode, str] | None:
    """KafkaController.validateReplicas' checks of the list itself: None when it is usable."""
    if not target:
        return (
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "Empty replica list specified in partition reassignment.",
        )
    if len(set(target)) != len(target):
        return (
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"Duplicate replica ids in partition reassignment replica list: {target}",
        )
    if any(b < 0 for b in target):
        return (
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"Invalid broker id in replica list: {target}",
        )
    return None


def dead_replicas(adding: list[int], live: list[int]) -> tuple[ErrorCode, str]:
    """KafkaController.validateReplicas: replicas to add on brokers that are not alive."""
    return (
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        "Replica assignment has brokers that are not alive. Replica list: "
        f"{adding}, live broker list: {live}",
    )
