"""`kbroker users list|add|remove` against a live broker: SCRAM users that then log in."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Awaitable, Callable

import pytest
import trio
from confluent_kafka.admin import AdminClient

from kbroker.cli import main
from tests.kbroker.conftest import RunningServer


@pytest.fixture
async def live(make_server: Callable[..., Awaitable[RunningServer]]) -> RunningServer:
    return await make_server(
        listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        **{"sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512"},
    )


async def run(
    live: RunningServer, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    capsys.readouterr()

    def call() -> int:
        try:
            return main([*args, "--bootstrap-server", live.bootstrap, "--request-timeout", "20"])
        except SystemExit as exc:
            return int(exc.code or 0)

    code = await trio.to_thread.run_sync(call)
    out, err = capsys.readouterr()
    return code, out, err


def _logs_in(live: RunningServer, user: str, password: str, mechanism: str) -> bool:
    address = live.server.addresses["SASL_PLAINTEXT"]
    admin = AdminClient(
        {
            "bootstrap.servers": f"{address[0]}:{address[1]}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": password,
        }
    )
    try:
        admin.list_topics(timeout=5)
        return True
    except Exception:
        return False


async def test_add_list_remove(
    live: RunningServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"u{uuid.uuid4().hex[:6]}"
    code, out, err = await run(live, capsys, "users", "add", user, "--password", "first-secret")
    assert code == 0, err
    monkeypatch.setattr("sys.stdin", io.StringIO("second-secret\n"))
    code, out, err = await run(
        live, capsys, "users", "add", user, "--mechanism", "SCRAM-SHA-256", "--iterations", "8192"
    )
    assert code == 0, err
    code, out, err = await run(live, capsys, "users", "list", "--user", user, "--json")
    assert code == 0, err
    assert sorted((r["mechanism"], r["iterations"]) for r in json.loads(out)) == [
        ("SCRAM-SHA-256", 8192),
        ("SCRAM-SHA-512", 4096),
    ]
    assert await trio.to_thread.run_sync(_logs_in, live, user, "first-secret", "SCRAM-SHA-512")
    assert await trio.to_thread.run_sync(_logs_in, live, user, "second-secret", "SCRAM-SHA-256")
    assert not await trio.to_thread.run_sync(_logs_in, live, user, "wrong", "SCRAM-SHA-256")
    code, out, err = await run(
        live, capsys, "users", "remove", user, "--mechanism", "SCRAM-SHA-512"
    )
    assert code == 0, err
    code, out, err = await run(live, capsys, "users", "list")
    assert f"{user} SCRAM-SHA-256 8192" in " ".join(out.split())
    assert "SCRAM-SHA-512" not in out


async def test_too_few_iterations_is_refused(
    live: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await run(
        live, capsys, "users", "add", "eve", "--password", "x", "--iterations", "100"
    )
    assert code == 1
    assert "iterations" in err.lower()
