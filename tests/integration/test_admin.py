"""Metadata and admin APIs against a real sluiced.

Uses confluent_kafka's AdminClient (librdkafka), kafka-python's
KafkaAdminClient and kcat where they cover an API, and hand-built frames
where no installed client speaks the version or API in question
(IncrementalAlterConfigs, DescribeCluster, DescribeLogDirs, Metadata by
topic id).
"""
import io
import socket
import struct
import subprocess
import time
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
from kafka.admin import ConfigResource as KPConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient
from kafka.admin import NewPartitions as KPNewPartitions
from kafka.admin import NewTopic as KPNewTopic
from kafka import errors as kerrors
from kafka.protocol.metadata import MetadataRequest, MetadataResponse

# Kafka error codes used below.
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_CONFIG = 40
INVALID_REQUEST = 42
UNKNOWN_TOPIC_ID = 100

# ConfigSource codes.
DYNAMIC_TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5


# ---- raw frames --------------------------------------------------------------------------------

def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def raw_request(port, api_key, api_version, body, flexible=False, corr=11):
    """Sends one request and returns the response body (after the header)."""
    client_id = b"test_admin"
    hdr = struct.pack(">hhih", api_key, api_version, corr, len(client_id)) + client_id
    if flexible:
        hdr += b"\x00"
    frame = hdr + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    assert struct.unpack(">i", resp[:4])[0] == corr
    # Response header v1 (flexible) carries tagged fields; ApiVersions aside.
    return resp[5:] if flexible else resp[4:]


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
    """Compact (nullable) string."""
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def pstr(s):
    """Classic (nullable) string."""
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Reader:
    def __init__(self, data):
        self.d = data
        self.p = 0

    def take(self, n):
        out = self.d[self.p:self.p + n]
        assert len(out) == n, "truncated response"
        self.p += n
        return out

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        shift = out = 0
        while True:
            b = self.take(1)[0]
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7

    def cstr(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def pstr(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def carray(self):
        return self.uvarint() - 1

    def array(self):
        return self.i32()

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def metadata_v12(port, topics, allow_auto=False):
    """topics: list of (uuid bytes, name or None). Returns [(error, name, id, n_partitions)]."""
    body = uvarint(len(topics) + 1)
    for tid, name in topics:
        body += tid + cstr(name) + b"\x00"
    body += bytes([1 if allow_auto else 0, 0]) + b"\x00"
    r = Reader(raw_request(port, 3, 12, body, flexible=True))
    r.i32()  # throttle
    for _ in range(r.carray()):
        r.i32(), r.cstr(), r.i32(), r.cstr(), r.tags()
    r.cstr(), r.i32()  # cluster id, controller
    out = []
    for _ in range(r.carray()):
        err, name, tid, _internal = r.i16(), r.cstr(), r.take(16), r.i8()
        nparts = r.carray()
        for _ in range(nparts):
            r.i16(), r.i32(), r.i32(), r.i32()
            for _ in range(3):
                for _ in range(r.carray()):
                    r.i32()
            r.tags()
        r.i32()
        r.tags()
        out.append((err, name, tid, nparts))
    return out


def metadata_classic(port, version, topics, allow_auto=True):
    """Metadata v0-v5 through kafka-python's codec; returns the decoded response."""
    kwargs = {"topics": topics}
    if version >= 4:
        kwargs["allow_auto_topic_creation"] = allow_auto
    req = MetadataRequest[version](**kwargs)  # encode() holds only a weak reference to it
    body = req.encode()
    return MetadataResponse[version].decode(io.BytesIO(raw_request(port, 3, version, body)))


def incremental_alter(port, resources, validate_only=False):
    """IncrementalAlterConfigs v0. resources: [(type, name, [(key, op, value)])]."""
    body = struct.pack(">i", len(resources))
    for rtype, name, configs in resources:
        body += struct.pack(">b", rtype) + pstr(name) + struct.pack(">i", len(configs))
        for key, op, value in configs:
            body += pstr(key) + struct.pack(">b", op) + pstr(value)
    body += bytes([1 if validate_only else 0])
    r = Reader(raw_request(port, 44, 0, body))
    r.i32()
    out = []
    for _ in range(r.array()):
        out.append((r.i16(), r.pstr(), r.i8(), r.pstr()))
    return out


def describe_configs_v0(port, resources):
    """DescribeConfigs v0. resources: [(type, name, keys or None)] -> [(error, name, {key: value})]."""
    body = struct.pack(">i", len(resources))
    for rtype, name, keys in resources:
        body += struct.pack(">b", rtype) + pstr(name)
        if keys is None:
            body += struct.pack(">i", -1)
        else:
            body += struct.pack(">i", len(keys)) + b"".join(pstr(k) for k in keys)
    r = Reader(raw_request(port, 32, 0, body))
    r.i32()
    out = []
    for _ in range(r.array()):
        err, _msg, _type, name = r.i16(), r.pstr(), r.i8(), r.pstr()
        configs = {}
        for _ in range(r.array()):
            key, value, _ro, _default, _sens = r.pstr(), r.pstr(), r.i8(), r.i8(), r.i8()
            configs[key] = value
        out.append((err, name, configs))
    return out


def describe_cluster(port):
    r = Reader(raw_request(port, 60, 0, b"\x00\x00", flexible=True))
    r.i32()
    err, msg, cluster_id, controller = r.i16(), r.cstr(), r.cstr(), r.i32()
    brokers = []
    for _ in range(r.carray()):
        brokers.append((r.i32(), r.cstr(), r.i32(), r.cstr()))
        r.tags()
    return err, msg, cluster_id, controller, brokers


def describe_log_dirs_v4(port):
    body = b"\x00\x00"  # null topics: everything; no tags
    r = Reader(raw_request(port, 35, 4, body, flexible=True))
    r.i32()
    assert r.i16() == 0
    dirs = []
    for _ in range(r.carray()):
        err, path = r.i16(), r.cstr()
        topics = {}
        for _ in range(r.carray()):
            name = r.cstr()
            parts = {}
            for _ in range(r.carray()):
                idx, size, lag, _future = r.i32(), r.i64(), r.i64(), r.i8()
                r.tags()
                parts[idx] = (size, lag)
            r.tags()
            topics[name] = parts
        total, usable = r.i64(), r.i64()
        r.tags()
        dirs.append((err, path, topics, total, usable))
    return dirs


# ---- client helpers ------------------------------------------------------------------------------

def admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap, "socket.timeout.ms": 10000})


def kp_admin(b):
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=10000, api_version_auto_timeout_ms=5000)


def results(futures):
    """{key: None or KafkaError} from a dict of confluent futures."""
    out = {}
    for k, f in futures.items():
        try:
            f.result(timeout=15)
            out[k] = None
        except KafkaException as e:
            out[k] = e.args[0]
    return out


def topic_names(b):
    return set(admin(b).list_topics(timeout=10).topics)


def kcat_list(b, topic=None):
    args = ["kcat", "-b", b.bootstrap, "-L", "-m", "10"]
    if topic:
        args += ["-t", topic]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


# ---- tests ----------------------------------------------------------------------------------------

def test_create_list_describe_delete_confluent(broker):
    a = admin(broker)
    res = results(a.create_topics([NewTopic("alpha", 3, 1), NewTopic("beta", 1, 1)], request_timeout=10))
    assert res == {"alpha": None, "beta": None}
    md = a.list_topics(timeout=10)
    assert {"alpha", "beta"} <= set(md.topics)
    assert sorted(md.topics["alpha"].partitions) == [0, 1, 2]
    p = md.topics["alpha"].partitions[1]
    assert p.leader == 1 and p.replicas == [1] and p.isrs == [1]
    assert list(md.brokers) == [1] and md.brokers[1].port == broker.port
    assert md.controller_id == 1
    out = kcat_list(broker)
    assert 'topic "alpha" with 3 partitions' in out and 'topic "beta" with 1 partitions' in out
    assert results(a.delete_topics(["beta"], request_timeout=10)) == {"beta": None}
    assert "beta" not in topic_names(broker)
    err = results(a.delete_topics(["beta"], request_timeout=10))["beta"]
    assert err.code() == UNKNOWN_TOPIC_OR_PARTITION


def test_create_errors_confluent(broker):
    a = admin(broker)
    assert results(a.create_topics([NewTopic("dup", 2, 1)]))["dup"] is None
    res = results(a.create_topics([
        NewTopic("dup", 2, 1),
        NewTopic("bad name!", 1, 1),
        NewTopic(".", 1, 1),
        NewTopic("x" * 250, 1, 1),
        NewTopic("rf3", 1, 3),
        NewTopic("badcfg", 1, 1, config={"retention.ms": "soon"}),
        NewTopic("unknowncfg", 1, 1, config={"no.such.key": "1"}),
        NewTopic("assign_other", 1, replica_assignment=[[2]]),
        NewTopic("assign_ok", 2, replica_assignment=[[1], [1]]),
    ]))
    assert res["dup"].code() == TOPIC_ALREADY_EXISTS
    assert res["bad name!"].code() == INVALID_TOPIC_EXCEPTION
    assert res["."].code() == INVALID_TOPIC_EXCEPTION
    assert res["x" * 250].code() == INVALID_TOPIC_EXCEPTION
    assert res["rf3"].code() == INVALID_REPLICATION_FACTOR
    assert "single broker" in res["rf3"].str()
    assert res["badcfg"].code() == INVALID_CONFIG
    assert res["unknowncfg"].code() == INVALID_CONFIG
    assert res["assign_other"].code() == INVALID_REPLICA_ASSIGNMENT
    assert res["assign_ok"] is None
    names = topic_names(broker)
    assert "assign_ok" in names and "rf3" not in names and "badcfg" not in names
    assert len(admin(broker).list_topics(topic="assign_ok", timeout=10).topics["assign_ok"].partitions) == 2


def test_create_with_configs_and_validate_only(broker):
    a = admin(broker)
    res = results(a.create_topics([NewTopic("checked", 4, 1, config={"cleanup.policy": "compact"})],
                                  validate_only=True))
    assert res == {"checked": None}
    assert "checked" not in topic_names(broker)
    res = results(a.create_topics([NewTopic("checked", 4, 1, config={"cleanup.policy": "compact"})],
                                  validate_only=True, request_timeout=10))
    assert res == {"checked": None}
    res = results(a.create_topics([NewTopic("withcfg", 2, 1, config={"retention.ms": "3600000",
                                                                      "cleanup.policy": "compact"})]))
    assert res == {"withcfg": None}
    cfg = a.describe_configs([ConfigResource("topic", "withcfg")])
    entries = list(cfg.values())[0].result(timeout=10)
    assert entries["retention.ms"].value == "3600000"
    assert entries["retention.ms"].source == DYNAMIC_TOPIC_CONFIG
    assert entries["cleanup.policy"].value == "compact"
    assert entries["segment.bytes"].source == DEFAULT_CONFIG
    assert entries["retention.ms"].is_read_only is False


def test_kafka_python_admin(broker):
    a = kp_admin(broker)
    try:
        a.create_topics([KPNewTopic("kp1", 2, 1, topic_configs={"retention.bytes": "1048576"})])
        with pytest.raises(kerrors.TopicAlreadyExistsError):
            a.create_topics([KPNewTopic("kp1", 2, 1)])
        with pytest.raises(kerrors.InvalidReplicationFactorError):
            a.create_topics([KPNewTopic("kp2", 1, 3)])
        with pytest.raises(kerrors.InvalidTopicError):
            a.create_topics([KPNewTopic("bad/name", 1, 1)])
        a.create_topics([KPNewTopic("kp3", 1, 1)], validate_only=True)
        assert "kp1" in a.list_topics() and "kp3" not in a.list_topics()
        desc = {t["topic"]: t for t in a.describe_topics(["kp1"])}
        assert len(desc["kp1"]["partitions"]) == 2
        a.create_partitions({"kp1": KPNewPartitions(total_count=5)})
        assert len(a.describe_topics(["kp1"])[0]["partitions"]) == 5
        with pytest.raises(kerrors.InvalidPartitionsError):
            a.create_partitions({"kp1": KPNewPartitions(total_count=3)})
        resp = a.describe_configs([KPConfigResource(ConfigResourceType.TOPIC, "kp1")], include_synonyms=True)
        (err, _msg, _type, name, configs), = resp[0].resources
        assert err == 0 and name == "kp1"
        by_name = {c[0]: c for c in configs}
        # v1+ entry: name, value, read_only, source, sensitive, synonyms
        assert by_name["retention.bytes"][1] == "1048576"
        assert by_name["retention.bytes"][3] == DYNAMIC_TOPIC_CONFIG
        syn = by_name["retention.bytes"][5]
        assert [s[2] for s in syn] == [DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG]
        assert syn[1][0] == "log.retention.bytes"
        a.alter_configs([KPConfigResource(ConfigResourceType.TOPIC, "kp1", configs={"retention.ms": "5000"})])
        resp = a.describe_configs([KPConfigResource(ConfigResourceType.TOPIC, "kp1",
                                                    configs={"retention.ms": None, "retention.bytes": None})])
        got = {c[0]: c[1] for c in resp[0].resources[0][4]}
        # AlterConfigs replaces the whole set: retention.bytes is back to the default.
        assert got == {"retention.ms": "5000", "retention.bytes": "-1"}
        a.delete_topics(["kp1"])
        assert "kp1" not in a.list_topics()
        cluster = a.describe_cluster()
        assert cluster["controller_id"] == 1 and cluster["brokers"][0]["port"] == broker.port
    finally:
        a.close()


def test_create_partitions_confluent(broker):
    a = admin(broker)
    assert results(a.create_topics([NewTopic("grow", 2, 1)]))["grow"] is None
    assert results(a.create_partitions([NewPartitions("grow", 4)], validate_only=True))["grow"] is None
    assert len(a.list_topics(topic="grow", timeout=10).topics["grow"].partitions) == 2
    assert results(a.create_partitions([NewPartitions("grow", 6)]))["grow"] is None
    assert len(a.list_topics(topic="grow", timeout=10).topics["grow"].partitions) == 6
    res = results(a.create_partitions([NewPartitions("grow", 6)]))
    assert res["grow"].code() == INVALID_PARTITIONS
    res = results(a.create_partitions([NewPartitions("grow", 8, replica_assignment=[[1], [2]])]))
    assert res["grow"].code() == INVALID_REPLICA_ASSIGNMENT
    res = results(a.create_partitions([NewPartitions("nope", 3)]))
    assert res["nope"].code() == UNKNOWN_TOPIC_OR_PARTITION


def test_describe_configs_sources_and_synonyms(broker_factory):
    b = broker_factory({"log.retention.hours": "48", "num.partitions": "2"})
    a = admin(b)
    assert results(a.create_topics([NewTopic("cfg", 1, 1, config={"segment.bytes": "1048576"})]))["cfg"] is None
    res = a.describe_configs([ConfigResource("topic", "cfg")])
    entries = list(res.values())[0].result(timeout=10)
    # retention.ms comes from the broker's log.retention.hours, in the topic key's unit.
    rm = entries["retention.ms"]
    assert rm.value == str(48 * 3600 * 1000) and rm.source == STATIC_BROKER_CONFIG
    # confluent_kafka keys synonyms by name, so a key that is both set and
    # defaulted shows once; kafka-python below shows the whole list.
    assert "log.retention.hours" in rm.synonyms
    sb = entries["segment.bytes"]
    assert sb.value == "1048576" and sb.source == DYNAMIC_TOPIC_CONFIG
    assert [s.source for s in sb.synonyms.values()][0] == DYNAMIC_TOPIC_CONFIG

    res = a.describe_configs([ConfigResource("broker", "1")])
    entries = list(res.values())[0].result(timeout=10)
    assert entries["num.partitions"].value == "2"
    assert entries["num.partitions"].source == STATIC_BROKER_CONFIG
    assert entries["num.partitions"].is_read_only
    assert entries["message.max.bytes"].source == DEFAULT_CONFIG

    kp = kp_admin(b)
    try:
        resp = kp.describe_configs([KPConfigResource(ConfigResourceType.TOPIC, "cfg", configs={"retention.ms": None})],
                                   include_synonyms=True)
        (name, value, _ro, source, _sens, syn), = resp[0].resources[0][4]
        assert (name, value, source) == ("retention.ms", str(48 * 3600 * 1000), STATIC_BROKER_CONFIG)
        assert [tuple(s) for s in syn] == [("log.retention.hours", "48", STATIC_BROKER_CONFIG),
                                           ("log.retention.hours", "168", DEFAULT_CONFIG)]
    finally:
        kp.close()

    # Unknown topic and a broker that is not this one.
    res = a.describe_configs([ConfigResource("topic", "missing")])
    with pytest.raises(KafkaException) as ei:
        list(res.values())[0].result(timeout=10)
    assert ei.value.args[0].code() == UNKNOWN_TOPIC_OR_PARTITION
    # Raw v0: the broker by empty name, another broker id, a logger, an unknown type.
    out = describe_configs_v0(b.port, [(4, "", ["num.partitions", "no.such"]), (4, "7", None), (8, "1", None),
                                       (77, "x", None), (2, "cfg", ["segment.bytes"])])
    assert out[0] == (0, "", {"num.partitions": "2"})
    assert [o[0] for o in out[1:4]] == [INVALID_REQUEST] * 3
    assert out[4] == (0, "cfg", {"segment.bytes": "1048576"})


def test_alter_configs_confluent(broker):
    a = admin(broker)
    assert results(a.create_topics([NewTopic("alt", 1, 1, config={"retention.ms": "1000"})]))["alt"] is None
    res = a.alter_configs([ConfigResource("topic", "alt", set_config={"max.message.bytes": "2000"})])
    list(res.values())[0].result(timeout=10)
    entries = list(a.describe_configs([ConfigResource("topic", "alt")]).values())[0].result(timeout=10)
    assert entries["max.message.bytes"].value == "2000"
    assert entries["retention.ms"].source == DEFAULT_CONFIG  # replaced, not merged
    # Invalid value and validate_only leave the topic alone.
    res = a.alter_configs([ConfigResource("topic", "alt", set_config={"max.message.bytes": "-5"})])
    with pytest.raises(KafkaException) as ei:
        list(res.values())[0].result(timeout=10)
    assert ei.value.args[0].code() == INVALID_CONFIG
    res = a.alter_configs([ConfigResource("topic", "alt", set_config={"max.message.bytes": "3000"})],
                          validate_only=True)
    list(res.values())[0].result(timeout=10)
    entries = list(a.describe_configs([ConfigResource("topic", "alt")]).values())[0].result(timeout=10)
    assert entries["max.message.bytes"].value == "2000"
    # Broker resources cannot be altered yet.
    res = a.alter_configs([ConfigResource("broker", "1", set_config={"num.partitions": "3"})])
    with pytest.raises(KafkaException) as ei:
        list(res.values())[0].result(timeout=10)
    assert ei.value.args[0].code() == INVALID_REQUEST


def test_incremental_alter_configs(broker):
    a = admin(broker)
    assert results(a.create_topics([NewTopic("inc", 1, 1, config={"retention.ms": "1000"})]))["inc"] is None
    SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

    def current():
        entries = list(a.describe_configs([ConfigResource("topic", "inc")]).values())[0].result(timeout=10)
        return {k: (v.value, v.source) for k, v in entries.items()}

    out = incremental_alter(broker.port, [(2, "inc", [("segment.ms", SET, "60000")])])
    assert out == [(0, None, 2, "inc")]
    cur = current()
    assert cur["segment.ms"] == ("60000", DYNAMIC_TOPIC_CONFIG)
    assert cur["retention.ms"] == ("1000", DYNAMIC_TOPIC_CONFIG)  # kept
    out = incremental_alter(broker.port, [(2, "inc", [("cleanup.policy", APPEND, "compact")])])
    assert out[0][0] == 0
    assert current()["cleanup.policy"][0] == "delete,compact"
    out = incremental_alter(broker.port, [(2, "inc", [("cleanup.policy", SUBTRACT, "delete")])])
    assert out[0][0] == 0
    assert current()["cleanup.policy"] == ("compact", DYNAMIC_TOPIC_CONFIG)
    out = incremental_alter(broker.port, [(2, "inc", [("retention.ms", DELETE, None)])])
    assert out[0][0] == 0
    assert current()["retention.ms"][1] == DEFAULT_CONFIG
    # APPEND to a non-list key, an unknown key, a bad value, validate_only, unknown topic, broker.
    assert incremental_alter(broker.port, [(2, "inc", [("retention.ms", APPEND, "5")])])[0][0] == INVALID_CONFIG
    assert incremental_alter(broker.port, [(2, "inc", [("nope.nope", SET, "5")])])[0][0] == INVALID_CONFIG
    assert incremental_alter(broker.port, [(2, "inc", [("segment.ms", SET, "x")])])[0][0] == INVALID_CONFIG
    out = incremental_alter(broker.port, [(2, "inc", [("segment.ms", SET, "120000")])], validate_only=True)
    assert out[0][0] == 0 and current()["segment.ms"][0] == "60000"
    assert incremental_alter(broker.port, [(2, "zzz", [("segment.ms", SET, "1")])])[0][0] == \
        UNKNOWN_TOPIC_OR_PARTITION
    err, msg, _, _ = incremental_alter(broker.port, [(4, "1", [("num.partitions", SET, "3")])])[0]
    assert err == INVALID_REQUEST and "not supported" in msg
    assert incremental_alter(broker.port, [(99, "x", [])])[0][0] == INVALID_REQUEST


def test_metadata_versions_and_auto_creation(broker_factory):
    b = broker_factory({"num.partitions": "3"})
    a = admin(b)
    assert results(a.create_topics([NewTopic("known", 1, 1)]))["known"] is None
    # v0: an empty list means every topic; v1+: an empty list means none, null means all.
    r0 = metadata_classic(b.port, 0, [])
    assert "known" in [t[1] for t in r0.topics]
    r1 = metadata_classic(b.port, 1, [])
    assert r1.topics == []
    r1 = metadata_classic(b.port, 1, None)
    assert "known" in [t[1] for t in r1.topics]
    # v4 with allow_auto_topic_creation false: unknown stays unknown.
    r4 = metadata_classic(b.port, 4, ["ghost"], allow_auto=False)
    assert [(t[0], t[1]) for t in r4.topics] == [(UNKNOWN_TOPIC_OR_PARTITION, "ghost")]
    assert "ghost" not in topic_names(b)
    # Invalid names are reported as such and never created.
    r4 = metadata_classic(b.port, 4, ["bad name"], allow_auto=True)
    assert r4.topics[0][0] == INVALID_TOPIC_EXCEPTION
    # Allowed: created at once with the broker defaults, returned ready.
    r4 = metadata_classic(b.port, 4, ["ghost", "ghost"], allow_auto=True)
    assert len(r4.topics) == 1
    err, name, _internal, parts = r4.topics[0]
    assert (err, name, len(parts)) == (0, "ghost", 3)
    # Reserved internal topics are left to their coordinators.
    err, name, internal, _ = metadata_classic(b.port, 4, ["__consumer_offsets"], allow_auto=True).topics[0]
    assert err == UNKNOWN_TOPIC_OR_PARTITION or (err == 0 and internal)
    # v1 (no allow flag): always allowed.
    r1 = metadata_classic(b.port, 1, ["ghost2"])
    assert r1.topics[0][0] == 0 and "ghost2" in topic_names(b)
    # kafka-python and kcat see them.
    assert "ghost" in kcat_list(b, "ghost")


def test_metadata_without_auto_creation(broker_factory):
    b = broker_factory({"auto.create.topics.enable": "false"})
    r4 = metadata_classic(b.port, 4, ["ghost"], allow_auto=True)
    assert r4.topics[0][0] == UNKNOWN_TOPIC_OR_PARTITION
    md = admin(b).list_topics(topic="ghost", timeout=10)
    assert md.topics["ghost"].error.code() == UNKNOWN_TOPIC_OR_PARTITION
    assert "ghost" not in topic_names(b)


def test_metadata_topic_ids_and_delete_by_id(broker):
    a = admin(broker)
    assert results(a.create_topics([NewTopic("ided", 2, 1)]))["ided"] is None
    zero = bytes(16)
    (err, name, tid, n), = metadata_v12(broker.port, [(zero, "ided")])
    assert (err, name, n) == (0, "ided", 2) and tid != zero
    (err, name, tid2, n), = metadata_v12(broker.port, [(tid, None)])
    assert (err, name, tid2, n) == (0, "ided", tid, 2)
    missing = uuid.uuid4().bytes
    (err, name, _, _), = metadata_v12(broker.port, [(missing, None)])
    assert (err, name) == (UNKNOWN_TOPIC_ID, None)
    # DeleteTopics v6 by id.
    body = uvarint(2) + cstr(None) + tid + b"\x00" + struct.pack(">i", 10000) + b"\x00"
    r = Reader(raw_request(broker.port, 20, 6, body, flexible=True))
    r.i32()
    assert r.carray() == 1
    assert (r.cstr(), r.take(16), r.i16()) == ("ided", tid, 0)
    assert "ided" not in topic_names(broker)


def test_describe_cluster_and_log_dirs(broker):
    a = admin(broker)
    assert results(a.create_topics([NewTopic("dirs", 2, 1)]))["dirs"] is None
    err, msg, cluster_id, controller, brokers = describe_cluster(broker.port)
    assert err == 0 and msg is None and controller == 1 and len(cluster_id) == 22
    assert brokers == [(1, "127.0.0.1", broker.port, None)]
    dirs = describe_log_dirs_v4(broker.port)
    assert len(dirs) == 1
    err, path, topics, total, usable = dirs[0]
    assert err == 0 and path.endswith("logs")
    assert topics["dirs"].keys() == {0, 1}
    assert all(size >= 0 and lag == 0 for size, lag in topics["dirs"].values())
    assert total > 0 and 0 <= usable <= total


def test_thousand_partitions(broker):
    a = admin(broker)
    t0 = time.time()
    res = results(a.create_topics([NewTopic("wide", 1000, 1)], request_timeout=30))
    assert res == {"wide": None}
    names = ["many%03d" % i for i in range(50)]
    assert set(results(a.create_topics([NewTopic(n, 2, 1) for n in names], request_timeout=30)).values()) == {None}
    md = a.list_topics(timeout=20)
    assert len(md.topics["wide"].partitions) == 1000
    assert set(names) <= set(md.topics)
    out = kcat_list(broker, "wide")
    assert 'topic "wide" with 1000 partitions' in out
    kp = kp_admin(broker)
    try:
        assert len(kp.describe_topics(["wide"])[0]["partitions"]) == 1000
    finally:
        kp.close()
    assert time.time() - t0 < 30


def test_topics_and_configs_survive_restart(broker):
    a = admin(broker)
    assert results(a.create_topics([NewTopic("keep", 3, 1, config={"retention.ms": "7200000"}),
                                    NewTopic("drop", 1, 1)]))["keep"] is None
    assert results(a.create_partitions([NewPartitions("keep", 5)]))["keep"] is None
    assert incremental_alter(broker.port, [(2, "keep", [("cleanup.policy", 0, "compact")])])[0][0] == 0
    assert results(a.delete_topics(["drop"]))["drop"] is None
    (_, _, tid, _), = metadata_v12(broker.port, [(bytes(16), "keep")])
    broker.restart()
    a = admin(broker)
    md = a.list_topics(timeout=10)
    assert "keep" in md.topics and "drop" not in md.topics
    assert len(md.topics["keep"].partitions) == 5
    entries = list(a.describe_configs([ConfigResource("topic", "keep")]).values())[0].result(timeout=10)
    assert entries["retention.ms"].value == "7200000"
    assert entries["cleanup.policy"].value == "compact"
    (err, _, tid2, n), = metadata_v12(broker.port, [(bytes(16), "keep")])
    assert (err, tid2, n) == (0, tid, 5)


def create_topics_v7(port, topics, validate_only=False):
    """topics: [(name, partitions, rf, {key: value})] -> [(name, id, err, msg, parts, rf, {key: (value, source)})]."""
    body = uvarint(len(topics) + 1)
    for name, parts, rf, cfg in topics:
        body += cstr(name) + struct.pack(">ih", parts, rf) + uvarint(1)
        body += uvarint(len(cfg) + 1) + b"".join(cstr(k) + cstr(v) + b"\x00" for k, v in cfg.items()) + b"\x00"
    body += struct.pack(">i", 10000) + bytes([1 if validate_only else 0]) + b"\x00"
    r = Reader(raw_request(port, 19, 7, body, flexible=True))
    r.i32()
    out = []
    for _ in range(r.carray()):
        name, tid, err, msg, parts, rf = r.cstr(), r.take(16), r.i16(), r.cstr(), r.i32(), r.i16()
        configs = None
        n = r.carray()
        if n >= 0:
            configs = {}
            for _ in range(n):
                key, value, _ro, source, _sens = r.cstr(), r.cstr(), r.i8(), r.i8(), r.i8()
                r.tags()
                configs[key] = (value, source)
        r.tags()
        out.append((name, tid, err, msg, parts, rf, configs))
    return out


def describe_configs_v4(port, rtype, name, keys, synonyms=True, docs=True):
    body = uvarint(2) + struct.pack(">b", rtype) + cstr(name)
    body += uvarint(len(keys) + 1) + b"".join(cstr(k) for k in keys) + b"\x00"
    body += bytes([1 if synonyms else 0, 1 if docs else 0]) + b"\x00"
    r = Reader(raw_request(port, 32, 4, body, flexible=True))
    r.i32()
    assert r.carray() == 1
    err, _msg, _type, _name = r.i16(), r.cstr(), r.i8(), r.cstr()
    configs = {}
    for _ in range(r.carray()):
        key, value, ro, source, sens = r.cstr(), r.cstr(), r.i8(), r.i8(), r.i8()
        syn = []
        for _ in range(r.carray()):
            syn.append((r.cstr(), r.cstr(), r.i8()))
            r.tags()
        ctype, doc = r.i8(), r.cstr()
        r.tags()
        configs[key] = {"value": value, "read_only": ro, "source": source, "sensitive": sens, "synonyms": syn,
                        "type": ctype, "doc": doc}
    r.tags()
    return err, configs


def test_flexible_versions_create_v7_describe_v4(broker):
    zero = bytes(16)
    out = create_topics_v7(broker.port, [("flex", 3, -1, {"retention.ms": "60000"}), ("flex", 1, 1, {})])
    # The same name twice in one request: both copies refused.
    assert [o[2] for o in out] == [INVALID_REQUEST, INVALID_REQUEST]
    out = create_topics_v7(broker.port, [("flex", 3, -1, {"retention.ms": "60000"})], validate_only=True)
    (name, tid, err, msg, parts, rf, configs), = out
    assert (name, tid, err, msg, parts, rf) == ("flex", zero, 0, None, 3, 1)
    assert configs["retention.ms"] == ("60000", DYNAMIC_TOPIC_CONFIG)
    (name, tid, err, msg, parts, rf, configs), = create_topics_v7(broker.port, [("flex", 3, -1,
                                                                                 {"retention.ms": "60000"})])
    assert (err, parts, rf) == (0, 3, 1) and tid != zero
    assert configs["cleanup.policy"] == ("delete", DEFAULT_CONFIG)
    (_, _, tid2, _), = metadata_v12(broker.port, [(zero, "flex")])
    assert tid2 == tid
    (_, _, err, msg, parts, _, configs), = create_topics_v7(broker.port, [("flex", 0, 1, {})])
    assert err == INVALID_PARTITIONS  # argument checks come before the existence check
    assert msg

    err, configs = describe_configs_v4(broker.port, 2, "flex", ["retention.ms", "cleanup.policy", "segment.bytes"])
    assert err == 0 and set(configs) == {"retention.ms", "cleanup.policy", "segment.bytes"}
    rm = configs["retention.ms"]
    assert rm["value"] == "60000" and rm["source"] == DYNAMIC_TOPIC_CONFIG and rm["read_only"] == 0
    assert rm["type"] == 5 and rm["doc"]  # LONG, documented
    assert rm["synonyms"][0] == ("retention.ms", "60000", DYNAMIC_TOPIC_CONFIG)
    assert ("log.retention.hours", "168", DEFAULT_CONFIG) in rm["synonyms"]
    assert configs["cleanup.policy"]["type"] == 7  # LIST
    err, configs = describe_configs_v4(broker.port, 4, "1", ["auto.create.topics.enable"], docs=False)
    ac = configs["auto.create.topics.enable"]
    assert err == 0 and ac["type"] == 1 and ac["read_only"] == 1 and ac["doc"] is None
