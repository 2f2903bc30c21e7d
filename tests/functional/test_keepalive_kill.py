# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SIGKILL of the keepalive in the middle of a streaming pass, against the emulator.

A pass takes the due registrations ``batch_size`` at a time and records each batch before it sends the next. Killed
with several batches done, the ledger must be a whole database, every batch recorded before the kill must stay
recorded, the bookkeeping of one batch at most may be lost, and the next pass must send exactly what was not
recorded, after which the emulator holds every registration and the ledger knows it.
"""

import os
import signal
import sqlite3
import subprocess
import time

from keepalive_support import CLIENT_ID, CLIENT_SECRET, KEEPALIVE, SIP_URI, Workdir, module_options, run_once, \
    wait_for, write_config

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options
from sipbreakout_emulator.testing import running_emulator

COUNT = 2000
BATCH = 250
LATENCY_MS = 50


def _upserts(emu):
    return emu.calls(limit=0)["by_method"].get("UpsertRegistration", {}).get("total", 0)


def _numbers():
    return ["+4797%07d" % number for number in range(COUNT)]


def test_a_killed_pass_loses_one_batch_at_most_and_the_next_pass_sends_it(tmp_path):
    work = Workdir(tmp_path)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        result = ensure_from_options(module_options(emu, work, registrations=[
            dict(phone_number=number, sip_uri=SIP_URI, route_type="loop") for number in _numbers()]))
        assert result["summary"]["created"] == COUNT
        # Their last upsert was 3300 s ago, as far as the ledger knows: 300 s left, every one due.
        ledger = SqliteLedger(work.ledger)
        with ledger.update() as entries:
            for entry in entries.values():
                entry.upserted_at = entry.last_attempt_at = time.time() - 3300
        ledger.close()
        # timeout 2 s: a batch's claims last 2 x 2 + 1 s (ledger_store.Lease).
        write_config(emu, work, batch_size=BATCH, concurrency=16, timeout=2.0)
        emu.faults(latency_ms=LATENCY_MS)
        before = _upserts(emu)
        started = time.time()

        process = subprocess.Popen(  # pylint: disable=consider-using-with  # killed and reaped here
            KEEPALIVE + ["--config", work.config, "--once", "-q"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            # Half-way through the fifth batch: four recorded, the fifth sent in part (16 calls of 50 ms at a time).
            wait_for(lambda: process.poll() is not None or _upserts(emu) - before >= 4 * BATCH + BATCH // 2, 60,
                     0.01, "four and a half batches of upserts")
            assert process.poll() is None, process.communicate()[0][-2000:]
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        sent = _upserts(emu) - before
        assert sent < COUNT, "the pass ended before the kill"

        # A whole database, every registration still in it.
        conn = sqlite3.connect(work.ledger)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
        entries = SqliteLedger(work.ledger).read()
        assert sorted(entry.registration.phone_number for entry in entries.values()) == _numbers()
        recorded = sorted(entry.registration.phone_number for entry in entries.values()
                          if entry.upserted_at >= started)
        # Whole batches were recorded, the four sent before the fifth; what the fifth had sent is missing, and no
        # more than that batch.
        assert len(recorded) % BATCH == 0 and len(recorded) >= 4 * BATCH, len(recorded)
        assert 0 < sent - len(recorded) <= BATCH, (sent, len(recorded))
        held = dict((reg["phone_number"], reg) for reg in emu.registrations())
        assert all(held[number]["upserts"] == 2 for number in recorded)
        # The killed batch is still claimed by the killed worker, for 5 s at most: until then no other worker or
        # run touches what it may have on the wire.
        claimed = [entry for entry in entries.values() if entry.claimed_by]
        assert 0 < len(claimed) <= BATCH and len(set(entry.claimed_by for entry in claimed)) == 1
        assert all(entry.claimed_until <= time.time() + 5.0 for entry in claimed)
        time.sleep(max(0.0, max(entry.claimed_until for entry in claimed) - time.time()) + 0.1)

        # The next pass sends exactly what the ledger does not know was refreshed, and nothing twice.
        emu.faults(clear=True)
        before = _upserts(emu)
        status, log = run_once(work, "-q")
        assert status == 0, log
        assert _upserts(emu) - before == COUNT - len(recorded)
        held = dict((reg["phone_number"], reg) for reg in emu.registrations())
        assert sorted(held) == _numbers()
        assert all(held[number]["upserts"] == 2 for number in recorded)
        entries = SqliteLedger(work.ledger).read().values()
        assert all(entry.upserted_at >= started and entry.last_error is None and entry.claimed_by is None
                   for entry in entries)
        assert not [name for name in os.listdir(work.state) if name.startswith(".")]
