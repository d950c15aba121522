"""Attacks on the network layer's shared resources: the request memory budget
(slowloris), connections per address, file descriptors, and the memory held by
responses that are never read. Each test uses small limits so it runs in
seconds; every loop is bounded in count and time.

Other addresses than 127.0.0.1 stand for other clients: Linux routes all of
127.0.0.0/8 to loopback, so a socket bound to 127.0.0.2 is a second host as
far as the broker can tell.
"""
import os
import socket
import struct
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from test_api_versions import recv_exact
from test_produce_fetch import consume_n, produce_all, producer
from test_protocol_edges import api_versions_frame, closed_within, rss_kb


# ---- helpers -----------------------------------------------------------------------------------

def dial(broker, source="127.0.0.1", timeout=5):
    return socket.create_connection(("127.0.0.1", broker.port), timeout=timeout, source_address=(source, 0))


def api_versions_on(sock, timeout=5):
    """One ApiVersions v0 exchange on an open socket; True if answered."""
    sock.settimeout(timeout)
    try:
        sock.sendall(api_versions_frame())
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        body = recv_exact(sock, size)
        return struct.unpack(">ih", body[:6]) == (1, 0)
    except (OSError, ConnectionError):
        return False


def serves(broker, source="127.0.0.1", timeout=5):
    """A fresh connection from source gets an ApiVersions answer."""
    try:
        with dial(broker, source, timeout) as s:
            return api_versions_on(s, timeout)
    except OSError:
        return False


def send_for(sock, data, seconds):
    """Sends what the socket takes of data within seconds; returns the bytes sent."""
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + seconds
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += sock.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    return sent


def produce_consume(broker, topic, n=20, timeout=10.0):
    """A real client round trip: n records produced and read back within timeout."""
    p = producer(broker, **{"message.timeout.ms": int(timeout * 1000)})
    reports = produce_all(p, topic, [{"value": b"v%d" % i} for i in range(n)])
    assert [err for err, _ in reports] == [None] * n
    got = consume_n(broker, topic, n, timeout=timeout)
    assert len(got) >= n, "consumed %d of %d records within %.0f s" % (len(got), n, timeout)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


# ---- item 8: slowloris -------------------------------------------------------------------------

def test_slowloris_declared_sizes_do_not_block_others(broker):
    # Six connections declare frames that add up to the whole default request
    # budget (512 MiB) and send two bytes of each: 36 bytes in all. Memory is
    # charged for bytes received, so every other client is still served.
    sizes = [100 << 20] * 5 + [(512 << 20) - 5 * (100 << 20)]
    socks = []
    try:
        for n in sizes:
            s = dial(broker)
            s.sendall(struct.pack(">i", n) + b"\x00\x00")
            socks.append(s)
        time.sleep(0.3)
        t0 = time.monotonic()
        assert serves(broker), "a new client got no answer while six connections each declared a huge frame"
        produce_consume(broker, "after-slowloris")
        assert time.monotonic() - t0 < 10
        assert broker.alive()
    finally:
        for s in socks:
            s.close()


def test_frame_sent_too_slowly_is_closed(broker_factory):
    # A frame must arrive whole within sluice.request.read.timeout.ms, however
    # often its bytes trickle in (each byte would keep an idle timer fresh).
    b = broker_factory({"sluice.request.read.timeout.ms": "1000"})
    trickle = dial(b)
    half_prefix = dial(b)
    try:
        trickle.sendall(struct.pack(">i", 1000) + b"\x00")
        half_prefix.sendall(b"\x00\x00")
        t0 = time.monotonic()
        closed = False
        for _ in range(40):  # at most 40 * 0.2 s
            try:
                trickle.send(b"\x00")
            except OSError:
                closed = True
                break
            if closed_within(trickle, 0.2):
                closed = True
                break
        assert closed, "a connection trickling one byte every 0.2 s was never closed"
        assert time.monotonic() - t0 < 5
        assert closed_within(half_prefix, 3), "half a size prefix kept the connection open"
        assert "sluice.request.read.timeout.ms" in b.log()
        # A frame that arrives in time is served.
        assert serves(b)
    finally:
        trickle.close()
        half_prefix.close()


def test_one_address_cannot_take_the_whole_request_budget(broker_factory):
    # 127.0.0.2 sends most of four 1 MiB frames against a 4 MiB budget: it
    # may hold at most half of the budget, so 127.0.0.1 is still served.
    b = broker_factory({"queued.max.request.bytes": str(4 << 20), "socket.request.max.bytes": str(4 << 20),
                        "sluice.request.read.timeout.ms": "20000"})
    frame = 1 << 20
    socks = [dial(b, "127.0.0.2") for _ in range(4)]
    try:
        data = struct.pack(">i", frame) + b"\x01" * (frame - 1)
        senders = [threading.Thread(target=send_for, args=(s, data, 3.0)) for s in socks]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        time.sleep(0.3)
        t0 = time.monotonic()
        assert serves(b, "127.0.0.1"), "one address took the whole request budget"
        produce_consume(b, "other-address")
        assert time.monotonic() - t0 < 10
    finally:
        for s in socks:
            s.close()


# ---- smaller: max.connections.per.ip -----------------------------------------------------------

def test_max_connections_per_ip_and_overrides(broker_factory):
    b = broker_factory({"max.connections.per.ip": "2", "max.connections.per.ip.overrides": "127.0.0.3:4"})
    opened = []
    try:
        for source, limit in (("127.0.0.2", 2), ("127.0.0.3", 4)):
            mine = [dial(b, source) for _ in range(limit)]
            opened += mine
            assert all(api_versions_on(s) for s in mine)
            extra = dial(b, source)
            opened.append(extra)
            assert closed_within(extra, 3), "connection %d from %s was not refused" % (limit + 1, source)
        assert serves(b, "127.0.0.1")
        assert "max.connections.per.ip" in b.log()
        # A slot freed by a close is usable again.
        opened[0].close()
        ok = False
        for _ in range(30):  # at most about 3 s
            if serves(b, "127.0.0.2", timeout=1):
                ok = True
                break
            time.sleep(0.1)
        assert ok, "127.0.0.2 could not connect again after closing one of its connections"
    finally:
        for s in opened:
            s.close()


# ---- item 10: file descriptors -----------------------------------------------------------------

def test_descriptor_exhaustion_does_not_spin(broker_factory):
    # With 640 descriptors the broker uses about 65 at start (stdio, the
    # metadata log, 50 offsets partitions, epoll). 700 connections would
    # exhaust the rest: accept() must not spin, the log must not flood,
    # clients already connected keep being served, and once the flood goes
    # new clients are served again. (Connections may take a quarter of the
    # limit, 160; the others are turned away.)
    b = broker_factory(nofile=640)
    existing = dial(b)
    assert api_versions_on(existing)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic("fd-topic", 1, 1)])["fd-topic"].result(timeout=15)
    flood = []
    try:
        for _ in range(700):
            try:
                flood.append(dial(b, timeout=2))
            except OSError:
                break
        time.sleep(0.5)
        cpu0, log0, t0 = cpu_seconds(b.proc.pid), os.path.getsize(b.log_path), time.monotonic()
        time.sleep(2.0)
        cpu = cpu_seconds(b.proc.pid) - cpu0
        grew = os.path.getsize(b.log_path) - log0
        elapsed = time.monotonic() - t0
        assert cpu < 0.3 * elapsed, "broker used %.2f s of CPU in %.2f s with descriptors exhausted" % (cpu, elapsed)
        assert grew < 16 * 1024, "log grew by %d bytes in %.1f s" % (grew, elapsed)
        assert api_versions_on(existing), "an existing connection stopped being served"
        assert b.alive()
    finally:
        for s in flood:
            s.close()
    ok = False
    for _ in range(50):  # at most about 5 s
        if serves(b, timeout=1):
            ok = True
            break
        time.sleep(0.1)
    assert ok, "no new client was served after the flood closed"
    produce_consume(b, "fd-topic")
    existing.close()


# ---- item 11: held responses of old-format fetches ---------------------------------------------

def fetch_v3_frame(topic, partitions, corr):
    body = struct.pack(">iiii", -1, 0, 0, 50 << 20)  # replica, max_wait, min_bytes, max_bytes
    body += struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", partitions)
    body += b"".join(struct.pack(">iqi", p, 0, 1 << 20) for p in range(partitions))
    hdr = struct.pack(">hhih", 1, 3, corr, 3) + b"raw"
    return struct.pack(">i", len(hdr) + len(body)) + hdr + body


def fetch_v3_record_bytes(port, topic, partitions):
    """Sends one v3 Fetch on a fresh connection and reads the answer: total record bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(fetch_v3_frame(topic, partitions, 5))
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    pos = 4 + 4  # correlation id, throttle
    total = 0
    for _ in range(struct.unpack(">i", resp[pos:pos + 4])[0]):
        pos += 4
        n = struct.unpack(">h", resp[pos:pos + 2])[0]
        pos += 2 + n
        nparts = struct.unpack(">i", resp[pos:pos + 4])[0]
        pos += 4
        for _ in range(nparts):
            _p, err, _hw, rlen = struct.unpack(">ihqi", resp[pos:pos + 18])
            assert err == 0
            pos += 18 + max(rlen, 0)
            total += max(rlen, 0)
    return total


def test_unread_old_format_fetch_responses_are_bounded(broker_factory):
    # 40 connections send a v3 Fetch for 100 partitions (64 KiB each, about
    # 6.5 MiB converted per response) and never read: without a global cap the
    # broker holds 40 converted responses (about 260 MiB).
    b = broker_factory({"sluice.queued.max.response.bytes": str(8 << 20)})
    topic, parts = "old-fetch", 100
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, parts, 1)])[topic].result(timeout=15)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 20, "batch.size": 1 << 20})
    for part in range(parts):
        for i in range(64):
            p.produce(topic, value=b"x" * 1000, partition=part)
    assert p.flush(30) == 0
    assert fetch_v3_record_bytes(b.port, topic, parts) > 5 << 20
    time.sleep(0.5)
    before = rss_kb(b.proc.pid)
    hogs = []
    try:
        for i in range(40):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", b.port))
            s.sendall(fetch_v3_frame(topic, parts, i))
            hogs.append(s)
        peak = before
        for _ in range(30):  # about 3 s: the responses are built within it
            time.sleep(0.1)
            peak = max(peak, rss_kb(b.proc.pid))
        grew = peak - before
        assert grew < 80 * 1024, "RSS grew by %d KiB for 40 unread v3 fetch responses" % grew
        assert "sluice.queued.max.response.bytes" in b.log()
        assert serves(b)
    finally:
        for s in hogs:
            s.close()
    # Once the readers are gone the budget is free again and a v3 fetch gets records.
    got = 0
    for _ in range(30):  # at most about 3 s
        got = fetch_v3_record_bytes(b.port, topic, parts)
        if got > 5 << 20:
            break
        time.sleep(0.1)
    assert got > 5 << 20


# ---- smaller: queued.max.request.bytes default -------------------------------------------------

def test_queued_max_request_bytes_default_is_the_one_in_force(broker):
    # The default the broker reports (and the generated docs print) is the
    # budget the network layer applies: 512 MiB, not Kafka's "no limit".
    from test_admin import describe_configs_v0
    (err, _name, configs), = describe_configs_v0(broker.port, [(4, "1", ["queued.max.request.bytes"])])
    assert err == 0
    assert configs["queued.max.request.bytes"] == str(512 << 20)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "configuration.md")) as f:
        row = [line for line in f if line.startswith("| `queued.max.request.bytes`")]
    assert row and str(512 << 20) in row[0]
