"""kafkajs (Node.js) against kbroker's TLS and SASL listeners: produce, consume in a group,
commit; a wrong password fails with kafkajs's authentication error
(compat/kafkajs/security.js does what a kafkajs application would)."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from compat.conftest import KAFKAJS_DIR
from compat.security_kit import CASES, WRONG_PASSWORD, Case, Secured, unsecured_jws

pytestmark = pytest.mark.compat
DEADLINE_S = 60.0


def settings(secured: Secured, case: Case) -> dict[str, Any]:
    """The client settings a case connects with."""
    live, material = secured
    out: dict[str, Any] = {"bootstrap": live.bootstrap(case.listener), "ssl": None, "sasl": None}
    if case.protocol in ("SSL", "SASL_SSL"):
        out["ssl"] = {"ca": str(material.ca_file)}
        if case.client_certificate:
            out["ssl"].update(cert=str(material.client_cert), key=str(material.client_key))
    if case.mechanism == "OAUTHBEARER":
        out["sasl"] = {"mechanism": "oauthbearer", "token": unsecured_jws(case.user or "")}
    elif case.mechanism:
        out["sasl"] = {
            "mechanism": case.mechanism.lower(),
            "username": case.user,
            "password": case.password,
        }
    return out


def run(node: str, conf: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [node, str(KAFKAJS_DIR / "security.js"), json.dumps(conf)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else {"error": {"message": proc.stderr[-2000:]}}


@pytest.mark.parametrize("name", list(CASES))
def test_produce_consume_commit(node: str, secured: Secured, name: str) -> None:
    conf = settings(secured, CASES[name])
    conf["topic"] = f"security-js-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    conf["group"] = f"group-{uuid.uuid4().hex[:6]}"
    result = run(node, conf)
    assert "error" not in result, result
    assert result == {"values": [f"value-{i}" for i in range(5)], "committed": "5"}


@pytest.mark.parametrize("name", list(WRONG_PASSWORD))
def test_wrong_password_fails_authentication(node: str, secured: Secured, name: str) -> None:
    conf = settings(secured, WRONG_PASSWORD[name])
    conf["expectFailure"] = True
    result = run(node, conf)
    assert "failed" in result, result
    text = json.dumps(result["failed"])
    assert "KafkaJSSASLAuthenticationError" in text, text
