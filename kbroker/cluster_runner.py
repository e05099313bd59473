"""``kbroker.Cluster``: a local cluster of real kbroker processes and a ZooKeeper, for tests.

    with kbroker.Cluster(brokers=3, config={"zookeeper.session.timeout.ms": 6000}) as cluster:
        producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})
        leader = cluster.leader_of("orders", 0)
        cluster.kill(leader)                      # kill -9
        cluster.wait_for(lambda: cluster.leader_of("orders", 0) not in (leader, -1), 10)
        cluster.restart(leader)                   # same port, same data dir

Each broker is ``python -m kbroker --broker-id N --listen 127.0.0.1:PORT --data-dir DIR
--override zookeeper.connect=CONNECT/CHROOT ...``, exactly as a user starts one, with its
output (stdout and stderr) in ``broker-N.log`` next to its data dir. A ZooKeeper server is
started for the cluster (``kbroker.testing.ZooKeeperServer``) unless ``zookeeper=`` names
one. Questions about the cluster (``leader_of``, ``controller_id``, ``metadata``) are
answered by a Metadata request to a running broker, through kbroker's own wire codec.

On exit every process is killed. A temporary data dir is removed, unless the block raised:
then it is kept and the log paths are printed, so a failed test can be looked into.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kbroker.lifecycle import Runner
from kbroker.testing.zookeeper import ZooKeeperServer, free_port

T = TypeVar("T")

HOST = "127.0.0.1"
READY = re.compile(r"bootstrap_servers=(\S+):(\d+)")
# Python start-up, imports and (in cluster mode) the ZooKeeper session and registration take
# a second or two; a loaded 2-core CI machine running several brokers needs far more room.
START_TIMEOUT_S = 60.0
# A SIGTERM runs a controlled shutdown (leadership moves away first), which waits on the
# controller; Kafka's own default patience is 30 s (controlled.shutdown.* retries).
STOP_TIMEOUT_S = 45.0
METADATA_TIMEOUT_S = 5.0
METADATA_VERSION = 12
FIND_COORDINATOR_VERSION = 3


class ClusterError(RuntimeError):
    """A broker did not start or stop as asked, or a wait ran out of time."""


@dataclass(frozen=True)
class PartitionInfo:
    """One partition as a broker's Metadata answer describes it."""

    topic: str
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]
    error_code: int


@dataclass(frozen=True)
class ClusterMetadata:
    """A broker's view of the cluster: live brokers, controller, topics' partitions."""

    broker_id: int  # who answered
    brokers: dict[int, tuple[str, int, str | None]]  # id -> (host, port, rack)
    controller_id: int
    cluster_id: str | None
    topics: dict[str, dict[int, PartitionInfo]] = field(default_factory=dict)
    topic_errors: dict[str, int] = field(default_factory=dict)


def _config_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cli_has_broker_id() -> bool:
    """Whether this kbroker's command line takes ``--broker-id`` (else ``broker.id`` is set
    through ``--override``, which every version understands)."""
    from kbroker.cli import _parser

    return any("--broker-id" in action.option_strings for action in _parser()._actions)


class BrokerProcess:
    """One ``python -m kbroker`` process with a fixed id, port and data dir across restarts."""

    def __init__(
        self,
        broker_id: int,
        *,
        port: int,
        data_dir: Path,
        log_path: Path,
        overrides: Mapping[str, str],
        broker_id_flag: bool,
        extra_listeners: Mapping[str, int] | None = None,
    ) -> None:
        self.broker_id = broker_id
        self.port = port
        # Listener name -> port of the listeners besides PLAINTEXT on ``port`` (fixed
        # across restarts, like ``port``).
        self.extra_listeners = dict(extra_listeners or {})
        self.data_dir = data_dir
        self.log_path = log_path
        self.overrides = dict(overrides)
        self.broker_id_flag = broker_id_flag
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.starts = 0

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{HOST}:{self.port}"

    def listener_address(self, name: str) -> str:
        """``127.0.0.1:PORT`` of listener ``name`` (PLAINTEXT is :attr:`address`)."""
        if name.upper() == "PLAINTEXT":
            return self.address
        return f"{HOST}:{self.extra_listeners[name.upper()]}"

    def command(self) -> list[str]:
        """The exact command line of this broker."""
        cmd = [sys.executable, "-m", "kbroker"]
        if self.broker_id_flag:
            cmd += ["--broker-id", str(self.broker_id)]
        else:
            cmd += ["--override", f"broker.id={self.broker_id}"]
        if self.extra_listeners:
            listeners = [f"PLAINTEXT://{self.address}"] + [
                f"{name}://{HOST}:{port}" for name, port in self.extra_listeners.items()
            ]
            cmd += ["--override", "listeners=" + ",".join(listeners)]
        else:
            cmd += ["--listen", self.address]
        cmd += ["--data-dir", str(self.data_dir)]
        for key, value in self.overrides.items():
            cmd += ["--override", f"{key}={value}"]
        return cmd

    def is_running(self) -> bool:
        """True while the process is alive (paused counts as alive)."""
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> int:
        """Start the process; returns the log file offset its output starts at."""
        if self.is_running():
            raise ClusterError(f"broker {self.broker_id} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"----- start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            offset = log.tell()
            # Its own session: a Ctrl-C in the terminal reaches only the process that runs
            # the cluster, which then stops the brokers itself (before ZooKeeper).
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                start_new_session=True,
            )
        self.paused = False
        return offset

    def wait_ready(self, offset: int, timeout: float) -> None:
        """Block until the broker logs its ready line (after ``offset``), or raise."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.output_since(offset)
            if READY.search(text):
                return
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                raise ClusterError(
                    f"broker {self.broker_id} exited with code {code} before it was ready"
                    f" (log: {self.log_path})\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"broker {self.broker_id} printed no ready line within {timeout:.0f} s"
                    f" (log: {self.log_path})\n{self.tail()}"
                )
            time.sleep(0.05)

    def output_since(self, offset: int) -> str:
        """What the broker wrote to its log after ``offset``."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        """The last lines of the broker's log."""
        tail = self.output_since(0).splitlines()[-lines:]
        return "\n".join(f"  broker {self.broker_id} | {line}" for line in tail)

    def signal(self, signum: int) -> None:
        """Send ``signum`` if the process is alive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL and reap (works on a paused process too)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.paused = False

    def stop(self, timeout: float) -> int:
        """SIGTERM (a paused process is resumed first) and wait; SIGKILL and raise on timeout."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc is not None else 0
        proc.send_signal(signal.SIGTERM)
        if self.paused:
            proc.send_signal(signal.SIGCONT)
            self.paused = False
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ClusterError(
                f"broker {self.broker_id} did not exit within {timeout:.0f} s of SIGTERM"
                f" (log: {self.log_path})\n{self.tail()}"
            ) from None


class Cluster(Runner):
    """N real kbroker processes on 127.0.0.1 sharing one ZooKeeper path.

    ``zookeeper``: a connect string (``host:port[,host:port]``, optionally with a chroot) or a
    running ``ZooKeeperServer``; None starts a private ZooKeeper server for this cluster.
    ``chroot``: the cluster's ZooKeeper path; by default the root of a private server, and a
    fresh ``/kbroker-<random>`` on a given one, so clusters sharing a server stay apart
    (``"/"``: the root of a given one).
    ``config``: broker settings (Kafka names) given to every broker with ``--override``.
    ``data_dir``: where each broker's ``broker-N`` data dir and ``broker-N.log`` go (kept);
    default a temporary dir. ``base_port``: brokers listen on base_port, base_port+1, ...;
    default free ports. ``broker_ids``: default 1..N. ``wait_for_members``: ``start()`` and
    ``restart()`` return once every running broker's Metadata lists every running broker.
    """

    def __init__(
        self,
        brokers: int = 3,
        *,
        zookeeper: str | ZooKeeperServer | None = None,
        chroot: str | None = None,
        config: Mapping[str, object] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        base_port: int | None = None,
        broker_ids: Sequence[int] | None = None,
        start_timeout: float = START_TIMEOUT_S,
        stop_timeout: float = STOP_TIMEOUT_S,
        wait_for_members: bool = True,
        listeners: Sequence[str] = (),
    ) -> None:
        ids = list(broker_ids) if broker_ids is not None else list(range(1, brokers + 1))
        if not ids or len(set(ids)) != len(ids):
            raise ValueError(f"broker ids must be distinct and at least one: {ids}")
        self._ids = ids
        self._given_zookeeper = zookeeper
        self._chroot = chroot
        self.config = {key: _config_text(value) for key, value in (config or {}).items()}
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self._base_port = base_port
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.wait_for_members = wait_for_members
        # Listener names each broker serves besides PLAINTEXT (which stays inter-broker),
        # on ports of their own: e.g. ("SASL_PLAINTEXT",).
        self.extra_listener_names = [name.upper() for name in listeners]
        self.zookeeper_server: ZooKeeperServer | None = None
        self.zookeeper_connect = ""  # with the chroot: what brokers get as zookeeper.connect
        self.zookeeper_hosts = ""  # without it
        self.chroot = ""  # "" for the root
        self.data_dir: Path | None = None
        self._brokers: dict[int, BrokerProcess] = {}
        self._started = False

    # -- start and stop the whole cluster -----------------------------------------------------
    def start(self) -> Cluster:
        """Start ZooKeeper (unless given) and every broker; wait until they form the cluster."""
        if self._started:
            raise ClusterError("cluster already started")
        self._started = True
        try:
            self._start()
        except BaseException:
            self.close(keep_data=True)
            raise
        return self

    def _start(self) -> None:
        if self._given_data_dir is not None:
            self.data_dir = self._given_data_dir
            self.data_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.data_dir = Path(tempfile.mkdtemp(prefix="kbroker-cluster-"))
        given = self._given_zookeeper
        if given is None:
            self.zookeeper_server = ZooKeeperServer(directory=self.data_dir / "zookeeper").start()
            connect, chroot = self.zookeeper_server.connect_string, self._chroot or ""
        else:
            connect = given.connect_string if isinstance(given, ZooKeeperServer) else given
            connect, slash, own_chroot = connect.partition("/")
            chroot = self._chroot or (
                f"/{own_chroot}" if slash else f"/kbroker-{uuid.uuid4().hex[:8]}"
            )
        if chroot and not chroot.startswith("/"):
            chroot = "/" + chroot
        self.zookeeper_hosts = connect
        self.chroot = chroot.rstrip("/")
        self.zookeeper_connect = connect + self.chroot
        flag = _cli_has_broker_id()
        overrides = dict(self.config)
        overrides["zookeeper.connect"] = self.zookeeper_connect
        for index, broker_id in enumerate(self._ids):
            port = self._base_port + index if self._base_port else free_port(HOST)
            self._brokers[broker_id] = BrokerProcess(
                broker_id,
                port=port,
                data_dir=self.data_dir / f"broker-{broker_id}",
                log_path=self.data_dir / f"broker-{broker_id}.log",
                overrides=overrides,
                broker_id_flag=flag,
                extra_listeners={name: free_port(HOST) for name in self.extra_listener_names},
            )
        # All at once: in cluster mode a broker's start-up waits on ZooKeeper, not on the
        # others, and a serial start would multiply the interpreter start-up time by N.
        offsets = {broker_id: b.launch() for broker_id, b in self._brokers.items()}
        for broker_id, broker in self._brokers.items():
            self._wait_started(broker, offsets[broker_id], first_start=True)
        if self.wait_for_members:
            self.wait_until_formed()

    def _wait_started(self, broker: BrokerProcess, offset: int, *, first_start: bool) -> None:
        try:
            broker.wait_ready(offset, self.start_timeout)
        except ClusterError:
            # A free port probed at start may have been taken since by another process:
            # retry on a fresh one, unless the port is fixed (base_port, or a restart).
            taken = "cannot listen" in broker.output_since(offset)
            if not (first_start and taken and self._base_port is None):
                broker.kill()
                raise
            broker.kill()
            broker.port = free_port(HOST)
            broker.extra_listeners = {name: free_port(HOST) for name in broker.extra_listeners}
            broker.wait_ready(broker.launch(), self.start_timeout)

    def close(self, *, keep_data: bool = False) -> None:
        """Kill every broker and the private ZooKeeper; remove a temporary data dir."""
        for broker in self._brokers.values():
            broker.kill()
        if self.zookeeper_server is not None:
            self.zookeeper_server.stop()
            self.zookeeper_server = None
        if self.data_dir is not None and self._given_data_dir is None and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop every broker with SIGTERM at once (each shuts down cleanly), then ZooKeeper."""
        timeout = self.stop_timeout if timeout is None else timeout
        for broker in self._brokers.values():
            broker.signal(signal.SIGTERM)
            if broker.paused:
                broker.signal(signal.SIGCONT)
                broker.paused = False
        deadline = time.monotonic() + timeout
        for broker in self._brokers.values():
            if broker.proc is not None:
                try:
                    broker.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    broker.kill()
        self.close()

    def _leave(self, exc_type: type[BaseException] | None) -> None:
        failed = exc_type is not None and not issubclass(exc_type, KeyboardInterrupt)
        if failed:
            print(self.describe_logs(), file=sys.stderr)
        self.close(keep_data=failed)

    # -- what the cluster looks like ----------------------------------------------------------
    @property
    def broker_ids(self) -> list[int]:
        """Every broker's id (running or not), in start order."""
        return list(self._ids)

    @property
    def running_broker_ids(self) -> list[int]:
        """Ids of the brokers whose process is alive and not paused."""
        return [i for i, b in self._brokers.items() if b.is_running() and not b.paused]

    def broker(self, broker_id: int) -> BrokerProcess:
        """The process handle of one broker."""
        try:
            return self._brokers[broker_id]
        except KeyError:
            raise KeyError(f"no broker {broker_id} in this cluster ({self._ids})") from None

    def address(self, broker_id: int) -> str:
        """``host:port`` of one broker (fixed across restarts)."""
        return self.broker(broker_id).address

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated ``host:port`` of the running brokers (all of them if none runs)."""
        ids = self.running_broker_ids or self._ids
        return ",".join(self.address(i) for i in ids)

    @property
    def log_paths(self) -> dict[int, Path]:
        """Each broker's output file."""
        return {i: b.log_path for i, b in self._brokers.items()}

    def describe_logs(self) -> str:
        """Where each process's output is, one line each."""
        lines = ["kbroker cluster logs:"]
        lines += [f"  broker {i}: {path}" for i, path in self.log_paths.items()]
        if self._given_zookeeper is None and self.data_dir is not None:
            lines.append(f"  zookeeper: {self.data_dir / 'zookeeper' / 'zookeeper.log'}")
        return "\n".join(lines)

    # -- one broker at a time -----------------------------------------------------------------
    def kill(self, broker_id: int) -> None:
        """kill -9 one broker: no controlled shutdown, its ZooKeeper session just expires."""
        self.broker(broker_id).kill()

    def stop(self, broker_id: int, timeout: float | None = None) -> int:
        """SIGTERM one broker and wait for it to exit (controlled shutdown); its exit code."""
        return self.broker(broker_id).stop(self.stop_timeout if timeout is None else timeout)

    def start_broker(self, broker_id: int) -> None:
        """Start a stopped or killed broker again (same id, port and data dir) and wait until
        it is ready and, with ``wait_for_members``, part of the cluster again."""
        self.start_brokers([broker_id])

    def start_brokers(self, broker_ids: Iterable[int]) -> None:
        """Start several stopped or killed brokers at once; see ``start_broker``.

        A killed broker's registration (/brokers/ids/<id>, ephemeral) outlives it until its
        ZooKeeper session expires, and until then a broker with that id is refused at start,
        as in Kafka: so this first waits for the old registration to go.
        """
        brokers = [self.broker(i) for i in broker_ids]
        for broker in brokers:
            if broker.is_running():
                raise ClusterError(f"broker {broker.broker_id} is already running")
        self._wait_unregistered([b.broker_id for b in brokers])
        offsets = {b.broker_id: b.launch() for b in brokers}
        for broker in brokers:
            self._wait_started(broker, offsets[broker.broker_id], first_start=False)
        if self.wait_for_members:
            self.wait_until_formed()

    def _session_timeout_s(self) -> float:
        return int(self.config.get("zookeeper.session.timeout.ms", "18000")) / 1000

    @contextlib.contextmanager
    def zookeeper_client(self, *, chroot: bool = True) -> Iterator[Any]:
        """A started kazoo client, stopped and closed on the way out. On the cluster's chroot
        by default, so paths read as Kafka's tools show them (``/brokers/ids/1``)."""
        from kazoo.client import KazooClient  # kazoo comes with cluster mode only

        hosts = self.zookeeper_connect if chroot else self.zookeeper_hosts
        client = KazooClient(hosts=hosts, timeout=10)
        client.start(timeout=30)
        try:
            yield client
        finally:
            client.stop()
            client.close()

    def _wait_unregistered(self, broker_ids: list[int]) -> None:
        # Connected above the chroot: before the first broker ran it may not exist yet.
        with self.zookeeper_client(chroot=False) as client:
            self.wait_for(
                lambda: (
                    not any(client.exists(f"{self.chroot}/brokers/ids/{i}") for i in broker_ids)
                ),
                self._session_timeout_s() + 30,
                interval=0.1,
                message=f"the old registrations of brokers {broker_ids} to expire",
            )

    def restart(self, broker_id: int) -> None:
        """Stop (SIGTERM, if running) then start one broker on the same port and data dir."""
        self.stop(broker_id)
        self.start_broker(broker_id)

    def pause(self, broker_id: int) -> None:
        """SIGSTOP one broker: alive but silent, like a long GC pause or a hung machine."""
        broker = self.broker(broker_id)
        broker.signal(signal.SIGSTOP)
        broker.paused = broker.is_running()

    def resume(self, broker_id: int) -> None:
        """SIGCONT a paused broker."""
        broker = self.broker(broker_id)
        broker.signal(signal.SIGCONT)
        broker.paused = False

    # -- questions answered by Metadata --------------------------------------------------------
    def metadata(
        self, topics: Iterable[str] | None = None, *, via: int | None = None
    ) -> ClusterMetadata:
        """One broker's Metadata answer (``via``, default the first running broker)."""
        if via is None:
            running = self.running_broker_ids
            if not running:
                raise ClusterError("no running broker to ask")
            via = running[0]
        broker = self.broker(via)
        return fetch_metadata(HOST, broker.port, topics, broker_id=via)

    def leader_of(self, topic: str, partition: int, *, via: int | None = None) -> int:
        """The leader of one partition as a broker sees it (-1: none, or topic unknown)."""
        info = self.metadata([topic], via=via).topics.get(topic, {}).get(partition)
        return info.leader if info is not None else -1

    def partitions(self, topic: str, *, via: int | None = None) -> dict[int, PartitionInfo]:
        """Every partition of ``topic`` (leader, epoch, replicas, ISR) as a broker sees it."""
        return self.metadata([topic], via=via).topics.get(topic, {})

    def coordinator_of(self, key: str, *, key_type: int = 0, via: int | None = None) -> int:
        """The coordinator a broker names for a group (key_type 0) or a transactional id
        (1), by FindCoordinator; -1 while it answers an error (e.g. not available yet)."""
        if via is None:
            running = self.running_broker_ids
            if not running:
                raise ClusterError("no running broker to ask")
            via = running[0]
        error, node = find_coordinator(HOST, self.broker(via).port, key, key_type=key_type)
        return node if error == 0 else -1

    def controller_id(self, *, via: int | None = None) -> int:
        """The controller's broker id as a broker sees it (-1: none known)."""
        return self.metadata([], via=via).controller_id

    def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 30.0,
        *,
        interval: float = 0.1,
        message: str = "",
    ) -> T:
        """Call ``predicate`` until it returns something true, and return that.

        Connection errors while a broker goes away count as not yet; on timeout a
        ClusterError says what was awaited and where the logs are.
        """
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except (OSError, ClusterError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                what = message or getattr(predicate, "__name__", "condition")
                extra = f" (last error: {last_error})" if last_error else ""
                raise ClusterError(
                    f"timed out after {timeout:.1f} s waiting for {what}{extra}\n"
                    + self.describe_logs()
                )
            time.sleep(interval)

    def wait_until_formed(self, timeout: float | None = None) -> None:
        """Wait until every running broker's Metadata lists exactly the running brokers and
        names a controller."""
        running = set(self.running_broker_ids)

        def formed() -> bool:
            for broker_id in running:
                meta = self.metadata([], via=broker_id)
                if set(meta.brokers) != running or meta.controller_id not in running:
                    return False
            return True

        self.wait_for(
            formed,
            self.start_timeout if timeout is None else timeout,
            interval=0.2,
            message=f"brokers {sorted(running)} to see each other and a controller",
        )

    def __repr__(self) -> str:
        return f"Cluster({self.bootstrap_servers}, zookeeper.connect={self.zookeeper_connect})"


def request(
    host: str, port: int, body: Any, version: int, *, timeout: float = METADATA_TIMEOUT_S
) -> Any:
    """Send one Kafka request over a fresh connection (kbroker's codec) and decode the answer."""
    from kbroker.wire.frames import FrameDecoder
    from kbroker.wire.protocol import decode_response, encode_request

    api_key = body.API_KEY
    decoder = FrameDecoder(max_frame_size=64 * 1024 * 1024)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(encode_request(api_key, version, 1, "kbroker-cluster", body))
        frame: bytes | None = None
        while frame is None:
            data = sock.recv(256 * 1024)
            if not data:
                raise ConnectionError(f"broker {host}:{port} closed the connection")
            decoder.feed(data)
            frame = decoder.next_frame()
    return decode_response(api_key, version, frame)[1]


def fetch_metadata(
    host: str,
    port: int,
    topics: Iterable[str] | None = None,
    *,
    broker_id: int = -1,
    timeout: float = METADATA_TIMEOUT_S,
) -> ClusterMetadata:
    """Ask one broker for Metadata (``topics`` None: all topics; never auto-creates)."""
    from kbroker.wire.messages import MetadataRequest

    names = None if topics is None else list(topics)
    body = request(
        host,
        port,
        MetadataRequest(
            topics=None
            if names is None
            else [MetadataRequest.MetadataRequestTopic(name=name) for name in names],
            allow_auto_topic_creation=False,
        ),
        METADATA_VERSION,
        timeout=timeout,
    )
    result = ClusterMetadata(
        broker_id=broker_id,
        brokers={b.node_id: (b.host, b.port, b.rack) for b in body.brokers},
        controller_id=body.controller_id,
        cluster_id=body.cluster_id,
    )
    for topic in body.topics:
        result.topic_errors[topic.name] = topic.error_code
        result.topics[topic.name] = {
            p.partition_index: PartitionInfo(
                topic=topic.name,
                partition=p.partition_index,
                leader=p.leader_id,
                leader_epoch=p.leader_epoch,
                replicas=tuple(p.replica_nodes),
                isr=tuple(p.isr_nodes),
                offline_replicas=tuple(p.offline_replicas),
                error_code=p.error_code,
            )
            for p in topic.partitions
        }
    return result


def find_coordinator(
    host: str, port: int, key: str, *, key_type: int = 0, timeout: float = METADATA_TIMEOUT_S
) -> tuple[int, int]:
    """Ask one broker FindCoordinator for a group (key_type 0) or transactional id (1);
    returns (error code, coordinator's broker id)."""
    from kbroker.wire.messages import FindCoordinatorRequest

    body = request(
        host,
        port,
        FindCoordinatorRequest(key=key, key_type=key_type),
        FIND_COORDINATOR_VERSION,
        timeout=timeout,
    )
    return body.error_code, body.node_id
