# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything the emulator holds: clients, tokens, registrations, faults, counters and the call log.

One lock guards it all; every operation is short, so the gRPC and HTTPS worker threads never wait long. Expiry
of tokens and registrations uses the monotonic clock, so a wall-clock step cannot make a lapsed registration look
live again; wall-clock times are only reported.
"""

import collections
import datetime
import hashlib
import hmac
import re
import secrets
import threading
import time

DEFAULT_TTL = 3600.0
DEFAULT_TOKEN_TTL = 3600.0
ROUTING_SCOPE = "call.routing:write"
CALL_LOG_SIZE = 1000

# '+' then digits (country code and subscriber number). The operator warns stored numbers may not be strict
# E.164, so the length is bounded only loosely: at least two digits, at most 20.
PHONE_NUMBER = re.compile(r"^\+[0-9]{2,20}$")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
# RFC 6749 appendix A.1: client_id = *VSCHAR; a colon cannot survive the CLI's ID:SECRET syntax, so refuse it.
_CLIENT_ID = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")

AUTH_CLIENT = "client_credentials"
AUTH_USER = "user"
AUTH_NONE = "none"


class OAuthError(Exception):
    """An RFC 6749 error response: ``error`` code, HTTP status and a human description."""

    def __init__(self, error, description, status=400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class TokenError(Exception):
    """A bearer token that cannot be used: unknown (never issued or revoked) or expired."""


def parse_scopes(value):
    """A frozenset of scope tokens from a space-delimited string or a list; raises ValueError on bad tokens."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        items = value.split(" ")
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        raise ValueError("scope must be a space-delimited string or a list of strings")
    scopes = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError("scope must be a space-delimited string or a list of strings")
        if item == "":
            continue
        if not _SCOPE_TOKEN.match(item):
            raise ValueError("'%s' is not a valid scope token (RFC 6749 section 3.3)" % item)
        scopes.add(item)
    return frozenset(scopes)


def _scope_string(scopes):
    return " ".join(sorted(scopes))


def _iso(wall):
    return datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).isoformat(timespec="milliseconds")


def registrations_digest(keys):
    """SHA-256 (hex) of ``(phone_number, sip_uri)`` keys, one "phone_number sip_uri" line each in sorted order: what
    ``registrations_summary`` reports, so that a test can compare a million held keys with the ones it sent."""
    digest = hashlib.sha256()
    for phone_number, sip_uri in sorted(keys):
        digest.update(("%s %s\n" % (phone_number, sip_uri)).encode("utf-8"))
    return digest.hexdigest()


def _positive_number(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("%s must be a number" % name)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError("%s must be %s" % (name, "zero or more" if allow_zero else "greater than zero"))
    return value


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("%s must be a whole number, zero or more" % name)
    return value


class Client(object):
    """An OAuth client allowed the client-credentials grant."""

    def __init__(self, client_id, secret, scopes):
        if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
            raise ValueError("client id must be printable ASCII without spaces or ':'")
        if not isinstance(secret, str) or not secret:
            raise ValueError("client secret must be a non-empty string")
        self.client_id = client_id
        self.secret = secret
        self.scopes = parse_scopes(scopes)

    def public(self):
        """What may be shown: never the secret."""
        return {"client_id": self.client_id, "scopes": sorted(self.scopes)}


class AccessToken(object):
    """An issued bearer token; ``phone_number`` is set for user tokens only."""

    def __init__(self, kind, scopes, expires, client_id=None, phone_number=None):
        self.kind = kind
        self.scopes = scopes
        self.expires = expires
        self.client_id = client_id
        self.phone_number = phone_number


class RefreshGrant(object):
    """What a refresh token stands for: a user's grant, optionally bound to the client it was issued to."""

    def __init__(self, phone_number, scopes, client_id=None):
        self.phone_number = phone_number
        self.scopes = scopes
        self.client_id = client_id


class Config(object):
    """Run-time settings; ``reset`` returns to the values the emulator started with."""

    def __init__(self, ttl=DEFAULT_TTL, token_ttl=DEFAULT_TOKEN_TTL, sandbox=False):
        self.ttl = _positive_number("ttl", ttl)
        self.token_ttl = _positive_number("token_ttl", token_ttl)
        self.sandbox = bool(sandbox)

    def copy(self):
        return Config(self.ttl, self.token_ttl, self.sandbox)

    def as_dict(self):
        return {"ttl": self.ttl, "token_ttl": self.token_ttl, "sandbox": self.sandbox}


class Faults(object):
    """Injected failures. Counts go down as they are used; the outage window is a monotonic deadline."""

    def __init__(self):
        self.unavailable = 0
        self.unavailable_until = 0.0
        self.latency_ms = 0
        self.max_in_flight = 0  # 0: no limit; else calls beyond this many at once answer RESOURCE_EXHAUSTED
        self.token_unavailable = 0
        self.reject = {}  # phone number -> error_message of a STATUS_CODE_NOT_ACCEPTABLE answer


class EmulatorState(object):
    """The emulator's whole state. Thread-safe."""

    def __init__(self, config=None, clients=None, monotonic=time.monotonic, wall=time.time):
        self._lock = threading.RLock()
        self._monotonic = monotonic
        self._wall = wall
        self._initial_config = (config or Config()).copy()
        self.config = self._initial_config.copy()
        self._clients = {}
        self._access_tokens = {}
        self._refresh_tokens = {}
        self._registrations = {}
        self._purge_due = float("inf")  # the earliest expiry of what is held
        self.faults = Faults()
        self._calls = None
        self._call_counts = None
        self._token_counts = None
        self._token_log = None
        self._reset_counters()
        for client in clients or ():
            self.add_client(client)

    # ----------------------------------------------------------------- configuration and clients

    def add_client(self, client):
        """Add or replace a :class:`Client`."""
        with self._lock:
            self._clients[client.client_id] = client

    def clients(self):
        """The clients, without secrets."""
        with self._lock:
            return [client.public() for client in sorted(self._clients.values(), key=lambda c: c.client_id)]

    def set_config(self, ttl=None, token_ttl=None, sandbox=None):
        """Change settings; None leaves one as it is. Applies to registrations and tokens made afterwards."""
        with self._lock:
            new = self.config.copy()
            if ttl is not None:
                new.ttl = _positive_number("ttl", ttl)
            if token_ttl is not None:
                new.token_ttl = _positive_number("token_ttl", token_ttl)
            if sandbox is not None:
                if not isinstance(sandbox, bool):
                    raise ValueError("sandbox must be true or false")
                new.sandbox = sandbox
            self.config = new
            return new.as_dict()

    # ----------------------------------------------------------------- OAuth

    def authenticate_client(self, client_id, secret):
        """The :class:`Client` if the id is known and the secret matches, else None."""
        with self._lock:
            client = self._clients.get(client_id)
        if client is None or secret is None:
            return None
        # Constant-time compare: the emulator should not teach clients to rely on timing-leaky servers.
        if not hmac.compare_digest(client.secret.encode("utf-8"), secret.encode("utf-8")):
            return None
        return client

    def _new_access_token(self, kind, scopes, client_id=None, phone_number=None):
        token = secrets.token_urlsafe(32)
        lifetime = self.config.token_ttl
        self._access_tokens[token] = AccessToken(kind, scopes, self._monotonic() + lifetime, client_id,
                                                 phone_number)
        return token, lifetime

    @staticmethod
    def _token_response(token, lifetime, scopes, refresh_token=None):
        response = {
            "access_token": token,
            "token_type": "Bearer",
            # RFC 6749 wants whole seconds; round down so a client never believes in a dead token.
            "expires_in": int(lifetime),
            "scope": _scope_string(scopes),
        }
        if refresh_token is not None:
            response["refresh_token"] = refresh_token
        return response

    def issue_client_token(self, client, requested):
        """Client-credentials grant: granted = requested scopes that are allowed (all allowed when none requested)."""
        with self._lock:
            granted = client.scopes & requested if requested else client.scopes
            if not granted:
                raise OAuthError("invalid_scope", "none of the requested scopes is allowed for this client")
            token, lifetime = self._new_access_token(AUTH_CLIENT, granted, client_id=client.client_id)
            return self._token_response(token, lifetime, granted)

    def issue_user_token(self, phone_number, scopes, client_id=None):
        """A user token bound to ``phone_number`` with a refresh token (stands in for the authorization-code flow)."""
        with self._lock:
            if client_id is not None and client_id not in self._clients:
                raise ValueError("unknown client_id '%s'" % client_id)
            token, lifetime = self._new_access_token(AUTH_USER, scopes, client_id=client_id,
                                                     phone_number=phone_number)
            refresh = secrets.token_urlsafe(32)
            self._refresh_tokens[refresh] = RefreshGrant(phone_number, scopes, client_id)
            return self._token_response(token, lifetime, scopes, refresh)

    def refresh(self, refresh_token, client, requested):
        """Refresh-token grant. The refresh token rotates: the one presented is invalid from now on."""
        with self._lock:
            grant = self._refresh_tokens.get(refresh_token)
            if grant is None:
                raise OAuthError("invalid_grant", "the refresh token is unknown, revoked or already used")
            if grant.client_id is not None and (client is None or client.client_id != grant.client_id):
                raise OAuthError("invalid_grant", "the refresh token was issued to another client")
            if requested and not requested <= grant.scopes:
                raise OAuthError("invalid_scope", "a refresh cannot add scopes the user did not grant")
            scopes = requested or grant.scopes
            del self._refresh_tokens[refresh_token]
            token, lifetime = self._new_access_token(AUTH_USER, scopes, client_id=grant.client_id,
                                                     phone_number=grant.phone_number)
            new_refresh = secrets.token_urlsafe(32)
            # The original grant's scopes stay with the new refresh token, as RFC 6749 section 6 requires.
            self._refresh_tokens[new_refresh] = RefreshGrant(grant.phone_number, grant.scopes, grant.client_id)
            return self._token_response(token, lifetime, scopes, new_refresh)

    def revoke(self, token):
        """RFC 7009: forget an access or refresh token; unknown tokens are not an error."""
        with self._lock:
            self._access_tokens.pop(token, None)
            self._refresh_tokens.pop(token, None)

    def revoke_access_tokens(self):
        """Invalidate every access token issued so far (refresh tokens stay); returns how many."""
        with self._lock:
            count = len(self._access_tokens)
            self._access_tokens.clear()
            return count

    def lookup_token(self, token):
        """The :class:`AccessToken` for a bearer token, or raise :class:`TokenError`."""
        with self._lock:
            found = self._access_tokens.get(token)
            if found is None:
                raise TokenError("the access token is not known (never issued, or revoked)")
            if self._monotonic() >= found.expires:
                del self._access_tokens[token]
                raise TokenError("the access token has expired")
            return found

    # ----------------------------------------------------------------- registrations

    def _purge(self):
        # Scanning every registration on every call made each call slower the more the emulator held (measured:
        # most of its time at 10,000); nothing can lapse before the earliest expiry, so scan only from then on.
        now = self._monotonic()
        if now < self._purge_due:
            return
        for key in [key for key, reg in self._registrations.items() if reg["_expires"] <= now]:
            del self._registrations[key]
        self._purge_due = min((reg["_expires"] for reg in self._registrations.values()), default=float("inf"))

    def upsert(self, phone_number, sip_uri, route_type, route_type_name, originating_prefix, terminating_prefix,
               auth_kind, client_id):
        """Add or replace the registration keyed by (phone_number, sip_uri); return its TTL in seconds."""
        with self._lock:
            self._purge()
            ttl = self.config.ttl
            key = (phone_number, sip_uri)
            previous = self._registrations.get(key)
            wall = self._wall()
            self._registrations[key] = {
                "phone_number": phone_number,
                "sip_uri": sip_uri,
                "route_type": route_type_name,
                "route_type_number": route_type,
                "mobile_originating_prefix": originating_prefix,
                "mobile_terminating_prefix": terminating_prefix,
                "auth_kind": auth_kind,
                "client_id": client_id,
                "created_at": previous["created_at"] if previous else _iso(wall),
                "upserted_at": _iso(wall),
                "expires_at": _iso(wall + ttl),
                "ttl": ttl,
                "upserts": previous["upserts"] + 1 if previous else 1,
                "_expires": self._monotonic() + ttl,
            }
            self._purge_due = min(self._purge_due, self._registrations[key]["_expires"])
            return ttl

    def delete(self, phone_number, sip_uri):
        """Remove the registration keyed by (phone_number, sip_uri); True if there was a live one."""
        with self._lock:
            self._purge()
            return self._registrations.pop((phone_number, sip_uri), None) is not None

    def registrations(self):
        """Live registrations, oldest key first, each with ``remaining_ttl`` in seconds."""
        with self._lock:
            self._purge()
            now = self._monotonic()
            result = []
            for key in sorted(self._registrations):
                reg = dict(self._registrations[key])
                reg["remaining_ttl"] = round(max(reg.pop("_expires") - now, 0.0), 3)
                result.append(reg)
            return result

    def registrations_summary(self):
        """What is held, without a list a million long: how many live registrations, the ``registrations_digest``
        of their keys, and ``by_upserts`` {number of upserts: how many registrations had that many}."""
        with self._lock:
            self._purge()
            keys = list(self._registrations)
            by_upserts = collections.Counter(reg["upserts"] for reg in self._registrations.values())
        return {"count": len(keys), "keys_sha256": registrations_digest(keys),
                "by_upserts": dict((str(upserts), count) for upserts, count in sorted(by_upserts.items()))}

    # ----------------------------------------------------------------- faults

    def set_faults(self, clear=False, unavailable=None, unavailable_for=None, latency_ms=None, token_unavailable=None,
                   token_ttl=None, ttl=None, revoke_tokens=False, reject=None, max_in_flight=None):
        """Apply faults (see the admin API); returns the faults now in force."""
        with self._lock:
            # Validate everything before changing anything, so a bad request changes nothing.
            if unavailable is not None:
                _count("unavailable", unavailable)
            if unavailable_for is not None:
                _positive_number("unavailable_for", unavailable_for, allow_zero=True)
            if latency_ms is not None:
                _positive_number("latency_ms", latency_ms, allow_zero=True)
            if token_unavailable is not None:
                _count("token_unavailable", token_unavailable)
            if max_in_flight is not None:
                _count("max_in_flight", max_in_flight)
            if token_ttl is not None:
                _positive_number("token_ttl", token_ttl)
            if ttl is not None:
                _positive_number("ttl", ttl)
            if reject is not None and (not isinstance(reject, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) and v for k, v in reject.items())):
                raise ValueError("reject maps phone numbers to the error_message to answer them with")
            if not isinstance(revoke_tokens, bool) or not isinstance(clear, bool):
                raise ValueError("revoke_tokens and clear must be true or false")

            if clear:
                self.faults = Faults()
            if unavailable is not None:
                self.faults.unavailable = unavailable
            if unavailable_for is not None:
                self.faults.unavailable_until = self._monotonic() + unavailable_for
            if latency_ms is not None:
                self.faults.latency_ms = latency_ms
            if token_unavailable is not None:
                self.faults.token_unavailable = token_unavailable
            if max_in_flight is not None:
                self.faults.max_in_flight = max_in_flight
            if reject is not None:
                self.faults.reject.update(reject)
            if token_ttl is not None or ttl is not None:
                self.set_config(ttl=ttl, token_ttl=token_ttl)
            revoked = self.revoke_access_tokens() if revoke_tokens else None
            result = self.faults_snapshot()
            if revoked is not None:
                result["revoked_tokens"] = revoked
            return result

    def faults_snapshot(self):
        """The faults in force now, with the outage window as seconds left."""
        with self._lock:
            return {
                "unavailable": self.faults.unavailable,
                "unavailable_for": round(max(self.faults.unavailable_until - self._monotonic(), 0.0), 3),
                "latency_ms": self.faults.latency_ms,
                "max_in_flight": self.faults.max_in_flight,
                "token_unavailable": self.faults.token_unavailable,
                "reject": dict(self.faults.reject),
                "token_ttl": self.config.token_ttl,
                "ttl": self.config.ttl,
            }

    def call_latency(self):
        """Seconds to delay each gRPC call."""
        with self._lock:
            return self.faults.latency_ms / 1000.0

    def take_unavailable(self):
        """A reason if this gRPC call must fail UNAVAILABLE (uses up one of ``unavailable``), else None."""
        with self._lock:
            if self._monotonic() < self.faults.unavailable_until:
                return "outage window"
            if self.faults.unavailable > 0:
                self.faults.unavailable -= 1
                return "injected fault"
            return None

    def rejection(self, phone_number):
        """The error_message an upsert of ``phone_number`` is refused with (a ``reject`` fault), or None."""
        with self._lock:
            return self.faults.reject.get(phone_number)

    def take_token_unavailable(self):
        """True if this token request must fail 503 (uses up one of ``token_unavailable``)."""
        with self._lock:
            if self.faults.token_unavailable > 0:
                self.faults.token_unavailable -= 1
                return True
            return False

    # ----------------------------------------------------------------- counters and logs

    def _reset_counters(self):
        self._in_flight = 0
        self._most_in_flight = 0
        self._calls = collections.deque(maxlen=CALL_LOG_SIZE)
        self._call_counts = {}
        self._token_counts = {}
        self._token_log = collections.deque(maxlen=CALL_LOG_SIZE)

    def call_arrived(self):
        """A gRPC call is being handled: counts towards the most calls in flight at once.

        False when the ``max_in_flight`` fault sheds it: it is not counted, and must be answered RESOURCE_EXHAUSTED.
        """
        with self._lock:
            if self.faults.max_in_flight and self._in_flight >= self.faults.max_in_flight:
                return False
            self._in_flight += 1
            self._most_in_flight = max(self._most_in_flight, self._in_flight)
            return True

    def call_answered(self):
        with self._lock:
            self._in_flight -= 1

    def record_call(self, method, outcome, authorization, phone_number=None, sip_uri=None, route_type=None,
                    grpc_status="OK", status_code=None, message=None, auth_kind=None, duration_ms=None):
        """Count a gRPC call and keep it in the recent-call log. Never given a token."""
        with self._lock:
            per_method = self._call_counts.setdefault(method, {})
            per_method[outcome] = per_method.get(outcome, 0) + 1
            self._calls.append({
                "time": _iso(self._wall()),
                "method": method,
                "outcome": outcome,
                "grpc_status": grpc_status,
                "status_code": status_code,
                "message": message,
                "phone_number": phone_number,
                "sip_uri": sip_uri,
                "route_type": route_type,
                "authorization": authorization,
                "auth_kind": auth_kind,
                "duration_ms": duration_ms,
            })

    def record_token_request(self, grant_type, outcome, client_id=None):
        """Count a request to the token endpoint. Never given a secret or token."""
        with self._lock:
            self._token_counts[outcome] = self._token_counts.get(outcome, 0) + 1
            self._token_log.append({"time": _iso(self._wall()), "grant_type": grant_type, "client_id": client_id,
                                    "outcome": outcome})

    def calls_snapshot(self, limit=None):
        """Counters and the most recent calls (newest last)."""
        with self._lock:
            calls = list(self._calls)
            tokens = list(self._token_log)
            if limit is not None:
                calls = calls[-limit:] if limit else []
                tokens = tokens[-limit:] if limit else []
            by_method = {}
            for method, outcomes in self._call_counts.items():
                by_method[method] = {"total": sum(outcomes.values()), "outcomes": dict(outcomes)}
            return {
                "total": sum(entry["total"] for entry in by_method.values()),
                "by_method": by_method,
                "token_requests": sum(self._token_counts.values()),
                "token_outcomes": dict(self._token_counts),
                "most_in_flight": self._most_in_flight,
                "recent": calls,
                "recent_token_requests": tokens,
            }

    # ----------------------------------------------------------------- reset

    def reset(self):
        """Clear registrations, counters, logs and faults; settings go back to their start values.

        Clients and issued tokens stay, so a test can reset between cases without logging in again.
        """
        with self._lock:
            self._registrations.clear()
            self.faults = Faults()
            self.config = self._initial_config.copy()
            self._reset_counters()
