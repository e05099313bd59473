"""wire/messages.pyi: the typed face of the message classes built at import time.

The stub is generated from the declarations (kbroker.wire.stubs) and committed, so mypy
checks every handler field by field; these tests keep it in step with the declarations
and with the classes, and show mypy using it.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

from kbroker.wire import stubs
from kbroker.wire.messages import ALL

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stub_is_up_to_date() -> None:
    assert stubs.STUB_PATH.read_text() == stubs.current(), (
        "wire/messages.pyi is stale: run `python -m kbroker.wire.stubs` and commit it"
    )


def _stub_classes() -> dict[str, ast.ClassDef]:
    """Every class of the stub by its run-time name (``Top`` or ``Top.Struct``)."""
    tree = ast.parse(stubs.STUB_PATH.read_text())
    found: dict[str, ast.ClassDef] = {}
    for top in tree.body:
        if isinstance(top, ast.ClassDef):
            found[top.name] = top
            for inner in top.body:
                if isinstance(inner, ast.ClassDef):
                    found[f"{top.name}.{inner.name}"] = inner
    return found


def _annotated(cls: ast.ClassDef) -> dict[str, str]:
    return {
        node.target.id: ast.unparse(node.annotation)
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def test_stub_declares_each_class_with_its_fields_in_order() -> None:
    classes = _stub_classes()
    expected = {name: cls for name, cls in ALL.items()}
    expected.update({f"{name}.{s}": c for name, cls in ALL.items() for s, c in cls.STRUCTS.items()})
    assert set(classes) == set(expected)
    for name, cls in expected.items():
        value = cls()
        annotated = _annotated(classes[name])
        fields = [f.name for f in dataclasses.fields(cls)]
        assert [a for a in annotated if not a.isupper() and not a.startswith("__")] == fields
        for field in fields:
            # A field whose default is None must be typed so (records stay Any).
            if getattr(value, field) is None:
                assert annotated[field] == "Any" or annotated[field].endswith("| None"), (
                    name,
                    field,
                )


def test_mypy_checks_message_fields(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from kbroker.wire.messages import FetchResponse, ProduceRequest\n"
        "\n"
        "def use(request: ProduceRequest) -> int:\n"
        "    request.no_such_field\n"  # line 4
        "    request.acks = 'all'\n"  # line 5
        "    ProduceRequest(acks=1, ackz=1)\n"  # line 6
        "    part = FetchResponse.PartitionData(partition_index=1, high_watermark=5)\n"
        "    return part.high_watermark + request.timeout_ms\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), str(sample)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [int(line.split(":")[1]) for line in errors] == [4, 5, 6], result.stdout
    assert '"ProduceRequest" has no attribute "no_such_field"' in errors[0]
