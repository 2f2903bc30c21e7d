#!/usr/bin/env bash
# `make integration`: start the API emulator, point the integration targets at it through
# tests/integration/integration_config.yml in the build copy, run ansible-test integration, and stop the
# emulator afterwards whatever happened.
#
#   hack/integration.sh BUILD_DIR [ansible-test integration ARGS...]
#
# Environment: PYTHON (with grpcio and cryptography, for the emulator), ANSIBLE_TEST_PYTHON (default 3.11).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$(cd "${1:?build dir}" && pwd)
shift
collection=$build_dir/ansible_collections/wgtwo/sipbreakout
state_dir=$build_dir/emulator
client_id="it-client"
client_secret="it-secret"
python=${PYTHON:-python3}
export PYTHON=$python BUILD_DIR=$build_dir

stop_emulator() {
    echo "integration: stopping the emulator"
    "$root/hack/emulator.sh" stop "$state_dir" || echo "integration: the emulator did not stop cleanly" >&2
}
trap stop_emulator EXIT

"$root/hack/emulator.sh" start "$state_dir" "$client_id:$client_secret"

config=$collection/tests/integration/integration_config.yml
mkdir -p "$(dirname "$config")"
"$python" "$root/hack/emulator_vars.py" integration "$state_dir" "$client_id" "$client_secret" >"$config"
echo "integration: wrote ${config#"$build_dir"/}"

"$root/hack/ansible-test.sh" "$collection" integration --python "${ANSIBLE_TEST_PYTHON:-3.11}" --local "$@"
