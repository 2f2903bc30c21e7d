# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline emulator of the operator's SIP breakout API, for tests and demos.

One process serves, on 127.0.0.1 only and always over TLS with a CA it makes in the state directory:

* gRPC ``wgtwo.sipbreakout.v1.SipBreakoutService`` (``UpsertRegistration``, ``DeleteRegistration``), with the
  message classes of the collection's own ``wire`` module (``grpc_api``);
* an OAuth 2.0 token endpoint ``/oauth2/token`` (client credentials, refresh tokens) and ``/oauth2/revoke``
  (``oauth``);
* an admin API ``/admin/...`` that shows what the emulator holds and injects faults (``admin``).

Run it with ``python -m sipbreakout_emulator start|serve|stop|show --state-dir DIR`` (``cli``) or, in tests,
``sipbreakout_emulator.testing.running_emulator``. It is faithful to the published facts (see
``sipbreakout-api.md``), not to what would be convenient for the collection.

Assumptions (where the published facts are silent)
--------------------------------------------------
1. Check order on every call: load shedding (the ``max_in_flight`` fault answers RESOURCE_EXHAUSTED, as a
   rate-limiting front end would), injected latency, injected UNAVAILABLE, then authorization, then whose
   subscription it is, then the registration's content. So a bad token is reported before a bad request.
2. A missing or malformed ``authorization`` metadata, a token that was never issued, was revoked or has
   expired: UNAUTHENTICATED. A real token without ``call.routing:write``: PERMISSION_DENIED. More than one
   ``authorization`` entry: UNAUTHENTICATED. The ``Bearer`` scheme is matched case-insensitively.
3. Sandbox: a call without ``authorization`` is accepted and treated like a client-credentials call (it names
   no subscription, so ``phone_number`` is required). A token that is sent is checked in full, scope included.
4. A missing ``registration`` field, or no ``phone_number`` with a client-credentials token (or none in
   sandbox): INVALID_ARGUMENT. With a user token, a ``phone_number`` different from the token's:
   PERMISSION_DENIED. An ``E164`` message with an empty ``e164`` string counts as no number (proto3 cannot tell
   them apart reliably).
5. Content errors are answered in the response, gRPC status OK, ``status_code: STATUS_CODE_NOT_ACCEPTABLE``:
   a URI whose scheme is not ``sips`` gets exactly ``"Secure SIP domain name required"`` (scheme compared
   case-insensitively, RFC 3261); a ``sips:`` URI that is not ``sips:HOST`` or ``sips:HOST:PORT`` (with a valid
   host name, IPv4 or bracketed IPv6 and a port 1-65535), a phone number that is not ``+`` and 2-20 digits
   (strict E.164 is not required: the operator warns stored numbers may not conform), ``ROUTE_TYPE_UNSPECIFIED``
   or an unknown route type number, or a prefix that is not digits only each get their own message. Checks run
   in that order: sip_uri, phone number, route type, prefixes.
6. Delete checks sip_uri and phone number like Upsert but ignores route type and prefixes; it removes the
   registration keyed by (subscriber number, sip_uri). Deleting one that does not exist (never made, already
   deleted, or lapsed) answers ``STATUS_CODE_OK``: the end state the caller asked for holds.
7. A registration is keyed by (subscriber number, sip_uri), the sip_uri compared exactly as sent. One number may
   hold several registrations with different URIs. Keys are not scoped per OAuth client or per token kind.
8. Upsert replaces route type and prefixes of an existing key and restarts its TTL. The TTL (default 3600 s)
   in force at the Upsert applies; changing it later does not touch existing registrations. ``time_to_live`` in
   the response is that TTL. Registrations lapse silently on the monotonic clock; lapsed ones are gone from the
   admin view and from Delete.
9. OAuth: client credentials as HTTP Basic (id and secret form-decoded, RFC 6749 2.3.1, so a raw ``+`` reads as
   a space) or as form fields, not both. Granted scopes are the requested ones the client is allowed; all it is
   allowed when none is requested; ``invalid_scope`` when none is left. The response always carries ``scope``.
   Client-credentials responses carry no refresh token. ``expires_in`` is the lifetime rounded down to whole
   seconds.
10. User tokens (the authorization-code flow is not emulated) come from ``POST /admin/user-token``, always with
    a refresh token. Refresh tokens rotate: each use returns a new one and the used one is invalid at once
    (``invalid_grant``). The access token issued before stays valid until it expires. A refresh token bound to
    a client needs that client's credentials; an unbound one needs none, but credentials that are sent must be
    right. A refresh may narrow scopes, never widen them.
11. Revoking all access tokens (a fault) keeps refresh tokens, so a client with a refresh token recovers.
12. Reset clears registrations, counters, call logs and faults and restores ttl, token_ttl and sandbox to the
    values the emulator started with; clients and issued tokens stay.
13. The admin API has no authentication: it listens on 127.0.0.1 only and refuses ``/admin/`` to peers that are
    not loopback addresses. ``emulator.json`` holds client secrets and is written 0600; logs never hold secrets
    or tokens (client ids, numbers and URIs are logged).
"""

__version__ = "0.1.0"
