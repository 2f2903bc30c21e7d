#!/usr/bin/env bash
# `make release-check`: the release tarball, installed the way users install it, works.
#
#   hack/release-check.sh TARBALL BUILD_DIR [ansible-test integration ARGS...]
#
# 1. installs TARBALL with `ansible-galaxy collection install --offline` into an empty collections path
#    (BUILD_DIR/release/collections), and only that path is used from then on;
# 2. runs `ansible-doc --json` for every module, plugin and role in the installed copy and fails unless each one
#    has its documentation (ansible-doc exits 0 even for a role it does not find), and unless `ansible-doc --list`
#    shows exactly the plugins and roles the copy holds;
# 3. runs the integration tests of the installed copy against the emulator (hack/integration.sh).
#
# Environment: PYTHON (the dev venv's Python: ansible-core, ansible-test, grpcio, cryptography), ANSIBLE_TEST_PYTHON.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tarball=$(cd "$(dirname "${1:?tarball}")" && pwd)/$(basename "$1")
build_dir=$(cd "${2:?build dir}" && pwd)
shift 2
python=${PYTHON:-python3}
work=$build_dir/release
collections=$work/collections
installed=$collections/ansible_collections/wgtwo/sipbreakout

rm -rf "$work"
mkdir -p "$collections"
export ANSIBLE_COLLECTIONS_PATH=$collections ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_NOCOLOR=1
ansible-galaxy collection install --offline -p "$collections" "$tarball"
version=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' \
    "$installed/MANIFEST.json")
echo "release-check: installed wgtwo.sipbreakout $version from ${tarball#"$root"/}"

echo "release-check: ansible-doc of every plugin and role"
"$python" - "$installed" <<'PY'
import json
import os
import subprocess
import sys

installed = sys.argv[1]
# plugins/ folder -> ansible-doc type; folders whose plugins have no documentation of their own are skipped.
TYPES = {"modules": "module", "filter": "filter", "test": "test", "lookup": "lookup", "inventory": "inventory",
         "callback": "callback", "connection": "connection", "become": "become", "cache": "cache", "vars": "vars",
         "strategy": "strategy", "shell": "shell", "netconf": "netconf", "cliconf": "cliconf", "httpapi": "httpapi"}
NOT_DOCUMENTED = {"module_utils", "doc_fragments", "plugin_utils", "action", "terminal"}


def ansible_doc(*args):
    run = subprocess.run(["ansible-doc"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, check=False)
    if run.returncode != 0 or "[ERROR]" in run.stderr or "[WARNING]" in run.stderr:
        sys.exit("release-check: ansible-doc %s failed (%d):\n%s%s" % (" ".join(args), run.returncode, run.stdout,
                                                                          run.stderr))
    return json.loads(run.stdout or "{}")


wanted = {}
plugins = os.path.join(installed, "plugins")
for folder in sorted(os.listdir(plugins)):
    if folder in NOT_DOCUMENTED:
        continue
    if folder not in TYPES:
        sys.exit("release-check: plugins/%s is a plugin folder this check does not know" % folder)
    names = sorted(name[:-3] for name in os.listdir(os.path.join(plugins, folder))
                   if name.endswith(".py") and name != "__init__.py")
    wanted[TYPES[folder]] = ["wgtwo.sipbreakout." + name for name in names]
roles = os.path.join(installed, "roles")
wanted["role"] = sorted("wgtwo.sipbreakout." + name for name in os.listdir(roles)) if os.path.isdir(roles) else []

checked = 0
for kind, names in sorted(wanted.items()):
    listed = sorted(ansible_doc("-t", kind, "--list", "--json", "wgtwo.sipbreakout"))
    if listed != names:
        sys.exit("release-check: ansible-doc --list -t %s shows %s, the tarball holds %s" % (kind, listed, names))
    for name in names:
        data = ansible_doc("-t", kind, "--json", name).get(name)
        if kind == "role":
            main = ((data or {}).get("entry_points") or {}).get("main") or {}
            ok = bool(main.get("short_description") and main.get("description"))
        else:
            doc = (data or {}).get("doc") or {}
            ok = bool(doc.get("short_description") and doc.get("description"))
            if kind == "module":
                ok = ok and bool(data.get("examples")) and data.get("return") is not None
        if not ok:
            sys.exit("release-check: ansible-doc -t %s %s shows no complete documentation" % (kind, name))
        # The text form too: what users read.
        text = subprocess.run(["ansible-doc", "-t", kind, name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, check=True).stdout
        if name not in text:
            sys.exit("release-check: ansible-doc -t %s %s printed no documentation" % (kind, name))
        print("  %-7s %s" % (kind, name))
        checked += 1
if not wanted.get("module") or not wanted.get("role"):
    sys.exit("release-check: the installed copy holds no module or no role")
print("release-check: %d plugins and roles documented" % checked)
PY

# ansible-test lists content with git when it finds a .git at or above the collection; this copy would otherwise
# find the repository around BUILD_DIR, which ignores it.
git -C "$installed" init -q
echo "release-check: integration tests of the installed copy"
PYTHON=$python "$root/hack/integration.sh" "$collections" "$@"
