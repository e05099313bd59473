"""The cluster tests share the session's real ZooKeeper server (the ``zookeeper`` fixture of
kbroker's pytest plugin, ``kbroker.testing.zookeeper.ZooKeeperServer``); each test gets a
chroot of its own, so tests never see each other's znodes."""

from __future__ import annotations

import itertools

import pytest

from kbroker.testing.zookeeper import ZooKeeperServer

_chroots = itertools.count()


@pytest.fixture
def zookeeper_server(zookeeper: ZooKeeperServer) -> str:
    """The connect string of the session's ZooKeeper server (no chroot)."""
    return zookeeper.connect_string


@pytest.fixture
def zk_connect(zookeeper_server: str) -> str:
    """A connect string with a fresh chroot (created on first connect, as Kafka does)."""
    return f"{zookeeper_server}/t{next(_chroots)}"
