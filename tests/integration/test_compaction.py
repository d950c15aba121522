"""Log compaction with real clients: a keyed workload over many segments of
a cleanup.policy=compact topic, produced and read with confluent_kafka
(librdkafka) and kafka-python against a real sluiced whose cleaner runs in
the background.

After cleaning, a consumer from the beginning must see exactly the latest
record of every key at its original offset, with its timestamp and headers;
tombstones must go once delete.retention.ms has passed; committed group
offsets must survive compaction and a restart. Every wait is bounded.
"""
import os
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP

# The cleaner looks for work every 200 ms; segments are small (many of them).
OVERRIDES = {"log.cleaner.backoff.ms": "200"}
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "4096",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "3000",
}
KEYS = 150
ROUNDS = 8


def create_topic(broker, name, config):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config=config)],
                             request_timeout=15)
    fs[name].result(timeout=15)


def read_all_confluent(broker, topic, timeout=10.0):
    """Every record from the beginning up to the end of the partition."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 50, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise RuntimeError(str(m.error()))
            out.append((m.offset(), m.key(), m.value(), m.timestamp()[1], m.headers()))
    finally:
        c.close()
    return out


def produce_workload_confluent(broker, topic):
    """KEYS keys over ROUNDS rounds; in the last round every tenth key gets a
    tombstone. Returns {key: (offset, value, timestamp, headers)} of the
    latest record of each key, from the delivery reports."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "compression.type": "lz4",
                  "batch.size": 3000})
    latest = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        latest[msg.key()] = (msg.offset(), msg.value(), msg.timestamp()[1], msg.headers())

    ts0 = int(time.time() * 1000) - 100000
    n = 0
    for r in range(ROUNDS):
        for k in range(KEYS):
            key = b"key-%04d" % k
            value = None if (r == ROUNDS - 1 and k % 10 == 0) else (b"value-%d-%d-" % (k, r)) + b"x" * 40
            n += 1
            p.produce(topic, key=key, value=value, timestamp=ts0 + n, headers=[("round", b"%d" % r)],
                      on_delivery=report)
        p.flush(15)
    assert p.flush(15) == 0
    assert not errors, errors
    fill(broker, topic)
    return latest


def fill(broker, topic):
    """A filler key (incompressible, uncompressed) pushes every workload
    record out of the active segment, which is never cleaned."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 5})
    errors = []
    for i in range(40):
        p.produce(topic, key=b"filler", value=os.urandom(200), on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(15) == 0
    assert not errors, errors


def compacted(records, latest, tombstones_gone):
    """Whether records hold exactly the latest record of every workload key
    (tombstones: present once, or absent when tombstones_gone), at its
    offset with its value, timestamp and header."""
    seen = {}
    for off, key, value, ts, headers in records:
        if key == b"filler":
            continue
        if key in seen:
            return False
        seen[key] = (off, value, ts, headers)
    for key, (off, value, ts, headers) in latest.items():
        if key == b"filler":
            continue
        if value is None and tombstones_gone:
            if key in seen:
                return False
            continue
        got = seen.get(key)
        if got is None:
            return False
        assert got[0] == off and got[1] == value and got[2] == ts, (key, got, (off, value, ts))
        # Every key's latest record is from the last round (delivery reports carry no headers).
        assert [(k, bytes(v)) for k, v in (got[3] or [])] == [("round", b"%d" % (ROUNDS - 1))]
    return True


def wait_compacted(broker, topic, latest, tombstones_gone, timeout=45.0):
    deadline = time.time() + timeout
    records = []
    while time.time() < deadline:
        records = read_all_confluent(broker, topic)
        if compacted(records, latest, tombstones_gone):
            return records
        time.sleep(0.3)
    raise AssertionError("not compacted within %.0f s: %d records read; log:\n%s"
                         % (timeout, len(records), broker.log()[-3000:]))


def test_compaction_confluent(broker_factory):
    b = broker_factory(OVERRIDES)
    create_topic(b, "cc", TOPIC_CONFIG)
    latest = produce_workload_confluent(b, "cc")
    before = read_all_confluent(b, "cc")
    assert len(before) >= KEYS * ROUNDS  # nothing cleaned so far would be fine, but all is readable
    records = wait_compacted(b, "cc", latest, tombstones_gone=False)
    offsets = [r[0] for r in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert "cleaned up to offset" in b.log()
    # Tombstones go once delete.retention.ms has passed after their first clean.
    wait_compacted(b, "cc", latest, tombstones_gone=True)
    # The cleaned log survives a clean restart and a SIGKILL.
    b.restart()
    wait_compacted(b, "cc", latest, tombstones_gone=True, timeout=20)
    b.kill9()
    b.start()
    wait_compacted(b, "cc", latest, tombstones_gone=True, timeout=20)


def test_compaction_kafka_python_and_group_offsets(broker_factory):
    b = broker_factory(OVERRIDES)
    create_topic(b, "kp", TOPIC_CONFIG)
    prod = KafkaProducer(bootstrap_servers=b.bootstrap, compression_type="gzip", linger_ms=5, batch_size=3000)
    futures = {}
    for r in range(ROUNDS):
        for k in range(KEYS):
            key = b"k%03d" % k
            futures[key] = prod.send("kp", key=key, value=b"v-%d-%d" % (k, r))
        prod.flush(timeout=15)
    prod.flush(timeout=15)
    fill(b, "kp")
    latest = {k: f.get(timeout=10).offset for k, f in futures.items()}
    prod.close()

    # A group commits an offset in the middle of the log.
    commit_at = latest[b"k010"]
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id="g-compact", enable_auto_commit=False)
    tp = KTP("kp", 0)
    c.assign([tp])
    from kafka.structs import OffsetAndMetadata
    c.commit({tp: OffsetAndMetadata(commit_at, "")})
    c.close()

    def read_kafka_python():
        cons = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=1500)
        cons.assign([tp])
        cons.seek_to_beginning(tp)
        out = [(m.offset, m.key, m.value) for m in cons]
        cons.close()
        return out

    deadline = time.time() + 45
    ok = False
    while time.time() < deadline and not ok:
        recs = read_kafka_python()
        keyed = [r for r in recs if r[1] != b"filler"]
        got = {r[1]: r for r in keyed}
        ok = len(keyed) == KEYS and all(got.get(k, (None,))[0] == off for k, off in latest.items())
        if not ok:
            time.sleep(0.3)
    assert ok, "not compacted: %d keyed records" % len(keyed)
    for k, (off, key, value) in got.items():
        assert value == b"v-%d-%d" % (int(key[1:]), ROUNDS - 1)

    # The committed offset survives compaction and a restart.
    b.restart()
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id="g-compact", enable_auto_commit=False)
    deadline = time.time() + 20
    committed = None
    while time.time() < deadline and committed is None:
        try:
            committed = c.committed(tp)
        except Exception:
            time.sleep(0.3)
    c.close()
    assert committed == commit_at


def test_compaction_survives_sigkill_mid_pass(broker_factory):
    """The cleaner is throttled (log.cleaner.io.max.bytes.per.second) so a pass
    takes seconds; sluiced is SIGKILLed eight times, in the middle of passes.
    After each start every key's latest record is still there at its offset,
    and once unthrottled the log ends up compacted."""
    overrides = dict(OVERRIDES)
    overrides["log.cleaner.io.max.bytes.per.second"] = "15000"
    b = broker_factory(overrides)
    create_topic(b, "ck", TOPIC_CONFIG)
    latest = produce_workload_confluent(b, "ck")
    killed_mid_pass = 0
    for i in range(8):
        time.sleep(2.0 + 0.37 * i)  # the first tick makes the segments cleanable; then a pass takes ~4 s
        b.kill9()
        # A pass was under way if its cleaned files are on disk.
        d = os.path.join(b.data_dir, "logs", "ck-0")
        if any(n.endswith(".cleaned") or n.endswith(".swap") for n in os.listdir(d)):
            killed_mid_pass += 1
        print("kill %d: %d kill(s) so far found a pass under way" % (i, killed_mid_pass))
        b.start()
        records = read_all_confluent(b, "ck")
        seen = {}
        for off, key, value, ts, headers in records:
            seen[key] = (off, value)
        for key, (off, value, ts, headers) in latest.items():
            if key == b"filler" or (value is None and key not in seen):
                continue  # a tombstone may be past delete.retention.ms already
            assert seen.get(key) == (off, value), (i, key, seen.get(key), off)
    assert killed_mid_pass >= 1, "no kill landed in a pass"
    b.overrides.pop("log.cleaner.io.max.bytes.per.second")
    b.restart()
    wait_compacted(b, "ck", latest, tombstones_gone=True)


def test_consumer_offsets_compacted(broker_factory):
    """__consumer_offsets is a compacted topic: with small segments the
    cleaner compacts a group's many commits, and the last commit is what the
    group reads back after a restart."""
    b = broker_factory(dict(OVERRIDES, **{"offsets.topic.segment.bytes": "4096",
                                          "offsets.topic.num.partitions": "1"}))
    create_topic(b, "co", {})
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(10):
        p.produce("co", value=b"x")
    assert p.flush(15) == 0
    from kafka.structs import OffsetAndMetadata
    tp = KTP("co", 0)
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id="g-many", enable_auto_commit=False)
    c.assign([tp])
    for i in range(400):
        c.commit({tp: OffsetAndMetadata(i % 10, "commit-%d" % i)})
    c.close()
    deadline = time.time() + 30
    while time.time() < deadline and "partition __consumer_offsets-0: cleaned" not in b.log():
        time.sleep(0.3)
    assert "partition __consumer_offsets-0: cleaned" in b.log(), b.log()[-3000:]
    b.restart()
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id="g-many", enable_auto_commit=False)
    deadline = time.time() + 20
    committed = None
    while time.time() < deadline and committed is None:
        try:
            committed = c.committed(tp, metadata=True)
        except Exception:
            time.sleep(0.3)
    c.close()
    assert committed is not None and committed.offset == 399 % 10 and committed.metadata == "commit-399"
