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
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions

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


# ---- item 1: internal names are reserved ------------------------------------------------------

def delete_topics_v4(port, names):
    """DeleteTopics v4 (flexible): [(name, error)]."""
    from test_admin import cstr, uvarint
    body = uvarint(len(names) + 1) + b"".join(cstr(n) for n in names) + struct.pack(">i", 10000) + b"\x00"
    r = Reader(raw_request(port, 20, 4, body, flexible=True))
    r.i32()
    out = []
    for _ in range(r.carray()):
        out.append((r.cstr(), r.i16()))
        r.tags()
    return out


def partition_dirs(b, prefix):
    root = os.path.join(b.data_dir, "logs")
    return sorted(d for d in os.listdir(root) if d.startswith(prefix + "-") and d[len(prefix) + 1:].isdigit())


def test_metadata_log_name_is_reserved(broker):
    assert create(broker, "keep", 2)[0] == 0
    produce_some(broker, "keep")
    n_offsets = len(partition_dirs(broker, "__consumer_offsets"))
    assert n_offsets == 50
    for name in ("__sluice_metadata", "__cluster_metadata"):
        err, msg = create(broker, name)
        assert err == INVALID_REQUEST and "metadata log" in msg, (name, err, msg)
        assert delete_topics_v4(broker.port, [name]) == [(name, 3)]  # UNKNOWN_TOPIC_OR_PARTITION
    # Names ending in the set-aside suffix, and internal names, are not for clients either.
    assert create(broker, "orders-0.x-stray")[0] == INVALID_TOPIC_EXCEPTION
    assert create(broker, "__transaction_state")[0] == INVALID_REQUEST
    # Metadata auto-creation does not create them.
    from test_admin import metadata_classic
    md = metadata_classic(broker.port, 4, ["__sluice_metadata"], allow_auto=True)
    assert md.topics[0][0] == 3
    # Other "__" names are ordinary topics, as in Kafka: creatable and writable.
    assert create(broker, "__mine")[0] == 0
    produce_some(broker, "__mine", n=3)
    # Topic creation still works, and after a restart nothing is lost.
    assert create(broker, "after")[0] == 0
    broker.restart()
    assert len(partition_dirs(broker, "__consumer_offsets")) == n_offsets
    assert len(read_all(broker, "keep", expect=20)) == 20
    assert create(broker, "after2")[0] == 0


# ---- item 4: internal topics cannot be deleted or broken by clients --------------------------

def commit_offset(b, group, topic, offset):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    c.close()


def committed(b, group, topic):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    (tp,) = c.committed([TopicPartition(topic, 0)], timeout=15)
    c.close()
    return tp.offset


def test_internal_topics_are_protected(broker):
    assert create(broker, "t")[0] == 0
    produce_some(broker, "t")
    commit_offset(broker, "g1", "t", 7)
    assert committed(broker, "g1", "t") == 7
    assert delete_topics_v4(broker.port, ["__consumer_offsets"]) == [("__consumer_offsets", INVALID_TOPIC_EXCEPTION)]
    a = admin(broker)
    with pytest.raises(KafkaException) as e:
        a.delete_topics(["__consumer_offsets"])["__consumer_offsets"].result(timeout=15)
    assert e.value.args[0].code() == INVALID_TOPIC_EXCEPTION
    # CreatePartitions would remap groups to partitions.
    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions("__consumer_offsets", 60)])["__consumer_offsets"].result(timeout=15)
    assert e.value.args[0].code() == INVALID_TOPIC_EXCEPTION and "internal" in e.value.args[0].str()
    # Configs its coordinator depends on are pinned; others may change.
    for key, value in [("cleanup.policy", "delete"), ("retention.ms", "1000"), ("retention.bytes", "1000"),
                       ("max.message.bytes", "1000"), ("segment.bytes", "1048576")]:
        (err, msg, _t, _n), = incremental_alter(broker.port, [(TOPIC, "__consumer_offsets", [(key, OP_SET, value)])])
        assert err == INVALID_CONFIG and key in msg, (key, err, msg)
        (err, msg, _t, _n), = incremental_alter(broker.port, [(TOPIC, "__consumer_offsets", [(key, OP_DELETE, None)])])
        assert err == INVALID_CONFIG and key in msg, (key, err, msg)
    (err, _m, _t, _n), = incremental_alter(broker.port, [(TOPIC, "__consumer_offsets", [("flush.ms", OP_SET, "60000")])])
    assert err == 0
    # DeleteRecords on it is refused as in Kafka.
    body = struct.pack(">i", 1) + pstr("__consumer_offsets") + struct.pack(">iiqi", 1, 0, -1, 5000)
    r = Reader(raw_request(broker.port, 21, 0, body))
    r.i32()
    assert r.array() == 1 and r.pstr() == "__consumer_offsets" and r.array() == 1
    assert (r.i32(), r.i64(), r.i16()) == (0, -1, INVALID_TOPIC_EXCEPTION)
    broker.restart()
    assert len(partition_dirs(broker, "__consumer_offsets")) == 50
    assert committed(broker, "g1", "t") == 7
