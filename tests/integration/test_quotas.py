"""Client quotas (KIP-546 DescribeClientQuotas / AlterClientQuotas, enforced
by throttling as Kafka does): alter and describe round trips through
`sluice quotas`, `sluice configs --entity-type users|clients` and raw
requests (Debian's clients have no client quota API), quotas surviving a
restart, Kafka's errors for bad input, and real librdkafka producers and
consumers held near their byte-rate quota with throttle_time_ms in their
responses and on /metrics."""
import json
import os
import struct
import subprocess
import time
import urllib.request

import pytest

from conftest import BUILD, free_port
from test_cluster import cluster  # noqa: F401 (fixture)
from test_api_versions import raw_request

SLUICE = os.path.join(BUILD, "sluice")
INVALID_REQUEST = 42
UNSUPPORTED_VERSION = 35
QUOTA = 100 * 1024  # bytes a second
# Three one-second windows: a client's first burst is measured over two
# seconds (Kafka's samples - 1 windows), so a 1 MB run is mostly throttled.
FAST_WINDOWS = {"quota.window.num": "3", "quota.window.size.seconds": "1"}


def cli(b, *args):
    p = subprocess.run([SLUICE] + list(args) + ["--bootstrap-server", b.bootstrap], capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


# ---- raw v0 codecs (non-flexible) -------------------------------------------------------


def s16(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def ns16(s):
    return struct.pack(">h", -1) if s is None else s16(s)


class Reader:
    def __init__(self, b, i=0):
        self.b, self.i = b, i

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.i)
        self.i += struct.calcsize(fmt)
        return v[0]

    def nstr(self):
        n = self.take(">h")
        if n < 0:
            return None
        v = self.b[self.i:self.i + n].decode()
        self.i += n
        return v


def alter(port, entries, validate_only=False, send=None):
    """entries: [(entity dict {type: name|None}, [(key, value, remove)])] ->
    [(error code, message)] in order."""
    body = struct.pack(">i", len(entries))
    for entity, ops in entries:
        body += struct.pack(">i", len(entity))
        for t, n in entity.items():
            body += s16(t) + ns16(n)
        body += struct.pack(">i", len(ops))
        for k, v, rm in ops:
            body += s16(k) + struct.pack(">db", float(v), 1 if rm else 0)
    body += struct.pack(">b", 1 if validate_only else 0)
    r = Reader((send or (lambda k, v, b: raw_request(port, k, v, body=b)))(49, 0, body), 4)
    r.take(">i")  # throttle
    out = []
    for _ in range(r.take(">i")):
        code = r.take(">h")
        msg = r.nstr()
        for _ in range(r.take(">i")):
            r.nstr()
            r.nstr()
        out.append((code, msg))
    return out


def describe(port, components, strict=False, send=None):
    """components: [(type, match type, match)] -> (error, message, {entity: {key: value}})
    with entity a frozenset of (type, name) pairs."""
    body = struct.pack(">i", len(components))
    for t, mt, m in components:
        body += s16(t) + struct.pack(">b", mt) + ns16(m)
    body += struct.pack(">b", 1 if strict else 0)
    r = Reader((send or (lambda k, v, b: raw_request(port, k, v, body=b)))(48, 0, body), 4)
    r.take(">i")
    code = r.take(">h")
    msg = r.nstr()
    n = r.take(">i")
    out = {}
    for _ in range(max(n, 0)):
        ent = frozenset((r.nstr(), r.nstr()) for _ in range(r.take(">i")))
        vals = {}
        for _ in range(r.take(">i")):
            k = r.nstr()
            vals[k] = r.take(">d")
        out[ent] = vals
    return code, msg, out


EXACT, DEFAULT, ANY = 0, 1, 2


def ent(user=False, client=False):
    """False: absent; None: the default; a string: the name."""
    e = {}
    if user is not False:
        e["user"] = user
    if client is not False:
        e["client-id"] = client
    return frozenset(e.items())


def set_quota(b, entity, **values):
    """Sets quotas of entity ({type: name or None}) with a raw AlterClientQuotas."""
    assert alter(b.port, [(entity, [(k, v, False) for k, v in values.items()])]) == [(0, None)]


# ---- tests --------------------------------------------------------------------------------
# The `sluice` CLI is used only in the test_cli_* tests, which the
# ThreadSanitizer run leaves out (librdkafka is not instrumented).


def test_alter_describe_round_trip_and_restart(broker_factory):
    b = broker_factory()
    set_quota(b, {"user": "alice"}, producer_byte_rate=1024, request_percentage=50)
    set_quota(b, {"user": None, "client-id": "app"}, consumer_byte_rate=2048)
    set_quota(b, {"client-id": None}, consumer_byte_rate=4096)
    set_quota(b, {"user": "bob", "client-id": "app"}, producer_byte_rate=8192, controller_mutation_rate=2.5)
    want = {
        ent(user="alice"): {"producer_byte_rate": 1024.0, "request_percentage": 50.0},
        ent(user=None, client="app"): {"consumer_byte_rate": 2048.0},
        ent(client=None): {"consumer_byte_rate": 4096.0},
        ent(user="bob", client="app"): {"producer_byte_rate": 8192.0, "controller_mutation_rate": 2.5},
    }

    def check(port):
        code, _, got = describe(port, [])
        assert code == 0 and got == want
        # Exact, default and any matches; strict keeps only entities with
        # exactly the filter's components.
        assert describe(port, [("user", EXACT, "alice")])[2].keys() == {ent(user="alice")}
        assert describe(port, [("user", DEFAULT, None)])[2].keys() == {ent(user=None, client="app")}
        assert describe(port, [("user", ANY, None)])[2].keys() == {
            ent(user="alice"), ent(user=None, client="app"), ent(user="bob", client="app")}
        assert describe(port, [("user", ANY, None)], strict=True)[2].keys() == {ent(user="alice")}
        assert describe(port, [("client-id", EXACT, "app")])[2].keys() == {
            ent(user=None, client="app"), ent(user="bob", client="app")}
        assert describe(port, [("client-id", DEFAULT, None)], strict=True)[2].keys() == {ent(client=None)}
        assert describe(port, [("user", EXACT, "nobody")])[2] == {}

    check(b.port)
    b.restart()
    check(b.port)

    # Removing the last key removes the entity; removing an absent key is fine.
    remove = [({"client-id": None}, [("consumer_byte_rate", 0, True)])]
    assert alter(b.port, remove) == [(0, None)]
    assert alter(b.port, remove) == [(0, None)]
    assert ent(client=None) not in describe(b.port, [])[2]
    b.restart()
    assert ent(client=None) not in describe(b.port, [])[2]
    assert ent(user="alice") in describe(b.port, [])[2]


def test_bad_input_is_refused_as_kafka_does(broker):
    p = broker.port
    bad = [
        ({"user": "a"}, [("bogus_rate", 1, False)]),                     # unknown key
        ({"user": "a"}, [("producer_byte_rate", 1.5, False)]),           # fractional long
        ({"user": "a"}, [("producer_byte_rate", -5, False)]),            # not above 0
        ({"user": "a"}, [("request_percentage", 0, False)]),
        ({"ip": "10.0.0.1", "user": "a"}, [("producer_byte_rate", 1, False)]),  # bad combination
        ({"group": "g"}, [("producer_byte_rate", 1, False)]),            # unknown entity type
        ({}, [("producer_byte_rate", 1, False)]),                       # empty entity
        ({"user": "a"}, [("connection_creation_rate", 5, False)]),      # an ip key on a user
        ({"user": "a"}, [("producer_byte_rate", 1, False), ("producer_byte_rate", 2, False)]),
        ({"ip": "not-an-ip"}, [("connection_creation_rate", 5, False)]),
        ({"user": "a"}, [("producer_byte_rate", 1, False)] * 5000),      # more ops than keys exist
    ]
    res = alter(p, bad + [({"user": "ok"}, [("producer_byte_rate", 10, False)])])
    assert [c for c, _ in res[:-1]] == [INVALID_REQUEST] * len(bad), res
    assert all(m for _, m in res[:-1])
    assert "bogus_rate" in res[0][1] and "fractional" in res[1][1]
    assert res[-1] == (0, None)  # one bad entry does not sink the others
    assert describe(p, [])[2] == {ent(user="ok"): {"producer_byte_rate": 10.0}}

    # validate_only checks and changes nothing.
    assert alter(p, [({"user": "v"}, [("consumer_byte_rate", 5, False)])], validate_only=True) == [(0, None)]
    assert alter(p, [({"user": "v"}, [("consumer_byte_rate", 5.5, False)])],
                 validate_only=True)[0][0] == INVALID_REQUEST
    assert ent(user="v") not in describe(p, [])[2]
    # An ip entity takes connection_creation_rate (stored; not enforced yet).
    assert alter(p, [({"ip": None}, [("connection_creation_rate", 10, False)])]) == [(0, None)]

    # Describe filters.
    assert describe(p, [("user", EXACT, None)])[0] == INVALID_REQUEST
    assert describe(p, [("user", DEFAULT, "x")])[0] == INVALID_REQUEST
    assert describe(p, [("user", ANY, "x")])[0] == INVALID_REQUEST
    assert describe(p, [("user", ANY, None), ("user", EXACT, "a")])[0] == INVALID_REQUEST
    assert describe(p, [("ip", ANY, None), ("user", ANY, None)])[0] == INVALID_REQUEST
    assert describe(p, [("", ANY, None)])[0] == INVALID_REQUEST
    assert describe(p, [("group", ANY, None)])[0] == UNSUPPORTED_VERSION
    assert describe(p, [("user", 7, None)])[0] == UNSUPPORTED_VERSION

    # The broker is still serving.
    assert describe(p, [])[0] == 0


def test_cli_alter_describe_and_errors(broker):
    b = broker
    assert cli(b, "quotas", "--alter", "--user", "alice", "--add",
               "producer_byte_rate=1024,request_percentage=50")[0] == 0
    assert cli(b, "quotas", "--alter", "--user-default", "--client-id", "app", "--add",
               "consumer_byte_rate=2048")[0] == 0
    assert cli(b, "quotas", "--alter", "--client-default", "--add", "consumer_byte_rate=4096")[0] == 0
    # kafka-configs' form, and its --user/--client shorthands.
    rc, out, err = cli(b, "configs", "--alter", "--entity-type", "users", "--entity-name", "bob",
                       "--entity-type", "clients", "--entity-name", "app", "--add-config",
                       "producer_byte_rate=8192,controller_mutation_rate=2.5")
    assert rc == 0, err
    assert cli(b, "configs", "--alter", "--user", "carol", "--add-config", "consumer_byte_rate=1000")[0] == 0
    assert describe(b.port, [])[2] == {
        ent(user="alice"): {"producer_byte_rate": 1024.0, "request_percentage": 50.0},
        ent(user=None, client="app"): {"consumer_byte_rate": 2048.0},
        ent(client=None): {"consumer_byte_rate": 4096.0},
        ent(user="bob", client="app"): {"producer_byte_rate": 8192.0, "controller_mutation_rate": 2.5},
        ent(user="carol"): {"consumer_byte_rate": 1000.0},
    }
    rc, out, _ = cli(b, "quotas", "--describe", "--user", "alice", "--json")
    assert rc == 0 and json.loads(out)["entries"][0]["quotas"]["request_percentage"] == 50
    rc, out, _ = cli(b, "quotas", "--describe")
    assert rc == 0 and len(out.splitlines()) == 5 and "Quota configs for the default client-id are" in out
    rc, out, _ = cli(b, "configs", "--describe", "--entity-type", "users", "--entity-name", "bob",
                     "--entity-type", "clients", "--entity-name", "app")
    assert rc == 0 and "user-principal 'bob', client-id 'app'" in out and "producer_byte_rate=8192" in out
    # kafka-configs --describe --entity-type users: the users alone (strict).
    rc, out, _ = cli(b, "configs", "--describe", "--entity-type", "users")
    assert rc == 0 and len(out.splitlines()) == 2 and "'alice'" in out and "'carol'" in out
    assert cli(b, "quotas", "--alter", "--user", "alice", "--delete", "request_percentage")[0] == 0
    assert cli(b, "quotas", "--alter", "--validate-only", "--user", "zed", "--add",
               "producer_byte_rate=5")[0] == 0
    got = describe(b.port, [])[2]
    assert got[ent(user="alice")] == {"producer_byte_rate": 1024.0} and ent(user="zed") not in got
    # The broker's refusals are printed with its reason and exit 1; bad flags exit 2.
    rc, _, err = cli(b, "quotas", "--alter", "--user", "a", "--add", "producer_byte_rate=1.5")
    assert rc == 1 and "INVALID_REQUEST" in err and "fractional" in err
    rc, _, err = cli(b, "configs", "--alter", "--user", "a", "--add-config", "bogus=1")
    assert rc == 1 and "Invalid configuration key bogus" in err
    assert cli(b, "quotas", "--alter", "--user", "a", "--add", "producer_byte_rate=abc")[0] == 2
    assert cli(b, "quotas", "--alter", "--add", "producer_byte_rate=1")[0] == 2
    assert cli(b, "quotas", "--describe", "--user", "a", "--user-default")[0] == 2
    assert cli(b, "configs", "--alter", "--entity-type", "users", "--add-config",
               "producer_byte_rate=1")[0] == 2
    assert cli(b, "configs", "--alter", "--entity-type", "users", "--entity-type", "topics",
               "--entity-name", "x", "--add-config", "producer_byte_rate=1")[0] == 2


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("%s not on /metrics" % name)


class Stats:
    """librdkafka statistics: the largest broker throttle time seen (ms)."""

    def __init__(self):
        self.throttle_max = 0

    def cb(self, j):
        for br in json.loads(j).get("brokers", {}).values():
            if br.get("nodeid", -1) >= 0:
                self.throttle_max = max(self.throttle_max, br.get("throttle", {}).get("max", 0))


def produce(b, client_id, n, size=1000, stats=None, timeout=60):
    """Produces n records of size bytes; returns the seconds it took."""
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": b.bootstrap, "client.id": client_id, "linger.ms": 5,
            "batch.size": 16384, "message.timeout.ms": timeout * 1000}
    if stats is not None:
        conf.update({"statistics.interval.ms": 200, "stats_cb": stats.cb})
    p = Producer(conf)
    errors = []
    payload = b"x" * size
    t0 = time.time()
    for _ in range(n):
        while True:
            try:
                p.produce("q", payload, on_delivery=lambda e, m: e and errors.append(e))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        assert time.time() - t0 < timeout
    assert p.flush(timeout) == 0
    dt = time.time() - t0
    p.poll(0.5)  # a last statistics callback
    assert not errors, errors[:3]
    return dt


def create_topic(b):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic("q", 1, 1)]).values():
        f.result(timeout=15)


def test_producer_is_held_near_its_quota(broker_factory):
    http = free_port()
    b = broker_factory(dict(FAST_WINDOWS, **{"sluice.http.listeners": "http://127.0.0.1:%d" % http}))
    create_topic(b)
    set_quota(b, {"client-id": "qprod"}, producer_byte_rate=QUOTA)
    st = Stats()
    n, size = 1000, 1000  # about 1 MB
    dt = produce(b, "qprod", n, size, stats=st)
    achieved = n * size / dt
    print("producer: %.0f B/s against a quota of %d (ratio %.2f), throttle max %d ms"
          % (achieved, QUOTA, achieved / QUOTA, st.throttle_max))
    assert achieved <= 2 * QUOTA
    assert achieved >= 0.3 * QUOTA  # throttled, not stalled
    assert st.throttle_max > 0  # the client saw throttle_time_ms
    assert metric(http, "kafka_server_produce_throttle_time_ms_total") > 0
    assert metric(http, "kafka_server_produce_throttled_total") > 0
    assert metric(http, "sluice_network_throttle_mutes_total") > 0
    # Another client id has no quota.
    dt = produce(b, "other", 1000, 1000)
    assert 1e6 / dt > 4 * QUOTA


def test_consumer_is_held_near_its_quota(broker_factory):
    from confluent_kafka import Consumer
    http = free_port()
    b = broker_factory(dict(FAST_WINDOWS, **{"sluice.http.listeners": "http://127.0.0.1:%d" % http}))
    create_topic(b)
    n, size = 1000, 1000
    produce(b, "loader", n, size)
    set_quota(b, {"client-id": "qcons"}, consumer_byte_rate=QUOTA)
    st = Stats()
    c = Consumer({"bootstrap.servers": b.bootstrap, "client.id": "qcons", "group.id": "qg",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.max.bytes": 65536, "max.partition.fetch.bytes": 65536, "message.max.bytes": 65536,
                  "statistics.interval.ms": 200, "stats_cb": st.cb})
    try:
        c.subscribe(["q"])
        got, first, deadline = 0, None, time.time() + 60
        while got < n and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            if first is None:
                first = time.time()
            got += 1
        assert got == n
        dt = time.time() - first
        c.poll(0.5)
    finally:
        c.close()
    achieved = n * size / dt
    print("consumer: %.0f B/s against a quota of %d (ratio %.2f), throttle max %d ms"
          % (achieved, QUOTA, achieved / QUOTA, st.throttle_max))
    assert achieved <= 2 * QUOTA
    assert st.throttle_max > 0
    assert metric(http, "kafka_server_fetch_throttle_time_ms_total") > 0


def test_specific_quota_wins_over_the_default(broker_factory):
    b = broker_factory(FAST_WINDOWS)
    create_topic(b)
    # Every client id gets 10 KB/s; "vip" has its own 100 MB/s.
    set_quota(b, {"client-id": None}, producer_byte_rate=10240)
    set_quota(b, {"client-id": "vip"}, producer_byte_rate=104857600)
    st = Stats()
    dt = produce(b, "vip", 300, 1000, stats=st)
    assert dt < 5 and st.throttle_max == 0, (dt, st.throttle_max)
    st = Stats()
    dt = produce(b, "plain", 60, 1000, stats=st)  # 60 KB at 10 KB/s
    assert st.throttle_max > 0
    # A user quota (the default user: these clients are User:ANONYMOUS)
    # wins over both client-id entities.
    set_quota(b, {"user": "ANONYMOUS"}, producer_byte_rate=104857600)
    st = Stats()
    dt = produce(b, "plain2", 300, 1000, stats=st)
    assert dt < 5 and st.throttle_max == 0, (dt, st.throttle_max)


def uvarint(b, i):
    shift = v = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def compact(s):
    b = s.encode()
    return bytes([len(b) + 1]) + b


def create_topics_raw(port, ver, name, partitions, client_id):
    """CreateTopics v5/v6 (flexible): (error code, throttle ms) of the one topic."""
    body = bytes([2]) + compact(name) + struct.pack(">ih", partitions, 1) + bytes([1, 1, 0])
    body += struct.pack(">ib", 10000, 0) + b"\x00"
    r = raw_request(port, 19, ver, body=body, client_id=client_id, flexible=True)
    i = 4 + 1  # correlation id, response header tags
    throttle = struct.unpack(">i", r[i:i + 4])[0]
    i += 4
    n, i = uvarint(r, i)
    assert n == 2
    ln, i = uvarint(r, i)
    i += ln - 1
    code = struct.unpack(">h", r[i:i + 2])[0]
    return code, throttle


def test_controller_mutation_rate(broker_factory):
    b = broker_factory(FAST_WINDOWS)
    set_quota(b, {"client-id": "mut"}, controller_mutation_rate=1)
    # A burst of 3 partitions (1/s over 3 windows); the request that goes
    # past it is accepted and throttled for the debt: 3 - 5 = -2 -> ~2 s.
    code, throttle = create_topics_raw(b.port, 6, "m1", 5, b"mut")
    assert code == 0 and 1500 <= throttle <= 2500, (code, throttle)
    # While in debt, strict versions (v6+) are refused ...
    code, throttle = create_topics_raw(b.port, 6, "m2", 1, b"mut")
    assert code == 89 and throttle > 0, (code, throttle)  # THROTTLING_QUOTA_EXCEEDED
    # ... older ones are created and throttled.
    code, throttle = create_topics_raw(b.port, 5, "m3", 1, b"mut")
    assert code == 0 and throttle > 0, (code, throttle)
    # Another client id is not limited.
    assert create_topics_raw(b.port, 6, "m4", 20, b"free") == (0, 0)
    time.sleep(4)  # the bucket refills (1 token a second)
    assert create_topics_raw(b.port, 6, "m5", 1, b"mut") == (0, 0)


class SaslSession:
    """One connection authenticated with SASL/PLAIN (SaslHandshake v1,
    SaslAuthenticate v0); send(key, version, body) -> the response frame."""

    def __init__(self, port, user, password):
        import socket
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.corr = 0
        r = self.send(17, 1, s16("PLAIN"))
        assert struct.unpack(">h", r[4:6])[0] == 0
        token = b"\x00" + user.encode() + b"\x00" + password.encode()
        r = self.send(36, 0, struct.pack(">i", len(token)) + token)
        self.auth_error = struct.unpack(">h", r[4:6])[0]

    def send(self, key, ver, body):
        from test_api_versions import recv_exact
        self.corr += 1
        hdr = struct.pack(">hhih", key, ver, self.corr, 4) + b"sasl"
        frame = hdr + body
        self.s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", recv_exact(self.s, 4))[0]
        return recv_exact(self.s, size)

    def close(self):
        self.s.close()


def test_quota_apis_need_cluster_config_acls(tmp_path, request):
    from conftest import Broker
    from test_acls import AUTHORIZER, JAAS
    b = Broker(tmp_path / "sec", {})
    b.overrides.update({"listeners": "SASL_PLAINTEXT://127.0.0.1:%d" % b.port,
                        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
                        "authorizer.class.name": AUTHORIZER, "super.users": "User:admin"})
    b.start()
    try:
        alice = SaslSession(b.port, "alice", "alice-secret")
        admin = SaslSession(b.port, "admin", "admin-secret")
        assert alice.auth_error == 0 and admin.auth_error == 0
        change = [({"user": "alice"}, [("producer_byte_rate", 1024, False)])]
        assert alter(b.port, change, send=alice.send)[0][0] == 31  # CLUSTER_AUTHORIZATION_FAILED
        assert describe(b.port, [], send=alice.send)[0] == 31
        assert alter(b.port, change, send=admin.send) == [(0, None)]
        code, _, got = describe(b.port, [], send=admin.send)
        assert code == 0 and got == {ent(user="alice"): {"producer_byte_rate": 1024.0}}
        alice.close()
        # A user quota applies to the SASL user's name (no User: prefix).
        assert alter(b.port, [({"user": "admin"}, [("producer_byte_rate", 10240, False)])],
                     send=admin.send) == [(0, None)]
        admin.close()
        from confluent_kafka import Producer
        from test_acls import create_topics, rdk
        create_topics(b, ["q"])
        st = Stats()
        p = Producer(dict({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "statistics.interval.ms": 200,
                           "stats_cb": st.cb}, **rdk("admin")))
        for _ in range(200):  # 200 KB at 10 KB/s: well past the first burst
            p.produce("q", b"x" * 1000)
            p.poll(0)
        assert p.flush(60) == 0
        p.poll(0.5)
        assert st.throttle_max > 0  # the answers carried throttle_time_ms
    finally:
        assert b.stop() in (0, None), b.log()[-3000:]


def test_quotas_are_forwarded_and_replicate(cluster):
    from test_cluster import wait_for, wait_formed
    nodes = cluster(3)
    controller = wait_formed(nodes)
    follower = next(n for n in nodes if n.node_id != controller)
    # AlterClientQuotas through a node that is not the active controller.
    assert alter(follower.port, [({"user": "alice", "client-id": None},
                                  [("consumer_byte_rate", 4096, False)])]) == [(0, None)]
    want = {ent(user="alice", client=None): {"consumer_byte_rate": 4096.0}}
    for n in nodes:
        wait_for("the quota on node %d" % n.node_id, lambda n=n: describe(n.port, [])[2] == want)
    assert alter(follower.port, [({"user": "alice", "client-id": None},
                                  [("consumer_byte_rate", 0, True)])]) == [(0, None)]
    for n in nodes:
        wait_for("no quota on node %d" % n.node_id, lambda n=n: describe(n.port, [])[2] == {})


def api_versions_throttle(port, client_id):
    """ApiVersions v1: the response's throttle_time_ms."""
    r = raw_request(port, 18, 1, client_id=client_id)
    n = struct.unpack(">i", r[6:10])[0]
    return struct.unpack(">i", r[10 + 6 * n:14 + 6 * n])[0]


def test_request_percentage_throttles_any_api(broker):
    # A tiny share of one handler thread: a few requests exceed it. The
    # request quota's throttle is at most one window (1 s), as in Kafka.
    set_quota(broker, {"client-id": "busy"}, request_percentage=0.0001)
    got = [api_versions_throttle(broker.port, b"busy") for _ in range(20)]
    assert max(got) > 0 and max(got) <= 1000, got
    assert api_versions_throttle(broker.port, b"idle") == 0
