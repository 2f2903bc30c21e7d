# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private CA and a loopback server certificate, made once per state directory.

Files (PEM) in the state directory: ``ca.pem`` (what clients trust), ``ca.key``, ``server.pem`` (server
certificate followed by the CA, the chain gRPC and ``ssl`` serve), ``server.key``. Keys are written 0600.
Existing files are reused while the server certificate is valid for more than a day, so a client that pinned
``ca.pem`` keeps working across restarts.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"

SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1", "::1")


class TLSFiles(object):
    """Paths of the PEM files in a state directory."""

    def __init__(self, state_dir):
        self.ca_cert = os.path.join(state_dir, CA_CERT)
        self.ca_key = os.path.join(state_dir, CA_KEY)
        self.server_cert = os.path.join(state_dir, SERVER_CERT)
        self.server_key = os.path.join(state_dir, SERVER_KEY)

    def read_server_pair(self):
        """(private key PEM, certificate chain PEM) as bytes, for grpc.ssl_server_credentials."""
        with open(self.server_key, "rb") as key_file, open(self.server_cert, "rb") as cert_file:
            return key_file.read(), cert_file.read()


def _write(path, data, mode):
    # Create with the final mode so a key is never readable by others, not even briefly.
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _still_valid(files):
    for path in (files.ca_cert, files.ca_key, files.server_cert, files.server_key):
        if not os.path.exists(path):
            return False
    try:
        with open(files.server_cert, "rb") as cert_file:
            cert = x509.load_pem_x509_certificate(cert_file.read())
    except ValueError:
        return False
    # not_valid_after_utc is cryptography >= 42; older releases give a naive UTC datetime.
    not_after = getattr(cert, "not_valid_after_utc", None)
    if not_after is None:
        not_after = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return not_after - _now() > datetime.timedelta(days=1)


def ensure_certificates(state_dir, days=365):
    """Create the CA and server certificate in ``state_dir`` unless valid ones exist; return :class:`TLSFiles`."""
    files = TLSFiles(state_dir)
    if _still_valid(files):
        return files

    now = _now()
    start = now - datetime.timedelta(minutes=5)  # tolerate small clock skew between processes
    end = now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sipbreakout emulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, "sipbreakout emulator CA"),
    ])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names = [x509.DNSName(name) for name in SERVER_NAMES]
    alt_names += [x509.IPAddress(ipaddress.ip_address(address)) for address in SERVER_ADDRESSES]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    _write(files.ca_key, _key_pem(ca_key), 0o600)
    _write(files.server_key, _key_pem(server_key), 0o600)
    _write(files.server_cert, server_cert.public_bytes(serialization.Encoding.PEM) + ca_pem, 0o644)
    # The CA goes last: its presence with the others is what _still_valid trusts.
    _write(files.ca_cert, ca_pem, 0o644)
    return files
