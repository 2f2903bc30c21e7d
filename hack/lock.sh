#!/usr/bin/env bash
# Refresh tests/constraints.txt (`make lock`): install tests/requirements-dev.txt into a throwaway venv with
# nothing else, and pin every package that ends up in it.
set -euo pipefail

python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements-dev.txt
{
    echo "# Every package tests/requirements-dev.txt installs, pinned: \`make lock\` (hack/lock.sh) writes this file."
    echo "# Made with $("$tmp/venv/bin/python" --version) on $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"')."
    "$tmp/venv/bin/python" -m pip freeze --disable-pip-version-check
} > tests/constraints.txt.new
mv tests/constraints.txt.new tests/constraints.txt
echo "lock: $(grep -vc '^#' tests/constraints.txt) packages pinned in tests/constraints.txt"
