"""sluiced as an operator meets it: configuration errors, warnings, clean
and unclean shutdown."""
import os
import signal
import subprocess
import time

from conftest import SLUICED, Broker, free_port


def run_sluiced(args, timeout=10):
    return subprocess.run([SLUICED] + args, capture_output=True, text=True, timeout=timeout)


def test_invalid_value_is_rejected_naming_the_key(tmp_path):
    p = run_sluiced(["--override", "num.partitions=many", "--override", "log.dirs=%s" % tmp_path])
    assert p.returncode == 2
    assert "num.partitions" in p.stderr and "many" in p.stderr


def test_out_of_range_value_in_file(tmp_path):
    cfg = tmp_path / "server.properties"
    cfg.write_text("# a comment\nlog.dirs=%s\nmessage.max.bytes = -5\n" % tmp_path)
    p = run_sluiced([str(cfg)])
    assert p.returncode == 2
    assert "message.max.bytes" in p.stderr


def test_unknown_key_is_a_warning(broker_factory):
    b = broker_factory({"no.such.setting": "1"})
    assert b.alive()
    assert "no.such.setting" in b.log()


def test_ssl_listener_without_a_keystore(tmp_path):
    # SSL listeners are served (docs/security.md), but not without a key.
    p = run_sluiced(["--override", "listeners=SSL://127.0.0.1:%d" % free_port(),
                     "--override", "log.dirs=%s" % tmp_path])
    assert p.returncode in (1, 2)
    assert "ssl.keystore" in p.stderr


def test_help_and_bad_flag():
    p = run_sluiced(["--help"])
    assert p.returncode == 0 and "server.properties" in p.stdout
    p = run_sluiced(["--bogus"])
    assert p.returncode == 2 and "--bogus" in p.stderr


def test_port_in_use_fails_clearly(broker, tmp_path):
    p = run_sluiced(["--override", "listeners=PLAINTEXT://127.0.0.1:%d" % broker.port,
                     "--override", "log.dirs=%s" % (tmp_path / "other")])
    # A second broker must not share the port.
    assert p.returncode != 0
    assert "cannot listen" in p.stderr


def test_clean_then_unclean_restart(tmp_path):
    b = Broker(tmp_path / "b")
    b.start()
    assert b.stop() == 0  # SIGTERM: clean shutdown
    assert "shut down cleanly" in b.log()
    b.start()
    time.sleep(0.3)
    assert "not shut down cleanly" not in b.log()
    b.kill9()
    b.start()
    time.sleep(0.3)
    assert "not shut down cleanly" in b.log()
    assert b.stop() == 0


def test_second_signal_forces_exit(tmp_path):
    b = Broker(tmp_path / "b")
    b.start()
    b.proc.send_signal(signal.SIGINT)
    b.proc.send_signal(signal.SIGINT)
    rc = b.proc.wait(timeout=10)
    assert rc in (0, 1)
    b.proc = None
