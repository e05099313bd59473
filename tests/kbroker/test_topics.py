"""TopicManager: Kafka's naming rules and error codes, and topics surviving restarts."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from kbroker import topics as topics_module
from kbroker.errors import KafkaApiError
from kbroker.topics import (
    PARTITION_METADATA,
    TOPICS_FILE,
    TopicManager,
    check_name,
    random_kafka_uuid,
    uuid_from_base64,
    uuid_to_base64,
)
from kbroker.topics_store import read_entries
from kbroker.wire.errors import ErrorCode
from kbroker.wire.records import Record, build_batch
from tests.kbroker.helpers import broker_config


@pytest.fixture
def manager(tmp_path: Path):
    topics = TopicManager(
        tmp_path, broker_config(tmp_path, **{"offsets.topic.num.partitions": "3"})
    )
    yield topics
    topics.close()


def _reopen(manager: TopicManager) -> TopicManager:
    manager.close()
    return TopicManager(manager.data_dir, manager.config)


def _on_open(
    monkeypatch: pytest.MonkeyPatch, nth: int, then: Callable[[], object]
) -> tuple[Any, list[int]]:
    """Count PartitionLog.open calls; the ``nth`` runs ``then`` first (which may raise).
    The real open (to put back) and the calls so far."""
    from kbroker import log

    real_open = log.PartitionLog.open
    opened: list[int] = []

    def counting_open(directory, config, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(1)
        if len(opened) == nth:
            then()
        return real_open(directory, config, **kwargs)

    monkeypatch.setattr(log.PartitionLog, "open", counting_open)
    return real_open, opened


def _disk_full() -> None:
    raise OSError(28, "No space left on device")


def _code(exc_info: pytest.ExceptionInfo[KafkaApiError]) -> ErrorCode:
    return exc_info.value.code


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a" * 250, "with space", "slash/no", "ünïcode", "tab\t", "colon:"]
)
def test_illegal_names(name: str) -> None:
    with pytest.raises(KafkaApiError) as info:
        check_name(name)
    assert _code(info) == ErrorCode.INVALID_TOPIC_EXCEPTION


@pytest.mark.parametrize("name", ["a", "a" * 249, "Topic.name_with-all.kinds_09", "..."])
def test_legal_names(name: str) -> None:
    check_name(name)


def test_kafka_uuid_format() -> None:
    for _ in range(200):
        value = random_kafka_uuid()
        text = uuid_to_base64(value)
        assert len(text) == 22 and not text.startswith("-")
        assert uuid_from_base64(text) == value


def test_create_and_look_up(manager: TopicManager) -> None:
    topic = manager.create("orders", 3, {"retention.ms": "1000"})
    assert [p.index for p in topic.partitions] == [0, 1, 2]
    assert manager.get("orders") is topic
    assert manager.get_by_id(topic.topic_id) is topic
    assert manager.partition("orders", 2) is topic.partitions[2]
    assert manager.partition("orders", 3) is None
    assert manager.partition("nope", 0) is None
    assert manager.get("nope") is None
    assert topic.configs == {"retention.ms": "1000"}
    assert not topic.internal
    metadata = (manager.data_dir / "orders-1" / PARTITION_METADATA).read_text()
    assert metadata == f"version: 0\ntopic_id: {uuid_to_base64(topic.topic_id)}\n"


def test_default_partitions_from_broker_config(tmp_path: Path) -> None:
    manager = TopicManager(tmp_path, broker_config(tmp_path, **{"num.partitions": "4"}))
    assert len(manager.create("t", -1).partitions) == 4
    manager.close()


def test_duplicate_and_colliding_names(
    manager: TopicManager, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        manager.create("a.b_c", 1)
    assert any("could collide" in r.getMessage() for r in caplog.records)
    with pytest.raises(KafkaApiError) as info:
        manager.create("a.b_c", 1)
    assert _code(info) == ErrorCode.TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaApiError) as info:
        manager.create("a_b.c", 1)
    assert _code(info) == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert "collides" in (info.value.message or "")
    assert manager.get("a_b.c") is None


@pytest.mark.parametrize(
    "partitions, replicas, code",
    [
        (0, -1, ErrorCode.INVALID_PARTITIONS),
        (-2, -1, ErrorCode.INVALID_PARTITIONS),
        (1, 0, ErrorCode.INVALID_REPLICATION_FACTOR),
        (1, 3, ErrorCode.INVALID_REPLICATION_FACTOR),
    ],
)
def test_bad_partition_and_replica_counts(
    manager: TopicManager, partitions: int, replicas: int, code: ErrorCode
) -> None:
    with pytest.raises(KafkaApiError) as info:
        manager.create("t", partitions, replication_factor=replicas)
    assert _code(info) == code
    assert manager.get("t") is None


def test_bad_config_creates_nothing(manager: TopicManager) -> None:
    with pytest.raises(KafkaApiError) as info:
        manager.create("t", 1, {"retention.ms": "forever"})
    assert _code(info) == ErrorCode.INVALID_CONFIG
    assert manager.get("t") is None
    assert not (manager.data_dir / "t-0").exists()


def test_validate_only_creates_nothing(manager: TopicManager) -> None:
    manager.create("t", 2, validate_only=True)
    assert manager.get("t") is None
    assert not (manager.data_dir / "t-0").exists()
    assert _reopen(manager).get("t") is None


def test_internal_names_are_reserved(manager: TopicManager) -> None:
    for name in ("__consumer_offsets", "__transaction_state"):
        with pytest.raises(KafkaApiError) as info:
            manager.create(name, 1)
        assert _code(info) == ErrorCode.INVALID_TOPIC_EXCEPTION
    topic = manager.create_internal("__consumer_offsets")
    assert topic.internal and len(topic.partitions) == 3
    assert topic.configs["cleanup.policy"] == "compact"
    assert manager.create_internal("__consumer_offsets") is topic


def test_topics_survive_restart(manager: TopicManager) -> None:
    topic = manager.create("orders", 2, {"cleanup.policy": "compact"})
    manager.create_internal("__consumer_offsets")
    batch = build_batch([Record(key=b"k", value=b"v", timestamp=1)])
    topic.partitions[1].log.append(batch)
    topic.partitions[1].log.append(batch)
    reopened = _reopen(manager)
    try:
        again = reopened.get("orders")
        assert again is not None
        assert again.topic_id == topic.topic_id
        assert again.configs == {"cleanup.policy": "compact"}
        assert len(again.partitions) == 2
        assert again.partitions[1].log.log_end_offset == 2
        assert again.partitions[0].log.log_end_offset == 0
        internal = reopened.get("__consumer_offsets")
        assert internal is not None and internal.internal
    finally:
        reopened.close()


def test_delete_removes_directories_for_good(manager: TopicManager) -> None:
    topic = manager.create("gone", 2)
    manager.delete("gone")
    assert manager.get("gone") is None and manager.get_by_id(topic.topic_id) is None
    assert not (manager.data_dir / "gone-0").exists()
    assert not (manager.data_dir / "gone-1").exists()
    with pytest.raises(KafkaApiError) as info:
        manager.delete("gone")
    assert _code(info) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    reopened = _reopen(manager)
    assert reopened.get("gone") is None
    recreated = reopened.create("gone", 1)
    assert recreated.topic_id != topic.topic_id
    reopened.close()


def test_delete_disabled(tmp_path: Path) -> None:
    manager = TopicManager(tmp_path, broker_config(tmp_path, **{"delete.topic.enable": "false"}))
    manager.create("t", 1)
    with pytest.raises(KafkaApiError) as info:
        manager.delete("t")
    assert _code(info) == ErrorCode.TOPIC_DELETION_DISABLED
    manager.close()


def test_add_partitions(manager: TopicManager) -> None:
    manager.create("t", 2)
    for total in (2, 1):
        with pytest.raises(KafkaApiError) as info:
            manager.add_partitions("t", total)
        assert _code(info) == ErrorCode.INVALID_PARTITIONS
    manager.add_partitions("t", 5, validate_only=True)
    assert len(manager.topics["t"].partitions) == 2
    manager.add_partitions("t", 5)
    assert [p.index for p in manager.topics["t"].partitions] == [0, 1, 2, 3, 4]
    with pytest.raises(KafkaApiError) as info:
        manager.add_partitions("nope", 3)
    assert _code(info) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    reopened = _reopen(manager)
    assert len(reopened.topics["t"].partitions) == 5
    reopened.close()


def test_set_configs(manager: TopicManager) -> None:
    manager.create("t", 1, {"retention.ms": "1000"})
    manager.set_configs("t", {"segment.bytes": "1048576"}, validate_only=True)
    assert manager.topics["t"].configs == {"retention.ms": "1000"}
    manager.set_configs("t", {"segment.bytes": "1048576"})
    assert manager.topics["t"].configs == {"segment.bytes": "1048576"}
    with pytest.raises(KafkaApiError) as info:
        manager.set_configs("t", {"segment.bytes": "tiny"})
    assert _code(info) == ErrorCode.INVALID_CONFIG
    reopened = _reopen(manager)
    assert reopened.topics["t"].configs == {"segment.bytes": "1048576"}
    reopened.close()


def test_leftovers_of_an_interrupted_delete_are_removed(manager: TopicManager) -> None:
    manager.create("keep", 1)
    manager.create("gone", 1)
    backup = manager.data_dir / "backup"
    shutil.copytree(manager.data_dir / "gone-0", backup)
    manager.delete("gone")
    # Crash after the topics file was updated but before the directory was removed:
    shutil.copytree(backup, manager.data_dir / "gone-0")
    shutil.rmtree(backup)
    reopened = _reopen(manager)
    assert not (reopened.data_dir / "gone-0").exists()
    assert (reopened.data_dir / "keep-0").exists()
    reopened.close()


def test_stale_directory_of_a_recreated_topic_is_replaced(manager: TopicManager) -> None:
    old = manager.create("t", 1)
    old.partitions[0].log.append(build_batch([Record(value=b"old", timestamp=1)]))
    stale = manager.data_dir / "stale"
    shutil.copytree(manager.data_dir / "t-0", stale)
    manager.delete("t")
    new = manager.create("t", 1)
    manager.close()
    # Simulate the old directory still being there when the new topic's entry is read.
    shutil.rmtree(manager.data_dir / "t-0")
    shutil.move(stale, manager.data_dir / "t-0")
    stored, _, _ = read_entries(manager.data_dir)
    assert stored["t"]["topic_id"] == uuid_to_base64(new.topic_id)
    reopened = TopicManager(manager.data_dir, manager.config)
    partition = reopened.partition("t", 0)
    assert partition is not None and partition.log.log_end_offset == 0
    reopened.close()


@pytest.mark.parametrize("damage", ["missing", "empty", "torn"])
def test_lost_or_torn_partition_metadata_keeps_the_data_and_is_rewritten(
    manager: TopicManager, damage: str
) -> None:
    # partition.metadata is written without fsync (topics.json holds the topic id), so a
    # crash may leave it missing, empty or cut short: the partition must keep its data.
    topic = manager.create("t", 2)
    for partition in topic.partitions:
        partition.log.append(build_batch([Record(value=b"kept", timestamp=1)]))
    manager.close()
    path = manager.data_dir / "t-1" / PARTITION_METADATA
    full = path.read_text()
    if damage == "missing":
        path.unlink()
    elif damage == "empty":
        path.write_text("")
    else:
        path.write_text(full[: full.index("topic_id:") + len("topic_id:") + 10])
    reopened = TopicManager(manager.data_dir, manager.config)
    try:
        assert [p.log.log_end_offset for p in reopened.topics["t"].partitions] == [1, 1]
        assert path.read_text() == full
    finally:
        reopened.close()


def test_damaged_topics_file_is_refused(manager: TopicManager) -> None:
    from kbroker.config import ConfigError

    manager.create("t", 1)
    manager.close()
    (manager.data_dir / TOPICS_FILE).write_text('{"topics": ')
    with pytest.raises(ConfigError, match="damaged"):
        TopicManager(manager.data_dir, manager.config)


def test_failed_creation_leaves_no_topic(manager: TopicManager, monkeypatch) -> None:
    from kbroker import log

    real_open, _ = _on_open(monkeypatch, 2, _disk_full)
    with pytest.raises(OSError):
        manager.create("half", 3)
    assert manager.get("half") is None
    monkeypatch.setattr(log.PartitionLog, "open", real_open)
    reopened = _reopen(manager)
    assert reopened.get("half") is None
    assert not (reopened.data_dir / "half-0").exists()
    assert reopened.create("half", 1).partitions
    reopened.close()


# --- creation that yields to the event loop ---------------------------------------------


async def test_async_creation_lets_others_run_and_shows_the_topic_only_whole(
    manager: TopicManager, monkeypatch
) -> None:
    # A topic of thousands of partitions took seconds to open in one go; create_async
    # lets other tasks run between slices, and nobody sees the topic half made.
    monkeypatch.setattr(topics_module, "CREATION_SLICE_SECONDS", 0.0)  # a slice = 1 partition
    seen: list[int | None] = []
    stored: list[int] = []
    done = trio.Event()

    async def watch() -> None:
        while not done.is_set():
            topic = manager.get("wide")
            seen.append(None if topic is None else len(topic.partitions))
            if topic is None and not stored and (manager.data_dir / "wide-0").exists():
                # Durable before its directories are made: a crash re-creates them.
                stored.append(read_entries(manager.data_dir)[0]["wide"]["partitions"])
                # The name is taken meanwhile.
                with pytest.raises(KafkaApiError) as exc_info:
                    manager.create("wide", 1)
                assert _code(exc_info) == ErrorCode.TOPIC_ALREADY_EXISTS
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await trio.sleep(0)
        topic = await manager.create_async("wide", 20)
        done.set()
    assert seen.count(None) >= 10  # ran while the partitions were opened
    assert set(seen) <= {None, 20}
    assert stored == [20]
    assert manager.get("wide") is topic and len(topic.partitions) == 20
    reopened = _reopen(manager)
    assert len(reopened.get("wide").partitions) == 20
    reopened.close()


@pytest.mark.parametrize("how", ["create_async", "adopt_async"])
async def test_failed_async_creation_leaves_no_topic(
    manager: TopicManager, monkeypatch, how: str
) -> None:
    from kbroker import log

    monkeypatch.setattr(topics_module, "CREATION_SLICE_SECONDS", 0.0)
    real_open, _ = _on_open(monkeypatch, 5, _disk_full)
    with pytest.raises(OSError):
        if how == "create_async":
            await manager.create_async("half", 8)
        else:
            await manager.adopt_async("half", random_kafka_uuid(), 8)
    assert manager.get("half") is None
    assert "half" not in read_entries(manager.data_dir)[0]
    monkeypatch.setattr(log.PartitionLog, "open", real_open)
    reopened = _reopen(manager)
    assert reopened.get("half") is None
    assert not (reopened.data_dir / "half-0").exists()
    assert len((await reopened.create_async("half", 2)).partitions) == 2
    reopened.close()


async def test_cancelled_async_creation_leaves_no_topic(manager: TopicManager, monkeypatch) -> None:
    from kbroker import log

    monkeypatch.setattr(topics_module, "CREATION_SLICE_SECONDS", 0.0)
    with trio.CancelScope() as scope:
        # The 4th open cancels, as when the connection goes away mid-creation.
        real_open, opened = _on_open(monkeypatch, 4, scope.cancel)
        await manager.create_async("half", 8)
    assert scope.cancelled_caught and len(opened) == 4
    monkeypatch.setattr(log.PartitionLog, "open", real_open)
    assert manager.get("half") is None
    reopened = _reopen(manager)
    assert reopened.get("half") is None
    assert not (reopened.data_dir / "half-0").exists()
    reopened.close()
