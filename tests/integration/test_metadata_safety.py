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
TOPIC_ALREADY_EXISTS = 36

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


# ---- item 2: storage never deletes data because the metadata disagrees with it ---------------

def logs_root(b):
    return os.path.join(b.data_dir, "logs")


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)
               if os.path.isfile(os.path.join(path, f)))


def topic_record_id_position(b):
    """Byte position of the topic id in the first 'topic' record of the metadata log."""
    seg = os.path.join(logs_root(b), "__sluice_metadata-0", "00000000000000000000.log")
    data = open(seg, "rb").read()
    key = data.find(b"topic")
    assert key > 0
    # value: varint length, then int8 version, int8 type (1), uuid
    return seg, key + len(b"topic") + 1 + 2


def test_flipped_bit_in_metadata_log_stops_the_broker_and_keeps_data(broker):
    assert create(broker, "precious", 1)[0] == 0
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(4000):
        p.produce("precious", value=b"x" * 1000, partition=0)
        if i % 500 == 0:
            p.flush(10)
    assert p.flush(15) == 0
    broker.stop()
    part = os.path.join(logs_root(broker), "precious-0")
    before = dir_bytes(part)
    assert before > 4_000_000
    # __consumer_offsets is created first: find the 'precious' topic record by its name.
    seg = os.path.join(logs_root(broker), "__cluster_metadata-0", "00000000000000000000.log")
    data = bytearray(open(seg, "rb").read())
    at = data.find(b"precious")
    assert at > 0
    # A TopicRecord: the name (compact string), then the 16-byte topic id.
    data[at + len(b"precious") + 8] ^= 0x04
    open(seg, "wb").write(bytes(data))
    for _ in range(2):
        with pytest.raises(RuntimeError):
            broker.start()
        log = broker.log()
        assert "metadata log cannot be trusted" in log and "00000000000000000000.log is damaged at byte" in log
        assert dir_bytes(part) == before
        assert len(partition_dirs(broker, "__consumer_offsets")) == 50


def test_mismatched_and_unknown_directories_are_set_aside_and_reported(broker):
    import shutil
    import subprocess
    from conftest import BUILD
    from test_admin import describe_log_dirs_v4
    assert create(broker, "m", 1)[0] == 0
    produce_some(broker, "m", n=50)
    broker.stop()
    root = logs_root(broker)
    before = dir_bytes(os.path.join(root, "m-0"))
    shutil.copytree(os.path.join(root, "m-0"), os.path.join(root, "ghost-2"))
    with open(os.path.join(root, "m-0", "partition.metadata"), "w") as f:
        f.write("version: 0\ntopic_id: 00112233445566778899aabbccddeeff\n")
    for round_no in range(2):
        broker.start()
        names = os.listdir(root)
        assert "m-0.00112233445566778899aabbccddeeff-stray" in names, names
        assert any(n.startswith("ghost-2.") and n.endswith("-stray") for n in names), names
        assert "ghost-2" not in names
        assert dir_bytes(os.path.join(root, "m-0.00112233445566778899aabbccddeeff-stray")) == before
        log = broker.log()
        assert "set aside" in log or "set-aside" in log
        (err, path, topics, _t, _u), = describe_log_dirs_v4(broker.port)
        strays = {n: parts for n, parts in topics.items() if n.endswith("-stray")}
        assert strays["m-0.00112233445566778899aabbccddeeff-stray"] == {0: (before, 0)}
        assert len(strays) == 2
        assert 0 in topics["m"]  # the live partition, fresh
        out = subprocess.run([os.path.join(BUILD, "sluice"), "log-dirs", "--bootstrap-server", broker.bootstrap,
                              "--describe"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "Set aside" in out.stdout and "m-0.00112233445566778899aabbccddeeff-stray" in out.stdout
        out = subprocess.run([os.path.join(BUILD, "sluice"), "log-dirs", "--bootstrap-server", broker.bootstrap,
                              "--describe", "--topic-list", "m", "--json"], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        import json
        (d,) = json.loads(out.stdout)["logDirs"]
        assert [p["partition"] for p in d["partitions"]] == ["m-0"]
        assert {"dir": "m-0.00112233445566778899aabbccddeeff-stray", "size": before} in d["setAside"]
        broker.stop()
    usage = subprocess.run([os.path.join(BUILD, "sluice"), "log-dirs", "--bootstrap-server", broker.bootstrap],
                           capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "--describe" in usage.stderr


def test_missing_metadata_log_refuses_to_start(broker):
    import shutil
    assert create(broker, "keep", 2)[0] == 0
    broker.stop()
    shutil.rmtree(os.path.join(logs_root(broker), "__cluster_metadata-0"))
    with pytest.raises(RuntimeError):
        broker.start()
    assert "metadata log" in broker.log() and "is missing" in broker.log()
    assert len(partition_dirs(broker, "__consumer_offsets")) == 50
    assert len(partition_dirs(broker, "keep")) == 2


# ---- item 7: a SIGKILL during CreateTopics leaves no orphan directories -----------------------

def test_sigkill_during_create_topics_leaves_no_orphans(broker):
    import threading
    import time
    from test_admin import create_topics_v7
    errors = []

    def create_big():
        try:
            create_topics_v7(broker.port, [("big", 3000, 1, {})])
        except Exception as e:  # the broker dies under it
            errors.append(e)

    th = threading.Thread(target=create_big)
    th.start()
    deadline = time.time() + 30
    while time.time() < deadline and len(partition_dirs(broker, "big")) < 200:
        time.sleep(0.005)
    made = len(partition_dirs(broker, "big"))
    broker.kill9()
    th.join(30)
    assert 200 <= made < 3000, made
    broker.start()
    md = admin(broker).list_topics(timeout=10)
    left = partition_dirs(broker, "big")
    if "big" in md.topics:
        # The topic's records were committed before its directories were made (as in
        # KRaft), so the restart finishes the creation: every partition, no orphan.
        assert len(left) == 3000
        assert not [n for n in os.listdir(logs_root(broker)) if n.startswith(".creating-")]
        assert create(broker, "big", 3)[0] == TOPIC_ALREADY_EXISTS
    else:
        assert left == [], "%d orphan directories" % len(left)
        assert not [n for n in os.listdir(logs_root(broker)) if n.startswith("big-")]
        assert "left over from a creation the broker did not finish" in broker.log()
        assert create(broker, "big", 3)[0] == 0


# ---- item 3 (continued): a stored config the broker cannot use never stops it ----------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def zigzag(n):
    from test_admin import uvarint
    return uvarint((n << 1) ^ (n >> 63))


def one_record_batch(base_offset, key, value):
    """A magic-2 batch holding one record, as the broker's metadata log stores them (key None: null)."""
    k = zigzag(-1) if key is None else zigzag(len(key)) + key
    body = b"\x00" + zigzag(0) + zigzag(0) + k + zigzag(len(value)) + value + zigzag(0)
    records = zigzag(len(body)) + body
    after_crc = (struct.pack(">hiqqqhii", 0, 0, 0, 0, -1, -1, -1, 1) + records)
    head = struct.pack(">iib", 0, 2, 0)  # leader epoch, magic ... (placeholder, rebuilt below)
    crc = crc32c(after_crc)
    batch_len = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", base_offset, batch_len, 0, 2, crc) + after_crc


def compact_str(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def uvarint(n):
    out = b""
    while True:
        if n < 0x80:
            return out + bytes([n])
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7


def append_stored_config(b, topic, key, value):
    """Appends a KRaft ConfigRecord (topic: key=value) to the stopped broker's metadata log, as
    a version that accepted any value in range of its own rows would have written it."""
    seg = os.path.join(logs_root(b), "__cluster_metadata-0", "00000000000000000000.log")
    data = open(seg, "rb").read()
    pos, next_offset = 0, 0
    while pos + 12 <= len(data):
        base, length = struct.unpack(">qi", data[pos:pos + 12])
        last_delta = struct.unpack(">i", data[pos + 23:pos + 27])[0]
        next_offset = base + last_delta + 1
        pos += 12 + length
    # frame version 1, ConfigRecord (type 4) v0: resource type TOPIC (2), names, value, no tags
    value_bytes = (uvarint(1) + uvarint(4) + uvarint(0) + b"\x02" + compact_str(topic) + compact_str(key) +
                   compact_str(value) + uvarint(0))
    with open(seg, "ab") as f:
        f.write(one_record_batch(next_offset, None, value_bytes))


def test_unusable_stored_config_starts_with_the_partition_offline(broker):
    from test_admin import metadata_v12
    assert create(broker, "legacy")[0] == 0
    assert create(broker, "other")[0] == 0
    produce_some(broker, "legacy", n=20)
    (_, _, tid, _), = metadata_v12(broker.port, [(bytes(16), "legacy")])
    broker.stop()
    append_stored_config(broker, "legacy", "segment.bytes", "14")
    broker.start()  # an older broker could not: "cannot open log of partition ... failed to start"
    log = broker.log()
    assert "topic legacy: its stored configuration cannot be used" in log and "segment.bytes" in log
    # The partition is offline; the rest of the broker works.
    assert produce_one(broker, "legacy") == KAFKA_STORAGE_ERROR
    produce_some(broker, "other", n=5)
    (err, _n, configs), = describe_configs_v0(broker.port, [(TOPIC, "legacy", ["segment.bytes"])])
    assert err == 0 and configs["segment.bytes"] == "14"
    # The operator fixes the key; the partition comes back without a restart, data intact.
    (err, msg, _t, _n), = incremental_alter(broker.port, [(TOPIC, "legacy", [("segment.bytes", OP_DELETE, None)])])
    assert err == 0, msg
    assert len(read_all(broker, "legacy", expect=20)) == 20
    produce_some(broker, "legacy", n=5)
    broker.restart()
    assert "stored configuration cannot be used" not in broker.log().split("replayed")[-1]
    assert len(read_all(broker, "legacy", expect=25)) == 25


# ---- item 12: a full disk, and the way back ------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    import subprocess
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "sluice-test-full", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.strip())
    yield str(mnt)
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def produce_one(b, topic, size=1):
    """Produces one record; returns None or the error code."""
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 2000, "retries": 0})
    out = []
    p.produce(topic, value=b"z" * size, partition=0, on_delivery=lambda e, m: out.append(e))
    p.flush(5)
    if not out:
        return -1
    return None if out[0] is None else out[0].code()


def produce_until_error(b, topic, limit=400):
    """Produces 4 kB records until one fails (bounded); returns the error code."""
    for _ in range(limit):
        err = produce_one(b, topic, 4000)
        if err is not None:
            return err
    return None


def fill(path):
    """Writes a ballast file until the file system is full; returns its path."""
    ballast = os.path.join(path, "ballast")
    with open(ballast, "wb") as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    return ballast


def test_full_disk_recovers_when_space_returns(broker_factory, small_disk):
    import time
    b = broker_factory({"log.dirs": small_disk, "offsets.topic.num.partitions": "1",
                        "log.segment.bytes": "1048576"})
    assert create(b, "fill")[0] == 0
    ballast = fill(small_disk)
    # Writes fail once the disk is full: the partition goes offline ...
    failed = produce_until_error(b, "fill")
    assert failed == KAFKA_STORAGE_ERROR, failed
    # ... and so does the metadata log, under changes that need space.
    codes = []
    for i in range(120):
        (err, _m, _t, _n), = incremental_alter(b.port, [(TOPIC, "fill", [("retention.ms", OP_SET, str(86400000 + i))])])
        codes.append(err)
        if err != 0:
            break
    assert codes[-1] == KAFKA_STORAGE_ERROR, codes
    assert "writing to the metadata log failed" in b.log()
    assert create(b, "while-full")[0] == KAFKA_STORAGE_ERROR
    # Space comes back: partitions and the metadata log follow, no restart.
    os.unlink(ballast)
    deadline = time.time() + 45
    created = produced = False
    while time.time() < deadline and not (created and produced):
        created = created or create(b, "after-full")[0] == 0
        produced = produced or produce_one(b, "fill") is None
        time.sleep(0.5)
    assert created and produced, (created, produced)
    assert "is back online" in b.log()
    # SIGTERM now tells the truth, and the marker agrees with it.
    assert b.stop() == 0
    assert "shut down cleanly (every log directory is marked clean)" in b.log()
    assert os.path.exists(os.path.join(small_disk, ".clean-shutdown"))


def test_shutdown_on_a_full_disk_says_the_marker_was_not_written(broker_factory, small_disk):
    b = broker_factory({"log.dirs": small_disk, "offsets.topic.num.partitions": "1"})
    assert create(b, "fill")[0] == 0
    ballast = fill(small_disk)
    assert produce_until_error(b, "fill") == KAFKA_STORAGE_ERROR
    b.stop()
    marker = os.path.exists(os.path.join(small_disk, ".clean-shutdown"))
    log = b.log()
    assert not marker
    assert "could not be marked clean" in log and "shut down cleanly" not in log
    os.unlink(ballast)
    b.start()
    assert "was not shut down cleanly" in b.log()
    produce_some(b, "fill", n=3)


# ---- item 10 (partitions' side): partitions are counted against the open-file limit -----------

def test_partitions_are_counted_against_the_open_file_limit(broker_factory, monkeypatch):
    import resource
    import subprocess
    nofile = 600
    real_popen = subprocess.Popen

    def limited(*args, **kwargs):
        kwargs["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", limited)
    b = broker_factory()
    # 600 files: 256 kept for the broker itself, 150 for clients, 75 for the
    # segment cache leave 119 partitions; __consumer_offsets holds 50.
    err, msg = create(b, "wide", 100)
    assert err == POLICY_VIOLATION and "open-file limit" in msg, (err, msg)
    assert create(b, "fits", 60)[0] == 0
    from confluent_kafka.admin import NewPartitions
    a = admin(b)
    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions("fits", 70)])["fits"].result(timeout=15)
    assert e.value.args[0].code() == POLICY_VIOLATION and "RLIMIT_NOFILE" in e.value.args[0].str()
    produce_some(b, "fits", n=5)
    b.restart()
    assert len(partition_dirs(b, "fits")) == 60


def test_delete_topics_with_a_name_listed_twice_is_refused_for_both(broker):
    """Kafka answers INVALID_REQUEST for every listing of a name given twice and
    deletes nothing under that name; the other names of the request proceed."""
    INVALID_REQUEST = 42
    assert create(broker, "twice")[0] == 0
    assert create(broker, "once")[0] == 0
    out = delete_topics_v4(broker.port, ["twice", "once", "twice"])
    assert sorted(out) == sorted([("twice", INVALID_REQUEST), ("once", 0), ("twice", INVALID_REQUEST)]), out
    md = admin(broker).list_topics(timeout=10)
    assert "twice" in md.topics and "once" not in md.topics
