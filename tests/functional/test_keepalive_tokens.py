# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A refresh token that the token endpoint rotates on every use survives SIGKILL of the keepalive right after the
endpoint answered, and no secret or token ever shows up in what the keepalive logs or reports."""

import json
import os
import signal
import subprocess
import sys
import time

from sipbreakout_emulator.testing import running_emulator

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options

from keepalive_support import CLIENT_ID, CLIENT_SECRET, KEEPALIVE, SIP_URI, Workdir, module_options, read_health, \
    register, run_once, wait_for, write_config

NUMBER = "+4799997001"

# A process that needs a token at ``start`` (epoch seconds), as a module run and a keepalive pass on one host may.
TOKEN_AT = """
import json, sys, time
import requests_oauthlib  # imported before the start, so that the processes reach the token endpoint together
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.auth import select_token_source
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import AuthError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.retry import Deadline
options = json.load(sys.stdin)
start = options.pop("start")
source = select_token_source(**options)
time.sleep(max(0.0, start - time.time()))
try:
    source.token(Deadline(10))
    print("token")
except AuthError as exc:
    print(exc)
"""


def _refreshes(emu):
    return [entry["outcome"] for entry in emu.calls()["recent_token_requests"]
            if entry["grant_type"] == "refresh_token"]


def _tokens_in_cache(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        body = json.load(handle)["body"]
    return [value for entry in body.values() for key, value in entry.items()
            if key in ("access_token", "refresh_token")]


def test_rotated_refresh_token_survives_a_kill_and_nothing_secret_is_logged(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=3600) as emu:
        grant = emu.user_token(NUMBER, client_id=CLIENT_ID)
        # The module applied it with the user's refresh token (no number needed) and the keepalive's token cache,
        # as the pbx role does, so that both go on with the rotated refresh token.
        register(emu, work, [None], refresh_token=grant["refresh_token"], token_cache_path=work.tokens)
        # timeout 3 s: above the API's 2 s of latency below; a killed pass's claim lasts 2 x 3 + 1 s.
        write_config(emu, work, refresh_token=grant["refresh_token"], timeout=3.0)
        secrets_seen = {CLIENT_SECRET, grant["access_token"], grant["refresh_token"]}
        secrets_seen.update(_tokens_in_cache(work.tokens))

        for round_number in (1, 2):
            # The token endpoint answers at once; the API call after it hangs for 2 s. Kill in between.
            emu.faults(latency_ms=2000, revoke_tokens=True)
            before = len(_refreshes(emu))
            log_path = os.path.join(work.root, "killed-%d.log" % round_number)
            with open(log_path, "w") as log:
                process = subprocess.Popen(KEEPALIVE + ["--config", work.config, "--once", "--force"], stdout=log,
                                           stderr=subprocess.STDOUT)
            work.logs.append(log_path)
            wait_for(lambda: len(_refreshes(emu)) > before, 10, interval=0.02, message="the token endpoint answered")
            # Kill once the answer is in hand (the new refresh token reached the cache; no client can do better
            # than to store it at once) and while the API call it is used for still hangs.
            wait_for(lambda: set(_tokens_in_cache(work.tokens)) - secrets_seen, 5, interval=0.02,
                     message="the rotated refresh token was stored")
            assert process.poll() is None, "the pass ended before it could be killed"
            process.send_signal(signal.SIGKILL)
            process.wait(5)
            assert _refreshes(emu)[-1] == "issued"
            secrets_seen.update(_tokens_in_cache(work.tokens))

            # The access token it got is revoked, so the next run has to trade the rotated refresh token. (The
            # killed pass's call, still delayed in the emulator, then fails with that revoked token.) The next
            # pass comes once the killed pass's claim on the registration has run out.
            emu.faults(latency_ms=0, revoke_tokens=True)
            time.sleep(max(0.0, max(entry.claimed_until or 0.0 for entry in SqliteLedger(work.ledger).read().values())
                           - time.time()) + 0.1)
            upserts = emu.registrations()[0]["upserts"]
            status, log = run_once(work, "--force")
            assert status == 0, log
            assert _refreshes(emu)[-1] == "issued", emu.calls()["recent_token_requests"]
            secrets_seen.update(_tokens_in_cache(work.tokens))
            held = emu.registrations()
            assert [(reg["phone_number"], reg["auth_kind"], reg["upserts"]) for reg in held] == [
                (NUMBER, "user", upserts + 1)]

        assert "invalid_grant" not in _refreshes(emu)

        # The test can fail: a keepalive that had lost the rotated token (here: a fresh cache with the
        # configured, long spent refresh token) is refused by the token endpoint.
        lost = Workdir(tmp_path / "lost")
        write_config(emu, lost, ledger_path=work.ledger, refresh_token=grant["refresh_token"])
        status, log = run_once(lost, "--force")
        assert status == 1
        assert "invalid_grant" in read_health(lost)["failures"][0]["error"]

        # No secret in any log, health file or metrics, while the config and token cache stay private.
        reports = work.logs + lost.logs + [work.health, work.metrics, lost.health, lost.metrics]
        for path in reports:
            with open(path) as handle:
                text = handle.read()
            for secret in secrets_seen:
                assert secret not in text, "a secret leaked into %s" % path
        for path in (work.config, work.tokens, work.health):
            assert os.stat(path).st_mode & 0o077 == 0, path
        assert os.stat(work.metrics).st_mode & 0o777 == 0o644
        assert len(secrets_seen) >= 7


def test_two_subscribers_refresh_tokens_keep_their_registrations_apart_on_one_ledger(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=3600) as emu:
        alice, bob = (emu.user_token(number, client_id=CLIENT_ID) for number in ("+4799997011", "+4799997012"))
        # Both point at the same PBX and leave the number out, as a user token allows: the same ledger key but
        # for the principal, which must tell the two subscribers apart.
        for grant in (alice, bob):
            register(emu, work, [None], refresh_token=grant["refresh_token"], token_cache_path=work.tokens)
        principals = sorted(entry.principal for entry in SqliteLedger(work.ledger).read().values())
        assert len(set(principals)) == 2 and all(p.startswith("user:%s:" % CLIENT_ID) for p in principals)

        # Alice's declarative set without that PBX deletes her registration, and only hers.
        moved = dict(sip_uri="sips:other.example.com", route_type="loop")
        result = ensure_from_options(module_options(emu, work, refresh_token=alice["refresh_token"],
                                                    token_cache_path=work.tokens, registrations=[moved],
                                                    purge=True, max_purge=100))
        assert result["summary"]["created"] == 1 and result["summary"]["deleted"] == 1, result["summary"]
        assert sorted((reg["phone_number"], reg["sip_uri"]) for reg in emu.registrations()) == [
            ("+4799997011", "sips:other.example.com"), ("+4799997012", SIP_URI)]

        # Bob's keepalive refreshes Bob's registration and reports Alice's as not its own, instead of upserting
        # her PBX with his token.
        upserts = dict((reg["phone_number"], reg["upserts"]) for reg in emu.registrations())
        write_config(emu, work, refresh_token=bob["refresh_token"])
        status, log = run_once(work, "--force")
        assert status == 0, log
        after = dict((reg["phone_number"], reg["upserts"]) for reg in emu.registrations())
        assert after == {"+4799997011": upserts["+4799997011"], "+4799997012": upserts["+4799997012"] + 1}
        failures = read_health(work)["failures"]
        assert [failure["sip_uri"] for failure in failures] == ["sips:other.example.com"]
        assert "not refreshed by this keepalive" in failures[0]["error"]


def test_processes_sharing_a_token_cache_trade_the_refresh_token_once(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        grant = emu.user_token(NUMBER, client_id=CLIENT_ID)
        options = dict(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=grant["refresh_token"],
                       token_url=emu.token_url, ca_path=emu.ca_path, token_cache_path=work.tokens,
                       start=time.time() + 1.5)
        processes = [subprocess.Popen([sys.executable, "-c", TOKEN_AT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True) for _process in range(3)]
        for process in processes:
            process.stdin.write(json.dumps(options))
            process.stdin.close()
        answers = [process.stdout.read().strip() for process in processes]
        assert [process.wait(30) for process in processes] == [0, 0, 0]
        # One trade of the refresh token; the others waited and took the token it stored. Sent twice, a rotating
        # refresh token is refused the second time (and some servers revoke the whole grant for it).
        assert answers == ["token"] * 3, answers
        assert _refreshes(emu) == ["issued"]


def test_with_a_user_token_the_number_given_or_not_names_one_registration(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        token = emu.user_token(NUMBER, client_id=CLIENT_ID)["access_token"]
        user = dict(access_token=token, client_id=None, client_secret=None)
        register(emu, work, [None], **user)  # applied without the number, as a user token allows
        assert [(reg["phone_number"], reg["sip_uri"]) for reg in emu.registrations()] == [(NUMBER, SIP_URI)]

        # Removed naming the number: the same registration at the operator, so the same ledger entry goes.
        removed = ensure_from_options(module_options(emu, work, phone_number=NUMBER, sip_uri=SIP_URI,
                                                     state="absent", **user))
        assert removed["changed"]
        assert emu.registrations() == []
        assert SqliteLedger(work.ledger).read() == {}  # nothing left for a keepalive to bring back


def test_a_config_that_others_can_read_is_refused(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        register(emu, work, ["+4799997002"])
        write_config(emu, work)
        os.chmod(work.config, 0o644)
        status, log = run_once(work)
        assert status == 2
        assert "readable by group or others" in log and CLIENT_SECRET not in log
        assert module_options(emu, work)["ledger_path"] == work.ledger
        assert [entry.registration.sip_uri for entry in SqliteLedger(work.ledger).read().values()] == [SIP_URI]
