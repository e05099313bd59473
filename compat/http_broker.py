"""A live kbroker with its HTTP listener on, and small HTTP helpers, for the console tests."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from compat.livebroker import LiveBroker

HTTP_READY = re.compile(r"HTTP console and metrics on (http://\S+?)/?$")


def http_broker(data_dir: Path, overrides: dict[str, str] | None = None) -> LiveBroker:
    """A LiveBroker (not started) whose HTTP listener binds a free port on 127.0.0.1."""
    return LiveBroker(
        data_dir, overrides={"kbroker.http.listener": "127.0.0.1:0", **(overrides or {})}
    )


def base_url(broker: LiveBroker, deadline_s: float = 10.0) -> str:
    """The HTTP listener's URL, from the line the broker logs once it listens."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for line in broker.log.splitlines():
            match = HTTP_READY.search(line)
            if match:
                return match.group(1)
        time.sleep(0.05)
    raise AssertionError(f"the broker never logged its HTTP address\n{broker.log_tail()}")


def get(url: str) -> tuple[int, str]:
    """GET ``url``: (status, body text), error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed by prometheus_client: {(sample name, sorted labels): value}."""
    status, body = get(f"{base}/metrics")
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    """One sample's value (None if absent)."""
    return samples.get((name, tuple(sorted(labels.items()))))


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))
