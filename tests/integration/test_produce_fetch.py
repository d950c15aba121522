"""The data path with real clients: Produce, Fetch (long poll, sessions),
ListOffsets, DeleteRecords, OffsetForLeaderEpoch.

Clients: kcat (librdkafka), confluent_kafka (librdkafka) and kafka-python, all
against a real sluiced from the conftest fixtures. Topics are created with the
admin API. Everything is bounded in time; the whole file runs well under
three minutes.
"""
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP
from kafka.conn import BrokerConnection
from kafka.protocol.fetch import FetchRequest
from kafka.protocol.produce import ProduceRequest

import socket
from kafka.protocol.api import Request
from kafka.protocol.types import Array, Int8, Int32, Int64, Schema, String

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


# ---- helpers -----------------------------------------------------------------

def create_topic(broker, name, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                       config=config or {})], request_timeout=15)
    fs[name].result(timeout=15)


def producer(broker, **conf):
    c = {"bootstrap.servers": broker.bootstrap, "linger.ms": 0}
    c.update(conf)
    return Producer(c)


def consume_n(broker, topic, n, partition=0, offset=0, timeout=20.0, **conf):
    """Reads n messages from one partition starting at offset (assign, no group)."""
    c = {"bootstrap.servers": broker.bootstrap, "group.id": "t", "enable.auto.commit": False,
         "fetch.wait.max.ms": 100}
    c.update(conf)
    cons = Consumer(c)
    cons.assign([TopicPartition(topic, partition, offset)])
    out = []
    deadline = time.time() + timeout
    try:
        while len(out) < n and time.time() < deadline:
            m = cons.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            out.append(m)
    finally:
        cons.close()
    return out


def produce_all(p, topic, msgs, partition=0):
    """msgs: list of dicts for Producer.produce; returns the delivery reports."""
    reports = []

    def cb(err, msg):
        reports.append((err, msg))

    for m in msgs:
        p.produce(topic, partition=partition, on_delivery=cb, **m)
    assert p.flush(20) == 0
    return reports


def conn(broker):
    c = BrokerConnection("127.0.0.1", broker.port, socket.AF_INET)
    c.connect_blocking()
    return c


def wait(c, f, timeout=10.0):
    """Drives the connection until f resolves (kafka-python hands responses
    back from recv() and leaves resolving their futures to the caller)."""
    deadline = time.time() + timeout
    while not f.is_done and time.time() < deadline:
        for resp, fut in c.recv():
            fut.success(resp)
        time.sleep(0.001)
    assert f.is_done, "no response within %.1fs" % timeout
    if f.failed():
        raise f.exception
    return f.value


def send(c, req, timeout=10.0):
    return wait(c, c.send(req), timeout)


def raw(port, api_key, api_version, body, corr=11, timeout=10.0):
    """One non-flexible request (header v1) on a fresh socket; returns the body after the correlation id."""
    cid = b"raw"
    frame = struct.pack(">hhih", api_key, api_version, corr, len(cid)) + cid + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    assert struct.unpack(">i", resp[:4])[0] == corr
    return resp[4:]


def _recv(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def cstr(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def raw_flex(port, api_key, api_version, body, corr=12, timeout=10.0):
    """A flexible request (header v2); the response header v1 has a tag byte."""
    cid = b"raw"
    frame = struct.pack(">hhih", api_key, api_version, corr, len(cid)) + cid + b"\x00" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    assert struct.unpack(">i", resp[:4])[0] == corr and resp[4] == 0
    return resp[5:]


# ---- produce and consume with every client and codec ----------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_confluent_roundtrip_each_codec(broker, codec):
    topic = "rt-" + codec
    create_topic(broker, topic)
    p = producer(broker, **{"compression.type": codec, "linger.ms": 5})
    big = b"x" * 3000
    msgs = [
        {"key": b"k1", "value": b"v1", "headers": [("h1", b"a"), ("h2", None)], "timestamp": 1600000000000},
        {"key": None, "value": b"null-key"},
        {"key": b"null-value", "value": None},
        {"key": None, "value": None},
    ] + [{"key": b"k%d" % i, "value": big + b"%d" % i} for i in range(50)]
    reports = produce_all(p, topic, msgs)
    assert all(err is None for err, _ in reports)
    got = consume_n(broker, topic, len(msgs))
    assert [m.offset() for m in got] == list(range(len(msgs)))
    assert (got[0].key(), got[0].value()) == (b"k1", b"v1")
    assert got[0].headers() == [("h1", b"a"), ("h2", None)]
    assert got[0].timestamp() == (1, 1600000000000)  # CreateTime
    assert (got[1].key(), got[1].value()) == (None, b"null-key")
    assert (got[2].key(), got[2].value()) == (b"null-value", None)
    assert (got[3].key(), got[3].value()) == (None, None)
    assert got[-1].value() == big + b"49"


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd", None])
def test_kafka_python_roundtrip(broker, codec):
    topic = "kp-%s" % codec
    create_topic(broker, topic)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, acks=1)
    def key(i):  # null keys and null values, never both
        return None if i % 3 == 0 and i % 5 else b"k%d" % i

    futs = [p.send(topic, key=key(i), value=b"v%d" % i if i % 5 else None,
                   headers=[("n", b"%d" % i)], timestamp_ms=1700000000000 + i, partition=0)
            for i in range(30)]
    offs = [f.get(timeout=15).offset for f in futs]
    assert offs == list(range(30))
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, consumer_timeout_ms=5000, fetch_max_wait_ms=100)
    c.assign([KTP(topic, 0)])
    c.seek_to_beginning()
    got = []
    for m in c:
        got.append(m)
        if len(got) == 30:
            break
    c.close()
    assert [m.offset for m in got] == list(range(30))
    for i, m in enumerate(got):
        assert m.key == key(i)
        assert m.value == (b"v%d" % i if i % 5 else None)
        assert m.headers == [("n", b"%d" % i)]
        assert m.timestamp == 1700000000000 + i


def test_kcat_produce_consume_keys_headers(broker):
    topic = "kc"
    create_topic(broker, topic)
    data = "".join("k%d:v%d\n" % (i, i) for i in range(20))
    p = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K:", "-H", "hk=hv",
                        "-z", "lz4"], input=data, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    c = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e",
                        "-f", "%k=%s|%h|%o\n"], capture_output=True, text=True, timeout=30)
    assert c.returncode == 0, c.stderr
    lines = c.stdout.strip().split("\n")
    assert lines == ["k%d=v%d|hk=hv|%d" % (i, i, i) for i in range(20)]
    # from an offset, and the last message only
    c = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "15", "-e",
                        "-f", "%o\n"], capture_output=True, text=True, timeout=30)
    assert c.stdout.split() == [str(i) for i in range(15, 20)]
    c = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "-1", "-e",
                        "-f", "%o\n"], capture_output=True, text=True, timeout=30)
    assert c.stdout.split() == ["19"]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, acks):
    topic = "acks-" + acks
    create_topic(broker, topic)
    p = producer(broker, acks=acks)
    reports = produce_all(p, topic, [{"value": b"m%d" % i} for i in range(100)])
    assert all(err is None for err, _ in reports)
    if acks != "0":
        assert [m.offset() for _, m in reports] == list(range(100))
    got = consume_n(broker, topic, 100)
    assert [m.value() for m in got] == [b"m%d" % i for i in range(100)]
    # kafka-python with the same acks
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=0 if acks == "0" else (1 if acks == "1" else "all"))
    for i in range(10):
        kp.send(topic, value=b"kp%d" % i, partition=0)
    kp.flush(10)
    if acks == "0":
        # Fire and forget: kafka-python's close() may drop what its sender
        # has not written yet (seen on a loaded machine).
        time.sleep(0.5)
    kp.close()
    got = consume_n(broker, topic, 10, offset=100)
    assert [m.value() for m in got] == [b"kp%d" % i for i in range(10)]


# ---- offsets: beginning, end, timestamp ---------------------------------------------

def test_consume_from_beginning_end_offset_timestamp(broker):
    topic = "pos"
    create_topic(broker, topic, partitions=2)
    p = producer(broker)
    base = 1650000000000
    produce_all(p, topic, [{"value": b"a%d" % i, "timestamp": base + 1000 * i} for i in range(10)], partition=1)
    cons = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x", "enable.auto.commit": False})
    lo, hi = cons.get_watermark_offsets(TopicPartition(topic, 1), timeout=10)
    assert (lo, hi) == (0, 10)
    assert cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
    res = cons.offsets_for_times([TopicPartition(topic, 1, base + 4500)], timeout=10)
    assert res[0].offset == 5
    res = cons.offsets_for_times([TopicPartition(topic, 1, base + 99999)], timeout=10)
    assert res[0].offset == -1  # no record that late: end
    cons.close()
    got = consume_n(broker, topic, 5, partition=1, offset=5)
    assert [m.value() for m in got] == [b"a%d" % i for i in range(5, 10)]
    # kafka-python: beginning/end/offsets_for_times
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = KTP(topic, 1)
    assert kc.beginning_offsets([tp])[tp] == 0
    assert kc.end_offsets([tp])[tp] == 10
    r = kc.offsets_for_times({tp: base + 7000})[tp]
    assert (r.offset, r.timestamp) == (7, base + 7000)
    kc.close()
    # kcat -o s@timestamp
    c = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-p", "1", "-o", "s@%d" % (base + 8000),
                        "-e", "-f", "%s\n"], capture_output=True, text=True, timeout=30)
    assert c.stdout.split() == ["a8", "a9"]
    # Reading past the end is OFFSET_OUT_OF_RANGE; the consumer resets per auto.offset.reset.
    got = consume_n(broker, topic, 1, partition=1, offset=50, **{"auto.offset.reset": "earliest"})
    assert got[0].offset() == 0


def test_list_offsets_max_timestamp_and_v0(broker):
    topic = "lo"
    create_topic(broker, topic)
    p = producer(broker)
    ts = [1000, 5000, 3000]
    produce_all(p, topic, [{"value": b"x", "timestamp": t} for t in ts])

    def list_offsets(ver, timestamp):
        body = struct.pack(">i", -1)
        if ver >= 2:
            body += b"\x00"
        body += struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1) + struct.pack(">i", 0)
        if ver >= 4:
            body += struct.pack(">i", -1)
        body += struct.pack(">q", timestamp)
        if ver == 0:
            body += struct.pack(">i", 1)
        return raw(broker.port, 2, ver, body)

    # v7 (flexible): max timestamp is offset 1 at 5000
    body = struct.pack(">ib", -1, 0) + uvarint(2) + cstr(topic) + uvarint(2)
    body += struct.pack(">iiq", 0, -1, -3) + b"\x00" + b"\x00" + b"\x00"
    r = raw_flex(broker.port, 2, 7, body)
    # throttle, topics (compact), name, partitions (compact), index, error, timestamp, offset, epoch
    off = 4 + 1 + 1 + len(topic) + 1
    idx, err, t, o, ep = struct.unpack(">ihqqi", r[off:off + 26])
    assert (idx, err, t, o, ep) == (0, 0, 5000, 1, 0)
    r = list_offsets(0, -1)
    off = 4 + 2 + len(topic) + 4
    idx, err, n, o = struct.unpack(">ihiq", r[off:off + 18])
    assert (idx, err, n, o) == (0, 0, 1, 3)
    r = list_offsets(1, 2000)
    off = 4 + 2 + len(topic) + 4
    idx, err, t, o = struct.unpack(">ihqq", r[off:off + 22])
    assert (err, t, o) == (0, 5000, 1)


# ---- sizes ----------------------------------------------------------------------------

def test_large_messages_up_to_limit(broker_factory):
    limit = 300000
    b = broker_factory({"message.max.bytes": str(limit)})
    topic = "big"
    create_topic(b, topic)
    p = producer(b, **{"message.max.bytes": 2000000, "compression.type": "none"})
    # A batch of one record has ~70 bytes of overhead around the value.
    ok_val = b"a" * (limit - 200)
    reports = produce_all(p, topic, [{"value": ok_val}])
    assert reports[0][0] is None
    reports = produce_all(p, topic, [{"value": b"b" * (limit + 100)}])
    err = reports[0][0]
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    # The large record is fetched whole even with small fetch limits.
    got = consume_n(b, topic, 1, **{"fetch.max.bytes": 1000, "max.partition.fetch.bytes": 1000,
                                    "message.max.bytes": 1000})
    assert got[0].value() == ok_val
    # kafka-python sees the broker's error code too.
    kp = KafkaProducer(bootstrap_servers=b.bootstrap, max_request_size=2000000, retries=0)
    with pytest.raises(Exception) as ei:
        kp.send(topic, value=b"c" * (limit + 100), partition=0).get(timeout=10)
    assert "MessageSizeTooLarge" in repr(ei.value)
    kp.close()


def test_produce_errors(broker):
    create_topic(broker, "pe")
    c = conn(broker)
    # a valid magic-2 batch, produced by kafka-python's record builder
    from kafka.record.memory_records import MemoryRecordsBuilder
    bld = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=100000)
    bld.append(timestamp=None, key=b"k", value=b"v", headers=[])
    bld.close()
    batch = bld.buffer()
    Req = ProduceRequest[3]
    # unknown topic, unknown partition, bad acks, invalid name, good one
    r = send(c, Req(transactional_id=None, required_acks=1, timeout=1000,
                    topics=[("nope", [(0, batch)]), ("pe", [(7, batch), (0, batch)]), ("bad/name", [(0, batch)])]))
    errs = {(t, p): e for t, parts in r.topics for (p, e, *_rest) in parts}
    assert errs[("nope", 0)] == 3
    assert errs[("pe", 7)] == 3
    assert errs[("pe", 0)] == 0
    assert errs[("bad/name", 0)] == 17
    r = send(c, Req(transactional_id=None, required_acks=2, timeout=1000, topics=[("pe", [(0, batch)])]))
    assert r.topics[0][1][0][1] == 21  # INVALID_REQUIRED_ACKS
    # corrupt CRC
    bad = bytearray(batch)
    bad[-1] ^= 0xFF
    r = send(c, Req(transactional_id=None, required_acks=1, timeout=1000, topics=[("pe", [(0, bytes(bad))])]))
    assert r.topics[0][1][0][1] == 2  # CORRUPT_MESSAGE
    # two batches in one partition (v3+ allows one)
    r = send(c, Req(transactional_id=None, required_acks=1, timeout=1000, topics=[("pe", [(0, batch + batch)])]))
    assert r.topics[0][1][0][1] == 87  # INVALID_RECORD
    c.close()


# ---- long poll ------------------------------------------------------------------------

def test_long_poll_wakes_on_produce(broker):
    topic = "lp"
    create_topic(broker, topic)
    c = conn(broker)
    # An empty fetch with max_wait 500 ms waits about that long.
    Req = FetchRequest[4]
    t0 = time.time()
    r = send(c, Req(replica_id=-1, max_wait_time=500, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                    topics=[(topic, [(0, 0, 1 << 20)])]))
    waited = time.time() - t0
    assert 0.4 <= waited < 2.0, waited
    assert r.topics[0][1][0][1] == 0
    # A fetch waiting 5 s gets a record produced meanwhile at once.
    f = c.send(Req(replica_id=-1, max_wait_time=5000, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                   topics=[(topic, [(0, 0, 1 << 20)])]))
    time.sleep(0.3)  # the fetch is parked now
    p = producer(broker)
    produce_all(p, topic, [{"value": b"x"}])  # warm the producer's connection
    t_prod = time.time()
    r = wait(c, f, 6)
    latency = time.time() - t_prod
    part = r.topics[0][1][0]
    assert part[1] == 0 and part[2] == 1  # no error, high watermark 1
    assert latency < 1.0, latency
    c.close()


def test_consumer_long_poll_latency(broker):
    topic = "lpc"
    create_topic(broker, topic)
    p = producer(broker)
    produce_all(p, topic, [{"value": b"warm"}])
    cons = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lpc", "enable.auto.commit": False,
                     "fetch.wait.max.ms": 5000})
    cons.assign([TopicPartition(topic, 0, 1)])
    end = time.time() + 1.5  # let it settle into a waiting fetch
    while time.time() < end:
        assert cons.poll(0.1) is None
    lat = []
    for i in range(5):
        t0 = time.time()
        p.produce(topic, value=b"m%d" % i, partition=0)
        p.flush(5)
        m = None
        while m is None and time.time() < t0 + 6:
            m = cons.poll(0.01)
        assert m is not None and m.value() == b"m%d" % i
        lat.append(time.time() - t0)
        time.sleep(0.2)
    cons.close()
    assert max(lat) < 1.0, lat


# ---- fetch sessions (KIP-227), raw Fetch v7 with kafka-python's codec ----------------------

class FetchV7(Request):
    """Fetch v7 as kafka-python has it, with the forgotten topics' name type
    fixed (kafka-python 2.0.2 cannot encode that field)."""
    API_KEY = 1
    API_VERSION = 7
    RESPONSE_TYPE = FetchRequest[7].RESPONSE_TYPE
    SCHEMA = Schema(
        ("replica_id", Int32), ("max_wait_time", Int32), ("min_bytes", Int32), ("max_bytes", Int32),
        ("isolation_level", Int8), ("session_id", Int32), ("session_epoch", Int32),
        ("topics", Array(("topic", String("utf-8")),
                         ("partitions", Array(("partition", Int32), ("fetch_offset", Int64),
                                              ("log_start_offset", Int64), ("max_bytes", Int32))))),
        ("forgotten_topics_data", Array(("topic", String("utf-8")), ("partitions", Array(Int32)))))


def test_fetch_sessions(broker):
    create_topic(broker, "s1", partitions=2)
    create_topic(broker, "s2")
    p = producer(broker)
    produce_all(p, "s1", [{"value": b"a"}], partition=0)
    c = conn(broker)
    Req = FetchV7

    def fetch(sid, epoch, topics, forgotten=(), wait=0):
        return send(c, Req(replica_id=-1, max_wait_time=wait, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                           session_id=sid, session_epoch=epoch, topics=topics, forgotten_topics_data=list(forgotten)))

    def parts(r):
        return sorted((t, pp[0]) for t, ps in r.topics for pp in ps)

    # epoch 0 opens a session; the full response has every partition
    r = fetch(0, 0, [("s1", [(0, 0, -1, 1 << 20), (1, 0, -1, 1 << 20)]), ("s2", [(0, 0, -1, 1 << 20)])])
    assert r.error_code == 0 and r.session_id != 0
    sid = r.session_id
    assert parts(r) == [("s1", 0), ("s1", 1), ("s2", 0)]
    # incremental with no changes: nothing new, so no partitions
    r = fetch(sid, 1, [("s1", [(0, 1, -1, 1 << 20)])])
    assert r.error_code == 0 and r.session_id == sid
    assert parts(r) == []
    # new data on s2 shows up without naming s2
    produce_all(p, "s2", [{"value": b"b"}], partition=0)
    r = fetch(sid, 2, [])
    assert parts(r) == [("s2", 0)]
    # long poll inside a session: wakes on an append to a cached partition
    r = fetch(sid, 3, [("s2", [(0, 1, -1, 1 << 20)])])
    assert parts(r) == []
    f = c.send(Req(replica_id=-1, max_wait_time=5000, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                   session_id=sid, session_epoch=4, topics=[], forgotten_topics_data=[]))
    time.sleep(0.2)
    t0 = time.time()
    produce_all(p, "s1", [{"value": b"c"}], partition=1)
    r = wait(c, f, 6)
    assert time.time() - t0 < 1.0
    assert parts(r) == [("s1", 1)]
    # forget s1-1; data there no longer comes back
    produce_all(p, "s1", [{"value": b"d"}], partition=1)
    r = fetch(sid, 5, [], forgotten=[("s1", [1])])
    assert parts(r) == []
    # wrong epoch, unknown session
    r = fetch(sid, 99, [])
    assert r.error_code == 71  # INVALID_FETCH_SESSION_EPOCH
    r = fetch(sid ^ 0x5555, 1, [])
    assert r.error_code == 70  # FETCH_SESSION_ID_NOT_FOUND
    # epoch -1 closes it
    r = fetch(sid, -1, [("s1", [(0, 0, -1, 1 << 20)])])
    assert r.session_id == 0 and parts(r) == [("s1", 0)]
    r = fetch(sid, 6, [])
    assert r.error_code == 70
    c.close()


# ---- DeleteRecords and OffsetForLeaderEpoch (raw frames) ---------------------------

def test_delete_records_and_offset_for_leader_epoch(broker):
    topic = "dr"
    create_topic(broker, topic)
    p = producer(broker)
    produce_all(p, topic, [{"value": b"%d" % i} for i in range(10)])
    # DeleteRecords v1: topics[name, partitions[index, offset]], timeout
    body = struct.pack(">i", 2) + kstr(topic) + struct.pack(">iiq", 2, 0, 4, ) + struct.pack(">iq", 9, 1)
    body += kstr("nope") + struct.pack(">iiq", 1, 0, 1) + struct.pack(">i", 1000)
    r = raw(broker.port, 21, 1, body)
    off = 4 + 4 + 2 + len(topic) + 4
    assert struct.unpack(">iqh", r[off:off + 14]) == (0, 4, 0)
    assert struct.unpack(">iqh", r[off + 14:off + 28]) == (9, -1, 3)
    tail = r[off + 28:]
    assert struct.unpack(">iqh", tail[2 + 4 + 4:2 + 4 + 4 + 14]) == (0, -1, 3)
    got = consume_n(broker, topic, 6, offset=4)
    assert [m.value() for m in got] == [b"%d" % i for i in range(4, 10)]
    cons = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    assert cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (4, 10)
    cons.close()
    # past the high watermark
    body = struct.pack(">i", 1) + kstr(topic) + struct.pack(">iiq", 1, 0, 11) + struct.pack(">i", 1000)
    r = raw(broker.port, 21, 0, body)
    assert struct.unpack(">iqh", r[off:off + 14]) == (0, -1, 1)
    # OffsetForLeaderEpoch v2: topics[name, partitions[index, current_leader_epoch, leader_epoch]]
    body = struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 2) + struct.pack(">iii", 0, 0, 0)
    body += struct.pack(">iii", 1, -1, 0)
    r = raw(broker.port, 23, 2, body)
    off = 4 + 4 + 2 + len(topic) + 4
    assert struct.unpack(">hiiq", r[off:off + 18]) == (0, 0, 0, 10)
    assert struct.unpack(">hiiq", r[off + 18:off + 36]) == (3, 1, -1, -1)


# ---- restart mid-stream -------------------------------------------------------------------

def test_restart_mid_stream(broker):
    topic = "rs"
    create_topic(broker, topic, partitions=3)
    p = producer(broker, acks="all")
    for part in range(3):
        produce_all(p, topic, [{"key": b"%d" % i, "value": b"p%d-%d" % (part, i)} for i in range(200)],
                    partition=part)
    before = {part: consume_n(broker, topic, 100, partition=part) for part in range(3)}
    broker.restart()
    p2 = producer(broker, acks="all")
    for part in range(3):
        produce_all(p2, topic, [{"key": b"%d" % i, "value": b"p%d-%d" % (part, i)} for i in range(200, 300)],
                    partition=part)
    for part in range(3):
        # continue where the first reading stopped
        rest = consume_n(broker, topic, 200, partition=part, offset=100)
        vals = [m.value() for m in before[part]] + [m.value() for m in rest]
        assert vals == [b"p%d-%d" % (part, i) for i in range(300)]
        assert [m.offset() for m in rest] == list(range(100, 300))


# ---- topic ids (v13+) and shutdown -------------------------------------------------------

def test_fetch_v13_unknown_topic_id(broker):
    create_topic(broker, "tid")
    tid = bytes(range(16))
    # Fetch v13 (flexible): replica_id, max_wait, min_bytes, max_bytes, isolation, session id/epoch,
    # topics[topic_id, partitions[partition, current_leader_epoch, fetch_offset, last_fetched_epoch,
    # log_start_offset, partition_max_bytes]], forgotten[], rack_id
    body = struct.pack(">iiiibii", -1, 0, 1, 1 << 20, 0, 0, -1) + uvarint(2) + tid + uvarint(2)
    body += struct.pack(">iiqiqi", 0, -1, 0, -1, -1, 1 << 20) + b"\x00" + b"\x00" + uvarint(1) + cstr("") + b"\x00"
    r = raw_flex(broker.port, 1, 13, body)
    throttle, err, sid = struct.unpack(">ihi", r[:10])
    assert (err, sid) == (0, 0)
    assert r[10] == 2 and r[11:27] == tid and r[27] == 2
    pidx, perr = struct.unpack(">ih", r[28:34])
    assert (pidx, perr) == (0, 100)  # UNKNOWN_TOPIC_ID


def test_shutdown_answers_held_fetches(broker):
    create_topic(broker, "sd")
    req = FetchRequest[4](replica_id=-1, max_wait_time=30000, min_bytes=1, max_bytes=1 << 20,
                          isolation_level=0, topics=[("sd", [(0, 0, 1 << 20)])])
    frame = struct.pack(">hhih", 1, 4, 5, 3) + b"raw" + req.encode()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        time.sleep(0.3)  # parked
        t0 = time.time()
        rc = broker.stop()
        took = time.time() - t0
        assert rc == 0
        assert took < 5.0, took  # not the fetch's 30 s
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    assert struct.unpack(">i", resp[:4])[0] == 5
    r = FetchRequest[4].RESPONSE_TYPE.decode(resp[4:])
    assert r.topics[0][1][0][1] == 0
