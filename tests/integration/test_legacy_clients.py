"""Old clients: Produce v0-2 with legacy message sets (magic 0 and 1) and
Fetch v0-3 served by down-converting the log's magic-2 batches.

kafka-python is pinned to old protocol versions with api_version, librdkafka
(kcat) with api.version.request=false and broker.version.fallback. Records
written by old clients must read back with a modern client and the other way
round. Raw frames check the error mapping and the down-conversion of a
compressed batch byte by byte.
"""
import gzip
import importlib
import shutil
import socket
import struct
import subprocess
import time
import zlib

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP

# kafka-python needs a Python module per codec; skip what is not installed.
CODEC_MODULES = {None: None, "gzip": None, "snappy": "snappy", "lz4": "lz4.frame"}


def need_codec(codec):
    mod = CODEC_MODULES[codec]
    if mod is None:
        return
    try:
        importlib.import_module(mod)
    except ImportError:
        pytest.skip("python module %s (for %s) is not installed" % (mod, codec))


def create_topic(broker, name, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                       config=config or {})], request_timeout=15)
    fs[name].result(timeout=15)


def modern_consume(broker, topic, n, timeout=20.0):
    cons = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "modern", "enable.auto.commit": False,
                     "fetch.wait.max.ms": 100})
    cons.assign([TopicPartition(topic, 0, 0)])
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


def modern_produce(broker, topic, msgs, codec="none"):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50, "compression.type": codec})
    errs = []
    for k, v in msgs:
        p.produce(topic, key=k, value=v, partition=0, on_delivery=lambda err, m: errs.append(err))
    assert p.flush(20) == 0
    assert errs == [None] * len(msgs)


def old_consume(broker, topic, n, api_version, timeout=20.0):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=api_version, enable_auto_commit=False,
                      group_id=None, fetch_max_wait_ms=100, request_timeout_ms=30000)
    tp = KTP(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    out = []
    deadline = time.time() + timeout
    try:
        while len(out) < n and time.time() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                out.extend(recs)
    finally:
        c.close()
    return out


def messages(n):
    """Keys and values with nulls (never both null)."""
    out = []
    for i in range(n):
        k = None if i % 5 == 1 else ("k%d" % i).encode()
        v = None if i % 7 == 3 else ("value-%d-" % i).encode() * (1 + i % 3)
        out.append((k, v))
    return out


OLD_VERSIONS = [(0, 9), (0, 10), (0, 10, 1)]


@pytest.mark.parametrize("api_version", OLD_VERSIONS, ids=lambda v: ".".join(map(str, v)))
@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4"])
def test_kafka_python_old_versions_roundtrip(broker, api_version, codec):
    need_codec(codec)
    if codec == "lz4" and api_version < (0, 10):
        pytest.skip("magic-0 lz4 wrappers carry the pre-0.10 broken frame checksum (not supported)")
    topic = "old-%s-%s" % ("".join(map(str, api_version)), codec or "none")
    create_topic(broker, topic)
    msgs = messages(30)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=api_version, compression_type=codec,
                      linger_ms=20, acks=1)
    futs = [p.send(topic, key=k, value=v, partition=0) for k, v in msgs]
    p.flush(20)
    offsets = [f.get(timeout=20).offset for f in futs]
    p.close()
    assert offsets == list(range(len(msgs)))

    # The old consumer reads them back (down-converted) ...
    got = old_consume(broker, topic, len(msgs), api_version)
    assert [(r.key, r.value) for r in got] == msgs
    assert [r.offset for r in got] == offsets
    # ... and so does a modern one, from the magic-2 batches in the log.
    got = modern_consume(broker, topic, len(msgs))
    assert [(m.key(), m.value()) for m in got] == msgs
    if api_version >= (0, 10):  # magic 1 carries the producer's timestamps
        now = time.time() * 1000
        assert all(abs(m.timestamp()[1] - now) < 120000 for m in got)


@pytest.mark.parametrize("api_version", OLD_VERSIONS, ids=lambda v: ".".join(map(str, v)))
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_modern_producer_old_consumer(broker, api_version, codec):
    topic = "mod-%s-%s" % ("".join(map(str, api_version)), codec)
    create_topic(broker, topic)
    msgs = messages(40)
    modern_produce(broker, topic, msgs, codec)
    got = old_consume(broker, topic, len(msgs), api_version)
    assert [(r.key, r.value) for r in got] == msgs
    assert [r.offset for r in got] == list(range(len(msgs)))
    if api_version >= (0, 10):
        assert all(r.timestamp > 0 for r in got)


def test_old_consumer_starts_inside_a_batch(broker):
    topic = "inside"
    create_topic(broker, topic)
    msgs = messages(20)
    modern_produce(broker, topic, msgs, "gzip")  # one batch
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=(0, 10), enable_auto_commit=False,
                      group_id=None, fetch_max_wait_ms=100)
    tp = KTP(topic, 0)
    c.assign([tp])
    c.seek(tp, 13)
    out = []
    deadline = time.time() + 20
    while len(out) < 7 and time.time() < deadline:
        for recs in c.poll(timeout_ms=200).values():
            out.extend(recs)
    c.close()
    assert [r.offset for r in out] == list(range(13, 20))
    assert [(r.key, r.value) for r in out] == msgs[13:]


def test_old_consumer_small_partition_limit(broker):
    """A message larger than max_partition_fetch_bytes still comes through
    (the first partition always gets one whole message)."""
    topic = "small-limit"
    create_topic(broker, topic)
    msgs = [(b"k%d" % i, bytes([65 + i]) * 3000) for i in range(5)]
    modern_produce(broker, topic, msgs, "none")
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=(0, 10), enable_auto_commit=False,
                      group_id=None, fetch_max_wait_ms=100, max_partition_fetch_bytes=1000)
    tp = KTP(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    out = []
    deadline = time.time() + 20
    while len(out) < 5 and time.time() < deadline:
        for recs in c.poll(timeout_ms=200).values():
            out.extend(recs)
    c.close()
    assert [(r.key, r.value) for r in out] == msgs


# ---- kcat / librdkafka with old protocol versions ---------------------------------------

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
@pytest.mark.parametrize("fallback", ["0.9.0", "0.10.0"])
def test_kcat_old_protocol(broker, fallback):
    # With 0.9.0 librdkafka speaks Produce v1 / Fetch v1 (magic 0). With a
    # 0.10+ fallback it sends ApiVersions anyway (0.10 brokers answer it) and
    # so ends up on modern versions; the case is kept as a smoke test.
    topic = "kcat-" + fallback.replace(".", "")
    create_topic(broker, topic)
    old = ["-X", "api.version.request=false", "-X", "broker.version.fallback=" + fallback]
    lines = "".join("key%d:value %d\n" % (i, i) for i in range(25))
    subprocess.run([KCAT, "-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":",
                    "-X", "compression.codec=gzip"] + old,
                   input=lines.encode(), check=True, timeout=30)
    out = subprocess.run([KCAT, "-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e",
                          "-c", "25", "-f", "%k=%s@%o\n"] + old,
                         capture_output=True, check=True, timeout=30).stdout.decode()
    assert out.splitlines() == ["key%d=value %d@%d" % (i, i, i) for i in range(25)]
    # A modern client reads what the old one wrote.
    got = modern_consume(broker, topic, 25)
    assert [(m.key(), m.value()) for m in got] == [(b"key%d" % i, b"value %d" % i) for i in range(25)]


# ---- raw frames ------------------------------------------------------------------------

def _recv(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def raw(port, api_key, api_version, body, corr=7, timeout=10.0):
    cid = b"raw"
    frame = struct.pack(">hhih", api_key, api_version, corr, len(cid)) + cid + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    assert struct.unpack(">i", resp[:4])[0] == corr
    return resp[4:]


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def kbytes(b):
    return struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b


def legacy_message(offset, key, value, magic=0, attributes=0, timestamp=-1):
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", timestamp)
    body += kbytes(key) + kbytes(value)
    msg = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF) + body
    return struct.pack(">qi", offset, len(msg)) + msg


def produce_v0(port, topic, records, acks=1):
    body = struct.pack(">hi", acks, 5000) + struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1)
    body += struct.pack(">i", 0) + kbytes(records)
    resp = raw(port, 0, 0, body)
    # [topic [partition error base_offset]]
    assert struct.unpack(">i", resp[:4])[0] == 1
    n = struct.unpack(">h", resp[4:6])[0]
    p = 6 + n
    assert struct.unpack(">i", resp[p:p + 4])[0] == 1
    part, err, base = struct.unpack(">ihq", resp[p + 4:p + 18])
    return err, base


def parse_message_set(buf):
    """Yields (offset, magic, attributes, timestamp, key, value); stops at a partial tail."""
    pos = 0
    while len(buf) - pos >= 12:
        offset, size = struct.unpack(">qi", buf[pos:pos + 12])
        if len(buf) - pos - 12 < size:
            break
        msg = buf[pos + 12:pos + 12 + size]
        crc = struct.unpack(">I", msg[:4])[0]
        assert crc == zlib.crc32(msg[4:]) & 0xFFFFFFFF
        magic, attrs = struct.unpack(">bb", msg[4:6])
        p = 6
        ts = None
        if magic == 1:
            ts = struct.unpack(">q", msg[p:p + 8])[0]
            p += 8
        vals = []
        for _ in range(2):
            n = struct.unpack(">i", msg[p:p + 4])[0]
            p += 4
            vals.append(None if n < 0 else msg[p:p + n])
            p += max(n, 0)
        assert p == len(msg)
        yield offset, magic, attrs, ts, vals[0], vals[1]
        pos += 12 + size


def fetch_old(port, version, topic, offset, max_bytes=1 << 20):
    body = struct.pack(">iii", -1, 100, 0)
    if version >= 3:
        body += struct.pack(">i", 50 << 20)
    body += struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1) + struct.pack(">iqi", 0, offset, max_bytes)
    resp = raw(port, 1, version, body)
    p = 4 if version >= 1 else 0  # throttle_time_ms
    assert struct.unpack(">i", resp[p:p + 4])[0] == 1
    n = struct.unpack(">h", resp[p + 4:p + 6])[0]
    p += 6 + n
    assert struct.unpack(">i", resp[p:p + 4])[0] == 1
    part, err, hw, size = struct.unpack(">ihqi", resp[p + 4:p + 22])
    records = resp[p + 22:p + 22 + max(size, 0)]
    return err, hw, records


def test_raw_produce_v0_legacy_and_errors(broker):
    topic = "raw-produce"
    create_topic(broker, topic)
    good = b"".join(legacy_message(i, b"k%d" % i, b"v%d" % i) for i in range(3))
    assert produce_v0(broker.port, topic, good) == (0, 0)
    # Corrupt CRC -> CORRUPT_MESSAGE
    bad = bytearray(legacy_message(0, b"k", b"v"))
    bad[-1] ^= 0xFF
    assert produce_v0(broker.port, topic, bytes(bad))[0] == 2
    # Truncated message set -> CORRUPT_MESSAGE
    assert produce_v0(broker.port, topic, good[:-3])[0] == 2
    # A gzip wrapper whose inner set holds another wrapper -> INVALID_RECORD
    nested = legacy_message(0, None, gzip.compress(legacy_message(0, None, b"x")), attributes=1)
    wrapper = legacy_message(0, None, gzip.compress(nested), attributes=1)
    assert produce_v0(broker.port, topic, wrapper)[0] == 87
    # A wrapper whose value is not gzip data -> CORRUPT_MESSAGE
    assert produce_v0(broker.port, topic, legacy_message(0, None, b"not gzip", attributes=1))[0] == 2
    # A real gzip wrapper: accepted, offsets assigned after the first three.
    inner = b"".join(legacy_message(i, None, b"g%d" % i) for i in range(4))
    wrapper = legacy_message(3, None, gzip.compress(inner), attributes=1)
    assert produce_v0(broker.port, topic, wrapper) == (0, 3)
    # Message larger than max.message.bytes -> MESSAGE_TOO_LARGE
    big = legacy_message(0, None, b"x" * 2000)
    create_topic(broker, "raw-small", config={"max.message.bytes": "1000"})
    assert produce_v0(broker.port, "raw-small", big)[0] == 10
    # Many messages that fit one by one but not together: split into batches.
    many = b"".join(legacy_message(i, None, bytes([97 + i]) * 300) for i in range(10))
    assert produce_v0(broker.port, "raw-small", many) == (0, 0)
    got = modern_consume(broker, "raw-small", 10)
    assert [m.value() for m in got] == [bytes([97 + i]) * 300 for i in range(10)]
    # Magic 1 on v0 and a magic-2 batch on v0 are accepted, as Kafka does
    # (below v3 it does not tie the message format to the request version).
    assert produce_v0(broker.port, topic, legacy_message(0, b"m1", b"v", magic=1, timestamp=1234)) == (0, 7)
    from kafka.record.memory_records import MemoryRecordsBuilder
    bld = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=100000)
    bld.append(timestamp=None, key=b"m2", value=b"v", headers=[])
    bld.close()
    assert produce_v0(broker.port, topic, bytes(bld.buffer())) == (0, 8)
    got = modern_consume(broker, topic, 9)
    assert [m.value() for m in got] == [b"v0", b"v1", b"v2", b"g0", b"g1", b"g2", b"g3", b"v", b"v"]
    assert [m.offset() for m in got] == list(range(9))
    assert got[0].timestamp()[1] == -1 or got[0].timestamp()[0] == 0  # magic 0: no timestamp
    assert got[7].timestamp()[1] == 1234


def test_raw_fetch_v0_downconverts_compressed_batch(broker):
    topic = "raw-fetch"
    create_topic(broker, topic)
    msgs = [(b"k%d" % i, b"value %d" % i) for i in range(10)]
    modern_produce(broker, topic, msgs, "gzip")
    for version, magic in [(0, 0), (1, 0), (2, 1), (3, 1)]:
        err, hw, records = fetch_old(broker.port, version, topic, 4)
        assert err == 0 and hw == 10
        got = list(parse_message_set(records))
        assert [m[0] for m in got] == list(range(4, 10))
        assert all(m[1] == magic and m[2] == 0 for m in got)  # uncompressed, version's magic
        assert [(m[4], m[5]) for m in got] == msgs[4:]
        if magic == 1:
            assert all(m[3] > 0 for m in got)
    # A tiny partition limit still returns one whole message (first partition).
    err, hw, records = fetch_old(broker.port, 2, topic, 0, max_bytes=10)
    got = list(parse_message_set(records))
    assert err == 0 and [m[0] for m in got] == [0]
    # Past the end: nothing; before the start of the log: OFFSET_OUT_OF_RANGE.
    assert fetch_old(broker.port, 0, topic, 10)[2] == b""
    assert fetch_old(broker.port, 0, topic, 11)[0] == 1


def test_old_consumer_many_partitions(broker):
    """Several partitions in one v1/v2 fetch, each down-converted."""
    topic = "multi"
    create_topic(broker, topic, partitions=3)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20, "compression.type": "snappy"})
    for i in range(60):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % 3)
    assert p.flush(20) == 0
    for api_version in [(0, 9), (0, 10)]:
        c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=api_version, enable_auto_commit=False,
                          group_id=None, fetch_max_wait_ms=100, max_partition_fetch_bytes=200)
        tps = [KTP(topic, i) for i in range(3)]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, 0)
        got = {}
        deadline = time.time() + 20
        while sum(len(v) for v in got.values()) < 60 and time.time() < deadline:
            for tp, recs in c.poll(timeout_ms=200).items():
                got.setdefault(tp.partition, []).extend(recs)
        c.close()
        for part in range(3):
            assert [r.value for r in got[part]] == [b"v%d" % i for i in range(part, 60, 3)]
            assert [r.offset for r in got[part]] == list(range(20))
