# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make emulator`, `make emulator-status`, `make emulator-stop`: the offline API emulator for your own playbooks.

  emulator_user.py up STATE_DIR       start it, unless it runs already, with one OAuth client whose secret is made
                                      here; write STATE_DIR/vars.yml for playbooks
  emulator_user.py status STATE_DIR   whether it runs, where, and what it holds
  emulator_user.py down STATE_DIR     stop it; vars.yml and the secret go with it

STATE_DIR (made 0700) holds vars.yml, the connection variables of playbooks/register.yml and of the pbx role, which
read the client secret with a lookup from client_secret (0600) beside it, and the emulator's own files. Nothing
printed here holds the secret. Run with tests/emulator and the folder above ansible_collections on PYTHONPATH, by a
Python with grpcio, protobuf and cryptography (the Makefile uses the demo's virtual environment).
"""

import os
import secrets
import sys

from sipbreakout_emulator.admin_client import AdminClient, AdminClientError
from sipbreakout_emulator.files import info_path, read_info
from sipbreakout_emulator.process import EmulatorProcessError, is_emulator, spawn, stop_pid, wait_ready
from sipbreakout_emulator.state import ROUTING_SCOPE

import emulator_vars

CLIENT_ID = "emulator-client"
VARS_FILE = "vars.yml"
SECRET_FILE = "client_secret"


def _running(state_dir):
    info = read_info(state_dir)
    if info and isinstance(info.get("pid"), int) and is_emulator(info["pid"]):
        return info
    return None


def _write(path, text, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # also when it existed with another mode
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def up(state_dir):
    """Start the emulator unless it runs; write the variables file and the secret file."""
    if _running(state_dir):
        print("emulator: already running in %s (make emulator-stop stops it)" % state_dir)
        return status(state_dir)
    os.makedirs(state_dir, 0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    secret = secrets.token_urlsafe(32)
    secret_path = os.path.join(state_dir, SECRET_FILE)
    _write(secret_path, secret + "\n", 0o600)
    # The secret reaches the emulator on its stdin, never on a command line.
    process = spawn(state_dir, [dict(client_id=CLIENT_ID, client_secret=secret, scopes=[ROUTING_SCOPE])])
    try:
        info = wait_ready(state_dir, process)
    except EmulatorProcessError as exc:
        print("emulator: did not start: %s" % exc, file=sys.stderr)
        return 1
    vars_path = os.path.join(state_dir, VARS_FILE)
    _write(vars_path, "# Written by `make emulator` (hack/emulator_user.py): the offline API emulator's connection "
                      "variables.\n# The client secret is read from %s (mode 0600) when a task uses it.\n"
                      "# ansible-playbook -i INVENTORY playbooks/register.yml -e @%s\n"
                      % (secret_path, vars_path) + emulator_vars.render("user", state_dir, CLIENT_ID,
                                                                        secret_file=secret_path), 0o644)
    print("emulator: running, pid %d" % info["pid"])
    print("  gRPC endpoint   %s" % info["grpc_endpoint"])
    print("  token URL       %s" % info["token_url"])
    print("  CA certificate  %s" % info["ca_path"])
    print("  client id       %s (its secret: %s, mode 0600)" % (CLIENT_ID, secret_path))
    print("  variables       %s" % vars_path)
    print("Use it: ansible-playbook -i INVENTORY playbooks/register.yml -e @%s" % vars_path)
    print("make emulator-status shows what it holds, make emulator-stop stops it.")
    return 0


def status(state_dir):
    """What runs in ``state_dir`` and what it holds."""
    info = _running(state_dir)
    if not info:
        print("emulator: not running in %s (make emulator starts it)" % state_dir)
        return 0
    try:
        summary = AdminClient(info).get("registrations/summary")
        calls = AdminClient(info).get("calls?limit=0")
    except (AdminClientError, OSError) as exc:
        print("emulator: pid %d runs, but its admin API does not answer: %s" % (info["pid"], exc), file=sys.stderr)
        return 1
    print("emulator: running in %s, pid %d" % (state_dir, info["pid"]))
    print("  gRPC endpoint   %s" % info["grpc_endpoint"])
    print("  token URL       %s" % info["token_url"])
    print("  CA certificate  %s" % info["ca_path"])
    print("  variables       %s" % os.path.join(state_dir, VARS_FILE))
    print("  holds           %d live registration(s), after %d call(s) and %d token request(s)"
          % (summary["count"], calls["total"], calls["token_requests"]))
    return 0


def down(state_dir):
    """Stop it; the variables and the secret are of no use afterwards."""
    info = read_info(state_dir)
    stopped = False
    if info and isinstance(info.get("pid"), int):
        try:
            stopped = stop_pid(info["pid"])
        except EmulatorProcessError as exc:
            print("emulator: %s" % exc, file=sys.stderr)
            return 1
        if read_info(state_dir) == info:  # a clean stop removes it; a crashed emulator's stays behind
            os.unlink(info_path(state_dir))
    for name in (VARS_FILE, SECRET_FILE):
        path = os.path.join(state_dir, name)
        if os.path.exists(path):
            os.unlink(path)
    print("emulator: stopped, pid %d" % info["pid"] if stopped else "emulator: none was running in %s" % state_dir)
    return 0


def main(argv):
    """Entry point."""
    commands = dict(up=up, status=status, down=down)
    if len(argv) != 3 or argv[1] not in commands:
        sys.stderr.write(__doc__)
        return 2
    return commands[argv[1]](os.path.abspath(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
