#!/usr/bin/env bash
# `make demo`: what a user of the collection does, against the offline API emulator.
#
# 1. a virtual environment of its own with ansible-core and the modules' requirements.txt
# 2. `ansible-galaxy collection build` of the work tree (the build copy), installed into .build/demo-collections
# 3. the emulator, started with a demo OAuth client
# 4. playbooks/register.yml of the installed collection with the sample inventory, run twice: the second run
#    must change nothing
# 5. what the emulator now holds, then where to go next (README.md), and the emulator is stopped (also when a
#    step failed)
#
#   hack/demo.sh BUILD_DIR
#
# Environment: PYTHON (the Python to create the venv with, default python3).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$(cd "${1:?build dir}" && pwd)
demo=$build_dir/demo
venv=$demo/venv
collections=$build_dir/demo-collections
state_dir=$demo/emulator
client_id="demo-client"
client_secret="demo-secret"

step() {
    printf '\n==> demo: %s\n' "$*"
}

step "virtual environment $venv"
"$root/hack/demo-venv.sh" "$venv"
version=$("$venv/bin/ansible" --version)
echo "${version%%$'\n'*}"
export PATH=$venv/bin:$PATH

step "build and install the collection"
rm -rf "$collections" "$demo/dist"
mkdir -p "$demo/dist"
ansible-galaxy collection build "$build_dir/ansible_collections/wgtwo/sipbreakout" --output-path "$demo/dist"
tarball=$(ls "$demo/dist"/wgtwo-sipbreakout-*.tar.gz)
# Only this path: a copy of the collection elsewhere (~/.ansible/collections) must neither satisfy the install
# nor be what the playbook runs.
export ANSIBLE_COLLECTIONS_PATH=$collections
ansible-galaxy collection install --offline --force -p "$collections" "$tarball"
installed=$collections/ansible_collections/wgtwo/sipbreakout
# A home of its own: a fresh ledger (~/.local/state/wgtwo.sipbreakout) for a fresh emulator, and the user's
# own files stay untouched.
rm -rf "${demo:?}/home"
mkdir -p "$demo/home"
export HOME=$demo/home ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}

step "start the API emulator"
export PYTHON=$venv/bin/python BUILD_DIR=$collections
stop_emulator() {
    step "stop the API emulator"
    "$root/hack/emulator.sh" stop "$state_dir" || echo "demo: the emulator did not stop cleanly" >&2
}
trap stop_emulator EXIT
"$root/hack/emulator.sh" start "$state_dir" "$client_id:$client_secret"
"$PYTHON" "$root/hack/emulator_vars.py" demo "$state_dir" "$client_id" "$client_secret" >"$demo/vars.yml"
echo "connection variables for the playbook: $demo/vars.yml"

cd "$installed"
step "ansible-playbook -i playbooks/inventory/sample.yml playbooks/register.yml -e @vars.yml"
ansible-playbook -i playbooks/inventory/sample.yml playbooks/register.yml -e "@$demo/vars.yml"

step "the same again: nothing may change"
ansible-playbook -i playbooks/inventory/sample.yml playbooks/register.yml -e "@$demo/vars.yml" \
    | tee "$demo/second-run.log"
if ! grep -Eq 'changed=0 +unreachable=0 +failed=0' "$demo/second-run.log" \
    || grep -Eq 'changed=[1-9]' "$demo/second-run.log"; then
    echo "demo: the second run reported changes or failures" >&2
    exit 1
fi

step "what the emulator holds now"
"$root/hack/emulator.sh" show "$state_dir"

step "next"
echo "README.md, section 'After make demo': make emulator for your own playbooks, your PBX, credentials,"
echo "the keepalive and AWX."
