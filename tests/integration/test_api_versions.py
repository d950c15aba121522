"""ApiVersions negotiation with real clients and raw frames."""
import socket
import struct
import subprocess

import time

from kafka.conn import BrokerConnection
from kafka.protocol.admin import ApiVersionRequest


def raw_request(port, api_key, api_version, body=b"", corr=7, client_id=b"raw", flexible=False):
    hdr = struct.pack(">hhih", api_key, api_version, corr, len(client_id)) + client_id
    if flexible:
        hdr += b"\x00"  # request header v2: empty tagged fields
    frame = hdr + body
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        return recv_exact(s, size)


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def test_kafka_python_decodes_api_versions(broker):
    # kafka-python's own encoder/decoder for ApiVersions v0 and v1. (Its
    # broker-version probe needs more APIs than this test should depend on,
    # so the connection is told the version and the request sent by hand.)
    c = BrokerConnection("127.0.0.1", broker.port, socket.AF_INET, api_version=(2, 5, 0))
    assert c.connect_blocking(timeout=5)
    for req in (ApiVersionRequest[0](), ApiVersionRequest[1]()):
        c.send(req)
        got = []
        deadline = time.time() + 5
        while not got and time.time() < deadline:
            got = c.recv()
            time.sleep(0.01)
        assert got, "no ApiVersions response within 5 s"
        resp = got[0][0]
        assert resp.error_code == 0
        ranges = {k: (lo, hi) for k, lo, hi in resp.api_versions}
        assert ranges[18] == (0, 4)
    c.close()


def test_kcat_connects(broker):
    # kcat -L needs Metadata too; here we only check that ApiVersions
    # negotiation succeeds (librdkafka logs the negotiated features).
    p = subprocess.run(["kcat", "-b", broker.bootstrap, "-L", "-m", "3", "-d", "protocol"],
                       capture_output=True, text=True, timeout=30)
    assert "Received ApiVersionResponse" in p.stderr


def test_unsupported_version_gets_v0_error_and_ranges(broker):
    # A future client sends header v2 (ApiVersions is flexible from v3 on).
    resp = raw_request(broker.port, 18, 99, flexible=True)
    corr, err, n = struct.unpack(">ihi", resp[:10])
    assert corr == 7
    assert err == 35  # UNSUPPORTED_VERSION
    ranges = [struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i]) for i in range(n)]
    assert (18, 0, 4) in ranges


def test_api_versions_v0_and_v3(broker):
    resp = raw_request(broker.port, 18, 0)
    corr, err, n = struct.unpack(">ihi", resp[:10])
    assert (corr, err) == (7, 0) and n >= 1
    # v3: flexible body, but the response header stays v0 (no tag byte).
    body = bytes([len(b"pytest") + 1]) + b"pytest" + bytes([len(b"1.0") + 1]) + b"1.0" + b"\x00"
    resp = raw_request(broker.port, 18, 3, body=body, client_id=b"raw", flexible=True)
    corr, err = struct.unpack(">ih", resp[:6])
    assert (corr, err) == (7, 0)
