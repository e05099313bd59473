"""`kbroker completion bash|zsh`: generated from the CLI's own argparse definitions."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbroker.cli import completion_parser, main

REPO = Path(__file__).resolve().parents[2]


def _subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _subcommands(sub, (*path, name))


def test_the_completion_parser_has_every_command() -> None:
    names = {path for path, _ in _subcommands(completion_parser())}
    expected_top = {"topics", "groups", "acls", "users", "produce", "consume", "completion"}
    assert {path[0] for path in names} == expected_top
    assert {p[1] for p in names if p[0] == "groups" and len(p) == 2} == {
        "list",
        "describe",
        "reset-offsets",
        "delete",
    }
    assert {p[1] for p in names if p[0] == "acls" and len(p) == 2} == {"list", "add", "remove"}
    assert {p[1] for p in names if p[0] == "users" and len(p) == 2} == {"list", "add", "remove"}
    assert {p[1] for p in names if p[0] == "topics" and len(p) == 2} == {
        "list",
        "describe",
        "create",
        "delete",
        "alter",
    }


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_names_every_subcommand_and_option(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    parser = completion_parser()
    for path, sub in _subcommands(parser):
        assert path[-1] in script, path
        for action in sub._actions:
            for option in action.option_strings:
                assert option in script, (path, option)
    for option in ("--listen", "--data-dir", "--override", "--list-configs"):
        assert option in script


def _bash_complete(script: str, words: list[str]) -> list[str]:
    """What bash offers after typing ``words`` (the last one being completed)."""
    program = (
        f"{script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}\n'
        "_shtab_kbroker\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile"], input=program, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return sorted(line for line in result.stdout.splitlines() if line)


def test_bash_completes_commands_actions_and_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kbroker", "completion", "bash"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    script = result.stdout
    assert _bash_complete(script, ["kbroker", ""]) == sorted(
        ["topics", "groups", "acls", "users", "produce", "consume", "completion"]
    )
    assert _bash_complete(script, ["kbroker", "groups", "re"]) == ["reset-offsets"]
    assert _bash_complete(script, ["kbroker", "consume", "t", "--from-"]) == [
        "--from-beginning",
        "--from-timestamp",
    ]
    assert _bash_complete(script, ["kbroker", "completion", ""]) == ["bash", "zsh"]


def test_completion_for_an_unknown_shell_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["completion", "fish"])
    assert info.value.code == 2 and "invalid choice: 'fish'" in capsys.readouterr().err
