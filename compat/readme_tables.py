"""Regenerate README.md's derived tables from the code: `python -m compat.readme_tables`.

Each table lives between `<!-- BEGIN name -->` and `<!-- END name -->` markers:
- `api-table`: every registered handler's version range (what ApiVersions advertises);
- `config-table`: the main broker settings with their Kafka defaults (from CONFIG_DEFS);
- `compat-table`: the latest compat/RESULTS.md table.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RESULTS = REPO / "compat" / "RESULTS.md"

# The settings a user is most likely to change; the full list is `kbroker --list-configs`.
MAIN_SETTINGS = [
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "node.id",
    "num.partitions",
    "auto.create.topics.enable",
    "delete.topic.enable",
    "message.max.bytes",
    "compression.type",
    "log.segment.bytes",
    "log.roll.hours",
    "log.retention.hours",
    "log.retention.ms",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.message.timestamp.type",
    "socket.request.max.bytes",
    "connections.max.idle.ms",
    "max.connections",
    "max.connections.per.ip",
    "queued.max.request.bytes",
    "max.broker.partitions",
    "max.partitions.per.request",
    "auto.create.topics.max.per.request",
    "log.max.open.files",
    "fetch.max.bytes",
]


def api_table() -> str:
    """Markdown table of the registered API handlers and their version ranges."""
    from kbroker.handlers import advertised_versions, load_handlers
    from kbroker.wire.protocol import request_class

    load_handlers()
    lines = ["| key | API | versions |", "|---:|---|---|"]
    for key, (low, high) in sorted(advertised_versions().items()):
        name = request_class(key).__name__.removesuffix("Request")
        lines.append(f"| {key} | {name} | {low}–{high} |")
    return "\n".join(lines)


def _default_text(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "(empty)"
    if value == 2**63 - 1:
        return "Long.MAX (never)"
    return str(value)


def config_table() -> str:
    """Markdown table of the main broker settings, Kafka defaults and meaning."""
    from kbroker.config import CONFIG_DEFS

    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for name in MAIN_SETTINGS:
        defn = CONFIG_DEFS.get(name)
        if defn is None:
            continue
        doc = defn.doc.replace("|", "/")
        lines.append(f"| `{name}` | `{_default_text(defn.default)}` | {doc} |")
    return "\n".join(lines)


def compat_table() -> str:
    """The table and failure notes of compat/RESULTS.md (without its title)."""
    if not RESULTS.exists():
        return "_No compat run recorded yet: run `.venv/bin/python -m pytest compat`._"
    text = RESULTS.read_text()
    return text.split("\n", 2)[2].strip() if text.startswith("# ") else text.strip()


def replace_section(text: str, name: str, body: str) -> str:
    """Swap the body between the named BEGIN/END markers."""
    pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- BEGIN {name} --> ... <!-- END {name} --> markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main() -> int:
    """Rewrite the derived sections of README.md in place."""
    sys.path.insert(0, str(REPO))
    text = README.read_text()
    text = replace_section(text, "api-table", api_table())
    text = replace_section(text, "config-table", config_table())
    text = replace_section(text, "compat-table", compat_table())
    README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
