# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Leaves `make test`'s summary a line on whether the wire contract was checked against the operator's set."""

import os

import proto_contract

# hack/layers.sh prints every file of this folder under its summary.
NOTES_ENV = "SIPBREAKOUT_SUMMARY_NOTES"


def wire_contract_note(use):
    """The summary's line, or None when no test of this run needed the operator's descriptor set."""
    if use["skipped"]:
        return ("wire contract: NOT checked against the operator's descriptor set (%d tests skipped): %s"
                % (use["skipped"], proto_contract.HOW_TO_GET))
    if use["path"]:
        return "wire contract: checked against the operator's descriptor set %s" % use["path"]
    return None


def pytest_runtest_logreport(report):
    if report.skipped and proto_contract.SKIP_REASON in str(report.longrepr):
        proto_contract.reference_use["skipped"] += 1


def pytest_sessionfinish(session):
    notes = os.environ.get(NOTES_ENV)
    note = wire_contract_note(proto_contract.reference_use)
    if not notes or note is None:
        return
    os.makedirs(notes, exist_ok=True)
    with open(os.path.join(notes, "wire-contract.txt"), "w") as handle:
        handle.write(note + "\n")
