"""ApiVersions, Metadata and DescribeCluster answer as a one-node Kafka cluster would."""

from __future__ import annotations

import struct
import uuid

import pytest
import trio

from kbroker.handlers import RELEASED_SINCE_DEFINITIONS, advertised_versions, load_handlers
from kbroker.handlers.meta import CLUSTER_OPERATIONS, TOPIC_OPERATIONS
from kbroker.topics import uuid_to_base64
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ApiVersionsRequest,
    DescribeClusterRequest,
    MetadataRequest,
)
from kbroker.wire.protocol import STABLE, decode_response
from tests.kbroker.conftest import RawClient

OMITTED = -2147483648
T = MetadataRequest.MetadataRequestTopic


def _topics(*names: str) -> list:
    return [T(name=n) for n in names]


# --- ApiVersions ------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(0, 5))
async def test_api_versions_lists_exactly_what_is_served(server, version: int) -> None:
    client = await server.connect()
    response = await client.request(
        ApiVersionsRequest(client_software_name="kbroker-tests", client_software_version="1.0"),
        version=version,
    )
    assert response.error_code == ErrorCode.NONE
    listed = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    registry = load_handlers()
    expected = {}
    for key, reg in registry.items():
        if key in STABLE:
            low = max(reg.min_version, STABLE[key][0])
            high = min(reg.max_version, RELEASED_SINCE_DEFINITIONS.get(key, STABLE[key][1]))
            if low <= high:
                expected[key] = (low, high)
    assert listed == expected == advertised_versions()
    assert listed[18] == (0, 4) and listed[3] == (0, 12) and listed[60] == (0, 1)
    # EndTxn v5 is still unstable: never advertised. ConsumerGroupHeartbeat v1 was released
    # with Kafka 4.0 (KIP-848 GA) and librdkafka needs it.
    assert listed[26][1] <= 4
    assert listed[68] == (0, 1)


async def test_api_versions_rejects_invalid_software_name(server) -> None:
    client = await server.connect()
    response = await client.request(
        ApiVersionsRequest(client_software_name="bad name!", client_software_version="1"), version=3
    )
    assert response.error_code == ErrorCode.INVALID_REQUEST


def _api_versions_frame(version: int, correlation_id: int) -> bytes:
    # Request header v2 (ClientId is a classic string, then an empty tagged-field section),
    # and an empty flexible body, as a client newer than us would send (KIP-511).
    client_id = b"future-client"
    payload = (
        struct.pack(">hhih", 18, version, correlation_id, len(client_id))
        + client_id
        + b"\x00"
        + b"\x00"
    )
    return struct.pack(">i", len(payload)) + payload


async def test_too_new_api_versions_gets_unsupported_version_and_keeps_connection(server) -> None:
    client = await server.connect()
    await client.send_raw(_api_versions_frame(99, 4242))
    frame = await client.receive_raw()
    assert frame is not None
    correlation_id, body = decode_response(18, 0, frame)
    assert correlation_id == 4242
    assert body.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert [(k.api_key, k.min_version, k.max_version) for k in body.api_keys] == [(18, 0, 4)]
    # The client retries with a version we know, on the same connection.
    again = await client.request(ApiVersionsRequest(), version=0)
    assert again.error_code == ErrorCode.NONE and len(again.api_keys) > 3


# --- Metadata ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(0, 13))
async def test_metadata_every_version(server, version: int) -> None:
    server.broker.topics.create("orders", 2)
    client = await server.connect()
    response = await client.request(MetadataRequest(topics=_topics("orders")), version=version)
    [broker] = response.brokers
    assert (broker.node_id, broker.host, broker.port) == (1, *server.address)
    if version >= 1:
        assert response.controller_id == 1
    if version >= 2:
        assert response.cluster_id == server.broker.cluster_id
    [topic] = response.topics
    assert topic.error_code == ErrorCode.NONE and topic.name == "orders"
    if version >= 10:
        assert topic.topic_id == server.broker.topics.get("orders").topic_id
    assert [p.partition_index for p in topic.partitions] == [0, 1]
    for partition in topic.partitions:
        assert partition.error_code == ErrorCode.NONE
        assert partition.leader_id == 1
        assert partition.replica_nodes == [1] and partition.isr_nodes == [1]
        if version >= 7:
            assert partition.leader_epoch == 0
        if version >= 5:
            assert partition.offline_replicas == []
    if version >= 8:
        assert topic.topic_authorized_operations == OMITTED


async def test_cluster_id_is_generated_once_and_persisted(make_server, tmp_path) -> None:
    data = tmp_path / "persisted"
    first = await make_server(log_dirs=str(data))
    cluster_id = first.broker.cluster_id
    assert len(cluster_id) == 22
    meta = (data / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}" in meta and "node.id=1" in meta and "version=1" in meta
    await first.stop()
    second = await make_server(log_dirs=str(data))
    assert second.broker.cluster_id == cluster_id
    client = await second.connect()
    response = await client.request(MetadataRequest(topics=[]))
    assert response.cluster_id == cluster_id


async def test_all_topics_none_and_v0_empty_list(server) -> None:
    for name in ("a", "b"):
        server.broker.topics.create(name, 1)
    client = await server.connect()
    everything = await client.request(MetadataRequest(topics=None), version=1)
    assert sorted(t.name for t in everything.topics) == ["a", "b"]
    nothing = await client.request(MetadataRequest(topics=[]), version=12)
    assert nothing.topics == []
    v0_all = await client.request(MetadataRequest(topics=[]), version=0)
    assert sorted(t.name for t in v0_all.topics) == ["a", "b"]
    assert server.broker.topics.get("") is None


async def test_auto_creation_uses_num_partitions(make_server) -> None:
    server = await make_server(num_partitions=3)
    client = await server.connect()
    response = await client.request(MetadataRequest(topics=_topics("fresh")))
    [topic] = response.topics
    assert topic.error_code == ErrorCode.NONE
    assert len(topic.partitions) == 3
    assert server.broker.topics.get("fresh") is not None
    assert topic.topic_id == server.broker.topics.get("fresh").topic_id


async def test_no_auto_creation_when_client_or_broker_says_no(make_server) -> None:
    server = await make_server()
    client = await server.connect()
    response = await client.request(
        MetadataRequest(topics=_topics("nope"), allow_auto_topic_creation=False)
    )
    assert response.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert server.broker.topics.get("nope") is None

    off = await make_server(auto_create_topics_enable=False)
    client = await off.connect()
    response = await client.request(MetadataRequest(topics=_topics("nope")))
    assert response.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert response.topics[0].partitions == []
    assert off.broker.topics.get("nope") is None


async def test_v3_always_auto_creates(server) -> None:
    # allow_auto_topic_creation is only on the wire from v4; before that it is implied.
    client = await server.connect()
    response = await client.request(MetadataRequest(topics=_topics("old-client")), version=3)
    assert response.topics[0].error_code == ErrorCode.NONE


async def test_descriptors_are_counted_only_when_a_topic_is_created(
    server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every producer's first Metadata names its topics; counting the open descriptors
    # (a listing of /proc/self/fd) and the hosted partitions is for auto-creation only.
    from kbroker import partition_limits

    counted: list[int] = []
    real = partition_limits._open_fds

    def counting() -> int | None:
        counted.append(1)
        return real()

    monkeypatch.setattr(partition_limits, "_open_fds", counting)
    server.broker.topics.create("known", 2)
    client = await server.connect()
    response = await client.request(MetadataRequest(topics=_topics("known", "known")))
    assert [t.error_code for t in response.topics] == [ErrorCode.NONE]
    assert counted == []
    response = await client.request(MetadataRequest(topics=_topics("known", "new-1", "new-2")))
    assert [t.error_code for t in response.topics] == [ErrorCode.NONE] * 3
    assert server.broker.topics.get("new-2") is not None
    # Once per request, however many names it creates.
    assert counted == [1]


@pytest.mark.parametrize("auto", [True, False])
async def test_invalid_topic_names(make_server, auto: bool) -> None:
    server = await make_server(auto_create_topics_enable=auto)
    client = await server.connect()
    response = await client.request(MetadataRequest(topics=_topics("bad name", "x" * 250, "ok")))
    codes = [t.error_code for t in response.topics]
    assert codes[:2] == [ErrorCode.INVALID_TOPIC_EXCEPTION] * 2
    assert codes[2] == (ErrorCode.NONE if auto else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    assert set(server.broker.topics.topics) == ({"ok"} if auto else set())


async def test_internal_topic_is_flagged(make_server) -> None:
    server = await make_server(offsets_topic_num_partitions=2)
    client = await server.connect()
    response = await client.request(MetadataRequest(topics=_topics("__consumer_offsets")))
    [topic] = response.topics
    assert topic.error_code == ErrorCode.NONE and topic.is_internal
    assert len(topic.partitions) == 2


async def test_authorized_operations_when_asked(server) -> None:
    server.broker.topics.create("t", 1)
    client = await server.connect()
    response = await client.request(
        MetadataRequest(
            topics=_topics("t"),
            include_topic_authorized_operations=True,
            include_cluster_authorized_operations=True,
        ),
        version=10,
    )
    assert response.topics[0].topic_authorized_operations == TOPIC_OPERATIONS
    assert response.cluster_authorized_operations == CLUSTER_OPERATIONS


async def test_topic_ids_in_v12_and_rejected_before(server) -> None:
    topic = server.broker.topics.create("by-id", 1)
    client = await server.connect()
    unknown = uuid.uuid4()
    response = await client.request(
        MetadataRequest(
            topics=[T(topic_id=topic.topic_id, name=None), T(topic_id=unknown, name=None)]
        ),
        version=12,
    )
    found, missing = response.topics
    assert (found.error_code, found.name) == (ErrorCode.NONE, "by-id")
    assert (missing.error_code, missing.name, missing.topic_id) == (
        ErrorCode.UNKNOWN_TOPIC_ID,
        None,
        unknown,
    )
    response = await client.request(
        MetadataRequest(topics=[T(topic_id=topic.topic_id, name="by-id")]), version=10
    )
    assert response.topics[0].error_code == ErrorCode.INVALID_REQUEST
    assert uuid_to_base64(topic.topic_id)  # ids are Kafka-style printable
    # A null name is allowed in a v10-11 request, not in its response: answered, not
    # a failed encoding and a closed connection (found by the frame fuzzer).
    for version in (10, 11):
        response = await client.request(MetadataRequest(topics=[T(name=None)]), version=version)
        assert [(t.name, t.error_code) for t in response.topics] == [
            ("", ErrorCode.INVALID_REQUEST)
        ]


async def test_advertised_listeners_setting(make_server) -> None:
    server = await make_server(advertised_listeners="PLAINTEXT://kafka.example:19092")
    client = await server.connect()
    response = await client.request(MetadataRequest(topics=[]))
    assert [(b.host, b.port) for b in response.brokers] == [("kafka.example", 19092)]


async def test_wildcard_listener_advertises_the_address_connected_to(make_server) -> None:
    server = await make_server(listeners="PLAINTEXT://0.0.0.0:0")
    port = server.address[1]
    client = RawClient(await trio.open_tcp_stream("127.0.0.1", port))
    response = await client.request(MetadataRequest(topics=[]))
    assert [(b.host, b.port) for b in response.brokers] == [("127.0.0.1", port)]
    described = await client.request(DescribeClusterRequest())
    assert [(b.host, b.port) for b in described.brokers] == [("127.0.0.1", port)]


# --- DescribeCluster --------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
async def test_describe_cluster(server, version: int) -> None:
    client = await server.connect()
    response = await client.request(DescribeClusterRequest(), version=version)
    assert response.error_code == ErrorCode.NONE
    assert response.cluster_id == server.broker.cluster_id
    assert response.controller_id == 1
    assert [(b.broker_id, b.host, b.port) for b in response.brokers] == [(1, *server.address)]
    assert response.cluster_authorized_operations == OMITTED
    asked = await client.request(
        DescribeClusterRequest(include_cluster_authorized_operations=True), version=version
    )
    assert asked.cluster_authorized_operations == CLUSTER_OPERATIONS


async def test_describe_cluster_controllers_endpoint_is_unsupported(server) -> None:
    client = await server.connect()
    response = await client.request(DescribeClusterRequest(endpoint_type=2), version=1)
    assert response.error_code == ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
