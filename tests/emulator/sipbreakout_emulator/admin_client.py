# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small HTTPS client for the admin API and the token endpoint (stdlib only), verifying the emulator's CA."""

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request


class AdminClientError(Exception):
    """The emulator answered with an error status; ``payload`` is its decoded JSON (or None)."""

    def __init__(self, status, payload, url):
        message = payload.get("error") if isinstance(payload, dict) else payload
        super().__init__("%s answered %s: %s" % (url, status, message))
        self.status = status
        self.payload = payload


def _decode(raw):
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return raw.decode("utf-8", "replace")


class AdminClient(object):
    """Talks to one running emulator described by its ``emulator.json`` content."""

    def __init__(self, info, timeout=10.0):
        self.admin_url = info["admin_url"]
        self.token_url = info["token_url"]
        self.timeout = timeout
        self._context = ssl.create_default_context(cafile=info["ca_path"])

    def _open(self, request):
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:
                return response.status, dict(response.headers), _decode(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), _decode(exc.read())

    def request(self, method, path, payload=None):
        """Send ``payload`` as JSON to ``/admin/<path>``; return the decoded answer or raise AdminClientError."""
        url = "%s/%s" % (self.admin_url, path.lstrip("/"))
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        status, _headers, body = self._open(request)
        if status >= 400:
            raise AdminClientError(status, body, url)
        return body

    def get(self, path):
        """GET an admin resource."""
        return self.request("GET", path)

    def post(self, path, payload=None):
        """POST to an admin resource."""
        return self.request("POST", path, payload if payload is not None else {})

    def token_request(self, form, basic=None):
        """POST ``form`` to the token endpoint, with ``basic=(id, secret)`` as HTTP Basic if given.

        Returns ``(status, headers, payload)`` without raising, so tests can look at error responses.
        """
        request = urllib.request.Request(self.token_url, data=urllib.parse.urlencode(form).encode("ascii"),
                                         method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        if basic is not None:
            # RFC 6749 section 2.3.1: form-encode id and secret before base64.
            pair = "%s:%s" % (urllib.parse.quote_plus(basic[0]), urllib.parse.quote_plus(basic[1]))
            request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii"))
        return self._open(request)
