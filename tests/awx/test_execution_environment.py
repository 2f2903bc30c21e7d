# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An execution environment from extensions/awx/execution-environment.yml, checked offline (`make ee-check`):
`ansible-builder create` writes a valid build context, and the galaxy and builder stages of its Containerfile,
replayed here without a container engine, install the collection from the tarball and collect its requirements."""

import ast
import filecmp
import os
import re
import shutil
import subprocess
import sys

from bindep.depends import Depends

from conftest import COLLECTION, clean_env, tool

# The profiles bindep sees in the example's base image (CentOS Stream 9), as ansible-builder's assemble script
# queries them: the default profile, then the epel one.
CENTOS_STREAM_9 = ["platform:rpm", "platform:redhat", "platform:centos", "platform:centos-9", "platform:dnf"]
# Third-party Python imports of plugins/ -> the requirements.txt entry that provides them, or why none is needed.
PROVIDED_BY = {
    "grpc": "grpcio",
    "google": "protobuf",
    "requests_oauthlib": "requests-oauthlib",
    "oauthlib": "requests-oauthlib",
    "requests": "requests-oauthlib",
    "psycopg": "psycopg",
    # The filters run on the controller, and ansible-core itself requires cryptography.
    "cryptography": None,
}


def _requirement_names(text):
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~ \[;]", line, 1)[0].lower())
    return names


def test_builder_creates_a_build_context_that_installs_the_collection(tmp_path, tarball, installed):
    shipped = installed / "ansible_collections" / "wgtwo" / "sipbreakout"
    work = tmp_path / "ee"
    work.mkdir()
    # What docs/execution-environment.md tells users to put into a folder.
    shutil.copy(str(shipped / "extensions" / "awx" / "execution-environment.yml"), str(work))
    shutil.copy(tarball, str(work / "wgtwo-sipbreakout.tar.gz"))
    created = subprocess.run([tool("ansible-builder"), "create", "--file", "execution-environment.yml",
                              "--context", "context", "--output-filename", "Containerfile"],
                             cwd=str(work), env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             check=False)
    assert created.returncode == 0, created.stdout.decode()
    context = work / "context"
    containerfile = (context / "Containerfile").read_text()
    for wanted in ('ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"', 'ARG PYCMD="/usr/bin/python3.11"',
                   'ARG ANSIBLE_INSTALL_REFS="ansible-core==2.19.* ansible-runner"',
                   "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml",
                   "/output/scripts/introspect.py introspect", "/output/scripts/assemble",
                   "/output/scripts/install-from-bindep", "COPY _build /build"):
        assert wanted in containerfile, wanted
    build = context / "_build"
    assert filecmp.cmp(tarball, str(build / "collections" / "wgtwo-sipbreakout.tar.gz"), shallow=False)

    # The galaxy stage: WORKDIR /build (the context's _build), collections from requirements.yml.
    collections = tmp_path / "usr-share-ansible-collections"
    subprocess.run([tool("ansible-galaxy"), "collection", "install", "--offline", "-r", "requirements.yml",
                    "--collections-path", str(collections)], cwd=str(build), check=True, stdout=subprocess.PIPE,
                   env=clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections)))
    installed_copy = collections / "ansible_collections" / "wgtwo" / "sipbreakout"
    assert (installed_copy / "plugins" / "modules" / "registration.py").is_file()

    # The builder stage: the context's own introspect script collects the collection's requirements.
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    subprocess.run([sys.executable, str(build / "scripts" / "introspect.py"), "introspect",
                    "--write-pip=%s" % pip_out, "--write-bindep=%s" % bindep_out, str(collections)],
                   check=True, stdout=subprocess.PIPE, env=clean_env())
    collected = pip_out.read_text()
    assert "# from collection wgtwo.sipbreakout" in collected
    assert _requirement_names(collected) == _requirement_names((shipped / "requirements.txt").read_text())
    assert _requirement_names(collected) == {"grpcio", "protobuf", "requests-oauthlib", "psycopg"}

    # The final stage installs what bindep lists for the image's platform: nothing, and nothing from EPEL.
    rules = Depends(bindep_out.read_text())
    assert [rule[0] for rule in rules.active_rules(["default"] + CENTOS_STREAM_9)] == []
    assert [rule[0] for rule in rules.active_rules(["epel"] + CENTOS_STREAM_9)] == []
    # A Debian host running the modules with its system Python gets Debian's packages.
    debian = [rule[0] for rule in rules.active_rules(["default", "platform:dpkg", "platform:debian"])]
    assert debian == ["python3-grpcio", "python3-protobuf", "python3-requests-oauthlib"]
    shared = [rule[0] for rule in rules.active_rules(["postgresql", "platform:dpkg", "platform:debian"])]
    assert shared == debian + ["python3-psycopg"]


def test_builder_refuses_a_broken_definition(tmp_path):
    # The check above can fail: ansible-builder validates the file against its schema.
    (tmp_path / "execution-environment.yml").write_text("version: 3\ndependencies:\n  galaxy_collections: []\n")
    created = subprocess.run([tool("ansible-builder"), "create", "--context", "context"], cwd=str(tmp_path),
                             env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert created.returncode != 0


def _third_party_imports(root):
    stdlib = set(sys.stdlib_module_names)
    found = {}
    for directory, _dirs, names in os.walk(os.path.join(root, "plugins")):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            with open(path, "r", encoding="utf-8") as handle:
                tree = ast.parse(handle.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".", 1)[0]
                    if top not in stdlib and top not in ("ansible", "ansible_collections", "__future__"):
                        found.setdefault(top, set()).add(os.path.relpath(path, root))
    return found


def test_requirements_cover_every_third_party_import():
    with open(os.path.join(COLLECTION, "requirements.txt"), "r", encoding="utf-8") as handle:
        declared = _requirement_names(handle.read())
    imports = _third_party_imports(COLLECTION)
    assert {"grpc", "google", "requests_oauthlib"} <= set(imports)
    for module, paths in sorted(imports.items()):
        assert module in PROVIDED_BY, "%s (imported by %s) is in no requirement" % (module, ", ".join(sorted(paths)))
        if PROVIDED_BY[module]:
            assert PROVIDED_BY[module] in declared, module
