# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Numbers of the pbx role's registrations files served by another host of the play too."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.wgtwo.sipbreakout.plugins.filter.pbx_shared_numbers import FilterModule, \
    pbx_shared_numbers

URI = "sips:pbx.example.net"
ONE_HOST = "a number can be served by one host only (set state: absent on the host that gives it up)"


def _file(tmp_path, name, numbers, absent=()):
    path = tmp_path / name
    path.write_text("phone_number,sip_uri,route_type,mobile_originating_prefix,mobile_terminating_prefix,state\n"
                    + "".join("%s,%s,loop,11,22,\n" % (number, URI) for number in numbers)
                    + "".join("%s,%s,,,,absent\n" % (number, URI) for number in absent))
    return str(path)


def _listed(*numbers, **states):
    return [dict(phone_number=number, route_type="loop", state=states.get("state", "present")) for number in numbers]


def test_the_filter_is_registered():
    assert FilterModule().filters()["pbx_shared_numbers"] is pbx_shared_numbers


def test_numbers_of_a_file_on_another_host_are_named_on_both(tmp_path):
    sources = {
        "pbx1": dict(registrations_file=_file(tmp_path, "pbx1.csv", ["+4799990000", "+4799990001"],
                                              absent=["+4799990005"])),
        "pbx2": dict(registrations_file="", sipbreakout_registrations=_listed("+4799990003", "+4799990001")
                     + _listed("+4799990006", state="absent")),
        "pbx3": dict(registrations_file=_file(tmp_path, "pbx3.csv", ["+4799990002", "+4799990005"],
                                              absent=["+4799990006"])),
        # Two inventory lists are the role's own check; not repeated here.
        "pbx4": dict(sipbreakout_registrations=_listed("+4799990003")),
    }
    assert pbx_shared_numbers(sources) == {
        "pbx1": ["sipbreakout_registrations_file line 3: +4799990001 also present on pbx2 "
                 "(sipbreakout_registrations[1]); " + ONE_HOST],
        "pbx2": ["sipbreakout_registrations[1]: +4799990001 also present on pbx1 "
                 "(sipbreakout_registrations_file line 3); " + ONE_HOST],
        "pbx3": [],
        "pbx4": [],
    }


def test_no_file_no_reading(tmp_path):
    sources = {"pbx1": dict(sipbreakout_registrations=_listed("+4799990000")),
               "pbx2": dict(sipbreakout_registrations=_listed("+4799990000"), registrations_file="")}
    assert pbx_shared_numbers(sources) == {"pbx1": [], "pbx2": []}


def test_many_shared_numbers_are_counted_beyond_twenty(tmp_path):
    numbers = ["+47999%05d" % index for index in range(30)]
    sources = {"pbx1": dict(registrations_file=_file(tmp_path, "a.csv", numbers)),
               "pbx2": dict(registrations_file=_file(tmp_path, "b.csv", numbers[::-1]))}
    problems = pbx_shared_numbers(sources)
    assert len(problems["pbx1"]) == len(problems["pbx2"]) == 21
    assert problems["pbx2"][0] == "sipbreakout_registrations_file line 2: +4799900029 also present on pbx1 " \
                                  "(sipbreakout_registrations_file line 31); " + ONE_HOST
    assert problems["pbx1"][-1] == "10 more number(s) also present on another host"


def test_bad_input(tmp_path):
    with pytest.raises(AnsibleFilterError) as refused:
        pbx_shared_numbers(["pbx1"])
    assert "expects a dictionary of hosts, got list" in str(refused.value)
    missing = str(tmp_path / "missing.csv")
    with pytest.raises(AnsibleFilterError) as refused:
        pbx_shared_numbers({"pbx1": dict(registrations_file=missing)})
    assert str(refused.value) == "pbx1: registrations_file: %s does not exist on this host (check it with " \
                                 "pbx_plan first)" % missing
