#!/usr/bin/env bash
# Start, stop or show the SIP breakout API emulator (tests/emulator) for the integration tests and the demo.
#
#   hack/emulator.sh start STATE_DIR CLIENT_ID:SECRET   fresh STATE_DIR; returns once it serves (emulator.json)
#   hack/emulator.sh stop STATE_DIR                     stops it; succeeds when none is running
#   hack/emulator.sh show STATE_DIR                     prints what it holds
#
# Environment: PYTHON (default: python3), BUILD_DIR (the folder above ansible_collections, default: .build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
build_dir=${BUILD_DIR:-$root/.build}
export PYTHONPATH="$root/tests/emulator:$build_dir${PYTHONPATH:+:$PYTHONPATH}"

emulator() {
    "$python" -m sipbreakout_emulator "$@"
}

case ${1:-} in
    start)
        state_dir=${2:?state dir}
        client=${3:?client id:secret}
        if [[ -f $state_dir/emulator.json ]]; then
            emulator stop --state-dir "$state_dir"
        fi
        rm -rf "$state_dir"
        mkdir -p "$state_dir"
        emulator start --state-dir "$state_dir" --client "$client"
        if [[ ! -s $state_dir/emulator.json ]]; then
            echo "emulator: start returned but wrote no $state_dir/emulator.json" >&2
            exit 1
        fi
        ;;
    stop)
        state_dir=${2:?state dir}
        if [[ -d $state_dir ]]; then
            emulator stop --state-dir "$state_dir"
        fi
        ;;
    show)
        emulator show --state-dir "${2:?state dir}"
        ;;
    *)
        echo "usage: $0 start STATE_DIR CLIENT_ID:SECRET | stop STATE_DIR | show STATE_DIR" >&2
        exit 2
        ;;
esac
