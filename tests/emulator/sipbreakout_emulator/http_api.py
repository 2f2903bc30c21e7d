# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTPS server: OAuth endpoints under ``/oauth2/`` and the admin API under ``/admin/``."""

import ipaddress
import json
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .admin import admin_request
from .oauth import revocation_endpoint, token_endpoint

LOG = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"
MAX_BODY = 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0


def _is_loopback(address):
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a requests.Session reuses its TLS connection
    server_version = "sipbreakout-emulator"
    sys_version = ""

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        # Request lines hold no secrets (tokens travel in bodies and headers), but keep them at debug level.
        LOG.debug("%s %s", self.client_address[0], format % args)

    def _send(self, status, headers, payload):
        body = b"" if payload is None else json.dumps(payload, indent=None, sort_keys=True).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        if self.headers.get("Transfer-Encoding"):
            # Only Content-Length framing is supported; saying so beats misreading the stream.
            self.close_connection = True
            raise _HTTPError(411, "send the body with Content-Length")
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            self.close_connection = True
            raise _HTTPError(400, "bad Content-Length") from None
        if size < 0 or size > MAX_BODY:
            self.close_connection = True
            raise _HTTPError(413, "the body is too large")
        return self.rfile.read(size)

    def _dispatch(self):
        state = self.server.state
        url = urlsplit(self.path)
        try:
            body = self._body()
            if url.path == TOKEN_PATH:
                self._send(*token_endpoint(state, self.command, self.headers, body))
            elif url.path == REVOKE_PATH:
                self._send(*revocation_endpoint(state, self.command, self.headers, body))
            elif url.path == "/admin" or url.path.startswith("/admin/"):
                if not _is_loopback(self.client_address[0]):
                    raise _HTTPError(403, "the admin API is only served to loopback clients")
                payload = None
                if body.strip():
                    try:
                        payload = json.loads(body.decode("utf-8"))
                    except ValueError:
                        raise _HTTPError(400, "the request body is not valid JSON") from None
                status, result = admin_request(state, self.command, url.path, parse_qs(url.query), payload)
                self._send(status, None, result)
            else:
                raise _HTTPError(404, "not found: %s" % url.path)
        except _HTTPError as exc:
            self._send(exc.status, None, {"error": exc.message})
        except Exception:  # pylint: disable=broad-except
            # A bug in the emulator must show up as a 500 the test can see, not as a hung connection.
            LOG.exception("internal error serving %s %s", self.command, url.path)
            self.close_connection = True
            self._send(500, None, {"error": "internal emulator error, see its log"})

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch
    do_PATCH = _dispatch
    do_HEAD = _dispatch


class _HTTPError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class TLSHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that does the TLS handshake in the request's own thread.

    Wrapping the listening socket would run every handshake in the accept loop, where one stalled client blocks
    all others.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, ssl_context, state):
        self.ssl_context = ssl_context
        self.state = state
        super().__init__(address, _Handler)

    def finish_request(self, request, client_address):
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            LOG.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            tls.settimeout(IDLE_TIMEOUT)
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            tls.close()


def make_ssl_context(tls_files):
    """A server-side SSLContext for the emulator's certificate, TLS 1.2 or newer."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    return context


class HTTPSService(object):
    """The HTTPS server running in a background thread."""

    def __init__(self, host, port, ssl_context, state):
        self.server = TLSHTTPServer((host, port), ssl_context, state)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="https", daemon=True)

    def start(self):
        """Serve in the background."""
        self._thread.start()

    def stop(self):
        """Stop accepting, close the socket and wait for the loop to end."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
