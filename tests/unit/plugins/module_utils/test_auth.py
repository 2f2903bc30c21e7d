# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The token cache under a refresh token: what must survive from one process to the next. The token endpoint is
scripted (``_request``); the emulator tests drive the real requests-oauthlib exchange. And a TLS failure of the
token endpoint, against a port that speaks plain HTTP."""

import socket
import threading

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.auth import ClientCredentials, RefreshToken, TokenCache
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import AuthError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.retry import Deadline


class _Endpoint:
    """Accepts each refresh token once when it rotates; ``rotations`` says, per answer, whether it does."""

    def __init__(self, rotations):
        self.rotations = list(rotations)
        self.valid = {"rt-0"}
        self.answers = 0

    def refresh(self, refresh_token):
        if refresh_token not in self.valid:
            raise AuthError("invalid_grant: %s was already used" % refresh_token)
        self.answers += 1
        answer = {"access_token": "at-%d" % self.answers, "expires_in": 3600, "scope": "call.routing:write"}
        if self.rotations.pop(0):
            self.valid.discard(refresh_token)
            answer["refresh_token"] = "rt-%d" % self.answers
            self.valid.add(answer["refresh_token"])
        return answer


class _Scripted(RefreshToken):
    endpoint = None

    def _request(self, deadline, cached):
        return self.endpoint.refresh((cached or {}).get("refresh_token") or self._refresh_token)


def _process(endpoint, cache_path, now):
    """A new process's token source: a fresh object over the shared cache file (or none)."""
    source = _Scripted("rt-0", "client-1", "secret-1", token_url="https://id.example.com/oauth2/token",
                       cache=TokenCache(cache_path, clock=lambda: now[0]) if cache_path else None,
                       clock=lambda: now[0])
    source.endpoint = endpoint
    return source


def test_a_refresh_answered_without_a_new_refresh_token_keeps_the_one_in_use(tmp_path):
    endpoint = _Endpoint(rotations=[True, False, True])
    now = [1000.0]
    tokens = []
    for _run in range(3):  # three processes, each after the last one's access token expired
        tokens.append(_process(endpoint, str(tmp_path / "tokens.json"), now).token(Deadline(5)))
        now[0] += 4000
    assert tokens == ["at-1", "at-2", "at-3"]  # the third traded rt-1, kept from the first answer
    assert endpoint.valid == {"rt-3"}


def test_a_refused_token_is_forgotten_but_not_the_fresh_one_another_process_stored(tmp_path):
    now = [1000.0]
    cache_path = str(tmp_path / "tokens.json")
    endpoint = _Endpoint(rotations=[True, True])
    first, second = _process(endpoint, cache_path, now), _process(endpoint, cache_path, now)
    refused = first.token(Deadline(5))
    assert second.token(Deadline(5)) == refused  # from the cache: one request
    first.invalidate(refused)
    fresh = first.token(Deadline(5))
    second.invalidate(refused)  # a late answer to a call the other process made with the old token
    assert second.token(Deadline(5)) == fresh
    assert endpoint.answers == 2


def test_without_a_cache_the_process_trades_the_refresh_token_it_was_last_given():
    endpoint = _Endpoint(rotations=[True, True, True])
    now = [1000.0]
    source = _process(endpoint, None, now)
    first = source.token(Deadline(5))
    now[0] += 4000  # expired
    second = source.token(Deadline(5))
    source.invalidate(second)  # revoked early
    source.invalidate(second)  # and refused to another call in flight with it
    assert (first, second, source.token(Deadline(5))) == ("at-1", "at-2", "at-3")
    assert endpoint.valid == {"rt-3"}


def test_a_tls_failure_of_the_token_endpoint_is_not_retried_and_names_what_to_check(tmp_path):
    """A port that answers plain HTTP: requests fails the handshake on every attempt alike, so it is tried once."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []

    def serve():
        while True:
            try:
                conn, _address = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    source = ClientCredentials("c1", "s1", token_url="https://127.0.0.1:%d/oauth2/token" % listener.getsockname()[1],
                               cache=None, retries=5)
    try:
        with pytest.raises(AuthError) as caught:
            source.token(Deadline(10))
    finally:
        listener.close()
    assert caught.value.option == "token_url" and "check that token_url names an https:// port" in str(caught.value)
    assert len(accepted) == 1
