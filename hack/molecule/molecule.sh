#!/usr/bin/env bash
# Run molecule for the collection's scenarios (extensions/molecule/) with everything they need in place:
# host packages, the locally built Debian 12 image and the containers.podman collection. Each step is skipped
# when already done. Arguments go to molecule, e.g. `hack/molecule/molecule.sh test -s pbx`.
#
# Environment: MOLECULE (default: .venv/bin/molecule, else molecule on PATH), plus what lib.sh reads.
set -euo pipefail
# shellcheck source=hack/molecule/lib.sh
. "$(dirname "$0")/lib.sh"

"$HACK_MOLECULE_DIR/host-packages.sh"
"$HACK_MOLECULE_DIR/build-image.sh"
"$HACK_MOLECULE_DIR/build-image.sh" --systemd
collections="$("$HACK_MOLECULE_DIR/podman-collection.sh")"

molecule="${MOLECULE:-${SIPBREAKOUT_ROOT}/.venv/bin/molecule}"
[ -x "$molecule" ] || molecule="$(command -v molecule)" || die "molecule not found; install the dev requirements"
# Absolute, since its directory goes on PATH and molecule runs ansible-playbook from other directories.
molecule="$(realpath "$molecule")"

# molecule runs ansible-config, ansible-playbook... from PATH: use the ones beside molecule.
PATH="$(dirname "$molecule"):$PATH"
export PATH
# molecule's prerun builds this collection and installs it into $ANSIBLE_HOME/collections (default ~/.ansible,
# shared by everything on the machine): keep that inside the project, and put it first on the collections path
# so that the scenarios run the collection as built from this tree. containers.podman comes from
# podman-collection.sh.
export ANSIBLE_HOME="${SIPBREAKOUT_MOLECULE_ANSIBLE_HOME}"
mkdir -p "$ANSIBLE_HOME/collections"
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_HOME}/collections:${collections}"
export SIPBREAKOUT_TEST_IMAGE SIPBREAKOUT_SYSTEMD_TEST_IMAGE
# The API emulator stands in for the operator: the scenarios read its endpoint, CA and client from
# $SIPBREAKOUT_EMULATOR_STATE/emulator.json. The container shares the host's network, so it reaches it on loopback.
# An emulator already running in a given SIPBREAKOUT_EMULATOR_STATE is reused and left running (for stepping
# through converge and verify by hand); otherwise one is started here and stopped on exit.
export SIPBREAKOUT_EMULATOR_STATE="${SIPBREAKOUT_EMULATOR_STATE:-${SIPBREAKOUT_ROOT}/.cache/molecule/emulator}"
emulator() {
    PYTHON="${PYTHON:-${SIPBREAKOUT_ROOT}/.venv/bin/python}" BUILD_DIR="${SIPBREAKOUT_ROOT}/.build/dev" \
        "$SIPBREAKOUT_ROOT/hack/emulator.sh" "$@"
}
mkdir -p "${SIPBREAKOUT_ROOT}/.build/dev/ansible_collections/wgtwo"
ln -sfn "$SIPBREAKOUT_ROOT" "${SIPBREAKOUT_ROOT}/.build/dev/ansible_collections/wgtwo/sipbreakout"
if [[ ! -s "$SIPBREAKOUT_EMULATOR_STATE/emulator.json" ]]; then
    emulator start "$SIPBREAKOUT_EMULATOR_STATE" molecule-client:molecule-secret >/dev/null
    trap 'emulator stop "$SIPBREAKOUT_EMULATOR_STATE" >/dev/null || true' EXIT
fi

# The shared ledger of the cluster scenario: the test PostgreSQL (hack/postgresql.py), started here or reused and
# left running (`make test` stops it at its end, `make postgresql-stop` by hand). The containers share the host's
# network, so they reach it on 127.0.0.1; the scenarios read its description (postgresql.json).
export SIPBREAKOUT_TEST_POSTGRESQL="${SIPBREAKOUT_TEST_POSTGRESQL:-${SIPBREAKOUT_ROOT}/.build/postgresql/postgresql.json}"
"${PYTHON:-${SIPBREAKOUT_ROOT}/.venv/bin/python}" "$SIPBREAKOUT_ROOT/hack/postgresql.py" start \
    "$(dirname "$SIPBREAKOUT_TEST_POSTGRESQL")" >/dev/null

# molecule reads scenarios from extensions/molecule/ when it runs in the collection's root.
cd "$SIPBREAKOUT_ROOT"
"$molecule" "$@"
