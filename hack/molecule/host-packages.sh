#!/usr/bin/env bash
# Install the Debian packages the molecule scenarios need on the machine that runs them: podman with runc (crun
# fails here), debootstrap for the image, SIPp (sip-tester) and baresip (baresip-core, a SIP user agent with its own
# RFC 3263 routing) for the test peers. Idempotent: apt runs only when a package is missing.
set -euo pipefail
# shellcheck source=hack/molecule/lib.sh
. "$(dirname "$0")/lib.sh"

packages=(podman runc debootstrap sip-tester baresip-core)
missing=()
for package in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)"
    [ "$status" = installed ] || missing+=("$package")
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "all present: ${packages[*]}"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "missing ${missing[*]}; installing them needs root"
log "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
