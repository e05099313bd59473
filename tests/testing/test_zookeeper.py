"""kbroker.testing.ZooKeeperServer: a real ZooKeeper JVM that starts, serves and leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.client import KazooClient

from kbroker.testing import zookeeper as zkmod
from kbroker.testing.zookeeper import ZooKeeperError, ZooKeeperServer
from tests.testing.processes import alive


def _kazoo(connect_string: str, timeout: float = 6.0) -> KazooClient:
    client = KazooClient(hosts=connect_string, timeout=timeout)
    client.start(timeout=15)
    return client


def test_serves_a_client_then_leaves_no_process_or_files() -> None:
    with ZooKeeperServer() as server:
        assert server.connect_string.startswith("127.0.0.1:")
        assert "Mode: standalone" in server.srvr()
        client = _kazoo(server.connect_string)
        try:
            client.create("/kbroker-test/node", b"value", makepath=True)
            assert client.get("/kbroker-test/node")[0] == b"value"
            # The server grants the 6 s sessions cluster tests use.
            assert client._session_timeout == 6000
        finally:
            client.stop()
            client.close()
        assert server.proc is not None
        pid = server.proc.pid
        directory = server.dir
        assert directory is not None and (directory / "zoo.cfg").is_file()
        # ZooKeeper's own log goes to the temporary directory, not to the terminal.
        assert "binding to port" in server.log_path.read_text()
    assert not alive(pid)
    assert not directory.exists()


def test_failing_test_still_stops_the_server() -> None:
    server = ZooKeeperServer()
    with pytest.raises(RuntimeError, match="test body failed"), server:
        assert server.proc is not None
        pid = server.proc.pid
        directory = server.dir
        raise RuntimeError("test body failed")
    assert not alive(pid)
    assert directory is not None and not directory.exists()
    server.stop()  # a second stop is harmless


def test_restart_keeps_port_and_data() -> None:
    with ZooKeeperServer() as server:
        client = _kazoo(server.connect_string)
        client.create("/kept", b"1")
        client.stop()
        client.close()
        port = server.port
        server.restart()
        assert server.port == port
        client = _kazoo(server.connect_string)
        try:
            assert client.get("/kept")[0] == b"1"
        finally:
            client.stop()
            client.close()


def test_two_servers_get_two_ports() -> None:
    with ZooKeeperServer() as first, ZooKeeperServer() as second:
        assert first.port != second.port
        assert first.dir != second.dir


def test_missing_jar_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KBROKER_ZOOKEEPER_JAR", raising=False)
    monkeypatch.setattr(zkmod, "DEFAULT_JAR", "/nonexistent/zookeeper.jar")
    with pytest.raises(ZooKeeperError, match=r"install Debian's zookeeper package"):
        ZooKeeperServer()


def test_missing_java_names_the_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ZooKeeperError, match=r"default-jre-headless"):
        ZooKeeperServer()


def test_session_fixture_is_a_running_server(zookeeper: ZooKeeperServer) -> None:
    assert zookeeper.is_running()
    client = _kazoo(zookeeper.connect_string)
    try:
        # A chroot per test keeps tests sharing the session's server apart.
        client.ensure_path("/fixture-test")
        assert "fixture-test" in client.get_children("/")
    finally:
        client.stop()
        client.close()
