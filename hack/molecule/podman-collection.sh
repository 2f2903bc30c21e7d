#!/usr/bin/env bash
# Provide the containers.podman collection the molecule podman driver needs. Ansible Galaxy is unreachable here, so
# it is taken from the `ansible` community package wheel on PyPI (only that collection is extracted).
# Idempotent: does nothing when the collection is already in place. Prints the collections path on stdout.
set -euo pipefail
# shellcheck source=hack/molecule/lib.sh
. "$(dirname "$0")/lib.sh"

target="$SIPBREAKOUT_MOLECULE_COLLECTIONS/ansible_collections/containers/podman"
if [ -f "$target/MANIFEST.json" ]; then
    log "containers.podman present in $SIPBREAKOUT_MOLECULE_COLLECTIONS"
    echo "$SIPBREAKOUT_MOLECULE_COLLECTIONS"
    exit 0
fi

python="${PYTHON:-${SIPBREAKOUT_ROOT}/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
log "downloading the ansible==$SIPBREAKOUT_ANSIBLE_WHEEL_VERSION wheel"
"$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$download" \
    "ansible==$SIPBREAKOUT_ANSIBLE_WHEEL_VERSION" >&2

staging="$SIPBREAKOUT_MOLECULE_COLLECTIONS.tmp"
rm -rf "$staging"
mkdir -p "$staging"
"$python" - "$download" "$staging" <<'PY'
import glob
import sys
import zipfile

wheel = glob.glob(sys.argv[1] + "/ansible-*.whl")[0]
prefix = "ansible_collections/containers/podman/"
with zipfile.ZipFile(wheel) as archive:
    members = [name for name in archive.namelist() if name.startswith(prefix)]
    if not members:
        sys.exit("%s holds no %s" % (wheel, prefix))
    archive.extractall(sys.argv[2], members)
PY
mkdir -p "$(dirname "$target")"
rm -rf "$target"
mv "$staging/ansible_collections/containers/podman" "$target"
rm -rf "$staging"
log "containers.podman $("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$target/MANIFEST.json") extracted"
echo "$SIPBREAKOUT_MOLECULE_COLLECTIONS"
