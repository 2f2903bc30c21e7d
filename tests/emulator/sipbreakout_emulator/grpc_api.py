# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``wgtwo.sipbreakout.v1.SipBreakoutService`` methods, served with grpcio's generic handler on ``grpc.aio``.

The handlers are coroutines so that injected latency is an ``asyncio.sleep``, not a sleeping thread: a call that
waits costs the emulator nothing, and a benchmark measures the client rather than the emulator's threads. The
checks themselves are plain functions under the state's lock.

Order of checks on every call: load shedding (``max_in_flight``, RESOURCE_EXHAUSTED), injected latency, injected
UNAVAILABLE, authorization (UNAUTHENTICATED,
PERMISSION_DENIED), whose subscription (INVALID_ARGUMENT, PERMISSION_DENIED), then the registration's content,
which is answered in the response (``STATUS_CODE_NOT_ACCEPTABLE`` with ``error_message``), not as a gRPC error.
"""

import asyncio
import logging
import re
import time
from collections import namedtuple

import grpc

from .state import AUTH_CLIENT, AUTH_NONE, AUTH_USER, PHONE_NUMBER, ROUTING_SCOPE, TokenError

LOG = logging.getLogger(__name__)

SECURE_SIP_REQUIRED = "Secure SIP domain name required"

_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_IPV6_LITERAL = re.compile(r"^\[[0-9A-Fa-f:.]{2,45}\]$")
_PREFIX = re.compile(r"^[0-9]+$")

Caller = namedtuple("Caller", "kind client_id phone_number")


class _Reject(Exception):
    """End the call with a gRPC status."""

    def __init__(self, code, details):
        super().__init__(details)
        self.code = code
        self.details = details


class _NotAcceptable(Exception):
    """Answer with STATUS_CODE_NOT_ACCEPTABLE and this error_message."""


def _split_method(path):
    service, _sep, method = path.lstrip("/").partition("/")
    return service, method


def check_sip_uri(sip_uri):
    """Raise :class:`_NotAcceptable` unless ``sip_uri`` is ``sips:HOST`` or ``sips:HOST:PORT``."""
    scheme, sep, rest = sip_uri.partition(":")
    # URI schemes are case-insensitive (RFC 3261 section 19.1.4).
    if not sep or scheme.lower() != "sips":
        raise _NotAcceptable(SECURE_SIP_REQUIRED)
    host, port = rest, None
    if rest.startswith("["):
        end = rest.find("]")
        if end != -1:
            host, tail = rest[:end + 1], rest[end + 1:]
            if tail:
                if not tail.startswith(":"):
                    host = rest
                else:
                    port = tail[1:]
    elif ":" in rest:
        host, _sep, port = rest.rpartition(":")
    if not (_HOST_NAME.match(host) or _IPV6_LITERAL.match(host)):
        raise _NotAcceptable("sip_uri '%s' must be 'sips:HOST' or 'sips:HOST:PORT' with a valid host name or IP "
                             "address" % sip_uri)
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise _NotAcceptable("sip_uri '%s' has an invalid port: a port is a number from 1 to 65535" % sip_uri)


def check_phone_number(phone_number):
    """Raise :class:`_NotAcceptable` unless ``phone_number`` is '+' followed by digits."""
    if not PHONE_NUMBER.match(phone_number):
        raise _NotAcceptable("phone_number '%s' is malformed: expected '+', the country code and the subscriber "
                             "number, digits only, for example '+4799990000'" % phone_number)


class SipBreakoutServicer(object):
    """Implements UpsertRegistration and DeleteRegistration on an :class:`~.state.EmulatorState`."""

    def __init__(self, state, messages, upsert_method, delete_method, workers=128):
        self.state = state
        # At most this many calls are handled at once, latency included; the others wait their turn, as they would
        # for a busy server's workers.
        self._slots = asyncio.Semaphore(workers)
        self.msgs = messages
        self.service, self.upsert_name = _split_method(upsert_method)
        delete_service, self.delete_name = _split_method(delete_method)
        if delete_service != self.service:
            raise ValueError("both methods must belong to one service")
        self.route_type_names = dict((getattr(messages, name), name) for name in dir(messages)
                                     if name.startswith("ROUTE_TYPE_"))

    def generic_handler(self):
        """The grpc.GenericRpcHandler serving both methods."""
        msgs = self.msgs
        return grpc.method_handlers_generic_handler(self.service, {
            self.upsert_name: grpc.unary_unary_rpc_method_handler(
                self.upsert, request_deserializer=msgs.UpsertRegistrationRequest.FromString,
                response_serializer=msgs.UpsertRegistrationResponse.SerializeToString),
            self.delete_name: grpc.unary_unary_rpc_method_handler(
                self.delete, request_deserializer=msgs.DeleteRegistrationRequest.FromString,
                response_serializer=msgs.DeleteRegistrationResponse.SerializeToString),
        })

    # ----------------------------------------------------------------- authorization

    def _caller(self, authorization):
        if not authorization:
            if self.state.config.sandbox:
                return Caller(AUTH_NONE, None, None)
            raise _Reject(grpc.StatusCode.UNAUTHENTICATED,
                          "missing authorization metadata: send 'authorization: Bearer <access token>'")
        if len(authorization) > 1:
            raise _Reject(grpc.StatusCode.UNAUTHENTICATED, "more than one authorization metadata entry")
        scheme, _sep, token = authorization[0].strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Reject(grpc.StatusCode.UNAUTHENTICATED, "authorization metadata must be 'Bearer <access token>'")
        try:
            found = self.state.lookup_token(token)
        except TokenError as exc:
            raise _Reject(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        if ROUTING_SCOPE not in found.scopes:
            raise _Reject(grpc.StatusCode.PERMISSION_DENIED,
                          "the access token does not have the scope '%s'" % ROUTING_SCOPE)
        return Caller(found.kind, found.client_id, found.phone_number)

    @staticmethod
    def _subscriber(registration, caller):
        given = registration.phone_number.e164 if registration.HasField("phone_number") else ""
        if caller.kind == AUTH_USER:
            if given and given != caller.phone_number:
                raise _Reject(grpc.StatusCode.PERMISSION_DENIED,
                              "phone_number %s is not the subscription this user token belongs to" % given)
            return caller.phone_number
        if not given:
            what = "a client-credentials token" if caller.kind == AUTH_CLIENT else "no user token"
            raise _Reject(grpc.StatusCode.INVALID_ARGUMENT,
                          "registration.phone_number is required with %s: the token does not name a "
                          "subscription" % what)
        return given

    # ----------------------------------------------------------------- methods

    async def _handle(self, method, request, context, apply):
        started = time.monotonic()
        if not self.state.call_arrived():
            # Shed like a rate-limiting front end: before the service sees the call, after the round trip.
            latency = self.state.call_latency()
            if latency:
                await asyncio.sleep(latency)
            details = "too many calls in flight (emulator: max_in_flight)"
            self._record(method, self._entry(request, context.invocation_metadata() or ()), started,
                         "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", details=details)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, details)
        try:
            async with self._slots:
                latency = self.state.call_latency()
                if latency:
                    await asyncio.sleep(latency)
                answer = self._answer(method, request, context.invocation_metadata() or (), started, apply)
        finally:
            self.state.call_answered()
        if isinstance(answer, _Reject):
            await context.abort(answer.code, answer.details)
        return answer

    def _entry(self, request, metadata):
        """What the call log keeps of a call (never the token)."""
        registration = request.registration
        return {
            "authorization": any(key == "authorization" for key, _value in metadata),
            "phone_number": registration.phone_number.e164 or None,
            "sip_uri": registration.sip_uri or None,
            "route_type": self.route_type_names.get(registration.route_type, registration.route_type),
        }

    def _answer(self, method, request, metadata, started, apply):
        """The response to send, or the _Reject to end the call with."""
        authorization = [value for key, value in metadata if key == "authorization"]
        registration = request.registration
        entry = self._entry(request, metadata)
        try:
            reason = self.state.take_unavailable()
            if reason:
                raise _Reject(grpc.StatusCode.UNAVAILABLE, "the service is unavailable (emulator: %s)" % reason)
            caller = self._caller(authorization)
            entry["auth_kind"] = caller.kind
            if not request.HasField("registration"):
                raise _Reject(grpc.StatusCode.INVALID_ARGUMENT, "registration is required")
            number = self._subscriber(registration, caller)
            entry["phone_number"] = number
            try:
                response, detail = apply(registration, number, caller)
            except _NotAcceptable as exc:
                status_code, message = self.msgs.STATUS_CODE_NOT_ACCEPTABLE, str(exc)
                response, detail = None, message
            else:
                status_code, message = self.msgs.STATUS_CODE_OK, None
        except _Reject as exc:
            self._record(method, entry, started, exc.code.name, exc.code.name, details=exc.details)
            return exc
        outcome = "OK" if status_code == self.msgs.STATUS_CODE_OK else "NOT_ACCEPTABLE"
        self._record(method, entry, started, outcome, "OK", status_code="STATUS_CODE_" + outcome, details=detail)
        if response is None:
            response_class = (self.msgs.UpsertRegistrationResponse if method == self.upsert_name
                              else self.msgs.DeleteRegistrationResponse)
            response = response_class(status_code=status_code, error_message=message)
        return response

    def _record(self, method, entry, started, outcome, grpc_status, status_code=None, details=None):
        duration_ms = round((time.monotonic() - started) * 1000.0, 1)
        self.state.record_call(method, outcome, entry["authorization"], phone_number=entry["phone_number"],
                               sip_uri=entry["sip_uri"], route_type=entry["route_type"], grpc_status=grpc_status,
                               status_code=status_code, message=details, auth_kind=entry.get("auth_kind"),
                               duration_ms=duration_ms)
        LOG.info("%s %s %s -> %s%s (%.0f ms)", method, entry["phone_number"] or "-", entry["sip_uri"] or "-", outcome,
                 ": %s" % details if details else "", duration_ms)

    def _apply_upsert(self, registration, number, caller):
        check_sip_uri(registration.sip_uri)
        check_phone_number(number)
        route_type = registration.route_type
        if route_type == self.msgs.ROUTE_TYPE_UNSPECIFIED:
            raise _NotAcceptable("route_type is required: ROUTE_TYPE_UNSPECIFIED (0) is never accepted")
        if route_type not in self.route_type_names:
            raise _NotAcceptable("route_type %d is not a known RouteType" % route_type)
        for field in ("mobile_originating_prefix", "mobile_terminating_prefix"):
            value = getattr(registration, field)
            if value and not _PREFIX.match(value):
                raise _NotAcceptable("%s '%s' must be digits only, for example '00'" % (field, value))
        rejection = self.state.rejection(number)
        if rejection:
            raise _NotAcceptable(rejection)
        ttl = self.state.upsert(number, registration.sip_uri, route_type, self.route_type_names[route_type],
                                registration.mobile_originating_prefix or None,
                                registration.mobile_terminating_prefix or None, caller.kind, caller.client_id)
        seconds = int(ttl)
        duration = self.msgs.Duration(seconds=seconds, nanos=int(round((ttl - seconds) * 1e9)))
        response = self.msgs.UpsertRegistrationResponse(status_code=self.msgs.STATUS_CODE_OK, time_to_live=duration)
        return response, "ttl %gs" % ttl

    def _apply_delete(self, registration, number, _caller):
        check_sip_uri(registration.sip_uri)
        check_phone_number(number)
        existed = self.state.delete(number, registration.sip_uri)
        response = self.msgs.DeleteRegistrationResponse(status_code=self.msgs.STATUS_CODE_OK)
        return response, "deleted" if existed else "nothing to delete"

    async def upsert(self, request, context):
        """UpsertRegistration."""
        return await self._handle(self.upsert_name, request, context, self._apply_upsert)

    async def delete(self, request, context):
        """DeleteRegistration."""
        return await self._handle(self.delete_name, request, context, self._apply_delete)
