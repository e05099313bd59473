"""The secured-listener scenario every Python client states the same way: one definition, a
small adapter per client module.

A client connects with a ``compat.security_kit`` case turned into its library's settings,
creates a topic, produces, consumes in a group and commits, all through the case's listener.
``SecuredClient`` is how one client library does each step.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import pytest

from compat.security_kit import CASES, Case, Secured

TIMEOUT_S = 30.0


class SecuredClient(Protocol):
    """One client library, as the security scenario uses it; ``conf`` is what ``settings``
    made of a case."""

    tag: str  # the client's part of its topics' names

    def settings(self, secured: Secured, case: Case) -> dict[str, object]:
        """A case as the client library's settings."""

    def create_topic(self, conf: dict[str, object], topic: str) -> None:
        """Create a one-partition topic through the client's admin API."""

    def produce(self, conf: dict[str, object], topic: str, values: list[bytes]) -> list[int]:
        """Send ``values`` in order; the offsets they were acknowledged at."""

    def consume_and_commit(
        self, conf: dict[str, object], topic: str, group: str, count: int
    ) -> tuple[list[bytes], int]:
        """As a new member of ``group`` (from the earliest offset): the first ``count`` values
        read, and partition 0's committed offset as the client reads it back after
        committing them."""


def produce_consume_commit(client: SecuredClient, secured: Secured, name: str) -> None:
    """Through case ``name``'s listener: a topic is created, five records are acknowledged at
    offsets 0 to 4, a group member reads them in order, and its commit is read back."""
    conf = client.settings(secured, CASES[name])
    topic = f"security-{client.tag}-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    client.create_topic(conf, topic)
    values = [f"value-{i}".encode() for i in range(5)]
    assert client.produce(conf, topic, values) == [0, 1, 2, 3, 4]
    group = f"group-{uuid.uuid4().hex[:6]}"
    read, committed = client.consume_and_commit(conf, topic, group, len(values))
    assert read == values
    assert committed == 5


class SecurityScenarios:
    """The scenario for every case of ``compat.security_kit.CASES``, for a client module's
    ``Test...`` class whose ``client`` is its SecuredClient; the tests take the ``secured``
    fixture (compat/conftest.py), and their names are the results table's rows
    (compat/results.py drops the class from the cell name)."""

    client: SecuredClient

    @pytest.mark.parametrize("name", list(CASES))
    def test_produce_consume_commit(self, secured: Secured, name: str) -> None:
        produce_consume_commit(self.client, secured, name)
