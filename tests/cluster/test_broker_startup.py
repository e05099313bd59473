"""Cluster-mode start-up errors of a real ``kbroker`` process against a real ZooKeeper.

A broker that cannot join its cluster prints one clear line on stderr, exits non-zero
and writes nothing to ZooKeeper: a broker id already registered, or a ZooKeeper that
cannot be reached within zookeeper.connection.timeout.ms.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kazoo.client import KazooClient

from kbroker.testing.zookeeper import free_port


def _run_broker(
    tmp_path: Path, *overrides: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        "-m",
        "kbroker",
        "--broker-id",
        "7",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--data-dir",
        str(tmp_path / "data"),
        "--log-level",
        "WARNING",
    ]
    for item in overrides:
        args += ["--override", item]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def _tree(client: KazooClient, path: str = "/") -> set[str]:
    found = {path}
    for child in client.get_children(path):
        found |= _tree(client, f"{path.rstrip('/')}/{child}")
    return found


def test_a_broker_id_already_registered_is_one_error_line_and_nothing_written(
    zk_connect: str, tmp_path: Path
) -> None:
    hosts, _, chroot = zk_connect.partition("/")
    client = KazooClient(hosts=f"{hosts}/{chroot}")
    client.start(timeout=15)
    try:
        client.create("/brokers/ids/7", b'{"version":5}', makepath=True)
        before = {p: client.get(p)[0] for p in _tree(client)}
        result = _run_broker(tmp_path, f"zookeeper.connect={zk_connect}")
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert "broker id 7 is already registered" in lines[0]
        assert {p: client.get(p)[0] for p in _tree(client)} == before
        # Nothing was written locally either: the data dir was never opened.
        assert not (tmp_path / "data" / "meta.properties").exists()
    finally:
        client.stop()
        client.close()


def test_an_unreachable_zookeeper_fails_within_the_connection_timeout(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = _run_broker(
        tmp_path,
        f"zookeeper.connect={dead}",
        "zookeeper.connection.timeout.ms=2000",
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot reach ZooKeeper" in lines[0] and "2000" in lines[0]
    # Interpreter start-up plus the 2 s timeout, far below the 18 s session default.
    assert elapsed < 15
