# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keepalive's config file, its schedule and one pass, with a fake API (the emulator tests are functional)."""

import json
import os
import time
import tracemalloc

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import keepalive
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ApiError, AuthError, \
    NotAcceptableError, ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_entry import LedgerEntry
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_sqlite import SqliteLedger
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration

ENDPOINT = "api.example:443"
PRINCIPAL = "client:c1"


def _write(path, data, mode=0o600):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(data if isinstance(data, str) else json.dumps(data))
    os.chmod(str(path), mode)


def test_config_defaults_and_checks(tmp_path):
    path = tmp_path / "keepalive.json"
    _write(path, {"client_id": "c1", "client_secret": "hidden-value", "metrics_path": "/m/k.prom"})
    settings = keepalive.load_config(str(path))
    assert settings.ledger_path is None  # ledger.default_ledger_path(), as the module's
    assert settings.token_cache_path == "/var/lib/wgtwo-sipbreakout/tokens.json"
    assert settings.refresh_fraction == pytest.approx(1 / 3.0)
    assert settings.connection_options()["client_secret"] == "hidden-value"

    os.chmod(str(path), 0o640)
    with pytest.raises(ValidationError) as caught:
        keepalive.load_config(str(path))
    assert "chmod 600" in str(caught.value) and "hidden-value" not in str(caught.value)


@pytest.mark.parametrize("data, option", [
    ({"ledger_pth": "/x"}, "ledger_pth"),
    ({"refresh_fraction": 1.5}, "refresh_fraction"),
    ({"refresh_fraction": 0.6, "jitter": 0.7}, "jitter"),
    ({"retries": 1.5}, "retries"),
    ({"timeout": "10"}, "timeout"),
    ({"client_secret": 12345}, "client_secret"),
    ({"metrics_per_registration": "yes"}, "metrics_per_registration"),
    ({"refresh_token": "r", "token_cache_path": None}, "token_cache_path"),
])
def test_config_refuses_bad_values_naming_the_key(data, option):
    with pytest.raises(ValidationError) as caught:
        keepalive.parse_config(data, "cfg.json")
    assert caught.value.option == option
    assert "12345" not in str(caught.value)


def test_a_null_setting_takes_its_default():
    settings = keepalive.parse_config({"jitter": None, "ledger_path": None, "concurrency": None}, "cfg.json")
    assert settings.jitter == 0.25 and settings.concurrency == keepalive.DEFAULT_CONCURRENCY
    assert settings.ledger_path is None


def test_invalid_json_is_reported_without_its_content(tmp_path):
    path = tmp_path / "keepalive.json"
    _write(path, '{"client_secret": "do-not-show" oops}')
    with pytest.raises(ValidationError) as caught:
        keepalive.load_config(str(path))
    assert "do-not-show" not in str(caught.value) and "not valid JSON" in str(caught.value)


class _Clock:
    def __init__(self, now=10000.0):
        self.now = now

    def __call__(self):
        return self.now


class _TokenSource:
    def __init__(self, error=None):
        self.error = error

    def token(self, deadline):
        if self.error:
            raise self.error
        return "token"


class _Client:
    def __init__(self, clock, errors=None, ttl=3600.0):
        self.clock = clock
        self.errors = errors or {}
        self.ttl = ttl
        self.calls = []

    def run(self, calls, concurrency=1, stop=None, on_done=None, clock=None):
        """SipBreakoutClient.run, one call at a time: the same contract, without a channel."""
        assert concurrency == keepalive.DEFAULT_CONCURRENCY
        for call in calls:
            if stop and stop():
                break
            if call.error is not None:  # refused before sending
                on_done(call)
                continue
            self.calls.append(call.registration.phone_number)
            call.sent_at = clock()
            call.error = self.errors.get(call.registration.phone_number)
            if call.error is None:
                call.ok, call.time_to_live = True, self.ttl
            self.clock.now += 0.5
            on_done(call)
        return concurrency


class _Connection:
    endpoint = ENDPOINT
    principal = PRINCIPAL
    timeout = 10.0

    def __init__(self, client, token_source=None):
        self.client = client
        self.token_source = token_source or _TokenSource()


def _setup(tmp_path, entries, errors=None, token_error=None, **config):
    clock = _Clock()
    settings = keepalive.parse_config(dict(dict(ledger_path=str(tmp_path / "ledger.json"),
                                                health_path=str(tmp_path / "health.json"),
                                                metrics_path=str(tmp_path / "k.prom")), **config))
    ledger = SqliteLedger(settings.ledger_path)
    with ledger.update() as current:
        for number, upserted_at, principal in entries:
            reg = Registration.create(phone_number=number, sip_uri="sips:pbx.example.com", route_type="loop")
            entry = LedgerEntry(ENDPOINT, principal, reg, upserted_at=upserted_at, time_to_live=3600.0,
                                last_attempt_at=upserted_at)
            current[entry.key] = entry
    client = _Client(clock, errors)
    runner = keepalive.Keepalive(settings, _Connection(client, _TokenSource(token_error)), clock=clock)
    return runner, client, ledger, clock


def test_schedule_refreshes_with_a_third_left_plus_stable_jitter(tmp_path):
    runner, _client, ledger, _clock = _setup(tmp_path, [("+4799990001", 10000.0, PRINCIPAL)])
    entry = list(ledger.read().values())[0]
    at = runner.refresh_at(entry)
    # A third of 3600 s left, up to a quarter of that earlier, the same on every call.
    assert 10000.0 + 3600 - 1500 <= at <= 10000.0 + 2400
    assert runner.refresh_at(entry) == at
    assert runner.next_attempt_at(entry, lookahead=300) == at - 300
    entry.last_error, entry.last_attempt_at = "boom", at + 5
    assert at + 5 + 60 <= runner.next_attempt_at(entry) <= at + 5 + 75  # retry_interval, with jitter


@pytest.mark.parametrize("batch_size", [1, 5000])
def test_a_pass_refreshes_only_what_is_due_and_reports(tmp_path, batch_size):
    runner, client, ledger, _clock = _setup(tmp_path, batch_size=batch_size, entries=[
        ("+4799990001", 10000.0 - 3000, PRINCIPAL),  # 600 s left: due
        ("+4799990002", 10000.0 - 10, PRINCIPAL),  # just refreshed
        ("+4799990003", 10000.0 - 3000, "client:other"),  # another principal: reported, never touched
    ])
    run = runner.run_pass()
    assert client.calls == ["+4799990001"]
    assert (run["outcome"], run["due"], run["refreshed"]) == ("ok", 1, 1)
    entries = dict((e.registration.phone_number, e) for e in ledger.read().values())
    assert entries["+4799990001"].upserted_at == 10000.0 and entries["+4799990001"].last_error is None
    assert entries["+4799990003"].upserted_at == 7000.0
    report = runner.health.read()
    assert [f["phone_number"] for f in report["failures"]] == ["+4799990003"]
    assert "client:other" in report["failures"][0]["error"]
    assert "wgtwo_sipbreakout_registration_failures 1" in open(str(tmp_path / "k.prom")).read()


@pytest.mark.parametrize("batch_size", [1, 2, 5000])
def test_rejections_are_kept_and_an_outage_stops_the_pass(tmp_path, batch_size):
    errors = {"+4799990001": NotAcceptableError("Secure SIP domain name required", "+4799990001"),
              "+4799990002": ApiError("UNAVAILABLE", "+4799990002", code="UNAVAILABLE", retryable=True)}
    runner, client, ledger, _clock = _setup(tmp_path, [
        ("+4799990001", 10000.0 - 3500, PRINCIPAL), ("+4799990002", 10000.0 - 3400, PRINCIPAL),
        ("+4799990003", 10000.0 - 3300, PRINCIPAL)], errors=errors, batch_size=batch_size)
    run = runner.run_pass()
    assert client.calls == ["+4799990001", "+4799990002"]  # the third waits for the API to come back
    assert (run["outcome"], run["failed"]) == ("failed", 3)
    entries = dict((e.registration.phone_number, e) for e in ledger.read().values())
    assert len(entries) == 3
    assert "Secure SIP domain name required" in entries["+4799990001"].last_error
    assert entries["+4799990003"].last_error.startswith("not attempted: ")
    assert runner.run_pass()["due"] == 0  # each waits for its retry interval now


def test_a_refused_token_fails_every_due_registration_without_calls(tmp_path):
    runner, client, ledger, _clock = _setup(tmp_path, [("+4799990001", 10000.0 - 3500, PRINCIPAL)],
                                            token_error=AuthError("the token endpoint refused client 'c1'"))
    assert runner.run_pass()["outcome"] == "failed"
    assert client.calls == []
    assert "refused" in list(ledger.read().values())[0].last_error


def test_force_refreshes_everything_and_the_loop_sleeps_until_the_next_is_due(tmp_path):
    runner, client, _ledger, clock = _setup(tmp_path, [("+4799990001", 10000.0 - 10, PRINCIPAL)])
    assert runner.run_pass(force=True)["refreshed"] == 1 and client.calls == ["+4799990001"]
    assert runner.seconds_to_next() == runner.settings.max_sleep  # next due in over 2000 s
    clock.now += 5000
    assert runner.seconds_to_next() == keepalive.MIN_SLEEP


def test_an_entry_that_cannot_be_sent_fails_alone_and_the_pass_goes_on(tmp_path):
    runner, client, ledger, _clock = _setup(tmp_path, [
        ("+4799990001", 10000.0 - 3500, PRINCIPAL), ("+4799990002", 10000.0 - 3400, PRINCIPAL)])
    with ledger.update() as current:  # a hand edit dropped the route type of one entry
        entry = next(e for e in current.values() if e.registration.phone_number == "+4799990001")
        entry.registration = entry.registration._replace(route_type=None)
    run = runner.run_pass()
    assert (run["refreshed"], run["failed"]) == (1, 1)
    assert client.calls == ["+4799990002"]
    entries = dict((e.registration.phone_number, e) for e in ledger.read().values())
    assert "route_type: is required to upsert" in entries["+4799990001"].last_error


def test_each_batch_is_recorded_before_the_next_is_sent(tmp_path):
    runner, client, ledger, clock = _setup(tmp_path, [("+47999900%02d" % number, 10000.0 - 3000 - number, PRINCIPAL)
                                                      for number in range(10)], batch_size=3)
    recorded = []
    run = client.run

    def run_and_look(calls, **kwargs):
        # What another process reads from the ledger when each batch starts: the earlier batches, refreshed.
        recorded.append(sum(1 for entry in SqliteLedger(ledger.path).find() if entry.upserted_at >= 10000.0))
        return run(calls, **kwargs)

    client.run = run_and_look
    assert runner.run_pass()["refreshed"] == 10
    assert recorded == [0, 3, 6, 9]
    # Most urgent first: the ones whose TTL runs out first were sent first.
    assert client.calls == ["+47999900%02d" % number for number in reversed(range(10))]
    assert clock.now > 10000.0


def test_the_loop_does_not_wake_for_what_it_cannot_refresh(tmp_path):
    runner, _client, ledger, _clock = _setup(tmp_path, [("+4799990001", 10000.0 - 3500, PRINCIPAL),
                                                        ("+4799990002", 10000.0 - 3500, PRINCIPAL)])
    with ledger.update() as current:
        for entry in current.values():
            if entry.registration.phone_number == "+4799990001":
                entry.delete_pending = True  # never refreshed: not a reason to wake
            else:
                entry.last_error, entry.last_attempt_at = "boom", 10000.0 - 1  # retried after retry_interval
    assert 60.0 - 1 <= runner.seconds_to_next() <= 75.0


class _QuietClient(_Client):
    """Answers every call OK and keeps nothing: what the pass itself holds is what is measured."""

    def run(self, calls, concurrency=1, stop=None, on_done=None, clock=None):
        for call in calls:
            call.sent_at = clock()
            call.ok, call.time_to_live = True, self.ttl
            on_done(call)
        return concurrency


def _peak_of_a_pass(tmp_path, count):
    clock = _Clock()
    settings = keepalive.parse_config(dict(ledger_path=str(tmp_path / "ledger.json"),
                                           health_path=str(tmp_path / "health.json"),
                                           metrics_path=str(tmp_path / "k.prom"), batch_size=50))
    ledger = SqliteLedger(settings.ledger_path)
    with ledger.update() as current:
        for number in range(count):
            reg = Registration.create(phone_number="+4798%07d" % number, sip_uri="sips:pbx.example.com",
                                      route_type="loop")
            entry = LedgerEntry(ENDPOINT, PRINCIPAL, reg, upserted_at=5000.0 + number * 0.01, time_to_live=3600.0,
                                last_error="boom" if number % 2 else None, last_attempt_at=5000.0)
            current[entry.key] = entry
    ledger.close()
    runner = keepalive.Keepalive(settings, _Connection(_QuietClient(clock)), clock=clock)
    tracemalloc.start()
    try:
        run = runner.run_pass(lookahead=300.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert run["refreshed"] == count  # all due: every one was sent, in batches of 50
    metrics = open(settings.metrics_path).read()
    assert "wgtwo_sipbreakout_registrations_live %d\n" % count in metrics
    assert "registration_expiry_timestamp_seconds{" not in metrics  # aggregate series only, by default
    assert runner.health.read()["failures_total"] == 0
    return peak


def test_the_memory_of_a_pass_does_not_grow_with_the_ledger(tmp_path):
    small = _peak_of_a_pass(tmp_path / "small", 1000)
    large = _peak_of_a_pass(tmp_path / "large", 10000)
    # Ten times the registrations: a pass that held them all would need about ten times the memory.
    assert large < small * 1.5, (small, large)


def _report_after(runner, clock, seconds=0.0, **kwargs):
    clock.now += seconds
    run = runner.run_pass(**kwargs)
    return run, runner.health.read()


def test_last_success_marks_a_pass_without_a_failed_refresh(tmp_path):
    runner, client, ledger, clock = _setup(tmp_path, [
        ("+4799990001", 10000.0 - 3000, PRINCIPAL),  # due
        ("+4799990002", 10000.0 - 3000, "client:other"),  # another principal's: reported, not refreshed
        ("+4799990003", 10000.0 - 100, PRINCIPAL)])
    with ledger.update() as current:
        pending = next(e for e in current.values() if e.registration.phone_number == "+4799990003")
        pending.delete_pending = True  # a delete that failed: reported, not refreshed
    run, report = _report_after(runner, clock)
    assert (run["outcome"], client.calls) == ("ok", ["+4799990001"])
    assert report["failures_total"] == 2 and report["not_refreshed_total"] == 2
    assert report["refresh_failing_total"] == 0 and len(report["warnings"]) == 2
    assert report["last_success_at_epoch"] == run["finished_at_epoch"]
    metrics = open(str(tmp_path / "k.prom")).read()
    assert "wgtwo_sipbreakout_keepalive_last_success_timestamp_seconds %r" % run["finished_at_epoch"] in metrics
    assert "wgtwo_sipbreakout_registrations_not_refreshed 2" in metrics
    succeeded = run["finished_at_epoch"]

    # A refresh of its own fails: no success, in that pass nor in the next ones while that registration is failing.
    client.errors["+4799990001"] = ApiError("UNAVAILABLE", "+4799990001", code="UNAVAILABLE", retryable=True)
    run, report = _report_after(runner, clock, 3000.0)
    assert run["outcome"] == "failed" and report["refresh_failing_total"] == 1
    assert report["last_success_at_epoch"] == succeeded
    run, report = _report_after(runner, clock, 1.0)
    assert (run["outcome"], run["due"]) == ("idle", 0)  # waiting for its retry: no failed refresh in this pass
    assert report["last_success_at_epoch"] == succeeded
    del client.errors["+4799990001"]
    run, report = _report_after(runner, clock, 120.0)
    assert run["outcome"] == "ok" and report["last_success_at_epoch"] == run["finished_at_epoch"]


def test_counters_persist_across_passes_and_processes(tmp_path):
    errors = {"+4799990002": NotAcceptableError("Secure SIP domain name required", "+4799990002")}
    runner, _client, _ledger, clock = _setup(tmp_path, [("+4799990001", 10000.0 - 3000, PRINCIPAL),
                                                        ("+4799990002", 10000.0 - 3000, PRINCIPAL)], errors=errors)
    runner.connection.token_source.tokens_fetched = 2
    _report_after(runner, clock)
    # A new process (a --once run) with a token source of its own.
    again = keepalive.Keepalive(runner.settings, _Connection(runner.connection.client, _TokenSource()), clock=clock)
    again.connection.token_source.token_failures = 1
    _run, report = _report_after(again, clock, 3000.0)
    assert report["counters"] == dict(passes=dict(ok=0, idle=0, failed=2),
                                      refreshes=dict(ok=2, failed=2, not_sent=0, skipped=0),
                                      token_requests=dict(ok=2, failed=1))
    metrics = open(str(tmp_path / "k.prom")).read()
    assert "# TYPE wgtwo_sipbreakout_keepalive_refreshes_total counter" in metrics
    assert 'wgtwo_sipbreakout_keepalive_refreshes_total{outcome="failed"} 2' in metrics


def test_an_outage_counts_what_was_not_sent(tmp_path):
    runner, _client, _ledger, clock = _setup(tmp_path, [("+4799990001", 10000.0 - 3000, PRINCIPAL),
                                                        ("+4799990002", 10000.0 - 3000, PRINCIPAL)],
                                             token_error=AuthError("the token endpoint refused client 'c1'"))
    run, report = _report_after(runner, clock)
    assert (run["failed"], run["not_sent"]) == (2, 2)
    assert report["counters"]["refreshes"] == dict(ok=0, failed=0, not_sent=2, skipped=0)


def test_per_registration_series_only_when_asked_and_below_the_bound(tmp_path, monkeypatch):
    entries = [("+479999%04d" % number, 10000.0 - 10, PRINCIPAL) for number in range(3)]
    runner, _client, _ledger, clock = _setup(tmp_path / "default", entries)
    assert runner.settings.metrics_per_registration is False
    _report_after(runner, clock)
    assert "phone_number=" not in open(str(tmp_path / "default" / "k.prom")).read()

    runner, _client, _ledger, clock = _setup(tmp_path / "asked", entries, metrics_per_registration=True)
    _run, report = _report_after(runner, clock)
    metrics = open(str(tmp_path / "asked" / "k.prom")).read()
    assert metrics.count("wgtwo_sipbreakout_registration_expiry_timestamp_seconds{") == 3
    assert report["warnings"] == []

    monkeypatch.setattr(keepalive, "METRICS_PER_REGISTRATION_LIMIT", 2)
    _run, report = _report_after(runner, clock, 1.0)
    metrics = open(str(tmp_path / "asked" / "k.prom")).read()
    assert "phone_number=" not in metrics and "wgtwo_sipbreakout_registrations_live 3" in metrics
    assert report["warnings"] == [
        "metrics_per_registration: the ledger holds 3 registrations, more than the 2 for which the metrics have one "
        "series per registration; only the aggregate series were written. Set metrics_per_registration to false "
        "(keepalive_metrics_per_registration), and use registration_info for single registrations"]


def test_the_loop_counts_the_whole_ledger_only_as_often_as_its_cost_allows(tmp_path, monkeypatch):
    runner, _client, ledger, clock = _setup(tmp_path, [("+4799990001", 10000.0 - 10, PRINCIPAL)])
    census = ledger.census
    taken = []

    def slow_census(*args, **kwargs):
        taken.append(clock.now)
        time.sleep(0.05)  # what counting a large ledger costs: real time, as the keepalive measures it
        return census(*args, **kwargs)

    monkeypatch.setattr(SqliteLedger, "census", lambda self, *args, **kwargs: slow_census(*args, **kwargs))
    for seconds in (0.0, 0.3, 0.3, 0.3):
        _report_after(runner, clock, seconds, mode="loop")
    assert len(taken) == 1  # taken again after about 20 times 0.05 s
    _run, report = _report_after(runner, clock, 2.0, mode="loop")
    assert len(taken) == 2 and report["summarized_at_epoch"] == clock.now
    _run, report = _report_after(runner, clock, 0.1, mode="loop")
    assert len(taken) == 2 and report["summarized_at_epoch"] == clock.now - 0.1
    assert report["updated_at_epoch"] == clock.now  # the health file itself is written by every pass
    _report_after(runner, clock, 0.1)  # --once: always
    assert len(taken) == 3
