# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gRPC client of ``wgtwo.sipbreakout.v1.SipBreakoutService``: TLS always, bearer tokens, bounded retries."""

import heapq
import itertools
import queue
import re
import time
import traceback
from collections import namedtuple

from . import wire
from .errors import ApiError, AuthError, NotAcceptableError, SipBreakoutError, ValidationError
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
# Answers after which a sent request may or may not have been carried out: no answer came back in time, or the
# connection or server failed on the way.
_UNSETTLED = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN", "INTERNAL", "CANCELLED", "ABORTED", "DATA_LOSS")
_ENDPOINT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}))?$")

# Calls in flight at once by default, as streams of one HTTP/2 connection: with 30 ms of round trip this keeps a
# 2-core host, shared with the emulator, at about 2,700 calls a second (docs/benchmark.md). run() halves it while
# the API pushes back.
DEFAULT_CONCURRENCY = 256
UPSERT, DELETE = "upsert", "delete"

UpsertResult = namedtuple("UpsertResult", ["time_to_live"])


def shed_warning(lowest, concurrency, calls):
    """What to tell the user when :meth:`SipBreakoutClient.run` of ``calls`` calls had to lower the calls in flight
    to ``lowest``; None when it did not, or when there were too few calls to feel the cut."""
    if lowest >= min(concurrency, calls):
        return None
    return ("the API pushed back (UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED), so calls in flight went "
            "down from concurrency=%d to %d for a while; if it keeps doing so, set a lower concurrency"
            % (concurrency, lowest))


def normalize_endpoint(endpoint):
    """``host:port`` (port 443 when left out), or ValidationError."""
    match = _ENDPOINT.match(endpoint or "")
    if not match or (match.group(3) and not 0 < int(match.group(3)) < 65536):
        raise ValidationError("api_endpoint", "'%s' is not HOST:PORT, for example '%s'" % (endpoint, DEFAULT_ENDPOINT))
    return "%s:%s" % (match.group(1), match.group(3) or "443")


class Call:
    """One upsert or delete of one registration, filled in by :meth:`SipBreakoutClient.run`.

    Afterwards exactly one holds: ``ok`` (answered STATUS_CODE_OK; ``time_to_live`` and ``sent_at`` are set),
    ``error`` (a SipBreakoutError), or neither, when ``run`` was stopped before this call was started. An upsert
    without a route type has its ValidationError from the start and is never sent.
    """

    __slots__ = ("registration", "verb", "ok", "error", "time_to_live", "sent_at", "deadline", "attempts",
                 "renewed", "token", "sent", "code")

    def __init__(self, registration, verb=UPSERT):
        self.registration = registration
        self.verb = verb
        self.ok = False
        self.error = None
        if verb == UPSERT and registration.route_type not in ROUTE_TYPES:
            # The keepalive builds registrations from the ledger, not through Registration.create: such a call
            # ends with this error and is never sent.
            self.error = ValidationError("route_type", "is required to upsert, one of %s" % ", ".join(ROUTE_TYPES),
                                         registration.phone_number)
        self.time_to_live = None
        self.sent_at = None  # wall-clock time the answered attempt was sent: the server's TTL started after it
        self.deadline = None
        self.attempts = 0
        self.renewed = False
        self.token = None
        self.sent = 0  # which send of the run its latest attempt was
        self.code = None  # the gRPC status of its latest attempt

    @property
    def uncertain(self):
        """Failed after a request went out without an answer that settles it: the operator may have carried it
        out (the ledger must then assume it did, for an upsert, and did not, for a delete)."""
        return self.error is not None and self.sent > 0 and self.code in _UNSETTLED

    @property
    def api_down(self):
        """Failed for a transient reason with all its retries spent: the API is taken to be down, and the calls
        not started yet would only wait out the same timeout."""
        return isinstance(self.error, ApiError) and self.error.retryable


class SipBreakoutClient:
    """One TLS channel to the API.

    :meth:`run` keeps many calls in flight as gRPC futures on that channel; their answers come back on gRPC's own
    thread and are handled, retried and counted in the caller's thread, so ten thousand calls need no thread each.
    """

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
        self._rpcs = {
            UPSERT: (self._channel.unary_unary(
                wire.UPSERT_METHOD, request_serializer=msgs.UpsertRegistrationRequest.SerializeToString,
                response_deserializer=msgs.UpsertRegistrationResponse.FromString), msgs.UpsertRegistrationRequest),
            DELETE: (self._channel.unary_unary(
                wire.DELETE_METHOD, request_serializer=msgs.DeleteRegistrationRequest.SerializeToString,
                response_deserializer=msgs.DeleteRegistrationResponse.FromString), msgs.DeleteRegistrationRequest),
        }

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._channel.close()

    def upsert(self, registration):
        """Add or refresh ``registration``; returns its ``time_to_live`` in seconds."""
        return UpsertResult(time_to_live=self._one(Call(registration, UPSERT)).time_to_live)

    def delete(self, registration):
        """Remove ``registration`` (matched by ``sip_uri`` and, with client tokens, the number)."""
        self._one(Call(registration, DELETE))

    def _one(self, call):
        self.run([call])
        if call.error is not None:
            raise call.error
        return call

    def run(self, calls, concurrency=1, stop=None, on_done=None, clock=time.time):
        """Send ``calls`` in order, at most ``concurrency`` in flight, each with its own retries and deadline.

        ``on_done(call)`` is called (in this thread) as each call ends. Once ``stop()`` is true no further call is
        started; the ones already started finish, retries included. Returns when nothing is in flight, with the
        fewest calls that were allowed in flight at once (see below).

        A server that sheds load (an answer in _TRANSIENT) halves the calls allowed in flight, once per round of
        calls sent; each answered call lets it grow back by one per round, up to ``concurrency`` (additive
        increase, multiplicative decrease, as TCP does), so a default that suits a healthy API cannot keep
        hammering one that pushes back.
        """
        answers = queue.Queue()
        retries = []  # heap of (monotonic time due, sequence, call)
        order = itertools.count()
        fresh = iter(calls)
        in_flight = sent = shrunk_at = 0
        window = lowest = float(max(1, concurrency))
        while True:
            while in_flight < int(window):
                if retries and retries[0][0] <= time.monotonic():
                    call = heapq.heappop(retries)[2]
                else:
                    call = next(fresh, None) if fresh is not None and not (stop and stop()) else None
                    if call is None:
                        fresh = None
                        break
                    if call.error is not None:  # refused before sending (see Call)
                        if on_done:
                            on_done(call)
                        continue
                    call.deadline = Deadline(self.timeout)
                sent += 1
                call.sent = sent
                if self._send(call, answers, clock):
                    in_flight += 1
                elif on_done:
                    on_done(call)
            wait = max(0.0, retries[0][0] - time.monotonic()) if retries else None
            if not in_flight:
                if wait is None:
                    return int(lowest)
                time.sleep(wait)
                continue
            try:
                call, future = answers.get(timeout=wait)
            except queue.Empty:
                continue
            in_flight -= 1
            due = self._receive(call, future)
            if call.code in _TRANSIENT:
                if call.sent > shrunk_at:  # answers to calls sent before the last cut do not cut again
                    window = max(1.0, window / 2.0)
                    lowest = min(lowest, window)
                    shrunk_at = sent
            elif window < concurrency:
                window = min(float(concurrency), window + 1.0 / window)
            if due is not None:
                heapq.heappush(retries, (due, next(order), call))
            elif on_done:
                on_done(call)

    def _send(self, call, answers, clock):
        """Start one attempt of ``call``; False when it ended before any request (no token)."""
        try:
            call.token = self._token_source.token(call.deadline)
        except SipBreakoutError as exc:
            call.error = exc
            return False
        rpc, request_type = self._rpcs[call.verb]
        request = request_type(registration=wire.registration_to_message(call.registration))
        metadata = (("authorization", "Bearer %s" % call.token),) if call.token else ()
        call.sent_at = clock()
        future = rpc.future(request, timeout=max(0.001, call.deadline.remaining()), metadata=metadata)
        future.add_done_callback(lambda done: answers.put((call, done)))
        return True

    def _receive(self, call, future):
        """Settle ``call`` from its answer; returns when to try again (monotonic time), or None when it ended."""
        try:
            response = future.result()
        except grpc.RpcError as exc:
            code = call.code = exc.code().name if exc.code() else "UNKNOWN"
            if code == "UNAUTHENTICATED" and not call.renewed and self._token_source.invalidate(call.token):
                call.renewed = True  # the token expired or was revoked early: one fresh token, one more try
                return time.monotonic()
            if code in _TRANSIENT:
                call.attempts += 1
                pause = self._backoff.pause(call.attempts, call.deadline)
                if pause is not None:
                    return time.monotonic() + pause
            call.error = self._error(code, exc.details(), call.registration, call.verb, call.attempts)
            return None
        call.code = "OK"
        try:
            call.time_to_live = self._check(response, call)
        except SipBreakoutError as exc:
            call.error = exc
        else:
            call.ok = True
        return None

    def _check(self, response, call):
        msgs = self._messages
        if response.status_code == msgs.STATUS_CODE_NOT_ACCEPTABLE:
            raise NotAcceptableError(response.error_message, call.registration.phone_number)
        if response.status_code != msgs.STATUS_CODE_OK:
            raise ApiError("the API answered status %d without accepting the request%s" % (
                response.status_code, ": %s" % response.error_message if response.error_message else ""),
                call.registration.phone_number, code="STATUS_%d" % response.status_code)
        if call.verb != UPSERT:
            return None
        if response.HasField("time_to_live"):
            return response.time_to_live.seconds + response.time_to_live.nanos / 1e9
        return DOCUMENTED_TTL

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
