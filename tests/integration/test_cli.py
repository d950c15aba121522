"""The `sluice` command line against real brokers: every subcommand, with its
error paths (bad flags, unknown topic, a broker that is down) and their exit
codes, and dump-log on segment files a broker wrote (and a corrupted copy).

Exit codes under test (docs/cli.md): 0 ok, 1 refused/failed, 2 usage,
3 unreachable, 4 not found, 5 corrupt data.

Subcommands whose broker API is missing in the build under test are skipped
with the missing API named (see require_apis), never silently passed.
"""
import glob
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

from conftest import BUILD, free_port

SLUICE = os.path.join(BUILD, "sluice")

API_NAMES = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
             10: "FindCoordinator", 11: "JoinGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
             19: "CreateTopics", 20: "DeleteTopics", 32: "DescribeConfigs", 33: "AlterConfigs",
             37: "CreatePartitions", 42: "DeleteGroups"}


def run(*args, stdin=None, timeout=60):
    p = subprocess.run([SLUICE] + [str(a) for a in args], input=stdin, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def api_keys(port):
    """The API keys the broker advertises (ApiVersions v0, raw frame)."""
    hdr = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(hdr)) + hdr)
        buf = b""
        while len(buf) < 4:
            buf += s.recv(4 - len(buf))
        size = struct.unpack(">i", buf)[0]
        body = b""
        while len(body) < size:
            chunk = s.recv(size - len(body))
            if not chunk:
                break
            body += chunk
    _corr, err, n = struct.unpack(">ihi", body[:10])
    keys = set()
    for i in range(n):
        k, _lo, _hi = struct.unpack(">hhh", body[10 + 6 * i:16 + 6 * i])
        keys.add(k)
    return keys


def require_apis(broker, *keys):
    have = api_keys(broker.port)
    missing = [k for k in keys if k not in have]
    if missing:
        pytest.skip("broker does not serve %s yet" % ", ".join("%s (%d)" % (API_NAMES.get(k, "?"), k)
                                                                for k in missing))


def create_topic(broker, topic, partitions=1):
    rc, out, err = run("topics", "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic,
                       "--partitions", partitions)
    assert rc == 0, err
    return topic


# ---- usage and connection errors (no broker APIs needed) ----

@pytest.mark.parametrize("cmd", ["topics", "produce", "consume", "groups", "configs", "perf", "mirror", "dump-log"])
def test_help_has_examples(cmd):
    rc, out, err = run(cmd, "--help")
    assert rc == 0
    assert "Usage: sluice %s" % cmd in out
    assert "Examples:" in out and "Exit codes" in out


def test_top_level_usage():
    rc, out, _ = run("--help")
    assert rc == 0 and "dump-log" in out and "Exit codes" in out
    rc, _, err = run("frobnicate")
    assert rc == 2 and "unknown command 'frobnicate'" in err
    rc, _, _ = run()
    assert rc == 2


@pytest.mark.parametrize("args,msg", [
    (["topics", "--bootstrap-server", "127.0.0.1:1", "--list", "--bogus"], "unknown option '--bogus'"),
    (["topics", "--list"], "--bootstrap-server is required"),
    (["topics", "--bootstrap-server", "127.0.0.1:1", "--list", "--describe"], "exactly one of"),
    (["topics", "--bootstrap-server", "127.0.0.1:1", "--create"], "--topic is required"),
    (["topics", "--bootstrap-server", "127.0.0.1:1", "--create", "--topic", "t", "--partitions", "x"],
     "--partitions: expected"),
    (["produce", "--bootstrap-server", "127.0.0.1:1"], "--topic is required"),
    (["produce", "--bootstrap-server", "127.0.0.1:1", "--topic", "t", "--acks", "2"], "--acks: expected"),
    (["produce", "--bootstrap-server", "127.0.0.1:1", "--topic", "t", "--compression-codec", "brotli"],
     "unknown codec"),
    (["consume", "--bootstrap-server", "127.0.0.1:1", "--topic", "t", "--offset", "soon"], "--offset: expected"),
    (["consume", "--bootstrap-server", "127.0.0.1:1", "--topic", "t", "--property", "print.color=true"],
     "unknown --property"),
    (["configs", "--bootstrap-server", "127.0.0.1:1", "--describe"], "--entity-type"),
    (["configs", "--bootstrap-server", "127.0.0.1:1", "--alter", "--topic", "t"], "--add-config or --delete-config"),
    (["configs", "--bootstrap-server", "127.0.0.1:1", "--alter", "--topic", "t", "--add-config", "novalue"],
     "is not key=value"),
    (["perf", "fly"], "unknown test 'fly'"),
    (["perf", "produce", "--bootstrap-server", "127.0.0.1:1", "--topic", "t"], "--num-records is required"),
    (["groups", "--bootstrap-server", "127.0.0.1:1"], "exactly one of"),
    (["groups", "--bootstrap-server", "127.0.0.1:1", "--reset-offsets", "--group", "g", "--topic", "t"],
     "--to-earliest"),
    (["dump-log"], "no files given"),
])
def test_bad_flags_exit_2(args, msg):
    rc, out, err = run(*args)
    assert rc == 2, (out, err)
    assert msg in err
    assert "Try 'sluice" in err


@pytest.mark.parametrize("args", [
    ["topics", "--list"],
    ["configs", "--describe", "--topic", "t"],
    ["produce", "--topic", "t"],
    ["consume", "--topic", "t"],
    ["groups", "--list"],
    ["perf", "produce", "--topic", "t", "--num-records", "1"],
])
def test_broker_down_exit_3(args):
    port = free_port()  # nothing listens here
    args = args[:1] + ["--bootstrap-server", "127.0.0.1:%d" % port] + args[1:]
    if args[0] == "perf":
        args = ["perf", args[3], "--bootstrap-server", "127.0.0.1:%d" % port] + args[4:]
    rc, out, err = run(*args, stdin="x\n")
    assert rc == 3, (out, err)
    assert "cannot connect to the broker" in err and "Connection refused" in err


# ---- topics ----

def test_topics_lifecycle(broker):
    require_apis(broker, 3, 19, 20, 37)
    b = broker.bootstrap
    rc, out, err = run("topics", "--bootstrap-server", b, "--create", "--topic", "orders", "--partitions", 3,
                       "--replication-factor", 1, "--config", "retention.ms=3600000")
    assert rc == 0, err
    assert "Created topic orders." in out
    create_topic(broker, "audit")

    # Internal topics (__consumer_offsets) may exist; --exclude-internal hides them.
    rc, out, _ = run("topics", "--bootstrap-server", b, "--list", "--exclude-internal")
    assert rc == 0 and out.split() == ["audit", "orders"]
    rc, out, _ = run("topics", "--bootstrap-server", b, "--list", "--json")
    assert [t for t in json.loads(out) if not t.startswith("__")] == ["audit", "orders"]
    rc, out, _ = run("topics", "--bootstrap-server", b, "--list", "--topic", "ord*")
    assert out.split() == ["orders"]

    rc, out, _ = run("topics", "--bootstrap-server", b, "--describe", "--topic", "orders")
    assert rc == 0
    # TopicId comes from a Metadata v10+ request through Sluice's own codec.
    assert re.search(r"Topic: orders\tTopicId: [A-Za-z0-9_-]{22}\tPartitionCount: 3\tReplicationFactor: 1", out)
    assert "retention.ms=3600000" in out
    assert "\tTopic: orders\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1" in out
    rc, out, _ = run("topics", "--bootstrap-server", b, "--describe", "--topic", "orders", "--json")
    d = json.loads(out)["topics"][0]
    assert d["name"] == "orders" and d["partitionCount"] == 3 and len(d["topicId"]) == 22
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2]
    assert d["partitions"][0]["isr"] == [1] and d["configs"]["retention.ms"] == "3600000"
    rc, out, _ = run("topics", "--bootstrap-server", b, "--describe", "--under-replicated-partitions")
    assert rc == 0 and out == ""

    rc, out, err = run("topics", "--bootstrap-server", b, "--create", "--topic", "orders")
    assert rc == 1 and "TOPIC_ALREADY_EXISTS" in err
    rc, _, _ = run("topics", "--bootstrap-server", b, "--create", "--topic", "orders", "--if-not-exists")
    assert rc == 0

    rc, out, err = run("topics", "--bootstrap-server", b, "--alter", "--topic", "orders", "--partitions", 5)
    assert rc == 0, err
    rc, out, _ = run("topics", "--bootstrap-server", b, "--describe", "--topic", "orders", "--json")
    assert json.loads(out)["topics"][0]["partitionCount"] == 5
    rc, out, err = run("topics", "--bootstrap-server", b, "--alter", "--topic", "orders", "--partitions", 2)
    assert rc == 1 and "INVALID_PARTITIONS" in err

    rc, out, err = run("topics", "--bootstrap-server", b, "--delete", "--topic", "audit")
    assert rc == 0 and "Deleted topic audit." in out
    rc, out, _ = run("topics", "--bootstrap-server", b, "--list", "--exclude-internal")
    assert out.split() == ["orders"]


def test_topics_unknown_topic_exit_4(broker):
    require_apis(broker, 3, 20, 37)
    b = broker.bootstrap
    rc, _, err = run("topics", "--bootstrap-server", b, "--describe", "--topic", "ghost")
    assert rc == 4 and "topic 'ghost' does not exist" in err
    rc, _, err = run("topics", "--bootstrap-server", b, "--delete", "--topic", "ghost")
    assert rc == 4 and "topic 'ghost' does not exist" in err
    rc, _, _ = run("topics", "--bootstrap-server", b, "--delete", "--topic", "ghost", "--if-exists")
    assert rc == 0
    rc, _, err = run("topics", "--bootstrap-server", b, "--alter", "--topic", "ghost", "--partitions", 4)
    assert rc == 4


# ---- configs ----

@pytest.mark.parametrize("legacy", [False, True], ids=["incremental", "legacy"])
def test_configs_describe_alter(broker, legacy):
    # Default: IncrementalAlterConfigs through Sluice's own codec (librdkafka
    # 2.0 lacks it); --legacy-alter: read-modify-write AlterConfigs.
    require_apis(broker, 19, 32, 33, *([] if legacy else [44]))
    b = broker.bootstrap
    extra = ["--legacy-alter"] if legacy else []
    create_topic(broker, "cfg")
    rc, out, _ = run("configs", "--bootstrap-server", b, "--describe", "--entity-type", "topics",
                     "--entity-name", "cfg")
    assert rc == 0 and "(none)" in out
    rc, out, err = run("configs", "--bootstrap-server", b, "--alter", "--topic", "cfg",
                       "--add-config", "retention.ms=5000,cleanup.policy=compact", *extra)
    assert rc == 0, err
    assert "Completed updating config for topic cfg." in out
    rc, out, _ = run("configs", "--bootstrap-server", b, "--describe", "--topic", "cfg", "--json")
    cfgs = {c["name"]: c for c in json.loads(out)["configs"]}
    assert cfgs["retention.ms"]["value"] == "5000" and cfgs["cleanup.policy"]["value"] == "compact"
    assert cfgs["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"

    # Deleting one keeps the other (read-modify-write over AlterConfigs).
    rc, out, err = run("configs", "--bootstrap-server", b, "--alter", "--topic", "cfg",
                       "--delete-config", "retention.ms", *extra)
    assert rc == 0, err
    rc, out, _ = run("configs", "--bootstrap-server", b, "--describe", "--topic", "cfg", "--json")
    names = [c["name"] for c in json.loads(out)["configs"]]
    assert names == ["cleanup.policy"]

    rc, out, _ = run("configs", "--bootstrap-server", b, "--describe", "--topic", "cfg", "--all", "--json")
    assert len(json.loads(out)["configs"]) > 5

    rc, _, err = run("configs", "--bootstrap-server", b, "--alter", "--topic", "cfg", "--add-config", "bogus.key=1",
                     *extra)
    assert rc == 1 and "INVALID_CONFIG" in err
    rc, _, err = run("configs", "--bootstrap-server", b, "--alter", "--topic", "cfg", "--delete-config", "nope.key",
                     *extra)
    assert rc == 1 and "no config named 'nope.key'" in err
    rc, _, err = run("configs", "--bootstrap-server", b, "--describe", "--topic", "ghost")
    assert rc == 4 and "topic 'ghost' does not exist" in err

    rc, out, _ = run("configs", "--bootstrap-server", b, "--describe", "--broker", "1", "--all")
    assert rc == 0 and "configs for broker 1" in out


# ---- produce / consume ----

def test_produce_consume_roundtrip(broker):
    require_apis(broker, 0, 1, 2, 3, 19)
    b = broker.bootstrap
    create_topic(broker, "pc", 2)
    rc, out, err = run("produce", "--bootstrap-server", b, "--topic", "pc", "--partition", 0,
                       stdin="one\ntwo\nthree\n")
    assert rc == 0, err
    rc, out, err = run("produce", "--bootstrap-server", b, "--topic", "pc", "--partition", 1, "--json",
                       "--property", "parse.key=true", "--property", "key.separator=:",
                       "--property", "parse.headers=true", "--acks", "1", "--compression-codec", "zstd",
                       stdin="src:web,trace:7\tk1:v1\nNO_HEADERS\tk2:v2\n")
    assert rc == 0, err
    assert json.loads(out) == {"topic": "pc", "sent": 2, "acknowledged": 2, "failed": 0, "pending": 0}

    rc, out, err = run("consume", "--bootstrap-server", b, "--topic", "pc", "--partition", 0,
                       "--from-beginning", "--max-messages", 3, "--timeout-ms", 10000)
    assert rc == 0, err
    assert out.splitlines() == ["one", "two", "three"]
    assert "Processed a total of 3 messages" in err

    rc, out, err = run("consume", "--bootstrap-server", b, "--topic", "pc", "--partition", 1,
                       "--offset", "earliest", "--max-messages", 2, "--timeout-ms", 10000,
                       "--property", "print.key=true", "--property", "print.offset=true",
                       "--property", "print.partition=true", "--property", "print.headers=true")
    assert rc == 0, err
    assert out.splitlines() == ["Partition:1\tOffset:0\tsrc:web,trace:7\tk1\tv1",
                                "Partition:1\tOffset:1\tNO_HEADERS\tk2\tv2"]

    rc, out, err = run("consume", "--bootstrap-server", b, "--topic", "pc", "--partition", 1, "--offset", 1,
                       "--formatter", "json", "--max-messages", 1, "--timeout-ms", 10000)
    rec = json.loads(out)
    assert rec["key"] == "k2" and rec["value"] == "v2" and rec["offset"] == 1 and rec["partition"] == 1

    # Whole topic, both partitions; then an idle timeout ends a run with nothing new.
    rc, out, err = run("consume", "--bootstrap-server", b, "--topic", "pc", "--from-beginning",
                       "--max-messages", 5, "--timeout-ms", 10000)
    assert rc == 0 and sorted(out.split()) == sorted(["one", "two", "three", "v1", "v2"])
    rc, out, err = run("consume", "--bootstrap-server", b, "--topic", "pc", "--timeout-ms", 500)
    assert rc == 0 and out == "" and "Processed a total of 0 messages" in err


def test_produce_consume_errors(broker_factory):
    # A broker that does not auto-create topics: producing to one that does
    # not exist is refused with the reason.
    broker = broker_factory({"auto.create.topics.enable": "false"})
    require_apis(broker, 0, 1, 3, 19)
    b = broker.bootstrap
    create_topic(broker, "pe", 1)
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "ghost", stdin="x\n")
    assert rc == 4 and "topic 'ghost' does not exist" in err
    assert "did not create it" in err
    rc, _, err = run("perf", "produce", "--bootstrap-server", b, "--topic", "ghost", "--num-records", 1)
    assert rc == 4 and "topic 'ghost' does not exist" in err
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "pe", "--partition", 3, stdin="x\n")
    assert rc == 4 and "partition 3 does not exist" in err
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "pe", "--property", "parse.key=true",
                     "--property", "key.separator=:", stdin="k:v\nnokey\n")
    assert rc == 2 and "line 2: no key separator" in err
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "pe", "--max-record-size", "10",
                     stdin="a" * 11 + "\n")
    assert rc == 2 and "line 1 is 11 bytes" in err
    # A record larger than the broker accepts is refused: exit 1 with the reason.
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "pe", "--max-record-size", "4m",
                     "--producer-property", "message.max.bytes=5000000", stdin="z" * 2000000 + "\n")
    assert rc == 1, err
    assert "1 of 1 records failed; first at line 1" in err
    rc, _, err = run("consume", "--bootstrap-server", b, "--topic", "ghost", "--timeout-ms", 500)
    assert rc == 4 and "topic 'ghost' does not exist" in err
    rc, _, err = run("consume", "--bootstrap-server", b, "--topic", "pe", "--partition", 9, "--timeout-ms", 500)
    assert rc == 4 and "partition 9 does not exist" in err


# ---- perf ----

def test_perf_produce_consume_e2e(broker):
    require_apis(broker, 0, 1, 2, 3, 19)
    b = broker.bootstrap
    create_topic(broker, "perf", 2)
    rc, out, err = run("perf", "produce", "--bootstrap-server", b, "--topic", "perf", "--num-records", 20000,
                       "--record-size", 100, "--throughput", -1, "--producer-props", "acks=1 linger.ms=2")
    assert rc == 0, err
    assert out.startswith("20000 records sent,") and "ms 99.9th." in out
    rc, out, err = run("perf", "consume", "--bootstrap-server", b, "--topic", "perf", "--messages", 20000, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["records"] == 20000 and d["bytes"] == 2000000 and d["records_per_sec"] > 0
    rc, out, err = run("perf", "e2e", "--bootstrap-server", b, "--topic", "perf", "--num-records", 500,
                       "--throughput", 1000, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["records"] == 500 and 0 <= d["p50_ms"] <= d["p99_ms"] <= d["max_latency_ms"] + 0.001
    # Asking for more than exists: the consumer gives up after its idle timeout, exit 1.
    rc, out, err = run("perf", "consume", "--bootstrap-server", b, "--topic", "perf", "--messages", 10 ** 6,
                       "--idle-timeout-ms", 1000)
    assert rc == 1 and "only 20500 of 1000000 records completed" in err


def test_produce_creates_the_topic_like_kafkas_tools(broker):
    # kafka-console-producer and kafka-producer-perf-test just produce: the
    # broker auto-creates the topic (auto.create.topics.enable defaults to
    # true). sluice produce and sluice perf produce do the same.
    require_apis(broker, 0, 1, 3)
    b = broker.bootstrap
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "fresh", stdin="a\nb\n")
    assert rc == 0, err
    rc, out, err = run("consume", "--bootstrap-server", b, "--topic", "fresh", "--from-beginning",
                       "--max-messages", 2, "--timeout-ms", 10000)
    assert rc == 0 and out.splitlines() == ["a", "b"], err
    rc, out, err = run("perf", "produce", "--bootstrap-server", b, "--topic", "fresh-perf", "--num-records", 100,
                       "--record-size", 10, "--throughput", -1)
    assert rc == 0 and out.startswith("100 records sent,"), err
    rc, out, err = run("topics", "--bootstrap-server", b, "--list")
    assert rc == 0 and "fresh" in out.split() and "fresh-perf" in out.split()
    # A name the broker refuses gets the broker's reason.
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "bad!name", stdin="x\n")
    assert rc != 0 and ("INVALID_TOPIC" in err or "invalid" in err.lower()), err


# ---- groups ----

def test_groups(broker):
    require_apis(broker, 0, 1, 3, 8, 9, 10, 11, 14, 15, 16, 19, 42)
    b = broker.bootstrap
    create_topic(broker, "gt", 2)
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "gt", "--partition", 0, stdin="a\nb\nc\nd\n")
    assert rc == 0, err
    rc, out, err = run("consume", "--bootstrap-server", b, "--topic", "gt", "--group", "g1", "--from-beginning",
                       "--max-messages", 4, "--timeout-ms", 20000)
    assert rc == 0 and len(out.split()) == 4, err

    rc, out, err = run("groups", "--bootstrap-server", b, "--list")
    assert rc == 0 and "g1" in out.split(), err
    rc, out, err = run("groups", "--bootstrap-server", b, "--describe", "--group", "g1", "--json")
    assert rc == 0, err
    d = json.loads(out)
    parts = {(p["topic"], p["partition"]): p for p in d["groups"][0]["offsets"]}
    assert parts[("gt", 0)]["currentOffset"] == 4 and parts[("gt", 0)]["logEndOffset"] == 4
    assert parts[("gt", 0)]["lag"] == 0

    rc, out, err = run("groups", "--bootstrap-server", b, "--reset-offsets", "--group", "g1", "--topic", "gt",
                       "--to-earliest", "--dry-run")
    assert rc == 0 and "gt" in out, err
    rc, out, _ = run("groups", "--bootstrap-server", b, "--describe", "--group", "g1", "--json")
    assert {(p["topic"], p["partition"]): p for p in json.loads(out)["groups"][0]["offsets"]}[("gt", 0)][
        "currentOffset"] == 4
    rc, out, err = run("groups", "--bootstrap-server", b, "--reset-offsets", "--group", "g1", "--topic", "gt:0",
                       "--shift-by", "-3", "--execute")
    assert rc == 0, err
    rc, out, _ = run("groups", "--bootstrap-server", b, "--describe", "--group", "g1", "--json")
    p0 = {(p["topic"], p["partition"]): p for p in json.loads(out)["groups"][0]["offsets"]}[("gt", 0)]
    assert p0["currentOffset"] == 1 and p0["lag"] == 3

    # A group with a live member cannot be reset (nor deleted).
    live = subprocess.Popen([SLUICE, "consume", "--bootstrap-server", b, "--topic", "gt", "--group", "g2",
                             "--timeout-ms", "30000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        state = None
        while time.time() < deadline and state != "Stable":
            rc, out, _ = run("groups", "--bootstrap-server", b, "--describe", "--group", "g2", "--json")
            state = json.loads(out)["groups"][0]["state"] if rc == 0 and out.strip() else None
            time.sleep(0.3)
        assert state == "Stable"
        rc, out, err = run("groups", "--bootstrap-server", b, "--reset-offsets", "--group", "g2", "--topic", "gt",
                           "--to-earliest", "--execute")
        assert rc == 1 and "has no active members; it is Stable with 1 member" in err
        rc, out, err = run("groups", "--bootstrap-server", b, "--delete", "--group", "g2")
        assert rc == 1 and "NON_EMPTY_GROUP" in err
    finally:
        live.terminate()
        live.wait(timeout=20)

    rc, _, err = run("groups", "--bootstrap-server", b, "--describe", "--group", "ghost")
    assert rc == 4 and "group 'ghost' does not exist" in err
    rc, out, err = run("groups", "--bootstrap-server", b, "--delete", "--group", "g1")
    assert rc == 0, err
    rc, out, _ = run("groups", "--bootstrap-server", b, "--list")
    assert "g1" not in out.split()


# ---- dump-log on real segments ----

def test_dump_log_real_segments(broker, tmp_path):
    require_apis(broker, 0, 3, 19)
    b = broker.bootstrap
    create_topic(broker, "dl", 1)
    lines = "".join("record-%d\n" % i for i in range(200))
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "dl", "--batch-size", 7, "--linger-ms", 0,
                     stdin=lines)
    assert rc == 0, err
    rc, _, err = run("produce", "--bootstrap-server", b, "--topic", "dl", "--compression-codec", "gzip",
                     "--property", "parse.key=true", "--property", "key.separator=:", stdin="kk:" + "gz-value " * 100 + "\n")
    assert rc == 0, err
    broker.stop()  # clean shutdown writes the indexes
    seg_dir = os.path.join(broker.data_dir, "logs", "dl-0")
    logs = sorted(glob.glob(os.path.join(seg_dir, "*.log")))
    assert logs, os.listdir(os.path.join(broker.data_dir, "logs"))
    files = logs + sorted(glob.glob(os.path.join(seg_dir, "*.index"))) + \
        sorted(glob.glob(os.path.join(seg_dir, "*.timeindex")))

    rc, out, err = run("dump-log", *files)
    assert rc == 0, out + err
    assert "baseOffset: 0 " in out and "compresscodec: gzip" in out and "PROBLEM" not in out
    rc, out, err = run("dump-log", "--print-data-log", logs[0])
    assert rc == 0, err
    assert "payload: record-0" in out and "payload: record-199" in out
    assert "key: kk payload: gz-value gz-value" in out
    rc, out, _ = run("dump-log", "--json", "--deep-iteration", *files)
    d = json.loads(out)
    assert d["problemCount"] == 0
    assert sum(bt["count"] for bt in d["files"][0]["batches"]) == 201

    # A corrupted copy: one flipped byte inside the first batch's records.
    bad = tmp_path / os.path.basename(logs[0])
    shutil.copy(logs[0], bad)
    with open(bad, "r+b") as f:
        f.seek(70)
        c = f.read(1)
        f.seek(70)
        f.write(bytes([c[0] ^ 0xFF]))
    rc, out, err = run("dump-log", str(bad))
    assert rc == 5, out
    assert "PROBLEM: batch at position 0 (offset 0): CRC mismatch" in out
    assert "isvalid: false" in out and "problem found" in err
    # A torn tail after the last batch.
    with open(bad, "ab") as f:
        f.write(b"\x00" * 20)
    rc, out, _ = run("dump-log", "--verify-index-only", str(bad))
    assert rc == 5 and "torn tail" in out and "baseOffset" not in out

    rc, _, err = run("dump-log", str(tmp_path / "00000000000000000999.log"))
    assert rc == 4 and "No such file" in err


# ---- a broker without the group APIs (a stub that only answers ApiVersions) ----

class StubBroker:
    """Answers every request with an ApiVersions v0 response listing only
    ApiVersions (18) and Metadata (3): a broker without group support."""

    def __init__(self):
        import threading
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.done = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        deadline = time.time() + 60
        while not self.done and time.time() < deadline:
            try:
                c, _ = self.srv.accept()
            except OSError:
                continue
            c.settimeout(5)
            try:
                while True:
                    hdr = c.recv(4)
                    if len(hdr) < 4:
                        break
                    size = struct.unpack(">i", hdr)[0]
                    body = b""
                    while len(body) < size:
                        chunk = c.recv(size - len(body))
                        if not chunk:
                            break
                        body += chunk
                    corr = struct.unpack(">i", body[4:8])[0]
                    resp = struct.pack(">ihi", corr, 0, 2) + struct.pack(">hhh", 18, 0, 3) + \
                        struct.pack(">hhh", 3, 0, 12)
                    c.sendall(struct.pack(">i", len(resp)) + resp)
            except OSError:
                pass
            finally:
                c.close()

    def close(self):
        self.done = True
        self.t.join(timeout=5)
        self.srv.close()


@pytest.mark.parametrize("args,missing", [
    (["groups", "--list"], "ListGroups (16)"),
    (["groups", "--describe", "--group", "g"], "FindCoordinator (10)"),
    (["consume", "--topic", "t", "--group", "g"], "JoinGroup (11)"),
])
def test_group_apis_missing_exit_1(args, missing):
    stub = StubBroker()
    try:
        rc, out, err = run(args[0], "--bootstrap-server", "127.0.0.1:%d" % stub.port, *args[1:], timeout=30)
    finally:
        stub.close()
    assert rc == 1, (out, err)
    assert "the broker does not serve" in err and missing in err
