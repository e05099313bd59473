"""The INFO lines that tell what happens in the broker, one test per event, and JSON logs."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from kbroker.logfmt import JsonFormatter
from kbroker.wire.messages import ApiVersionsRequest
from tests.kbroker.group_coordinator_helpers import SESSION, make, stable_group
from tests.kbroker.helpers import create_topic, produce, records


def messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


@pytest.fixture
async def running(
    make_server: Callable[..., Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> Any:
    """A broker whose INFO lines ``caplog`` captures."""
    caplog.set_level(logging.INFO)
    return await make_server()


async def test_client_connecting_names_its_software(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with await running.connect(client_id="billing-1") as client:
        await client.request(
            ApiVersionsRequest(client_software_name="kbroker-tests", client_software_version="9.1"),
            version=3,
        )
    (line,) = [m for m in messages(caplog, "kbroker.handlers.meta") if "client connected" in m]
    assert line.startswith("client connected from 127.0.0.1:")
    assert "client id billing-1, software kbroker-tests 9.1" in line


async def test_rebalance_assignment_and_leaving_by_a_real_consumer(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    create_topic(running, "orders", partitions=2)

    def consume_then_leave() -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=running.bootstrap, group_id="billing", client_id="billing-app"
        )
        try:
            # The topic's metadata first, then the subscription: after a rejoin that a
            # metadata change caused, kafka-python 3.0.12 can leave a SyncGroup answer
            # unapplied (it logs "Received SyncGroup response", never "Updated partition
            # assignment", and does not rejoin), and a first join that races the
            # consumer's first metadata of "orders" leads there.
            assert consumer.partitions_for_topic("orders") == {0, 1}
            consumer.subscribe(["orders"])
            deadline = time.monotonic() + 20
            while not consumer.assignment() and time.monotonic() < deadline:
                consumer.poll(timeout_ms=100)
            assert len(consumer.assignment()) == 2
        finally:
            consumer.close()

    await trio.to_thread.run_sync(consume_then_leave)
    lines = messages(caplog, "kbroker.coordinator")
    rebalanced = [m for m in lines if m.startswith("group billing rebalanced: generation 1,")]
    assert rebalanced and "protocol consumer/" in rebalanced[0]
    assert "1 member(s): billing-app-" in rebalanced[0] and "client id billing-app" in rebalanced[0]
    # The assignment is logged for the generation whose SyncGroup completed: the first,
    # or a later one when the consumer rejoined (a metadata refresh) before syncing.
    assert any(
        re.match(r"group billing generation \d+ assignment: billing-app-", m)
        and m.endswith("-> orders[0,1]")
        for m in lines
    ), lines
    assert any(
        m.startswith("group billing: member billing-app-") and m.endswith(" left") for m in lines
    )
    # The consumer may rejoin once (a metadata refresh) before it leaves.
    assert any(re.fullmatch(r"group billing is empty \(generation \d+\)", m) for m in lines)


def test_member_expiry(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kbroker.coordinator")
    gc, clock, _ = make()
    (a, b), generation = stable_group(gc, clock)
    clock.advance(SESSION - 1)
    gc.heartbeat("g", generation, a)
    clock.advance(1)
    gc.poll()
    expired = [m for m in messages(caplog, "kbroker.coordinator") if "expired" in m]
    assert expired == [
        f"group g: member {b} (client id c1, host /127.0.0.1) expired: no heartbeat within "
        f"its {SESSION} ms session timeout"
    ]


async def test_topic_created_changed_and_deleted(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def admin_work() -> None:
        admin = KafkaAdminClient(bootstrap_servers=running.bootstrap)
        try:
            admin.create_topics([NewTopic("audit", 3, 1)])
            admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, "audit", {"retention.ms": "60000"})]
            )
            admin.delete_topics(["audit"])
        finally:
            admin.close()

    await trio.to_thread.run_sync(admin_work)
    lines = messages(caplog, "kbroker.topics")
    assert any(m.startswith("created topic audit") and "3 partition" in m for m in lines), lines
    assert any(m.startswith("topic audit configs now") and "60000" in m for m in lines), lines
    assert any(m.startswith("deleted topic audit") for m in lines), lines


async def test_transaction_aborted_by_timeout(
    make_server: Callable[..., Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    running = await make_server(
        **{"transaction.abort.timed.out.transaction.cleanup.interval.ms": 100}
    )
    create_topic(running, "payments")

    def open_transaction() -> None:
        producer = KafkaProducer(
            bootstrap_servers=running.bootstrap,
            transactional_id="payments-tx",
            transaction_timeout_ms=1000,
        )
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("payments", b"pending")
        producer.flush()
        producer.close(timeout=0)  # gone without committing

    await trio.to_thread.run_sync(open_transaction)
    with trio.fail_after(10):
        while not any("payments-tx" in m for m in messages(caplog, "kbroker.txn.service")):
            await trio.sleep(0.05)
    (line,) = [m for m in messages(caplog, "kbroker.txn.service") if "payments-tx" in m]
    assert line.startswith("aborted timed-out transactions:")


async def test_retention_names_what_it_deleted(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    create_topic(running, "metrics", configs={"segment.bytes": "1024", "retention.bytes": "1"})
    async with await running.connect() as client:
        for i in range(4):
            await produce(client, "metrics", 0, records(20, start=i * 20))
    assert running.broker.enforce_retention() > 0
    (line,) = [m for m in messages(caplog, "kbroker.broker") if m.startswith("retention")]
    assert line.startswith("retention deleted ") and " of metrics-0: log start offset 0 -> " in line
    assert line.endswith(" bytes freed")


async def test_compaction_names_what_it_removed(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    create_topic(
        running, "profiles", configs={"segment.bytes": "1024", "cleanup.policy": "compact"}
    )
    async with await running.connect() as client:
        for _ in range(6):  # the same ten keys again and again
            await produce(client, "profiles", 0, records(10))
    running.broker.compact()
    (line,) = [m for m in messages(caplog, "kbroker.broker") if m.startswith("compaction")]
    assert line.startswith("compaction of profiles-0 removed ") and " bytes (" in line


def test_json_log_format() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "kbroker.server", logging.WARNING, __file__, 1, "peer %s gone", ("1.2.3.4:5",), exc_info
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["logger"] == "kbroker.server"
    assert entry["message"] == "peer 1.2.3.4:5 gone"
    assert entry["ts"].endswith("Z") and "ValueError: boom" in entry["exception"]


async def test_isr_shrink_and_expand(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    from kbroker.log import LogConfig, PartitionLog
    from kbroker.replication.partition import ReplicatedPartition
    from tests.log.conftest import batch

    lag_ms = 10_000
    log = PartitionLog.open(tmp_path / "ledger-0", LogConfig())
    try:
        caplog.set_level(logging.INFO, logger="kbroker.replication.partition")
        p = ReplicatedPartition(log, broker_id=1, replica_lag_time_max_ms=lag_ms)
        p.make_leader(leader_epoch=1, isr=[1, 2], replicas=[1, 2])
        end = log.append(batch(3), leader_epoch=1).last_offset + 1
        p.on_leader_append()
        await trio.sleep(2 * lag_ms / 1000)  # follower 2 never fetches
        assert p.maybe_shrink_isr() == [2]
        p.on_follower_fetch(2, end)
        assert messages(caplog, "kbroker.replication.partition") == [
            "Shrinking ISR of ledger-0 from [1, 2]: [2] out of sync",
            "Expanding ISR of ledger-0 from [1]: 2 caught up",
        ]
    finally:
        log.close()


async def test_kip848_member_joins_is_assigned_and_leaves(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from kbroker.wire.messages import ConsumerGroupHeartbeatRequest

    create_topic(running, "kip", partitions=2)

    def heartbeat(epoch: int) -> Any:
        return ConsumerGroupHeartbeatRequest(
            group_id="modern",
            member_id="m-1",
            member_epoch=epoch,
            rebalance_timeout_ms=30000,
            subscribed_topic_names=["kip"] if epoch == 0 else None,
            topic_partitions=[] if epoch == 0 else None,
        )

    async with await running.connect(client_id="new-consumer") as client:
        assert (await client.request(heartbeat(0), version=1)).error_code == 0
        assert (await client.request(heartbeat(-1), version=1)).error_code == 0
    lines = messages(caplog, "kbroker.coordinator")
    assert (
        "group modern (consumer protocol): member m-1 (client id new-consumer, host /127.0.0.1) "
        "joined, subscribed to kip"
    ) in lines
    assert (
        "group modern (consumer protocol) epoch 1, 1 member(s), target assignment: m-1 -> kip[0,1]"
    ) in lines
    assert "group modern: member m-1 (client id new-consumer, host /127.0.0.1) left" in lines, lines


def test_kip848_member_expiry(caplog: pytest.LogCaptureFixture) -> None:
    import uuid

    caplog.set_level(logging.INFO, logger="kbroker.coordinator")
    gc, clock, _ = make(consumer_session_timeout_ms=45_000)
    topics = {"t": (uuid.uuid4(), 2)}
    gc.consumer_group_heartbeat(
        "g", "a", 0, topics=topics, subscribed_names=["t"], client_id="c", client_host="/h"
    )
    clock.advance(45_000)
    gc.poll()
    expired = [m for m in messages(caplog, "kbroker.coordinator") if "expired" in m]
    assert expired == [
        "group g: member a (client id c, host /h) expired: no heartbeat within its 45000 ms "
        "session timeout"
    ]
