# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pbx_shared_numbers: numbers of the pbx role that another host or cluster serves too, and cluster nodes that
declare other numbers than their cluster."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pbx_shared_numbers
short_description: Find the numbers that more than one host or cluster of a play serves
version_added: 0.1.0
author:
  - wgtwo.sipbreakout maintainers
description:
  - Takes the numbers of every host of a play, from C(sipbreakout_registrations) or from a registrations file on
    the controller (C(sipbreakout_registrations_file), already checked by P(wgtwo.sipbreakout.pbx_plan#filter)),
    and returns, per host, each present number that another host also declares present.
  - The nodes of a cluster (hosts with the same C(cluster)) serve the same numbers. Each node must declare them as
    the cluster's first node (by name) does, the same registrations after the host-wide values or the same
    registrations file (the same path, or a file with the same content); a node that does not gets a problem
    naming the first node and the numbers that differ. A cluster then counts as one host, its first node, against
    the other hosts and clusters of the play.
  - Each file is read once, a line at a time (a cluster's other files are compared by their digest); what it holds
    is one entry per number of the play (about 100 bytes each on the controller).
  - At most 20 problems are listed per host, then how many more there are.
options:
  _input:
    description:
      - Host name to a dictionary with C(sipbreakout_registrations) (a list, as the role takes it),
        C(registrations_file) (a path on the controller, or empty), C(cluster) (the host's cluster, or empty for none),
        and the host-wide values the list's entries take, C(sipbreakout_sip_uri),
        C(sipbreakout_mobile_originating_prefix) and C(sipbreakout_mobile_terminating_prefix) (optional).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Numbers of the play served by two hosts, and cluster nodes that declare other numbers than their cluster
  ansible.builtin.debug:
    msg: >-
      {{ {'pbx1': {'sipbreakout_registrations': [], 'registrations_file': '/srv/numbers/pbx1.csv'},
          'pbx2': {'sipbreakout_registrations': [{'phone_number': '+4799990000'}], 'registrations_file': ''},
          'tas1': {'sipbreakout_registrations': [{'phone_number': '+4799990001'}], 'cluster': 'tas'},
          'tas2': {'sipbreakout_registrations': [{'phone_number': '+4799990001'}], 'cluster': 'tas'}}
         | wgtwo.sipbreakout.pbx_shared_numbers }}
"""

RETURN = r"""
_value:
  description:
    - Host name to its problems, each naming the variable (with the line of the file or the list index), the
      number and the other host (and its cluster). A host without problems maps to an empty list.
  type: dict
"""

import hashlib

from ansible.errors import AnsibleFilterError

from ansible_collections.wgtwo.sipbreakout.plugins.filter.pbx_plan import FILE_VARIABLE, pbx_plan
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registrations_file import MAX_PROBLEMS, \
    RegistrationsFile

LIST_VARIABLE = "sipbreakout_registrations"
# The host-wide values the entries of sipbreakout_registrations take.
HOST_WIDE = ("sipbreakout_sip_uri", "sipbreakout_mobile_originating_prefix", "sipbreakout_mobile_terminating_prefix")
_FIELDS = ("phone_number", "sip_uri", "route_type", "state", "mobile_originating_prefix", "mobile_terminating_prefix")


def _listed(source):
    """The entries of a host's sipbreakout_registrations, normalised with its host-wide values."""
    variables = dict((name, source[name]) for name in HOST_WIDE if source.get(name) not in (None, ""))
    variables[LIST_VARIABLE] = source.get(LIST_VARIABLE) or []
    return pbx_plan(variables)["registrations"]


def _present(host, source):
    """(number, position) of each present registration of ``host``'s file (its line) or list (its index)."""
    path = source.get("registrations_file")
    if path:
        try:
            with RegistrationsFile(path) as registrations:
                for item in registrations.items():
                    if item.state == "present":
                        yield item.registration.phone_number, item.line
        except ValidationError as exc:
            raise AnsibleFilterError("%s: %s (check it with pbx_plan first)" % (host, exc))
        return
    for entry in _listed(source):
        if entry["state"] == "present":
            yield entry["phone_number"], entry["index"]


def _digest(host, path):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (IOError, OSError) as exc:
        raise AnsibleFilterError("%s: %s: cannot read %s: %s" % (host, FILE_VARIABLE, path, exc))
    return digest.hexdigest()


def _declaration_problem(host, source, first, first_source, cluster):
    """Why ``host`` does not declare what ``first``, the first node of its cluster, declares; None when it does."""
    node = "%s, the first node of cluster %s" % (first, cluster)
    mine, theirs = source.get("registrations_file") or "", first_source.get("registrations_file") or ""
    if mine or theirs:
        if not (mine and theirs):
            variable, other = (FILE_VARIABLE, LIST_VARIABLE) if mine else (LIST_VARIABLE, FILE_VARIABLE)
            return ("%s: declares the cluster's numbers, while %s declares them in %s; the nodes of a cluster serve "
                    "the same numbers: declare them once, in the group's variables" % (variable, node, other))
        if mine != theirs and _digest(host, mine) != _digest(first, theirs):
            return ("%s: %s differs from %s of %s; the nodes of a cluster serve the same numbers: declare them "
                    "once, in the group's variables" % (FILE_VARIABLE, mine, theirs, node))
        return None
    declared = dict((tuple(entry[field] for field in _FIELDS), entry["index"]) for entry in _listed(source))
    expected = set(tuple(entry[field] for field in _FIELDS) for entry in _listed(first_source))
    differing = sorted(set(key[0] for key in set(declared) ^ expected))
    if not differing:
        return None
    more = len(differing) - MAX_PROBLEMS
    shown = ", ".join(differing[:MAX_PROBLEMS]) + (" and %d more" % more if more > 0 else "")
    return ("%s: %s declared otherwise than on %s (sip_uri, route_type, state and prefixes, host-wide ones included, "
            "must be the same); the nodes of a cluster serve the same numbers: declare them once, in the group's "
            "variables" % (LIST_VARIABLE, shown, node))


def pbx_shared_numbers(sources):
    """See DOCUMENTATION."""
    if not isinstance(sources, dict):
        raise AnsibleFilterError("pbx_shared_numbers expects a dictionary of hosts, got %s" % type(sources).__name__)
    hosts = sorted(sources)
    problems = dict((host, []) for host in hosts)
    counts = dict((host, 0) for host in hosts)
    listed = dict((host, 0) for host in hosts)
    clusters = dict((host, sources[host].get("cluster") or "") for host in hosts)

    # A cluster's nodes against its first one; then the cluster is that node alone.
    first_nodes = {}
    units = []
    for host in hosts:
        cluster = clusters[host]
        if not cluster:
            units.append(host)
        elif cluster not in first_nodes:
            first_nodes[cluster] = host
            units.append(host)
        else:
            first = first_nodes[cluster]
            problem = _declaration_problem(host, sources[host], first, sources[first], cluster)
            if problem:
                problems[host].append(problem)
    files = [bool(sources[host].get("registrations_file")) for host in units]

    def where(index, position):
        if files[index]:
            return "%s line %d" % (FILE_VARIABLE, position)
        return "%s[%d]" % (LIST_VARIABLE, position)

    def named(index):
        host = units[index]
        return "%s (cluster %s)" % (host, clusters[host]) if clusters[host] else host

    def problem(index, position, number, other, other_position):
        counts[units[index]] += 1
        if len(problems[units[index]]) < MAX_PROBLEMS:
            listed[units[index]] += 1
            problems[units[index]].append(
                "%s: %s also present on %s (%s); a number can be served by one host or one cluster only (set state: "
                "absent on the one that gives it up, or make the hosts one sipbreakout_cluster)"
                % (where(index, position), number, named(other), where(other, other_position)))

    # number -> index of the first unit that declares it, shifted left 32 bits, plus its line or list index: one
    # int a number, so a million cost about 100 MB.
    owners = {}
    for index, host in enumerate(units):
        for number, position in _present(host, sources[host]):
            owner = owners.setdefault(number, index << 32 | position)
            first, first_position = owner >> 32, owner & 0xFFFFFFFF
            if first != index:
                problem(index, position, number, first, first_position)
                problem(first, first_position, number, index, position)
    for host in hosts:
        if counts[host] > listed[host]:
            problems[host].append("%d more number(s) also present on another host" % (counts[host] - listed[host]))
    return problems


class FilterModule(object):
    """wgtwo.sipbreakout.pbx_shared_numbers"""

    def filters(self):
        return {"pbx_shared_numbers": pbx_shared_numbers}
