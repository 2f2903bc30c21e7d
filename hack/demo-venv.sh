#!/usr/bin/env bash
# The virtual environment of `make demo` and `make emulator`: ansible-core for the controller, requirements.txt for
# the modules (they run on localhost there) and cryptography for the emulator's certificates, at the versions of
# the project's lock file. Made once, and again when requirements.txt or tests/constraints.txt changes.
#
#   hack/demo-venv.sh VENV
#
# Environment: PYTHON (the Python to create the venv with, default python3).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:?usage: demo-venv.sh VENV}
stamp=$venv/.installed
if [[ ! -f $stamp || $root/requirements.txt -nt $stamp || $root/tests/constraints.txt -nt $stamp ]]; then
    if [[ ! -x $venv/bin/python ]]; then
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$root/requirements.txt" ansible-core cryptography -c "$root/tests/constraints.txt"
    touch "$stamp"
fi
