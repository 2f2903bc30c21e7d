# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registrations from a file (``registrations_file``) against the emulator, a few thousand lines applied a chunk at a
time: the emulator and the ledger hold exactly the file, a re-run changes nothing, a bad line deep inside changes
nothing anywhere and is named, purge and its guard, check and diff mode, fail_fast across chunks, a takeover; and
what the engine reads of the ledger (a chunk's keys, never the whole of it without purge)."""

import json
import os
import subprocess
import sys

import pytest

from sipbreakout_emulator.testing import running_emulator

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import service
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options

from keepalive_support import CLIENT_ID, CLIENT_SECRET, SIP_URI, Workdir, module_options

COUNT = 3000
CHUNK = 700  # five chunks for the file, so that chunking is what is tested


@pytest.fixture(name="emu")
def emu_fixture(tmp_path):
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as handle:
        yield handle


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(service, "CHUNK_SIZE", CHUNK)


def _numbers(count=COUNT, start=0):
    return ["+4793%06d" % index for index in range(start, start + count)]


def _csv(path, numbers, route_type="loop", extra=()):
    with open(path, "w") as handle:
        handle.write("phone_number,sip_uri,route_type,state\n")
        for number in numbers:
            handle.write("%s,%s,%s,\n" % (number, SIP_URI, route_type))
        for line in extra:
            handle.write(line + "\n")
    return path


def _jsonl(path, items):
    with open(path, "w") as handle:
        for item in items:
            handle.write(json.dumps(item) + "\n")
    return path


def _held(emu):
    return sorted(reg["phone_number"] for reg in emu.registrations())


def _ledger_numbers(work):
    return sorted(entry.registration.phone_number for entry in SqliteLedger(work.ledger).read().values())


def _observed(emu, work):
    """The emulator's counters and registrations, and every row of the ledger with all its columns."""
    calls = emu.calls(limit=0)
    rows = sorted(entry.row(key) for key, entry in SqliteLedger(work.ledger).read().items())
    return calls["total"], calls["token_requests"], _held(emu), rows


def _calls(emu, method):
    return emu.calls(limit=0)["by_method"].get(method, {}).get("total", 0)


class LedgerSpy:
    """Which of the ledger's methods the engine calls, and for how many keys."""

    def __init__(self, monkeypatch):
        self.calls = []
        for name in ("read", "get", "find", "update"):
            self._wrap(monkeypatch, name)

    def _wrap(self, monkeypatch, name):
        real = getattr(SqliteLedger, name)
        calls = self.calls

        def spy(ledger, *args, **kwargs):
            caller = os.path.basename(sys._getframe(1).f_code.co_filename)  # pylint: disable=protected-access
            if caller in ("ledger_store.py", "ledger_sqlite.py") and name != "update":
                pass  # the store's own use of its methods (claimed_update's update is the engine's decision)
            elif name in ("get", "update"):
                keys = args[0] if args else kwargs.get("keys")
                calls.append((name, None if keys is None else len(keys)))
            elif name == "find":
                calls.append((name, tuple(sorted(key for key, value in kwargs.items() if value is not None))))
            else:
                calls.append((name, None))
            return real(ledger, *args, **kwargs)

        monkeypatch.setattr(SqliteLedger, name, spy)


def test_a_file_is_applied_chunk_by_chunk_and_a_rerun_changes_nothing(tmp_path, emu, monkeypatch):
    work = Workdir(tmp_path)
    numbers = _numbers()
    path = _csv(str(tmp_path / "numbers.csv"), numbers)
    spy = LedgerSpy(monkeypatch)
    progress = []
    result = ensure_from_options(module_options(emu, work, registrations_file=path), log=progress.append)
    engine = list(spy.calls)

    assert _held(emu) == numbers == _ledger_numbers(work)
    assert _calls(emu, "UpsertRegistration") == COUNT
    assert result["changed"] and not result.get("failed")
    assert result["summary"] == dict(created=COUNT, updated=0, unchanged=0, deleted=0, failed=0, not_sent=0)
    # The first RESULTS_LIMIT results, in file order with their lines; the rest only counted.
    assert len(result["results"]) == service.RESULTS_LIMIT and result["results_omitted"] == COUNT - 1000
    assert [(item["line"], item["phone_number"], item["result"]) for item in result["results"][:2]] == [
        (2, numbers[0], "created"), (3, numbers[1], "created")]
    assert result["registrations_file"] == path
    # Five chunks: each planned from its own keys, its decisions recorded before its calls and their answers
    # after them; the ledger is never read whole.
    chunks = [CHUNK] * (COUNT // CHUNK) + [COUNT % CHUNK]
    assert engine == [call for size in chunks for call in (("get", size), ("update", size), ("update", size))]
    assert len(progress) == 5 and progress[-1].startswith("registrations_file %s: %d steps done (created %d," % (
        path, COUNT, COUNT))

    # Again: the registrations are refreshed (the API has no read call), nothing changed, no result listed.
    del spy.calls[:]
    again = ensure_from_options(module_options(emu, work, registrations_file=path))
    engine = list(spy.calls)
    assert not again["changed"] and again["results"] == [] and again["results_omitted"] == 0
    assert again["summary"]["unchanged"] == COUNT
    assert _held(emu) == numbers == _ledger_numbers(work)
    assert _calls(emu, "UpsertRegistration") == 2 * COUNT
    assert [name for name, _size in engine] == ["get", "update", "update"] * len(chunks)


def test_a_bad_line_deep_inside_changes_nothing_and_is_named(tmp_path, emu):
    work = Workdir(tmp_path)
    numbers = _numbers()
    first = _csv(str(tmp_path / "first.csv"), numbers[:1000])
    ensure_from_options(module_options(emu, work, registrations_file=first))
    before = _observed(emu, work)

    # Lines 2 to 3001 are the numbers: a new route type for all, line 2501 insecure, and line 10 once more at the end.
    lines = ["%s,%s,fork," % (number, SIP_URI) for number in numbers]
    lines[2499] = "%s,sip:pbx.example.com,fork," % numbers[2499]
    path = _csv(str(tmp_path / "numbers.csv"), [], extra=lines + ["%s,%s,loop," % (numbers[8], SIP_URI)])
    for check_mode in (False, True):
        with pytest.raises(ValidationError) as refused:
            ensure_from_options(module_options(emu, work, registrations_file=path, purge=True), check_mode=check_mode)
        assert refused.value.option == "registrations_file"
        assert str(refused.value).split("\n") == [
            "registrations_file: %s has 2 problem(s); nothing was sent and the ledger is unchanged:" % path,
            "line 2501: %s: sip_uri: 'sip:pbx.example.com' is not secure SIP: the operator only accepts 'sips:' URIs "
            "(it answers 'Secure SIP domain name required'); use 'sips:pbx.example.com'" % numbers[2499],
            "line 3002: %s -> %s is on line 10 already; each registration may be declared once" % (
                numbers[8], SIP_URI)]
    # No call, no token request, the emulator and the ledger file as they were.
    assert _observed(emu, work) == before


def test_purge_from_a_file_and_its_guard(tmp_path, emu):
    work = Workdir(tmp_path)
    numbers = _numbers()
    ensure_from_options(module_options(emu, work, registrations_file=_csv(str(tmp_path / "all.csv"), numbers)))

    # JSON lines: 100 numbers dropped (purged), 50 new, one asked absent, one moved to fallback.
    kept = numbers[100:]
    items = [dict(phone_number=number, sip_uri=SIP_URI, route_type="loop") for number in kept[:-1]]
    items[5]["route_type"] = "fallback"
    items.append(dict(phone_number=kept[-1], sip_uri=SIP_URI, state="absent", route_type=None))
    items.extend(dict(phone_number=number, sip_uri=SIP_URI, route_type="loop") for number in _numbers(50, COUNT))
    path = _jsonl(str(tmp_path / "numbers.jsonl"), items)
    options = module_options(emu, work, registrations_file=path, purge=True)

    # Check and diff mode: predicted from the ledger, nothing sent.
    before = _observed(emu, work)
    predicted = ensure_from_options(options, check_mode=True, diff=True)
    assert _observed(emu, work) == before
    expected = dict(created=50, updated=1, unchanged=len(kept) - 2, deleted=101, failed=0, not_sent=0)
    assert predicted["summary"] == expected and predicted["msg"] == "check mode: nothing was sent"
    assert len(predicted["diff"]["before"]) == 1 + 101 and len(predicted["diff"]["after"]) == 50 + 1
    assert predicted["diff"]["after"]["%s -> %s" % (kept[5], SIP_URI)]["route_type"] == "fallback"

    applied = ensure_from_options(options)
    assert applied["summary"] == expected
    present = sorted(kept[:-1] + _numbers(50, COUNT))
    assert _held(emu) == present == _ledger_numbers(work)
    assert _calls(emu, "DeleteRegistration") == 101
    purged = [item for item in applied["results"] if item.get("purged")]
    assert sorted(item["phone_number"] for item in purged) == numbers[:100]
    assert all("line" not in item for item in purged)
    assert [item["line"] for item in applied["results"] if item["result"] == "updated"] == [6]

    # A file that names a tenth of them: refused before any call, in check mode too.
    before = _observed(emu, work)
    short = _csv(str(tmp_path / "short.csv"), present[:295])
    for check_mode in (False, True):
        with pytest.raises(ValidationError) as refused:
            ensure_from_options(module_options(emu, work, registrations_file=short, purge=True),
                                check_mode=check_mode)
        assert "purge would delete %d of the %d registrations" % (len(present) - 295, len(present)) \
            in str(refused.value)
    assert _observed(emu, work) == before


def test_fail_fast_stops_across_chunks_and_the_ledger_holds_what_was_applied(tmp_path, emu):
    work = Workdir(tmp_path)
    numbers = _numbers()
    path = _csv(str(tmp_path / "numbers.csv"), numbers)
    emu.faults(reject={numbers[1600]: "number not in service"})  # the third chunk
    result = ensure_from_options(module_options(emu, work, registrations_file=path, fail_fast=True, concurrency=8))
    summary = result["summary"]
    assert result["failed"] and summary["failed"] == 1
    assert summary["created"] + summary["failed"] + summary["not_sent"] == COUNT
    assert 2 * CHUNK <= summary["created"] < 3 * CHUNK and summary["not_sent"] > COUNT - 3 * CHUNK
    assert "First failure: line 1602: " in result["msg"] and "number not in service" in result["msg"]
    # Every chunk recorded what it applied, no more: the ledger and the emulator agree.
    assert _ledger_numbers(work) == _held(emu) and len(_held(emu)) == summary["created"]

    # Once the number is accepted again, the next run converges.
    emu.faults(clear=True)
    again = ensure_from_options(module_options(emu, work, registrations_file=path))
    assert again["summary"]["created"] == COUNT - summary["created"]
    assert _held(emu) == numbers == _ledger_numbers(work)


def test_adding_one_number_reads_only_its_own_entries(tmp_path, emu, monkeypatch):
    work = Workdir(tmp_path)
    ensure_from_options(module_options(emu, work, registrations_file=_csv(str(tmp_path / "all.csv"), _numbers(200))))
    other_uri = "sips:other.example.com:5061"
    spy = LedgerSpy(monkeypatch)
    result = ensure_from_options(module_options(emu, work, phone_number=_numbers(1)[0], sip_uri=other_uri,
                                                route_type="fork"))
    engine = list(spy.calls)
    # Planned from its own key, decided and recorded under it; the warning about the number's other registration
    # comes from a lookup by number.
    assert engine == [("get", 1), ("update", 1), ("update", 1), ("find", ("endpoint", "phone_number", "principal"))]
    assert result["changed"]
    assert len(result["warnings"]) == 1
    assert result["warnings"][0].startswith("%s is also registered at %s (ledger %s), live until " % (
        _numbers(1)[0], SIP_URI, work.ledger))
    assert ("+4793000000", other_uri) in set((reg["phone_number"], reg["sip_uri"]) for reg in emu.registrations())


def test_a_refresh_token_takes_over_the_previous_ones_registrations_from_a_file(tmp_path, emu):
    work = Workdir(tmp_path)
    number = "+4793999999"
    uris = ["sips:a.example.com", "sips:b.example.com"]
    first = emu.user_token(number, client_id=CLIENT_ID)
    path = _csv(str(tmp_path / "mine.csv"), [])
    with open(path, "a") as handle:
        handle.write("".join("%s,%s,loop,\n" % (number, uri) for uri in uris))
    user = dict(module_options(emu, work, registrations_file=path), refresh_token=first["refresh_token"])
    ensure_from_options(user)
    old = set(entry.principal for entry in SqliteLedger(work.ledger).read().values())
    assert len(old) == 1

    second = emu.user_token(number, client_id=CLIENT_ID)
    one = _csv(str(tmp_path / "one.csv"), [])
    with open(one, "a") as handle:
        handle.write("%s,%s,loop,\n" % (number, uris[0]))
    result = ensure_from_options(dict(user, registrations_file=one, refresh_token=second["refresh_token"],
                                      previous_principal=old.pop()))
    assert result["changed"] and result["summary"]["failed"] == 0
    assert [(item["sip_uri"], item.get("line")) for item in result["results"]] == [(uris[0], 2), (uris[1], None)]
    entries = SqliteLedger(work.ledger).read().values()
    assert sorted(entry.registration.sip_uri for entry in entries) == uris
    assert len(set(entry.principal for entry in entries)) == 1
    assert sorted(reg["sip_uri"] for reg in emu.registrations()) == uris


def test_a_missing_file_is_refused_before_anything(tmp_path, emu):
    work = Workdir(tmp_path)
    path = str(tmp_path / "missing.csv")
    before = emu.calls(limit=0)["token_requests"]
    with pytest.raises(ValidationError) as refused:
        ensure_from_options(module_options(emu, work, registrations_file=path, purge=True))
    assert str(refused.value) == "registrations_file: %s does not exist on this host" % path
    assert emu.calls(limit=0)["token_requests"] == before and not os.path.exists(work.ledger)


def _module(tmp_path, **args):
    """The registration module as Ansible starts it (``python -m MODULE ARGS.json``); its JSON result."""
    path = str(tmp_path / "args.json")
    with open(path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    run = subprocess.run([sys.executable, "-m", "ansible_collections.wgtwo.sipbreakout.plugins.modules.registration",
                          path], capture_output=True, text=True, timeout=60, check=False)
    return json.loads(run.stdout)


@pytest.mark.parametrize("args, message", [
    (dict(registrations=[dict(sip_uri=SIP_URI, route_type="loop")]),
     "parameters are mutually exclusive: registrations_file|registrations"),
    (dict(phone_number="+4799990000", sip_uri=SIP_URI), "parameters are mutually exclusive: "),
    (dict(registrations_file_format="xml"), "value of registrations_file_format must be one of: auto, csv, jsonl"),
])
def test_the_module_takes_a_file_alone(tmp_path, args, message):
    path = _csv(str(tmp_path / "numbers.csv"), _numbers(2))
    result = _module(tmp_path, registrations_file=path, ledger_path=str(tmp_path / "ledger.json"), **args)
    assert result["failed"] and message in result["msg"]


def test_the_module_purges_with_a_file_only_as_well(tmp_path):
    result = _module(tmp_path, purge=True, sip_uri=SIP_URI, ledger_path=str(tmp_path / "ledger.json"))
    assert result["failed"]
    assert result["msg"] == "purge is True but any of the following are missing: registrations, registrations_file"
