# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""States of registrations, the report registration_info returns, and the Prometheus text format."""

import os
import re

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import health
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import LedgerError, ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_entry import LedgerEntry, isoformat
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration_filter import RegistrationFilter
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.statefile import locked


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


def test_report_from_files_without_health_or_ledger(tmp_path):
    report = health.report_from_files(SqliteLedger(str(tmp_path / "none.json")), health_path=str(tmp_path / "h.json"),
                                      clock=lambda: 0.0)
    assert "registrations" not in report and report["keepalive"]["found"] is False
    assert report["keepalive"]["stale"] is True
    assert report["registrations_total"] == 0 and report["principals"] == [] and report["nearest_expiries"] == []
    assert report["orphans"] is None and report["orphans_total"] is None
    listed = health.report_from_files(SqliteLedger(str(tmp_path / "none.json")), listing=RegistrationFilter(),
                                      clock=lambda: 0.0)
    assert listed["registrations"] == [] and listed["registrations_matched"] == 0
    assert not os.path.exists(str(tmp_path / "none.json"))


def test_report_from_files_reads_the_keepalives_refresh_fraction(tmp_path):
    ledger = SqliteLedger(str(tmp_path / "ledger.json"))
    entry = _entry("+4799990001")
    with ledger.update() as entries:
        entries[entry.key] = entry
    health.HealthFile(str(tmp_path / "h.json")).write({"updated_at_epoch": 1990.0, "keepalive": {
        "refresh_fraction": 0.9}})
    report = health.report_from_files(ledger, health_path=str(tmp_path / "h.json"), clock=lambda: 2000.0,
                                      listing=RegistrationFilter())
    assert report["registrations"][0]["state"] == "expiring"  # 2600 s left < 90 % of 3600 s
    assert report["states"]["expiring"] == 1
    assert report["keepalive"]["age_seconds"] == 10.0 and report["keepalive"]["stale"] is False
    report = health.report_from_files(ledger, clock=lambda: 2000.0, listing=RegistrationFilter())
    assert report["registrations"][0]["state"] == "live"


def _owned(number, principal, upserted_at=1000.0, error=None, uri="sips:pbx.example.com"):
    reg = Registration.create(phone_number=number, sip_uri=uri, route_type="loop")
    return LedgerEntry("api.example:443", principal, reg, upserted_at=upserted_at, time_to_live=3600.0,
                       last_error=error, last_attempt_at=upserted_at)


def test_info_lists_only_on_request_filtered_and_limited(tmp_path):
    entries = [_owned("+47999%05d" % number, "client:c1", error="boom" if number % 4 == 0 else None)
               for number in range(40)]
    entries += [_owned("+47988%05d" % number, "client:old", upserted_at=-3000.0) for number in range(12)]
    ledger = _ledger(tmp_path, entries)
    health.HealthFile(str(tmp_path / "h.json")).write({"updated_at_epoch": 1990.0, "keepalive": {
        "api_endpoint": "api.example:443", "principal": "client:c1"}})

    def info(**options):
        return health.info_report(dict(dict(ledger_path=ledger.path, health_path=str(tmp_path / "h.json"),
                                            list=False, filter=None, limit=None), **options), clock=lambda: 2000.0)

    summary = info(limit=5)
    assert "registrations" not in summary and "registrations_matched" not in summary
    assert summary["states"] == {"live": 30, "expiring": 0, "lapsed": 12, "error": 10}
    assert summary["failures_total"] == 10 and len(summary["failures"]) == 5
    assert summary["orphans_total"] == 12 and len(summary["orphans"]) == 5
    assert all(item["principal"] == "client:old" for item in summary["orphans"])
    assert [item["phone_number"] for item in summary["nearest_expiries"]] == sorted(
        "+47999%05d" % number for number in range(40))[:health.NEAREST_SHOWN]

    listed = info(list=True, filter=dict(state=["live"], phone_number_prefix="+479990000"), limit=3)
    assert listed["registrations_matched"] == 7 and listed["registrations_omitted"] == 4  # 1..9 less 4 and 8
    assert [item["phone_number"] for item in listed["registrations"]] == ["+4799900001", "+4799900002",
                                                                          "+4799900003"]
    assert listed["filter"] == dict(states=["live"], phone_number_prefix="+479990000") and listed["limit"] == 3
    assert info(list=True)["registrations_matched"] == 52 and len(info(list=True)["registrations"]) == 52
    one = info(list=True, filter=dict(phone_number="+47 988 00011"))
    assert [item["principal"] for item in one["registrations"]] == ["client:old"]

    with pytest.raises(ValidationError) as refused:
        info(filter=dict(state=["error"]))
    assert refused.value.option == "filter" and "set list: true" in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        info(list=True, limit=0)
    assert refused.value.option == "limit"


def test_info_principals_are_counted_without_reading_every_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(health, "PHONE_NUMBERS_SHOWN", 3)
    entries = [_owned("+47999%05d" % number, "client:c1", upserted_at=1000.0 + number) for number in range(20)]
    # The principal with the fewest registrations holds the newest upsert of all.
    entries += [_owned("+47988%05d" % number, "user:c1:0123456789ab", upserted_at=-3000.0 + 5000 * number,
                       uri="sips:%d.example.com" % number) for number in range(2)]
    ledger = _ledger(tmp_path, entries)
    report = health.report_from_files(ledger, clock=lambda: 2000.0)
    assert [(p["principal"], p["registrations"], p["live"], p["phone_numbers"], p["last_upserted_at"],
             p["keepalive"]) for p in report["principals"]] == [
        ("client:c1", 20, 20, ["+4799900000", "+4799900001", "+4799900002"], isoformat(1019.0), None),
        ("user:c1:0123456789ab", 2, 1, ["+4798800000", "+4798800001"], isoformat(2000.0), None)]
    # No principal holds the newest upsert alone: the largest one's is read from its own entries.
    entries[0].upserted_at = 2000.0
    ledger = _ledger(tmp_path / "tie", entries)
    report = health.report_from_files(ledger, clock=lambda: 2000.0)
    assert report["principals"][0]["last_upserted_at"] == isoformat(2000.0)
    entries[0].upserted_at, entries[1].upserted_at = 1000.0, 2000.0
    report = health.report_from_files(_ledger(tmp_path / "second", entries[:20]), clock=lambda: 2000.0)
    assert report["principals"][0]["last_upserted_at"] == isoformat(2000.0)


def test_by_sip_host_keeps_the_largest_hosts_and_sums_the_rest(tmp_path):
    entries = []
    for host, count in (("a", 5), ("b", 3), ("c", 2), ("d", 1)):
        for number in range(count):
            entries.append(_owned("+4799%d%05d" % (ord(host), number), "client:c1",
                                  uri="sips:%s.example.com:%d" % (host, 5061 + number % 2)))
    ledger = _ledger(tmp_path, entries)
    groups = health.breakdown(ledger, 2000.0)
    assert dict((host, counts["live"]) for host, counts in health.by_sip_host(groups, shown=2).items()) == {
        "a.example.com": 5, "b.example.com": 3, health.OTHER_HOSTS: 3}
    assert sorted(health.by_sip_host(groups)) == ["a.example.com", "b.example.com", "c.example.com",
                                                  "d.example.com"]
    assert health.by_field(groups, "route_type") == {"loop": {"live": 11, "expiring": 0, "lapsed": 0, "error": 0}}


SAMPLE = re.compile(r'^wgtwo_sipbreakout_[a-z_]+(\{[a-z_]+="([^"\\]|\\.)*"(,[a-z_]+="([^"\\]|\\.)*")*\})? '
                    r'[-+0-9.e]+$')


def _report(ledger, now=2000.0, owner=("api.example:443", "client:c1")):
    summary = health.summarize(ledger, now, owner=owner)
    groups = health.breakdown(ledger, now)
    summary.update(by_route_type=health.by_field(groups, "route_type"), by_sip_host=health.by_sip_host(groups),
                   summarized_at_epoch=now)
    run = {"finished_at_epoch": now, "outcome": "failed", "refreshed": 1, "failed": 3, "not_sent": 1,
           "skipped": 1, "duration_seconds": 2.5}
    summary.update(last_run=run, counters=health.count_pass(
        health.count_pass(None, run, (1, 0)), dict(run, outcome="ok", failed=0, not_sent=0), (0, 2)))
    return summary


def test_metrics_text_format_and_atomic_world_readable_file(tmp_path):
    ledger = _ledger(tmp_path, [_entry("+4799990001"), _entry("+4799990002", error='say "no"\\')])
    report = _report(ledger)
    text = "\n".join(health.render_metrics(report, ledger.find)) + "\n"
    types = {}
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
        if line.startswith("# TYPE "):
            types[line.split()[2]] = line.split()[3]
    # Prometheus's conventions: counters end in _total, and nothing else does; seconds and timestamps say so.
    assert all(name.endswith("_total") == (kind == "counter") for name, kind in types.items()), types
    assert 'wgtwo_sipbreakout_registrations{state="error"} 1' in text
    assert "wgtwo_sipbreakout_keepalive_last_run_ok 0" in text
    assert "wgtwo_sipbreakout_keepalive_last_run_duration_seconds 2.5" in text
    assert "wgtwo_sipbreakout_registration_failures 1" in text
    assert "wgtwo_sipbreakout_registrations_refresh_failing 1" in text
    assert "wgtwo_sipbreakout_registrations_not_refreshed 0" in text
    # Counters add up over passes: 1 + 1 refreshed, 2 failed of their own, 1 not sent, 1 token fetched, 2 failed.
    for sample in ('keepalive_refreshes_total{outcome="ok"} 2', 'keepalive_refreshes_total{outcome="failed"} 2',
                   'keepalive_refreshes_total{outcome="not_sent"} 1', 'keepalive_passes_total{outcome="ok"} 1',
                   'keepalive_passes_total{outcome="failed"} 1', 'keepalive_token_requests_total{outcome="ok"} 1',
                   'keepalive_token_requests_total{outcome="failed"} 2',
                   'registrations_by_route_type{route_type="loop",state="live"} 1',
                   'registrations_by_sip_host{sip_host="pbx.example.com",state="error"} 1',
                   "nearest_expiry_timestamp_seconds 4600.0"):
        assert "wgtwo_sipbreakout_" + sample in text.splitlines(), sample
    assert 'wgtwo_sipbreakout_registration_refresh_failing{phone_number="+4799990002",' in text
    assert "phone_number" not in "\n".join(health.render_metrics(report))

    path = tmp_path / "metrics" / "k.prom"
    path.parent.mkdir()
    health.write_textfile(str(path), health.render_metrics(report, ledger.find))
    assert path.read_text() == text and (os.stat(str(path)).st_mode & 0o777) == 0o644
    assert os.listdir(str(path.parent)) == ["k.prom"]


def test_a_corrupt_health_file_is_replaced(tmp_path):
    path = tmp_path / "health.json"
    path.write_text("{half written")
    health.HealthFile(str(path)).write({"updated_at_epoch": 1.0})
    assert health.HealthFile(str(path)).read() == {"updated_at_epoch": 1.0}


def test_a_health_file_that_cannot_be_written_is_kept(tmp_path):
    # Only a corrupt file may go: a lock held too long (or any other error) leaves the last report readable.
    path = tmp_path / "health.json"
    health.HealthFile(str(path)).write({"updated_at_epoch": 1.0})
    with locked(str(path) + ".lock", 1.0):
        with pytest.raises(LedgerError) as caught:
            health.HealthFile(str(path), lock_timeout=0.2).write({"updated_at_epoch": 2.0})
    assert "stayed locked" in str(caught.value)
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


def test_the_aggregate_metrics_have_a_bound_whatever_the_ledger(tmp_path):
    entries = []
    for host in range(30):
        for index, route_type in enumerate((None, "loop", "fork", "fallback", "loop_mo", "loop_mt", "ingress")):
            reg = Registration("+47998%02d%03d" % (host, index), "sips:h%d.example.com:%d" % (host, 5061 + index % 2),
                               route_type, None, None)
            entries.append(LedgerEntry("api.example:443", "client:c1", reg, upserted_at=1000.0, time_to_live=3600.0))
    report = _report(_ledger(tmp_path, entries))
    samples = [line for line in health.render_metrics(report) if not line.startswith("#")]
    # 13 gauges, 9 counter series, 4 states, 4 states of 7 route types and of 20 hosts and the others.
    assert len(samples) == 14 + 9 + 4 + 4 * 7 + 4 * (health.SIP_HOSTS_SHOWN + 1) == 139
    assert 'wgtwo_sipbreakout_registrations_by_route_type{route_type="none",state="live"} 30' in samples
    assert 'wgtwo_sipbreakout_registrations_by_sip_host{sip_host="(other)",state="live"} 70' in samples
