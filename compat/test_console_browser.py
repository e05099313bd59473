"""The web console in a real browser: Debian's headless Chromium driven by Selenium, against a
live kbroker that kafka-python filled. Each page is saved as a screenshot under
``console-screenshots/`` (or ``$KBROKER_CONSOLE_SCREENSHOTS``), which CI keeps as artifacts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from compat.http_broker import HTTP_READY, base_url, http_broker, scrape, value
from compat.livebroker import REPO_ROOT, LiveBroker

pytestmark = pytest.mark.compat

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(os.environ.get("KBROKER_CONSOLE_SCREENSHOTS", REPO_ROOT / "console-screenshots"))
ORDERS_PER_PARTITION = 10
COMMITTED = {0: 4, 1: 7}  # billing's committed offsets on orders-0 and orders-1


class Console:
    """A live broker with its console, and what the clients put in it."""

    def __init__(self, broker: LiveBroker, base: str) -> None:
        self.broker = broker
        self.base = base


def _fill(broker: LiveBroker) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        admin.create_topics({"orders": {"num_partitions": 2, "replication_factor": 1}})
        admin.create_topics({"clicks": {"num_partitions": 1, "replication_factor": 1}})
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    try:
        for p in range(2):
            for i in range(ORDERS_PER_PARTITION):
                order = {"id": p * 100 + i, "item": f"book-{i}", "qty": i + 1}
                producer.send(
                    "orders",
                    key=f"customer-{i}".encode(),
                    value=json.dumps(order).encode(),
                    headers=[("source", b"web"), ("trace", f"t{p}-{i}".encode())],
                    partition=p,
                )
        for i in range(5):
            producer.send("clicks", key=None, value=f"click {i}".encode())
        producer.flush(timeout=15)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        group_id="billing",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        consumer.assign([TopicPartition("orders", p) for p in range(2)])
        consumer.poll(timeout_ms=2000)
        consumer.commit(
            {
                TopicPartition("orders", p): OffsetAndMetadata(o, "", -1)
                for p, o in COMMITTED.items()
            }
        )
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    broker = http_broker(Path(tmp_path_factory.mktemp("kbroker-console")))
    broker.start()
    try:
        _fill(broker)
        yield Console(broker, base_url(broker))
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER), (
        "Debian's chromium and chromium-driver are needed (.ci/run installs them)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _open(browser: Any, url: str, shot: str) -> None:
    browser.get(url)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # The whole page, not just the window: resize to the document's height first.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, max(600, min(int(height) + 120, 6000)))
    browser.save_screenshot(str(SCREENSHOTS / f"{shot}.png"))


def _rows(browser: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, css)


def test_topics_page_shows_end_offsets(console: Console, browser: Any) -> None:
    _open(browser, f"{console.base}/topics", "topics")
    (orders,) = _rows(browser, '#topics tr[data-topic="orders"]')
    (clicks,) = _rows(browser, '#topics tr[data-topic="clicks"]')
    cell = "td.end-offset"
    assert orders.find_element("css selector", cell).text == str(2 * ORDERS_PER_PARTITION)
    assert clicks.find_element("css selector", cell).text == "5"
    # Internal topics are hidden until asked for.
    assert not _rows(browser, '#topics tr[data-topic="__consumer_offsets"]')
    _open(browser, f"{console.base}/topics/orders", "topic-orders")
    ends = [
        r.find_element("css selector", cell).text for r in _rows(browser, "#partitions tbody tr")
    ]
    assert ends == [str(ORDERS_PER_PARTITION)] * 2


def test_messages_page_shows_records_as_text_and_json(console: Console, browser: Any) -> None:
    _open(browser, f"{console.base}/topics/orders/messages?partition=1", "messages-text")
    rows = _rows(browser, "#messages tr.message")
    assert len(rows) == ORDERS_PER_PARTITION
    newest = rows[0]
    assert newest.get_attribute("data-offset") == str(ORDERS_PER_PARTITION - 1)
    assert newest.find_element("css selector", "td.key").text == "customer-9"
    assert newest.find_element("css selector", "td.value").text == (
        '{"id": 109, "item": "book-9", "qty": 10}'
    )
    assert newest.find_element("css selector", "td.headers").text.splitlines() == [
        "source: web",
        "trace: t1-9",
    ]
    _open(
        browser,
        f"{console.base}/topics/orders/messages?partition=0&offset=3&limit=2&format=json",
        "messages-json",
    )
    rows = _rows(browser, "#messages tr.message")
    assert [r.get_attribute("data-offset") for r in rows] == ["3", "4"]
    pretty = rows[0].find_element("css selector", "td.value pre").text
    assert pretty == '{\n  "id": 3,\n  "item": "book-3",\n  "qty": 4\n}'
    # The filter keeps only matching records (key, value or headers).
    _open(browser, f"{console.base}/topics/orders/messages?filter=t0-7", "messages-filter")
    rows = _rows(browser, "#messages tr.message")
    assert [(r.get_attribute("data-partition"), r.get_attribute("data-offset")) for r in rows] == [
        ("0", "7")
    ]


def test_groups_page_shows_the_lag_the_consumer_left(console: Console, browser: Any) -> None:
    expected = {p: ORDERS_PER_PARTITION - o for p, o in COMMITTED.items()}
    _open(browser, f"{console.base}/groups", "groups")
    (row,) = _rows(browser, '#groups tr[data-group="billing"]')
    assert row.find_element("css selector", "td.lag").text == str(sum(expected.values()))
    _open(browser, f"{console.base}/groups/billing", "group-billing")
    for p, lag in expected.items():
        (offset_row,) = _rows(browser, f'#offsets tr[data-topic="orders"][data-partition="{p}"]')
        assert offset_row.find_element("css selector", "td.committed").text == str(COMMITTED[p])
        assert offset_row.find_element("css selector", "td.lag").text == str(lag)


def test_overview_and_transactions_pages_render(console: Console, browser: Any) -> None:
    _open(browser, f"{console.base}/", "overview")
    facts = {
        r.find_element("css selector", "th").text: r.find_element("css selector", "td").text
        for r in _rows(browser, "#facts tr")
    }
    assert facts["Topics"] == "3"  # orders, clicks, __consumer_offsets
    assert facts["Total consumer lag"] == str(
        sum(ORDERS_PER_PARTITION - o for o in COMMITTED.values())
    )
    # The stylesheet came from the broker (no network): the header is laid out by it.
    position = browser.execute_script(
        "return getComputedStyle(document.querySelector('header')).position"
    )
    assert position == "sticky"
    _open(browser, f"{console.base}/transactions", "transactions")
    assert _rows(browser, "#producers")


def _http_base(log_path: Path, deadline_s: float = 30.0) -> str:
    """A cluster broker's HTTP URL, from the line it logs in its log file."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            match = HTTP_READY.search(line)
            if match:
                return match.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no HTTP address in {log_path}")


def test_cluster_view_and_cluster_metrics(browser: Any, tmp_path: Path) -> None:
    from kbroker.cluster_runner import Cluster

    config = {"kbroker.http.listener": "127.0.0.1:0", "zookeeper.session.timeout.ms": 6000}
    with Cluster(brokers=2, config=config, data_dir=tmp_path / "cluster") as cluster:
        bases = {i: _http_base(path) for i, path in cluster.log_paths.items()}
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
        try:
            admin.create_topics({"ledger": {"num_partitions": 4, "replication_factor": 2}})
        finally:
            admin.close()

        def gauges(name: str) -> dict[int, float]:
            return {i: value(scrape(base), name) or 0.0 for i, base in bases.items()}

        # Every partition has a leader, all replicas in sync, one controller, two brokers.
        cluster.wait_for(
            lambda: (
                sum(gauges("kafka_server_replicamanager_leadercount").values()) == 4
                and sum(gauges("kafka_server_replicamanager_partitioncount").values()) == 8
            ),
            30,
        )
        assert gauges("kafka_server_replicamanager_underreplicatedpartitions") == {1: 0, 2: 0}
        assert sorted(
            gauges("kafka_controller_kafkacontroller_activecontrollercount").values()
        ) == [
            0,
            1,
        ]
        assert gauges("kafka_brokers") == {1: 2, 2: 2}
        assert gauges("kafka_controller_kafkacontroller_offlinepartitionscount") == {1: 0, 2: 0}

        _open(browser, f"{bases[1]}/cluster", "cluster")
        rows = _rows(browser, "#brokers tbody tr")
        assert [r.get_attribute("data-broker") for r in rows] == ["1", "2"]
        controller = cluster.controller_id()
        (marked,) = [r for r in rows if "controller" in r.text]
        assert marked.get_attribute("data-broker") == str(controller)
        assert len(_rows(browser, "#cluster-partitions tbody tr")) >= 4

        # Broker 2 dies: broker 1 leads everything with itself alone in the ISR.
        led_by_2 = [p for p in range(4) if cluster.leader_of("ledger", p) == 2]
        assert led_by_2
        cluster.kill(2)
        cluster.wait_for(
            lambda: (
                value(scrape(bases[1]), "kafka_server_replicamanager_underreplicatedpartitions")
                == 4
            ),
            30,
        )
        _open(browser, f"{bases[1]}/cluster", "cluster-broker-2-down")
        assert browser.find_element("css selector", "#under").text == "4"
        assert len(_rows(browser, "#cluster-partitions tr.under-replicated")) >= 4
        # Broker 1's log tells of each leadership it took over.
        log = cluster.log_paths[1].read_text(errors="replace")
        for p in led_by_2:
            assert re.search(
                rf"INFO kbroker\.cluster\.replicas: leading ledger-{p} at leader epoch [1-9]\d* "
                r"\(replicas \[[12], [12]\], isr \[1\]\)",
                log,
            ), log
