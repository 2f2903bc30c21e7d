# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SIGKILL of the registration module at random moments of list and file runs that create, change, delete and
purge: the ledger always knows what the operator may hold, the keepalive never brings back what was deleted and
takes over what was left unconfirmed, and the next run converges exactly.

The module runs as its own process, exactly as Ansible's module protocol starts it (``python -m <module>
ARGS.json``), against the emulator with 20 ms of latency per call, and is killed after a random delay (seeded by
the scenario's name), as soon as the emulator has answered its first delete, or once it has answered every call.
A run's claims last 2 x timeout + 1 s (``ledger_store.Lease``): the test waits that long before the keepalive
pass, as a keepalive after a killed run would. Every case runs on SQLite, some on PostgreSQL too.

After each kill, with H1 what the emulator holds right after it:

* every registration the emulator holds is in the ledger (confirmed, unconfirmed or pending a delete);
* one keepalive pass later (``--force``: everything it would ever refresh is due; H2), no registration the run was
  deleting that H1 no longer held is back, and every registration the run declared present that the ledger holds
  unconfirmed is held with its declared fields;
* the same declaration run again makes the emulator and the ledger hold exactly it, nothing unconfirmed, pending or
  claimed.
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import keepalive_support
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger import open_ledger
from ansible_collections.wgtwo.sipbreakout.tests import postgresql_support
from sipbreakout_emulator.testing import running_emulator

CLIENT_ID = keepalive_support.CLIENT_ID
CLIENT_SECRET = keepalive_support.CLIENT_SECRET
SIP_URI = keepalive_support.SIP_URI
MODULE = "ansible_collections.wgtwo.sipbreakout.plugins.modules.registration"
LATENCY_MS = 20
# The killed run's timeout: its claims expire 2 x this + 1 s after they were last renewed.
TIMEOUT = 0.4
BASE = 300  # registrations applied and recorded before the run that is killed
# Kill after a random time (uniform, seconds: from the module's start-up to after its last write), once the
# emulator has answered the first delete, or once it has answered every call (the module then records them).
KILL_AFTER = (0.25, 1.6)
MOMENTS = ("random", "first-delete", "last-call")
# The cases the shared ledger runs too (the engine is the same; its store's transactions and claims differ).
POSTGRESQL_CASES = (("list", "random"), ("list-purge", "first-delete"), ("file-purge", "last-call"))


def _number(index):
    return "+4797%07d" % index


def _declare(numbers, route_type="loop"):
    return [dict(phone_number=_number(index), sip_uri=SIP_URI, route_type=route_type) for index in numbers]


# What the killed run declares, given the BASE numbers 0..299 applied as loop before it. Each returns (items, purge):
# items present create 300..599 and change 0..99 to fork; absent items delete 100..149; a purge deletes 150..299.
def _changes(purge):
    items = _declare(range(0, 100), "fork") + _declare(range(300, 600))
    items += [dict(phone_number=_number(index), sip_uri=SIP_URI, state="absent") for index in range(100, 150)]
    if not purge:
        items += _declare(range(150, BASE))
    return items


SCENARIOS = {
    "list": dict(purge=False, file=False),
    "list-purge": dict(purge=True, file=False),
    "file-purge": dict(purge=True, file=True),
}


class ModuleRun:
    """The registration module as a child process with its arguments in a 0600 file, as Ansible passes them."""

    def __init__(self, emu, work, ledger, name, items, purge=False, file=False, timeout=10.0):
        self.args_path = os.path.join(work, "%s-args.json" % name)
        args = dict(api_endpoint=emu.grpc_endpoint, ca_path=emu.ca_path, token_url=emu.token_url,
                    client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                    token_cache_path=os.path.join(work, "cache", "tokens.json"), concurrency=32, timeout=timeout,
                    retries=1, purge=purge, max_purge=100, **ledger)
        if file:
            args["registrations_file"] = os.path.join(work, "%s.jsonl" % name)
            with open(args["registrations_file"], "w") as handle:
                for item in items:
                    handle.write(json.dumps(item) + "\n")
        else:
            args["registrations"] = items
        fd = os.open(self.args_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        self.process = None

    def start(self):
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with  # killed and reaped by the test
            [sys.executable, "-m", MODULE, self.args_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return self

    def finish(self, timeout=120):
        """Wait for a normal end; the module's JSON result."""
        stdout, stderr = self.process.communicate(timeout=timeout)
        assert stdout, stderr.decode("utf-8", "replace")
        return json.loads(stdout.decode("utf-8"))

    def kill_when(self, ready, timeout=30):
        """SIGKILL as soon as ``ready()`` holds (unless it ended first)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and not ready():
            assert time.monotonic() < deadline, "the kill's moment never came"
            time.sleep(0.001)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)


def _entries(ledger):
    """The ledger's entries by number (an SQLite file checked whole first)."""
    if ledger.get("ledger_path"):
        conn = sqlite3.connect(ledger["ledger_path"])
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
    with open_ledger(ledger) as store:
        return dict((entry.registration.phone_number, entry) for entry in store.find())


@pytest.fixture(name="ledger")
def ledger_fixture(store, tmp_path):
    """The ledger options of every process of a case: an SQLite file, or a fresh PostgreSQL database."""
    if store == "sqlite":
        yield dict(ledger_path=str(tmp_path / "state" / "ledger.sqlite"))
        return
    server = postgresql_support.server()
    with server.database() as dbname:
        yield dict(ledger_store="postgresql", ledger_conninfo=server.conninfo(dbname), ledger_scope="host-1")


def _held(emu):
    return dict((reg["phone_number"], reg) for reg in emu.registrations() if reg["client_id"] == CLIENT_ID)


def _route(reg):
    return reg["route_type"].replace("ROUTE_TYPE_", "").lower()


@pytest.fixture(name="emu", scope="module")
def emu_fixture(tmp_path_factory):
    with running_emulator(tmp_path_factory.mktemp("emulator"), clients=[(CLIENT_ID, CLIENT_SECRET)]) as handle:
        yield handle


def _calls(emu, method):
    return emu.calls(limit=0)["by_method"].get(method, {}).get("total", 0)


def _moment(emu, moment, scenario, calls):
    """When to kill: a ``ready()`` for ModuleRun.kill_when, and its description for the test's id."""
    if moment == "random":
        at = time.monotonic() + random.Random(scenario).uniform(*KILL_AFTER)
        return lambda: time.monotonic() >= at
    upserts, deletes = _calls(emu, "UpsertRegistration"), _calls(emu, "DeleteRegistration")
    if moment == "first-delete":
        return lambda: _calls(emu, "DeleteRegistration") > deletes
    return lambda: _calls(emu, "UpsertRegistration") + _calls(emu, "DeleteRegistration") >= upserts + deletes + calls


@pytest.mark.parametrize("store, scenario, moment", [
    ("sqlite", scenario, moment) for scenario in sorted(SCENARIOS) for moment in MOMENTS] + [
    ("postgresql", scenario, moment) for scenario, moment in POSTGRESQL_CASES])
def test_a_run_killed_at_any_moment_leaves_a_ledger_from_which_everything_converges(
        tmp_path, emu, ledger, scenario, moment):
    emu.reset()
    work = str(tmp_path / "work")
    os.makedirs(work)
    shape = SCENARIOS[scenario]
    base = _declare(range(BASE))
    result = ModuleRun(emu, work, ledger, "base", base).start().finish()
    assert result["summary"]["created"] == BASE and not result.get("failed"), result.get("msg")

    items = _changes(shape["purge"])
    present = dict((item["phone_number"], item["route_type"]) for item in items if item.get("state") != "absent")
    deleting = set(_number(index) for index in range(BASE)) - set(present)

    emu.faults(latency_ms=LATENCY_MS)
    named = set(item["phone_number"] for item in items)
    purged = [index for index in range(BASE) if _number(index) not in named] if shape["purge"] else []
    ready = _moment(emu, moment, scenario, len(items) + len(purged))
    ModuleRun(emu, work, ledger, "killed", items, timeout=TIMEOUT, **shape).start().kill_when(ready)
    emu.faults(clear=True)
    held_after_kill = _held(emu)
    entries = _entries(ledger)

    # Everything the operator holds is known to the ledger: nothing to refresh or purge is ever lost.
    unknown = sorted(set(held_after_kill) - set(entries))
    assert unknown == [], "held at the operator, unknown to the ledger: %s" % unknown[:5]

    # The killed run's claims run out; then one keepalive pass.
    claims = [entry.claimed_until for entry in entries.values() if entry.claimed_until]
    time.sleep(max([0.0] + [until - time.time() for until in claims]) + 0.1)
    keepalive = keepalive_support.Workdir(tmp_path / "keepalive")
    keepalive_support.write_config(emu, keepalive, **dict(dict(ledger_path=None), **ledger))
    # --force: every entry it would ever refresh is due now, so one pass shows what it would bring back.
    status, log = keepalive_support.run_once(keepalive, "--force")
    assert status in (0, 1), log
    held = _held(emu)

    revived = sorted(number for number in deleting if number not in held_after_kill and number in held)
    assert revived == [], "deleted, then brought back: %s" % revived[:5]
    unconfirmed = [number for number, entry in entries.items() if entry.unconfirmed and number in present]
    lapsing = sorted(number for number in unconfirmed
                     if number not in held or _route(held[number]) != present[number])
    assert lapsing == [], "declared present, left unconfirmed and not sent by the keepalive: %s" % lapsing[:5]

    # The same declaration again: exactly it, at the operator and in the ledger.
    result = ModuleRun(emu, work, ledger, "again", items, **shape).start().finish()
    assert not result.get("failed"), result.get("msg")
    held = _held(emu)
    assert sorted(held) == sorted(present)
    assert dict((number, _route(reg)) for number, reg in held.items()) == present
    entries = _entries(ledger)
    assert sorted(entries) == sorted(present)
    assert dict((number, entry.registration.route_type) for number, entry in entries.items()) == present
    assert not [number for number, entry in entries.items()
                if entry.unconfirmed or entry.delete_pending or entry.claimed_by or entry.expires_at is None]
