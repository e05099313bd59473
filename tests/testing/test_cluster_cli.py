"""``kbroker cluster`` run as a user runs it: a subprocess, one ready line, Ctrl-C stops all."""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from kbroker.cluster_runner import fetch_metadata
from tests.interrupt import ctrl_c_reaches_children

READY = re.compile(
    r"^kbroker cluster ready bootstrap_servers=(\S+) zookeeper\.connect=(\S+) data_dir=(\S+)$"
)


def _run(*args: str) -> subprocess.Popen[str]:
    with ctrl_c_reaches_children():  # a test stops it with Ctrl-C
        return subprocess.Popen(
            [sys.executable, "-m", "kbroker", "cluster", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def test_a_broker_that_cannot_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    proc = _run("--brokers", "2", "--data-dir", str(tmp_path), "--override", "num.partitions=many")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert out == ""
    first = err.splitlines()[0]
    assert first.startswith("kbroker cluster: broker 1 exited with code 1 before it was ready")
    assert str(tmp_path / "broker-1.log") in first
    # Nothing left listening: no broker, no ZooKeeper.
    logs = "".join(p.read_text() for p in tmp_path.glob("broker-*.log"))
    ports = re.findall(r"--listen (127\.0\.0\.1:\d+)", logs)
    zoo_cfg = (tmp_path / "zookeeper" / "zoo.cfg").read_text()
    ports.append("127.0.0.1:" + re.findall(r"clientPort=(\d+)", zoo_cfg)[0])
    assert len(ports) == 3
    assert not any(_port_open(address) for address in ports)


def test_bad_override_is_rejected_before_anything_starts(tmp_path: Path) -> None:
    proc = _run("--data-dir", str(tmp_path), "--override", "no-equals-sign")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip() == "kbroker cluster: --override 'no-equals-sign' is not KEY=VALUE"
    assert list(tmp_path.iterdir()) == []


def _free_port_run(count: int) -> int:
    """A base port with ``count`` free ports from it, below the kernel's ephemeral range.

    ``--base-port`` takes consecutive ports; next to a port the kernel just handed out
    (the ephemeral range), any outgoing connection may take the following one meanwhile.
    """
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, max(10001, low - count))
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports below {low}")


def test_ready_line_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    base = _free_port_run(3)
    proc = _run("--brokers", "3", "--data-dir", str(tmp_path), "--base-port", str(base))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().rstrip("\n")
        match = READY.match(line)
        assert match, f"not a ready line: {line!r}"
        addresses = match.group(1).split(",")
        assert addresses == [f"127.0.0.1:{base + i}" for i in range(3)]
        assert Path(match.group(3)) == tmp_path
        zookeeper = match.group(2)
        # Every broker answers for the whole cluster.
        for address in addresses:
            host, port = address.rsplit(":", 1)
            meta = fetch_metadata(host, int(port), [])
            assert sorted(meta.brokers) == [1, 2, 3]
            assert meta.controller_id in (1, 2, 3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out == ""  # the ready line was the only line on stdout
    assert not any(_port_open(a) for a in [*addresses, zookeeper])
    for broker_id in (1, 2, 3):
        log = (tmp_path / f"broker-{broker_id}.log").read_text()
        assert "SIGTERM received" in log  # each broker shut down cleanly
