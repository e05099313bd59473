"""ACLs over the wire: CreateAcls / DescribeAcls / DeleteAcls, and each API's checks
(KafkaApis) for a connection whose principal is set, as after SASL authentication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AddPartitionsToTxnRequest,
    CreateAclsRequest,
    CreateTopicsRequest,
    DeleteAclsRequest,
    DeleteTopicsRequest,
    DescribeAclsRequest,
    DescribeConfigsRequest,
    DescribeGroupsRequest,
    DescribeLogDirsRequest,
    DescribeTransactionsRequest,
    EndTxnRequest,
    FindCoordinatorRequest,
    HeartbeatRequest,
    InitProducerIdRequest,
    LeaderAndIsrRequest,
    ListGroupsRequest,
    MetadataRequest,
    OffsetFetchRequest,
)
from tests.kbroker.acl_helpers import (
    ADMIN,
    ALICE,
    BOB,
    MakeServer,
    connect_as,
    grant,
    produce_as,
    secured,
)
from tests.kbroker.helpers import (
    LATEST,
    commit_request,
    create_topic,
    fetch_request,
    join,
    list_offset,
    produce,
    records,
)

# Wire codes (org.apache.kafka.common.acl / resource).
TOPIC, GROUP, CLUSTER, TXN_ID = 2, 3, 4, 5
ANY, MATCH, LITERAL, PREFIXED = 1, 2, 3, 4
ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 2, 3, 4, 5, 6, 7, 8
CLUSTER_ACTION, DESCRIBE_CONFIGS, IDEMPOTENT_WRITE = 9, 10, 12
DENY, ALLOW = 2, 3


def creation(
    rtype: int,
    name: str,
    principal: str,
    op: int,
    *,
    permission: int = ALLOW,
    pattern: int = LITERAL,
    host: str = "*",
) -> CreateAclsRequest.AclCreation:
    return CreateAclsRequest.AclCreation(
        resource_type=rtype,
        resource_name=name,
        resource_pattern_type=pattern,
        principal=principal,
        host=host,
        operation=op,
        permission_type=permission,
    )


def acl_filter(request: Any, **kw: Any) -> Any:
    """``request`` (DescribeAclsRequest, or DeleteAclsRequest's filter: the same fields)
    matching every ACL, narrowed by ``kw``."""
    base: dict[str, Any] = dict(
        resource_type_filter=ANY,
        resource_name_filter=None,
        pattern_type_filter=ANY,
        principal_filter=None,
        host_filter=None,
        operation=ANY,
        permission_type=ANY,
    )
    base.update(kw)
    return request(**base)


def describe_filter(**kw: Any) -> DescribeAclsRequest:
    return acl_filter(DescribeAclsRequest, **kw)


def described(resp: Any) -> set[tuple[int, str, int, str, str, int, int]]:
    assert resp.error_code == 0, resp
    return {
        (
            r.resource_type,
            r.resource_name,
            r.pattern_type,
            a.principal,
            a.host,
            a.operation,
            a.permission_type,
        )
        for r in resp.resources
        for a in r.acls
    }


# --- the ACL APIs ---------------------------------------------------------------------


async def test_without_an_authorizer_acl_apis_answer_security_disabled(server: Any) -> None:
    async with await server.connect() as client:
        resp = await client.request(
            CreateAclsRequest(creations=[creation(TOPIC, "t", ALICE, READ)])
        )
        assert resp.results[0].error_code == ErrorCode.SECURITY_DISABLED
        assert resp.results[0].error_message == "No Authorizer is configured on the broker"
        resp = await client.request(describe_filter())
        assert resp.error_code == ErrorCode.SECURITY_DISABLED


async def test_acls_are_created_described_and_deleted(make_server: MakeServer) -> None:
    server = await secured(make_server)
    async with await connect_as(server, ADMIN) as admin:
        await grant(
            admin,
            creation(TOPIC, "orders", ALICE, READ),
            creation(TOPIC, "sales-", BOB, WRITE, pattern=PREFIXED),
            creation(GROUP, "g", ALICE, READ, permission=DENY, host="10.1.1.1"),
        )
        everything = described(await admin.request(describe_filter()))
        assert everything == {
            (TOPIC, "orders", LITERAL, ALICE, "*", READ, ALLOW),
            (TOPIC, "sales-", PREFIXED, BOB, "*", WRITE, ALLOW),
            (GROUP, "g", LITERAL, ALICE, "10.1.1.1", READ, DENY),
        }
        # MATCH: what applies to topic sales-eu.
        match = await admin.request(
            describe_filter(
                resource_type_filter=TOPIC,
                resource_name_filter="sales-eu",
                pattern_type_filter=MATCH,
            )
        )
        assert described(match) == {(TOPIC, "sales-", PREFIXED, BOB, "*", WRITE, ALLOW)}
        by_principal = await admin.request(describe_filter(principal_filter=ALICE))
        assert len(described(by_principal)) == 2

        resp = await admin.request(
            DeleteAclsRequest(
                filters=[acl_filter(DeleteAclsRequest.DeleteAclsFilter, principal_filter=ALICE)]
            )
        )
        (result,) = resp.filter_results
        assert result.error_code == 0
        assert {(m.resource_name, m.principal) for m in result.matching_acls} == {
            ("orders", ALICE),
            ("g", ALICE),
        }
        left = described(await admin.request(describe_filter()))
        assert left == {(TOPIC, "sales-", PREFIXED, BOB, "*", WRITE, ALLOW)}


async def test_invalid_acls_are_refused_one_by_one(make_server: MakeServer) -> None:
    server = await secured(make_server)
    async with await connect_as(server, ADMIN) as admin:
        resp = await admin.request(
            CreateAclsRequest(
                creations=[
                    creation(CLUSTER, "my-cluster", ALICE, ALTER),
                    creation(TOPIC, "t", "alice", READ),
                    creation(TOPIC, "t", ALICE, READ, pattern=MATCH),
                    creation(TOPIC, "t", ALICE, READ),
                ]
            )
        )
        codes = [r.error_code for r in resp.results]
        assert codes == [ErrorCode.INVALID_REQUEST] * 3 + [0]
        assert "kafka-cluster" in resp.results[0].error_message
        assert len(described(await admin.request(describe_filter()))) == 1


async def test_changing_acls_needs_alter_on_the_cluster(make_server: MakeServer) -> None:
    server = await secured(make_server)
    async with await connect_as(server, ALICE) as alice:
        resp = await alice.request(CreateAclsRequest(creations=[creation(TOPIC, "t", ALICE, ALL)]))
        assert resp.results[0].error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        resp = await alice.request(describe_filter())
        assert resp.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    async with await connect_as(server, ADMIN) as admin:
        assert described(await admin.request(describe_filter())) == set()
        await grant(admin, creation(CLUSTER, "kafka-cluster", ALICE, ALTER))
    async with await connect_as(server, ALICE) as alice:
        resp = await alice.request(CreateAclsRequest(creations=[creation(TOPIC, "t", BOB, READ)]))
        assert resp.results[0].error_code == 0
        # Alter implies Describe: alice may now list them too.
        assert len(described(await alice.request(describe_filter()))) == 2


async def test_acls_survive_a_restart(make_server: MakeServer, tmp_path: Path) -> None:
    data = str(tmp_path / "kept")
    server = await secured(
        make_server, creation(TOPIC, "orders", ALICE, READ, pattern=PREFIXED), log_dirs=data
    )
    await server.stop()
    again = await secured(make_server, log_dirs=data)
    async with await connect_as(again, ADMIN) as admin:
        assert described(await admin.request(describe_filter())) == {
            (TOPIC, "orders", PREFIXED, ALICE, "*", READ, ALLOW)
        }
    create_topic(again, "orders-eu")
    create_topic(again, "payroll")
    async with await connect_as(again, ALICE) as alice:
        resp = await alice.request(MetadataRequest(topics=None))
        assert [t.name for t in resp.topics] == ["orders-eu"]  # enforced, not only listed


# --- the per-API checks -----------------------------------------------------------------


async def test_write_without_read_produces_but_cannot_fetch(make_server: MakeServer) -> None:
    server = await secured(make_server, creation(TOPIC, "orders", ALICE, WRITE), topics=("orders",))
    async with await connect_as(server, ALICE) as alice:
        part = await produce(alice, "orders", 0, records(2))
        assert part.error_code == 0
        resp = await alice.request(fetch_request("orders", 0, 0), version=12)
        assert resp.responses[0].partitions[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        # Write implies Describe: offsets and metadata are visible.
        p = await list_offset(alice, "orders", LATEST)
        assert (p.error_code, p.offset) == (0, 2)
    async with await connect_as(server, BOB) as bob:
        part = await produce(bob, "orders", 0, records(1))
        assert part.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        offset = await list_offset(bob, "orders", LATEST)
        assert offset.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    assert server.broker.topics.get("orders").partitions[0].log.log_end_offset == 2


async def test_acl_changes_apply_to_the_next_produce_on_an_open_connection(
    make_server: MakeServer,
) -> None:
    # Nothing about a principal's Write on a topic is remembered between requests: a
    # deny created, then deleted, while the producer's connection stays open decides
    # its very next Produce each time.
    server = await secured(make_server, creation(TOPIC, "orders", ALICE, WRITE), topics=("orders",))
    deny = creation(TOPIC, "orders", ALICE, WRITE, permission=DENY)
    async with await connect_as(server, ALICE) as alice, await connect_as(server, ADMIN) as admin:
        assert (await produce(alice, "orders", 0, records(1))).error_code == 0
        await grant(admin, deny)
        part = await produce(alice, "orders", 0, records(1))
        assert part.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        resp = await admin.request(
            DeleteAclsRequest(
                filters=[
                    acl_filter(
                        DeleteAclsRequest.DeleteAclsFilter,
                        principal_filter=ALICE,
                        permission_type=DENY,
                    )
                ]
            )
        )
        assert [len(r.matching_acls) for r in resp.filter_results] == [1]
        assert (await produce(alice, "orders", 0, records(1))).error_code == 0
    assert server.broker.topics.get("orders").partitions[0].log.log_end_offset == 2


async def test_metadata_hides_topics_without_describe(make_server: MakeServer) -> None:
    server = await secured(
        make_server,
        creation(TOPIC, "sales-", ALICE, READ, pattern=PREFIXED),
        topics=("sales-eu", "sales-us", "secret"),
        auto_create_topics_enable=True,
    )
    async with await connect_as(server, ALICE) as alice:
        every = await alice.request(MetadataRequest(topics=None))
        assert sorted(t.name for t in every.topics) == ["sales-eu", "sales-us"]
        named = await alice.request(
            MetadataRequest(
                topics=[
                    MetadataRequest.MetadataRequestTopic(name=n)
                    for n in ("secret", "nothing-here", "sales-eu")
                ],
                allow_auto_topic_creation=True,
            )
        )
        codes = {t.name: t.error_code for t in named.topics}
        # A topic without Describe looks the same whether it exists or not, and is not
        # auto-created without Create.
        assert codes == {
            "secret": ErrorCode.TOPIC_AUTHORIZATION_FAILED,
            "nothing-here": ErrorCode.TOPIC_AUTHORIZATION_FAILED,
            "sales-eu": 0,
        }
    assert server.broker.topics.get("nothing-here") is None


async def test_a_deny_overrides_an_allow_on_the_wire(make_server: MakeServer) -> None:
    server = await secured(
        make_server,
        creation(TOPIC, "sales-", ALICE, WRITE, pattern=PREFIXED),
        creation(TOPIC, "sales-eu", ALICE, WRITE, permission=DENY),
        topics=("sales-eu",),
    )
    assert await produce_as(server, ALICE, "sales-eu") == ErrorCode.TOPIC_AUTHORIZATION_FAILED


async def test_acl_host_is_the_client_address(make_server: MakeServer) -> None:
    server = await secured(
        make_server,
        creation(TOPIC, "t", ALICE, WRITE, host="10.9.9.9"),
        creation(TOPIC, "t", BOB, WRITE, host="127.0.0.1"),
        topics=("t",),
    )
    assert await produce_as(server, ALICE, "t") == 29
    assert await produce_as(server, BOB, "t") == 0


async def test_groups_need_read(make_server: MakeServer) -> None:
    server = await secured(
        make_server,
        creation(TOPIC, "t", ALICE, READ),
        creation(GROUP, "mine", ALICE, READ),
        creation(GROUP, "watched", ALICE, DESCRIBE),
        topics=("t",),
    )
    async with await connect_as(server, ALICE) as alice:
        found = await alice.request(FindCoordinatorRequest(key="other", key_type=0), version=3)
        assert found.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
        found = await alice.request(FindCoordinatorRequest(key="mine", key_type=0), version=3)
        assert found.error_code == 0
        denied = await join(alice, "other")
        assert denied.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
        # Describe on a group is not enough to join it.
        assert (await join(alice, "watched")).error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
        hb = await alice.request(HeartbeatRequest(group_id="other", generation_id=1, member_id="m"))
        assert hb.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED

        joined = await join(alice, "mine")
        assert joined.error_code == 0
        commit = await alice.request(commit_request("other", {("t", 0): 1}), version=8)
        assert commit.topics[0].partitions[0].error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
        fetched = await alice.request(OffsetFetchRequest(group_id="other", topics=None), version=7)
        assert fetched.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
        # ListGroups shows only the groups alice may Describe.
        listed = await alice.request(ListGroupsRequest())
        assert [g.group_id for g in listed.groups] == ["mine"]


async def test_create_and_delete_topics_need_their_operations(make_server: MakeServer) -> None:
    server = await secured(
        make_server, creation(TOPIC, "team-", ALICE, CREATE, pattern=PREFIXED), topics=("old",)
    )

    def topic(name: str) -> Any:
        return CreateTopicsRequest.CreatableTopic(
            name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[]
        )

    async with await connect_as(server, ALICE) as alice:
        resp = await alice.request(
            CreateTopicsRequest(topics=[topic("team-a"), topic("other")], timeout_ms=5000)
        )
        codes = {t.name: t.error_code for t in resp.topics}
        assert codes == {"team-a": 0, "other": ErrorCode.TOPIC_AUTHORIZATION_FAILED}
        resp = await alice.request(
            DeleteTopicsRequest(topic_names=["old"], timeout_ms=5000), version=5
        )
        assert resp.responses[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
    assert server.broker.topics.get("old") is not None
    assert server.broker.topics.get("other") is None


async def test_configs_need_describe_configs(make_server: MakeServer) -> None:
    server = await secured(make_server)
    create_topic(server, "t")
    async with await connect_as(server, ALICE) as alice:
        resp = await alice.request(
            DescribeConfigsRequest(
                resources=[
                    DescribeConfigsRequest.DescribeConfigsResource(
                        resource_type=2, resource_name="t", configuration_keys=None
                    ),
                    DescribeConfigsRequest.DescribeConfigsResource(
                        resource_type=4,
                        resource_name=str(server.broker.node_id),
                        configuration_keys=None,
                    ),
                ]
            )
        )
        assert [r.error_code for r in resp.results] == [
            ErrorCode.TOPIC_AUTHORIZATION_FAILED,
            ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
        ]


async def test_init_producer_id_needs_idempotent_write_or_the_transactional_id(
    make_server: MakeServer,
) -> None:
    server = await secured(make_server, transaction_state_log_num_partitions=1)
    async with await connect_as(server, BOB) as bob:
        resp = await bob.request(
            InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000)
        )
        assert resp.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        resp = await bob.request(
            InitProducerIdRequest(transactional_id="tx", transaction_timeout_ms=60000)
        )
        assert resp.error_code == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    async with await connect_as(server, ADMIN) as admin:
        await grant(
            admin,
            creation(CLUSTER, "kafka-cluster", BOB, IDEMPOTENT_WRITE),
            creation(TXN_ID, "tx", BOB, WRITE),
        )
    async with await connect_as(server, BOB) as bob:
        for tid in (None, "tx"):
            resp = await bob.request(
                InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=60000)
            )
            assert resp.error_code == 0 and resp.producer_id >= 0


async def test_inter_broker_apis_need_cluster_action(make_server: MakeServer) -> None:
    server = await secured(make_server)
    async with await connect_as(server, ALICE) as alice:
        resp = await alice.request(
            LeaderAndIsrRequest(controller_id=1, controller_epoch=1, broker_epoch=-1),
            version=4,
        )
        assert resp.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED


async def test_allow_everyone_if_no_acl_found(make_server: MakeServer) -> None:
    server = await secured(
        make_server,
        creation(TOPIC, "closed", BOB, WRITE),
        topics=("open", "closed"),
        allow_everyone_if_no_acl_found=True,
    )
    assert await produce_as(server, ALICE, "open") == 0
    assert await produce_as(server, ALICE, "closed") == 29


async def test_authorized_operations_are_what_the_acls_allow(make_server: MakeServer) -> None:
    server = await secured(
        make_server,
        creation(TOPIC, "t", ALICE, READ),
        creation(GROUP, "g", ALICE, DESCRIBE),
        creation(CLUSTER, "kafka-cluster", ALICE, DESCRIBE_CONFIGS),
        topics=("t",),
    )
    async with await connect_as(server, ALICE) as alice:
        resp = await alice.request(
            MetadataRequest(
                topics=[MetadataRequest.MetadataRequestTopic(name="t")],
                include_cluster_authorized_operations=True,
                include_topic_authorized_operations=True,
            ),
            version=10,
        )
        # Read, and the Describe it implies (KIP-430 bit sets).
        assert resp.topics[0].topic_authorized_operations == (1 << READ) | (1 << DESCRIBE)
        assert resp.cluster_authorized_operations == 1 << DESCRIBE_CONFIGS
        groups = await alice.request(
            DescribeGroupsRequest(groups=["g"], include_authorized_operations=True)
        )
        assert groups.groups[0].authorized_operations == 1 << DESCRIBE


async def test_admin_reads_need_their_permissions(make_server: MakeServer) -> None:
    server = await secured(make_server)
    async with await connect_as(server, ALICE) as alice:
        dirs = await alice.request(DescribeLogDirsRequest(topics=None))
        assert (dirs.error_code, dirs.results) == (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, [])
        txns = await alice.request(DescribeTransactionsRequest(transactional_ids=["tx"]))
        assert (
            txns.transaction_states[0].error_code == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        )


async def test_transactions_need_the_transactional_id_and_the_topics(
    make_server: MakeServer,
) -> None:
    server = await secured(
        make_server,
        creation(TXN_ID, "tx", ALICE, WRITE),
        creation(TOPIC, "allowed", ALICE, WRITE),
        topics=("allowed", "other"),
        transaction_state_log_num_partitions=1,
    )
    async with await connect_as(server, ALICE) as alice:
        init = await alice.request(
            InitProducerIdRequest(transactional_id="tx", transaction_timeout_ms=60000)
        )
        assert init.error_code == 0
        T = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic
        added = await alice.request(
            AddPartitionsToTxnRequest(
                v3_and_below_transactional_id="tx",
                v3_and_below_producer_id=init.producer_id,
                v3_and_below_producer_epoch=init.producer_epoch,
                v3_and_below_topics=[
                    T(name="allowed", partitions=[0]),
                    T(name="other", partitions=[0]),
                ],
            ),
            version=3,
        )
        codes = {
            t.name: t.results_by_partition[0].partition_error_code
            for t in added.results_by_topic_v3_and_below
        }
        # A refused topic fails the request; the others are not attempted (KafkaApis).
        assert codes == {
            "allowed": ErrorCode.OPERATION_NOT_ATTEMPTED,
            "other": ErrorCode.TOPIC_AUTHORIZATION_FAILED,
        }
    async with await connect_as(server, BOB) as bob:
        end = await bob.request(
            EndTxnRequest(transactional_id="tx", producer_id=0, producer_epoch=0, committed=True)
        )
        assert end.error_code == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
