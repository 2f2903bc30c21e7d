#!/usr/bin/env bash
# Copy the collection to DEST/ansible_collections/wgtwo/sipbreakout (ansible-test needs that path).
#
# The copy holds exactly what git would put in a commit right now: tracked files plus untracked files that are
# not ignored (`git ls-files --cached --others --exclude-standard`), minus tracked files deleted in the work tree.
# A symlink is no good: Python resolves the working directory, and ansible-test then sees the real path.
#
# The copy gets its own git repository (nothing committed): ansible-test lists content with git when it finds a
# .git at or above the collection, and would otherwise find this repository, which ignores .build/.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
dest_root=${1:-$root/.build}
dest=$dest_root/ansible_collections/wgtwo/sipbreakout

cd "$root"
rm -rf "$dest"
mkdir -p "$dest"

git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' path; do
        if [[ -e $path || -L $path ]]; then
            printf '%s\0' "$path"
        fi
    done \
    | tar --null --no-recursion -T - -cf - \
    | tar -xf - -C "$dest"

git -C "$dest" init -q
count=$(git -C "$dest" ls-files --others --exclude-standard | wc -l)
echo "collection: $count files copied to ${dest#"$root"/}"
