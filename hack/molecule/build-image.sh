#!/usr/bin/env bash
# Build the Debian 12 (bookworm) image the molecule scenarios run, from the Debian mirror this machine already uses:
# no image registry is reachable here. Idempotent: does nothing when the image exists (pass --force to rebuild).
#
# --systemd builds SIPBREAKOUT_SYSTEMD_TEST_IMAGE instead: the same with systemd, systemd-sysv and dbus, whose
# command is /sbin/init (for scenarios whose PID 1 must be systemd).
#
# Environment: SIPBREAKOUT_TEST_IMAGE, SIPBREAKOUT_SYSTEMD_TEST_IMAGE (image names), DEBIAN_MIRROR /
# DEBIAN_SECURITY_MIRROR (default: read from /etc/apt/sources.list.d/*.sources and /etc/apt/sources.list),
# CONTAINERS_CONF (default: hack/molecule/containers.conf).
set -euo pipefail
# shellcheck source=hack/molecule/lib.sh
. "$(dirname "$0")/lib.sh"

force=no
image="$SIPBREAKOUT_TEST_IMAGE"
packages=python3,python3-apt,ca-certificates,sudo
command='["sleep", "infinity"]'
for arg in "$@"; do
    case $arg in
        --force) force=yes ;;
        --systemd)
            image="$SIPBREAKOUT_SYSTEMD_TEST_IMAGE"
            packages="$packages,systemd,systemd-sysv,dbus"
            command='["/sbin/init"]'
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

old_image="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
log "importing $image"
tar -C "$rootfs" --numeric-owner -c . |
    podman import --quiet --change "CMD $command" --message "Debian 12 from $mirror for molecule" \
        - "$image" > /dev/null
if [ -n "$old_image" ]; then
    # The image this one replaces (--force), unless a container still uses it.
    podman image rm "$old_image" > /dev/null 2>&1 || true
fi
log "built $image"
