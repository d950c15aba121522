#!/usr/bin/python3
"""Broker memory: RSS of an idle sluiced, and with 1,000 partitions (each
with a little data), printed beside the RSS of the same binary's smallest
state measured in the same run (started, no topics) as a ratio.

    bench/bench_rss.py [--build build/release] [--partitions 1000]

Starts its own sluiced on a free loopback port with a temporary data dir and
stops it (by PID) at the end.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--partitions", type=int, default=1000)
    args = ap.parse_args()
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    data = tempfile.mkdtemp(prefix="sluice-bench-rss-")
    port = free_port()
    proc = subprocess.Popen([os.path.join(args.build, "sluiced"),
                             "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % port,
                             "--override", "log.dirs=%s" % data,
                             "--override", "log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.5)
        idle = rss_kib(proc.pid)
        bootstrap = "127.0.0.1:%d" % port
        admin = AdminClient({"bootstrap.servers": bootstrap})
        fs = admin.create_topics([NewTopic("rss", num_partitions=args.partitions, replication_factor=1)],
                                 operation_timeout=60)
        for f in fs.values():
            f.result(timeout=120)
        after_create = rss_kib(proc.pid)
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        for i in range(args.partitions * 10):
            p.produce("rss", value=b"x" * 100, partition=i % args.partitions)
            if i % 1000 == 0:
                p.poll(0)
        p.flush(60)
        del p, admin  # close the clients before the broker goes away
        time.sleep(1.0)
        loaded = rss_kib(proc.pid)
        print("bench_rss: sluiced resident memory")
        print("  %-44s %8.1f MiB  (baseline)" % ("idle, no topics", idle / 1024))
        print("  %-44s %8.1f MiB  ratio %.2f" % ("%d partitions created" % args.partitions,
                                                after_create / 1024, after_create / idle))
        print("  %-44s %8.1f MiB  ratio %.2f" % ("%d partitions, 10 records each" % args.partitions,
                                                loaded / 1024, loaded / idle))
        print("  %-44s %8.1f KiB" % ("per partition (loaded - idle) / partitions",
                                   (loaded - idle) / args.partitions))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
