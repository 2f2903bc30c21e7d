# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQLite ledger on disk: permissions, its lock, corrupt files kept, the default path (what every store does is
test_ledger_contract.py's)."""

import json
import os
import stat

import sqlite3

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import ledger as ledger_facade

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


def test_a_missing_ledger_is_not_created_by_reading_it(tmp_path):
    ledger = SqliteLedger(str(tmp_path / "state" / "ledger.json"))
    assert ledger.read() == {} and ledger.count() == 0 and not ledger.holds("api.example:443", "client:c1")
    assert not os.path.exists(str(tmp_path / "state"))


def test_the_default_ledger_is_one_file_per_user_and_an_earlier_default_is_still_used(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(ledger_facade, "STATE_DIR", str(tmp_path / "var-lib"))
    user = str(tmp_path / "home" / ".local" / "state" / "wgtwo.sipbreakout")
    root = str(tmp_path / "var-lib")
    # Nothing yet: root's in the state directory the roles use, any other user's in their own.
    assert ledger_facade.default_ledger_path(euid=0) == os.path.join(root, "ledger.sqlite")
    assert ledger_facade.default_ledger_path(euid=1000) == os.path.join(user, "ledger.sqlite")
    # An earlier default (ledger.json) is used while the new one does not exist.
    os.makedirs(user)
    open(os.path.join(user, "ledger.json"), "w").close()
    assert ledger_facade.default_ledger_path(euid=1000) == os.path.join(user, "ledger.json")
    assert ledger_facade.default_ledger_path(euid=0) == os.path.join(user, "ledger.json")
    os.makedirs(root)
    open(os.path.join(root, "ledger.json"), "w").close()
    assert ledger_facade.default_ledger_path(euid=0) == os.path.join(root, "ledger.json")
    open(os.path.join(root, "ledger.sqlite"), "w").close()
    assert ledger_facade.default_ledger_path(euid=0) == os.path.join(root, "ledger.sqlite")
    # The module and the keepalive resolve it alike.
    assert ledger_facade.open_ledger({}).path == ledger_facade.default_ledger_path()
