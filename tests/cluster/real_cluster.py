"""Shared by the cluster tests that run real processes (ZooKeeper and kbroker brokers): the
mark that skips them where ZooKeeper cannot run, a wait on what those processes do, and a
ZooKeeper client to read the znodes they write."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from kbroker.testing.zookeeper import DEFAULT_JAR

# The multi-process tests start ZooKeeper from Debian's package with java; without them
# they cannot run at all (the unit tests of the same folder use the plugin's fixture).
needs_zookeeper = pytest.mark.skipif(
    shutil.which("java") is None or not Path(DEFAULT_JAR).exists(),
    reason="ZooKeeper (Debian package zookeeper) or java is not installed",
)


def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds. The processes run on
    their own clock, so this polls the real one (every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.1)


def zk_json(client: KazooClient, path: str) -> Any:
    """A znode's JSON."""
    return json.loads(client.get(path)[0].decode("utf-8"))
