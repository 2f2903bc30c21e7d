# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release: galaxy.yml's metadata is complete, and `ansible-galaxy collection build` of the work tree ships
exactly what git would commit, minus the development tooling (build_ignore), and nothing else: no venv, no build
copy, no test output, whatever lies around in the tree."""

import fnmatch
import glob
import json
import os
import re
import subprocess
import sys
import tarfile

import ansible_collections
import pytest
import yaml

ROOT = os.path.realpath(os.path.join(os.path.dirname(list(ansible_collections.__path__)[0]), "ansible_collections",
                                     "wgtwo", "sipbreakout"))
BIN = os.path.dirname(sys.executable)
# Tracked files that only develop the collection; build_ignore must keep each of them out.
DEV_ONLY = ("hack/*", "Makefile", ".ci/*", ".gitignore", ".ansible-lint", "tests/integration/integration_config.yml")
# What must never be in a release, wherever it lies in the tree.
NEVER = ("*/__pycache__/*", "*.pyc", ".venv*", ".build/*", ".cache/*", ".git/*", "tests/output/*", ".ansible/*",
         "*/.pytest_cache/*", ".pytest_cache/*", "*.tar.gz")
# What a user of the release needs.
ESSENTIAL = ("LICENSE", "README.md", "MANIFEST.json", "FILES.json", "meta/runtime.yml", "meta/execution-environment.yml",
             "requirements.txt", "bindep.txt", "changelogs/changelog.yaml", "plugins/modules/registration.py",
             "plugins/module_utils/generated/sipbreakout_v1.py", "playbooks/register.yml",
             "extensions/awx/credential_type.yml", "extensions/awx/execution-environment.yml",
             "docs/awx.md", "docs/troubleshooting.md", "docs/reference/index.rst",
             "docs/reference/registration_module.rst", "tests/emulator/sipbreakout_emulator/cli.py")


def _galaxy():
    with open(os.path.join(ROOT, "galaxy.yml"), "r", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(name="tarball", scope="module")
def tarball_fixture(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", ROOT, "--output-path", str(out)],
                   check=True, stdout=subprocess.PIPE)
    return glob.glob(str(out / "wgtwo-sipbreakout-*.tar.gz"))[0]


@pytest.fixture(name="members", scope="module")
def members_fixture(tarball):
    with tarfile.open(tarball) as archive:
        return set(member.name for member in archive.getmembers() if member.isfile())


def _git_files():
    listed = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            check=True, stdout=subprocess.PIPE).stdout.decode("utf-8").split("\0")
    return set(path for path in listed if path and os.path.isfile(os.path.join(ROOT, path)))


def test_galaxy_metadata_is_complete():
    galaxy = _galaxy()
    assert galaxy["namespace"] == "wgtwo" and galaxy["name"] == "sipbreakout"
    assert re.match(r"^[0-9]+\.[0-9]+\.[0-9]+$", galaxy["version"])
    assert galaxy["license"] == ["GPL-3.0-or-later"] and "license_file" not in galaxy
    with open(os.path.join(ROOT, "LICENSE"), "r", encoding="utf-8") as handle:
        text = handle.read()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    for key in ("repository", "issues", "documentation", "homepage"):
        assert re.match(r"^https://[^\s]+$", galaxy[key]), key
    assert galaxy["readme"] == "README.md" and os.path.isfile(os.path.join(ROOT, "README.md"))
    assert galaxy["authors"] and galaxy["description"]
    # Galaxy's importer: at most 20 tags, lower-case letters and digits, 64 characters each.
    assert 1 <= len(galaxy["tags"]) <= 20
    assert all(re.match(r"^[a-z0-9]{1,64}$", tag) for tag in galaxy["tags"]), galaxy["tags"]
    assert galaxy.get("dependencies") == {}


def test_the_manifest_carries_the_metadata(tarball):
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))["collection_info"]
    galaxy = _galaxy()
    for key in ("version", "license", "repository", "issues", "documentation", "homepage", "tags"):
        assert manifest[key] == galaxy[key], key
    assert os.path.basename(tarball) == "wgtwo-sipbreakout-%s.tar.gz" % galaxy["version"]


def test_the_tarball_holds_what_git_would_commit_minus_the_tooling(members):
    def dev_only(path):
        return any(fnmatch.fnmatch(path, pattern) for pattern in DEV_ONLY)

    expected = set(path for path in _git_files() if not dev_only(path) and path != "galaxy.yml")
    expected |= {"MANIFEST.json", "FILES.json"}
    assert sorted(members - expected) == [], "shipped, but not a file of the repository (add it to build_ignore)"
    assert sorted(expected - members) == [], "files of the repository missing from the tarball"


def test_build_ignore_keeps_the_tooling_and_the_litter_out(members):
    for pattern in DEV_ONLY + NEVER:
        assert [path for path in members if fnmatch.fnmatch(path, pattern)] == [], pattern
    for path in ESSENTIAL:
        assert path in members, path
    assert {"tests/output", ".venv", ".build", "hack", "Makefile"} <= set(_galaxy()["build_ignore"])


def test_the_check_sees_litter(tmp_path):
    # The patterns above do match what they must keep out.
    for path in ("tests/output/.tmp/x.py", ".venv/bin/python", ".build/ansible_collections/x", "hack/demo.sh",
                 "plugins/module_utils/__pycache__/x.cpython-311.pyc", "Makefile"):
        assert any(fnmatch.fnmatch(path, pattern) for pattern in DEV_ONLY + NEVER), path
