"""Acknowledged records survive a SIGKILL of the broker.

A producer writes while the broker is killed with SIGKILL at an arbitrary
point; after a restart every record the broker acknowledged must be readable
at the offset it was acknowledged with, and every partition must read back
cleanly (no torn batch, no gap) from the beginning.
"""
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3


def create_topic(bootstrap, name):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]).values():
        f.result(timeout=30)


def read_all(bootstrap, topic, expect_at_least):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "durability-check",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got = {}
    deadline = time.time() + 60
    idle_since = time.time()
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            if len(got) >= expect_at_least and time.time() - idle_since > 1:
                break
            continue
        assert m.error() is None, m.error()
        got[(m.partition(), m.offset())] = m.value()
        idle_since = time.time()
    c.close()
    return got


def test_acknowledged_records_survive_sigkill(broker):
    topic = "durable"
    create_topic(broker.bootstrap, topic)
    acked = {}
    lock = threading.Lock()

    errors = {}

    def on_delivery(err, msg):
        if err is not None:
            errors[str(err)] = errors.get(str(err), 0) + 1
        if err is None:
            with lock:
                acked[(msg.partition(), msg.offset())] = msg.value()

    for round_no in range(3):
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2,
                      "message.timeout.ms": 2000, "retries": 0})
        # Kill the broker part-way through a stream of sends: once this
        # round has some acknowledgements, after a delay that varies by round.
        before = len(acked)
        killed_at = None
        start = time.time()
        i = 0
        while time.time() - start < 20:
            if killed_at is None and len(acked) - before >= 2000:
                time.sleep(0.01 * round_no)
                broker.kill9()
                killed_at = time.time()
            if killed_at is not None and time.time() - killed_at > 0.5:
                break
            try:
                p.produce(topic, value=b"r%d-%06d" % (round_no, i), on_delivery=on_delivery)
                i += 1
            except BufferError:
                p.poll(0.01)
            if i % 100 == 0:
                p.poll(0)
        assert killed_at is not None, "round %d: no acknowledgements within 20 s (errors %r)" % (round_no, errors)
        p.flush(10)  # undelivered records fail: they were never acknowledged
        del p
        broker.start()

    assert len(acked) > 1000, "too few acknowledged records to mean anything (%d; errors %r)" % (len(acked), errors)
    got = read_all(broker.bootstrap, topic, len(acked))
    missing = [k for k, v in acked.items() if got.get(k) != v]
    assert not missing, "%d acknowledged records lost or changed, e.g. %r" % (len(missing), missing[:5])
    # Offsets in each partition are contiguous from 0.
    for part in range(PARTITIONS):
        offs = sorted(o for (p_, o) in got if p_ == part)
        assert offs == list(range(len(offs))), "partition %d has gaps" % part
    assert "not shut down cleanly" in broker.log()


def test_unclean_start_verifies_only_segments_after_the_last_roll_flush(broker):
    # A roll schedules a flush of the sealed segment; the housekeeper (about
    # once a second) fsyncs it and moves the recovery point past it. After a
    # SIGKILL only the segments from the recovery point on are verified, so
    # a corrupt byte in an older, flushed segment cuts nothing off (before,
    # the point moved only on a clean stop: everything was rescanned and the
    # corrupt batch cut off every later segment).
    import glob
    import os
    from test_produce_fetch import consume_n, create_topic, producer, produce_all

    topic = "rolled"
    create_topic(broker, topic, config={"segment.bytes": "8192"})
    p = producer(broker, **{"batch.num.messages": 5, "linger.ms": 1})
    n = 400
    reports = produce_all(p, topic, [{"value": b"%05d" % i + b"v" * 195} for i in range(n)])
    assert all(err is None for err, _ in reports)
    pdir = os.path.join(broker.data_dir, "logs", topic + "-0")
    segs = sorted(glob.glob(os.path.join(pdir, "*.log")))
    assert len(segs) >= 5, segs
    last_base = int(os.path.basename(segs[-1])[:20])
    ckpt = os.path.join(pdir, "log.checkpoint")

    def recovery_point():
        try:
            with open(ckpt) as f:
                return int(f.read().split("\n")[1].split()[0])
        except (OSError, IndexError, ValueError):
            return -1

    deadline = time.time() + 5
    while recovery_point() < last_base and time.time() < deadline:
        time.sleep(0.1)
    rp = recovery_point()
    broker.kill9()
    with open(segs[0], "r+b") as f:  # a payload byte of the first segment's second batch
        f.seek(1500)
        x = f.read(1)
        f.seek(1500)
        f.write(bytes([x[0] ^ 0x10]))
    broker.start()
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "hw"})
    hw = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    c.close()
    assert hw == n, "high watermark %d after the restart, %d records were written" % (hw, n)
    assert rp == last_base, "the roll flush did not move the recovery point within 5 s"
    second = int(os.path.basename(segs[1])[:20])
    got = consume_n(broker, topic, n - second, offset=second)
    assert [m.value()[:5] for m in got] == [b"%05d" % i for i in range(second, n)]
    log = broker.log()
    assert "%s: unclean start: verifying 1 of %d segment(s)" % (pdir, len(segs)) in log, log[-3000:]
