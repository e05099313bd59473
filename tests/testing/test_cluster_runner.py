"""kbroker.Cluster's process management: real broker processes, their ports, data dirs and
logs, kill/stop/restart/pause/resume, and nothing left running afterwards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import kbroker
from kbroker.cluster_runner import Cluster, ClusterError, fetch_metadata
from kbroker.testing.zookeeper import ZooKeeperServer
from tests.testing.processes import alive


def _answers(cluster: Cluster, broker_id: int, timeout: float = 2.0) -> bool:
    host, port = cluster.address(broker_id).split(":")
    try:
        meta = fetch_metadata(host, int(port), [], timeout=timeout)
    except OSError:
        return False
    return broker_id in meta.brokers


def _pids(cluster: Cluster) -> list[int]:
    return [cluster.broker(i).proc.pid for i in cluster.broker_ids]  # type: ignore[union-attr]


def test_cluster_is_exported_lazily() -> None:
    assert kbroker.Cluster is Cluster


def test_each_broker_runs_with_its_id_port_data_dir_and_log(zookeeper: ZooKeeperServer) -> None:
    with Cluster(2, zookeeper=zookeeper, wait_for_members=False) as cluster:
        assert cluster.broker_ids == [1, 2]
        assert cluster.bootstrap_servers == ",".join(cluster.address(i) for i in (1, 2))
        assert cluster.zookeeper_connect.startswith(zookeeper.connect_string + "/kbroker-")
        for broker_id in (1, 2):
            assert _answers(cluster, broker_id)
            broker = cluster.broker(broker_id)
            assert (broker.data_dir / "meta.properties").is_file()
            log = broker.log_path.read_text()
            assert f"zookeeper.connect={cluster.zookeeper_connect}" in log
            assert "bootstrap_servers=" in log
            assert cluster.metadata(via=broker_id).broker_id == broker_id


def test_kill_stop_restart_pause_resume(zookeeper: ZooKeeperServer) -> None:
    with Cluster(2, zookeeper=zookeeper, wait_for_members=False) as cluster:
        first = cluster.broker(1)
        port, data_dir = first.port, first.data_dir
        old_pid = first.proc.pid  # type: ignore[union-attr]
        cluster.kill(1)
        assert not alive(old_pid)
        assert cluster.running_broker_ids == [2]
        assert cluster.bootstrap_servers == cluster.address(2)
        assert not _answers(cluster, 1)
        cluster.start_broker(1)
        assert (first.port, first.data_dir) == (port, data_dir)
        assert _answers(cluster, 1)

        cluster.pause(2)
        assert cluster.running_broker_ids == [1]
        assert not _answers(cluster, 2, timeout=1.0)  # alive but silent
        cluster.resume(2)
        assert cluster.wait_for(lambda: _answers(cluster, 2), 10)

        assert cluster.stop(2) == 0  # SIGTERM: a clean exit
        assert "SIGTERM received" in cluster.broker(2).log_path.read_text()
        cluster.restart(2)
        assert _answers(cluster, 2)
        assert cluster.broker(2).starts == 2


def test_close_leaves_no_process_and_removes_a_temporary_dir() -> None:
    cluster = Cluster(2, wait_for_members=False).start()
    assert cluster.zookeeper_server is not None
    zk_pid = cluster.zookeeper_server.proc.pid  # type: ignore[union-attr]
    pids = _pids(cluster)
    data_dir = cluster.data_dir
    assert data_dir is not None and (data_dir / "zookeeper" / "zookeeper.log").is_file()
    cluster.pause(1)  # a paused broker is killed too
    cluster.close()
    assert not any(alive(pid) for pid in [*pids, zk_pid])
    assert not data_dir.exists()


def test_a_failing_block_keeps_the_logs_and_names_them(
    zookeeper: ZooKeeperServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        pytest.raises(AssertionError),
        Cluster(1, zookeeper=zookeeper, wait_for_members=False) as c,
    ):
        pids = _pids(c)
        raise AssertionError("a test's check failed")
    err = capsys.readouterr().err
    assert f"broker 1: {c.log_paths[1]}" in err
    assert c.log_paths[1].is_file()
    assert not any(alive(pid) for pid in pids)
    assert c.data_dir is not None
    c.close()  # the kept temporary dir, removed by hand here
    assert not c.data_dir.exists()


def test_a_broker_that_cannot_start_is_reported_with_its_output(
    zookeeper: ZooKeeperServer, tmp_path: Path
) -> None:
    cluster = Cluster(
        2,
        zookeeper=zookeeper,
        config={"num.partitions": "many"},
        data_dir=tmp_path,
        wait_for_members=False,
    )
    with pytest.raises(ClusterError, match=r"broker 1 exited with code 1 before it was ready"):
        cluster.start()
    assert not any(cluster.broker(i).is_running() for i in cluster.broker_ids), (
        "a failed start leaves nothing running"
    )
    assert "num.partitions" in cluster.log_paths[1].read_text()


def test_wait_for_returns_the_value_or_says_what_it_waited_for(
    zookeeper: ZooKeeperServer,
) -> None:
    with Cluster(1, zookeeper=zookeeper, wait_for_members=False) as cluster:
        calls = iter([0, 0, 7])
        assert cluster.wait_for(lambda: next(calls), 5, interval=0.01) == 7
        with pytest.raises(ClusterError, match=r"(?s)waiting for the moon.*broker 1: "):
            cluster.wait_for(lambda: False, 0.2, message="the moon")


def test_fixture_gives_each_cluster_its_own_chroot(
    kbroker_cluster: Callable[..., Cluster],
) -> None:
    first = kbroker_cluster(brokers=1, wait_for_members=False)
    second = kbroker_cluster(brokers=1, wait_for_members=False)
    assert first.zookeeper_connect != second.zookeeper_connect
    assert first.data_dir != second.data_dir
    assert _answers(first, 1) and _answers(second, 1)
