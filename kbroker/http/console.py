"""The web console: server-rendered pages over the broker's live state.

Pages: the overview (``/``), topics, a topic (partitions, configs, rate chart), its
messages (newest first, from an offset or a timestamp; text, JSON or hex; a filter;
long values truncated with a link to the whole record), consumer groups (classic and
KIP-848; members, assignments, committed offsets, lag and a lag chart), transactions and
producers, and the cluster (brokers, controller, leaders, ISR) in cluster mode.

Everything is read on the event loop from in-memory state, except record data, which
``kbroker.http.browse`` reads in a worker thread. The stylesheet and the small script
(auto-refresh, row filter) are files of this package served under ``/static/``: the pages
work offline and need no build step. Read-only unless ``kbroker.http.console.actions``.
"""

from __future__ import annotations

import html
import json
import time
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from kbroker import __version__
from kbroker.http import browse, metrics
from kbroker.http.app import Request, Response, text
from kbroker.stats import BrokerStats
from kbroker.topic_config import effective_topic_value

if TYPE_CHECKING:
    from kbroker.server import Server

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
TRUNCATE_AT = 1000  # characters of a key or value shown before "show all"
esc = html.escape
# What the action that led to this page did (the ?done= of its redirect), shown atop it.
_FLASH: ContextVar[str] = ContextVar("kbroker_console_flash", default="")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _ts(ms: int) -> str:
    if ms < 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _link(path: str, label: str, **query: Any) -> str:
    q = {k: v for k, v in query.items() if v not in (None, "")}
    href = path + ("?" + urlencode(q) if q else "")
    return f'<a href="{esc(href)}">{esc(label)}</a>'


def _topic_path(name: str) -> str:
    return "/topics/" + quote(name, safe="")


def _group_path(name: str) -> str:
    return "/groups/" + quote(name, safe="")


def render_bytes(data: bytes | None, fmt: str, limit: int) -> tuple[str, bool]:
    """(HTML of ``data`` as text, pretty JSON or hex, whether it was truncated)."""
    if data is None:
        return '<span class="null">null</span>', False
    if fmt == "hex":
        shown = data if limit <= 0 else data[: max(1, limit // 3)]
        body = " ".join(f"{b:02x}" for b in shown)
        return f'<code class="hex">{esc(body)}</code>', len(shown) < len(data)
    decoded = data.decode("utf-8", "replace")
    if fmt == "json":
        try:
            decoded = json.dumps(json.loads(decoded), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    truncated = 0 < limit < len(decoded)
    if truncated:
        decoded = decoded[:limit]
    return f"<pre>{esc(decoded)}</pre>", truncated


def svg_chart(points: list[tuple[float, float]], label: str, width: int = 480) -> str:
    """A small line chart (inline SVG) of (time, value) points; the last value in the label."""
    height, pad = 90, 4
    if len(points) < 2:
        return f'<div class="chart empty">{esc(label)}: collecting data…</div>'
    t0, t1 = points[0][0], points[-1][0]
    top = max(v for _, v in points) or 1.0
    span = (t1 - t0) or 1.0
    coords = " ".join(
        f"{pad + (t - t0) / span * (width - 2 * pad):.1f},"
        f"{height - pad - v / top * (height - 2 * pad):.1f}"
        for t, v in points
    )
    last = points[-1][1]
    minutes = (t1 - t0) / 60
    return (
        f'<figure class="chart"><svg viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{esc(label)}">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{coords}"/>'
        f"</svg><figcaption>{esc(label)}: now {last:,.1f}, max {top:,.1f}, "
        f"last {minutes:.0f} min</figcaption></figure>"
    )


class Console:
    """The console's pages for one running ``Server``."""

    def __init__(self, server: Server, stats: BrokerStats, *, actions: bool = False) -> None:
        self.server = server
        self.stats = stats
        self.actions = actions

    @property
    def broker(self) -> Any:
        return self.server.broker

    # --- routing --------------------------------------------------------------------------

    async def route(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "POST" and self.actions:
            return await self.act(request, parts)
        if request.method not in ("GET", "HEAD"):
            return text("method not allowed: the console is read-only\n", 405)
        done = request.arg("done")
        # Per request: each HTTP request runs in a task of its own (its own context).
        _FLASH.set(f'<p class="flash" id="flash">{esc(done)}</p>' if done else "")
        if not parts:
            return self.overview()
        head, rest = parts[0], parts[1:]
        if head == "static" and len(rest) == 1:
            return self.static(rest[0])
        if head == "topics":
            if not rest:
                return self.topics(request)
            topic = self.broker.topics.get(_unquote(rest[0]))
            if topic is None:
                return self.not_found(f"no topic {_unquote(rest[0])!r}")
            if len(rest) == 1:
                return self.topic(topic)
            if rest[1:] == ["messages"]:
                return await self.messages(topic, request)
        if head == "groups":
            if not rest:
                return self.groups()
            if len(rest) == 1:
                return self.group(_unquote(rest[0]))
        if head == "transactions" and not rest:
            return self.transactions()
        if head == "cluster" and not rest:
            return self.cluster()
        return self.not_found(f"no page {request.path}")

    # --- actions (kbroker.http.console.actions) -------------------------------------------

    async def act(self, request: Request, parts: list[str]) -> Response:
        """Run one action, then go back to the page it came from, saying what happened."""
        from kbroker.http import actions

        if not request.same_origin():
            return text("forbidden: cross-origin request\n", 403)
        back = "/topics"
        try:
            if parts == ["topics"]:
                name = request.arg("name").strip()
                await actions.create_topic(
                    self.server,
                    name,
                    int(request.arg("partitions", "1")),
                    int(request.arg("replication", "-1")),
                )
                back, done = _topic_path(name), f"created topic {name}"
            elif len(parts) == 3 and parts[0] == "topics" and parts[2] == "delete":
                name = _unquote(parts[1])
                await actions.delete_topic(self.server, name)
                done = f"deleted topic {name}"
            elif len(parts) == 3 and parts[0] == "topics" and parts[2] == "produce":
                name = _unquote(parts[1])
                back = _topic_path(name) + "/messages"
                headers: list[tuple[str, bytes | None]] = []
                for line in request.arg("headers").splitlines():
                    if line.strip():
                        k, _, v = line.partition("=")
                        headers.append((k.strip(), v.strip().encode()))
                key = request.arg("key")
                offset = await actions.produce(
                    self.server,
                    name,
                    int(request.arg("partition", "0")),
                    key.encode() if key else None,
                    request.arg("value").encode(),
                    headers,
                )
                done = f"produced one record to {name} at offset {offset}"
            elif len(parts) == 3 and parts[0] == "groups" and parts[2] == "reset":
                group = _unquote(parts[1])
                back = _group_path(group)
                offsets = self._reset_targets(group, request.arg("to", "latest").strip())
                await actions.commit_offsets(self.server, group, offsets)
                done = f"reset {len(offsets)} offset(s) of group {group}"
            else:
                return self.not_found(f"no action {request.path}")
        except (actions.ActionError, ValueError) as exc:
            body = (
                f'<h1>Action failed</h1><p class="error" id="error">{esc(str(exc))}</p>'
                f"<p>{_link(back, 'back')}</p>"
            )
            return Response(self.page("Action failed", body), status=400)
        location = back + "?" + urlencode({"done": done})
        return Response(b"", status=303, headers=[("location", location)])

    def _reset_targets(self, group: str, to: str) -> dict[tuple[str, int], int]:
        """The new offset of each partition the group committed: earliest, latest or N."""
        targets = {}
        for o in metrics.group_offsets(self.server):
            partition = self.broker.topics.partition(o.topic, o.partition)
            if o.group != group or partition is None:
                continue
            if to == "earliest":
                targets[(o.topic, o.partition)] = partition.log.log_start_offset
            elif to == "latest":
                targets[(o.topic, o.partition)] = partition.log.high_watermark
            else:
                targets[(o.topic, o.partition)] = int(to)
        if not targets:
            raise ValueError(f"group {group} has no committed offsets to reset")
        return targets

    def static(self, name: str) -> Response:
        path = STATIC_DIR / name
        kind = STATIC_TYPES.get(path.suffix)
        if kind is None or not path.is_file() or path.parent != STATIC_DIR:
            return text("not found\n", 404)
        return Response(path.read_bytes(), content_type=kind)

    def not_found(self, why: str) -> Response:
        body = f"<h1>Not found</h1><p>{esc(why)}</p>"
        return Response(self.page("Not found", body), status=404)

    # --- layout ---------------------------------------------------------------------------

    def page(self, title: str, body: str, *, refresh: bool = True) -> str:
        nav = [("/", "Overview"), ("/topics", "Topics"), ("/groups", "Groups")]
        nav.append(("/transactions", "Transactions"))
        if self.broker.cluster is not None:
            nav.append(("/cluster", "Cluster"))
        links = "".join(f'<a href="{href}">{label}</a>' for href, label in nav)
        return (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)} · kbroker</title>"
            '<link rel="stylesheet" href="/static/console.css">'
            '<script src="/static/console.js" defer></script></head>'
            f'<body data-refresh="{"on" if refresh else "off"}"><header>'
            f'<a class="brand" href="/">kbroker</a><nav>{links}'
            '<a href="/metrics">/metrics</a></nav>'
            f'<span class="node">node {self.broker.node_id} · {esc(self.broker.cluster_id)}'
            f"{' · actions on' if self.actions else ' · read-only'}</span>"
            f"</header><main>{_FLASH.get()}{body}</main></body></html>"
        )

    # --- figures --------------------------------------------------------------------------

    def _rates(self, topic: str | None = None) -> list[tuple[float, float]]:
        """Messages in per second (one topic, or all) between the charts' samples."""
        samples = list(self.stats.history)
        points = []
        for before, after in zip(samples, samples[1:], strict=False):
            dt = after.at - before.at
            if dt <= 0:
                continue
            if topic is None:
                delta = sum(after.messages_in.values()) - sum(before.messages_in.values())
            else:
                delta = after.messages_in.get(topic, 0) - before.messages_in.get(topic, 0)
            points.append((after.at, max(0, delta) / dt))
        return points

    def _out_rates(self, topic: str) -> list[tuple[float, float]]:
        samples = list(self.stats.history)
        points = []
        for before, after in zip(samples, samples[1:], strict=False):
            dt = after.at - before.at
            if dt > 0:
                delta = after.bytes_out.get(topic, 0) - before.bytes_out.get(topic, 0)
                points.append((after.at, max(0, delta) / dt))
        return points

    def _rate_now(self, topic: str) -> float:
        points = self._rates(topic)
        return points[-1][1] if points else 0.0

    # --- pages ----------------------------------------------------------------------------

    def overview(self) -> Response:
        broker = self.broker
        partitions = broker.topics.all_partitions()
        lag = metrics.group_lag(self.server)
        uptime = time.time() - self.stats.started
        host, port = self.server.address
        facts = [
            ("Version", f"kbroker {__version__}"),
            ("Kafka listener", f"{host}:{port}"),
            ("Mode", "cluster (ZooKeeper)" if broker.cluster is not None else "single node"),
            ("Up", f"{uptime / 3600:.1f} h" if uptime > 3600 else f"{uptime / 60:.1f} min"),
            ("Topics", str(len(broker.topics.topics))),
            ("Partitions", str(len(partitions))),
            ("Data on disk", _size(sum(p.log.size_in_bytes for p in partitions))),
            ("Client connections", str(len(self.server.connections))),
            ("Groups with offsets", str(len(lag))),
            ("Total consumer lag", f"{sum(lag.values()):,}"),
        ]
        rows = "".join(f"<tr><th>{k}</th><td>{esc(v)}</td></tr>" for k, v in facts)
        body = (
            f'<h1>Broker {broker.node_id}</h1><table class="facts" id="facts">{rows}</table>'
            f"<h2>Produce rate</h2>{svg_chart(self._rates(), 'messages in / s (all topics)')}"
        )
        return Response(self.page("Overview", body))

    def topics(self, request: Request) -> Response:
        show_internal = request.arg("internal") == "1"
        rows = []
        for name, topic in sorted(self.broker.topics.topics.items()):
            if topic.internal and not show_internal:
                continue
            logs = [p.log for p in topic.partitions]
            replication = (
                len(topic.partitions[0].replica.replicas)
                if topic.partitions and topic.partitions[0].replica is not None
                else 1
            )
            rows.append(
                f'<tr data-topic="{esc(name)}"><td>{_link(_topic_path(name), name)}</td>'
                f'<td class="num">{len(topic.partitions)}</td><td class="num">{replication}</td>'
                f'<td class="num">{_size(sum(log.size_in_bytes for log in logs))}</td>'
                f'<td class="num start-offset">{sum(log.log_start_offset for log in logs):,}</td>'
                f'<td class="num end-offset">{sum(log.log_end_offset for log in logs):,}</td>'
                f'<td class="num">{self._rate_now(name):,.1f}</td>'
                f"<td>{_link(_topic_path(name) + '/messages', 'messages')}</td></tr>"
            )
        toggle = (
            _link("/topics", "hide internal topics")
            if show_internal
            else _link("/topics", "show internal topics", internal="1")
        )
        create = (
            '<form class="controls" method="post" action="/topics" id="create-topic">'
            '<label>new topic <input name="name" required></label>'
            '<label>partitions <input name="partitions" size="3" value="1"></label>'
            '<label>replication <input name="replication" size="3" value="-1"></label>'
            "<button>Create</button></form>"
            if self.actions
            else ""
        )
        body = (
            f"<h1>Topics</h1>{create}<p>{toggle} · "
            '<input type="search" class="row-filter" data-table="topics" '
            'placeholder="filter topics"></p>'
            '<table id="topics"><thead><tr><th>Topic</th><th>Partitions</th>'
            "<th>Replication</th><th>Size</th><th>Start offsets</th><th>End offsets</th>"
            f"<th>Messages/s</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            + ("" if rows else "<p>No topics yet.</p>")
        )
        return Response(self.page("Topics", body))

    def topic(self, topic: Any) -> Response:
        cluster = self.broker.cluster
        rows = []
        for p in topic.partitions:
            log = p.log
            replica = p.replica
            if cluster is not None:
                info = cluster.metadata.partition(topic.name, p.index)
                leader = info.leader if info is not None else -1
                replicas = list(info.replicas) if info is not None else []
                isr = list(info.isr) if info is not None else []
            else:
                leader, replicas, isr = self.broker.node_id, [self.broker.node_id], []
                isr = replicas
            if replica is not None and replica.is_leader:
                isr = list(replica.isr)
            rows.append(
                f'<tr data-partition="{p.index}"><td class="num">{p.index}</td>'
                f'<td class="num">{leader}</td><td>{replicas}</td><td>{isr}</td>'
                f'<td class="num">{log.log_start_offset:,}</td>'
                f'<td class="num">{log.high_watermark:,}</td>'
                f'<td class="num end-offset">{log.log_end_offset:,}</td>'
                f'<td class="num">{_size(log.size_in_bytes)}</td>'
                f'<td class="num">{len(log.segment_base_offsets())}</td>'
                f"<td>{_link(_topic_path(topic.name) + '/messages', 'messages', partition=p.index)}"
                "</td></tr>"
            )
        config_rows = []
        for key in sorted(
            set(topic.configs)
            | {"cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes"}
        ):
            try:
                value = effective_topic_value(key, topic.configs, self.broker.config)
            except Exception:  # noqa: BLE001 - a config this broker does not model
                value = topic.configs.get(key)
            source = "topic" if key in topic.configs else "default"
            config_rows.append(
                f"<tr><td>{esc(key)}</td><td>{esc(str(value))}</td><td>{source}</td></tr>"
            )
        name = topic.name
        delete = (
            f'<form method="post" action="{esc(_topic_path(name))}/delete" id="delete-topic" '
            "onsubmit=\"return confirm('Delete this topic and all its data?')\">"
            "<button>Delete this topic</button></form>"
            if self.actions and not topic.internal
            else ""
        )
        body = (
            f"<h1>Topic {esc(name)}</h1><p>id {esc(str(topic.topic_id))}"
            f"{' · internal' if topic.internal else ''} · "
            f"{_link(_topic_path(name) + '/messages', 'browse messages')}</p>{delete}"
            '<div class="charts">'
            f"{svg_chart(self._rates(name), 'messages in / s')}"
            f"{svg_chart(self._out_rates(name), 'bytes out / s')}</div>"
            '<h2>Partitions</h2><table id="partitions"><thead><tr><th>#</th><th>Leader</th>'
            "<th>Replicas</th><th>ISR</th><th>Start</th><th>High watermark</th><th>End</th>"
            f"<th>Size</th><th>Segments</th><th></th></tr></thead><tbody>{''.join(rows)}"
            '</tbody></table><h2>Configs</h2><table id="configs"><thead><tr><th>Name</th>'
            f"<th>Value</th><th>Source</th></tr></thead><tbody>{''.join(config_rows)}"
            "</tbody></table>"
        )
        return Response(self.page(f"Topic {name}", body))

    async def messages(self, topic: Any, request: Request) -> Response:
        fmt = request.arg("format", "text")
        if fmt not in ("text", "json", "hex"):
            fmt = "text"
        try:
            limit = max(1, min(MAX_LIMIT, int(request.arg("limit", str(DEFAULT_LIMIT)))))
            partition_arg = request.arg("partition")
            offset_arg = request.arg("offset")
            ts_arg = request.arg("timestamp")
            truncate = int(request.arg("max", str(TRUNCATE_AT)))
            partitions = (
                [topic.partitions[int(partition_arg)]] if partition_arg else topic.partitions
            )
            from_offset = int(offset_arg) if offset_arg else None
            from_ts = _parse_time(ts_arg) if ts_arg and from_offset is None else None
        except (ValueError, IndexError):
            return text("bad parameters\n", 400)
        needle = request.arg("filter").lower()
        found: list[browse.Message] = []
        mode = "newest first"
        for p in partitions:
            if from_offset is not None:
                mode = f"from offset {from_offset}"
                found += await browse.read_partition(p, from_offset, limit)
            elif from_ts is not None:
                mode = f"from {_ts(from_ts)}"
                # A time index lookup, then at most one index interval of batch headers.
                hit = p.log.offset_for_timestamp(from_ts)
                if hit is not None:
                    found += await browse.read_partition(p, hit[0], limit)
            else:
                found += await browse.newest(p, limit)
        if needle:
            found = [m for m in found if needle in _searchable(m)]
        if from_offset is not None or from_ts is not None:
            found.sort(key=lambda m: (m.timestamp, m.partition, m.offset))
        else:
            found.sort(key=lambda m: (m.timestamp, m.partition, m.offset), reverse=True)
        found = found[:limit]
        base = _topic_path(topic.name) + "/messages"
        rows = []
        for m in found:
            key_html, key_cut = render_bytes(m.key, fmt, truncate)
            value_html, value_cut = render_bytes(m.value, fmt, truncate)
            headers = "".join(
                f"<div><b>{esc(k)}</b>: {esc(v.decode('utf-8', 'replace')) if v is not None else 'null'}</div>"
                for k, v in m.headers
            )
            more = (
                " "
                + _link(
                    base,
                    "show all",
                    partition=m.partition,
                    offset=m.offset,
                    limit=1,
                    format=fmt,
                    max=0,
                )
                if key_cut or value_cut
                else ""
            )
            size = (len(m.key) if m.key else 0) + (len(m.value) if m.value else 0)
            rows.append(
                f'<tr class="message" data-partition="{m.partition}" data-offset="{m.offset}">'
                f'<td class="num">{m.partition}</td><td class="num">{m.offset}</td>'
                f"<td>{_ts(m.timestamp)}</td><td class=key>{key_html}</td>"
                f'<td class="value">{value_html}{more}</td><td class="headers">{headers}</td>'
                f'<td class="num">{size}</td></tr>'
            )
        options = "".join(
            f'<option value="{p.index}"{" selected" if partition_arg == str(p.index) else ""}>'
            f"{p.index}</option>"
            for p in topic.partitions
        )
        formats = "".join(
            f"<option{' selected' if f == fmt else ''}>{f}</option>"
            for f in ("text", "json", "hex")
        )
        form = (
            f'<form class="controls" method="get" action="{esc(base)}">'
            f'<label>partition <select name="partition"><option value="">all</option>{options}'
            f'</select></label><label>offset <input name="offset" size="8" value="{esc(offset_arg)}">'
            f'</label><label>or time <input name="timestamp" size="20" '
            f'placeholder="2024-05-01T12:00:00 or ms" value="{esc(ts_arg)}"></label>'
            f'<label>limit <input name="limit" size="4" value="{limit}"></label>'
            f'<label>as <select name="format">{formats}</select></label>'
            f'<label>filter <input name="filter" value="{esc(request.arg("filter"))}"></label>'
            "<button>Show</button></form>"
        )
        produce_form = (
            f'<form class="controls" method="post" action="{esc(base[: -len("/messages")])}/produce" '
            'id="produce"><label>partition <input name="partition" size="3" value="0"></label>'
            '<label>key <input name="key"></label><label>value <textarea name="value" rows="2" '
            'cols="40"></textarea></label><label>headers (k=v lines) <textarea name="headers" '
            'rows="2" cols="20"></textarea></label><button>Produce</button></form>'
            if self.actions and not topic.internal
            else ""
        )
        body = (
            f"<h1>Messages of {_link(_topic_path(topic.name), topic.name)}</h1>{form}{produce_form}"
            f"<p>{len(found)} record(s), {esc(mode)}, as {fmt}.</p>"
            '<table id="messages"><thead><tr><th>Partition</th><th>Offset</th>'
            "<th>Timestamp</th><th>Key</th><th>Value</th><th>Headers</th><th>Bytes</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
        )
        return Response(self.page(f"Messages of {topic.name}", body, refresh=False))

    def groups(self) -> Response:
        lag = metrics.group_lag(self.server)
        listed: dict[str, tuple[str, str, str]] = {}
        members_of: dict[str, int] = {}
        for gc in metrics.loaded_coordinators(self.server):
            for group_id, protocol_type, state, kind in gc.list_groups():
                listed[group_id] = (protocol_type, state, kind)
                members_of[group_id] = len(gc.describe_group(group_id).members)
        for group_id in lag:
            listed.setdefault(group_id, ("", "Empty", "classic"))
        rows = []
        for group_id, (protocol_type, state, kind) in sorted(listed.items()):
            members = members_of.get(group_id, 0)
            rows.append(
                f'<tr data-group="{esc(group_id)}"><td>{_link(_group_path(group_id), group_id)}</td>'
                f"<td>{esc(kind)}</td><td>{esc(protocol_type)}</td><td>{esc(state)}</td>"
                f'<td class="num">{members}</td><td class="num lag">{lag.get(group_id, 0):,}</td>'
                "</tr>"
            )
        body = (
            '<h1>Consumer groups</h1><table id="groups"><thead><tr><th>Group</th><th>Type</th>'
            "<th>Protocol type</th><th>State</th><th>Members</th><th>Total lag</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>" + ("" if rows else "<p>No groups yet.</p>")
        )
        return Response(self.page("Groups", body))

    def group(self, group_id: str) -> Response:
        from kbroker.coordinator.events import assignment_summary

        gc = metrics.group_coordinator(self.server, group_id)
        offsets = [o for o in metrics.group_offsets(self.server) if o.group == group_id]
        if gc is None or (not offsets and group_id not in {g[0] for g in gc.list_groups()}):
            return self.not_found(f"no group {group_id!r}")
        described = gc.describe_group(group_id)
        member_rows = []
        consumer_group = gc.consumer_group(group_id)
        for m in described.members:
            if consumer_group is not None:
                member = consumer_group.members.get(m.member_id)
                assigned = getattr(member, "assigned", None) if member is not None else None
                assignment = _kip848_assignment(self.broker, assigned)
            else:
                assignment = assignment_summary(described.protocol_type, m.assignment)
            member_rows.append(
                f"<tr><td>{esc(m.member_id)}</td><td>{esc(m.group_instance_id or '')}</td>"
                f"<td>{esc(m.client_id)}</td><td>{esc(m.client_host)}</td>"
                f"<td>{esc(assignment)}</td></tr>"
            )
        offset_rows = "".join(
            f'<tr data-topic="{esc(o.topic)}" data-partition="{o.partition}">'
            f"<td>{_link(_topic_path(o.topic), o.topic)}</td><td class=num>{o.partition}</td>"
            f'<td class="num committed">{o.committed:,}</td><td class="num">{o.end_offset:,}</td>'
            f'<td class="num lag">{o.lag:,}</td></tr>'
            for o in offsets
        )
        history = [(s.at, float(s.lag.get(group_id, 0))) for s in self.stats.history]
        total = sum(o.lag for o in offsets)
        body = (
            f"<h1>Group {esc(group_id)}</h1>"
            f'<p>state <b id="group-state">{esc(described.state)}</b> · protocol '
            f"{esc(described.protocol_type)}/{esc(described.protocol_data or '-')} · "
            f'total lag <b id="total-lag">{total:,}</b></p>'
            f"{svg_chart(history, 'total lag')}"
            + (
                f'<form class="controls" method="post" action="{esc(_group_path(group_id))}/reset" '
                'id="reset-offsets"><label>reset offsets to <input name="to" value="latest" '
                'size="10" title="earliest, latest or an offset"></label>'
                "<button>Reset</button></form>"
                if self.actions
                else ""
            )
            + '<h2>Members</h2><table id="members"><thead><tr><th>Member</th><th>Instance</th>'
            "<th>Client id</th><th>Host</th><th>Assignment</th></tr></thead>"
            f"<tbody>{''.join(member_rows)}</tbody></table>"
            '<h2>Offsets</h2><table id="offsets"><thead><tr><th>Topic</th><th>Partition</th>'
            "<th>Committed</th><th>End (high watermark)</th><th>Lag</th></tr></thead>"
            f"<tbody>{offset_rows}</tbody></table>"
        )
        return Response(self.page(f"Group {group_id}", body))

    def transactions(self) -> Response:
        from kbroker.txn.service import loaded_txn_coordinators

        txns = {t: m for tc in loaded_txn_coordinators(self.broker) for t, m in tc.txns.items()}
        now_ms = int(self.broker.clock() * 1000)
        txn_rows = []
        if txns:
            for tid, meta in sorted(txns.items()):
                parts = ", ".join(f"{t}-{p}" for t, p in sorted(meta.partitions))
                age = (now_ms - meta.start_ms) / 1000 if meta.start_ms >= 0 else None
                txn_rows.append(
                    f'<tr data-txn="{esc(tid)}"><td>{esc(tid)}</td>'
                    f"<td>{esc(meta.state.display)}</td>"
                    f'<td class="num">{meta.producer_id}</td><td class="num">{meta.producer_epoch}</td>'
                    f"<td>{esc(parts)}</td>"
                    f'<td class="num">{"-" if age is None else f"{age:.1f} s"}</td>'
                    f'<td class="num">{meta.timeout_ms:,} ms</td></tr>'
                )
        producer_rows = []
        for p in self.broker.topics.all_partitions():
            state = p.log.producer_state
            for pid, entry in sorted(state.entries.items()):
                open_txn = state.ongoing.get(pid)
                producer_rows.append(
                    f"<tr><td>{esc(p.topic.name)}-{p.index}</td><td class=num>{pid}</td>"
                    f"<td class=num>{entry.producer_epoch}</td><td class=num>{entry.last_seq}</td>"
                    f"<td class=num>{entry.last_offset}</td><td>{_ts(entry.last_timestamp)}</td>"
                    f"<td>{'' if open_txn is None else f'open since offset {open_txn}'}</td></tr>"
                )
        body = (
            '<h1>Transactions</h1><table id="transactions"><thead><tr><th>Transactional id</th>'
            "<th>State</th><th>Producer id</th><th>Epoch</th><th>Partitions</th><th>Age</th>"
            f"<th>Timeout</th></tr></thead><tbody>{''.join(txn_rows)}</tbody></table>"
            + ("" if txn_rows else "<p>No transactional producers coordinated here.</p>")
            + '<h2>Producers</h2><table id="producers"><thead><tr><th>Partition</th>'
            "<th>Producer id</th><th>Epoch</th><th>Last sequence</th><th>Last offset</th>"
            "<th>Last write</th><th>Transaction</th></tr></thead>"
            f"<tbody>{''.join(producer_rows)}</tbody></table>"
        )
        return Response(self.page("Transactions", body))

    def cluster(self) -> Response:
        cluster = self.broker.cluster
        if cluster is None:
            body = "<h1>Cluster</h1><p>Single node: this broker is the whole cluster.</p>"
            return Response(self.page("Cluster", body))
        metadata = cluster.metadata
        broker_rows = "".join(
            f'<tr data-broker="{b.broker_id}"><td class=num>{b.broker_id}</td>'
            f"<td>{esc(b.host)}:{b.port}</td><td>{esc(b.rack or '')}</td>"
            f"<td>{'controller' if b.broker_id == metadata.controller_id else ''}"
            f"{' (this broker)' if b.broker_id == cluster.broker_id else ''}</td></tr>"
            for b in sorted(metadata.brokers.values(), key=lambda b: b.broker_id)
        )
        live = set(metadata.brokers)
        partition_rows = []
        under = offline = 0
        for name, info in sorted(metadata.topics.items()):
            for index, p in sorted(info.partitions.items()):
                flags = []
                if len(p.isr) < len(p.replicas):
                    flags.append("under-replicated")
                    under += 1
                if p.leader < 0 or p.leader not in live:
                    flags.append("offline")
                    offline += 1
                partition_rows.append(
                    f'<tr class="{" ".join(flags)}"><td>{esc(name)}</td><td class=num>{index}</td>'
                    f"<td class=num>{p.leader}</td><td>{list(p.replicas)}</td>"
                    f"<td>{list(p.isr)}</td><td class=num>{p.leader_epoch}</td>"
                    f"<td>{', '.join(flags)}</td></tr>"
                )
        body = (
            f"<h1>Cluster</h1><p>controller <b>{metadata.controller_id}</b> · "
            f'{len(live)} live broker(s) · <span id="under">{under}</span> under-replicated · '
            f"{offline} offline partition(s)</p>"
            '<h2>Brokers</h2><table id="brokers"><thead><tr><th>Id</th><th>Endpoint</th>'
            f"<th>Rack</th><th></th></tr></thead><tbody>{broker_rows}</tbody></table>"
            '<h2>Partitions</h2><table id="cluster-partitions"><thead><tr><th>Topic</th>'
            "<th>Partition</th><th>Leader</th><th>Replicas</th><th>ISR</th><th>Epoch</th>"
            f"<th></th></tr></thead><tbody>{''.join(partition_rows)}</tbody></table>"
        )
        return Response(self.page("Cluster", body))


def _unquote(part: str) -> str:
    from urllib.parse import unquote

    return unquote(part)


def _parse_time(text: str) -> int:
    """Epoch milliseconds, or an ISO date/time read as UTC."""
    if text.lstrip("-").isdigit():
        return int(text)
    import datetime as dt

    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def _searchable(m: browse.Message) -> str:
    parts = [m.key or b"", m.value or b""]
    for k, v in m.headers:
        parts += [k.encode(), v or b""]
    return b"\n".join(parts).decode("utf-8", "replace").lower()


def _kip848_assignment(broker: Any, assigned: Any) -> str:
    """A KIP-848 member's assignment ({topic id: partitions}) as topic[partitions]."""
    if not assigned:
        return "nothing"
    out = []
    for topic_id, partitions in sorted(assigned.items(), key=lambda kv: str(kv[0])):
        topic = broker.topics.get_by_id(topic_id)
        name = topic.name if topic is not None else str(topic_id)
        out.append(f"{name}[{','.join(str(p) for p in sorted(partitions))}]")
    return " ".join(out)
