"""kcat (the Debian package; librdkafka's C command-line client) against a live kbroker.

kcat has no admin operations, so its rows are metadata, produce, consume and groups.
Scenario names match the other client modules so the results table lines them up. A
missing kcat is a failure, never a skip: `apt-get install kcat` (.ci/run does it).
"""

from __future__ import annotations

import json
import subprocess
import time
import zlib

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat.livebroker import GROUP_BROKER_OVERRIDES, LiveBroker

pytestmark = pytest.mark.compat

BROKER_OVERRIDES = GROUP_BROKER_OVERRIDES  # a short initial rebalance delay for the group test
DEADLINE_S = 30.0


def kcat(
    kcat_bin: str, broker: LiveBroker, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run kcat against the broker; fail with its stderr on a non-zero exit."""
    proc = subprocess.run(
        [kcat_bin, "-b", broker.bootstrap_servers, "-X", "log_level=3", *args],
        input=stdin,
        capture_output=True,
        timeout=DEADLINE_S,
    )
    assert proc.returncode == 0, f"kcat {' '.join(args)} failed: {proc.stderr.decode()}"
    return proc


def produce(
    kcat_bin: str, broker: LiveBroker, topic: str, partition: int, lines: list[str], *args: str
) -> None:
    """`kcat -P` into one partition, a record per line (``args`` add producer options)."""
    stdin = "".join(line + "\n" for line in lines).encode()
    kcat(kcat_bin, broker, "-P", "-t", topic, "-p", str(partition), *args, stdin=stdin)


def create_topic(broker: LiveBroker, name: str, partitions: int) -> None:
    """Create a topic (kcat cannot) with confluent-kafka's admin client."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(DEADLINE_S)


def consume_json(kcat_bin: str, broker: LiveBroker, topic: str, *args: str) -> list[dict]:
    """All records of a topic via `kcat -C -e -J` (exit at the end of every partition)."""
    proc = kcat(kcat_bin, broker, "-C", "-t", topic, "-o", "beginning", "-e", "-J", *args)
    return [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]


def consume_partition_0(topic: str, offset: str, *args: str) -> list[str]:
    """kcat's arguments to consume partition 0 of ``topic`` from ``offset`` (``-o``), then
    ``args``."""
    return ["-C", "-t", topic, "-p", "0", "-o", offset, *args]


def expected_partition(key: bytes, partitions: int) -> int:
    """librdkafka's default partitioner (consistent_random): CRC-32 of the key."""
    return zlib.crc32(key) % partitions


def test_bootstrap(kcat_bin: str, broker: LiveBroker, topic_name: str) -> None:
    """`kcat -L -J` lists the one broker at the bootstrap address and the topic's partitions."""
    create_topic(broker, topic_name, 2)
    meta = json.loads(kcat(kcat_bin, broker, "-L", "-J", "-t", topic_name).stdout)
    assert [(b["id"], b["name"]) for b in meta["brokers"]] == [(1, f"{broker.host}:{broker.port}")]
    [topic] = meta["topics"]
    assert topic["topic"] == topic_name
    assert sorted(p["partition"] for p in topic["partitions"]) == [0, 1]
    assert {p["leader"] for p in topic["partitions"]} == {1}


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_produce_keyed(kcat_bin: str, broker: LiveBroker, topic_name: str, acks: int | str) -> None:
    """`kcat -P -K:` keys land in librdkafka's partition for them, in order."""
    partitions = 4
    create_topic(broker, topic_name, partitions)
    keys = [f"key-{i % 10}" for i in range(40)]
    lines = "".join(f"{k}:v{i}\n" for i, k in enumerate(keys)).encode()
    kcat(kcat_bin, broker, "-P", "-t", topic_name, "-K:", "-X", f"acks={acks}", stdin=lines)
    records = consume_json(kcat_bin, broker, topic_name)
    assert len(records) == len(keys)
    for p in range(partitions):
        in_p = [r for r in records if r["partition"] == p]
        assert [r["offset"] for r in in_p] == list(range(len(in_p)))
        assert [(r["key"], r["payload"]) for r in in_p] == [
            (k, f"v{i}")
            for i, k in enumerate(keys)
            if expected_partition(k.encode(), partitions) == p
        ]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(kcat_bin: str, broker: LiveBroker, topic_name: str, codec: str) -> None:
    """`kcat -P -z CODEC` batches are stored and read back intact."""
    values = [f"{codec}-{i}-" * 20 for i in range(50)]
    produce(kcat_bin, broker, topic_name, 0, values, "-z", codec)
    assert [r["payload"] for r in consume_json(kcat_bin, broker, topic_name)] == values


def test_headers_and_create_time(kcat_bin: str, broker: LiveBroker, topic_name: str) -> None:
    """`-H` headers come back; the timestamp is the producer's CreateTime."""
    before = int(time.time() * 1000)
    produce(kcat_bin, broker, topic_name, 0, ["with-headers"], "-H", "h1=one", "-H", "h2=two")
    [record] = consume_json(kcat_bin, broker, topic_name)
    assert record["payload"] == "with-headers"
    assert record["headers"] == ["h1", "one", "h2", "two"]
    assert record["tstype"] == "create" and before - 1000 <= record["ts"] <= before + 60_000


def test_consume_from_beginning(kcat_bin: str, broker: LiveBroker, topic_name: str) -> None:
    """`-o beginning -e` prints every record from offset 0, then exits."""
    values = [f"m{i}" for i in range(10)]
    produce(kcat_bin, broker, topic_name, 0, values)
    proc = kcat(kcat_bin, broker, "-C", "-t", topic_name, "-o", "beginning", "-e", "-f", "%o %s\n")
    assert proc.stdout.decode().splitlines() == [f"{i} {v}" for i, v in enumerate(values)]
    # A relative offset from the end (-o -3) is resolved through ListOffsets.
    proc = kcat(kcat_bin, broker, "-C", "-t", topic_name, "-o", "-3", "-e", "-f", "%o\n")
    assert proc.stdout.decode().split() == ["7", "8", "9"]


def test_consume_from_end(kcat_bin: str, broker: LiveBroker, topic_name: str) -> None:
    """`-o end` skips what is there and prints only what is produced afterwards."""
    produce(kcat_bin, broker, topic_name, 0, ["old-1", "old-2", "old-3"])
    args = consume_partition_0(topic_name, "end", "-c", "2", "-u", "-f", "%o %s\n")
    proc = subprocess.Popen(
        [kcat_bin, "-b", broker.bootstrap_servers, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        # kcat reports partition EOF on stderr once OFFSET_END is resolved and fetched.
        line = proc.stderr.readline().decode()
        assert "Reached end of topic" in line and "at offset 3" in line, line
        produce(kcat_bin, broker, topic_name, 0, ["new-1", "new-2"])
        out, _ = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.decode().splitlines() == ["3 new-1", "4 new-2"]


def test_group_subscribe_and_consume(kcat_bin: str, broker: LiveBroker, topic_name: str) -> None:
    """`kcat -G GROUP` joins a group, gets every partition, reads all, commits on exit."""
    group = f"g-{topic_name}"
    create_topic(broker, topic_name, 3)
    for p in range(3):
        produce(kcat_bin, broker, topic_name, p, [f"p{p}-{i}" for i in range(10)])
    proc = kcat(
        kcat_bin,
        broker,
        "-G",
        group,
        "-o",
        "beginning",
        "-c",
        "30",
        "-f",
        "%s\n",
        "-X",
        "enable.auto.commit=true",
        topic_name,
    )
    assert sorted(proc.stdout.decode().split()) == sorted(
        f"p{p}-{i}" for p in range(3) for i in range(10)
    )
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    try:
        found = consumer.committed(
            [TopicPartition(topic_name, p) for p in range(3)], timeout=DEADLINE_S
        )
    finally:
        consumer.close()
    assert {tp.partition: tp.offset for tp in found} == {0: 10, 1: 10, 2: 10}
    # A second run of the same group resumes after the commits: nothing is left to read.
    produce(kcat_bin, broker, topic_name, 1, ["late"])
    proc = kcat(kcat_bin, broker, "-G", group, "-c", "1", "-f", "%p %o %s\n", topic_name)
    assert proc.stdout.decode().split() == ["1", "10", "late"]


def test_consume_from_timestamp(kcat_bin: str, broker: LiveBroker, topic_name: str) -> None:
    """`-o s@TS` (and `-Q`) resolve a timestamp through ListOffsets to the first record at or after it."""
    produce(kcat_bin, broker, topic_name, 0, ["early-0", "early-1", "early-2"])
    produce(kcat_bin, broker, topic_name, 0, ["late-3", "late-4"])
    # The split point is the first late record's own timestamp (kcat stamps records when
    # it sends them), read back rather than taken from the wall clock between the runs.
    stamps = kcat(kcat_bin, broker, "-C", "-t", topic_name, "-e", "-f", "%T\n").stdout.split()
    early, late = [int(t) for t in stamps[:3]], [int(t) for t in stamps[3:]]
    middle = min(late)
    assert max(early) < middle, f"the two kcat runs stamped the same millisecond: {stamps}"
    proc = kcat(
        kcat_bin, broker, "-C", "-t", topic_name, "-o", f"s@{middle}", "-e", "-f", "%o %s\n"
    )
    assert proc.stdout.decode().splitlines() == ["3 late-3", "4 late-4"]
    query = kcat(kcat_bin, broker, "-Q", "-t", f"{topic_name}:0:{middle}").stdout.decode()
    assert f"{topic_name} [0] offset 3" in query


def test_offset_out_of_range_resets(kcat_bin: str, broker: LiveBroker, topic_name: str) -> None:
    """A start past the end gets OFFSET_OUT_OF_RANGE; auto.offset.reset=earliest recovers."""
    produce(kcat_bin, broker, topic_name, 0, ["r0", "r1", "r2"])
    args = consume_partition_0(
        topic_name, "100", "-e", "-X", "auto.offset.reset=earliest", "-f", "%o %s\n"
    )
    proc = kcat(kcat_bin, broker, *args)
    assert proc.stdout.decode().splitlines() == ["0 r0", "1 r1", "2 r2"]
