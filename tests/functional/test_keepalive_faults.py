# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults the keepalive must ride out, checked against the emulator: outages shorter and longer than the TTL,
a registration the API now rejects, and several passes at once."""

import os
import subprocess
import threading
import time

import pytest
from sipbreakout_emulator.testing import running_emulator

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ApiError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options

from keepalive_support import CLIENT_ID, CLIENT_SECRET, KEEPALIVE, SIP_URI, LoopProcess, Workdir, held, \
    module_options, read_health, read_metrics, register, run_once, wait_for, write_config

CLIENTS = [(CLIENT_ID, CLIENT_SECRET)]


def _upsert_outcomes(emu):
    return emu.calls()["by_method"].get("UpsertRegistration", {}).get("outcomes", {})


def test_outage_shorter_than_the_refresh_margin_causes_no_lapse(tmp_path):
    ttl = 6.0
    numbers = ["+4799996101", "+4799996102"]
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=CLIENTS, ttl=ttl) as emu:
        register(emu, work, numbers)
        # Refresh with half the TTL left (3 to 3.75 s here): an outage up to that long cannot make one lapse.
        write_config(emu, work, refresh_fraction=0.5, timeout=0.5, retries=1)
        first = held(emu)

        def check_live():
            now = held(emu)
            assert sorted(now) == numbers, "lapsed during or after the outage: %s" % sorted(now)
            for number in numbers:
                assert now[number]["created_at"] == first[number]["created_at"], number
            return True

        keepalive = LoopProcess(work)
        try:
            wait_for(lambda: os.path.exists(work.health), 30, message="the keepalive's first pass")
            # Down from just before the next refreshes are due until 1.5 s later, and certainly over one of them.
            wait_for(lambda: check_live() and min(reg["remaining_ttl"] for reg in held(emu).values()) < 4.2,
                     ttl, interval=0.02, message="the next refresh is near")
            emu.faults(unavailable_for=60)
            down = time.monotonic()
            wait_for(lambda: check_live() and _upsert_outcomes(emu).get("UNAVAILABLE"), 3, interval=0.05,
                     message="a refresh ran into the outage")
            time.sleep(max(0.0, down + 1.5 - time.monotonic()))
            emu.faults(clear=True)
            end = time.monotonic() + ttl + 1.0
            while time.monotonic() < end:
                check_live()
                time.sleep(0.1)
        finally:
            assert keepalive.stop() == 0, keepalive.log()
        assert all(reg["upserts"] >= 3 for reg in held(emu).values())
        assert read_health(work)["failures"] == []


def test_outage_longer_than_the_ttl_is_reported_then_repaired_by_the_next_run(tmp_path):
    ttl = 3.0
    numbers = ["+4799996201", "+4799996202"]
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=CLIENTS, ttl=ttl) as emu:
        register(emu, work, numbers)
        write_config(emu, work, timeout=1.0, retries=2, schedule_interval=2.0)
        emu.faults(unavailable_for=600)  # until cleared below, whatever the machine's speed

        status, log = run_once(work)
        assert status == 1, log
        health = read_health(work)
        assert health["last_run"]["outcome"] == "failed"
        assert sorted(failure["phone_number"] for failure in health["failures"]) == numbers
        assert all("UNAVAILABLE" in failure["error"] for failure in health["failures"]), health["failures"]
        metrics = read_metrics(work)
        assert metrics["wgtwo_sipbreakout_registration_failures"] == 2
        assert metrics["wgtwo_sipbreakout_keepalive_last_run_ok"] == 0
        assert sorted(SqliteLedger(work.ledger).read()) and all(
            entry.last_error for entry in SqliteLedger(work.ledger).read().values())

        # Still down when the TTL ends: the operator drops them, and the next run says so.
        wait_for(lambda: not held(emu), ttl + 1.0, message="the registrations lapsed during the outage")
        status, log = run_once(work)
        assert status == 1, log
        health = read_health(work)
        assert health["registrations_live"] == 0 and health["states"]["lapsed"] == 2
        assert len(health["failures"]) == 2
        metrics = read_metrics(work)
        assert metrics["wgtwo_sipbreakout_registrations_live"] == 0
        assert metrics['wgtwo_sipbreakout_registrations{state="lapsed"}'] == 2

        emu.faults(clear=True)
        time.sleep(1.0)  # past every registration's retry interval
        status, log = run_once(work)
        assert status == 0, log
        assert sorted(held(emu)) == numbers  # repaired at the operator
        health = read_health(work)
        assert health["failures"] == [] and health["registrations_live"] == 2
        assert health["last_run"]["refreshed"] == 2
        metrics = read_metrics(work)
        assert metrics["wgtwo_sipbreakout_registration_failures"] == 0
        assert metrics["wgtwo_sipbreakout_keepalive_last_run_ok"] == 1
        assert "it had lapsed" in log


def test_a_registration_the_api_rejects_is_kept_with_its_error_and_reported(tmp_path):
    work = Workdir(tmp_path)
    good = "+4799996301"
    bad = "+4799996302"
    reason = "Number is not eligible for SIP breakout"
    with running_emulator(tmp_path / "emu", clients=CLIENTS, ttl=3600) as emu:
        register(emu, work, [good, bad])
        write_config(emu, work, metrics_per_registration=True)
        # The operator now refuses one of them (STATUS_CODE_NOT_ACCEPTABLE); it stays live until its TTL ends.
        emu.faults(reject={bad: reason})

        for attempt in (1, 2):
            status, log = run_once(work, "--force")
            assert status == 1, (attempt, log)
            entries = dict((e.registration.phone_number, e) for e in SqliteLedger(work.ledger).read().values())
            assert sorted(entries) == [good, bad]
            assert reason in entries[bad].last_error and entries[good].last_error is None
            health = read_health(work)
            assert [(f["phone_number"], f["state"]) for f in health["failures"]] == [(bad, "error")]
            assert "STATUS_CODE_NOT_ACCEPTABLE" in health["failures"][0]["error"]
            metrics = read_metrics(work)
            series = 'wgtwo_sipbreakout_registration_refresh_failing{phone_number="%s",sip_uri="%s",endpoint="%s",' \
                     'principal="client:%s"}'
            for number, failing in ((bad, 1), (good, 0)):
                assert metrics[series % (number, SIP_URI, emu.grpc_endpoint, CLIENT_ID)] == failing
            assert reason in log
        assert held(emu)[good]["upserts"] == 3  # the good one was refreshed both times
        assert held(emu)[bad]["upserts"] == 1  # the refused one is still the first, live until it lapses

        # Once the operator accepts it again, the next pass clears the error.
        emu.faults(clear=True)
        status, log = run_once(work, "--force")
        assert status == 0, log
        assert read_health(work)["failures"] == [] and held(emu)[bad]["upserts"] == 2


def test_passes_at_the_same_time_neither_corrupt_the_ledger_nor_refresh_twice(tmp_path):
    numbers = ["+47999964%02d" % index for index in range(6)]
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=CLIENTS, ttl=30) as emu:
        register(emu, work, numbers)
        # Due at once (a third of 30 s plus the 25 s look-ahead exceeds 30 s); refreshed ones get 600 s and are not.
        write_config(emu, work, schedule_interval=25.0)
        emu.config(ttl=600)
        emu.faults(latency_ms=100)
        processes = [subprocess.Popen(KEEPALIVE + ["--config", work.config, "--once"], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT) for copy in range(4)]
        outputs = [process.communicate(timeout=60)[0].decode() for process in processes]
        assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
        assert [reg["upserts"] for reg in held(emu).values()] == [2] * len(numbers)
        assert emu.calls()["by_method"]["UpsertRegistration"]["total"] == 2 * len(numbers)
        entries = SqliteLedger(work.ledger).read()
        assert sorted(entry.registration.phone_number for entry in entries.values()) == numbers
        assert all(entry.time_to_live == 600 and not entry.last_error for entry in entries.values())


def test_a_pass_never_resends_what_a_module_run_has_changed_but_not_yet_recorded(tmp_path):
    numbers = ["+47999965%02d" % index for index in range(5)]
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=CLIENTS, ttl=3600) as emu:
        register(emu, work, numbers, route_type="loop")
        write_config(emu, work)
        # A bulk module run moves every number to fork, one slow call after the other; the ledger says so (each
        # unconfirmed, claimed by the run) before the first call. A forced pass starts in the middle of it.
        emu.faults(latency_ms=400)
        options = module_options(emu, work, concurrency=1, registrations=[
            dict(phone_number=number, sip_uri=SIP_URI, route_type="fork") for number in numbers])
        results = []
        module = threading.Thread(target=lambda: results.append(ensure_from_options(options)))
        module.start()
        try:
            wait_for(lambda: emu.calls()["total"] >= 1, 10, interval=0.02, message="the module run is under way")
            status, log = run_once(work, "--force")
        finally:
            module.join(30)
        assert results and results[0]["changed"], results
        assert status == 0, log
        now = held(emu)
        # Had the pass gone ahead with the ledger's old fields, some numbers would be back on loop; it left every
        # entry to the run that claimed it.
        assert sorted((number, reg["route_type"], reg["upserts"]) for number, reg in now.items()) == [
            (number, "ROUTE_TYPE_FORK", 2) for number in numbers]
        assert all(entry.registration.route_type == "fork" for entry in SqliteLedger(work.ledger).read().values())


def test_a_delete_that_failed_is_never_renewed_and_is_sent_again_by_the_next_run(tmp_path):
    work = Workdir(tmp_path)
    kept, removed = "+4799996201", "+4799996202"
    with running_emulator(tmp_path / "emu", clients=CLIENTS) as emu:
        register(emu, work, [kept, removed])
        absent = module_options(emu, work, phone_number=removed, sip_uri=SIP_URI, state="absent", retries=0,
                                timeout=2.0)
        emu.faults(unavailable=1)  # the delete fails; as far as the ledger can tell, it may have been carried out
        with pytest.raises(ApiError, match="UNAVAILABLE"):
            ensure_from_options(absent)
        # Nothing forgotten: the entry stays, marked.
        pending = dict((entry.registration.phone_number, entry.delete_pending)
                       for entry in SqliteLedger(work.ledger).read().values())
        assert pending == {kept: False, removed: True}

        # The keepalive renews the one that stays and not the one asked away, and says so.
        upserts = dict((number, reg["upserts"]) for number, reg in held(emu).items())
        write_config(emu, work)
        status, log = run_once(work, "--force")
        assert status == 0, log
        assert dict((number, reg["upserts"]) for number, reg in held(emu).items()) == {
            kept: upserts[kept] + 1, removed: upserts[removed]}
        failures = read_health(work)["failures"]
        assert [failure["phone_number"] for failure in failures] == [removed]
        assert failures[0]["error"].startswith("not refreshed: it was asked to be deleted, and the delete has not "
                                               "succeeded yet (")

        # Asked present again instead, it would be upserted as new, and renewed from then on.
        emu.faults(unavailable=1)
        with pytest.raises(ApiError, match="UNAVAILABLE"):
            ensure_from_options(absent)
        back = ensure_from_options(dict(absent, state="present", route_type="loop"))
        assert back["changed"] and back["registration"]["phone_number"] == removed
        assert not any(entry.delete_pending for entry in SqliteLedger(work.ledger).read().values())
        emu.faults(unavailable=1)
        with pytest.raises(ApiError, match="UNAVAILABLE"):
            ensure_from_options(absent)

        # The next run asking for it absent deletes it at the emulator and drops it from the ledger.
        again = ensure_from_options(absent)
        assert again["changed"] and not again.get("failed")
        assert sorted(held(emu)) == [kept]
        assert [entry.registration.phone_number for entry in SqliteLedger(work.ledger).read().values()] == [kept]


def test_deletes_a_stopped_run_never_sent_are_not_renewed_either(tmp_path):
    work = Workdir(tmp_path)
    numbers = ["+4799996301", "+4799996302", "+4799996303"]
    with running_emulator(tmp_path / "emu", clients=CLIENTS) as emu:
        register(emu, work, numbers)
        emu.faults(unavailable_for=30)  # the API is down: the first delete fails, the run sends no other
        result = ensure_from_options(module_options(
            emu, work, registrations=[dict(phone_number=number, sip_uri=SIP_URI, state="absent")
                                      for number in numbers[:2]], concurrency=1, retries=0, timeout=1.0))
        emu.faults(clear=True)
        assert [item["result"] for item in result["results"]] == ["failed", "not_sent"]
        pending = dict((entry.registration.phone_number, entry.delete_pending)
                       for entry in SqliteLedger(work.ledger).read().values())
        assert pending == {numbers[0]: True, numbers[1]: True, numbers[2]: False}
