"""AlterPartitionReassignments / ListPartitionReassignments on a single node, over the wire.

One node is the controller of a one-broker cluster: a partition stays where it is, so
there is never a reassignment to list or cancel, and any other broker is not alive —
with the codes and messages Kafka's controller gives (KafkaController.validateReplicas).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AlterPartitionReassignmentsRequest,
    ListPartitionReassignmentsRequest,
)
from tests.kbroker.acl_helpers import ALICE, connect_as, secured
from tests.kbroker.admin_helpers import create_topic

A = AlterPartitionReassignmentsRequest
L = ListPartitionReassignmentsRequest


async def test_single_node_reassignments(server: Any) -> None:
    client = await server.connect()
    await create_topic(client, "r", 1)
    node = server.broker.config.node_id
    response = await client.request(
        A(
            timeout_ms=1000,
            topics=[
                A.ReassignableTopic(
                    name="r",
                    partitions=[
                        A.ReassignablePartition(partition_index=0, replicas=[node]),
                    ],
                ),
                A.ReassignableTopic(
                    name="missing",
                    partitions=[A.ReassignablePartition(partition_index=0, replicas=[node])],
                ),
            ],
        )
    )
    assert response.error_code == 0
    got = {
        (t.name, p.partition_index): (p.error_code, p.error_message)
        for t in response.responses
        for p in t.partitions
    }
    assert got == {
        ("missing", 0): (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist."),
        ("r", 0): (0, None),
    }
    for replicas, code, message in [
        (None, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None),
        (
            [],
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "Empty replica list specified in partition reassignment.",
        ),
        (
            [node, node + 1],
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "Replica assignment has brokers that are not alive. Replica list: "
            f"[{node + 1}], live broker list: [{node}]",
        ),
    ]:
        response = await client.request(
            A(
                topics=[
                    A.ReassignableTopic(
                        name="r",
                        partitions=[A.ReassignablePartition(partition_index=0, replicas=replicas)],
                    )
                ]
            )
        )
        [topic] = response.responses
        assert (topic.partitions[0].error_code, topic.partitions[0].error_message) == (
            code,
            message,
        )
    listed = await client.request(L(topics=None))
    assert (listed.error_code, listed.topics) == (0, [])
    listed = await client.request(
        L(topics=[L.ListPartitionReassignmentsTopics(name="r", partition_indexes=[0])])
    )
    assert (listed.error_code, listed.topics) == (0, [])


async def test_reassignments_need_alter_and_describe_on_the_cluster(make_server: Any) -> None:
    """KafkaApis: Alter on the cluster to reassign, Describe to list."""
    server = await secured(make_server)
    async with await connect_as(server, ALICE) as alice:
        altered = await alice.request(A(topics=[]))
        assert altered.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        listed = await alice.request(L(topics=None))
        assert listed.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def test_a_single_node_never_loads_kazoo() -> None:
    """Every handler module, the reassignment ones included, loads without ZooKeeper's client."""
    code = (
        "import sys\n"
        "from kbroker.handlers import load_handlers\n"
        "load_handlers()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kazoo'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"
