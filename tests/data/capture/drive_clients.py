#!/usr/bin/python3
"""Client scenarios for the capture run: one scenario per invocation.

Run by capture_all.py under Debian's /usr/bin/python3 (where confluent_kafka and
kafka load). Each scenario talks only to the capture broker on 127.0.0.1 and
exits on its own; capture_all.py also bounds it with a timeout.

The produce scenarios all send the same deterministic content so the captured
record batches can be checked by value: 50 records, key "key-<i>", value
"value-<i>-" + 100 * "x", and one header h=<i> on even-numbered records.
"""

import sys
import time

N_RECORDS = 50
GROUP_WAIT_S = 15


def record(i):
    key = ("key-%d" % i).encode()
    value = ("value-%d-" % i + "x" * 100).encode()
    headers = [("h", str(i).encode())] if i % 2 == 0 else []
    return key, value, headers


def confluent_produce(bootstrap, topic, codec, acks, idempotent="false"):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "client.id": "sluice-capture",
                  "compression.type": codec, "acks": acks, "linger.ms": 500,
                  "enable.idempotence": idempotent, "message.timeout.ms": 10000})
    # Learn the topic's leader first so that all 50 records queue on the partition
    # within one linger window and leave in one batch.
    p.list_topics(topic, timeout=10)
    for i in range(N_RECORDS):
        k, v, h = record(i)
        p.produce(topic, value=v, key=k, headers=h or None, partition=0)
    left = p.flush(15)
    if left:
        raise SystemExit("%d messages not delivered" % left)


def confluent_admin(bootstrap, topic):
    from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions, ConfigResource
    a = AdminClient({"bootstrap.servers": bootstrap, "client.id": "sluice-capture-admin"})
    for f in a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)],
                             request_timeout=10).values():
        f.result(timeout=10)
    for f in a.create_partitions([NewPartitions(topic, 5)], request_timeout=10).values():
        f.result(timeout=10)
    groups = a.list_groups(timeout=10)
    assert any(g.id == "cf-group" for g in groups), groups
    md = a.list_topics(timeout=10)
    assert topic in md.topics, md.topics
    for f in a.describe_configs([ConfigResource("topic", topic)], request_timeout=10).values():
        f.result(timeout=10)
    for f in a.delete_topics([topic], request_timeout=10).values():
        f.result(timeout=10)


def confluent_consume(bootstrap, topic, group):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "client.id": "sluice-capture-consumer",
                  "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "heartbeat.interval.ms": 300, "session.timeout.ms": 6000})
    c.subscribe([topic])
    got = 0
    deadline = time.time() + GROUP_WAIT_S
    last = None
    while got < N_RECORDS and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
            last = m
    if last is not None:
        c.commit(message=last, asynchronous=False)
    time.sleep(1.0)  # long enough for a heartbeat or two
    c.close()
    if got < N_RECORDS:
        raise SystemExit("consumed %d of %d" % (got, N_RECORDS))


def kp_produce(bootstrap, topic, codec, acks):
    from kafka import KafkaProducer
    acks = {"all": "all", "0": 0, "1": 1}[acks]
    p = KafkaProducer(bootstrap_servers=bootstrap, client_id="sluice-capture-kp",
                      compression_type=None if codec == "none" else codec, acks=acks,
                      linger_ms=200, batch_size=1 << 20)
    futs = []
    for i in range(N_RECORDS):
        k, v, h = record(i)
        futs.append(p.send(topic, value=v, key=k, headers=h, partition=0))
    p.flush(timeout=15)
    for f in futs:
        f.get(timeout=5)
    p.close(timeout=5)


def kp_consume(bootstrap, topic, group):
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, client_id="sluice-capture-kp-consumer",
                      group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=GROUP_WAIT_S * 1000, heartbeat_interval_ms=300,
                      session_timeout_ms=6000)
    got = 0
    for _ in c:
        got += 1
        if got >= N_RECORDS:
            break
    c.commit()
    time.sleep(1.0)
    c.close()
    if got < N_RECORDS:
        raise SystemExit("consumed %d of %d" % (got, N_RECORDS))


def kp_admin(bootstrap, topic):
    from kafka.admin import (KafkaAdminClient, NewTopic, NewPartitions, ConfigResource, ConfigResourceType,
                             ACLFilter, ACLOperation, ACLPermissionType, ResourcePatternFilter, ResourceType,
                             ACLResourcePatternType)
    a = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sluice-capture-kp-admin",
                         request_timeout_ms=10000)
    a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    assert topic in a.list_topics()
    a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    a.create_partitions({topic: NewPartitions(5)})
    groups = [g[0] for g in a.list_consumer_groups()]
    assert "kp-group" in groups, groups
    a.describe_consumer_groups(["kp-group"])
    a.list_consumer_group_offsets("kp-group")
    a.describe_acls(ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
                              permission_type=ACLPermissionType.ANY,
                              resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, topic,
                                                                     ACLResourcePatternType.LITERAL)))
    a.delete_consumer_groups(["kp-group"])
    a.delete_topics([topic])
    a.close()


SCENARIOS = {
    "confluent-produce": confluent_produce,
    "confluent-admin": confluent_admin,
    "confluent-consume": confluent_consume,
    "kp-produce": kp_produce,
    "kp-consume": kp_consume,
    "kp-admin": kp_admin,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
