# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs both servers in one process and publishes where they are in ``STATE_DIR/emulator.json``."""

import asyncio
import datetime
import json
import logging
import os
import signal
import threading

import grpc

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import wire

from .files import info_path, write_json_private
from .grpc_api import SipBreakoutServicer
from .http_api import REVOKE_PATH, TOKEN_PATH, HTTPSService, make_ssl_context
from .state import EmulatorState
from .tls import ensure_certificates

LOG = logging.getLogger(__name__)

HOST = "127.0.0.1"
# How many calls are handled at once: the bulk feature keeps dozens in flight, each possibly waiting out injected
# latency, and latency must not queue behind latency.
DEFAULT_WORKERS = 128


class Emulator(object):
    """The gRPC service, the token endpoint and the admin API, sharing one :class:`EmulatorState`."""

    def __init__(self, state_dir, config, clients=(), grpc_port=0, http_port=0, workers=DEFAULT_WORKERS):
        self.state_dir = os.path.abspath(state_dir)
        self.clients = list(clients)
        self.state = EmulatorState(config, self.clients)
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.workers = workers
        self.info = None
        self._grpc = None
        self._https = None
        self._stopping = threading.Event()

    def start(self):
        """Start both servers, then write ``emulator.json``; returns its content."""
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        tls_files = ensure_certificates(self.state_dir)
        key, chain = tls_files.read_server_pair()

        credentials = grpc.ssl_server_credentials([(key, chain)])
        self._grpc = _AioServer(self.state, self.workers, "%s:%d" % (HOST, self.grpc_port), credentials)
        self.grpc_port = self._grpc.start()

        try:
            self._https = HTTPSService(HOST, self.http_port, make_ssl_context(tls_files), self.state)
        except OSError:
            self._grpc.stop(None)
            raise
        self.http_port = self._https.port
        self._https.start()

        base = "https://%s:%d" % (HOST, self.http_port)
        self.info = {
            "pid": os.getpid(),
            "state_dir": self.state_dir,
            "grpc_endpoint": "%s:%d" % (HOST, self.grpc_port),
            "grpc_port": self.grpc_port,
            "http_port": self.http_port,
            "token_url": base + TOKEN_PATH,
            "revoke_url": base + REVOKE_PATH,
            "admin_url": base + "/admin",
            "ca_path": tls_files.ca_cert,
            "clients": [{"client_id": c.client_id, "client_secret": c.secret, "scopes": sorted(c.scopes)}
                        for c in self.clients],
            "config": self.state.config.as_dict(),
            "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json_private(info_path(self.state_dir), self.info)
        LOG.info("gRPC on %s, token endpoint %s, admin API %s, CA %s, %d client(s), sandbox %s, ttl %gs",
                 self.info["grpc_endpoint"], self.info["token_url"], self.info["admin_url"], tls_files.ca_cert,
                 len(self.clients), "on" if self.state.config.sandbox else "off", self.state.config.ttl)
        return self.info

    def request_stop(self, *_args):
        """Ask :meth:`serve_forever` to return (safe from a signal handler)."""
        self._stopping.set()

    def serve_forever(self, exit_with_parent=False):
        """Block until SIGTERM or SIGINT (or, if asked, until the parent process is gone), then stop."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        parent = os.getppid()
        try:
            while not self._stopping.wait(0.5):
                # A test run that is killed outright must not leave its emulator behind: orphans get a new parent.
                if exit_with_parent and os.getppid() != parent:
                    LOG.info("parent process %d is gone", parent)
                    break
        finally:
            self.stop()

    def stop(self, grace=1.0):
        """Stop both servers and remove ``emulator.json`` if it is still ours."""
        LOG.info("stopping")
        if self._https is not None:
            self._https.stop()
            self._https = None
        if self._grpc is not None:
            self._grpc.stop(grace)
            self._grpc = None
        path = info_path(self.state_dir)
        try:
            with open(path, encoding="utf-8") as handle:
                ours = json.load(handle).get("pid") == os.getpid()
        except (OSError, ValueError):
            ours = False
        if ours:
            os.unlink(path)


class _AioServer(object):
    """The gRPC service on ``grpc.aio``, in an event loop of its own thread."""

    def __init__(self, state, workers, address, credentials):
        self._state = state
        self._workers = workers
        self._address = address
        self._credentials = credentials
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-aio", daemon=True)
        self._server = None

    def start(self):
        """Listen and serve; returns the port."""
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)

    async def _start(self):
        servicer = SipBreakoutServicer(self._state, wire.messages(), wire.UPSERT_METHOD, wire.DELETE_METHOD,
                                       workers=self._workers)
        # maximum_concurrent_rpcs stays unset: calls beyond the workers wait instead of being refused.
        self._server = grpc.aio.server(handlers=[servicer.generic_handler()])
        port = self._server.add_secure_port(self._address, self._credentials)
        if not port:
            raise OSError("cannot listen for gRPC on %s" % self._address)
        await self._server.start()
        return port

    def stop(self, grace=None):
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(grace), self._loop).result((grace or 0) + 5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
