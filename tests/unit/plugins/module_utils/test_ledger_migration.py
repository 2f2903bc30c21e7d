# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A JSON ledger of earlier versions becomes the SQLite ledger on first use: every fact kept, once, with a backup;
an SQLite ledger of format 2 (before scopes and claims) is upgraded in place.

The JSON ledger is fixtures/ledger-v1.json, written by the registration module of the version before the SQLite
ledger against the emulator (fixtures/make_ledger_v1.py says how). fixtures/ledger-v2.sqlite is that file as the
collection of format 2 (commit 8059ba2) converted it, its WAL checkpointed into the file.
"""

import fcntl
import json
import os
import shutil
import sqlite3
import stat

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import ledger_migration
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import LedgerError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "ledger-v1.json")
FIXTURE_V2 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "ledger-v2.sqlite")
FIELDS = ("phone_number", "sip_uri", "route_type", "mobile_originating_prefix", "mobile_terminating_prefix")


def _v1(tmp_path):
    """A copy of the fixture where a module would keep it, 0600 in a 0700 directory."""
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    path = str(directory / "ledger.json")
    shutil.copyfile(FIXTURE, path)
    os.chmod(path, 0o600)
    return path


def _fixture():
    with open(FIXTURE, "rb") as handle:
        content = handle.read()
    return content, json.loads(content.decode("utf-8"))["body"]["registrations"]


def _columns(path):
    """Every row of the database, by key, read with plain sqlite3."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return dict((row["key"], dict(row)) for row in conn.execute("SELECT * FROM registrations"))
    finally:
        conn.close()


def test_every_fact_of_a_v1_ledger_is_carried_over_and_the_json_kept(tmp_path):
    path = _v1(tmp_path)
    content, v1 = _fixture()
    entries = SqliteLedger(path).read()

    assert sorted(entries) == sorted(v1) and len(v1) == 6
    for key, old in v1.items():
        entry = entries[key]
        assert entry.key == key  # keyed the same way
        assert (entry.endpoint, entry.principal) == (old["endpoint"], old["principal"])
        assert entry.registration.as_dict() == dict((field, old["registration"][field]) for field in FIELDS)
        assert (entry.upserted_at, entry.time_to_live, entry.last_attempt_at) == (
            old["upserted_at"], old["time_to_live"], old["last_attempt_at"])
        assert (entry.last_error, entry.delete_pending) == (old["last_error"], old["delete_pending"])
    # What the fixture was made to hold, as the database itself holds it.
    rows = _columns(path)
    by_number = dict((row["phone_number"], row) for row in rows.values())
    assert by_number["+4799990003"]["delete_pending"] == 1 and "UNAVAILABLE" in by_number["+4799990003"]["last_error"]
    assert "UNAVAILABLE" in by_number["+4799990002"]["last_error"]
    assert (by_number["+4799990002"]["mobile_originating_prefix"], by_number["+4799990002"]["route_type"]) == (
        "11", "fork")
    user = by_number["+4799990010"]  # a refresh token's: keyed without its number, which it still holds
    assert user["principal"].startswith("user:fixture-client:") and json.loads(user["key"])[2] is None
    assert by_number[None]["principal"] == "access-token"
    assert all(row["expires_at"] == row["upserted_at"] + row["time_to_live"] for row in rows.values())

    with open(path, "rb") as handle:
        assert handle.read(16) == b"SQLite format 3\x00"
    backup = path + ".json-v1.bak"
    with open(backup, "rb") as handle:
        assert handle.read() == content
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    leftovers = [name for name in os.listdir(os.path.dirname(path)) if name.startswith(".")]
    assert leftovers == []


def test_a_format_2_ledger_is_upgraded_in_place_with_every_fact_in_the_default_scope(tmp_path):
    path = str(tmp_path / "ledger.sqlite")
    shutil.copyfile(FIXTURE_V2, path)
    os.chmod(path, 0o600)
    before = _columns(path)
    _content, v1 = _fixture()
    assert sorted(before) == sorted(v1)

    entries = SqliteLedger(path).read()

    after = _columns(path)
    assert sorted(after) == sorted(before) == sorted(entries)
    for key, row in before.items():
        assert dict((name, after[key][name]) for name in row) == row  # every column of format 2, unchanged
        assert after[key]["scope"] == "default"
        assert (after[key]["unconfirmed"], after[key]["claimed_by"], after[key]["claimed_until"]) == (0, None, None)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert sorted(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")) == [
            "registrations"]
    finally:
        conn.close()
    # Another scope of the same file sees none of them.
    assert SqliteLedger(path, scope="cluster-a").read() == {}


def test_it_is_converted_once(tmp_path, monkeypatch):
    path = _v1(tmp_path)
    ledger = SqliteLedger(path)
    with ledger.update() as entries:
        entries.pop(next(iter(sorted(entries))))
    ledger.close()
    backup = os.stat(path + ".json-v1.bak")

    def again(*_args):
        raise AssertionError("converted a second time")

    monkeypatch.setattr(ledger_migration, "migrate", again)
    assert len(SqliteLedger(path).read()) == 5  # the database, with the change made after the conversion
    after = os.stat(path + ".json-v1.bak")
    assert (after.st_ino, after.st_mtime) == (backup.st_ino, backup.st_mtime)


@pytest.mark.parametrize("step", ["write_database", "_copy_private", "rename"])
def test_a_conversion_that_fails_midway_leaves_the_json_ledger(tmp_path, monkeypatch, step):
    path = _v1(tmp_path)
    content, _v1_entries = _fixture()
    original = getattr(ledger_migration.os if step == "rename" else ledger_migration, step)

    def crash(*args):
        if step == "rename" and args[1] != path:
            return original(*args)  # the backup's rename; the process dies at the ledger's
        if step == "write_database":
            original(*args)  # the database is complete, then the process dies before the rename
        raise KeyboardInterrupt("killed")

    if step == "rename":
        monkeypatch.setattr(ledger_migration.os, "rename", crash)
    else:
        monkeypatch.setattr(ledger_migration, step, crash)
    with pytest.raises(KeyboardInterrupt):
        SqliteLedger(path).read()
    monkeypatch.undo()

    with open(path, "rb") as handle:
        assert handle.read() == content
    assert [name for name in os.listdir(os.path.dirname(path)) if name.startswith(".")] == []
    assert os.path.exists(path + ".json-v1.bak") == (step == "rename")
    # The next use converts it.
    assert len(SqliteLedger(path).read()) == 6
    with open(path + ".json-v1.bak", "rb") as handle:
        assert handle.read() == content


def test_a_killed_conversions_temporary_database_is_removed(tmp_path):
    path = _v1(tmp_path)
    leftover = os.path.join(os.path.dirname(path), ".ledger.json.migrating-abc123")
    with open(leftover, "wb") as handle:
        handle.write(b"SQLite format 3\x00 half written")
    assert len(SqliteLedger(path).read()) == 6
    assert not os.path.exists(leftover)


def test_it_waits_for_a_writer_of_an_earlier_version(tmp_path):
    # An earlier version writes the JSON file holding <path>.lock: the conversion waits for it, and leaves the file
    # as it is when it does not get the lock in time.
    path = _v1(tmp_path)
    content, _v1_entries = _fixture()
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(LedgerError) as caught:
            SqliteLedger(path, lock_timeout=0.3).read()
        assert "ledger.json.lock stayed locked" in str(caught.value)
    finally:
        os.close(fd)
    with open(path, "rb") as handle:
        assert handle.read() == content
    assert not os.path.exists(path + ".json-v1.bak")
