# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many registrations at once, seen from the emulator: the bulk task and a keepalive pass both keep several calls
in flight on one channel, never more than their ``concurrency``; a server that sheds load gets fewer until it
copes; an API that stays down ends the run instead of every item waiting out its timeout."""


from sipbreakout_emulator.testing import running_emulator

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options

from keepalive_support import CLIENT_ID, CLIENT_SECRET, SIP_URI, Workdir, held, module_options, read_health, \
    run_once, write_config

CLIENTS = [(CLIENT_ID, CLIENT_SECRET)]
COUNT = 400


def _numbers():
    return ["+47995%05d" % index for index in range(COUNT)]


def _bulk(emu, work, concurrency):
    registrations = [dict(phone_number=number, sip_uri=SIP_URI, route_type="loop") for number in _numbers()]
    return ensure_from_options(module_options(emu, work, registrations=registrations, concurrency=concurrency))


def test_the_bulk_task_keeps_up_to_concurrency_calls_in_flight(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=CLIENTS) as emu:
        emu.faults(latency_ms=20)  # long enough that the calls overlap
        result = _bulk(emu, work, concurrency=24)
        calls = emu.calls(limit=0)
        assert result["summary"]["created"] == COUNT
        assert sorted(held(emu)) == _numbers()
        assert calls["by_method"]["UpsertRegistration"]["total"] == COUNT
        assert 12 <= calls["most_in_flight"] <= 24, calls["most_in_flight"]
        assert calls["token_requests"] == 1


def test_a_keepalive_pass_refreshes_every_due_registration_concurrently(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=CLIENTS) as emu:
        _bulk(emu, work, concurrency=64)
        before = dict((entry.registration.phone_number, entry.upserted_at) for entry in SqliteLedger(work.ledger).read()
                      .values())
        emu.reset()  # counters from zero; the registrations are sent again by the pass
        emu.faults(latency_ms=20)
        write_config(emu, work, concurrency=16)
        status, log = run_once(work, "--force", timeout=120)
        calls = emu.calls(limit=0)
        assert status == 0, log
        assert calls["by_method"]["UpsertRegistration"]["total"] == COUNT
        assert 8 <= calls["most_in_flight"] <= 16, calls["most_in_flight"]
        assert sorted(held(emu)) == _numbers()
        after = dict((entry.registration.phone_number, entry.upserted_at) for entry in SqliteLedger(work.ledger).read()
                     .values())
        assert sorted(after) == _numbers()
        assert all(after[number] > before[number] for number in before), "a refresh was not recorded"
        assert read_health(work)["last_run"]["refreshed"] == COUNT


def test_a_server_that_sheds_load_gets_fewer_calls_until_it_copes_and_nothing_fails(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=CLIENTS) as emu:
        emu.faults(latency_ms=20, max_in_flight=10)  # a front end that takes ten calls at once
        result = _bulk(emu, work, concurrency=128)
        calls = emu.calls(limit=0)
        outcomes = calls["by_method"]["UpsertRegistration"]["outcomes"]
        assert result["summary"]["created"] == COUNT and not result.get("failed")
        assert sorted(held(emu)) == _numbers()
        assert calls["most_in_flight"] <= 10
        # Halved on each round of refusals (128, 64, 32, 16, 8): a few rounds are shed, not the calls over the limit
        # of every round until their retries run out (which failed items here before the halving existed).
        assert 0 < outcomes["RESOURCE_EXHAUSTED"] < COUNT, outcomes
        assert any("calls in flight went down from concurrency=128 to" in warning for warning in result["warnings"])


def test_an_api_that_stays_down_ends_the_run_instead_of_every_item_waiting_its_timeout(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=CLIENTS) as emu:
        emu.faults(unavailable_for=600)
        registrations = [dict(phone_number=number, sip_uri=SIP_URI, route_type="loop") for number in _numbers()]
        result = ensure_from_options(module_options(emu, work, registrations=registrations, concurrency=32,
                                                    timeout=1.0, retries=2))
        outcomes = emu.calls(limit=0)["by_method"]["UpsertRegistration"]["outcomes"]
    summary = result["summary"]
    assert result["failed"] and summary["failed"] + summary["not_sent"] == COUNT and summary["not_sent"] > 0
    assert result["msg"].startswith("%d of %d registration(s) failed, %d not sent; the 0 that succeeded"
                                    % (summary["failed"], COUNT, summary["not_sent"]))
    unsent = [item for item in result["results"] if item["result"] == "not_sent"]
    assert all(item["error"].startswith("not sent: the API stayed unavailable (") for item in unsent)
    assert "UNAVAILABLE" in unsent[0]["error"]
    # Each item would otherwise have been tried three times; the run stopped once the first one ran out.
    assert outcomes == {"UNAVAILABLE": outcomes["UNAVAILABLE"]} and outcomes["UNAVAILABLE"] < COUNT
    # The calls that went out may have been carried out: the ledger keeps them, unconfirmed, for the keepalive or the
    # next run to send again; the items never sent leave nothing behind.
    entries = dict((entry.registration.phone_number, entry) for entry in SqliteLedger(work.ledger).read().values())
    failed = dict((item["phone_number"], item["error"]) for item in result["results"] if item["result"] == "failed")
    assert sorted(entries) == sorted(failed)
    assert all(entry.unconfirmed and entry.expires_at is None and entry.last_error == failed[number]
               and entry.claimed_by is None for number, entry in entries.items())
