# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The admin API under ``/admin/``: plain JSON in and out, for tests and people, never for the collection.

It has no authentication of its own: the HTTPS server listens on 127.0.0.1 only and refuses ``/admin/`` to any
peer that is not a loopback address, so only processes on this machine reach it.

======  ============================  ==========================================================================
method  path                          what
======  ============================  ==========================================================================
GET     /admin/health                 ``{"ok": true, "pid": ...}``
GET     /admin/registrations          live registrations (lapsed ones are gone)
GET     /admin/registrations/summary  ``count``, ``keys_sha256`` (state.registrations_digest of their keys) and
                                      ``by_upserts`` {upserts: registrations}: a million checked without the list
GET     /admin/calls[?limit=N]        counters per method and outcome, token request counts, recent calls, and the
                                      most gRPC calls in flight at once since the last reset
GET     /admin/faults                 faults in force
POST    /admin/faults                 ``unavailable`` N, ``unavailable_for`` S, ``latency_ms`` M,
                                      ``token_unavailable`` N, ``reject`` {NUMBER: ERROR_MESSAGE} (upserts of
                                      NUMBER answer NOT_ACCEPTABLE), ``token_ttl`` S, ``ttl`` S,
                                      ``revoke_tokens`` true, ``clear`` true, ``max_in_flight`` N (calls beyond
                                      N at once answer RESOURCE_EXHAUSTED; 0: off)
GET     /admin/config                 ``ttl``, ``token_ttl``, ``sandbox``
POST    /admin/config                 change any of them
GET     /admin/clients                client ids and allowed scopes (no secrets)
POST    /admin/clients                ``{"client_id", "client_secret", "scopes": [...]}`` adds or replaces a client
POST    /admin/user-token             ``{"phone_number", "scope", "client_id"?}`` -> access and refresh token
POST    /admin/reset                  clear registrations, counters and faults; settings back to their start values
======  ============================  ==========================================================================
"""

import logging
import os

from .state import PHONE_NUMBER, ROUTING_SCOPE, Client, parse_scopes

LOG = logging.getLogger(__name__)


class AdminError(Exception):
    """A request the admin API refuses, with its HTTP status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _only(body, allowed):
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        # Refusing unknown keys turns a typo in a test into a failure instead of a fault that never happens.
        raise AdminError(400, "unknown field(s) %s; expected some of %s" % (", ".join(unknown), ", ".join(sorted(allowed))))


def _limit(query):
    values = query.get("limit")
    if not values:
        return None
    try:
        limit = int(values[-1])
    except ValueError:
        raise AdminError(400, "limit must be a whole number") from None
    if limit < 0:
        raise AdminError(400, "limit must be zero or more")
    return limit


def _post_faults(state, body):
    fields = ("clear", "unavailable", "unavailable_for", "latency_ms", "token_unavailable", "token_ttl", "ttl",
              "revoke_tokens", "reject", "max_in_flight")
    _only(body, fields)
    result = state.set_faults(**body)
    LOG.info("faults set: %s", ", ".join("%s=%s" % (key, body[key]) for key in sorted(body)) or "nothing")
    return result


def _post_config(state, body):
    _only(body, ("ttl", "token_ttl", "sandbox"))
    result = state.set_config(**body)
    LOG.info("config set: %s", ", ".join("%s=%s" % (key, body[key]) for key in sorted(body)) or "nothing")
    return result


def _post_client(state, body):
    _only(body, ("client_id", "client_secret", "scopes"))
    client = Client(body.get("client_id"), body.get("client_secret"), body.get("scopes", [ROUTING_SCOPE]))
    state.add_client(client)
    LOG.info("client %s added with scopes '%s'", client.client_id, " ".join(sorted(client.scopes)))
    return client.public()


def _post_user_token(state, body):
    _only(body, ("phone_number", "scope", "client_id"))
    phone_number = body.get("phone_number")
    if not isinstance(phone_number, str) or not PHONE_NUMBER.match(phone_number):
        raise AdminError(400, "phone_number must be '+' followed by digits, for example '+4799990000'")
    scopes = parse_scopes(body.get("scope", ROUTING_SCOPE))
    result = state.issue_user_token(phone_number, scopes, client_id=body.get("client_id"))
    LOG.info("user token issued for %s, scope '%s'", phone_number, result["scope"])
    return result


_GET = {
    "/admin/health": lambda state, query: {"ok": True, "pid": os.getpid()},
    "/admin/registrations": lambda state, query: state.registrations(),
    "/admin/registrations/summary": lambda state, query: state.registrations_summary(),
    "/admin/calls": lambda state, query: state.calls_snapshot(_limit(query)),
    "/admin/faults": lambda state, query: state.faults_snapshot(),
    "/admin/config": lambda state, query: state.config.as_dict(),
    "/admin/clients": lambda state, query: state.clients(),
}

_POST = {
    "/admin/faults": _post_faults,
    "/admin/config": _post_config,
    "/admin/clients": _post_client,
    "/admin/user-token": _post_user_token,
}


def admin_request(state, method, path, query, body):
    """Handle an admin request; ``body`` is the decoded JSON (None when empty). Returns ``(status, payload)``."""
    path = path.rstrip("/") or path
    try:
        if method == "GET" and path in _GET:
            return 200, _GET[path](state, query)
        if method == "POST" and path == "/admin/reset":
            state.reset()
            LOG.info("reset: registrations, counters and faults cleared")
            return 200, {"reset": True}
        if method == "POST" and path in _POST:
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise AdminError(400, "the request body must be a JSON object")
            return 200, _POST[path](state, body)
        if path in _GET or path in _POST or path == "/admin/reset":
            raise AdminError(405, "%s is not allowed on %s" % (method, path))
        raise AdminError(404, "no such admin resource: %s" % path)
    except AdminError as exc:
        return exc.status, {"error": exc.message}
    except ValueError as exc:
        return 400, {"error": str(exc)}
