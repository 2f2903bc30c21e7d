# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for tests: run the emulator as a subprocess and drive its admin API.

    from sipbreakout_emulator.testing import running_emulator

    with running_emulator(tmp_path, clients=[("ci", "s3cret")], ttl=2) as emu:
        token = emu.client_token("ci", "s3cret")["access_token"]
        ...  # call emu.grpc_endpoint, trusting emu.ca_path
        assert emu.registrations()[0]["route_type"] == "ROUTE_TYPE_LOOP"
        assert emu.calls()["total"] == 1

Only the standard library is used here, so a test that never touches gRPC itself need not import grpc.
"""

import contextlib
import os
import subprocess

from .admin_client import AdminClient, AdminClientError
from .files import LOG_FILE
from .process import spawn, wait_ready
from .state import ROUTING_SCOPE, registrations_digest

__all__ = ["AdminClientError", "EmulatorHandle", "registrations_digest", "running_emulator"]


def _client_dict(client):
    if isinstance(client, dict):
        return {"client_id": client["client_id"], "client_secret": client["client_secret"],
                "scopes": list(client.get("scopes", [ROUTING_SCOPE]))}
    if len(client) == 2:
        return {"client_id": client[0], "client_secret": client[1], "scopes": [ROUTING_SCOPE]}
    client_id, secret, scopes = client
    return {"client_id": client_id, "client_secret": secret,
            "scopes": scopes.split() if isinstance(scopes, str) else list(scopes)}


class EmulatorHandle(object):
    """A running emulator subprocess: where it is and what it holds."""

    def __init__(self, state_dir, process, info):
        self.state_dir = os.path.abspath(str(state_dir))
        self.process = process
        self.info = info
        self.pid = info["pid"]
        self.grpc_endpoint = info["grpc_endpoint"]
        self.token_url = info["token_url"]
        self.revoke_url = info["revoke_url"]
        self.admin_url = info["admin_url"]
        self.ca_path = info["ca_path"]
        self.clients = info["clients"]
        self.log_path = os.path.join(self.state_dir, LOG_FILE)
        self.admin = AdminClient(info)

    # ----------------------------------------------------------------- admin API

    def registrations(self):
        """Live registrations (list of dicts)."""
        return self.admin.get("registrations")

    def registrations_summary(self):
        """``{"count", "keys_sha256", "by_upserts"}`` of the live registrations (see ``registrations_digest``)."""
        return self.admin.get("registrations/summary")

    def calls(self, limit=None):
        """Call counters and the recent-call log."""
        return self.admin.get("calls" if limit is None else "calls?limit=%d" % limit)

    def reset(self):
        """Clear registrations, counters and faults; settings back to their start values."""
        return self.admin.post("reset")

    def faults(self, **faults):
        """Set faults (``unavailable``, ``unavailable_for``, ``latency_ms``, ``max_in_flight``, ``token_unavailable``,
        ``token_ttl``, ``ttl``, ``revoke_tokens``, ``clear``); with no arguments, return the faults in force."""
        return self.admin.post("faults", faults) if faults else self.admin.get("faults")

    def config(self, **config):
        """Change ``ttl``, ``token_ttl`` or ``sandbox``; with no arguments, return the settings."""
        return self.admin.post("config", config) if config else self.admin.get("config")

    def add_client(self, client_id, secret, scopes=(ROUTING_SCOPE,)):
        """Add (or replace) an OAuth client allowed the client-credentials grant."""
        return self.admin.post("clients", {"client_id": client_id, "client_secret": secret, "scopes": list(scopes)})

    def user_token(self, phone_number, scope=ROUTING_SCOPE, client_id=None):
        """A user token bound to ``phone_number``: ``{access_token, refresh_token, expires_in, scope, ...}``."""
        body = {"phone_number": phone_number, "scope": scope}
        if client_id is not None:
            body["client_id"] = client_id
        return self.admin.post("user-token", body)

    # ----------------------------------------------------------------- token endpoint

    def token_request(self, form, basic=None):
        """POST ``form`` to the token endpoint; ``(status, headers, payload)``, never raises on HTTP errors."""
        return self.admin.token_request(form, basic)

    def client_token(self, client_id=None, secret=None, scope=None):
        """A client-credentials token response (dict); defaults to the first configured client."""
        if client_id is None:
            client_id, secret = self.clients[0]["client_id"], self.clients[0]["client_secret"]
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        status, _headers, payload = self.token_request(form, basic=(client_id, secret))
        if status != 200:
            raise AdminClientError(status, payload, self.token_url)
        return payload

    # ----------------------------------------------------------------- process

    def ca_pem(self):
        """The CA certificate (bytes), for grpc.ssl_channel_credentials."""
        with open(self.ca_path, "rb") as handle:
            return handle.read()

    def channel_credentials(self):
        """grpc.ChannelCredentials trusting the emulator's CA."""
        import grpc  # pylint: disable=import-outside-toplevel  # only tests that speak gRPC need it

        return grpc.ssl_channel_credentials(self.ca_pem())

    def log(self):
        """What the emulator has logged so far."""
        with open(self.log_path, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read()

    @property
    def running(self):
        """True while the subprocess lives."""
        return self.process.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM the emulator and wait for it (SIGKILL after ``timeout``); returns its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


@contextlib.contextmanager
def running_emulator(state_dir, clients=(), ttl=None, token_ttl=None, sandbox=False, grpc_port=0, http_port=0,
                     workers=None, log_level=None, timeout=30.0):
    """Start the emulator in ``state_dir``, yield an :class:`EmulatorHandle`, stop it on exit.

    ``clients`` is a list of ``(id, secret)``, ``(id, secret, scopes)`` or dicts like emulator.json's.
    """
    state_dir = str(state_dir)
    process = spawn(state_dir, [_client_dict(client) for client in clients], ttl=ttl, token_ttl=token_ttl,
                    sandbox=sandbox, grpc_port=grpc_port, http_port=http_port, workers=workers, log_level=log_level,
                    exit_with_parent=True)
    try:
        info = wait_ready(state_dir, process, timeout)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        raise
    handle = EmulatorHandle(state_dir, process, info)
    try:
        yield handle
    finally:
        handle.stop()
