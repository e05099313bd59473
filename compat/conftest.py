"""Fixtures for the real-client suite: live kbrokers and clusters, the clients' programs, and
the results table.

`broker` is shared by every test in a module (tests use unique topic names, so they do not
interfere and the suite stays fast), with the module's BROKER_OVERRIDES if it sets them;
`fresh_broker` is a private one (the same overrides) for tests that restart or kill it. `cluster` is a module's
3-broker cluster on the session's ZooKeeper (issue 14's scenarios), `replication_cluster`
the one issue 15's replication scenarios run on, and `secured` the module's broker with TLS
and SASL listeners; `node` and `kcat_bin` are the client programs. The results table
(client x scenario) is printed in the terminal summary of any run that executed compat
tests; it is written to a file only when asked, with ``KBROKER_COMPAT_RESULTS=<path>``
(``compat/RESULTS.md`` refreshes the committed table), so an ordinary run leaves the checkout
unchanged.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat import replication_scenarios
from compat.clusterkit import module_cluster, restore
from compat.livebroker import (
    GROUP_BROKER_OVERRIDES,
    LiveBroker,
    private_broker,
    shared_broker,
)
from compat.results import ResultsTable
from compat.security_kit import Secured, secured_broker
from compat.txn_scenarios import SMALL_INTERNAL_TOPICS, LossyProxy, SamePortBroker
from kbroker.cluster_runner import Cluster
from kbroker.testing.zookeeper import ZooKeeperServer

_topic_counter = itertools.count()


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LiveBroker]:
    """A live kbroker shared by one test module, with the module's ``BROKER_OVERRIDES`` if
    it has any (a client that always uses groups wants GROUP_BROKER_OVERRIDES' short initial
    rebalance delay)."""
    overrides = getattr(request.module, "BROKER_OVERRIDES", None)
    with shared_broker(tmp_path_factory.mktemp("kbroker-data"), overrides=overrides) as live:
        yield live


@pytest.fixture
def fresh_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveBroker]:
    """A live kbroker of the test's own, free to be restarted or killed (with the module's
    ``BROKER_OVERRIDES`` too)."""
    overrides = getattr(request.module, "BROKER_OVERRIDES", None)
    with private_broker(tmp_path / "kbroker-data", overrides=overrides) as live:
        yield live


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """A live kbroker shared by one module's group tests."""
    with shared_broker(
        tmp_path_factory.mktemp("kbroker-groups"), overrides=GROUP_BROKER_OVERRIDES
    ) as live:
        yield live


@pytest.fixture
def fresh_group_broker(tmp_path: Path) -> Iterator[LiveBroker]:
    """A private kbroker (group overrides) for tests that kill or restart it."""
    with private_broker(tmp_path / "kbroker-data", overrides=GROUP_BROKER_OVERRIDES) as live:
        yield live


@pytest.fixture
def same_port_broker(tmp_path: Path) -> Iterator[LiveBroker]:
    """A private kbroker with small internal topics that comes back on its first port when
    restarted (producers keep their bootstrap across a kill -9)."""
    with private_broker(
        tmp_path / "data", overrides=SMALL_INTERNAL_TOPICS, kind=SamePortBroker
    ) as live:
        yield live


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[LiveBroker, LossyProxy]]:
    """A broker reachable only through a LossyProxy (it advertises the proxy's port)."""
    proxy = LossyProxy()
    with socket.create_server(("127.0.0.1", 0)) as probe:
        broker_port = probe.getsockname()[1]
    live = SamePortBroker(
        tmp_path / "proxied",
        overrides={
            **SMALL_INTERNAL_TOPICS,
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}",
        },
    )
    live.port = broker_port  # its ready line names the advertised (proxy) port instead
    proxy.target = ("127.0.0.1", broker_port)
    live.start()
    try:
        yield live, proxy
    finally:
        proxy.close()
        live.kill()


@pytest.fixture(scope="module")
def shared_cluster(
    zookeeper: ZooKeeperServer,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Cluster]:
    """One module's 3-broker cluster (compat/clusterkit.py's settings), a chroot of its own."""
    name = request.module.__name__.rpartition(".")[2].replace("_", "-")
    with module_cluster(zookeeper, tmp_path_factory.mktemp(name)) as running:
        yield running


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Iterator[Cluster]:
    """The module's cluster: every scenario starts, and leaves the next one, with all three
    brokers running (a scenario that kills or pauses brokers has them started again)."""
    yield shared_cluster
    restore(shared_cluster)


@pytest.fixture(scope="module")
def replication_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three brokers, RF 3, min.insync.replicas 2, shared by a module's replication scenarios.

    Their data dirs and logs go under pytest's temporary directory: a scenario's failure
    does not reach this block, and a temporary dir of the Cluster's own would be removed
    with the evidence."""
    data_dir = tmp_path_factory.mktemp("replication-cluster")
    with Cluster(3, config=replication_scenarios.CLUSTER_CONFIG, data_dir=data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """The module's broker with TLS and SASL listeners, and the key material it was made with."""
    with secured_broker(tmp_path_factory.mktemp("secured")) as pair:
        yield pair


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses (legal Kafka characters only).

    No '_': Kafka warns about topic names mixing '.' and '_' (metric names collide).
    """
    base = re.sub(r"[^A-Za-z0-9.-]", "-", request.node.name.replace("[", ".").replace("]", ""))
    return f"{base[:150]}.{next(_topic_counter)}.{uuid.uuid4().hex[:6]}"


# Kafka's topic defaults (TopicConfig / LogConfig): what DescribeConfigs reports for a topic
# with no overrides on a broker with no server.properties. Every client checks the same.
KAFKA_TOPIC_DEFAULTS = {
    "retention.ms": "604800000",
    "max.message.bytes": "1048588",
    "cleanup.policy": "delete",
    "segment.bytes": "1073741824",
    "message.timestamp.type": "CreateTime",
    # KIP-390 compression levels (Kafka 3.8+)
    "compression.gzip.level": "-1",
    "compression.lz4.level": "9",
    "compression.zstd.level": "3",
}
# DescribeConfigs config_source codes, for clients that hand out the raw number.
DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG = 1, 5


def installed(*names: str, package: str) -> str:
    """The path of the first of ``names`` on PATH (one program's names): a compat dependency,
    so its absence fails the test (never a skip)."""
    path = next(filter(None, map(shutil.which, names)), None)
    assert path, f"{names[0]} is not installed (Debian: apt-get install {package}); compat needs it"
    return path


# The kafkajs project (package.json, its lock file and the scripts the kafkajs modules run).
KAFKAJS_DIR = Path(__file__).resolve().parent / "kafkajs"
NPM_CI_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with kafkajs installed from the lock file (npm ci) if needed."""
    node_bin = installed("node", package="nodejs npm")
    if not (KAFKAJS_DIR / "node_modules" / "kafkajs" / "package.json").exists():
        npm = installed("npm", package="npm")
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=KAFKAJS_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_S,
        )
        assert proc.returncode == 0, f"npm ci failed:\n{proc.stdout}\n{proc.stderr}"
    return node_bin


@pytest.fixture(scope="module")
def kcat_bin() -> str:
    """Path of the kcat binary; its absence fails the test."""
    return installed("kcat", "kafkacat", package="kcat")


def text_like_values(count: int = 300, words_per_value: int = 80) -> list[bytes]:
    """Deterministic text-like values that compress differently at different levels."""
    words = [f"w{(i * 7919) % 997}".encode() for i in range(2000)]
    return [
        b" ".join(words[(i * 31 + j) % 2000] for j in range(words_per_value)) for i in range(count)
    ]


def now_ms() -> int:
    """Wall-clock time in milliseconds, Kafka's timestamp unit."""
    return int(time.time() * 1000)


def pytest_configure(config: pytest.Config) -> None:
    """A client library that is missing fails its module, and the rest of the suite still runs.

    Without this, one compat module that cannot import its client aborts the whole session
    with no test run at all; with it the import error is still reported and fails the run.
    """
    config.option.continue_on_collection_errors = True


# -- failure context and the results table ---------------------------------------------------
_results = ResultsTable()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Attach the broker's output to a failing compat test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name in ("fresh_broker", "broker"):
            live = getattr(item, "funcargs", {}).get(name)
            if isinstance(live, LiveBroker):
                report.sections.append((f"kbroker output ({name})", live.log_tail(80)))
                break
        # A cluster scenario: where each broker's log is, and how each one ended.
        funcargs = getattr(item, "funcargs", {})
        cluster = funcargs.get("cluster", funcargs.get("replication_cluster"))
        if isinstance(cluster, Cluster):
            tails = "\n".join(cluster.broker(i).tail(15) for i in cluster.broker_ids)
            report.sections.append(("kbroker cluster", f"{cluster.describe_logs()}\n{tails}"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record each compat test's outcome for the client x scenario table."""
    _results.record(report)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    """Print the client x scenario table; write it where KBROKER_COMPAT_RESULTS says."""
    if not _results:
        return
    table = _results.markdown()
    terminalreporter.section("kbroker compat results")
    terminalreporter.write_line(table)
    figures = _results.figures_markdown()
    if figures:
        terminalreporter.write_line(figures)
    target_name = os.environ.get("KBROKER_COMPAT_RESULTS")
    if not target_name:
        terminalreporter.write_line(
            "(compat/RESULTS.md left unchanged; set KBROKER_COMPAT_RESULTS=compat/RESULTS.md "
            "to write this table)"
        )
        return
    # A -k / -m / node-id selection, a single module or a run stopped early gives a partial
    # table: written as asked, but said so, since the committed one is quoted by the README.
    partial = (
        bool(config.option.keyword)
        or bool(config.option.markexpr)
        or any("::" in arg for arg in config.args)
        or not _results.has_every_client()
        or exitstatus == pytest.ExitCode.INTERRUPTED
        or bool(
            getattr(terminalreporter, "_session", None) and terminalreporter._session.shouldstop
        )
    )
    if partial:
        terminalreporter.write_line(f"(partial compat run: {target_name} holds only what ran)")
    target = Path(target_name)
    try:
        target.write_text(_results.document())
    except OSError as exc:  # a read-only checkout must not turn a green run red
        terminalreporter.write_line(f"could not write {target}: {exc}")
