# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make emulator`, `make emulator-status` and `make emulator-stop`, run as a user runs them: the vars file they
write is what playbooks/register.yml needs against the sample inventory (the emulator's admin API is the judge of
what got registered), the client secret is only in a 0600 file and never printed, a second `make emulator` leaves
the running one alone, and stop ends the process and removes the secret."""

import json
import os
import stat
import subprocess
import sys

from sipbreakout_emulator.admin_client import AdminClient
from sipbreakout_emulator.process import is_running

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import normalize_phone_number

from test_docs_install import ROOT

BIN = os.path.dirname(sys.executable)


def _make(target, state_dir, env):
    run = subprocess.run(["make", "-C", ROOT, target, "EMULATOR_DIR=%s" % state_dir,
                          "EMULATOR_PYTHON=%s" % sys.executable], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    return run.stdout


def _sample_numbers():
    """(number, sip_uri) of every registration the sample inventory declares present."""
    output = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i",
                             os.path.join(ROOT, "playbooks", "inventory", "sample.yml"), "--list"],
                            stdout=subprocess.PIPE, check=True).stdout
    hostvars = json.loads(output)["_meta"]["hostvars"]
    return sorted((normalize_phone_number(item["phone_number"]), host["sipbreakout_sip_uri"])
                  for host in hostvars.values() for item in host["sipbreakout_registrations"]
                  if item.get("state", "present") == "present")


def test_make_emulator_gives_a_playbook_what_it_needs(tmp_path):
    state_dir = tmp_path / "emulator"
    env = dict(os.environ, HOME=str(tmp_path / "home"), ANSIBLE_NOCOLOR="1", PATH=BIN + os.pathsep + os.environ["PATH"])
    outputs = [_make("emulator", state_dir, env)]
    info = json.loads((state_dir / "emulator.json").read_text())
    try:
        secret = (state_dir / "client_secret").read_text().strip()
        assert len(secret) >= 32
        assert stat.S_IMODE(os.stat(str(state_dir)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(str(state_dir / "client_secret")).st_mode) == 0o600
        variables = (state_dir / "vars.yml").read_text()
        assert secret not in variables
        assert "sipbreakout_api_endpoint: \"%s\"" % info["grpc_endpoint"] in variables

        # The real playbook, with nothing but the vars file.
        playbook = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "playbooks/inventory/sample.yml",
                                   "playbooks/register.yml", "-e", "@%s" % (state_dir / "vars.yml")],
                                  cwd=ROOT, env=dict(env, ANSIBLE_COLLECTIONS_PATH=os.path.dirname(
                                      os.path.dirname(os.path.dirname(ROOT)))),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                  timeout=300, check=False)
        assert playbook.returncode == 0, playbook.stdout[-3000:]
        outputs.append(playbook.stdout)
        held = AdminClient(info).get("registrations")
        assert sorted((reg["phone_number"], reg["sip_uri"]) for reg in held) == _sample_numbers()
        assert set(reg["client_id"] for reg in held) == {"emulator-client"}

        # Started again: the running one stays, with what it holds.
        again = _make("emulator", state_dir, env)
        outputs.append(again)
        assert "already running" in again and json.loads((state_dir / "emulator.json").read_text()) == info
        status = _make("emulator-status", state_dir, env)
        outputs.append(status)
        assert "pid %d" % info["pid"] in status and "holds           5 live registration(s)" in status
    finally:
        outputs.append(_make("emulator-stop", state_dir, env))
    assert not is_running(info["pid"])
    assert not (state_dir / "client_secret").exists() and not (state_dir / "vars.yml").exists()
    stopped = _make("emulator-status", state_dir, env)
    assert "not running" in stopped
    for output in outputs + [stopped]:
        assert secret not in output
