"""pytest plugin (entry point ``pytest11: kbroker``): a session-wide ``kbroker`` fixture.

Any project that has kbroker installed gets it without a conftest import:

    def test_roundtrip(kbroker):
        producer = KafkaProducer(bootstrap_servers=kbroker.bootstrap_servers)

The fixture is an isolated ``kbroker.Broker`` on 127.0.0.1 and a free port, with its data
in the session's temporary directory, started on first use and stopped (cleanly) at the
end of the session. Broker settings come from the ``kbroker_config`` ini option (one
``key=value`` per line, Kafka names). ``-p no:kbroker`` disables the plugin.

``kbroker_factory`` is its function-scoped sibling, for a test that needs a clean broker
or different settings: each call starts a fresh broker (the ini settings, then the call's),
with its data under the test's ``tmp_path`` unless ``data_dir=`` is given (give the same
directory again to restart on the same data); every broker it started is stopped when the
test ends:

    def test_compaction(kbroker_factory):
        broker = kbroker_factory({"log.cleanup.policy": "compact"})

For cluster-mode tests there is also ``zookeeper``: a standalone ZooKeeper server for the
session (``.connect_string``; see ``kbroker.testing.ZooKeeperServer``; needs Debian's
``zookeeper`` package and java). Give each test its own chroot (``connect_string +
"/my-test"``) and the test clusters stay apart.

``kbroker_cluster`` starts real multi-broker clusters (``kbroker.Cluster``: broker processes
sharing that ZooKeeper under a chroot of their own), stopped at the end of the test::

    def test_failover(kbroker_cluster):
        cluster = kbroker_cluster(brokers=3, config={"zookeeper.session.timeout.ms": 6000})
        leader = cluster.leader_of("orders", 0)
        cluster.kill(leader)

Keyword arguments go to ``kbroker.Cluster`` (``own_zookeeper=True``: a private ZooKeeper
server, for tests that stop or pause it). When a test fails, its report lists each broker's
log file (kept under the test's ``tmp_path``).

Only the fixture names ``kbroker``, ``kbroker_factory``, ``zookeeper`` and
``kbroker_cluster`` are taken (kbroker's own test suite uses ``server`` and ``make_server``,
which this plugin leaves alone), and nothing heavy is imported until a test asks for a
fixture.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kbroker.cluster_runner import Cluster
    from kbroker.embedded import Broker
    from kbroker.testing.zookeeper import ZooKeeperServer

INI_CONFIG = "kbroker_config"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ``kbroker_config`` ini option."""
    parser.addini(
        INI_CONFIG,
        type="linelist",
        default=[],
        help="kbroker settings for the kbroker fixture, one key=value per line "
        "(Kafka broker names, e.g. num.partitions=3)",
    )


def parse_config_lines(lines: list[str]) -> dict[str, str]:
    """``key=value`` lines (blank lines and # comments skipped) to a settings dict."""
    settings: dict[str, str] = {}
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise pytest.UsageError(f"{INI_CONFIG}: {line!r} is not key=value")
        settings[key.strip()] = value.strip()
    return settings


@pytest.fixture(scope="session")
def kbroker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """A kbroker for the whole session: ``.bootstrap_servers`` is its ``host:port``."""
    from kbroker.config import ConfigError
    from kbroker.embedded import Broker

    settings = parse_config_lines(request.config.getini(INI_CONFIG))
    broker = Broker(data_dir=tmp_path_factory.mktemp("kbroker"), config=settings)
    try:
        broker.start()
    except ConfigError as exc:
        raise pytest.UsageError(f"{INI_CONFIG}: {exc}") from None
    try:
        yield broker
    finally:
        broker.stop()


def _start(broker: Broker) -> Broker:
    from kbroker.config import ConfigError

    try:
        return broker.start()
    except ConfigError as exc:
        raise pytest.UsageError(f"kbroker: {exc}") from None


@pytest.fixture
def kbroker_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Broker]]:
    """Start fresh brokers for one test: ``kbroker_factory(config=None, **Broker_kwargs)``."""
    from kbroker.embedded import Broker

    ini_settings = parse_config_lines(request.config.getini(INI_CONFIG))
    started: list[Broker] = []
    numbers = itertools.count(1)

    def make(config: Mapping[str, Any] | None = None, **kwargs: Any) -> Broker:
        settings: dict[str, Any] = {**ini_settings, **(config or {})}
        kwargs.setdefault("data_dir", tmp_path / f"kbroker-{next(numbers)}")
        broker = Broker(config=settings, **kwargs)
        started.append(_start(broker))
        return broker

    try:
        yield make
    finally:
        errors: list[BaseException] = []
        for broker in reversed(started):
            try:
                broker.stop()
            except Exception as exc:  # stop the others too, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def zookeeper() -> Iterator[ZooKeeperServer]:
    """A standalone ZooKeeper for the whole session, killed (and its data removed) at the end."""
    from kbroker.testing.zookeeper import ZooKeeperServer

    with ZooKeeperServer() as server:
        yield server


@pytest.fixture
def kbroker_cluster(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Cluster]]:
    """A factory: ``kbroker_cluster(brokers=3, config={...}, **cluster_kwargs)`` starts and
    returns a ``kbroker.Cluster``; every cluster it started is killed after the test."""
    from kbroker.cluster_runner import Cluster

    clusters: list[Cluster] = []

    def make(
        brokers: int = 3,
        config: dict[str, object] | None = None,
        *,
        own_zookeeper: bool = False,
        **kwargs: Any,
    ) -> Cluster:
        if not own_zookeeper:
            kwargs.setdefault("zookeeper", request.getfixturevalue("zookeeper"))
        data_dir = tmp_path / f"kbroker-cluster-{len(clusters)}"
        cluster = Cluster(brokers, config=config, data_dir=data_dir, **kwargs)
        clusters.append(cluster)
        try:
            cluster.start()
        finally:
            # Shown with the report of a failing test (pytest prints an item's report
            # sections only for failures, or with -rA).
            request.node.add_report_section("call", "kbroker cluster", cluster.describe_logs())
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.close()
