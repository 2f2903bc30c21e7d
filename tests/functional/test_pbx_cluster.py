# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pbx role with the shared ledger, with ansible-playbook on this machine against the emulator and the test
PostgreSQL: a cluster's registrations are applied once per cluster in its scope, a host alone in its inventory
hostname's scope, every node's keepalive gets the cluster's scope and refreshes it, check mode predicts per cluster,
and what is wrong (a cluster on SQLite, nodes that declare other numbers, a number on a cluster and a host) is refused
before anything changes. Without a shared ledger, the SQLite ledger's path is the same for the module and the
keepalive, ledger.json where an earlier version made it.

Each host is this machine with a state directory of its own (the edge is left out; molecule runs the whole role).
The judges: the emulator's view, the database's rows, the files on disk.
"""

import json
import os
import stat
import subprocess
import sys

import ansible_collections
import pytest
import yaml

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options
from ansible_collections.wgtwo.sipbreakout.tests import postgresql_support
from keepalive_support import CLIENT_ID, CLIENT_SECRET
from pbx_support import SIP_URI, pbx_variables
from sipbreakout_emulator.testing import running_emulator

COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])
CLUSTER = ["+4795000000", "+4795000001", "+4795000002", "+4795000003", "+4795000004", "+4795000005"]
ALONE = ["+4795100000", "+4795100001", "+4795100002"]

# Each host's own paths are include parameters: they must win over the role's vars/main.yml, per host.
PATHS = ("__pbx_state_dir", "__pbx_api_ca", "__pbx_ledger_ca", "keepalive_bin_path", "keepalive_lib_dir",
         "keepalive_config_path", "keepalive_health_path", "keepalive_ledger_copy_path", "keepalive_unit_dir",
         "keepalive_cron_file")
PLAYBOOK = """
- hosts: pbx
  gather_facts: false
  # As the role's main.yml does around its checks: the first problem on any host stops every host.
  any_errors_fatal: true
  tasks:
    - name: The pbx role's checks
      ansible.builtin.include_role:
        name: wgtwo.sipbreakout.pbx
        tasks_from: validate
    - name: The pbx role's registrations and keepalive
      ansible.builtin.include_role:
        name: wgtwo.sipbreakout.pbx
        tasks_from: registrations
      vars:
%s
""" % "\n".join("        %s: \"{{ test_paths.%s }}\"" % (name, name) for name in PATHS)


def _listed(numbers):
    return [dict(phone_number=number, route_type="loop") for number in numbers]


class Site:
    """Hosts that are this machine, each with its state and keepalive directories under ``root``."""

    def __init__(self, root, emu, ledger=None):
        self.root = str(root)
        self.group_vars = dict(
            pbx_variables(self.root, emu),
            __pbx_registration_packages=[], __pbx_postgresql_packages=[], keepalive_packages=[],
            keepalive_postgresql_packages=[], keepalive_python=sys.executable, sipbreakout_keepalive_scheduler="none",
            ansible_connection="local", ansible_python_interpreter=sys.executable)
        self.group_vars.update(ledger or {})

    def paths(self, host):
        """The host's own files: its state directory (ledger, token cache, CA copies) and keepalive."""
        base = os.path.join(self.root, host)
        return dict(
            __pbx_state_dir=os.path.join(base, "state"), __pbx_api_ca=os.path.join(base, "state", "api-ca.pem"),
            __pbx_ledger_ca=os.path.join(base, "state", "ledger-ca.pem"),
            keepalive_bin_path=os.path.join(base, "keepalive", "sbin"),
            keepalive_lib_dir=os.path.join(base, "keepalive", "lib"),
            keepalive_config_path=os.path.join(base, "keepalive", "keepalive.json"),
            keepalive_health_path=os.path.join(base, "keepalive", "health.json"),
            keepalive_ledger_copy_path=os.path.join(base, "keepalive", "ledger-copy.sqlite"),
            keepalive_unit_dir=os.path.join(base, "keepalive", "systemd"),
            keepalive_cron_file=os.path.join(base, "keepalive", "cron"))

    def state(self, host, name=""):
        return os.path.join(self.paths(host)["__pbx_state_dir"], name)

    def config(self, host):
        path = self.paths(host)["keepalive_config_path"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as handle:
            return json.load(handle)

    def play(self, inventory, check=False, expect_failure=False, limit=None):
        """ansible-playbook of PLAYBOOK on ``inventory`` ({"hosts": {name: vars}, "clusters": {group: {vars,
        hosts}}}); its output."""
        groups = dict((name, dict(hosts=dict((host, None) for host in cluster["hosts"]), vars=cluster.get("vars", {})))
                      for name, cluster in inventory.get("clusters", {}).items())
        hosts = dict((host, dict(variables, test_paths=self.paths(host))) for host, variables in inventory["hosts"].items())
        path = os.path.join(self.root, "hosts.yml")
        with open(path, "w") as handle:
            yaml.safe_dump({"pbx": dict(hosts=hosts, vars=self.group_vars, children=groups)}, handle)
        playbook = os.path.join(self.root, "play.yml")
        with open(playbook, "w") as handle:
            handle.write(PLAYBOOK)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        command = ["ansible-playbook", "-i", path, playbook] + (["--check"] if check else []) + (
            ["--limit", limit] if limit else [])
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        output = run.stdout + run.stderr
        assert (run.returncode != 0) == expect_failure, output[-5000:]
        assert CLIENT_SECRET not in output
        return " ".join(output.split())


def _cluster(numbers=None, nodes=("tas1", "tas2"), **extra):
    numbers = CLUSTER if numbers is None else numbers
    return {"tas_a": dict(hosts=list(nodes), vars=dict(sipbreakout_cluster="tas_a",
                                                       sipbreakout_registrations=_listed(numbers), **extra))}


def _inventory(cluster_numbers=None, alone=None, **node_vars):
    alone = ALONE if alone is None else alone
    return dict(hosts=dict(tas1=dict(node_vars.get("tas1", {})), tas2=dict(node_vars.get("tas2", {})),
                           pbx3=dict(sipbreakout_registrations=_listed(alone))),
                clusters=_cluster(cluster_numbers))


def _held(emu):
    return dict((reg["phone_number"], reg["upserts"]) for reg in emu.registrations())


def _activity(emu):
    calls = emu.calls(limit=0)
    return calls["total"], calls["token_requests"]


def _rows(database):
    server, dbname = database
    return server.numbers_by_scope(dbname)


@pytest.fixture(name="emu")
def emu_fixture(tmp_path):
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as handle:
        yield handle


@pytest.fixture(name="database")
def database_fixture():
    server = postgresql_support.server()
    with server.database() as dbname:
        yield server, dbname


def _shared(database):
    """The pbx role's shared ledger variables: the server's parts, TLS verify-full against its CA (a controller
    file the role copies to the host), the password as a variable."""
    server, dbname = database
    return dict(sipbreakout_ledger_store="postgresql", sipbreakout_login_host=server.host,
                sipbreakout_login_port=server.port, sipbreakout_login_user=server.user,
                sipbreakout_login_password=server.password(), sipbreakout_login_db=dbname,
                sipbreakout_ssl_mode="verify-full", sipbreakout_ca_cert=server.sslrootcert)


def test_a_cluster_is_applied_once_in_its_scope_and_every_node_keeps_it_alive(tmp_path, emu, database):
    site = Site(tmp_path, emu, _shared(database))
    server, _dbname = database

    # A check run on new hosts: the CA is not on them yet, so nothing is predicted, and each applier says why.
    output = site.play(_inventory(), check=True)
    for scope, host in (("tas_a", "tas1"), ("pbx3", "pbx3")):
        assert "%s: check mode: what the registrations of scope %s would change (and what a purge would delete) was " \
               "NOT predicted: the module reads the shared ledger from the host, where %s (sipbreakout_ca_cert) is not " \
               "there yet or differs" % (host, scope, site.state(host, "ledger-ca.pem")) in output
    assert "tas2: check mode: what the registrations" not in output
    assert "tas2: the registrations of cluster tas_a (scope tas_a) are applied once for all its nodes, by tas1 " \
           "(predicted: check mode)" in output
    assert _activity(emu) == (0, 0) and _rows(database) == {}

    site.play(_inventory())
    # Applied once: one upsert per number, not one per node; each set in its own scope.
    assert _held(emu) == dict((number, 1) for number in CLUSTER + ALONE)
    assert _rows(database) == {"tas_a": CLUSTER, "pbx3": ALONE}
    # No node keeps a ledger of its own; the password is in no file but the keepalive's 0600 config.
    for host in ("tas1", "tas2", "pbx3"):
        assert not os.path.exists(site.state(host, "ledger.sqlite"))
        assert not os.path.exists(site.state(host, "ledger.json"))
    # Every node's keepalive on the cluster's scope, the database as the module had it, its CA copied to the host.
    for host in ("tas1", "tas2"):
        config = site.config(host)
        assert {key: config.get(key) for key in ("ledger_store", "ledger_scope", "login_host", "login_port",
                                                 "login_db", "ssl_mode", "expect_empty", "ledger_path")} == dict(
            ledger_store="postgresql", ledger_scope="tas_a", login_host=server.host, login_port=server.port,
            login_db=database[1], ssl_mode="verify-full", expect_empty=False, ledger_path=None)
        assert config["login_password"] == server.password()
        with open(config["ca_cert"]) as copy, open(server.sslrootcert) as original:
            assert config["ca_cert"] == site.state(host, "ledger-ca.pem") and copy.read() == original.read()
    assert site.config("pbx3")["ledger_scope"] == "pbx3"

    # The installed keepalive of the second node refreshes the cluster's numbers, and only those.
    config_path = site.paths("tas2")["keepalive_config_path"]
    run = subprocess.run([site.paths("tas2")["keepalive_bin_path"], "--once", "--force", "--config", config_path],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _held(emu) == dict([(number, 2) for number in CLUSTER] + [(number, 1) for number in ALONE])

    # A check run once the hosts are set up: one node of the cluster predicts it from the shared ledger; nothing is
    # sent; nothing would change.
    before = _activity(emu)
    output = site.play(_inventory(), check=True)
    assert output.count("check mode: predicted from the shared ledger, scope tas_a") == 1
    assert "pbx3: check mode: predicted from the shared ledger, scope pbx3" in output
    assert output.count('"unchanged": %d' % len(CLUSTER)) == 1 and '"unchanged": %d' % len(ALONE) in output
    assert _activity(emu) == before

    # The cluster drops a number, which its applier purges once.
    site.play(_inventory(cluster_numbers=CLUSTER[:-1]))
    assert sorted(_held(emu)) == sorted(CLUSTER[:-1] + ALONE)
    assert _rows(database) == {"tas_a": CLUSTER[:-1], "pbx3": ALONE}

    # The first node is lost: the play's other node applies the cluster, in the same scope.
    before = _activity(emu)
    output = site.play(_inventory(cluster_numbers=CLUSTER[:-2]), limit="tas2,pbx3")
    assert sorted(_held(emu)) == sorted(CLUSTER[:-2] + ALONE)
    assert _rows(database) == {"tas_a": CLUSTER[:-2], "pbx3": ALONE}
    assert _activity(emu)[0] > before[0]


def test_what_a_cluster_must_not_be_is_refused_before_anything_changes(tmp_path, emu, database):
    site = Site(tmp_path, emu, _shared(database))
    cases = [
        # A cluster on the SQLite ledger.
        (dict(hosts=dict(tas1={}, tas2={}), clusters=_cluster(sipbreakout_ledger_store="sqlite")),
         ["tas1: sipbreakout_cluster: tas_a needs the shared ledger, sipbreakout_ledger_store: postgresql (got sqlite)",
          "tas2: sipbreakout_cluster: tas_a needs the shared ledger"]),
        # A cluster named after a group its host is not in; two hosts alone with one scope of the shared ledger.
        (dict(hosts=dict(tas1={}, tas2={}, pbx3=dict(sipbreakout_cluster="tas_a", sipbreakout_registrations=_listed(
            CLUSTER)), pbx4=dict(sipbreakout_ledger_scope="shared"), pbx5=dict(sipbreakout_ledger_scope="shared"))),
         ["pbx3: sipbreakout_cluster: tas_a is not an inventory group of this host (its groups: pbx)",
          "pbx4: sipbreakout_ledger_scope: shared is also the scope of pbx5, not a node of the same cluster"]),
        # A node that declares one number more and another with another route type; a number of the cluster on a
        # host alone.
        (dict(hosts=dict(tas1={}, tas2=dict(sipbreakout_registrations=_listed(CLUSTER[1:] + ["+4795000009"]) + [
            dict(phone_number=CLUSTER[0], route_type="fork")]), pbx3=dict(sipbreakout_registrations=_listed(
                CLUSTER[2:3])))),
         ["tas2: sipbreakout_registrations: +4795000000, +4795000009 declared otherwise than on tas1, the first node "
          "of cluster tas_a",
          "pbx3: sipbreakout_registrations[0]: +4795000002 also present on tas1 (cluster tas_a) "
          "(sipbreakout_registrations[2]); a number can be served by one host or one cluster only",
          "tas1: sipbreakout_registrations[2]: +4795000002 also present on pbx3 (sipbreakout_registrations[0])"]),
    ]
    for inventory, expected in cases:
        inventory.setdefault("clusters", _cluster())
        output = site.play(inventory, expect_failure=True)
        for message in expected:
            assert message in output, (message, output[-3000:])
    assert _activity(emu) == (0, 0) and _rows(database) == {}
    assert not [name for name in os.listdir(site.root) if os.path.isdir(os.path.join(site.root, name, "state"))]


def test_the_sqlite_ledger_is_the_same_file_for_the_module_and_the_keepalive(tmp_path, emu):
    site = Site(tmp_path, emu)
    # pbx1 was set up by an earlier version: its ledger is ledger.json in the state directory.
    legacy = site.state("pbx1", "ledger.json")
    os.makedirs(os.path.dirname(legacy))
    result = ensure_from_options(dict(
        registrations=[dict(phone_number=ALONE[0], sip_uri=SIP_URI, route_type="loop",
                            mobile_originating_prefix="11", mobile_terminating_prefix="22")],
        api_endpoint=emu.grpc_endpoint, token_url=emu.token_url, ca_path=emu.ca_path, client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, ledger_path=legacy, token_cache_path=site.state("pbx1", "tokens.json")))
    assert not result.get("failed"), result

    output = site.play(dict(hosts=dict(pbx1=dict(sipbreakout_registrations=_listed(ALONE[:1])),
                                       pbx2=dict(sipbreakout_registrations=_listed(ALONE[1:])))))
    # pbx1 went on with its ledger (nothing changed, no new file); the new host pbx2 got ledger.sqlite.
    assert "pbx1" in output and not os.path.exists(site.state("pbx1", "ledger.sqlite"))
    assert os.path.exists(site.state("pbx2", "ledger.sqlite")) and not os.path.exists(site.state("pbx2", "ledger.json"))
    assert site.config("pbx1")["ledger_path"] == legacy
    assert site.config("pbx2")["ledger_path"] == site.state("pbx2", "ledger.sqlite")
    for host in ("pbx1", "pbx2"):
        config = site.config(host)
        assert config["ledger_store"] == "sqlite" and config.get("ledger_scope") is None
        assert config.get("ledger_copy_path") is None
    assert _held(emu) == {ALONE[0]: 2, ALONE[1]: 1, ALONE[2]: 1}
    # pbx1's task found the number in its old ledger: unchanged.
    assert '"unchanged": 1' in output
