#!/usr/bin/env python3
"""Regenerates tests/data/captures/ and the extracted record batches in tests/data/batches/.

Starts the capture broker in this process, runs each client scenario against it
(kcat, confluent-kafka and kafka-python; every run bounded by a timeout), then
pulls the first partition's record batch out of selected Produce captures.

    python3 tests/data/capture/capture_all.py [--schemas DIR]

Run from anywhere; paths are relative to this file. Needs kcat,
python3-confluent-kafka and python3-kafka (plus python3-snappy, python3-lz4 and
python3-zstandard for kafka-python's codecs). Existing captures are replaced.
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.dirname(HERE)
CAPTURES = os.path.join(DATA, "captures")
BATCHES = os.path.join(DATA, "batches")
CLIENT_PY = "/usr/bin/python3"  # Debian's client modules load only under this interpreter
DRIVER = os.path.join(HERE, "drive_clients.py")
TIMEOUT_S = 40
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PRODUCE, INIT_PID = 0, 22

sys.path.insert(0, HERE)
import capture_broker  # noqa: E402


def kcat_lines():
    return "".join("key-%d:value-%d-%s\n" % (i, i, "x" * 100) for i in range(50)).encode()


class Run:
    def __init__(self, broker):
        self.b = broker
        self.bootstrap = "127.0.0.1:%d" % broker.port
        self.index = []     # (file, scenario)
        self.failures = []

    def scenario(self, label, name, argv, stdin=None, record_only=None):
        """Runs one client program; returns the capture files it produced."""
        before = set(os.listdir(CAPTURES))
        self.b.set_client(label, max_per_api=2, record_only=record_only)
        print("== %s: %s" % (label, name), flush=True)
        try:
            p = subprocess.run(argv, input=stdin, timeout=TIMEOUT_S, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if p.returncode != 0:
                self.failures.append(name)
                print("   exit %d: %s" % (p.returncode, p.stdout.decode(errors="replace")[-2000:]))
        except subprocess.TimeoutExpired:
            self.failures.append(name)
            print("   timed out")
        new = sorted(set(os.listdir(CAPTURES)) - before)
        for f in new:
            self.index.append((f, name))
        print("   captured: %s" % " ".join(new))
        return new

    def py(self, label, name, *args, record_only=None):
        return self.scenario(label, name, [CLIENT_PY, DRIVER] + list(args), record_only=record_only)


def first_records(broker, path):
    """Records field of the first partition of the first topic in a Produce capture."""
    with open(path, "rb") as f:
        frame = f.read()
    key, version = struct.unpack_from(">hh", frame, 0)
    assert key == PRODUCE
    r = capture_broker.Reader(frame, 8)
    n = r.fmt("h")
    r.take(max(n, 0))
    if capture_broker.version_in(broker.schemas.get(PRODUCE, "request")["flexibleVersions"], version):
        for _ in range(r.uvarint()):
            r.uvarint()
            r.take(r.uvarint())
    req, _ = broker.codec.decode(PRODUCE, "request", version, frame, r.pos)
    return req["TopicData"][0]["PartitionData"][0]["Records"]


def extract(broker, files, out_name):
    prod = [f for f in files if "-Produce-" in f]
    if not prod:
        print("   no Produce capture for %s" % out_name)
        return None
    recs = first_records(broker, os.path.join(CAPTURES, prod[0]))
    spans = list(capture_broker.batch_spans(recs))
    count = sum(s[3] for s in spans)
    codec = struct.unpack_from(">h", recs, 21)[0] & 7 if spans and spans[0][2] == 2 else -1
    with open(os.path.join(BATCHES, out_name), "wb") as f:
        f.write(recs)
    print("   %s: %d bytes, %d batch(es), %d records, codec %d" % (out_name, len(recs), len(spans), count, codec))
    return (out_name, prod[0], len(recs), count, codec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schemas", default=capture_broker.default_schemas_dir())
    a = ap.parse_args()
    shutil.rmtree(CAPTURES, ignore_errors=True)
    os.makedirs(CAPTURES)
    os.makedirs(BATCHES, exist_ok=True)
    b = capture_broker.CaptureBroker(CAPTURES, "init", a.schemas).start()
    run = Run(b)
    batches = []
    try:
        # kcat (librdkafka): metadata listings, then one produce per codec with keys (no headers).
        run.scenario("kcat", "kcat -L", ["kcat", "-b", run.bootstrap, "-L"])
        run.scenario("kcat", "kcat -L -t", ["kcat", "-b", run.bootstrap, "-L", "-t", "kcat-meta"])
        for i, codec in enumerate(CODECS):
            run.scenario("kcat", "kcat -P -z %s" % codec,
                         ["kcat", "-b", run.bootstrap, "-P", "-t", "kcat-%s" % codec, "-p", "0",
                          "-K", ":", "-z", codec, "-X", "linger.ms=200"],
                         stdin=kcat_lines(), record_only=None if i == 0 else {PRODUCE})

        # confluent-kafka (librdkafka): every codec with acks=all, then acks 1 and 0, idempotence.
        for i, codec in enumerate(CODECS):
            new = run.py("confluent", "confluent produce %s acks=all" % codec, "confluent-produce",
                         run.bootstrap, "cf-%s" % codec, codec, "all",
                         record_only=None if i == 0 else {PRODUCE})
            batches.append(extract(b, new, "librdkafka-%s.bin" % codec))
        run.py("confluent", "confluent produce none acks=1", "confluent-produce", run.bootstrap,
               "cf-acks1", "none", "1", record_only={PRODUCE})
        run.py("confluent", "confluent produce none acks=0", "confluent-produce", run.bootstrap,
               "cf-acks0", "none", "0", record_only={PRODUCE})
        run.py("confluent", "confluent produce idempotent", "confluent-produce", run.bootstrap,
               "cf-idem", "none", "all", "true", record_only={PRODUCE, INIT_PID})
        run.py("confluent", "confluent consumer group", "confluent-consume", run.bootstrap, "cf-none",
               "cf-group")
        run.py("confluent", "confluent admin", "confluent-admin", run.bootstrap, "cf-admin")

        # kafka-python: every codec it supports, acks variants, consumer group and admin.
        for i, codec in enumerate(CODECS):
            new = run.py("kafka-python", "kafka-python produce %s acks=all" % codec, "kp-produce",
                         run.bootstrap, "kp-%s" % codec, codec, "all",
                         record_only=None if i == 0 else {PRODUCE})
            batches.append(extract(b, new, "kafka-python-wire-%s.bin" % codec))
        run.py("kafka-python", "kafka-python produce none acks=1", "kp-produce", run.bootstrap,
               "kp-acks1", "none", "1", record_only={PRODUCE})
        run.py("kafka-python", "kafka-python produce none acks=0", "kp-produce", run.bootstrap,
               "kp-acks0", "none", "0", record_only={PRODUCE})
        run.py("kafka-python", "kafka-python consumer group", "kp-consume", run.bootstrap, "kp-none",
               "kp-group")
        run.py("kafka-python", "kafka-python admin", "kp-admin", run.bootstrap, "kp-admin")
    finally:
        b.stop()

    with open(os.path.join(CAPTURES, "INDEX.tsv"), "w") as f:
        f.write("file\tbytes\tscenario\tnote\n")
        for name, scen in run.index:
            note = ""
            if "-Produce-" in name:
                recs = first_records(b, os.path.join(CAPTURES, name))
                spans = list(capture_broker.batch_spans(recs))
                note = "first partition: %d batch(es), %d records, codec %d" % (
                    len(spans), sum(s[3] for s in spans), struct.unpack_from(">h", recs, 21)[0] & 7)
            f.write("%s\t%d\t%s\t%s\n" % (name, os.path.getsize(os.path.join(CAPTURES, name)), scen, note))
    total = sum(os.path.getsize(os.path.join(CAPTURES, n)) for n in os.listdir(CAPTURES))
    print("captures: %d files, %d bytes" % (len(run.index), total))
    for row in batches:
        if row:
            print("batch\t%s\tfrom %s\t%d bytes\t%d records\tcodec %d" % row)
    if run.failures:
        print("FAILED scenarios: %s" % ", ".join(run.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
