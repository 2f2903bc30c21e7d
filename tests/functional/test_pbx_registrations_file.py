# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pbx role's sipbreakout_registrations_file, with ansible-playbook on this machine against the emulator: the
role's checks and its registration tasks (every path of the host in a temporary directory; the edge is left out,
it needs Kamailio, and molecule runs the whole role). A check run on a host that has no copy yet says what it left
out and sends nothing; the real run copies the file (0600) and the emulator holds its numbers; a check run with the
same file predicts from the copy; a number also on another host is refused before anything changes."""

import json
import os
import stat
import subprocess
import sys

import ansible_collections
import pytest
import yaml

from sipbreakout_emulator.testing import running_emulator

from keepalive_support import CLIENT_ID, CLIENT_SECRET
from pbx_support import SIP_URI, pbx_variables

COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])
COUNT = 300

PLAYBOOK = """
- hosts: pbx
  gather_facts: false
  tasks:
    - name: The pbx role's checks
      ansible.builtin.include_role:
        name: wgtwo.sipbreakout.pbx
        tasks_from: validate
    - name: The pbx role's registrations
      ansible.builtin.include_role:
        name: wgtwo.sipbreakout.pbx
        tasks_from: registrations
      when: test_registrations | default(true) | bool
"""


def _numbers(count=COUNT):
    return ["+4794%06d" % index for index in range(count)]


def _write_file(path, numbers):
    with open(path, "w") as handle:
        handle.write("phone_number,sip_uri,route_type,mobile_originating_prefix,mobile_terminating_prefix\n")
        handle.writelines("%s,%s,loop,11,22\n" % (number, SIP_URI) for number in numbers)
    return path


class Host:
    """A PBX host that is this machine, with its state directory and the keepalive's paths under ``root``."""

    def __init__(self, root, emu):
        self.root = str(root)
        self.state = os.path.join(self.root, "state")
        keepalive = os.path.join(self.root, "keepalive")
        self.variables = dict(
            pbx_variables(self.root, emu),
            __pbx_state_dir=self.state, __pbx_api_ca=os.path.join(self.state, "api-ca.pem"),
            __pbx_registration_packages=[], sipbreakout_keepalive=False,
            keepalive_bin_path=os.path.join(keepalive, "sbin"), keepalive_lib_dir=os.path.join(keepalive, "lib"),
            keepalive_config_path=os.path.join(keepalive, "keepalive.json"),
            keepalive_health_path=os.path.join(keepalive, "health.json"),
            keepalive_unit_dir=os.path.join(keepalive, "systemd"),
            keepalive_cron_file=os.path.join(keepalive, "cron"),
        )

    def play(self, hosts, check=False, expect_failure=False, **extra):
        """ansible-playbook of PLAYBOOK on ``hosts`` ({name: host variables}); its output."""
        inventory = os.path.join(self.root, "hosts.yml")
        with open(inventory, "w") as handle:
            yaml.safe_dump({"pbx": {"hosts": dict(
                (name, dict(variables, ansible_connection="local", ansible_python_interpreter=sys.executable))
                for name, variables in hosts.items())}}, handle)
        extra_vars = os.path.join(self.root, "vars.json")
        fd = os.open(extra_vars, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(dict(self.variables, **extra), handle)
        playbook = os.path.join(self.root, "play.yml")
        with open(playbook, "w") as handle:
            handle.write(PLAYBOOK)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        command = ["ansible-playbook", "-i", inventory, "-e", "@" + extra_vars, playbook] + (["--check"] if check
                                                                                             else [])
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        output = run.stdout + run.stderr
        assert (run.returncode != 0) == expect_failure, output
        return output

    def copy(self, extension="csv"):
        return os.path.join(self.state, "registrations." + extension)


def _held(emu):
    return sorted(reg["phone_number"] for reg in emu.registrations())


def _activity(emu):
    calls = emu.calls(limit=0)
    return calls["total"], calls["token_requests"]


@pytest.fixture(name="emu")
def emu_fixture(tmp_path):
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as handle:
        yield handle


def test_a_registrations_file_from_a_check_run_on_a_new_host_to_a_changed_file(tmp_path, emu):
    host = Host(tmp_path, emu)
    numbers = _numbers()
    controller_file = _write_file(str(tmp_path / "pbx1-numbers.csv"), numbers)
    pbx1 = {"pbx1": dict(sipbreakout_registrations_file=controller_file)}

    # A check run on a host that never ran the role: nothing copied, nothing sent, and it says what it left out.
    output = host.play(pbx1, check=True)
    assert "pbx1: check mode: sipbreakout_registrations_file (%s, %d present and 0 absent registrations, every line " \
           "checked on the controller) is not on the host yet or differs from its copy there" % (
               controller_file, COUNT) in " ".join(output.split())
    assert _activity(emu) == (0, 0) and not os.path.exists(host.copy())

    # The real run: copied for root alone, and applied.
    host.play(pbx1)
    with open(host.copy()) as copy, open(controller_file) as original:
        assert copy.read() == original.read()
    assert stat.S_IMODE(os.stat(host.copy()).st_mode) == 0o600
    assert _held(emu) == numbers

    # A check run with the same file predicts from the copy: nothing would change, nothing is sent.
    before = _activity(emu)
    output = host.play(pbx1, check=True)
    assert '"unchanged": %d' % COUNT in output and "was NOT predicted" not in output
    assert _activity(emu) == before

    # One more number: the copy differs, so the check run predicts nothing and says so.
    _write_file(controller_file, numbers + ["+4795000000"])
    output = host.play(pbx1, check=True)
    assert "was NOT predicted" in output and "%d present and 0 absent" % (COUNT + 1) in " ".join(output.split())
    assert _activity(emu) == before


def test_a_number_of_a_file_on_another_host_is_refused_before_anything_changes(tmp_path, emu):
    host = Host(tmp_path, emu)
    numbers = _numbers(20)
    controller_file = _write_file(str(tmp_path / "pbx1-numbers.csv"), numbers)
    hosts = {"pbx1": dict(sipbreakout_registrations_file=controller_file),
             "pbx2": dict(sipbreakout_registrations=[dict(phone_number=numbers[7], route_type="loop")])}
    output = " ".join(host.play(hosts, expect_failure=True, test_registrations=False).split())
    assert "pbx1: sipbreakout_registrations_file line 9: %s also present on pbx2 (sipbreakout_registrations[0]); a " \
           "number can be served by one host or one cluster only" % numbers[7] in output
    assert "pbx2: sipbreakout_registrations[0]: %s also present on pbx1 (sipbreakout_registrations_file line 9)" % (
        numbers[7]) in output
    assert _activity(emu) == (0, 0) and not os.path.exists(host.state)
