# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sample inventory for playbooks/pbx.yml is one users can copy: Ansible reads it, every host's variables pass
the checks the role wgtwo.sipbreakout.pbx makes before any change, no number is on two hosts, and the
credentials are only references to vault variables."""

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.filter.pbx_plan import pbx_plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "playbooks", "inventory", "pbx-sample")
# As the docs say to run it: the hosts file, not the directory, whose files/ (certificates, keys) Ansible would try
# to parse as inventories.
HOSTS = os.path.join(SAMPLE, "hosts.yml")
# The variables the role checks on the controller before anything changes (the TLS files are checked from the
# files themselves, which a sample cannot ship).
CHECKED = ("sipbreakout_sip_uri", "sipbreakout_mobile_originating_prefix", "sipbreakout_mobile_terminating_prefix",
           "sipbreakout_registrations", "sipbreakout_core_sources", "sipbreakout_backends", "sipbreakout_core_uri")


@pytest.fixture(scope="module")
def inventory():
    program = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    result = subprocess.run([program, "-i", HOSTS, "--list"], capture_output=True, text=True, check=True,
                            env=dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED="true"))
    assert "Unable to parse" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    hostvars = data["_meta"]["hostvars"]
    return data["pbx"]["hosts"], hostvars


def test_two_pbx_hosts(inventory):
    hosts, _hostvars = inventory
    assert sorted(hosts) == ["pbx1.example.net", "pbx2.example.net"]


@pytest.mark.parametrize("host", ["pbx1.example.net", "pbx2.example.net"])
def test_each_host_passes_the_role_checks(inventory, host):
    _hosts, hostvars = inventory
    variables = hostvars[host]
    missing = [name for name in CHECKED if name not in variables]
    assert not missing, "%s lacks %s" % (host, missing)
    plan = pbx_plan({name: variables[name] for name in CHECKED})
    assert plan["problems"] == []
    assert plan["present_numbers"], "%s serves no number" % host
    assert plan["sip_uri_hosts"] == [host]


def test_no_number_on_two_hosts(inventory):
    hosts, hostvars = inventory
    seen = {}
    for host in hosts:
        plan = pbx_plan({"sipbreakout_registrations": hostvars[host]["sipbreakout_registrations"]})
        for number in plan["present_numbers"]:
            assert number not in seen, "%s is on %s and %s" % (number, seen[number], host)
            seen[number] = host


def test_secrets_are_vault_references(inventory):
    hosts, hostvars = inventory
    for host in hosts:
        variables = hostvars[host]
        assert variables["sipbreakout_client_id"] == "{{ vault_sipbreakout_client_id }}"
        assert variables["sipbreakout_client_secret"] == "{{ vault_sipbreakout_client_secret }}"
        assert variables["sipbreakout_tls_private_key"] == \
            "{{ inventory_dir }}/files/{{ inventory_hostname }}.key.pem"
    assert not os.path.exists(os.path.join(SAMPLE, "group_vars", "pbx", "vault.yml")), \
        "the sample ships vault.yml.example only; a real vault.yml is encrypted and the user's own"
