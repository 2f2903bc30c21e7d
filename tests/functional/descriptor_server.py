# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A SipBreakoutService built ONLY from the operator's published descriptor set (wgtwoapis-image.bin).

Nothing here comes from the project's protos or wire.py, so a client that works against this server speaks the
operator's wire contract, not merely our own. Every request is recorded as the operator's classes decode it.
Serves TLS with a throwaway CA made with ``cryptography``.
"""

import datetime
import ipaddress
import os
import threading
from concurrent import futures

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import proto_contract

SERVICE = "wgtwo.sipbreakout.v1.SipBreakoutService"
TTL_SECONDS = 3600
INSECURE_SIP_MESSAGE = "Secure SIP domain name required"


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls_files(directory, hosts=("localhost", "127.0.0.1")):
    """Write ca.pem, server.pem and server.key to directory; returns their paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name("descriptor-server test CA"))
               .issuer_name(_name("descriptor-server test CA")).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = dict((name, os.path.join(directory, name)) for name in ("ca.pem", "server.pem", "server.key"))
    with open(paths["ca.pem"], "wb") as handle:
        handle.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["server.pem"], "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["server.key"], "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return paths


def _has_unknown_fields(message):
    """True if the peer sent fields the operator's schema does not define (they would be silently ignored)."""
    known = type(message)()
    known.CopyFrom(message)
    known.DiscardUnknownFields()
    return known.SerializeToString(deterministic=True) != message.SerializeToString(deterministic=True)


class DescriptorServer:
    """Run with ``with DescriptorServer(tmpdir) as server:``; ``server.endpoint``, ``server.ca_path``,
    ``server.requests`` (one dict per call: method, metadata, raw bytes, decoded message, unknown_fields)."""

    def __init__(self, directory):
        self.pool = proto_contract.operator_pool()
        self.classes = dict(
            (name, proto_contract.message_class(self.pool.FindMessageTypeByName("wgtwo.sipbreakout.v1." + name)))
            for name in ("UpsertRegistrationRequest", "UpsertRegistrationResponse", "DeleteRegistrationRequest",
                         "DeleteRegistrationResponse"))
        status = self.pool.FindEnumTypeByName("wgtwo.sipbreakout.v1.StatusCode").values_by_name
        self.status_ok = status["STATUS_CODE_OK"].number
        self.status_not_acceptable = status["STATUS_CODE_NOT_ACCEPTABLE"].number
        self.tls = make_tls_files(directory)
        self.ca_path = self.tls["ca.pem"]
        self.requests = []
        self._lock = threading.Lock()
        self._server = None
        self.port = None

    @property
    def endpoint(self):
        return "localhost:%d" % self.port

    def _record(self, method, request, context):
        entry = {
            "method": "/%s/%s" % (SERVICE, method),
            "metadata": tuple((item.key, item.value) for item in context.invocation_metadata()),
            "raw": request.SerializeToString(),
            "message": request,
            "unknown_fields": _has_unknown_fields(request),
        }
        with self._lock:
            self.requests.append(entry)

    def _status(self, request):
        if request.registration.sip_uri.lower().startswith("sip:"):
            return self.status_not_acceptable, INSECURE_SIP_MESSAGE
        return self.status_ok, ""

    def _upsert(self, request, context):
        self._record("UpsertRegistration", request, context)
        code, message = self._status(request)
        response = self.classes["UpsertRegistrationResponse"](status_code=code, error_message=message)
        if code == self.status_ok:
            response.time_to_live.seconds = TTL_SECONDS
        return response

    def _delete(self, request, context):
        self._record("DeleteRegistration", request, context)
        code, message = self._status(request)
        return self.classes["DeleteRegistrationResponse"](status_code=code, error_message=message)

    def start(self):
        handlers = {}
        for method, func in (("UpsertRegistration", self._upsert), ("DeleteRegistration", self._delete)):
            request_class = self.classes[method + "Request"]
            response_class = self.classes[method + "Response"]
            handlers[method] = grpc.unary_unary_rpc_method_handler(
                func, request_deserializer=request_class.FromString,
                response_serializer=response_class.SerializeToString)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        with open(self.tls["server.key"], "rb") as key, open(self.tls["server.pem"], "rb") as cert:
            credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
        self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        if not self.port:
            raise RuntimeError("descriptor server could not bind a loopback port")
        self._server.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
