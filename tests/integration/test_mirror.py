"""`sluice mirror` between two real single-node Sluice brokers.

The main test mirrors several topics with several partitions while a bounded
producer writes (keys, values, headers with a null value, explicit
timestamps), SIGKILLs the mirror at random moments and restarts it, picks up
a topic created and a partition added while it runs, then compares source
and target record by record: every source record is on the target in the
same partition number with the same key, value, headers and timestamp, in
source order once duplicates are dropped; duplicates are counted and
printed. A consumer group that consumed part of the source is moved to the
target with the synced offsets and must resume without skipping a record.
Checkpoints are read back with `sluice mirror dump` (tools/mm2.c) and with an
independent decoder of the layout documented in docs/mirroring.md.

SLUICE_MIRROR_KILLS sets the number of kills (default 3; `make soak` runs 10).
"""
import json
import os
import random
import re
import signal
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from conftest import BUILD

SLUICE = os.path.join(BUILD, "sluice")
KILLS = int(os.environ.get("SLUICE_MIRROR_KILLS", "3"))


class Mirror:
    """A `sluice mirror` process; output kept in a file, stopped by PID."""

    def __init__(self, tmp_path, src, dst, extra=(), aliases=("A", "B")):
        tmp_path = os.path.join(str(tmp_path), "%s-%s" % aliases)
        os.makedirs(tmp_path, exist_ok=True)
        self.src_props = os.path.join(tmp_path, "source.properties")
        self.dst_props = os.path.join(tmp_path, "target.properties")
        with open(self.src_props, "w") as f:
            f.write("# source cluster\nbootstrap.servers=%s\n" % src.bootstrap)
        with open(self.dst_props, "w") as f:
            f.write("bootstrap.servers = %s\n" % dst.bootstrap)
        self.log_path = os.path.join(tmp_path, "mirror.log")
        self.args = [SLUICE, "mirror", "--source", self.src_props, "--target", self.dst_props,
                     "--source-alias", aliases[0], "--target-alias", aliases[1], "--status-interval-ms", "1000",
                     "--timeout-ms", "5000"] + list(extra)
        self.proc = None
        self.starts = 0

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        self.starts += 1

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=5)
        self.log.close()
        return rc

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


@pytest.fixture
def two_brokers(broker_factory):
    src = broker_factory(name="src")
    dst = broker_factory(name="dst")
    return src, dst


def admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap})


def create_topics(b, specs, configs=None):
    a = admin(b)  # kept alive until the futures resolve
    fs = a.create_topics([NewTopic(t, n, 1, config=(configs or {}).get(t, {})) for t, n in specs])
    for f in fs.values():
        f.result(15)


def partitions_of(b, topic):
    md = admin(b).list_topics(timeout=10)
    t = md.topics.get(topic)
    return None if t is None or t.error else len(t.partitions)


def watermarks(b, topic, nparts):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "wm-probe"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(nparts)]
    finally:
        c.close()


def read_all(b, topic, nparts, timeout=60):
    """Every record of topic (all partitions, to the current end), as
    {partition: [(offset, key, value, headers, timestamp)]}. kafka-python
    reads them (confluent_kafka 1.7 crashes on a null header value)."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as KTP
    ends = {p: hi for p, (lo, hi) in enumerate(watermarks(b, topic, nparts))}
    out = {p: [] for p in range(nparts)}
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, api_version=(2, 5, 0),
                      max_partition_fetch_bytes=4 << 20)
    tps = [KTP(topic, p) for p in range(nparts) if ends[p] > 0]
    c.assign(tps)
    for tp in tps:
        c.seek(tp, 0)
    deadline = time.time() + timeout
    left = len(tps)
    try:
        while left and time.time() < deadline:
            for tp, recs in c.poll(timeout_ms=500, max_records=10000).items():
                for m in recs:
                    if m.offset >= ends[tp.partition]:
                        continue
                    out[tp.partition].append((m.offset, m.key, m.value, tuple(m.headers or ()), m.timestamp))
                    if m.offset == ends[tp.partition] - 1:
                        left -= 1
    finally:
        c.close()
    assert left == 0, "could not read %s to its end within %ds" % (topic, timeout)
    return out


def committed(b, group, topic, nparts):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(nparts)],
                                                              timeout=10)}
    finally:
        c.close()


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.25)
    raise AssertionError("timed out waiting for " + (what() if callable(what) else what))


class LiveProducer(threading.Thread):
    """Writes `total` records spread over topics/partitions at about `rate`
    records/s; each value is unique ("<topic>/<partition>/<seq>")."""

    def __init__(self, b, targets, total, rate, seq0=0):
        super().__init__(daemon=True)
        self.p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "acks": "all",
                           "topic.metadata.refresh.interval.ms": 500})
        self.targets = targets  # list of (topic, partition) shared with the test (it may append)
        self.total, self.rate, self.sent, self.errors, self.seq0 = total, rate, 0, [], seq0

    def cb(self, err, msg):
        if err:
            self.errors.append(str(err))

    def run(self):
        start = time.time()
        for n in range(self.total):
            i = self.seq0 + n
            topic, part = self.targets[i % len(self.targets)]
            hdrs = [("seq", str(i).encode()), ("empty", None), ("dup", b"1"), ("dup", b"2")]
            key = None if i % 7 == 0 else ("k%d" % (i % 101)).encode()
            for attempt in range(100):  # a partition created a moment ago may not be known yet
                try:
                    self.p.produce(topic, value=("%s/%d/%d" % (topic, part, i)).encode(), key=key,
                                   partition=part, headers=hdrs, timestamp=1700000000000 + i, on_delivery=self.cb)
                    break
                except KafkaException as e:
                    if attempt == 99:
                        self.errors.append(str(e))
                        return
                    self.p.poll(0.1)
            self.sent += 1
            if n % 200 == 0:
                self.p.poll(0)
                ahead = self.sent / self.rate - (time.time() - start)
                if ahead > 0:
                    time.sleep(ahead)
        self.p.flush(30)


def compare(src, dst, stopic, dtopic, nparts):
    """Record-by-record comparison; returns the number of duplicates."""
    s = read_all(src, stopic, nparts)
    d = read_all(dst, dtopic, nparts)
    dups = 0
    for p in range(nparts):
        want = [r[1:] for r in s[p]]
        seen, got = set(), []
        for r in d[p]:
            body = r[1:]
            if body in seen:
                dups += 1
                continue
            seen.add(body)
            got.append(body)
        missing = [w for w in want if w not in seen]
        assert not missing, "%s-%d: %d source records missing on the target, first %r" % (
            stopic, p, len(missing), missing[:1])
        assert got == want, "%s-%d: target order (duplicates dropped) differs from the source" % (stopic, p)
    return dups


def test_mirror_under_live_producer_with_kills(two_brokers, tmp_path):
    src, dst = two_brokers
    rnd = random.Random(int(os.environ.get("SLUICE_SEED", str(int(time.time())))))
    topics = [("orders", 3), ("payments", 2), ("events", 4)]
    create_topics(src, topics + [("skipped", 1), ("B.came-from-b", 1)],
                  configs={"orders": {"retention.ms": "123456789", "cleanup.policy": "delete"}})
    targets = [(t, p) for t, n in topics for p in range(n)]
    mirror = Mirror(tmp_path, src, dst, ["--topics", "orders,payments,events,late.*", "--topics-exclude", "skipped",
                                         "--set", "refresh.topics.interval.seconds=1",
                                         "--set", "sync.topic.configs.interval.seconds=1",
                                         "--set", "emit.checkpoints.interval.seconds=1",
                                         "--set", "sync.group.offsets.enabled=true",
                                         "--set", "sync.group.offsets.interval.seconds=1"])
    # A backlog first, so the early kills land while the mirror copies at
    # full speed (most of its time in flight, unacknowledged).
    pre = LiveProducer(src, [("events", p) for p in range(4)], total=80000, rate=10 ** 7, seq0=10 ** 6)
    pre.run()
    assert not pre.errors and pre.sent == pre.total
    prod = LiveProducer(src, targets, total=24000, rate=3000)
    prod.start()
    mirror.start()
    try:
        # A topic created and a partition added while the mirror runs.
        time.sleep(1.5)
        create_topics(src, [("late.topic", 2)])
        targets += [("late.topic", 0), ("late.topic", 1)]
        a = admin(src)
        for f in a.create_partitions([NewPartitions("payments", 3)]).values():
            f.result(15)
        targets.append(("payments", 2))
        # A config changed on the source while running reaches the target.
        for f in a.alter_configs([ConfigResource("topic", "events", set_config={"retention.ms": "555555"})]).values():
            f.result(15)
        # SIGKILL the mirror at random moments while records flow; restart.
        for _ in range(KILLS):
            time.sleep(rnd.uniform(0.2, 1.5))
            mirror.kill9()
            time.sleep(rnd.uniform(0.0, 0.5))
            mirror.start()
        prod.join(timeout=90)
        assert not prod.is_alive() and not prod.errors and prod.sent == prod.total, prod.errors[:3]

        # A consumer group that consumed part of "orders" on the source commits
        # its positions (somewhere inside each partition).
        ends = [hi for lo, hi in watermarks(src, "orders", 3)]
        app_upstream = {p: rnd.randrange(1, ends[p]) for p in range(3)}
        g = Consumer({"bootstrap.servers": src.bootstrap, "group.id": "app", "enable.auto.commit": False})
        g.commit(offsets=[TopicPartition("orders", p, app_upstream[p]) for p in range(3)], asynchronous=False)
        g.close()

        # Everything copied: the mirror's committed positions reach the end.
        final = {"orders": 3, "payments": 3, "events": 4, "late.topic": 2}

        def caught_up():
            for t, n in final.items():
                ends = [hi for lo, hi in watermarks(src, t, n)]
                c = committed(src, "sluice-mirror-A-B", t, n)
                if any(c.get(p, -1) < ends[p] for p in range(n)):
                    return False
            return True
        wait_for(caught_up, 60, lambda: "the mirror to catch up; its output:\n" + mirror.output()[-3000:])
        # ... and the group's offsets synced (translated) to the target.
        wait_for(lambda: all(v >= 0 for v in committed(dst, "app", "A.orders", 3).values()), 30,
                 "group offsets synced to the target")
    finally:
        rc = mirror.stop()
    out = mirror.output()
    assert rc == 0, "mirror exited %r on SIGTERM; output:\n%s" % (rc, out[-3000:])
    assert "stopped;" in out

    # Topics: named <alias>.<topic>, same partition counts, configs synced;
    # the excluded topic and the one that came from the target are not mirrored.
    for t, n in final.items():
        assert partitions_of(dst, "A." + t) == n, t
    assert partitions_of(dst, "A.skipped") is None
    assert partitions_of(dst, "A.B.came-from-b") is None
    a = admin(dst)
    res = a.describe_configs([ConfigResource("topic", "A.orders")])
    cfg = list(res.values())[0].result(10)
    assert cfg["retention.ms"].value == "123456789"
    cfg = list(a.describe_configs([ConfigResource("topic", "A.events")]).values())[0].result(10)
    assert cfg["retention.ms"].value == "555555"

    dups = 0
    for t, n in final.items():
        dups += compare(src, dst, t, "A." + t, n)
    print("mirror: %d kills, %d duplicate records on the target (at-least-once)" % (KILLS, dups))

    # Failover: a consumer of group "app" on the target resumes from the
    # synced offsets and sees every record the group had not consumed.
    down = committed(dst, "app", "A.orders", 3)
    src_recs = read_all(src, "orders", 3)
    t = Consumer({"bootstrap.servers": dst.bootstrap, "group.id": "app", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    t.assign([TopicPartition("A.orders", p, down[p]) for p in range(3)])
    seen = set()
    ends = [hi for lo, hi in watermarks(dst, "A.orders", 3)]
    left = {p for p in range(3) if down[p] < ends[p]}
    deadline = time.time() + 30
    while left and time.time() < deadline:
        for m in t.consume(10000, 0.5):
            if m.error():
                continue
            seen.add(m.value())
            if m.offset() >= ends[m.partition()] - 1:
                left.discard(m.partition())
    t.close()
    reread = 0
    for p in range(3):
        unconsumed = [r[2] for r in src_recs[p] if r[0] >= app_upstream[p]]
        skipped = [v for v in unconsumed if v not in seen]
        assert not skipped, "partition %d: failover skipped %d records, first %r" % (p, len(skipped), skipped[0])
        reread += len([r for r in src_recs[p] if r[0] < app_upstream[p] and r[2] in seen])
    print("failover: the group re-reads %d records it had consumed on the source" % reread)

    # Checkpoints, read back with Sluice's decoder and an independent one.
    dump = subprocess.run([SLUICE, "mirror", "dump", "--bootstrap-server", dst.bootstrap,
                           "--topic", "A.checkpoints.internal"], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    cps = [json.loads(line) for line in dump.stdout.splitlines()]
    latest = {}
    for c in cps:
        assert c["type"] == "checkpoint"
        latest[(c["group"], c["topic"], c["topicPartition"])] = c
    for p in range(3):
        c = latest[("app", "A.orders", p)]
        assert c["upstreamOffset"] == app_upstream[p]
        assert c["downstreamOffset"] <= down[p] or c["downstreamOffset"] == down[p]
    raw = read_all(dst, "A.checkpoints.internal", 1)[0]
    for off, key, value, hdrs, ts in raw:
        (glen,) = struct.unpack_from(">h", key, 0)
        (tlen,) = struct.unpack_from(">h", key, 2 + glen)
        (part,) = struct.unpack_from(">i", key, 4 + glen + tlen)
        assert len(key) == 8 + glen + tlen
        version, up, dn, mlen = struct.unpack_from(">hqqh", value, 0)
        assert version == 0 and len(value) == 20 + mlen
        if key[2:2 + glen] == b"app" and key[4 + glen:4 + glen + tlen] == b"A.orders":
            assert up <= app_upstream[part] and dn <= up + 100000
    # Heartbeats on the target, offset syncs on the source, both decodable.
    for b, topic, kind in ((dst, "heartbeats", "heartbeat"), (src, "mm2-offset-syncs.B.internal", "offset-sync")):
        r = subprocess.run([SLUICE, "mirror", "dump", "--bootstrap-server", b.bootstrap, "--topic", topic],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        recs = [json.loads(line) for line in r.stdout.splitlines()]
        assert recs and all(x["type"] == kind for x in recs), recs[:2]
    hb = [json.loads(line) for line in subprocess.run(
        [SLUICE, "mirror", "dump", "--bootstrap-server", dst.bootstrap, "--topic", "heartbeats"],
        capture_output=True, text=True, timeout=60).stdout.splitlines()]
    assert hb[-1]["sourceClusterAlias"] == "A" and hb[-1]["targetClusterAlias"] == "B"


@pytest.mark.parametrize("eos", [False, True], ids=["at-least-once", "exactly-once"])
@pytest.mark.parametrize("side", ["target", "source"])
def test_mirror_survives_outage(two_brokers, tmp_path, side, eos):
    """One side goes down mid-copy: the mirror keeps running (backing off
    and retrying), and once that side is back every record arrives (in
    exactly-once mode, once each for read_committed: the restarted
    session's init_transactions settles the transaction the outage cut)."""
    src, dst = two_brokers
    create_topics(src, [("t", 2)])

    def produce(lo, hi):
        p = Producer({"bootstrap.servers": src.bootstrap, "linger.ms": 5})
        for i in range(lo, hi):
            p.produce("t", value=b"v%d" % i, partition=i % 2)
        p.flush(30)
    produce(0, 4000)
    mirror = Mirror(tmp_path, src, dst, ["--set", "flush.timeout.ms=3000",
                                         "--set", "emit.checkpoints.enabled=false"] +
                    (["--exactly-once"] if eos else []))
    mirror.start()
    try:
        wait_for(lambda: partitions_of(dst, "A.t") == 2, 20, "the target topic")
        if side == "target":
            dst.stop()
            produce(4000, 8000)
            time.sleep(4)
            assert mirror.proc.poll() is None, "the mirror exited while the target was down"
            dst.start()
        else:
            src.stop()
            time.sleep(4)
            assert mirror.proc.poll() is None, "the mirror exited while the source was down"
            src.start()
            produce(4000, 8000)

        def done():
            ends = [hi for lo, hi in watermarks(src, "t", 2)]
            c = committed(src, "sluice-mirror-A-B", "t", 2)
            return all(c.get(q, -1) >= ends[q] for q in range(2))
        wait_for(done, 60, lambda: "the mirror to catch up after the outage:\n" + mirror.output()[-2000:])
    finally:
        rc = mirror.stop()
    assert rc == 0
    if side == "target":
        assert "retrying in" in mirror.output(), mirror.output()[-2000:]
    if eos:  # (compare() reads with kafka-python 2.0, which returns transaction markers as records)
        assert_exactly_once(src, dst, "t", "A.t", 2, 8000)
    else:
        compare(src, dst, "t", "A.t", 2)


def test_mirror_killed_while_target_frozen_loses_nothing(two_brokers, tmp_path):
    """The mirror's progress is committed only after the target acknowledged:
    with the target frozen (SIGSTOP) the mirror keeps reading the source but
    cannot get acknowledgements; SIGKILL it then, thaw the target, restart
    the mirror: every record still arrives."""
    src, dst = two_brokers
    create_topics(src, [("t", 3)])
    p = Producer({"bootstrap.servers": src.bootstrap, "linger.ms": 5})

    def produce(lo, hi):
        for i in range(lo, hi):
            p.produce("t", value=b"v%d" % i, key=b"k%d" % i, partition=i % 3)
        p.flush(30)
    produce(0, 3000)
    mirror = Mirror(tmp_path, src, dst, ["--set", "emit.checkpoints.enabled=false"])
    mirror.start()
    try:
        def copied(n):
            return lambda: sum(c for c in committed(src, "sluice-mirror-A-B", "t", 3).values() if c > 0) >= n
        wait_for(copied(3000), 30, "the first records to be copied")
        os.kill(dst.proc.pid, signal.SIGSTOP)
        try:
            produce(3000, 9000)
            time.sleep(2)  # the mirror reads them and waits for acknowledgements
            mirror.kill9()
        finally:
            os.kill(dst.proc.pid, signal.SIGCONT)
        mirror.start()
        wait_for(copied(9000), 60, lambda: "the mirror to catch up; output:\n" + mirror.output()[-2000:])
        time.sleep(1)
    finally:
        rc = mirror.stop()
    compare(src, dst, "t", "A.t", 3)
    assert rc == 0


def test_active_active_pair_does_not_loop(two_brokers, tmp_path):
    """A->B and B->A at once: each side's own topics reach the other under
    the other's alias, and nothing comes back (no B.A.x, no A.B.y, no
    A.B.heartbeats)."""
    a, b = two_brokers
    create_topics(a, [("x", 2)])
    create_topics(b, [("y", 2)])
    for broker, topic in ((a, "x"), (b, "y")):
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        for i in range(500):
            p.produce(topic, value=b"%s-%d" % (topic.encode(), i), partition=i % 2)
        p.flush(30)
    opts = ["--set", "refresh.topics.interval.seconds=1", "--set", "emit.checkpoints.enabled=false"]
    ab = Mirror(tmp_path, a, b, opts, aliases=("A", "B"))
    ba = Mirror(tmp_path, b, a, opts, aliases=("B", "A"))
    ab.start()
    ba.start()
    try:
        def both_there():
            return partitions_of(b, "A.x") == 2 and partitions_of(a, "B.y") == 2 and \
                partitions_of(b, "A.heartbeats") == 1 and partitions_of(a, "B.heartbeats") == 1
        wait_for(both_there, 30, "each side's topics on the other")
        time.sleep(4)  # several refreshes: a loop would have created its topics by now
    finally:
        rc1, rc2 = ab.stop(), ba.stop()
    assert rc1 == 0 and rc2 == 0
    names_a = set(admin(a).list_topics(timeout=10).topics)
    names_b = set(admin(b).list_topics(timeout=10).topics)
    mirrored_a = {t for t in names_a if not t.startswith("__") and not t.endswith(".internal")}
    mirrored_b = {t for t in names_b if not t.startswith("__") and not t.endswith(".internal")}
    assert mirrored_a == {"x", "heartbeats", "B.y", "B.heartbeats"}, mirrored_a
    assert mirrored_b == {"y", "heartbeats", "A.x", "A.heartbeats"}, mirrored_b
    compare(a, b, "x", "A.x", 2)
    compare(b, a, "y", "B.y", 2)


def test_identity_policy_keeps_names(two_brokers, tmp_path):
    """IdentityReplicationPolicy: topics keep their names on the target
    (heartbeats excepted, which are still prefixed)."""
    src, dst = two_brokers
    create_topics(src, [("same", 3)])
    p = Producer({"bootstrap.servers": src.bootstrap, "linger.ms": 5})
    for i in range(900):
        p.produce("same", value=b"v%d" % i, key=b"k%d" % i, partition=i % 3, headers=[("h", b"%d" % i)])
    p.flush(30)
    mirror = Mirror(tmp_path, src, dst, ["--replication-policy", "identity", "--topics", "same,heartbeats"])
    mirror.start()
    try:
        def done():
            c = committed(src, "sluice-mirror-A-B", "same", 3)
            return sum(v for v in c.values() if v > 0) >= 900
        wait_for(done, 30, lambda: "the copy; output:\n" + mirror.output()[-2000:])
    finally:
        rc = mirror.stop()
    assert rc == 0
    assert partitions_of(dst, "A.same") is None
    compare(src, dst, "same", "same", 3)


def test_mirror_usage_errors(tmp_path):
    def run(*a):
        return subprocess.run([SLUICE, "mirror"] + list(a), capture_output=True, text=True, timeout=30)
    r = run()
    assert r.returncode == 2 and "--source and --target are required" in r.stderr
    props = tmp_path / "c.properties"
    props.write_text("bootstrap.servers=127.0.0.1:1\n")
    r = run("--source", str(props), "--target", str(props), "--set", "no.such.setting=1")
    assert r.returncode == 2 and "unknown setting" in r.stderr
    r = run("--source", str(props), "--target", str(props), "--source-alias", "X", "--target-alias", "X")
    assert r.returncode == 2 and "differ" in r.stderr
    r = run("--source", str(props), "--target", str(props), "--topics", "(")
    assert r.returncode == 2 and "regular expression" in r.stderr
    empty = tmp_path / "empty.properties"
    empty.write_text("# nothing\n")
    r = run("--source", str(empty), "--target", str(props))
    assert r.returncode == 2 and "bootstrap.servers" in r.stderr
    r = run("--help")
    assert r.returncode == 0 and "Examples:" in r.stdout


# ---- exactly-once (exactly.once.source.support) ---------------------------------------------------------------

def read_committed_all(b, topic, nparts, want, timeout=60, isolation="read_committed"):
    """Every record of topic as a read_committed consumer sees it, as
    {partition: [(key, value, headers, timestamp)]}: reads until `want`
    records arrived, then 1.5 s more so a duplicate would show. (confluent
    Kafka reads these: the exactly-once tests' headers have no null value.)"""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "eos-reader", "enable.auto.commit": False,
                  "isolation.level": isolation, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(nparts)])
    out = {p: [] for p in range(nparts)}
    got, quiet_until, deadline = 0, None, time.time() + timeout
    try:
        while time.time() < deadline:
            for m in c.consume(10000, 0.3):
                if m.error():
                    continue
                out[m.partition()].append((m.key(), m.value(), tuple(m.headers() or ()), m.timestamp()[1]))
                got += 1
            if got >= want and quiet_until is None:
                quiet_until = time.time() + 1.5
            if quiet_until is not None and time.time() > quiet_until:
                break
    finally:
        c.close()
    return out


def produce_eos_records(b, topic, nparts, total, rate, seq0=0):
    """A LiveProducer-like writer without null header values."""
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "acks": "all"})
    errors = []
    start = time.time()
    for n in range(total):
        i = seq0 + n
        key = None if i % 9 == 0 else ("k%d" % (i % 37)).encode()
        p.produce(topic, value=("%s/%d" % (topic, i)).encode(), key=key, partition=i % nparts,
                  headers=[("seq", str(i).encode()), ("dup", b"1"), ("dup", b"2")], timestamp=1700000000000 + i,
                  on_delivery=lambda err, msg: err and errors.append(str(err)))
        if n % 200 == 0:
            p.poll(0)
            ahead = n / rate - (time.time() - start)
            if ahead > 0:
                time.sleep(ahead)
    p.flush(30)
    assert not errors, errors[:3]


def source_records(b, topic, nparts, want):
    return read_committed_all(b, topic, nparts, want)


def assert_exactly_once(src, dst, stopic, dtopic, nparts, total):
    s = source_records(src, stopic, nparts, total)
    assert sum(len(v) for v in s.values()) == total
    d = read_committed_all(dst, dtopic, nparts, total)
    for p in range(nparts):
        if d[p] != s[p]:
            seen = set()
            dups = [r for r in d[p] if r in seen or seen.add(r)]
            missing = [r for r in s[p] if r not in seen]
            raise AssertionError("%s-%d: %d records on the target, %d on the source, %d duplicates, %d missing; "
                                 "first duplicate %r, first missing %r" % (
                                     dtopic, p, len(d[p]), len(s[p]), len(dups), len(missing), dups[:1],
                                     missing[:1]))


def target_positions_reach_end(src, dst, stopic, dtopic, nparts):
    ends = [hi for lo, hi in watermarks(src, stopic, nparts)]
    c = committed(dst, "sluice-mirror-A-B", dtopic, nparts)
    return all(c.get(p, -1) >= ends[p] for p in range(nparts))


def test_mirror_exactly_once_with_kills(two_brokers, tmp_path):
    """exactly.once.source.support=enabled: SIGKILLed at random moments while
    copying and restarted, then a second instance started beside the running
    one (it fences it: the first stops with a clear message, exit 1). A
    read_committed consumer of the target sees every source record exactly
    once, in order per partition, with its key, value, headers and
    timestamp; the positions are the mirror group's offsets on the target."""
    src, dst = two_brokers
    rnd = random.Random(int(os.environ.get("SLUICE_SEED", str(int(time.time())))))
    nparts, backlog, live = 3, 8000, 12000
    create_topics(src, [("eo", nparts)])
    produce_eos_records(src, "eo", nparts, backlog, rate=10 ** 7)
    mirror = Mirror(tmp_path, src, dst, ["--topics", "eo", "--exactly-once",
                                         "--set", "emit.checkpoints.interval.seconds=1"])
    # The writer lasts through every kill and the fence (about 1.5 s each).
    rate = live / ((KILLS + 4) * 1.5)
    writer = threading.Thread(target=produce_eos_records, args=(src, "eo", nparts, live, rate, backlog),
                              daemon=True)
    writer.start()
    mirror.start()
    second = None

    def copying():
        """Waits until the running mirror commits a transaction (its start
        takes a moment: fencing, topic checks, positions)."""
        before = sum(max(v, 0) for v in committed(dst, "sluice-mirror-A-B", "A.eo", nparts).values())
        wait_for(lambda: sum(max(v, 0) for v in committed(dst, "sluice-mirror-A-B", "A.eo", nparts).values())
                 > before, 30, lambda: "a transaction; output:\n" + mirror.output()[-3000:])
    try:
        for _ in range(KILLS):
            copying()
            time.sleep(rnd.uniform(0.0, 0.4))
            mirror.kill9()
            time.sleep(rnd.uniform(0.0, 0.3))
            mirror.start()
        copying()
        second = Mirror(tmp_path, src, dst, list(mirror.args[mirror.args.index("--topics"):]))
        second.log_path = mirror.log_path + ".second"
        second.start()
        try:
            rc = mirror.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("the fenced mirror did not stop; output:\n" + mirror.output()[-3000:])
        mirror.log.close()
        assert rc == 1, "fenced mirror exited %r; output:\n%s" % (rc, mirror.output()[-3000:])
        assert "fenced transactional id 'sluice-mirror-A-B'" in mirror.output(), mirror.output()[-3000:]
        # Every restart took its positions from the target (the first
        # transactions may have held only some partitions).
        assert len(re.findall(r"positions of [1-9]\d* partitions from the target", mirror.output())) == KILLS
        writer.join(timeout=60)
        assert not writer.is_alive()
        wait_for(lambda: target_positions_reach_end(src, dst, "eo", "A.eo", nparts), 60,
                 lambda: "the mirror to catch up (source ends %r, target positions %r); output:\n%s" % (
                     watermarks(src, "eo", nparts), committed(dst, "sluice-mirror-A-B", "A.eo", nparts),
                     second.output()[-3000:]))
    finally:
        rc2 = second.stop() if second else None
        mirror.stop()
    out2 = second.output()
    assert rc2 == 0, "mirror exited %r on SIGTERM; output:\n%s" % (rc2, out2[-3000:])
    assert re.search(r"positions of [1-9]\d* partitions from the target", out2), out2[-3000:]
    assert_exactly_once(src, dst, "eo", "A.eo", nparts, backlog + live)
    # Copies of transactions the kills and the fence aborted are in the log:
    # read_uncommitted sees them, read_committed did not.
    unc = read_committed_all(dst, "A.eo", nparts, backlog + live, isolation="read_uncommitted")
    aborted = sum(len(v) for v in unc.values()) - (backlog + live)
    print("exactly-once: %d aborted copies on the target, hidden from read_committed" % aborted)
    # The source group follows (for lag tools) and checkpoints still flow.
    ends = [hi for lo, hi in watermarks(src, "eo", nparts)]
    assert committed(src, "sluice-mirror-A-B", "eo", nparts) == {p: ends[p] for p in range(nparts)}
    print("exactly-once: %d kills, one fence, %d records, no duplicates" % (KILLS, backlog + live))


def test_mirror_exactly_once_refused_by_target(broker_factory, tmp_path):
    """A target that denies WRITE on the mirror's transactional id: with
    exactly.once.source.support=enabled the mirror stops at once (exit 1)
    with a message naming the id and the way out; with auto it copies
    at-least-once instead."""
    from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, KafkaAdminClient,
                             ResourcePattern, ResourceType)
    src = broker_factory(name="src")
    dst = broker_factory({"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                          "allow.everyone.if.no.acl.found": "true"}, name="dst")
    # (kafka-python: `sluice acls --transactional-id` needs a newer librdkafka than Debian's 2.0.)
    a = KafkaAdminClient(bootstrap_servers=dst.bootstrap, request_timeout_ms=10000)
    try:
        res = a.create_acls([ACL(principal="User:ANONYMOUS", host="*", operation=ACLOperation.WRITE,
                                 permission_type=ACLPermissionType.DENY,
                                 resource_pattern=ResourcePattern(ResourceType.TRANSACTIONAL_ID, "sluice-mirror-A-B",
                                                                  ACLResourcePatternType.LITERAL))])
        assert len(res["succeeded"]) == 1, res
    finally:
        a.close()
    create_topics(src, [("r", 1)])
    produce_eos_records(src, "r", 1, 500, rate=10 ** 7)
    m = Mirror(tmp_path, src, dst, ["--topics", "r", "--exactly-once"])
    m.start()
    try:
        rc = m.proc.wait(timeout=60)
    finally:
        m.stop()
    out = m.output()
    assert rc == 1, "exit %r; output:\n%s" % (rc, out[-3000:])
    assert "refuses transactions for transactional id 'sluice-mirror-A-B'" in out, out[-3000:]
    assert "exactly.once.source.support=disabled" in out
    assert "records copied" in out and "stopped (exactly-once could not go on)" in out

    m = Mirror(tmp_path, src, dst, ["--topics", "r", "--set", "exactly.once.source.support=auto"])
    m.start()
    try:
        wait_for(lambda: sum(v for v in committed(src, "sluice-mirror-A-B", "r", 1).values() if v > 0) >= 500, 60,
                 lambda: "the at-least-once copy; output:\n" + m.output()[-3000:])
    finally:
        rc = m.stop()
    assert rc == 0
    assert "exactly.once.source.support=auto: copying at-least-once" in m.output()
    assert len(read_committed_all(dst, "A.r", 1, 500)[0]) >= 500


def test_mirror_exactly_once_usage(tmp_path):
    props = tmp_path / "c.properties"
    props.write_text("bootstrap.servers=127.0.0.1:1\n")

    def run(*a):
        return subprocess.run([SLUICE, "mirror", "--source", str(props), "--target", str(props)] + list(a),
                              capture_output=True, text=True, timeout=30)
    r = run("--set", "exactly.once.source.support=preparing")
    assert r.returncode == 2 and "expected enabled, disabled or auto" in r.stderr
    r = run("--exactly-once", "--set", "flush.timeout.ms=60000", "--set", "transaction.timeout.ms=30000")
    assert r.returncode == 2 and "must exceed flush.timeout.ms" in r.stderr
    r = subprocess.run([SLUICE, "mirror", "--help"], capture_output=True, text=True, timeout=30)
    assert "--exactly-once" in r.stdout and "exactly.once.source.support" in r.stdout


def test_mirror_exactly_once_aborts_and_rewinds(broker_factory, tmp_path):
    """An abortable error: the target refuses the positions (READ on the
    mirror's group denied, so AddOffsetsToTxn fails). Every cycle's
    transaction is aborted and the consumer rewound: nothing reaches
    read_committed consumers and no position is committed. Once the ACL is
    gone the same records are copied again, each exactly once."""
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, ResourcePattern, ResourcePatternFilter, ResourceType)
    src = broker_factory(name="src")
    dst = broker_factory({"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                          "allow.everyone.if.no.acl.found": "true"}, name="dst")
    group = ResourcePattern(ResourceType.GROUP, "sluice-mirror-A-B", ACLResourcePatternType.LITERAL)
    a = KafkaAdminClient(bootstrap_servers=dst.bootstrap, request_timeout_ms=10000)
    try:
        # DESCRIBE stays allowed, so the mirror can read its (empty) positions.
        res = a.create_acls([ACL(principal="User:ANONYMOUS", host="*", operation=ACLOperation.READ,
                                 permission_type=ACLPermissionType.DENY, resource_pattern=group),
                             ACL(principal="User:ANONYMOUS", host="*", operation=ACLOperation.DESCRIBE,
                                 permission_type=ACLPermissionType.ALLOW, resource_pattern=group)])
        assert len(res["succeeded"]) == 2, res
        nparts, total = 2, 3000
        create_topics(src, [("ab", nparts)])
        produce_eos_records(src, "ab", nparts, total, rate=10 ** 7)
        m = Mirror(tmp_path, src, dst, ["--topics", "ab", "--exactly-once"])
        m.start()
        try:
            wait_for(lambda: m.output().count("transaction aborted") >= 3, 60,
                     lambda: "aborted transactions; output:\n" + m.output()[-3000:])
            assert m.proc.poll() is None, m.output()[-3000:]
            assert all(v < 0 for v in committed(dst, "sluice-mirror-A-B", "A.ab", nparts).values())
            seen = read_committed_all(dst, "A.ab", nparts, 1, timeout=3)
            assert sum(len(v) for v in seen.values()) == 0, "aborted copies visible to read_committed"
            out = a.delete_acls([ACLFilter(principal="User:ANONYMOUS", host=None, operation=ACLOperation.ANY,
                                           permission_type=ACLPermissionType.ANY,
                                           resource_pattern=ResourcePatternFilter(
                                               ResourceType.GROUP, "sluice-mirror-A-B",
                                               ACLResourcePatternType.LITERAL))])
            assert out[0][2].errno == 0 and len(out[0][1]) == 2, out
            wait_for(lambda: target_positions_reach_end(src, dst, "ab", "A.ab", nparts), 60,
                     lambda: "the copy after the ACL went; output:\n" + m.output()[-3000:])
        finally:
            rc = m.stop()
        assert rc == 0, m.output()[-3000:]
        assert "sending the positions to the transaction" in m.output()
        assert_exactly_once(src, dst, "ab", "A.ab", nparts, total)
    finally:
        a.close()
