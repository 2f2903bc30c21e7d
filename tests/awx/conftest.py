# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the AWX tests (`make awx`): the collection as a release tarball installed the way AWX installs a
project's collections, the credential type, the sample inventory, an emulator and a database of the test PostgreSQL
for the shared ledger.

SIPBREAKOUT_TARBALL names a tarball built already (`make awx` builds one with `make dist`); without it the
collection importable from PYTHONPATH is built here.
"""

import glob
import json
import os
import subprocess
import sys

import ansible_collections
import pytest

from ansible_collections.wgtwo.sipbreakout.tests import postgresql_support
from sipbreakout_emulator.testing import running_emulator

import awx_job

BIN = os.path.dirname(sys.executable)
COLLECTION = os.path.join(os.path.dirname(list(ansible_collections.__path__)[0]), "ansible_collections", "wgtwo",
                          "sipbreakout")
CLIENT_ID = "awx-client"
CLIENT_SECRET = "awx-S3cret-only-in-the-credential-4711"


def tool(name):
    return os.path.join(BIN, name)


def clean_env(**extra):
    """The environment of a job: no PYTHONPATH, so only the installed copy of the collection can be used."""
    env = dict((key, value) for key, value in os.environ.items()
               if key != "PYTHONPATH" and not key.startswith(("WGTWO_", "ANSIBLE_")))
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env.update(extra)
    return env


@pytest.fixture(scope="session", name="tarball")
def tarball_fixture(tmp_path_factory):
    given = os.environ.get("SIPBREAKOUT_TARBALL")
    if given:
        return given
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([tool("ansible-galaxy"), "collection", "build", COLLECTION, "--output-path", str(out)],
                   check=True, stdout=subprocess.PIPE, env=clean_env())
    return glob.glob(str(out / "wgtwo-sipbreakout-*.tar.gz"))[0]


@pytest.fixture(scope="session", name="installed")
def installed_fixture(tmp_path_factory, tarball):
    """The tarball installed into a clean path, as AWX installs a project's collections/requirements.yml."""
    path = tmp_path_factory.mktemp("requirements_collections")
    subprocess.run([tool("ansible-galaxy"), "collection", "install", "--offline", "-p", str(path), tarball],
                   check=True, stdout=subprocess.PIPE, env=clean_env(ANSIBLE_COLLECTIONS_PATH=str(path)))
    root = path / "ansible_collections" / "wgtwo" / "sipbreakout"
    assert (root / "MANIFEST.json").is_file()
    return path


@pytest.fixture(scope="session", name="credential_type")
def credential_type_fixture(installed):
    """The credential type as the installed collection ships it."""
    return awx_job.load(str(installed / "ansible_collections" / "wgtwo" / "sipbreakout" / "extensions" / "awx" /
                            "credential_type.yml"))


@pytest.fixture(scope="session", name="sample_inventory")
def sample_inventory_fixture(installed):
    """playbooks/inventory/sample.yml as `ansible-inventory --list` JSON: what an AWX inventory script prints."""
    sample = installed / "ansible_collections" / "wgtwo" / "sipbreakout" / "playbooks" / "inventory" / "sample.yml"
    output = subprocess.run([tool("ansible-inventory"), "-i", str(sample), "--list"], check=True,
                            stdout=subprocess.PIPE, env=clean_env()).stdout
    return json.loads(output)


@pytest.fixture(name="database")
def database_fixture():
    """A new empty database of the test PostgreSQL (make postgresql), dropped afterwards: (server, its name)."""
    server = postgresql_support.server()
    with server.database() as dbname:
        yield server, dbname


def database_inputs(database):
    """The credential's shared ledger inputs for ``database``: TLS verify-full against the server's CA."""
    server, dbname = database
    return {"login_host": server.host, "login_port": str(server.port), "login_db": dbname, "login_user": server.user,
            "login_password": server.password(), "ssl_mode": "verify-full",
            "ledger_ca_certificate": pem(server.sslrootcert)}


def ledger_rows(database):
    """{scope: sorted numbers} of the shared ledger, pending deletes left out."""
    server, dbname = database
    return server.numbers_by_scope(dbname, pending=False)


@pytest.fixture(name="emulator")
def emulator_fixture(tmp_path):
    with running_emulator(tmp_path / "emulator", clients=[(CLIENT_ID, CLIENT_SECRET)]) as handle:
        yield handle


def pem(path):
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read()
