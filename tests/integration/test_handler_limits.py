"""Request handlers under hostile input: huge or odd requests answered in
bounded time with the errors Kafka gives."""
import struct
import sys
import os
import time

sys.path.insert(0, os.path.dirname(__file__))
from test_api_versions import raw_request  # noqa: E402


def kstring(b):
    return struct.pack(">h", len(b)) + b


def test_offset_fetch_many_topics_is_not_quadratic(broker):
    # OffsetFetch v1 for 60000 distinct topics (about 1 MB): grouping the
    # answer by topic must not compare every pair of entries.
    n = 60000
    body = kstring(b"g-many") + struct.pack(">i", n)
    body += b"".join(kstring(b"t%d" % i) + struct.pack(">ii", 1, 0) for i in range(n))
    t0 = time.monotonic()
    resp = raw_request(broker.port, 9, 1, body)
    assert time.monotonic() - t0 < 4.0
    assert struct.unpack(">i", resp[4:8])[0] == n  # one topic entry each


def test_offset_fetch_groups_topics_in_first_seen_order(broker):
    # Topics listed as b, a, b: the answer has b (2 partitions) then a.
    body = kstring(b"g-order") + struct.pack(">i", 3)
    body += kstring(b"b") + struct.pack(">ii", 1, 0)
    body += kstring(b"a") + struct.pack(">ii", 1, 5)
    body += kstring(b"b") + struct.pack(">ii", 1, 3)
    resp = raw_request(broker.port, 9, 1, body)
    pos = 4
    ntop = struct.unpack(">i", resp[pos:pos + 4])[0]
    pos += 4
    got = []
    for _ in range(ntop):
        ln = struct.unpack(">h", resp[pos:pos + 2])[0]
        name = resp[pos + 2:pos + 2 + ln]
        pos += 2 + ln
        np = struct.unpack(">i", resp[pos:pos + 4])[0]
        pos += 4
        parts = []
        for _ in range(np):
            idx, off = struct.unpack(">iq", resp[pos:pos + 12])
            pos += 12
            mlen = struct.unpack(">h", resp[pos:pos + 2])[0]
            pos += 2 + max(mlen, 0) + 2  # metadata, error code
            parts.append(idx)
        got.append((name, parts))
    assert got == [(b"b", [0, 3]), (b"a", [5])]


def test_incremental_alter_list_append_of_huge_value_is_bounded(broker):
    # APPEND/SUBTRACT merge comma-separated lists item by item in quadratic
    # time; values far beyond what a config may hold (4096 bytes) must be
    # refused before that, or 200 resources of 32 KB each stall the thread.
    from test_admin import admin, incremental_alter, results
    from confluent_kafka.admin import NewTopic

    a = admin(broker)
    assert results(a.create_topics([NewTopic("huge-list", 1, 1)]))["huge-list"] is None
    value = ",".join("x%d" % i for i in range(5400))[:32000]
    for op in (2, 3):  # APPEND, SUBTRACT
        t0 = time.monotonic()
        out = incremental_alter(broker.port, [(2, "huge-list", [("cleanup.policy", op, value)])] * 200)
        assert time.monotonic() - t0 < 3.0
        assert [o[0] for o in out] == [40] * 200  # INVALID_CONFIG, as for any overlong value
    # An overlong SET is refused the same way.
    out = incremental_alter(broker.port, [(2, "huge-list", [("cleanup.policy", 0, "x" * 5000)])])
    assert out[0][0] == 40


def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def test_list_groups_long_state_filter_is_not_checked_per_group(broker):
    # 300 groups (simple-consumer commits), then ListGroups v4 whose states
    # filter repeats one unknown name a million times: the filter must be
    # read once, not once per group.
    from test_admin import admin, results
    from confluent_kafka.admin import NewTopic
    import socket

    a = admin(broker)
    assert results(a.create_topics([NewTopic("lg", 1, 1)]))["lg"] is None
    n_groups = 300
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        for g in range(n_groups):
            body = kstring(b"lg-%d" % g) + struct.pack(">i", -1) + kstring(b"") + struct.pack(">q", -1)
            body += struct.pack(">i", 1) + kstring(b"lg") + struct.pack(">i", 1)
            body += struct.pack(">iq", 0, 5) + kstring(b"")
            hdr = struct.pack(">hhih", 8, 2, g, 3) + b"raw"
            frame = hdr + body
            s.sendall(struct.pack(">i", len(frame)) + frame)
        from test_api_versions import recv_exact
        for _ in range(n_groups):
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            recv_exact(s, size)
    n_filter = 1000000
    body = uvarint(n_filter + 1) + (uvarint(2) + b"x") * n_filter + b"\x00"
    t0 = time.monotonic()
    resp = raw_request(broker.port, 16, 4, body, flexible=True)
    assert time.monotonic() - t0 < 4.0
    # correlation id, header tags, throttle, error 0, no groups
    assert resp[4:5] == b"\x00" and resp[9:11] == b"\x00\x00" and resp[11:12] == b"\x01"
    # Stable empty-state filter still lists them.
    body = uvarint(2) + uvarint(6) + b"Empty" + b"\x00"
    resp = raw_request(broker.port, 16, 4, body, flexible=True)
    count = resp[11] & 0x7F | resp[12] << 7  # two-byte uvarint: 301
    assert count - 1 == n_groups


def fetch_v7(port, session_id, epoch, topics):
    """Fetch v7, max_wait 0. topics: [(name, [partition])]. Returns
    (error, session_id, [(topic, [(partition, error)])])."""
    body = struct.pack(">iiiibii", -1, 0, 0, 1 << 20, 0, session_id, epoch)
    body += struct.pack(">i", len(topics))
    for name, parts in topics:
        body += kstring(name) + struct.pack(">i", len(parts))
        for p in parts:
            body += struct.pack(">iqqi", p, 0, -1, 1 << 20)
    body += struct.pack(">i", 0)  # forgotten topics
    resp = raw_request(port, 1, 7, body)
    pos = 4 + 4  # correlation id, throttle
    err, sid, nt = struct.unpack(">hii", resp[pos:pos + 10])
    pos += 10
    out = []
    for _ in range(nt):
        ln = struct.unpack(">h", resp[pos:pos + 2])[0]
        name = resp[pos + 2:pos + 2 + ln]
        pos += 2 + ln
        np = struct.unpack(">i", resp[pos:pos + 4])[0]
        pos += 4
        parts = []
        for _ in range(np):
            p, perr = struct.unpack(">ih", resp[pos:pos + 6])
            pos += 6 + 24
            na = struct.unpack(">i", resp[pos:pos + 4])[0]
            pos += 4 + max(na, 0) * 12
            rl = struct.unpack(">i", resp[pos:pos + 4])[0]
            pos += 4 + max(rl, 0)
            parts.append((p, perr))
        out.append((name, parts))
    return err, sid, out


def test_fetch_session_never_truncates_an_overlong_topic_name(broker):
    # A fetch session must not remember a 250-character (nonexistent) topic
    # under its first 249 characters: that names another, existing topic,
    # whose data the next incremental fetch would then return.
    from test_admin import admin, results
    from confluent_kafka.admin import NewTopic

    real = "a" * 249
    a = admin(broker)
    assert results(a.create_topics([NewTopic(real, 1, 1)]))[real] is None
    err, sid, out = fetch_v7(broker.port, 0, 0, [(real.encode() + b"a", [0])])
    assert err == 0
    assert out == [(real.encode() + b"a", [(0, 3)])]  # UNKNOWN_TOPIC_OR_PARTITION
    if sid != 0:
        err, sid2, out = fetch_v7(broker.port, sid, 1, [])
        assert all(name != real.encode() for name, _ in out), out


def test_fetch_by_name_of_empty_topic_is_unknown_topic_not_unknown_id(broker):
    # Before v13 topics are named, so an empty name is an unknown topic
    # (3), never UNKNOWN_TOPIC_ID (100), which such clients do not know.
    err, sid, out = fetch_v7(broker.port, 0, -1, [(b"", [0])])
    assert err == 0
    assert out == [(b"", [(0, 3)])]


def test_describe_and_delete_groups_accept_the_empty_group_id(broker):
    # As in Kafka, only a null group id is invalid for DescribeGroups and
    # DeleteGroups; "" is a group id like any other (here: no such group).
    # A fresh broker may still be loading the group's shard of
    # __consumer_offsets (COORDINATOR_LOAD_IN_PROGRESS, 14): retried, as
    # clients do (seen under AddressSanitizer).
    import time
    deadline = time.time() + 20
    while True:
        resp = raw_request(broker.port, 15, 0, struct.pack(">i", 1) + kstring(b""))
        pos = 4
        assert struct.unpack(">i", resp[pos:pos + 4])[0] == 1
        err = struct.unpack(">h", resp[pos + 4:pos + 6])[0]
        if err != 14 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert err == 0
    pos += 6
    assert resp[pos:pos + 2] == b"\x00\x00"  # group id ""
    assert resp[pos + 2:pos + 8] == kstring(b"Dead")
    resp = raw_request(broker.port, 42, 0, struct.pack(">i", 1) + kstring(b""))
    pos = 4 + 4  # correlation, throttle
    assert struct.unpack(">i", resp[pos:pos + 4])[0] == 1
    assert resp[pos + 4:pos + 6] == b"\x00\x00"
    assert struct.unpack(">h", resp[pos + 6:pos + 8])[0] == 69  # GROUP_ID_NOT_FOUND


def test_fetch_waiting_on_a_deleted_topic_is_answered_at_once(broker):
    # A long poll (max_wait 30 s) on a topic that is then deleted must be
    # answered promptly with UNKNOWN_TOPIC_OR_PARTITION, not keep the topic
    # (and its log files) until the deadline.
    import socket
    from test_admin import admin, results
    from test_api_versions import recv_exact
    from confluent_kafka.admin import NewTopic

    a = admin(broker)
    assert results(a.create_topics([NewTopic("gone", 1, 1)]))["gone"] is None
    body = struct.pack(">iiiibii", -1, 30000, 1, 1 << 20, 0, 0, -1)
    body += struct.pack(">i", 1) + kstring(b"gone") + struct.pack(">i", 1)
    body += struct.pack(">iqqi", 0, 0, -1, 1 << 20) + struct.pack(">i", 0)
    frame = struct.pack(">hhih", 1, 7, 99, 3) + b"raw" + body
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        time.sleep(0.3)  # the fetch is parked now
        t0 = time.monotonic()
        assert results(a.delete_topics(["gone"], operation_timeout=5))["gone"] is None
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
        assert time.monotonic() - t0 < 5.0
    pos = 4 + 4 + 2 + 4  # correlation, throttle, error, session
    assert struct.unpack(">i", resp[pos:pos + 4])[0] == 1
    pos += 4 + 2 + 4
    assert struct.unpack(">i", resp[pos:pos + 4])[0] == 1
    assert struct.unpack(">ih", resp[pos + 4:pos + 10]) == (0, 3)
