# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The purge guard against the emulator at 3, 30 and 3,000 registrations, with the pbx role's defaults: a wiped or
truncated list is refused before any call (check and diff mode the same), one number less goes through, and so
does the largest share the guard allows, but not one more."""

import contextlib
import os
import sqlite3

import pytest
import yaml

from sipbreakout_emulator.testing import running_emulator

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options

from keepalive_support import CLIENT_ID, CLIENT_SECRET, SIP_URI, Workdir, module_options

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "pbx")
MODULE = os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "modules", "registration.py")

# After one number is gone: the most a purge may delete of what is left (size - 1), with the defaults.
LARGEST_ALLOWED = {3: 1, 30: 5, 3000: 599}


def _role_defaults():
    """sipbreakout_max_purge and sipbreakout_purge_allowance as the pbx role sets them, which must be the
    module's own defaults (argument_specs and the module docs say so)."""
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    with open(MODULE) as handle:
        module_doc = yaml.safe_load(handle.read().split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])["options"]
    for variable, option in (("sipbreakout_max_purge", "max_purge"), ("sipbreakout_purge_allowance",
                                                                      "purge_allowance")):
        assert defaults[variable] == specs[variable]["default"] == module_doc[option]["default"], variable
    return dict(max_purge=defaults["sipbreakout_max_purge"], purge_allowance=defaults["sipbreakout_purge_allowance"])


def _items(numbers):
    return [dict(phone_number=number, sip_uri=SIP_URI, route_type="loop") for number in numbers]


def _rows(path):
    """Every row of the ledger database, in key order: what it holds, whether in its file or still in its
    write-ahead log (the file's bytes alone say nothing of the latter)."""
    with contextlib.closing(sqlite3.connect("file:%s?mode=ro" % path, uri=True)) as conn:
        return conn.execute("SELECT * FROM registrations ORDER BY key").fetchall()


def _observed(emu, work):
    calls = emu.calls(limit=0)
    return (calls["total"], calls["token_requests"], sorted(reg["phone_number"] for reg in emu.registrations()),
            _rows(work.ledger))


def _deletes(emu):
    return emu.calls(limit=0)["by_method"].get("DeleteRegistration", {}).get("total", 0)


@pytest.mark.parametrize("size", sorted(LARGEST_ALLOWED))
def test_purge_guard_at_size(tmp_path, size):
    work = Workdir(tmp_path)
    limits = _role_defaults()
    numbers = ["+479%07d" % index for index in range(size)]
    with running_emulator(tmp_path / "emu", clients=[(CLIENT_ID, CLIENT_SECRET)]) as emu:
        options = dict(module_options(emu, work), purge=True, **limits)
        assert ensure_from_options(dict(options, registrations=_items(numbers)))["summary"]["created"] == size

        # Wiped and truncated lists: refused, the same way in check and diff mode, before any call or token request.
        before = _observed(emu, work)
        for listed, deleting, reason in (([], size, "and all of them, which purge_allowance never allows"),
                                         (numbers[:size // 3], size - size // 3, "and more than purge_allowance=1")):
            refusals = []
            for check_mode in (False, True):
                with pytest.raises(ValidationError) as refused:
                    ensure_from_options(dict(options, registrations=_items(listed)), check_mode=check_mode,
                                        diff=check_mode)
                refusals.append(str(refused.value))
            assert refusals[0] == refusals[1]
            assert ("purge would delete %d of the %d registrations" % (deleting, size)) in refusals[0]
            assert reason in refusals[0]
        assert _observed(emu, work) == before

        # One number less: check mode predicts it (sending nothing), then it goes through.
        predicted = ensure_from_options(dict(options, registrations=_items(numbers[1:])), check_mode=True,
                                        diff=True)
        assert predicted["summary"]["deleted"] == 1 and list(predicted["diff"]["before"]) == [
            "%s -> %s" % (numbers[0], SIP_URI)]
        assert _observed(emu, work) == before
        removed = ensure_from_options(dict(options, registrations=_items(numbers[1:])))
        assert removed["summary"]["deleted"] == 1
        assert sorted(reg["phone_number"] for reg in emu.registrations()) == numbers[1:]
        assert _deletes(emu) == 1

        # Of what is left, the largest purge the guard allows goes through; one more is refused and sends nothing.
        left = numbers[1:]
        largest = LARGEST_ALLOWED[size]
        with pytest.raises(ValidationError):
            ensure_from_options(dict(options, registrations=_items(left[largest + 1:])))
        assert _deletes(emu) == 1
        ensure_from_options(dict(options, registrations=_items(left[largest:])))
        assert sorted(reg["phone_number"] for reg in emu.registrations()) == left[largest:]
        assert _deletes(emu) == 1 + largest

        if size == 3:
            # A host down to its last number: an empty list does not take it, the allowance notwithstanding.
            with pytest.raises(ValidationError) as refused:
                ensure_from_options(dict(options, registrations=[]))
            assert "delete 1 of the 1 registrations" in str(refused.value)
            assert [reg["phone_number"] for reg in emu.registrations()] == numbers[2:]
