"""Transactions (issue 13, Kafka's protocol v1) with real clients:
librdkafka's transactional producer (python3-confluent-kafka) and
read_committed / read_uncommitted consumers, consume-transform-produce with
send_offsets_to_transaction, fencing by a second producer of the same
transactional.id, the timeout abort, restarts mid-transaction and after a
commit, and kcat as a second read_committed client."""
import shutil
import struct
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka.record.util import calc_crc32c

from test_produce_fetch import create_topic, kstr, raw, raw_flex, uvarint
from test_record_validation import produce_v8, record

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
PRODUCER_FENCED = 90


def txn_producer(broker, txn_id, **conf):
    c = {"bootstrap.servers": broker.bootstrap, "transactional.id": txn_id, "linger.ms": 0,
         "transaction.timeout.ms": 60000}
    c.update(conf)
    return Producer(c)


def read_all(broker, topic, isolation, partitions=1, timeout=8.0, expect=None):
    """Every record of the topic as (partition, value), reading until the
    end of every partition (or `expect` records) with this isolation."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "r-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, eof = [], set()
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    if len(eof) == partitions and expect is None:
                        break
                    continue
                raise KafkaException(m.error())
            out.append((m.partition(), m.value()))
            if expect is not None and len(out) >= expect:
                break
    finally:
        c.close()
    return out


def end_offsets(broker, topic, isolation, partition=0):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "w-" + uuid.uuid4().hex,
                  "isolation.level": isolation})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def test_commit_visible_to_read_committed(broker):
    create_topic(broker, "tc", partitions=2)
    p = txn_producer(broker, "t-commit")
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce("tc", b"v%d" % i, partition=i % 2)
    p.flush(10)
    # Open: read_committed sees nothing yet, read_uncommitted sees the records.
    assert read_all(broker, "tc", "read_committed", partitions=2) == []
    assert len(read_all(broker, "tc", "read_uncommitted", partitions=2, expect=10)) == 10
    low, high = end_offsets(broker, "tc", "read_committed")
    assert high == 0  # the LSO: the open transaction's first offset
    p.commit_transaction(30)
    got = read_all(broker, "tc", "read_committed", partitions=2, expect=10)
    assert sorted(v for _, v in got) == sorted(b"v%d" % i for i in range(10))
    # The commit marker takes an offset: the LSO is past it.
    low, high = end_offsets(broker, "tc", "read_committed")
    assert high == 6


def test_abort_hidden_from_read_committed(broker):
    create_topic(broker, "ta")
    p = txn_producer(broker, "t-abort")
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce("ta", b"gone%d" % i)
    p.flush(10)
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(3):
        p.produce("ta", b"kept%d" % i)
    p.commit_transaction(30)
    assert [v for _, v in read_all(broker, "ta", "read_committed", expect=3)] == [b"kept0", b"kept1", b"kept2"]
    # No more than those: the aborted ones and the markers are skipped.
    assert [v for _, v in read_all(broker, "ta", "read_committed")] == [b"kept0", b"kept1", b"kept2"]
    unc = [v for _, v in read_all(broker, "ta", "read_uncommitted")]
    assert unc == [b"gone%d" % i for i in range(5)] + [b"kept0", b"kept1", b"kept2"]
    if shutil.which("kcat"):
        out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", "ta", "-p", "0", "-o", "beginning",
                              "-e", "-q", "-X", "isolation.level=read_committed"],
                             capture_output=True, timeout=30, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["kept0", "kept1", "kept2"]


def test_second_producer_fences_first(broker):
    create_topic(broker, "tf")
    p1 = txn_producer(broker, "t-fence")
    p1.init_transactions(30)
    p1.begin_transaction()
    p1.produce("tf", b"old")
    p1.flush(10)
    p2 = txn_producer(broker, "t-fence")
    p2.init_transactions(30)  # aborts p1's open transaction
    p2.begin_transaction()
    p2.produce("tf", b"new")
    p2.commit_transaction(30)
    with pytest.raises(KafkaException) as ei:
        p1.produce("tf", b"zombie")
        p1.commit_transaction(10)
    err = ei.value.args[0]
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH), err
    assert [v for _, v in read_all(broker, "tf", "read_committed")] == [b"new"]


def test_consume_transform_produce_commits_offsets(broker):
    create_topic(broker, "in")
    create_topic(broker, "out")
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(6):
        plain.produce("in", b"m%d" % i)
    plain.flush(10)
    group = "ctp"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe(["in"])
    p = txn_producer(broker, "t-ctp")
    p.init_transactions(30)
    msgs = []
    deadline = time.time() + 30
    while len(msgs) < 3 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            msgs.append(m)
    assert len(msgs) == 3
    p.begin_transaction()
    for m in msgs:
        p.produce("out", m.value().upper())
    p.send_offsets_to_transaction([TopicPartition("in", 0, msgs[-1].offset() + 1)],
                                  c.consumer_group_metadata(), 30)
    p.commit_transaction(30)
    # Aborted offsets are not applied.
    p.begin_transaction()
    p.produce("out", b"NEVER")
    p.send_offsets_to_transaction([TopicPartition("in", 0, 6)], c.consumer_group_metadata(), 30)
    p.abort_transaction(30)
    c.close()
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    committed = check.committed([TopicPartition("in", 0)], timeout=10)
    check.close()
    assert committed[0].offset == 3
    assert [v for _, v in read_all(broker, "out", "read_committed")] == [b"M0", b"M1", b"M2"]


def test_transactional_offsets_survive_a_restart_before_the_commit(broker_factory):
    """TxnOffsetCommit's offsets are written to __consumer_offsets as the
    producer's transactional batch: a broker killed between them and the
    commit loads them back as pending, and the commit that follows the
    restart makes them visible (an abort would drop them)."""
    b = broker_factory()
    create_topic(b, "in2")
    create_topic(b, "out2")
    plain = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(6):
        plain.produce("in2", b"m%d" % i)
    plain.flush(10)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "ctp-restart", "enable.auto.commit": False})
    p = txn_producer(b, "t-ctp-restart")
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("out2", b"X")
    p.send_offsets_to_transaction([TopicPartition("in2", 0, 4)], c.consumer_group_metadata(), 30)
    assert p.flush(10) == 0
    c.close()
    b.kill9()
    b.start()
    p.commit_transaction(60)
    check = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "ctp-restart"})
    committed = check.committed([TopicPartition("in2", 0)], timeout=20)
    check.close()
    assert committed[0].offset == 4
    assert [v for _, v in read_all(b, "out2", "read_committed")] == [b"X"]
    # And they stay committed across a clean restart (replayed in log order).
    b.stop()
    b.start()
    check = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "ctp-restart"})
    committed = check.committed([TopicPartition("in2", 0)], timeout=20)
    check.close()
    assert committed[0].offset == 4


def test_require_stable_waits_for_open_transactional_offsets(broker):
    """OffsetFetch with require_stable (librdkafka sets it for read_committed
    consumers) answers UNSTABLE_OFFSET_COMMIT for a partition whose offsets
    are in an open transaction; without it, the last committed offsets."""
    create_topic(broker, "in3")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "stable", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("in3", 0, 1)], asynchronous=False)
    p = txn_producer(broker, "t-stable")
    p.init_transactions(30)
    p.begin_transaction()
    p.send_offsets_to_transaction([TopicPartition("in3", 0, 5)], c.consumer_group_metadata(), 30)
    c.close()

    def committed(isolation, timeout):
        cc = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "stable", "enable.auto.commit": False,
                       "isolation.level": isolation})
        try:
            return cc.committed([TopicPartition("in3", 0)], timeout=timeout)[0].offset
        finally:
            cc.close()

    assert committed("read_uncommitted", 10) == 1
    with pytest.raises(KafkaException) as e:
        committed("read_committed", 2)
    assert e.value.args[0].code() in (KafkaError.UNSTABLE_OFFSET_COMMIT, KafkaError._TIMED_OUT), e.value
    p.commit_transaction(30)
    assert committed("read_committed", 10) == 5


def test_kafkajs_idempotent_and_transactional(broker):
    """kafkajs (npm, pinned in tests/integration/node): an idempotent
    producer, transactions with sendOffsets committed and aborted, a
    read-committed consumer. Skipped without Node.js or the module."""
    import json
    import os
    import shutil
    here = os.path.dirname(os.path.abspath(__file__))
    node_dir = os.environ.get("SLUICE_NODE_DIR", os.path.join(here, "node"))
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed (Debian package nodejs)")
    if not os.path.isdir(os.path.join(node_dir, "node_modules", "kafkajs")):
        pytest.skip("kafkajs is not installed: npm ci --prefix tests/integration/node (or set SLUICE_NODE_DIR)")
    create_topic(broker, "kjs-in")
    create_topic(broker, "kjs-out")
    script = os.path.join(node_dir, "kafkajs_txn-%s.mjs" % uuid.uuid4().hex[:8])
    shutil.copy(os.path.join(here, "node", "kafkajs_txn.mjs"), script)
    try:
        p = subprocess.run(["node", script, broker.bootstrap, "kjs-in", "kjs-out", "kjs-group"],
                           capture_output=True, text=True, timeout=180)
    finally:
        os.unlink(script)
    assert p.returncode == 0, "node exited %d\nstdout:\n%s\nstderr:\n%s" % (
        p.returncode, p.stdout, p.stderr[-4000:])
    seen = json.loads(p.stdout.strip().splitlines()[-1])["seen"]
    assert seen == ["kept-1", "kept-2", "kept-3"]
    assert [v for _, v in read_all(broker, "kjs-in", "read_committed")] == [b"in-%d" % i for i in range(10)]
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "kjs-group"})
    committed = check.committed([TopicPartition("kjs-in", 0)], timeout=10)
    check.close()
    assert committed[0].offset == 5


def test_platformatic_transactional_producer(broker):
    """@platformatic/kafka's transactional producer (which once retried
    FindCoordinator forever here): committed transactions are visible to
    read_committed readers, the aborted one is not."""
    import os
    import shutil
    here = os.path.dirname(os.path.abspath(__file__))
    node_dir = os.environ.get("SLUICE_NODE_DIR", os.path.join(here, "node"))
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed (Debian package nodejs)")
    if not os.path.isdir(os.path.join(node_dir, "node_modules", "@platformatic", "kafka")):
        pytest.skip("@platformatic/kafka is not installed: npm ci --prefix tests/integration/node")
    create_topic(broker, "plat-out")
    script = os.path.join(node_dir, "platformatic_txn-%s.mjs" % uuid.uuid4().hex[:8])
    shutil.copy(os.path.join(here, "node", "platformatic_txn.mjs"), script)
    try:
        p = subprocess.run(["node", script, broker.bootstrap, "plat-out"], capture_output=True, text=True,
                           timeout=120)
    finally:
        os.unlink(script)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), "node exited %d\nstdout:\n%s\nstderr:\n%s" % (
        p.returncode, p.stdout, p.stderr[-4000:])
    assert [v for _, v in read_all(broker, "plat-out", "read_committed")] == [b"p-1", b"p-2", b"p-3"]


def test_transaction_metrics(broker_factory):
    import urllib.request
    from conftest import free_port
    http = free_port()
    b = broker_factory({"sluice.http.listeners": "http://127.0.0.1:%d" % http})

    def metric(name):
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http, timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError("%s not on /metrics" % name)

    create_topic(b, "in4")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "metrics-g", "enable.auto.commit": False})
    p = txn_producer(b, "t-metrics")
    p.init_transactions(30)
    assert metric("sluice_txn_coordinator_partitions") == 50
    p.begin_transaction()
    p.send_offsets_to_transaction([TopicPartition("in4", 0, 2)], c.consumer_group_metadata(), 30)
    assert metric("sluice_txn_pending_offsets") == 1
    p.commit_transaction(30)
    assert metric("sluice_txn_pending_offsets") == 0
    assert metric("sluice_txn_markers_pending") == 0  # a single node writes its markers itself
    c.close()


def test_describe_producers_shows_the_open_transaction(broker):
    """kafka-transactions.sh describe-producers / find-hanging read
    current_txn_start_offset: the first offset of the producer's open
    transaction on the partition, -1 once it is closed."""
    from test_idempotence import describe_producers
    create_topic(broker, "dp")
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce("dp", b"before")
    plain.flush(10)
    p = txn_producer(broker, "t-dp")
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("dp", b"open")
    assert p.flush(10) == 0
    err, prods = describe_producers(broker.port, "dp", with_txn=True)
    assert err == 0
    mine = [x for x in prods if x[4] >= 0]
    assert len(mine) == 1 and mine[0][4] == 1, prods
    p.commit_transaction(30)
    err, prods = describe_producers(broker.port, "dp", with_txn=True)
    assert err == 0 and all(x[4] == -1 for x in prods), prods


def test_timeout_aborts(broker_factory):
    b = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    create_topic(b, "tt")
    p = txn_producer(b, "t-slow", **{"transaction.timeout.ms": 1500})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("tt", b"late")
    p.flush(10)
    time.sleep(3)
    # The coordinator aborted it: the LSO moved past the abort marker.
    low, high = end_offsets(b, "tt", "read_committed")
    assert high == 2
    assert read_all(b, "tt", "read_committed") == []
    with pytest.raises(KafkaException):
        p.commit_transaction(10)


def test_restart_mid_transaction_and_after_commit(broker_factory):
    b = broker_factory()
    create_topic(b, "tr")
    p = txn_producer(b, "t-restart")
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3):
        p.produce("tr", b"c%d" % i)
    p.commit_transaction(30)
    p.begin_transaction()
    p.produce("tr", b"open")
    p.flush(10)
    del p
    b.kill9()
    b.start()
    # The open transaction is still open after the restart (LSO at its start) ...
    assert [v for _, v in read_all(b, "tr", "read_committed", expect=3)] == [b"c0", b"c1", b"c2"]
    low, high = end_offsets(b, "tr", "read_committed")
    assert high == 4
    # ... until a new instance of the producer fences and aborts it.
    p2 = txn_producer(b, "t-restart")
    p2.init_transactions(30)
    p2.begin_transaction()
    p2.produce("tr", b"after")
    p2.commit_transaction(30)
    assert [v for _, v in read_all(b, "tr", "read_committed")] == [b"c0", b"c1", b"c2", b"after"]
    # And a clean restart keeps the aborted one hidden (the aborted list survives).
    b.stop()
    b.start()
    assert [v for _, v in read_all(b, "tr", "read_committed")] == [b"c0", b"c1", b"c2", b"after"]


# ---- raw requests through the codec: bad input gets Kafka's error codes ----------------

def txn_batch(values, pid, epoch, seq):
    """A transactional magic-2 batch (attribute bit 4) from pid/epoch at seq."""
    recs = b"".join(record(v, offset_delta=i) for i, v in enumerate(values))
    ts = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0x10, len(values) - 1, ts, ts, pid, epoch, seq, len(values)) + recs
    body = struct.pack(">ibI", 0, 2, calc_crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(body)) + body


def produce_txn(port, txn_id, topic, records, partition=0):
    """Produce v3 with a transactional id; returns the partition's error code."""
    body = kstr(txn_id) + struct.pack(">hi", 1, 5000)
    body += struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1)
    body += struct.pack(">ii", partition, len(records)) + records
    r = raw(port, 0, 3, body)
    p = 4
    n = struct.unpack(">h", r[p:p + 2])[0]
    p += 2 + n + 4
    return struct.unpack(">ih", r[p:p + 6])[1]


def add_partitions(port, txn_id, pid, epoch, topic, partitions, version=1):
    body = kstr(txn_id) + struct.pack(">qh", pid, epoch) + struct.pack(">i", 1) + kstr(topic)
    body += struct.pack(">i", len(partitions)) + b"".join(struct.pack(">i", p) for p in partitions)
    r = raw(port, 24, version, body)
    p = 4 + 4  # throttle, one topic
    n = struct.unpack(">h", r[p:p + 2])[0]
    p += 2 + n + 4
    return struct.unpack(">ih", r[p:p + 6])[1]


def end_txn(port, txn_id, pid, epoch, commit, version=1):
    r = raw(port, 26, version, kstr(txn_id) + struct.pack(">qhb", pid, epoch, 1 if commit else 0))
    return struct.unpack(">ih", r[:6])[1]


def init_txn(port, txn_id, timeout_ms=60000):
    deadline = time.time() + 20
    while True:
        r = raw(port, 22, 1, kstr(txn_id) + struct.pack(">i", timeout_ms))
        _t, err, pid, epoch = struct.unpack(">ihqh", r[:16])
        if err not in (14, 15) or time.time() > deadline:  # loading / not available yet: retry
            return err, pid, epoch
        time.sleep(0.1)


def list_transactions(port):
    r = raw_flex(port, 66, 0, uvarint(1) + uvarint(1) + b"\x00")
    p = 4
    err = struct.unpack(">h", r[p:p + 2])[0]
    p += 2
    p += 1  # no unknown filters (compact array length 1)
    n = r[p] - 1
    p += 1
    out = []
    for _ in range(n):
        ln = r[p] - 1
        tid = r[p + 1:p + 1 + ln].decode()
        p += 1 + ln
        pid = struct.unpack(">q", r[p:p + 8])[0]
        p += 8
        ln = r[p] - 1
        state = r[p + 1:p + 1 + ln].decode()
        p += 1 + ln + 1
        out.append((tid, pid, state))
    return err, out


def test_bad_input_error_codes(broker):
    create_topic(broker, "tb", partitions=2)
    assert init_txn(broker.port, "raw-tx", timeout_ms=10**9)[0] == INVALID_TRANSACTION_TIMEOUT
    err, pid, epoch = init_txn(broker.port, "raw-tx")
    assert err == 0
    # A transactional batch for a partition not added: INVALID_TXN_STATE.
    assert produce_txn(broker.port, "raw-tx", "tb", txn_batch([b"x"], pid, epoch, 0)) == INVALID_TXN_STATE
    # A transactional batch without the request's transactional id: the same.
    assert produce_v8(broker.port, "tb", txn_batch([b"x"], pid, epoch, 0)).code == INVALID_TXN_STATE
    # EndTxn with nothing added.
    assert end_txn(broker.port, "raw-tx", pid, epoch, True) == INVALID_TXN_STATE
    # Another producer id, an older epoch.
    assert add_partitions(broker.port, "raw-tx", pid + 1, epoch, "tb", [0]) == INVALID_PRODUCER_ID_MAPPING
    assert add_partitions(broker.port, "raw-tx", pid, epoch - 1, "tb", [0]) == INVALID_PRODUCER_EPOCH
    assert add_partitions(broker.port, "raw-tx", pid, epoch - 1, "tb", [0], version=2) == PRODUCER_FENCED
    assert add_partitions(broker.port, "raw-tx", pid, epoch, "nope", [0]) == UNKNOWN_TOPIC_OR_PARTITION
    # Added: the batch goes in; partition 1 (not added) still refused.
    assert add_partitions(broker.port, "raw-tx", pid, epoch, "tb", [0]) == 0
    assert produce_txn(broker.port, "raw-tx", "tb", txn_batch([b"a", b"b"], pid, epoch, 0)) == 0
    assert produce_txn(broker.port, "raw-tx", "tb", txn_batch([b"c"], pid, epoch, 0), partition=1) == \
        INVALID_TXN_STATE
    err, states = list_transactions(broker.port)
    assert err == 0 and ("raw-tx", pid, "Ongoing") in states
    assert end_txn(broker.port, "raw-tx", pid, epoch, False) == 0
    assert end_txn(broker.port, "raw-tx", pid, epoch, False) == 0  # a retry
    assert end_txn(broker.port, "raw-tx", pid, epoch, True) == INVALID_TXN_STATE
    err, states = list_transactions(broker.port)
    assert ("raw-tx", pid, "CompleteAbort") in states
    # After the abort, the batch of the ended transaction is refused.
    assert produce_txn(broker.port, "raw-tx", "tb", txn_batch([b"d"], pid, epoch, 2)) == INVALID_TXN_STATE
    assert read_all(broker, "tb", "read_committed", partitions=2) == []


def test_sluice_transactions_describe_producers_and_abort(broker):
    """kafka-transactions.sh describe-producers and abort: a partition's
    producers with their open transaction's first offset, and the ABORT
    marker written by hand for a hanging transaction (the LSO moves past it;
    its records stay hidden from read_committed)."""
    import json
    import os
    sluice = os.path.join(os.environ.get("SLUICE_BUILD", "build/release"), "sluice")
    create_topic(broker, "hang")
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce("hang", b"first")
    plain.flush(10)
    p = txn_producer(broker, "t-hang")
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("hang", b"stuck")
    assert p.flush(10) == 0

    def run(*args):
        return subprocess.run([sluice, "transactions", "--bootstrap-server", broker.bootstrap] + list(args),
                              capture_output=True, text=True, timeout=30)
    out = run("--describe-producers", "--topic", "hang", "--partition", "0", "--json")
    assert out.returncode == 0, out.stderr
    open_txns = [x for x in json.loads(out.stdout)["producers"] if x["currentTransactionStartOffset"] >= 0]
    assert [x["currentTransactionStartOffset"] for x in open_txns] == [1]
    out = run("--describe-producers", "--topic", "hang", "--partition", "0")
    assert out.returncode == 0 and "CurrentTransactionStartOffset" in out.stdout
    low, high = end_offsets(broker, "hang", "read_committed")
    assert high == 1  # the LSO is held at the open transaction
    out = run("--abort", "--topic", "hang", "--partition", "0", "--start-offset", "1")
    assert out.returncode == 0 and "aborted the open transaction" in out.stdout, out
    low, high = end_offsets(broker, "hang", "read_committed")
    assert high == 3  # past the record and the ABORT marker
    assert [v for _, v in read_all(broker, "hang", "read_committed")] == [b"first"]
    # Nothing open at that offset any more; bad flags are usage errors.
    assert run("--abort", "--topic", "hang", "--partition", "0", "--start-offset", "1").returncode == 4
    assert run("--abort", "--topic", "hang", "--partition", "0").returncode == 2
    assert run("--describe-producers", "--topic", "hang").returncode == 2
    assert run("--abort", "--topic", "hang", "--partition", "x", "--start-offset", "1").returncode == 2
    p.abort_transaction(30)


def test_sluice_transactions_cli(broker):
    import json
    import os
    sluice = os.path.join(os.environ.get("SLUICE_BUILD", "build/release"), "sluice")
    create_topic(broker, "tcli", partitions=2)
    p = txn_producer(broker, "t-cli")
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("tcli", b"x", partition=1)
    p.flush(10)
    out = subprocess.run([sluice, "transactions", "--bootstrap-server", broker.bootstrap, "--list", "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["transactions"]
    assert [(r["transactionalId"], r["state"]) for r in rows if r["transactionalId"] == "t-cli"] == \
        [("t-cli", "Ongoing")]
    out = subprocess.run([sluice, "transactions", "--bootstrap-server", broker.bootstrap, "--describe",
                          "--transactional-id", "t-cli", "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["state"] == "Ongoing" and d["partitions"] == ["tcli-1"] and d["startTimeMs"] > 0
    p.commit_transaction(30)
    out = subprocess.run([sluice, "transactions", "--bootstrap-server", broker.bootstrap, "--describe",
                          "--transactional-id", "t-cli"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "CompleteCommit" in out.stdout, out
    out = subprocess.run([sluice, "transactions", "--bootstrap-server", broker.bootstrap, "--describe",
                          "--transactional-id", "nobody"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 4 and "TRANSACTIONAL_ID_NOT_FOUND" in out.stderr, out
    out = subprocess.run([sluice, "transactions", "--bootstrap-server", broker.bootstrap, "--describe"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
