# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registration module in check mode on a host that has none of its libraries yet (a new PBX host before the
pbx role installed them): run by a Python with the standard library only, it predicts from the ledger, warns that a
real run needs grpcio, protobuf and requests-oauthlib (and which Debian packages provide them), tolerates a CA file
that the play has not installed yet, and sends nothing. A real run there fails with one message naming all three,
Ansible's own text for each, and how to install them."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys

import ansible_collections

from sipbreakout_emulator.testing import running_emulator

from keepalive_support import CLIENT_ID, CLIENT_SECRET, SIP_URI, Workdir, held, register

COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: The registrations
      wgtwo.sipbreakout.registration:
        registrations: "{{ registrations }}"
        purge: true
        max_purge: 100
        api_endpoint: "{{ api_endpoint }}"
        token_url: "{{ token_url }}"
        client_id: "{{ client_id }}"
        client_secret: "{{ client_secret }}"
        ca_path: "{{ ca_path }}"
        ledger_path: "{{ ledger_path }}"
        token_cache_path: "{{ token_cache_path }}"
      register: outcome
      ignore_errors: true

    - name: Keep the result for the test, in check mode too
      ansible.builtin.copy:
        content: "{{ outcome | to_json }}"
        dest: "{{ outcome_path }}"
        mode: "0600"
      check_mode: false
"""


def _bare_python(tmp_path):
    """A Python with nothing beyond its standard library: a venv without pip or site-packages."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    for library in ("grpc", "google.protobuf", "requests_oauthlib"):
        probe = subprocess.run([python, "-c", "import %s" % library], capture_output=True, check=False)
        assert probe.returncode != 0, "%s is importable from %s" % (library, python)
    return python


def _play(tmp_path, python, variables, check):
    extra = tmp_path / "vars.json"
    outcome_path = tmp_path / "outcome.json"
    extra.write_text(json.dumps(dict(variables, ansible_python_interpreter=python, outcome_path=str(outcome_path))))
    os.chmod(str(extra), 0o600)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "@%s" % extra, str(playbook)]
    run = subprocess.run(argv + (["--check"] if check else []), env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0 and outcome_path.exists(), output
    return output, json.loads(outcome_path.read_text())


def _digest(path):
    """What the ledger database holds (schema and rows), whatever SQLite keeps in its write-ahead log: a process
    that only reads may still move that log into the database file when it closes the ledger last."""
    conn = sqlite3.connect(path)
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode("utf-8")).hexdigest()
    finally:
        conn.close()


def test_check_mode_predicts_without_libraries_and_sends_nothing(tmp_path):
    python = _bare_python(tmp_path)
    work = Workdir(tmp_path / "host")
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        # What an earlier run applied, recorded in the ledger by the module's own code (with the full libraries).
        register(emu, work, ["+4799997000", "+4799997001"])
        ledger_before = _digest(work.ledger)
        calls_before = emu.calls(limit=0)
        variables = dict(
            registrations=[dict(phone_number="+4799997000", sip_uri=SIP_URI, route_type="fork"),
                           dict(phone_number="+4799997002", sip_uri=SIP_URI, route_type="loop")],
            api_endpoint=emu.grpc_endpoint, token_url=emu.token_url, client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET, ledger_path=work.ledger,
            token_cache_path=os.path.join(work.root, "new", "tokens.json"),
            # where the play would have installed the API's CA by now
            ca_path=os.path.join(work.root, "new", "api-ca.pem"))

        output, outcome = _play(tmp_path, python, variables, check=True)

        assert not outcome.get("failed"), outcome
        assert outcome["summary"] == dict(created=1, updated=1, unchanged=0, deleted=1, failed=0, not_sent=0), outcome
        assert [(item["phone_number"], item["result"]) for item in outcome["results"]] == [
            ("+4799997000", "updated"), ("+4799997002", "created"), ("+4799997001", "deleted")]
        assert outcome["msg"] == "check mode: nothing was sent"
        warnings = " ".join(outcome["warnings"])
        assert ("check mode without grpcio, protobuf, requests-oauthlib in %s: the result is predicted from the ledger "
                "alone, and a real run needs them installed first: pip install grpcio protobuf requests-oauthlib "
                "(Debian 12: apt install python3-grpcio python3-protobuf python3-requests-oauthlib)" % python) \
            in warnings
        assert ("check mode: ca_path: '%s' is not a readable file of PEM CA certificates; check mode needs no CA "
                "file" % variables["ca_path"]) in warnings
        assert CLIENT_SECRET not in output
        # Nothing reached the API or the token endpoint, nothing was written.
        calls_after = emu.calls(limit=0)
        assert (calls_after["total"], calls_after["token_requests"]) == (calls_before["total"],
                                                                         calls_before["token_requests"])
        assert _digest(work.ledger) == ledger_before
        assert not os.path.exists(os.path.join(work.root, "new"))

        # A real run there fails, naming every missing library at once (Ansible's message for each) and how to
        # install them, and sends nothing.
        output, outcome = _play(tmp_path, python, dict(variables, ca_path=emu.ca_path), check=False)
        assert outcome["failed"]
        lines = outcome["msg"].split("\n")
        assert lines[0] == "3 required Python libraries are missing: grpcio, protobuf, requests-oauthlib.", outcome
        assert [line.split(")")[0] for line in lines[1:4]] == [
            "Failed to import the required Python library (%s" % name
            for name in ("grpcio", "protobuf", "requests-oauthlib")]
        assert lines[4] == ("Install them on this host: pip install grpcio protobuf requests-oauthlib (Debian 12: apt "
                            "install python3-grpcio python3-protobuf python3-requests-oauthlib)")
        assert emu.calls(limit=0)["total"] == calls_before["total"]
        assert sorted(held(emu)) == ["+4799997000", "+4799997001"]
        assert _digest(work.ledger) == ledger_before
