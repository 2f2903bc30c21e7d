# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pbx role in check mode on a new host, where the kamailio group does not exist yet: the tasks of its edge
that the file module runs (the one that looks groups up in check mode) say nothing about a group they cannot find,
and still set the kamailio group where Kamailio is installed.

The tasks are the role's own, read from its task file and run unchanged by ansible-playbook --check on this host,
after the role's own task that notes whether the packages are installed; only the group's name is replaced by one
that surely does not exist here (this machine may have Kamailio), and the paths point into the test's folder."""

import os
import subprocess
import sys
import uuid

import ansible_collections
import yaml

COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])
ROLE = os.path.join(COLLECTIONS, "ansible_collections", "wgtwo", "sipbreakout", "roles", "pbx")
WARNING = "failed to look up group"


def _role_tasks(group):
    """The role's note of whether Kamailio is installed, and its file tasks that set the kamailio group."""
    with open(os.path.join(ROLE, "tasks", "edge", "kamailio", "main.yml")) as handle:
        text = handle.read()
    tasks = yaml.safe_load(text.replace("kamailio'", "%s'" % group).replace("group: kamailio", "group: " + group))
    note = [task for task in tasks if "_pbx_kamailio_not_installed" in str(task.get("ansible.builtin.set_fact"))]
    files = [task for task in tasks if "ansible.builtin.file" in task
             and group in str(task["ansible.builtin.file"].get("group"))]
    assert len(note) == 1 and files, "the role's tasks changed: %s" % [task.get("name") for task in tasks]
    return note + files


def _check_run(tmp_path, installed):
    group = "sipbreakout-test-%s" % uuid.uuid4().hex[:8]
    play = [dict(hosts="localhost", gather_facts=False, tasks=_role_tasks(group), vars=dict(
        # What the role's apt task registers in check mode: changed when the packages are not installed yet.
        _pbx_kamailio_install=dict(changed=not installed),
        __pbx_kamailio_dir=str(tmp_path / ("installed" if installed else "new") / "sipbreakout")))]
    path = tmp_path / ("play-%s.yml" % installed)
    path.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    run = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "--check", "-e",
                          "ansible_python_interpreter=%s" % sys.executable, str(path)], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert subprocess.run(["getent", "group", group], capture_output=True, check=False).returncode != 0
    return run.stdout + run.stderr


def test_check_mode_on_a_new_host_does_not_warn_about_the_kamailio_group(tmp_path):
    output = _check_run(tmp_path, installed=False)
    assert WARNING not in output, output
    assert "changed=1" in output  # the directory would be created by the real run
    assert not (tmp_path / "new").exists()
    # Where Kamailio is installed, the task does set the group: the file module looks it up (and, the group
    # missing here, says so), so the check above can fail.
    assert WARNING in _check_run(tmp_path, installed=True)
