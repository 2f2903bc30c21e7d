# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The README's two ways to install work as written: its requirements.yml for a release tarball, run next to the
tarball, and its requirements.yml for Git, pointed at a clone of this repository tagged with the version
(the forge is not reachable from the tests). Each installs into an empty collections path what a release holds,
and ansible-doc finds the module there."""

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

from test_docs_install import ROOT, _galaxy, _read, blocks, section

BIN = os.path.dirname(sys.executable)


def _env(collections):
    env = dict((key, value) for key, value in os.environ.items()
               if key != "PYTHONPATH" and not key.startswith("ANSIBLE_"))
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", PATH=BIN + os.pathsep + env.get("PATH", "/usr/bin:/bin"))
    return env


def _run(argv, cwd, env):
    run = subprocess.run(argv, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    return run.stdout


def _readme_requirements(kind):
    """The README's requirements.yml of ``kind`` (file or git), as text."""
    found = [block for block in blocks(section(_read("README.md"), "Install"), "yaml")
             if yaml.safe_load(block)["collections"][0]["type"] == kind]
    assert len(found) == 1
    return found[0]


def _check_installed(collections):
    installed = collections / "ansible_collections" / "wgtwo" / "sipbreakout"
    manifest = json.loads((installed / "MANIFEST.json").read_text())["collection_info"]
    wanted = ("wgtwo", "sipbreakout", _galaxy()["version"])
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == wanted
    # The plugins, and none of the development tooling galaxy.yml's build_ignore names.
    assert (installed / "plugins" / "modules" / "registration.py").is_file()
    assert (installed / "plugins" / "action" / "registration.py").is_file()
    assert not (installed / "hack").exists() and not (installed / "Makefile").exists()
    doc = json.loads(_run([os.path.join(BIN, "ansible-doc"), "--json", "wgtwo.sipbreakout.registration"],
                          collections, _env(collections)))
    assert doc["wgtwo.sipbreakout.registration"]["doc"]["short_description"]


@pytest.fixture(name="tarball")
def tarball_fixture(tmp_path):
    given = os.environ.get("SIPBREAKOUT_TARBALL")
    if given:
        return given
    _run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", ROOT, "--output-path", str(tmp_path / "dist")],
         tmp_path, _env(tmp_path / "none"))
    return glob.glob(str(tmp_path / "dist" / "wgtwo-sipbreakout-*.tar.gz"))[0]


def test_the_tarball_installs_with_the_readme_requirements(tmp_path, tarball):
    project = tmp_path / "project"
    project.mkdir()
    os.symlink(tarball, str(project / os.path.basename(tarball)))
    (project / "requirements.yml").write_text(_readme_requirements("file"))
    collections = tmp_path / "collections"
    _run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-r", "requirements.yml", "-p",
          str(collections)], project, _env(collections))
    _check_installed(collections)


def test_git_installs_with_the_readme_requirements(tmp_path):
    galaxy = _galaxy()
    clone = tmp_path / "repository"
    env = _env(tmp_path / "collections")
    _run(["git", "clone", "--quiet", ROOT, str(clone)], tmp_path, env)
    _run(["git", "-C", str(clone), "tag", galaxy["version"]], tmp_path, env)
    text = _readme_requirements("git").replace(galaxy["repository"] + ".git", "file://%s" % clone)
    (tmp_path / "requirements.yml").write_text(text)
    collections = tmp_path / "collections"
    _run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-r", "requirements.yml", "-p",
          str(collections)], tmp_path, env)
    _check_installed(collections)
