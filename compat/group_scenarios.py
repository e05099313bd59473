"""Group scenarios shared by every client's suite: one definition, a small adapter per client.

A scenario states what a user of any Kafka client observes (assignments, records,
committed offsets). ``GroupClient`` is how one client library creates a topic, produces,
runs a group member on a thread of its own and reads a group's committed offsets, so a
new scenario is one function here and a new client one adapter in its test module.
Every wait is deadline-based polling of what a user can observe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from compat.livebroker import LiveBroker

DEADLINE_S = 30.0


def wait_until(check: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``check`` until true; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.05)


class Member(Protocol):
    """A group member polled by its own thread, whichever the client."""

    assignment: frozenset[int]
    values: list[bytes]

    def start(self) -> None: ...
    def commit(self) -> None: ...
    def close(self) -> None: ...
    def is_alive(self) -> bool: ...


class PolledMember(threading.Thread):
    """A group member polled by its own thread, so several members of one group make
    progress at once, as separate processes would. A client's subclass says how to poll
    once (collecting ``values`` and ``assignment``), commit and close its consumer."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.values: list[bytes] = []
        self.assignment: frozenset[int] = frozenset()
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._commit = threading.Event()
        self._committed = threading.Event()

    def poll_once(self) -> None:
        """One short poll: records into ``values``, the current ``assignment``."""
        raise NotImplementedError

    def commit_now(self) -> None:
        """Commit the consumed positions synchronously."""
        raise NotImplementedError

    def close_consumer(self) -> None:
        """Close the consumer (a dynamic member sends LeaveGroup)."""
        raise NotImplementedError

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.poll_once()
                if self._commit.is_set():
                    self._commit.clear()
                    self.commit_now()
                    self._committed.set()
        except BaseException as exc:  # reported by close()
            self.error = exc
        finally:
            self.close_consumer()

    def commit(self) -> None:
        """Commit the consumed positions (from the polling thread) and wait for it."""
        self._committed.clear()
        self._commit.set()
        assert self._committed.wait(DEADLINE_S), "commit did not complete"

    def close(self) -> None:
        """Stop polling and close the consumer."""
        self._halt.set()
        self.join(DEADLINE_S)
        assert not self.is_alive(), "consumer thread did not stop"
        assert self.error is None, f"consumer failed: {self.error!r}"


class GroupClient(Protocol):
    """One client library, as the group scenarios use it."""

    def create_topic(self, broker: LiveBroker, name: str, partitions: int) -> None:
        """Create a topic through the client's admin API."""

    def produce(
        self, broker: LiveBroker, topic: str, partitions: int, per_partition: int, prefix: str = ""
    ) -> None:
        """Write ``per_partition`` records to every partition ("<prefix>p<partition>-<i>")."""

    def member(self, broker: LiveBroker, topic: str, group: str) -> Member:
        """A member of ``group`` subscribed to ``topic``, not started yet."""

    def committed(
        self, broker: LiveBroker, group: str, topic: str, partitions: int
    ) -> dict[int, int]:
        """The group's committed offsets, as the client reads them (OffsetFetch)."""


M = TypeVar("M", bound=Member)


def wait_split(a: Member, b: Member, how: str) -> None:
    """Wait until ``a`` and ``b`` own two partitions each of a 4-partition topic."""
    wait_until(
        lambda: (
            len(a.assignment) == 2
            and len(b.assignment) == 2
            and a.assignment | b.assignment == {0, 1, 2, 3}
        ),
        f"partitions split 2/2 {how}",
    )


def consume_all_and_commit(client: GroupClient, broker: LiveBroker, topic: str, group: str) -> None:
    """A subscribed member gets every partition of a 3-partition topic, reads each of the 30
    records once and commits; the committed offsets are the ends of the partitions."""
    client.create_topic(broker, topic, 3)
    client.produce(broker, topic, 3, 10)
    member = client.member(broker, topic, group)
    member.start()
    try:
        wait_until(lambda: len(member.values) == 30, "all 30 records consumed")
        assert sorted(member.values) == sorted(
            f"p{p}-{i}".encode() for p in range(3) for i in range(10)
        )
        assert member.assignment == {0, 1, 2}
        member.commit()
    finally:
        member.close()
    assert client.committed(broker, group, topic, 3) == {0: 10, 1: 10, 2: 10}


def resumes_at_commits_7_and_3(
    client: GroupClient, broker: LiveBroker, topic: str, group: str
) -> None:
    """A new member of ``group``, which committed offsets 7 and 3 on the two partitions of
    ``topic`` (10 records each), reads exactly the records after the commits."""
    member = client.member(broker, topic, group)
    member.start()
    try:
        wait_until(lambda: len(member.values) >= 10, "the 3 + 7 records after the commits")
        assert sorted(member.values) == sorted(
            [f"p0-{i}".encode() for i in range(7, 10)] + [f"p1-{i}".encode() for i in range(3, 10)]
        )
    finally:
        member.close()


def kill_keeps_committed_offsets(client: GroupClient, broker: LiveBroker, topic: str) -> None:
    """Offsets acknowledged before kill -9 are there after the restart, and a new member
    resumes from them. ``broker`` must be the test's own."""
    client.create_topic(broker, topic, 2)
    client.produce(broker, topic, 2, 5)
    group = f"g-{topic}"
    member = client.member(broker, topic, group)
    member.start()
    try:
        wait_until(lambda: len(member.values) == 10, "all 10 records consumed")
        member.commit()
    finally:
        member.close()
    broker.kill()
    broker.start()
    assert client.committed(broker, group, topic, 2) == {0: 5, 1: 5}
    client.produce(broker, topic, 2, 1, prefix="new-")  # consumption must resume at these
    member = client.member(broker, topic, group)
    member.start()
    try:
        wait_until(lambda: len(member.values) >= 2, "the 2 records after the commit")
        assert sorted(member.values) == [b"new-p0-0", b"new-p1-0"]
    finally:
        member.close()


def join_split_and_leave(
    new_member: Callable[[], M],
    *,
    on_alone: Callable[[M], None] | None = None,
    on_split: Callable[[M, M], None] | None = None,
) -> None:
    """The rebalance scenario of every client's suite, on a 4-partition topic: a second member
    gets half the partitions; when it leaves the first gets them back. ``on_alone`` and
    ``on_split`` add the caller's own checks while the first member is alone in the group and
    while both are in it."""
    a = new_member()
    a.start()
    b: M | None = None
    try:
        wait_until(lambda: a.assignment == {0, 1, 2, 3}, "first member owns all 4 partitions")
        if on_alone is not None:
            on_alone(a)
        b = second = new_member()
        b.start()
        wait_split(a, second, "between the members")
        if on_split is not None:
            on_split(a, second)
        b.close()
        b = None
        wait_until(lambda: a.assignment == {0, 1, 2, 3}, "first member owns all 4 again")
    finally:
        if b is not None:
            b.close()
        a.close()


def static_members_rejoin(
    start: Callable[[str], M], callbacks: Callable[[M], tuple[int, int]]
) -> None:
    """Two static members, "a" and "b", of a group on a 2-partition topic (``start(name)``
    starts one with group.instance.id ``name``): each in turn (so the leader too, KIP-814)
    restarts and takes its partition back without a rebalance, the other member's
    rebalance callbacks (``callbacks(member)``: how often it was revoked and assigned)
    never running again (KIP-345)."""
    members = {name: start(name) for name in ("a", "b")}
    try:
        wait_until(
            lambda: (
                sorted(len(m.assignment) for m in members.values()) == [1, 1]
                and members["a"].assignment | members["b"].assignment == {0, 1}
            ),
            "one partition each",
        )
        for restarting, other in (("b", "a"), ("a", "b")):
            wait_until(
                lambda o=other: callbacks(members[o])[1] >= 1, f"{other}'s assignment callback ran"
            )
            before = callbacks(members[other])
            partitions = members[restarting].assignment
            members[restarting].close()  # a static member does not send LeaveGroup
            members[restarting] = start(restarting)
            wait_until(
                lambda r=restarting, p=partitions: members[r].assignment == p,
                f"restarted {restarting} owns its partition again",
            )
            assert callbacks(members[other]) == before
    finally:
        for m in members.values():
            if m.is_alive():
                m.close()


# -- the scenarios as tests -------------------------------------------------------------------
class GroupScenarios(Generic[M]):
    """The group scenarios of every client, for a client module's ``Test...`` class whose
    ``client`` is its GroupClient and which supplies the client's own parts below (members
    configured the client's way, and what its admin API shows). The tests take the
    ``group_broker`` and ``fresh_group_broker`` fixtures (compat/conftest.py); their names are
    the results table's rows (compat/results.py drops the class from the cell name)."""

    client: GroupClient

    def rebalancing_member(self, broker: LiveBroker, topic: str, group: str) -> M:
        """A member of ``group`` assigning partitions by range, not started yet."""
        raise NotImplementedError

    def static_member(self, broker: LiveBroker, topic: str, group: str, name: str) -> M:
        """A static member (group.instance.id ``name``, a 20 s session, range assignment),
        not started yet."""
        raise NotImplementedError

    def rebalance_callbacks(self, member: M) -> tuple[int, int]:
        """How often ``member``'s rebalance callbacks ran: (revoked, assigned)."""
        raise NotImplementedError

    def check_left_empty(self, broker: LiveBroker, group: str) -> None:
        """What the client's admin API shows of ``group`` once its only member left."""
        raise NotImplementedError

    def commit_7_and_3(self, broker: LiveBroker, topic: str, group: str) -> None:
        """Commit offsets 7 (with metadata "seven") and 3 on ``topic``'s two partitions for
        ``group``, and check the client fetches them back."""
        raise NotImplementedError

    def test_group_subscribe_and_consume(self, group_broker: LiveBroker, topic_name: str) -> None:
        """A subscribed group consumer gets every partition, reads everything, commits."""
        group = f"g-{topic_name}"
        consume_all_and_commit(self.client, group_broker, topic_name, group)
        self.check_left_empty(group_broker, group)

    def test_group_rebalance_on_join_and_leave(
        self, group_broker: LiveBroker, topic_name: str
    ) -> None:
        """A second member gets half the partitions; when it leaves the first gets them back."""
        self.client.create_topic(group_broker, topic_name, 4)
        group = f"g-{topic_name}"
        join_split_and_leave(lambda: self.rebalancing_member(group_broker, topic_name, group))

    def test_group_commit_and_fetch_offsets(
        self, group_broker: LiveBroker, topic_name: str
    ) -> None:
        """Offsets committed with metadata are fetched back and a new member resumes there."""
        self.client.create_topic(group_broker, topic_name, 2)
        self.client.produce(group_broker, topic_name, 2, 10)
        group = f"g-{topic_name}"
        self.commit_7_and_3(group_broker, topic_name, group)
        resumes_at_commits_7_and_3(self.client, group_broker, topic_name, group)

    def test_group_static_member_rejoin(self, group_broker: LiveBroker, topic_name: str) -> None:
        """Each static member in turn (so the leader too, KIP-814) restarts with its
        group.instance.id and takes its partition back without a rebalance: the other member
        is never revoked (KIP-345)."""
        self.client.create_topic(group_broker, topic_name, 2)
        group = f"g-{topic_name}"

        def start(name: str) -> M:
            member = self.static_member(group_broker, topic_name, group, name)
            member.start()
            return member

        static_members_rejoin(start, self.rebalance_callbacks)

    def test_group_kill_keeps_committed_offsets(
        self, fresh_group_broker: LiveBroker, topic_name: str
    ) -> None:
        """Offsets acknowledged before kill -9 are there after the restart."""
        kill_keeps_committed_offsets(self.client, fresh_group_broker, topic_name)
