"""faust-streaming (stream processing on aiokafka) against a live kbroker.

compat/faust_app.py counts words into a table whose changelog topic is compacted. The worker
runs as a real `faust worker` subprocess with a bounded lifetime; it is stopped and started
again, and the counts after the restart continue from the table it recovered from the
changelog (the table is in memory: the changelog is its only copy). The test reads the counts
from the changelog with a read_committed consumer.

- at_least_once: sentences are split and repartitioned by word through a second topic;
- processing_guarantee="exactly_once" (one transactional producer per assigned partition,
  KIP-98 transactions; offsets committed in the transaction): the test produces the words
  itself. faust-streaming 0.15 cannot run exactly_once with a repartition through a topic the
  app consumes, against any Kafka: TransactionManager.send picks the transactional id from
  the *destination* partition (faust/transport/consumer.py, "{app id}-{group}-{partition}"),
  so the `words` records sit in a transaction that faust commits only when it commits an
  offset of that `words` partition, which its read_committed consumer never reaches (the
  last stable offset stays before those records).

  A second faust-streaming 0.15 defect shows with exactly_once alone: it commits an event's
  input offset in a transaction before it sends that event's changelog record, which then
  opens the partition's next transaction, committed only when more input reaches that
  partition. So the test follows each batch with one `tick-*` word per partition, whose own
  table change stays pending, and checks the table's other words.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from compat.livebroker import REPO_ROOT, LiveBroker, private_broker

pytestmark = pytest.mark.compat

# Bounds on a failure, not speed checks: a worker's start (joining the group, recovering the
# table) takes a few seconds; a hung one must not stall the suite.
WORKER_READY_S = 60.0
COUNTS_S = 45.0
WORKER_STOP_S = 30.0
WORD_PARTITIONS = 2  # the table's partitions: faust requires its source topic to match


class Worker:
    """One `python -m compat.faust_app worker` process and its output."""

    def __init__(
        self, broker: LiveBroker, app_id: str, guarantee: str, split: bool, workdir: Path
    ) -> None:
        self.log_path = workdir / f"worker-{time.monotonic_ns()}.log"
        env = dict(
            os.environ,
            KBROKER_BOOTSTRAP=broker.bootstrap_servers,
            FAUST_APP_ID=app_id,
            FAUST_DATA_DIR=str(workdir / "faust-data"),
            FAUST_GUARANTEE=guarantee,
            FAUST_SPLIT="1" if split else "0",
            PYTHONUNBUFFERED="1",
        )
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "compat.faust_app", "worker", "--loglevel", "info"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_S
        while "[^Worker]: Ready" not in self.output():
            assert self.proc.poll() is None, f"faust worker exited\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"worker not ready\n{self.output()[-4000:]}"
            time.sleep(0.2)

    def stop(self) -> int | None:
        """SIGTERM (faust's graceful stop: commits, flushes), SIGKILL if it hangs."""
        code: int | None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(WORKER_STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                code = None
        else:
            code = self.proc.returncode
        self._log.close()
        return code


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LiveBroker]:
    with private_broker(tmp_path / "data") as live:
        yield live


def create_topics(bootstrap: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics(
        [
            NewTopic("sentences", 1, 1),
            NewTopic("words", WORD_PARTITIONS, 1),
        ]
    )
    admin.close()


def send_sentences(bootstrap: str, *sentences: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for sentence in sentences:
        # faust's default value serializer is JSON.
        producer.send("sentences", json.dumps(sentence).encode()).get(timeout=20)
    producer.close()


def send_words(bootstrap: str, *words: str) -> None:
    """Words keyed by themselves (kafka-python partitions keys with murmur2, as faust does)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for word in words:
        producer.send("words", key=word.encode(), value=json.dumps(word).encode()).get(20)
    producer.close()


def _decode(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode()


def read_table(
    bootstrap: str, changelog: str, expected: dict[str, int], worker: Worker
) -> dict[str, int]:
    """The table as its changelog holds it (last committed value per word), once its words
    (the `tick-*` ones aside) reach ``expected``."""
    consumer = KafkaConsumer(
        changelog,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        consumer_timeout_ms=1000,
    )
    table: dict[str, int] = {}

    def words() -> dict[str, int]:
        return {k: v for k, v in table.items() if not k.startswith("tick-")}

    deadline = time.monotonic() + COUNTS_S
    try:
        while words() != expected and time.monotonic() < deadline:
            for record in consumer:
                table[str(_decode(record.key))] = int(_decode(record.value))  # type: ignore[call-overload]
            assert worker.proc.poll() is None, f"faust worker exited\n{worker.output()[-4000:]}"
    finally:
        consumer.close()
    assert words() == expected, f"table {table}\n{worker.output()[-4000:]}"
    return table


def topic_config(bootstrap: str, topic: str, key: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {key: None})]
        )
    finally:
        admin.close()
    value: str = described["topic"][topic][key]["value"]
    return value


@pytest.mark.parametrize(("guarantee", "split"), [("at_least_once", True), ("exactly_once", False)])
def test_word_count_table_survives_a_worker_restart(
    broker: LiveBroker, tmp_path: Path, guarantee: str, split: bool
) -> None:
    bootstrap = broker.bootstrap_servers
    app_id = f"wordcount-{guarantee.replace('_', '-')}"
    changelog = f"{app_id}-word_counts-changelog"
    create_topics(bootstrap)

    def feed(sentence: str) -> None:
        if split:
            send_sentences(bootstrap, sentence)
        else:
            # tick-a hashes to partition 0 and tick-b to 1 (murmur2, two partitions).
            send_words(bootstrap, *sentence.split(), "tick-a", "tick-b")

    worker = Worker(broker, app_id, guarantee, split, tmp_path)
    try:
        worker.wait_ready()
        feed("to be or not to be")
        read_table(bootstrap, changelog, {"to": 2, "be": 2, "or": 1, "not": 1}, worker)
    finally:
        assert worker.stop() == 0, worker.output()[-4000:]
    assert topic_config(bootstrap, changelog, "cleanup.policy") == "compact"

    # A new worker process: its in-memory table comes back from the changelog alone, and
    # nothing is counted twice (the first worker committed its input offsets).
    worker = Worker(broker, app_id, guarantee, split, tmp_path)
    try:
        worker.wait_ready()
        feed("to be is to do")
        expected = {"to": 4, "be": 3, "or": 1, "not": 1, "is": 1, "do": 1}
        read_table(bootstrap, changelog, expected, worker)
    finally:
        assert worker.stop() == 0, worker.output()[-4000:]
