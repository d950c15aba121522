"""A real Prometheus server (Debian's prometheus package) scrapes a broker:
the target is up, the exposition is accepted without errors, and a query over
the stored samples gives the counts the clients produced and the lag they left.
Skipped, saying why, when prometheus is not installed."""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port, wait_port

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (Debian package "
                                                           "prometheus): the real-scraper test cannot run")


def query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_the_broker(broker_factory, tmp_path):
    http_port = free_port()
    b = broker_factory({"sluice.http.listeners": "http://127.0.0.1:%d" % http_port,
                        "group.initial.rebalance.delay.ms": "0"})
    assert wait_port(http_port, b.proc)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic("scraped", 2, 1)])["scraped"].result(timeout=15)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(120):
        p.produce("scraped", value=b"s" * 50, partition=i % 2)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "prom", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("scraped", 0, 50), TopicPartition("scraped", 1, 55)], asynchronous=False)
    c.close()

    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                   "scrape_configs:\n  - job_name: sluice\n    static_configs:\n"
                   "      - targets: ['127.0.0.1:%d']\n" % http_port)
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, "--config.file=%s" % cfg, "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % prom_port], stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_port(prom_port, proc, timeout=30), (tmp_path / "prometheus.log").read_text()[-3000:]
        deadline = time.time() + 40
        got = None
        while time.time() < deadline:
            try:
                up = query(prom_port, 'up{job="sluice"}')
                got = query(prom_port, 'kafka_server_brokertopicmetrics_messagesin_total{topic="scraped"}')
                if up and up[0]["value"][1] == "1" and got:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert up and up[0]["value"][1] == "1", "target not up: %r" % up
        assert got and got[0]["value"][1] == "120", got
        # The scrape had no format errors or dropped samples.
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/targets" % prom_port, timeout=10) as r:
            targets = json.loads(r.read())["data"]["activeTargets"]
        assert targets[0]["health"] == "up" and targets[0]["lastError"] == "", targets
        lag = query(prom_port, 'kafka_consumergroup_lag_sum{consumergroup="prom"}')
        assert lag and lag[0]["value"][1] == str(120 - 50 - 55), lag
        q99 = query(prom_port, 'histogram_quantile(0.99, sum by (le) '
                               '(kafka_network_requestmetrics_totaltimems_bucket{request="Produce"}))')
        assert q99 and float(q99[0]["value"][1]) > 0, q99
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
