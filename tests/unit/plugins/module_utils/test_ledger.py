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

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import ledger_store as ledger_module

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import LedgerError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_entry import LedgerEntry
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration


def _entry(number, ttl=3600, upserted_at=1000.0):
    reg = Registration.create(phone_number=number, sip_uri="sips:pbx.example.com:5061", route_type="loop")
    return LedgerEntry("api.example:443", "client:c1", reg, upserted_at=upserted_at, time_to_live=ttl)


def test_write_read_and_modes(tmp_path):
    ledger = SqliteLedger(str(tmp_path / "state" / "ledger.json"))
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
    ledger = SqliteLedger(str(tmp_path / "ledger.json"))
    first = _entry("+4799990000")
    with ledger.update() as entries:
        entries[first.key] = first
    before = _rows(ledger.path)
    with pytest.raises(RuntimeError):
        with ledger.update() as entries:
            entries.clear()
            raise RuntimeError("boom")
    assert _rows(ledger.path) == before and len(before) == 1


def _foreign_database(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE something (x)")
    conn.commit()
    conn.close()


def _filled(path, numbers):
    """A ledger with an entry for each of ``numbers``, and the entries."""
    ledger = SqliteLedger(path)
    entries = [_entry(number) for number in numbers]
    with ledger.update() as current:
        for entry in entries:
            current[entry.key] = entry
    return ledger, entries


def _ledger_of(path, count):
    """A ledger of ``count`` entries, closed."""
    _filled(path, ["+4799%06d" % number for number in range(count)])[0].close()


def _future_ledger(path):
    _ledger_of(path, 1)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()


def _truncated_ledger(path):
    _ledger_of(path, 3000)
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


def _garbage_after_the_magic(path):
    with open(path, "wb") as handle:
        handle.write(b"SQLite format 3\x00" + b"\xff" * 4000)


@pytest.mark.parametrize("make, words", [
    (lambda path: open(path, "w").write("{not json"), "is corrupt"),
    (lambda path: open(path, "w").write(json.dumps({"format": "other", "version": 1, "body": {}})),
     "is not a wgtwo.sipbreakout/ledger file"),
    (lambda path: open(path, "w").write(json.dumps({"format": "wgtwo.sipbreakout/ledger", "version": 99,
                                                    "body": {}})), "has version 99"),
    (lambda path: open(path, "w").write(json.dumps({"format": "wgtwo.sipbreakout/ledger", "version": 1,
                                                    "body": {"registrations": {"k": {"nonsense": 1}}}})),
     "holds an entry this collection cannot read"),
    (_garbage_after_the_magic, "is corrupt"),
    (_foreign_database, "is an SQLite database but not a wgtwo.sipbreakout ledger"),
    (_future_ledger, "has ledger format 99; this collection reads format 3"),
    (_truncated_ledger, "is corrupt (database disk image is malformed)"),
])
def test_a_corrupt_or_foreign_ledger_is_reported_and_kept(tmp_path, make, words):
    path = str(tmp_path / "ledger.json")
    make(path)
    with open(path, "rb") as handle:
        content = handle.read()
    for use in (lambda ledger: ledger.read(), lambda ledger: list(ledger.find()),
                lambda ledger: ledger.update().__enter__()):  # pylint: disable=unnecessary-dunder-call
        ledger = SqliteLedger(path, lock_timeout=1.0)
        with pytest.raises(LedgerError) as caught:
            use(ledger)
        ledger.close()
        assert path in str(caught.value) and words in str(caught.value), str(caught.value)
        assert "untouched" in str(caught.value)
    with open(path, "rb") as handle:
        assert handle.read() == content
    assert sorted(os.listdir(str(tmp_path))) in (["ledger.json"], ["ledger.json", "ledger.json.lock"])


def _rows(path):
    """What the database file holds, read with plain sqlite3."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT key, phone_number, expires_at, delete_pending FROM registrations "
                            "ORDER BY key").fetchall()
    finally:
        conn.close()


def _add_many(path, start, count):
    ledger = SqliteLedger(path)
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
    numbers = sorted(e.registration.phone_number for e in SqliteLedger(path).read().values())
    assert numbers == ["+47999%05d" % n for n in range(160)]
    leftovers = [name for name in os.listdir(str(tmp_path)) if name.startswith(".ledger.json.")]
    assert leftovers == []


def test_lock_timeout_names_the_ledger(tmp_path):
    path = str(tmp_path / "ledger.json")
    ledger = SqliteLedger(path, lock_timeout=0.2)
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


def _writes(path):
    """Count every row the ledger's table gets written or deleted (a trigger in the database itself)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TABLE writes (n INTEGER)")
        conn.execute("INSERT INTO writes VALUES (0)")
        for event in ("INSERT", "UPDATE", "DELETE"):
            conn.execute("CREATE TRIGGER count_%s AFTER %s ON registrations BEGIN UPDATE writes SET n = n + 1; END"
                         % (event.lower(), event))
    finally:
        conn.close()

    def count():
        reader = sqlite3.connect(path)
        try:
            return reader.execute("SELECT n FROM writes").fetchone()[0]
        finally:
            reader.close()
    return count


def test_update_of_some_keys_writes_exactly_the_changes(tmp_path):
    ledger, entries = _filled(str(tmp_path / "ledger.json"), ["+479999%04d" % number for number in range(5)])
    writes = _writes(ledger.path)
    keys = [entry.key for entry in entries]
    added = _entry("+4799998888")

    with ledger.update([keys[0], keys[1], keys[2], "no such key"]) as current:
        assert sorted(current) == sorted(keys[:3])  # only the keys asked for, and only those it holds
        current[keys[0]].last_error = "boom"
        del current[keys[1]]
        current[added.key] = added
    assert writes() == 3  # one change, one delete, one insert; the unchanged entry was not written again
    after = ledger.read()
    assert sorted(after) == sorted([keys[0], keys[2], keys[3], keys[4], added.key])
    assert after[keys[0]].last_error == "boom" and after[keys[2]].last_error is None

    with ledger.update() as current:
        assert len(current) == 5
    assert writes() == 3  # nothing changed, nothing written


def test_get_looks_up_more_keys_than_one_query_takes(tmp_path):
    ledger, entries = _filled(str(tmp_path / "ledger.json"), ["+4799%06d" % number for number in range(1200)])
    wanted = [entry.key for entry in entries[::2]] + ["missing-%d" % number for number in range(600)]
    found = ledger.get(wanted)
    assert sorted(found) == sorted(entry.key for entry in entries[::2])
    assert all(found[key].key == key for key in found)


def test_find_pages_through_the_ledger_and_filters(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_module, "PAGE_ROWS", 7)
    ledger = SqliteLedger(str(tmp_path / "ledger.json"))
    with ledger.update() as current:
        for number in range(40):
            entry = _entry("+479999%04d" % (number % 20))
            entry.principal = "client:c%d" % (number // 20)
            current[entry.key] = entry
    assert ledger.count() == 40
    assert sorted(entry.key for entry in ledger.find()) == sorted(ledger.read())
    assert len(list(ledger.find(principal="client:c1"))) == 20
    assert [entry.principal for entry in ledger.find(phone_number="+4799990003")] == ["client:c0", "client:c1"]
    assert list(ledger.find(endpoint="elsewhere:443")) == []
    # The caller may change the ledger while it iterates: every page is a statement of its own.
    seen = 0
    for entry in ledger.find(principal="client:c0"):
        with ledger.update([entry.key]) as current:
            current[entry.key].last_error = "seen"
        seen += 1
    assert seen == 20
    assert sum(1 for entry in ledger.find() if entry.last_error == "seen") == 20


def test_a_missing_ledger_reads_as_empty_and_is_not_created(tmp_path):
    ledger = SqliteLedger(str(tmp_path / "state" / "ledger.json"))
    assert ledger.read() == {} and ledger.get(["x"]) == {} and list(ledger.find()) == []
    assert ledger.count() == 0 and ledger.failing(10) == (0, [])
    assert ledger.states(0.0, 1 / 3.0) == (0, {"live": 0, "expiring": 0, "lapsed": 0, "error": 0}, None)
    assert not os.path.exists(str(tmp_path / "state"))


def test_expiring_pages_in_expiry_order_from_a_position(tmp_path):
    ledger = SqliteLedger(str(tmp_path / "ledger.json"))
    with ledger.update() as current:
        for number, upserted_at in enumerate([500.0, 100.0, 300.0, 100.0, 900.0, None, 200.0]):
            entry = _entry("+479999%04d" % number, upserted_at=upserted_at)
            current[entry.key] = entry
        pending = _entry("+4799998000", upserted_at=0.0)
        pending.delete_pending = True
        other = _entry("+4799998001", upserted_at=0.0)
        other.principal = "client:other"
        tried = _entry("+4799998002", upserted_at=0.0)
        tried.last_attempt_at = 5000.0
        for entry in (pending, other, tried):
            current[entry.key] = entry

    def numbers(limit, **kwargs):
        found, position = [], None
        while True:
            page, position = ledger.expiring("api.example:443", "client:c1", limit, after=position, **kwargs)
            if not page:
                return found
            assert len(page) <= limit
            found.extend(entry.registration.phone_number for _key, entry in page)

    # Never confirmed first, then by expiry (ties by key); not another's, not pending a delete.
    order = ["+4799990005", "+4799998002", "+4799990001", "+4799990003", "+4799990006", "+4799990002",
             "+4799990000", "+4799990004"]
    assert numbers(2) == order and numbers(3) == order and numbers(100) == order
    # Not attempted since 5000: the one tried then is left out.
    assert numbers(2, untried_since=5000.0) == [number for number in order if number != "+4799998002"]
    # Those whose expiry less half their TTL is at 2000 or before: expiry at 3800 or before.
    assert numbers(2, before=2000.0, lead=0.5, default_ttl=3600.0, longest_ttl=3600.0) == order[:5]
