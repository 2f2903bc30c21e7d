#!/usr/bin/env bash
# Build the Debian 12 (bookworm) image the molecule scenarios run, from the Debian mirror this machine already uses:
# no image registry is reachable here. Idempotent: does nothing when the image exists (pass --force to rebuild).
#
# --systemd builds SIPBREAKOUT_SYSTEMD_TEST_IMAGE instead: the base image (built first if missing) with systemd,
# systemd-sysv and dbus installed in a container and committed, whose command is /sbin/init (for scenarios whose
# PID 1 must be systemd). A layer on the base image instead of a second debootstrap: about a third of the time.
#
# Environment: SIPBREAKOUT_TEST_IMAGE, SIPBREAKOUT_SYSTEMD_TEST_IMAGE (image names), DEBIAN_MIRROR /
# DEBIAN_SECURITY_MIRROR (default: read from /etc/apt/sources.list.d/*.sources and /etc/apt/sources.list),
# CONTAINERS_CONF (default: hack/molecule/containers.conf).
set -euo pipefail
# shellcheck source=hack/molecule/lib.sh
. "$(dirname "$0")/lib.sh"

force=no
systemd=no
image="$SIPBREAKOUT_TEST_IMAGE"
packages=python3,python3-apt,ca-certificates,sudo
for arg in "$@"; do
    case $arg in
        --force) force=yes ;;
        --systemd)
            systemd=yes
            image="$SIPBREAKOUT_SYSTEMD_TEST_IMAGE"
            ;;
        *) die "usage: $0 [--force] [--systemd]" ;;
    esac
done

[ "$(id -u)" = 0 ] || die "debootstrap and chroot need root"
command -v podman >/dev/null || die "podman is missing: run hack/molecule/host-packages.sh"
command -v debootstrap >/dev/null || die "debootstrap is missing: run hack/molecule/host-packages.sh"

if [ "$force" = no ] && podman image exists "$image"; then
    log "image $image exists; nothing to do (--force rebuilds it)"
    exit 0
fi

# The image this build replaces (--force); removed once the new one is tagged, unless a container still uses it.
old_image="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
drop_old_image() {
    if [ -n "$old_image" ]; then
        podman image rm "$old_image" > /dev/null 2>&1 || true
    fi
}

if [ "$systemd" = yes ]; then
    "$0"
    container="sipbreakout-image-build-$$"
    trap 'podman rm --force "$container" > /dev/null 2>&1 || true' EXIT
    log "installing systemd into a container of $SIPBREAKOUT_TEST_IMAGE"
    podman run --name "$container" --network host "$SIPBREAKOUT_TEST_IMAGE" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        sh -ec 'apt-get update -qq; apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus; apt-get clean' \
        > /dev/null || die "installing systemd in the container failed"
    log "committing $image"
    podman commit --quiet --change 'CMD ["/sbin/init"]' \
        "$container" "$image" > /dev/null
    drop_old_image
    log "built $image"
    exit 0
fi

# The first http(s) Debian archive URI of the machine's apt sources (deb822 or one-line format).
apt_uri() {
    local pattern=$1
    {
        cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}'
        cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}'
    } | grep -E "$pattern" | head -n 1 || true
}

mirror="${DEBIAN_MIRROR:-$(apt_uri '/debian/?$')}"
security="${DEBIAN_SECURITY_MIRROR:-$(apt_uri '/debian-security/?$')}"
[ -n "$mirror" ] || die "no Debian mirror found in the apt sources; set DEBIAN_MIRROR"
mirror="${mirror%/}"
security="${security%/}"

workdir="$(mktemp -d /var/tmp/sipbreakout-image.XXXXXX)"
cleanup() {
    # The chroot may still have /proc mounted if a step failed half-way.
    umount "$workdir/rootfs/proc" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT
rootfs="$workdir/rootfs"

log "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" \
    > "$workdir/debootstrap.log" 2>&1 || { tail -n 30 "$workdir/debootstrap.log" >&2; die "debootstrap failed"; }

{
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [ -n "$security" ] && echo "deb $security bookworm-security main"
} > "$rootfs/etc/apt/sources.list"

log "upgrading from bookworm-updates and bookworm-security"
mount -t proc proc "$rootfs/proc"
chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -ec '
    apt-get update -qq
    apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade
    apt-get clean
' > "$workdir/upgrade.log" 2>&1 || { tail -n 30 "$workdir/upgrade.log" >&2; die "upgrade in the chroot failed"; }
umount "$rootfs/proc"

log "importing $image"
tar -C "$rootfs" --numeric-owner -c . |
    podman import --quiet --change 'CMD ["sleep", "infinity"]' --message "Debian 12 from $mirror for molecule" \
        - "$image" > /dev/null
drop_old_image
log "built $image"
