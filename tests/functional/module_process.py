# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registration module run as Ansible runs it on a host: its own process, its arguments from a file, its result
read from what it prints, as the controller reads it (so its size is the size the controller receives); and a play
of it run by ansible-playbook, against the collection under test."""

import itertools
import json
import os
import subprocess
import sys
import time

import ansible_collections

MODULE = "ansible_collections.wgtwo.sipbreakout.plugins.modules.registration"
COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])
# For a play's module_defaults: the connection options from the variables of the same names.
CONNECTION_DEFAULTS = """
    group/wgtwo.sipbreakout.sipbreakout:
      api_endpoint: "{{ api_endpoint }}"
      ca_path: "{{ ca_path }}"
      token_url: "{{ token_url }}"
      client_id: "{{ client_id }}"
      client_secret: "{{ client_secret }}"
      ledger_path: "{{ ledger_path }}"
      token_cache_path: "{{ token_cache_path }}"
"""
_RUNS = itertools.count()


class Outcome:
    """What one module process did: its result, the bytes it printed, its exit status and how long it took."""

    def __init__(self, result, output, errors, returncode, elapsed):
        self.result = result
        self.output = output
        self.errors = errors
        self.returncode = returncode
        self.elapsed = elapsed


def run_module(work_dir, args, check_mode=False, diff=False, timeout=300):
    """Run the module with ``args`` (its options; the file holding them is 0600, it may hold a secret)."""
    path = os.path.join(str(work_dir), "module-args-%d.json" % next(_RUNS))
    module_args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", MODULE, path], capture_output=True, timeout=timeout, check=False)
    elapsed = time.monotonic() - started
    output = run.stdout.decode("utf-8")
    try:
        result = json.loads(output)
    except ValueError:
        raise AssertionError("no module result (exit %d): %s %s" % (run.returncode, output[-2000:],
                                                                    run.stderr.decode("utf-8", "replace")[-2000:]))
    return Outcome(result, output, run.stderr.decode("utf-8", "replace"), run.returncode, elapsed)


def run_playbook(work_dir, play, variables, *args):
    """ansible-playbook of ``play`` on localhost with ``variables`` (from a 0600 file, they may hold a secret) and
    ``args``; the module runs with this Python. Returns the finished process; its output is in stdout."""
    path = os.path.join(str(work_dir), "play-%d" % next(_RUNS))
    fd = os.open(path + ".json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(dict(variables, ansible_python_interpreter=sys.executable), handle)
    with open(path + ".yml", "w", encoding="utf-8") as handle:
        handle.write(play)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "@%s.json" % path] + list(args)
                          + [path + ".yml"], env=env, capture_output=True, text=True, timeout=300, check=False)
