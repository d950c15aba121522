"""Transactions in a three-node cluster (issue 13): the coordinator of a
transactional id sends its COMMIT/ABORT markers to the brokers that lead the
transaction's partitions (WriteTxnMarkers between brokers), and the offsets
of a consume-transform-produce transaction reach the group coordinator on
whichever broker leads the group's `__consumer_offsets` partition.

Driven with librdkafka's transactional producer (python3-confluent-kafka)
and read_committed consumers; every partition is replicated three ways, so
every marker also waits for its ISR."""
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from test_cluster import admin, cluster, wait_for, wait_formed  # noqa: F401 (cluster is a fixture)

PARTITIONS = 6
# __transaction_state as Kafka's defaults have it.
TXN_STATE = {"transaction.state.log.replication.factor": "3", "transaction.state.log.min.isr": "2"}


def create_rf3(node, name, partitions=PARTITIONS):
    def attempt():
        a = admin(node)
        fs = a.create_topics([NewTopic(name, partitions, 3)], operation_timeout=10)
        try:
            fs[name].result(15)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        md = a.list_topics(name, timeout=5).topics[name]
        return len(md.partitions) == partitions and all(
            p.leader >= 0 and len(p.isrs) == 3 for p in md.partitions.values())
    wait_for("topic %s with %d partitions, 3 in sync each" % (name, partitions), attempt, 40)


def leaders(node, name):
    md = admin(node).list_topics(name, timeout=5).topics[name]
    return {p.id: p.leader for p in md.partitions.values()}


def txn_producer(node, txn_id):
    return Producer({"bootstrap.servers": node.bootstrap, "transactional.id": txn_id, "linger.ms": 0,
                     "transaction.timeout.ms": 60000, "socket.timeout.ms": 10000})


def read_committed(node, topic, expect, timeout=30.0, partitions=PARTITIONS):
    """Every value of the topic a read_committed reader sees, read until
    every partition is at its end and at least `expect` arrived."""
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "r-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, eof = [], set()
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    if len(eof) == partitions and len(out) >= expect:
                        break
                    continue
                raise KafkaException(m.error())
            eof.discard(m.partition())
            out.append(m.value())
    finally:
        c.close()
    return out


def test_markers_reach_partitions_led_by_other_brokers(cluster):
    nodes = cluster(3, overrides=TXN_STATE)
    wait_formed(nodes)
    create_rf3(nodes[0], "tx")
    lead = leaders(nodes[0], "tx")
    assert len(set(lead.values())) > 1, "the partitions should be spread over the brokers: %r" % lead

    p = txn_producer(nodes[0], "cluster-txn-1")
    p.init_transactions(30)
    committed, aborted = [], []
    started = time.time()
    for t in range(8):
        p.begin_transaction()
        vals = [b"t%d-%d" % (t, i) for i in range(4 * PARTITIONS)]
        for i, v in enumerate(vals):
            p.produce("tx", value=v, partition=i % PARTITIONS)
        if t % 4 == 3:
            # Delivered first: an abort racing the registration of the
            # transaction's first partition (CONCURRENT_TRANSACTIONS while
            # the previous commit's markers are on their way) makes
            # librdkafka send EndTxn(abort) for a transaction the
            # coordinator never saw, which Kafka answers INVALID_TXN_STATE
            # too (fatal for librdkafka).
            assert p.flush(30) == 0
            p.abort_transaction(30)
            aborted += vals
        else:
            p.commit_transaction(30)
            committed += vals
    took = time.time() - started
    got = read_committed(nodes[1], "tx", len(committed))
    assert sorted(got) == sorted(committed), (len(got), len(committed))
    assert not set(got) & set(aborted)
    # Each transaction's markers go out at once, not at the coordinator's
    # one-second retry: eight transactions over three brokers well within it.
    assert took < 8 * 1.0, "8 transactions took %.1f s" % took
    p.flush(5)


def test_transactional_offsets_reach_another_brokers_group_coordinator(cluster):
    nodes = cluster(3, overrides=TXN_STATE)
    wait_formed(nodes)
    create_rf3(nodes[0], "src")
    create_rf3(nodes[0], "dst")
    src = Producer({"bootstrap.servers": nodes[0].bootstrap, "acks": "all"})
    for i in range(600):
        src.produce("src", value=b"%d" % i, partition=i % PARTITIONS)
    assert src.flush(30) == 0

    groups = ["eos-%d" % i for i in range(4)]  # several groups: their coordinators differ
    for g in groups:
        c = Consumer({"bootstrap.servers": nodes[1].bootstrap, "group.id": g, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
        c.assign([TopicPartition("src", q, 0) for q in range(PARTITIONS)])
        p = txn_producer(nodes[2], "eos-" + g)
        p.init_transactions(30)
        copied = 0
        deadline = time.time() + 60
        while copied < 600 and time.time() < deadline:
            msgs = c.consume(200, 1.0)
            msgs = [m for m in msgs if m.error() is None]
            if not msgs:
                continue
            p.begin_transaction()
            for m in msgs:
                p.produce("dst", value=m.value(), partition=m.partition())
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
            p.commit_transaction(30)
            copied += len(msgs)
        assert copied == 600, copied
        c.close()

        # The committed offsets are visible to a fresh consumer of the group
        # once the markers have reached its coordinator.
        def offsets_committed(g=g):
            cc = Consumer({"bootstrap.servers": nodes[0].bootstrap, "group.id": g, "enable.auto.commit": False})
            try:
                offs = cc.committed([TopicPartition("src", q) for q in range(PARTITIONS)], timeout=10)
                return sum(o.offset for o in offs if o.offset >= 0) == 600
            finally:
                cc.close()
        wait_for("group %s's transactional offsets" % g, offsets_committed, 30)

    got = read_committed(nodes[0], "dst", 600 * len(groups))
    assert len(got) == 600 * len(groups)
    assert sorted(set(got)) == sorted(b"%d" % i for i in range(600))


def test_commit_survives_the_loss_of_a_partition_leader(cluster):
    """A partition leader dies just after the commit: its marker was in the
    ISR before the coordinator finished, so the new leader has it and
    read_committed readers see the transaction."""
    nodes = cluster(3, overrides=TXN_STATE)
    wait_formed(nodes)
    create_rf3(nodes[0], "txk")
    p = txn_producer(nodes[0], "cluster-txn-kill")
    p.init_transactions(30)
    p.begin_transaction()
    vals = [b"k-%d" % i for i in range(10 * PARTITIONS)]
    for i, v in enumerate(vals):
        p.produce("txk", value=v, partition=i % PARTITIONS)
    p.commit_transaction(30)
    # Kill the leader of partition 0 (not the node the reader bootstraps from).
    victim_id = leaders(nodes[0], "txk")[0]
    victim = [n for n in nodes if n.node_id == victim_id][0]
    reader = [n for n in nodes if n.node_id != victim_id][0]
    victim.kill9()
    wait_for("a new leader of txk-0", lambda: leaders(reader, "txk").get(0, -1) not in (-1, victim_id), 30)
    got = read_committed(reader, "txk", len(vals))
    assert sorted(got) == sorted(vals)


def java_hash(s):
    h = 0
    for ch in s.encode():
        h = (31 * h + ch) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


def coordinator_of(node, txn_id):
    md = admin(node).list_topics("__transaction_state", timeout=5).topics["__transaction_state"]
    h = java_hash(txn_id)
    part = (0 if h == -(1 << 31) else abs(h)) % len(md.partitions)
    return md.partitions[part].leader


def test_coordinator_killed_its_successor_knows_the_transactions(cluster):
    """The coordinator's broker dies with one transaction committed and the
    next one open: the new leader of its __transaction_state partition loads
    both (the appends were in the ISR before the producer was answered), so
    a new instance of the producer fences and aborts the open one, and
    read_committed readers see exactly the committed records."""
    nodes = cluster(3, overrides=TXN_STATE)
    wait_formed(nodes)
    create_rf3(nodes[0], "txc")
    txn_id = "cluster-txn-failover"
    p = txn_producer(nodes[0], txn_id)
    p.init_transactions(30)
    p.begin_transaction()
    done = [b"c-%d" % i for i in range(4 * PARTITIONS)]
    for i, v in enumerate(done):
        p.produce("txc", value=v, partition=i % PARTITIONS)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(4 * PARTITIONS):
        p.produce("txc", value=b"open-%d" % i, partition=i % PARTITIONS)
    assert p.flush(30) == 0
    coord = coordinator_of(nodes[0], txn_id)
    victim = [n for n in nodes if n.node_id == coord][0]
    others = [n for n in nodes if n.node_id != coord]
    victim.kill9()
    wait_for("a new coordinator for %s" % txn_id,
             lambda: coordinator_of(others[0], txn_id) not in (-1, coord), 30)
    p2 = txn_producer(others[0], txn_id)
    p2.init_transactions(60)  # fences p and aborts its open transaction
    got = read_committed(others[0], "txc", len(done))
    assert sorted(got) == sorted(done)
    # The fenced instance cannot commit what it had open.
    try:
        p.commit_transaction(10)
        committed_anyway = True
    except KafkaException:
        committed_anyway = False
    assert not committed_anyway
    got = read_committed(others[1], "txc", len(done))
    assert sorted(got) == sorted(done)
