"""Ops commands (`kbroker topics|groups|produce|consume`) against a live broker; output checked."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka import Uuid as KafkaUuid
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTP
from kafka.partitioner.default import DefaultPartitioner

import kbroker
from kbroker.cli import main
from kbroker.tools.common import topic_id_text
from kbroker.topics import uuid_to_base64
from kbroker.topics_store import read_entries
from tests.interrupt import ctrl_c_reaches_children

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
        try:
            code = main(
                [
                    *args,
                    "--bootstrap-server",
                    self.live.bootstrap_servers,
                    "--request-timeout",
                    "20",
                ]
            )
        except SystemExit as exc:  # a usage error: argparse exits with status 2
            code = int(exc.code or 0)
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
        f"\tTopic: {name}\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1\t"
        "StartOffset: 0\tEndOffset: 0\tSize: 0"
        for p in range(3)
    ]
    code, out, _ = run("topics", "delete", name)
    assert (code, out) == (0, f"Deleted topic {name}.\n")
    code, out, _ = run("topics", "list")
    assert name not in out.splitlines()


def test_topics_describe_shows_offsets_size_and_the_brokers_topic_id(
    run: Kbroker, live: kbroker.Broker, name: str
) -> None:
    assert run("topics", "create", name, "--partitions", "2")[0] == 0
    assert run("produce", name, "--partition", "1", stdin=b"a\nbb\nccc\n")[0] == 0
    admin = AdminClient({"bootstrap.servers": live.bootstrap_servers, "log_level": 3})
    admin.delete_records([TopicPartition(name, 1, 1)])[TopicPartition(name, 1, 1)].result(20)
    code, out, _ = run("topics", "describe", name, "--json")
    assert code == 0
    [topic] = json.loads(out)
    assert live.data_dir is not None
    on_disk = {
        p: sum(f.stat().st_size for f in (live.data_dir / f"{name}-{p}").glob("*.log"))
        for p in (0, 1)
    }
    assert on_disk[1] > 0
    assert [
        (p["partition"], p["start_offset"], p["end_offset"], p["size"]) for p in topic["partitions"]
    ] == [(0, 0, 0, on_disk[0]), (1, 1, 3, on_disk[1])]
    # The id as the broker stores (and logs) it: Kafka's URL-safe base64.
    stored, _, _ = read_entries(live.data_dir)
    assert topic["topic_id"] == stored[name]["topic_id"]
    assert topic | {"partitions": []} == {
        "topic": name,
        "topic_id": topic["topic_id"],
        "internal": False,
        "partition_count": 2,
        "replication_factor": 1,
        "configs": {},
        "partitions": [],
    }
    text = run("topics", "describe", name)[1].splitlines()
    assert text[0].startswith(f"Topic: {name}\tTopicId: {topic['topic_id']}\t")
    assert text[2].endswith(f"\tStartOffset: 1\tEndOffset: 3\tSize: {on_disk[1]}")
    code, out, _ = run("topics", "list", "--json")
    assert code == 0 and name in json.loads(out)


def test_topic_ids_print_url_safe() -> None:
    # librdkafka's own Uuid.__str__ uses the standard alphabet ("/" and "+"), which
    # differs from what Kafka and the broker print whenever those characters occur.
    raw = uuid.UUID(int=(0xFFFFFFFFFFFFFFFB << 64) | 7)
    assert topic_id_text(KafkaUuid(-5, 7)) == uuid_to_base64(raw) == "__________sAAAAAAAAABw"


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
    # kafka-consumer-groups.sh --describe's columns.
    assert table[0] == (
        "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID".split()
    )
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


def _started(*args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """`python -m kbroker ARGS` started as a real process (``popen``: its Popen arguments)."""
    return subprocess.Popen([sys.executable, "-m", "kbroker", *args], cwd=REPO, **popen)


def _kbroker_process(*args: str, timeout: float = 60) -> tuple[int, str, str, float]:
    """`python -m kbroker ARGS` as a real process: (status, stdout, stderr, seconds).

    A process, because librdkafka writes its log lines to file descriptor 2 directly,
    where pytest's capsys would not see them.
    """
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "kbroker", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode, result.stdout, result.stderr, time.monotonic() - started


def test_the_kbroker_script_dispatches_subcommands(live: kbroker.Broker, name: str) -> None:
    # The real entry point: `kbroker topics ...` runs a tool, plain `kbroker` runs a broker.
    code, out, err, _ = _kbroker_process(
        "topics", "create", name, "--bootstrap-server", live.bootstrap_servers
    )
    assert code == 0, err
    assert out == f"Created topic {name}.\n"
    code, out, _, _ = _kbroker_process("--help")
    assert code == 0 and "--listen" in out


def test_unreachable_broker_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["topics", "list", "--bootstrap-server", "127.0.0.1:1", "--request-timeout", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("kbroker topics: cannot reach 127.0.0.1:1") and err.count("\n") == 1


# -- produce: streaming, murmur2, headers, failures -------------------------------------------
def _read_all(bootstrap: str, topic: str, count: int) -> list[Any]:
    """Every record of ``topic`` (at least ``count``), read by kafka-python, an independent
    client: ConsumerRecords with partition, key, value, headers, timestamp."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=20_000
    )
    try:
        parts = [KafkaTP(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        got = []
        for record in consumer:
            got.append(record)
            if len(got) >= count:
                break
        return got
    finally:
        consumer.close()


class _SevenPartitions:
    """The cluster view kafka-python's partitioner asks: every topic has partitions 0..6."""

    def topics(self) -> set[str]:
        return _AnyTopic()

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(7))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(7))


class _AnyTopic(set[str]):
    def __contains__(self, item: object) -> bool:
        return True


def test_keyed_lines_land_where_kafka_pythons_partitioner_puts_them(
    run: Kbroker, live: kbroker.Broker, name: str
) -> None:
    assert run("topics", "create", name, "--partitions", "7")[0] == 0
    keys = [f"key-{i}" for i in range(300)] + ["", "ü", "a longer key with spaces"]
    lines = "".join(f"{k}:{i}\n" for i, k in enumerate(keys)).encode()
    assert run("produce", name, "--key-separator", ":", stdin=lines)[:2] == (0, "")
    partitioner, cluster = DefaultPartitioner(), _SevenPartitions()
    expected = {
        str(i): partitioner.partition(name, k, k.encode(), None, None, cluster)
        for i, k in enumerate(keys)
    }
    got = {r.value.decode(): r.partition for r in _read_all(live.bootstrap_servers, name, 303)}
    assert got == expected
    assert len(set(expected.values())) == 7  # the keys spread: the check is not vacuous


def test_produce_headers_on_every_record(run: Kbroker, live: kbroker.Broker, name: str) -> None:
    assert run("topics", "create", name)[0] == 0
    code, _, err = run(
        "produce", name, "--header", "source=cli", "--header", "expr=a=b", stdin=b"x\ny\n"
    )
    assert code == 0, err
    records = _read_all(live.bootstrap_servers, name, 2)
    assert [(r.value, r.headers) for r in records] == [
        (b"x", [("source", b"cli"), ("expr", b"a=b")]),
        (b"y", [("source", b"cli"), ("expr", b"a=b")]),
    ]
    code, _, err = run("produce", name, "--header", "novalue", stdin=b"z\n")
    assert code == 1 and "--header 'novalue' is not KEY=VALUE" in err


def test_produce_to_a_missing_topic_fails_fast_without_auto_creation(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with kbroker.Broker(config={"auto.create.topics.enable": False}) as broker:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\n")))
        started = time.monotonic()
        code = main(["produce", "nowhere", "--bootstrap-server", broker.bootstrap_servers])
        elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1 and err == "kbroker produce: topic 'nowhere' does not exist\n"
    assert elapsed < 10  # not the 30 s delivery timeout


def test_a_bad_line_is_reported_after_the_good_lines_before_it_are_delivered(
    run: Kbroker, live: kbroker.Broker, name: str
) -> None:
    assert run("topics", "create", name)[0] == 0
    # A long linger keeps the good lines in the client's queue until the tool flushes them.
    code, _, err = run(
        "produce",
        name,
        "--key-separator",
        ":",
        "--command-config",
        "linger.ms=10000",
        stdin=b"a:1\nb:2\nno separator\nc:3\n",
    )
    assert code == 1
    assert err == ("kbroker produce: no key separator ':' on line 3 (2 record(s) delivered)\n")
    records = _read_all(live.bootstrap_servers, name, 2)
    assert [(r.key, r.value) for r in records] == [(b"a", b"1"), (b"b", b"2")]


def _read_until(fd: int, wanted: bytes, timeout: float = 20.0) -> bytes:
    """Bytes from a pty until ``wanted`` shows up (AssertionError after ``timeout``)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            seen += os.read(fd, 4096)
    return seen


@contextlib.contextmanager
def _on_a_terminal(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`python -m kbroker ARGS` with a pseudo-terminal as stdin/stdout/stderr: yields the
    process and the terminal's controlling side (to type into and read from)."""
    controller, terminal = pty.openpty()
    with ctrl_c_reaches_children():  # the tests end it with Ctrl-C
        proc = _started(*args, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    try:
        yield proc, controller
    finally:
        proc.kill()
        proc.wait()
        os.close(controller)


def test_interactive_produce_prompts_sends_on_enter_and_flushes_on_ctrl_c(
    live: kbroker.Broker, name: str
) -> None:
    bootstrap = live.bootstrap_servers
    assert main(["topics", "create", name, "--bootstrap-server", bootstrap]) == 0
    with _on_a_terminal("produce", name, "--bootstrap-server", bootstrap) as (proc, tty):
        _read_until(tty, b">")
        os.write(tty, b"first\n")
        _read_until(tty, b">")
        # Sent on Enter: another client reads it while the producer is still open.
        assert [r.value for r in _read_all(bootstrap, name, 1)] == [b"first"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    # Ctrl-C with records still queued (a long linger): they are delivered before exit.
    with _on_a_terminal(
        *("produce", name, "--bootstrap-server", bootstrap),
        *("--command-config", "linger.ms=10000"),
    ) as (proc, tty):
        _read_until(tty, b">")
        os.write(tty, b"second\n")
        _read_until(tty, b">")
        os.write(tty, b"third\n")
        _read_until(tty, b">")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    records = _read_all(bootstrap, name, 3)
    assert [r.value for r in records] == [b"first", b"second", b"third"]


# -- consume: where to start, what to print ---------------------------------------------------
@pytest.fixture
def stamped(live: kbroker.Broker, name: str) -> str:
    """A 2-partition topic: partition 0 holds k0..k3 with timestamps 1000, 2000, 3000, 4000
    (k1 with two headers), partition 1 holds one record with a null key at 2500."""
    admin_out = main(
        [
            "topics",
            "create",
            name,
            "--partitions",
            "2",
            "--bootstrap-server",
            live.bootstrap_servers,
        ]
    )
    assert admin_out == 0
    producer = Producer({"bootstrap.servers": live.bootstrap_servers, "log_level": 3})
    for i in range(4):
        headers = [("h1", b"v1"), ("h2", b"v2")] if i == 1 else None
        producer.produce(
            name, key=f"k{i}", value=f"v{i}", partition=0, timestamp=(i + 1) * 1000, headers=headers
        )
    producer.produce(name, value=b"lone", partition=1, timestamp=2500)
    assert producer.flush(20) == 0
    return name


def test_consume_offset_earliest_latest_and_n(run: Kbroker, stamped: str) -> None:
    code, out, _ = run("consume", stamped, "--partition", "0", "--offset", "2", "--timeout", "2")
    assert code == 0 and out.splitlines() == ["v2", "v3"]
    code, out, _ = run("consume", stamped, "--offset", "earliest", "--max-messages", "5")
    assert code == 0 and sorted(out.splitlines()) == ["lone", "v0", "v1", "v2", "v3"]
    code, out, _ = run("consume", stamped, "--offset", "latest", "--timeout", "2")
    assert (code, out) == (0, "")
    code, _, err = run("consume", stamped, "--offset", "first")
    assert code == 2 and "expected earliest, latest or an offset" in err
    # A group starts from its committed offsets, as with kafka-console-consumer.
    code, _, err = run("consume", stamped, "--group", "g", "--offset", "1")
    assert code == 1 and "--offset N and --from-timestamp cannot be used with --group" in err
    code, _, err = run("produce", stamped, "--partition", "5", stdin=b"x\n")
    assert code == 1 and f"topic '{stamped}' has no partition 5" in err


def test_consume_from_timestamp(run: Kbroker, stamped: str) -> None:
    code, out, _ = run("consume", stamped, "--from-timestamp", "2500", "--timeout", "2")
    assert code == 0 and sorted(out.splitlines()) == ["lone", "v2", "v3"]
    # 1970-01-01T00:00:03 UTC is 3000 ms; with an explicit zone offset, the same moment.
    for moment in ("1970-01-01T00:00:03", "1970-01-01T01:00:03+01:00"):
        code, out, _ = run(
            *("consume", stamped, "--partition", "0"),
            *("--from-timestamp", moment, "--timeout", "2"),
        )
        assert code == 0 and out.splitlines() == ["v2", "v3"], moment
    # After the last record: nothing, as from the end.
    code, out, _ = run("consume", stamped, "--from-timestamp", "9999", "--timeout", "2")
    assert (code, out) == (0, "")


def test_consume_print_properties_like_kafkas_console_consumer(run: Kbroker, stamped: str) -> None:
    code, out, _ = run(
        "consume",
        stamped,
        "--from-beginning",
        "--partition",
        "0",
        "--max-messages",
        "2",
        *("--property", "print.timestamp=true", "--property", "print.partition=true"),
        *("--property", "print.offset=true", "--property", "print.headers=true"),
        *("--property", "print.key=true"),
    )
    assert code == 0
    assert out.splitlines() == [
        "CreateTime:1000\tPartition:0\tOffset:0\tNO_HEADERS\tk0\tv0",
        "CreateTime:2000\tPartition:0\tOffset:1\th1:v1,h2:v2\tk1\tv1",
    ]
    code, out, _ = run(
        "consume",
        stamped,
        "--from-beginning",
        "--partition",
        "1",
        "--max-messages",
        "1",
        *("--property", "print.key=true", "--property", "key.separator= | "),
        *("--property", "null.literal=<none>"),
    )
    assert code == 0 and out == "<none> | lone\n"
    code, _, err = run("consume", stamped, "--property", "print.colour=true")
    assert code == 1 and "unknown --property 'print.colour'" in err


# -- groups: reset-offsets, delete, --json ----------------------------------------------------
def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int | None]:
    """The group's committed offsets as kafka-python (an independent client) reads them."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return [consumer.committed(KafkaTP(topic, p)) for p in range(partitions)]
    finally:
        consumer.close()


def test_groups_reset_offsets_dry_run_then_execute(
    run: Kbroker, live: kbroker.Broker, stamped: str
) -> None:
    group = f"{stamped}-group"
    bootstrap = live.bootstrap_servers
    reset = ("groups", "reset-offsets", group, "--topic", stamped)
    # Dry run by default: the plan is printed, nothing is committed.
    code, out, err = run(*reset, "--to-latest")
    assert code == 0 and "dry run" in err
    assert [line.split() for line in out.splitlines()] == [
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        [group, stamped, "0", "4"],
        [group, stamped, "1", "1"],
    ]
    assert _committed(bootstrap, group, stamped, 2) == [None, None]
    assert run(*reset, "--to-latest", "--execute")[0] == 0
    assert _committed(bootstrap, group, stamped, 2) == [4, 1]
    assert run(*reset, "--to-earliest", "--execute")[0] == 0
    assert _committed(bootstrap, group, stamped, 2) == [0, 0]
    # Out of range is clamped into [log start, log end], as Kafka's tool does.
    assert run(*reset, "--to-offset", "99", "--execute")[0] == 0
    assert _committed(bootstrap, group, stamped, 2) == [4, 1]
    code, out, _ = run(
        "groups", "reset-offsets", group, "--topic", f"{stamped}:0", "--shift-by", "-3",
        "--execute", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == [{"group": group, "topic": stamped, "partition": 0, "new_offset": 1}]
    assert _committed(bootstrap, group, stamped, 2) == [1, 1]
    # Partition 0 has records at 1000..4000 ms: 2.5 s is offset 2; partition 1's one
    # record (2500 ms) is at offset 0; a time after everything is the log end.
    assert run(*reset, "--to-datetime", "1970-01-01T00:00:02.500", "--execute")[0] == 0
    assert _committed(bootstrap, group, stamped, 2) == [2, 0]
    assert run(*reset, "--to-datetime", "2030-01-01T00:00:00Z", "--execute")[0] == 0
    assert _committed(bootstrap, group, stamped, 2) == [4, 1]
    code, out, _ = run("groups", "reset-offsets", group, "--all-topics", "--to-earliest")
    assert code == 0 and len(out.splitlines()) == 3
    code, _, err = run("groups", "reset-offsets", group, "--topic", stamped)
    assert code == 2 and "one of the arguments --to-earliest" in err


def test_groups_reset_offsets_refuses_an_active_group(
    run: Kbroker, live: kbroker.Broker, stamped: str
) -> None:
    group = f"{stamped}-group"
    consumer = Consumer(
        {"bootstrap.servers": live.bootstrap_servers, "group.id": group, "log_level": 3}
    )
    consumer.subscribe([stamped])
    try:
        for _ in range(60):
            consumer.poll(0.5)
            if consumer.assignment():
                break
        code, _, err = run(
            "groups", "reset-offsets", group, "--all-topics", "--to-earliest", "--execute"
        )
        assert code == 1
        assert err == (
            f"kbroker groups: Assignments can only be reset if the group '{group}' is "
            "inactive, but the current state is Stable.\n"
        )
        code, _, err = run("groups", "delete", group)
        assert code == 1 and "NON_EMPTY_GROUP" in err
    finally:
        consumer.close()


def test_groups_delete_and_json(run: Kbroker, live: kbroker.Broker, stamped: str) -> None:
    group = f"{stamped}-group"
    reset = ("groups", "reset-offsets", group, "--topic", stamped, "--to-offset", "1")
    assert run(*reset, "--execute")[0] == 0
    code, out, _ = run("groups", "list", "--json")
    assert code == 0 and {"group": group, "state": "Empty"} in json.loads(out)
    code, out, _ = run("groups", "describe", group, "--json")
    assert code == 0
    assert json.loads(out) == {
        "group": group,
        "state": "Empty",
        "members": [],
        "offsets": [
            {
                "topic": stamped,
                "partition": p,
                "current_offset": 1,
                "log_end_offset": end,
                "lag": end - 1,
                "consumer_id": None,
                "host": None,
                "client_id": None,
            }
            for p, end in ((0, 4), (1, 1))
        ],
    }
    code, out, _ = run("groups", "delete", group)
    assert (code, out) == (
        0,
        f"Deletion of requested consumer groups ('{group}') was successful.\n",
    )
    assert group not in run("groups", "list")[1].splitlines()
    assert _committed(live.bootstrap_servers, group, stamped, 2) == [None, None]
    code, _, err = run("groups", "delete", group)
    assert code == 1 and "GROUP_ID_NOT_FOUND" in err


@pytest.mark.parametrize(
    "command",
    [
        ("topics", "list"),
        ("topics", "describe", "t"),
        ("groups", "list"),
        ("produce", "t"),
        ("consume", "t"),
    ],
)
def test_an_unreachable_broker_is_one_line_within_seconds(command: tuple[str, ...]) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        code, out, err, elapsed = _kbroker_process(
            *command, "--bootstrap-server", f"127.0.0.1:{port}"
        )
    assert code == 1 and out == ""
    assert err == f"kbroker {command[0]}: cannot reach 127.0.0.1:{port}: Connection refused\n"
    assert elapsed < 10  # the default request timeout is 30 s


def test_a_peer_that_is_not_kafka_gives_no_client_log_lines() -> None:
    # It accepts connections, then hangs up: librdkafka retries and would log each failure.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        port = server.getsockname()[1]
        stop = threading.Event()

        def hang_up() -> None:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    server.accept()[0].close()
                except TimeoutError:
                    continue

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        try:
            code, out, err, _ = _kbroker_process(
                "topics", "list", "--bootstrap-server", f"127.0.0.1:{port}",
                "--request-timeout", "3",
            )  # fmt: skip
        finally:
            stop.set()
            thread.join()
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"kbroker topics: cannot reach 127.0.0.1:{port}")
    assert "%3|" not in err and "FAIL" not in err


def test_a_broker_lost_while_consuming_is_one_warning_line() -> None:
    with kbroker.Broker(config={"num.partitions": 1}) as broker:
        bootstrap = broker.bootstrap_servers
        assert main(["topics", "create", "t", "--bootstrap-server", bootstrap]) == 0
        proc = _started(
            *("consume", "t", "--offset", "earliest", "--timeout", "5"),
            *("--bootstrap-server", bootstrap),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        try:
            producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
            producer.produce("t", value=b"before")
            assert producer.flush(20) == 0
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"before\n"  # consuming: now the broker goes
        except BaseException:
            proc.kill()
            raise
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == b""
    port = bootstrap.rpartition(":")[2]
    assert err.decode().splitlines() == [
        f"kbroker consume: warning: lost the connection to 127.0.0.1:{port}; retrying",
        "Processed a total of 1 messages",
    ]


def test_consume_prints_what_kcat_wrote_and_reads(
    run: Kbroker, live: kbroker.Broker, name: str
) -> None:
    # kcat (librdkafka's C client) as an independent producer and reader: the console
    # consumer's partition, offset, headers, key and value must match kcat's JSON view.
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat, "kcat is not installed (Debian: apt-get install kcat)"
    assert run("topics", "create", name, "--partitions", "3")[0] == 0
    base = [kcat, "-b", live.bootstrap_servers, "-X", "log_level=3", "-t", name]
    lines = b"".join(b"key%d:value %d\n" % (i, i) for i in range(30))
    subprocess.run(
        [*base, "-P", "-K", ":", "-H", "origin=kcat", "-H", "n=1"],
        input=lines,
        check=True,
        timeout=60,
    )
    seen = subprocess.run(
        [*base, "-C", "-o", "beginning", "-e", "-J"], capture_output=True, check=True, timeout=60
    )
    expected = sorted(
        f"Partition:{r['partition']}\tOffset:{r['offset']}\t"
        + ",".join(f"{k}:{v}" for k, v in zip(r["headers"][::2], r["headers"][1::2], strict=True))
        + f"\t{r['key']}\t{r['payload']}"
        for r in map(json.loads, seen.stdout.decode().splitlines())
        if r.get("payload") is not None
    )
    assert len(expected) == 30
    code, out, _ = run(
        *("consume", name, "--offset", "earliest", "--max-messages", "30"),
        *("--property", "print.partition=true", "--property", "print.offset=true"),
        *("--property", "print.headers=true", "--property", "print.key=true"),
    )
    assert code == 0 and sorted(out.splitlines()) == expected
