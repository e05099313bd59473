"""/metrics: the broker's figures as Prometheus families, named as the JMX exporter names them.

Names follow the common Kafka JMX exporter rules (``kafka.server<type=BrokerTopicMetrics,
name=MessagesInPerSec, topic=t><>Count`` becomes
``kafka_server_brokertopicmetrics_messagesin_total{topic="t"}``), so existing Grafana
dashboards work with few changes. Consumer lag uses kafka_exporter's
``kafka_consumergroup_lag`` with the labels ``group``, ``topic``, ``partition``.

Everything is read at scrape time (a custom collector): the Kafka path only bumps the
plain counters of ``kbroker.stats``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from kbroker.internal_topics import OFFSETS_TOPIC
from kbroker.stats import TIME_BUCKETS_MS, BrokerStats

if TYPE_CHECKING:
    from kbroker.server import Server

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_COORDINATOR_KEY = "kbroker.coordinator"  # kbroker.coordinator.service's state key


@dataclass(frozen=True, slots=True)
class GroupOffset:
    """One committed offset of a group and how far behind the partition's end it is."""

    group: str
    topic: str
    partition: int
    committed: int
    end_offset: int

    @property
    def lag(self) -> int:
        return max(0, self.end_offset - self.committed)


def loaded_coordinators(server: Server) -> list[Any]:
    """The broker's group coordinators; on a single node the one is loaded if groups have
    committed here before (so lag shows right after a restart). In cluster mode only those
    the Kafka path loaded (one per __consumer_offsets partition this broker coordinates)
    are used: a scrape never loads one."""
    from kbroker.coordinator.service import loaded_coordinators as loaded
    from kbroker.coordinator.service import ready_coordinator

    broker = server.broker
    if broker.cluster is not None:
        return loaded(broker)
    if _COORDINATOR_KEY not in broker.state and broker.topics.get(OFFSETS_TOPIC) is None:
        return []
    gc = ready_coordinator(broker)  # None while it loads
    if gc is None:
        return []
    gc.poll()
    return [gc]


def group_coordinator(server: Server, group_id: str) -> Any:
    """The loaded coordinator holding ``group_id`` (on a single node, the one), or None."""
    found = loaded_coordinators(server)
    for gc in found:
        if group_id in gc.offsets.group_ids() or group_id in {g[0] for g in gc.list_groups()}:
            return gc
    return found[0] if server.broker.cluster is None and found else None


def group_offsets(server: Server) -> list[GroupOffset]:
    """Every committed offset of every group coordinated here, with its partition's end
    (the high watermark, which is what a consumer can reach: Kafka's lag definition)."""
    topics = server.broker.topics
    found: list[GroupOffset] = []
    held = [(group, gc) for gc in loaded_coordinators(server) for group in gc.offsets.group_ids()]
    for group, gc in sorted(held, key=lambda held_by: held_by[0]):
        for (topic, index), om in sorted(gc.fetch_offsets(group, None).items()):
            if om is None:
                continue
            partition = topics.partition(topic, index)
            end = partition.log.high_watermark if partition is not None else om.offset
            found.append(GroupOffset(group, topic, index, om.offset, end))
    return found


def group_lag(server: Server) -> dict[str, int]:
    """Total lag per group."""
    lag: dict[str, int] = {}
    for offset in group_offsets(server):
        lag[offset.group] = lag.get(offset.group, 0) + offset.lag
    return lag


class BrokerCollector:
    """A prometheus_client collector over a running ``Server``."""

    def __init__(self, server: Server, stats: BrokerStats) -> None:
        self.server = server
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        yield from self._topic_metrics()
        yield from self._request_metrics()
        yield from self._log_metrics()
        yield from self._group_metrics()
        yield from self._socket_metrics()
        if self.server.broker.cluster is not None:
            yield from self._cluster_metrics()

    def _topic_metrics(self) -> Iterator[Metric]:
        topics = sorted(self.stats.topics.items())
        for field_name, mbean, doc in (
            ("messages_in", "messagesin", "Messages appended"),
            ("bytes_in", "bytesin", "Bytes produced by clients"),
            ("bytes_out", "bytesout", "Bytes fetched by consumers"),
            ("failed_produce", "failedproducerequests", "Failed produce requests"),
            ("failed_fetch", "failedfetchrequests", "Failed fetch requests"),
            ("produce_requests", "totalproducerequests", "Produce requests"),
            ("fetch_requests", "totalfetchrequests", "Fetch requests"),
        ):
            family = CounterMetricFamily(
                f"kafka_server_brokertopicmetrics_{mbean}",
                f"{doc} per topic (BrokerTopicMetrics)",
                labels=["topic"],
            )
            for topic, counters in topics:
                family.add_metric([topic], getattr(counters, field_name))
            yield family

    def _request_metrics(self) -> Iterator[Metric]:
        requests = sorted(self.stats.requests.items())
        count = CounterMetricFamily(
            "kafka_network_requestmetrics_requests",
            "Requests per request name and version (RequestMetrics RequestsPerSec)",
            labels=["request", "version"],
        )
        errors = CounterMetricFamily(
            "kafka_network_requestmetrics_errors",
            "Error codes answered per request name (RequestMetrics ErrorsPerSec)",
            labels=["request", "error"],
        )
        total = HistogramMetricFamily(
            "kafka_network_requestmetrics_totaltimems",
            "Time from reading a request to sending its response, ms (RequestMetrics TotalTimeMs)",
            labels=["request"],
        )
        for name, counters in requests:
            for version, n in sorted(counters.by_version.items()):
                count.add_metric([name, str(version)], n)
            for error, n in sorted(counters.errors.items()):
                errors.add_metric([name, error], n)
            cumulative, buckets = 0, []
            for bound, n in zip((*TIME_BUCKETS_MS, float("inf")), counters.buckets, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            total.add_metric([name], buckets, sum_value=counters.time_sum_ms)
        yield count
        yield errors
        yield total

    def _log_metrics(self) -> Iterator[Metric]:
        # kafka.log<type=Log, name=..., topic=..., partition=...>: one gauge per partition.
        gauges: list[tuple[str, str, Callable[[Any], int]]] = [
            ("size", "Bytes of a partition's log on disk", lambda log: log.size_in_bytes),
            ("logendoffset", "A partition's log end offset", lambda log: log.log_end_offset),
            ("logstartoffset", "A partition's log start offset", lambda log: log.log_start_offset),
            (
                "numlogsegments",
                "A partition's number of segments",
                lambda log: len(log.segment_base_offsets()),
            ),
        ]
        partitions = self.server.broker.topics.all_partitions()
        for name, doc, read in gauges:
            family = GaugeMetricFamily(f"kafka_log_log_{name}", doc, labels=["topic", "partition"])
            for partition in partitions:
                family.add_metric([partition.topic.name, str(partition.index)], read(partition.log))
            yield family

    def _group_metrics(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "kafka_consumergroup_lag",
            "How far a group's committed offset is behind the partition's high watermark",
            labels=["group", "topic", "partition"],
        )
        current = GaugeMetricFamily(
            "kafka_consumergroup_current_offset",
            "A group's committed offset",
            labels=["group", "topic", "partition"],
        )
        total = GaugeMetricFamily(
            "kafka_consumergroup_lag_sum", "A group's total lag", labels=["group"]
        )
        sums: dict[str, int] = {}
        for offset in group_offsets(self.server):
            labels = [offset.group, offset.topic, str(offset.partition)]
            lag.add_metric(labels, offset.lag)
            current.add_metric(labels, offset.committed)
            sums[offset.group] = sums.get(offset.group, 0) + offset.lag
        for group, value in sorted(sums.items()):
            total.add_metric([group], value)
        yield lag
        yield current
        yield total

    def _socket_metrics(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "kafka_server_socket_server_metrics_connection_count",
            "Open client connections",
            labels=["listener"],
        )
        connections.add_metric(["PLAINTEXT"], len(self.server.connections))
        yield connections

    def _cluster_metrics(self) -> Iterator[Metric]:
        cluster = self.server.broker.cluster
        assert cluster is not None
        me = cluster.broker_id
        metadata = cluster.metadata
        live = set(metadata.brokers)
        leaders = under = offline = partitions = 0
        for info in metadata.topics.values():
            for p in info.partitions.values():
                if p.leader < 0 or p.leader not in live:
                    offline += 1
                if p.leader == me:
                    leaders += 1
                    if len(p.isr) < len(p.replicas):
                        under += 1
                if me in p.replicas:
                    partitions += 1
        for name, doc, value in (
            (
                "kafka_server_replicamanager_underreplicatedpartitions",
                "Partitions led here whose ISR is smaller than their replica set",
                under,
            ),
            ("kafka_server_replicamanager_leadercount", "Partitions led here", leaders),
            (
                "kafka_server_replicamanager_partitioncount",
                "Partitions with a replica here",
                partitions,
            ),
            (
                "kafka_controller_kafkacontroller_offlinepartitionscount",
                "Partitions without a live leader",
                offline,
            ),
            (
                "kafka_controller_kafkacontroller_activecontrollercount",
                "1 on the broker that is the controller",
                int(metadata.controller_id == me),
            ),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
        brokers = GaugeMetricFamily("kafka_brokers", "Live brokers in the cluster")
        brokers.add_metric([], len(live))
        yield brokers


def registry_for(server: Server, stats: BrokerStats) -> CollectorRegistry:
    """A registry holding only this broker's collector (several brokers may share a process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(server, stats))  # type: ignore[arg-type]
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)
