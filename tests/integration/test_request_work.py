"""Requests whose cost is out of proportion to their size (issue 9): one small
Fetch v0-3 can make the broker decompress and down-convert a batch that
expands a thousandfold, once per listing of its partition. The broker must
bound that work per request (a byte budget, a deadline), per second across
all requests (a token bucket), do it once per partition however often a
request lists it, and stop it at once on SIGTERM; meanwhile other clients
are answered promptly.

Everything here is sent as raw requests: no client library would send a
Fetch listing one partition 25 times. Sizes are kept small (batches that
expand to 65 MiB, a few requests) so each test runs in seconds.
"""
import os
import signal
import socket
import struct
import sys
import threading
import time

from confluent_kafka.admin import AdminClient, NewTopic
from kafka.record.default_records import DefaultRecordBatchBuilder

sys.path.insert(0, os.path.dirname(__file__))
from test_api_versions import recv_exact  # noqa: E402
from test_legacy_clients import parse_message_set  # noqa: E402

GZIP = 1
BOMB_BYTES = 65 << 20  # more than one batch may decompress (64 MiB)


def kstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def frame(api_key, version, body, corr=1, client_id=b"work-test"):
    f = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id + body
    return struct.pack(">i", len(f)) + f


def call(sock, api_key, version, body, corr=1):
    sock.sendall(frame(api_key, version, body, corr))
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    resp = recv_exact(sock, size)
    assert struct.unpack(">i", resp[:4])[0] == corr
    return resp[4:]


def raw(port, api_key, version, body, timeout=30.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        return call(s, api_key, version, body)


# Produce decompresses every batch to validate its records, within 64 x the
# topic's max.message.bytes; a topic that holds bombs (65 MiB each) raises it
# so the bombs are accepted and the down-conversion path meets them.
BOMB_TOPIC = {"max.message.bytes": str(2 << 20)}


def create_topic(broker, name, partitions=1, config=None):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(timeout=10)


def batch(records, codec=GZIP):
    """A magic-2 batch of (key, value) records, built by kafka-python."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    now = int(time.time() * 1000)
    for i, (k, v) in enumerate(records):
        b.append(i, now, k, v, [])
    return bytes(b.build())


_BOMB = []


def bomb():
    """About 66 KB of gzip that decompresses to 65 MiB (one record of zeros)."""
    if not _BOMB:
        _BOMB.append(batch([(None, b"\0" * BOMB_BYTES)]))
    return _BOMB[0]


def produce_v3(port, topic, parts):
    """parts: {partition: records}. Returns {partition: (error, base_offset)}."""
    body = struct.pack(">hhi", -1, 1, 10000) + struct.pack(">i", 1) + kstr(topic)
    body += struct.pack(">i", len(parts))
    for p, recs in parts.items():
        body += struct.pack(">ii", p, len(recs)) + recs
    resp = raw(port, 0, 3, body)
    assert struct.unpack(">i", resp[:4])[0] == 1
    pos = 6 + struct.unpack(">h", resp[4:6])[0]
    n = struct.unpack(">i", resp[pos:pos + 4])[0]
    pos += 4
    out = {}
    for _ in range(n):
        p, err, base, _ts = struct.unpack(">ihqq", resp[pos:pos + 22])
        pos += 22
        out[p] = (err, base)
    return out


def fetch_body(version, listings, max_wait=0, min_bytes=0, max_bytes=50 << 20, part_max=50 << 20, group=True):
    """Fetch v3 or v4 body. listings: [(topic, partition, offset)]; with
    group, consecutive listings of one topic share a topic entry, otherwise
    each listing is a topic entry of its own."""
    body = struct.pack(">iiii", -1, max_wait, min_bytes, max_bytes)
    if version >= 4:
        body += struct.pack(">b", 0)
    entries = []
    for topic, p, off in listings:
        if group and entries and entries[-1][0] == topic:
            entries[-1][1].append((p, off))
        else:
            entries.append((topic, [(p, off)]))
    body += struct.pack(">i", len(entries))
    for topic, parts in entries:
        body += kstr(topic) + struct.pack(">i", len(parts))
        body += b"".join(struct.pack(">iqi", p, off, part_max) for p, off in parts)
    return body


def parse_fetch(version, resp):
    """Returns (throttle_ms, [(topic, partition, error, hw, records)])."""
    throttle = struct.unpack(">i", resp[:4])[0]
    pos = 4
    nt = struct.unpack(">i", resp[pos:pos + 4])[0]
    pos += 4
    out = []
    for _ in range(nt):
        ln = struct.unpack(">h", resp[pos:pos + 2])[0]
        topic = resp[pos + 2:pos + 2 + ln].decode()
        pos += 2 + ln
        npart = struct.unpack(">i", resp[pos:pos + 4])[0]
        pos += 4
        for _ in range(npart):
            p, err, hw = struct.unpack(">ihq", resp[pos:pos + 14])
            pos += 14
            if version >= 4:
                pos += 8  # last stable offset
                na = struct.unpack(">i", resp[pos:pos + 4])[0]
                pos += 4 + max(na, 0) * 16
            size = struct.unpack(">i", resp[pos:pos + 4])[0]
            pos += 4
            out.append((topic, p, err, hw, resp[pos:pos + max(size, 0)]))
            pos += max(size, 0)
    assert pos == len(resp)
    return throttle, out


def fetch(port, version, listings, **kw):
    return parse_fetch(version, raw(port, 1, version, fetch_body(version, listings, **kw)))


def timed(fn, *a):
    t0 = time.monotonic()
    fn(*a)
    return time.monotonic() - t0


def normal_client_round(port):
    """ApiVersions, Metadata and a Produce on a fresh connection, each timed."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        lat = [timed(call, s, 18, 0, b""),
               timed(call, s, 3, 1, struct.pack(">i", -1)),
               timed(call, s, 0, 3, struct.pack(">hhi", -1, 1, 5000) + struct.pack(">i", 1) + kstr("calm") +
                     struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(NORMAL)) + NORMAL)]
    return lat


NORMAL = batch([(b"k", b"v")], codec=0)


class Attackers:
    """n connections, each sending the same Fetch v3 again and again until
    stop() (or `max_requests` each). Records every response."""

    def __init__(self, port, body, n, max_requests=200):
        self.port, self.body, self.stopping = port, body, threading.Event()
        self.responses, self.errors, self.lock = [], [], threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(max_requests,), daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, max_requests):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
                for i in range(max_requests):
                    if self.stopping.is_set():
                        break
                    resp = call(s, 1, 3, self.body, corr=i + 1)
                    with self.lock:
                        self.responses.append(parse_fetch(3, resp))
        except OSError as e:
            with self.lock:
                self.errors.append(e)

    def stop(self, timeout=5):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout)


def attack_overrides(**extra):
    o = {"sluice.conversion.max.bytes.per.second": str(64 << 20)}
    o.update(extra)
    return o


def test_fetch_listing_a_partition_many_times_answers_it_once(broker):
    # Kafka keeps one entry per partition: the first listing's place, the
    # last listing's offset and limits. Both the zero-copy (v4) and the
    # down-converting (v3) path.
    create_topic(broker, "dups", 2)
    res = produce_v3(broker.port, "dups", {0: batch([(b"k%d" % i, b"v%d" % i) for i in range(10)]),
                                           1: batch([(b"x", b"y")])})
    assert res == {0: (0, 0), 1: (0, 0)}
    listings = [("dups", 0, 0), ("dups", 1, 0), ("dups", 0, 3), ("dups", 0, 7)]
    for version, group in ((3, True), (3, False), (4, True), (4, False)):
        _, parts = fetch(broker.port, version, listings, group=group)
        assert [(t, p) for t, p, *_ in parts] == [("dups", 0), ("dups", 1)]
        assert all(err == 0 and hw in (10, 1) for _, _, err, hw, _ in parts)
        if version == 3:
            offsets = [m[0] for m in parse_message_set(parts[0][4])]
            assert offsets == [7, 8, 9]  # from the last listing's offset
        else:
            assert len(parts[0][4]) > 0


def test_downconversion_bomb_does_not_stall_the_broker(broker_factory):
    # The attack, smaller: a ~66 KB gzip batch that decompresses to
    # 65 MiB, then eight small Fetch v3 requests listing its partition 25
    # times each, sent again and again. Before the fix each listing
    # decompressed 64 MiB (the per-batch cap), so every handler thread was
    # busy for many seconds and other clients waited as long.
    b = broker_factory(attack_overrides())
    create_topic(b, "bomb", config=BOMB_TOPIC)
    create_topic(b, "calm")
    assert produce_v3(b.port, "bomb", {0: bomb()}) == {0: (0, 0)}
    body = fetch_body(3, [("bomb", 0, 0)] * 25)
    assert len(body) < 450  # the requests were 449 bytes
    normal_client_round(b.port)  # warm
    atk = Attackers(b.port, body, 8)
    worst = 0.0
    try:
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            worst = max([worst] + normal_client_round(b.port))
            time.sleep(0.05)
    finally:
        atk.stop()
    assert worst < 1.0, "a normal request waited %.2f s during the attack" % worst
    assert not atk.errors
    assert atk.responses
    converted = 0
    for throttle, parts in atk.responses:
        assert len(parts) == 1  # the partition once, not 25 times
        (_, _, err, _, records), = parts
        assert records == b""
        if err == 2:  # CORRUPT_MESSAGE: the batch was (tried to be) decompressed
            converted += 1
        else:
            # Throttled (throttle_time_ms > 0), or held for the throttle time
            # and then told to come back: no work done either way.
            assert err == 0
    # 64 MiB/s with a 128 MiB burst over about 3 s: at most a handful of
    # 64 MiB decompressions, however many requests came.
    assert converted <= 2 + 3 * 2 + 2, converted
    assert any(t > 0 for t, _ in atk.responses)
    # Throttled requests are held, not answered in a spin.
    assert len(atk.responses) < 8 * 20, len(atk.responses)


def test_downconversion_stops_at_the_request_budget_and_resumes(broker_factory):
    # Four batches of real records, 2 MiB each when decompressed; one request
    # may do 3 MiB of work: it answers with what fits (one batch), and a
    # consumer that goes on from there reads everything.
    b = broker_factory({"sluice.conversion.max.bytes.per.request": str(3 << 20)})
    create_topic(b, "budget")
    n_per, size = 512, 4096
    offset = 0
    for i in range(4):
        recs = [(b"k", (b"%08d" % (offset + j)) * (size // 8)) for j in range(n_per)]
        assert produce_v3(b.port, "budget", {0: batch(recs)}) == {0: (0, offset)}
        offset += n_per
    _, parts = fetch(b.port, 3, [("budget", 0, 0)])
    (_, _, err, hw, records), = parts
    first = [m[0] for m in parse_message_set(records)]
    assert err == 0 and hw == offset
    assert 0 < len(first) <= n_per, len(first)  # one batch's worth, not four
    got, pos = [], 0
    for _ in range(20):
        if pos == offset:
            break
        _, parts = fetch(b.port, 3, [("budget", 0, pos)])
        msgs = list(parse_message_set(parts[0][4]))
        assert parts[0][2] == 0 and msgs
        got += [m[0] for m in msgs]
        pos = msgs[-1][0] + 1
    assert got == list(range(offset))


def multi_bomb_topic(b, name, partitions):
    create_topic(b, name, partitions, config=BOMB_TOPIC)
    res = produce_v3(b.port, name, {p: bomb() for p in range(partitions)})
    assert all(v == (0, 0) for v in res.values())


def one_conversion_time(b, topic):
    """Seconds one bomb partition takes to (fail to) convert on this build:
    sanitizer builds are several times slower, so bounds are relative."""
    t0 = time.monotonic()
    _, parts = fetch(b.port, 3, [(topic, 0, 0)])
    assert parts[0][2] == 2
    return time.monotonic() - t0


def bombs_without_budgets(broker_factory, topic, partitions, work_ms):
    """A broker whose byte budgets are out of the way (only the deadline of
    work_ms bounds a request) and a topic of bomb partitions. Returns the
    broker and one_conversion_time()."""
    big = str(1 << 40)
    b = broker_factory({"sluice.conversion.max.bytes.per.request": big,
                        "sluice.conversion.max.bytes.per.second": big,
                        "sluice.request.work.max.ms": str(work_ms)})
    multi_bomb_topic(b, topic, partitions)
    return b, one_conversion_time(b, topic)


def test_downconversion_stops_at_the_request_deadline(broker_factory):
    # Forty distinct partitions, each a 65 MiB bomb, with budgets out of the
    # way: only the deadline bounds the request. Before the fix it took
    # 40 decompressions of 64 MiB (seconds); now it answers near the deadline
    # (plus the batch in progress) with the partitions it did not reach
    # empty and without error.
    b, one = bombs_without_budgets(broker_factory, "many", 40, work_ms=300)
    t0 = time.monotonic()
    _, parts = fetch(b.port, 3, [("many", p, 0) for p in range(40)])
    took = time.monotonic() - t0
    assert took < 0.3 + 3 * one + 0.5, (took, one)
    assert len(parts) == 40
    errs = [err for _, _, err, _, _ in parts]
    assert errs[0] == 2 and 0 in errs  # some converted (and refused), the rest not reached
    assert all(e in (0, 2) for e in errs)
    assert all(rec == b"" for *_, rec in parts)


def test_sigterm_stops_long_downconversion_promptly(broker_factory):
    # A request with a long deadline and a lot of work in flight: SIGTERM
    # must not wait for it (before the fix shutdown waited 5 s for the
    # handlers and then joined the busy one).
    b, one = bombs_without_budgets(broker_factory, "slow", 80, work_ms=600000)
    s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
    try:
        s.sendall(frame(1, 3, fetch_body(3, [("slow", p, 0) for p in range(80)])))
        time.sleep(0.5)  # the handler is now decompressing
        t0 = time.monotonic()
        b.proc.send_signal(signal.SIGTERM)
        rc = b.proc.wait(timeout=15)
        took = time.monotonic() - t0
    finally:
        s.close()
    assert rc == 0
    # The batch in progress is finished, then everything stops (80 * one
    # before the fix, plus the 5 s drain).
    assert took < 1.0 + 2 * one, "shutdown took %.2f s (one conversion %.2f s)" % (took, one)


def list_offsets_v1(port, listings, timeout=30.0):
    """listings: [(topic, partition, timestamp)], one topic entry each.
    Returns [(partition, error, offset)] in request order."""
    body = struct.pack(">i", -1) + struct.pack(">i", len(listings))
    for topic, p, ts in listings:
        body += kstr(topic) + struct.pack(">i", 1) + struct.pack(">iq", p, ts)
    resp = raw(port, 2, 1, body, timeout=timeout)
    pos, out = 4, []
    for _ in range(struct.unpack(">i", resp[:4])[0]):
        pos += 2 + struct.unpack(">h", resp[pos:pos + 2])[0]
        for _ in range(struct.unpack(">i", resp[pos:pos + 4])[0]):
            p, err, _ts, off = struct.unpack(">ihqq", resp[pos + 4:pos + 26])
            out.append((p, err, off))
            pos += 22
        pos += 4
    return out


def test_list_offsets_duplicate_partition_is_invalid_request(broker):
    # Kafka answers every listing of a partition listed twice with
    # INVALID_REQUEST (and looks nothing up for it).
    create_topic(broker, "lo", 2)
    assert produce_v3(broker.port, "lo", {0: batch([(b"k", b"v")])}) == {0: (0, 0)}
    got = list_offsets_v1(broker.port, [("lo", 0, -1), ("lo", 1, -1), ("lo", 0, -2)])
    assert got == [(0, 42, -1), (1, 0, 0), (0, 42, -1)]


def lying_batch(n_bytes, record_ts, max_ts):
    """A gzip batch of one record of n_bytes zeros stamped record_ts whose
    header claims maxTimestamp max_ts (CRC fixed up)."""
    from kafka.record.util import calc_crc32c
    b = DefaultRecordBatchBuilder(magic=2, compression_type=GZIP, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    b.append(0, record_ts, None, b"\0" * n_bytes, [])
    buf = bytearray(b.build())
    buf[35:43] = struct.pack(">q", max_ts)  # maxTimestamp
    buf[17:21] = struct.pack(">I", calc_crc32c(bytes(buf[21:])))
    return bytes(buf)


def test_list_offsets_by_time_decodes_a_bounded_number_of_batches(broker):
    # Twenty batches that each decompress to 60 MiB and claim a maxTimestamp
    # none of their records has. A lookup by time used to decompress every
    # one of them looking for the record (seconds per request); now the first
    # batch whose maxTimestamp reaches the time answers.
    import pytest
    create_topic(broker, "lies")
    create_topic(broker, "lie1")
    now = int(time.time() * 1000)
    lie = lying_batch(60 << 20, 1000, now)
    for topic, n in (("lie1", 1), ("lies", 20)):
        for i in range(n):
            res = produce_v3(broker.port, topic, {0: lie})
            if res[0][0] != 0:
                pytest.skip("the broker refuses batches whose maxTimestamp lies (error %d)" % res[0][0])
    t0 = time.monotonic()
    assert list_offsets_v1(broker.port, [("lie1", 0, now - 1000)]) == [(0, 0, 0)]
    one = time.monotonic() - t0  # one batch decoded, on this build
    t0 = time.monotonic()
    got = list_offsets_v1(broker.port, [("lies", 0, now - 1000)])
    took = time.monotonic() - t0
    assert got == [(0, 0, 0)]
    assert took < 3 * one + 0.2, (took, one)  # not 20 decodes


def describe_log_dirs_v1(port, topics):
    """topics: [(name, [partitions])]. Returns the number of partitions reported."""
    body = struct.pack(">i", len(topics))
    for name, parts in topics:
        body += kstr(name) + struct.pack(">i", len(parts)) + b"".join(struct.pack(">i", p) for p in parts)
    resp = raw(port, 35, 1, body)
    n_dirs, pos, n = struct.unpack(">i", resp[4:8])[0], 8, 0
    for _ in range(n_dirs):
        pos += 2  # error
        pos += 2 + struct.unpack(">h", resp[pos:pos + 2])[0]
        nt = struct.unpack(">i", resp[pos:pos + 4])[0]
        pos += 4
        for _ in range(nt):
            pos += 2 + struct.unpack(">h", resp[pos:pos + 2])[0]
            np = struct.unpack(">i", resp[pos:pos + 4])[0]
            pos += 4 + np * 21
            n += np
    return n


def test_describe_log_dirs_empty_partition_list_names_none(broker):
    # A topic listed with no partitions asks for none of them (as in Kafka):
    # it used to mean all, so each 10 bytes of request named a whole topic.
    create_topic(broker, "dirs", 50)
    assert describe_log_dirs_v1(broker.port, [("dirs", [0, 1, 2])]) == 3
    assert describe_log_dirs_v1(broker.port, [("dirs", [])] * 200) == 0


def test_legacy_produce_bomb_does_not_stall_the_broker(broker_factory):
    # Produce v0-2 converts legacy message sets: a 60 KB gzip wrapper that
    # decompresses to 60 MiB cost half a second of CPU each, so eight
    # producers sending them stalled every other client. Now each wrapper
    # reserves its worst case from the conversion budget; the rest are
    # refused with REQUEST_TIMED_OUT (retriable) and a throttle time.
    from kafka.record.legacy_records import LegacyRecordBatchBuilder
    b = broker_factory(attack_overrides())
    create_topic(b, "lp")
    create_topic(b, "calm")
    lb = LegacyRecordBatchBuilder(magic=1, compression_type=GZIP, batch_size=1 << 30)
    lb.append(0, int(time.time() * 1000), None, b"\0" * (60 << 20))
    wrapper = bytes(lb.build())
    body = struct.pack(">hi", 1, 10000) + struct.pack(">i", 1) + kstr("lp") + struct.pack(">i", 1)
    body += struct.pack(">ii", 0, len(wrapper)) + wrapper
    results, lock = [], threading.Lock()

    def producer():
        with socket.create_connection(("127.0.0.1", b.port), timeout=60) as s:
            for i in range(4):
                resp = call(s, 0, 2, body, corr=i + 1)
                pos = 6 + struct.unpack(">h", resp[4:6])[0]
                _, err = struct.unpack(">ih", resp[pos + 4:pos + 10])
                throttle = struct.unpack(">i", resp[-4:])[0]
                with lock:
                    results.append((err, throttle))

    normal_client_round(b.port)
    threads = [threading.Thread(target=producer, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    worst = 0.0
    while any(t.is_alive() for t in threads):
        worst = max([worst] + normal_client_round(b.port))
        time.sleep(0.02)
    for t in threads:
        t.join(5)
    assert worst < 1.0, "a normal request waited %.2f s during the attack" % worst
    assert len(results) == 32
    refused = [r for r in results if r[0] == 7]
    assert refused and all(t > 0 for _, t in refused)
    # 64 MiB/s with a 128 MiB burst: a couple of conversions, not 32.
    assert len(results) - len(refused) <= 8, results


def test_disconnected_long_polls_free_their_waiters(broker_factory):
    """Clients that park fetches with a huge max_wait and hang up must not keep
    waiters: waiters are bounded by connections (max.connections here), and a
    full set of abandoned ones would otherwise turn every later long poll into
    an immediate answer."""
    limit = 12
    b = broker_factory({"max.connections": str(limit), "max.connections.per.ip": str(limit)})
    create_topic(b, "idle")
    body = fetch_body(4, [("idle", 0, 0)], max_wait=600000, min_bytes=1)
    for rnd in range(3):
        socks = []
        for i in range(limit - 1):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
            s.sendall(frame(1, 4, body, corr=100 + i))
            socks.append(s)
        time.sleep(0.3)  # parked
        for s in socks:
            s.close()
        # The broker sees each hang-up and finishes its fetch at once; the
        # connection slots come back too.
        deadline = time.time() + 10
        waited = 0.0
        while time.time() < deadline:
            with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
                t0 = time.time()
                call(s, 1, 4, fetch_body(4, [("idle", 0, 0)], max_wait=1500, min_bytes=1), corr=7)
                waited = time.time() - t0
            if waited >= 1.2:
                break
            time.sleep(0.2)
        assert waited >= 1.2, "round %d: a long poll was answered after %.3f s instead of waiting" % (rnd, waited)
