"""Cluster-mode start-up as a user meets it, with the real command line and a real ZooKeeper:
a broker id that is already registered and an unreachable ZooKeeper each stop the broker
with one clear line and a non-zero exit, writing nothing; a chroot that does not exist yet
is created, as Kafka does."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from compat.clusterkit import znode_snapshot
from kbroker.cluster_runner import Cluster
from kbroker.testing.zookeeper import ZooKeeperServer, free_port

pytestmark = pytest.mark.compat

EXIT_DEADLINE_S = 60.0


def run_broker(data_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """``python -m kbroker`` in cluster mode, run to its exit."""
    command = [sys.executable, "-m", "kbroker", "--listen", "127.0.0.1:0"]
    command += ["--data-dir", str(data_dir)]
    for item in overrides:
        command += ["--override", item]
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_DEADLINE_S,
    )


def error_lines(stderr: str) -> list[str]:
    """The broker's own error lines (its log lines have a timestamp and a level first)."""
    return [line for line in stderr.splitlines() if line.startswith("kbroker: ")]


def test_broker_id_already_registered(
    kbroker_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = kbroker_cluster(brokers=1)
    with cluster.zookeeper_client() as zk:
        before = znode_snapshot(zk)
    result = run_broker(
        tmp_path / "second", "broker.id=1", f"zookeeper.connect={cluster.zookeeper_connect}"
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "1" in lines[0] and "registered" in lines[0].lower(), lines[0]
    with cluster.zookeeper_client() as zk:
        assert znode_snapshot(zk) == before  # nothing written, the first broker's node intact
    assert cluster.metadata([]).brokers.keys() == {1}  # and the first broker still serves


def test_unreachable_zookeeper(tmp_path: Path) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    result = run_broker(
        tmp_path / "data",
        "broker.id=1",
        f"zookeeper.connect={nobody}/kbroker",
        "zookeeper.connection.timeout.ms=3000",
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "zookeeper" in lines[0].lower(), lines[0]
    # Like Kafka, which connects to ZooKeeper before it touches its log dirs.
    assert not (tmp_path / "data" / "meta.properties").exists()


def test_missing_chroot_is_created(
    kbroker_cluster: Callable[..., Cluster], zookeeper: ZooKeeperServer
) -> None:
    chroot = f"/apps/kbroker-{uuid.uuid4().hex[:8]}/cluster"
    client = KazooClient(hosts=zookeeper.connect_string, timeout=10)
    client.start(timeout=15)
    try:
        assert client.exists(chroot) is None
        cluster = kbroker_cluster(brokers=1, chroot=chroot)
        assert cluster.zookeeper_connect == zookeeper.connect_string + chroot
        assert client.get_children(f"{chroot}/brokers/ids") == ["1"]
    finally:
        client.stop()
        client.close()
