"""Consumer groups against a real sluiced: rebalancing with confluent-kafka and
kafka-python members (run as subprocesses so they can be SIGKILLed), exactly
once consumption when committing after processing, static membership,
cooperative-sticky, committed offsets across a broker restart,
auto.offset.reset, and the group admin APIs.

Members use short session timeouts (the broker allows them through
group.min.session.timeout.ms) and the initial rebalance delay is off, so
every test runs in seconds.
"""
import json
import os
import queue
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka import errors as kerrors

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER = os.path.join(HERE, "group_member.py")

FAST = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "offsets.topic.num.partitions": "8",
}


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(FAST)


def create_topic(b, name, partitions):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=10)


def produce(b, topic, partitions, n, tag):
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=("%s-%d" % (tag, i)).encode(), partition=i % partitions)
    assert p.flush(20) == 0


class Member:
    """A group_member.py subprocess and the events it printed."""

    def __init__(self, b, group, topic, client="ck", **opts):
        args = [PY, MEMBER, "--client", client, "--bootstrap", b.bootstrap, "--group", group, "--topic", topic]
        for k, v in opts.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.events = []
        self.q = queue.Queue()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(ev)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def owned(self):
        """Partitions currently owned, replaying assign/revoke events (eager
        protocols revoke everything before assigning, so this also works there)."""
        own = set()
        for ev in self.snapshot():
            if ev["ev"] == "assign":
                own |= set(ev["parts"])
            elif ev["ev"] == "revoke":
                own -= set(ev["parts"])
        return own

    def msgs(self):
        return [(e["p"], e["o"]) for e in self.snapshot() if e["ev"] == "msg"]

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.reader.join(timeout=5)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=5)
        self.reader.join(timeout=5)


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def partitioned(members, n):
    """Every partition owned by exactly one of members (and all owned)."""
    seen = []
    for m in members:
        seen += list(m.owned())
    return sorted(seen) == list(range(n))


def consumed(members):
    out = []
    for m in members:
        out += m.msgs()
    return out


def describe(b, group):
    k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        return k.describe_consumer_groups([group])[0]
    finally:
        k.close()


def stable_members(b, group):
    d = describe(b, group)
    if d.state != "Stable":
        return None
    out = {}
    for m in d.members:
        parts = set()
        for topic, ps in m.member_assignment.assignment:
            parts |= set(ps)
        out[m.member_id] = parts
    return out


def check_exactly_once(members, expected):
    got = consumed(members)
    assert len(got) == len(set(got)), "duplicates: %d of %d" % (len(got) - len(set(got)), len(got))
    assert set(got) == expected


def all_offsets(n_per_part, partitions):
    return {(p, o) for p in range(partitions) for o in range(n_per_part)}


def run_group_flow(b, client_for):
    """3 members, a 4th joins, one is SIGKILLed; all records consumed exactly
    once (committing after processing)."""
    topic, group, P = "orders", "g-" + client_for(0), 6
    create_topic(b, topic, P)
    produce(b, topic, P, 600, "a")
    ms = [Member(b, group, topic, client_for(i)) for i in range(3)]
    try:
        wait_for(lambda: partitioned(ms, P) and all(len(m.owned()) == 2 for m in ms), 30,
                 "3 members to own 2 partitions each")
        wait_for(lambda: len(consumed(ms)) >= 600, 30, "600 records")
        ms.append(Member(b, group, topic, client_for(3)))
        wait_for(lambda: partitioned(ms, P) and all(m.owned() for m in ms), 30, "4 members to share")
        wait_for(lambda: (stable_members(b, group) or {}).keys().__len__() == 4, 20, "Stable with 4")
        produce(b, topic, P, 600, "b")
        wait_for(lambda: len(set(consumed(ms))) >= 1200, 30, "1200 records")
        victim = ms[1]
        lost = victim.owned()
        victim.kill9()
        rest = [m for i, m in enumerate(ms) if i != 1]
        t0 = time.time()
        wait_for(lambda: partitioned(rest, P), 30, "the victim's partitions to move")
        moved_after = time.time() - t0
        assert lost and all(any(p in m.owned() for m in rest) for p in lost)
        assert moved_after < 25
        produce(b, topic, P, 600, "c")
        wait_for(lambda: len(set(consumed(ms))) >= 1800, 30, "1800 records")
        time.sleep(0.5)
        check_exactly_once(ms, all_offsets(300, P))
    finally:
        for m in ms:
            m.stop()


def test_confluent_group_rebalance_kill_exactly_once(gbroker):
    run_group_flow(gbroker, lambda i: "ck")


def test_kafka_python_group_rebalance_kill_exactly_once(gbroker):
    run_group_flow(gbroker, lambda i: "kp")


def test_mixed_clients_in_one_group(gbroker):
    b = gbroker
    topic, group, P = "mixed", "g-mixed", 6
    create_topic(b, topic, P)
    produce(b, topic, P, 300, "m")
    ms = [Member(b, group, topic, "ck"), Member(b, group, topic, "kp"), Member(b, group, topic, "ck")]
    try:
        wait_for(lambda: partitioned(ms, P) and all(m.owned() for m in ms), 40, "mixed members to share")
        wait_for(lambda: len(set(consumed(ms))) >= 300, 30, "300 records")
        time.sleep(0.5)
        check_exactly_once(ms, all_offsets(50, P))
        d = describe(b, group)
        assert d.state == "Stable" and len(d.members) == 3
        assert {m.client_id for m in d.members} >= {"rdkafka"}
    finally:
        for m in ms:
            m.stop()


def test_static_member_restart_does_not_rebalance(gbroker):
    b = gbroker
    topic, group, P = "static", "g-static", 4
    create_topic(b, topic, P)
    a = Member(b, group, topic, "ck", instance_id="inst-a", session_ms=15000)
    c = Member(b, group, topic, "ck", instance_id="inst-c", session_ms=15000)
    try:
        wait_for(lambda: partitioned([a, c], P) and a.owned() and c.owned(), 30, "two static members")
        before_a, before_c = a.owned(), c.owned()
        c_events = len(c.snapshot())
        a.kill9()  # within the session timeout it comes back as the same instance
        a2 = Member(b, group, topic, "ck", instance_id="inst-a", session_ms=15000)
        try:
            wait_for(lambda: a2.owned(), 20, "the restarted static member's assignment")
            assert a2.owned() == before_a
            time.sleep(2)
            new_c = [e for e in c.snapshot()[c_events:] if e["ev"] in ("assign", "revoke")]
            assert new_c == [], "the other member saw a rebalance: %r" % new_c
            assert c.owned() == before_c
            d = describe(b, group)
            assert d.state == "Stable" and len(d.members) == 2
        finally:
            a2.stop()
    finally:
        c.stop()


def test_cooperative_sticky_revokes_only_moved_partitions(gbroker):
    b = gbroker
    topic, group, P = "coop", "g-coop", 6
    create_topic(b, topic, P)
    m1 = Member(b, group, topic, "ck", strategy="cooperative-sticky")
    m2 = None
    try:
        wait_for(lambda: m1.owned() == set(range(P)), 30, "first member to own everything")
        n1 = len(m1.snapshot())
        m2 = Member(b, group, topic, "ck", strategy="cooperative-sticky")
        wait_for(lambda: partitioned([m1, m2], P) and m2.owned(), 40, "cooperative rebalance")
        revokes = [e["parts"] for e in m1.snapshot()[n1:] if e["ev"] == "revoke"]
        revoked = set(p for r in revokes for p in r)
        assert revoked == m2.owned(), (revokes, m2.owned())
        assert len(revoked) == 3
        # The partitions m1 kept were never revoked.
        assert not (revoked & m1.owned())
    finally:
        if m2:
            m2.stop()
        m1.stop()


def test_commit_restart_broker_resume(gbroker):
    b = gbroker
    topic, group, P = "resume", "g-resume", 2
    create_topic(b, topic, P)
    produce(b, topic, P, 100, "r1")
    m = Member(b, group, topic, "ck")
    try:
        wait_for(lambda: len(m.msgs()) >= 100, 30, "first 100")
    finally:
        m.stop()
    produce(b, topic, P, 100, "r2")
    b.restart()
    m2 = Member(b, group, topic, "ck")
    try:
        wait_for(lambda: len(m2.msgs()) >= 100, 40, "the next 100 after the restart")
        time.sleep(0.5)
        got = m2.msgs()
        assert min(o for p, o in got if p == 0) == 50
        assert min(o for p, o in got if p == 1) == 50
        assert set(got) == {(p, o) for p in range(P) for o in range(50, 100)}
    finally:
        m2.stop()
    # The committed offsets survive in __consumer_offsets.
    k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    offs = k.list_consumer_group_offsets(group)
    k.close()
    assert {tp.partition: om.offset for tp, om in offs.items()} == {0: 100, 1: 100}


def consumer(b, group, reset, **extra):
    conf = {"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": reset,
            "enable.auto.commit": False, "session.timeout.ms": 6000}
    conf.update(extra)
    return Consumer(conf)


def test_auto_offset_reset(gbroker):
    b = gbroker
    topic = "reset"
    create_topic(b, topic, 1)
    produce(b, topic, 1, 10, "old")
    # earliest: from offset 0
    c = consumer(b, "g-earliest", "earliest")
    c.subscribe([topic])
    got = []
    deadline = time.time() + 20
    while len(got) < 10 and time.time() < deadline:
        m = c.poll(0.2)
        if m and not m.error():
            got.append(m.offset())
    c.close()
    assert got == list(range(10))
    # latest: only what is produced after the assignment
    c = consumer(b, "g-latest", "latest")
    assigned = []
    c.subscribe([topic], on_assign=lambda cons, ps: assigned.extend(ps))
    deadline = time.time() + 20
    while not assigned and time.time() < deadline:
        c.poll(0.2)
    assert assigned
    # let the position settle at the end
    end = time.time() + 1.5
    while time.time() < end:
        c.poll(0.1)
    produce(b, topic, 1, 3, "new")
    got = []
    deadline = time.time() + 20
    while len(got) < 3 and time.time() < deadline:
        m = c.poll(0.2)
        if m and not m.error():
            got.append(m.value().decode())
    c.close()
    assert got == ["new-0", "new-1", "new-2"]
    # none: no committed offset is an error
    c = consumer(b, "g-none", "error")
    c.subscribe([topic])
    err = None
    deadline = time.time() + 20
    while err is None and time.time() < deadline:
        m = c.poll(0.2)
        if m and m.error():
            err = m.error()
        elif m:
            pytest.fail("consumed with auto.offset.reset=none and no committed offset")
    c.close()
    assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET


def test_admin_describe_list_delete(gbroker):
    b = gbroker
    topic = "adm"
    create_topic(b, topic, 3)
    produce(b, topic, 3, 30, "x")
    # An active group and an empty group with offsets (a simple consumer's commit).
    m = Member(b, "g-active", topic, "ck")
    c = consumer(b, "g-simple", "earliest")
    c.commit(offsets=[TopicPartition(topic, 0, 7), TopicPartition(topic, 2, 9)], asynchronous=False)
    c.close()
    try:
        wait_for(lambda: len(m.msgs()) >= 30, 30, "the active member to consume")
        ca = AdminClient({"bootstrap.servers": b.bootstrap})
        groups = {g.id: g for g in ca.list_groups(timeout=10)}
        assert "g-active" in groups and "g-simple" in groups
        ga = groups["g-active"]
        assert ga.state == "Stable" and ga.protocol_type == "consumer" and len(ga.members) == 1
        assert ga.members[0].client_host.startswith("/127.0.0.1")
        assert groups["g-simple"].state == "Empty"

        k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            listed = dict(k.list_consumer_groups())
            assert listed.get("g-active") == "consumer"
            d = k.describe_consumer_groups(["g-active", "g-missing"])
            assert d[0].state == "Stable" and d[0].protocol in ("range", "roundrobin")
            assert d[0].members[0].member_assignment.assignment[0][0] == topic
            assert d[1].state == "Dead" and d[1].members == []
            offs = k.list_consumer_group_offsets("g-simple")
            assert {tp.partition: om.offset for tp, om in offs.items()} == {0: 7, 2: 9}
            res = dict(k.delete_consumer_groups(["g-simple", "g-active", "g-missing"]))
            assert res["g-simple"] is kerrors.NoError or res["g-simple"] is None
            assert res["g-active"] is kerrors.NonEmptyGroupError
            assert res["g-missing"] is kerrors.GroupIdNotFoundError
            assert "g-simple" not in dict(k.list_consumer_groups())
            assert k.list_consumer_group_offsets("g-simple") == {}
        finally:
            k.close()
    finally:
        m.stop()
    # After the member leaves the group is Empty and can be deleted.
    k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        wait_for(lambda: describe(b, "g-active").state == "Empty", 15, "g-active to be Empty")
        res = dict(k.delete_consumer_groups(["g-active"]))
        assert res["g-active"] in (None, kerrors.NoError)
    finally:
        k.close()


# ---- raw protocol checks -------------------------------------------------------


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def raw(port, key, ver, body, flexible):
    hdr = struct.pack(">hhi", key, ver, 7) + struct.pack(">h", 4) + b"test"
    if flexible:
        hdr += b"\x00"
    frame = hdr + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        n = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, n)
    assert struct.unpack(">i", resp[:4])[0] == 7
    return resp[5:] if flexible else resp[4:]


def cstr(s):
    b = s.encode()
    return bytes([len(b) + 1]) + b


def test_find_coordinator_versions(gbroker):
    b = gbroker
    # v0: key only -> error 0, node 1, host, port
    body = raw(b.port, 10, 0, struct.pack(">h", 2) + b"gg", False)
    err, node = struct.unpack(">hi", body[:6])
    assert err == 0 and node == 1
    # v1: transaction key type -> this node (the transaction coordinator)
    body = raw(b.port, 10, 1, struct.pack(">h", 2) + b"tx" + b"\x01", False)
    assert struct.unpack(">ihhi", body[:12])[1] == 0
    # v4: batched keys (flexible)
    req = b"\x00" + bytes([3]) + cstr("g1") + cstr("g2") + b"\x00"
    body = raw(b.port, 10, 4, req, True)
    assert body[4] == 3  # two coordinators (compact array length + 1)
    # first coordinator: key "g1", node 1
    assert body[5:8] == cstr("g1") and struct.unpack(">i", body[8:12])[0] == 1


def java_hash(s):
    h = 0
    data = s.encode("utf-16-be")
    for unit in struct.unpack(">%dH" % (len(data) // 2), data):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


def commit_frame(corr, group, topic, partition, offset):
    def s16(x):
        b = x.encode()
        return struct.pack(">h", len(b)) + b
    body = (s16(group) + struct.pack(">i", -1) + s16("") + struct.pack(">q", -1) + struct.pack(">i", 1) +
            s16(topic) + struct.pack(">i", 1) + struct.pack(">iq", partition, offset) + s16(""))
    frame = struct.pack(">hhi", 8, 2, corr) + s16("snap") + body
    return struct.pack(">i", len(frame)) + frame


def group_offsets(b, group, timeout=20):
    """The group's committed offsets, retrying while the coordinator loads
    (right after a restart)."""
    k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    deadline = time.time() + timeout
    try:
        while True:
            try:
                offs = k.list_consumer_group_offsets(group)
                return {(tp.topic, tp.partition): om.offset for tp, om in offs.items()}
            except kerrors.CoordinatorLoadInProgressError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        k.close()


def test_snapshot_keeps_offsets_topic_small_and_survives_restart(gbroker):
    """Over 10,000 commits make the shard write a snapshot and move the log
    start of its __consumer_offsets partition; a restart loads the snapshot
    and what followed."""
    b = gbroker
    topic, group, P, N = "snap", "g-snap", 4, 12000
    create_topic(b, topic, P)
    with socket.create_connection(("127.0.0.1", b.port), timeout=20) as s:
        done = 0
        while done < N:
            chunk = min(500, N - done)
            s.sendall(b"".join(commit_frame(done + i, group, topic, (done + i) % P, done + i) for i in range(chunk)))
            for i in range(chunk):
                n = struct.unpack(">i", recv_exact(s, 4))[0]
                resp = recv_exact(s, n)
                assert struct.unpack(">i", resp[:4])[0] == done + i
                assert resp[-2:] == b"\x00\x00", "commit failed"
            done += chunk
    part = abs(java_hash(group)) % 8
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "probe"})
    low, high = c.get_watermark_offsets(TopicPartition("__consumer_offsets", part), timeout=10)
    c.close()
    assert high >= N and low >= 10000, (low, high)
    b.restart()
    assert group_offsets(b, group) == {(topic, p): N - P + p for p in range(P)}


def consume_all(b, client, topic, group, want, timeout=30):
    """Consumes with a fresh member of `group` until `want` records arrived,
    commits them, closes; returns [(partition, offset, value)]."""
    got = []
    deadline = time.time() + timeout
    if client == "ck":
        c = consumer(b, group, "earliest")
        c.subscribe([topic])
        try:
            while len(got) < want and time.time() < deadline:
                m = c.poll(0.2)
                if m and not m.error():
                    got.append((m.partition(), m.offset(), m.value().decode()))
            c.commit(asynchronous=False)
        finally:
            c.close()
    else:
        from kafka import KafkaConsumer
        c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False,
                          auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=600,
                          metadata_max_age_ms=2000, api_version_auto_timeout_ms=5000)
        c.subscribe([topic])
        try:
            while len(got) < want and time.time() < deadline:
                for tp, msgs in c.poll(timeout_ms=200).items():
                    got += [(m.partition, m.offset, m.value.decode()) for m in msgs]
            c.commit()
        finally:
            c.close()
    return got


@pytest.mark.parametrize("client", ["ck", "kp"])
def test_deleted_topic_loses_committed_offsets(gbroker, client):
    """Commit 100 records, delete the topic, re-create it and produce 150: the
    same group consumes the new topic from the start (Kafka drops a deleted
    topic's offsets), instead of resuming at 100 and skipping 100 records."""
    b = gbroker
    topic, group, P = "recreated-" + client, "g-recreated-" + client, 2
    create_topic(b, topic, P)
    produce(b, topic, P, 100, "old")
    got = consume_all(b, client, topic, group, 100)
    assert len(got) == 100
    assert group_offsets(b, group) == {(topic, 0): 50, (topic, 1): 50}
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.delete_topics([topic])[topic].result(timeout=10)
    wait_for(lambda: topic not in a.list_topics(timeout=5).topics, 10, "the topic to go")
    # The group is still there, without the deleted topic's offsets, also
    # after a restart (their tombstones are in __consumer_offsets).
    assert group_offsets(b, group) == {}
    b.restart()
    assert group_offsets(b, group) == {}
    create_topic(b, topic, P)
    produce(b, topic, P, 150, "new")
    got = consume_all(b, client, topic, group, 150)
    assert sorted(got) == sorted((i % P, i // P, "new-%d" % i) for i in range(150))
    assert group_offsets(b, group) == {(topic, 0): 75, (topic, 1): 75}


def offset_delete(port, group, topics):
    """OffsetDelete v0: topics is [(name, [partitions])]; returns (error,
    [(name, partition, error)])."""
    def s16(x):
        b = x.encode()
        return struct.pack(">h", len(b)) + b
    body = s16(group) + struct.pack(">i", len(topics))
    for name, parts in topics:
        body += s16(name) + struct.pack(">i", len(parts)) + b"".join(struct.pack(">i", p) for p in parts)
    resp = raw(port, 47, 0, body, False)
    err, _throttle, nt = struct.unpack(">hii", resp[:10])
    pos, out = 10, []
    for _ in range(max(nt, 0)):
        ln = struct.unpack(">h", resp[pos:pos + 2])[0]
        name = resp[pos + 2:pos + 2 + ln].decode()
        pos += 2 + ln
        np_ = struct.unpack(">i", resp[pos:pos + 4])[0]
        pos += 4
        for _ in range(np_):
            p, e = struct.unpack(">ih", resp[pos:pos + 6])
            pos += 6
            out.append((name, p, e))
    return err, out


def test_offset_delete_answers_once_written(gbroker):
    """OffsetDelete (answered once its tombstones are in __consumer_offsets):
    a partition listed twice is deleted once, unknown partitions get
    UNKNOWN_TOPIC_OR_PARTITION, the rest stays, and so after a restart."""
    b = gbroker
    topic, group = "od", "g-od"
    create_topic(b, topic, 3)
    with socket.create_connection(("127.0.0.1", b.port), timeout=20) as s:
        for p in range(3):
            s.sendall(commit_frame(p, group, topic, p, 10 + p))
            n = struct.unpack(">i", recv_exact(s, 4))[0]
            assert recv_exact(s, n)[-2:] == b"\x00\x00"
    assert group_offsets(b, group) == {(topic, 0): 10, (topic, 1): 11, (topic, 2): 12}
    err, res = offset_delete(b.port, group, [(topic, [0, 0, 2, 7]), ("nope", [0])])
    assert err == 0
    assert res == [(topic, 0, 0), (topic, 0, 0), (topic, 2, 0), (topic, 7, 3), ("nope", 0, 3)]
    assert group_offsets(b, group) == {(topic, 1): 11}
    assert offset_delete(b.port, "g-none", [(topic, [1])]) == (69, [])  # GROUP_ID_NOT_FOUND
    b.restart()
    assert group_offsets(b, group) == {(topic, 1): 11}
