"""An exactly-once consume-transform-produce worker for test_eos_chaos.py,
run as its own process so the test can kill it with SIGKILL.

It reads every partition of the input topic from the group's committed
offsets (read_committed, so require_stable: it waits while a transaction
holds offsets), and for each batch: begin a transaction, produce each
record's value to the same partition of the output topic, send the
consumer positions to the transaction, commit. Any error ends the process
with status 2; the test starts a new instance, whose init_transactions
fences the old one and aborts its open transaction.

usage: eos_worker.py BOOTSTRAP GROUP TXN_ID IN_TOPIC OUT_TOPIC PARTITIONS SECONDS
"""
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition


def main():
    bootstrap, group, txn_id, src, dst, parts, secs = sys.argv[1:8]
    parts, deadline = int(parts), time.time() + float(secs)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                  "socket.timeout.ms": 10000, "fetch.wait.max.ms": 100})
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5,
                  "transaction.timeout.ms": 20000, "socket.timeout.ms": 10000, "message.timeout.ms": 20000})
    try:
        p.init_transactions(30)
        tps = [TopicPartition(src, q) for q in range(parts)]
        committed = c.committed(tps, timeout=30)
        c.assign([TopicPartition(src, t.partition, t.offset if t.offset >= 0 else OFFSET_BEGINNING)
                  for t in committed])
        while time.time() < deadline:
            msgs = [m for m in c.consume(500, 0.5) if m.error() is None]
            if not msgs:
                continue
            p.begin_transaction()
            for m in msgs:
                p.produce(dst, value=m.value(), key=m.key(), partition=m.partition())
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
            p.commit_transaction(30)
            print("committed %d" % len(msgs), flush=True)
    except KafkaException as e:
        print("worker stops: %s" % e, flush=True)
        sys.exit(2)
    finally:
        c.close()


if __name__ == "__main__":
    main()
