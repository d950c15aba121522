"""Kafka's tool names (bin/kafka-*.sh): the walk-through operators already
type, with the names and flags unchanged - start the broker with
kafka-server-start.sh -daemon, create a topic with 3 partitions, describe it,
produce from the console producer, consume from the beginning, stop it with
kafka-server-stop.sh - plus the edges: --zookeeper, tools whose feature is
still to come, and a stop that must never end a process it did not start.

The scripts find sluice/sluiced through SLUICE_BIN_DIR (the build under test)
and keep the pid file and console log under LOG_DIR (a temporary directory),
so parallel runs never share one.
"""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BUILD, ROOT, free_port

BIN = os.path.join(ROOT, "bin")


@pytest.fixture(autouse=True)
def stop_leftover_broker(tmp_path):
    """A test that failed before its kafka-server-stop.sh leaves no broker
    behind: the one its start recorded is ended by that pid, nothing else."""
    yield
    pid_file = tmp_path / "logs" / "sluiced.pid"
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def tool_env(tmp_path):
    env = dict(os.environ)
    env["SLUICE_BIN_DIR"] = BUILD
    env["LOG_DIR"] = str(tmp_path / "logs")
    return env


def run(tool, *args, env, input=None, timeout=60):
    return subprocess.run([os.path.join(BIN, tool), *args], env=env, input=input, capture_output=True,
                          text=True, timeout=timeout)


def write_props(tmp_path, port):
    data = tmp_path / "kafka-logs"
    props = tmp_path / "server.properties"
    # What the report edits in config/server.properties, nothing more.
    props.write_text("broker.id=0\n"
                     f"listeners=PLAINTEXT://127.0.0.1:{port}\n"
                     f"log.dirs={data}\n"
                     "num.partitions=1\n")
    return props, data


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_walk_through_with_kafka_names(tmp_path):
    env = tool_env(tmp_path)
    port = free_port()
    props, data = write_props(tmp_path, port)
    bs = f"127.0.0.1:{port}"

    r = run("kafka-server-start.sh", "-daemon", str(props), env=env)
    assert r.returncode == 0, r.stderr
    pid = int((tmp_path / "logs" / "sluiced.pid").read_text())
    try:
        # -daemon returns once the broker serves: no polling needed.
        r = run("kafka-topics.sh", "--create", "--bootstrap-server", bs, "--replication-factor", "1",
                "--partitions", "3", "--topic", "test", env=env)
        assert r.returncode == 0, r.stderr
        r = run("kafka-topics.sh", "--describe", "--bootstrap-server", bs, "--topic", "test", env=env)
        assert r.returncode == 0, r.stderr
        assert re.search(r"Topic: test\s.*PartitionCount: 3\s.*ReplicationFactor: 1", r.stdout), r.stdout
        assert len(re.findall(r"Partition: \d+\s+Leader: 0\s+Replicas: 0\s+Isr: 0", r.stdout)) == 3, r.stdout
        r = run("kafka-topics.sh", "--list", "--bootstrap-server", bs, env=env)
        assert r.returncode == 0 and "test" in r.stdout.split(), r.stdout + r.stderr

        lines = [f"This is message {i}" for i in range(5)]
        r = run("kafka-console-producer.sh", "--bootstrap-server", bs, "--topic", "test", env=env,
                input="\n".join(lines) + "\n")
        assert r.returncode == 0, r.stderr
        # Kafka 2.x's spelling of the same still works.
        r = run("kafka-console-producer.sh", "--broker-list", bs, "--topic", "test", env=env,
                input="one more\n")
        assert r.returncode == 0, r.stderr

        r = run("kafka-console-consumer.sh", "--bootstrap-server", bs, "--topic", "test", "--from-beginning",
                "--max-messages", "6", env=env)
        assert r.returncode == 0, r.stderr
        assert sorted(r.stdout.splitlines()) == sorted(lines + ["one more"])
        assert "Processed a total of 6 messages" in r.stderr

        r = run("kafka-console-consumer.sh", "--bootstrap-server", bs, "--topic", "test", "--from-beginning",
                "--max-messages", "1", "--formatter", "org.apache.kafka.tools.consumer.DefaultMessageFormatter",
                "--property", "print.partition=true", env=env)
        assert r.returncode == 0 and re.match(r"Partition:\d", r.stdout), r.stdout + r.stderr
    finally:
        r = run("kafka-server-stop.sh", env=env)
    assert r.returncode == 0, r.stderr
    # The stop waits for the clean shutdown, which marks the log directory.
    assert not pid_alive(pid)
    assert (data / ".clean-shutdown").exists()
    assert not (tmp_path / "logs" / "sluiced.pid").exists()
    out = (tmp_path / "logs" / "sluiced.out").read_text()
    assert "shut down cleanly" in out
    # A second stop has nothing to stop.
    r = run("kafka-server-stop.sh", env=env)
    assert r.returncode == 1 and "No sluice server to stop" in r.stderr


def test_perf_tools_and_storage(tmp_path):
    env = tool_env(tmp_path)
    port = free_port()
    props, data = write_props(tmp_path, port)
    bs = f"127.0.0.1:{port}"
    # The KRaft quickstart's first two steps succeed (there is nothing to format).
    r = run("kafka-storage.sh", "random-uuid", env=env)
    assert r.returncode == 0 and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}\n", r.stdout), r.stdout
    r = run("kafka-storage.sh", "format", "-t", r.stdout.strip(), "-c", str(props), "--standalone", env=env)
    assert r.returncode == 0 and f"log.dir: {data}" in r.stdout, r.stdout + r.stderr
    bad = tmp_path / "bad.properties"
    bad.write_text("num.partitions=zero\n")
    r = run("kafka-storage.sh", "format", "-t", "x", "-c", str(bad), env=env)
    assert r.returncode == 2 and "num.partitions" in r.stderr, r.stderr

    assert run("kafka-server-start.sh", "-daemon", str(props), env=env).returncode == 0
    try:
        # Kafka 3.x's producer perf test names the brokers among --producer-props, several words.
        r = run("kafka-producer-perf-test.sh", "--topic", "perf", "--num-records", "200", "--record-size", "50",
                "--throughput", "-1", "--producer-props", f"bootstrap.servers={bs}", "acks=1", "linger.ms=1",
                "--print-metrics", env=env)
        assert r.returncode == 0, r.stderr
        assert re.search(r"200 records sent", r.stdout), r.stdout
        r = run("kafka-consumer-perf-test.sh", "--bootstrap-server", bs, "--topic", "perf", "--messages", "200",
                "--timeout", "10000", "--show-detailed-stats", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("kafka-console-consumer.sh", "--bootstrap-server", bs, "--topic", "perf", "--group", "grp",
                "--from-beginning", "--max-messages", "10", env=env)
        assert r.returncode == 0, r.stderr
        r = run("kafka-consumer-groups.sh", "--bootstrap-server", bs, "--list", env=env)
        assert r.returncode == 0 and "grp" in r.stdout.split(), r.stdout + r.stderr
        r = run("kafka-consumer-groups.sh", "--bootstrap-server", bs, "--describe", "--group", "grp", "--state",
                env=env)
        assert r.returncode == 0, r.stderr
        head, row = r.stdout.strip().splitlines()
        assert head.split()[:3] == ["GROUP", "COORDINATOR", "(ID)"] and "#MEMBERS" in head, r.stdout
        assert row.split()[0] == "grp" and row.split()[-2:] == ["Empty", "0"], r.stdout
        r = run("kafka-consumer-groups.sh", "--bootstrap-server", bs, "--describe", "--group", "grp", "--offsets",
                "--verbose", env=env)
        assert r.returncode == 0 and "CURRENT-OFFSET" in r.stdout, r.stdout + r.stderr
        r = run("kafka-configs.sh", "--bootstrap-server", bs, "--describe", "--entity-type", "topics",
                "--entity-name", "perf", env=env)
        assert r.returncode == 0, r.stderr
        r = run("kafka-dump-log.sh", "--files", str(data / "perf-0" / "00000000000000000000.log"), env=env)
        assert r.returncode == 0 and "baseOffset: 0" in r.stdout, r.stdout + r.stderr
    finally:
        assert run("kafka-server-stop.sh", env=env).returncode == 0


@pytest.mark.parametrize("tool,args", [
    ("kafka-topics.sh", ["--zookeeper", "localhost:2181", "--list"]),
    ("kafka-configs.sh", ["--zookeeper=localhost:2181", "--describe", "--entity-type", "topics"]),
    ("kafka-consumer-groups.sh", ["--bootstrap-controller", "localhost:9093", "--list"]),
])
def test_zookeeper_flags_are_refused_with_the_reason(tmp_path, tool, args):
    r = run(tool, *args, env=tool_env(tmp_path))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "--bootstrap-server" in r.stderr


@pytest.mark.parametrize("tool", ["kafka-reassign-partitions.sh"])
def test_tools_still_to_come_say_so(tmp_path, tool):
    r = run(tool, "--bootstrap-server", "127.0.0.1:1", "--describe", env=tool_env(tmp_path))
    assert r.returncode == 1
    assert r.stderr.startswith(f"{tool}: not available yet: ")
    assert len(r.stderr.strip().splitlines()) == 1


def test_kafka_transactions_list_describe(tmp_path, broker):
    r = run("kafka-transactions.sh", "--bootstrap-server", broker.bootstrap, "list", env=tool_env(tmp_path))
    assert r.returncode == 0 and "TransactionalId" in r.stdout, r.stderr
    r = run("kafka-transactions.sh", "--bootstrap-server", broker.bootstrap, "describe", "--transactional-id",
            "none", env=tool_env(tmp_path))
    assert r.returncode == 4 and "TRANSACTIONAL_ID_NOT_FOUND" in r.stderr, r.stderr
    # abort and describe-producers take Kafka's flags (here: missing ones, a usage error) ...
    r = run("kafka-transactions.sh", "--bootstrap-server", broker.bootstrap, "abort", env=tool_env(tmp_path))
    assert r.returncode == 2 and "--abort needs --topic and --partition" in r.stderr, r.stderr
    r = run("kafka-transactions.sh", "--bootstrap-server", broker.bootstrap, "describe-producers", "--topic",
            "nope", "--partition", "0", env=tool_env(tmp_path))
    assert r.returncode == 4 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr, r.stderr
    # ... find-hanging is still to come.
    r = run("kafka-transactions.sh", "--bootstrap-server", broker.bootstrap, "find-hanging", "--broker-id", "1",
            env=tool_env(tmp_path))
    assert r.returncode == 1 and r.stderr.startswith("kafka-transactions.sh: not available yet: ")


def test_version_names_the_build(tmp_path):
    # The tree may have been edited since the build: compare without ".dirty".
    want = subprocess.run(["sh", os.path.join(ROOT, "scripts", "version.sh")], capture_output=True,
                          text=True).stdout.strip().removesuffix(".dirty")
    for prog in ("sluiced", "sluice"):
        r = subprocess.run([os.path.join(BUILD, prog), "--version"], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.split()[0] == prog, r.stdout
        assert r.stdout.split()[1].removesuffix(".dirty") == want, r.stdout
    r = run("kafka-topics.sh", "--version", env=tool_env(tmp_path))
    assert r.returncode == 0 and want in r.stdout


def test_stop_never_ends_a_process_it_did_not_start(tmp_path, broker):
    env = tool_env(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    # No pid file: nothing is stopped, not even the broker running next door.
    r = run("kafka-server-stop.sh", env=env)
    assert r.returncode == 1
    assert broker.alive()
    # A stale pid file whose pid now belongs to another program.
    other = subprocess.Popen(["sleep", "30"])
    try:
        (logs / "sluiced.pid").write_text(f"{other.pid}\n")
        r = run("kafka-server-stop.sh", env=env)
        assert r.returncode == 1
        assert other.poll() is None and broker.alive()
    finally:
        other.kill()
        other.wait()


def test_start_refuses_a_second_broker_on_one_pid_file(tmp_path):
    env = tool_env(tmp_path)
    props, _ = write_props(tmp_path, free_port())
    assert run("kafka-server-start.sh", "-daemon", str(props), env=env).returncode == 0
    try:
        r = run("kafka-server-start.sh", "-daemon", str(props), env=env)
        assert r.returncode == 1 and "already running as pid" in r.stderr
    finally:
        assert run("kafka-server-stop.sh", env=env).returncode == 0


def test_daemon_start_failure_is_reported(tmp_path):
    env = tool_env(tmp_path)
    port = free_port()
    props, _ = write_props(tmp_path, port)
    # Something already listens on the port: the daemon cannot bind it.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        r = run("kafka-server-start.sh", "-daemon", str(props), env=env)
    assert r.returncode == 1 and "failed to start" in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "logs" / "sluiced.pid").exists()
    r = run("kafka-server-start.sh", env=env)
    assert r.returncode == 1 and r.stderr.startswith("USAGE: kafka-server-start.sh [-daemon] server.properties")


def test_make_install_tree_runs_without_the_source_tree(tmp_path):
    root = tmp_path / "root"
    r = subprocess.run(["make", "--no-print-directory", "-C", ROOT, "install", f"BUILD={BUILD}",
                        f"DESTDIR={root}", "PREFIX=/usr"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    bindir = root / "usr" / "bin"
    names = sorted(p.name for p in bindir.iterdir())
    for t in ("kafka-server-start.sh", "kafka-server-stop.sh", "kafka-topics.sh", "kafka-console-producer.sh",
              "kafka-console-consumer.sh", "kafka-consumer-groups.sh", "kafka-configs.sh",
              "kafka-producer-perf-test.sh", "kafka-consumer-perf-test.sh", "kafka-dump-log.sh",
              "kafka-storage.sh", "kafka-metadata-quorum.sh", "kafka-acls.sh", "kafka-transactions.sh",
              "kafka-reassign-partitions.sh", "kafka-leader-election.sh", "kafka-cluster.sh", "sluice", "sluiced"):
        assert t in names
    man = root / "usr" / "share" / "man"
    assert (man / "man8" / "sluiced.8").exists() and (man / "man1" / "sluice.1").exists()
    assert os.path.realpath(man / "man1" / "kafka-topics.sh.1") == str(man / "man1" / "sluice-kafka-tools.1")
    env = dict(os.environ)
    env.pop("SLUICE_BIN_DIR", None)
    env["PATH"] = "/usr/bin:/bin"  # no sluice on PATH: the tools must find the installed one
    env["LOG_DIR"] = str(tmp_path / "logs")
    port = free_port()
    props, _ = write_props(tmp_path, port)
    r = subprocess.run([str(bindir / "kafka-server-start.sh"), "-daemon", str(props)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        r = subprocess.run([str(bindir / "kafka-topics.sh"), "--bootstrap-server", f"127.0.0.1:{port}",
                            "--create", "--topic", "t", "--partitions", "2"], env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        r = subprocess.run([str(bindir / "kafka-server-stop.sh")], env=env, capture_output=True, text=True,
                           timeout=90)
    assert r.returncode == 0, r.stderr
