# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pbx role's inventory check: every problem is named by its variable, valid input comes back normalised."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.wgtwo.sipbreakout.plugins.filter.pbx_plan import FilterModule, pbx_plan

GOOD = {
    "sipbreakout_sip_uri": "SIPS:pbx1.example.net:5061",
    "sipbreakout_mobile_originating_prefix": "11",
    "sipbreakout_mobile_terminating_prefix": "22",
    "sipbreakout_registrations": [
        {"phone_number": "+47 9999-0000", "route_type": "loop"},
        {"phone_number": "+4799990001", "route_type": "fallback", "sip_uri": "sips:edge.example.net"},
        {"phone_number": "+4799990002", "state": "absent"},
        {"phone_number": "+4799990003", "route_type": "loop_mt", "mobile_terminating_prefix": "33"},
    ],
    "sipbreakout_core_sources": ["54.72.237.8/32", "52.209.193.98", "2001:db8::/32"],
    "sipbreakout_backends": ["sip:10.0.0.5:5060", "sip:pbx.internal;transport=TCP", "sip:[2001:db8::5]:5061"],
    "sipbreakout_core_uri": "sips:sbc.example.net:5061",
}


def with_changes(**changes):
    variables = dict(GOOD)
    variables.update(changes)
    return variables


def test_the_filter_is_registered():
    assert FilterModule().filters()["pbx_plan"] is pbx_plan


def test_good_variables_come_back_normalised():
    plan = pbx_plan(GOOD)
    assert plan["problems"] == []
    assert plan["sip_uri"] == "sips:pbx1.example.net:5061"
    assert [entry["phone_number"] for entry in plan["registrations"]] == [
        "+4799990000", "+4799990001", "+4799990002", "+4799990003"]
    first = plan["registrations"][0]
    assert first == dict(index=0, phone_number="+4799990000", sip_uri="sips:pbx1.example.net:5061",
                         route_type="loop", state="present", mobile_originating_prefix="11",
                         mobile_terminating_prefix="22")
    assert plan["registrations"][2]["route_type"] is None
    assert plan["present_numbers"] == ["+4799990000", "+4799990001", "+4799990003"]
    assert plan["sip_uri_hosts"] == ["pbx1.example.net", "edge.example.net"]
    assert plan["mobile_originating_prefixes"] == ["11"]
    assert plan["mobile_terminating_prefixes"] == ["22", "33"]
    assert plan["prefixes"] == [dict(prefix="11", direction="mo"), dict(prefix="22", direction="mt"),
                                dict(prefix="33", direction="mt")]
    assert [source["cidr"] for source in plan["core_sources"]] == [
        "54.72.237.8/32", "52.209.193.98/32", "2001:db8::/32"]
    assert plan["core_sources"][0] == dict(network="54.72.237.8", prefix_length=32, cidr="54.72.237.8/32")
    assert plan["backends"] == [
        dict(uri="sip:10.0.0.5:5060", host="10.0.0.5", port=5060, transport="udp"),
        dict(uri="sip:pbx.internal;transport=TCP", host="pbx.internal", port=None, transport="tcp"),
        dict(uri="sip:[2001:db8::5]:5061", host="[2001:db8::5]", port=5061, transport="udp"),
    ]
    assert (plan["core_uri"], plan["core_host"], plan["core_port"]) == (
        "sips:sbc.example.net:5061", "sbc.example.net", 5061)


def test_longest_prefix_first():
    plan = pbx_plan(with_changes(sipbreakout_registrations=[
        {"phone_number": "+4799990000", "route_type": "loop", "mobile_originating_prefix": "1234"}]))
    assert plan["problems"] == []
    assert [entry["prefix"] for entry in plan["prefixes"]] == ["1234", "11", "22"]


def test_core_uri_without_port():
    plan = pbx_plan({"sipbreakout_core_uri": "sips:sbc.example.net"})
    assert (plan["core_host"], plan["core_port"], plan["problems"]) == ("sbc.example.net", None, [])


def test_the_core_uri_may_list_several_addresses_tried_in_order():
    plan = pbx_plan({"sipbreakout_core_uri": ["SIPS:sbc1.example.net:5061", "sips:192.0.2.7"],
                     "sipbreakout_edge_core_names": []})
    assert plan["problems"] == []
    assert plan["core_uris"] == [dict(uri="sips:sbc1.example.net:5061", host="sbc1.example.net", port=5061),
                                 dict(uri="sips:192.0.2.7", host="192.0.2.7", port=None)]
    # The first address is the one a single URI gave before.
    assert (plan["core_uri"], plan["core_host"], plan["core_port"]) == (
        "sips:sbc1.example.net:5061", "sbc1.example.net", 5061)
    # Without names of its own, the core's certificate must name the host of one of its addresses.
    assert plan["core_names"] == ["sbc1.example.net", "192.0.2.7"]


def test_the_names_of_the_core_when_given():
    plan = pbx_plan({"sipbreakout_core_uri": "sips:sbc.example.net",
                     "sipbreakout_edge_core_names": ["SBC.Operator.example", "*.operator.example", "[2001:db8::0:1]",
                                                     "sbc.operator.example"]})
    assert plan["problems"] == []
    assert plan["core_names"] == ["sbc.operator.example", "*.operator.example", "2001:db8::1"]


@pytest.mark.parametrize("changes, message", [
    (dict(sipbreakout_sip_uri="sip:pbx1.example.net"),
     "sipbreakout_sip_uri: 'sip:pbx1.example.net' is not secure SIP"),
    (dict(sipbreakout_sip_uri=""), "sipbreakout_sip_uri: is required"),
    (dict(sipbreakout_mobile_originating_prefix="1a"),
     "sipbreakout_mobile_originating_prefix: '1a' is not a prefix"),
    (dict(sipbreakout_mobile_terminating_prefix=0),
     'sipbreakout_mobile_terminating_prefix: 0 is a number, not a string of digits: quote it in YAML ("00"'),
    (dict(sipbreakout_registrations=[{"phone_number": "+4799990000", "route_type": "loop",
                                      "mobile_originating_prefix": 9}]),
     "sipbreakout_registrations[0].mobile_originating_prefix: 9 is a number"),
    (dict(sipbreakout_mobile_terminating_prefix=""),
     "sipbreakout_mobile_terminating_prefix: is required: the SIP edge tells MO from MT calls by this prefix"),
    (dict(sipbreakout_mobile_terminating_prefix="11"),
     "sipbreakout_mobile_originating_prefix: MO prefix '11' equals the MT prefix of "
     "sipbreakout_mobile_terminating_prefix"),
    (dict(sipbreakout_mobile_terminating_prefix="112"),
     "sipbreakout_mobile_originating_prefix: MO prefix '11' and the MT prefix '112' of "
     "sipbreakout_mobile_terminating_prefix start alike"),
    (dict(sipbreakout_registrations=[{"phone_number": "+47abc", "route_type": "loop"}]),
     "sipbreakout_registrations[0].phone_number: '+47abc' is not an E.164 number"),
    (dict(sipbreakout_registrations=[{"phone_number": "4799990000", "route_type": "loop"}]),
     "sipbreakout_registrations[0].phone_number: '4799990000' has no leading '+'"),
    (dict(sipbreakout_registrations=[{"route_type": "loop"}]),
     "sipbreakout_registrations[0].phone_number: is required"),
    (dict(sipbreakout_registrations=[{"phone_number": 4791110001, "route_type": "loop"}]),
     "sipbreakout_registrations[0].phone_number: 4791110001 is a number, not text: YAML reads an unquoted "
     "+4791110001 as the integer 4791110001 and drops its '+'; quote it: \"+4791110001\""),
    (dict(sipbreakout_registrations=[{"phone_number": "+4791110001", "route_type": "loop",
                                      "mobile_terminating_prefix": "22\n"}]),
     "sipbreakout_registrations[0].mobile_terminating_prefix: \"22\\n\" holds a control character (U+000A, a line "
     "break)"),
    (dict(sipbreakout_sip_uri="sips:pbx1.exa\tmple.net"),
     "sipbreakout_sip_uri: \"sips:pbx1.exa\\tmple.net\" holds a control character (U+0009)"),
    (dict(sipbreakout_registrations=[{"phone_number": "+4799990000"}]),
     "sipbreakout_registrations[0].route_type: is required with state=present"),
    (dict(sipbreakout_registrations=[{"phone_number": "+4799990000", "route_type": "loopy"}]),
     "sipbreakout_registrations[0].route_type: 'loopy' is not a route type"),
    (dict(sipbreakout_registrations=[{"phone_number": "+4799990000", "route_type": "loop", "state": "gone"}]),
     "sipbreakout_registrations[0].state: 'gone' is not a state"),
    (dict(sipbreakout_registrations=[{"phone_number": "+4799990000", "route_type": "loop", "sip_uri": "sip:x"}]),
     "sipbreakout_registrations[0].sip_uri: 'sip:x' is not secure SIP"),
    (dict(sipbreakout_registrations=[{"phone_number": "+4799990000", "route_type": "loop", "colour": "red"}]),
     "sipbreakout_registrations[0]: unknown key(s) colour"),
    (dict(sipbreakout_registrations=["+4799990000"]),
     "sipbreakout_registrations[0]: must be a dictionary"),
    (dict(sipbreakout_registrations={"phone_number": "+4799990000"}),
     "sipbreakout_registrations: must be a list"),
    (dict(sipbreakout_registrations=[{"phone_number": "+4799990000", "route_type": "loop"},
                                     {"phone_number": "+47 9999 0000", "route_type": "fork"}]),
     "sipbreakout_registrations[1]: +4799990000 with sip_uri sips:pbx1.example.net:5061 is already "
     "sipbreakout_registrations[0]"),
    (dict(sipbreakout_registrations=[{"phone_number": "+4799990000", "route_type": "loop",
                                      "mobile_terminating_prefix": "11"}]),
     "sipbreakout_mobile_originating_prefix: MO prefix '11' equals the MT prefix of "
     "sipbreakout_registrations[0].mobile_terminating_prefix"),
    (dict(sipbreakout_core_sources=[]), "sipbreakout_core_sources: must be a non-empty list"),
    (dict(sipbreakout_core_sources=["10.0.0.1/24"]),
     "sipbreakout_core_sources[0]: '10.0.0.1/24' has host bits set; the network is 10.0.0.0/24"),
    (dict(sipbreakout_core_sources=["sbc.example.net"]),
     "sipbreakout_core_sources[0]: 'sbc.example.net' is not an IP address or network"),
    (dict(sipbreakout_backends=[]), "sipbreakout_backends: must be a non-empty list"),
    (dict(sipbreakout_backends=["10.0.0.5:5060"]),
     "sipbreakout_backends[0]: '10.0.0.5:5060' is not a SIP URI"),
    (dict(sipbreakout_backends=["sip:10.0.0.5;transport=sctp"]),
     "sipbreakout_backends[0]: 'sip:10.0.0.5;transport=sctp' has transport 'sctp'"),
    (dict(sipbreakout_backends=["sip:10.0.0.5:70000"]),
     "sipbreakout_backends[0]: 'sip:10.0.0.5:70000' has port 70000"),
    (dict(sipbreakout_backends=["sip:300.1.1.1"]),
     "sipbreakout_backends[0]: 'sip:300.1.1.1' is not a SIP URI"),
    (dict(sipbreakout_core_uri="sip:sbc.example.net"),
     "sipbreakout_core_uri: 'sip:sbc.example.net' is not secure SIP"),
    (dict(sipbreakout_core_uri=[]), "sipbreakout_core_uri: is an empty list"),
    (dict(sipbreakout_core_uri=["sips:sbc1.example.net", "sip:sbc2.example.net"]),
     "sipbreakout_core_uri[1]: 'sip:sbc2.example.net' is not secure SIP"),
    (dict(sipbreakout_core_uri=["sips:sbc1.example.net", "SIPS:SBC1.example.net"]),
     "sipbreakout_core_uri[1]: sips:sbc1.example.net is already in the list"),
    (dict(sipbreakout_backends=["sips:10.0.0.5"]),
     "sipbreakout_backends[0]: 'sips:10.0.0.5' asks for TLS; the edge reaches backends over UDP or TCP only"),
    (dict(sipbreakout_backends=["sip:10.0.0.5;transport=TLS"]),
     "sipbreakout_backends[0]: 'sip:10.0.0.5;transport=TLS' asks for TLS"),
    (dict(sipbreakout_edge_core_names=["sbc..example"]),
     "sipbreakout_edge_core_names[0]: 'sbc..example' is not a DNS name, '*.DOMAIN' or an IP address"),
    (dict(sipbreakout_edge_core_names=["a.*.example"]),
     "sipbreakout_edge_core_names[0]: 'a.*.example' is not a DNS name"),
    (dict(sipbreakout_edge_core_names="sbc.example.net"),
     "sipbreakout_edge_core_names: must be a list of names"),
])
def test_problems_name_the_variable(changes, message):
    problems = pbx_plan(with_changes(**changes))["problems"]
    assert any(problem.startswith(message) for problem in problems), problems


def test_every_problem_is_reported_at_once():
    problems = pbx_plan(with_changes(sipbreakout_sip_uri="sip:x", sipbreakout_core_uri="sip:y",
                                     sipbreakout_backends=["nonsense"]))["problems"]
    assert [problem.split(":")[0] for problem in problems] == [
        "sipbreakout_sip_uri", "sipbreakout_backends[0]", "sipbreakout_core_uri"]


def test_only_the_keys_given_are_checked():
    plan = pbx_plan({"sipbreakout_registrations": [
        {"phone_number": "+47 9999 0000", "route_type": "loop"},
        {"phone_number": "+4799990001", "route_type": "loop", "state": "absent"}]})
    assert plan["problems"] == []
    assert plan["present_numbers"] == ["+4799990000"]
    assert plan["sip_uri_hosts"] == []


def test_not_a_dictionary():
    with pytest.raises(AnsibleFilterError, match="expects a dictionary"):
        pbx_plan(["sipbreakout_sip_uri"])


FILE_HEADER = "phone_number,sip_uri,route_type,mobile_originating_prefix,mobile_terminating_prefix,state\n"


def _file_plan(tmp_path, lines, name="numbers.csv", **changes):
    path = tmp_path / name
    path.write_text(FILE_HEADER + "".join(line + "\n" for line in lines) if name.endswith(".csv")
                    else "".join(line + "\n" for line in lines))
    variables = dict(sipbreakout_registrations=[], sipbreakout_registrations_file=str(path))
    variables.update(changes)
    return str(path), pbx_plan(with_changes(**variables))


def test_a_registrations_file_counts_its_hosts_and_prefixes_but_lists_no_numbers(tmp_path):
    path, plan = _file_plan(tmp_path, [
        "+4799990000,sips:pbx1.example.net:5061,loop,11,22,",
        "+4799990001,sips:edge.example.net,fallback,11,33,",
        "+4799990002,sips:gone.example.net,,,,absent",
        "+4799990003,sips:edge.example.net,loop,44,22,"])
    assert plan["problems"] == []
    assert plan["registrations_file"] == dict(path=path, format="csv", present=3, absent=1)
    assert plan["registrations"] == [] and plan["present_numbers"] == []
    # The absent line's host needs no certificate; its empty prefixes are no problem.
    assert plan["sip_uri_hosts"] == ["pbx1.example.net", "edge.example.net"]
    assert plan["mobile_originating_prefixes"] == ["11", "44"]
    assert plan["mobile_terminating_prefixes"] == ["22", "33"]


def test_the_lines_of_a_registrations_file_are_checked_and_named(tmp_path):
    path, plan = _file_plan(tmp_path, [
        "+4799990000,sips:pbx1.example.net:5061,loop,11,22,",
        ",sips:pbx1.example.net:5061,loop,11,22,",
        "+4799990002,sips:pbx1.example.net:5061,loop,,22,",
        "+4799990003,sip:pbx1.example.net,loop,11,22,",
        "+4799990000,sips:pbx1.example.net:5061,fork,11,22,"])
    where = "sipbreakout_registrations_file (%s) line" % path
    assert plan["problems"] == [
        "%s 3: phone_number: is required: the number this line registers, such as '+4799990000'" % where,
        "%s 4: +4799990002: mobile_originating_prefix: is empty: the SIP edge tells MO from MT calls by the prefix, "
        "and the lines of sipbreakout_registrations_file do not take sipbreakout_mobile_originating_prefix; give it "
        "on every line" % where,
        "%s 5: +4799990003: sip_uri: 'sip:pbx1.example.net' is not secure SIP: the operator only accepts 'sips:' "
        "URIs (it answers 'Secure SIP domain name required'); use 'sips:pbx1.example.net'" % where,
        "%s 6: +4799990000 -> sips:pbx1.example.net:5061 is on line 2 already; each registration may be declared "
        "once" % where]
    assert plan["registrations_file"] is None


def test_a_registrations_file_prefix_that_clashes_is_named_with_its_line(tmp_path):
    path, plan = _file_plan(tmp_path, ['{"phone_number": "+4799990000", "sip_uri": "sips:pbx1.example.net:5061", '
                                       '"route_type": "loop", "mobile_originating_prefix": "223", '
                                       '"mobile_terminating_prefix": "22"}'], name="numbers.jsonl")
    assert plan["problems"] == [
        "sipbreakout_registrations_file (%s) line 1.mobile_originating_prefix: MO prefix '223' and the MT prefix "
        "'22' of sipbreakout_mobile_terminating_prefix start alike, so a number starting with '223' could be "
        "either; use prefixes where neither is the start of the other" % path]


@pytest.mark.parametrize("lines, changes, message", [
    ([], {}, "sipbreakout_registrations_file ({path}): holds no registration; an empty file is refused (a copy cut "
             "short must not count as no numbers)"),
    (["+4799990000,sips:pbx1.example.net:5061,loop,11,22,"],
     dict(sipbreakout_registrations=[{"phone_number": "+4799990001", "route_type": "loop"}]),
     "sipbreakout_registrations_file: cannot be combined with sipbreakout_registrations; give the host's numbers "
     "in one of them"),
])
def test_a_registrations_file_that_cannot_be_used(tmp_path, lines, changes, message):
    path, plan = _file_plan(tmp_path, lines, **changes)
    assert plan["problems"] == [message.format(path=path)]


def test_a_registrations_file_that_cannot_be_read(tmp_path):
    missing = str(tmp_path / "missing.csv")
    assert pbx_plan({"sipbreakout_registrations_file": missing})["problems"] == [
        "sipbreakout_registrations_file: %s does not exist on this host" % missing]
    many = [",sips:pbx1.example.net,loop,11,22,"] * 25
    path, plan = _file_plan(tmp_path, many)
    assert len(plan["problems"]) == 21
    assert plan["problems"][-1] == "sipbreakout_registrations_file (%s): 5 more problem(s) after these" % path
