"""Client x scenario results table built from pytest reports of compat/test_<client>.py."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

# Module name -> (column title, the distribution whose version the table reports).
CLIENTS = {
    "test_kafka_python": ("kafka-python", "kafka-python"),
    "test_confluent_kafka": ("confluent-kafka", "confluent-kafka"),
    "test_aiokafka": ("aiokafka", "aiokafka"),
    "test_kafkajs": ("kafkajs", "kafkajs"),
    "test_kcat": ("kcat", "kcat"),
}
# Further modules of a client folded into its column: test_<family>_<client> goes to
# test_<client>'s column, its rows named with the family's prefix (the consumer-group modules'
# tests are already named test_group_*).
_FAMILIES = {
    "test_groups_": "",
    "test_exactly_once_": "eos: ",
    "test_cluster_": "cluster: ",
    "test_replication_": "replication: ",
    "test_reassign_": "replication: ",
    "test_security_": "security: ",
}
EXTRA_MODULES = {
    family + module.removeprefix("test_"): (module, prefix)
    for family, prefix in _FAMILIES.items()
    for module in CLIENTS
}
# A shared scenario runs as a method of a client module's Test... class (compat/*_scenarios.py):
# its cell is named like a module-level test's, without the class.
_NODE = re.compile(r"(?:^|/)compat/(test_\w+)\.py::(?:Test\w+::)?test_([^\s]+)$")


def _short(text: str, limit: int = 160) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    # kafka-python repeats the class name: "kafka.errors.X: [Error 35] X: detail".
    first = re.sub(r"^[\w.]+\.(\w+): (\[Error -?\d+\]) \1: ", r"\1 \2: ", first)
    first = first.replace("|", "/")
    return first if len(first) <= limit else first[: limit - 1] + "…"


class ResultsTable:
    """Collects one outcome per (client, scenario) from pytest's test reports."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], tuple[str, str]] = {}
        self.scenarios: list[str] = []
        # Measured figures a test recorded with record_property("figures", {...})
        # (the replication checker's acked / lost / duplicated counts, failover times).
        self.figures: dict[tuple[str, str], dict[str, object]] = {}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def record(self, report: pytest.TestReport) -> None:
        """Fold one setup/call/teardown report into the table."""
        match = _NODE.search(report.nodeid)
        if not match:
            return
        module, prefix = EXTRA_MODULES.get(match.group(1), (match.group(1), ""))
        if module not in CLIENTS:
            return
        client = CLIENTS[module][0]
        scenario = prefix + match.group(2)
        if scenario not in self.scenarios:
            self.scenarios.append(scenario)
        key = (client, scenario)
        for name, value in report.user_properties:
            if name == "figures" and isinstance(value, dict):
                self.figures[key] = dict(value)
        if report.when == "call" or report.failed or report.skipped:
            if report.passed:
                outcome, detail = "pass", ""
            elif report.skipped and hasattr(report, "wasxfail"):
                # A client defect marked xfail(strict=True): its reason says what fails.
                outcome, detail = "xfail", _short(str(report.wasxfail))
            elif report.skipped:
                outcome, detail = "SKIP", _short(str(report.longrepr))
            else:
                crash = getattr(report.longrepr, "reprcrash", None)
                message = crash.message if crash is not None else str(report.longrepr)
                outcome = "FAIL" if report.when == "call" else f"ERROR ({report.when})"
                detail = _short(message)
            # A teardown error must not hide an earlier failure of the same test.
            if key in self.cells and self.cells[key][0] != "pass" and outcome != "pass":
                return
            self.cells[key] = (outcome, detail)

    def has_every_client(self) -> bool:
        """True when every client module contributed at least one cell."""
        seen = {client for client, _ in self.cells}
        return all(title in seen for title, _ in CLIENTS.values())

    def markdown(self) -> str:
        """The table itself: one row per scenario, one column per client."""
        clients = [title for title, _ in CLIENTS.values() if any(c == title for c, _ in self.cells)]
        lines = ["| scenario | " + " | ".join(clients) + " |", "|---|" + "---|" * len(clients)]
        for scenario in self.scenarios:
            row = []
            for client in clients:
                outcome, _ = self.cells.get((client, scenario), ("—", ""))
                row.append(outcome)
            lines.append(f"| {scenario} | " + " | ".join(row) + " |")
        return "\n".join(lines)

    def figures_markdown(self) -> str:
        """One row per (scenario, client) that recorded figures: the figures every row has
        get a column each, the rest go into a last column as name=value."""
        if not self.figures:
            return ""
        columns = [
            name
            for name in next(iter(self.figures.values()))
            if all(name in values for values in self.figures.values())
        ]
        header = ["scenario", "client", *columns, "other"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for (client, scenario), values in self.figures.items():
            other = ", ".join(f"{k}={v}" for k, v in values.items() if k not in columns)
            row = [scenario, client, *(str(values[name]) for name in columns), other]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)

    def failures(self) -> list[str]:
        """One line per failing cell with the client's error, for the notes under the table."""
        return [
            f"- {client} / {scenario}: {outcome}: `{detail}`"
            for (client, scenario), (outcome, detail) in self.cells.items()
            if outcome != "pass"
        ]

    def document(self) -> str:
        """RESULTS.md: provenance, the table, and the failure notes."""
        versions = []
        for _, dist in CLIENTS.values():
            try:
                versions.append(f"{dist} {metadata.version(dist)}")
            except metadata.PackageNotFoundError:
                pass  # not a Python distribution (kafkajs, kcat): its module reports it
        try:
            import confluent_kafka

            versions.append(f"librdkafka {confluent_kafka.libversion()[0]}")
        except ImportError:
            pass
        repo = Path(__file__).resolve().parent.parent
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=repo,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = "unknown"
        passed = sum(1 for outcome, _ in self.cells.values() if outcome == "pass")
        parts = [
            "# kbroker compat results",
            "",
            f"Generated by `pytest compat` at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            f" on commit {commit}; Python {sys.version.split()[0]}; {', '.join(versions)}.",
            f"{passed} of {len(self.cells)} client x scenario cells pass.",
            "",
            self.markdown(),
            "",
        ]
        figures = self.figures_markdown()
        if figures:
            parts += ["Measured figures of the scenarios that record them:", "", figures, ""]
        notes = self.failures()
        if notes:
            parts += ["Failures (the client's own error):", "", *notes, ""]
        return "\n".join(parts)
