"""SCRAM credentials in cluster mode: kept in ZooKeeper's /config/users as Kafka keeps them,
so a user created through one broker is known to every broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from kbroker.cluster_runner import Cluster  # noqa: E402
from tests.cluster.real_cluster import eventually, needs_zookeeper  # noqa: E402

pytestmark = needs_zookeeper


def _described(admin: AdminClient) -> dict[str, list[tuple[str, int]]]:
    found = admin.describe_user_scram_credentials(request_timeout=20).result(30)
    return {
        user: sorted((i.mechanism.name, i.iterations) for i in d.scram_credential_infos)
        for user, d in found.items()
    }


def test_scram_users_are_shared_through_zookeeper(tmp_path: Path) -> None:
    config = {"offsets.topic.num.partitions": 1}
    with Cluster(brokers=2, config=config, data_dir=tmp_path / "cluster") as cluster:
        one = AdminClient({"bootstrap.servers": cluster.broker(1).address})
        two = AdminClient({"bootstrap.servers": cluster.broker(2).address})
        upsert = UserScramCredentialUpsertion(
            "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"bob-secret"
        )
        for future in one.alter_user_scram_credentials([upsert]).values():
            future.result(30)
        eventually(lambda: _described(two) == {"bob": [("SCRAM_SHA_256", 8192)]})
        # Kafka's znode layout: one key per mechanism, salted keys only.
        with cluster.zookeeper_client() as zk:
            data, _ = zk.get("/config/users/bob")
            stored = json.loads(data)["config"]["SCRAM-SHA-256"]
            assert stored.startswith("salt=") and "iterations=8192" in stored
            assert "bob-secret" not in data.decode()
        delete = UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)
        for future in two.alter_user_scram_credentials([delete]).values():
            future.result(30)
        eventually(lambda: _described(one) == {})
