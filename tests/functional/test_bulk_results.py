# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run of a long ``registrations`` list returns: the top-level values as the items' defaults (seen at the
emulator), the registrations that changed or failed only, the first 1,000 with their index, the rest counted; the
list not echoed back in ``invocation`` (whose no_log values stay masked); and ``--check --diff`` showing the first
1,000 changes, not one per item."""

from sipbreakout_emulator.testing import running_emulator

from module_process import CONNECTION_DEFAULTS, run_module, run_playbook

CLIENT_ID, CLIENT_SECRET = "results-client", "results-Secret-3318"
SIP_URI = "sips:pbx.example.com:5061"
FALLBACK = (7, 700, 1100)  # the items that set their own route type


def _items(count):
    items = [dict(phone_number="+4793%07d" % index) for index in range(count)]
    for index in FALLBACK:
        items[index]["route_type"] = "fallback"
    return items


def _args(emu, tmp_path, items):
    return dict(api_endpoint=emu.grpc_endpoint, ca_path=emu.ca_path, token_url=emu.token_url, client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET, ledger_path=str(tmp_path / "ledger.db"),
                token_cache_path=str(tmp_path / "tokens.json"), registrations=items, sip_uri=SIP_URI,
                route_type="loop", mobile_originating_prefix="11", mobile_terminating_prefix="22")


def test_a_long_list_returns_what_changed_or_failed_the_first_1000_and_does_not_echo_the_list(tmp_path):
    count = 1200
    items = _items(count)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        first = run_module(tmp_path, _args(emu, tmp_path, items))
        held = emu.registrations()
        again = run_module(tmp_path, _args(emu, tmp_path, items))
        items[5]["route_type"] = "fork"
        items[1150]["state"] = "absent"
        changed = run_module(tmp_path, _args(emu, tmp_path, items))
        held_after = dict((entry["phone_number"], entry["route_type"]) for entry in emu.registrations())
    # The defaults reached the operator, and what items set themselves won.
    assert len(held) == count
    assert {(entry["sip_uri"], entry["mobile_originating_prefix"], entry["mobile_terminating_prefix"])
            for entry in held} == {(SIP_URI, "11", "22")}
    assert sorted(entry["phone_number"] for entry in held if entry["route_type"] == "ROUTE_TYPE_FALLBACK") == \
        ["+4793%07d" % index for index in FALLBACK]
    result = first.result
    assert result["summary"]["created"] == count and result["changed"]
    assert len(result["results"]) == 1000 and result["results_omitted"] == count - 1000
    assert [entry["index"] for entry in result["results"]] == list(range(1000))
    assert result["results"][7]["route_type"] == "fallback"
    # The list is summarised in invocation; the secret is masked there as before.
    module_args = result["invocation"]["module_args"]
    assert module_args["registrations"] == "%d item(s), not echoed back" % count
    assert module_args["client_secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert CLIENT_SECRET not in first.output + again.output + changed.output
    print("first run of %d: %d bytes of result" % (count, len(first.output)))
    # Nothing changed: nothing listed.
    assert again.result["summary"]["unchanged"] == count and not again.result["changed"]
    assert (again.result["results"], again.result["results_omitted"]) == ([], 0)
    # Two items changed: those two, by index.
    assert [(entry["index"], entry["phone_number"], entry["result"]) for entry in changed.result["results"]] == [
        (5, "+47930000005", "updated"), (1150, "+47930001150", "deleted")]
    assert held_after["+47930000005"] == "ROUTE_TYPE_FORK" and "+47930001150" not in held_after
    assert len(held_after) == count - 1


PLAY = """
- hosts: localhost
  gather_facts: false
  module_defaults:%s  tasks:
    - name: Every number of the list
      wgtwo.sipbreakout.registration:
        registrations: "{{ numbers }}"
        sip_uri: sips:pbx.example.com:5061
        route_type: loop
""" % CONNECTION_DEFAULTS


def test_check_diff_of_a_long_list_shows_the_first_1000_changes(tmp_path):
    count = 3000
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        args = _args(emu, tmp_path, None)
        variables = dict((key, args[key]) for key in ("api_endpoint", "ca_path", "token_url", "client_id",
                                                      "client_secret", "ledger_path", "token_cache_path"))
        variables["numbers"] = [dict(phone_number="+4793%07d" % index) for index in range(count)]
        run = run_playbook(tmp_path, PLAY, variables, "--check", "--diff")
        calls = emu.calls(limit=0)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "declared (the first 1000 changes; %d more are left out, the summary counts them all)" % (count - 1000) \
        in output
    shown = [number for number in ("+4793%07d" % index for index in range(count)) if '"%s"' % number in output]
    assert shown == ["+4793%07d" % index for index in range(1000)]
    assert (calls["total"], calls["token_requests"]) == (0, 0)
    print("--check --diff of %d: %d lines of output" % (count, len(output.splitlines())))
