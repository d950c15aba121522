"""The HTTP listener: /metrics scraped with python3-prometheus-client's parser
while real clients (confluent-kafka, kafka-python) produce and consume, the
counters checked against what the clients did; /health and /ready; the
console page and its JSON (lag shown = lag computed from the offsets); the
listener's limits (methods, path and header size, connections); the
cardinality caps; metrics switched off.

Each broker gets its own free HTTP port (sluice.http.listeners)."""
import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from conftest import Broker, free_port, wait_port


def http_broker(broker_factory, **overrides):
    port = free_port()
    ov = {"sluice.http.listeners": "http://127.0.0.1:%d" % port,
          "group.initial.rebalance.delay.ms": "0"}
    ov.update({k.replace("_", "."): v for k, v in overrides.items()})
    b = broker_factory(ov)
    b.http = "http://127.0.0.1:%d" % port
    b.http_port = port
    # The HTTP listener starts just after the Kafka one.
    assert wait_port(port, b.proc), "no HTTP listener; log:\n" + b.log()
    return b


def get(b, path, timeout=10):
    with urllib.request.urlopen(b.http + path, timeout=timeout) as r:
        return r.status, r.headers, r.read()


def scrape(b):
    """{(name, frozenset(labels)): value} of every sample, and the families."""
    status, headers, body = get(b, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples, families = {}, {}
    for fam in text_string_to_metric_families(body.decode("utf-8")):
        families[fam.name] = fam
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def create_topic(b, name, partitions):
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=15)


def produce(b, topic, n, partitions, size=100):
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=b"v" * size, key=str(i).encode(), partition=i % partitions)
    assert p.flush(30) == 0


def consume_all(b, topic, group, n, partitions):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = 0, time.time() + 30
    while got < n and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got += 1
    assert got == n, "consumed %d of %d" % (got, n)
    c.commit(asynchronous=False)
    c.close()


def test_counters_follow_produce_and_consume(broker_factory):
    b = http_broker(broker_factory)
    create_topic(b, "orders", 3)
    s0, fams = scrape(b)
    assert val(s0, "kafka_server_brokertopicmetrics_messagesin_total", topic="orders") in (None, 0.0)
    assert fams["kafka_network_requestmetrics_totaltimems"].type == "histogram"

    produce(b, "orders", 300, 3, size=100)
    s1, _ = scrape(b)
    assert val(s1, "kafka_server_brokertopicmetrics_messagesin_total", topic="orders") == 300
    assert val(s1, "kafka_server_brokertopicmetrics_messagesin_total") == 300
    bytes_in = val(s1, "kafka_server_brokertopicmetrics_bytesin_total", topic="orders")
    assert bytes_in >= 300 * 100, bytes_in
    assert val(s1, "kafka_server_brokertopicmetrics_totalproducerequests_total", topic="orders") >= 1
    assert val(s1, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic="orders") == 0
    # Offsets and sizes per partition add up to what was written.
    ends = [val(s1, "kafka_log_log_logendoffset", topic="orders", partition=str(i)) for i in range(3)]
    assert ends == [100, 100, 100]
    sizes = [val(s1, "kafka_log_log_size", topic="orders", partition=str(i)) for i in range(3)]
    assert sum(sizes) == bytes_in
    assert val(s1, "kafka_log_log_numlogsegments", topic="orders", partition="0") == 1
    assert val(s1, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert val(s1, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0
    assert val(s1, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    # The Produce histogram: count = requests, buckets cumulative.
    n_prod = val(s1, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert n_prod >= 1
    assert val(s1, "kafka_network_requestmetrics_totaltimems_count", request="Produce") == n_prod
    assert val(s1, "kafka_network_requestmetrics_localtimems_count", request="Produce") == n_prod
    # Response queue and send times are recorded once a response is written
    # (a response still being written at the scrape may be missing).
    sent = val(s1, "kafka_network_requestmetrics_responsesendtimems_count", request="Produce")
    assert n_prod - 1 <= sent <= n_prod
    assert val(s1, "kafka_network_requestmetrics_responsequeuetimems_count", request="Produce") == sent
    les = sorted((float(dict(k[1])["le"]), v) for k, v in s1.items()
                 if k[0] == "kafka_network_requestmetrics_totaltimems_bucket" and dict(k[1]).get("request") == "Produce")
    assert les[-1] == (float("inf"), n_prod)
    assert all(les[i][1] <= les[i + 1][1] for i in range(len(les) - 1))

    consume_all(b, "orders", "billing", 300, 3)
    s2, _ = scrape(b)
    out = val(s2, "kafka_server_brokertopicmetrics_bytesout_total", topic="orders")
    assert out >= bytes_in, (out, bytes_in)  # every batch was read at least once
    assert val(s2, "kafka_server_brokertopicmetrics_totalfetchrequests_total", topic="orders") >= 1
    for i in range(3):
        assert val(s2, "kafka_consumergroup_current_offset", consumergroup="billing", topic="orders",
                   partition=str(i)) == 100
        assert val(s2, "kafka_consumergroup_lag", consumergroup="billing", topic="orders", partition=str(i)) == 0
    # Fetch long polls park: their wait is remote time, not local.
    assert val(s2, "kafka_network_requestmetrics_remotetimems_count", request="Fetch") >= 1

    # Lag appears for records written after the commit.
    produce(b, "orders", 30, 3)
    s3, _ = scrape(b)
    lags = [val(s3, "kafka_consumergroup_lag", consumergroup="billing", topic="orders", partition=str(i))
            for i in range(3)]
    assert lags == [10, 10, 10]
    assert val(s3, "kafka_consumergroup_lag_sum", consumergroup="billing") == 30
    assert val(s3, "kafka_server_socket_server_metrics_connection_creation_total", listener="PLAINTEXT") >= 3
    assert val(s3, "kafka_server_socket_server_metrics_incoming_byte_total", listener="PLAINTEXT") > bytes_in
    assert val(s3, "process_resident_memory_bytes") > 1 << 20
    assert val(s3, "process_open_fds") > 0
    assert 0 <= val(s3, "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent") <= 1
    assert val(s3, "sluice_metrics_truncated") == 0


def test_kafka_python_counts_too(broker_factory):
    from kafka import KafkaConsumer, KafkaProducer
    b = http_broker(broker_factory)
    create_topic(b, "kp", 1)
    p = KafkaProducer(bootstrap_servers=b.bootstrap)
    for i in range(50):
        p.send("kp", b"x" * 40)
    p.flush(30)
    p.close()
    s, _ = scrape(b)
    assert val(s, "kafka_server_brokertopicmetrics_messagesin_total", topic="kp") == 50
    c = KafkaConsumer("kp", bootstrap_servers=b.bootstrap, group_id="kpg", auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=10000)
    got = 0
    for _ in c:
        got += 1
        if got == 50:
            break
    c.commit()
    c.close()
    assert got == 50
    s, _ = scrape(b)
    assert val(s, "kafka_server_brokertopicmetrics_bytesout_total", topic="kp") >= 50 * 40
    assert val(s, "kafka_consumergroup_lag", consumergroup="kpg", topic="kp", partition="0") == 0
    assert val(s, "kafka_consumergroup_current_offset", consumergroup="kpg", topic="kp", partition="0") == 50


def test_failed_produce_is_counted(broker_factory):
    b = http_broker(broker_factory, **{"message.max.bytes": "2000"})
    create_topic(b, "small", 1)
    p = Producer({"bootstrap.servers": b.bootstrap, "message.max.bytes": 100000, "retries": 0})
    errs = []
    p.produce("small", value=b"z" * 50000, on_delivery=lambda e, m: errs.append(e))
    p.flush(15)
    assert errs and errs[0] is not None
    s, _ = scrape(b)
    assert val(s, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic="small") >= 1
    assert val(s, "kafka_server_brokertopicmetrics_messagesin_total", topic="small") == 0


def test_health_ready_and_http_limits(broker_factory):
    b = http_broker(broker_factory, **{"sluice.http.max.connections": "4",
                                       "sluice.http.max.connections.per.ip": "4"})
    assert get(b, "/health")[2] == b"ok\n"
    assert get(b, "/ready")[2] == b"ready\n"
    with pytest.raises(urllib.error.HTTPError) as e:
        get(b, "/nope")
    assert e.value.code == 404
    # Only GET and HEAD.
    conn = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=5)
    conn.request("POST", "/metrics", body=b"x" * 100)
    assert conn.getresponse().status == 405
    conn.close()
    # A path that is too long.
    conn = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=5)
    conn.request("GET", "/" + "a" * 3000)
    assert conn.getresponse().status == 414
    conn.close()
    # Headers beyond sluice.http.request.max.bytes (16 KiB) are refused.
    s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n")
    reply = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert not reply.startswith(b"HTTP/1.1 200"), reply[:100]
    # At most 4 connections: four idle ones make the fifth wait or fail.
    idle = [socket.create_connection(("127.0.0.1", b.http_port), timeout=5) for _ in range(4)]
    time.sleep(0.2)
    refused = False
    try:
        with urllib.request.urlopen(b.http + "/health", timeout=2) as r:
            r.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, http.client.HTTPException):
        refused = True
    assert refused, "a fifth connection was served past sluice.http.max.connections=4"
    for s in idle:
        s.close()
    deadline = time.time() + 10
    while True:
        try:
            assert get(b, "/health")[0] == 200
            break
        except (urllib.error.URLError, ConnectionError):
            assert time.time() < deadline, "the listener did not recover after the connections closed"
            time.sleep(0.2)
    assert b.alive()


def test_console_page_and_json(broker_factory):
    b = http_broker(broker_factory)
    create_topic(b, "clicks", 2)
    produce(b, "clicks", 40, 2)
    consume_all(b, "clicks", "ui", 40, 2)
    produce(b, "clicks", 6, 2)
    status, headers, body = get(b, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "<title>Sluice console</title>" in page
    for api in ("/api/cluster", "/api/topics", "/api/topic?name=", "/api/groups", "/api/history"):
        assert api in page, api
    assert len(body) < 32 * 1024

    cluster = json.loads(get(b, "/api/cluster")[2])
    assert cluster["node_id"] == 1 and cluster["brokers"][0]["id"] == 1
    assert cluster["messages_in"] == 46 and cluster["offline"] == 0
    topics = {t["name"]: t for t in json.loads(get(b, "/api/topics")[2])}
    assert topics["clicks"]["partitions"] == 2 and topics["clicks"]["records"] == 46
    assert topics["clicks"]["messages_in"] == 46
    one = json.loads(get(b, "/api/topic?name=clicks")[2])
    assert [p["high_watermark"] for p in one["partitions"]] == [23, 23]
    assert all(p["leader"] == 1 and p["isr"] == [1] for p in one["partitions"])
    with pytest.raises(urllib.error.HTTPError) as e:
        get(b, "/api/topic?name=absent")
    assert e.value.code == 404

    # The lag the console shows equals the lag computed from the offsets a
    # client reads from the broker.
    groups = {g["group"]: g for g in json.loads(get(b, "/api/groups")[2])}
    ui = groups["ui"]
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "ui"})
    tps = c.committed([TopicPartition("clicks", 0), TopicPartition("clicks", 1)], timeout=10)
    want = {}
    for tp in tps:
        lo, hi = c.get_watermark_offsets(tp, timeout=10)
        want[tp.partition] = hi - tp.offset
    c.close()
    shown = {o["partition"]: o["lag"] for o in ui["offsets"] if o["topic"] == "clicks"}
    assert shown == want == {0: 3, 1: 3}
    assert ui["lag"] == 6
    hist = json.loads(get(b, "/api/history")[2])
    assert hist["now"][1] == 46


def test_series_caps(broker_factory):
    b = http_broker(broker_factory, **{"sluice.metrics.partition.series.max": "3",
                                       "sluice.metrics.group.lag.series.max": "1"})
    create_topic(b, "wide", 5)
    produce(b, "wide", 10, 5)
    consume_all(b, "wide", "gw", 10, 5)
    s, _ = scrape(b)
    sizes = [k for k in s if k[0] == "kafka_log_log_size"]
    assert len(sizes) == 3
    # User topics come before internal ones under the cap.
    assert all(dict(k[1])["topic"] == "wide" for k in sizes)
    lags = [k for k in s if k[0] == "kafka_consumergroup_lag"]
    assert len(lags) == 1
    # 5 + 50 (__consumer_offsets) partitions, 3 shown; 5 offsets, 1 shown.
    assert val(s, "sluice_metrics_series_dropped") == 52 + 4
    # The totals do not depend on the cap.
    assert val(s, "kafka_server_replicamanager_partitioncount") == 55


def test_metrics_off_keeps_gauges(broker_factory):
    b = http_broker(broker_factory, **{"sluice.metrics.enable": "false"})
    create_topic(b, "quiet", 1)
    produce(b, "quiet", 20, 1)
    s, _ = scrape(b)
    assert val(s, "kafka_server_brokertopicmetrics_messagesin_total") == 0
    assert val(s, "kafka_server_brokertopicmetrics_messagesin_total", topic="quiet") is None
    assert val(s, "kafka_log_log_logendoffset", topic="quiet", partition="0") == 20


def wait_log(b, text, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in b.log():
            return True
        time.sleep(0.05)
    return False


def test_listener_address_taken(tmp_path):
    # An explicit address that cannot be bound stops the start, with a line
    # naming it (the Kafka port may accept for a moment: it is bound first).
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    b = Broker(tmp_path / "taken", {"sluice.http.listeners": "http://127.0.0.1:%d" % port})
    try:
        try:
            b.start()
        except RuntimeError:
            pass
        if b.proc is not None:
            b.proc.wait(timeout=15)
            rc = b.stop()
            assert rc not in (0, None)
        assert "cannot listen on 127.0.0.1:%d" % port in b.log()
    finally:
        b.stop(sig=9)
        holder.close()


def test_listener_disabled(broker_factory):
    b = broker_factory({"sluice.http.listeners": ""})
    assert wait_log(b, "no HTTP listener")


def test_bad_listener_value_refused(broker_factory):
    with pytest.raises(RuntimeError) as e:
        broker_factory({"sluice.http.listeners": "https://127.0.0.1:1"}, name="bad")
    assert "sluice.http.listeners" in str(e.value)


def test_slow_request_is_logged(broker_factory):
    # Creating 300 partition directories takes the handler well over 1 ms.
    b = http_broker(broker_factory, **{"sluice.request.slow.log.ms": "1"})
    create_topic(b, "many", 300)
    assert wait_log(b, "slow request: CreateTopics v"), b.log()[-3000:]
    line = [l for l in b.log().splitlines() if "slow request: CreateTopics" in l][0]
    assert "queue " in line and "local " in line and "client '" in line
    # A long poll's wait is remote time: a fetch waiting 500 ms is not slow.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "lp", "fetch.wait.max.ms": 500})
    c.assign([TopicPartition("many", 0, 0)])
    c.poll(2.0)
    c.close()
    # (A loaded machine may make a fetch's own work pass 1 ms, never 400.)
    for l in b.log().splitlines():
        m = re.search(r"slow request: Fetch .* queue ([0-9.]+) ms, local ([0-9.]+) ms", l)
        assert m is None or float(m.group(1)) + float(m.group(2)) < 400, l


def test_answers_over_the_size_limit(broker_factory):
    b = http_broker(broker_factory, **{"sluice.http.response.max.bytes": "65536"})
    create_topic(b, "big", 600)
    status, headers, body = get(b, "/metrics")
    assert len(body) <= 65536 + 512
    # Cut at a whole line: it still parses, and says it was cut.
    samples = {}
    for fam in text_string_to_metric_families(body.decode("utf-8")):
        for s in fam.samples:
            samples[s.name] = s.value
    assert samples["sluice_metrics_truncated"] == 1
    # JSON that would be cut is refused whole, with the reason.
    with pytest.raises(urllib.error.HTTPError) as e:
        get(b, "/api/topic?name=big")
    assert e.value.code == 503
    assert b"sluice.http.response.max.bytes" in e.value.read()
    assert get(b, "/api/cluster")[0] == 200


def test_group_ids_are_escaped(broker_factory):
    # Group ids are any string a client picks: quotes, backslashes, newlines
    # and non-ASCII text must come out as valid exposition and JSON.
    b = http_broker(broker_factory)
    create_topic(b, "esc", 1)
    produce(b, "esc", 5, 1)
    weird = 'we"ird\\gr\noup-\u00e9\u20ac'
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": weird, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("esc", 0, 2)], asynchronous=False)
    c.close()
    s, _ = scrape(b)
    assert val(s, "kafka_consumergroup_lag", consumergroup=weird, topic="esc", partition="0") == 3
    groups = {g["group"]: g for g in json.loads(get(b, "/api/groups")[2])}
    assert groups[weird]["lag"] == 3
