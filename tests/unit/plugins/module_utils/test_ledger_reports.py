# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger's report queries (census, owners, owner_summary, group_states, nearest, phone_numbers, select,
count_selected) against the same answers computed in Python from every entry: the contract each ledger store keeps,
proven on SQLite and on a real PostgreSQL.

The entries sit on both sides of every boundary of health.classify and of each filter, and belong to several
endpoints and principals, some pending a delete. Another scope of the same ledger holds them all again (and
more), and must never be counted."""

import itertools
import json

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import health
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import ledger_store as ledger_module
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_entry import LedgerEntry
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_postgresql import PostgresqlLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.tests import postgresql_support
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration, sip_uri_host
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration_filter import RegistrationFilter

OWNER = ("api.example:443", "client:c1")
OWNERS = [OWNER, ("api.example:443", "user:c1:0123456789ab"), ("sandbox.example:443", "client:c1")]
NOWS = (1000.0, 2000.0, 2050.0, 4000.0)
# (upserted_at, time_to_live, last_error): both sides of each boundary of classify at the times of NOWS.
TIMES = [(1000.0, 3600.0, None), (1000.0, 3600.0, "boom"), (1000.0, 3600.0, ""), (-2600.0, 3600.0, None),
         (-2600.0, 3600.0, "boom"), (-1600.0, 3600.0, None), (-1601.0, 3600.0, None), (-1599.0, 3600.0, None),
         (None, 3600.0, None), (1000.0, None, None), (1999.0, 1.0, None), (1900.0, 200.0, None),
         (1950.0, 100.0, None), (-1000.0, 3099.5, None), (1000.0, 0.0, None), (1500.0, 3600.0, "refused")]
URIS = ("sips:pbx.example.com:5061", "sips:pbx.example.com", "sips:b.example.com:5061")


def _entries():
    """Every time of TIMES under every owner, with a number (and a few without), URIs, route types and deletes."""
    entries = []
    for index, ((endpoint, principal), (upserted_at, ttl, error)) in enumerate(itertools.product(OWNERS, TIMES)):
        number = None if index % 11 == 5 else "+47%d99%04d" % (9 - index % 3, index)
        reg = Registration(number, URIS[index % len(URIS)], (None, "loop", "fork", "fallback")[index % 4], None,
                           None)
        entries.append(LedgerEntry(endpoint, principal, reg, upserted_at=upserted_at, time_to_live=ttl,
                                   last_error=error, last_attempt_at=upserted_at, delete_pending=index % 7 == 3))
    # A user token's entries are keyed without their number: one entry per URI, the last one given.
    return list(dict((entry.key, entry) for entry in entries).values())


def _fill(ledger, entries):
    with ledger.update() as current:
        for entry in entries:
            current[entry.key] = entry


@pytest.fixture(name="filled", scope="module", params=["sqlite", "postgresql"])
def filled_fixture(request, tmp_path_factory):
    entries = _entries()
    noise = entries + [LedgerEntry("api.example:443", "client:elsewhere", entry.registration, upserted_at=1000.0,
                                   time_to_live=3600.0) for entry in entries]
    if request.param == "sqlite":
        path = str(tmp_path_factory.mktemp("reports") / "ledger.json")
        ledger, other = SqliteLedger(path), SqliteLedger(path, scope="elsewhere")
        _fill(ledger, entries)
        _fill(other, noise)
        yield ledger, entries
        ledger.close()
        other.close()
        return
    server = postgresql_support.server()
    with server.database() as dbname:
        parameters = dict(conninfo=server.conninfo(dbname))
        ledger, other = PostgresqlLedger(parameters), PostgresqlLedger(parameters, scope="elsewhere")
        _fill(ledger, entries)
        _fill(other, noise)
        yield ledger, entries
        ledger.close()
        other.close()


def _states(entries, now, fraction, within):
    found = dict((state, 0) for state in health.STATES)
    for entry in entries:
        found[health.classify(entry, now, within, fraction)] += 1
    return found


def _failing(entry):
    return bool(entry.last_error)


@pytest.mark.parametrize("within", [None, 0.0, 100.0])
@pytest.mark.parametrize("fraction", [1 / 3.0, 0.9])
def test_census_counts_what_classify_says(filled, within, fraction):
    ledger, entries = filled
    for now in NOWS:
        counts = ledger.census(now, fraction, within, owner=OWNER)
        mine = [e for e in entries if (e.endpoint, e.principal) == OWNER]
        not_refreshed = [e for e in entries if (e.endpoint, e.principal) != OWNER or e.delete_pending]
        expected = dict(_states(entries, now, fraction, within), total=len(entries),
                        failing=sum(1 for e in entries if _failing(e)),
                        last_upserted_at=max(e.upserted_at for e in entries if e.upserted_at is not None),
                        others=len(entries) - len(mine), not_refreshed=len(not_refreshed),
                        refresh_failing=sum(1 for e in mine if _failing(e) and not e.delete_pending),
                        failing_or_not_refreshed=sum(1 for e in entries if _failing(e) or e in not_refreshed))
        assert counts == expected, now
        plain = ledger.census(now, fraction, within)
        assert plain == dict((key, expected[key]) for key in plain) and "others" not in plain


def test_owners_and_owner_summary(filled, monkeypatch):
    ledger, entries = filled
    expected = sorted((owner, sum(1 for e in entries if (e.endpoint, e.principal) == owner)) for owner in OWNERS)
    assert ledger.owners() == [(owner[0], owner[1], count) for owner, count in expected]
    for many in (False, True):
        # Both ways of reading an owner's entries: through the index of owners, and a walk of the whole ledger.
        monkeypatch.setattr(type(ledger), "OWNER_BY_SCAN", 0 if many else 10 ** 6, raising=False)
        for owner in OWNERS:
            mine = [e for e in entries if (e.endpoint, e.principal) == owner]
            for now in NOWS:
                assert ledger.owner_summary(owner[0], owner[1], now) == dict(
                    lapsed=_states(mine, now, 1 / 3.0, None)["lapsed"],
                    last_upserted_at=max(e.upserted_at for e in mine if e.upserted_at is not None)), (owner, now)
    assert ledger.owner_summary("nowhere", "nobody", 0.0) == dict(lapsed=0, last_upserted_at=None)


def test_group_states_counts_per_group_in_order(filled):
    ledger, entries = filled
    now, fraction = 2000.0, 1 / 3.0
    groups = ledger.group_states(("route_type", "sip_uri", "delete_pending"), now, fraction)
    keys = [values for values, _counts in groups]
    expected_keys = sorted(set((e.registration.route_type, e.registration.sip_uri, e.delete_pending)
                               for e in entries), key=lambda key: ((key[0] is not None, key[0] or ""),) + key[1:])
    assert keys == expected_keys
    for values, counts in groups:
        members = [e for e in entries
                   if (e.registration.route_type, e.registration.sip_uri, e.delete_pending) == values]
        assert counts == dict(_states(members, now, fraction, None), total=len(members),
                              failing=sum(1 for e in members if _failing(e)),
                              last_upserted_at=max(e.upserted_at for e in members if e.upserted_at is not None))
    with pytest.raises(ValueError):
        ledger.group_states(("last_error",), now, fraction)


def test_nearest_lists_the_live_entries_that_lapse_first(filled):
    ledger, entries = filled
    for now in NOWS:
        live = sorted((e for e in entries if e.expires_at is not None and e.expires_at > now),
                      key=lambda e: (e.expires_at, e.key))
        assert [e.key for e in ledger.nearest(now, 5)] == [e.key for e in live[:5]]
        assert len(ledger.nearest(now, 1000)) == len(live)


def test_phone_numbers_of_an_owner(filled, monkeypatch):
    ledger, entries = filled
    for many in (False, True):
        monkeypatch.setattr(type(ledger), "OWNER_BY_SCAN", 0 if many else 10 ** 6, raising=False)
        for owner in OWNERS:
            numbers = sorted(set(e.registration.phone_number for e in entries
                                 if (e.endpoint, e.principal) == owner) - {None})
            assert ledger.phone_numbers(owner[0], owner[1], 3) == numbers[:3]
            assert ledger.phone_numbers(owner[0], owner[1], 1000) == numbers


FILTERS = [
    RegistrationFilter(),
    RegistrationFilter(states=["error"]),
    RegistrationFilter(states=["live", "expiring"]),
    RegistrationFilter(states=["lapsed"], sip_uri=URIS[1]),
    RegistrationFilter(phone_number="+47999%04d" % 9),
    RegistrationFilter(phone_number_prefix="+47899001"),
    RegistrationFilter(phone_number_prefix="+47"),
    RegistrationFilter(owner=OWNER, failing=True),
    RegistrationFilter(not_owner=OWNER),
    RegistrationFilter(not_owner=OWNER, states=["expiring"]),
    RegistrationFilter(failing=False, states=["error", "lapsed"]),
]


def _matches(selection, entry, now, fraction):
    number = entry.registration.phone_number
    checks = [
        selection.states is None or health.classify(entry, now, None, fraction) in selection.states,
        selection.phone_number is None or number == selection.phone_number,
        selection.phone_number_prefix is None or (number or "").startswith(selection.phone_number_prefix)
        and number is not None,
        selection.sip_uri is None or entry.registration.sip_uri == selection.sip_uri,
        selection.owner is None or (entry.endpoint, entry.principal) == selection.owner,
        selection.not_owner is None or (entry.endpoint, entry.principal) != selection.not_owner,
        selection.failing is None or _failing(entry) == selection.failing,
    ]
    return all(checks)


@pytest.mark.parametrize("selection", FILTERS, ids=repr)
def test_select_and_count_selected_match_every_field_in_key_order(filled, monkeypatch, selection):
    ledger, entries = filled
    monkeypatch.setattr(ledger_module, "PAGE_ROWS", 7)  # several pages, each its own statement
    for now in (2000.0, 4000.0):
        expected = sorted((e for e in entries if _matches(selection, e, now, 0.9)), key=lambda e: e.key)
        found = list(ledger.select(selection, now, 0.9))
        assert [e.key for e in found] == [e.key for e in expected], now
        assert ledger.count_selected(selection, now, 0.9) == len(expected)
        # The caller may stop at any point: the iterator has read no more pages than it needed.
        assert [e.key for e in itertools.islice(ledger.select(selection, now, 0.9), 3)] == [
            e.key for e in expected[:3]]
    assert len(FILTERS) == len(set(repr(selection) for selection in FILTERS))


def test_the_filters_select_something_and_not_everything(filled):
    ledger, entries = filled
    for selection in FILTERS[1:]:
        assert 0 < ledger.count_selected(selection, 2000.0, 0.9) < len(entries), selection


def test_a_missing_ledger_has_no_counts_and_is_not_created(make_store):
    ledger = make_store()
    assert ledger.census(0.0, 0.5, owner=OWNER) == dict(
        total=0, live=0, expiring=0, lapsed=0, error=0, failing=0, last_upserted_at=None, refresh_failing=0,
        others=0, not_refreshed=0, failing_or_not_refreshed=0)
    assert ledger.owners() == [] and ledger.nearest(0.0, 5) == [] and ledger.phone_numbers("a", "b", 5) == []
    assert ledger.group_states(("sip_uri",), 0.0, 0.5) == []
    assert list(ledger.select(RegistrationFilter(), 0.0, 0.5)) == [] and ledger.count_selected(
        RegistrationFilter(), 0.0, 0.5) == 0
    assert not ledger.exists()


def test_the_filter_from_the_modules_options(tmp_path):
    selection = RegistrationFilter.from_options(dict(state=["error"], phone_number_prefix="+47 99",
                                                     sip_uri="SIPS:PBX.Example.com:5061"))
    assert selection.as_dict() == dict(states=["error"], phone_number_prefix="+4799",
                                       sip_uri="sips:pbx.example.com:5061")
    assert RegistrationFilter.from_options(dict(phone_number="+47 999 90 000")).phone_number == "+4799990000"
    assert RegistrationFilter.from_options(None).as_dict() == {}
    for options, option in ((dict(phone_number_prefix="4799"), "filter.phone_number_prefix"),
                            (dict(phone_number="4799990000"), "filter.phone_number"),
                            (dict(sip_uri="sip:pbx.example.com"), "filter.sip_uri"),
                            (dict(phone_number="+4799990000", phone_number_prefix="+47"), "filter.phone_number")):
        with pytest.raises(Exception) as refused:
            RegistrationFilter.from_options(options)
        assert getattr(refused.value, "option", None) == option, (options, refused.value)
    # Nothing of this module knows SQL: the ledger reads the fields.
    assert "SELECT" not in json.dumps(selection.as_dict())
    assert sip_uri_host("sips:[2001:db8::1]:5061") == "[2001:db8::1]"
