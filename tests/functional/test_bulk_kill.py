# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SIGKILL of the registration module in the middle of a bulk run: the ledger stays readable and whole, and the
next run converges.

The module runs as its own process, exactly as Ansible's module protocol starts it (``python -m <module>
ARGS.json``), against the emulator with 20 ms of latency per call so that a few thousand registrations take a
few seconds. It is killed during the calls, after the last call, or while it writes the new ledger (its write-ahead
log grows). Afterwards the ledger must be a readable database holding exactly one of the two states a reader may
ever see (the one before the run, or every item applied), no lock may be left held, the next run must bring the
emulator and the ledger to the whole list, and a third run must report nothing changed.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger import Ledger
from sipbreakout_emulator.testing import running_emulator

CLIENT_ID = "bulk-kill-client"
CLIENT_SECRET = "bulk-Kill-Secret-5531"
SIP_URI = "sips:pbx.example.com:5061"
MODULE = "ansible_collections.wgtwo.sipbreakout.plugins.modules.registration"
LATENCY_MS = 20
FIRST = 500  # registrations applied (and recorded) before the run that is killed
MORE = 3000  # added by the run that is killed


def _registrations(count, start=0):
    return [dict(phone_number="+4798%07d" % number, sip_uri=SIP_URI, route_type="loop")
            for number in range(start, start + count)]


class ModuleRun:
    """The registration module as a child process with its arguments in a 0600 file, as Ansible passes them."""

    def __init__(self, emu, work, registrations, name):
        self.args_path = os.path.join(work, "%s-args.json" % name)
        args = dict(registrations=registrations, api_endpoint=emu.grpc_endpoint, ca_path=emu.ca_path,
                    token_url=emu.token_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                    ledger_path=os.path.join(work, "state", "ledger.json"),
                    token_cache_path=os.path.join(work, "cache", "tokens.json"), concurrency=32)
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


def _upserts(emu):
    return emu.calls(limit=0)["by_method"].get("UpsertRegistration", {}).get("total", 0)


def _ledger_snapshot(path):
    """Every row of the ledger, read with plain sqlite3 (which also checks the database is whole)."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return conn.execute("SELECT * FROM registrations ORDER BY key").fetchall()
    finally:
        conn.close()


def _ledger_numbers(path):
    return sorted(entry.registration.phone_number for entry in Ledger(path).read().values())


def _numbers(registrations):
    return sorted(reg["phone_number"] for reg in registrations)


@pytest.fixture(name="emu")
def emu_fixture(tmp_path):
    with running_emulator(tmp_path / "emulator", clients=[(CLIENT_ID, CLIENT_SECRET)]) as handle:
        yield handle


def _wal_size(path):
    try:
        return os.path.getsize(path + "-wal")
    except OSError:
        return 0


def _kill_when(run, ready, what):
    """SIGKILL ``run`` as soon as ``ready()`` holds; fail if the module ended first."""
    deadline = time.monotonic() + 120
    while not ready():
        assert run.process.poll() is None, "the module ended before %s: %r" % (what, run.process.communicate()[1][-2000:])
        assert time.monotonic() < deadline, "never saw %s" % what
        time.sleep(0.001)
    run.process.send_signal(signal.SIGKILL)
    run.process.communicate(timeout=30)
    assert run.process.returncode == -signal.SIGKILL, "the module ended before %s" % what


# When to kill: once the emulator has seen 30 % of the run's upserts; once it has seen all of them (the module is
# then recording or printing its result); once the ledger's write-ahead log grows (the write is under way or done).
@pytest.mark.parametrize("moment", ["during-the-calls", "after-the-last-call", "during-the-ledger-write"])
def test_sigkill_mid_bulk_leaves_ledger_whole_and_next_run_converges(tmp_path, emu, moment):
    work = str(tmp_path / "work")
    os.makedirs(work)
    ledger_path = os.path.join(work, "state", "ledger.json")
    first = _registrations(FIRST)
    everything = first + _registrations(MORE, start=FIRST)

    # A ledger with content, so "intact" means something: the first 500 applied and recorded.
    result = ModuleRun(emu, work, first, "first").start().finish()
    assert result["summary"]["created"] == FIRST and not result.get("failed"), result.get("msg")
    before = _ledger_snapshot(ledger_path)
    assert _ledger_numbers(ledger_path) == _numbers(first)
    wal_before = _wal_size(ledger_path)

    emu.faults(latency_ms=LATENCY_MS)
    upserts_before = _upserts(emu)
    killed = ModuleRun(emu, work, everything, "killed").start()
    if moment == "during-the-calls":
        _kill_when(killed, lambda: _upserts(emu) >= upserts_before + int(len(everything) * 0.3), "30 % of the calls")
        assert _upserts(emu) - upserts_before < len(everything), "the kill came after every call"
    elif moment == "after-the-last-call":
        _kill_when(killed, lambda: _upserts(emu) >= upserts_before + len(everything), "every call")
    else:
        _kill_when(killed, lambda: _wal_size(ledger_path) > wal_before, "the ledger write")

    # The ledger is one of the two states a reader may ever see: untouched, or every item applied.
    rows = _ledger_snapshot(ledger_path)
    numbers = _ledger_numbers(ledger_path)
    if rows == before:
        assert numbers == _numbers(first)
    else:
        assert moment != "during-the-calls", "the ledger changed although the run was killed before its last call"
        assert numbers == _numbers(everything)
    # Lock files stay (the kernel dropped the killed process's locks), and so may the write-ahead log and its index:
    # what a killed transaction left in them is never read as part of the ledger.
    others = [name for name in os.listdir(os.path.dirname(ledger_path))
              if name not in ("ledger.json", "ledger.json-wal", "ledger.json-shm") and not name.endswith(".lock")]
    assert others == []

    # The next run, with the latency gone, converges: everything live at the emulator and in the ledger.
    emu.faults(clear=True)
    result = ModuleRun(emu, work, everything, "next").start().finish()
    assert not result.get("failed"), result.get("msg")
    assert result["summary"]["failed"] == 0
    assert result["summary"]["created"] + result["summary"]["unchanged"] == len(everything)
    held = [reg for reg in emu.registrations() if reg["client_id"] == CLIENT_ID]
    assert sorted(reg["phone_number"] for reg in held) == _numbers(everything)
    assert {reg["route_type"] for reg in held} == {"ROUTE_TYPE_LOOP"}
    assert _ledger_numbers(ledger_path) == _numbers(everything)

    # And a third run finds nothing to change.
    result = ModuleRun(emu, work, everything, "third").start().finish()
    assert result["changed"] is False
    assert result["summary"]["unchanged"] == len(everything)
    assert _ledger_numbers(ledger_path) == _numbers(everything)
