#!/usr/bin/env bash
# Run ansible-test in the build copy of the collection and fail when it passed without testing anything.
#
#   hack/ansible-test.sh COLLECTION_DIR sanity|units|integration ARGS...
#
# ansible-test exits 0 when every target was skipped, and a sanity test whose program is missing only warns;
# both would let a layer pass that tested nothing. The ansible-test on PATH is used.
set -euo pipefail

collection=${1:?collection dir}
command=${2:?ansible-test command}
shift 2

log=$(mktemp)
trap 'rm -f "$log"' EXIT

rc=0
(cd "$collection" && ansible-test "$command" --color no "$@") 2>&1 | tee "$log" || rc=$?
if [[ $rc -ne 0 ]]; then
    exit "$rc"
fi

skipped='^WARNING: (All targets skipped|Required program "[^"]*" not found)'
if grep -Eq "$skipped" "$log"; then
    echo "ansible-test $command: passed without testing everything:" >&2
    grep -E "$skipped" "$log" >&2
    exit 1
fi

case $command in
    sanity)
        tests=$(sed -n 's/^Running sanity test "\([^"]*\)".*/\1/p' "$log")
        echo "ansible-test sanity: $(wc -w <<<"$tests") tests ran and passed: $(tr '\n' ' ' <<<"$tests")"
        ;;
    integration)
        targets=$(sed -n 's/^Running \([^ ]*\) integration test role$/\1/p' "$log")
        if [[ -z $targets ]]; then
            echo "ansible-test integration: no target ran" >&2
            exit 1
        fi
        echo "ansible-test integration: $(wc -w <<<"$targets") targets passed: $(tr '\n' ' ' <<<"$targets")"
        ;;
esac
