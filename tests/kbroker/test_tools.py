"""Ops commands (`kbroker topics|groups|produce|consume`) against a live broker; output checked."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

import kbroker
from kbroker.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live() -> Iterator[kbroker.Broker]:
    """One embedded broker for the module; tests use their own topic and group names."""
    with kbroker.Broker(config={"num.partitions": 1}) as broker:
        yield broker


@pytest.fixture
def name() -> str:
    """A fresh topic / group name."""
    return f"tools-{uuid.uuid4().hex[:8]}"


class Kbroker:
    """Runs `kbroker ARGS...` in-process against the live broker, capturing its output."""

    def __init__(
        self,
        live: kbroker.Broker,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.live, self.capsys, self.monkeypatch = live, capsys, monkeypatch

    def __call__(self, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        self.capsys.readouterr()
        code = main(
            [*args, "--bootstrap-server", self.live.bootstrap_servers, "--request-timeout", "20"]
        )
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def run(
    live: kbroker.Broker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Kbroker:
    """Call `kbroker ...` and get (exit status, stdout, stderr)."""
    return Kbroker(live, capsys, monkeypatch)


def test_topics_create_list_describe_delete(run: Kbroker, name: str) -> None:
    code, out, _ = run(
        "topics", "create", name, "--partitions", "3", "--config", "retention.ms=60000"
    )
    assert (code, out) == (0, f"Created topic {name}.\n")
    code, out, _ = run("topics", "list")
    assert code == 0 and name in out.splitlines()
    code, out, _ = run("topics", "describe", name)
    lines = out.splitlines()
    assert code == 0
    topic_id = lines[0].split("\t")[1].removeprefix("TopicId: ")
    assert len(topic_id) == 22  # Kafka prints the UUID base64url-encoded, unpadded
    assert lines[0] == (
        f"Topic: {name}\tTopicId: {topic_id}\tPartitionCount: 3\t"
        "ReplicationFactor: 1\tConfigs: retention.ms=60000"
    )
    assert lines[1:] == [
        f"\tTopic: {name}\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1" for p in range(3)
    ]
    code, out, _ = run("topics", "delete", name)
    assert (code, out) == (0, f"Deleted topic {name}.\n")
    code, out, _ = run("topics", "list")
    assert name not in out.splitlines()


def test_topics_errors_are_one_line_with_kafkas_error_name(run: Kbroker, name: str) -> None:
    assert run("topics", "create", name)[0] == 0
    code, out, err = run("topics", "create", name)
    assert code == 1 and out == ""
    assert err == f"kbroker topics: TOPIC_ALREADY_EXISTS: Topic '{name}' already exists.\n"
    assert run("topics", "create", name, "--if-not-exists")[0] == 0
    code, _, err = run("topics", "create", "bad name!")
    assert code == 1 and 'TOPIC_EXCEPTION: Topic name "bad name!" is illegal' in err
    code, _, err = run("topics", "delete", f"{name}-missing")
    assert code == 1 and "UNKNOWN_TOPIC_OR_PART" in err
    assert run("topics", "delete", f"{name}-missing", "--if-exists")[0] == 0
    code, _, err = run("topics", "describe", f"{name}-missing")
    assert code == 1 and f"topic '{name}-missing' does not exist" in err


def test_topics_alter_partitions_and_configs(run: Kbroker, name: str) -> None:
    assert (
        run("topics", "create", name, "--partitions", "1", "--config", "retention.ms=1000")[0] == 0
    )
    code, out, _ = run(
        "topics",
        "alter",
        name,
        "--partitions",
        "4",
        "--config",
        "cleanup.policy=compact",
        "--delete-config",
        "retention.ms",
    )
    assert code == 0
    assert out.splitlines() == [
        f"Topic {name} now has 4 partitions.",
        f"Altered configs of topic {name}: cleanup.policy=compact, -retention.ms.",
    ]
    _, out, _ = run("topics", "describe", name)
    assert out.splitlines()[0].endswith(
        "PartitionCount: 4\tReplicationFactor: 1\tConfigs: cleanup.policy=compact"
    )
    code, _, err = run("topics", "alter", name, "--partitions", "2")
    assert code == 1 and "INVALID_PARTITIONS" in err
    code, _, err = run("topics", "alter", name, "--config", "retention.ms=banana")
    assert code == 1 and "INVALID_CONFIG" in err


def test_produce_then_consume_with_keys_json_and_limits(run: Kbroker, name: str) -> None:
    assert run("topics", "create", name, "--partitions", "1")[0] == 0
    code, out, err = run("produce", name, "--key-separator", ":", stdin=b"k1:v1\nk2:v:2\nk3:\n")
    assert (code, out, err) == (0, "", "")
    code, out, err = run(
        "consume", name, "--from-beginning", "--timeout", "3", "--key-separator", "="
    )
    assert code == 0
    assert out.splitlines() == ["k1=v1", "k2=v:2", "k3="]
    assert err.endswith("Processed a total of 3 messages\n")
    code, out, _ = run("consume", name, "--from-beginning", "--max-messages", "2", "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 2
    assert records[0]["key"] == "k1" and records[0]["value"] == "v1"
    assert records[1] | {"timestamp": 0} == {
        "topic": name,
        "partition": 0,
        "offset": 1,
        "timestamp": 0,
        "key": "k2",
        "value": "v:2",
        "headers": [],
    }
    # Without --from-beginning only new records are shown: none arrive within the timeout.
    code, out, err = run("consume", name, "--timeout", "2")
    assert (code, out) == (0, "") and "Processed a total of 0 messages" in err


def test_produce_without_keys_and_to_a_partition(
    run: Kbroker, live: kbroker.Broker, name: str
) -> None:
    assert run("topics", "create", name, "--partitions", "2")[0] == 0
    assert run("produce", name, "--partition", "1", stdin=b"a\nb\n")[0] == 0
    consumer = Consumer(
        {
            "bootstrap.servers": live.bootstrap_servers,
            "group.id": "x",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    consumer.assign([TopicPartition(name, 1, 0)])
    got = []
    for _ in range(40):
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append((msg.key(), msg.value()))
        if len(got) == 2:
            break
    consumer.close()
    assert got == [(None, b"a"), (None, b"b")]
    code, _, err = run("produce", name, "--key-separator", ":", stdin=b"no separator\n")
    assert code == 1 and "no key separator ':' on line 1" in err


def test_consume_missing_topic_fails(run: Kbroker, name: str) -> None:
    code, _, err = run("consume", name, "--timeout", "1")
    assert code == 1 and f"topic '{name}' does not exist" in err


def test_groups_list_and_describe_show_offsets_and_lag(run: Kbroker, name: str) -> None:
    group = f"{name}-group"
    assert run("topics", "create", name, "--partitions", "1")[0] == 0
    assert run("produce", name, stdin=b"1\n2\n3\n4\n5\n")[0] == 0
    code, out, _ = run(
        "consume",
        name,
        "--group",
        group,
        "--from-beginning",
        "--max-messages",
        "3",
        "--timeout",
        "20",
    )
    assert code == 0 and out.splitlines() == ["1", "2", "3"]
    code, out, _ = run("groups", "list")
    assert code == 0 and group in out.splitlines()
    # The commits created Kafka's internal offsets topic, which --exclude-internal hides.
    assert "__consumer_offsets" in run("topics", "list")[1].splitlines()
    listed = run("topics", "list", "--exclude-internal")[1].splitlines()
    assert name in listed and "__consumer_offsets" not in listed
    described = run("topics", "describe", "--exclude-internal")[1]
    assert f"Topic: {name}\tTopicId: " in described and "__consumer_offsets" not in described
    code, out, _ = run("groups", "list", "--state")
    assert [line.split() for line in out.splitlines() if line.startswith(group)] == [
        [group, "Empty"]
    ]
    code, out, _ = run("groups", "describe", group)
    assert code == 0
    assert f"Consumer group '{group}' has no active members." in out
    table = [line.split() for line in out.splitlines() if line.strip()][1:]
    assert table[0] == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    assert table[1:] == [[group, name, "0", "3", "5", "2", "-", "-", "-"]]
    code, _, err = run("groups", "describe", f"{group}-missing")
    assert code == 1 and f"consumer group '{group}-missing' does not exist" in err


def test_groups_describe_shows_the_active_member(
    run: Kbroker, live: kbroker.Broker, name: str
) -> None:
    group = f"{name}-group"
    assert run("topics", "create", name, "--partitions", "2")[0] == 0
    consumer = Consumer(
        {
            "bootstrap.servers": live.bootstrap_servers,
            "group.id": group,
            "client.id": "member-one",
            "log_level": 3,
        }
    )
    consumer.subscribe([name])
    try:
        for _ in range(60):
            consumer.poll(0.5)
            if len(consumer.assignment()) == 2:
                break
        assert len(consumer.assignment()) == 2
        code, out, _ = run("groups", "describe", group)
    finally:
        consumer.close()
    rows = [line.split() for line in out.splitlines() if line.startswith(group)]
    assert code == 0 and "no active members" not in out
    # Nothing committed yet: offset and lag are "-", the member owns both partitions.
    assert [(r[1], r[2], r[3], r[5], r[8]) for r in rows] == [
        (name, "0", "-", "-", "member-one"),
        (name, "1", "-", "-", "member-one"),
    ]
    assert all(r[6].startswith("member-one") for r in rows)


def test_the_kbroker_script_dispatches_subcommands(live: kbroker.Broker, name: str) -> None:
    # The real entry point: `kbroker topics ...` runs a tool, plain `kbroker` runs a broker.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kbroker",
            "topics",
            "create",
            name,
            "--bootstrap-server",
            live.bootstrap_servers,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Created topic {name}.\n"
    result = subprocess.run(
        [sys.executable, "-m", "kbroker", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--listen" in result.stdout


def test_unreachable_broker_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["topics", "list", "--bootstrap-server", "127.0.0.1:1", "--request-timeout", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("kbroker topics: cannot reach 127.0.0.1:1") and err.count("\n") == 1
