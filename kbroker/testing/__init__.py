"""Test helpers that run real processes: a standalone ZooKeeper server (and, through
``kbroker.Cluster``, real broker processes) for cluster-mode tests.

Nothing here is imported by the broker itself.
"""

from __future__ import annotations

from kbroker.testing.zookeeper import ZooKeeperError, ZooKeeperServer

__all__ = ["ZooKeeperError", "ZooKeeperServer"]
