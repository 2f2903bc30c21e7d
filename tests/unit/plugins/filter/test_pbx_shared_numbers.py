# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Numbers of the pbx role served by another host or cluster of the play too, and cluster nodes that declare other
numbers than their cluster."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.wgtwo.sipbreakout.plugins.filter.pbx_shared_numbers import FilterModule, \
    pbx_shared_numbers

URI = "sips:pbx.example.net"
ONE_HOST = "a number can be served by one host or one cluster only (set state: absent on the one that gives it up, " \
    "or make the hosts one sipbreakout_cluster)"
GROUP_VARS = "the nodes of a cluster serve the same numbers: declare them once, in the group's variables"


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
        "pbx4": dict(sipbreakout_registrations=_listed("+4799990004")),
    }
    assert pbx_shared_numbers(sources) == {
        "pbx1": ["sipbreakout_registrations_file line 3: +4799990001 also present on pbx2 "
                 "(sipbreakout_registrations[1]); " + ONE_HOST],
        "pbx2": ["sipbreakout_registrations[1]: +4799990001 also present on pbx1 "
                 "(sipbreakout_registrations_file line 3); " + ONE_HOST],
        "pbx3": [],
        "pbx4": [],
    }


def test_two_inventory_lists():
    sources = {"pbx1": dict(sipbreakout_registrations=_listed("+4799990000", "+4799990001")),
               "pbx2": dict(sipbreakout_registrations=_listed("+4799990002", "+4799990000"), registrations_file=""),
               "pbx3": dict(sipbreakout_registrations=_listed("+4799990001", state="absent"))}
    assert pbx_shared_numbers(sources) == {
        "pbx1": ["sipbreakout_registrations[0]: +4799990000 also present on pbx2 (sipbreakout_registrations[1]); "
                 + ONE_HOST],
        "pbx2": ["sipbreakout_registrations[1]: +4799990000 also present on pbx1 (sipbreakout_registrations[0]); "
                 + ONE_HOST],
        "pbx3": []}


def _node(cluster, *numbers, **host_wide):
    source = dict(sipbreakout_registrations=_listed(*numbers), cluster=cluster, sipbreakout_sip_uri=URI,
                  sipbreakout_mobile_originating_prefix="11", sipbreakout_mobile_terminating_prefix="22")
    source.update(host_wide)
    return source


def test_the_nodes_of_a_cluster_share_their_numbers():
    sources = {"tas-a1": _node("tas-a", "+4799990000", "+4799990001"),
               "tas-a2": _node("tas-a", "+4799990001", "+4799990000"),
               "tas-a3": _node("tas-a", "+4799990000", "+4799990001"),
               "pbx9": _node("", "+4799990009")}
    assert pbx_shared_numbers(sources) == {"tas-a1": [], "tas-a2": [], "tas-a3": [], "pbx9": []}


def test_a_cluster_counts_as_one_host_against_the_others():
    sources = {"tas-a1": _node("tas-a", "+4799990000", "+4799990001"),
               "tas-a2": _node("tas-a", "+4799990000", "+4799990001"),
               "tas-b1": _node("tas-b", "+4799990001"),
               "tas-b2": _node("tas-b", "+4799990001"),
               "pbx9": _node("", "+4799990000")}
    assert pbx_shared_numbers(sources) == {
        "tas-a1": ["sipbreakout_registrations[0]: +4799990000 also present on pbx9 (sipbreakout_registrations[0]); "
                   + ONE_HOST,
                   "sipbreakout_registrations[1]: +4799990001 also present on tas-b1 (cluster tas-b) "
                   "(sipbreakout_registrations[0]); " + ONE_HOST],
        "tas-a2": [],
        "tas-b1": ["sipbreakout_registrations[0]: +4799990001 also present on tas-a1 (cluster tas-a) "
                   "(sipbreakout_registrations[1]); " + ONE_HOST],
        "tas-b2": [],
        "pbx9": ["sipbreakout_registrations[0]: +4799990000 also present on tas-a1 (cluster tas-a) "
                 "(sipbreakout_registrations[0]); " + ONE_HOST]}


def test_hosts_of_two_clusters_or_none_may_not_share_a_number():
    # The same number on two clusters, or a cluster's node and a host without one, is still refused.
    sources = {"tas-a1": _node("tas-a", "+4799990000"), "tas-b1": _node("tas-b", "+4799990000"),
               "pbx1": _node("", "+4799990000")}
    problems = pbx_shared_numbers(sources)
    # pbx1 comes first by name, so it holds the number and both clusters clash with it.
    assert [len(problems[host]) for host in ("pbx1", "tas-a1", "tas-b1")] == [2, 1, 1]


@pytest.mark.parametrize("node2, differing", [
    (_node("tas-a", "+4799990000"), "+4799990001"),
    (_node("tas-a", "+4799990000", "+4799990001", "+4799990002"), "+4799990002"),
    # The same numbers with a host-wide value of their own: each entry takes it.
    (_node("tas-a", "+4799990000", "+4799990001", sipbreakout_mobile_terminating_prefix="33"),
     "+4799990000, +4799990001"),
    (dict(_node("tas-a", "+4799990000"),
          sipbreakout_registrations=[dict(phone_number="+4799990000", route_type="loop"),
                                     dict(phone_number="+4799990001", route_type="fork")]), "+4799990001"),
])
def test_a_node_that_declares_otherwise_is_named_with_the_numbers(node2, differing):
    sources = {"tas-a1": _node("tas-a", "+4799990000", "+4799990001"), "tas-a2": node2}
    problems = pbx_shared_numbers(sources)
    assert problems["tas-a1"] == []
    assert problems["tas-a2"] == [
        "sipbreakout_registrations: %s declared otherwise than on tas-a1, the first node of cluster tas-a (sip_uri, "
        "route_type, state and prefixes, host-wide ones included, must be the same); %s" % (differing, GROUP_VARS)]


def test_cluster_nodes_with_registrations_files(tmp_path):
    numbers = ["+4799990000", "+4799990001"]
    same = _file(tmp_path, "tas.csv", numbers)
    copy = _file(tmp_path, "tas-copy.csv", numbers)
    other = _file(tmp_path, "tas-other.csv", numbers[:1])
    node = dict(cluster="tas-a", sipbreakout_registrations=[])
    sources = {"tas-a1": dict(node, registrations_file=same), "tas-a2": dict(node, registrations_file=same),
               "tas-a3": dict(node, registrations_file=copy), "tas-a4": dict(node, registrations_file=other),
               "tas-a5": _node("tas-a", *numbers)}
    assert pbx_shared_numbers(sources) == {
        "tas-a1": [], "tas-a2": [], "tas-a3": [],
        "tas-a4": ["sipbreakout_registrations_file: %s differs from %s of tas-a1, the first node of cluster tas-a; %s"
                   % (other, same, GROUP_VARS)],
        "tas-a5": ["sipbreakout_registrations: declares the cluster's numbers, while tas-a1, the first node of "
                   "cluster tas-a declares them in sipbreakout_registrations_file; " + GROUP_VARS]}


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
