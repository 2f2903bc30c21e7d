# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registrations list: every problem of every item at once, by index and number; the top-level values as the
defaults of the items that do not set their own."""

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration_list import declared_items
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registrations_file import MAX_PROBLEMS

URI = "sips:pbx.example.com:5061"


def _problems(entries, **options):
    with pytest.raises(ValidationError) as caught:
        declared_items(entries, options)
    assert caught.value.option == "registrations"
    return str(caught.value).split("\n")


def test_an_item_takes_each_top_level_value_it_does_not_set_itself():
    items = declared_items(
        [{"phone_number": "+4799990000"},
         {"phone_number": "+4799990001", "route_type": "fallback", "mobile_terminating_prefix": "33"},
         {"phone_number": "+4799990002", "sip_uri": "sips:other.example.com", "mobile_originating_prefix": None,
          "route_type": ""},
         {"phone_number": "+4799990003", "state": "absent"}],
        dict(sip_uri=URI, route_type="loop", mobile_originating_prefix="11", mobile_terminating_prefix="22",
             state="present"))
    assert [(item.registration, item.state, item.index) for item in items] == [
        (Registration("+4799990000", URI, "loop", "11", "22"), "present", 0),
        (Registration("+4799990001", URI, "fallback", "11", "33"), "present", 1),
        (Registration("+4799990002", "sips:other.example.com", "loop", "11", "22"), "present", 2),
        (Registration("+4799990003", URI, "loop", "11", "22"), "absent", 3)]


def test_a_top_level_state_absent_is_the_default_of_every_item():
    items = declared_items([{"phone_number": "+4799990000"}, {"phone_number": "+4799990001", "state": "present",
                                                              "route_type": "fork"}],
                           dict(sip_uri=URI, state="absent"))
    assert [(item.state, item.registration.route_type) for item in items] == [("absent", None), ("present", "fork")]


def test_every_problem_of_every_item_is_named_at_once_with_its_index_and_number():
    lines = _problems(
        [{"phone_number": "+4791110000"},
         4791110001,
         {"phone_number": 4791110002},
         {"phone_number": "+4791110003", "route-type": "loop"},
         {"phone_number": "+4791110004", "route_type": "loop-mo", "mobile_terminating_prefix": 0},
         {"phone_number": "+4791110005", "state": "presnet"},
         {"phone_number": "+4791110006", "route_type": "fallbak"},
         {"phone_number": "+4791110000"}],
        sip_uri=URI, route_type="loop")
    assert lines == [
        "registrations: 7 invalid item(s), nothing was sent:",
        "registrations[1]: is a number (4791110001), not a mapping of the item's options (phone_number, sip_uri, "
        "route_type, mobile_originating_prefix, mobile_terminating_prefix, state), such as "
        "{phone_number: '+4799990000'}",
        "registrations[2].phone_number: 4791110002 is a number, not text: YAML reads an unquoted +4791110002 as the "
        "integer 4791110002 and drops its '+'; quote it: \"+4791110002\"",
        "+4791110003: registrations[3]: unknown option 'route-type'; an item takes phone_number, sip_uri, route_type, "
        "mobile_originating_prefix, mobile_terminating_prefix, state; did you mean 'route_type'?",
        "+4791110004: registrations[4].route_type: 'loop-mo' is not a route type; one of loop, fork, fallback, "
        "loop_mo, loop_mt, ingress; did you mean 'loop_mo'?",
        "+4791110004: registrations[4].mobile_terminating_prefix: 0 is a number, not a string of digits: quote it in "
        "YAML (\"00\", not 00, which YAML reads as 0)",
        "+4791110005: registrations[5].state: 'presnet' is not a state; one of present, absent; did you mean "
        "'present'?",
        "+4791110006: registrations[6].route_type: 'fallbak' is not a route type; one of loop, fork, fallback, "
        "loop_mo, loop_mt, ingress; did you mean 'fallback'?",
        "registrations[7]: +4791110000 -> sips:pbx.example.com:5061 appears more than once: it is registrations[0] "
        "too; each registration may be declared once"]


def test_a_refused_top_level_value_is_named_once_not_for_every_item():
    lines = _problems([{"phone_number": "+479999%04d" % index} for index in range(50)],
                      sip_uri="sips:pbx.example.com\n", route_type="loop")
    assert lines == ["registrations: invalid top-level values, nothing was sent:",
                     "sip_uri: \"sips:pbx.example.com\\n\" holds a control character (U+000A, a line break) at "
                     "position 21: a value is one line of printable text. Remove it; a YAML block scalar ('|' or '>') "
                     "ends in a line break unless written '|-' or '>-'"]


def test_what_an_item_lacks_without_a_top_level_value_is_named():
    lines = _problems([{"phone_number": "+4799990000"}, {"phone_number": "+4799990001", "state": "absent",
                                                         "sip_uri": URI}])
    assert lines[1:] == [
        "+4799990000: registrations[0].route_type: is required with state=present, in the item or as the top-level "
        "route_type; one of loop, fork, fallback, loop_mo, loop_mt, ingress",
        "+4799990000: registrations[0].sip_uri: is required, in the item or as the top-level sip_uri, for example "
        "'sips:pbx.example.com:5061'"]


def test_many_problems_are_counted_beyond_the_first():
    lines = _problems([{"phone_number": index} for index in range(100)], sip_uri=URI, route_type="loop")
    assert lines[0] == "registrations: 100 invalid item(s), nothing was sent:"
    assert len(lines) == 1 + MAX_PROBLEMS + 1 and lines[-1] == "... and %d more problem(s)" % (100 - MAX_PROBLEMS)


def test_what_the_credentials_demand_and_the_key_of_the_run_are_applied():
    def demand(registration):
        if not registration.phone_number:
            raise ValidationError("phone_number", "is required with client_id/client_secret")
    with pytest.raises(ValidationError) as caught:
        declared_items([{"sip_uri": URI, "route_type": "loop"}], {}, demand=demand)
    assert str(caught.value).split("\n")[1] == \
        "registrations[0].phone_number: is required with client_id/client_secret"
    # With a user token every number is the token's: two numbers at one URI are one registration.
    with pytest.raises(ValidationError) as caught:
        declared_items([{"phone_number": "+4799990000"}, {"phone_number": "+4799990001"}],
                       dict(sip_uri=URI, route_type="loop"), key=lambda registration: registration.sip_uri)
    assert "registrations[1]: +4799990001 -> %s appears more than once: it is registrations[0] too" % URI \
        in str(caught.value)
