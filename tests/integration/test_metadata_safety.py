"""The topic registry keeps data safe against hostile admin requests and damage
(issue 9: items 1-4, 7, 10 and 12).

Raw frames (test_admin's codec helpers) are used where a client library would
refuse to send the request (reserved names, out-of-range configs), and real
clients (confluent_kafka, kafka-python) where they can. Every test is bounded
in time; the disk-full test mounts its own small tmpfs and skips where that is
not possible.
"""
import os
import struct

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_admin import (INVALID_CONFIG, Reader, create_topics_v7, describe_configs_v0, incremental_alter,
                        pstr, raw_request)

KAFKA_STORAGE_ERROR = 56
INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUEST = 42
POLICY_VIOLATION = 44

OP_SET, OP_DELETE = 0, 1
TOPIC = 2


def admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap, "socket.timeout.ms": 10000})


def create(b, name, partitions=1, config=None):
    (out,) = create_topics_v7(b.port, [(name, partitions, 1, config or {})])
    return out[2], out[3]  # error, message


def produce_some(b, topic, n=20, partition=0):
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 10000})
    errors = []
    for i in range(n):
        p.produce(topic, value=b"v%04d" % i, partition=partition,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(15) == 0
    assert not errors, errors
    return n


def read_all(b, topic, partition=0, expect=1, timeout=15.0):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "safety-check", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    got = []
    import time
    deadline = time.time() + timeout
    while time.time() < deadline and len(got) < expect:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    return got


# ---- item 3: a config the broker accepts must be one it can start with -------------------------

BAD_STORAGE_VALUES = [("max.message.bytes", "10"), ("segment.bytes", "14"), ("segment.index.bytes", "4")]


@pytest.mark.parametrize("key,value", BAD_STORAGE_VALUES)
def test_configs_storage_cannot_use_are_refused(broker, key, value):
    assert create(broker, "cfg")[0] == 0
    (err, msg, _rtype, name), = incremental_alter(broker.port, [(TOPIC, "cfg", [(key, OP_SET, value)])])
    assert err == INVALID_CONFIG and key in msg, (err, msg)
    # CreateTopics with the value: INVALID_CONFIG with a message, not KAFKA_STORAGE_ERROR.
    err, msg = create(broker, "cfg2", config={key: value})
    assert err == INVALID_CONFIG and key in msg, (err, msg)
    # Nothing was stored that could stop the next start.
    broker.restart()
    (err, _name, configs), = describe_configs_v0(broker.port, [(TOPIC, "cfg", [key])])
    assert err == 0 and configs[key] != value
    assert produce_some(broker, "cfg") == 20
