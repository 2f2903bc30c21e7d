# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input is refused before any call, one message per mistake and all of them at once, as a user meets it:

* a line break or another control character in any field the module validates, in a single task, an item of a list
  and a line of a registrations file (patterns match whole values: '$' would let a final line break through);
* YAML read by ansible-playbook itself: an unquoted +4791110001 is an integer (in the single option, in a list
  item, and through the pbx role's filter, where it was a ``_AnsibleTaggedInt``), an item that is not a mapping,
  a misspelt option or value (with the nearest valid one), each named with its item's index and number.

Every test ends at the emulator: it saw no call and no token request."""

import json
import os

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registrations_file import MAX_PROBLEMS
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options

from sipbreakout_emulator.testing import running_emulator

from module_process import CONNECTION_DEFAULTS, run_module, run_playbook

CLIENT_ID, CLIENT_SECRET = "input-client", "input-Secret-5521"
GOOD = dict(phone_number="+4799990000", sip_uri="sips:pbx.example.com:5061", route_type="loop",
            mobile_originating_prefix="11", mobile_terminating_prefix="22", state="present")
# A final line break, one inside, and other control characters inside (the C0 and C1 ranges, DEL, U+2028).
DEFECTS = [("trailing line feed", lambda value: value + "\n"),
           ("embedded line feed", lambda value: value[:3] + "\n" + value[3:]),
           ("trailing carriage return", lambda value: value + "\r"),
           ("embedded tab", lambda value: value[:2] + "\t" + value[2:]),
           ("embedded NUL", lambda value: value[:2] + "\x00" + value[2:]),
           ("trailing DEL", lambda value: value + "\x7f"),
           ("embedded NEL", lambda value: value[:2] + "\x85" + value[2:]),
           ("embedded line separator", lambda value: value[:2] + "\u2028" + value[2:])]
CASES = [(field, name, defect) for field in GOOD for name, defect in DEFECTS]


def _bad(field, defect, number):
    """GOOD with ``field`` spoilt by ``defect``, for ``number``."""
    values = dict(GOOD, phone_number="+479999%04d" % number)
    values[field] = defect(values[field])
    return values


def _connection(emu, tmp_path):
    return dict(api_endpoint=emu.grpc_endpoint, ca_path=emu.ca_path, token_url=emu.token_url, client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET, ledger_path=str(tmp_path / "ledger.db"),
                token_cache_path=str(tmp_path / "tokens.json"))


def _nothing_reached(emu, tmp_path):
    calls = emu.calls(limit=0)
    assert (calls["total"], calls["token_requests"]) == (0, 0), calls
    assert emu.registrations() == []
    assert not os.path.exists(str(tmp_path / "ledger.db"))


def test_a_control_character_in_any_field_is_refused_before_any_call(tmp_path):
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        connection = _connection(emu, tmp_path)
        # A single task: module_utils refuses each on its own (the argument spec's choices are not needed)...
        for index, (field, name, defect) in enumerate(CASES):
            with pytest.raises(ValidationError) as caught:
                ensure_from_options(dict(connection, **_bad(field, defect, index)))
            assert caught.value.option == field and "holds a control character" in str(caught.value), (field, name)
        # ... and the module as Ansible runs it, for each field.
        for index, field in enumerate(GOOD):
            outcome = run_module(tmp_path, dict(connection, **_bad(field, DEFECTS[0][1], index)))
            assert outcome.result["failed"], (field, outcome.result)
            assert "control character" in outcome.result["msg"] or "must be one of" in outcome.result["msg"], \
                outcome.result["msg"]
        # A list with every case as an item: every one is named.
        items = [_bad(field, defect, index) for index, (field, _name, defect) in enumerate(CASES)]
        outcome = run_module(tmp_path, dict(connection, registrations=items))
        msg = outcome.result["msg"]
        assert msg.startswith("registrations: %d invalid item(s), nothing was sent:" % len(CASES)), msg
        assert msg.count("holds a control character") == MAX_PROBLEMS
        assert msg.endswith("... and %d more problem(s)" % (len(CASES) - MAX_PROBLEMS))
        # A file with every case as a line (JSON lines carry any character); and CSV cells with a tab, a quoted
        # line break and a carriage return.
        jsonl = tmp_path / "registrations.jsonl"
        jsonl.write_text("".join(json.dumps(item) + "\n" for item in items))
        outcome = run_module(tmp_path, dict(connection, registrations_file=str(jsonl)))
        assert ("%s has %d problem(s); nothing was sent" % (jsonl, len(CASES))) in outcome.result["msg"]
        csv_file = tmp_path / "registrations.csv"
        csv_file.write_bytes(b"phone_number,sip_uri,route_type,mobile_terminating_prefix\r\n"
                             b"+4799990001,sips:pbx.example.com:5061,loop\t,22\r\n"
                             b"+4799990002,\"sips:pbx.example\ncom:5061\",loop,22\r\n"
                             b"+4799990003,sips:pbx.example.com:5061,loop,\"22\r\"\r\n")
        outcome = run_module(tmp_path, dict(connection, registrations_file=str(csv_file)))
        msg = outcome.result["msg"]
        assert "has 3 problem(s); nothing was sent" in msg and msg.count("holds a control character") == 3, msg
        _nothing_reached(emu, tmp_path)


PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    pbx_numbers:
      - phone_number: +4791110007
        route_type: loop
  module_defaults:%s  tasks:
    - name: One number, unquoted
      wgtwo.sipbreakout.registration:
        phone_number: +4791110001
        sip_uri: sips:pbx.example.com:5061
        route_type: loop
      register: single
      ignore_errors: true

    - name: A list with a mistake in most items, and a top-level prefix YAML read as 0
      wgtwo.sipbreakout.registration:
        sip_uri: sips:pbx.example.com:5061
        route_type: loop
        mobile_terminating_prefix: 00
        registrations:
          - phone_number: "+4791110000"
          - phone_number: +4791110001
          - "+4791110002"
          - phone_number: "+4791110003"
            route-type: loop
          - phone_number: "+4791110004"
            route_type: loop-mo
          - phone_number: "+4791110005"
            state: presnet
          - phone_number: "+4791110006"
            route_type: fallbak
      register: listed
      ignore_errors: true

    - name: The pbx role's check of the inventory
      ansible.builtin.set_fact:
        planned: "{{ {'sipbreakout_registrations': pbx_numbers} | wgtwo.sipbreakout.pbx_plan }}"

    - name: Keep the results for the test
      ansible.builtin.copy:
        content: "{{ {'single': single, 'listed': listed, 'problems': planned.problems} | to_json }}"
        dest: "{{ outcome_path }}"
        mode: "0600"
""" % CONNECTION_DEFAULTS


def test_yaml_numbers_and_mistakes_in_items_are_named_all_at_once_as_ansible_playbook_reads_them(tmp_path):
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        outcome_path = tmp_path / "outcome.json"
        run = run_playbook(tmp_path, PLAY, dict(_connection(emu, tmp_path), outcome_path=str(outcome_path)))
        assert run.returncode == 0, run.stdout + run.stderr
        outcome = json.loads(outcome_path.read_text())
        _nothing_reached(emu, tmp_path)
    assert outcome["single"]["failed"] and outcome["single"]["option"] == "phone_number"
    assert outcome["single"]["msg"] == ("phone_number: 4791110001 is a number, not text: YAML reads an unquoted "
                                        "+4791110001 as the integer 4791110001 and drops its '+'; quote it: "
                                        "\"+4791110001\"")
    assert outcome["listed"]["msg"].split("\n") == [
        "registrations: 6 invalid item(s), nothing was sent:",
        "mobile_terminating_prefix: 0 is a number, not a string of digits: quote it in YAML (\"00\", not 00, which "
        "YAML reads as 0)",
        "registrations[1].phone_number: 4791110001 is a number, not text: YAML reads an unquoted +4791110001 as the "
        "integer 4791110001 and drops its '+'; quote it: \"+4791110001\"",
        "registrations[2]: is the text \"+4791110002\", not a mapping of the item's options (phone_number, sip_uri, "
        "route_type, mobile_originating_prefix, mobile_terminating_prefix, state), such as "
        "{phone_number: '+4799990000'}",
        "+4791110003: registrations[3]: unknown option 'route-type'; an item takes phone_number, sip_uri, route_type, "
        "mobile_originating_prefix, mobile_terminating_prefix, state; did you mean 'route_type'?",
        "+4791110004: registrations[4].route_type: 'loop-mo' is not a route type; one of loop, fork, fallback, "
        "loop_mo, loop_mt, ingress; did you mean 'loop_mo'?",
        "+4791110005: registrations[5].state: 'presnet' is not a state; one of present, absent; did you mean "
        "'present'?",
        "+4791110006: registrations[6].route_type: 'fallbak' is not a route type; one of loop, fork, fallback, "
        "loop_mo, loop_mt, ingress; did you mean 'fallback'?"]
    assert outcome["problems"] == [
        "sipbreakout_registrations[0].phone_number: 4791110007 is a number, not text: YAML reads an unquoted "
        "+4791110007 as the integer 4791110007 and drops its '+'; quote it: \"+4791110007\""]
    assert "Tagged" not in json.dumps(outcome)
