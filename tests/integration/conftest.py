"""Fixtures for integration tests: real sluiced processes on loopback ports.

Each test that asks for `broker` gets a fresh sluiced with its own data
directory, listening on a free 127.0.0.1 port. The process is started from the
build directory named by SLUICE_BUILD (default build/release) and stopped by
PID at the end (SIGTERM, then SIGKILL after a grace period). Its stderr is kept
in the data directory and printed when a test fails.
"""
import os
import resource
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("SLUICE_BUILD", os.path.join(ROOT, "build", "release"))
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
SLUICED = os.path.join(BUILD, "sluiced")


_HANDED_OUT = set()


def free_port():
    # The kernel may hand the same ephemeral port to two binds in a row once
    # the first socket is closed, so a test asking for several ports (a
    # node's broker and controller listeners) could get one port twice.
    # Never hand out a port twice in one test session.
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no unused loopback port left")


def wait_port(port, proc, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    """A running sluiced. restart() keeps the data directory. nofile, if set,
    is the RLIMIT_NOFILE (soft and hard) the process starts with."""

    def __init__(self, data_dir, overrides=None, nofile=None):
        self.data_dir = str(data_dir)
        self.port = free_port()
        self.overrides = dict(overrides or {})
        self.nofile = nofile
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "sluiced.log")
        self.log_file = None

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        args = [SLUICED,
                "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % self.port,
                "--override", "log.dirs=%s" % os.path.join(self.data_dir, "logs")]
        for k, v in self.overrides.items():
            args += ["--override", "%s=%s" % (k, v)]
        self.log_file = open(self.log_path, "ab")
        preexec = None
        if self.nofile is not None:
            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT, preexec_fn=preexec)
        # A start may finish a large creation a crash interrupted (thousands of
        # partition directories): allow it time, as a service manager would.
        if not wait_port(self.port, self.proc, timeout=60.0):
            self.stop()
            raise RuntimeError("sluiced did not start; log:\n" + self.log())
        return self

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        rc = self.proc.returncode
        self.proc = None
        if self.log_file:
            self.log_file.close()
            self.log_file = None
        return rc

    def kill9(self):
        return self.stop(sig=signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


@pytest.fixture
def broker_factory(tmp_path, request):
    started = []

    def make(overrides=None, name="b0", nofile=None):
        b = Broker(tmp_path / name, overrides, nofile=nofile)
        started.append(b)
        return b.start()

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for b in started:
        if failed:
            print("---- sluiced log (%s) ----\n%s" % (b.data_dir, b.log()[-20000:]))
        rc = b.stop()
        # A broker must shut down cleanly on SIGTERM.
        assert rc in (0, None, -signal.SIGKILL), "sluiced exited with %r; log:\n%s" % (rc, b.log()[-5000:])


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
