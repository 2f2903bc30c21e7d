# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""x509_info: names, validity and key of a PEM chain, checked the way TLS clients check them."""

import datetime
import ipaddress

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible.errors import AnsibleFilterError

from ansible_collections.wgtwo.sipbreakout.plugins.filter.x509_info import FilterModule, covers, x509_info

NOW = datetime.datetime(2030, 1, 15, 12, 0, tzinfo=datetime.timezone.utc)


def _key_pem(key, password=None):
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def make_certificate(dns=(), ips=(), common_name="pbx1.example.net", days=(-1, 30)):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
               .public_key(key.public_key())
               .serial_number(0x1234)
               .not_valid_before(NOW + datetime.timedelta(days=days[0]))
               .not_valid_after(NOW + datetime.timedelta(days=days[1])))
    names = [x509.DNSName(name) for name in dns] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key, certificate


def test_the_filter_is_registered():
    assert FilterModule().filters()["x509_info"] is x509_info


def test_information_and_coverage():
    pem, key, certificate = make_certificate(dns=["pbx1.example.net", "*.edge.example.net"], ips=["192.0.2.7"])
    info = x509_info(pem + pem, hosts=["pbx1.example.net", "a.edge.example.net", "192.0.2.7"],
                     private_key=_key_pem(key), now=NOW.isoformat())
    assert info["certificate_problems"] == []
    assert info["private_key_problems"] == []
    assert info["key_matches"] is True
    assert info["dns_names"] == ["pbx1.example.net", "*.edge.example.net"]
    assert info["ip_addresses"] == ["192.0.2.7"]
    assert info["subject"] == "CN=pbx1.example.net"
    assert info["serial_number"] == "1234"
    assert info["chain_length"] == 2
    assert info["sha256_fingerprint"] == certificate.fingerprint(hashes.SHA256()).hex()
    assert info["not_after"].startswith("2030-02-14T12:00:00")


@pytest.mark.parametrize("host, expected", [
    ("pbx1.example.net", True),
    ("PBX1.Example.NET.", True),
    ("a.edge.example.net", True),
    ("edge.example.net", False),  # a wildcard needs a label
    ("a.b.edge.example.net", False),  # ... exactly one
    ("pbx2.example.net", False),
    ("192.0.2.7", True),
    ("192.0.2.8", False),
    ("[2001:db8::1]", True),
    ("2001:db8::1", True),
])
def test_covers(host, expected):
    assert covers(["pbx1.example.net", "*.edge.example.net"], ["192.0.2.7", "2001:db8::1"], host) is expected


def test_a_wildcard_never_spans_a_public_suffix_label():
    assert covers(["*.net"], [], "example.net") is False


def test_an_ip_address_is_not_covered_by_a_dns_name():
    assert covers(["192.0.2.7"], [], "192.0.2.7") is False


def test_uncovered_hosts_are_problems():
    pem, _key, _certificate = make_certificate(dns=["pbx1.example.net"])
    info = x509_info(pem, hosts=["pbx1.example.net", "pbx2.example.net"], now=NOW.isoformat())
    assert info["uncovered_hosts"] == ["pbx2.example.net"]
    assert info["certificate_problems"] == ["does not cover host 'pbx2.example.net'; it names DNS:pbx1.example.net"]


def test_the_common_name_alone_covers_nothing():
    pem, _key, _certificate = make_certificate(common_name="pbx1.example.net")
    info = x509_info(pem, hosts=["pbx1.example.net"], now=NOW.isoformat())
    assert "has no subject alternative names" in info["certificate_problems"][0]
    assert info["uncovered_hosts"] == ["pbx1.example.net"]


def test_validity():
    pem, _key, _certificate = make_certificate(dns=["pbx1.example.net"], days=(-30, -1))
    assert x509_info(pem, now=NOW.isoformat())["certificate_problems"][0].startswith("expired on 2030-01-14")
    pem, _key, _certificate = make_certificate(dns=["pbx1.example.net"], days=(1, 30))
    assert x509_info(pem, now=NOW.isoformat())["certificate_problems"][0].startswith("is not valid before")


def test_key_problems():
    pem, key, _certificate = make_certificate(dns=["pbx1.example.net"])
    _other_pem, other_key, _other = make_certificate(dns=["pbx1.example.net"])
    mismatch = x509_info(pem, private_key=_key_pem(other_key), now=NOW.isoformat())
    assert mismatch["key_matches"] is False
    assert mismatch["private_key_problems"] == ["is not the private key of the certificate CN=pbx1.example.net"]
    encrypted = x509_info(pem, private_key=_key_pem(key, b"secret"), now=NOW.isoformat())
    assert encrypted["private_key_problems"][0].startswith("the private key is encrypted")
    garbage = x509_info(pem, private_key="not a key", now=NOW.isoformat())
    assert garbage["private_key_problems"][0].startswith("is not a PEM private key")
    assert x509_info(pem, private_key="", now=NOW.isoformat())["private_key_problems"] == ["is empty"]
    assert x509_info(pem, now=NOW.isoformat())["key_matches"] is None


def test_no_certificate():
    info = x509_info("hello", hosts=["pbx1.example.net"], private_key="x")
    assert info["certificate_problems"] == ["holds no PEM certificate (-----BEGIN CERTIFICATE-----)"]
    assert info["private_key_problems"] == ["cannot be checked without a certificate"]
    assert info["uncovered_hosts"] == ["pbx1.example.net"]
    assert x509_info(None)["chain_length"] == 0


def test_a_broken_certificate():
    info = x509_info("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert info["certificate_problems"][0].startswith("the first certificate cannot be read")


def test_bad_now():
    pem, _key, _certificate = make_certificate(dns=["pbx1.example.net"])
    with pytest.raises(AnsibleFilterError, match="not an ISO 8601"):
        x509_info(pem, now="yesterday")
