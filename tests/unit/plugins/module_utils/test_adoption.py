# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking over a replaced refresh token's registrations: what is refused before anything happens, and the plan
(one call per registration, from the ledger alone). The emulator tests are in tests/functional/test_reconsent.py."""

import types

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import adoption
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_entry import LedgerEntry
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import Item, RegistrationService

ENDPOINT = "api.example:443"
OLD = "user:pbx:0123456789ab"
NEW = "user:pbx:ba9876543210"
BOB = "user:pbx:b0b0b0b0b0b0"
ALICE_NUMBER = "+4799990001"
BOB_NUMBER = "+4799990002"
NOW = 10000.0


def _reg(uri, number=ALICE_NUMBER, route_type="loop"):
    return Registration.create(phone_number=number, sip_uri="sips:%s.example.com" % uri, route_type=route_type)


def _ledger(tmp_path, *entries):
    ledger = SqliteLedger(str(tmp_path / "ledger.json"))
    with ledger.update() as held:
        for principal, registration, extra in entries:
            entry = LedgerEntry(ENDPOINT, principal, registration, upserted_at=NOW - 600, time_to_live=3600.0,
                                **extra)
            held[entry.key] = entry
    return ledger


def _service(ledger, principal=NEW):
    connection = types.SimpleNamespace(endpoint=ENDPOINT, principal=principal, timeout=10.0)
    return RegistrationService(connection, ledger, clock=lambda: NOW)


def _plan(tmp_path, entries, items, action=adoption.ADOPT, purge=False, principal=NEW, previous=OLD):
    service = _service(_ledger(tmp_path, *entries), principal)
    steps = service.plan([Item(reg, state) for reg, state in items], purge=purge,
                         takeover=adoption.Takeover(previous, action))
    return service, steps


def _shape(steps):
    return [(step.item.registration.sip_uri, step.item.state, step.outcome, step.purge,
             step.replaces[1] if step.replaces else None, step.changed) for step in steps]


@pytest.mark.parametrize("principal, client", [
    ("user:pbx:0123456789ab", "pbx"),
    ("user:a:b:0123456789ab", "a:b"),       # a client id may hold colons; the digest is the last part
    ("user:pbx:0123456789AB", None),
    ("user:pbx:0123456789a", None),
    ("user::0123456789ab", None),
    ("client:pbx", None),
    ("access-token", None),
    ("anonymous", None),
    ("", None),
])
def test_user_client(principal, client):
    assert adoption.user_client(principal) == client


@pytest.mark.parametrize("current, previous, fragment", [
    ("client:pbx", OLD, "needs this run to authenticate with its refresh_token; it authenticates as client:pbx"),
    ("access-token", OLD, "it authenticates as access-token"),
    (NEW, NEW, "is the principal of this run's own refresh_token"),
    (NEW, "client:pbx", "'client:pbx' is not the principal of a refresh token"),
    (NEW, "user:pbx:nothex", "is not the principal of a refresh token"),
    (NEW, "user:other:0123456789ab", "belongs to client 'other', this run's refresh_token to client 'pbx'"),
])
def test_principals_that_cannot_be_taken_over_are_refused(tmp_path, current, previous, fragment):
    with pytest.raises(ValidationError) as refused:
        _plan(tmp_path, [(OLD, _reg("a"), {})], [(_reg("a"), "present")], principal=current, previous=previous)
    assert refused.value.option == "previous_principal"
    assert fragment in str(refused.value)


def test_another_subscribers_registrations_are_refused(tmp_path):
    entries = [(OLD, _reg("a"), {}), (BOB, _reg("a", BOB_NUMBER), {})]
    with pytest.raises(ValidationError) as refused:
        _plan(tmp_path, entries, [(_reg("a"), "present")], previous=BOB)
    assert "are for %s, this run's refresh_token is for %s: another subscription's" % (BOB_NUMBER, ALICE_NUMBER) \
        in str(refused.value)


def test_registrations_without_a_number_are_refused(tmp_path):
    unnumbered = Registration.create(sip_uri="sips:a.example.com", route_type="loop")
    with pytest.raises(ValidationError) as refused:
        _plan(tmp_path, [(OLD, unnumbered, {}), (OLD, _reg("b"), {})], [(_reg("b"), "present")])
    assert "1 registration(s) of %s at %s" % (OLD, ENDPOINT) in str(refused.value)
    assert "(sips:a.example.com) were applied without phone_number" in str(refused.value)


def test_a_run_that_names_no_number_cannot_be_checked(tmp_path):
    unnumbered = Registration.create(sip_uri="sips:a.example.com", route_type="loop")
    with pytest.raises(ValidationError) as refused:
        _plan(tmp_path, [(OLD, _reg("a"), {})], [(unnumbered, "present")])
    assert "this run names no phone_number" in str(refused.value)
    # The current principal's own entries name the subscription too.
    _service_, steps = _plan(tmp_path, [(OLD, _reg("a"), {}), (NEW, _reg("b"), {})], [(unnumbered, "present")])
    assert [step.replaces[1] for step in steps if step.replaces] == [OLD]


def test_a_principal_holding_nothing_fails_while_this_subscription_has_orphans(tmp_path):
    other = "user:pbx:0a0a0a0a0a0a"
    entries = [(OLD, _reg("a"), {}), (BOB, _reg("b", BOB_NUMBER), {})]
    with pytest.raises(ValidationError) as refused:
        _plan(tmp_path, entries, [(_reg("a"), "present")], previous=other)
    # Bob's registrations are another subscription's: not offered.
    assert str(refused.value).endswith("registrations that may be this subscription's are held by %s (1)" % OLD)


def test_a_principal_holding_nothing_once_taken_over_only_warns(tmp_path):
    entries = [(NEW, _reg("a"), {}), (BOB, _reg("b", BOB_NUMBER), {})]
    service, steps = _plan(tmp_path, entries, [(_reg("a"), "present")])
    assert _shape(steps) == [("sips:a.example.com", "present", "unchanged", False, None, False)]
    assert len(service.warnings) == 1 and "nothing to take over" in service.warnings[0]


def test_declared_registrations_are_sent_once_and_the_rest_adopted(tmp_path):
    entries = [(OLD, _reg("a"), {}), (OLD, _reg("b", route_type="fork"), {})]
    _service_, steps = _plan(tmp_path, entries, [(_reg("a"), "present")])
    assert _shape(steps) == [
        ("sips:a.example.com", "present", "unchanged", False, OLD, True),
        ("sips:b.example.com", "present", "unchanged", False, OLD, True),
    ]
    assert steps[1].item.registration.route_type == "fork"  # as the previous principal last sent it


def test_delete_deletes_what_the_items_do_not_name(tmp_path):
    entries = [(OLD, _reg("a"), {}), (OLD, _reg("b"), {})]
    _service_, steps = _plan(tmp_path, entries, [(_reg("a", route_type="fork"), "present")], action=adoption.DELETE)
    assert _shape(steps) == [
        ("sips:a.example.com", "present", "updated", False, OLD, True),
        ("sips:b.example.com", "absent", "deleted", False, OLD, True),
    ]


def test_what_this_principal_holds_itself_stays_as_it_holds_it(tmp_path):
    entries = [(OLD, _reg("a"), {}), (NEW, _reg("a", route_type="fork"), {})]
    for action in adoption.PREVIOUS_ENTRIES:
        _service_, steps = _plan(tmp_path / action, entries, [], action=action)
        assert _shape(steps) == [("sips:a.example.com", "present", "unchanged", False, OLD, True)], action
        assert steps[0].item.registration.route_type == "fork"


def test_a_pending_delete_is_never_adopted_as_present(tmp_path):
    entries = [(OLD, _reg("a"), {"delete_pending": True})]
    _service_, steps = _plan(tmp_path, entries, [(_reg("b"), "present")])
    assert _shape(steps)[1] == ("sips:a.example.com", "absent", "deleted", False, OLD, True)


def test_with_purge_adopted_registrations_count_as_this_principals(tmp_path):
    three = [(OLD, _reg(uri), {}) for uri in "abc"]
    # Two of three named: the third is purged, within the defaults (1 of 3).
    _service_, steps = _plan(tmp_path / "one", three, [(_reg("a"), "present"), (_reg("b"), "present")], purge=True)
    assert [(s[0], s[1], s[3], s[4]) for s in _shape(steps)] == [
        ("sips:a.example.com", "present", False, OLD), ("sips:b.example.com", "present", False, OLD),
        ("sips:c.example.com", "absent", True, OLD)]
    # One of three named: 2 of 3 is more than either limit, as for any purge.
    with pytest.raises(ValidationError) as refused:
        _plan(tmp_path / "two", three, [(_reg("a"), "present")], purge=True)
    assert "purge would delete 2 of the 3 registrations" in str(refused.value)
    # delete deletes them outright, as state=absent would: no purge limit.
    _service_, steps = _plan(tmp_path / "three", three, [(_reg("d"), "present")], purge=True, action=adoption.DELETE)
    assert [(s[0], s[1], s[3]) for s in _shape(steps)] == [("sips:d.example.com", "present", False)] + [
        ("sips:%s.example.com" % uri, "absent", False) for uri in "abc"]


def test_orphans_for_registration_info():
    entries = [LedgerEntry(ENDPOINT, principal, reg, upserted_at=NOW - 600, time_to_live=3600.0)
               for principal, reg in ((OLD, _reg("a")), (NEW, _reg("a")), (BOB, _reg("b", BOB_NUMBER)),
                                      ("client:pbx", _reg("c")))]
    found = adoption.orphans(entries, ENDPOINT, NEW, lambda entry: dict(principal=entry.principal))
    assert found == [dict(principal=OLD, replaced_refresh_token=True), dict(principal=BOB, replaced_refresh_token=True),
                     dict(principal="client:pbx", replaced_refresh_token=False)]
