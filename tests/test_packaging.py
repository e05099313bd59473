"""The built wheel, installed into a fresh venv, works beside a user project's own modules.

A user project with its own ``log.py`` and ``wire.py`` (common names) installs kbroker and runs
its pytest suite with the plugin's fixtures: nothing kbroker installs may shadow those modules
or be shadowed by them, so the wheel must hold only the ``kbroker`` package (its ``wire`` and
``log`` inside it).

No network: the wheel is built without build isolation from a copy of the sources, and the
fresh venv sees the dependencies (trio, pytest, kafka-python, ...) of the venv running this
test through a ``.pth`` line. A ``.pth`` line only appends a directory to ``sys.path``: the
running venv's own ``.pth`` files (its editable kbroker) are not processed, and the fresh
venv's site-packages, holding the wheel's kbroker, comes first.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "kbroker", "wire", "log"]
TIMEOUT_S = 300  # a failure bound for pip and the user's pytest, not a speed check

USER_LOG = '''"""The user's own logging helpers, named like kbroker's log folder."""

WHERE = "user log"
'''
USER_WIRE = '''"""The user's own wire format, named like kbroker's wire folder."""

WHERE = "user wire"
'''
USER_TESTS = """
from pathlib import Path

import kbroker
import log
import wire
from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def test_user_modules_are_the_users():
    assert (log.WHERE, wire.WHERE) == ("user log", "user wire")


def test_kbroker_comes_from_the_wheel(venv_site):
    assert Path(kbroker.__file__).resolve().is_relative_to(Path(venv_site).resolve())


def test_produce_and_consume_through_the_session_fixture(kbroker):
    producer = KafkaProducer(bootstrap_servers=kbroker.bootstrap_servers)
    producer.send("user-topic", key=b"k", value=b"hello").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=kbroker.bootstrap_servers, consumer_timeout_ms=5000)
    consumer.assign([TopicPartition("user-topic", 0)])
    consumer.seek_to_beginning()
    records = [(r.key, r.value) for r in consumer]
    consumer.close()
    assert records == [(b"k", b"hello")]


def test_a_fresh_broker_from_the_factory(kbroker_factory):
    broker = kbroker_factory({"num.partitions": 3})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    producer.send("fresh", b"v").get(timeout=20)
    assert producer.partitions_for("fresh") == {0, 1, 2}
    producer.close()
"""
USER_CONFTEST = """
import sysconfig

import pytest


@pytest.fixture
def venv_site():
    return sysconfig.get_paths()["purelib"]
"""


def _setuptools_builds_wheels() -> bool:
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= (70, 1)


def build_wheel(tmp: Path) -> Path:
    """Build kbroker's wheel from a copy of the sources (the checkout stays untouched)."""
    src = tmp / "src"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            # symlinks=True: kbroker/wire and kbroker/log stay links, as in the repository.
            shutil.copytree(
                path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    # The test extra brings a setuptools that builds wheels by itself (70.1+): then no
    # isolated build environment is downloaded. Without it pip fetches the build backend.
    isolation = ["--no-build-isolation"] if _setuptools_builds_wheels() else []
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation]
        + ["-w", str(dist), str(src)],
        check=True,
        timeout=TIMEOUT_S,
    )
    (wheel,) = dist.glob("kbroker-*.whl")
    return wheel


def make_venv(path: Path) -> Path:
    """A fresh venv that sees this venv's dependencies (not its kbroker); its python."""
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    (Path(site) / "outer-dependencies.pth").write_text(ours + "\n")
    return python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_holds_only_the_kbroker_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"kbroker", "kbroker-0.1.0.dist-info"}
    assert "kbroker/wire/messages.py" in names and "kbroker/log/segment.py" in names
    entry_points = zipfile.ZipFile(wheel).read("kbroker-0.1.0.dist-info/entry_points.txt")
    assert b"kbroker = kbroker.pytest_plugin" in entry_points


def test_installed_wheel_runs_the_fixtures_beside_a_users_log_and_wire(
    wheel: Path, tmp_path: Path
) -> None:
    python = make_venv(tmp_path / "venv")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
        + ["--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=TIMEOUT_S,
    )
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "log.py").write_text(USER_LOG)
    (project / "wire.py").write_text(USER_WIRE)
    (project / "tests" / "conftest.py").write_text(USER_CONFTEST)
    (project / "tests" / "test_user.py").write_text(USER_TESTS)
    # rootdir-relative imports as a user's pytest.ini would give them (pythonpath = .).
    (project / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout, result.stdout
