"""The web console in a real browser: Debian's headless Chromium loads each
page from a broker holding data, runs its script (which fetches the JSON
endpoints and builds the tables), and the DOM it ends with is checked against
the broker's state as real clients see it: the high watermarks shown equal
the ones ListOffsets returns, the lag shown equals the committed offsets
(OffsetFetch) subtracted from them. Screenshots of each page are written to
SLUICE_CONSOLE_SCREENSHOTS (a directory) when it is set; docs/console.md
shows the committed ones.

Skipped, saying why, when Chromium is not installed
(scripts/install-deps.sh --test installs it)."""
import os
import shutil
import subprocess
import time
from html.parser import HTMLParser

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port, wait_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium): "
                                                         "the console's browser test cannot run")


class Tables(HTMLParser):
    """Every <table> of a document as lists of cell texts, by id (or index),
    and the text of every element with class "card"."""

    def __init__(self):
        super().__init__()
        self.tables, self.cards = {}, []
        self._t = self._row = self._cell = None
        self._n = 0
        self._card = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._t = []
            self._id = a.get("id") or "table%d" % self._n
            self._n += 1
        elif tag == "tr" and self._t is not None:
            self._row = []
            self._t.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        if tag == "div" and "card" in (a.get("class") or "").split():
            self._card, self._depth = [], 0
        elif tag == "div" and self._card is not None:
            self._depth += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "table" and self._t is not None:
            self.tables[self._id] = self._t
            self._t = self._row = None
        elif tag == "div" and self._card is not None:
            if self._depth == 0:
                self.cards.append(self._card)
                self._card = None
            else:
                self._depth -= 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._card is not None and data.strip():
            self._card.append(data.strip())


def render(url, shot=None):
    """The DOM after the page's script ran (virtual time lets its fetches
    finish), parsed; a screenshot too when shot names a file."""
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--virtual-time-budget=4000", "--window-size=1280,900"]
    p = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr[-2000:]
    if shot:
        subprocess.run(base + ["--screenshot=" + shot, url], capture_output=True, timeout=90)
    t = Tables()
    t.feed(p.stdout)
    return t, p.stdout


def num(s):
    return int(s.replace(",", ""))


def rows_as_dicts(table):
    head = table[0]
    return [dict(zip(head, r)) for r in table[1:]]


def test_console_pages_show_the_broker_state(broker_factory, tmp_path):
    http_port = free_port()
    b = broker_factory({"sluice.http.listeners": "http://127.0.0.1:%d" % http_port,
                        "group.initial.rebalance.delay.ms": "0"})
    assert wait_port(http_port, b.proc)
    ui = "http://127.0.0.1:%d/" % http_port
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic("events", 3, 1)])["events"].result(timeout=15)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(90):
        p.produce("events", value=b"e%d" % i, partition=i % 3)
    assert p.flush(30) == 0
    # A group that read 20 of each partition's 30 records and committed.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "web", "enable.auto.commit": False})
    c.assign([TopicPartition("events", i, 0) for i in range(3)])
    seen = {0: 0, 1: 0, 2: 0}
    deadline = time.time() + 30
    while min(seen.values()) < 20 and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None and seen[m.partition()] < 20:
            seen[m.partition()] += 1
    c.commit(offsets=[TopicPartition("events", i, 20) for i in range(3)], asynchronous=False)
    # What clients see: ends (ListOffsets) and commits (OffsetFetch).
    ends = {i: c.get_watermark_offsets(TopicPartition("events", i), timeout=10)[1] for i in range(3)}
    committed = {tp.partition: tp.offset for tp in
                 c.committed([TopicPartition("events", i) for i in range(3)], timeout=10)}
    c.close()
    assert ends == {0: 30, 1: 30, 2: 30} and committed == {0: 20, 1: 20, 2: 20}

    shots = os.environ.get("SLUICE_CONSOLE_SCREENSHOTS") or str(tmp_path)
    os.makedirs(shots, exist_ok=True)

    page, dom = render(ui + "#/", os.path.join(shots, "overview.png"))
    assert "<p class=\"err\">" not in dom, dom[-3000:]
    cards = {k: v for v, k in page.cards}
    assert cards["topics"] == "2"  # events and __consumer_offsets
    assert cards["records in"] == "90"
    assert cards["offline"] == "0" and cards["under-replicated"] == "0"
    brokers = rows_as_dicts(page.tables["brokers"])
    assert brokers[0]["id"] == "1" and "127.0.0.1" in brokers[0]["endpoints"]
    assert dom.count("<svg") >= 3  # the throughput charts

    page, dom = render(ui + "#/topics", os.path.join(shots, "topics.png"))
    topics = {r["topic"]: r for r in rows_as_dicts(page.tables["topic-list"])}
    assert num(topics["events"]["partitions"]) == 3
    assert num(topics["events"]["records"]) == 90
    assert num(topics["events"]["records in"]) == 90

    page, dom = render(ui + "#/topic/events", os.path.join(shots, "topic.png"))
    parts = rows_as_dicts(page.tables["partitions"])
    assert [num(r["high watermark"]) for r in parts] == [ends[0], ends[1], ends[2]]
    assert all(r["leader"] == "1" and r["ISR"] == "1" and r["state"] == "online" for r in parts)

    page, dom = render(ui + "#/groups", os.path.join(shots, "groups.png"))
    groups = {r["group"]: r for r in rows_as_dicts(page.tables["group-list"])}
    want = {i: ends[i] - committed[i] for i in range(3)}
    assert num(groups["web"]["lag"]) == sum(want.values()) == 30
    per = [t for t in page.tables.values() if t and t[0][:2] == ["topic", "partition"]]
    assert per, dom[-2000:]
    shown = {num(r["partition"]): num(r["lag"]) for r in rows_as_dicts(per[0]) if r["topic"] == "events"}
    assert shown == want

    # For the docs: traffic for half a minute, so the throughput charts
    # have points (a sample every 10 s), then the overview again.
    if os.environ.get("SLUICE_CONSOLE_SCREENSHOTS"):
        end = time.time() + 32
        i = 0
        while time.time() < end:
            for _ in range(200):
                p.produce("events", value=b"x" * (100 + i % 400), partition=i % 3)
                i += 1
            p.poll(0)
            time.sleep(0.05 + 0.05 * ((i // 200) % 5))
        p.flush(30)
        render(ui + "#/", os.path.join(shots, "overview.png"))
