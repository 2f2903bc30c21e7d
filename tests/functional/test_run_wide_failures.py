# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A failure that every call of a run would meet (the credentials refused, a certificate the host does not trust, an
API that stays down) fails the run once and fast: no new call starts once the run knows, one short message names
the cause and the option to check, and the registrations are summarised rather than listed with 10,000 copies of
the same error. Proven with the module as its own process (the size of what it prints is what the controller
receives) and at the emulator (the calls and token requests it saw) or at a TCP relay in front of it (the
connections made to it)."""

import os
import socket
import threading

import pytest

from sipbreakout_emulator.testing import running_emulator
from sipbreakout_emulator.tls import ensure_certificates

from module_process import run_module

CLIENT_ID, CLIENT_SECRET = "run-wide-client", "run-wide-Secret-4471"
COUNT = 10000
SIP_URI = "sips:pbx.example.com:5061"
# What one short failure of 10,000 registrations may print: the message, ten results and the summary.
RESULT_BYTES = 16 * 1024


def _numbers(count=COUNT):
    return [dict(phone_number="+4792%07d" % index) for index in range(count)]


def _args(emu, tmp_path, **extra):
    args = dict(api_endpoint=emu.grpc_endpoint, ca_path=emu.ca_path, token_url=emu.token_url, client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET, ledger_path=str(tmp_path / "ledger.db"),
                token_cache_path=str(tmp_path / "tokens.json"), registrations=_numbers(), sip_uri=SIP_URI,
                route_type="loop")
    args.update(extra)
    return dict((key, value) for key, value in args.items() if value is not None)


def _summarised(outcome, failed, not_sent):
    result = outcome.result
    assert result["failed"], result
    assert (result["summary"]["failed"], result["summary"]["not_sent"]) == (failed, not_sent), result["summary"]
    assert len(result["results"]) <= 10 and result["results_omitted"] == COUNT - len(result["results"])
    assert "\n" not in result["msg"] and len(result["msg"]) < 800, result["msg"]
    assert len(outcome.output) < RESULT_BYTES, len(outcome.output)
    assert CLIENT_SECRET not in outcome.output + outcome.errors
    return result


class TcpRelay:
    """Forwards TCP connections from a port of its own to ``target`` (host, port), counting them: how often a
    client connected, whatever TLS then made of the connection."""

    def __init__(self, target):
        self.target = target
        self.connections = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(self.target)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


def _host_port(endpoint):
    host, _sep, port = endpoint.rpartition(":")
    return host, int(port)


def test_a_wrong_client_secret_fails_10000_numbers_once_with_one_message_naming_client_secret(tmp_path):
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        outcome = run_module(tmp_path, _args(emu, tmp_path, client_secret="not-the-secret"))
        calls = emu.calls(limit=0)
    result = _summarised(outcome, failed=1, not_sent=COUNT - 1)
    assert result["msg"].startswith("The run stopped: the token endpoint %s refused client '%s': invalid_client"
                                    % (emu.token_url, CLIENT_ID))
    assert "check client_secret and client_id" in result["msg"] and result["option"] == "client_secret"
    # invalid_client is not retried, and no call was sent without a token.
    assert (calls["token_requests"], calls["total"]) == (1, 0)
    print("wrong client_secret, %d numbers: %d bytes of result in %.1f s; msg: %s"
          % (COUNT, len(outcome.output), outcome.elapsed, result["msg"]))


def test_an_api_that_is_down_ends_a_run_of_10000_within_30_s_after_fewer_than_300_calls(tmp_path):
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        emu.faults(unavailable_for=600)
        outcome = run_module(tmp_path, _args(emu, tmp_path))  # default concurrency (256), timeout and retries
        calls = emu.calls(limit=0)
    result = _summarised(outcome, failed=256, not_sent=COUNT - 256)
    assert outcome.elapsed < 30, outcome.elapsed
    # The first round of 256, then one call's five retries: not 3.6 calls for every item.
    assert calls["total"] == 256 + 5 and calls["total"] < 300
    assert "UNAVAILABLE" in result["msg"] and "check api_endpoint" in result["msg"]
    assert result["option"] == "api_endpoint" and result["code"] == "UNAVAILABLE"
    print("API down, %d numbers: %d calls, %.1f s, %d bytes of result" % (COUNT, calls["total"], outcome.elapsed,
                                                                          len(outcome.output)))


@pytest.mark.parametrize("untrusted", ["token endpoint", "api"])
def test_a_certificate_the_host_does_not_trust_is_named_once_not_retried_and_says_set_ca_path(tmp_path, untrusted):
    os.makedirs(str(tmp_path / "other-ca"))
    other_ca = ensure_certificates(str(tmp_path / "other-ca")).ca_cert
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        if untrusted == "api":
            relay = TcpRelay(_host_port(emu.grpc_endpoint))
            # The sandbox takes calls without a token, so that only the API's TLS is in question.
            emu.config(sandbox=True)
            args = _args(emu, tmp_path, api_endpoint="127.0.0.1:%d" % relay.port, ca_path=other_ca, client_id=None,
                         client_secret=None)
        else:
            relay = TcpRelay(_host_port(emu.token_url.split("/")[2]))
            args = _args(emu, tmp_path, token_url="https://127.0.0.1:%d/oauth2/token" % relay.port, ca_path=other_ca)
        try:
            outcome = run_module(tmp_path, args)
        finally:
            relay.close()
        calls = emu.calls(limit=0)
    result = outcome.result
    assert result["failed"] and result["option"] == "ca_path", result["msg"]
    assert "does not trust" in result["msg"] and "set ca_path" in result["msg"]
    assert "CERTIFICATE_VERIFY_FAILED" in result["msg"] or "certificate verify failed" in result["msg"]
    assert result["summary"]["not_sent"] >= COUNT - 256 and len(result["results"]) <= 10
    assert len(outcome.output) < RESULT_BYTES
    assert calls["total"] == 0
    # One connection, or two where gRPC tries the address again on its own: retries would make six.
    assert 1 <= relay.connections <= 2, relay.connections
    print("untrusted %s: %d connection(s), %.1f s; msg: %s" % (untrusted, relay.connections, outcome.elapsed,
                                                               result["msg"]))
