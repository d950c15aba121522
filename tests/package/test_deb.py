"""The Debian package, installed on this machine (`make test-deb`; needs root,
so it is not part of `make test`).

dpkg -i installs it; the test checks what the maintainer scripts made (the
'sluice' system user, /var/lib/sluice), lints the unit with systemd-analyze,
edits /etc/sluice/server.properties as an operator would (a free loopback
port, so parallel runs and a broker on 9092 are left alone), and starts the
broker as the unit does. Where systemd is PID 1 that is `systemctl start
sluice`; elsewhere (containers, CI) the test runs the unit's ExecStart line
itself with the unit's User, WorkingDirectory and LimitNOFILE, and with
NOTIFY_SOCKET set to a socket it listens on - exactly the readiness protocol
Type=notify relies on. It then produces and consumes with the installed
kafka-*.sh tools, stops the broker with SIGTERM (systemd's KillSignal),
requires STOPPING=1, an exit within TimeoutStopSec and the clean-shutdown
marker, and purges the package, removing the user and data only if this test
created them.
"""
import configparser
import os
import pwd
import shlex
import signal
import socket
import subprocess
import tempfile
import time

import pytest

DEB = os.environ.get("SLUICE_DEB")
UNIT = "/lib/systemd/system/sluice.service"
CONF = "/etc/sluice/server.properties"
DATA = "/var/lib/sluice"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="installing a package needs root"),
    pytest.mark.skipif(not DEB, reason="SLUICE_DEB names the package to test (make test-deb sets it)"),
]


def sh(*cmd, check=True, **kw):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, **kw)
    if check:
        assert r.returncode == 0, f"{cmd}: {r.stdout}{r.stderr}"
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def systemd_running():
    return os.path.isdir("/run/systemd/system")


def unit_service_section():
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    with open(UNIT) as f:
        cp.read_file(f)
    return cp["Service"]


def recv_state(sock, want, deadline):
    """Datagrams until one carries the assignment `want`; returns its fields."""
    while time.time() < deadline:
        sock.settimeout(max(0.1, deadline - time.time()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        fields = dict(line.split("=", 1) for line in msg.splitlines() if "=" in line)
        if want in msg.splitlines():
            return fields
    raise AssertionError(f"no {want} on NOTIFY_SOCKET")


@pytest.fixture
def installed():
    if sh("dpkg-query", "-W", "-f=${Status}", "sluice", check=False).stdout.startswith("install ok"):
        pytest.fail("a sluice package is already installed on this machine; remove it first")
    had_user = sh("getent", "passwd", "sluice", check=False).returncode == 0
    had_data = os.path.exists(DATA)
    sh("dpkg", "-i", DEB)
    try:
        yield
    finally:
        sh("dpkg", "--purge", "sluice", check=False)
        if not had_data:
            sh("rm", "-rf", DATA, check=False)
        if not had_user:
            sh("userdel", "sluice", check=False)
            sh("groupdel", "sluice", check=False)


def test_install_serve_and_stop_cleanly(installed, tmp_path):
    # What postinst made.
    user = pwd.getpwnam("sluice")
    assert user.pw_uid < 1000 and user.pw_shell in ("/usr/sbin/nologin", "/bin/false")
    st = os.stat(DATA)
    assert st.st_uid == user.pw_uid and (st.st_mode & 0o777) == 0o750
    assert "/etc/sluice/server.properties" in sh("dpkg-query", "--control-show", "sluice", "conffiles").stdout
    for t in ("kafka-server-start.sh", "kafka-topics.sh", "kafka-console-producer.sh", "kafka-console-consumer.sh"):
        assert os.access(f"/usr/bin/{t}", os.X_OK)
    # Installing again (dpkg's upgrade path: postinst configure <old version>)
    # keeps the user and the data directory as they are.
    sh("dpkg", "-i", DEB)
    assert pwd.getpwnam("sluice").pw_uid == user.pw_uid and os.stat(DATA).st_uid == user.pw_uid
    r = sh("systemd-analyze", "verify", UNIT, check=False)
    assert r.returncode == 0, r.stdout + r.stderr

    svc = unit_service_section()
    assert svc["Type"] == "notify" and svc["User"] == "sluice" and svc["Restart"] == "on-failure"
    assert svc["RestartPreventExitStatus"] == "2"
    # ... because exit 2 is what a bad configuration gives, before anything is opened.
    bad = tmp_path / "bad.properties"
    bad.write_text("num.partitions=zero\n")
    r = sh("/usr/bin/sluiced", str(bad), check=False)
    assert r.returncode == 2 and "num.partitions" in r.stderr
    assert int(svc["LimitNOFILE"]) >= 65536
    stop_timeout = int(svc["TimeoutStopSec"])

    # The operator's edit: a free loopback port instead of localhost:9092.
    port = free_port()
    text = open(CONF).read()
    assert "listeners=PLAINTEXT://localhost:9092\n" in text
    with open(CONF, "w") as f:
        f.write(text.replace("listeners=PLAINTEXT://localhost:9092\n", f"listeners=PLAINTEXT://127.0.0.1:{port}\n"))
    bs = f"127.0.0.1:{port}"

    if systemd_running():
        sh("systemctl", "start", "sluice")  # returns once READY=1 arrived (Type=notify)
        proc = None
    else:
        # The broker runs as 'sluice': the socket must be reachable by it
        # (pytest's own temporary directories are root's only).
        notify_dir = tempfile.mkdtemp(prefix="sluice-notify-")
        os.chmod(notify_dir, 0o755)
        notify_path = os.path.join(notify_dir, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify_path)
        os.chmod(notify_path, 0o777)
        argv = shlex.split(svc["ExecStart"])
        # systemd (PID 1) may raise the hard limit; a container without
        # CAP_SYS_RESOURCE cannot, so the test applies what it is allowed.
        import resource
        nofile = min(int(svc["LimitNOFILE"]), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": notify_path, "HOME": DATA}

        def as_unit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            os.setgid(user.pw_gid)
            os.setgroups([])
            os.setuid(user.pw_uid)

        log = open(tmp_path / "sluiced.log", "w")
        proc = subprocess.Popen(argv, cwd=svc["WorkingDirectory"], env=env, preexec_fn=as_unit,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        if proc is not None:
            ready = recv_state(sock, "READY=1", time.time() + 30)
            assert int(ready["MAINPID"]) == proc.pid
            assert ready["STATUS"] == f"serving on port {port}"
        tools = {"env": {"PATH": "/usr/bin:/bin", "LOG_DIR": str(tmp_path / "logs"), "HOME": str(tmp_path)}}
        sh("/usr/bin/kafka-topics.sh", "--bootstrap-server", bs, "--create", "--topic", "pkg", "--partitions", "3",
           **tools)
        lines = [f"packaged {i}" for i in range(10)]
        sh("/usr/bin/kafka-console-producer.sh", "--bootstrap-server", bs, "--topic", "pkg",
           input="\n".join(lines) + "\n", **tools)
        r = sh("/usr/bin/kafka-console-consumer.sh", "--bootstrap-server", bs, "--topic", "pkg", "--from-beginning",
               "--max-messages", "10", **tools)
        assert sorted(r.stdout.splitlines()) == sorted(lines)
        # The data is the service user's, where the configuration says.
        assert os.stat(os.path.join(DATA, "pkg-0")).st_uid == user.pw_uid
    finally:
        t0 = time.time()
        if proc is None:
            sh("systemctl", "stop", "sluice")
        else:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        elapsed = time.time() - t0
    if proc is not None:
        assert rc == 0, open(tmp_path / "sluiced.log").read()
        recv_state(sock, "STOPPING=1", time.time() + 1)
        sock.close()
        os.unlink(notify_path)
        os.rmdir(notify_dir)
    assert elapsed < stop_timeout
    assert os.path.exists(os.path.join(DATA, ".clean-shutdown"))
