# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""wgtwo.sipbreakout.registration_info, run by ansible-playbook, reports live, expiring, lapsed and error states
that match what the emulator holds, in check mode too, and never calls the API."""

import json
import os
import subprocess
import sys
import time

import ansible_collections
import pytest

from sipbreakout_emulator.testing import running_emulator

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ApiError

from keepalive_support import CLIENT_ID, CLIENT_SECRET, Workdir, register, run_once, write_config

COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])
LIVE, EXPIRING, LAPSED, FAILED = "+4799998001", "+4799998002", "+4799998003", "+4799998004"
# Long enough that a loaded machine's slow playbook stays inside the default window's margin (a third of it).
EXPIRING_TTL = 90.0
# The keepalive on this host refreshes with 95 % of the TTL left; registration_info takes that from its health file.
REFRESH_FRACTION = 0.95

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Report
      wgtwo.sipbreakout.registration_info:
        ledger_path: "{{ work }}/state/ledger.json"
        health_path: "{{ work }}/state/health.json"
        list: true
      register: normal

    - name: Report in check mode
      wgtwo.sipbreakout.registration_info:
        ledger_path: "{{ work }}/state/ledger.json"
        health_path: "{{ work }}/state/health.json"
        list: true
      check_mode: true
      register: checked

    - name: What the emulator holds right after
      ansible.builtin.uri:
        url: "{{ admin_url }}/registrations"
        ca_path: "{{ ca_path }}"
      register: emulator

    - name: Report without the health file
      wgtwo.sipbreakout.registration_info:
        ledger_path: "{{ work }}/state/ledger.json"
        list: true
      register: plain

    - name: Report with a wider expiry window
      wgtwo.sipbreakout.registration_info:
        ledger_path: "{{ work }}/state/ledger.json"
        expiring_within: 7200
        list: true
      register: wide

    - name: Counts only (the default)
      wgtwo.sipbreakout.registration_info:
        ledger_path: "{{ work }}/state/ledger.json"
      register: counts

    - name: The failing and lapsed ones, one at most
      wgtwo.sipbreakout.registration_info:
        ledger_path: "{{ work }}/state/ledger.json"
        health_path: "{{ work }}/state/health.json"
        list: true
        filter:
          state: [error, lapsed]
          phone_number_prefix: "+47 9999"
        limit: 1
      register: filtered

    - name: A filter without list
      wgtwo.sipbreakout.registration_info:
        ledger_path: "{{ work }}/state/ledger.json"
        filter:
          state: [error]
      register: refused
      ignore_errors: true

    - name: Keep the results
      ansible.builtin.copy:
        content: "{{ {'normal': normal, 'checked': checked, 'plain': plain, 'wide': wide, 'counts': counts,
                      'filtered': filtered, 'refused': refused, 'emulator': emulator.json} | to_json }}"
        dest: "{{ work }}/results.json"
        mode: "0600"
"""


def _states(result):
    return dict((item["phone_number"], item["state"]) for item in result["registrations"])


def test_registration_info_reports_each_state_as_the_emulator_has_it(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=3600) as emu:
        register(emu, work, [LIVE, FAILED])
        # A later refresh of FAILED fails (the API is down): the module keeps the entry, with the error.
        emu.faults(unavailable_for=30)
        with pytest.raises(ApiError):
            register(emu, work, [FAILED], timeout=1.0, retries=1)
        emu.faults(clear=True)
        write_config(emu, work, schedule_interval=1.0, refresh_fraction=REFRESH_FRACTION, jitter=0.05)
        status, log = run_once(work)  # nothing is due: only the health file is written
        assert status == 0, log
        emu.config(ttl=EXPIRING_TTL)
        register(emu, work, [EXPIRING])
        registered = time.monotonic()
        emu.config(ttl=1)
        register(emu, work, [LAPSED])

        # Inside the keepalive's refresh window (95 % of the TTL left), far from lapsing.
        time.sleep(max(0.0, registered + EXPIRING_TTL * (1 - REFRESH_FRACTION) + 0.2 - time.monotonic()))
        calls = emu.calls()
        playbook = tmp_path / "info.yml"
        playbook.write_text(PLAYBOOK)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        run = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                              "ansible_python_interpreter=%s" % sys.executable, "-e", "work=%s" % work.root,
                              "-e", "admin_url=%s" % emu.admin_url, "-e", "ca_path=%s" % emu.ca_path,
                              str(playbook)], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
        assert emu.calls()["total"] == calls["total"] and emu.calls()["token_requests"] == calls["token_requests"]

    with open(os.path.join(work.root, "results.json")) as handle:
        results = json.load(handle)
    # What the emulator held right after the reports decides; the module must agree with it.
    now = dict((reg["phone_number"], reg) for reg in results["emulator"])
    assert sorted(now) == sorted([LIVE, EXPIRING, FAILED]) and LAPSED not in now
    assert 0 < now[EXPIRING]["remaining_ttl"] < EXPIRING_TTL * REFRESH_FRACTION
    assert now[LIVE]["remaining_ttl"] > 3000
    expected = {LIVE: "live", EXPIRING: "expiring", LAPSED: "lapsed", FAILED: "error"}
    for name in ("normal", "checked"):
        result = results[name]
        assert result["changed"] is False
        assert _states(result) == expected, name
        assert result["states"] == {"live": 1, "expiring": 1, "lapsed": 1, "error": 1}
        assert result["registrations_live"] == 3 and result["registrations_total"] == 4
        assert [failure["phone_number"] for failure in result["failures"]] == [FAILED]
        by_number = dict((item["phone_number"], item) for item in result["registrations"])
        assert by_number[FAILED]["last_result"] == "failed" and "UNAVAILABLE" in by_number[FAILED]["last_error"]
        assert by_number[LIVE]["last_result"] == "ok" and by_number[LIVE]["last_error"] is None
        assert by_number[LAPSED]["seconds_left"] == 0
        assert by_number[LIVE]["expires_at"].endswith("Z")
    assert results["plain"]["keepalive"] is None
    assert _states(results["plain"])[EXPIRING] == "live"  # the default window is a third of the TTL
    keepalive = results["normal"]["keepalive"]
    assert keepalive["found"] and not keepalive["stale"] and keepalive["age_seconds"] < 60
    assert [failure["phone_number"] for failure in keepalive["failures"]] == [FAILED]
    assert _states(results["wide"])[LIVE] == "expiring"
    counts = results["counts"]
    assert "registrations" not in counts and counts["states"] == results["plain"]["states"]
    # Soonest first, as the emulator counts down what it holds.
    assert [item["phone_number"] for item in counts["nearest_expiries"]] == sorted(
        now, key=lambda number: now[number]["remaining_ttl"])
    filtered = results["filtered"]
    assert (filtered["registrations_matched"], filtered["registrations_omitted"]) == (2, 1)
    assert [item["state"] for item in filtered["registrations"]] in (["error"], ["lapsed"])
    assert filtered["filter"] == {"states": ["error", "lapsed"], "phone_number_prefix": "+479999"}
    assert results["refused"]["failed"] and results["refused"]["option"] == "filter"
    assert "set list: true" in results["refused"]["msg"]
