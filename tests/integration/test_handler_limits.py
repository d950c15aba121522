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
