"""pytest plugin (entry point ``pytest11: kbroker``): a session-wide ``kbroker`` fixture.

Any project that has kbroker installed gets it without a conftest import:

    def test_roundtrip(kbroker):
        producer = KafkaProducer(bootstrap_servers=kbroker.bootstrap_servers)

The fixture is an isolated ``kbroker.Broker`` on 127.0.0.1 and a free port, with its data
in the session's temporary directory, started on first use and stopped (cleanly) at the
end of the session. Broker settings come from the ``kbroker_config`` ini option (one
``key=value`` per line, Kafka names). ``-p no:kbroker`` disables the plugin.

For cluster-mode tests there is also ``zookeeper``: a standalone ZooKeeper server for the
session (``.connect_string``; see ``kbroker.testing.ZooKeeperServer``; needs Debian's
``zookeeper`` package and java). Give each test its own chroot (``connect_string +
"/my-test"``) and the test clusters stay apart.

Only the fixture names ``kbroker`` and ``zookeeper`` are taken (kbroker's own test suite uses ``server`` and
``make_server``, which this plugin leaves alone), and nothing heavy is imported until a
test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
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


@pytest.fixture(scope="session")
def zookeeper() -> Iterator[ZooKeeperServer]:
    """A standalone ZooKeeper for the whole session, killed (and its data removed) at the end."""
    from kbroker.testing.zookeeper import ZooKeeperServer

    with ZooKeeperServer() as server:
        yield server
