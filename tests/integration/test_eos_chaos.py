"""Exactly once under faults (issue 13): a consume-transform-produce
pipeline (eos_worker.py: librdkafka's transactional producer with
send_offsets_to_transaction, a read_committed consumer) copies a topic on a
three-node cluster while brokers and the worker itself are killed with
SIGKILL and restarted. The checker: read_committed readers of the output
see every input record exactly once - no loss, no duplicate - whatever was
killed when.

`make test` runs one seeded round of SLUICE_EOS_SECS (default 45) seconds of
faults; `make soak` runs more (SLUICE_EOS_ROUNDS). A failure prints its seed;
SLUICE_EOS_SEED replays the same schedule of faults (the timing of the
processes is not under the seed's control)."""
import os
import random
import subprocess
import sys
import threading
import time

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition

from test_cluster import cluster, wait_for, wait_formed  # noqa: F401 (cluster is a fixture)
from test_cluster_txn import TXN_STATE, create_rf3, read_committed

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = 6
FEED_BATCH = 60    # input records every FEED_EVERY s while the faults run
FEED_EVERY = 0.25


def start_worker(node, log):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "eos_worker.py"), node.bootstrap, "eos-group",
                             "eos-worker", "eos-in", "eos-out", str(PARTS), "600"],
                            stdout=log, stderr=subprocess.STDOUT)


def committed_total(node):
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "eos-group", "enable.auto.commit": False})
    try:
        offs = c.committed([TopicPartition("eos-in", q) for q in range(PARTS)], timeout=10)
        return sum(o.offset for o in offs if o.offset >= 0)
    finally:
        c.close()


def read_topic(node, topic, expect):
    return read_committed(node, topic, expect, timeout=60.0, partitions=PARTS)


def run_round(cluster, tmp_path, seed, secs):
    rng = random.Random(seed)
    nodes = cluster(3, overrides=dict(TXN_STATE, **{"offsets.topic.replication.factor": "3"}))
    wait_formed(nodes)
    create_rf3(nodes[0], "eos-in", PARTS)
    create_rf3(nodes[0], "eos-out", PARTS)
    boot = ",".join(n.bootstrap for n in nodes)

    class Any:
        bootstrap = boot
    # The input keeps coming while the faults run (idempotent, acks=all).
    acked, stop_feed = [], threading.Event()

    def feed():
        src = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True,
                        "message.timeout.ms": 30000})
        i = 0
        while not stop_feed.is_set():
            for _ in range(FEED_BATCH):
                src.produce("eos-in", value=b"r%06d" % i, partition=i % PARTS,
                            on_delivery=lambda err, m: acked.append(m.value()) if err is None else None)
                i += 1
            src.poll(0)
            stop_feed.wait(FEED_EVERY)
        src.flush(60)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    log = open(tmp_path / "worker.log", "ab")
    worker = start_worker(Any, log)
    kills = {"broker": 0, "worker": 0}
    down = None  # (node, restart at)
    end = time.time() + secs
    try:
        while time.time() < end:
            time.sleep(rng.uniform(1.5, 4.0))
            if down is not None and time.time() >= down[1]:
                down[0].start()
                down = None
            if worker.poll() is not None:
                worker = start_worker(Any, log)
            what = rng.random()
            if what < 0.5 and down is None:
                victim = rng.choice(nodes)
                victim.kill9()
                kills["broker"] += 1
                down = (victim, time.time() + rng.uniform(1.0, 4.0))
            elif what < 0.8:
                worker.kill()
                worker.wait()
                kills["worker"] += 1
                worker = start_worker(Any, log)
        if down is not None:
            down[0].start()
        stop_feed.set()
        feeder.join(90)
        wait_formed(nodes)
        inputs = read_topic(nodes[0], "eos-in", len(acked))
        assert set(acked) <= set(inputs), "acknowledged input records lost (seed %d)" % seed
        total = len(inputs)

        # The worker finishes the copy (restarted if it stopped).
        def caught_up():
            nonlocal worker
            if worker.poll() is not None:
                worker = start_worker(Any, log)
            return committed_total(nodes[0]) == total
        wait_for("the worker to commit every input offset (seed %d)" % seed, caught_up, 120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
    got = read_topic(nodes[1], "eos-out", total)
    dups = len(got) - len(set(got))
    missing = set(inputs) - set(got)
    extra = set(got) - set(inputs)
    assert dups == 0 and not missing and not extra and len(got) == total, (
        "seed %d (kills %r): %d input records, %d output, %d duplicates, %d missing (first: %r), %d unknown; "
        "worker log:\n%s" % (
            seed, kills, total, len(got), dups, len(missing), sorted(missing)[:3], len(extra),
            open(tmp_path / "worker.log", "rb").read().decode(errors="replace")[-3000:]))
    kills["records"] = total
    return kills


@pytest.mark.parametrize("round_", range(int(os.environ.get("SLUICE_EOS_ROUNDS", "1"))))
def test_exactly_once_pipeline_under_kills(cluster, tmp_path, round_):
    secs = float(os.environ.get("SLUICE_EOS_SECS", "45"))
    seed = int(os.environ.get("SLUICE_EOS_SEED", str(int(time.time()) % 100000))) + round_
    print("eos chaos seed %d, %.0f s" % (seed, secs))
    kills = run_round(cluster, tmp_path, seed, secs)
    print("eos chaos seed %d: %r" % (seed, kills))
