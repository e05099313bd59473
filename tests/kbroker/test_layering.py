"""The layering rule: wire and log never import trio or the rest of kbroker; wire never
imports log. They install as kbroker.wire and kbroker.log, so a package is named by its
first two components (``kbroker.wire``) when it lives under kbroker, else by its first.

Checked on the source (AST), so an import hidden inside a function counts too.

And in the tests: a test module never imports another test module. Importing one runs its
module body again under another name and hides what the importer depends on; what tests
share lives in helpers modules (``helpers.py``, ``*_helpers.py``, ``conftest.py``, ...).
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


# Where test modules, and the helpers and tools that might import them, live.
TEST_TREES = ("tests", "compat", "bench")


def _relative_imports(path: Path, root: Path) -> set[str]:
    """Every module named by a relative import in ``path``, as an absolute dotted name."""
    package = path.relative_to(root).parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = list(package[: len(package) - (node.level - 1)])
            module = ".".join(base + (node.module.split(".") if node.module else []))
            if node.module:
                found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _imported_test_modules(path: Path, root: Path) -> list[str]:
    """The test modules (``test_*.py`` files under ``root``) that ``path`` imports."""
    names = _imported_modules(path) | _relative_imports(path, root)
    return sorted(
        name
        for name in names
        if name.rpartition(".")[2].startswith("test_")
        and root.joinpath(*name.split(".")).with_suffix(".py").is_file()
    )


def test_no_module_imports_a_test_module() -> None:
    found = {
        str(path.relative_to(ROOT)): imported
        for tree in TEST_TREES
        for path in sorted((ROOT / tree).rglob("*.py"))
        if (imported := _imported_test_modules(path, ROOT))
    }
    assert found == {}, "move what these share into a helpers module"


def test_the_test_import_check_sees_every_form(tmp_path: Path) -> None:
    suite = tmp_path / "tests" / "unit"
    suite.mkdir(parents=True)
    for name in ("__init__.py", "unit/__init__.py", "unit/test_a.py", "unit/helpers.py"):
        (tmp_path / "tests" / name).write_text("")
    (suite / "conftest.py").write_text("")
    forms = [
        "from tests.unit.test_a import f",
        "import tests.unit.test_a",
        "from tests.unit import test_a",
        "from .test_a import f",
        "from . import helpers, test_a",
        "from ..unit.test_a import f",
        "def g():\n    from tests.unit.test_a import f",
    ]
    for n, form in enumerate(forms):
        importer = suite / f"test_b{n}.py"
        importer.write_text(form + "\n")
        assert _imported_test_modules(importer, tmp_path) == ["tests.unit.test_a"], form
    fine = suite / "test_c.py"
    fine.write_text(
        "from tests.unit.helpers import test_thing\nfrom tests.unit.conftest import x\n"
        "from . import helpers\nimport pytest\nfrom test_missing import y\n"
    )
    assert _imported_test_modules(fine, tmp_path) == []
