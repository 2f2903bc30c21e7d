#!/usr/bin/env bash
# Run test layers (make targets) one after another, time each, and print a summary (`make test`).
#
#   hack/layers.sh LAYER...
#
# Every layer runs even when an earlier one failed, so one run reports all failures; the exit status is
# non-zero when any layer failed. MAKE (default: make) runs the layers. Layers may leave one-line notes for the
# summary in SIPBREAKOUT_SUMMARY_NOTES (a folder, emptied first), such as whether the wire contract was checked.
set -uo pipefail

make_cmd=${MAKE:-make}
names=()
results=()
seconds=()
failed=0
started=$SECONDS
notes=${SIPBREAKOUT_SUMMARY_NOTES:-}
if [[ -n $notes ]]; then
    rm -rf "$notes"
    mkdir -p "$notes"
fi

for layer in "$@"; do
    printf '\n######## layer %s: started %s ########\n' "$layer" "$(date +%T)"
    begin=$SECONDS
    if "$make_cmd" --no-print-directory "$layer"; then
        result=passed
    else
        result=FAILED
        failed=$((failed + 1))
    fi
    names+=("$layer")
    results+=("$result")
    seconds+=($((SECONDS - begin)))
    printf '######## layer %s: %s in %ds ########\n' "$layer" "$result" "${seconds[-1]}"
done

printf '\n######## summary (%ds) ########\n' $((SECONDS - started))
for i in "${!names[@]}"; do
    printf '  %-16s %-7s %5ds\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}"
done
printf 'layers passed: %d of %d (failed: %d)\n' $(($# - failed)) $# "$failed"
if [[ -n $notes ]]; then
    cat "$notes"/*.txt 2>/dev/null || true
fi
[[ $failed -eq 0 ]]
