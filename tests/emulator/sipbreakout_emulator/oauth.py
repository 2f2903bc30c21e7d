# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OAuth 2.0 token endpoint (RFC 6749 section 3.2) and revocation endpoint (RFC 7009), as plain functions.

Each function takes the request's method, headers and body and returns ``(status, headers, payload)``; the HTTPS
server only moves bytes. Nothing here logs a secret or a token: log lines name the client id and the outcome.
"""

import base64
import binascii
import logging
from urllib.parse import parse_qsl, unquote_plus

from .state import OAuthError, parse_scopes

LOG = logging.getLogger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="sipbreakout-emulator"'}


def _error_response(exc):
    headers = dict(_NO_STORE)
    if exc.status == 401:
        # RFC 6749 section 5.2: a 401 for invalid_client carries the authentication scheme to use.
        headers.update(_CHALLENGE)
    return exc.status, headers, {"error": exc.error, "error_description": exc.description}


def _parse_form(headers, body):
    content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type != FORM_TYPE:
        raise OAuthError("invalid_request", "the request body must be %s" % FORM_TYPE)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the request body is not UTF-8") from None
    form = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        if name in form:
            # RFC 6749 section 3.2: request parameters MUST NOT be included more than once.
            raise OAuthError("invalid_request", "parameter '%s' is repeated" % name)
        form[name] = value
    return form


def _client_credentials(headers, form):
    """(client_id, secret) from HTTP Basic or from the form, or (None, None) when the client sent neither."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _sep, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "client authentication must use HTTP Basic", 401)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "the Basic credentials are not valid base64 of 'id:secret'", 401) from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "the Basic credentials are not 'id:secret'", 401)
        # RFC 6749 section 2.3.1: id and secret are form-encoded before they are put in the Basic header.
        client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        if "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method, not Basic and form fields")
        if form.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id in the form differs from the Basic credentials")
        return client_id, secret
    if "client_id" in form or "client_secret" in form:
        return form.get("client_id"), form.get("client_secret")
    return None, None


def _authenticate(state, client_id, secret):
    if client_id is None:
        raise OAuthError("invalid_client", "client authentication is required", 401)
    client = state.authenticate_client(client_id, secret)
    if client is None:
        raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
    return client


def _requested_scopes(form):
    try:
        return parse_scopes(form.get("scope"))
    except ValueError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None


def token_endpoint(state, method, headers, body):
    """Handle a request to ``/oauth2/token``."""
    if method != "POST":
        return 405, {"Allow": "POST"}, {"error": "invalid_request", "error_description": "the token endpoint takes POST"}
    grant_type = None
    client_id = None
    try:
        if state.take_token_unavailable():
            state.record_token_request(None, "unavailable")
            LOG.info("token request -> 503 (injected fault)")
            headers_out = dict(_NO_STORE)
            headers_out["Retry-After"] = "1"
            return 503, headers_out, {"error": "temporarily_unavailable",
                                      "error_description": "the authorization server is unavailable (emulator fault)"}
        form = _parse_form(headers, body)
        grant_type = form.get("grant_type")
        client_id, secret = _client_credentials(headers, form)
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type == "client_credentials":
            client = _authenticate(state, client_id, secret)
            payload = state.issue_client_token(client, _requested_scopes(form))
        elif grant_type == "refresh_token":
            refresh_token = form.get("refresh_token")
            if not refresh_token:
                raise OAuthError("invalid_request", "refresh_token is required")
            # A client that sends a secret must get it right; one that sends none (or only its id) is treated as
            # public, and a refresh token bound to a client then fails as invalid_grant.
            client = _authenticate(state, client_id, secret) if secret is not None else None
            payload = state.refresh(refresh_token, client, _requested_scopes(form))
        else:
            raise OAuthError("unsupported_grant_type",
                             "grant_type '%s' is not supported here: use client_credentials or refresh_token "
                             "(user tokens come from the admin API)" % grant_type)
    except OAuthError as exc:
        state.record_token_request(grant_type, exc.error, client_id)
        LOG.info("token request grant_type=%s client=%s -> %d %s", grant_type, client_id, exc.status, exc.error)
        return _error_response(exc)
    state.record_token_request(grant_type, "issued", client_id)
    LOG.info("token request grant_type=%s client=%s -> issued, scope '%s', expires_in %s", grant_type, client_id,
             payload["scope"], payload["expires_in"])
    return 200, dict(_NO_STORE), payload


def revocation_endpoint(state, method, headers, body):
    """Handle a request to ``/oauth2/revoke`` (RFC 7009): 200 whether or not the token was known."""
    if method != "POST":
        return 405, {"Allow": "POST"}, {"error": "invalid_request", "error_description": "the endpoint takes POST"}
    try:
        form = _parse_form(headers, body)
        client_id, secret = _client_credentials(headers, form)
        if client_id is not None:
            _authenticate(state, client_id, secret)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
    except OAuthError as exc:
        return _error_response(exc)
    state.revoke(token)
    LOG.info("token revoked by client=%s", client_id)
    return 200, dict(_NO_STORE), None
