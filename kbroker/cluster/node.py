"""One broker's membership of a ZooKeeper cluster: Kafka's ``KafkaServer`` start-up in ZK mode.

``kbroker.server.serve`` creates a ``ClusterNode`` when ``zookeeper.connect`` is set:

1. ``open_zookeeper`` connects (creating a missing chroot, as Kafka's
   ``KafkaZkClient`` does), checks that ``/brokers/ids/<id>`` is free and reads or
   creates ``/cluster/id`` - before anything else is written, so a broker that
   cannot start leaves ZooKeeper as it found it;
2. once the listener is bound, ``ClusterNode.run`` creates the persistent paths,
   registers the broker (ephemeral ``/brokers/ids/<id>``; its czxid is the broker
   epoch), runs the ``Controller`` that every broker runs (it campaigns for
   ``/controller``), follows ``/config/changes`` and re-registers after a lost
   session.

Handlers reach it as ``ctx.broker.cluster``: ``metadata`` (the ``MetadataCache``
fed by UpdateMetadata), ``replicas`` (what LeaderAndIsr/StopReplica made this
broker lead or follow), ``controller`` and ``zk``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from kbroker.cluster import coordinators
from kbroker.cluster.metadata_cache import MetadataCache
from kbroker.cluster.replicas import ReplicaManager
from kbroker.config import BrokerConfig, ConfigError
from kbroker.topics import random_kafka_uuid, uuid_to_base64
from kbroker.wire.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

__all__ = ["ClusterNode", "ClusterStartupError", "open_zookeeper"]

logger = logging.getLogger(__name__)

WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class ClusterStartupError(ConfigError):
    """The broker cannot join its cluster; ``str(error)`` is the one stderr line."""


async def _connect(config: BrokerConfig, connect: str) -> Any:
    from kbroker.cluster.zk import ZkClient, ZkUnavailable

    timeout_ms = config.zookeeper_connection_timeout_ms
    # kazoo warns of every refused attempt; at start-up the one line below says it all.
    kazoo_log = logging.getLogger("kazoo.client")
    level = kazoo_log.level
    kazoo_log.setLevel(logging.ERROR)
    try:
        return await ZkClient.connect(
            connect,
            session_timeout_ms=config["zookeeper.session.timeout.ms"],
            connection_timeout_ms=timeout_ms,
        )
    except ZkUnavailable:
        raise ClusterStartupError(
            f"cannot reach ZooKeeper at {config['zookeeper.connect']} within "
            f"zookeeper.connection.timeout.ms={timeout_ms}"
        ) from None
    finally:
        kazoo_log.setLevel(level)


async def open_zookeeper(config: BrokerConfig) -> tuple[Any, str]:
    """Connect, check the broker id is free, and get the cluster id: (ZkClient, cluster id).

    Raises ClusterStartupError (unreachable ZooKeeper, broker id already registered)
    with nothing written but a missing chroot.
    """
    from kbroker.cluster import znodes

    connect = config["zookeeper.connect"]
    # ZkClient.connect creates a missing chroot (KafkaZkClient.createChrootIfNecessary).
    zk = await _connect(config, connect)
    try:
        broker_id = config.node_id
        if await zk.exists(znodes.broker_path(broker_id)) is not None:
            raise ClusterStartupError(
                f"broker id {broker_id} is already registered in ZooKeeper at {connect} "
                f"({znodes.broker_path(broker_id)} exists): another broker is using it"
            )
        cluster_id = await _get_or_create_cluster_id(zk)
    except BaseException:
        await zk.close()
        raise
    return zk, cluster_id


async def _get_or_create_cluster_id(zk: Any) -> str:
    """/cluster/id, created with a new id by the first broker (KafkaServer.getOrGenerateClusterId)."""
    from kbroker.cluster import znodes
    from kbroker.cluster.zk import NodeExists

    stat = await zk.exists(znodes.CLUSTER_ID)
    if stat is not None:
        data, _ = await zk.get(znodes.CLUSTER_ID)
        return znodes.decode_cluster_id(data)
    cluster_id = uuid_to_base64(random_kafka_uuid())
    try:
        await zk.create(znodes.CLUSTER_ID, znodes.encode_cluster_id(cluster_id), makepath=True)
        logger.info("new cluster id %s written to ZooKeeper", cluster_id)
        return cluster_id
    except NodeExists:  # another broker was first
        data, _ = await zk.get(znodes.CLUSTER_ID)
        return znodes.decode_cluster_id(data)


@dataclass(frozen=True, slots=True)
class _TxnMarkers:
    """The COMMIT/ABORT markers of one transaction bound for partitions other brokers
    lead (Kafka's TxnMarkerEntry)."""

    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: tuple[tuple[str, int], ...]
    coordinator_epoch: int


class ClusterNode:
    """This broker's place in the cluster (``ctx.broker.cluster``)."""

    def __init__(
        self, broker: BrokerState, zk: Any, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.broker = broker
        self.zk = zk
        self.clock = clock
        self.broker_id = broker.node_id
        self.broker_epoch = -1
        self.metadata = MetadataCache()
        self.replicas = ReplicaManager(
            broker, config_source=self.topic_configs, partition_count=self._partition_count
        )
        self.replicas.on_leadership_change(
            lambda topic, index, leads: coordinators.unload(self, topic, index, leads)
        )
        self.controller: Any = None
        self.registered = trio.Event()
        self._nursery: trio.Nursery | None = None

    def _partition_count(self, topic: str) -> int:
        info = self.metadata.topic(topic)
        return 0 if info is None else len(info.partitions)

    # --- identity ---------------------------------------------------------------------

    def endpoint(self, listener_name: str | None = None) -> tuple[str, int]:
        """The (host, port) other brokers (or clients of ``listener_name``) reach us at."""
        config = self.broker.config
        name = listener_name or config.inter_broker_listener_name
        listener = next((x for x in config.listeners if x.name == name), config.listener)
        advertised = config.advertised_for(listener.name)
        bound = self.broker.listen_addresses.get(listener.name) or (
            self.broker.listen_address
            if listener is config.listener and self.broker.listen_address
            else (listener.host, listener.port)
        )
        if advertised is not None:
            host = advertised.host or bound[0]
            port = advertised.port
        else:
            host, port = bound
        if host in WILDCARD_HOSTS:
            host = socket.getfqdn()
        return host, port

    async def register(self) -> None:
        """Create the ephemeral /brokers/ids/<id> (BrokerIdZNode v5) listing every listener
        (ZkData's BrokerIdZNode.encode); the czxid is our epoch."""
        from kbroker.cluster import znodes
        from kbroker.cluster.zk import NodeExists

        config = self.broker.config
        try:
            self.metadata.inter_broker_listener = config.inter_broker_listener_name
        except ValueError as exc:
            raise ClusterStartupError(str(exc)) from None
        endpoints: list[str] = []
        protocols: dict[str, str] = {}
        for listener in config.listeners:
            host, port = self.endpoint(listener.name)
            shown = f"[{host}]" if ":" in host else host
            endpoints.append(f"{listener.name}://{shown}:{port}")
            protocols[listener.name] = config.security_protocol(listener.name)
        # Kafka fills the legacy host/port fields from the PLAINTEXT listener only
        # (null/-1 without one); readers then take the first endpoint.
        plain = next((n for n, p in protocols.items() if p == "PLAINTEXT"), None)
        host, port = self.endpoint(plain) if plain is not None else ("", -1)
        registration = znodes.BrokerRegistration(
            broker_id=self.broker_id,
            host=host,
            port=port,
            endpoints=tuple(endpoints),
            listener_security_protocol_map=protocols,
            rack=self.broker.config["broker.rack"],
            timestamp_ms=int(self.clock() * 1000),
        )
        path = znodes.broker_path(self.broker_id)
        try:
            await self.zk.create(path, registration.encode(), ephemeral=True)
        except NodeExists:
            raise ClusterStartupError(
                f"broker id {self.broker_id} is already registered in ZooKeeper "
                f"({path} exists): another broker is using it"
            ) from None
        stat = await self.zk.exists(path)
        self.broker_epoch = int(stat.czxid) if stat is not None else -1
        logger.info(
            "registered broker %d at %s:%d in ZooKeeper (broker epoch %d)",
            self.broker_id,
            host,
            port,
            self.broker_epoch,
        )
        self.registered.set()

    # --- running ------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Register, run the controller and the watchers until cancelled."""
        from kbroker import quotas_zk
        from kbroker.authz.checks import authorizer_of
        from kbroker.cluster import znodes
        from kbroker.cluster.controller import Controller
        from kbroker.quotas import quota_manager
        from kbroker.security import scram_zk
        from kbroker.security.scram import scram_store

        for path in znodes.PERSISTENT_PATHS:
            await self.zk.ensure_path(path)
        from kbroker.replication.fetcher import FetcherConfig, ReplicaFetcherManager

        config = self.broker.config
        fetchers = ReplicaFetcherManager(
            broker_id=self.broker_id,
            config=FetcherConfig.from_broker_config(config),
            on_append=self.broker.notify_append,
        )
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(fetchers.run)
            # Followers copy their leaders from now on (kbroker.replication). Set before
            # registering: the controller's LeaderAndIsr can arrive as soon as the
            # registration is seen, and a follower made without its fetcher never fetches.
            self.replicas.fetchers = fetchers
            self.replicas.endpoint_of = self._endpoint_of
            self.replicas.isr_writer = self._write_isr
            nursery.start_soon(self._expire_isr, config["replica.lag.time.max.ms"] / 2000)
            await self.register()
            self.controller = Controller(
                self.zk, broker_id=self.broker_id, config=self.broker.config, clock=self.clock
            )
            await nursery.start(self.controller.run)
            nursery.start_soon(self._follow_config_changes)
            authorizer = authorizer_of(self.broker)
            if authorizer is not None:
                # Every broker enforces the ACLs kept in ZooKeeper (kbroker.authz.zk): read
                # them all before the broker reports ready, as AclAuthorizer.configure does.
                await authorizer.ensure_loaded()
                nursery.start_soon(authorizer.follow_changes, self.zk)
            # Client quotas live in ZooKeeper too; changes arrive in /config/changes.
            await quotas_zk.load_all(self.zk, quota_manager(self.broker))
            # SCRAM credentials too, in the same /config/users znodes (kbroker.security).
            await scram_zk.load_all(self.zk, scram_store(self.broker))
            nursery.start_soon(self._keep_registered)
            task_status.started(self)

    async def _keep_registered(self) -> None:
        """After a lost session the ephemeral registration is gone: make it again."""
        from kbroker.cluster import znodes
        from kbroker.cluster.zk import SessionState

        async for event in self.zk.session_events():
            if event != SessionState.CONNECTED:
                continue
            if await self.zk.exists(znodes.broker_path(self.broker_id)) is None:
                logger.info("ZooKeeper session re-established: registering broker again")
                try:
                    await self.register()
                except Exception:
                    logger.exception("re-registering broker %d failed", self.broker_id)

    async def _follow_config_changes(self) -> None:
        """Apply topic config changes other brokers announce in /config/changes
        (Kafka's ZkConfigManager / ConfigChangeListener)."""
        from kbroker.cluster import znodes

        seen: set[str] | None = None
        async for children in await self.zk.watch_children(znodes.CONFIG_CHANGES):
            names = set(children or [])
            if seen is None:
                seen = names  # existing notifications are read with each topic
                continue
            for child in sorted(names - seen):
                try:
                    data, _ = await self.zk.get(f"{znodes.CONFIG_CHANGES}/{child}")
                    entity = znodes.decode_config_change(data)
                except Exception:  # noqa: BLE001 - deleted meanwhile or malformed
                    continue
                kind, _, name = entity.partition("/")
                if kind == "topics" and name:
                    await self.apply_topic_configs(name)
                elif kind in ("users", "clients") and name:
                    await self._apply_quota_change(entity)
                    if kind == "users":
                        await self._apply_scram_change(entity)
            seen = names

    async def topic_configs(self, topic: str) -> dict[str, str]:
        """The topic's config overrides in /config/topics/<t> ({} if none)."""
        from kbroker.cluster import admin_zk

        if self.zk is None:  # driven by controller requests alone (tests)
            return dict(self.topic_config_cache.get(topic, {}))
        return await admin_zk.read_topic_config(self.zk, topic)

    async def _apply_scram_change(self, entity_path: str) -> None:
        """Re-read the SCRAM credentials of a user another broker changed."""
        from kbroker.security import scram_zk
        from kbroker.security.scram import scram_store

        try:
            await scram_zk.reload_user(self.zk, scram_store(self.broker), entity_path)
        except Exception:  # noqa: BLE001 - malformed or deleted meanwhile
            logger.warning("ignoring unreadable SCRAM credential change for %s", entity_path)

    async def _apply_quota_change(self, entity_path: str) -> None:
        """Re-read a user / client quota entity another broker changed."""
        from kbroker import quotas_zk
        from kbroker.quotas import quota_manager

        try:
            await quotas_zk.reload(self.zk, quota_manager(self.broker), entity_path)
        except Exception:  # noqa: BLE001 - malformed or deleted meanwhile
            logger.warning("ignoring unreadable quota change for %s", entity_path)

    async def apply_topic_configs(self, topic: str) -> None:
        """Read a topic's configs from ZooKeeper into the local copy, if hosted here."""
        configs = await self.topic_configs(topic)
        self.topic_config_cache[topic] = configs
        if self.broker.topics.get(topic) is not None:
            try:
                self.broker.topics.set_configs(topic, configs)
            except Exception:
                logger.exception("cannot apply the configs of topic %s", topic)

    @property
    def topic_config_cache(self) -> dict[str, dict[str, str]]:
        """Configs last read per topic (for topics this broker does not host)."""
        return self.broker.state.setdefault("kbroker.cluster.topic_configs", {})

    # --- replication ------------------------------------------------------------------

    def _endpoint_of(self, broker_id: int) -> tuple[str, int] | None:
        info = self.metadata.brokers.get(broker_id)
        return None if info is None else (info.host, info.port)

    async def _expire_isr(self, interval_s: float) -> None:
        """Kafka's isr-expiration task: every replica.lag.time.max.ms / 2."""
        while True:
            await trio.sleep(interval_s)
            try:
                self.replicas.shrink_isrs()
            except Exception:
                logger.exception("ISR expiration failed")

    def _write_isr(self, topic: str, index: int, isr: tuple[int, ...]) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._persist_isr, topic, index, isr)
        else:
            self.replicas.isr_change_done(topic, index, isr, None)

    async def _persist_isr(self, topic: str, index: int, isr: tuple[int, ...]) -> None:
        """Write the leader's new ISR to the partition's state znode, conditional on the
        version the controller gave (a controller's newer write wins), then tell the
        controller through /isr_change_notification (ZK-mode Partition.updateIsr).
        The partition acts on the new ISR only once the write succeeded."""
        from kbroker.cluster import znodes
        from kbroker.cluster.zk import BadVersion

        version: int | None = None
        try:
            state = self.replicas.states.get((topic, index))
            if state is None or state.leader != self.broker_id:
                return
            new = znodes.PartitionState(
                leader=self.broker_id,
                leader_epoch=state.leader_epoch,
                isr=isr,
                controller_epoch=state.controller_epoch,
            )
            try:
                stat = await self.zk.set(
                    znodes.partition_state_path(topic, index),
                    new.encode(),
                    version=state.zk_version,
                )
            except BadVersion:
                logger.info(
                    "ISR of %s-%d changed in ZooKeeper meanwhile; not written", topic, index
                )
                await self._adopt_partition_state(topic, index)
                return
            except Exception:
                logger.exception("cannot write the ISR of %s-%d", topic, index)
                return
            version = stat.version
        finally:
            self.replicas.isr_change_done(topic, index, isr, version)
        logger.info("ISR of %s-%d is now %s", topic, index, list(isr))
        try:
            await self.zk.create(
                f"{znodes.ISR_CHANGE_NOTIFICATION}/{znodes.ISR_CHANGE_PREFIX}",
                znodes.encode_partition_list([(topic, index)]),
                sequence=True,
            )
        except Exception:
            logger.exception("cannot notify the ISR change of %s-%d", topic, index)

    async def _adopt_partition_state(self, topic: str, index: int) -> None:
        """After a refused ISR write: when ZooKeeper's state still names this broker leader
        at its epoch, take its ISR and version, as the LeaderAndIsr carrying them would do,
        so the next change is computed from it instead of failing on the version forever."""
        from kbroker.cluster import znodes

        try:
            data, stat = await self.zk.get(znodes.partition_state_path(topic, index))
            current = znodes.PartitionState.decode(data, stat.version)
        except Exception:  # noqa: BLE001 - the next LeaderAndIsr sets it anyway
            logger.exception("cannot read the state of %s-%d", topic, index)
            return
        state = self.replicas.states.get((topic, index))
        partition = self.broker.topics.partition(topic, index)
        if (
            state is None
            or current.leader != self.broker_id
            or current.leader_epoch != state.leader_epoch
            or stat.version <= state.zk_version
        ):
            return
        state.isr = tuple(current.isr)
        state.zk_version = stat.version
        if partition is not None and partition.replica is not None:
            partition.replica.make_leader(
                leader_epoch=state.leader_epoch, isr=state.isr, replicas=state.replicas
            )
        logger.info("ISR of %s-%d taken from ZooKeeper: %s", topic, index, list(state.isr))

    # --- transaction markers for partitions led elsewhere ------------------------------

    def send_txn_markers(
        self,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        partitions: list[tuple[str, int]],
        coordinator_epoch: int,
        *,
        on_done: Callable[[ErrorCode], None] | None = None,
        abandoned: Callable[[], bool] | None = None,
    ) -> None:
        """Have the leaders of ``partitions`` write a COMMIT/ABORT marker (in the background);
        ``on_done`` hears NONE once every one was written (and replicated there), else why
        not (``_send_txn_markers``). Once ``abandoned()`` is true (the coordinator was
        unloaded) no marker is sent any more: Kafka's TransactionMarkerChannelManager
        .removeMarkersForTxnTopicPartition."""
        if self._nursery is None:
            logger.warning("no cluster task to send transaction markers for %s", partitions)
            if on_done is not None:
                on_done(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            return
        markers = _TxnMarkers(
            producer_id, producer_epoch, commit, tuple(partitions), coordinator_epoch
        )
        self._nursery.start_soon(self._deliver_txn_markers, markers, on_done, abandoned)

    async def _deliver_txn_markers(
        self,
        markers: _TxnMarkers,
        on_done: Callable[[ErrorCode], None] | None,
        abandoned: Callable[[], bool] | None = None,
    ) -> None:
        """Send WriteTxnMarkers to each partition's current leader until all are written
        (a partition deleted meanwhile is dropped, as Kafka does), then tell ``on_done``.

        The leaders answer once the marker is in the partition's ISR (acks=all); any
        other error (NOT_ENOUGH_REPLICAS, a moved leader) is retried, but
        TRANSACTION_COORDINATOR_FENCED ends the sending unfinished: a coordinator with a
        newer epoch owns the transaction now."""
        try:
            result = await self._send_txn_markers(markers, abandoned)
        except Exception:  # noqa: BLE001 - reported to the coordinator, which retries
            logger.exception("delivering transaction markers failed")
            result = ErrorCode.COORDINATOR_NOT_AVAILABLE
        if on_done is not None:
            try:
                on_done(result)
            except Exception:  # a cluster task must not end the node
                logger.exception("completing a transaction's markers failed")

    async def _send_txn_markers(
        self, markers: _TxnMarkers, abandoned: Callable[[], bool] | None = None
    ) -> ErrorCode:
        """The delivery loop of ``_deliver_txn_markers``: NONE once every marker is
        written; REQUEST_TIMED_OUT if they are not within transaction.max.timeout.ms,
        NOT_COORDINATOR if they were abandoned, TRANSACTION_COORDINATOR_FENCED if a leader
        fenced them."""
        from kbroker.txn.service import MARKER_ACKS_TIMEOUT_S, write_markers
        from kbroker.wire.messages import WriteTxnMarkersRequest

        pending = set(markers.partitions)
        deadline = trio.current_time() + self.broker.config["transaction.max.timeout.ms"] / 1000
        while pending and trio.current_time() < deadline:
            if abandoned is not None and abandoned():
                logger.info(
                    "transaction markers of producer %d to %s dropped: the coordinator was "
                    "unloaded, its successor sends them",
                    markers.producer_id,
                    sorted(pending),
                )
                return ErrorCode.NOT_COORDINATOR
            by_leader: dict[int, list[tuple[str, int]]] = {}
            for tp in sorted(pending):
                if self.metadata.partition(*tp) is None:
                    pending.discard(tp)  # deleted
                    continue
                leader = self.metadata.leader_of(*tp)
                if leader is not None:
                    by_leader.setdefault(leader, []).append(tp)
            for leader, tps in by_leader.items():
                if leader == self.broker_id:
                    local = [tp for tp in tps if self.replicas.is_leader(*tp)]
                    if local:
                        outcome: list[ErrorCode] = []
                        replicated = trio.Event()

                        def local_done(
                            result: ErrorCode,
                            _box: list[ErrorCode] = outcome,
                            _event: trio.Event = replicated,
                        ) -> None:
                            _box.append(result)
                            _event.set()

                        refused = write_markers(
                            self.broker,
                            markers.producer_id,
                            markers.producer_epoch,
                            markers.commit,
                            local,
                            coordinator_epoch=markers.coordinator_epoch,
                            on_written=local_done,
                        )
                        await replicated.wait()
                        if ErrorCode.TRANSACTION_COORDINATOR_FENCED in refused.values():
                            return self._fenced(markers, pending)
                        # INVALID_PRODUCER_EPOCH: the producer moved on, as answered below.
                        pending.difference_update(refused)
                        if outcome[0] == ErrorCode.NONE:
                            pending.difference_update(local)
                    continue
                topics: dict[str, list[int]] = {}
                for topic, index in tps:
                    topics.setdefault(topic, []).append(index)
                request = WriteTxnMarkersRequest(
                    markers=[
                        WriteTxnMarkersRequest.WritableTxnMarker(
                            producer_id=markers.producer_id,
                            producer_epoch=markers.producer_epoch,
                            transaction_result=markers.commit,
                            topics=[
                                WriteTxnMarkersRequest.WritableTxnMarkerTopic(
                                    name=t, partition_indexes=indexes
                                )
                                for t, indexes in topics.items()
                            ],
                            coordinator_epoch=markers.coordinator_epoch,
                        )
                    ]
                )
                info = self.metadata.brokers[leader]
                try:
                    # The leader answers once its ISR has the markers (acks=all).
                    with trio.fail_after(MARKER_ACKS_TIMEOUT_S + 10):
                        response = await request_once(info.host, info.port, request, version=1)
                except (OSError, trio.TooSlowError, ConnectionError) as exc:
                    logger.info("transaction markers to broker %d: %s; retrying", leader, exc)
                    continue
                fenced = False
                for marker in response.markers:
                    for t in marker.topics:
                        for p in t.partitions:
                            if p.error_code in (
                                ErrorCode.NONE,
                                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                ErrorCode.INVALID_PRODUCER_EPOCH,
                            ):
                                pending.discard((t.name, p.partition_index))
                            elif p.error_code == ErrorCode.TRANSACTION_COORDINATOR_FENCED:
                                fenced = True
                if fenced:
                    return self._fenced(markers, pending)
            if pending:
                await trio.sleep(0.2)
        if pending:
            logger.warning(
                "transaction markers of producer %d never reached %s",
                markers.producer_id,
                sorted(pending),
            )
            return ErrorCode.REQUEST_TIMED_OUT
        return ErrorCode.NONE

    @staticmethod
    def _fenced(markers: _TxnMarkers, pending: set[tuple[str, int]]) -> ErrorCode:
        """A leader refused a marker with TRANSACTION_COORDINATOR_FENCED: the producer's
        last marker there came from a coordinator of a newer epoch, which owns the
        transaction now. As Kafka's TransactionMarkerRequestCompletionHandler, no more
        marker is sent, and the coordinator hears it."""
        logger.info(
            "transaction markers of producer %d at coordinator epoch %d fenced by a newer "
            "coordinator; not sent to %s",
            markers.producer_id,
            markers.coordinator_epoch,
            sorted(pending),
        )
        return ErrorCode.TRANSACTION_COORDINATOR_FENCED

    # --- controlled shutdown --------------------------------------------------------------

    async def controlled_shutdown(self) -> bool:
        """Ask the controller to move leadership off this broker (Kafka's
        KafkaServer.controlledShutdown): retried up to controlled.shutdown.max.retries
        times; True once no partition is left to move."""
        from kbroker.wire.errors import ErrorCode
        from kbroker.wire.messages import ControlledShutdownRequest

        config = self.broker.config
        attempts = config["controlled.shutdown.max.retries"]
        backoff_s = config["controlled.shutdown.retry.backoff.ms"] / 1000.0
        timeout_s = config["controller.socket.timeout.ms"] / 1000.0
        for attempt in range(max(1, attempts)):
            controller_id = self.metadata.controller_id
            remaining: list[Any] | None = None
            with trio.move_on_after(timeout_s):
                try:
                    if self.controller is not None and self.controller.is_active:
                        remaining = list(
                            await self.controller.controlled_shutdown(
                                self.broker_id, self.broker_epoch
                            )
                        )
                    else:
                        target = self.metadata.brokers.get(controller_id)
                        if target is not None:
                            response = await request_once(
                                target.host,
                                target.port,
                                ControlledShutdownRequest(
                                    broker_id=self.broker_id, broker_epoch=self.broker_epoch
                                ),
                                version=3,
                            )
                            if response.error_code == ErrorCode.NONE:
                                remaining = list(response.remaining_partitions)
                except Exception as exc:  # noqa: BLE001 - retried, then we stop anyway
                    logger.info("controlled shutdown attempt %d failed: %s", attempt + 1, exc)
            if remaining is not None and not remaining:
                logger.info("controlled shutdown complete: no partition led here any more")
                return True
            logger.info(
                "controlled shutdown attempt %d: %s partition(s) still led here",
                attempt + 1,
                "some" if remaining is None else len(remaining),
            )
            await trio.sleep(backoff_s)
        logger.warning("controlled shutdown did not complete; stopping anyway")
        return False

    async def close(self) -> None:
        """Close the ZooKeeper session (the registration goes with it)."""
        try:
            await self.zk.close()
        except Exception:
            logger.exception("closing the ZooKeeper session")


async def request_once(host: str, port: int, body: Any, *, version: int) -> Any:
    """Send one request to a broker on a fresh connection and return the response body."""
    from kbroker.wire.frames import FrameDecoder
    from kbroker.wire.protocol import decode_response, encode_request

    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(encode_request(body.API_KEY, version, 1, "kbroker-broker", body))
        decoder = FrameDecoder(max_frame_size=2**31 - 1)
        while True:
            frame = decoder.next_frame()
            if frame is not None:
                return decode_response(body.API_KEY, version, frame)[1]
            data = await stream.receive_some(65536)
            if not data:
                raise ConnectionError(f"{host}:{port} closed the connection")
            decoder.feed(data)
