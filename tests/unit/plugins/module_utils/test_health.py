# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""States of registrations, the report registration_info returns, and the Prometheus text format."""

import os
import re

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import health
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_entry import LedgerEntry
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration


def _entry(number, upserted_at=1000.0, ttl=3600.0, error=None):
    reg = Registration.create(phone_number=number, sip_uri="sips:pbx.example.com", route_type="loop")
    return LedgerEntry("api.example:443", "client:c1", reg, upserted_at=upserted_at, time_to_live=ttl,
                       last_error=error, last_attempt_at=upserted_at)


@pytest.mark.parametrize("now, error, within, state", [
    (1000.0 + 100, None, None, "live"),
    (1000.0 + 2399, None, None, "live"),
    (1000.0 + 2401, None, None, "expiring"),  # a third of the TTL left: the keepalive should have refreshed it
    (1000.0 + 100, None, 3600, "expiring"),
    (1000.0 + 100, "UNAVAILABLE", None, "error"),
    (1000.0 + 3600, None, None, "lapsed"),
    (1000.0 + 3600, "UNAVAILABLE", None, "lapsed"),
])
def test_classify(now, error, within, state):
    assert health.classify(_entry("+4799990001", error=error), now, expiring_within=within) == state


def test_an_entry_without_a_confirmed_upsert_is_lapsed():
    entry = _entry("+4799990001")
    entry.upserted_at = None
    assert health.classify(entry, 0.0) == "lapsed"
    assert health.describe(entry, 0.0)["last_result"] is None


def _ledger(tmp_path, entries):
    ledger = SqliteLedger(str(tmp_path / "ledger.json"))
    with ledger.update() as current:
        for entry in entries:
            current[entry.key] = entry
    return ledger


def test_summary_counts_failures_and_nearest_expiry(tmp_path):
    ledger = _ledger(tmp_path, [_entry("+4799990001"), _entry("+4799990002", upserted_at=500.0, error="boom"),
                                _entry("+4799990003", upserted_at=-5000.0)])
    summary = health.summarize(ledger, 2000.0)
    assert summary["states"] == {"live": 1, "expiring": 0, "lapsed": 1, "error": 1}
    assert summary["registrations_live"] == 2 and summary["registrations_total"] == 3
    assert summary["seconds_to_nearest_expiry"] == 2100.0
    assert summary["nearest_expiry"]["phone_number"] == "+4799990002"
    assert [(f["phone_number"], f["error"]) for f in summary["failures"]] == [("+4799990002", "boom")]
    assert summary["failures_total"] == 1


def test_failures_are_counted_all_and_listed_up_to_a_limit(tmp_path):
    ledger = _ledger(tmp_path, [_entry("+479999%04d" % number, error="boom %d" % number) for number in range(30)]
                     + [_entry("+4799980000")])
    summary = health.summarize(ledger, 2000.0, limit=5)
    assert summary["failures_total"] == 30
    assert [f["phone_number"] for f in summary["failures"]] == ["+479999%04d" % number for number in range(5)]
    assert health.summarize(ledger, 2000.0, limit=None)["failures_total"] == 30
    assert len(health.summarize(ledger, 2000.0, limit=None)["failures"]) == 30


# Both sides of every boundary of classify(): the database counts what classify() says, one entry at a time.
@pytest.mark.parametrize("within", [None, 0.0, 100.0, 3600.0])
@pytest.mark.parametrize("fraction", [1 / 3.0, 0.9])
def test_the_databases_counts_are_classifys(tmp_path, within, fraction):
    entries = []
    for index, (upserted_at, ttl, error) in enumerate([
            (1000.0, 3600.0, None), (1000.0, 3600.0, "boom"), (1000.0, 3600.0, ""), (-2600.0, 3600.0, None),
            (-2600.0, 3600.0, "boom"), (-1600.0, 3600.0, None), (-1601.0, 3600.0, None), (-1599.0, 3600.0, None),
            (None, 3600.0, None), (1000.0, None, None), (1999.0, 1.0, None), (1900.0, 200.0, None),
            (1950.0, 100.0, None), (-1000.0, 3099.5, None), (1000.0, 0.0, None)]):
        entry = _entry("+479999%04d" % index, upserted_at=upserted_at, ttl=ttl, error=error)
        entries.append(entry)
    ledger = _ledger(tmp_path, entries)
    for now in (1000.0, 2000.0, 2050.0, 4000.0):
        total, states, _nearest = ledger.states(now, fraction, within)
        expected = dict((state, 0) for state in health.STATES)
        for entry in entries:
            expected[health.classify(entry, now, within, fraction)] += 1
        assert total == len(entries) and states == expected, (now, states, expected)


def test_report_from_files_without_health_or_ledger(tmp_path):
    report = health.report_from_files(SqliteLedger(str(tmp_path / "none.json")), health_path=str(tmp_path / "h.json"),
                                      clock=lambda: 0.0)
    assert report["registrations"] == [] and report["keepalive"]["found"] is False
    assert report["keepalive"]["stale"] is True


def test_report_from_files_reads_the_keepalives_refresh_fraction(tmp_path):
    ledger = SqliteLedger(str(tmp_path / "ledger.json"))
    entry = _entry("+4799990001")
    with ledger.update() as entries:
        entries[entry.key] = entry
    health.HealthFile(str(tmp_path / "h.json")).write({"updated_at_epoch": 1990.0, "keepalive": {
        "refresh_fraction": 0.9}})
    report = health.report_from_files(ledger, health_path=str(tmp_path / "h.json"), clock=lambda: 2000.0)
    assert report["registrations"][0]["state"] == "expiring"  # 2600 s left < 90 % of 3600 s
    assert report["keepalive"]["age_seconds"] == 10.0 and report["keepalive"]["stale"] is False
    assert health.report_from_files(ledger, clock=lambda: 2000.0)["registrations"][0]["state"] == "live"


def test_metrics_text_format_and_atomic_world_readable_file(tmp_path):
    ledger = _ledger(tmp_path, [_entry("+4799990001"), _entry("+4799990002", error='say "no"\\')])
    summary = health.summarize(ledger, 2000.0)
    summary.update(last_run={"finished_at_epoch": 2000.0, "outcome": "failed", "refreshed": 1, "failed": 1})
    text = "\n".join(health.render_metrics(summary, ledger.find)) + "\n"
    sample = re.compile(r'^wgtwo_sipbreakout_[a-z_]+(\{[a-z_]+="([^"\\]|\\.)*"(,[a-z_]+="([^"\\]|\\.)*")*\})? '
                        r'[-+0-9.e]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    assert 'wgtwo_sipbreakout_registrations{state="error"} 1' in text
    assert "wgtwo_sipbreakout_keepalive_last_run_ok 0" in text
    assert "wgtwo_sipbreakout_registration_failures 1" in text
    assert 'wgtwo_sipbreakout_registration_refresh_failing{phone_number="+4799990002",' in text
    assert "phone_number" not in "\n".join(health.render_metrics(summary))

    path = tmp_path / "metrics" / "k.prom"
    path.parent.mkdir()
    health.write_textfile(str(path), health.render_metrics(summary, ledger.find))
    assert path.read_text() == text and (os.stat(str(path)).st_mode & 0o777) == 0o644
    assert os.listdir(str(path.parent)) == ["k.prom"]


def test_a_corrupt_health_file_is_replaced(tmp_path):
    path = tmp_path / "health.json"
    path.write_text("{half written")
    health.HealthFile(str(path)).write({"updated_at_epoch": 1.0})
    assert health.HealthFile(str(path)).read() == {"updated_at_epoch": 1.0}


def test_no_two_registrations_share_a_series(tmp_path):
    # The same number and URI applied at two endpoints and under two principals: four registrations in the ledger.
    entries = []
    for endpoint in ("api.example:443", "sandbox.example:443"):
        for principal in ("client:c1", "user:c1:0123456789ab"):
            entry = _entry("+4799990001")
            entry.endpoint, entry.principal = endpoint, principal
            entries.append(entry)
    ledger = _ledger(tmp_path, entries)
    text = "\n".join(health.render_metrics(health.summarize(ledger, 2000.0), ledger.find))
    series = [line.rpartition(" ")[0] for line in text.splitlines()
              if line.startswith("wgtwo_sipbreakout_registration_expiry_timestamp_seconds{")]
    assert len(series) == 4 and len(set(series)) == 4, series
