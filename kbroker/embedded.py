"""``kbroker.Broker``: run a broker inside any Python program, Trio or not.

How it works: ``start()`` runs ``trio.run`` on a daemon thread of its own, which
starts ``kbroker.server.serve`` and hands the bound address back through a
``threading.Event``; ``stop()`` asks that Trio loop (through its token) for the
server's graceful shutdown, which closes every partition log with its
clean-shutdown marker, then joins the thread. Because the broker has its own
thread and its own Trio run, the caller may be plain threaded code, asyncio, or
a Trio program (Trio runs are per thread).

    with Broker() as broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from kbroker.config import BrokerConfig
from kbroker.lifecycle import Runner
from kbroker.server import Server, serve

DEFAULT_START_TIMEOUT_S = 30.0
# The broker is already imported in this process, so opening an empty data dir and
# binding takes milliseconds; the stop timeout covers the server's own drain grace.
DEFAULT_STOP_TIMEOUT_S = 30.0
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def _property_text(value: Any) -> str:
    # Java's properties spell booleans in lower case and lists comma-separated.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class Broker(Runner):
    """A kbroker on a background thread; a context manager (``with Broker() as b:``)."""

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        config: Mapping[str, Any] | None = None,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self.host = host
        self.port = port
        self.overrides = {key: _property_text(value) for key, value in (config or {}).items()}
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.data_dir: Path | None = self._given_data_dir
        self.server: Server | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._temp_dir: str | None = None

    # -- public ---------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for a Kafka client's ``bootstrap.servers``."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the broker listens on (the real port, also when asked for 0)."""
        if self.server is None:
            raise RuntimeError("the broker is not running: use `with Broker() as b:` or start()")
        advertised = self.server.config.advertised_listener
        if advertised is not None and advertised.host:
            return advertised.host, advertised.port
        host, port = self.server.address
        return ("localhost" if host in WILDCARD_HOSTS else host), port

    @property
    def running(self) -> bool:
        """True between a successful start() and stop()."""
        return self._thread is not None and self._thread.is_alive() and self.server is not None

    def build_config(self) -> BrokerConfig:
        """The BrokerConfig this broker runs with: the overrides, then host/port and data dir."""
        if self.data_dir is None:
            raise RuntimeError("no data dir yet: build_config() is called by start()")
        props = dict(self.overrides)
        # The explicit arguments win over the config dict, as the CLI's flags win over
        # --override: a `listeners`/`log.dirs` entry is only used through host/port/data_dir.
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        props["listeners"] = f"PLAINTEXT://{host}:{self.port}"
        props.pop("log.dir", None)
        props["log.dirs"] = str(self.data_dir)
        return BrokerConfig.from_properties(props)

    def start(self) -> Broker:
        """Start the broker and block until it accepts connections; errors are raised here."""
        if self._thread is not None:
            raise RuntimeError("this Broker was already started")
        if self._given_data_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="kbroker-")
            self.data_dir = Path(self._temp_dir)
        try:
            config = self.build_config()  # ConfigError (bad key/value) surfaces in the caller
        except BaseException:
            self._remove_temp_dir()
            raise
        self._thread = threading.Thread(
            target=self._run, args=(config,), name=f"kbroker-{id(self):x}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self.start_timeout_s):
            self._error = TimeoutError(f"kbroker did not start within {self.start_timeout_s} s")
        if self._error is not None or self.server is None:
            error = self._error or RuntimeError("kbroker stopped before it was ready")
            self._error = None
            self.stop()
            raise error
        return self

    def stop(self) -> None:
        """Shut down gracefully (logs flushed, clean-shutdown markers), then join the thread."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._token is not None:
            server = self.server
            if server is not None:
                # run_sync_soon rather than trio.from_thread: it also works when the caller
                # is itself inside a (different) Trio run, and does not wait for an answer.
                try:
                    self._token.run_sync_soon(server.shutdown)
                except trio.RunFinishedError:
                    pass  # the loop already ended (it failed); the join below is immediate
            thread.join(self.stop_timeout_s)
            if thread.is_alive():
                raise TimeoutError(f"kbroker did not stop within {self.stop_timeout_s} s")
        elif thread is not None:
            thread.join(self.stop_timeout_s)
        self.server = None
        self._remove_temp_dir()
        error, self._error = self._error, None
        if error is not None:
            # A failure after startup (the broker crashed while serving) must not pass silently.
            raise error

    def _leave(self, exc_type: type[BaseException] | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self.server is not None else "not running"
        return f"Broker({where}, data_dir={self.data_dir})"

    # -- the broker's thread ------------------------------------------------------------------
    def _run(self, config: BrokerConfig) -> None:
        try:
            trio.run(self._main, config)
        except BaseException as exc:  # noqa: B036 - handed to the caller's thread
            self._error = _unwrap(exc)
        finally:
            self._ready.set()

    async def _main(self, config: BrokerConfig) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self.server = await nursery.start(serve, config)
            self._ready.set()
            # serve() returns once Server.shutdown() has drained; the nursery then ends.

    def _remove_temp_dir(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
            self.data_dir = None
