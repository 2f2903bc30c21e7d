# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the functional tests of the pbx role on this machine share."""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keepalive_support import CLIENT_ID, CLIENT_SECRET

SIP_URI = "sips:pbx1.example.net:5061"


def tls_files(root, name="pbx1.example.net"):
    """A self-signed certificate for ``name`` and its key, as PEM files in ``root``: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .public_key(key.public_key()).serial_number(1)
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                   .sign(key, hashes.SHA256()))
    paths = os.path.join(root, "edge.crt.pem"), os.path.join(root, "edge.key.pem")
    with open(paths[0], "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return paths


def pbx_variables(root, emu):
    """The pbx role's variables of a host that is this machine: the emulator's API and client, a sip_uri and
    prefixes, an edge certificate made in ``root``, backends and core on loopback."""
    certificate, key = tls_files(root)
    return dict(
        sipbreakout_api_endpoint=emu.grpc_endpoint, sipbreakout_token_url=emu.token_url,
        sipbreakout_ca_path=emu.ca_path, sipbreakout_client_id=CLIENT_ID,
        sipbreakout_client_secret=CLIENT_SECRET, sipbreakout_sip_uri=SIP_URI,
        sipbreakout_mobile_originating_prefix="11", sipbreakout_mobile_terminating_prefix="22",
        sipbreakout_tls_certificate=certificate, sipbreakout_tls_private_key=key,
        sipbreakout_backends=["sip:127.0.0.1:5070"], sipbreakout_core_uri="sips:sbc.example.net",
        # These tests start no edge: the system's CAs are a valid choice that needs no file.
        sipbreakout_edge_core_ca_certificate="system",
        sipbreakout_edge_tls_address="127.0.0.1", sipbreakout_edge_backend_address="127.0.0.1")
