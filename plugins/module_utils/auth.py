# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OAuth 2.0 for the API, with requests-oauthlib: one small ``TokenSource`` per way of authenticating.

Every task of a play is a new process, so tokens obtained from the token endpoint are kept in a ``TokenCache``
file (0600, never the client secret) and reused until shortly before they expire.
"""

import contextlib
import functools
import hashlib
import importlib.util
import threading
import time
import types
from urllib.parse import quote_plus

from .errors import AuthError, ValidationError
from .retry import Backoff
from .statefile import StateFile, locked
from .trust import ca_bundle_path

# requests and requests-oauthlib are only looked for here and imported by _oauth() when a token is fetched: a run on
# a cached token (every re-run within the token's hour, most keepalive passes) saves about 0.15 s of imports.
_OAUTH_LIBRARIES = ("requests", "oauthlib", "requests_oauthlib")
_MISSING_OAUTH_LIBRARIES = [name for name in _OAUTH_LIBRARIES if importlib.util.find_spec(name) is None]
HAS_REQUESTS_OAUTHLIB = not _MISSING_OAUTH_LIBRARIES
REQUESTS_OAUTHLIB_IMPORT_ERROR = "no module named %s" % ", ".join(_MISSING_OAUTH_LIBRARIES) \
    if _MISSING_OAUTH_LIBRARIES else None

SCOPE = "call.routing:write"
ACCESS_TOKEN_PRINCIPAL = "access-token"
USER_PRINCIPAL_PREFIX = "user:"
DEFAULT_TOKEN_URL = "https://id.wgtwo.com/oauth2/token"
DEFAULT_TOKEN_CACHE = "~/.cache/wgtwo.sipbreakout/tokens.json"


class _TransientTokenError(Exception):
    """The token endpoint failed in a way worth retrying (5xx, connection error, timeout)."""


class TokenCache:
    """Access tokens (and rotated refresh tokens) shared by the processes of one user, keyed by a digest."""

    def __init__(self, path=DEFAULT_TOKEN_CACHE, clock=time.time):
        self._file = StateFile(path, "wgtwo.sipbreakout/token-cache", error=AuthError)
        self._clock = clock

    @property
    def path(self):
        return self._file.path

    def get(self, key):
        """The cached entry for ``key`` (``access_token``, ``expires_at``, maybe ``refresh_token``) or None."""
        return self._file.read().get(key)

    def put(self, key, entry):
        with self._file.update() as body:
            now = self._clock()
            # Drop long-dead access tokens so the file does not grow; keep any entry holding a refresh token.
            for stale in [k for k, v in body.items() if v.get("expires_at", 0) < now - 86400 and not v.get("refresh_token")]:
                del body[stale]
            body[key] = entry

    def forget_access_token(self, key, refused):
        with self._file.update() as body:
            entry = body.get(key)
            # Only the refused token: another process may already have stored a fresh one.
            if entry and entry.get("access_token") == refused:
                entry.pop("access_token", None)
                entry["expires_at"] = 0

    @contextlib.contextmanager
    def fetching(self, key, timeout):
        """Held while a token for ``key`` is requested, so that the processes sharing this cache (module runs, the
        keepalive) request one at a time: a rotating refresh token sent twice is refused the second time, and some
        servers then revoke the whole grant. Yields the entry as it is once the lock is held, which may hold the
        token another process just fetched."""
        with locked(self._file.path + ".fetch.lock", timeout, error=AuthError):
            yield self.get(key)


@functools.lru_cache(maxsize=None)
def _oauth():
    """The OAuth libraries, imported on the first token request of the process."""
    try:
        import requests
        from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
        from requests_oauthlib import OAuth2Session
    except ImportError as exc:
        raise AuthError("requests-oauthlib is needed for client_id/client_secret and refresh_token: %s" % exc)
    return types.SimpleNamespace(requests=requests, BackendApplicationClient=BackendApplicationClient,
                                 OAuth2Error=OAuth2Error, OAuth2Session=OAuth2Session)


def names_one_subscription(principal):
    """Whether registrations applied as ``principal`` all belong to the token's one subscription (user tokens)."""
    return principal == ACCESS_TOKEN_PRINCIPAL or principal.startswith(USER_PRINCIPAL_PREFIX)


def cache_key(*parts):
    """A digest naming an identity; secrets that go into it are stretched first so the key does not reveal them."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update((part or "").encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _stretch(secret, salt):
    return hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt.encode("utf-8"), 20000).hex()


class TokenSource:
    """What to send as ``authorization``. ``principal`` names the identity in the ledger (never a secret)."""

    kind = "none"
    principal = "anonymous"
    requires_phone_number = False
    # Requests to the token endpoint by this object that gave a token, and that failed (the keepalive's metrics).
    tokens_fetched = 0
    token_failures = 0

    def token(self, deadline):
        """The access token to send now, or None to send no ``authorization`` metadata."""
        raise NotImplementedError

    def invalidate(self, refused):
        """Forget the token ``refused`` (UNAUTHENTICATED); True if a fresh one can be obtained."""
        return False

    def describe(self):
        return "no credentials"


class NoAuth(TokenSource):
    """The public sandbox accepts calls without ``authorization``."""

    def token(self, deadline):
        return None


class StaticToken(TokenSource):
    """An access token obtained elsewhere, e.g. a user token from the authorization-code flow."""

    kind = "access_token"
    # An access token does not say whose it is, and each one lives an hour: every access token shares this one
    # principal (see ledger_path).
    principal = ACCESS_TOKEN_PRINCIPAL

    def __init__(self, access_token):
        self._access_token = access_token

    def token(self, deadline):
        return self._access_token

    def describe(self):
        return "the given access_token"


class _EndpointTokenSource(TokenSource):
    """Shared by the flows that talk to the token endpoint: caching, retries and error wording."""

    def __init__(self, client_id, client_secret, token_url=DEFAULT_TOKEN_URL, scope=SCOPE, ca_path=None,
                 cache=None, retries=5, backoff=None, clock=time.time, on_token=None):
        if not token_url.lower().startswith("https://"):
            raise ValidationError("token_url", "'%s' is not an https:// URL; tokens are only requested over TLS"
                                  % token_url)
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url
        self.scope = scope
        self._verify = ca_bundle_path(ca_path) or True
        self._cache = cache
        self._backoff = backoff or Backoff(retries)
        self._clock = clock
        self._on_token = on_token
        self._lock = threading.Lock()
        self._current = None
        self._key = None
        self._failure = None  # (AuthError, monotonic time until which it is repeated without a new request)

    def token(self, deadline):
        with self._lock:
            if self._current and self._usable(self._current):
                return self._current["access_token"]
            if self._failure and time.monotonic() < self._failure[1]:
                # The endpoint just failed after all its retries: for as long as that attempt was allowed to take,
                # the other items of a bulk run fail at once instead of each waiting out the same retries in turn.
                raise self._failure[0]
            cached = self._cache.get(self._key) if self._cache else None
            if cached and self._usable(cached):
                self._current = cached
            else:
                try:
                    self._current = self._fetch(deadline)
                except AuthError as exc:
                    self.token_failures += 1
                    self._failure = (exc, time.monotonic() + deadline.seconds)
                    raise
            if self._on_token:
                self._on_token(self._current["access_token"])
            return self._current["access_token"]

    def invalidate(self, refused):
        with self._lock:
            # Many calls in flight are refused the same token; only the first answer may drop it, or the later
            # ones would throw away the fresh token the first one caused.
            if self._current and self._current.get("access_token") == refused:
                # Keep the rest of the entry: without a cache, its refresh token is the only current one.
                self._current = dict((key, value) for key, value in self._current.items() if key != "access_token")
                if self._cache:
                    self._cache.forget_access_token(self._key, refused)
        return True

    def _usable(self, entry):
        # Stop using a token a little before it expires so it cannot lapse between check and call.
        expires_at = entry.get("expires_at") or 0
        lifetime = entry.get("expires_in") or 3600
        margin = min(60.0, lifetime / 10.0)
        return bool(entry.get("access_token")) and expires_at - margin > self._clock()

    def _fetch(self, deadline):
        if not self._cache:  # then the newest refresh token is the one this process holds
            return self._obtain(deadline, self._current)
        with self._cache.fetching(self._key, deadline.remaining()) as cached:
            if cached and self._usable(cached):  # fetched by another process while this one waited for the lock
                return cached
            return self._obtain(deadline, cached)

    def _obtain(self, deadline, cached):
        oauth = _oauth()
        attempt = 0
        while True:
            try:
                token = self._request(deadline, cached)
                break
            except _TransientTokenError as exc:
                attempt += 1
                if not self._backoff.wait(attempt, deadline):
                    raise AuthError("the token endpoint %s did not give a token after %d attempt(s): %s"
                                    % (self.token_url, attempt, exc))
            except oauth.OAuth2Error as exc:
                raise AuthError("the token endpoint %s refused %s: %s%s (HTTP %s)" % (
                    self.token_url, self.describe(), exc.error,
                    ": %s" % exc.description if exc.description else "", exc.status_code))
        expires_in = float(token.get("expires_in") or 3600)
        entry = {"access_token": token["access_token"], "expires_in": expires_in,
                 "expires_at": self._clock() + expires_in}
        # A server may answer a refresh without a new refresh token (RFC 6749 section 6); the one just used then
        # stays the one to use, and must not be dropped from the cache.
        refresh_token = token.get("refresh_token") or (cached or {}).get("refresh_token")
        if refresh_token:
            entry["refresh_token"] = refresh_token
        scopes = token.get("scope")
        if scopes is not None and SCOPE not in (scopes if isinstance(scopes, list) else str(scopes).split()):
            raise AuthError("the token endpoint %s granted %s scope(s) %r but not '%s', which the API needs; "
                            "ask the operator to grant it to client '%s'"
                            % (self.token_url, self.describe(), scopes, SCOPE, self.client_id))
        if self._cache:
            # Written before the token is used: a rotated refresh token must never exist only in memory.
            self._cache.put(self._key, entry)
        self.tokens_fetched += 1
        return entry

    def _request(self, deadline, cached):
        raise NotImplementedError

    def _auth(self):
        # RFC 6749 2.3.1: id and secret are form-encoded before HTTP basic auth; requests would send them raw,
        # which breaks secrets holding '+', '%' or ':'.
        return _oauth().requests.auth.HTTPBasicAuth(quote_plus(self.client_id, safe=""), quote_plus(self._client_secret, safe=""))

    def _check_response(self, response):
        """Compliance hook: turn 5xx and unreadable answers into errors before oauthlib parses them."""
        if response.status_code >= 500:
            raise _TransientTokenError("HTTP %d" % response.status_code)
        if response.status_code >= 400:
            try:
                response.json()
            except ValueError:
                raise AuthError("the token endpoint %s answered HTTP %d with no OAuth error: is token_url right?"
                                % (self.token_url, response.status_code))
        return response

    def _send(self, call, deadline):
        exceptions = _oauth().requests.exceptions
        try:
            return call(timeout=max(0.5, deadline.remaining()))
        except (exceptions.ConnectionError, exceptions.Timeout) as exc:
            raise _TransientTokenError("%s: %s" % (type(exc).__name__, exc))


class ClientCredentials(_EndpointTokenSource):
    """Client-credentials grant: id and secret as HTTP basic auth; the token names the product, not a number."""

    kind = "client_credentials"
    requires_phone_number = True

    def __init__(self, client_id, client_secret, **kwargs):
        super().__init__(client_id, client_secret, **kwargs)
        self.principal = "client:%s" % client_id
        self._key = cache_key("client_credentials", self.token_url, client_id, self.scope,
                              _stretch(client_secret, self.token_url + client_id))

    def describe(self):
        return "client '%s'" % self.client_id

    def _request(self, deadline, cached):
        oauth = _oauth()
        session = oauth.OAuth2Session(client=oauth.BackendApplicationClient(client_id=self.client_id,
                                                                            scope=[self.scope]))
        session.register_compliance_hook("access_token_response", self._check_response)
        return self._send(lambda timeout: session.fetch_token(
            self.token_url, auth=self._auth(), timeout=timeout, verify=self._verify, include_client_id=False),
            deadline)


class RefreshToken(_EndpointTokenSource):
    """A refresh token (authorization-code flow with ``offline_access``) traded for access tokens.

    The operator rotates refresh tokens: each answer may carry a new one, and the old one stops working. The
    newest is kept in the cache under a key derived from the refresh token the user configured.
    """

    kind = "refresh_token"

    def __init__(self, refresh_token, client_id, client_secret, **kwargs):
        super().__init__(client_id, client_secret, **kwargs)
        self._refresh_token = refresh_token
        stretched = _stretch(refresh_token, client_id)
        self._key = cache_key("refresh_token", self.token_url, client_id, stretched)
        # The subscription the configured refresh token was granted for, named by a digest of it that stays the
        # same while the operator rotates the token: two subscribers' registrations on one ledger never mix.
        self.principal = "%s%s:%s" % (USER_PRINCIPAL_PREFIX, client_id, stretched[:12])

    def describe(self):
        return "the refresh_token of client '%s'" % self.client_id

    @property
    def current_refresh_token(self):
        cached = self._cache.get(self._key) if self._cache else None
        return (cached or {}).get("refresh_token") or self._refresh_token

    def _request(self, deadline, cached):
        refresh_token = (cached or {}).get("refresh_token") or self._refresh_token
        session = _oauth().OAuth2Session(client_id=self.client_id, scope=[self.scope])
        session.register_compliance_hook("refresh_token_response", self._check_response)
        return self._send(lambda timeout: session.refresh_token(
            self.token_url, refresh_token=refresh_token, auth=self._auth(), timeout=timeout, verify=self._verify),
            deadline)


def select_token_source(client_id=None, client_secret=None, access_token=None, refresh_token=None,
                        token_url=DEFAULT_TOKEN_URL, ca_path=None, token_cache_path=DEFAULT_TOKEN_CACHE,
                        retries=5, on_token=None, need_libraries=True, token_cache=None):
    """Pick the flow from what is configured; contradictory settings are refused, never guessed at.

    ``need_libraries=False`` (check mode, which requests no token) accepts a flow whose libraries are missing.
    ``token_cache``, if given, is the cache to use instead of the file at ``token_cache_path`` (the shared
    ledger's)."""
    if bool(client_id) != bool(client_secret):
        missing = "client_secret" if client_id else "client_id"
        raise ValidationError(missing, "client_id and client_secret go together; %s is not set (option or "
                                       "WGTWO_%s)" % (missing, missing.upper()))
    if access_token and refresh_token:
        raise ValidationError("access_token", "give either access_token or refresh_token, not both")
    if refresh_token and not client_id:
        raise ValidationError("refresh_token", "needs client_id and client_secret to be traded for access tokens")
    if access_token:
        if client_id:
            raise ValidationError("access_token", "give either access_token or client_id/client_secret, not both")
        return StaticToken(access_token)
    if not client_id:
        return NoAuth()
    if need_libraries and not HAS_REQUESTS_OAUTHLIB:
        raise AuthError("requests-oauthlib is needed for client_id/client_secret and refresh_token")
    cache = token_cache if token_cache is not None else TokenCache(token_cache_path) if token_cache_path else None
    kwargs = dict(token_url=token_url or DEFAULT_TOKEN_URL, ca_path=ca_path, cache=cache, retries=retries,
                  on_token=on_token)
    if refresh_token:
        return RefreshToken(refresh_token, client_id, client_secret, **kwargs)
    return ClientCredentials(client_id, client_secret, **kwargs)
