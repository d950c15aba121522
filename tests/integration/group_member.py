"""One consumer-group member, run as a subprocess by test_groups.py.

It subscribes to a topic with confluent-kafka ("ck") or kafka-python ("kp"),
and prints one JSON object per line on stdout (flushed at once, so a SIGKILL
loses nothing already printed):
  {"ev": "assign", "parts": [...]}     partitions assigned (incremental with cooperative)
  {"ev": "revoke", "parts": [...]}     partitions revoked
  {"ev": "msg", "p": P, "o": O, "v": V} a record processed and its offset committed
  {"ev": "uncommitted", "p": P, "o": O} processed but the commit failed
  {"ev": "error", "err": "..."}
It runs until its stdin closes (then it closes the consumer cleanly, which
sends LeaveGroup) or --max-seconds pass.
"""
import argparse
import json
import sys
import threading
import time

stop = threading.Event()


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def watch_stdin():
    try:
        while sys.stdin.read(1):
            pass
    except Exception:
        pass
    stop.set()


def run_ck(a):
    from confluent_kafka import Consumer, KafkaException

    conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "enable.auto.commit": False,
        "auto.offset.reset": a.reset,
        "session.timeout.ms": a.session_ms,
        "heartbeat.interval.ms": max(100, a.session_ms // 10),
        "partition.assignment.strategy": a.strategy or "range,roundrobin",
        "topic.metadata.refresh.interval.ms": 2000,
    }
    if a.instance_id:
        conf["group.instance.id"] = a.instance_id
    c = Consumer(conf)

    def on_assign(cons, parts):
        emit(ev="assign", parts=sorted(p.partition for p in parts))

    def on_revoke(cons, parts):
        emit(ev="revoke", parts=sorted(p.partition for p in parts))

    c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke)
    deadline = time.time() + a.max_seconds
    while not stop.is_set() and time.time() < deadline:
        m = c.poll(0.1)
        if m is None:
            continue
        if m.error():
            emit(ev="error", err=str(m.error()))
            continue
        v = m.value().decode() if m.value() is not None else None
        if a.commit:
            try:
                c.commit(message=m, asynchronous=False)
            except KafkaException as e:
                emit(ev="uncommitted", p=m.partition(), o=m.offset(), err=str(e))
                continue
        emit(ev="msg", p=m.partition(), o=m.offset(), v=v)
    c.close()
    emit(ev="closed")


def run_kp(a):
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.structs import OffsetAndMetadata

    c = KafkaConsumer(
        bootstrap_servers=a.bootstrap,
        group_id=a.group,
        enable_auto_commit=False,
        auto_offset_reset=a.reset,
        session_timeout_ms=a.session_ms,
        heartbeat_interval_ms=max(100, a.session_ms // 10),
        metadata_max_age_ms=2000,
        api_version_auto_timeout_ms=5000,
    )

    class L(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            emit(ev="revoke", parts=sorted(p.partition for p in revoked))

        def on_partitions_assigned(self, assigned):
            emit(ev="assign", parts=sorted(p.partition for p in assigned))

    c.subscribe([a.topic], listener=L())
    deadline = time.time() + a.max_seconds
    while not stop.is_set() and time.time() < deadline:
        batch = c.poll(timeout_ms=100)
        for tp, msgs in batch.items():
            for m in msgs:
                v = m.value.decode() if m.value is not None else None
                if a.commit:
                    try:
                        c.commit({tp: OffsetAndMetadata(m.offset + 1, None)})
                    except Exception as e:
                        emit(ev="uncommitted", p=m.partition, o=m.offset, err=repr(e))
                        # The partition may have moved: re-read from the committed offset.
                        break
                emit(ev="msg", p=m.partition, o=m.offset, v=v)
    c.close()
    emit(ev="closed")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--client", choices=["ck", "kp"], default="ck")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--instance-id", default=None)
    p.add_argument("--strategy", default=None)
    p.add_argument("--session-ms", type=int, default=6000)
    p.add_argument("--reset", default="earliest")
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--no-commit", dest="commit", action="store_false")
    a = p.parse_args()
    threading.Thread(target=watch_stdin, daemon=True).start()
    emit(ev="start")
    (run_ck if a.client == "ck" else run_kp)(a)


if __name__ == "__main__":
    main()
