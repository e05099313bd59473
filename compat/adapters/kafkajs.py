"""kafkajs (Node.js) as the shared record scenarios drive it, through compat/kafkajs/driver.js.

One node process per broker answers one JSON request a line (admin calls, produce, read, list
offsets); keys, values and header values travel as base64. kafkajs consumes only through
groups (it has no assign()), so ``read`` joins a fresh group that reads from the beginning.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from kafka.partitioner.default import murmur2

from compat.livebroker import LiveBroker
from compat.record_scenarios import PLAIN, Config, Got, Out, Producing, Refused, Sent

KAFKAJS_DIR = Path(__file__).resolve().parent.parent / "kafkajs"
ANSWER_TIMEOUT_S = 60.0


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


class Driver:
    """One ``node driver.js`` process talking to one broker."""

    def __init__(self, node: str, bootstrap: str) -> None:
        # kafkajs's log, for the message of a failing call.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.proc = subprocess.Popen(
            [node, str(KAFKAJS_DIR / "driver.js"), bootstrap],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def log_tail(self, limit: int = 3000) -> str:
        """The end of what kafkajs logged so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-limit:]

    def call(self, op: str, **args: Any) -> Any:
        """Send one request; kafkajs's answer, or a failure with kafkajs's own error."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, (
            f"kafkajs driver exited (code {self.proc.poll()}) during {op}\n{self.log_tail()}"
        )
        answer = json.loads(line)
        if "error" in answer:
            error = answer["error"]
            raise AssertionError(
                f"kafkajs {op}: {error.get('name')}: {error.get('message')} "
                f"(type {error.get('type')})\n{json.dumps(error, indent=1)}\n"
                f"kafkajs log:\n{self.log_tail()}"
            )
        return answer["result"]

    def close(self) -> None:
        """End the driver: it exits when communicate() closes its stdin."""
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _error_code(error: dict[str, Any]) -> int | None:
    """Kafka's error code in a kafkajs error, or in the one error it wraps (a retry's cause,
    or the only entry of a per-topic or per-partition error list)."""
    while error:
        if isinstance(error.get("code"), int):
            return int(error["code"])
        inner = error.get("errors") or [p["error"] for p in error.get("partitions") or []]
        error = error.get("cause") or (inner[0] if len(inner) == 1 else {})
    return None


class KafkajsClient:
    """kafkajs as a ``compat.record_scenarios.RecordClient``."""

    # The driver predicts each record's partition with kafkajs's own partitioner.
    partition_known_without_acks = True
    reports_low_watermark = False  # deleteTopicRecords resolves to nothing

    def __init__(self, node: str) -> None:
        self.node = node
        self._drivers: dict[str, Driver] = {}
        # kafkajs's own error of the last admin call that may fail (None when it succeeded).
        self.last_error: dict[str, Any] | None = None

    def driver(self, broker: LiveBroker) -> Driver:
        """The driver for ``broker``, started on first use."""
        if broker.bootstrap_servers not in self._drivers:
            self._drivers[broker.bootstrap_servers] = Driver(self.node, broker.bootstrap_servers)
        return self._drivers[broker.bootstrap_servers]

    def close(self) -> None:
        """End every driver."""
        for driver in self._drivers.values():
            driver.close()
        self._drivers.clear()

    def create_topic(
        self,
        broker: LiveBroker,
        name: str,
        partitions: int = 1,
        configs: dict[str, str] | None = None,
    ) -> None:
        self.driver(broker).call(
            "createTopic", topic=name, partitions=partitions, configs=configs or {}
        )

    @staticmethod
    def expected_partition(key: bytes, partitions: int) -> int:
        """kafkajs 2.x DefaultPartitioner = Java's: murmur2 of the key, positive, modulo."""
        return (murmur2(key) & 0x7FFFFFFF) % partitions

    def produce(
        self, broker: LiveBroker, topic: str, records: list[Out], how: Producing = PLAIN
    ) -> list[Sent]:
        # how.linger_ms: kafkajs sends each send() as one request, it has no linger.
        answer = self.driver(broker).call(
            "produce",
            topic=topic,
            acks=-1 if how.acks == "all" else how.acks,
            compression=how.compression,
            records=[
                {
                    "value": _b64(r.value),
                    "key": _b64(r.key),
                    "headers": [[k, _b64(v)] for k, v in r.headers],
                    "timestamp": r.timestamp,
                    "partition": r.partition,
                }
                for r in records
            ],
        )
        if "refused" in answer:
            code = _error_code(answer["refused"])
            assert code is not None, f"kafkajs refused without a Kafka error: {answer['refused']}"
            raise Refused(code, json.dumps(answer["refused"]))
        return [Sent(s["partition"], s["offset"], s["timestamp"]) for s in answer["sent"]]

    def read(
        self,
        broker: LiveBroker,
        topic: str,
        partitions: int,
        count: int,
        *,
        seek: int | None = None,
    ) -> list[Got]:
        records = self.driver(broker).call("read", topic=topic, count=count, seek=seek)
        return [
            Got(
                r["partition"],
                r["offset"],
                _unb64(r["key"]),
                _unb64(r["value"]) or b"",
                [(k, _unb64(v) or b"") for k, v in r["headers"]],
                r["timestamp"],
                r["timestampType"],
            )
            for r in records
        ]

    def partitions(self, broker: LiveBroker, topic: str) -> list[int]:
        result: list[int] = self.driver(broker).call("partitions", topic=topic)
        return result

    def topics(self, broker: LiveBroker) -> set[str]:
        return set(self.driver(broker).call("topics"))

    def _code(self, answer: dict[str, Any]) -> int:
        self.last_error = answer["error"]
        if answer["error"] is None:
            return 0
        code = _error_code(answer["error"])
        assert code is not None, f"kafkajs failed without a Kafka error: {answer['error']}"
        return code

    def create_partitions(self, broker: LiveBroker, topic: str, count: int) -> int:
        return self._code(self.driver(broker).call("createPartitions", topic=topic, count=count))

    def delete_topic(self, broker: LiveBroker, topic: str) -> int:
        return self._code(self.driver(broker).call("deleteTopic", topic=topic))

    def delete_records(
        self, broker: LiveBroker, topic: str, partition: int, before: int
    ) -> tuple[int, int | None]:
        answer = self.driver(broker).call(
            "deleteRecords", topic=topic, partition=partition, before=before
        )
        return self._code(answer), None  # kafkajs does not hand over the low watermark

    def topic_configs(self, broker: LiveBroker, topic: str) -> dict[str, Config]:
        configs = self.driver(broker).call("topicConfigs", topic=topic)
        return {
            name: Config(c["value"], c["source"], c["isDefault"]) for name, c in configs.items()
        }

    def offsets(self, broker: LiveBroker, topic: str, partition: int) -> tuple[int, int]:
        low, high = self.driver(broker).call("offsets", topic=topic, partition=partition)
        return low, high


# -- consumer groups --------------------------------------------------------------------------
class KafkajsMember:
    """A kafkajs group member running in the driver (``compat.group_scenarios.Member``):
    ``values`` and ``assignment`` are what it has read and owns at the moment of asking."""

    def __init__(self, driver: Driver, topic: str, group: str) -> None:
        self._driver = driver
        self._topic = topic
        self._group = group
        self._id = ""

    def start(self) -> None:
        self._id = self._driver.call("memberStart", topic=self._topic, group=self._group)

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = self._driver.call("memberState", id=self._id)
        return state

    @property
    def values(self) -> list[bytes]:
        return [_unb64(v) or b"" for v in self._state()["values"]]

    @property
    def assignment(self) -> frozenset[int]:
        return frozenset(self._state()["assignment"])

    def commit(self) -> None:
        self._driver.call("memberCommit", id=self._id, topic=self._topic)

    def close(self) -> None:
        self._driver.call("memberClose", id=self._id)


class KafkajsGroups:
    """kafkajs as a ``compat.group_scenarios.GroupClient`` (it shares the record client's
    drivers)."""

    def __init__(self, client: KafkajsClient) -> None:
        self.client = client

    def create_topic(self, broker: LiveBroker, name: str, partitions: int) -> None:
        self.client.create_topic(broker, name, partitions)

    def produce(
        self, broker: LiveBroker, topic: str, partitions: int, per_partition: int, prefix: str = ""
    ) -> None:
        """Write ``per_partition`` records to every partition ("<prefix>p<partition>-<i>")."""
        records = [
            Out(f"{prefix}p{p}-{i}".encode(), partition=p)
            for p in range(partitions)
            for i in range(per_partition)
        ]
        self.client.produce(broker, topic, records)

    def member(self, broker: LiveBroker, topic: str, group: str) -> KafkajsMember:
        return KafkajsMember(self.client.driver(broker), topic, group)

    def committed(
        self, broker: LiveBroker, group: str, topic: str, partitions: int
    ) -> dict[int, int]:
        """The group's committed offsets as the admin client reads them (OffsetFetch)."""
        found = self.client.driver(broker).call("committed", group=group, topic=topic)
        return {int(p): offset for p, offset in found.items() if int(p) < partitions}

    def set_offsets(
        self, broker: LiveBroker, group: str, topic: str, offsets: dict[int, int]
    ) -> None:
        """Commit ``offsets`` for ``group`` through the admin API (admin.setOffsets)."""
        self.client.driver(broker).call("setOffsets", group=group, topic=topic, offsets=offsets)

    def describe(self, broker: LiveBroker, group: str) -> dict[str, Any]:
        """Whether ListGroups names ``group``, and its state and member count."""
        described: dict[str, Any] = self.client.driver(broker).call("describeGroup", group=group)
        return described


# -- transactions -----------------------------------------------------------------------------
class KafkajsTxProducer:
    """A kafkajs transactional producer in the driver (``compat.txn_scenarios.TxProducer``)."""

    def __init__(self, driver: Driver, tid: str) -> None:
        self._driver = driver
        self._id = driver.call("txStart", tid=tid)

    def begin(self) -> None:
        self._driver.call("txBegin", id=self._id)

    def send(self, topic: str, value: bytes) -> None:
        self._driver.call("txSend", id=self._id, topic=topic, value=_b64(value))

    def flush(self) -> None:
        self._driver.call("txFlush", id=self._id)

    def commit(self) -> None:
        self._driver.call("txCommit", id=self._id)

    def abort(self) -> None:
        self._driver.call("txAbort", id=self._id)

    def commit_fails_fenced(self) -> None:
        error = self._driver.call("txCommitFenced", id=self._id)
        # kafkajs speaks EndTxn v0-v1, where PRODUCER_FENCED is sent as INVALID_PRODUCER_EPOCH
        # (KIP-588 keeps the old code for old versions).
        assert error is not None and error["type"] == "INVALID_PRODUCER_EPOCH", error

    def close(self) -> None:
        self._driver.call("txClose", id=self._id)


class KafkajsTxn:
    """kafkajs as a ``compat.txn_scenarios.TxnClient`` (it shares the record client's drivers)."""

    def __init__(self, client: KafkajsClient) -> None:
        self.client = client

    def create_topic(self, broker: LiveBroker, name: str) -> None:
        self.client.create_topic(broker, name)

    def tx_producer(
        self, broker: LiveBroker, tid: str, *, fast_reconnect: bool = False
    ) -> KafkajsTxProducer:
        # No scenario restarts the broker under kafkajs (fast_reconnect): its defaults.
        return KafkajsTxProducer(self.client.driver(broker), tid)

    def produce(self, broker: LiveBroker, topic: str, values: list[bytes]) -> None:
        self.client.produce(broker, topic, [Out(value) for value in values])

    def read_all(self, broker: LiveBroker, topic: str, isolation: str) -> list[bytes]:
        values = self.client.driver(broker).call("readAll", topic=topic, isolation=isolation)
        return [_unb64(v) or b"" for v in values]

    def transform(
        self, broker: LiveBroker, src: str, dst: str, group: str, tid: str, count: int
    ) -> tuple[int, int]:
        seen, committed = self.client.driver(broker).call(
            "transform", src=src, dst=dst, group=group, tid=tid, count=count
        )
        return seen, committed
