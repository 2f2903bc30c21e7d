# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets never leak: a play at -vvv with known secrets, then every byte it printed or left on disk is searched.

The secrets are the client secret, a user access token and a refresh token we mint, every token the run obtained
(read back from the 0600 token cache afterwards), and a password of the ledger's database (in ``ledger_conninfo``
and ``login_password``). Only files with mode 0600 may contain any of them.
"""

import json
import os
import stat
import subprocess
import sys

import ansible_collections
import pytest

from sipbreakout_emulator.testing import running_emulator

# Where the collection under test is importable from (PYTHONPATH): ansible-playbook finds it there too.
COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])
CLIENT_SECRET = "s3cret-Known-To-The-Test-0417"
DB_PASSWORD = "db-Pa55word-Known-To-The-Test-0417"

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/wgtwo.sipbreakout.sipbreakout:
      api_endpoint: "{{ endpoint }}"
      ca_path: "{{ ca }}"
      token_url: "{{ token_url }}"
      ledger_path: "{{ work }}/state/ledger.json"
      token_cache_path: "{{ work }}/cache/tokens.json"
  tasks:
    - name: Client credentials
      wgtwo.sipbreakout.registration:
        client_id: leak-client
        client_secret: "{{ client_secret }}"
        phone_number: "+4799995000"
        sip_uri: "sips:pbx.example.com:5061"
        route_type: loop
    - name: Client credentials again, with diff
      wgtwo.sipbreakout.registration:
        client_id: leak-client
        client_secret: "{{ client_secret }}"
        phone_number: "+4799995000"
        sip_uri: "sips:pbx.example.com:5061"
        route_type: fork
      diff: true
    - name: User token
      wgtwo.sipbreakout.registration:
        access_token: "{{ user_access_token }}"
        sip_uri: "sips:pbx.example.com:5061"
        route_type: loop
    - name: Refresh token
      wgtwo.sipbreakout.registration:
        client_id: leak-client
        client_secret: "{{ client_secret }}"
        refresh_token: "{{ user_refresh_token }}"
        sip_uri: "sips:pbx3.example.com:5061"
        route_type: loop
    - name: The ledger's database credentials (registration_info takes the ledger options too)
      wgtwo.sipbreakout.registration_info:
        ledger_conninfo: "host=db.example.com dbname=sipbreakout password={{ db_password }}x"
        login_password: "{{ db_password }}"
    - name: A failure that talks about the credentials
      wgtwo.sipbreakout.registration:
        client_id: leak-client
        client_secret: "{{ client_secret }}x"
        token_cache_path: "{{ work }}/other-cache/tokens.json"
        phone_number: "+4799995000"
        sip_uri: "sips:pbx.example.com:5061"
        route_type: loop
      ignore_errors: true
"""


def _files_under(root):
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


@pytest.fixture(name="emulator")
def emulator_fixture(tmp_path):
    with running_emulator(tmp_path / "emulator", clients=[("leak-client", CLIENT_SECRET)]) as handle:
        yield handle


def test_vvv_run_leaks_no_secret(tmp_path, emulator):
    work = tmp_path / "work"
    home = work / "home"
    home.mkdir(parents=True)
    user = emulator.user_token("+4799995001", scope="call.routing:write offline_access", client_id="leak-client")
    variables = work / "secrets.json"
    variables.write_text(json.dumps({
        "endpoint": emulator.grpc_endpoint, "ca": emulator.ca_path, "token_url": emulator.token_url,
        "work": str(work), "client_secret": CLIENT_SECRET, "user_access_token": user["access_token"],
        "user_refresh_token": user["refresh_token"], "db_password": DB_PASSWORD}))
    os.chmod(str(variables), 0o600)  # the user's own vault-like input
    playbook = work / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(os.environ, HOME=str(home), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
               ANSIBLE_LOG_PATH=str(work / "ansible.log"), ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
               ANSIBLE_REMOTE_TEMP=str(work / "remote-tmp"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-vvv",
                          "-e", "@%s" % variables, str(playbook)],
                         env=env, cwd=str(work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                         check=False)
    output = run.stdout.decode("utf-8", "replace")
    assert run.returncode == 0, output[-3000:]
    assert output.count("ok: [localhost]") + output.count("changed: [localhost]") >= 4, output[-3000:]
    assert "...ignoring" in output

    cache = json.loads((work / "cache" / "tokens.json").read_text())["body"]
    issued = set()
    for entry in cache.values():
        issued.add(entry["access_token"])
        if entry.get("refresh_token"):
            issued.add(entry["refresh_token"])
    secrets = {CLIENT_SECRET, CLIENT_SECRET + "x", user["access_token"], user["refresh_token"], DB_PASSWORD} | issued
    assert len(issued) >= 3  # a client token, a user access token and the rotated refresh token

    for secret in secrets:
        assert secret not in output
    leaked = []
    for path in _files_under(str(work)):
        with open(path, "rb") as handle:
            content = handle.read()
        if any(secret.encode() in content for secret in secrets):
            if stat.S_IMODE(os.stat(path).st_mode) != 0o600:
                leaked.append(path)
    assert leaked == []
    # The ledger database, with its write-ahead log if one is left: what it holds, byte for byte.
    ledger = b"".join((work / "state" / name).read_bytes() for name in sorted(os.listdir(str(work / "state")))
                      if name.startswith("ledger.json") and not name.endswith(".lock"))
    assert ledger.startswith(b"SQLite format 3\x00")
    assert not any(secret.encode() in ledger for secret in secrets)
    assert b"+4799995000" in ledger
