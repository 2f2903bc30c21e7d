# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""After the subscriber consents again (a new user token from the emulator's /admin/user-token for the same number,
after the old refresh token was used and rotated), previous_principal takes the old refresh token's registrations
over: the keepalive (the real program) refreshes them, none lapses at the emulator, none is registered twice; the
delete variant removes them at the emulator; and a wrong principal is refused before anything is sent."""

import pytest

from sipbreakout_emulator.testing import running_emulator

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.health import report_from_files
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options

from keepalive_support import CLIENT_ID, CLIENT_SECRET, Workdir, module_options, read_health, run_once, wait_for, \
    write_config

ALICE, BOB, CAROL = "+4799998001", "+4799998002", "+4799998003"
URI_A, URI_B = "sips:a.pbx.example.com:5061", "sips:b.pbx.example.com:5061"
# Short enough that a registration nobody refreshes lapses within the test.
TTL = 8.0


def _item(number, uri, route_type="loop"):
    return dict(phone_number=number, sip_uri=uri, route_type=route_type)


def _user(emu, work, grant, **extra):
    # As the pbx role runs the module: the keepalive's token cache, so both go on with the rotated refresh token.
    return module_options(emu, work, refresh_token=grant["refresh_token"], token_cache_path=work.tokens, **extra)


def _held(emu):
    return dict(((reg["phone_number"], reg["sip_uri"]), reg) for reg in emu.registrations())


def _principals(work):
    """The ledger's entries as {(number, uri): [principals]}."""
    found = {}
    for entry in SqliteLedger(work.ledger).read().values():
        found.setdefault((entry.registration.phone_number, entry.registration.sip_uri), []).append(entry.principal)
    return found


def _refresh_requests(emu):
    return [entry["outcome"] for entry in emu.calls()["recent_token_requests"] if entry["grant_type"] == "refresh_token"]


def _observed(emu, work):
    calls = emu.calls(limit=0)
    return calls["total"], calls["token_requests"], sorted(entry.row(key) for key, entry in
                                                           SqliteLedger(work.ledger).read().items())


def test_adoption_after_reconsent_keeps_every_registration_alive(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=TTL) as emu:
        alice_first, carol_first = (emu.user_token(number, client_id=CLIENT_ID) for number in (ALICE, CAROL))
        ensure_from_options(_user(emu, work, alice_first, registrations=[_item(ALICE, URI_A),
                                                                         _item(ALICE, URI_B, "fork")]))
        ensure_from_options(_user(emu, work, carol_first, registrations=[_item(CAROL, URI_A)]))
        created = dict((key, reg["created_at"]) for key, reg in _held(emu).items())
        old = dict(_principals(work))[(ALICE, URI_A)][0]

        # The keepalive with Alice's refresh token: with the access token revoked, its pass trades the refresh token
        # the module's run was given (rotated) for another.
        write_config(emu, work, refresh_token=alice_first["refresh_token"])
        emu.faults(revoke_tokens=True)
        refreshes = len(_refresh_requests(emu))
        status, log = run_once(work, "--force")
        assert status == 0, log
        assert _refresh_requests(emu)[refreshes:] == ["issued"]

        # Alice consents again: a new refresh token, so a new principal, which the keepalive is now configured for.
        alice_second = emu.user_token(ALICE, client_id=CLIENT_ID)
        write_config(emu, work, refresh_token=alice_second["refresh_token"])
        upserts = dict((key, reg["upserts"]) for key, reg in _held(emu).items())
        run_once(work, "--force")
        assert dict((key, reg["upserts"]) for key, reg in _held(emu).items()) == upserts  # it refreshed none
        failures = dict((failure["sip_uri"], failure["error"]) for failure in read_health(work)["failures"]
                        if failure["phone_number"] == ALICE)
        assert sorted(failures) == [URI_A, URI_B]
        assert "take it over with previous_principal=%s" % old in failures[URI_A]

        # registration_info names the principal to take over.
        info = report_from_files(SqliteLedger(work.ledger), health_path=work.health)
        assert sorted((item["phone_number"], item["principal"], item["replaced_refresh_token"])
                      for item in info["orphans"]) == sorted([(ALICE, old, True), (ALICE, old, True),
                                                              (CAROL, _principals(work)[(CAROL, URI_A)][0], True)])

        # The run with the new refresh token names one of Alice's two registrations and takes over both.
        result = ensure_from_options(_user(emu, work, alice_second, registrations=[_item(ALICE, URI_A)],
                                           previous_principal=old))
        assert result["changed"] and result["summary"]["failed"] == 0
        assert [(item["sip_uri"], item["previous_principal"]) for item in result["results"]] == [
            (URI_A, old), (URI_B, old)]
        expected = dict(upserts)
        expected[(ALICE, URI_A)] += 1
        expected[(ALICE, URI_B)] += 1
        assert dict((key, reg["upserts"]) for key, reg in _held(emu).items()) == expected
        assert _held(emu)[(ALICE, URI_B)]["route_type"] == "ROUTE_TYPE_FORK"  # as it was declared

        # The keepalive refreshes both now, and reports only Carol's, which nobody took over.
        status, log = run_once(work, "--force")
        assert status == 0, log
        assert read_health(work)["last_run"]["refreshed"] == 2
        assert [failure["phone_number"] for failure in read_health(work)["failures"]] == [CAROL]

        # Carol's registration, which nothing refreshes, lapses; Alice's never did: created once, still held.
        wait_for(lambda: (CAROL, URI_A) not in _held(emu), TTL + 5, message="Carol's registration lapsed")
        held = _held(emu)
        assert sorted(held) == [(ALICE, URI_A), (ALICE, URI_B)]
        assert [held[key]["created_at"] for key in sorted(held)] == [created[(ALICE, URI_A)], created[(ALICE, URI_B)]]
        # One ledger entry per registration, the new principal's.
        new = read_health(work)["keepalive"]["principal"]
        assert dict((key, value) for key, value in _principals(work).items() if key[0] == ALICE) == {
            (ALICE, URI_A): [new], (ALICE, URI_B): [new]}


def test_takeover_is_checked_first_and_the_delete_variant_removes_them(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=3600) as emu:
        alice_first, bob = (emu.user_token(number, client_id=CLIENT_ID) for number in (ALICE, BOB))
        ensure_from_options(_user(emu, work, alice_first, registrations=[_item(ALICE, URI_A), _item(ALICE, URI_B)]))
        ensure_from_options(_user(emu, work, bob, registrations=[_item(BOB, URI_A)]))
        old, bobs = _principals(work)[(ALICE, URI_A)][0], _principals(work)[(BOB, URI_A)][0]
        alice_second = emu.user_token(ALICE, client_id=CLIENT_ID)
        new_run = _user(emu, work, alice_second, registrations=[_item(ALICE, URI_A)])

        # Refused before any call, token request or ledger write, each with what is wrong.
        before = _observed(emu, work)
        refusals = (
            (dict(new_run, previous_principal=bobs), "are for %s, this run's refresh_token is for %s" % (BOB, ALICE)),
            (dict(new_run, previous_principal="user:%s:0123456789ab" % CLIENT_ID),
             "holds no registrations at %s in the ledger %s; registrations that may be this subscription's are held "
             "by %s (2)" % (emu.grpc_endpoint, work.ledger, old)),
            (dict(new_run, previous_principal="user:other-client:0123456789ab"), "belongs to client 'other-client'"),
            (dict(new_run, previous_principal="client:%s" % CLIENT_ID), "is not the principal of a refresh token"),
            (module_options(emu, work, registrations=[_item(ALICE, URI_A)], previous_principal=old),
             "it authenticates as client:%s" % CLIENT_ID),
            (dict(new_run, registrations=[dict(sip_uri=URI_A, route_type="loop")], previous_principal=old),
             "this run names no phone_number"),
        )
        for options, fragment in refusals:
            for check_mode in (False, True):
                with pytest.raises(ValidationError) as refused:
                    ensure_from_options(options, check_mode=check_mode, diff=check_mode)
                assert refused.value.option == "previous_principal" and fragment in str(refused.value)
        assert _observed(emu, work) == before

        # Check mode with diff shows the takeover (whose entry before and after) and sends nothing.
        predicted = ensure_from_options(dict(new_run, previous_principal=old, previous_entries="delete"),
                                        check_mode=True, diff=True)
        assert predicted["changed"]
        assert [(item["sip_uri"], item["state"], item["result"]) for item in predicted["results"]] == [
            (URI_A, "present", "unchanged"), (URI_B, "absent", "deleted")]
        label = "%s -> %s" % (ALICE, URI_A)
        assert predicted["diff"]["before"][label]["principal"] == old
        new = predicted["diff"]["after"][label]["principal"]
        assert new.startswith("user:%s:" % CLIENT_ID) and new != old
        assert "%s -> %s" % (ALICE, URI_B) not in predicted["diff"]["after"]
        assert _observed(emu, work) == before

        # The delete variant: the listed one is upserted once under the new principal, the other deleted.
        upserts = dict((key, reg["upserts"]) for key, reg in _held(emu).items())
        deletes = emu.calls(limit=0)["by_method"].get("DeleteRegistration", {}).get("total", 0)
        result = ensure_from_options(dict(new_run, previous_principal=old, previous_entries="delete"))
        assert result["summary"]["failed"] == 0
        held = _held(emu)
        assert sorted(held) == [(ALICE, URI_A), (BOB, URI_A)]
        assert held[(ALICE, URI_A)]["upserts"] == upserts[(ALICE, URI_A)] + 1
        assert held[(BOB, URI_A)]["upserts"] == upserts[(BOB, URI_A)]
        assert emu.calls(limit=0)["by_method"]["DeleteRegistration"]["total"] == deletes + 1
        assert _principals(work) == {(ALICE, URI_A): [new], (BOB, URI_A): [bobs]}

        # The keepalive with the new refresh token refreshes Alice's; Bob's stays his, reported and untouched.
        write_config(emu, work, refresh_token=alice_second["refresh_token"])
        run_once(work, "--force")
        held = _held(emu)
        assert held[(ALICE, URI_A)]["upserts"] == upserts[(ALICE, URI_A)] + 2
        assert held[(BOB, URI_A)]["upserts"] == upserts[(BOB, URI_A)]
        assert [failure["phone_number"] for failure in read_health(work)["failures"]] == [BOB]

        # Run again as it stands (the role's variable left set): nothing to take over, a warning, no failure.
        again = ensure_from_options(dict(new_run, previous_principal=old, previous_entries="delete"))
        assert not again["changed"] and "nothing to take over" in again["warnings"][0]
        assert emu.calls(limit=0)["by_method"]["DeleteRegistration"]["total"] == deletes + 1
