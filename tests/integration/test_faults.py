"""Replication under faults: real sluiced processes in network namespaces.

Three combined (broker + controller) nodes, each in a network namespace of
its own that this test creates (addresses 10.201.<k>.1-3, assigned here),
joined by a bridge in a fourth namespace where the clients run. While an
idempotent acks=all producer writes to a topic with replication factor 3 and
min.insync.replicas=2, a seeded nemesis applies one fault at a time:

  partition  one node cut off from the others and the clients (blackhole routes)
  split      two nodes cut off from each other, both still reach the third
  pause      SIGSTOP, later SIGCONT
  kill       SIGKILL, later started again (also of the active controller and
             of a partition leader)
  diskfull   the node's data directory (a tmpfs of its own) filled up

A consumer group member reads the topic and commits as it goes (offsets
topic replicated 3 times). Then every fault is healed, every node runs, and
the checker asserts: every acknowledged record is in its partition at the
offset it was acknowledged with, no record is there twice, the replicas'
logs are identical, every partition has its full ISR again, and no
acknowledged offset commit was lost.

SLUICE_FAULT_SECS (default 60) bounds the faulty phase; SLUICE_FAULT_SEED
picks the schedule (printed, so a failing schedule can be replayed);
SLUICE_FAULT_ROUNDS runs several seeds (make soak). Needs root (network
namespaces, tmpfs mounts); skipped with the reason otherwise.
"""
import ctypes
import json
import os
import random
import signal
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BUILD, SLUICED

SLUICE = os.path.join(BUILD, "sluice")
CLUSTER_ID = "SluiceFaultTest000001A"
TOPIC = "faults"
PARTS = 3
CLONE_NEWNET = 0x40000000

FAST = {
    "controller.quorum.election.timeout.ms": "500",
    "controller.quorum.fetch.timeout.ms": "1500",
    "controller.quorum.request.timeout.ms": "1000",
    "controller.quorum.election.backoff.max.ms": "500",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "3000",
    "replica.fetch.wait.max.ms": "200",
    "offsets.topic.num.partitions": "3",
    "offsets.topic.replication.factor": "3",
    "group.initial.rebalance.delay.ms": "0",
}


def sh(*args, check=True):
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), out.stderr.strip()))
    return out


class Net:
    """The namespaces, the bridge and the tc filters that make partitions."""

    def __init__(self, n):
        tag = os.getpid() % 10000
        self.subnet = 1 + os.getpid() % 250
        self.hub = "slf%dh" % tag
        self.ns = ["slf%dn%d" % (tag, i + 1) for i in range(n)]
        self.made = []
        self.blocked = {}  # namespace -> addresses it cannot send to

    def addr(self, i):
        return "10.201.%d.%d" % (self.subnet, i + 1)

    def hub_addr(self):
        return "10.201.%d.254" % self.subnet

    def up(self):
        sh("ip", "netns", "add", self.hub)
        self.made.append(self.hub)
        hx = ["ip", "netns", "exec", self.hub]
        sh(*hx, "ip", "link", "set", "lo", "up")
        sh(*hx, "ip", "link", "add", "br0", "type", "bridge")
        sh(*hx, "ip", "addr", "add", self.hub_addr() + "/24", "dev", "br0")
        sh(*hx, "ip", "link", "set", "br0", "up")
        for i, ns in enumerate(self.ns):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            nx = ["ip", "netns", "exec", ns]
            sh(*nx, "ip", "link", "set", "lo", "up")
            # the pair is made inside the node's namespace, one end moved to the hub
            sh(*nx, "ip", "link", "add", "e0", "type", "veth", "peer", "name", "h%d" % i)
            sh(*nx, "ip", "link", "set", "h%d" % i, "netns", self.hub)
            sh(*nx, "ip", "addr", "add", self.addr(i) + "/24", "dev", "e0")
            sh(*nx, "ip", "link", "set", "e0", "up")
            sh(*hx, "ip", "link", "set", "h%d" % i, "master", "br0")
            sh(*hx, "ip", "link", "set", "h%d" % i, "up")

    def down(self):
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)
        self.made = []

    def block(self, where, dst):
        """Namespace `where` drops what it sends to address dst (a blackhole
        route: packets vanish, as behind a firewall that drops them; new
        connections fail at once)."""
        if dst in self.blocked.setdefault(where, set()):
            return
        sh("ip", "-n", where, "route", "add", "blackhole", dst + "/32")
        self.blocked[where].add(dst)

    def heal(self):
        for where, dsts in self.blocked.items():
            for dst in dsts:
                sh("ip", "-n", where, "route", "del", "blackhole", dst + "/32", check=False)
            dsts.clear()

    def isolate(self, i):
        for j in range(len(self.ns)):
            if j != i:
                self.block(self.ns[i], self.addr(j))
                self.block(self.ns[j], self.addr(i))
        self.block(self.ns[i], self.hub_addr())
        self.block(self.hub, self.addr(i))

    def split(self, i, j):
        self.block(self.ns[i], self.addr(j))
        self.block(self.ns[j], self.addr(i))


class enter_netns:
    """Runs the body (and the client threads it starts) in a namespace."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        self.setns = libc.setns
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if self.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + self.name)
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        self.setns(self.home, CLONE_NEWNET)
        os.close(self.home)


class Node:
    def __init__(self, net, i, root):
        self.net, self.i, self.node_id = net, i, i + 1
        self.data_dir = os.path.join(root, "node-%d" % self.node_id)
        self.log_path = os.path.join(root, "node-%d.log" % self.node_id)
        self.proc = None
        self.paused = False
        self.mounted = False

    @property
    def bootstrap(self):
        return "%s:9092" % self.net.addr(self.i)

    def config_args(self):
        voters = ",".join("%d@%s:9093" % (k + 1, self.net.addr(k)) for k in range(len(self.net.ns)))
        args = ["--override", "node.id=%d" % self.node_id,
                "--override", "process.roles=broker,controller",
                "--override", "listeners=PLAINTEXT://%s:9092,CONTROLLER://%s:9093" % (
                    self.net.addr(self.i), self.net.addr(self.i)),
                "--override", "controller.listener.names=CONTROLLER",
                "--override", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "--override", "controller.quorum.voters=%s" % voters,
                "--override", "log.dirs=%s" % os.path.join(self.data_dir, "logs")]
        for k, v in FAST.items():
            args += ["--override", "%s=%s" % (k, v)]
        return args

    def prepare(self):
        os.makedirs(self.data_dir, exist_ok=True)
        sh("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", self.data_dir)
        self.mounted = True
        out = subprocess.run([SLUICE, "storage", "format", "--cluster-id", CLUSTER_ID] + self.config_args(),
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr

    def start(self):
        with open(self.log_path, "ab") as log:
            log.write(b"==== start %.3f\n" % time.time())
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.net.ns[self.i], SLUICED] + self.config_args(),
                                         stdout=log, stderr=subprocess.STDOUT)
        self.paused = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill9(self):
        if self.alive():
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.paused = False

    def stop(self):
        if self.proc is None:
            return None
        if self.paused:
            self.proc.send_signal(signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def filler(self):
        return os.path.join(self.data_dir, "filler")

    def fill_disk(self):
        # as many MiB as the tmpfs still takes; the broker then sees ENOSPC
        with open(self.filler(), "wb") as f:
            chunk = b"\0" * (1 << 20)
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass

    def free_disk(self):
        try:
            os.unlink(self.filler())
        except FileNotFoundError:
            pass

    def unmount(self):
        if self.mounted:
            sh("umount", "-l", self.data_dir, check=False)
            self.mounted = False

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_bytes(self, part):
        d = os.path.join(self.data_dir, "logs", "%s-%d" % (TOPIC, part))
        out = b""
        for f in sorted(os.listdir(d)):
            if f.endswith(".log"):
                with open(os.path.join(d, f), "rb") as fh:
                    out += fh.read()
        return out


def netns_usable():
    if os.geteuid() != 0:
        return "needs root for network namespaces and tmpfs mounts"
    probe = "slfprobe%d" % os.getpid()
    out = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if out.returncode != 0:
        return "ip netns add failed: " + out.stderr.strip()
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def wait_for(what, fn, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:
            last = e
        time.sleep(0.3)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def partition_state(nodes):
    """The partition state of TOPIC as any running node reports it."""
    for nd in nodes:
        if not nd.alive() or nd.paused:
            continue
        try:
            md = AdminClient({"bootstrap.servers": nd.bootstrap, "socket.timeout.ms": 3000}).list_topics(
                TOPIC, timeout=4)
        except Exception:
            continue
        t = md.topics.get(TOPIC)
        if t is None or t.error is not None:
            continue
        return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}, md.controller_id
    return None, -1


class Workload:
    """An idempotent acks=all producer that remembers what was acknowledged.

    Debian's librdkafka (2.0) stops an idempotent producer with a fatal
    "sequence desynchronization" error when a request that timed out (so
    possibly persisted) was in fact not written and the next one gets
    OUT_OF_ORDER_SEQUENCE_NUMBER from the new leader (librdkafka's own bug,
    fixed in 2.3.0 by its pull request 4438; Kafka answers the same). Then the
    workload counts it and goes on with a new producer (a new producer id):
    what the old one had acknowledged is still checked."""

    def __init__(self, nodes, rate):
        self.conf = {"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "acks": "all",
                     "enable.idempotence": True, "linger.ms": 2, "message.timeout.ms": 300000,
                     "socket.timeout.ms": 5000, "metadata.max.age.ms": 2000}
        self.p = Producer(self.conf)
        self.rate = rate
        self.sent = 0
        self.acked = {}  # value -> (partition, offset)
        self.failed = []
        self.fatal = 0
        self.committer = None

    def cb(self, err, msg):
        if err is not None:
            self.failed.append(str(err))
        else:
            self.acked[msg.value()] = (msg.partition(), msg.offset())

    def replace(self, why):
        self.fatal += 1
        old, self.p = self.p, Producer(self.conf)
        try:
            old.flush(1)  # deliveries it had answered reach cb; the rest fail
        except KafkaException:
            pass  # a fatal producer's flush raises its error (after serving the callbacks it can)

    def run_for(self, secs):
        end = time.time() + secs
        while time.time() < end:
            t0 = time.time()
            for _ in range(max(1, self.rate // 20)):
                try:
                    self.p.produce(TOPIC, value=b"r%07d" % self.sent, partition=self.sent % PARTS,
                                   on_delivery=self.cb)
                    self.sent += 1
                except BufferError:
                    break  # the producer's queue is full: the cluster is not taking writes now
                except KafkaException as e:
                    err = e.args[0]
                    if not err.fatal() and err.code() != KafkaError._FATAL:
                        raise
                    self.replace(e)
                    break
            self.p.poll(0)
            if self.committer is not None:
                self.committer.step()
            time.sleep(max(0.0, 0.05 - (time.time() - t0)))

    def flush(self, secs):
        try:
            return self.p.flush(secs)
        except KafkaException as e:  # it went fatal after the last produce (see replace)
            self.replace(e)
            return 0


class Committer:
    """A consumer group member that reads the topic and commits what it read
    (asynchronously, every poll). A commit the coordinator acknowledged must
    survive: after every (re)assignment the first record it gets of a
    partition is at or past the highest offset acknowledged for it, and so
    is the group's final committed offset."""

    def __init__(self, nodes):
        self.c = Consumer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "group.id": "faults-g",
                           "enable.auto.commit": False, "auto.offset.reset": "earliest",
                           "session.timeout.ms": 10000, "socket.timeout.ms": 5000,
                           "on_commit": self.committed})
        self.acked = {}    # partition -> highest acknowledged commit
        self.fresh = {}    # partition -> acked commit when it was (re)assigned, until its first record
        self.regress = []  # (partition, first offset after assignment, acked commit then)
        self.read = 0
        self.c.subscribe([TOPIC], on_assign=self.assigned)

    def assigned(self, consumer, parts):
        for tp in parts:
            self.fresh[tp.partition] = self.acked.get(tp.partition, -1)

    def committed(self, err, parts):
        if err is not None:
            return
        for tp in parts:
            if tp.error is None and tp.offset >= 0:
                self.acked[tp.partition] = max(self.acked.get(tp.partition, -1), tp.offset)

    def step(self):
        msgs = self.c.consume(500, timeout=0)
        for m in msgs:
            if m.error() is not None:
                continue
            self.read += 1
            want = self.fresh.pop(m.partition(), None)
            if want is not None and m.offset() < want:
                self.regress.append((m.partition(), m.offset(), want))
        if msgs:
            try:
                self.c.commit(asynchronous=True)
            except KafkaException:
                pass  # nothing to commit, or no coordinator right now

    def final_check(self):
        assert not self.regress, "acknowledged commits lost: %r" % self.regress[:5]
        # the group's coordinator may still be loading (slow under the sanitizers)
        got = wait_for("the group's committed offsets", lambda: {
            tp.partition: tp.offset for tp in
            self.c.committed([TopicPartition(TOPIC, q) for q in range(PARTS)], timeout=10)}, 90)
        lost = {q: (got.get(q), o) for q, o in self.acked.items() if got.get(q, -1) < o}
        assert not lost, "the group's committed offsets went back (now, acknowledged): %r" % lost
        self.c.close()


FAULTS = ["partition", "split", "pause", "kill", "kill-leader", "kill-controller", "diskfull"]


def nemesis(rng, nodes, net, work, secs, events):
    end = time.time() + secs
    while time.time() < end:
        fault = rng.choice(FAULTS)
        hold = rng.uniform(2.0, 7.0)
        i = rng.randrange(len(nodes))
        what = fault
        if fault == "partition":
            net.isolate(i)
            what = "partition node %d" % nodes[i].node_id
        elif fault == "split":
            j = (i + 1 + rng.randrange(len(nodes) - 1)) % len(nodes)
            net.split(i, j)
            what = "split %d|%d" % (nodes[i].node_id, nodes[j].node_id)
        elif fault == "pause":
            nodes[i].signal(signal.SIGSTOP)
            nodes[i].paused = True
            what = "pause node %d" % nodes[i].node_id
        elif fault.startswith("kill"):
            st, ctl = partition_state(nodes)
            if fault == "kill-leader" and st:
                lead = st[rng.randrange(PARTS)][0]
                i = next((k for k, n in enumerate(nodes) if n.node_id == lead), i)
            elif fault == "kill-controller" and ctl > 0:
                i = next((k for k, n in enumerate(nodes) if n.node_id == ctl), i)
            nodes[i].kill9()
            what = "%s: node %d" % (fault, nodes[i].node_id)
        elif fault == "diskfull":
            nodes[i].fill_disk()
            what = "disk full on node %d" % nodes[i].node_id
        events.append("%.1f %s for %.1fs" % (time.time(), what, hold))
        work.run_for(hold)
        # heal
        net.heal()
        for nd in nodes:
            nd.free_disk()
            if nd.paused:
                nd.signal(signal.SIGCONT)
                nd.paused = False
            if not nd.alive():
                events.append("%.1f node %d %s, started again" % (
                    time.time(), nd.node_id, "exited with %r" % nd.proc.returncode if nd.proc else "down"))
                nd.start()
        work.run_for(rng.uniform(1.0, 4.0))


def campaign(tmp_path, seed, secs):
    net = Net(3)
    nodes = [Node(net, i, str(tmp_path)) for i in range(3)]
    events = []
    ok = False
    try:
        net.up()
        for nd in nodes:
            nd.prepare()
        for nd in nodes:
            nd.start()
        with enter_netns(net.hub):
            a = AdminClient({"bootstrap.servers": ",".join(n.bootstrap for n in nodes)})

            def create():
                f = a.create_topics([NewTopic(TOPIC, PARTS, 3, config={"min.insync.replicas": "2"})],
                                    operation_timeout=10)[TOPIC]
                try:
                    f.result(15)
                except Exception as e:
                    if "already exists" not in str(e).lower():
                        raise
                return True

            wait_for("the topic", create, 60)
            wait_for("full ISRs", lambda: (lambda s: s and all(len(v[2]) == 3 for v in s.values()))(
                partition_state(nodes)[0]), 60)
            work = Workload(nodes, rate=400)
            work.committer = Committer(nodes)
            work.run_for(2.0)
            rng = random.Random(seed)
            nemesis(rng, nodes, net, work, secs, events)
            # Everything healed and running: the producer finishes what it has.
            left = work.flush(120)
            events.append("%.1f flushed: %d left, %d acked, %d failed of %d; %d producer(s) replaced" % (
                time.time(), left, len(work.acked), len(work.failed), work.sent, work.fatal))
            st = wait_for("every partition led with a full ISR",
                          lambda: (lambda s: s if s and all(v[0] > 0 and len(v[2]) == 3 for v in s.values())
                                   else None)(partition_state(nodes)[0]), 120)
            check(nodes, work, st)
            work.committer.final_check()
            events.append("%.1f the group read %d records; acknowledged commits %r" % (
                time.time(), work.committer.read, work.committer.acked))
        ok = True
    finally:
        if not ok:
            print("seed %d schedule:\n  %s" % (seed, "\n  ".join(events)))
            for nd in nodes:
                print("---- node %d log (tail) ----\n%s" % (nd.node_id, nd.log()[-12000:]))
        rcs = [nd.stop() for nd in nodes]
        for nd in nodes:
            if not ok:  # the tmpfs goes away: keep its logs for a look
                subprocess.run(["cp", "-a", nd.data_dir, nd.data_dir + "-kept"], capture_output=True)
            nd.unmount()
        net.down()
    assert all(rc in (0, None) for rc in rcs), "a node did not stop cleanly: %r" % rcs
    return events


def check(nodes, work, st):
    assert work.acked, "nothing was acknowledged"
    c = Consumer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "group.id": "check-%d" % time.time_ns(),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": True})
    c.assign([TopicPartition(TOPIC, q, 0) for q in range(PARTS)])
    got = {}
    seen = []
    eof = set()
    deadline = time.time() + 90
    while len(eof) < PARTS and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error() is not None:
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
            continue
        got[(m.partition(), m.offset())] = m.value()
        seen.append(m.value())
    c.close()
    assert len(eof) == PARTS, "could not read every partition to its end"
    lost = [(v, po) for v, po in work.acked.items() if got.get(po) != v]
    assert not lost, "%d acknowledged records lost or moved, e.g. %r (found %r there)" % (
        len(lost), lost[:3], [got.get(po) for _, po in lost[:3]])
    dup = len(seen) - len(set(seen))
    assert dup == 0, "%d records appear twice" % dup
    for part, (leader, replicas, _) in st.items():
        want = next(n for n in nodes if n.node_id == leader).log_bytes(part)
        for r in replicas:
            nd = next(n for n in nodes if n.node_id == r)
            wait_for("replica %d of %s-%d to match its leader" % (r, TOPIC, part),
                     lambda: nd.log_bytes(part) == want, 30)


def test_acknowledged_records_survive_faults(tmp_path):
    why = netns_usable()
    if why:
        pytest.skip(why)
    secs = float(os.environ.get("SLUICE_FAULT_SECS", "60"))
    first = int(os.environ.get("SLUICE_FAULT_SEED", str(int(time.time()) % 100000)))
    rounds = int(os.environ.get("SLUICE_FAULT_ROUNDS", "1"))
    for k in range(rounds):
        seed = first + k
        print("fault campaign seed %d, %.0f s" % (seed, secs))
        d = tmp_path / ("seed-%d" % seed)
        d.mkdir()
        events = campaign(d, seed, secs)
        print("seed %d passed:\n  %s" % (seed, "\n  ".join(events)))
