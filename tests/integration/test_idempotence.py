"""Idempotent producers (issue 13, first part): InitProducerId, the
per-partition producer state (duplicates, sequence gaps, fenced epochs),
its survival across restarts and SIGKILL, and DescribeProducers - with
real clients (confluent-kafka, kcat, kafka-python) and raw requests."""
import os
import shutil
import struct
import subprocess
import time

import pytest
from confluent_kafka import Producer

from test_produce_fetch import consume_n, create_topic, kstr, raw, raw_flex, uvarint, cstr
from test_record_validation import record, produce_v8, high_watermark, zigzag  # noqa: F401
from kafka.record.util import calc_crc32c

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
UNKNOWN_PRODUCER_ID = 59


def idem_batch(values, pid, epoch, seq):
    """A magic-2 batch of uncompressed records from producer pid/epoch starting at seq."""
    recs = b"".join(record(v, offset_delta=i) for i, v in enumerate(values))
    ts = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, ts, ts, pid, epoch, seq, len(values)) + recs
    body = struct.pack(">ibI", 0, 2, calc_crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(body)) + body


def init_producer_id(port, version=1, txn_id=None, pid=-1, epoch=-1):
    """InitProducerId; returns (error, producer id, epoch)."""
    if version >= 2:
        body = (uvarint(0) if txn_id is None else cstr(txn_id)) + struct.pack(">i", 60000)
        if version >= 3:
            body += struct.pack(">qh", pid, epoch)
        body += b"\x00"
        r = raw_flex(port, 22, version, body)
    else:
        body = (struct.pack(">h", -1) if txn_id is None else kstr(txn_id)) + struct.pack(">i", 60000)
        r = raw(port, 22, version, body)
    _throttle, err, got_pid, got_epoch = struct.unpack(">ihqh", r[:16])
    return err, got_pid, got_epoch


def describe_producers(port, topic, partition=0):
    """DescribeProducers v0 for one partition: (error, [(pid, epoch, last_seq, last_ts)])."""
    body = uvarint(2) + cstr(topic) + uvarint(2) + struct.pack(">i", partition) + b"\x00" + b"\x00"
    r = raw_flex(port, 61, 0, body)
    p = 4  # throttle
    p += 1  # one topic (compact array length 2)
    n = r[p] - 1
    p += 1 + n  # name
    p += 1  # one partition
    _index, err = struct.unpack(">ih", r[p:p + 6])
    p += 6
    mlen = r[p]  # compact nullable string: 0 = null (short messages only)
    p += 1 + (mlen - 1 if mlen else 0)
    count = r[p] - 1
    p += 1
    out = []
    for _ in range(count):
        pid, ep, seq, ts, _ce, _txn = struct.unpack(">qiiqiq", r[p:p + 36])
        p += 37  # + tags
        out.append((pid, ep, seq, ts))
    return err, out


def log_end(broker, topic, partition=0):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "le"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        c.close()


# ---- real clients -----------------------------------------------------------------

def test_confluent_idempotent_producer_exactly_once_in_order(broker):
    create_topic(broker, "idem", partitions=4)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "max.in.flight.requests.per.connection": 5, "batch.num.messages": 50})
    errors = []
    n = 4000

    def cb(err, msg):
        if err is not None:
            errors.append(err)

    for i in range(n):
        p.produce("idem", value=b"%d" % i, key=b"%d" % (i % 4), partition=i % 4, on_delivery=cb)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert errors == []
    total = 0
    for part in range(4):
        msgs = consume_n(broker, "idem", n // 4, partition=part, timeout=30)
        values = [int(m.value()) for m in msgs]
        assert values == list(range(part, n, 4)), "partition %d out of order or duplicated" % part
        total += len(values)
    assert total == n
    # The producer is known to each partition it wrote.
    for part in range(4):
        err, prods = describe_producers(broker.port, "idem", part)
        assert err == 0 and len(prods) == 1 and prods[0][2] == n // 4 - 1, prods
