# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pbx_shared_numbers: numbers of the pbx role's registrations files that another host serves too."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pbx_shared_numbers
short_description: Find the numbers of registrations files that more than one host of a play serves
version_added: 0.1.0
author:
  - wgtwo.sipbreakout maintainers
description:
  - Takes the numbers of every host of a play, from C(sipbreakout_registrations) or from a registrations file on
    the controller (C(sipbreakout_registrations_file), already checked by P(wgtwo.sipbreakout.pbx_plan#filter)),
    and returns, per host, each present number that another host also declares present.
  - Only pairs with a file on at least one side are compared; the P(wgtwo.sipbreakout.pbx#role) role compares
    two inventory lists itself.
  - Each file is read once, a line at a time; what it holds is one entry per number of the play (about 100 bytes
    each on the controller).
  - At most 20 problems are listed per host, then how many more there are.
options:
  _input:
    description:
      - Host name to a dictionary with C(sipbreakout_registrations) (a list, as the role takes it) and
        C(registrations_file) (a path on the controller, or empty).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Numbers of the play's registrations files served by two hosts
  ansible.builtin.debug:
    msg: >-
      {{ {'pbx1': {'sipbreakout_registrations': [], 'registrations_file': '/srv/numbers/pbx1.csv'},
          'pbx2': {'sipbreakout_registrations': [{'phone_number': '+4799990000'}], 'registrations_file': ''}}
         | wgtwo.sipbreakout.pbx_shared_numbers }}
"""

RETURN = r"""
_value:
  description:
    - Host name to its problems, each naming the variable (with the line of the file or the list index), the
      number and the other host. A host without problems maps to an empty list.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.wgtwo.sipbreakout.plugins.filter.pbx_plan import FILE_VARIABLE, pbx_plan
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registrations_file import MAX_PROBLEMS, \
    RegistrationsFile


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
    plan = pbx_plan({"sipbreakout_registrations": source.get("sipbreakout_registrations") or []})
    for entry in plan["registrations"]:
        if entry["state"] == "present":
            yield entry["phone_number"], entry["index"]


def pbx_shared_numbers(sources):
    """See DOCUMENTATION."""
    if not isinstance(sources, dict):
        raise AnsibleFilterError("pbx_shared_numbers expects a dictionary of hosts, got %s" % type(sources).__name__)
    hosts = sorted(sources)
    files = [bool(sources[host].get("registrations_file")) for host in hosts]
    problems = dict((host, []) for host in hosts)
    counts = dict((host, 0) for host in hosts)

    def where(index, position):
        if files[index]:
            return "%s line %d" % (FILE_VARIABLE, position)
        return "sipbreakout_registrations[%d]" % position

    def problem(index, position, number, other, other_position):
        counts[hosts[index]] += 1
        if len(problems[hosts[index]]) < MAX_PROBLEMS:
            problems[hosts[index]].append("%s: %s also present on %s (%s); a number can be served by one host only "
                                          "(set state: absent on the host that gives it up)"
                                          % (where(index, position), number, hosts[other],
                                             where(other, other_position)))

    # number -> index of the first host that declares it, shifted left 32 bits, plus its line or list index: one
    # int a number, so a million cost about 100 MB.
    owners = {}
    if any(files):
        for index, host in enumerate(hosts):
            for number, position in _present(host, sources[host]):
                owner = owners.setdefault(number, index << 32 | position)
                first, first_position = owner >> 32, owner & 0xFFFFFFFF
                if first != index and (files[first] or files[index]):
                    problem(index, position, number, first, first_position)
                    problem(first, first_position, number, index, position)
    for host in hosts:
        if counts[host] > len(problems[host]):
            problems[host].append("%d more number(s) also present on another host" % (counts[host] - MAX_PROBLEMS))
    return problems


class FilterModule(object):
    """wgtwo.sipbreakout.pbx_shared_numbers"""

    def filters(self):
        return {"pbx_shared_numbers": pbx_shared_numbers}
