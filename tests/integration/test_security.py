"""Security: TLS listeners (and, where built, SASL) with real clients.

Every test makes throwaway certificates with the openssl command line in its
tmp_path: a CA, a server certificate for 127.0.0.1, a client certificate from
the same CA and one from a CA the broker does not trust. Brokers are real
sluiced processes (conftest's Broker) whose only client listener is SSL, or
PLAINTEXT for the mismatch tests. Clients: confluent_kafka and kcat
(librdkafka) and kafka-python. Every wait is bounded.
"""
import os
import struct
import socket
import ssl
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker


# ---- certificates --------------------------------------------------------------

def sh(*args, cwd=None):
    subprocess.run(list(args), check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60)


def make_ca(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
       "-days", "2", "-subj", "/CN=%s" % name)
    return key, crt


def make_cert(d, name, ca_key, ca_crt, cn, server=False, key_pass=None):
    """A key and a certificate signed by the CA. Returns (key, crt)."""
    key, csr, crt = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".crt"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        if server:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=%s" % cn)
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
       "-days", "2", "-extfile", ext)
    if key_pass is not None:
        enc = os.path.join(d, name + ".enc.key")
        sh("openssl", "pkcs8", "-topk8", "-in", key, "-out", enc, "-passout", "pass:" + key_pass)
        key = enc
    return key, crt


class Pki:
    def __init__(self, d):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        self.ca_key, self.ca = make_ca(self.dir, "ca")
        self.server_key, self.server_crt = make_cert(self.dir, "server", self.ca_key, self.ca, "sluice-test",
                                                     server=True)
        self.client_key, self.client_crt = make_cert(self.dir, "client", self.ca_key, self.ca, "alice")
        rogue_ca_key, self.rogue_ca = make_ca(self.dir, "rogue-ca")
        self.rogue_key, self.rogue_crt = make_cert(self.dir, "rogue", rogue_ca_key, self.rogue_ca, "mallory")
        # Kafka's ssl.keystore.location for PEM: the key and the chain in one file.
        self.keystore = os.path.join(self.dir, "keystore.pem")
        self.write_keystore(self.server_key, self.server_crt)

    def write_keystore(self, key, crt, path=None):
        path = path or self.keystore
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(open(key).read() + open(crt).read())
        os.replace(tmp, path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def start_broker(tmp_path, request):
    started = []

    def make(protocol="SSL", overrides=None, name="b0"):
        b = Broker(tmp_path / name, overrides)
        b.overrides["listeners"] = "%s://127.0.0.1:%d" % (protocol, b.port)
        started.append(b)
        return b.start()

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for b in started:
        if failed:
            print("---- sluiced log (%s) ----\n%s" % (b.data_dir, b.log()[-20000:]))
        rc = b.stop()
        assert rc in (0, None), "sluiced exited with %r; log:\n%s" % (rc, b.log()[-5000:])


def ssl_broker_config(pki, **extra):
    c = {"ssl.keystore.type": "PEM", "ssl.keystore.location": pki.keystore}
    c.update(extra)
    return c


def rdk_ssl(pki, client_cert=True, rogue=False):
    c = {"security.protocol": "SSL", "ssl.ca.location": pki.ca}
    if client_cert:
        c["ssl.certificate.location"] = pki.rogue_crt if rogue else pki.client_crt
        c["ssl.key.location"] = pki.rogue_key if rogue else pki.client_key
    return c


# ---- client helpers ------------------------------------------------------------

def create_topic(b, name, conf, partitions=1):
    admin = AdminClient(dict({"bootstrap.servers": b.bootstrap}, **conf))
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)], request_timeout=15)
    fs[name].result(timeout=15)


def produce(b, topic, values, conf):
    p = Producer(dict({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "message.timeout.ms": 15000}, **conf))
    errors = []
    for v in values:
        p.produce(topic, v, on_delivery=lambda err, msg: errors.append(err) if err else None)
    left = p.flush(20)
    assert left == 0 and not errors, (left, errors)


def consume(b, topic, n, conf, timeout=20.0):
    c = Consumer(dict({"bootstrap.servers": b.bootstrap, "group.id": "g", "enable.auto.commit": False,
                       "fetch.wait.max.ms": 100}, **conf))
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + timeout
    try:
        while len(out) < n and time.time() < deadline:
            m = c.poll(0.2)
            if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert not m.error(), m.error()
            out.append(m.value())
    finally:
        c.close()
    return out


def metadata_error(b, conf, timeout=8.0):
    """Lists topics; returns None on success, else the error text."""
    admin = AdminClient(dict({"bootstrap.servers": b.bootstrap}, **conf))
    try:
        admin.list_topics(timeout=timeout)
        return None
    except Exception as e:  # KafkaException: transport / SSL failure
        return str(e)


def wait_log(b, text, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in b.log():
            return True
        time.sleep(0.1)
    return False


def tls_handshake(port, pki, cert=None, key=None, timeout=5.0):
    """A raw TLS handshake with Python's ssl module: returns the server
    certificate's serial (DER bytes) or raises."""
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


# ---- TLS -------------------------------------------------------------------------

def test_ssl_produce_consume_confluent_and_kcat(pki, start_broker):
    b = start_broker("SSL", ssl_broker_config(pki))
    conf = rdk_ssl(pki, client_cert=False)
    create_topic(b, "tls-t", conf)
    values = [("m%d" % i).encode() * 50 for i in range(500)]
    produce(b, "tls-t", values, conf)
    got = consume(b, "tls-t", len(values), conf)
    assert got == values
    # kcat: produce over TLS, then read everything back.
    kc = ["kcat", "-b", b.bootstrap, "-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + pki.ca]
    subprocess.run(kc + ["-P", "-t", "tls-t"], input=b"k1\nk2\nk3\n", check=True, timeout=30)
    out = subprocess.run(kc + ["-C", "-t", "tls-t", "-o", "beginning", "-e", "-q"], check=True, timeout=30,
                         stdout=subprocess.PIPE).stdout.split(b"\n")
    out = [x for x in out if x]
    assert len(out) == len(values) + 3 and out[-3:] == [b"k1", b"k2", b"k3"]
    assert out[0] == values[0]


def test_large_fetch_over_tls(pki, start_broker):
    """Fetch responses come from segment files (sendfile on plaintext): over
    TLS they take the copying path, in chunks, and must arrive intact."""
    b = start_broker("SSL", ssl_broker_config(pki, **{"sluice.fetch.zero.copy": "true"}))
    conf = rdk_ssl(pki, client_cert=False)
    create_topic(b, "big", conf)
    values = [os.urandom(1000) + b"%06d" % i for i in range(3000)]  # ~3 MB
    produce(b, "big", values, conf)
    got = consume(b, "big", len(values), dict(conf, **{"fetch.max.bytes": 5000000}), timeout=40)
    assert got == values


def test_kafka_python_over_ssl(pki, start_broker):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    b = start_broker("SSL", ssl_broker_config(pki))
    conf = rdk_ssl(pki, client_cert=False)
    create_topic(b, "kp", conf)
    kw = dict(bootstrap_servers=b.bootstrap, security_protocol="SSL", ssl_cafile=pki.ca,
              ssl_certfile=pki.client_crt, ssl_keyfile=pki.client_key)
    p = KafkaProducer(request_timeout_ms=15000, **kw)
    for i in range(50):
        p.send("kp", b"v%d" % i)
    p.flush(20)
    p.close(5)
    c = KafkaConsumer(consumer_timeout_ms=8000, **kw)
    c.assign([KTP("kp", 0)])
    c.seek_to_beginning()
    got = []
    deadline = time.time() + 20
    while len(got) < 50 and time.time() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            got.extend(r.value for r in recs)
    c.close()
    assert got == [b"v%d" % i for i in range(50)]


def test_client_auth_required(pki, start_broker):
    b = start_broker("SSL", ssl_broker_config(pki, **{"ssl.client.auth": "required",
                                                      "ssl.truststore.type": "PEM",
                                                      "ssl.truststore.location": pki.ca}))
    # With a certificate from the trusted CA: served.
    ok = rdk_ssl(pki, client_cert=True)
    create_topic(b, "mtls", ok)
    produce(b, "mtls", [b"a", b"b"], ok)
    assert consume(b, "mtls", 2, ok) == [b"a", b"b"]
    # Without one: refused in the handshake, and the broker says why.
    err = metadata_error(b, rdk_ssl(pki, client_cert=False), timeout=5)
    assert err is not None
    assert wait_log(b, "TLS handshake with 127.0.0.1:"), b.log()[-3000:]
    assert "peer did not return a certificate" in b.log()
    # With one from a CA the broker does not trust: refused too.
    err = metadata_error(b, rdk_ssl(pki, client_cert=True, rogue=True), timeout=5)
    assert err is not None
    assert wait_log(b, "certificate verify failed") or wait_log(b, "unable to get local issuer"), b.log()[-3000:]
    # The broker still serves the good client.
    assert metadata_error(b, ok) is None


def test_client_auth_requested(pki, start_broker):
    b = start_broker("SSL", ssl_broker_config(pki, **{"ssl.client.auth": "requested",
                                                      "ssl.truststore.location": pki.ca}))
    # Both with and without a certificate are served.
    assert metadata_error(b, rdk_ssl(pki, client_cert=False)) is None
    assert metadata_error(b, rdk_ssl(pki, client_cert=True)) is None


def test_inline_pem_and_encrypted_key(pki, start_broker, tmp_path):
    """ssl.keystore.certificate.chain + ssl.keystore.key inline, written on
    one line as a properties file would carry them, with an encrypted
    PKCS#8 key and ssl.key.password; the trust store inline too; one
    listener's keys given as listener.name.<name>.ssl.*."""
    key, crt = make_cert(str(tmp_path), "inline", pki.ca_key, pki.ca, "inline", server=True, key_pass="s3cret")
    one_line = lambda path: " ".join(open(path).read().split("\n")).strip()
    b = start_broker("SSL", {
        "listener.name.ssl.ssl.keystore.certificate.chain": one_line(crt),
        "listener.name.ssl.ssl.keystore.key": one_line(key),
        "listener.name.ssl.ssl.key.password": "s3cret",
        "listener.name.ssl.ssl.client.auth": "required",
        "ssl.truststore.certificates": one_line(pki.ca),
    })
    assert metadata_error(b, rdk_ssl(pki, client_cert=True)) is None
    assert metadata_error(b, rdk_ssl(pki, client_cert=False), timeout=5) is not None


def test_bad_keystore_refuses_to_start(pki, tmp_path):
    # A key that does not match the certificate: sluiced says so and exits.
    other_key, _ = make_cert(str(tmp_path), "other", pki.ca_key, pki.ca, "other")
    bad = str(tmp_path / "bad.pem")
    pki.write_keystore(other_key, pki.server_crt, path=bad)
    b = Broker(tmp_path / "bad", {"ssl.keystore.location": bad})
    b.overrides["listeners"] = "SSL://127.0.0.1:%d" % b.port
    with pytest.raises(RuntimeError):
        b.start()
    assert "does not match the certificate" in b.log()
    b.stop()


def test_protocols_and_cipher_suites(pki, start_broker):
    b = start_broker("SSL", ssl_broker_config(pki, **{
        "ssl.enabled.protocols": "TLSv1.2",
        "ssl.cipher.suites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}))
    ctx = ssl.create_default_context(cafile=pki.ca)
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() == "TLSv1.2"
            assert s.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    # A client that insists on TLS 1.3 is refused.
    ctx13 = ssl.create_default_context(cafile=pki.ca)
    ctx13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", b.port), timeout=5) as raw:
            ctx13.wrap_socket(raw, server_hostname="127.0.0.1").close()
    assert wait_log(b, "unsupported protocol"), b.log()[-3000:]
    assert metadata_error(b, rdk_ssl(pki, client_cert=False)) is None


def test_plaintext_client_on_tls_port(pki, start_broker):
    b = start_broker("SSL", ssl_broker_config(pki))
    err = metadata_error(b, {}, timeout=4)
    assert err is not None
    assert wait_log(b, "plaintext Kafka request, not a TLS ClientHello"), b.log()[-3000:]
    # Garbage that is not TLS either.
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.settimeout(5)
        try:
            assert s.recv(100) == b""  # closed
        except ConnectionResetError:
            pass  # closed with the request unread
    assert wait_log(b, "first bytes are not a TLS ClientHello")
    # A client that connects and sends nothing is closed after the handshake
    # deadline; meanwhile TLS clients are served.
    idle = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    assert metadata_error(b, rdk_ssl(pki, client_cert=False)) is None
    idle.close()
    assert b.alive()


def test_tls_client_on_plaintext_port(pki, start_broker):
    b = start_broker("PLAINTEXT")
    err = metadata_error(b, rdk_ssl(pki, client_cert=False), timeout=4)
    assert err is not None
    assert wait_log(b, "opened a TLS handshake on the plaintext listener PLAINTEXT"), b.log()[-3000:]
    assert metadata_error(b, {}) is None


def test_handshake_failures_are_rate_limited(pki, start_broker):
    b = start_broker("SSL", ssl_broker_config(pki))
    for _ in range(40):
        with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
            s.sendall(b"\x00\x00\x00\x10" + b"\x00" * 16)
            s.settimeout(5)
            try:
                s.recv(10)
            except OSError:
                pass
    time.sleep(0.3)
    lines = [l for l in b.log().splitlines() if "TLS handshake with" in l]
    assert 1 <= len(lines) <= 10, len(lines)
    assert metadata_error(b, rdk_ssl(pki, client_cert=False)) is None


def test_certificate_reload(pki, start_broker, tmp_path):
    """A rewritten keystore file is picked up by new connections within the
    check interval; connections made before keep working."""
    ks = str(tmp_path / "reload.pem")
    pki.write_keystore(pki.server_key, pki.server_crt, path=ks)
    b = start_broker("SSL", {"ssl.keystore.location": ks, "sluice.ssl.reload.check.ms": "200"})
    first = tls_handshake(b.port, pki)
    conf = rdk_ssl(pki, client_cert=False)
    create_topic(b, "rl", conf)
    p = Producer(dict({"bootstrap.servers": b.bootstrap, "linger.ms": 0}, **conf))
    p.produce("rl", b"before")
    assert p.flush(15) == 0
    # A new server certificate from the same CA.
    key2, crt2 = make_cert(str(tmp_path), "server2", pki.ca_key, pki.ca, "sluice-test-2", server=True)
    pki.write_keystore(key2, crt2, path=ks)
    deadline = time.time() + 10
    second = first
    while second == first and time.time() < deadline:
        time.sleep(0.3)
        second = tls_handshake(b.port, pki)
    assert second != first, "the new certificate was not served"
    assert wait_log(b, "reloaded the key and trust stores")
    # The producer's connection from before still works.
    p.produce("rl", b"after")
    assert p.flush(15) == 0
    # A broken rewrite keeps the working certificate, with one warning.
    with open(ks, "w") as f:
        f.write("not a pem\n")
    time.sleep(0.5)
    assert tls_handshake(b.port, pki) == second
    assert wait_log(b, "is not usable, new connections keep the previous one")
    assert consume(b, "rl", 2, conf) == [b"before", b"after"]


# ---- SASL ------------------------------------------------------------------------

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')


def sasl_broker_config(listener="SASL_PLAINTEXT", mechanisms=None, **extra):
    c = {"listener.name.%s.plain.sasl.jaas.config" % listener.lower(): JAAS}
    if mechanisms:
        c["listener.name.%s.sasl.enabled.mechanisms" % listener.lower()] = mechanisms
    c.update(extra)
    return c


def rdk_sasl(user, password, mechanism="PLAIN", protocol="SASL_PLAINTEXT", pki=None):
    c = {"security.protocol": protocol, "sasl.mechanisms": mechanism, "sasl.username": user,
         "sasl.password": password}
    if pki is not None:
        c["ssl.ca.location"] = pki.ca
    return c


def frame(api_key, version, corr, body, client_id=b"t"):
    hdr = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    if version_is_flexible(api_key, version):
        hdr += b"\x00"  # empty tagged fields
    msg = hdr + body
    return struct.pack(">i", len(msg)) + msg


def version_is_flexible(api_key, version):
    return (api_key == 36 and version >= 2) or (api_key == 18 and version >= 3) or api_key in (50, 51)


def recv_frame(s, timeout=5.0):
    s.settimeout(timeout)
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = struct.unpack(">i", head)
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def closed(s, timeout=5.0):
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def kstring(v):
    return struct.pack(">h", len(v)) + v


def client_errors(b, conf, timeout=8.0):
    """Errors a librdkafka client reports (error_cb) while it tries to connect."""
    errs = []
    p = Producer(dict({"bootstrap.servers": b.bootstrap, "error_cb": lambda e: errs.append(e)}, **conf))
    deadline = time.time() + timeout
    while not errs and time.time() < deadline:
        p.poll(0.2)
    return errs


def test_sasl_plain_confluent_and_kcat(start_broker):
    b = start_broker("SASL_PLAINTEXT", sasl_broker_config())
    conf = rdk_sasl("alice", "alice-secret")
    create_topic(b, "sp", conf)
    produce(b, "sp", [b"x%d" % i for i in range(100)], conf)
    assert consume(b, "sp", 100, conf) == [b"x%d" % i for i in range(100)]
    kc = ["kcat", "-b", b.bootstrap, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
          "-X", "sasl.username=admin", "-X", "sasl.password=admin-secret"]
    out = subprocess.run(kc + ["-C", "-t", "sp", "-o", "beginning", "-e", "-q"], check=True, timeout=30,
                         stdout=subprocess.PIPE).stdout.split(b"\n")
    assert len([x for x in out if x]) == 100
    # A wrong password: refused with the authentication error, logged with
    # the user but never the password.
    errs = client_errors(b, rdk_sasl("alice", "wrong-password"))
    assert errs and errs[0].code() == KafkaError._AUTHENTICATION, errs
    assert "Invalid username or password" in errs[0].str()
    assert wait_log(b, "SASL authentication of user 'alice' from 127.0.0.1:"), b.log()[-3000:]
    assert "invalid user name or password" in b.log()
    assert "wrong-password" not in b.log() and "alice-secret" not in b.log()
    err = metadata_error(b, rdk_sasl("nobody", "x"), timeout=5)
    assert err is not None
    assert wait_log(b, "user 'nobody'")
    assert metadata_error(b, conf) is None


def test_sasl_authenticate_error_code(start_broker):
    """SaslHandshake v1 + SaslAuthenticate by hand: the error code and
    message of a wrong password, and the connection closed after it."""
    b = start_broker("SASL_PLAINTEXT", sasl_broker_config())
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(frame(17, 1, 1, kstring(b"PLAIN")))
        resp = recv_frame(s)
        corr, err = struct.unpack(">ih", resp[:6])
        assert (corr, err) == (1, 0)
        token = b"\x00alice\x00nope"
        s.sendall(frame(36, 1, 2, struct.pack(">i", len(token)) + token))
        resp = recv_frame(s)
        corr, err, mlen = struct.unpack(">ihh", resp[:8])
        assert (corr, err) == (2, 58)  # SASL_AUTHENTICATION_FAILED
        assert b"Authentication failed" in resp[8:8 + mlen]
        assert closed(s)
    # The right one, with a v1 session lifetime of 0 (no re-authentication).
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(frame(17, 1, 1, kstring(b"PLAIN")))
        recv_frame(s)
        token = b"\x00alice\x00alice-secret"
        s.sendall(frame(36, 1, 2, struct.pack(">i", len(token)) + token))
        resp = recv_frame(s)
        corr, err, mlen = struct.unpack(">ihh", resp[:8])
        assert (corr, err) == (2, 0)
        # Now a Metadata request is served.
        s.sendall(frame(3, 1, 3, struct.pack(">i", -1)))
        resp = recv_frame(s)
        assert resp is not None and struct.unpack(">i", resp[:4])[0] == 3


def test_sasl_gate_and_mechanisms(start_broker):
    b = start_broker("SASL_PLAINTEXT", sasl_broker_config(mechanisms="PLAIN"))
    # ApiVersions is served before authentication and lists the SASL APIs.
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(frame(18, 0, 1, b""))
        resp = recv_frame(s)
        corr, err, n = struct.unpack(">ihi", resp[:10])
        keys = [struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i])[0] for i in range(n)]
        assert err == 0 and 17 in keys and 36 in keys
        # Anything else before authentication closes the connection.
        s.sendall(frame(3, 1, 2, struct.pack(">i", -1)))
        assert closed(s)
    assert wait_log(b, "Metadata request before SASL authentication"), b.log()[-3000:]
    # A mechanism the listener does not offer: UNSUPPORTED_SASL_MECHANISM
    # with the offered list.
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(frame(17, 1, 1, kstring(b"SCRAM-SHA-256")))
        resp = recv_frame(s)
        corr, err, n = struct.unpack(">ihi", resp[:10])
        assert (corr, err, n) == (1, 33, 1)
        assert resp[10:17] == struct.pack(">h", 5) + b"PLAIN"
        assert closed(s)
    # SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE.
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(frame(36, 0, 1, struct.pack(">i", 0)))
        resp = recv_frame(s)
        assert struct.unpack(">ih", resp[:6]) == (1, 34)
        assert closed(s)


def test_sasl_handshake_on_plaintext_listener(start_broker):
    b = start_broker("PLAINTEXT")
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(frame(17, 1, 1, kstring(b"PLAIN")))
        resp = recv_frame(s)
        assert struct.unpack(">ih", resp[:6]) == (1, 34)  # ILLEGAL_SASL_STATE


def test_sasl_plain_kafka_python_v0_framing(start_broker):
    """kafka-python 2.0 speaks SaslHandshake v0 and then raw tokens."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    from kafka.errors import KafkaError as KPError
    b = start_broker("SASL_PLAINTEXT", sasl_broker_config())
    create_topic(b, "kv0", rdk_sasl("admin", "admin-secret"))
    kw = dict(bootstrap_servers=b.bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
              sasl_plain_username="alice", sasl_plain_password="alice-secret")
    p = KafkaProducer(request_timeout_ms=15000, **kw)
    for i in range(20):
        p.send("kv0", b"k%d" % i)
    p.flush(20)
    p.close(5)
    c = KafkaConsumer(**kw)
    c.assign([KTP("kv0", 0)])
    c.seek_to_beginning()
    got, deadline = [], time.time() + 20
    while len(got) < 20 and time.time() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            got.extend(r.value for r in recs)
    c.close()
    assert got == [b"k%d" % i for i in range(20)]
    bad = dict(kw, sasl_plain_password="wrong")
    with pytest.raises(KPError):
        KafkaProducer(request_timeout_ms=5000, max_block_ms=5000, api_version=(2, 0), **bad).send("kv0", b"z").get(5)
    assert wait_log(b, "SASL authentication of user 'alice'")


def test_sasl_ssl_plain(pki, start_broker):
    b = start_broker("SASL_SSL", dict(ssl_broker_config(pki), **sasl_broker_config("SASL_SSL")))
    conf = rdk_sasl("alice", "alice-secret", protocol="SASL_SSL", pki=pki)
    create_topic(b, "ss", conf)
    produce(b, "ss", [b"s%d" % i for i in range(50)], conf)
    assert consume(b, "ss", 50, conf) == [b"s%d" % i for i in range(50)]
    kc = ["kcat", "-b", b.bootstrap, "-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + pki.ca,
          "-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]
    out = subprocess.run(kc + ["-C", "-t", "ss", "-o", "beginning", "-e", "-q"], check=True, timeout=30,
                         stdout=subprocess.PIPE).stdout.split(b"\n")
    assert len([x for x in out if x]) == 50
    assert metadata_error(b, rdk_sasl("alice", "bad", protocol="SASL_SSL", pki=pki), timeout=5) is not None
    # Plain SASL (no TLS) on the SASL_SSL port: the TLS layer refuses it.
    assert metadata_error(b, rdk_sasl("alice", "alice-secret"), timeout=4) is not None
    assert wait_log(b, "not a TLS ClientHello")


# ---- SCRAM -----------------------------------------------------------------------

def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def read_uvarint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def cstr(v):
    return uvarint(len(v) + 1) + v


def read_cstr(buf, pos):
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    return buf[pos:pos + n - 1], pos + n - 1


MECH = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}


def admin_connection(b):
    """A raw connection authenticated with PLAIN as admin."""
    s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    s.sendall(frame(17, 1, 1, kstring(b"PLAIN")))
    assert struct.unpack(">ih", recv_frame(s)[:6]) == (1, 0)
    token = b"\x00admin\x00admin-secret"
    s.sendall(frame(36, 0, 2, struct.pack(">i", len(token)) + token))
    assert struct.unpack(">ih", recv_frame(s)[:6]) == (2, 0)
    return s


def alter_scram(s, upserts=(), deletes=(), iterations=4096, corr=10):
    """AlterUserScramCredentials v0; returns [(user, error, message)]."""
    import hashlib
    body = uvarint(len(deletes) + 1)
    for user, mech in deletes:
        body += cstr(user.encode()) + struct.pack(">b", MECH[mech][0]) + b"\x00"
    body += uvarint(len(upserts) + 1)
    for user, mech, password in upserts:
        salt = os.urandom(16)
        salted = hashlib.pbkdf2_hmac(MECH[mech][1], password.encode(), salt, iterations)
        body += (cstr(user.encode()) + struct.pack(">bi", MECH[mech][0], iterations) + cstr(salt) + cstr(salted) +
                 b"\x00")
    body += b"\x00"
    s.sendall(frame(51, 0, corr, body))
    resp = recv_frame(s)
    assert resp is not None
    (rcorr,) = struct.unpack(">i", resp[:4])
    assert rcorr == corr
    pos = 5  # correlation id, empty tagged fields
    pos += 4  # throttle
    n, pos = read_uvarint(resp, pos)
    out = []
    for _ in range(n - 1):
        user, pos = read_cstr(resp, pos)
        (err,) = struct.unpack(">h", resp[pos:pos + 2])
        pos += 2
        msg, pos = read_cstr(resp, pos)
        _, pos = read_uvarint(resp, pos)  # tags
        out.append((user.decode(), err, msg.decode() if msg else None))
    return out


def describe_scram(s, users=None, corr=20):
    body = uvarint(0) if users is None else uvarint(len(users) + 1) + b"".join(cstr(u.encode()) + b"\x00"
                                                                               for u in users)
    body += b"\x00"
    s.sendall(frame(50, 0, corr, body))
    resp = recv_frame(s)
    pos = 5 + 4
    (top_err,) = struct.unpack(">h", resp[pos:pos + 2])
    pos += 2
    _, pos = read_cstr(resp, pos)
    n, pos = read_uvarint(resp, pos)
    out = {}
    for _ in range(n - 1):
        user, pos = read_cstr(resp, pos)
        (err,) = struct.unpack(">h", resp[pos:pos + 2])
        pos += 2
        _, pos = read_cstr(resp, pos)
        k, pos = read_uvarint(resp, pos)
        infos = []
        for _ in range(k - 1):
            mech, iters = struct.unpack(">bi", resp[pos:pos + 5])
            pos += 5
            _, pos = read_uvarint(resp, pos)
            infos.append((mech, iters))
        _, pos = read_uvarint(resp, pos)
        out[user.decode()] = (err, infos)
    return top_err, out


def test_scram_users_and_logins(start_broker):
    b = start_broker("SASL_PLAINTEXT", sasl_broker_config())
    with admin_connection(b) as s:
        res = alter_scram(s, upserts=[("carol", "SCRAM-SHA-256", "carol-pw"), ("dave", "SCRAM-SHA-512", "dave-pw"),
                                      ("dave", "SCRAM-SHA-256", "dave-pw256")])
        assert sorted(res) == [("carol", 0, None), ("dave", 0, None)], res
        # Kafka's checks: too few iterations, a mechanism named twice, an
        # unknown credential deleted.
        res = alter_scram(s, upserts=[("erin", "SCRAM-SHA-256", "x")], iterations=100)
        assert res == [("erin", 93, "Too few iterations")]
        res = alter_scram(s, upserts=[("carol", "SCRAM-SHA-256", "a")], deletes=[("carol", "SCRAM-SHA-256")])
        assert res[0][0] == "carol" and res[0][1] == 92
        res = alter_scram(s, deletes=[("nobody", "SCRAM-SHA-512")])
        assert res[0][1] == 91
        top, users = describe_scram(s)
        assert top == 0
        assert users == {"carol": (0, [(1, 4096)]), "dave": (0, [(1, 4096), (2, 4096)])}, users
        top, users = describe_scram(s, ["carol", "zed"])
        assert users["carol"][0] == 0 and users["zed"][0] == 91
    # librdkafka logs in with each mechanism, and produces and consumes.
    c256 = rdk_sasl("carol", "carol-pw", mechanism="SCRAM-SHA-256")
    c512 = rdk_sasl("dave", "dave-pw", mechanism="SCRAM-SHA-512")
    create_topic(b, "scram", c256)
    produce(b, "scram", [b"a", b"b"], c256)
    produce(b, "scram", [b"c"], c512)
    assert consume(b, "scram", 3, c512) == [b"a", b"b", b"c"]
    assert metadata_error(b, rdk_sasl("dave", "dave-pw256", mechanism="SCRAM-SHA-256")) is None
    # A wrong password, and a user without a credential for the mechanism.
    errs = client_errors(b, rdk_sasl("carol", "wrong", mechanism="SCRAM-SHA-256"))
    assert errs and errs[0].code() == KafkaError._AUTHENTICATION, errs
    assert wait_log(b, "SASL authentication of user 'carol'") and "invalid credentials" in b.log()
    errs = client_errors(b, rdk_sasl("carol", "carol-pw", mechanism="SCRAM-SHA-512"))
    assert errs and errs[0].code() == KafkaError._AUTHENTICATION, errs
    assert wait_log(b, "no SCRAM-SHA-512 credential for this user")
    assert "carol-pw" not in b.log() and "wrong" not in b.log().replace("wrong length", "")
    # kafka-python (SaslHandshake v0, raw SCRAM tokens).
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, security_protocol="SASL_PLAINTEXT",
                       sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="dave", sasl_plain_password="dave-pw")
    kc.assign([KTP("scram", 0)])
    kc.seek_to_beginning()
    got, deadline = [], time.time() + 20
    while len(got) < 3 and time.time() < deadline:
        for recs in kc.poll(timeout_ms=500).values():
            got.extend(r.value for r in recs)
    kc.close()
    assert got == [b"a", b"b", b"c"]
    # Credentials live in the metadata log: a restart keeps them; a deletion
    # takes them away.
    b.restart()
    assert metadata_error(b, c256) is None
    with admin_connection(b) as s:
        assert alter_scram(s, deletes=[("carol", "SCRAM-SHA-256")]) == [("carol", 0, None)]
    errs = client_errors(b, c256)
    assert errs and errs[0].code() == KafkaError._AUTHENTICATION, errs
    assert metadata_error(b, c512) is None


def test_scram_over_sasl_ssl(pki, start_broker):
    b = start_broker("SASL_SSL", dict(ssl_broker_config(pki), **sasl_broker_config("SASL_SSL")))
    # The raw admin connection needs TLS here.
    ctx = ssl.create_default_context(cafile=pki.ca)
    raw = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(frame(17, 1, 1, kstring(b"PLAIN")))
    recv_frame(s)
    token = b"\x00admin\x00admin-secret"
    s.sendall(frame(36, 0, 2, struct.pack(">i", len(token)) + token))
    assert struct.unpack(">ih", recv_frame(s)[:6]) == (2, 0)
    assert alter_scram(s, upserts=[("frank", "SCRAM-SHA-256", "frank-pw")]) == [("frank", 0, None)]
    s.close()
    conf = rdk_sasl("frank", "frank-pw", mechanism="SCRAM-SHA-256", protocol="SASL_SSL", pki=pki)
    create_topic(b, "sslscram", conf)
    produce(b, "sslscram", [b"q"], conf)
    assert consume(b, "sslscram", 1, conf) == [b"q"]


def test_reauthentication_lifetime(start_broker):
    """connections.max.reauth.ms (KIP-368): SaslAuthenticate v1 carries the
    session lifetime; after it a request closes the connection unless the
    client authenticated again on it."""
    b = start_broker("SASL_PLAINTEXT", sasl_broker_config(**{"connections.max.reauth.ms": "1500"}))

    def authenticate(s, corr):
        s.sendall(frame(17, 1, corr, kstring(b"PLAIN")))
        assert struct.unpack(">ih", recv_frame(s)[:6]) == (corr, 0)
        token = b"\x00alice\x00alice-secret"
        s.sendall(frame(36, 1, corr + 1, struct.pack(">i", len(token)) + token))
        resp = recv_frame(s)
        corr_back, err, mlen = struct.unpack(">ihh", resp[:8])
        pos = 8 + max(mlen, 0)
        (blen,) = struct.unpack(">i", resp[pos:pos + 4])
        (lifetime,) = struct.unpack(">q", resp[pos + 4 + blen:pos + 12 + blen])
        assert (corr_back, err) == (corr + 1, 0)
        return lifetime

    def metadata(s, corr):
        s.sendall(frame(3, 1, corr, struct.pack(">i", -1)))
        return recv_frame(s)

    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        assert authenticate(s, 1) == 1500
        assert metadata(s, 3) is not None
        time.sleep(1.0)
        assert authenticate(s, 4) == 1500  # re-authenticated in time
        time.sleep(1.0)
        assert metadata(s, 6) is not None  # 2 s after the first login: the new session holds
        time.sleep(1.8)
        s.sendall(frame(3, 1, 7, struct.pack(">i", -1)))
        assert closed(s)
    assert wait_log(b, "after its SASL session expired")


def test_stalled_handshake_is_closed(pki, start_broker):
    """A client that opens a TLS handshake and stops is closed when the
    handshake deadline (10 s) passes, with a line; others are served."""
    b = start_broker("SSL", ssl_broker_config(pki))
    s = socket.create_connection(("127.0.0.1", b.port), timeout=20)
    s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, never finished
    assert metadata_error(b, rdk_ssl(pki, client_cert=False)) is None
    t0 = time.time()
    assert closed(s, timeout=20)
    assert 5 < time.time() - t0 < 15
    s.close()
    assert wait_log(b, "the handshake did not finish within 10000 ms")


def test_reauthentication_keeps_the_principal(start_broker):
    b = start_broker("SASL_PLAINTEXT", sasl_broker_config(**{"connections.max.reauth.ms": "60000"}))
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(frame(17, 1, 1, kstring(b"PLAIN")))
        recv_frame(s)
        token = b"\x00alice\x00alice-secret"
        s.sendall(frame(36, 1, 2, struct.pack(">i", len(token)) + token))
        assert struct.unpack(">ih", recv_frame(s)[:6]) == (2, 0)
        # The same connection, now as admin: refused and closed.
        s.sendall(frame(17, 1, 3, kstring(b"PLAIN")))
        assert struct.unpack(">ih", recv_frame(s)[:6]) == (3, 0)
        token = b"\x00admin\x00admin-secret"
        s.sendall(frame(36, 1, 4, struct.pack(">i", len(token)) + token))
        assert struct.unpack(">ih", recv_frame(s)[:6]) == (4, 58)
        assert closed(s)
    assert wait_log(b, "re-authentication as another user is not allowed")
