"""A KRaft cluster of real sluiced processes on loopback ports.

Three combined (broker + controller) nodes, each with a client listener and a
controller listener, formatted with one cluster id by `sluice storage
format`. Driven with confluent-kafka (librdkafka) and kafka-python: topics
created through any node appear on all, records go to the partition leaders
on every node, the active controller can be killed -9 and another takes
over, a whole-cluster restart keeps everything committed, consumer groups are
coordinated by the leaders of __consumer_offsets.
"""
import os
import signal
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BUILD, Broker, free_port, wait_port

SLUICE = os.path.join(BUILD, "sluice")
CLUSTER_ID = "SluiceClusterTest0001A"

FAST = {
    "controller.quorum.election.timeout.ms": "300",
    "controller.quorum.fetch.timeout.ms": "1000",
    "controller.quorum.request.timeout.ms": "1000",
    "controller.quorum.election.backoff.max.ms": "300",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "offsets.topic.num.partitions": "6",
    "group.initial.rebalance.delay.ms": "0",
}


class Node(Broker):
    """roles: "broker,controller" (combined), "controller" or "broker"."""

    def __init__(self, data_dir, node_id, ctl_port, voters, overrides, roles="broker,controller"):
        super().__init__(data_dir, overrides)
        self.node_id = node_id
        self.ctl_port = ctl_port
        self.voters = voters
        self.roles = roles

    def listeners(self):
        ls = []
        if "broker" in self.roles:
            ls.append("PLAINTEXT://127.0.0.1:%d" % self.port)
        if "controller" in self.roles:
            ls.append("CONTROLLER://127.0.0.1:%d" % self.ctl_port)
        return ",".join(ls)

    def config_args(self):
        args = ["--override", "node.id=%d" % self.node_id,
                "--override", "process.roles=%s" % self.roles,
                "--override", "listeners=%s" % self.listeners(),
                "--override", "controller.listener.names=CONTROLLER",
                "--override", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "--override", "controller.quorum.voters=%s" % self.voters,
                "--override", "log.dirs=%s" % os.path.join(self.data_dir, "logs")]
        for k, v in self.overrides.items():
            args += ["--override", "%s=%s" % (k, v)]
        return args

    def format(self, cluster_id=CLUSTER_ID):
        os.makedirs(self.data_dir, exist_ok=True)
        out = subprocess.run([SLUICE, "storage", "format", "--cluster-id", cluster_id] + self.config_args(),
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_file = open(self.log_path, "ab")
        from conftest import SLUICED
        self.proc = subprocess.Popen([SLUICED] + self.config_args(), stdout=self.log_file, stderr=subprocess.STDOUT)
        port = self.port if "broker" in self.roles else self.ctl_port
        if not wait_port(port, self.proc, timeout=60.0):
            self.stop()
            raise RuntimeError("sluiced did not start; log:\n" + self.log())
        return self


@pytest.fixture
def cluster(tmp_path, request):
    nodes = []

    def make(n=3, overrides=None, controllers=None, brokers=0):
        """n combined nodes, or (controllers=k) k controller-only voters plus
        `brokers` broker-only observers."""
        k = controllers or n
        ctl = [free_port() for _ in range(k)]
        voters = ",".join("%d@127.0.0.1:%d" % (i + 1, ctl[i]) for i in range(k))
        ov = dict(FAST)
        ov.update(overrides or {})
        roles = "controller" if controllers else "broker,controller"
        for i in range(k):
            nodes.append(Node(tmp_path / ("node-%d" % (i + 1)), i + 1, ctl[i], voters, ov, roles))
        for j in range(brokers):
            nodes.append(Node(tmp_path / ("node-%d" % (k + j + 1)), k + j + 1, 0, voters, ov, "broker"))
        make.voters = voters
        make.overrides = ov
        for nd in nodes:
            nd.format()
        for nd in nodes:
            nd.start()
        return nodes

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for nd in nodes:
        if failed:
            print("---- node %d log ----\n%s" % (nd.node_id, nd.log()[-15000:]))
        rc = nd.stop()
        assert rc in (0, None, -signal.SIGKILL), "node %d exited with %r; log:\n%s" % (nd.node_id, rc, nd.log()[-5000:])


def admin(node):
    return AdminClient({"bootstrap.servers": node.bootstrap, "socket.timeout.ms": 5000})


def wait_for(what, fn, timeout=30.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # a node that is restarting refuses connections
            last = e
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def brokers_seen(node):
    md = admin(node).list_topics(timeout=5)
    return sorted(md.brokers), md.controller_id


def wait_formed(nodes, alive=None):
    alive = alive or nodes
    want = sorted(n.node_id for n in alive)
    for nd in alive:
        wait_for("node %d to see brokers %s" % (nd.node_id, want),
                 lambda nd=nd: brokers_seen(nd)[0] == want and brokers_seen(nd)[1] in want)
    return brokers_seen(alive[0])[1]


def create(node, name, partitions, timeout=20.0):
    def attempt():
        a = admin(node)  # kept alive until the future completes
        fs = a.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10)
        try:
            fs[name].result(15)
        except Exception as e:
            if "already exists" in str(e).lower() or "TOPIC_ALREADY_EXISTS" in str(e):
                return True
            raise
        return True
    wait_for("creating %s through node %d" % (name, node.node_id), attempt, timeout)


def topic_view(node, name):
    md = admin(node).list_topics(timeout=5)
    t = md.topics.get(name)
    if t is None or t.error is not None:
        return None
    return sorted((p.id, p.leader) for p in t.partitions.values())


def produce(node, topic, n, partitions):
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % partitions,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    left = p.flush(30)
    assert left == 0 and not errors, (left, errors[:3])


def consume_all(node, topic, partitions, expect, timeout=30.0):
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "reader-%d" % time.time_ns(),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = set()
    deadline = time.time() + timeout
    while len(got) < expect and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.add(m.value())
    c.close()
    return got


def test_three_nodes_form_one_cluster(cluster):
    nodes = cluster(3)
    controller = wait_formed(nodes)
    assert controller in (1, 2, 3)
    # Every node names the same active controller.
    assert all(brokers_seen(n)[1] == controller for n in nodes)
    create(nodes[1], "orders", 6)
    views = [wait_for("orders on node %d" % n.node_id, lambda n=n: topic_view(n, "orders")) for n in nodes]
    assert views[0] == views[1] == views[2]
    leaders = {leader for _, leader in views[0]}
    assert leaders == {1, 2, 3}, views[0]  # spread over the brokers
    produce(nodes[0], "orders", 600, 6)
    got = consume_all(nodes[2], "orders", 6, 600)
    assert len(got) == 600


def test_kafka_python_admin_through_a_follower(cluster):
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
    nodes = cluster(3)
    controller = wait_formed(nodes)
    follower = next(n for n in nodes if n.node_id != controller)
    a = KafkaAdminClient(bootstrap_servers=follower.bootstrap, request_timeout_ms=15000)
    try:
        a.create_topics([KNewTopic("kp", 3, 1)])
        assert "kp" in a.list_topics()
        desc = a.describe_cluster()
        assert sorted(b["node_id"] for b in desc["brokers"]) == [1, 2, 3]
        a.delete_topics(["kp"])
    finally:
        a.close()
    for n in nodes:
        wait_for("kp gone on node %d" % n.node_id, lambda n=n: topic_view(n, "kp") is None)


def test_active_controller_killed(cluster):
    nodes = cluster(3)
    controller = wait_formed(nodes)
    create(nodes[0], "before", 3)
    victim = next(n for n in nodes if n.node_id == controller)
    rest = [n for n in nodes if n is not victim]
    t0 = time.time()
    victim.kill9()
    # Another node takes over; admin calls through either survivor work.
    new = wait_for("a new active controller", lambda: (lambda c: c if c in [n.node_id for n in rest] else None)(
        brokers_seen(rest[0])[1]))
    assert new != controller
    create(rest[1], "after", 3)
    failover = time.time() - t0
    for n in rest:
        wait_for("after on node %d" % n.node_id, lambda n=n: topic_view(n, "after"))
    # The killed broker is fenced: clients are not sent to it.
    wait_for("node %d fenced" % controller, lambda: controller not in brokers_seen(rest[0])[0])
    # It comes back, catches up and is unfenced.
    victim.start()
    wait_formed(nodes)
    assert topic_view(victim, "after") is not None
    print("failover to a committed CreateTopics took %.2f s" % failover)


def test_whole_cluster_restart_keeps_what_was_committed(cluster):
    nodes = cluster(3)
    wait_formed(nodes)
    for i in range(4):
        create(nodes[i % 3], "keep-%d" % i, 3)
    produce(nodes[1], "keep-0", 300, 3)
    views = {("keep-%d" % i): topic_view(nodes[0], "keep-%d" % i) for i in range(4)}
    for n in nodes:
        assert n.stop() == 0
    for n in nodes:
        n.start()
    wait_formed(nodes)
    # Every partition is back with its leader (brokers stopped in a controlled
    # way were fenced, so their partitions had none until they returned).
    for n in nodes:
        for name, view in views.items():
            wait_for("%s as before on node %d" % (name, n.node_id),
                     lambda n=n, name=name, view=view: topic_view(n, name) == view)
    assert len(consume_all(nodes[2], "keep-0", 3, 300)) == 300


def test_consumer_group_across_nodes(cluster):
    nodes = cluster(3)
    wait_formed(nodes)
    create(nodes[0], "work", 3)
    produce(nodes[0], "work", 90, 3)
    conf = {"bootstrap.servers": nodes[2].bootstrap, "group.id": "g1", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    c = Consumer(conf)
    c.subscribe(["work"])
    got = []
    deadline = time.time() + 40
    while len(got) < 50 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    assert len(got) >= 50
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition("work", p) for p in range(3)], timeout=10)
    c.close()
    total = sum(tp.offset for tp in committed if tp.offset >= 0)
    assert total >= 50
    # Another member of the group, through another node, resumes where it stopped.
    conf["bootstrap.servers"] = nodes[0].bootstrap
    c = Consumer(conf)
    c.subscribe(["work"])
    rest = 0
    deadline = time.time() + 40
    while total + rest < 90 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            rest += 1
    c.close()
    assert total + rest == 90


def test_node_of_another_cluster_is_refused(cluster, tmp_path):
    nodes = cluster(3)
    wait_formed(nodes)
    odd = nodes[2]
    odd.stop()
    # Reformat node 3 for another cluster: the others refuse it, and go on.
    import shutil
    shutil.rmtree(odd.data_dir)
    odd.format(cluster_id="AnotherClusterId00000Z")
    odd.start()
    create(nodes[0], "still", 2)
    deadline = time.time() + 10
    while time.time() < deadline and "INCONSISTENT_CLUSTER_ID" not in (nodes[0].log() + nodes[1].log()):
        time.sleep(0.2)
    assert "INCONSISTENT_CLUSTER_ID" in nodes[0].log() + nodes[1].log()
    assert topic_view(odd, "still") is None


def test_cluster_describe_cli(cluster):
    import json
    nodes = cluster(3)
    controller = wait_formed(nodes)
    create(nodes[0], "cli", 2)

    def described():
        out = subprocess.run([SLUICE, "cluster", "describe", "--bootstrap-server", nodes[2].bootstrap, "--json"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        d = json.loads(out.stdout)
        q = d["quorum"]
        return d if q and all(v["lag"] == 0 for v in q["voters"]) else None
    d = wait_for("every voter caught up", described)
    assert [b["id"] for b in d["brokers"]] == [1, 2, 3]
    assert d["controllerId"] == controller == d["quorum"]["leaderId"]
    assert sorted(v["id"] for v in d["quorum"]["voters"]) == [1, 2, 3]
    assert d["quorum"]["highWatermark"] > 0
    text = subprocess.run([SLUICE, "cluster", "describe", "--bootstrap-server", nodes[0].bootstrap],
                          capture_output=True, text=True, timeout=30)
    assert text.returncode == 0 and "Metadata quorum" in text.stdout, text.stdout + text.stderr


def test_storage_format_refuses_another_cluster(tmp_path):
    cfg = tmp_path / "node.properties"
    cfg.write_text("node.id=4\nlog.dirs=%s\n" % (tmp_path / "d"))
    ok = subprocess.run([SLUICE, "storage", "format", "-c", str(cfg), "-t", CLUSTER_ID], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run([SLUICE, "storage", "format", "-c", str(cfg), "-t", CLUSTER_ID, "--ignore-formatted"],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    other = subprocess.run([SLUICE, "storage", "format", "-c", str(cfg), "-t", "AnotherClusterId00000Z",
                            "--ignore-formatted"], capture_output=True, text=True)
    assert other.returncode == 1 and "already formatted" in other.stderr
    bad = subprocess.run([SLUICE, "storage", "format", "-c", str(cfg), "-t", "short"], capture_output=True, text=True)
    assert bad.returncode == 2
    rid = subprocess.run([SLUICE, "storage", "random-uuid"], capture_output=True, text=True)
    assert rid.returncode == 0 and len(rid.stdout.strip()) == 22


def test_dedicated_controllers_and_brokers(cluster):
    """Three controller-only voters and two broker-only observers."""
    nodes = cluster(controllers=3, brokers=2)
    brokers = nodes[3:]
    for b in brokers:
        wait_for("node %d to see brokers 4 and 5" % b.node_id, lambda b=b: brokers_seen(b)[0] == [4, 5])
    create(brokers[0], "split", 4)
    views = [wait_for("split on %d" % b.node_id, lambda b=b: topic_view(b, "split")) for b in brokers]
    assert views[0] == views[1]
    assert {leader for _, leader in views[0]} == {4, 5}  # only brokers hold partitions
    # Clients are never sent to a controller-only node.
    assert all(brokers_seen(b)[1] in (4, 5) for b in brokers)
    produce(brokers[1], "split", 200, 4)
    assert len(consume_all(brokers[0], "split", 4, 200)) == 200
    out = subprocess.run([SLUICE, "cluster", "describe", "--bootstrap-server", brokers[0].bootstrap, "--json"],
                         capture_output=True, text=True, timeout=30)
    import json
    q = json.loads(out.stdout)["quorum"]
    assert sorted(v["id"] for v in q["voters"]) == [1, 2, 3]
    assert sorted(o["id"] for o in q["observers"]) == [4, 5]
    # The active controller goes; the brokers follow the next one.
    leader = q["leaderId"]
    next(n for n in nodes if n.node_id == leader).kill9()
    create(brokers[1], "after-failover", 2)
    for b in brokers:
        wait_for("after-failover on %d" % b.node_id, lambda b=b: topic_view(b, "after-failover"))


def test_broker_only_node_joins(cluster, tmp_path):
    nodes = cluster(3)
    wait_formed(nodes)
    create(nodes[0], "old", 3)
    extra = Node(tmp_path / "node-4", 4, 0, cluster.voters, cluster.overrides, "broker")
    nodes.append(extra)
    extra.format()
    extra.start()
    wait_for("node 4 registered", lambda: brokers_seen(nodes[0])[0] == [1, 2, 3, 4])
    # It learnt the existing metadata from the log, and gets new partitions.
    assert topic_view(extra, "old") == topic_view(nodes[0], "old")
    create(extra, "new", 8)
    view = wait_for("new on node 4", lambda: topic_view(extra, "new"))
    assert 4 in {leader for _, leader in view}
    produce(extra, "new", 80, 8)
    assert len(consume_all(nodes[1], "new", 8, 80)) == 80


def test_controlled_shutdown_leaves_metadata_at_once(cluster):
    # A session far longer than the test: only the controlled shutdown can
    # take a stopping broker out of client metadata this quickly.
    nodes = cluster(3, overrides={"broker.session.timeout.ms": "60000"})
    controller = wait_formed(nodes)
    create(nodes[0], "moving", 6)
    for victim in [n for n in nodes if n.node_id != controller][:1] + [n for n in nodes if n.node_id == controller]:
        rest = [n for n in nodes if n is not victim and n.alive()]
        t0 = time.time()
        assert victim.stop() == 0
        wait_for("node %d out of metadata" % victim.node_id,
                 lambda: victim.node_id not in brokers_seen(rest[0])[0], timeout=10)
        assert time.time() - t0 < 10
        # Its partitions lose their leader (replication factor 1: nobody else has them).
        wait_for("node %d leads nothing" % victim.node_id,
                 lambda: victim.node_id not in {leader for _, leader in topic_view(rest[0], "moving")}, timeout=10)
        assert "controlled shutdown: fenced" in victim.log()
        victim.start()
        wait_formed(nodes)


def test_lagging_voter_catches_up_from_a_snapshot(cluster):
    """Snapshots trim the metadata log; a voter that was away while the
    leader trimmed past its position fetches the snapshot (FetchSnapshot)."""
    nodes = cluster(3, overrides={"metadata.log.max.record.bytes.between.snapshots": "2000"})
    controller = wait_formed(nodes)
    away = next(n for n in nodes if n.node_id != controller)
    rest = [n for n in nodes if n is not away]
    away.stop()
    # Enough changes for several snapshots (one per housekeeping second at most).
    leader_dir = os.path.join(next(n for n in rest if n.node_id == controller).data_dir, "logs",
                              "__cluster_metadata-0")
    import re

    def snapshots():
        return [f for f in os.listdir(leader_dir) if re.match(r"^[0-9]{20}-[0-9]{10}\.checkpoint$", f)]
    made = 0
    deadline = time.time() + 60
    # Until the leader has written two snapshots (the log start moves to the older one's end).
    while len(snapshots()) < 2 and time.time() < deadline:
        create(rest[made % 2], "snap-%d" % made, 2)
        made += 1
        time.sleep(0.1)
    assert len(snapshots()) >= 2
    away.start()
    for i in range(made):
        wait_for("snap-%d on the returning node" % i, lambda i=i: topic_view(away, "snap-%d" % i), timeout=30)
    assert "loaded the leader's snapshot" in away.log()
    wait_formed(nodes)


def partition_state(node, name):
    md = admin(node).list_topics(timeout=5)
    t = md.topics.get(name)
    if t is None or t.error is not None:
        return None
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}


def sluice(*args, timeout=60):
    return subprocess.run([SLUICE] + list(args), capture_output=True, text=True, timeout=timeout)


def test_elections_preferred_and_unclean(cluster):
    """ElectLeaders: a preferred election needs the first replica live and
    in the ISR; an unclean one is not needed while a live leader exists. A
    killed leader's partition moves to another ISR member, and the returning
    broker rejoins the ISR and can be elected back."""
    nodes = cluster(3, overrides={"replica.lag.time.max.ms": "3000"})
    controller = wait_formed(nodes)
    a = admin(nodes[0])
    a.create_topics([NewTopic("rf3", 3, 3)], operation_timeout=10)["rf3"].result(20)
    st = wait_for("rf3 fully in sync", lambda: (lambda s: s if s and all(len(i) == 3 for _, _, i in s.values())
                                                  else None)(partition_state(nodes[1], "rf3")), timeout=30)
    for pid, (leader, replicas, isr) in st.items():
        assert len(replicas) == 3 and leader == replicas[0], st
    produce(nodes[0], "rf3", 30, 3)
    # A replica assignment is kept as given, through any node.
    a2 = admin(nodes[2])
    a2.create_topics([NewTopic("placed", 2, replica_assignment=[[3, 1], [2, 3]])],
                     operation_timeout=10)["placed"].result(20)
    st2 = wait_for("placed in the metadata", lambda: partition_state(nodes[0], "placed"))
    assert {p: (l, r) for p, (l, r, _) in st2.items()} == {0: (3, [3, 1]), 1: (2, [2, 3])}, st2
    bad = a2.create_topics([NewTopic("misplaced", 1, replica_assignment=[[9]])], operation_timeout=10)
    with pytest.raises(Exception, match="INVALID_REPLICA_ASSIGNMENT|not a registered"):
        bad["misplaced"].result(20)
    boot = nodes[0].bootstrap
    # Everything is led by its preferred replica: nothing to elect.
    r = sluice("leader-election", "--bootstrap-server", boot, "--election-type", "PREFERRED",
               "--all-topic-partitions")
    assert r.returncode == 0 and "No partition needed a PREFERRED election" in r.stdout, r.stdout + r.stderr
    r = sluice("leader-election", "--bootstrap-server", boot, "--election-type", "PREFERRED", "--topic", "rf3")
    assert r.returncode == 0 and "Valid replica already elected for partitions" in r.stdout, r.stdout + r.stderr

    # The leader of a partition (not the active controller) dies: another
    # ISR member leads, and the ISR shrinks.
    victim_id = next(l for l, _, _ in st.values() if l != controller)
    part = next(p for p, (l, _, _) in st.items() if l == victim_id)
    victim = next(n for n in nodes if n.node_id == victim_id)
    rest = [n for n in nodes if n is not victim]
    victim.kill9()
    leader, replicas, isr = wait_for(
        "partition %d to move" % part,
        lambda: (lambda s: s if s[0] not in (-1, victim_id) and victim_id not in s[2] else None)(
            partition_state(rest[0], "rf3")[part]), timeout=30)
    assert replicas[0] == victim_id and len(isr) == 2, (leader, replicas, isr)
    r = sluice("leader-election", "--bootstrap-server", rest[0].bootstrap, "--election-type", "PREFERRED",
               "--topic", "rf3", "--partition", str(part))
    assert r.returncode == 1 and "PREFERRED_LEADER_NOT_AVAILABLE" in r.stdout, r.stdout + r.stderr
    # Unclean, through a node that is not the active controller (forwarded):
    # a live leader exists.
    via = next(n for n in rest if n.node_id != controller)
    r = sluice("leader-election", "--bootstrap-server", via.bootstrap, "--election-type", "UNCLEAN",
               "--topic", "rf3", "--partition", str(part))
    assert r.returncode == 0 and "Valid replica already elected" in r.stdout, r.stdout + r.stderr
    r = sluice("leader-election", "--bootstrap-server", via.bootstrap, "--election-type", "PREFERRED",
               "--topic", "nope", "--partition", "0")
    assert r.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stdout, r.stdout + r.stderr
    # The partition takes records meanwhile.
    p = Producer({"bootstrap.servers": rest[0].bootstrap, "acks": "all"})
    errs = []
    p.produce("rf3", value=b"after", partition=part, on_delivery=lambda e, m: errs.append(e))
    assert p.flush(30) == 0 and errs == [None], errs
    # The broker returns, catches up, rejoins the ISR and is elected back.
    victim.start()
    wait_for("broker %d back in the ISR" % victim_id,
             lambda: victim_id in partition_state(rest[0], "rf3")[part][2], timeout=60)
    # Retried: on a slow machine (sanitizers) a late heartbeat can fence the
    # returning broker again for a moment.
    want = "Successfully completed leader election (PREFERRED) for partitions rf3-%d" % part
    wait_for("a preferred election of rf3-%d" % part,
             lambda: (lambda r: r.returncode == 0 and (want in r.stdout or "Valid replica already" in r.stdout))(
                 sluice("leader-election", "--bootstrap-server", via.bootstrap, "--election-type", "PREFERRED",
                        "--topic", "rf3", "--partition", str(part))), timeout=60)
    wait_for("the preferred leader back", lambda: partition_state(rest[0], "rf3")[part][0] == victim_id)
    consume_all(rest[0], "rf3", 3, 31)


def test_unregister_broker(cluster):
    nodes = cluster(3)
    controller = wait_formed(nodes)
    victim = next(n for n in nodes if n.node_id != controller)
    rest = [n for n in nodes if n is not victim]
    boot = rest[0].bootstrap
    r = sluice("cluster", "unregister", "--bootstrap-server", boot, "--id", str(controller))
    assert r.returncode == 1 and "INVALID_REQUEST" in r.stderr, r.stdout + r.stderr
    r = sluice("cluster", "unregister", "--bootstrap-server", boot, "--id", "77")
    assert r.returncode == 1 and "BROKER_ID_NOT_REGISTERED" in r.stderr, r.stdout + r.stderr
    victim.kill9()
    wait_for("node %d fenced" % victim.node_id,
             lambda: victim.node_id not in brokers_seen(rest[0])[0], timeout=20)
    r = sluice("cluster", "unregister", "--bootstrap-server", boot, "--id", str(victim.node_id))
    assert r.returncode == 0 and "Broker %d is no longer registered" % victim.node_id in r.stdout, r.stderr
    r = sluice("cluster", "unregister", "--bootstrap-server", boot, "--id", str(victim.node_id))
    assert r.returncode == 1 and "BROKER_ID_NOT_REGISTERED" in r.stderr, r.stdout + r.stderr
    # Kafka's tool name does the same.
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "bin",
                        "kafka-cluster.sh")
    env = dict(os.environ, SLUICE_BIN_DIR=BUILD)
    r = subprocess.run([tool, "cluster-id", "--bootstrap-server", boot], capture_output=True, text=True,
                       timeout=30, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "Cluster ID: %s" % CLUSTER_ID, r.stdout + r.stderr
    # A broker that comes back registers again.
    victim.start()
    wait_formed(nodes)


def log_bytes(node, topic, part):
    d = os.path.join(node.data_dir, "logs", "%s-%d" % (topic, part))
    out = b""
    for f in sorted(os.listdir(d)):
        if f.endswith(".log"):
            with open(os.path.join(d, f), "rb") as fh:
                out += fh.read()
    return out


def test_replication_acks_all_survives_the_leader(cluster):
    """Followers fetch from their leader and join the ISR; acks=all waits for
    the ISR; when the leader is killed, a follower from the ISR leads with
    every acknowledged record, and the replicas' logs are identical. The
    producers are idempotent: no record may appear twice."""
    nodes = cluster(3, overrides={"replica.lag.time.max.ms": "3000", "replica.fetch.wait.max.ms": "200"})
    wait_formed(nodes)
    a = admin(nodes[0])
    a.create_topics([NewTopic("repl", 3, 3, config={"min.insync.replicas": "2"})],
                    operation_timeout=10)["repl"].result(20)
    wait_for("the ISRs to fill up", lambda: all(len(isr) == 3 for _, _, isr in
                                                  partition_state(nodes[0], "repl").values()), timeout=30)
    p = Producer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "acks": "all",
                  "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 60000})
    acked, errs = [], []

    def cb(err, msg):
        (errs if err else acked).append((msg.partition(), msg.value()) if not err else err)

    for i in range(3000):
        p.produce("repl", value=b"v%05d" % i, partition=i % 3, on_delivery=cb)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0 and not errs, errs[:3]
    assert len(acked) == 3000
    st = partition_state(nodes[0], "repl")
    # The followers have everything (the HW is theirs too): identical logs.
    for part, (leader, replicas, isr) in st.items():
        want = log_bytes(next(n for n in nodes if n.node_id == leader), "repl", part)
        for r in replicas:
            node = next(n for n in nodes if n.node_id == r)
            wait_for("replica %d of repl-%d to match its leader" % (r, part),
                     lambda: log_bytes(node, "repl", part) == want, timeout=20)
    # Kill the leader of partition 0: a follower from the ISR takes over.
    leader0 = st[0][0]
    victim = next(n for n in nodes if n.node_id == leader0)
    rest = [n for n in nodes if n is not victim]
    victim.kill9()
    wait_for("a new leader for repl-0", lambda: partition_state(rest[0], "repl")[0][0] not in (-1, leader0),
             timeout=30)
    # More acks=all writes go on with two in-sync replicas.
    p2 = Producer({"bootstrap.servers": ",".join(n.bootstrap for n in rest), "acks": "all",
                   "enable.idempotence": True, "message.timeout.ms": 60000})
    more = []
    for i in range(300):
        p2.produce("repl", value=b"w%05d" % i, partition=i % 3,
                   on_delivery=lambda e, m: more.append(e))
    assert p2.flush(60) == 0 and all(e is None for e in more), [e for e in more if e][:3]
    # Every acknowledged record is there, once.
    c = Consumer({"bootstrap.servers": rest[0].bootstrap, "group.id": "check-%d" % time.time_ns(),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("repl", q, 0) for q in range(3)])
    got = []
    deadline = time.time() + 60
    while len(got) < 3300 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append((m.partition(), m.value()))
    c.close()
    missing = set(acked) - set(got)
    assert not missing, "lost %d acknowledged records, e.g. %r" % (len(missing), sorted(missing)[:5])
    assert len(got) == len(set(got)) == 3300
    # The killed broker returns, catches up from the new leader and rejoins.
    victim.start()
    wait_for("the ISRs to fill up again", lambda: all(len(isr) == 3 for _, _, isr in
                                                        partition_state(rest[0], "repl").values()), timeout=60)


def test_delete_records_reaches_the_followers(cluster):
    """DeleteRecords moves the leader's log start; the followers take it from
    the leader's Fetch answers, so when the leader dies the new one starts
    where the old one did instead of serving the deleted records again."""
    nodes = cluster(3, overrides={"replica.lag.time.max.ms": "3000", "replica.fetch.wait.max.ms": "200"})
    wait_formed(nodes)
    a = admin(nodes[0])
    a.create_topics([NewTopic("trimmed", 1, 3)], operation_timeout=10)["trimmed"].result(20)
    wait_for("a full ISR", lambda: len(partition_state(nodes[0], "trimmed")[0][2]) == 3, timeout=30)
    p = Producer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "acks": "all"})
    for i in range(200):
        p.produce("trimmed", value=b"d%03d" % i, partition=0)
    assert p.flush(30) == 0
    from confluent_kafka import TopicPartition as TP
    from test_api_versions import raw_request
    leader = partition_state(nodes[0], "trimmed")[0][0]
    # DeleteRecords v1 to the leader (Debian's clients have no admin call for
    # it): topics[name, partitions[index, offset]], timeout
    body = struct.pack(">ih", 1, 7) + b"trimmed" + struct.pack(">iiqi", 1, 0, 150, 10000)
    r = raw_request(next(n for n in nodes if n.node_id == leader).port, 21, 1, body)
    # correlation id, throttle, topics[1], "trimmed", partitions[1]: index, low watermark, error
    assert struct.unpack(">iqh", r[4 + 4 + 4 + 9 + 4:][:14]) == (0, 150, 0), r
    victim = next(n for n in nodes if n.node_id == leader)
    rest = [n for n in nodes if n is not victim]
    # a few more records, so the followers fetch (and learn the new start) at least once more
    for i in range(200, 210):
        p.produce("trimmed", value=b"d%03d" % i, partition=0)
    assert p.flush(30) == 0
    time.sleep(1.0)
    victim.kill9()
    wait_for("a new leader", lambda: partition_state(rest[0], "trimmed")[0][0] not in (-1, leader), timeout=30)
    c = Consumer({"bootstrap.servers": rest[0].bootstrap, "group.id": "trim-%d" % time.time_ns()})
    lo, hi = wait_for("the new leader's offsets",
                      lambda: c.get_watermark_offsets(TP("trimmed", 0), timeout=5), timeout=30)
    c.close()
    assert (lo, hi) == (150, 210), (lo, hi)


def test_committed_offsets_survive_the_coordinator(cluster):
    """With offsets.topic.replication.factor=3 the group coordinator answers
    an OffsetCommit only once the followers of its __consumer_offsets
    partition have it: when the coordinator's broker is killed, the next
    leader of that partition coordinates the group with the offsets the
    consumer was told were committed."""
    from test_groups import java_hash
    nodes = cluster(3, overrides={"offsets.topic.replication.factor": "3", "replica.lag.time.max.ms": "3000",
                                  "replica.fetch.wait.max.ms": "200"})
    wait_formed(nodes)
    create(nodes[0], "work", 3)
    produce(nodes[0], "work", 90, 3)
    conf = {"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "group.id": "durable",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    c = Consumer(conf)
    c.subscribe(["work"])
    got = 0
    deadline = time.time() + 40
    while got < 90 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    assert got == 90
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition("work", p) for p in range(3)],
                                                                 timeout=10)}
    c.close()
    assert committed == {0: 30, 1: 30, 2: 30}, committed
    shard = (java_hash("durable") & 0x7fffffff) % 6
    st = partition_state(nodes[0], "__consumer_offsets")
    leader, replicas, isr = st[shard]
    assert len(replicas) == 3, st[shard]
    victim = next(n for n in nodes if n.node_id == leader)
    rest = [n for n in nodes if n is not victim]
    victim.kill9()
    wait_for("a new leader of __consumer_offsets-%d" % shard,
             lambda: partition_state(rest[0], "__consumer_offsets")[shard][0] not in (-1, leader), timeout=30)
    conf["bootstrap.servers"] = ",".join(n.bootstrap for n in rest)
    c = Consumer(conf)
    again = wait_for("the committed offsets from the new coordinator",
                     lambda: {tp.partition: tp.offset for tp in
                              c.committed([TopicPartition("work", p) for p in range(3)], timeout=5)}, timeout=40)
    c.close()
    assert again == committed, (again, committed)


def test_metadata_version_across_the_cluster(cluster):
    """The active controller finalizes metadata.version for a new cluster;
    every node reports it; UpdateFeatures sent to any node is forwarded to
    the active controller, which applies Kafka's rules."""
    from test_features import update_features, wait_level
    nodes = cluster(3)
    controller = wait_formed(nodes)
    for nd in nodes:
        wait_level(nd.port, 25, timeout=20)
    other = next(n for n in nodes if n.node_id != controller)
    top, res = update_features(other.port, [("metadata.version", 20, 2)])
    assert res["metadata.version"][0] == 95 and "cannot go down" in res["metadata.version"][1], res
    top, res = update_features(other.port, [("metadata.version", 25, 1)])
    assert res["metadata.version"] == (0, None), res


def test_auto_leader_rebalance_returns_leadership(cluster):
    """auto.leader.rebalance.enable: a broker that comes back leads its
    preferred partitions again once it is in their ISRs, without an
    ElectLeaders call (with auto.leader.rebalance.enable=false this test
    times out waiting for it)."""
    nodes = cluster(3, overrides={"replica.lag.time.max.ms": "3000", "leader.imbalance.check.interval.seconds": "1"})
    wait_formed(nodes)
    a = admin(nodes[0])
    a.create_topics([NewTopic("bal", 6, 3)], operation_timeout=10)["bal"].result(20)
    st = wait_for("bal fully in sync", lambda: (lambda s: s if s and all(len(i) == 3 for _, _, i in s.values())
                                                 else None)(partition_state(nodes[0], "bal")), timeout=30)
    assert all(leader == replicas[0] for leader, replicas, _ in st.values()), st
    victim = next(n for n in nodes if n.node_id == st[0][1][0])
    mine = [p for p, (_, replicas, _) in st.items() if replicas[0] == victim.node_id]
    rest = [n for n in nodes if n is not victim]
    victim.kill9()
    wait_for("the victim's partitions to move", lambda: all(
        partition_state(rest[0], "bal")[p][0] not in (-1, victim.node_id) for p in mine), timeout=30)
    victim.start()
    wait_for("the victim to lead its preferred partitions again", lambda: all(
        partition_state(rest[0], "bal")[p][0] == victim.node_id for p in mine), timeout=40)


def test_fetch_between_the_high_watermark_and_the_log_end(cluster):
    """A consumer may fetch at an offset the leader has but has not committed
    yet (a new leader whose high watermark has not caught up with what the
    old one had told consumers): the answer is empty, not
    OFFSET_OUT_OF_RANGE (which would make a consumer reset its position),
    and a long poll there waits instead of answering at once. Here the
    followers are paused so that the leader's HW stays behind its log end."""
    from kafka.protocol.fetch import FetchRequest
    from test_produce_fetch import conn, send
    nodes = cluster(3, overrides={"replica.lag.time.max.ms": "20000", "replica.fetch.wait.max.ms": "200"})
    wait_formed(nodes)
    a = admin(nodes[0])
    a.create_topics([NewTopic("gap", 1, 3)], operation_timeout=10)["gap"].result(20)
    wait_for("a full ISR", lambda: len(partition_state(nodes[0], "gap")[0][2]) == 3, timeout=30)
    leader_id = partition_state(nodes[0], "gap")[0][0]
    leader = next(n for n in nodes if n.node_id == leader_id)
    followers = [n for n in nodes if n is not leader]
    p = Producer({"bootstrap.servers": leader.bootstrap, "acks": "all"})
    for i in range(10):
        p.produce("gap", value=b"c%d" % i, partition=0)
    assert p.flush(30) == 0
    for f in followers:
        f.proc.send_signal(signal.SIGSTOP)
    try:
        p1 = Producer({"bootstrap.servers": leader.bootstrap, "acks": "1"})
        for i in range(5):
            p1.produce("gap", value=b"u%d" % i, partition=0)
        assert p1.flush(30) == 0  # log end 15, high watermark still 10
        c = conn(leader)
        Req = FetchRequest[4]
        r = send(c, Req(replica_id=-1, max_wait_time=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                        topics=[("gap", [(0, 12, 1 << 20)])]))
        part = r.topics[0][1][0]
        assert (part[1], part[2]) == (0, 10), part  # no error, high watermark 10
        t0 = time.time()
        r = send(c, Req(replica_id=-1, max_wait_time=600, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                        topics=[("gap", [(0, 12, 1 << 20)])]))
        assert r.topics[0][1][0][1] == 0
        assert time.time() - t0 >= 0.5, "the long poll answered at once"
        # past the log end it is out of range
        r = send(c, Req(replica_id=-1, max_wait_time=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                        topics=[("gap", [(0, 16, 1 << 20)])]))
        assert r.topics[0][1][0][1] == 1, r.topics[0][1][0]
        c.close()
    finally:
        for f in followers:
            f.proc.send_signal(signal.SIGCONT)


def test_acls_replicate_and_are_forwarded(cluster):
    # PLAINTEXT inter-broker traffic is User:ANONYMOUS: it must be a super user
    # (docs/security.md), which makes the test's admin one too.
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, ResourcePattern, ResourcePatternFilter, ResourceType)
    nodes = cluster(3, overrides={"authorizer.class.name":
                                  "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                                  "super.users": "User:ANONYMOUS"})
    controller = wait_formed(nodes)
    follower = next(n for n in nodes if n.node_id != controller)
    acl = ACL(principal="User:alice", host="*", operation=ACLOperation.READ,
              permission_type=ACLPermissionType.ALLOW,
              resource_pattern=ResourcePattern(ResourceType.TOPIC, "orders", ACLResourcePatternType.LITERAL))
    flt = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
                    resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))

    def kp(node):
        return KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=15000)

    a = kp(follower)  # CreateAcls through a node that is not the active controller
    try:
        res = a.create_acls([acl])
        assert len(res["succeeded"]) == 1, res
    finally:
        a.close()

    def principals(node):
        c = kp(node)
        try:
            acls, _ = c.describe_acls(flt)
            return sorted(x.principal for x in acls)
        finally:
            c.close()

    for n in nodes:
        wait_for("the ACL on node %d" % n.node_id, lambda n=n: principals(n) == ["User:alice"])
    # Replication (followers fetch as User:ANONYMOUS) still works with the
    # authorizer on: acks=all needs the ISR to take the records.
    ac = admin(nodes[0])
    ac.create_topics([NewTopic("acl-rep", 1, 3)])["acl-rep"].result(20)
    wait_for("acl-rep everywhere", lambda: all(topic_view(n, "acl-rep") for n in nodes))
    produce(nodes[0], "acl-rep", 20, 1)
    assert len(consume_all(follower, "acl-rep", 1, 20)) == 20
    a = kp(follower)
    try:
        out = a.delete_acls([flt])
        assert len(out[0][1]) == 1
    finally:
        a.close()
    for n in nodes:
        wait_for("no ACL on node %d" % n.node_id, lambda n=n: principals(n) == [])
