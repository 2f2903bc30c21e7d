# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An AWX job of playbooks/register.yml, as ansible-runner runs it: a private data directory with the credential
type's env and extra_vars injected, an inventory script, the project's playbook and the collection installed as a
project requirement; each job a fresh container (its own private data directory and HOME). With the credential's
shared ledger (the test PostgreSQL) jobs are exact across containers: a second job changes nothing, a number dropped
from the inventory is deleted by the next job, sliced jobs share the database safely. The emulator and the database
are the judges of what was registered."""

import copy
import datetime
import json
import os
import re
import sqlite3
import stat
import threading
import time

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import normalize_phone_number

import awx_job
from conftest import CLIENT_ID, CLIENT_SECRET, clean_env, database_inputs, ledger_rows, pem, tool


def _expected(inventory, hosts):
    """(number, sip_uri, route type, MO prefix, MT prefix) the operator must hold for ``hosts``."""
    group_vars = inventory.get("pbx", {}).get("vars", {})
    wanted = set()
    for host in hosts:
        hostvars = dict(group_vars, **inventory["_meta"]["hostvars"][host])
        for item in hostvars["sipbreakout_registrations"]:
            if item.get("state", "present") == "present":
                wanted.add((normalize_phone_number(item["phone_number"]), hostvars["sipbreakout_sip_uri"],
                            "ROUTE_TYPE_" + item["route_type"].upper(),
                            hostvars["sipbreakout_mobile_originating_prefix"],
                            hostvars["sipbreakout_mobile_terminating_prefix"]))
    return wanted


def _held(emulator):
    return set((r["phone_number"], r["sip_uri"], r["route_type"], r["mobile_originating_prefix"],
                r["mobile_terminating_prefix"]) for r in emulator.registrations())


def _pbx_hosts(inventory):
    return sorted(inventory["pbx"]["hosts"])


class Job:
    """One AWX job: its own private data directory and its own HOME, as a fresh job container has."""

    def __init__(self, root, installed, credential_type, inventory, hosts, inputs, home=None, env_injection=True):
        self.root = str(root)
        self.home = home or os.path.join(self.root, "container-home")
        os.makedirs(self.home, exist_ok=True)
        playbook = installed / "ansible_collections" / "wgtwo" / "sipbreakout" / "playbooks" / "register.yml"
        job_env = {
            # What AWX itself puts into a job's environment (besides the credentials).
            "HOME": self.home,
            "ANSIBLE_COLLECTIONS_PATH": str(installed),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_NOCOLOR": "true",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.root, "tmp"),
            "PATH": clean_env()["PATH"],
        }
        if not env_injection:
            # What a module on a remote host sees of the credential: its extra vars only.
            credential_type = dict(credential_type, injectors=dict(credential_type["injectors"], env={}))
        self.private_data_dir, self.injected = awx_job.private_data_dir(
            os.path.join(self.root, "private"), credential_type, inputs, inventory, hosts,
            playbook.read_text(), job_env)
        self.rc = None
        self.output = None
        self.artifacts = None

    def run(self, ident="1"):
        self.rc, self.output, self.artifacts = awx_job.run(
            self.private_data_dir, ident, tool("ansible-runner"), clean_env())
        return self

    def recap(self):
        return awx_job.recap(self.artifacts)

    def ledgers(self):
        """{PBX host: numbers} of the ledgers in this job's HOME (playbooks/register.yml keeps one per host)."""
        directory = os.path.join(self.home, ".local", "state", "wgtwo.sipbreakout")
        found = {}
        for name in sorted(os.listdir(directory)):
            if name.endswith(".json"):
                # Each ledger is an SQLite database, read here with Python's own sqlite3, not the collection.
                conn = sqlite3.connect(os.path.join(directory, name))
                try:
                    numbers = [row[0] for row in conn.execute("SELECT phone_number FROM registrations")]
                finally:
                    conn.close()
                found[name[:-len(".json")]] = sorted(numbers)
        return found

    def issued_tokens(self):
        path = os.path.join(self.home, ".cache", "wgtwo.sipbreakout", "tokens.json")
        with open(path, "r", encoding="utf-8") as handle:
            body = json.load(handle)["body"]
        return set(entry["access_token"] for entry in body.values())


def _inputs(emulator, database=None):
    """The credential's inputs: the emulator's client, and the shared ledger's database when given."""
    inputs = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "api_endpoint": emulator.grpc_endpoint,
              "token_url": emulator.token_url, "ca_certificate": pem(emulator.ca_path)}
    if database:
        inputs.update(database_inputs(database))
    return inputs


def _numbers_of(inventory, host):
    return sorted(number for number, *_rest in _expected(inventory, [host]))


def _files_under(root):
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def _holding(root, secrets):
    found = []
    for path in _files_under(root):
        with open(path, "rb") as handle:
            content = handle.read()
        if any(secret.encode("utf-8") in content for secret in secrets):
            found.append(path)
    return sorted(found)


def test_awx_jobs_from_fresh_containers_are_exact_and_leak_nothing(tmp_path, installed, credential_type,
                                                                   sample_inventory, emulator, database):
    hosts = _pbx_hosts(sample_inventory)
    inputs = _inputs(emulator, database)
    job = Job(tmp_path / "job1", installed, credential_type, sample_inventory, hosts, inputs).run()
    assert job.rc == 0, job.output[-3000:]
    recap = job.recap()
    assert not recap.get("failures") and not recap.get("dark"), recap
    assert sorted(recap["changed"]) == hosts

    wanted = _expected(sample_inventory, hosts)
    assert len(wanted) == 5
    assert _held(emulator) == wanted
    assert set(r["client_id"] for r in emulator.registrations()) == {CLIENT_ID}
    # Each PBX host's registrations in the scope of its inventory hostname; no ledger in the container.
    assert ledger_rows(database) == dict((host, _numbers_of(sample_inventory, host)) for host in hosts)
    assert not os.path.exists(os.path.join(job.home, ".local", "state", "wgtwo.sipbreakout"))

    # The secrets: the credential's client secret and database password, and every token the job obtained.
    tokens = job.issued_tokens()
    assert tokens
    secrets = {CLIENT_SECRET, inputs["login_password"]} | tokens
    for secret in secrets:
        assert secret not in job.output
    # ansible-runner records the command and its whole environment in artifacts/ID/command (0600): an input
    # record like env/. Job events, stdout and everything else must hold no secret.
    command = os.path.join(job.artifacts, "command")
    assert _holding(job.artifacts, secrets) == [command]
    assert stat.S_IMODE(os.stat(command).st_mode) & 0o077 == 0
    assert len(awx_job.events(job.artifacts)) > 10
    # In the private data directory, only those inputs hold a secret: env/envvars, the extra vars file of the
    # credential and runner's record of them, each readable by its owner only.
    private = _holding(job.private_data_dir, secrets)
    assert private == sorted([os.path.join(job.private_data_dir, "env", "envvars"), job.injected.extra_vars_file,
                              command])
    for path in private:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
    # In the job container's HOME, only the 0600 token cache holds a token; nothing holds the password.
    for path in _holding(job.home, secrets):
        assert path.endswith("tokens.json") and stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert _holding(job.home, {inputs["login_password"]}) == []

    # AWX starts every job in a fresh container: the next one knows what the first applied, from the database,
    # and changes nothing (it upserts every number again, which refreshes it).
    fresh = Job(tmp_path / "job2", installed, credential_type, sample_inventory, hosts, inputs).run()
    assert fresh.rc == 0, fresh.output[-3000:]
    assert not fresh.recap().get("changed"), fresh.recap()
    assert _held(emulator) == wanted
    assert set(r["upserts"] for r in emulator.registrations()) == {2}
    assert ledger_rows(database) == dict((host, _numbers_of(sample_inventory, host)) for host in hosts)


def test_without_a_database_each_job_starts_blind(tmp_path, installed, credential_type, sample_inventory, emulator):
    # The credential names no database: each job's ledger is in its container and thrown away with it, so the next
    # job reports every number as changed although the operator holds it (docs/awx.md says to give a database).
    hosts = _pbx_hosts(sample_inventory)
    for name in ("job1", "job2"):
        job = Job(tmp_path / name, installed, credential_type, sample_inventory, hosts, _inputs(emulator)).run()
        assert job.rc == 0, job.output[-3000:]
        assert sorted(job.recap()["changed"]) == hosts
        assert sorted(job.ledgers()) == hosts
    assert set(r["upserts"] for r in emulator.registrations()) == {2}


def test_the_extra_vars_alone_carry_the_credential(tmp_path, installed, credential_type, sample_inventory,
                                                   emulator):
    hosts = _pbx_hosts(sample_inventory)
    job = Job(tmp_path / "job", installed, credential_type, sample_inventory, hosts, _inputs(emulator),
              env_injection=False).run()
    assert job.rc == 0, job.output[-3000:]
    with open(os.path.join(job.private_data_dir, "env", "envvars"), "r", encoding="utf-8") as handle:
        assert "WGTWO_" not in handle.read()
    assert _held(emulator) == _expected(sample_inventory, hosts)


def test_a_number_dropped_from_the_inventory_is_deleted_by_the_next_job(tmp_path, installed, credential_type,
                                                                        sample_inventory, emulator, database):
    hosts = _pbx_hosts(sample_inventory)
    inputs = _inputs(emulator, database)
    # Enough numbers on the first PBX that dropping one stays within the module's max_purge (20 %).
    bigger = copy.deepcopy(sample_inventory)
    numbers = bigger["_meta"]["hostvars"][hosts[0]]["sipbreakout_registrations"]
    numbers.extend({"phone_number": "+479999001%d" % index, "route_type": "loop"} for index in range(3))
    first = Job(tmp_path / "first", installed, credential_type, bigger, hosts, inputs).run()
    assert first.rc == 0, first.output[-3000:]
    assert _held(emulator) == _expected(bigger, hosts)
    # The inventory drops a number of the first PBX.
    smaller = copy.deepcopy(bigger)
    dropped = smaller["_meta"]["hostvars"][hosts[0]]["sipbreakout_registrations"].pop()
    dropped_number = normalize_phone_number(dropped["phone_number"])

    # The next job, in a fresh container, deletes it at the operator and from the shared ledger; nothing else.
    fresh = Job(tmp_path / "fresh", installed, credential_type, smaller, hosts, inputs).run()
    assert fresh.rc == 0, fresh.output[-3000:]
    assert sorted(fresh.recap()["changed"]) == hosts[:1]
    assert _held(emulator) == _expected(smaller, hosts)
    assert dropped_number not in set(number for number, *_rest in _held(emulator))
    assert ledger_rows(database) == dict((host, _numbers_of(smaller, host)) for host in hosts)


def _many_hosts(sample_inventory, count):
    """The sample inventory with ``count`` PBX hosts, each with numbers of its own."""
    inventory = copy.deepcopy(sample_inventory)
    template = inventory["_meta"]["hostvars"][_pbx_hosts(sample_inventory)[0]]
    inventory["_meta"]["hostvars"] = {}
    inventory["pbx"]["hosts"] = []
    for index in range(count):
        host = "pbx%02d.example.com" % index
        inventory["pbx"]["hosts"].append(host)
        inventory["_meta"]["hostvars"][host] = dict(
            template, sipbreakout_sip_uri="sips:%s:5061" % host,
            sipbreakout_registrations=[{"phone_number": "+47980%02d%03d" % (index, number), "route_type": "loop"}
                                       for number in range(6)])
    return inventory


def _with_cluster(inventory, nodes=("tas1.example.com", "tas2.example.com")):
    """``inventory`` with a cluster tas_a of two hosts, declared once in its group's variables (the inventory
    script gives every host its variables, as `ansible-inventory --list` does)."""
    inventory = copy.deepcopy(inventory)
    template = inventory["_meta"]["hostvars"][_pbx_hosts(inventory)[0]]
    declared = dict(template, sipbreakout_cluster="tas_a", sipbreakout_sip_uri="sips:tas.example.com:5061",
                    sipbreakout_registrations=[{"phone_number": "+4798199%03d" % number, "route_type": "fork"}
                                               for number in range(6)])
    inventory["tas_a"] = {"hosts": list(nodes)}
    inventory["pbx"]["hosts"].extend(nodes)
    for node in nodes:
        inventory["_meta"]["hostvars"][node] = copy.deepcopy(declared)
    return inventory


def _scopes(inventory):
    """{scope: numbers} the shared ledger must hold: each host's own, a cluster's once."""
    wanted = {}
    for host in _pbx_hosts(inventory):
        scope = inventory["_meta"]["hostvars"][host].get("sipbreakout_cluster") or host
        wanted[scope] = _numbers_of(inventory, host)
    return wanted


def _sliced(tmp_path, name, installed, credential_type, inventory, inputs, count=2):
    """A sliced job: AWX slices an inventory round-robin; each slice is a job of its own, all started at once."""
    hosts = _pbx_hosts(inventory)
    slices = [hosts[index::count] for index in range(count)]
    jobs = [Job(tmp_path / ("%s-slice%d" % (name, number)), installed, credential_type, inventory, part, inputs)
            for number, part in enumerate(slices, 1)]
    threads = [threading.Thread(target=job.run) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for job in jobs:
        assert job.rc == 0, job.output[-3000:]
    return jobs, slices


def test_job_slices_share_the_database_safely(tmp_path, installed, credential_type, sample_inventory, emulator,
                                              database):
    # Four hosts alone and a cluster of two, whose hosts the round-robin slicing puts into different slices: both
    # slices apply the cluster, at once, on its one scope.
    inventory = _with_cluster(_many_hosts(sample_inventory, 4))
    hosts = _pbx_hosts(inventory)
    inputs = _inputs(emulator, database)
    jobs, slices = _sliced(tmp_path, "first", installed, credential_type, inventory, inputs)
    assert [sorted(set(part) & {"tas1.example.com", "tas2.example.com"}) for part in slices] == [
        ["tas1.example.com"], ["tas2.example.com"]]
    for job in jobs:
        assert not job.recap().get("failures"), job.recap()
    # Together they registered exactly what one unsliced job does, each host and the cluster in its own scope.
    assert _held(emulator) == _expected(inventory, hosts)
    assert ledger_rows(database) == _scopes(inventory)

    # Each host and the cluster drop a number, and the slices run again at once: each purges only its own hosts'
    # numbers, in their scopes (the cluster's in both, the second finding it done); nothing is lost, nothing purged
    # across slices.
    smaller = copy.deepcopy(inventory)
    for host in hosts:
        smaller["_meta"]["hostvars"][host]["sipbreakout_registrations"].pop()
    _sliced(tmp_path, "second", installed, credential_type, smaller, inputs)
    assert _held(emulator) == _expected(smaller, hosts)
    assert ledger_rows(database) == _scopes(smaller)
    dropped = set(number for number, *_rest in _expected(inventory, hosts) - _expected(smaller, hosts))
    assert len(dropped) == 5
    for registration in emulator.registrations():
        assert registration["phone_number"] not in dropped


def test_a_long_job_shows_progress_in_its_events_while_it_runs(tmp_path, installed, credential_type,
                                                               sample_inventory, emulator):
    hosts = _pbx_hosts(sample_inventory)
    # One PBX with 5,000 numbers (a list that goes to the background), and 0.6 s of latency on every call: with
    # the module's 256 calls in flight, some twelve seconds of work.
    bigger = copy.deepcopy(sample_inventory)
    numbers = ["+4792%06d" % index for index in range(5000)]
    bigger["_meta"]["hostvars"][hosts[0]]["sipbreakout_registrations"] = [
        {"phone_number": number, "route_type": "loop"} for number in numbers]
    emulator.faults(latency_ms=600)
    job = Job(tmp_path / "long", installed, credential_type, bigger, hosts[:1], _inputs(emulator))
    events_dir = os.path.join(job.private_data_dir, "artifacts", "1", "job_events")
    runner = threading.Thread(target=job.run)
    runner.start()
    # Watch the job's events as AWX's callback receiver gets them: each progress event, when it appeared, and what
    # the emulator held then.
    seen = {}
    while runner.is_alive():
        for name in os.listdir(events_dir) if os.path.isdir(events_dir) else []:
            if name in seen:
                continue
            try:
                with open(os.path.join(events_dir, name), "r", encoding="utf-8") as handle:
                    event = json.load(handle)
            except ValueError:
                continue  # still being written
            if "wgtwo.sipbreakout.registration: " in event.get("stdout", ""):
                seen[name] = (event, len(emulator.registrations()))
            else:
                seen[name] = None
        time.sleep(0.5)
    runner.join()
    assert job.rc == 0, job.output[-3000:]
    progress = sorted((value for value in seen.values() if value), key=lambda value: value[0]["counter"])
    assert len(progress) >= 2, job.output[-3000:]

    events = awx_job.events(job.artifacts)
    task_ok = next(event for event in events if event["event"] == "runner_on_ok"
                   and event["event_data"].get("task", "").startswith("Register the numbers"))
    for event, held in progress:
        # A verbose event of its own, shown in the job's output, with counts that were true when it appeared.
        assert event["event"] == "verbose" and event["stdout"] in job.output
        assert event["stdout"].startswith("[%s] wgtwo.sipbreakout.registration: " % hosts[0])
        match = re.search(r": ([0-9,]+) of 5,000 done", event["stdout"])
        if match:
            assert int(match.group(1).replace(",", "")) <= held
        assert event["counter"] < task_ok["counter"]
    # The first while the emulator held only part of the numbers, seconds before the task's result.
    first_event, first_held = progress[0]
    assert first_held < 5000
    first_at = datetime.datetime.fromisoformat(first_event["created"])
    assert (datetime.datetime.fromisoformat(task_ok["created"]) - first_at).total_seconds() >= 3.0
    assert set(number for number, *_rest in _held(emulator)) >= set(numbers)
    for secret in {CLIENT_SECRET} | job.issued_tokens():
        assert not any(secret in event["stdout"] for event, _held_then in progress)
