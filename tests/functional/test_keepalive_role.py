# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role wgtwo.sipbreakout.keepalive on this machine (every path in a temporary directory): the cron path
installs a program that really refreshes, state=absent waits for a running pass and removes it; the systemd units
pass systemd-analyze verify (PID 1 is not systemd here) and their job, run by hand, works."""

import fcntl
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import time

import ansible_collections
import pytest

from sipbreakout_emulator.testing import running_emulator

from keepalive_support import CLIENT_ID, CLIENT_SECRET, KEEPALIVE, Workdir, held, read_health, register, \
    write_config

COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])
UNIT = "wgtwo-sipbreakout-keepalive"
# PBX hosts run Debian 12's python3 with python3-grpcio 1.51 and python3-protobuf 3.21: the installed program
# is run with that (the oldest end the collection supports; `make deps` installs it).
DEBIAN_PYTHON = "/usr/bin/python3"

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: The keepalive role
      ansible.builtin.include_role:
        name: wgtwo.sipbreakout.keepalive
        tasks_from: "{{ tasks_from | default('main') }}"
"""


def _paths(root, work):
    return dict(
        keepalive_ledger_path=work.ledger,
        keepalive_token_cache_path=work.tokens,
        keepalive_health_path=work.health,
        keepalive_metrics_path=work.metrics,
        keepalive_config_path=os.path.join(root, "etc", "wgtwo-sipbreakout", "keepalive.json"),
        keepalive_bin_path=os.path.join(root, "sbin", UNIT),
        keepalive_lib_dir=os.path.join(root, "lib", "wgtwo-sipbreakout"),
        keepalive_unit_dir=os.path.join(root, "systemd"),
        keepalive_cron_file=os.path.join(root, "cron.d", UNIT),
        keepalive_python=sys.executable,
        keepalive_packages=[],
        keepalive_cron_packages=[],
        keepalive_cron_service="",
    )


def _play(tmp_path, variables, tasks_from="main"):
    variables = dict(variables, tasks_from=tasks_from, ansible_python_interpreter=sys.executable)
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    os.chmod(str(extra), 0o600)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    run = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "@%s" % extra, str(playbook)],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cron_install_refreshes_and_absent_removes_it_cleanly(tmp_path):
    check = subprocess.run([DEBIAN_PYTHON, "-c", "import grpc, google.protobuf, requests_oauthlib"],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, "needs %s with python3-grpcio, python3-protobuf, python3-requests-oauthlib: %s" % (
        DEBIAN_PYTHON, check.stderr)
    root = str(tmp_path / "host")
    work = Workdir(tmp_path / "host" / "var")
    variables = dict(_paths(root, work), keepalive_python=DEBIAN_PYTHON)
    for directory in ("cron.d", "sbin"):  # as on any host
        os.makedirs(os.path.join(root, directory))
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=120) as emu:
        numbers = ["+4799999001", "+4799999002"]
        register(emu, work, numbers)
        variables.update(keepalive_scheduler="cron", keepalive_interval=60, keepalive_connection=dict(
            api_endpoint=emu.grpc_endpoint, ca_path=emu.ca_path, token_url=emu.token_url, client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET, timeout=5.0))
        output = _play(tmp_path, variables)
        assert CLIENT_SECRET not in output

        config = variables["keepalive_config_path"]
        assert _mode(config) == 0o600 and json.load(open(config))["client_secret"] == CLIENT_SECRET
        assert _mode(variables["keepalive_bin_path"]) == 0o755
        package = os.path.join(variables["keepalive_lib_dir"], "ansible_collections")
        for level in ("", "wgtwo", "wgtwo/sipbreakout", "wgtwo/sipbreakout/plugins",
                      "wgtwo/sipbreakout/plugins/module_utils", "wgtwo/sipbreakout/plugins/module_utils/generated"):
            assert os.path.isfile(os.path.join(package, level, "__init__.py")), level
        installed = os.path.join(package, "wgtwo", "sipbreakout", "plugins", "module_utils", "keepalive.py")
        source = os.path.join(COLLECTIONS, "ansible_collections", "wgtwo", "sipbreakout", "plugins", "module_utils",
                              "keepalive.py")
        assert open(installed).read() == open(source).read()
        assert not os.path.exists(variables["keepalive_unit_dir"])

        with open(variables["keepalive_cron_file"]) as handle:
            lines = [line for line in handle.read().splitlines() if line and not line.startswith("#")]
        job = lines[-1]
        match = re.match(r"^([0-9]+(,[0-9]+)*) \* \* \* \* root (.+)$", job)
        assert match, job
        assert len(match.group(1).split(",")) == 60  # every minute for a 60 s interval
        command = shlex.split(match.group(3))
        assert command[:2] == [variables["keepalive_bin_path"], "--once"] and "--quiet" in command
        # Run the job as cron would (without the random start delay): the installed copy, not the work tree.
        run = subprocess.run(command + ["--splay", "0"], capture_output=True, text=True, timeout=60, check=False,
                             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONNOUSERSITE": "1"})
        assert run.returncode == 0 and run.stdout + run.stderr == "", run.stdout + run.stderr
        assert [reg["upserts"] for reg in held(emu).values()] == [2, 2]
        assert read_health(work)["registrations_live"] == 2
        assert _mode(work.metrics) == 0o644

        # state=absent while a pass is running (it holds its pass lock): the role waits for it to end, then removes
        # everything.
        lock_path = work.health + ".pass.lock"
        lock = os.open(lock_path, os.O_RDWR)
        fcntl.flock(lock, fcntl.LOCK_EX)
        released = []

        def release():
            time.sleep(3)
            released.append(time.monotonic())
            os.close(lock)

        holder = threading.Thread(target=release)
        holder.start()
        try:
            _play(tmp_path, dict(variables, keepalive_state="absent"))
            finished = time.monotonic()
        finally:
            holder.join()
        assert released and finished >= released[0]
        for gone in ("keepalive_cron_file", "keepalive_bin_path", "keepalive_lib_dir", "keepalive_config_path",
                     "keepalive_health_path", "keepalive_metrics_path"):
            assert not os.path.exists(variables[gone]), gone
        assert os.path.exists(work.ledger) and os.path.exists(work.tokens)  # what the modules still need


def _verify(directory, *names):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no"]
                          + [os.path.join(directory, name) for name in names],
                          capture_output=True, text=True, timeout=60, check=False)


def test_systemd_units_verify_and_their_job_works(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: install the Debian package systemd (PID 1 need not be systemd)")
    root = str(tmp_path / "host")
    work = Workdir(tmp_path / "host" / "var")
    variables = _paths(root, work)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=3600) as emu:
        register(emu, work, ["+4799999101"])
        write_config(emu, work)
        # The program as the role installs it, here launching the collection under test.
        os.makedirs(os.path.dirname(variables["keepalive_bin_path"]))
        with open(variables["keepalive_bin_path"], "w") as handle:
            handle.write("#!/bin/sh\nexec %s \"$@\"\n" % " ".join(shlex.quote(arg) for arg in KEEPALIVE))
        os.chmod(variables["keepalive_bin_path"], 0o755)
        variables.update(keepalive_config_path=work.config, keepalive_interval=300)
        os.makedirs(variables["keepalive_unit_dir"])
        _play(tmp_path, variables, tasks_from="units.yml")

        units = variables["keepalive_unit_dir"]
        service = os.path.join(units, UNIT + ".service")
        result = _verify(units, UNIT + ".service", UNIT + ".timer")
        assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
        text = open(service).read()
        assert "ReadWritePaths=%s %s" % (work.state, os.path.dirname(work.metrics)) in text
        assert "OnUnitActiveSec=300s" in open(os.path.join(units, UNIT + ".timer")).read()

        # The same check fails on a broken unit, so it can fail.
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / (UNIT + ".service")).write_text(text.replace("ProtectSystem=strict", "ProtectSystem=bogus"))
        assert _verify(str(broken), UNIT + ".service").returncode != 0
        (broken / (UNIT + ".service")).write_text(text.replace(variables["keepalive_bin_path"], "/nonexistent/x"))
        assert _verify(str(broken), UNIT + ".service").returncode != 0

        security = subprocess.run(["systemd-analyze", "security", "--offline=yes", service], capture_output=True,
                                  text=True, timeout=60, check=False)
        exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
        assert exposure and float(exposure.group(1)) <= 3.0, security.stdout[-500:]

        # Run the service's job by hand, as the timer would start it.
        exec_start = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ExecStart=")]
        run = subprocess.run(shlex.split(exec_start[0]), capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
        assert read_health(work)["last_run"]["mode"] == "once"
