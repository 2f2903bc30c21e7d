#!/usr/bin/env bash
# The reference documentation in docs/reference/, generated with antsibull-docs from the plugins' and roles' own
# documentation (`make docs`), and the check that it is current (`make docs-check`).
#
#   hack/docs.sh generate BUILD_DIR   rewrite docs/reference/ from the build copy of the collection
#   hack/docs.sh check BUILD_DIR      lint the collection's docs and fail if docs/reference/ differs from what
#                                     generate would write
#
# BUILD_DIR holds the build copy (`make collection`) at ansible_collections/wgtwo/sipbreakout; only that copy is
# documented (ANSIBLE_COLLECTIONS_PATH, no sys.path scan). antsibull-docs, ansible-doc and ansible must be on PATH.
# The output format is antsibull-docs' simplified-rst: plain RST files that link to each other, readable on a
# forge without a Sphinx build (antsibull-docs writes no Markdown).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
action=${1:?generate or check}
build_dir=$(cd "${2:?build dir}" && pwd)
collection=$build_dir/ansible_collections/wgtwo/sipbreakout
reference=$root/docs/reference
# Where the pages link for installing the collection (not Ansible Galaxy, which does not have it).
config=$root/hack/antsibull-docs.cfg

export ANSIBLE_COLLECTIONS_PATH=$build_dir ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_NOCOLOR=1

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

generate() {
    antsibull-docs --config-file "$config" collection --use-current --squash-hierarchy --output-format simplified-rst \
        --no-add-antsibull-docs-version --fail-on-error --dest-dir "$out" wgtwo.sipbreakout >"$out.log" 2>&1 || {
        cat "$out.log" >&2
        rm -f "$out.log"
        echo "docs: antsibull-docs failed" >&2
        exit 1
    }
    rm -f "$out.log"
    if [[ ! -s $out/index.rst ]]; then
        echo "docs: antsibull-docs wrote no index.rst" >&2
        exit 1
    fi
}

case $action in
    generate)
        generate
        rm -rf "$reference"
        mkdir -p "$reference"
        cp -R "$out/." "$reference/"
        echo "docs: wrote $(find "$reference" -type f | wc -l) files to docs/reference/"
        ;;
    check)
        # Markup, references between plugins and roles, and the RST antsibull-docs makes of them.
        antsibull-docs --config-file "$config" lint-collection-docs --plugin-docs --output-format simplified-rst \
            "$collection"
        echo "docs: antsibull-docs lint-collection-docs --plugin-docs found nothing"
        generate
        if ! diff -ru --label generated --label docs/reference "$out" "$reference" >"$out.diff" 2>&1; then
            head -n 60 "$out.diff" >&2
            rm -f "$out.diff"
            echo "docs: docs/reference/ is stale (or edited by hand); run 'make docs' and commit the result" >&2
            exit 1
        fi
        rm -f "$out.diff"
        echo "docs: docs/reference/ matches the plugins' and roles' documentation"
        ;;
    *)
        echo "usage: $0 generate|check BUILD_DIR" >&2
        exit 2
        ;;
esac
