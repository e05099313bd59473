"""The layering rule: wire and log never import trio or kbroker; wire never imports log.

Checked on the source (AST), so an import hidden inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"wire": {"trio", "kbroker", "log"}, "log": {"trio", "kbroker"}}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value.split(".")[0])
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_has_modules(package: str) -> None:
    assert len(_modules(package)) >= 3, f"{package}/ looks empty"


@pytest.mark.parametrize("path", [p for pkg in sorted(FORBIDDEN) for p in _modules(pkg)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_forbidden_imports(path: Path) -> None:
    package = path.relative_to(ROOT).parts[0]
    bad = _imported_packages(path) & FORBIDDEN[package]
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_checker_sees_hidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import trio.lowlevel\n    from kbroker.x import y\n"
                      "    importlib.import_module('log.partition')\n")
    assert _imported_packages(sample) == {"trio", "kbroker", "log"}
