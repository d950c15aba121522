"""The KIP-848 consumer group protocol against a real sluiced.

A real client: @platformatic/kafka (groupProtocol 'consumer') run by Node.js
through tests/integration/node/consumer_protocol.mjs: two members split a
topic, every record arrives, the group shrinks back to one member. Its
module comes from npm (`npm ci --prefix tests/integration/node`, or
SLUICE_NODE_DIR naming a directory whose node_modules holds it); without
Node.js or the module that test is skipped with the reason. Debian's
librdkafka (2.0) predates group.protocol=consumer (2.4), so confluent-kafka
cannot be used here.

Raw frames cover what a client does not show: ConsumerGroupHeartbeat's
errors, ConsumerGroupDescribe, ListGroups' group type and filter, the group
surviving a restart, and a classic member (kafka-python) of another group
in the same broker working unchanged.
"""
import json
import os
import shutil
import struct
import subprocess
import time
import uuid

import pytest

from test_api_versions import raw_request

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.environ.get("SLUICE_NODE_DIR", os.path.join(HERE, "node"))

# ---- a minimal flexible-version codec for the two APIs -----------------------


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
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def carray(items, enc):
    if items is None:
        return b"\x00"
    return uvarint(len(items) + 1) + b"".join(enc(i) for i in items)


class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        v = self.b[self.i:self.i + n]
        assert len(v) == n, "truncated response"
        self.i += n
        return v

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def uv(self):
        n, shift = 0, 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def cstr(self):
        n = self.uv()
        return None if n == 0 else self.take(n - 1).decode()

    def carray(self, fn):
        n = self.uv()
        return None if n == 0 else [fn(self) for _ in range(n - 1)]

    def tags(self):
        for _ in range(self.uv()):
            self.uv()
            self.take(self.uv())


def heartbeat(port, group, member, epoch, topics=None, regex=None, assignor=None, owned=None,
              instance=None, rebalance_timeout=30000, version=1):
    body = cstr(group) + cstr(member) + struct.pack(">i", epoch) + cstr(instance) + cstr(None)
    body += struct.pack(">i", rebalance_timeout)
    body += carray(topics, cstr)
    if version >= 1:
        body += cstr(regex)
    body += cstr(assignor)
    body += carray(owned, lambda tp: tp[0] + carray(tp[1], lambda p: struct.pack(">i", p)) + b"\x00")
    body += b"\x00"
    r = Reader(raw_request(port, 68, version, body, flexible=True))
    r.i32()  # correlation id
    r.tags()
    out = {"throttle": r.i32(), "error": r.i16(), "message": r.cstr(), "member_id": r.cstr(),
           "epoch": r.i32(), "interval": r.i32()}
    present = r.i8()
    out["assignment"] = None
    if present >= 0:
        tps = r.carray(lambda rr: (rr.take(16), rr.carray(lambda x: x.i32()), rr.tags())[:2])
        r.tags()
        out["assignment"] = [(t, sorted(p)) for t, p in tps]
    r.tags()
    return out


def describe(port, groups):
    body = carray(groups, cstr) + b"\x00" + b"\x00"
    r = Reader(raw_request(port, 69, 0, body, flexible=True))
    r.i32()
    r.tags()
    r.i32()

    def assignment(rr):
        tps = rr.carray(lambda x: (x.take(16), x.cstr(), x.carray(lambda y: y.i32()), x.tags())[:3])
        rr.tags()
        return tps

    def member(rr):
        m = {"member_id": rr.cstr(), "instance_id": rr.cstr(), "rack_id": rr.cstr(), "epoch": rr.i32(),
             "client_id": rr.cstr(), "client_host": rr.cstr(), "topics": rr.carray(lambda x: x.cstr()),
             "regex": rr.cstr(), "assignment": assignment(rr), "target": assignment(rr)}
        rr.tags()
        return m

    def group(rr):
        g = {"error": rr.i16(), "message": rr.cstr(), "group_id": rr.cstr(), "state": rr.cstr(),
             "epoch": rr.i32(), "assignment_epoch": rr.i32(), "assignor": rr.cstr(),
             "members": rr.carray(member), "ops": rr.i32()}
        rr.tags()
        return g

    return r.carray(group)


def list_groups(port, types=None):
    body = carray([], cstr) + carray(types or [], cstr) + b"\x00"
    r = Reader(raw_request(port, 16, 5, body, flexible=True))
    r.i32()
    r.tags()
    r.i32()
    err = r.i16()

    def g(rr):
        v = (rr.cstr(), rr.cstr(), rr.cstr(), rr.cstr())
        rr.tags()
        return v

    return err, r.carray(g)


def create_topic(broker, name, partitions):
    from kafka.admin import KafkaAdminClient, NewTopic
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        a.create_topics([NewTopic(name, partitions, 1)])
    finally:
        a.close()


def topic_id(broker, name):
    """The topic's id from a Metadata v12 request (raw)."""
    body = carray([name], lambda n: b"\x00" * 16 + cstr(n) + b"\x00") + b"\x00" + b"\x00" + b"\x00"
    r = Reader(raw_request(broker.port, 3, 12, body, flexible=True))
    r.i32()
    r.tags()
    r.i32()
    r.carray(lambda x: (x.i32(), x.cstr(), x.i32(), x.cstr(), x.tags()))
    r.cstr()
    r.i32()

    def topic(x):
        err, tname, tid = x.i16(), x.cstr(), x.take(16)
        x.i8()
        x.carray(lambda y: (y.i16(), y.i32(), y.i32(), y.i32(), y.carray(lambda z: z.i32()),
                            y.carray(lambda z: z.i32()), y.carray(lambda z: z.i32()), y.tags()))
        x.i32()
        x.tags()
        return tname, tid

    for tname, tid in r.carray(topic):
        if tname == name:
            return tid
    raise AssertionError("no topic " + name)


# ---- raw protocol ----------------------------------------------------------------


def test_heartbeat_rules_and_describe(broker_factory):
    b = broker_factory({"group.consumer.heartbeat.interval.ms": "700"})
    create_topic(b, "cp-t", 4)
    tid = topic_id(b, "cp-t")
    # Refused before the group is looked at.
    assert heartbeat(b.port, "g1", "", 0, topics=["cp-t"], owned=[])["error"] == 42  # INVALID_REQUEST
    assert heartbeat(b.port, "g1", "m1", 0, topics=["cp-t"], owned=[], rebalance_timeout=-1)["error"] == 42
    assert heartbeat(b.port, "g1", "m1", 0, topics=["cp-t"], owned=[], assignor="sticky")["error"] == 112
    assert heartbeat(b.port, "g1", "m1", 0, regex="cp-(", owned=[])["error"] == 128
    assert heartbeat(b.port, "g1", "m1", 5, owned=[])["error"] == 25  # UNKNOWN_MEMBER_ID
    # m1 joins and owns all four partitions.
    a = heartbeat(b.port, "g1", "m1", 0, topics=["cp-t"], owned=[])
    assert a["error"] == 0 and a["epoch"] == 1 and a["interval"] == 700
    assert a["assignment"] == [(tid, [0, 1, 2, 3])]
    # v0: the broker names the member.
    v0 = heartbeat(b.port, "g0", "", 0, topics=["cp-t"], owned=[], version=0)
    assert v0["error"] == 0 and v0["member_id"]
    # m2 joins through a regex: it waits until m1 revoked.
    m2 = heartbeat(b.port, "g1", "m2", 0, regex="cp-.*", owned=[], assignor="range")
    assert m2["error"] == 0 and m2["epoch"] == 2 and m2["assignment"] == []
    r1 = heartbeat(b.port, "g1", "m1", 1, owned=[(tid, [0, 1, 2, 3])])
    assert r1["epoch"] == 1 and len(r1["assignment"][0][1]) == 2  # revocation first
    kept = r1["assignment"][0][1]
    assert heartbeat(b.port, "g1", "m1", 3, owned=[(tid, kept)])["error"] == 110  # FENCED_MEMBER_EPOCH
    r1 = heartbeat(b.port, "g1", "m1", 1, owned=[(tid, kept)])
    assert r1["epoch"] == 2
    m2 = heartbeat(b.port, "g1", "m2", 2, owned=[])
    assert m2["epoch"] == 2 and sorted(m2["assignment"][0][1] + kept) == [0, 1, 2, 3]
    # ConsumerGroupDescribe shows the members and their assignments.
    d = describe(b.port, ["g1", "nope"])
    g = d[0]
    assert g["error"] == 0 and g["state"] == "Stable" and g["epoch"] == 2 and g["assignment_epoch"] == 2
    assert g["assignor"] == "range"  # what the members ask for
    by_id = {m["member_id"]: m for m in g["members"]}
    assert set(by_id) == {"m1", "m2"}
    assert by_id["m2"]["regex"] == "cp-.*" and by_id["m1"]["topics"] == ["cp-t"]
    assert by_id["m1"]["assignment"][0][1] == "cp-t"
    assert sorted(by_id["m1"]["assignment"][0][2]) == kept
    assert d[1]["error"] == 69  # GROUP_ID_NOT_FOUND
    # ListGroups: the type, and the types filter.
    err, groups = list_groups(b.port)
    assert err == 0
    assert ("g1", "consumer", "Stable", "consumer") in groups
    err, only_classic = list_groups(b.port, ["classic"])
    assert all(t == "classic" for _, _, _, t in only_classic) and "g1" not in [g[0] for g in only_classic]
    # The group survives a restart (reloaded from its records).
    b.restart()
    deadline = time.time() + 20
    while time.time() < deadline:
        d = describe(b.port, ["g1"])[0]
        if d["error"] == 0:
            break
        time.sleep(0.2)
    assert d["error"] == 0 and d["epoch"] == 2 and len(d["members"]) == 2
    assert heartbeat(b.port, "g1", "m1", 2, owned=[(tid, kept)])["error"] == 0
    # Leaving: m2 goes, m1 gets everything at a new epoch.
    assert heartbeat(b.port, "g1", "m2", -1)["epoch"] == -1
    r1 = heartbeat(b.port, "g1", "m1", 2, owned=[(tid, kept)])
    assert r1["epoch"] == 3 and r1["assignment"] == [(tid, [0, 1, 2, 3])]


def test_session_timeout_fences(broker_factory):
    b = broker_factory({"group.consumer.session.timeout.ms": "1500"})
    create_topic(b, "st-t", 2)
    assert heartbeat(b.port, "gs", "m1", 0, topics=["st-t"], owned=[])["epoch"] == 1
    time.sleep(3.0)
    assert heartbeat(b.port, "gs", "m1", 1, owned=[])["error"] == 25
    assert "consumer session" not in b.log()  # (no noise needed for a normal expiry)
    d = describe(b.port, ["gs"])[0]
    assert d["state"] == "Empty" and d["members"] == []


def test_classic_group_unaffected(broker):
    """A classic group (kafka-python) next to a consumer group on one broker."""
    from kafka import KafkaConsumer, KafkaProducer
    create_topic(broker, "cl-t", 2)
    assert heartbeat(broker.port, "new-style", "m1", 0, topics=["cl-t"], owned=[])["error"] == 0
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(10):
        p.send("cl-t", b"v%d" % i)
    p.flush()
    p.close()
    c = KafkaConsumer("cl-t", bootstrap_servers=broker.bootstrap, group_id="old-style",
                      auto_offset_reset="earliest", consumer_timeout_ms=15000)
    got = 0
    for _ in c:
        got += 1
        if got == 10:
            break
    c.commit()
    c.close()
    assert got == 10
    err, groups = list_groups(broker.port)
    types = {g[0]: g[3] for g in groups}
    assert types["old-style"] == "classic" and types["new-style"] == "consumer"
    # A consumer-protocol heartbeat cannot take over the classic group
    # while it has members; a classic JoinGroup cannot enter the new one.
    assert describe(broker.port, ["old-style"])[0]["error"] == 69


# ---- a real client --------------------------------------------------------------------


def node_client_dir():
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed (Debian package nodejs)")
    mod = os.path.join(NODE_DIR, "node_modules", "@platformatic", "kafka")
    if not os.path.isdir(mod):
        pytest.skip("@platformatic/kafka is not installed: npm ci --prefix tests/integration/node "
                    "(or set SLUICE_NODE_DIR)")
    return NODE_DIR


@pytest.mark.parametrize("assignor", [None, "range"])
def test_platformatic_consumer_group(broker_factory, tmp_path, assignor):
    d = node_client_dir()
    b = broker_factory()
    script = os.path.join(d, "consumer_protocol-%s.mjs" % uuid.uuid4().hex[:8])
    shutil.copy(os.path.join(HERE, "node", "consumer_protocol.mjs"), script)
    try:
        args = ["node", script, b.bootstrap, "pk-t", "pk-g"] + ([assignor] if assignor else [])
        p = subprocess.run(args, capture_output=True, text=True, timeout=180)
    finally:
        os.unlink(script)
    assert p.returncode == 0, "node exited %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr[-4000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    steps = out["steps"]
    assert steps[0]["a"] == [0, 1, 2, 3]
    assert len(steps[1]["a"]) == 2 and len(steps[1]["b"]) == 2
    assert sorted(steps[1]["a"] + steps[1]["b"]) == [0, 1, 2, 3]
    if assignor == "range":
        assert steps[1]["a"] in ([0, 1], [2, 3])
    assert out["received"] == 40
    assert steps[2]["a"] == [0, 1, 2, 3]
    err, groups = list_groups(b.port)
    assert ("pk-g", "consumer") in [(g[0], g[3]) for g in groups]
    g = describe(b.port, ["pk-g"])[0]
    assert g["error"] == 0 and g["state"] == "Empty"


def test_classic_tools_describe_a_consumer_group(broker):
    """DescribeGroups carries the consumer protocol's subscription and
    assignment layouts for a consumer group, so tools written for classic
    groups show its members' partitions: kafka-python's admin client and
    `sluice groups` (librdkafka's)."""
    from kafka.admin import KafkaAdminClient
    from conftest import BUILD
    create_topic(broker, "tool-t", 3)
    assert heartbeat(broker.port, "tool-g", "m1", 0, topics=["tool-t"], owned=[])["error"] == 0
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        (info,) = a.describe_consumer_groups(["tool-g"])
    finally:
        a.close()
    assert info.protocol_type == "consumer" and info.state == "Stable"
    (m,) = info.members
    assert m.member_id == "m1"
    assert list(m.member_metadata.subscription) == ["tool-t"]
    assert [(t, sorted(p)) for t, p in m.member_assignment.assignment] == [("tool-t", [0, 1, 2])]
    out = subprocess.run([os.path.join(BUILD, "sluice"), "groups", "--bootstrap-server", broker.bootstrap,
                          "--describe", "--group", "tool-g", "--members"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    row = [l.split() for l in out.stdout.splitlines() if l.startswith("m1")]
    assert row and row[0][-1] == "3", out.stdout


def test_protocol_can_be_disabled(broker_factory):
    b = broker_factory({"group.coordinator.rebalance.protocols": "classic"})
    a = heartbeat(b.port, "off-g", "m1", 0, topics=["x"], owned=[])
    assert a["error"] == 35 and "group.coordinator.rebalance.protocols" in a["message"]  # UNSUPPORTED_VERSION


def test_platformatic_member_takes_over_after_a_silent_member(broker_factory):
    """A raw-protocol member holds half the partitions and falls silent (no
    leave, as if killed): after group.consumer.session.timeout.ms the
    @platformatic/kafka member owns them all, not before the session ended;
    while both were members their partitions were disjoint."""
    import threading
    d = node_client_dir()
    session_ms = 3000
    b = broker_factory({"group.consumer.session.timeout.ms": str(session_ms),
                        "group.consumer.heartbeat.interval.ms": "500"})
    create_topic(b, "to-t", 4)
    tid = topic_id(b, "to-t")
    first = heartbeat(b.port, "to-g", "zombie", 0, topics=["to-t"], owned=[])
    state = {"epoch": first["epoch"], "owned": first["assignment"][0][1], "history": []}
    stop = threading.Event()

    def zombie():
        while not stop.wait(0.3):
            r = heartbeat(b.port, "to-g", "zombie", state["epoch"], owned=[(tid, state["owned"])])
            if r["error"]:
                continue
            state["epoch"] = r["epoch"]
            if r["assignment"] is not None:
                state["owned"] = r["assignment"][0][1] if r["assignment"] else []
                state["history"].append((time.time(), list(state["owned"])))

    t = threading.Thread(target=zombie, daemon=True)
    t.start()
    script = os.path.join(d, "consumer_takeover-%s.mjs" % uuid.uuid4().hex[:8])
    shutil.copy(os.path.join(HERE, "node", "consumer_takeover.mjs"), script)
    p = subprocess.Popen(["node", script, b.bootstrap, "to-t", "to-g", "4"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        seen, stopped_at = [], None
        deadline = time.time() + 90
        while time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            ev = json.loads(line)
            seen.append((time.time(), ev["owned"]))
            if stopped_at is None and len(ev["owned"]) == 2:
                # Split: the other member falls silent now.
                stop.set()
                t.join(timeout=5)
                stopped_at = time.time()
                assert sorted(ev["owned"] + state["owned"]) == [0, 1, 2, 3]
            if len(ev["owned"]) == 4 and stopped_at is not None:
                break
        rc = p.wait(timeout=30)
    finally:
        stop.set()
        if p.poll() is None:
            p.kill()
            p.wait()
        os.unlink(script)
    assert rc == 0, "node: %s" % p.stderr.read()[-3000:]
    assert stopped_at is not None, seen
    took = seen[-1][0] - stopped_at
    assert seen[-1][1] == [0, 1, 2, 3]
    assert session_ms / 1000.0 * 0.8 <= took <= session_ms / 1000.0 + 10, took


def test_classic_group_moves_to_the_consumer_protocol(broker):
    """A classic group (kafka-python) commits and leaves; the same group id
    with the consumer protocol (@platformatic/kafka) goes on from the
    committed offsets: the Empty classic group became a consumer group."""
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
    d = node_client_dir()
    create_topic(broker, "mig-t", 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(20):
        p.send("mig-t", b"v%d" % i, partition=0)
    p.flush()
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="mig-g", auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=15000)
    c.subscribe(["mig-t"])
    got = 0
    for m in c:
        got += 1
        if got == 10:
            c.commit({TopicPartition("mig-t", 0): OffsetAndMetadata(m.offset + 1, None)})
            break
    c.close()
    assert got == 10
    script = os.path.join(d, "consume_committed-%s.mjs" % uuid.uuid4().hex[:8])
    shutil.copy(os.path.join(HERE, "node", "consume_committed.mjs"), script)
    try:
        r = subprocess.run(["node", script, broker.bootstrap, "mig-t", "mig-g", "10"], capture_output=True,
                           text=True, timeout=90)
    finally:
        os.unlink(script)
    assert r.returncode == 0, r.stderr[-3000:]
    values = json.loads(r.stdout.strip().splitlines()[-1])
    assert values == ["v%d" % i for i in range(10, 20)]
    err, groups = list_groups(broker.port)
    assert ("mig-g", "consumer") in [(g[0], g[3]) for g in groups]
