#!/usr/bin/python3
"""Writes tests/data/batches/kafka-python-<codec>.bin: one magic-2 record batch
per codec, encoded offline by kafka-python's own batch builder, so the C tests
can check our decoders against a real client's output.

Run from the repository root with Debian's interpreter (the kafka module is
only installed for it):  /usr/bin/python3 tests/data/make_kafka_python_batches.py

Content pattern (shared with the librdkafka-<codec>.bin files; see README.md):
50 records; record i has key "key-<i>", value "value-<i>-" followed by 100
'x', and, when i is even, one header "h" = "<i>".
"""
import os
import sys

import kafka
from kafka.record.default_records import DefaultRecordBatchBuilder

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
RECORDS = 50
BASE_TIMESTAMP = 1700000000000


def build(codec_id):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec_id, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for i in range(RECORDS):
        key = ("key-%d" % i).encode()
        value = ("value-%d-" % i).encode() + b"x" * 100
        headers = [("h", str(i).encode())] if i % 2 == 0 else []
        meta = b.append(i, timestamp=BASE_TIMESTAMP + i, key=key, value=value, headers=headers)
        if meta is None:
            sys.exit("batch full at record %d" % i)
    return bytes(b.build())


def main():
    out_dir = os.path.join("tests", "data", "batches")
    os.makedirs(out_dir, exist_ok=True)
    for name, codec_id in CODECS.items():
        data = build(codec_id)
        path = os.path.join(out_dir, "kafka-python-%s.bin" % name)
        with open(path, "wb") as f:
            f.write(data)
        print("%s: %d bytes (kafka-python %s)" % (path, len(data), kafka.__version__))


if __name__ == "__main__":
    main()
