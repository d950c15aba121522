"""Produce-time validation of every record, and record timestamp limits.

Each case sends a hand-built magic-2 batch in a raw Produce v8 request (a
client library would refuse to build most of them), checks the error code,
error_message and record_errors the broker answers with, and that the
partition's log end offset did not move. The batches are built here byte by
byte, CRC-32C included (kafka-python's crc32c), so that only the one defect
under test is present. A librdkafka consumer then reads the good records on
either side of the refused ones, which is what a consumer could not do when
such batches were stored.
"""
import gzip
import random
import struct
import time

import lz4.frame
import pytest
import snappy
import zstandard
from confluent_kafka import Consumer, TopicPartition
from kafka.record.util import calc_crc32c

from test_produce_fetch import consume_n, create_topic, kstr, raw

CORRUPT_MESSAGE = 2
INVALID_TIMESTAMP = 32
INVALID_TXN_STATE = 48
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87

ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20


# ---- a byte-level batch builder -------------------------------------------------

def zigzag(n):
    z = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def vbytes(b):
    return zigzag(-1) if b is None else zigzag(len(b)) + b


def record(value, key=None, offset_delta=0, ts_delta=0, headers=(), key_len=None, extra=b""):
    """One record; key_len overrides the encoded key length, extra is appended inside the record."""
    body = b"\x00" + zigzag(ts_delta) + zigzag(offset_delta)
    body += zigzag(key_len) + (key or b"") if key_len is not None else vbytes(key)
    body += vbytes(value) + zigzag(len(headers))
    for hk, hv in headers:
        body += vbytes(hk) + vbytes(hv)
    body += extra
    return zigzag(len(body)) + body


def batch(records, count=None, last_delta=None, attrs=0, base_ts=None, max_ts=None, pid=-1, seq=-1,
          payload=None):
    """A magic-2 batch around record bytes (records: list of encoded records), CRC sealed.
    payload replaces the (possibly compressed) record bytes."""
    count = len(records) if count is None else count
    last_delta = count - 1 if last_delta is None else last_delta
    base_ts = int(time.time() * 1000) if base_ts is None else base_ts
    max_ts = base_ts if max_ts is None else max_ts
    recs = b"".join(records) if payload is None else payload
    after_crc = struct.pack(">hiqqqhii", attrs, last_delta, base_ts, max_ts, pid, 0 if pid >= 0 else -1, seq,
                            count) + recs
    crc = calc_crc32c(after_crc)
    body = struct.pack(">ibI", 0, 2, crc) + after_crc  # partitionLeaderEpoch, magic, crc
    return struct.pack(">qi", 0, len(body)) + body


def compress(codec, data):
    if codec == 1:
        return gzip.compress(data)
    if codec == 2:
        return snappy.compress(data)
    if codec == 3:
        return lz4.frame.compress(data)
    return zstandard.ZstdCompressor().compress(data)


# ---- raw Produce v8 -------------------------------------------------------------

class Answer:
    def __init__(self, code, base_offset, record_errors, message):
        self.code, self.base_offset, self.record_errors, self.message = code, base_offset, record_errors, message

    def __repr__(self):
        return "Answer(code=%d, base_offset=%d, record_errors=%r, message=%r)" % (
            self.code, self.base_offset, self.record_errors, self.message)


def nstr(buf, p):
    n = struct.unpack(">h", buf[p:p + 2])[0]
    p += 2
    if n < 0:
        return None, p
    return buf[p:p + n].decode(), p + n


def produce_v8(port, topic, records, partition=0):
    body = struct.pack(">hhi", -1, 1, 5000)  # null transactional_id, acks=1, timeout
    body += struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1)
    body += struct.pack(">ii", partition, len(records)) + records
    r = raw(port, 0, 8, body)
    p = 4  # one topic
    _, p = nstr(r, p)
    p += 4  # one partition
    _index, code, base, _lat, _lso = struct.unpack(">ihqqq", r[p:p + 30])
    p += 30
    n = struct.unpack(">i", r[p:p + 4])[0]
    p += 4
    errs = []
    for _ in range(max(n, 0)):
        bi = struct.unpack(">i", r[p:p + 4])[0]
        msg, p = nstr(r, p + 4)
        errs.append((bi, msg))
    msg, p = nstr(r, p)
    return Answer(code, base, errs, msg)


def high_watermark(broker, topic):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "hw"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


# ---- item 5: every record is validated ------------------------------------------

def good(value=b"v"):
    return batch([record(value)])


def bad_cases():
    rng = random.Random(9)
    three = [record(b"a", offset_delta=0), record(b"b", offset_delta=1), record(b"c", offset_delta=2)]
    plain = b"".join(three)
    big = [record(b"x" * 20, offset_delta=i) for i in range(3)]
    cases = []
    for codec, name in ((1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")):
        cases.append(("garbage " + name, batch(three, attrs=codec, payload=b"\x01\x02not %s data at all" % name.encode()),
                      CORRUPT_MESSAGE, -1))
        # a valid stream of the codec whose records lie about their count
        cases.append((name + " count too high", batch(three, count=4, attrs=codec, payload=compress(codec, plain)),
                      INVALID_RECORD, -1))
    cases += [
        ("count lower than the records", batch(three, count=2), INVALID_RECORD, -1),
        ("count higher than the records", batch(big[:2], count=3), INVALID_RECORD, 2),
        ("count far above what the bytes hold", batch(three, count=3, payload=b"".join(three[:2])), INVALID_RECORD,
         -1),
        ("random record bytes", batch(three, payload=bytes(rng.randrange(256) for _ in range(40))), INVALID_RECORD,
         None),
        ("control bit from a producer", batch([record(b"\x00\x00\x00\x01", key=b"\x00\x00\x00\x00")],
                                              attrs=ATTR_CONTROL), INVALID_RECORD, -1),
        ("transactional bit without a producer id", batch(three, attrs=ATTR_TRANSACTIONAL), INVALID_RECORD, -1),
        ("transactional batch", batch(three, attrs=ATTR_TRANSACTIONAL, pid=7, seq=0), INVALID_TXN_STATE, -1),
        ("producer id without a sequence", batch(three, pid=7, seq=-1), INVALID_RECORD, -1),
        ("negative key length", batch([three[0], record(b"x", key=b"", key_len=-2, offset_delta=1)]),
         INVALID_RECORD, 1),
        ("2^31-1 records in 70 bytes", batch([record(b"")], count=2 ** 31 - 1), INVALID_RECORD, -1),
        ("offset delta not the record index", batch([record(b"a", offset_delta=0), record(b"b", offset_delta=0)]),
         INVALID_RECORD, 1),
        ("bytes after the last record", batch(three, payload=plain + b"\x00\x00"), INVALID_RECORD, -1),
        ("bytes inside a record past its fields", batch([record(b"a", extra=b"zz")]), INVALID_RECORD, 0),
        ("null header key", batch([record(b"a", headers=[(None, b"v")])]), INVALID_RECORD, 0),
        ("LogAppendTime set by a producer", batch(three, attrs=ATTR_LOG_APPEND_TIME), INVALID_TIMESTAMP, -1),
        ("unknown codec 6", batch(three, attrs=6), UNSUPPORTED_COMPRESSION_TYPE, -1),
    ]
    return cases


def test_produce_refuses_records_consumers_cannot_read(broker):
    topic = "validate"
    create_topic(broker, topic)
    assert produce_v8(broker.port, topic, good(b"first")).code == 0
    for name, blob, want, rec in bad_cases():
        a = produce_v8(broker.port, topic, blob)
        assert a.code == want, (name, a)
        assert a.base_offset == -1, (name, a)
        assert a.message, (name, a)  # the reason, for the client's log
        if rec is not None and rec >= 0:
            assert [i for i, _ in a.record_errors] == [rec], (name, a)
            assert a.record_errors[0][1] == a.message, (name, a)
        elif rec == -1:
            assert a.record_errors == [], (name, a)
    # Nothing was stored: the next good batch takes offset 1 and a consumer reads both.
    assert produce_v8(broker.port, topic, good(b"second")).base_offset == 1
    assert high_watermark(broker, topic) == 2
    got = consume_n(broker, topic, 2)
    assert [(m.offset(), m.value()) for m in got] == [(0, b"first"), (1, b"second")]
    assert "refused records from" in broker.log()


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_valid_compressed_batches_are_accepted(broker, codec):
    topic = "codec-%d" % codec
    create_topic(broker, topic)
    recs = [record(b"value-%d" % i, key=b"k%d" % i, offset_delta=i, headers=[(b"h", b"%d" % i)])
            for i in range(20)]
    a = produce_v8(broker.port, topic, batch(recs, attrs=codec, payload=compress(codec, b"".join(recs))))
    assert (a.code, a.base_offset) == (0, 0), a
    got = consume_n(broker, topic, 20)
    assert [m.value() for m in got] == [b"value-%d" % i for i in range(20)]
    assert got[3].headers() == [("h", b"3")]


# ---- timestamps: message.timestamp.before/after.max.ms ----------------------------

def ts_batch(ts):
    return batch([record(b"t")], base_ts=ts, max_ts=ts)


def test_record_timestamps_are_held_to_the_topic_limits(broker):
    now = int(time.time() * 1000)
    hour, day = 3600 * 1000, 24 * 3600 * 1000
    create_topic(broker, "ts-default")
    # Kafka 4 defaults: at most an hour ahead, any age behind.
    a = produce_v8(broker.port, "ts-default", ts_batch(now + day))
    assert a.code == INVALID_TIMESTAMP, a
    assert a.record_errors and a.record_errors[0][0] == 0, a
    assert "timestamp %d" % (now + day) in a.message, a
    assert produce_v8(broker.port, "ts-default", ts_batch(now + 30 * 60 * 1000)).code == 0
    assert produce_v8(broker.port, "ts-default", ts_batch(now - 365 * day)).code == 0
    # The limit applies to every record, not only to the batch's maxTimestamp.
    two = batch([record(b"a"), record(b"b", offset_delta=1, ts_delta=day)], base_ts=now, max_ts=now)
    a = produce_v8(broker.port, "ts-default", two)
    assert a.code == INVALID_TIMESTAMP and a.record_errors[0][0] == 1, a
    # -1 (no timestamp) is not judged.
    assert produce_v8(broker.port, "ts-default", ts_batch(-1)).code == 0
    assert high_watermark(broker, "ts-default") == 3

    # Topic overrides, at creation and altered later.
    create_topic(broker, "ts-tight", config={"message.timestamp.after.max.ms": "60000",
                                             "message.timestamp.before.max.ms": "600000"})
    assert produce_v8(broker.port, "ts-tight", ts_batch(now + 30 * 60 * 1000)).code == INVALID_TIMESTAMP
    assert produce_v8(broker.port, "ts-tight", ts_batch(now - hour)).code == INVALID_TIMESTAMP
    assert produce_v8(broker.port, "ts-tight", ts_batch(now - 60 * 1000)).code == 0
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource("topic", "ts-tight", set_config={"message.timestamp.after.max.ms": str(2 * day),
                                                          "message.timestamp.before.max.ms": "600000"})
    for f in admin.alter_configs([res]).values():
        f.result(timeout=10)
    assert produce_v8(broker.port, "ts-tight", ts_batch(now + day)).code == 0

    # LogAppendTime topics take the broker's clock and judge no producer timestamp.
    create_topic(broker, "ts-lat", config={"message.timestamp.type": "LogAppendTime"})
    assert produce_v8(broker.port, "ts-lat", ts_batch(now + day)).code == 0


def test_broker_timestamp_default(broker_factory):
    b = broker_factory({"log.message.timestamp.after.max.ms": "1000"})
    create_topic(b, "ts-broker")
    now = int(time.time() * 1000)
    assert produce_v8(b.port, "ts-broker", ts_batch(now + 60 * 1000)).code == INVALID_TIMESTAMP
    assert produce_v8(b.port, "ts-broker", ts_batch(now - 60 * 1000)).code == 0
