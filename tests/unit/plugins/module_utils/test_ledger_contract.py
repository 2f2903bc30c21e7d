# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every ledger store promises (ledger_store.LedgerStore), proven on each: SQLite and a real PostgreSQL.

Each case runs once per store (the ``make_store`` fixture of conftest.py); what only the SQLite file does (modes,
corrupt files, its lock) is in test_ledger.py.
"""

import multiprocessing
import threading
import time

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import ledger_store, ledger_transfer
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import LedgerError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_entry import LedgerEntry
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration

ENDPOINT = "api.example:443"
PRINCIPAL = "client:c1"


def _entry(number, ttl=3600, upserted_at=1000.0, principal=PRINCIPAL):
    reg = Registration.create(phone_number=number, sip_uri="sips:pbx.example.com:5061", route_type="loop")
    return LedgerEntry(ENDPOINT, principal, reg, upserted_at=upserted_at, time_to_live=ttl)


def _fill(store, entries):
    with store.update() as current:
        for entry in entries:
            current[entry.key] = entry
    return entries


def _numbers(count, prefix="+4799"):
    return ["%s%06d" % (prefix, number) for number in range(count)]


def test_every_field_is_kept(make_store):
    store = make_store()
    entry = _entry("+4799990000")
    entry.registration = entry.registration._replace(route_type="fork", mobile_originating_prefix="11",
                                                     mobile_terminating_prefix="22")
    entry.last_error, entry.last_attempt_at, entry.delete_pending = "boom", 1500.5, True
    entry.unconfirmed, entry.claimed_by, entry.claimed_until, entry.changed_at = True, "run:h:1:ab", 2000.25, 999.5
    _fill(store, [entry])
    back = make_store().get([entry.key])[entry.key]
    assert back.row(entry.key) == entry.row(entry.key)
    assert back.expires_at == 4600.0 and back.live(4599.0) and not back.live(4600.0)


def test_a_block_that_raises_writes_nothing(make_store):
    store = make_store()
    first = _fill(store, [_entry("+4799990000")])[0]
    with pytest.raises(RuntimeError):
        with store.update() as entries:
            entries.clear()
            entries["other"] = _entry("+4799990001")
            raise RuntimeError("boom")
    assert sorted(store.read()) == [first.key]


def test_update_reads_only_the_keys_asked_for_and_writes_the_changes(make_store):
    store = make_store()
    entries = _fill(store, [_entry(number) for number in _numbers(5)])
    keys = [entry.key for entry in entries]
    added = _entry("+4799998888")
    with store.update([keys[0], keys[1], keys[2], "no such key"]) as current:
        assert sorted(current) == sorted(keys[:3])
        current[keys[0]].last_error = "boom"
        del current[keys[1]]
        current[added.key] = added
    after = make_store().read()
    assert sorted(after) == sorted([keys[0], keys[2], keys[3], keys[4], added.key])
    assert after[keys[0]].last_error == "boom" and after[keys[2]].last_error is None


def _add_many(make_store_args, start, count):
    kind, target = make_store_args
    store = _reopen(kind, target)
    for number in range(start, start + count):
        entry = _entry("+47999%05d" % number)
        with store.update([entry.key], exclusive=True) as entries:
            entries[entry.key] = entry
    store.close()


def _reopen(kind, target):
    if kind == "sqlite":
        return SqliteLedger(target)
    from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_postgresql import PostgresqlLedger
    return PostgresqlLedger(target)


def _target(store):
    return (store.kind, store.path if store.kind == "sqlite" else store.parameters)


def test_concurrent_writers_lose_nothing(make_store):
    store = make_store()
    _fill(store, [])  # created before the workers start
    workers = [multiprocessing.Process(target=_add_many, args=(_target(store), i * 40, 40)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    numbers = sorted(e.registration.phone_number for e in store.read().values())
    assert numbers == ["+47999%05d" % n for n in range(160)]


def test_get_looks_up_many_keys(make_store):
    store = make_store()
    entries = _fill(store, [_entry(number) for number in _numbers(1200)])
    wanted = [entry.key for entry in entries[::2]] + ["missing-%d" % number for number in range(600)]
    found = store.get(wanted)
    assert sorted(found) == sorted(entry.key for entry in entries[::2])
    assert all(found[key].key == key for key in found)


def test_find_pages_through_the_scope_and_filters(make_store, monkeypatch):
    monkeypatch.setattr(ledger_store, "PAGE_ROWS", 7)
    store = make_store()
    entries = []
    for number in range(40):
        entries.append(_entry("+479999%04d" % (number % 20), principal="client:c%d" % (number // 20)))
    _fill(store, entries)
    assert store.count() == 40
    assert [entry.key for entry in store.find()] == sorted(entry.key for entry in entries)  # in key order
    assert len(list(store.find(principal="client:c1"))) == 20
    assert [entry.principal for entry in store.find(phone_number="+4799990003")] == ["client:c0", "client:c1"]
    assert list(store.find(endpoint="elsewhere:443")) == []
    # The caller may change the ledger while it iterates: every page is a statement of its own.
    seen = 0
    for entry in store.find(principal="client:c0"):
        with store.update([entry.key]) as current:
            current[entry.key].last_error = "seen"
        seen += 1
    assert seen == 20
    assert sum(1 for entry in store.find() if entry.last_error == "seen") == 20


def test_scopes_are_apart(make_store):
    host_a, host_b = make_store("host-a"), make_store("host-b")
    same = _entry("+4799990000")
    _fill(host_a, [same, _entry("+4799990001")])
    _fill(host_b, [same])
    with host_b.update([same.key]) as current:
        current[same.key].last_error = "only b's"
    assert host_a.count() == 2 and host_b.count() == 1 and make_store().count() == 0
    assert host_a.get([same.key])[same.key].last_error is None
    assert [entry.last_error for entry in host_b.find()] == ["only b's"]
    assert host_a.census(0.0, 1 / 3.0)["total"] == 2 and host_b.failing(10)[0] == 1 and host_a.failing(10)[0] == 0
    with host_a.update() as current:
        current.clear()
    assert host_a.count() == 0 and host_b.count() == 1


def test_a_missing_ledger_reads_as_empty(make_store):
    store = make_store()
    assert store.read() == {} and store.get(["x"]) == {} and list(store.find()) == []
    assert store.count() == 0 and store.failing(10) == (0, [])
    assert store.census(0.0, 1 / 3.0)["total"] == 0 and store.nearest(0.0, 1) == []
    assert store.expiring(ENDPOINT, PRINCIPAL, 10) == ([], None)
    assert not store.exists()


def test_states_and_failures_are_counted(make_store):
    store = make_store()
    live, expiring, lapsed, error = (_entry("+4799990001", upserted_at=1000.0), _entry("+4799990002",
                                     upserted_at=-2000.0), _entry("+4799990003", upserted_at=-5000.0),
                                     _entry("+4799990004", upserted_at=1000.0))
    error.last_error = "boom"
    never = _entry("+4799990005", upserted_at=None)
    other = _entry("+4799990006", principal="client:other")
    pending = _entry("+4799990007")
    pending.delete_pending = True
    _fill(store, [live, expiring, lapsed, error, never, other, pending])
    counts = store.census(1000.0, 1 / 3.0)
    assert counts["total"] == 7 and dict((state, counts[state]) for state in ("live", "expiring", "lapsed", "error")) \
        == dict(live=3, expiring=1, lapsed=2, error=1)
    assert store.nearest(1000.0, 1)[0].registration.phone_number == "+4799990002"
    count, first = store.failing(10)
    assert (count, [entry.registration.phone_number for entry in first]) == (1, ["+4799990004"])
    count, first = store.failing(2, ENDPOINT, PRINCIPAL)
    assert count == 3 and [entry.registration.phone_number for entry in first] == ["+4799990004", "+4799990006"]
    assert store.longest_ttl(ENDPOINT, PRINCIPAL, 3600) == 3600 and store.shortest_ttl(ENDPOINT, PRINCIPAL) == 3600
    assert store.shortest_ttl(ENDPOINT, "client:none") is None


def _expiring_numbers(store, limit, **kwargs):
    found, position = [], None
    while True:
        page, position = store.expiring(ENDPOINT, PRINCIPAL, limit, after=position, **kwargs)
        if not page:
            return found
        assert len(page) <= limit
        found.extend(entry.registration.phone_number for _key, entry in page)


def test_expiring_pages_in_the_keepalives_order_from_a_position(make_store):
    store = make_store()
    entries = [_entry("+479999%04d" % number, upserted_at=upserted_at)
               for number, upserted_at in enumerate([500.0, 100.0, 300.0, 100.0, 900.0, None, 200.0])]
    pending = _entry("+4799998000", upserted_at=0.0)
    pending.delete_pending = True
    other = _entry("+4799998001", upserted_at=0.0, principal="client:other")
    tried = _entry("+4799998002", upserted_at=0.0)
    tried.last_attempt_at = 5000.0
    unconfirmed = _entry("+4799998003", upserted_at=800.0)  # a change decided, not yet answered: first
    unconfirmed.unconfirmed = True
    claimed = _entry("+4799998004", upserted_at=0.0)
    claimed.claimed_by, claimed.claimed_until = "keepalive:h:1:ab", 6000.0
    _fill(store, entries + [pending, other, tried, unconfirmed, claimed])

    # Unconfirmed and never confirmed first, then by expiry (ties by key); not another's, not pending a delete.
    order = ["+4799990005", "+4799998003", "+4799998002", "+4799998004", "+4799990001", "+4799990003",
             "+4799990006", "+4799990002", "+4799990000", "+4799990004"]
    assert _expiring_numbers(store, 2) == order and _expiring_numbers(store, 100) == order
    assert _expiring_numbers(store, 3, untried_since=5000.0) == [n for n in order if n != "+4799998002"]
    assert _expiring_numbers(store, 3, unclaimed_at=5999.0) == [n for n in order if n != "+4799998004"]
    assert _expiring_numbers(store, 3, unclaimed_at=6000.0) == order
    # Those whose expiry less half their TTL is at 2000 or before (expiry at 3800 or before), and unconfirmed ones.
    assert _expiring_numbers(store, 2, before=2000.0, lead=0.5, default_ttl=3600.0, longest_ttl=3600.0) == \
        order[:7]


def test_claims_split_the_due_entries_between_workers(make_store):
    store = make_store()
    _fill(store, [_entry(number, upserted_at=0.0) for number in _numbers(10)])
    store.clock = lambda: 10.0
    due = [[], []]
    for _round in range(3):
        for worker, owner in enumerate(("keepalive:a", "keepalive:b")):
            claimed, _position = store.claim_due(ENDPOINT, PRINCIPAL, 2, owner, 100.0, lambda key, entry: True)
            due[worker].extend(entry.registration.phone_number for _key, entry in claimed)
            assert all(entry.claimed_by == owner and entry.claimed_until == 100.0 for _key, entry in claimed)
    # Nothing twice, and the claims are in the ledger: another worker skips them.
    assert (len(due[0]), len(due[1])) == (6, 4) and not set(due[0]) & set(due[1])
    assert len(set(due[0] + due[1])) == 10
    held = make_store().read().values()
    assert sorted(entry.claimed_by for entry in held) == ["keepalive:a"] * 6 + ["keepalive:b"] * 4
    # is_due decides which candidates are claimed; the others stay free. An expired claim can be taken.
    store = make_store("other")
    store.clock = lambda: 10.0
    _fill(store, [_entry(number, upserted_at=0.0) for number in _numbers(4)])
    claimed, position = store.claim_due(ENDPOINT, PRINCIPAL, 4, "keepalive:a", 50.0,
                                        lambda key, entry: entry.registration.phone_number.endswith("2"))
    assert [entry.registration.phone_number for _key, entry in claimed] == ["+4799000002"]
    assert position is not None
    store.clock = lambda: 60.0
    claimed, _position = store.claim_due(ENDPOINT, PRINCIPAL, 4, "keepalive:b", 90.0, lambda key, entry: True)
    assert len(claimed) == 4


def test_renew_extends_only_the_owners_claims(make_store):
    store = make_store()
    entries = _fill(store, [_entry(number) for number in _numbers(3)])
    with store.update() as current:
        for entry, owner in zip(current.values(), ("run:a", "run:a", "run:b")):
            entry.claimed_by, entry.claimed_until = owner, 10.0
    store.renew("run:a", [entry.key for entry in entries], 99.0)
    assert sorted((entry.claimed_by, entry.claimed_until) for entry in store.read().values()) == [
        ("run:a", 99.0), ("run:a", 99.0), ("run:b", 10.0)]


def test_a_claimed_update_waits_for_anothers_claim_and_gives_up_after_lock_timeout(make_store):
    store = make_store(lock_timeout=5.0)
    entry = _fill(store, [_entry("+4799990000")])[0]
    with store.update() as current:
        current[entry.key].claimed_by, current[entry.key].claimed_until = "keepalive:x", time.time() + 60

    def release():
        time.sleep(0.5)
        other = _reopen(*_target(store))  # a connection of this thread's own
        with other.update([entry.key]) as current:
            current[entry.key].release()
        other.close()

    started = time.monotonic()
    releaser = threading.Thread(target=release)
    releaser.start()
    with store.claimed_update([entry.key], "run:me") as current:
        current[entry.key].last_error = "mine"
    releaser.join()
    assert 0.4 < time.monotonic() - started < 4.0
    assert store.read()[entry.key].last_error == "mine"

    with store.update() as current:
        current[entry.key].claimed_by, current[entry.key].claimed_until = "run:other", time.time() + 60
    impatient = make_store(lock_timeout=0.5)
    with pytest.raises(LedgerError) as caught:
        with impatient.claimed_update([entry.key], "run:me"):
            pass
    assert "stayed claimed by run:other for 0.5 s" in str(caught.value)
    # Claims not waited for are the caller's to deal with; its own never count.
    with impatient.claimed_update([entry.key], "run:me", waits_for=lambda key, held: False) as current:
        assert current[entry.key].claimed_by == "run:other"
    with impatient.claimed_update([entry.key], "run:other"):
        pass


def test_insert_adds_entries_in_one_go(make_store):
    store = make_store("imported")
    entries = [_entry(number) for number in _numbers(2500)]
    store.insert([(entry.key, entry) for entry in entries])
    assert store.count() == 2500 and make_store().count() == 0


def test_an_sqlite_ledger_is_imported_once_and_what_the_target_holds_stays(make_store, tmp_path):
    source = SqliteLedger(str(tmp_path / "source" / "ledger.json"))
    entries = _fill(source, [_entry(number) for number in _numbers(2500)])
    entries[0].claimed_by, entries[0].claimed_until = "run:old-host:1:ab", 9e9
    with source.update([entries[0].key]) as current:
        current[entries[0].key] = entries[0]
    target = make_store("host-1")
    changed = _entry(entries[1].registration.phone_number)
    changed.last_error = "the target's own, newer"
    _fill(target, [changed])

    predicted = ledger_transfer.import_ledger(source, target, check_mode=True)
    assert predicted == dict(source=2500, imported=2499, present=1, target=1) and target.count() == 1
    assert ledger_transfer.import_ledger(source, target) == dict(source=2500, imported=2499, present=1, target=2500)
    held = make_store("host-1").read()
    assert sorted(held) == sorted(entry.key for entry in entries)
    assert held[changed.key].last_error == "the target's own, newer"  # kept, not overwritten
    assert held[entries[0].key].claimed_by is None  # the old host's claim does not come along
    assert held[entries[2].key].row(entries[2].key) == entries[2].row(entries[2].key)
    # Once: again, nothing is imported; other scopes are untouched.
    assert ledger_transfer.import_ledger(source, target) == dict(source=2500, imported=0, present=2500, target=2500)
    assert make_store().count() == 0
    source.close()
