# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endpoint and credentials, as the shared options (or the keepalive's config file) give them."""

from .auth import DEFAULT_TOKEN_CACHE, DEFAULT_TOKEN_URL, select_token_source
from .client import DEFAULT_ENDPOINT, SipBreakoutClient, normalize_endpoint
from .errors import ValidationError
from .options import CONNECTION, names_in
from .trust import ca_bundle_path

# The shared connection options (options.SHARED_OPTIONS), the keyword arguments of Connection.
OPTIONS = names_in(CONNECTION)


class Connection:
    """Validates everything up front; the channel and tokens are made only when a call is needed.

    ``offline`` (check mode) makes no call at all, so it needs neither the CA file nor the OAuth libraries: a CA
    file that does not exist yet (a play about to install it) is a warning in ``warnings`` instead of an error,
    and ``client`` refuses to open a channel.
    """

    def __init__(self, api_endpoint=DEFAULT_ENDPOINT, client_id=None, client_secret=None, access_token=None,
                 refresh_token=None, token_url=DEFAULT_TOKEN_URL, ca_path=None, token_cache_path=DEFAULT_TOKEN_CACHE,
                 timeout=10.0, retries=5, on_token=None, offline=False, token_cache=None):
        self.endpoint = normalize_endpoint(api_endpoint or DEFAULT_ENDPOINT)
        self.offline = offline
        self.warnings = []
        try:
            ca_bundle_path(ca_path)  # a missing CA file is bad input: say so before anything happens
        except ValidationError as exc:
            if not offline:
                raise
            self.warnings.append("check mode: %s; check mode needs no CA file, but a real run fails unless it "
                                 "exists by then" % exc)
            ca_path = None
        self.ca_path = ca_path
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.token_source = select_token_source(
            client_id=client_id, client_secret=client_secret, access_token=access_token, refresh_token=refresh_token,
            token_url=token_url, ca_path=ca_path, token_cache_path=token_cache_path, retries=retries,
            on_token=on_token, need_libraries=not offline, token_cache=token_cache)
        self._client = None

    @classmethod
    def from_options(cls, options, on_token=None, offline=False, token_cache=None):
        """Build from a dict holding (at least) the keys of OPTIONS; None means 'use the default'. ``token_cache``:
        the ledger store's shared one (``LedgerStore.token_cache()``) instead of ``token_cache_path``."""
        given = dict((name, options.get(name)) for name in OPTIONS if options.get(name) is not None)
        return cls(on_token=on_token, offline=offline, token_cache=token_cache, **given)

    def check_registration(self, registration):
        """What the chosen credentials demand of a registration, checked before any call."""
        if self.token_source.requires_phone_number and not registration.phone_number:
            raise ValidationError("phone_number", "is required with client_id/client_secret: a client-credentials "
                                                  "token names the product, not a subscription")

    @property
    def principal(self):
        return self.token_source.principal

    @property
    def client(self):
        if self.offline:
            # Check mode promises that nothing is sent; a code path that gets here would break that promise.
            raise RuntimeError("an offline (check mode) connection makes no calls")
        if self._client is None:
            self._client = SipBreakoutClient(self.endpoint, self.token_source, ca_path=self.ca_path,
                                             timeout=self.timeout, retries=self.retries)
        return self._client

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
