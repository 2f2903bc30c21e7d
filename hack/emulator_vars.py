# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn the emulator's emulator.json into Ansible variables (a YAML file on stdout).

  emulator_vars.py integration STATE_DIR CLIENT_ID CLIENT_SECRET   tests/integration/integration_config.yml
  emulator_vars.py demo STATE_DIR CLIENT_ID CLIENT_SECRET          extra vars for playbooks/register.yml

hack/emulator_user.py (`make emulator`) writes the third kind, ``user``: the demo's variables with the client
secret read from a 0600 file by a lookup, so that the variables file itself holds no secret.
"""

import json
import os
import sys

# emulator.json key -> variable name, per use.
NAMES = {
    "integration": {
        "grpc_endpoint": "sipbreakout_emulator_grpc_endpoint",
        "token_url": "sipbreakout_emulator_token_url",
        "admin_url": "sipbreakout_emulator_admin_url",
        "ca_path": "sipbreakout_emulator_ca_path",
        "client_id": "sipbreakout_emulator_client_id",
        "client_secret": "sipbreakout_emulator_client_secret",
        "state_dir": "sipbreakout_emulator_state_dir",
    },
    "demo": {
        "grpc_endpoint": "sipbreakout_api_endpoint",
        "token_url": "sipbreakout_token_url",
        "ca_path": "sipbreakout_ca_path",
        "client_id": "sipbreakout_client_id",
        "client_secret": "sipbreakout_client_secret",
    },
}
NAMES["user"] = NAMES["demo"]

# Extra variables per use that do not come from the emulator.
EXTRA = {
    # A module host Python with Debian 12's python3-grpcio / python3-protobuf, for tests of that end.
    "integration": {"sipbreakout_debian_python": os.environ.get("DEBIAN_PYTHON", "/usr/bin/python3")},
    "demo": {},
    "user": {},
}


def render(use, state_dir, client_id, client_secret=None, secret_file=None):
    """The YAML text of the variables; ``secret_file`` instead of ``client_secret``: a lookup of that file."""
    state_dir = os.path.abspath(state_dir)
    with open(os.path.join(state_dir, "emulator.json"), encoding="utf-8") as handle:
        emulator = json.load(handle)
    values = dict(emulator, client_id=client_id, client_secret=client_secret, state_dir=state_dir)
    if secret_file is not None:
        if "'" in secret_file:
            raise ValueError("the path %s holds a quote" % secret_file)
        values["client_secret"] = "{{ lookup('ansible.builtin.file', '%s') }}" % os.path.abspath(secret_file)
    missing = sorted(key for key in NAMES[use] if not values.get(key))
    if missing:
        raise ValueError("emulator.json lacks %s" % ", ".join(missing))
    variables = dict((name, values[key]) for key, name in NAMES[use].items())
    variables.update(EXTRA[use])
    # A JSON string is a valid YAML double-quoted scalar.
    return "".join("%s: %s\n" % (name, json.dumps(str(variables[name]))) for name in sorted(variables))


def main(argv):
    """Entry point."""
    if len(argv) != 5 or argv[1] not in ("integration", "demo"):
        sys.stderr.write(__doc__)
        return 2
    use, state_dir, client_id, client_secret = argv[1:]
    try:
        text = render(use, state_dir, client_id, client_secret)
    except ValueError as exc:
        sys.stderr.write("emulator_vars: %s\n" % exc)
        return 1
    source = os.path.join(os.path.abspath(state_dir), "emulator.json")
    sys.stdout.write("# Written by hack/emulator_vars.py from %s\n" % source)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
