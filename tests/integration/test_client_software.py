"""KIP-511: the client software name and version in ApiVersions v3+.

As Kafka does, a name or version that is empty or not of the KIP's form
(letters, digits, '.' and '-', starting and ending with a letter or digit) is
answered INVALID_REQUEST with no API list, and the operator gets one log
line that cannot carry the client's control bytes. Real clients (librdkafka,
confluent-kafka, kafka-python) send valid ones and are served.
"""
import struct

import pytest

from test_api_versions import raw_request


def v3_body(name, version):
    return bytes([len(name) + 1]) + name + bytes([len(version) + 1]) + version + b"\x00"


def v3_error_and_count(resp):
    corr, err = struct.unpack(">ih", resp[:6])
    assert corr == 7
    return err, resp[6] - 1  # compact array: count + 1


@pytest.mark.parametrize("name,version", [
    (b"", b"1.0"),
    (b"librdkafka", b""),
    (b"-lead", b"1.0"),
    (b"trail.", b"1.0"),
    (b"sp ace", b"1.0"),
    (b"app", b"1.0\nFAKE LOG LINE"),
    (b"caf\xc3\xa9", b"1.0"),
])
def test_invalid_software_is_refused(broker, name, version):
    resp = raw_request(broker.port, 18, 3, body=v3_body(name, version), flexible=True)
    err, n = v3_error_and_count(resp)
    assert err == 42 and n == 0  # INVALID_REQUEST, no API list
    log = broker.log()
    assert "refused with INVALID_REQUEST" in log
    assert "FAKE LOG LINE" not in "".join(l for l in log.splitlines() if not l.startswith("20"))


@pytest.mark.parametrize("name,version", [
    (b"librdkafka", b"2.0.2"),
    (b"confluent-kafka-python", b"2.0.2-rdkafka-2.0.2"),
    (b"a", b"1"),
    (b"Java.Client", b"3.7.0"),
])
def test_valid_software_is_served(broker, name, version):
    resp = raw_request(broker.port, 18, 3, body=v3_body(name, version), flexible=True)
    err, n = v3_error_and_count(resp)
    assert err == 0 and n > 10


def test_versions_before_3_carry_no_software(broker):
    corr, err, n = struct.unpack(">ihi", raw_request(broker.port, 18, 2)[:10])
    assert (corr, err) == (7, 0) and n > 10
