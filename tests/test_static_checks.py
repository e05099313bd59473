"""The house checks run with the suite: ruff (lint and format) and mypy (types).

A change that breaks either is as red as a failing test, so main stays clean without
anyone remembering to run them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_finds_nothing(tmp_path: Path) -> None:
    result = _run("ruff", "check", "--no-cache", ".", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted(tmp_path: Path) -> None:
    # ruff format is the formatter; a diff here means someone skipped `ruff format .`.
    result = _run("ruff", "format", "--check", "--no-cache", ".", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing(tmp_path: Path) -> None:
    # A private cache: a stale shared one could hide an error.
    result = _run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"), tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
