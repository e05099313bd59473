"""A full disk: every API answers Kafka's error code for it, says so once in the log, recovers.

The disk is made full by making writes of the data dir fail with ENOSPC (the
way the operating system reports it), then letting them succeed again.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

import pytest

from kbroker import failures
from kbroker.coordinator.service import drop
from kbroker.internal_topics import OFFSETS_TOPIC
from kbroker.log.partition import PartitionLog
from kbroker.topics import TopicManager
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    ConsumerGroupDescribeRequest,
    DeleteGroupsRequest,
    ListGroupsRequest,
    MetadataRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
)
from tests.kbroker.helpers import (
    commit_request,
    create_topic,
    described_members,
    first_heartbeat,
    offset_delete_request,
    produce,
    records,
)

FAST = {"offsets.topic.num.partitions": 1}


class FullDisk:
    """Writes of chosen logs (and the topics file) fail with ENOSPC while ``full``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        append = PartitionLog.append
        save = TopicManager._save

        def failing_append(log: PartitionLog, *args: Any, **kwargs: Any) -> Any:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device", str(log.directory))
            return append(log, *args, **kwargs)

        def failing_save(topics: TopicManager, *args: Any, **kwargs: Any) -> Any:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            return save(topics, *args, **kwargs)

        monkeypatch.setattr(PartitionLog, "append", failing_append)
        monkeypatch.setattr(TopicManager, "_save", failing_save)
        monkeypatch.setattr(failures, "_last", {})


def _commit(offset: int) -> OffsetCommitRequest:
    return commit_request("g", {("t", 0): offset})


async def _on_full_disk(
    make_server: Any, monkeypatch: pytest.MonkeyPatch, partitions: int = 1, **config: Any
) -> tuple[FullDisk, Any, Any]:
    """A disk that fills on demand, a server on it with topic "t" of ``partitions``
    partitions (none if 0), and a client connected to it."""
    disk = FullDisk(monkeypatch)
    server = await make_server(**config)
    if partitions:
        create_topic(server, "t", partitions)
    return disk, server, await server.connect()


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and text in r.getMessage()
    ]


async def test_offset_commit_on_a_full_disk_is_not_coordinator(
    make_server, monkeypatch, caplog
) -> None:
    # GroupMetadataManager.maybeConvertOffsetCommitError: KAFKA_STORAGE_ERROR on the
    # append of __consumer_offsets answers NOT_COORDINATOR (the client looks the
    # coordinator up again and retries), not UNKNOWN_SERVER_ERROR.
    disk, server, client = await _on_full_disk(make_server, monkeypatch, **FAST)
    assert (await client.request(_commit(3))).topics[0].partitions[0].error_code == 0
    disk.full = True
    with caplog.at_level(logging.WARNING):
        for offset in range(4, 14):
            response = await client.request(_commit(offset))
            assert response.topics[0].partitions[0].error_code == ErrorCode.NOT_COORDINATOR
    lines = _warnings(caplog, OFFSETS_TOPIC)
    assert len(lines) == 1 and "No space left on device" in lines[0]
    disk.full = False
    assert (await client.request(_commit(20))).topics[0].partitions[0].error_code == 0
    fetched = await client.request(
        OffsetFetchRequest(
            groups=[OffsetFetchRequest.OffsetFetchRequestGroup(group_id="g", topics=None)]
        )
    )
    assert fetched.groups[0].topics[0].partitions[0].committed_offset == 20


async def test_consumer_group_heartbeat_on_a_full_disk_is_not_coordinator(
    make_server, monkeypatch, caplog
) -> None:
    # KIP-848: the new group coordinator's failed append (KafkaStorageException) goes
    # through CoordinatorOperationExceptionHelper.handleOperationException, which answers
    # NOT_COORDINATOR, as the classic path's storeGroup / storeOffsets do; the member
    # looks the coordinator up again and rejoins from what it had.
    disk, server, client = await _on_full_disk(make_server, monkeypatch, **FAST)
    assert (await client.request(first_heartbeat("g", "t", member_id="a"))).error_code == 0
    disk.full = True
    with caplog.at_level(logging.WARNING):
        for member in ("b", "c"):
            response = await client.request(first_heartbeat("g", "t", member_id=member))
            assert response.error_code == ErrorCode.NOT_COORDINATOR
            assert (response.member_epoch, response.assignment) == (0, None)
    assert len(_warnings(caplog, OFFSETS_TOPIC)) == 1
    described = await client.request(ConsumerGroupDescribeRequest(group_ids=["g"]))
    assert described_members(described.groups[0]) == (1, {"a": (1, [0])})
    disk.full = False
    joined = await client.request(first_heartbeat("g", "t", member_id="b"))
    assert (joined.error_code, joined.member_epoch) == (ErrorCode.NONE, 2)


async def test_metadata_auto_creation_on_a_full_disk_answers_an_error(
    make_server, monkeypatch, caplog
) -> None:
    disk, server, client = await _on_full_disk(make_server, monkeypatch, partitions=0)
    disk.full = True
    with caplog.at_level(logging.WARNING):
        for name in ("a", "b", "c"):
            response = await client.request(
                MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=name)])
            )
            (topic,) = response.topics
            assert (topic.name, topic.error_code) == (name, ErrorCode.KAFKA_STORAGE_ERROR)
    assert len(_warnings(caplog, "auto-creating topic")) == 1
    assert server.broker.topics.get("a") is None  # nothing half-created
    disk.full = False
    response = await client.request(
        MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="a")])
    )
    assert response.topics[0].error_code == ErrorCode.NONE
    assert len(response.topics[0].partitions) == 1


async def test_produce_on_a_full_disk_is_logged_once(make_server, monkeypatch, caplog) -> None:
    disk, server, client = await _on_full_disk(make_server, monkeypatch)
    disk.full = True
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            part = await produce(client, "t", 0, records(1))
            assert part.error_code == ErrorCode.KAFKA_STORAGE_ERROR
    assert len(_warnings(caplog, "No space left on device")) == 1
    disk.full = False
    assert (await produce(client, "t", 0, records(1))).error_code == ErrorCode.NONE


def test_rate_limited_warning_counts_what_it_left_out(monkeypatch, caplog) -> None:
    now = [100.0]
    monkeypatch.setattr(failures, "_last", {})
    monkeypatch.setattr(failures.time, "monotonic", lambda: now[0])
    logger = logging.getLogger("kbroker.tests.failures")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        assert failures.warn_rate_limited(logger, "k", "disk %s", "full")
        assert not failures.warn_rate_limited(logger, "k", "disk %s", "full")
        assert failures.warn_rate_limited(logger, "other", "something else")
        now[0] += 61
        assert failures.warn_rate_limited(logger, "k", "disk %s", "full")
    assert [r.getMessage() for r in caplog.records] == [
        "disk full",
        "something else",
        "disk full (1 more like it in the last 61 s)",
    ]


async def test_classic_group_deletions_on_a_full_disk_are_answered_none(
    make_server, monkeypatch, caplog
) -> None:
    # Kafka 3.9's classic coordinator (GroupCoordinator.handleDeleteGroups /
    # handleDeleteOffsets) drops the group or the offsets from memory, then
    # GroupMetadataManager.cleanupGroupMetadata appends their tombstones with acks=0 and
    # only logs a failed append: DeleteGroups and OffsetDelete answer NONE, and what was
    # deleted is gone until the coordinator is loaded again from the log.
    disk, server, client = await _on_full_disk(make_server, monkeypatch, 2, **FAST)
    for group_id, tps in (("solo", {("t", 0): 3, ("t", 1): 4}), ("gone", {("t", 0): 5})):
        committed = await client.request(commit_request(group_id, tps))
        assert {p.error_code for p in committed.topics[0].partitions} == {ErrorCode.NONE}
    disk.full = True
    with caplog.at_level(logging.WARNING):
        deleted = await client.request(offset_delete_request("solo", "t", 0))
        assert deleted.error_code == ErrorCode.NONE
        assert deleted.topics[0].partitions[0].error_code == ErrorCode.NONE
        gone = await client.request(DeleteGroupsRequest(groups_names=["gone"]))
        assert gone.results[0].error_code == ErrorCode.NONE
    assert len(_warnings(caplog, OFFSETS_TOPIC)) == 1  # the disk, said once
    assert [
        r for r in caplog.records if r.levelno == logging.ERROR and "tombstones" in r.getMessage()
    ]
    assert await _fetched(client, "solo") == {("t", 1): 4}
    assert await _fetched(client, "gone") == {}
    listed = await client.request(ListGroupsRequest())
    assert sorted(g.group_id for g in listed.groups) == ["solo"]
    # No tombstone reached the log: a coordinator loaded from it has both again.
    disk.full = False
    drop(server.broker)
    assert await _fetched(client, "solo") == {("t", 0): 3, ("t", 1): 4}
    assert await _fetched(client, "gone") == {("t", 0): 5}


async def _fetched(client: Any, group_id: str) -> dict[tuple[str, int], int]:
    """Group ``group_id``'s committed offsets (OffsetFetch of every partition)."""
    OF = OffsetFetchRequest
    fetched = await client.request(
        OF(groups=[OF.OffsetFetchRequestGroup(group_id=group_id, topics=None)])
    )
    return {
        (t.name, p.partition_index): p.committed_offset
        for t in fetched.groups[0].topics
        for p in t.partitions
    }
