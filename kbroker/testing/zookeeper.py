"""A real, standalone ZooKeeper server for tests and local clusters.

``ZooKeeperServer`` runs Debian's ZooKeeper (package ``zookeeper``: the server jar at
/usr/share/java/zookeeper.jar, run by ``java`` from ``default-jre-headless``) directly with
``java ... org.apache.zookeeper.server.ZooKeeperServerMain zoo.cfg``: the package's service
scripts want /etc/zookeeper and a system user, which a test must not touch. Each server gets
a free 127.0.0.1 port and a temporary directory holding its zoo.cfg, its data and its log::

    with ZooKeeperServer() as zk:
        kazoo_client = KazooClient(hosts=zk.connect_string)

On exit (or ``stop()``) the JVM is killed and the directory removed, whether the test passed
or not; an interpreter that exits without calling ``stop()`` still kills it (``atexit``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from kbroker.lifecycle import Runner

# Debian's layout (package `zookeeper` / `libzookeeper-java`). KBROKER_ZOOKEEPER_JAR points
# elsewhere, e.g. at an Apache release's lib/*.jar classpath on another system.
DEFAULT_JAR = "/usr/share/java/zookeeper.jar"
# Debian's zookeeper.jar names its dependencies in its manifest, but no slf4j binding: with
# these two (libslf4j-java, liblog4j1.2-java, both pulled in by the package) the server's log
# goes through our log4j.properties into the temp dir instead of nowhere.
LOG4J_JARS = ("/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar")
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
# A JVM on a loaded 2-core machine can take several seconds to bind; the usual start is ~0.5 s.
START_TIMEOUT_S = 30.0
# tickTime bounds the session timeouts the server grants (min 2 ticks, max 20 by default) and
# is the granularity of session expiry; 500 ms lets tests ask for 1-6 s sessions and see them
# expire close to on time. Kafka's brokers default to 18 s sessions, within the maximum below.
TICK_TIME_MS = 500
MIN_SESSION_TIMEOUT_MS = 1000
MAX_SESSION_TIMEOUT_MS = 60000


class ZooKeeperError(RuntimeError):
    """ZooKeeper cannot be started (missing package, JVM failure, not ready in time)."""


def find_java() -> str:
    """The ``java`` executable ($JAVA_HOME/bin/java, else on PATH), or a ZooKeeperError."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise ZooKeeperError(
            "java not found (neither $JAVA_HOME/bin/java nor on PATH): "
            "install Debian's default-jre-headless package (apt-get install default-jre-headless)"
        )
    return found


def find_zookeeper_jar() -> str:
    """The ZooKeeper server classpath ($KBROKER_ZOOKEEPER_JAR or Debian's jar)."""
    override = os.environ.get("KBROKER_ZOOKEEPER_JAR")
    if override:
        return override
    if not Path(DEFAULT_JAR).is_file():
        raise ZooKeeperError(
            f"ZooKeeper server jar {DEFAULT_JAR} not found: install Debian's zookeeper package "
            "(apt-get install zookeeper), or set KBROKER_ZOOKEEPER_JAR to a ZooKeeper classpath"
        )
    return DEFAULT_JAR


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Send one of ZooKeeper's four-letter commands (``ruok``, ``srvr``) and return the answer."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


class ZooKeeperServer(Runner):
    """One standalone ZooKeeper JVM on 127.0.0.1, a free port and a temporary directory.

    ``port`` fixes the client port (default: a free one); ``directory`` puts config, data and
    log there and keeps them (default: a temporary dir, removed). ``restart()`` keeps port and data,
    ``pause()``/``resume()`` freeze the JVM (SIGSTOP/SIGCONT) to make sessions expire.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        port: int | None = None,
        directory: str | os.PathLike[str] | None = None,
        tick_time_ms: int = TICK_TIME_MS,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        self.java = find_java()
        self.classpath = find_zookeeper_jar()
        self._fixed_port = port
        self.port = port or 0
        self.tick_time_ms = tick_time_ms
        self.start_timeout = start_timeout
        # A given directory belongs to the caller and is kept (e.g. with a failed test's logs).
        self._given_dir = Path(directory) if directory is not None else None
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # -- paths -------------------------------------------------------------------------------
    @property
    def connect_string(self) -> str:
        """``127.0.0.1:PORT``: what ``zookeeper.connect`` (optionally + ``/chroot``) names."""
        return f"{self.host}:{self.port}"

    def _path(self, name: str) -> Path:
        if self.dir is None:
            raise ZooKeeperError("ZooKeeper server not started")
        return self.dir / name

    @property
    def log_path(self) -> Path:
        """The server's log4j log (ZooKeeper's own messages)."""
        return self._path("zookeeper.log")

    @property
    def output_path(self) -> Path:
        """The JVM's stdout/stderr (start-up failures land here)."""
        return self._path("zookeeper.out")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ZooKeeperServer:
        """Write the config, start the JVM and wait until it answers ``ruok`` and serves."""
        if self.proc is not None and self.proc.poll() is None:
            raise ZooKeeperError("ZooKeeper server already running")
        if self.dir is None:
            if self._given_dir is not None:
                self.dir = self._given_dir
                self.dir.mkdir(parents=True, exist_ok=True)
            else:
                self.dir = Path(tempfile.mkdtemp(prefix="kbroker-zookeeper-"))
            (self.dir / "data").mkdir(exist_ok=True)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        # Another process may take a free port between our probe and the JVM's bind: a fresh
        # port then, unless the caller fixed it.
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            if not self._fixed_port and (attempt > 0 or not self.port):
                self.port = free_port(self.host)
            try:
                self._start_once()
                return self
            except ZooKeeperError:
                if attempt + 1 < attempts and "Address already in use" in self._output_text():
                    continue
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> None:
        assert self.dir is not None
        config = self._path("zoo.cfg")
        config.write_text(self._zoo_cfg())
        log4j = self._path("log4j.properties")
        log4j.write_text(self._log4j_properties())
        classpath = os.pathsep.join(
            [self.classpath, *(jar for jar in LOG4J_JARS if Path(jar).is_file())]
        )
        command = [
            self.java,
            # A test server: small heap, serial GC and the C1 compiler only, to start fast and
            # share a small machine with the brokers.
            "-Xms32m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            f"-Dlog4j.configuration={log4j.as_uri()}",
            f"-Dzookeeper.log.dir={self.dir}",
            "-cp",
            classpath,
            MAIN_CLASS,
            str(config),
        ]
        with open(self.output_path, "ab") as out:
            # Its own session: a Ctrl-C in the terminal reaches the test runner (or `kbroker
            # cluster`), which stops the brokers before ZooKeeper, not everything at once.
            self.proc = subprocess.Popen(
                command,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise ZooKeeperError(
                    f"ZooKeeper exited with code {self.proc.returncode} before it was ready"
                    f"\n{self.output_tail()}"
                )
            try:
                # `ruok` answers imok as soon as the JVM listens; `srvr` names a Mode only once
                # the database is loaded and requests are served.
                if four_letter_word(self.host, self.port, "ruok", timeout=1.0) == "imok":
                    if "Mode:" in four_letter_word(self.host, self.port, "srvr", timeout=1.0):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._kill()
                raise ZooKeeperError(
                    f"ZooKeeper did not answer 'ruok' on {self.connect_string} within "
                    f"{self.start_timeout:.0f} s\n{self.output_tail()}"
                )
            time.sleep(0.05)

    def _zoo_cfg(self) -> str:
        lines = [
            f"tickTime={self.tick_time_ms}",
            f"dataDir={self._path('data')}",
            f"clientPort={self.port}",
            f"clientPortAddress={self.host}",
            f"minSessionTimeout={MIN_SESSION_TIMEOUT_MS}",
            f"maxSessionTimeout={MAX_SESSION_TIMEOUT_MS}",
            # No Jetty admin server (it would take port 8080) and only the two health words.
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr",
            # Tests create and drop many sessions from one address.
            "maxClientCnxns=0",
            # No snapshot/log purge thread and no fsync per write: the data dies with the test.
            "autopurge.purgeInterval=0",
            "forceSync=no",
        ]
        return "\n".join(lines) + "\n"

    def _log4j_properties(self) -> str:
        log = self._path("zookeeper.log")
        return (
            "log4j.rootLogger=INFO, FILE\n"
            "log4j.appender.FILE=org.apache.log4j.FileAppender\n"
            f"log4j.appender.FILE.File={log}\n"
            "log4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n\n"
        )

    def srvr(self) -> str:
        """The server's ``srvr`` answer (version, mode, node count)."""
        return four_letter_word(self.host, self.port, "srvr")

    def is_running(self) -> bool:
        """True while the JVM is alive."""
        return self.proc is not None and self.proc.poll() is None

    def pause(self) -> None:
        """SIGSTOP the JVM: clients see a dead server and their sessions start to expire."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill the JVM and start it again on the same port with the same data."""
        self._kill()
        self._fixed_port = self.port
        self.start()

    def _kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # SIGKILL works on a stopped (SIGSTOP) process too
            proc.wait()

    def stop(self) -> None:
        """Kill the JVM and remove its temporary directory; safe to call more than once."""
        self._kill()
        if self.dir is not None:
            if self._given_dir is None:
                shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    # -- output ------------------------------------------------------------------------------
    def _output_text(self) -> str:
        texts = []
        for path in (self.dir / "zookeeper.out", self.dir / "zookeeper.log") if self.dir else ():
            try:
                texts.append(path.read_text(errors="replace"))
            except OSError:
                pass
        return "\n".join(texts)

    def output_tail(self, lines: int = 40) -> str:
        """The last lines of the JVM's output and log, for error messages."""
        tail = self._output_text().splitlines()[-lines:]
        return "ZooKeeper output (last {} lines):\n{}".format(len(tail), "\n".join(tail))

    def _leave(self, exc_type: type[BaseException] | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"ZooKeeperServer({self.connect_string}, {state})"
