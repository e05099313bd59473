"""The layering rule: wire and log never import trio or the rest of kbroker; wire never
imports log. They install as kbroker.wire and kbroker.log, so a package is named by its
first two components (``kbroker.wire``) when it lives under kbroker, else by its first.

Checked on the source (AST), so an import hidden inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What each folder may not import; "kbroker" stands for every kbroker module that is not
# kbroker.wire or kbroker.log.
FORBIDDEN = {"wire": {"trio", "kbroker", "kbroker.log", "log"}, "log": {"trio", "kbroker"}}


def _package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "kbroker" and len(parts) > 1 and parts[1] in ("wire", "log"):
        return f"kbroker.{parts[1]}"
    return parts[0]


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_package_of(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "kbroker":  # from kbroker import log
                found.update(_package_of(f"kbroker.{alias.name}") for alias in node.names)
            else:
                found.add(_package_of(node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(_package_of(node.args[0].value))
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_has_modules(package: str) -> None:
    assert len(_modules(package)) >= 3, f"{package}/ looks empty"


@pytest.mark.parametrize(
    "path",
    [p for pkg in sorted(FORBIDDEN) for p in _modules(pkg)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_forbidden_imports(path: Path) -> None:
    package = path.relative_to(ROOT).parts[0]
    bad = _imported_packages(path) & FORBIDDEN[package]
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_checker_sees_hidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    import trio.lowlevel\n    from kbroker.x import y\n"
        "    importlib.import_module('kbroker.log.partition')\n"
        "    from kbroker import wire\n    from kbroker.wire.records import z\n"
    )
    assert _imported_packages(sample) == {"trio", "kbroker", "kbroker.log", "kbroker.wire"}


def test_kbroker_wire_and_log_are_the_top_level_folders() -> None:
    # kbroker/wire and kbroker/log are links to the repository's wire/ and log/, so the
    # code checked above is the code that installs under the kbroker name.
    for name in ("wire", "log"):
        assert (ROOT / "kbroker" / name).resolve() == (ROOT / name).resolve()


def _imported_modules(path: Path) -> set[str]:
    """Every module named by an absolute import in ``path`` (hidden or under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (module -> modules it imports), one path each."""
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(path[path.index(module) :] + [module])
            return
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return cycles


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_cycles_inside_wire_and_log(package: str) -> None:
    # A cycle between two modules (even one hidden in a function or under TYPE_CHECKING)
    # means neither can be read or tested without the other; dependencies run one way.
    modules = {f"kbroker.{package}.{p.stem}": p for p in _modules(package) if p.stem != "__init__"}
    graph = {name: _imported_modules(path) & set(modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
