# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pbx_plan: validate and normalise the pbx role's inventory variables."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pbx_plan
short_description: Validate and normalise the variables of the wgtwo.sipbreakout.pbx role
version_added: 0.1.0
author:
  - wgtwo.sipbreakout maintainers
description:
  - Takes a dictionary of the C(sipbreakout_*) variables of one host, as the P(wgtwo.sipbreakout.pbx#role) role
    documents them, and returns them normalised, with the values the role derives from them and a list of
    problems.
  - Only the keys given are checked, so the filter can also be used to read just the numbers of another host.
  - Registrations take C(sip_uri) and both prefixes from the host-wide variables when they do not set them.
  - Numbers, C(sips:) URIs and prefixes follow the same rules as the P(wgtwo.sipbreakout.registration#module)
    module, so the role rejects on the controller what the module would reject on the host.
  - The SIP edge tells mobile originating (MO) from mobile terminating (MT) calls by the prefix at the start of
    the request-URI user part, so no MO prefix may equal, or be the start of, an MT prefix in use on the host
    (and the other way round).
  - C(sipbreakout_registrations_file) names a registrations file on the controller (CSV or JSON lines, as the
    module's C(registrations_file) option reads it), instead of C(sipbreakout_registrations). It is read a line at
    a time. Every line is checked as the module checks it, and also must name its C(phone_number) and, when
    present, both prefixes (its lines do not take the host-wide values). Its C(sip_uri) hosts and prefixes count
    like those of C(sipbreakout_registrations); its numbers are not listed (a file may hold a million), the
    P(wgtwo.sipbreakout.pbx_shared_numbers#filter) filter compares them across hosts.
options:
  _input:
    description:
      - The host's variables, keyed by their names.
      - Recognised keys are C(sipbreakout_sip_uri), C(sipbreakout_mobile_originating_prefix),
        C(sipbreakout_mobile_terminating_prefix), C(sipbreakout_registrations), C(sipbreakout_registrations_file)
        (a path on the controller; empty for none), C(sipbreakout_core_sources), C(sipbreakout_backends),
        C(sipbreakout_core_uri) (one C(sips:) URI or a list of them) and C(sipbreakout_edge_core_names). Other keys
        are ignored.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Validate a host's SIP breakout variables
  ansible.builtin.assert:
    that: _plan.problems | length == 0
    fail_msg: "{{ inventory_hostname }}: {{ _plan.problems | join('; ') }}"
  vars:
    _plan: >-
      {{ {
        'sipbreakout_sip_uri': sipbreakout_sip_uri,
        'sipbreakout_mobile_originating_prefix': sipbreakout_mobile_originating_prefix,
        'sipbreakout_mobile_terminating_prefix': sipbreakout_mobile_terminating_prefix,
        'sipbreakout_registrations': sipbreakout_registrations,
      } | wgtwo.sipbreakout.pbx_plan }}

- name: The numbers another host of the play serves
  ansible.builtin.debug:
    msg: >-
      {{ ({'sipbreakout_registrations': hostvars['pbx2'].sipbreakout_registrations | default([])}
          | wgtwo.sipbreakout.pbx_plan).present_numbers }}
"""

RETURN = r"""
_value:
  description: The normalised variables, what the role derives from them, and the problems found.
  type: dict
  contains:
    problems:
      description:
        - One message per problem, each starting with the name of the offending variable (with the list index
          for list items). Empty when everything is valid.
      type: list
      elements: str
    sip_uri:
      description: C(sipbreakout_sip_uri) normalised (lower-case C(sips:) scheme), or C(None) if not given or invalid.
      type: str
    registrations:
      description:
        - The valid entries of C(sipbreakout_registrations) with the host-wide defaults applied, in their order.
        - Each has C(phone_number) (E.164, spaces and dashes dropped), C(sip_uri), C(route_type) (C(None) for
          absent entries that do not name one), C(state), C(mobile_originating_prefix),
          C(mobile_terminating_prefix) and C(index) (position in C(sipbreakout_registrations)).
      type: list
      elements: dict
    present_numbers:
      description:
        - The numbers of the registrations with C(state=present), in order and without repetition (not those of
          C(sipbreakout_registrations_file)).
      type: list
      elements: str
    registrations_file:
      description:
        - C(sipbreakout_registrations_file) once every line passed, else C(None).
      type: dict
      contains:
        path:
          description: The file, as an absolute path on the controller.
          type: str
        format:
          description: C(csv) or C(jsonl), from the file name's extension.
          type: str
        present:
          description: How many of its registrations have C(state=present).
          type: int
        absent:
          description: How many have C(state=absent).
          type: int
    sip_uri_hosts:
      description:
        - The hosts of C(sipbreakout_sip_uri) and of the C(sip_uri) of every present registration (of the file
          too), without repetition. The edge's TLS certificate must cover each of them.
      type: list
      elements: str
    mobile_originating_prefixes:
      description: Every MO prefix in use (host-wide and per present registration), longest first.
      type: list
      elements: str
    mobile_terminating_prefixes:
      description: Every MT prefix in use (host-wide and per present registration), longest first.
      type: list
      elements: str
    prefixes:
      description:
        - Every prefix in use with its C(direction) (C(mo) or C(mt)), longest first, as the SIP edge matches them.
      type: list
      elements: dict
    core_sources:
      description:
        - C(sipbreakout_core_sources) as networks, each with C(network) (the address), C(prefix_length) and
          C(cidr).
      type: list
      elements: dict
    backends:
      description:
        - C(sipbreakout_backends), each with C(uri) (as given), C(host), C(port) (C(None) if not given) and
          C(transport) (C(udp) or C(tcp); the edge reaches no backend over TLS).
      type: list
      elements: dict
    core_uris:
      description:
        - Every address of C(sipbreakout_core_uri) in order, normalised, each with C(uri), C(host) and C(port)
          (C(None) when it names none, and the core is then found by DNS SRV).
      type: list
      elements: dict
    core_uri:
      description: The first address of C(sipbreakout_core_uri) normalised, or C(None).
      type: str
    core_host:
      description: The host part of the first address of C(sipbreakout_core_uri), or C(None).
      type: str
    core_port:
      description: The port of the first address of C(sipbreakout_core_uri), or C(None) when it names none.
      type: int
    core_names:
      description:
        - The names the core's TLS certificate may carry, lower case, without repetition, from
          C(sipbreakout_edge_core_names), or when that is empty the host of every address of
          C(sipbreakout_core_uri).
      type: list
      elements: str
"""

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import (
    kind,
    normalize_phone_number,
    normalize_prefix,
    normalize_route_type,
    normalize_sip_uri,
    normalize_state,
    sip_uri_host,
)
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registrations_file import RegistrationsFile

FILE_VARIABLE = "sipbreakout_registrations_file"

_REGISTRATION_KEYS = frozenset(
    ("phone_number", "route_type", "sip_uri", "mobile_originating_prefix", "mobile_terminating_prefix", "state"))
# sip:HOST[:PORT][;transport=udp|tcp], HOST a DNS name, an IPv4 address or a bracketed IPv6 address.
_BACKEND = re.compile(
    r"^(?P<scheme>sips?):(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>(?:;[A-Za-z0-9_.!~*'()%-]+(?:=[A-Za-z0-9_.!~*'()%-]+)?)*)$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _message(exc):
    """The text of a ValidationError without its leading option name (we put the variable name there)."""
    text = exc.message
    prefix = "%s: " % exc.option
    return text[len(prefix):] if text.startswith(prefix) else text


class _Plan(object):
    def __init__(self):
        self.problems = []

    def problem(self, variable, text):
        self.problems.append("%s: %s" % (variable, text))

    def checked(self, normalize, variable, *args):
        """``normalize(*args, option=variable)``, or None with its complaint noted as a problem."""
        try:
            return normalize(*args, option=variable)
        except ValidationError as exc:
            self.problem(variable, _message(exc))
            return None

    def sip_uri(self, variable, value):
        return self.checked(normalize_sip_uri, variable, value)

    def prefix(self, variable, value):
        if value is None or value == "":
            self.problem(variable, "is required: the SIP edge tells MO from MT calls by this prefix")
            return None
        return self.checked(normalize_prefix, variable, value)


def _registrations(plan, entries, sip_uri, mo_prefix, mt_prefix, require_sip_uri):
    result = []
    seen = {}
    if not isinstance(entries, list):
        plan.problem("sipbreakout_registrations", "must be a list of registrations, got %s" % kind(entries))
        return result
    for index, entry in enumerate(entries):
        where = "sipbreakout_registrations[%d]" % index
        if not isinstance(entry, dict):
            plan.problem(where, "must be a dictionary with at least phone_number, got %s" % kind(entry))
            continue
        unknown = sorted(set(entry) - _REGISTRATION_KEYS)
        if unknown:
            plan.problem(where, "unknown key(s) %s; known keys are %s"
                         % (", ".join(unknown), ", ".join(sorted(_REGISTRATION_KEYS))))
            continue
        problems_before = len(plan.problems)
        if entry.get("phone_number") in (None, ""):
            plan.problem(where + ".phone_number", "is required: the number this entry registers, such as "
                                                  "'+4799990000'")
            number = None
        else:
            number = plan.checked(normalize_phone_number, where + ".phone_number", entry["phone_number"])
        state = plan.checked(normalize_state, where + ".state", entry.get("state"))
        route_type = plan.checked(normalize_route_type, where + ".route_type", entry.get("route_type"), state)
        if entry.get("sip_uri") not in (None, ""):
            uri = plan.sip_uri(where + ".sip_uri", entry["sip_uri"])
        else:
            uri = sip_uri
            if uri is None and require_sip_uri:
                plan.problem(where + ".sip_uri", "is not set, and sipbreakout_sip_uri is empty")
        prefixes = {}
        for key, default in (("mobile_originating_prefix", mo_prefix), ("mobile_terminating_prefix", mt_prefix)):
            value = entry.get(key)
            if value in (None, ""):
                prefixes[key] = default
            else:
                prefixes[key] = plan.prefix(where + "." + key, value)
        if len(plan.problems) > problems_before:
            continue
        key = (number, uri)
        if key in seen:
            plan.problem(where, "%s with sip_uri %s is already sipbreakout_registrations[%d]"
                         % (number, uri, seen[key]))
            continue
        seen[key] = index
        result.append(dict(index=index, phone_number=number, sip_uri=uri, route_type=route_type, state=state,
                           **prefixes))
    return result


def _file_demands(item):
    """What the role asks of a line of a registrations file beyond what the module does."""
    registration = item.registration
    if not registration.phone_number:
        raise ValidationError("phone_number", "is required: the number this line registers, such as '+4799990000'")
    if item.state == "present":
        for name in ("mobile_originating_prefix", "mobile_terminating_prefix"):
            if not getattr(registration, name):
                raise ValidationError(name, "is empty: the SIP edge tells MO from MT calls by the prefix, and the "
                                            "lines of %s do not take sipbreakout_%s; give it on every line"
                                      % (FILE_VARIABLE, name), registration.phone_number)


def _registrations_file(plan, path):
    """Check the file a line at a time. Returns its summary (None when it has a problem) and, for its present
    registrations, ``{value: first line}`` of their sip_uri hosts, MO prefixes and MT prefixes."""
    uses = ({}, {}, {})
    try:
        with RegistrationsFile(path) as source:
            where = "%s (%s)" % (FILE_VARIABLE, source.path)
            checked = source.scan(lambda registration: repr(registration.key), _file_demands)
            for line, problem in checked.problems:
                plan.problem("%s line %d" % (where, line), problem)
            if checked.problem_count > len(checked.problems):
                plan.problem(where, "%d more problem(s) after these"
                             % (checked.problem_count - len(checked.problems)))
            if checked.problem_count:
                return None, uses
            if not checked.count:
                plan.problem(where, "holds no registration; an empty file is refused (a copy cut short must not "
                                    "count as no numbers)")
                return None, uses
            summary = dict(path=source.path, format=source.format, present=0, absent=0)
            for item in source.items():
                summary[item.state] += 1
                if item.state == "present":
                    registration = item.registration
                    for found, value in zip(uses, (sip_uri_host(registration.sip_uri),
                                                   registration.mobile_originating_prefix,
                                                   registration.mobile_terminating_prefix)):
                        found.setdefault(value, "%s line %d" % (where, item.line))
            return summary, uses
    except ValidationError as exc:
        plan.problem(FILE_VARIABLE, _message(exc))
        return None, uses


def _prefix_clashes(plan, mo_sources, mt_sources):
    """Every MO prefix against every MT prefix: equal or one the start of the other is ambiguous."""
    for mo, mo_variable in mo_sources:
        for mt, mt_variable in mt_sources:
            if mo == mt:
                plan.problem(mo_variable, "MO prefix '%s' equals the MT prefix of %s: the SIP edge tells MO from MT "
                                          "calls by the prefix, so they must differ" % (mo, mt_variable))
            elif mt.startswith(mo) or mo.startswith(mt):
                plan.problem(mo_variable, "MO prefix '%s' and the MT prefix '%s' of %s start alike, so a number "
                                          "starting with '%s' could be either; use prefixes where neither is the "
                                          "start of the other" % (mo, mt, mt_variable, max(mo, mt, key=len)))


def _core_sources(plan, sources):
    result = []
    if not isinstance(sources, list) or not sources:
        plan.problem("sipbreakout_core_sources", "must be a non-empty list of addresses or networks such as "
                                                 "'54.72.237.8/32'")
        return result
    for index, source in enumerate(sources):
        where = "sipbreakout_core_sources[%d]" % index
        try:
            network = ipaddress.ip_network(to_text(source).strip(), strict=True)
        except ValueError as exc:
            try:
                loose = ipaddress.ip_network(to_text(source).strip(), strict=False)
                plan.problem(where, "'%s' has host bits set; the network is %s" % (source, loose))
            except ValueError:
                plan.problem(where, "'%s' is not an IP address or network (%s)" % (source, exc))
            continue
        result.append(dict(network=str(network.network_address), prefix_length=network.prefixlen,
                           cidr=str(network)))
    return result


def _valid_host(host):
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
            return True
        except ValueError:
            return False
    if re.match(r"^[0-9.]+$", host):
        try:
            ipaddress.IPv4Address(host)
            return True
        except ValueError:
            return False
    return len(host) <= 253 and all(_DNS_LABEL.match(label) for label in host.rstrip(".").split("."))


def _backends(plan, backends):
    result = []
    if not isinstance(backends, list) or not backends:
        plan.problem("sipbreakout_backends", "must be a non-empty list of SIP URIs such as 'sip:10.0.0.5:5060'")
        return result
    for index, backend in enumerate(backends):
        where = "sipbreakout_backends[%d]" % index
        match = _BACKEND.match(to_text(backend)) if isinstance(backend, string_types) else None
        if not match or not _valid_host(match.group("host")):
            plan.problem(where, "'%s' is not a SIP URI of the form sip:HOST[:PORT][;transport=udp|tcp]"
                         % (backend,))
            continue
        params = dict(
            (name.lower(), value.lower())
            for name, _sep, value in (param.partition("=") for param in match.group("params").split(";")[1:]))
        transport = params.get("transport", "tls" if match.group("scheme") == "sips" else "udp")
        if transport == "tls":
            # The TLS listener and profiles are the core's: a backend there would need the core's CA and name.
            plan.problem(where, "'%s' asks for TLS; the edge reaches backends over UDP or TCP only "
                                "(sip:HOST[:PORT][;transport=tcp])" % (backend,))
            continue
        if transport not in ("udp", "tcp"):
            plan.problem(where, "'%s' has transport '%s'; one of udp, tcp" % (backend, transport))
            continue
        port = match.group("port")
        if port is not None and not 0 < int(port) < 65536:
            plan.problem(where, "'%s' has port %s: a port is a number from 1 to 65535" % (backend, port))
            continue
        result.append(dict(uri=to_text(backend), host=match.group("host"),
                           port=int(port) if port is not None else None, transport=transport))
    return result


def _core_uris(plan, value):
    """sipbreakout_core_uri: one sips: URI, or a list of them in the order the edge tries them."""
    if isinstance(value, list):
        if not value:
            plan.problem("sipbreakout_core_uri", "is an empty list; give the core's sips: URI, or a list of them")
            return []
        entries = [("sipbreakout_core_uri[%d]" % index, item) for index, item in enumerate(value)]
    else:
        entries = [("sipbreakout_core_uri", value)]
    result = []
    for where, item in entries:
        uri = plan.sip_uri(where, item)
        if not uri:
            continue
        if uri in [entry["uri"] for entry in result]:
            plan.problem(where, "%s is already in the list" % uri)
            continue
        host = sip_uri_host(uri)
        port = uri[len("sips:" + host):].lstrip(":")
        result.append(dict(uri=uri, host=host, port=int(port) if port else None))
    return result


def _core_names(plan, names, core_uris):
    """The names the core's certificate may carry: as given, or the hosts of the core's addresses."""
    if names in (None, "", []):
        names = [entry["host"] for entry in core_uris]
    elif not isinstance(names, list):
        plan.problem("sipbreakout_edge_core_names", "must be a list of names such as 'sbc.operator.example'")
        return []
    result = []
    for index, name in enumerate(names):
        text = to_text(name).strip().lower() if isinstance(name, string_types) else ""
        # An IPv6 host of a URI comes in brackets; a certificate names the address without.
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        try:
            text = str(ipaddress.ip_address(text))
        except ValueError:
            bare = text[2:] if text.startswith("*.") else text
            if not bare or "*" in bare or ":" in bare or not _valid_host(bare):
                plan.problem("sipbreakout_edge_core_names[%d]" % index,
                             "'%s' is not a DNS name, '*.DOMAIN' or an IP address" % (name,))
                continue
        if text not in result:
            result.append(text)
    return result


def _longest_first(values):
    unique = []
    for value in values:
        if value not in unique:
            unique.append(value)
    return sorted(unique, key=lambda value: (-len(value), value))


def pbx_plan(variables):
    """See DOCUMENTATION."""
    if not isinstance(variables, dict):
        raise AnsibleFilterError("pbx_plan expects a dictionary of sipbreakout_* variables, got %s"
                                 % type(variables).__name__)
    plan = _Plan()
    result = dict(sip_uri=None, registrations=[], registrations_file=None, present_numbers=[], sip_uri_hosts=[],
                  mobile_originating_prefixes=[], mobile_terminating_prefixes=[], prefixes=[], core_sources=[], backends=[],
                  core_uris=[], core_uri=None, core_host=None, core_port=None, core_names=[])

    if "sipbreakout_sip_uri" in variables:
        result["sip_uri"] = plan.sip_uri("sipbreakout_sip_uri", variables["sipbreakout_sip_uri"])
    mo_prefix = mt_prefix = None
    if "sipbreakout_mobile_originating_prefix" in variables:
        mo_prefix = plan.prefix("sipbreakout_mobile_originating_prefix",
                                variables["sipbreakout_mobile_originating_prefix"])
    if "sipbreakout_mobile_terminating_prefix" in variables:
        mt_prefix = plan.prefix("sipbreakout_mobile_terminating_prefix",
                                variables["sipbreakout_mobile_terminating_prefix"])

    if "sipbreakout_registrations" in variables:
        result["registrations"] = _registrations(plan, variables["sipbreakout_registrations"], result["sip_uri"],
                                                 mo_prefix, mt_prefix,
                                                 variables.get("sipbreakout_sip_uri", "x") in (None, ""))
    present = [entry for entry in result["registrations"] if entry["state"] == "present"]
    for entry in present:
        if entry["phone_number"] not in result["present_numbers"]:
            result["present_numbers"].append(entry["phone_number"])

    hosts = [sip_uri_host(result["sip_uri"])] if result["sip_uri"] else []
    hosts.extend(sip_uri_host(entry["sip_uri"]) for entry in present if entry["sip_uri"])

    mo_sources = [(mo_prefix, "sipbreakout_mobile_originating_prefix")] if mo_prefix else []
    mt_sources = [(mt_prefix, "sipbreakout_mobile_terminating_prefix")] if mt_prefix else []
    for entry in present:
        where = "sipbreakout_registrations[%d]" % entry["index"]
        if entry["mobile_originating_prefix"] and entry["mobile_originating_prefix"] != mo_prefix:
            mo_sources.append((entry["mobile_originating_prefix"], where + ".mobile_originating_prefix"))
        if entry["mobile_terminating_prefix"] and entry["mobile_terminating_prefix"] != mt_prefix:
            mt_sources.append((entry["mobile_terminating_prefix"], where + ".mobile_terminating_prefix"))

    if variables.get(FILE_VARIABLE):
        if variables.get("sipbreakout_registrations"):
            plan.problem(FILE_VARIABLE, "cannot be combined with sipbreakout_registrations; give the host's numbers "
                                        "in one of them")
        else:
            result["registrations_file"], (file_hosts, file_mo, file_mt) = _registrations_file(
                plan, variables[FILE_VARIABLE])
            hosts.extend(file_hosts)
            mo_sources.extend((prefix, where + ".mobile_originating_prefix") for prefix, where in file_mo.items()
                              if prefix != mo_prefix)
            mt_sources.extend((prefix, where + ".mobile_terminating_prefix") for prefix, where in file_mt.items()
                              if prefix != mt_prefix)
    result["sip_uri_hosts"] = [host for index, host in enumerate(hosts) if host not in hosts[:index]]
    _prefix_clashes(plan, mo_sources, mt_sources)
    result["mobile_originating_prefixes"] = _longest_first(prefix for prefix, _variable in mo_sources)
    result["mobile_terminating_prefixes"] = _longest_first(prefix for prefix, _variable in mt_sources)
    result["prefixes"] = sorted(
        [dict(prefix=prefix, direction="mo") for prefix in result["mobile_originating_prefixes"]]
        + [dict(prefix=prefix, direction="mt") for prefix in result["mobile_terminating_prefixes"]],
        key=lambda entry: (-len(entry["prefix"]), entry["prefix"]))

    if "sipbreakout_core_sources" in variables:
        result["core_sources"] = _core_sources(plan, variables["sipbreakout_core_sources"])
    if "sipbreakout_backends" in variables:
        result["backends"] = _backends(plan, variables["sipbreakout_backends"])
    if "sipbreakout_core_uri" in variables:
        result["core_uris"] = _core_uris(plan, variables["sipbreakout_core_uri"])
        if result["core_uris"]:
            first = result["core_uris"][0]
            result["core_uri"], result["core_host"], result["core_port"] = first["uri"], first["host"], first["port"]
    if "sipbreakout_edge_core_names" in variables:
        result["core_names"] = _core_names(plan, variables["sipbreakout_edge_core_names"], result["core_uris"])

    result["problems"] = plan.problems
    return result


class FilterModule(object):
    """wgtwo.sipbreakout.pbx_plan"""

    def filters(self):
        return {"pbx_plan": pbx_plan}
