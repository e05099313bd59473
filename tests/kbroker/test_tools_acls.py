"""`kbroker acls list|add|remove` against a live broker with an authorizer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, Producer

import kbroker
from kbroker.cli import main


@pytest.fixture(scope="module")
def live() -> Iterator[kbroker.Broker]:
    # PLAINTEXT clients are User:ANONYMOUS; making it a super user lets the tool manage ACLs.
    config = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
        "num.partitions": 1,
    }
    with kbroker.Broker(config=config) as broker:
        yield broker


def run(
    live: kbroker.Broker, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(
            [*args, "--bootstrap-server", live.bootstrap_servers, "--request-timeout", "20"]
        )
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_remove(live: kbroker.Broker, capsys: pytest.CaptureFixture[str]) -> None:
    topic = f"acl-{uuid.uuid4().hex[:8]}"
    code, out, err = run(
        live,
        capsys,
        "acls",
        "add",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--operation",
        "describe_configs",
        "--topic",
        topic,
        "--group",
        "billing",
    )
    assert code == 0, err
    assert out.startswith("Added 4 ACLs:\n")
    code, out, err = run(
        live,
        capsys,
        "acls",
        "add",
        "--deny-principal",
        "User:bob",
        "--deny-host",
        "10.0.0.9",
        "--operation",
        "Write",
        "--topic",
        topic[:6],
        "--resource-pattern-type",
        "prefixed",
    )
    assert code == 0, err

    code, out, _ = run(live, capsys, "acls", "list", "--topic", topic)
    assert code == 0
    assert out == (
        f"Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name={topic}, "
        "patternType=LITERAL)`: \n"
        " \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n"
        " \t(principal=User:alice, host=*, operation=DESCRIBE_CONFIGS, permissionType=ALLOW)\n"
    )
    # MATCH lists every ACL that applies to the topic, the prefixed deny included.
    code, out, _ = run(
        live, capsys, "acls", "list", "--topic", topic, "--resource-pattern-type", "match", "--json"
    )
    listed = json.loads(out)
    assert {(a["name"], a["patternType"], a["permissionType"]) for a in listed} == {
        (topic, "LITERAL", "ALLOW"),
        (topic[:6], "PREFIXED", "DENY"),
    }
    assert {a["host"] for a in listed if a["permissionType"] == "DENY"} == {"10.0.0.9"}

    code, out, _ = run(
        live, capsys, "acls", "remove", "--allow-principal", "User:alice", "--topic", topic
    )
    assert code == 0
    assert out.startswith("Removed 2 ACLs.\n")
    code, out, _ = run(live, capsys, "acls", "list", "--principal", "User:alice", "--json")
    assert [(a["resourceType"], a["name"]) for a in json.loads(out)] == [
        ("GROUP", "billing"),
        ("GROUP", "billing"),
    ]


def test_bad_input_is_one_line(live: kbroker.Broker, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(live, capsys, "acls", "add", "--allow-principal", "alice", "--topic", "t")
    assert (code, err) == (
        1,
        "kbroker acls: principal 'alice' is not TYPE:NAME (e.g. User:alice)\n",
    )
    code, _, err = run(
        live,
        capsys,
        "acls",
        "add",
        "--allow-principal",
        "User:a",
        "--operation",
        "Fly",
        "--cluster",
    )
    assert code == 1 and "unknown operation 'Fly'" in err
    code, _, err = run(live, capsys, "acls", "add", "--allow-principal", "User:a")
    assert code == 1 and "name a resource" in err


def test_super_users_bypass_a_deny_the_tool_adds(
    live: kbroker.Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    # As in Kafka, super.users are never checked: a deny of Write for User:* does not
    # stop the (super) ANONYMOUS producer. (Denials for ordinary principals: test_acl_api.)
    topic = f"acl-{uuid.uuid4().hex[:8]}"
    assert (
        run(
            live,
            capsys,
            "acls",
            "add",
            "--deny-principal",
            "User:*",
            "--operation",
            "Write",
            "--topic",
            topic,
        )[0]
        == 0
    )
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": live.bootstrap_servers})
    producer.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(20)
    assert errors == [None]
