"""ACLs in cluster mode: kept in ZooKeeper where Kafka's AclAuthorizer keeps them, so
every broker answers (and enforces) the same ACLs, whichever broker changed them."""

from __future__ import annotations

from pathlib import Path

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import (  # noqa: E402
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from kbroker.cluster_runner import Cluster  # noqa: E402
from tests.cluster.real_cluster import eventually, needs_zookeeper, zk_json  # noqa: E402

pytestmark = needs_zookeeper

EVERYTHING = AclBindingFilter(
    ResourceType.ANY,
    None,
    ResourcePatternType.ANY,
    None,
    None,
    AclOperation.ANY,
    AclPermissionType.ANY,
)


def _listed(admin: AdminClient) -> set[tuple[str, str, str, str]]:
    return {
        (b.name, b.resource_pattern_type.name, b.principal, b.operation.name)
        for b in admin.describe_acls(EVERYTHING, request_timeout=20).result(30)
    }


def test_acls_are_shared_through_zookeeper(tmp_path: Path) -> None:
    config = {
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        # Brokers and this test talk PLAINTEXT, as User:ANONYMOUS (inter-broker requests
        # need ClusterAction, as in Kafka).
        "super.users": "User:ANONYMOUS",
        "offsets.topic.num.partitions": 1,
    }
    with Cluster(brokers=2, config=config, data_dir=tmp_path / "cluster") as cluster:
        one = AdminClient({"bootstrap.servers": cluster.broker(1).address})
        two = AdminClient({"bootstrap.servers": cluster.broker(2).address})
        created = one.create_acls(
            [
                AclBinding(
                    ResourceType.TOPIC,
                    "orders",
                    ResourcePatternType.LITERAL,
                    "User:alice",
                    "*",
                    AclOperation.READ,
                    AclPermissionType.ALLOW,
                ),
                AclBinding(
                    ResourceType.TOPIC,
                    "sales-",
                    ResourcePatternType.PREFIXED,
                    "User:bob",
                    "*",
                    AclOperation.IDEMPOTENT_WRITE,
                    AclPermissionType.DENY,
                ),
            ],
            request_timeout=20,
        )
        for future in created.values():
            future.result(30)
        expected = {
            ("orders", "LITERAL", "User:alice", "READ"),
            ("sales-", "PREFIXED", "User:bob", "IDEMPOTENT_WRITE"),
        }
        # Broker 2 learnt them from the change notifications.
        eventually(lambda: _listed(two) == expected)

        # The znodes are Kafka's: a Kafka broker on the same ensemble reads them.
        with cluster.zookeeper_client() as zk:
            literal = zk_json(zk, "/kafka-acl/Topic/orders")
            assert literal == {
                "version": 1,
                "acls": [
                    {
                        "principal": "User:alice",
                        "permissionType": "Allow",
                        "operation": "Read",
                        "host": "*",
                    }
                ],
            }
            prefixed = zk_json(zk, "/kafka-acl-extended/prefixed/Topic/sales-")
            assert prefixed["acls"][0]["operation"] == "IdempotentWrite"
            assert prefixed["acls"][0]["permissionType"] == "Deny"
            changes = zk.get_children("/kafka-acl-changes")
            assert [zk.get(f"/kafka-acl-changes/{c}")[0] for c in changes] == [b"Topic:orders"]
            (extended,) = zk.get_children("/kafka-acl-extended-changes")
            assert zk_json(zk, f"/kafka-acl-extended-changes/{extended}") == {
                "version": 1,
                "resourceType": "Topic",
                "name": "sales-",
                "patternType": "Prefixed",
            }

            # Deleted through broker 2: gone from ZooKeeper and from broker 1.
            deleted = two.delete_acls(
                [
                    AclBindingFilter(
                        ResourceType.TOPIC,
                        "orders",
                        ResourcePatternType.LITERAL,
                        None,
                        None,
                        AclOperation.ANY,
                        AclPermissionType.ANY,
                    )
                ],
                request_timeout=20,
            )
            for future in deleted.values():
                assert len(future.result(30)) == 1
            assert zk.exists("/kafka-acl/Topic/orders") is None
            eventually(
                lambda: _listed(one) == {("sales-", "PREFIXED", "User:bob", "IDEMPOTENT_WRITE")}
            )

            # A broker restarted reads them all from ZooKeeper at start-up (its data dir
            # holds none: cluster mode keeps ACLs only in ZooKeeper).
            cluster.restart(2)
            assert list((tmp_path / "cluster").rglob("acls.json")) == []
            again = AdminClient({"bootstrap.servers": cluster.broker(2).address})
            eventually(
                lambda: _listed(again) == {("sales-", "PREFIXED", "User:bob", "IDEMPOTENT_WRITE")}
            )
