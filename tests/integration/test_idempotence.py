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


def describe_producers(port, topic, partition=0, with_txn=False):
    """DescribeProducers v0 for one partition: (error, [(pid, epoch, last_seq, last_ts)]), with the
    current transaction's first offset as a fifth field when with_txn."""
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
        pid, ep, seq, ts, _ce, txn = struct.unpack(">qiiqiq", r[p:p + 36])
        p += 37  # + tags
        out.append((pid, ep, seq, ts, txn) if with_txn else (pid, ep, seq, ts))
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


def test_kcat_idempotent_producer(broker):
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed")
    create_topic(broker, "kc", partitions=2)
    lines = b"".join(b"line-%d\n" % i for i in range(500))
    subprocess.run([kcat, "-P", "-b", broker.bootstrap, "-t", "kc", "-p", "1", "-X", "enable.idempotence=true"],
                   input=lines, check=True, timeout=60)
    msgs = consume_n(broker, "kc", 500, partition=1)
    assert [m.value() for m in msgs] == [b"line-%d" % i for i in range(500)]
    err, prods = describe_producers(broker.port, "kc", 1)
    assert err == 0 and len(prods) == 1 and prods[0][2] == 499


def test_kafka_python_idempotent_producer(broker):
    import kafka
    from kafka import KafkaProducer
    import inspect
    if "enable_idempotence" not in KafkaProducer.DEFAULT_CONFIG:
        pytest.skip("kafka-python %s has no enable_idempotence" % kafka.__version__)
    create_topic(broker, "kp")
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    for i in range(300):
        p.send("kp", value=b"%d" % i, partition=0)
    p.flush(30)
    p.close()
    assert [int(m.value()) for m in consume_n(broker, "kp", 300)] == list(range(300))
    err, prods = describe_producers(broker.port, "kp", 0)
    assert err == 0 and len(prods) == 1 and prods[0][2] == 299
    del inspect


# ---- raw protocol -------------------------------------------------------------------

def test_init_producer_id_distinct_and_never_reused_after_restart(broker):
    seen = set()
    for v in (0, 1, 2, 3, 4, 5):
        err, pid, epoch = init_producer_id(broker.port, version=v)
        assert err == 0 and epoch == 0 and pid >= 0
        assert pid not in seen
        seen.add(pid)
    # KIP-360: naming the current id and epoch bumps the epoch.
    err, pid, epoch = init_producer_id(broker.port, version=3, pid=max(seen), epoch=0)
    assert (err, pid, epoch) == (0, max(seen), 1)
    # An id never handed out gets a fresh one.
    err, pid2, epoch2 = init_producer_id(broker.port, version=4, pid=10 ** 12, epoch=3)
    assert err == 0 and epoch2 == 0 and pid2 not in seen
    seen.add(pid2)
    for restart in (broker.restart, broker.kill9):
        restart()
        if not broker.alive():
            broker.start()
        err, pid, epoch = init_producer_id(broker.port)
        assert err == 0 and epoch == 0
        assert pid > max(seen), "id %d handed out again after a restart (seen up to %d)" % (pid, max(seen))
        seen.add(pid)
    assert "producer id block" in broker.log()


def test_transactional_init_gets_a_producer_and_bumps_its_epoch(broker):
    # With a transactional id the transaction coordinator answers; a second
    # InitProducerId of the id keeps the producer id and bumps the epoch.
    deadline = time.time() + 20
    while True:  # COORDINATOR_LOAD_IN_PROGRESS (14) while the new topic loads: clients retry
        err, pid, epoch = init_producer_id(broker.port, version=1, txn_id="tx-1")
        if err != 14 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert err == 0 and pid >= 0 and epoch == 0
    err, pid2, epoch2 = init_producer_id(broker.port, version=4, txn_id="tx-1")
    assert err == 0 and pid2 == pid and epoch2 == 1


def test_duplicate_gap_and_fencing(broker):
    create_topic(broker, "raw")
    err, pid, epoch = init_producer_id(broker.port)
    assert err == 0
    b0 = idem_batch([b"a", b"b"], pid, epoch, 0)
    a = produce_v8(broker.port, "raw", b0)
    assert a.code == 0 and a.base_offset == 0
    a = produce_v8(broker.port, "raw", idem_batch([b"c"], pid, epoch, 2))
    assert a.code == 0 and a.base_offset == 2
    assert log_end(broker, "raw") == 3
    # The same batches again: their original offsets, nothing appended.
    a = produce_v8(broker.port, "raw", idem_batch([b"a", b"b"], pid, epoch, 0))
    assert a.code == 0 and a.base_offset == 0
    a = produce_v8(broker.port, "raw", idem_batch([b"c"], pid, epoch, 2))
    assert a.code == 0 and a.base_offset == 2
    assert log_end(broker, "raw") == 3
    # A damaged copy of a retained batch is no retry: storage refuses it.
    bad = bytearray(idem_batch([b"a", b"b"], pid, epoch, 0))
    bad[-1] ^= 0x01
    a = produce_v8(broker.port, "raw", bytes(bad))
    assert a.code == 2, a  # CORRUPT_MESSAGE
    # A gap.
    a = produce_v8(broker.port, "raw", idem_batch([b"x"], pid, epoch, 5))
    assert a.code == OUT_OF_ORDER_SEQUENCE_NUMBER, a
    assert "does not follow" in (a.message or "")
    # A batch overlapping but not equal to a retained one is out of order too.
    a = produce_v8(broker.port, "raw", idem_batch([b"b", b"c"], pid, epoch, 1))
    assert a.code == OUT_OF_ORDER_SEQUENCE_NUMBER, a
    # Bump the epoch (KIP-360): the new epoch starts at 0, the old one is fenced.
    err, pid1, epoch1 = init_producer_id(broker.port, version=3, pid=pid, epoch=epoch)
    assert (err, pid1, epoch1) == (0, pid, epoch + 1)
    a = produce_v8(broker.port, "raw", idem_batch([b"y"], pid, epoch1, 7))
    assert a.code == OUT_OF_ORDER_SEQUENCE_NUMBER, a
    a = produce_v8(broker.port, "raw", idem_batch([b"y"], pid, epoch1, 0))
    assert a.code == 0 and a.base_offset == 3
    a = produce_v8(broker.port, "raw", idem_batch([b"old"], pid, epoch, 3))
    assert a.code == INVALID_PRODUCER_EPOCH, a
    # An unknown producer that does not start at 0.
    a = produce_v8(broker.port, "raw", idem_batch([b"z"], pid + 500, 0, 9))
    assert a.code == UNKNOWN_PRODUCER_ID, a
    assert log_end(broker, "raw") == 4
    msgs = consume_n(broker, "raw", 4)
    assert [m.value() for m in msgs] == [b"a", b"b", b"c", b"y"]
    err, prods = describe_producers(broker.port, "raw")
    assert err == 0 and [(p[0], p[1], p[2]) for p in prods] == [(pid, epoch1, 0)]
    # Unknown partition.
    err, _ = describe_producers(broker.port, "raw", 7)
    assert err == 3  # UNKNOWN_TOPIC_OR_PARTITION


def test_state_survives_sigkill_and_clean_restart(broker):
    create_topic(broker, "dur", partitions=2)
    err, pid, epoch = init_producer_id(broker.port)
    seq = 0
    for i in range(20):
        a = produce_v8(broker.port, "dur", idem_batch([b"m%d" % i], pid, epoch, seq), partition=1)
        assert a.code == 0 and a.base_offset == i
        seq += 1
    last = idem_batch([b"m19"], pid, epoch, 19)
    for how in ("kill9", "restart", "kill9"):
        getattr(broker, how)()
        if not broker.alive():
            broker.start()
        a = produce_v8(broker.port, "dur", last, partition=1)
        assert a.code == 0 and a.base_offset == 19, (how, a)
        assert log_end(broker, "dur", 1) == 20
        a = produce_v8(broker.port, "dur", idem_batch([b"gap"], pid, epoch, 25), partition=1)
        assert a.code == OUT_OF_ORDER_SEQUENCE_NUMBER, (how, a)
    a = produce_v8(broker.port, "dur", idem_batch([b"m20"], pid, epoch, 20), partition=1)
    assert a.code == 0 and a.base_offset == 20
    # A clean shutdown leaves a snapshot file at the log end.
    broker.stop()
    d = os.path.join(broker.data_dir, "logs", "dur-1")
    snaps = sorted(f for f in os.listdir(d) if f.endswith(".snapshot"))
    assert snaps and snaps[-1] == "%020d.snapshot" % 21, snaps
    # sluice dump-log reads it, and shows the producer in the log's batches.
    from conftest import BUILD
    sluice = os.path.join(BUILD, "sluice")
    out = subprocess.run([sluice, "dump-log", os.path.join(d, snaps[-1])], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert "producerId: %d producerEpoch: %d" % (pid, epoch) in out.stdout
    assert "firstSequence: 20 lastSequence: 20 lastOffset: 20" in out.stdout
    out = subprocess.run([sluice, "dump-log", os.path.join(d, "%020d.log" % 0)], capture_output=True, text=True,
                         timeout=30)
    assert "baseSequence: 19 lastSequence: 19 producerId: %d producerEpoch: %d" % (pid, epoch) in out.stdout
    broker.start()
    a = produce_v8(broker.port, "dur", idem_batch([b"m20"], pid, epoch, 20), partition=1)
    assert a.code == 0 and a.base_offset == 20


def test_corrupt_snapshot_is_ignored_and_rebuilt(broker):
    create_topic(broker, "cs")
    err, pid, epoch = init_producer_id(broker.port)
    for i in range(5):
        assert produce_v8(broker.port, "cs", idem_batch([b"%d" % i], pid, epoch, i)).code == 0
    broker.stop()
    d = os.path.join(broker.data_dir, "logs", "cs-0")
    snaps = [f for f in os.listdir(d) if f.endswith(".snapshot")]
    assert snaps
    path = os.path.join(d, sorted(snaps)[-1])
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF
    open(path, "wb").write(bytes(data))
    from conftest import BUILD
    out = subprocess.run([os.path.join(BUILD, "sluice"), "dump-log", path], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode != 0 and "not a usable producer snapshot: crc" in out.stdout + out.stderr
    broker.start()
    assert "is unusable" in broker.log()
    a = produce_v8(broker.port, "cs", idem_batch([b"4"], pid, epoch, 4))
    assert a.code == 0 and a.base_offset == 4
    assert log_end(broker, "cs") == 5


def test_snapshots_at_roll_and_recovery_from_tail(broker_factory):
    b = broker_factory({"log.segment.bytes": "4096"})
    create_topic(b, "roll")
    err, pid, epoch = init_producer_id(b.port)
    for i in range(60):
        a = produce_v8(b.port, "roll", idem_batch([b"x" * 200], pid, epoch, i))
        assert a.code == 0 and a.base_offset == i
    d = os.path.join(b.data_dir, "logs", "roll-0")
    deadline = time.time() + 10
    while time.time() < deadline and not [f for f in os.listdir(d) if f.endswith(".snapshot")]:
        time.sleep(0.2)
    snaps = [f for f in os.listdir(d) if f.endswith(".snapshot")]
    assert 1 <= len(snaps) <= 2, snaps
    b.kill9()
    b.start()
    a = produce_v8(b.port, "roll", idem_batch([b"x" * 200], pid, epoch, 59))
    assert a.code == 0 and a.base_offset == 59
    a = produce_v8(b.port, "roll", idem_batch([b"x" * 200], pid, epoch, 60))
    assert a.code == 0 and a.base_offset == 60


def test_producer_expiration(broker_factory):
    b = broker_factory({"producer.id.expiration.ms": "1500"})
    create_topic(b, "exp")
    err, pid, epoch = init_producer_id(b.port)
    assert produce_v8(b.port, "exp", idem_batch([b"a"], pid, epoch, 0)).code == 0
    assert len(describe_producers(b.port, "exp")[1]) == 1
    deadline = time.time() + 15
    while time.time() < deadline and describe_producers(b.port, "exp")[1]:
        time.sleep(0.3)
    assert describe_producers(b.port, "exp")[1] == []
    a = produce_v8(b.port, "exp", idem_batch([b"b"], pid, epoch, 1))
    assert a.code == UNKNOWN_PRODUCER_ID, a


# ---- a cluster: blocks from the active controller ------------------------------------

from test_cluster import cluster, create, wait_formed, brokers_seen, wait_for  # noqa: E402,F401


def test_cluster_producer_id_blocks_and_idempotent_produce(cluster):
    nodes = cluster(3)
    controller = wait_formed(nodes)
    seen = []
    for nd in nodes:
        err, pid, epoch = wait_for("InitProducerId on node %d" % nd.node_id,
                                   lambda nd=nd: (lambda a: a if a[0] == 0 else None)(init_producer_id(nd.port)))
        seen.append(pid)
    assert len(set(seen)) == 3
    # Each node has a block of its own: ids from different nodes are a block apart.
    assert len(set(p // 1000 for p in seen)) == 3, seen
    others = [n for n in nodes if n.node_id != controller]
    active = next(n for n in nodes if n.node_id == controller)
    # The other nodes asked the active controller (AllocateProducerIds).
    for o in others:
        assert "producer id block %d..%d for broker %d" % (seen[o.node_id - 1], seen[o.node_id - 1] + 999,
                                                           o.node_id) in active.log()
    # Idempotent producer across the cluster.
    create(nodes[0], "cidem", 3)
    for nd in nodes:
        wait_for("cidem on node %d" % nd.node_id, lambda nd=nd: "cidem" in
                 __import__("confluent_kafka.admin", fromlist=["AdminClient"]).AdminClient(
                     {"bootstrap.servers": nd.bootstrap}).list_topics(timeout=5).topics)
    boot = ",".join(n.bootstrap for n in nodes)
    p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "linger.ms": 5})
    errors = []
    n = 1500
    for i in range(n):
        p.produce("cidem", value=b"%d" % i, partition=i % 3,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(30) == 0 and errors == []
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": boot, "group.id": "cidem", "enable.auto.commit": False})
    c.assign([TopicPartition("cidem", part, 0) for part in range(3)])
    got = {0: [], 1: [], 2: []}
    deadline = time.time() + 30
    while sum(len(v) for v in got.values()) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got[m.partition()].append(int(m.value()))
    c.close()
    for part in range(3):
        assert got[part] == list(range(part, n, 3))
    # The active controller goes; a node that uses up its block gets the next
    # one from the new controller, and no id repeats.
    active.kill9()
    survivor = others[0]
    wait_for("a new active controller", lambda: brokers_seen(survivor)[1] in [o.node_id for o in others])
    ids = set(seen)
    for _ in range(1001):
        err, pid, _ = wait_for("InitProducerId", lambda: (lambda a: a if a[0] == 0 else None)(
            init_producer_id(survivor.port)))
        assert pid not in ids
        ids.add(pid)
    assert survivor.log().count("(recorded in the metadata log)") >= 2
    active.start()


def test_broker_only_nodes_get_blocks_from_dedicated_controllers(cluster):
    nodes = cluster(controllers=1, brokers=2)
    brokers = [n for n in nodes if n.roles == "broker"]
    ids = []
    for nd in brokers:
        for _ in range(3):
            err, pid, epoch = wait_for("InitProducerId on node %d" % nd.node_id, lambda nd=nd: (
                lambda a: a if a[0] == 0 else None)(init_producer_id(nd.port)), timeout=60)
            ids.append(pid)
    assert len(set(ids)) == 6
    assert len(set(p // 1000 for p in ids)) == 2, ids


def test_confluent_producer_across_broker_sigkill_no_duplicates(broker_factory):
    """The broker is SIGKILLed (four times) while an idempotent producer has
    requests in flight; it restarts on the same port and the producer's
    retries of batches that were already written are answered as duplicates:
    the log holds every record exactly once, in order. (Whether a kill lands
    between a write and its answer is timing; the count is printed.)"""
    broker = broker_factory({"log.level": "debug"})
    create_topic(broker, "crash", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 2,
                  "batch.num.messages": 20, "message.timeout.ms": 60000, "retry.backoff.ms": 100,
                  "reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 500})
    acked = [0]
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[0] += 1

    n = 20000
    kills = {3000, 8000, 13000, 18000}
    for i in range(n):
        while True:
            try:
                p.produce("crash", value=b"%d" % i, partition=i % 2, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if i in kills:
            # Requests in flight (some written, not yet answered): kill the
            # broker under them.
            time.sleep(0.003)
            broker.kill9()
            broker.start()
    assert p.flush(60) == 0
    assert errors == [], errors[:3]
    assert acked[0] == n
    print("retries answered as duplicates: %d" % broker.log().count("duplicate batch from"))
    for part in range(2):
        assert log_end(broker, "crash", part) == n // 2
        msgs = consume_n(broker, "crash", n // 2, partition=part, timeout=20)
        values = [int(m.value()) for m in msgs]
        assert values == list(range(part, n, 2)), "partition %d: %d records, first bad at %r" % (
            part, len(values), next((k for k, (x, y) in enumerate(zip(values, range(part, n, 2))) if x != y), None))
