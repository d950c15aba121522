"""INFO lines an operator needs (issue 9): group rebalances, refused
transactional FindCoordinator requests and refused APIs each get one line,
with the group or client and peer named, and a client that repeats one
cannot flood the log: each kind is rate-limited, and the next line written
says how many were suppressed."""
import os
import re
import socket
import struct
import sys
import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(__file__))
from test_api_versions import raw_request, recv_exact  # noqa: E402

FAST = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000",
        "offsets.topic.num.partitions": "4"}


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def wait_log(b, pattern, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.findall(pattern, b.log())
        if m:
            return m
        time.sleep(0.1)
    raise AssertionError("no log line matching %r; log:\n%s" % (pattern, b.log()[-4000:]))


def test_rebalance_lines(broker_factory):
    b = broker_factory(FAST)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("ev", 2, 1)])["ev"].result(timeout=10)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "ev-group", "session.timeout.ms": 6000,
                  "auto.offset.reset": "earliest"})
    c.subscribe(["ev"])
    deadline = time.time() + 15
    while time.time() < deadline and not c.assignment():
        c.poll(0.2)
    assert c.assignment()
    wait_log(b, r"INFO  \[groups\] preparing to rebalance group 'ev-group' \(Empty, generation 0, protocol type "
                r"consumer\): member joined; 1 members now; coordinator __consumer_offsets-\d+")
    done = wait_log(b, r"INFO  \[groups\] rebalanced group 'ev-group': generation (\d+) with 1 members, protocol "
                       r"consumer/(\S+), leader (\S+)")
    assert done[0][:2] == ("1", "range")
    c.close()
    wait_log(b, r"preparing to rebalance group 'ev-group' \(Stable, generation 1, protocol type consumer\): "
                r"member left; 0 members now")
    wait_log(b, r"group 'ev-group' is empty after its rebalance \(generation 2\)")


def find_coordinator_v1(sock, corr, key, key_type):
    body = kstr(key) + struct.pack(">b", key_type)
    frame = struct.pack(">hhih", 10, 1, corr, 3) + b"txn" + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    resp = recv_exact(sock, size)
    return struct.unpack(">h", resp[8:10])[0]  # correlation, throttle, error


def test_refused_find_coordinator_key_type_line_and_flood_limit(broker):
    # A transactional id is answered now (transactions, docs/transactions.md).
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        assert find_coordinator_v1(s, 1, "tx-1", 1) == 0
    # A flood of unknown key types: at most so many lines a second.
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        t0 = time.monotonic()
        for i in range(500):
            assert find_coordinator_v1(s, 2 + i, "x", 9) == 42
        elapsed = time.monotonic() - t0
        lines = len(re.findall(r"refused FindCoordinator v1 with unknown key type 9", broker.log()))
        assert lines <= 10 * (int(elapsed) + 2), (lines, elapsed)
    # An unknown key type is refused and logged too (after the flood's window).
    time.sleep(1.1)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        assert find_coordinator_v1(s, 1, "x", 7) == 42  # INVALID_REQUEST
    wait_log(broker, r"refused FindCoordinator v1 with unknown key type 7 from 127\.0\.0\.1:\d+ \(client 'txn'\)")


def test_refused_api_lines(broker):
    # An API the broker does not serve (AlterReplicaLogDirs): closed, logged
    # with the client and peer.
    frame = struct.pack(">hhih", 34, 2, 5, 4) + b"prod" + b"\x00" + bytes([1]) + b"\x00"
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        assert s.recv(10) == b""
    wait_log(broker, r"INFO  \[broker\] refused api key 34 \(AlterReplicaLogDirs\) v2 from 127\.0\.0\.1:\d+ "
                     r"\(client 'prod'\): not served")
    # ApiVersions at a version it does not serve: answered, and logged.
    resp = raw_request(broker.port, 18, 9, b"\x00", client_id=b"newer", flexible=True)
    assert struct.unpack(">h", resp[4:6])[0] == 35  # UNSUPPORTED_VERSION
    wait_log(broker, r"refused ApiVersions v9 from 127\.0\.0\.1:\d+ \(client 'newer'\): served v0-4; answered "
                     r"UNSUPPORTED_VERSION")
