"""Hostile and odd clients: the broker answers what it can, closes what it
must, and keeps serving everyone else with bounded memory."""
import socket
import struct
import time

from test_api_versions import raw_request, recv_exact


def api_versions_frame(corr=1, version=0):
    hdr = struct.pack(">hhih", 18, version, corr, 3) + b"raw"
    return struct.pack(">i", len(hdr)) + hdr


def assert_serving(broker):
    resp = raw_request(broker.port, 18, 0)
    assert struct.unpack(">ih", resp[:6]) == (7, 0)


def closed_within(sock, seconds):
    sock.settimeout(seconds)
    try:
        data = sock.recv(4096)
        return data == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_oversize_frame_closes_connection_and_is_logged(broker_factory):
    b = broker_factory({"socket.request.max.bytes": "1048576"})
    with socket.create_connection(("127.0.0.1", b.port)) as s:
        s.sendall(struct.pack(">i", 64 * 1024 * 1024))
        assert closed_within(s, 5)
    assert "socket.request.max.bytes" in b.log()
    assert_serving(b)


def test_garbage_bytes(broker):
    # A plausible size followed by bytes that are no request header.
    for junk in (b"\x00\x00\x00\x05\xff\xff\xff\xff\xff", b"\x00\x00\x00\x02ab", b"\xff\xff\xff\xff"):
        with socket.create_connection(("127.0.0.1", broker.port)) as s:
            s.sendall(junk)
            assert closed_within(s, 5)
    assert_serving(broker)
    assert broker.alive()


def test_unknown_api_key_closes(broker):
    hdr = struct.pack(">hhih", 999, 0, 5, 3) + b"raw"
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(struct.pack(">i", len(hdr)) + hdr)
        assert closed_within(s, 5)
    assert_serving(broker)


def test_silent_client_is_closed_when_idle(broker_factory):
    b = broker_factory({"connections.max.idle.ms": "1000"})
    with socket.create_connection(("127.0.0.1", b.port)) as s:
        start = time.time()
        assert closed_within(s, 10)
        assert time.time() - start < 8
    assert_serving(b)


def test_thousand_idle_connections(broker):
    socks = []
    try:
        for _ in range(1000):
            socks.append(socket.create_connection(("127.0.0.1", broker.port), timeout=5))
        # All of them still work, and so does a new one.
        for s in socks[::100]:
            s.sendall(api_versions_frame())
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            assert size > 6
            recv_exact(s, size)
        assert_serving(broker)
    finally:
        for s in socks:
            s.close()


def test_slow_reader_memory_is_bounded(broker):
    # Pipeline up to 8M requests (about 100 MB) without reading a single
    # response: once the socket buffers (a few MB) fill, the broker stops
    # reading instead of buffering responses.
    s = socket.create_connection(("127.0.0.1", broker.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    before = rss_kb(broker.proc.pid)
    chunk = b"".join(api_versions_frame(corr=i) for i in range(10000))
    s.setblocking(False)
    sent = 0
    stalls = 0
    deadline = time.time() + 15
    while sent < 800 and stalls < 20 and time.time() < deadline:
        try:
            s.sendall(chunk)
            sent += 1
            stalls = 0
        except (BlockingIOError, socket.timeout):
            stalls += 1
            time.sleep(0.05)
    time.sleep(0.5)
    after = rss_kb(broker.proc.pid)
    assert stalls >= 20, "the broker kept reading from a client that never reads (%d chunks)" % sent
    assert after - before < 64 * 1024, "RSS grew by %d KiB" % (after - before)
    assert_serving(broker)
    s.close()


def test_unsupported_version_of_other_api_closes(broker):
    # Metadata at a version far beyond any the broker serves.
    hdr = struct.pack(">hhih", 3, 99, 5, 3) + b"raw" + b"\x00"
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(struct.pack(">i", len(hdr)) + hdr)
        assert closed_within(s, 5)
    assert_serving(broker)
