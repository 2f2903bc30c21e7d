# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The README's way in holds: the Quick start is exactly `make demo` and `make test`; the install examples name
this collection (its tarball, the repository of galaxy.yml) in a form ansible-galaxy reads; and the table of
supported versions says what `make test` runs: the pins of tests/constraints.txt, the Python the Makefile gives
ansible-test, the floors of requirements.txt, meta/runtime.yml, the roles' metadata and the execution
environment. (tests/functional/test_install_paths.py installs from both sources for real.)"""

import os
import re

import ansible_collections
import yaml

ROOT = os.path.join(os.path.dirname(list(ansible_collections.__path__)[0]), "ansible_collections", "wgtwo",
                    "sipbreakout")


def _read(*parts):
    with open(os.path.join(ROOT, *parts), "r", encoding="utf-8") as handle:
        return handle.read()


def section(text, title):
    """The body of the Markdown section ``## title``, up to the next heading of that level."""
    match = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), text, re.M | re.S)
    assert match, "README.md has no section '## %s'" % title
    return match.group(1)


def blocks(text, language):
    return re.findall(r"^```%s\n(.*?)^```" % language, text, re.M | re.S)


def _galaxy():
    return yaml.safe_load(_read("galaxy.yml"))


def _pins():
    """{package: version} of tests/constraints.txt."""
    return dict(line.strip().split("==", 1) for line in _read("tests", "constraints.txt").splitlines()
                if "==" in line and not line.startswith("#"))


def _minor(version):
    return ".".join(version.split(".")[:2])


def test_the_quick_start_is_make_demo_and_make_test():
    quick = section(_read("README.md"), "Quick start")
    assert [block.split() for block in blocks(quick, "")] == [["make", "demo", "make", "test"]]


def test_the_install_examples_name_this_collection():
    install = section(_read("README.md"), "Install")
    galaxy = _galaxy()
    tarball = "wgtwo-sipbreakout-%s.tar.gz" % galaxy["version"]
    repository = galaxy["repository"] + ".git"
    commands = [line for block in blocks(install, "sh") for line in block.splitlines()]
    assert "ansible-galaxy collection install %s" % tarball in commands
    assert "ansible-galaxy collection install git+%s,%s" % (repository, galaxy["version"]) in commands
    assert "ansible-galaxy collection install -r requirements.yml" in commands
    requirements = [yaml.safe_load(block)["collections"] for block in blocks(install, "yaml")]
    assert requirements == [[dict(name="./" + tarball, type="file")],
                            [dict(name=repository, type="git", version=galaxy["version"])]]


def test_the_supported_versions_are_what_make_test_runs():
    table = section(_read("README.md"), "Supported versions")
    rows = dict((cells[0], cells[1]) for cells in (
        [cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| "))
        if cells[0] not in ("where", "---"))
    pins = _pins()
    core = _minor(pins["ansible-core"])
    python = re.search(r"^ANSIBLE_TEST_PYTHON := (\S+)$", _read("Makefile"), re.M).group(1)
    requires = yaml.safe_load(_read("meta", "runtime.yml"))["requires_ansible"]
    assert requires == ">=%s.0" % core
    assert rows["controller"] == 'ansible-core %s on Python %s (`meta/runtime.yml`: `requires_ansible: "%s"`)' % (
        core, python, requires)
    for role in ("pbx", "keepalive"):
        assert yaml.safe_load(_read("roles", role, "meta", "main.yml"))["galaxy_info"]["min_ansible_version"] == core

    floors = dict(re.findall(r"^([a-z-]+)>=([0-9.]+)$", _read("requirements.txt"), re.M))
    oldest = rows["hosts that run the modules, oldest end"]
    assert "Python %s" % python in oldest
    for name in ("grpcio", "protobuf", "requests-oauthlib"):
        assert "python3-%s %s" % (name, floors[name]) in oldest, name
    newest = rows["hosts that run the modules, newest end"]
    assert newest == "Python %s with grpcio %s, protobuf %s and requests-oauthlib %s (`tests/constraints.txt`)" % (
        python, _minor(pins["grpcio"]), _minor(pins["protobuf"]), _minor(pins["requests-oauthlib"]))

    environment = yaml.safe_load(_read("extensions", "awx", "execution-environment.yml"))
    assert environment["dependencies"]["ansible_core"]["package_pip"] == "ansible-core==%s.*" % core
    assert environment["dependencies"]["python_interpreter"]["python_path"] == "/usr/bin/python%s" % python
    assert rows["execution environment"].startswith("ansible-core %s on Python %s " % (core, python))


def test_the_checks_can_fail():
    text = "# t\n\n## Quick start\n\n```\nmake demo\nmake test\nmake help\n```\n\n## Next\n"
    assert [block.split() for block in blocks(section(text, "Quick start"), "")] != [["make", "demo", "make", "test"]]
    assert _minor("2.19.14") == "2.19"
