# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter x509_info: what a PEM certificate chain names, and whether it fits the hosts and key it is meant for."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: x509_info
short_description: Read a PEM certificate chain and check it against host names and a private key
version_added: 0.1.0
author:
  - wgtwo.sipbreakout maintainers
description:
  - Reads the first certificate of a PEM chain (the leaf) and returns its names, validity and fingerprint.
  - Checks whether the certificate covers each of O(hosts) the way TLS clients check it (RFC 6125), using the
    subject alternative names only; the subject common name is ignored, as current clients do. A wildcard
    covers exactly one left-most label. An IP address is covered only by an IP address entry.
  - Checks whether O(private_key) is the private key of the certificate.
  - Runs on the controller and needs the Python C(cryptography) library, which ansible-core itself requires.
  - Problems are returned, not raised, so that a task can name the variable and host they belong to.
options:
  _input:
    description: PEM text holding one or more certificates; the first one is the leaf.
    type: string
    required: true
  hosts:
    description: Host names or IP addresses (IPv6 with or without brackets) the certificate must cover.
    type: list
    elements: string
    default: []
  private_key:
    description:
      - PEM text of the private key that goes with the certificate. It must not be encrypted.
      - When omitted, the key is not checked.
    type: string
  now:
    description:
      - The time to check validity against, as an ISO 8601 date and time in UTC.
      - Defaults to the current time.
    type: string
"""

EXAMPLES = r"""
- name: Check that the edge certificate fits the SIP URI hosts and the private key
  ansible.builtin.assert:
    that:
      - _cert.certificate_problems | length == 0
      - _cert.private_key_problems | length == 0
    fail_msg: "{{ _cert.certificate_problems + _cert.private_key_problems }}"
  vars:
    _cert: >-
      {{ lookup('ansible.builtin.file', 'files/pbx1.crt.pem')
         | wgtwo.sipbreakout.x509_info(hosts=['pbx1.example.net'],
                                       private_key=lookup('ansible.builtin.file', 'files/pbx1.key.pem')) }}
"""

RETURN = r"""
_value:
  description: What the certificate says, and the problems found.
  type: dict
  contains:
    certificate_problems:
      description:
        - Why the certificate does not fit, one message each; empty when it does. Covers an input with no
          certificate, a certificate that is expired or not yet valid, and every host of O(hosts) it does not cover.
      type: list
      elements: str
    private_key_problems:
      description:
        - Why O(private_key) does not fit, one message each; empty when it does or when no key was given.
      type: list
      elements: str
    subject:
      description: The leaf's subject as an RFC 4514 string.
      type: str
    issuer:
      description: The leaf's issuer as an RFC 4514 string.
      type: str
    serial_number:
      description: The leaf's serial number, in hexadecimal.
      type: str
    dns_names:
      description: The DNS names among the subject alternative names.
      type: list
      elements: str
    ip_addresses:
      description: The IP addresses among the subject alternative names.
      type: list
      elements: str
    not_before:
      description: Start of validity, ISO 8601 in UTC.
      type: str
    not_after:
      description: End of validity, ISO 8601 in UTC.
      type: str
    sha256_fingerprint:
      description: SHA-256 of the leaf in DER form, lower-case hexadecimal without separators.
      type: str
    chain_length:
      description: How many certificates the PEM text holds.
      type: int
    uncovered_hosts:
      description: The entries of O(hosts) the certificate does not cover.
      type: list
      elements: str
    key_matches:
      description: Whether O(private_key) belongs to the certificate; C(None) when no key was given or readable.
      type: bool
"""

import datetime
import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_bytes, to_text

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

_PEM_CERTIFICATE = re.compile(
    br"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.DOTALL)


def _utc(value):
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def _validity(certificate):
    # cryptography >= 42 has the *_utc properties; older releases return naive UTC datetimes.
    not_before = getattr(certificate, "not_valid_before_utc", None) or certificate.not_valid_before
    not_after = getattr(certificate, "not_valid_after_utc", None) or certificate.not_valid_after
    return _utc(not_before), _utc(not_after)


def _names(certificate):
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return [], []
    dns_names = [to_text(name) for name in extension.value.get_values_for_type(x509.DNSName)]
    ip_addresses = [str(address) for address in extension.value.get_values_for_type(x509.IPAddress)]
    return dns_names, ip_addresses


def _as_ip(host):
    try:
        return ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
    except ValueError:
        return None


def _dns_covers(pattern, host):
    pattern = pattern.rstrip(".").lower()
    host = host.rstrip(".").lower()
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    # A wildcard stands for exactly one whole left-most label, never for a partial label or several labels.
    head, sep, tail = host.partition(".")
    return bool(sep and head and tail == pattern[2:] and "." in tail)


def covers(dns_names, ip_addresses, host):
    address = _as_ip(host)
    if address is not None:
        return any(_as_ip(entry) == address for entry in ip_addresses)
    return any(_dns_covers(pattern, host) for pattern in dns_names)


def _key_problems(certificate, private_key):
    try:
        key = serialization.load_pem_private_key(to_bytes(private_key), password=None)
    except TypeError:
        return ["the private key is encrypted: Kamailio cannot ask for a passphrase, so give it unencrypted "
                "(protect it with Ansible Vault instead)"], None
    except ValueError as exc:
        return ["is not a PEM private key (%s)" % exc], None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    matches = (key.public_key().public_bytes(encoding, public)
               == certificate.public_key().public_bytes(encoding, public))
    if not matches:
        return ["is not the private key of the certificate %s" % certificate.subject.rfc4514_string()], False
    return [], True


def x509_info(pem, hosts=None, private_key=None, now=None):
    """See DOCUMENTATION."""
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError("x509_info needs the Python library 'cryptography' on the controller")
    hosts = [to_text(host) for host in (hosts or [])]
    result = dict(certificate_problems=[], private_key_problems=[], subject=None, issuer=None, serial_number=None,
                  dns_names=[], ip_addresses=[], not_before=None, not_after=None, sha256_fingerprint=None,
                  chain_length=0, uncovered_hosts=list(hosts), key_matches=None)
    blocks = _PEM_CERTIFICATE.findall(to_bytes(pem or ""))
    result["chain_length"] = len(blocks)
    if not blocks:
        result["certificate_problems"].append("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        if private_key:
            result["private_key_problems"].append("cannot be checked without a certificate")
        return result
    try:
        certificate = x509.load_pem_x509_certificate(blocks[0])
    except ValueError as exc:
        result["certificate_problems"].append("the first certificate cannot be read (%s)" % exc)
        return result

    not_before, not_after = _validity(certificate)
    dns_names, ip_addresses = _names(certificate)
    result.update(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial_number="%x" % certificate.serial_number,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        not_before=not_before.isoformat(),
        not_after=not_after.isoformat(),
        sha256_fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
        uncovered_hosts=[host for host in hosts if not covers(dns_names, ip_addresses, host)],
    )

    if now is None:
        moment = datetime.datetime.now(datetime.timezone.utc)
    else:
        try:
            moment = _utc(datetime.datetime.fromisoformat(to_text(now).replace("Z", "+00:00")))
        except ValueError:
            raise AnsibleFilterError("x509_info: now='%s' is not an ISO 8601 date and time" % now)
    if moment > not_after:
        result["certificate_problems"].append("expired on %s" % result["not_after"])
    if moment < not_before:
        result["certificate_problems"].append("is not valid before %s" % result["not_before"])
    if not dns_names and not ip_addresses:
        result["certificate_problems"].append(
            "has no subject alternative names; TLS clients ignore the common name (%s)" % result["subject"])
    for host in result["uncovered_hosts"]:
        names = ["DNS:%s" % name for name in dns_names] + ["IP:%s" % address for address in ip_addresses]
        result["certificate_problems"].append(
            "does not cover host '%s'; it names %s" % (host, ", ".join(names) or "nothing"))

    if private_key:
        result["private_key_problems"], result["key_matches"] = _key_problems(certificate, private_key)
    elif private_key is not None:
        result["private_key_problems"].append("is empty")
    return result


class FilterModule(object):
    """wgtwo.sipbreakout.x509_info"""

    def filters(self):
        return {"x509_info": x509_info}
