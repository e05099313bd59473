"""A real standalone ZooKeeper for the cluster tests (one per session; tests use chroots).

``kbroker.testing.zookeeper.ZooKeeperServer`` is the project's server fixture; until it is
available this falls back to starting the same server (Debian's jar, run by java) itself.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

JAR = "/usr/share/java/zookeeper.jar"
_chroots = itertools.count()


class _LocalZooKeeper:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kbroker-zk-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cfg = self.dir / "zoo.cfg"
        cfg.write_text(
            f"tickTime=500\ndataDir={self.dir}/data\nclientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
            "minSessionTimeout=1000\nmaxSessionTimeout=60000\n"
            "4lw.commands.whitelist=ruok\n"
        )
        self.proc = subprocess.Popen(
            [
                "java",
                "-Xmx128m",
                "-cp",
                f"/etc/zookeeper/conf_example:{JAR}",
                "org.apache.zookeeper.server.ZooKeeperServerMain",
                str(cfg),
            ],
            stdout=(self.dir / "out.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"ruok")
                    if s.recv(4) == b"imok":
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("ZooKeeper did not start")

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def zookeeper_server() -> Iterator[str]:
    """connect string of a running ZooKeeper server."""
    if not Path(JAR).exists() or shutil.which("java") is None:
        pytest.skip("ZooKeeper (Debian package zookeeper) or java is not installed")
    try:
        from kbroker.testing.zookeeper import ZooKeeperServer  # type: ignore[import-not-found]
    except ImportError:
        server = _LocalZooKeeper()
        try:
            yield server.connect_string
        finally:
            server.stop()
        return
    with ZooKeeperServer() as zk:
        yield zk.connect_string


@pytest.fixture
def zk_connect(zookeeper_server: str) -> str:
    """A connect string with a chroot of its own, so tests never see each other's znodes."""
    return f"{zookeeper_server}/t{next(_chroots)}_{int(time.time() * 1000)}"
