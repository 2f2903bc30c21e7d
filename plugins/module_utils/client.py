# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gRPC client of ``wgtwo.sipbreakout.v1.SipBreakoutService``: TLS always, bearer tokens, bounded retries."""

import re
import traceback
from collections import namedtuple

from . import wire
from .errors import ApiError, AuthError, NotAcceptableError, ValidationError
from .registration import ROUTE_TYPES
from .retry import Backoff, Deadline
from .trust import root_certificates

try:
    import grpc
    HAS_GRPC = True
    GRPC_IMPORT_ERROR = None
except ImportError:
    HAS_GRPC = False
    GRPC_IMPORT_ERROR = traceback.format_exc()

DEFAULT_ENDPOINT = "api.wgtwo.com:443"
SANDBOX_ENDPOINT = "sandbox.api.wgtwo.com:443"
# What the API documents as every registration's lifetime; used only if an answer lacks time_to_live.
DOCUMENTED_TTL = 3600

# Worth another attempt: the server or the path to it is briefly unable to answer.
_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")
_ENDPOINT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}))?$")

UpsertResult = namedtuple("UpsertResult", ["time_to_live"])


def normalize_endpoint(endpoint):
    """``host:port`` (port 443 when left out), or ValidationError."""
    match = _ENDPOINT.match(endpoint or "")
    if not match or (match.group(3) and not 0 < int(match.group(3)) < 65536):
        raise ValidationError("api_endpoint", "'%s' is not HOST:PORT, for example '%s'" % (endpoint, DEFAULT_ENDPOINT))
    return "%s:%s" % (match.group(1), match.group(3) or "443")


class SipBreakoutClient:
    """One TLS channel to the API. Thread-safe: the bulk path calls it from several threads at once."""

    def __init__(self, endpoint, token_source, ca_path=None, timeout=10.0, retries=5, backoff=None):
        self.endpoint = normalize_endpoint(endpoint)
        self.timeout = float(timeout)
        self._token_source = token_source
        self._backoff = backoff or Backoff(retries)
        self._messages = wire.messages()
        credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates(ca_path))
        self._channel = grpc.secure_channel(self.endpoint, credentials,
                                            options=[("grpc.primary_user_agent", "wgtwo.sipbreakout-ansible")])
        msgs = self._messages
        self._upsert = self._channel.unary_unary(
            wire.UPSERT_METHOD, request_serializer=msgs.UpsertRegistrationRequest.SerializeToString,
            response_deserializer=msgs.UpsertRegistrationResponse.FromString)
        self._delete = self._channel.unary_unary(
            wire.DELETE_METHOD, request_serializer=msgs.DeleteRegistrationRequest.SerializeToString,
            response_deserializer=msgs.DeleteRegistrationResponse.FromString)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._channel.close()

    def upsert(self, registration):
        """Add or refresh ``registration``; returns its ``time_to_live`` in seconds."""
        if registration.route_type not in ROUTE_TYPES:
            raise ValidationError("route_type", "is required to upsert, one of %s" % ", ".join(ROUTE_TYPES),
                                  registration.phone_number)
        request = self._messages.UpsertRegistrationRequest(registration=wire.registration_to_message(registration))
        response = self._call(self._upsert, request, registration, "upsert")
        self._check_status(response, registration)
        ttl = DOCUMENTED_TTL
        if response.HasField("time_to_live"):
            ttl = response.time_to_live.seconds + response.time_to_live.nanos / 1e9
        return UpsertResult(time_to_live=ttl)

    def delete(self, registration):
        """Remove ``registration`` (matched by ``sip_uri`` and, with client tokens, the number)."""
        request = self._messages.DeleteRegistrationRequest(registration=wire.registration_to_message(registration))
        self._check_status(self._call(self._delete, request, registration, "delete"), registration)

    def _check_status(self, response, registration):
        if response.status_code == self._messages.STATUS_CODE_OK:
            return
        if response.status_code == self._messages.STATUS_CODE_NOT_ACCEPTABLE:
            raise NotAcceptableError(response.error_message, registration.phone_number)
        raise ApiError("the API answered status %d without accepting the request%s" % (
            response.status_code, ": %s" % response.error_message if response.error_message else ""),
            registration.phone_number, code="STATUS_%d" % response.status_code)

    def _call(self, rpc, request, registration, verb):
        deadline = Deadline(self.timeout)
        attempt = 0
        renewed = False
        while True:
            token = self._token_source.token(deadline)
            metadata = (("authorization", "Bearer %s" % token),) if token else ()
            try:
                return rpc(request, timeout=max(0.001, deadline.remaining()), metadata=metadata)
            except grpc.RpcError as exc:
                code = exc.code().name if exc.code() else "UNKNOWN"
                if code == "UNAUTHENTICATED" and not renewed and self._token_source.invalidate():
                    renewed = True  # the token expired or was revoked early: one fresh token, one more try
                    continue
                if code in _TRANSIENT:
                    attempt += 1
                    if self._backoff.wait(attempt, deadline):
                        continue
                raise self._error(code, exc.details(), registration, verb, attempt)

    def _error(self, code, details, registration, verb, attempts):
        where = "%s at %s" % (verb, self.endpoint)
        detail = details or "no details"
        number = registration.phone_number
        if code == "UNAUTHENTICATED":
            return AuthError("%s was refused, UNAUTHENTICATED (%s), using %s. %s" % (
                where, detail, self._token_source.describe(),
                "Set client_id/client_secret, access_token or refresh_token." if self._token_source.kind == "none"
                else "The token may have expired or been revoked; check the credentials."), number)
        if code == "PERMISSION_DENIED":
            return AuthError("%s was refused, PERMISSION_DENIED (%s): the token needs scope call.routing:write and, "
                             "for a user token, must belong to this number" % (where, detail), number)
        if code in _TRANSIENT:
            return ApiError("%s failed after %d attempt(s) within timeout=%gs: %s (%s)" % (
                where, attempts, self.timeout, code, detail),
                number, code=code, retryable=True)
        return ApiError("%s failed: %s (%s)" % (where, code, detail), number, code=code)
