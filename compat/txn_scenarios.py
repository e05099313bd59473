"""Exactly-once scenarios shared by every client's suite: one definition, one adapter per client.

A scenario states what a user of any Kafka client observes of transactions and idempotence:
which values a read_committed / read_uncommitted reader sees, which offsets a group committed
inside a transaction, that a zombie producer is fenced. ``TxnClient`` is how one client library
creates a topic, runs a transactional producer and reads at an isolation level (the adapters
are in ``compat/adapters/``). Every scenario is bounded: readers read up to a known end offset
or a deadline, and the broker runs with small internal topics so it starts fast.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol

from compat.livebroker import LiveBroker
from compat.scenario_tests import as_test

DEADLINE_S = 20.0
SMALL_INTERNAL_TOPICS = {
    "transaction.state.log.num.partitions": "3",
    "offsets.topic.num.partitions": "3",
}


class SamePortBroker(LiveBroker):
    """A LiveBroker that comes back on the port it first bound (clients keep their bootstrap)."""

    def command(self) -> list[str]:
        """The start command, pinned to the first port after the first start."""
        cmd = super().command()
        if self.port:
            cmd[cmd.index("--listen") + 1] = f"127.0.0.1:{self.port}"
        return cmd


class LossyProxy:
    """A TCP proxy in front of the broker that can lose responses (the broker advertises it).

    ``lose_responses()`` swallows what the broker answers for a moment while the
    client's requests still reach it, then cuts every connection: those batches
    are written but never acknowledged, so the client must retry them.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target: tuple[str, int] = ("127.0.0.1", 0)
        self._swallow = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, responses: bool) -> None:
        try:
            while data := src.recv(65536):
                if not (responses and self._swallow.is_set()):
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def lose_responses(self, window_s: float = 0.05) -> None:
        """Drop the broker's answers for window_s, then reset every connection."""
        self._swallow.set()
        time.sleep(window_s)
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._swallow.clear()

    def close(self) -> None:
        """Stop accepting and drop every connection."""
        self.listener.close()
        self.lose_responses(0)


class TxProducer(Protocol):
    """A transactional producer, initialised (InitProducerId done)."""

    def begin(self) -> None: ...
    def send(self, topic: str, value: bytes) -> None:
        """Queue one record (no wait for its delivery)."""

    def flush(self) -> None:
        """Wait until every queued record reached the broker."""

    def commit(self) -> None: ...
    def abort(self) -> None: ...
    def commit_fails_fenced(self) -> None:
        """Commit, which must fail with the client's own producer-fenced error."""

    def close(self) -> None: ...


class TxnClient(Protocol):
    """One client library, as the exactly-once scenarios use it."""

    def create_topic(self, broker: LiveBroker, name: str) -> None:
        """Create a one-partition topic."""

    def tx_producer(
        self, broker: LiveBroker, tid: str, *, fast_reconnect: bool = False
    ) -> TxProducer:
        """A transactional producer for ``tid``, initialised; ``fast_reconnect`` caps the
        reconnect backoff at 200 ms (for a broker that restarts under it)."""

    def produce(self, broker: LiveBroker, topic: str, values: list[bytes]) -> None:
        """Produce ``values`` without a transaction and wait for them."""

    def read_all(self, broker: LiveBroker, topic: str, isolation: str) -> list[bytes]:
        """Values readable at ``isolation`` from offset 0 to the partition's end for that level."""

    def transform(
        self, broker: LiveBroker, src: str, dst: str, group: str, tid: str, count: int
    ) -> tuple[int, int]:
        """Consume ``src`` as a member of ``group`` (read_committed) and, one transaction per
        poll, produce b"x" + value to ``dst`` with the consumed offsets committed in the same
        transaction (send_offsets_to_transaction), until ``count`` records were seen or a
        deadline passed; (records seen, the group's committed offset of ``src``-0)."""


def commit_abort_commit_counts_per_isolation_level(
    client: TxnClient, broker: LiveBroker, topic: str
) -> None:
    """Of three transactions, committed / aborted / committed, read_committed sees the two
    committed ones in order and read_uncommitted all 15 records in order."""
    client.create_topic(broker, topic)
    p = client.tx_producer(broker, f"tid-{topic}")
    try:
        for n, commit in enumerate((True, False, True)):
            p.begin()
            for i in range(5):
                p.send(topic, b"%d-%d" % (n, i))
            # An abort purges unsent records in some clients: flush so they reach the log.
            p.flush()
            if commit:
                p.commit()
            else:
                p.abort()
    finally:
        p.close()
    committed = client.read_all(broker, topic, "read_committed")
    assert committed == [b"0-%d" % i for i in range(5)] + [b"2-%d" % i for i in range(5)]
    assert client.read_all(broker, topic, "read_uncommitted") == [
        b"%d-%d" % (n, i) for n in range(3) for i in range(5)
    ]


def consume_transform_produce_with_offsets(
    client: TxnClient, broker: LiveBroker, topic: str
) -> None:
    """Consume-transform-produce with the offsets in the transaction: every input is
    transformed once, and the group's committed offset is the end of the input."""
    src, dst, group = topic + ".in", topic + ".out", "g-" + topic
    client.create_topic(broker, src)
    client.create_topic(broker, dst)
    client.produce(broker, src, [b"%d" % i for i in range(10)])
    seen, committed = client.transform(broker, src, dst, group, f"ctp-{topic}", 10)
    assert seen == 10
    assert committed == 10
    # One input partition, one transaction after the other: the output keeps the input order.
    assert client.read_all(broker, dst, "read_committed") == [b"x%d" % i for i in range(10)]


def zombie_is_fenced_by_new_instance(client: TxnClient, broker: LiveBroker, topic: str) -> None:
    """A new instance with the same transactional id bumps the epoch (InitProducerId), which
    aborts the old instance's open transaction and fences it."""
    client.create_topic(broker, topic)
    tid = f"zombie-{topic}"
    old = client.tx_producer(broker, tid)
    try:
        old.begin()
        old.send(topic, b"zombie")
        old.flush()
        new = client.tx_producer(broker, tid)
        try:
            new.begin()
            new.send(topic, b"live")
            new.commit()
        finally:
            new.close()
        old.commit_fails_fenced()
    finally:
        old.close()
    assert client.read_all(broker, topic, "read_committed") == [b"live"]


def transaction_commits_across_kill_9(client: TxnClient, live: LiveBroker, topic: str) -> None:
    """A transaction open when the broker is killed (-9) commits after the restart: the
    coordinator reloads it from __transaction_state. ``live`` is the test's own broker, back
    on its port after a restart (``same_port_broker``)."""
    client.create_topic(live, topic)
    p = client.tx_producer(live, f"crash-{topic}", fast_reconnect=True)
    try:
        p.begin()
        for i in range(100):
            p.send(topic, b"%03d" % i)
        p.flush()
        live.kill()  # kill -9 with the transaction open
        live.start()  # same port: the producer reconnects
        p.commit()
    finally:
        p.close()
    assert client.read_all(live, topic, "read_committed") == [b"%03d" % i for i in range(100)]


# -- the scenarios as tests -------------------------------------------------------------------
# A client module runs them by subclassing as a ``Test...`` class; the tests take the module's
# ``txn_client`` (its TxnClient) and ``broker`` fixtures (the module sets BROKER_OVERRIDES =
# SMALL_INTERNAL_TOPICS), and their names are the results table's rows (compat/results.py
# drops the class from the cell name).
class TxnScenarios:
    """Isolation levels, offsets in a transaction and fencing, for a ``Test...`` class."""

    test_commit_abort_commit_counts_per_isolation_level = as_test(
        commit_abort_commit_counts_per_isolation_level, client="txn_client"
    )
    test_consume_transform_produce_with_offsets = as_test(
        consume_transform_produce_with_offsets, client="txn_client"
    )
    test_zombie_is_fenced_by_new_instance = as_test(
        zombie_is_fenced_by_new_instance, client="txn_client"
    )


class TxnKillScenarios:
    """A transaction across a kill -9 of a broker of the test's own, for a ``Test...`` class."""

    test_transaction_commits_across_kill_9 = as_test(
        transaction_commits_across_kill_9, client="txn_client", broker="same_port_broker"
    )


# -- idempotence through a kill -9 and through lost responses ---------------------------------
class IdempotentClient(TxnClient, Protocol):
    """A client whose idempotent producer the scenarios drive value by value."""

    def produce_idempotent(
        self, bootstrap: str, topic: str, values: list[bytes], after_send: Callable[[int], None]
    ) -> None:
        """Send ``values`` in order with an idempotent producer that retries without limit
        and keeps a few requests' worth in flight, calling ``after_send(i)`` once the i-th
        is handed over; fails unless every one is acknowledged."""


def idempotent_retries_of_lost_responses(
    client: IdempotentClient, live: LiveBroker, proxy: LossyProxy, topic: str
) -> None:
    """Batches that were written but whose acknowledgements were lost four times are
    retried by the idempotent producer, and stored once: every value exactly once, in
    order (``proxy`` is the only way to ``live``, see the ``proxied_broker`` fixture)."""
    client.create_topic(live, topic)
    total, cuts = 20000, 0

    def after_send(i: int) -> None:
        nonlocal cuts
        if i % 5000 == 2500:
            proxy.lose_responses()  # written batches whose acks never arrive: retried
            cuts += 1

    values = [b"%06d" % i for i in range(total)]
    client.produce_idempotent(f"127.0.0.1:{proxy.port}", topic, values, after_send)
    assert cuts == 4
    stored = client.read_all(live, topic, "read_uncommitted")
    assert len(stored) == total and stored == values


def idempotent_producer_survives_kill_9(
    client: IdempotentClient, live: LiveBroker, topic: str
) -> None:
    """A kill -9 of the broker while idempotent produce requests are in flight (some written,
    not answered), restarted on the same port: the producer reconnects and retries, and every
    value is stored exactly once, in order. ``live`` must be the test's own."""
    client.create_topic(live, topic)
    total, killed = 20000, False

    def after_send(i: int) -> None:
        nonlocal killed
        if i == total // 2:
            live.kill()
            live.start()  # same port: the producer reconnects and retries
            killed = True

    values = [b"%06d" % i for i in range(total)]
    client.produce_idempotent(live.bootstrap_servers, topic, values, after_send)
    assert killed
    stored = client.read_all(live, topic, "read_uncommitted")
    assert sorted(stored) == values  # each exactly once
    assert stored == values  # and in order


class IdempotenceScenarios:
    """Idempotence through a kill -9 and through lost responses, for a ``Test...`` class whose
    module's ``txn_client`` is an IdempotentClient."""

    test_idempotent_producer_survives_kill_9 = as_test(
        idempotent_producer_survives_kill_9, client="txn_client", broker="same_port_broker"
    )

    def test_idempotent_retries_of_lost_responses_are_not_written_twice(
        self,
        txn_client: IdempotentClient,
        proxied_broker: tuple[LiveBroker, LossyProxy],
        topic_name: str,
    ) -> None:
        live, proxy = proxied_broker
        idempotent_retries_of_lost_responses(txn_client, live, proxy, topic_name)
