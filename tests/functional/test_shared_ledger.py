# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared ledger on a real PostgreSQL (the test harness's), with the module and keepalive workers as their own
processes against the emulator: workers split a pass, a killed worker's registrations are taken over before they
lapse, a database outage is not a lapse, and a run adding a number during a long pass finishes in seconds, on both
stores.

Every check reads the emulator (what the operator holds and how often it was upserted) or the database, never only
what the module or keepalive said.
"""

import os
import signal
import subprocess
import time

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import LedgerError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger import open_ledger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options
from ansible_collections.wgtwo.sipbreakout.tests import postgresql_support
from keepalive_support import CLIENT_ID, CLIENT_SECRET, KEEPALIVE, SIP_URI, LoopProcess, Workdir, module_options, \
    read_health, wait_for, write_config
from sipbreakout_emulator.testing import running_emulator

SCOPE = "cluster-a"


@pytest.fixture(name="database")
def database_fixture():
    server = postgresql_support.server()
    with server.database() as dbname:
        yield server, dbname


def _ledger(database, scope=SCOPE):
    """The shared ledger options of the module and the keepalive: TLS verify-full, the password from a passfile."""
    server, dbname = database
    return dict(ledger_store="postgresql", ledger_conninfo=server.conninfo(dbname), ledger_scope=scope)


def _numbers(count, prefix="+4796"):
    return ["%s%07d" % (prefix, index) for index in range(count)]


def _register(emu, work, numbers, ledger, **extra):
    result = ensure_from_options(module_options(emu, work, registrations=[
        dict(phone_number=number, sip_uri=SIP_URI, route_type="loop") for number in numbers], **dict(ledger, **extra)))
    assert not result.get("failed"), result.get("msg")
    return result


def _make_due(ledger, seconds_ago=3300.0):
    """As if every registration had been upserted ``seconds_ago``: due for a refresh (of 3600 s)."""
    with open_ledger(ledger) as store, store.update() as entries:
        for entry in entries.values():
            entry.upserted_at = entry.last_attempt_at = time.time() - seconds_ago


def _held(emu):
    return dict((reg["phone_number"], reg) for reg in emu.registrations() if reg["client_id"] == CLIENT_ID)


def _worker(tmp_path, name, emu, ledger, **settings):
    """A keepalive worker's own files (health, metrics, token mirror) and config, on the shared ledger."""
    work = Workdir(tmp_path / name)
    config = dict(ledger, ledger_path=None, ledger_copy_path=os.path.join(work.state, "ledger-copy.sqlite"))
    config.update(settings)
    write_config(emu, work, **config)
    return work


def test_two_workers_split_a_pass_and_none_sends_what_the_other_did(tmp_path, database):
    numbers = _numbers(3000)
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        ledger = _ledger(database)
        _register(emu, Workdir(tmp_path / "module"), numbers, ledger)
        _make_due(ledger)
        workers = [_worker(tmp_path, name, emu, ledger, batch_size=250, concurrency=16) for name in ("a", "b")]
        emu.faults(latency_ms=20)
        processes = [subprocess.Popen(KEEPALIVE + ["--config", work.config, "--once", "-q"], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT) for work in workers]
        outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
        assert [process.returncode for process in processes] == [0, 0], outputs
        held = _held(emu)
        assert sorted(held) == numbers
        # Each registration refreshed exactly once (its second upsert), by one worker or the other.
        assert set(reg["upserts"] for reg in held.values()) == {2}
        shares = [read_health(work)["last_run"]["refreshed"] for work in workers]
        print("shares of 3,000 refreshes: worker a %d, worker b %d" % tuple(shares))
        assert sum(shares) == 3000 and min(shares) >= 250, shares
        with open_ledger(ledger) as store:
            assert not [entry for entry in store.find() if entry.claimed_by or entry.upserted_at < time.time() - 60]


def _claimed_by(ledger, pid):
    with open_ledger(ledger) as store:
        return [entry for entry in store.find() if entry.claimed_by and ":%d:" % pid in entry.claimed_by]


def _watch(emu, numbers, seconds, problems):
    """Sample the emulator every 0.25 s for ``seconds``; record any moment a number was not held."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        missing = sorted(set(numbers) - set(_held(emu)))
        if missing:
            problems.append("%d registration(s) lapsed at %.1f s before the end, e.g. %s"
                            % (len(missing), end - time.monotonic(), missing[:3]))
        time.sleep(0.25)


# A TTL of 10 s, refreshed once 6 to 7.2 s of it are left; a worker's claims last 2 x 1 + 1 s.
SHORT = dict(refresh_fraction=0.6, jitter=0.2, max_sleep=1.0, timeout=1.0, retries=2, retry_interval=0.5)
TTL = 10


def test_a_killed_worker_loses_its_claims_and_the_other_keeps_every_registration_alive(tmp_path, database):
    # 200 registrations of 10 s each: about 60 refreshes a second; one worker alone sends up to 100 (16 calls of
    # 150 ms in flight), so the other can take the killed one's share.
    numbers = _numbers(200, "+4795")
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=TTL) as emu:
        ledger = _ledger(database)
        _register(emu, Workdir(tmp_path / "module"), numbers, ledger)
        workers = [LoopProcess(_worker(tmp_path, name, emu, ledger, batch_size=50, concurrency=16, **SHORT))
                   for name in ("a", "b")]
        try:
            # Slow answers, so that a batch is in flight for a while; kill worker a while it holds one.
            emu.faults(latency_ms=150)
            killed = workers[0].process
            wait_for(lambda: _claimed_by(ledger, killed.pid), 30, interval=0.02, message="worker a holding a batch")
            killed.send_signal(signal.SIGKILL)
            killed.wait(10)
            left = _claimed_by(ledger, killed.pid)
            assert left and all(entry.claimed_until <= time.time() + 3.0 for entry in left)
            problems = []
            _watch(emu, numbers, 2.5 * TTL, problems)
            assert problems == []
            # What the killed worker held was taken over: refreshed since, by worker b.
            with open_ledger(ledger) as store:
                entries = dict((entry.registration.phone_number, entry) for entry in store.find())
            assert all(entries[entry.registration.phone_number].upserted_at > entry.upserted_at for entry in left)
            assert not _claimed_by(ledger, killed.pid)
        finally:
            for worker in workers:
                worker.stop()


def test_a_database_outage_is_not_a_lapse_and_runs_send_nothing_meanwhile(tmp_path, database):
    server, dbname = database
    numbers = _numbers(200, "+4794")
    added = "+4794999999"
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)], ttl=TTL) as emu:
        ledger = _ledger(database)
        module = Workdir(tmp_path / "module")
        _register(emu, module, numbers, ledger)
        work = _worker(tmp_path, "a", emu, ledger, batch_size=100, ledger_copy_interval=0.0, **SHORT)
        copy = os.path.join(work.state, "ledger-copy.sqlite")
        worker = LoopProcess(work)
        problems = []
        try:
            wait_for(lambda: os.path.exists(copy), 30, message="the local copy")
            assert os.stat(copy).st_mode & 0o777 == 0o600
            with server.stopped():
                # A run during the outage fails at once, naming the database, and sends nothing.
                started = time.monotonic()
                with pytest.raises(LedgerError) as caught:
                    ensure_from_options(module_options(emu, module, phone_number=added, sip_uri=SIP_URI,
                                                       route_type="loop", **ledger))
                message = str(caught.value)
                assert time.monotonic() - started < 5.0
                assert "postgresql://localhost:%d/%s" % (server.port, dbname) in message, message
                assert "so nothing was sent" in message and server.password() not in message
                # Two and a half TTLs without the database: every registration stays held.
                _watch(emu, numbers, 2.5 * TTL, problems)
                health = read_health(work)
                assert "refreshing from its local copy %s" % copy in health["last_run"]["error"]
                assert health["last_run"]["refreshed"] > 0
            assert problems == []
            assert added not in _held(emu)
            assert added not in [call["phone_number"] for call in emu.calls(limit=1000)["recent"]]
            # The database is back: the next passes use it again, and say nothing of a copy.
            wait_for(lambda: read_health(work)["last_run"]["error"] is None, 30, message="a pass on the database")
        finally:
            worker.stop()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_run_adding_a_number_during_a_long_pass_finishes_in_seconds(tmp_path, database, store):
    numbers = _numbers(1000, "+4793")
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        module = Workdir(tmp_path / "module")
        ledger = _ledger(database) if store == "postgresql" else dict(ledger_path=module.ledger)
        _register(emu, module, numbers, ledger)
        _make_due(ledger)
        work = _worker(tmp_path, "a", emu, ledger, batch_size=100, concurrency=4)
        if store == "sqlite":
            write_config(emu, work, ledger_path=module.ledger)
        # Answers 2 s late: the pass takes minutes.
        emu.faults(latency_ms=2000)
        process = subprocess.Popen(KEEPALIVE + ["--config", work.config, "--once", "-q"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: emu.calls(limit=0)["total"] > len(numbers) + 4, 30, message="the pass under way")
            emu.faults(latency_ms=0)  # only the pass's calls already in flight are slow
            started = time.monotonic()
            result = ensure_from_options(module_options(emu, module, phone_number="+4793999999", sip_uri=SIP_URI,
                                                        route_type="fork", **ledger))
            took = time.monotonic() - started
            assert process.poll() is None, "the pass ended before the run"
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
        assert result["changed"] and took < 5.0, took
        assert _held(emu)["+4793999999"]["route_type"] == "ROUTE_TYPE_FORK"
