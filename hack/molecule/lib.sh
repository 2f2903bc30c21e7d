# shellcheck shell=bash
# Shared settings for the hack/molecule scripts. Source it; every value can be overridden from the environment.

SIPBREAKOUT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HACK_MOLECULE_DIR="${SIPBREAKOUT_ROOT}/hack/molecule"

# The image the molecule scenarios run; built locally because no image registry is reachable.
SIPBREAKOUT_TEST_IMAGE="${SIPBREAKOUT_TEST_IMAGE:-localhost/sipbreakout-debian12:latest}"
# The same with systemd as PID 1 (build-image.sh --systemd), for the keepalive's default scheduler.
SIPBREAKOUT_SYSTEMD_TEST_IMAGE="${SIPBREAKOUT_SYSTEMD_TEST_IMAGE:-localhost/sipbreakout-debian12-systemd:latest}"
# Where the podman collection extracted from the `ansible` wheel lives (ignored by git: /.cache/).
SIPBREAKOUT_MOLECULE_COLLECTIONS="${SIPBREAKOUT_MOLECULE_COLLECTIONS:-${SIPBREAKOUT_ROOT}/.cache/molecule/collections}"
# ANSIBLE_HOME for molecule runs: where molecule installs this collection before running the scenarios.
SIPBREAKOUT_MOLECULE_ANSIBLE_HOME="${SIPBREAKOUT_MOLECULE_ANSIBLE_HOME:-${SIPBREAKOUT_ROOT}/.cache/molecule/ansible-home}"
# The `ansible` release whose wheel provides containers.podman.
SIPBREAKOUT_ANSIBLE_WHEEL_VERSION="${SIPBREAKOUT_ANSIBLE_WHEEL_VERSION:-12.3.0}"

export CONTAINERS_CONF="${CONTAINERS_CONF:-${HACK_MOLECULE_DIR}/containers.conf}"

log() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
}

die() {
    log "$*"
    exit 1
}
