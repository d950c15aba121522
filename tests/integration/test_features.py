"""metadata.version: ApiVersions v3 reports the supported range and the
finalized level (what kafka-features.sh describe reads); UpdateFeatures
upgrades it and refuses downgrades, unknown features and unsupported levels;
the level survives a restart. Raw requests through the wire format, since
Debian's clients have no features API."""
import struct
import time

from test_api_versions import raw_request


def uvarint(b, i):
    shift = v = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def cstr(b, i):
    n, i = uvarint(b, i)
    return b[i:i + n - 1].decode(), i + n - 1


def api_versions_features(port):
    body = bytes([len(b"pytest") + 1]) + b"pytest" + bytes([len(b"1.0") + 1]) + b"1.0" + b"\x00"
    r = raw_request(port, 18, 3, body=body, flexible=True)
    i = 4
    err = struct.unpack(">h", r[i:i + 2])[0]
    assert err == 0
    i += 2
    n, i = uvarint(r, i)
    for _ in range(n - 1):
        i += 6
        _, i = uvarint(r, i)  # tagged fields of the entry
    i += 4  # throttle
    ntags, i = uvarint(r, i)
    supported, finalized, epoch = {}, {}, -1
    for _ in range(ntags):
        tag, i = uvarint(r, i)
        size, i = uvarint(r, i)
        end = i + size
        if tag == 0:
            k, i = uvarint(r, i)
            for _ in range(k - 1):
                name, i = cstr(r, i)
                lo, hi = struct.unpack(">hh", r[i:i + 4])
                i += 4
                _, i = uvarint(r, i)
                supported[name] = (lo, hi)
        elif tag == 1:
            epoch = struct.unpack(">q", r[i:i + 8])[0]
        elif tag == 2:
            k, i = uvarint(r, i)
            for _ in range(k - 1):
                name, i = cstr(r, i)
                hi, lo = struct.unpack(">hh", r[i:i + 4])
                i += 4
                _, i = uvarint(r, i)
                finalized[name] = (lo, hi)
        i = end
    return supported, finalized, epoch


def compact(s):
    b = s.encode()
    return bytes([len(b) + 1]) + b


def update_features(port, updates, validate_only=False):
    """UpdateFeatures v1: timeout, [feature, level, upgrade type], validate_only."""
    body = struct.pack(">i", 10000) + bytes([len(updates) + 1])
    for name, level, kind in updates:
        body += compact(name) + struct.pack(">hb", level, kind) + b"\x00"
    body += bytes([1 if validate_only else 0]) + b"\x00"
    r = raw_request(port, 57, 1, body=body, flexible=True)
    i = 4 + 1  # correlation id, response header tags
    i += 4  # throttle
    top = struct.unpack(">h", r[i:i + 2])[0]
    i += 2
    n, i = uvarint(r, i)  # top-level message (compact nullable)
    i += n - 1 if n > 0 else 0
    k, i = uvarint(r, i)
    out = {}
    for _ in range(k - 1):
        name, i = cstr(r, i)
        code = struct.unpack(">h", r[i:i + 2])[0]
        i += 2
        m, i = uvarint(r, i)
        msg = r[i:i + m - 1].decode() if m > 0 else None
        i += m - 1 if m > 0 else 0
        _, i = uvarint(r, i)
        out[name] = (code, msg)
    return top, out


def wait_level(port, level, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s, f, e = api_versions_features(port)
        if f.get("metadata.version") == (level, level):
            return s, f, e
        time.sleep(0.1)
    raise AssertionError("metadata.version is %r, not %d" % (f.get("metadata.version"), level))


def test_metadata_version_reported_upgraded_and_kept(broker):
    s, f, epoch = wait_level(broker.port, 25)
    assert s["metadata.version"] == (1, 25)
    assert epoch >= 0
    top, res = update_features(broker.port, [("metadata.version", 30, 1)])
    assert top == 0 and res["metadata.version"][0] == 95, res  # INVALID_UPDATE_VERSION
    assert "not supported" in res["metadata.version"][1]
    top, res = update_features(broker.port, [("metadata.version", 21, 2)])
    assert res["metadata.version"][0] == 95 and "cannot go down" in res["metadata.version"][1], res
    top, res = update_features(broker.port, [("group.version", 1, 1)])
    assert res["group.version"][0] == 95 and "unknown feature" in res["group.version"][1], res
    top, res = update_features(broker.port, [("metadata.version", 0, 3)])
    assert res["metadata.version"][0] == 95, res
    # validate_only checks the same rules and writes nothing
    top, res = update_features(broker.port, [("metadata.version", 26, 1)], validate_only=True)
    assert res["metadata.version"][0] == 95, res
    top, res = update_features(broker.port, [("metadata.version", 25, 1)], validate_only=True)
    assert res["metadata.version"] == (0, None), res
    # the level already finalized: accepted, nothing changes
    top, res = update_features(broker.port, [("metadata.version", 25, 1)])
    assert res["metadata.version"] == (0, None), res
    broker.restart()
    wait_level(broker.port, 25)
