# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger on disk: permissions, atomic replacement, locking across processes, corrupt files kept."""

import json
import multiprocessing
import os
import stat

import sqlite3

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import LedgerError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger import Ledger, LedgerEntry
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration


def _entry(number, ttl=3600, upserted_at=1000.0):
    reg = Registration.create(phone_number=number, sip_uri="sips:pbx.example.com:5061", route_type="loop")
    return LedgerEntry("api.example:443", "client:c1", reg, upserted_at=upserted_at, time_to_live=ttl)


def test_write_read_and_modes(tmp_path):
    ledger = Ledger(str(tmp_path / "state" / "ledger.json"))
    entry = _entry("+4799990000")
    with ledger.update() as entries:
        entries[entry.key] = entry
    assert stat.S_IMODE(os.stat(ledger.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(ledger.path)).st_mode) == 0o700
    back = ledger.read()[entry.key]
    assert back.registration == entry.registration
    assert back.expires_at == 4600.0
    assert back.live(4599.0) and not back.live(4600.0)
    for suffix in ("-wal", "-shm"):
        assert stat.S_IMODE(os.stat(ledger.path + suffix).st_mode) == 0o600, suffix
    with open(ledger.path, "rb") as handle:
        assert handle.read(16) == b"SQLite format 3\x00"
    assert _rows(ledger.path) == [(entry.key, "+4799990000", 4600.0, 0)]


def test_failed_block_writes_nothing(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger.json"))
    first = _entry("+4799990000")
    with ledger.update() as entries:
        entries[first.key] = first
    before = _rows(ledger.path)
    with pytest.raises(RuntimeError):
        with ledger.update() as entries:
            entries.clear()
            raise RuntimeError("boom")
    assert _rows(ledger.path) == before and len(before) == 1


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": "other", "version": 1, "body": {}}),
                                     json.dumps({"format": "wgtwo.sipbreakout/ledger", "version": 99, "body": {}}),
                                     json.dumps({"format": "wgtwo.sipbreakout/ledger", "version": 1,
                                                 "body": {"registrations": {"k": {"nonsense": 1}}}})])
def test_corrupt_ledger_is_reported_and_kept(tmp_path, content):
    path = tmp_path / "ledger.json"
    path.write_text(content)
    ledger = Ledger(str(path))
    with pytest.raises(LedgerError) as caught:
        ledger.read()
    assert str(path) in str(caught.value)
    with pytest.raises(LedgerError):
        with ledger.update() as entries:
            entries.clear()
    assert path.read_text() == content


def _rows(path):
    """What the database file holds, read with plain sqlite3."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT key, phone_number, expires_at, delete_pending FROM registrations "
                            "ORDER BY key").fetchall()
    finally:
        conn.close()


def _add_many(path, start, count):
    ledger = Ledger(path)
    for number in range(start, start + count):
        entry = _entry("+47999%05d" % number)
        with ledger.update() as entries:
            entries[entry.key] = entry


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "ledger.json")
    workers = [multiprocessing.Process(target=_add_many, args=(path, i * 40, 40)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    numbers = sorted(e.registration.phone_number for e in Ledger(path).read().values())
    assert numbers == ["+47999%05d" % n for n in range(160)]
    leftovers = [name for name in os.listdir(str(tmp_path)) if name.startswith(".ledger.json.")]
    assert leftovers == []


def test_lock_timeout_names_the_ledger(tmp_path):
    path = str(tmp_path / "ledger.json")
    ledger = Ledger(path, lock_timeout=0.2)
    with ledger.update():
        pass
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LedgerError) as caught:
            with ledger.update():
                pass
        assert "ledger.json stayed locked by another process for 0.2 s" in str(caught.value)
    finally:
        other.close()
