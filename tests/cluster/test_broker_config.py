"""Cluster-mode settings: Kafka's names and defaults, and the --broker-id flag."""

from __future__ import annotations

import pytest
import trio

from kbroker.cli import _parser, build_config
from kbroker.cluster.metadata_cache import BrokerInfo, MetadataCache, PartitionInfo
from kbroker.config import BrokerConfig, ConfigError


def test_cluster_mode_is_switched_on_by_zookeeper_connect_only() -> None:
    single = BrokerConfig.from_properties({})
    assert not single.cluster_mode
    cluster = BrokerConfig.from_properties({"zookeeper.connect": "h1:2181,h2:2181/kbroker"})
    assert cluster.cluster_mode
    # Kafka's defaults; the connection timeout falls back to the session timeout.
    assert cluster["zookeeper.session.timeout.ms"] == 18000
    assert cluster.zookeeper_connection_timeout_ms == 18000
    assert cluster["offsets.topic.replication.factor"] == 3
    assert cluster["transaction.state.log.replication.factor"] == 3
    assert cluster["default.replication.factor"] == 1
    assert cluster["min.insync.replicas"] == 1
    assert cluster["unclean.leader.election.enable"] is False
    assert cluster["auto.leader.rebalance.enable"] is True
    assert cluster["leader.imbalance.check.interval.seconds"] == 300
    assert cluster["leader.imbalance.per.broker.percentage"] == 10
    assert cluster["controlled.shutdown.enable"] is True
    assert cluster["replica.lag.time.max.ms"] == 30000
    assert cluster["replica.fetch.wait.max.ms"] == 500
    assert cluster["replica.fetch.max.bytes"] == 1048576
    assert cluster["num.replica.fetchers"] == 1
    timed = BrokerConfig.from_properties(
        {"zookeeper.connect": "h:2181", "zookeeper.connection.timeout.ms": "2500"}
    )
    assert timed.zookeeper_connection_timeout_ms == 2500
    with pytest.raises(ConfigError):
        BrokerConfig.from_properties({"zookeeper.session.timeout.ms": "0"})


def test_broker_id_flag_names_the_broker() -> None:
    args = _parser().parse_args(["--broker-id", "3", "--listen", "127.0.0.1:0"])
    config = build_config(args)
    assert config.node_id == 3 and config["broker.id"] == 3
    with pytest.raises(ConfigError):
        # node.id and broker.id must agree (Kafka), whichever way they were given.
        BrokerConfig.from_properties({"node.id": "2", "broker.id": "3"})


async def test_metadata_cache_wakes_waiters_on_updates(autojump_clock: trio.abc.Clock) -> None:
    cache = MetadataCache()
    results: list[bool] = []

    async def waiter() -> None:
        results.append(await cache.wait_until(lambda: cache.leader_of("t", 0) == 2, 5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(1)
        cache.set_brokers([BrokerInfo(1, "h1", 1), BrokerInfo(2, "h2", 2)])
        cache.update_partitions([PartitionInfo("t", 0, 2, 1, (2, 1), (2, 1))])
    assert results == [True]
    # A leader that is not a live broker is no leader.
    cache.set_brokers([BrokerInfo(1, "h1", 1)])
    assert cache.leader_of("t", 0) is None
    assert not await cache.wait_until(lambda: cache.leader_of("t", 0) == 2, 1)
