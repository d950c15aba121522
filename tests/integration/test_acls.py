"""ACLs: the ACL APIs and the authorizer (authorizer.class.name) with real clients.

Brokers are real sluiced processes (conftest's Broker). Admin calls go through
kafka-python's KafkaAdminClient (create_acls / describe_acls / delete_acls,
ACL APIs v0-1) and raw frames for the flexible versions; produce and consume
through confluent_kafka (librdkafka) over SASL/PLAIN. Every wait is bounded.
"""
import socket
import struct
import time

import pytest
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         KafkaAdminClient, ResourcePattern, ResourcePatternFilter, ResourceType)
from kafka.errors import SecurityDisabledError

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def raw(port, key, ver, body, flexible):
    hdr = struct.pack(">hhih", key, ver, 11, 3) + b"raw"
    if flexible:
        hdr += b"\x00"
    frame = hdr + body
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        return recv_exact(s, size)


def admin(broker, **kw):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000, **kw)


def any_filter():
    return ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                     permission_type=ACLPermissionType.ANY,
                     resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                            ACLResourcePatternType.ANY))


def topic_acl(principal, topic, op, perm=ACLPermissionType.ALLOW, pattern=ACLResourcePatternType.LITERAL):
    return ACL(principal=principal, host="*", operation=op, permission_type=perm,
               resource_pattern=ResourcePattern(ResourceType.TOPIC, topic, pattern))


# ---- without an authorizer ----------------------------------------------------------

def test_no_authorizer_answers_security_disabled(broker):
    a = admin(broker)
    try:
        with pytest.raises(SecurityDisabledError):
            a.describe_acls(any_filter())
        res = a.create_acls([topic_acl("User:alice", "t", ACLOperation.READ)])
        assert not res["succeeded"]
        assert len(res["failed"]) == 1 and res["failed"][0][1] is SecurityDisabledError
        out = a.delete_acls([any_filter()])
        assert len(out) == 1 and out[0][2] is SecurityDisabledError and out[0][1] == []
    finally:
        a.close()


def test_no_authorizer_flexible_versions(broker):
    # DescribeAcls v3 (flexible): resource type ANY (1), null name, pattern ANY,
    # null principal and host, operation ANY, permission ANY.
    body = b"\x01" + b"\x00" + b"\x01" + b"\x00" + b"\x00" + b"\x01" + b"\x01" + b"\x00"
    resp = raw(broker.port, 29, 3, body, flexible=True)
    # correlation id, header tags, throttle, error code
    corr, tags, throttle, err = struct.unpack(">iBih", resp[:11])
    assert corr == 11 and err == 54
    # CreateAcls v3 with one creation: every result SECURITY_DISABLED.
    def cstr(s):
        b = s.encode()
        return bytes([len(b) + 1]) + b
    creation = b"\x02" + cstr("t") + b"\x03" + cstr("User:a") + cstr("*") + b"\x03" + b"\x03" + b"\x00"
    resp = raw(broker.port, 30, 3, b"\x02" + creation + b"\x00", flexible=True)
    corr, tags, throttle, n = struct.unpack(">iBiB", resp[:10])
    assert n == 2  # compact array of one
    (err,) = struct.unpack(">h", resp[10:12])
    assert err == 54
    # ApiVersions lists the three APIs at v0-3.
    from kafka.conn import BrokerConnection
    from kafka.protocol.admin import ApiVersionRequest
    c = BrokerConnection("127.0.0.1", broker.port, socket.AF_INET, api_version=(2, 5, 0))
    assert c.connect_blocking(timeout=5)
    c.send(ApiVersionRequest[1]())
    got, deadline = [], time.time() + 5
    while not got and time.time() < deadline:
        got = c.recv()
        time.sleep(0.01)
    c.close()
    ranges = {k: (lo, hi) for k, lo, hi in got[0][0].api_versions}
    assert ranges[29] == (0, 3) and ranges[30] == (0, 3) and ranges[31] == (0, 3)


# ---- the ACL APIs with the authorizer --------------------------------------------------

def acl_key(acl):
    p = acl.resource_pattern
    return (int(p.resource_type), p.resource_name, int(p.pattern_type), acl.principal, acl.host,
            int(acl.operation), int(acl.permission_type))


def described(a, flt=None):
    acls, err = a.describe_acls(flt or any_filter())
    assert err.errno == 0 if hasattr(err, "errno") else True
    return sorted(acl_key(x) for x in acls)


def test_acls_create_describe_delete_survive_restart(broker_factory):
    b = broker_factory({"authorizer.class.name": AUTHORIZER, "super.users": "User:ANONYMOUS"})
    a = admin(b)
    try:
        want = [
            topic_acl("User:alice", "orders", ACLOperation.WRITE),
            topic_acl("User:bob", "logs-", ACLOperation.READ, pattern=ACLResourcePatternType.PREFIXED),
            topic_acl("User:*", "secret", ACLOperation.ALL, perm=ACLPermissionType.DENY),
            ACL(principal="User:bob", host="*", operation=ACLOperation.READ,
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(ResourceType.GROUP, "g1", ACLResourcePatternType.LITERAL)),
        ]
        res = a.create_acls(want)
        assert len(res["succeeded"]) == 4, res
        # The same binding again succeeds and adds nothing.
        assert len(a.create_acls([want[0]])["succeeded"]) == 1
        # A binding that cannot exist is refused with INVALID_REQUEST.
        bad = ACL(principal="alice", host="*", operation=ACLOperation.READ,
                  permission_type=ACLPermissionType.ALLOW,
                  resource_pattern=ResourcePattern(ResourceType.TOPIC, "t", ACLResourcePatternType.LITERAL))
        res = a.create_acls([bad])
        assert len(res["failed"]) == 1 and res["failed"][0][1].errno == 42
        got = described(a)
        assert got == sorted(acl_key(x) for x in want)
        # Filters: by resource type, by name with MATCH, by principal.
        topics = described(a, ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                                        permission_type=ACLPermissionType.ANY,
                                        resource_pattern=ResourcePatternFilter(
                                            ResourceType.TOPIC, None, ACLResourcePatternType.ANY)))
        assert len(topics) == 3
        match = described(a, ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                                       permission_type=ACLPermissionType.ANY,
                                       resource_pattern=ResourcePatternFilter(
                                           ResourceType.TOPIC, "logs-app", ACLResourcePatternType.MATCH)))
        assert [k[1] for k in match] == ["logs-"]
    finally:
        a.close()
    b.restart()
    a = admin(b)
    try:
        assert described(a) == sorted(acl_key(x) for x in want)
        out = a.delete_acls([ACLFilter(principal="User:bob", host=None, operation=ACLOperation.ANY,
                                       permission_type=ACLPermissionType.ANY,
                                       resource_pattern=ResourcePatternFilter(
                                           ResourceType.ANY, None, ACLResourcePatternType.ANY))])
        assert len(out) == 1 and out[0][2].errno == 0 and len(out[0][1]) == 2
        left = described(a)
        assert sorted(k[3] for k in left) == ["User:*", "User:alice"]
    finally:
        a.close()
    b.restart()
    a = admin(b)
    try:
        assert len(described(a)) == 2
    finally:
        a.close()


def test_unknown_authorizer_is_a_start_error(tmp_path):
    from conftest import Broker
    b = Broker(tmp_path / "bad", {"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer"})
    with pytest.raises(RuntimeError) as e:
        b.start()
    assert "unknown authorizer" in str(e.value)


def test_super_users_must_parse(tmp_path):
    from conftest import Broker
    b = Broker(tmp_path / "bad", {"authorizer.class.name": AUTHORIZER, "super.users": "admin"})
    with pytest.raises(RuntimeError) as e:
        b.start()
    assert "super.users" in str(e.value)
