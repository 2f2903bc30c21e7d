# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The alerting rules of extensions/observability, checked and unit-tested by promtool against the series the
keepalive wrote in each scenario (scenarios.py), as node-exporter served them.

promtool's clock starts at 0 (1970): every ``*_timestamp_seconds`` sample is moved by the same amount, so that 0 is
the moment the scenario's first pass ended. Nothing else is changed. A scrape's sample stays until the next pass's
(the textfile collector serves the last file), so each snapshot's values repeat until the next one. Only the edge
rule is tested against series written here: no node-exporter with a systemd collector runs in these tests."""

import os
import re
import subprocess

import pytest
import yaml

from observability_files import ROOT, RULES

INTERVAL_MINUTES = 1
TEST_MINUTES = 80
# Where each snapshot of a scenario starts, in minutes (the next one replaces it).
STARTS = {"token": [0, 5]}
EDGE_INSTANCE = "edge:9100"


def _rules():
    with open(RULES) as handle:
        return dict((rule["alert"], rule) for group in yaml.safe_load(handle)["groups"] for rule in group["rules"])


def _series(name, labels):
    return "%s{%s}" % (name, ",".join('%s="%s"' % (key, value.replace("\\", "\\\\").replace('"', '\\"'))
                                      for key, value in sorted(labels.items())))


def input_series(taken, instance, starts=None):
    """promtool's input series of a scenario's snapshots: each value repeated from its snapshot's start minute
    until the next one's, timestamps moved so that 0 is the end of the first pass."""
    origin = taken[0].finished
    starts = starts or [0]
    assert len(starts) == len(taken)
    by_series = {}
    for index, snapshot in enumerate(taken):
        until = starts[index + 1] if index + 1 < len(taken) else TEST_MINUTES
        for name, labels, value in snapshot.keepalive_samples():
            if name.endswith("_timestamp_seconds") and value:
                value -= origin
            key = _series(name, dict(labels, instance=instance, job="node"))
            by_series.setdefault(key, []).append("%r+0x%d" % (value, until - starts[index] - 1))
    return [dict(series=key, values=" ".join(values)) for key, values in sorted(by_series.items())]


def _alert(rules, name, instance, **labels):
    """An expected alert: the rule's labels and annotations, for ``instance``, with the series' ``labels``."""
    rule = rules[name]
    annotations = dict((key, value.replace("{{ $labels.instance }}", instance))
                       for key, value in rule["annotations"].items())
    return dict(exp_labels=dict(rule["labels"], instance=instance, job="node", **labels),
                exp_annotations=annotations)


def _silent(*names_and_minutes):
    return [dict(eval_time="%dm" % minutes, alertname=name, exp_alerts=[]) for name, minutes in names_and_minutes]


def promtool_tests(snapshots, rules):
    """The unit tests of the rules: each scenario's alerts fire when they should, and not before."""
    tests = []
    healthy = "healthy:9100"
    tests.append(dict(interval="%dm" % INTERVAL_MINUTES, input_series=input_series(snapshots["healthy"], healthy),
                      alert_rule_test=_silent(*[(name, 14) for name in rules if name != "SipBreakoutEdgeDown"])
                      + [dict(eval_time="17m", alertname="SipBreakoutKeepaliveNotRunning",
                              exp_alerts=[_alert(rules, "SipBreakoutKeepaliveNotRunning", healthy)])]
                      # The last refresh left 3600 s: 10 minutes before the end, it is about to lapse.
                      + _silent(("SipBreakoutRegistrationsAboutToLapse", 49))
                      + [dict(eval_time="51m", alertname="SipBreakoutRegistrationsAboutToLapse",
                              exp_alerts=[_alert(rules, "SipBreakoutRegistrationsAboutToLapse", healthy)])]))
    failing = "failing:9100"
    tests.append(dict(interval="%dm" % INTERVAL_MINUTES, input_series=input_series(snapshots["failing"], failing),
                      alert_rule_test=_silent(("SipBreakoutRefreshFailing", 9), ("SipBreakoutRegistrationsLapsed", 9),
                                              ("SipBreakoutTokenEndpointFailing", 11),
                                              ("SipBreakoutRegistrationsNotRefreshed", 40),
                                              ("SipBreakoutKeepaliveNotRunning", 14))
                      + [dict(eval_time="11m", alertname="SipBreakoutRefreshFailing",
                              exp_alerts=[_alert(rules, "SipBreakoutRefreshFailing", failing)]),
                         dict(eval_time="11m", alertname="SipBreakoutRegistrationsLapsed",
                              exp_alerts=[_alert(rules, "SipBreakoutRegistrationsLapsed", failing, state="lapsed")])]))
    token = "token:9100"
    tests.append(dict(interval="%dm" % INTERVAL_MINUTES,
                      input_series=input_series(snapshots["token"], token, STARTS["token"]),
                      # Failed requests in the first pass only: the counter has not moved yet within the series.
                      alert_rule_test=_silent(("SipBreakoutTokenEndpointFailing", 4))
                      + [dict(eval_time="6m", alertname="SipBreakoutTokenEndpointFailing",
                              exp_alerts=[_alert(rules, "SipBreakoutTokenEndpointFailing", token, outcome="failed")])]
                      + _silent(("SipBreakoutTokenEndpointFailing", 25))))
    other = "not-refreshed:9100"
    tests.append(dict(interval="%dm" % INTERVAL_MINUTES,
                      input_series=input_series(snapshots["not_refreshed"], other),
                      alert_rule_test=_silent(("SipBreakoutRegistrationsNotRefreshed", 29),
                                              ("SipBreakoutRefreshFailing", 29))
                      + [dict(eval_time="31m", alertname="SipBreakoutRegistrationsNotRefreshed",
                              exp_alerts=[_alert(rules, "SipBreakoutRegistrationsNotRefreshed", other)])]))
    # Written here: Kamailio's unit active for 5 minutes, then not (node-exporter's systemd collector's series).
    unit = dict(name="kamailio.service", instance=EDGE_INSTANCE, job="node")
    tests.append(dict(interval="%dm" % INTERVAL_MINUTES, input_series=[
        dict(series=_series("node_systemd_unit_state", dict(unit, state="active")), values="1+0x4 0+0x10"),
        dict(series=_series("node_systemd_unit_state", dict(unit, state="failed")), values="0+0x4 1+0x10")],
        alert_rule_test=_silent(("SipBreakoutEdgeDown", 5)) + [dict(
            eval_time="7m", alertname="SipBreakoutEdgeDown", exp_alerts=[dict(
                exp_labels=dict(rules["SipBreakoutEdgeDown"]["labels"], name="kamailio.service", state="active",
                                instance=EDGE_INSTANCE, job="node"),
                exp_annotations=dict((key, value.replace("{{ $labels.instance }}", EDGE_INSTANCE))
                                     for key, value in rules["SipBreakoutEdgeDown"]["annotations"].items()))])]))
    return dict(rule_files=[RULES], evaluation_interval="%dm" % INTERVAL_MINUTES, tests=tests)


def _promtool_test(promtool, tmp_path, document):
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False,
                          timeout=120)


def test_the_rules_pass_promtools_check(promtool):
    run = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True, check=False)
    assert run.returncode == 0 and "SUCCESS: 7 rules found" in run.stdout, run.stdout + run.stderr


def test_the_keepalives_situations_raise_their_alerts(promtool, snapshots, tmp_path):
    # The scenarios are what they say, from the keepalive's own series.
    healthy = snapshots["healthy"][0]
    assert healthy.value("wgtwo_sipbreakout_registrations_live") == 3
    assert healthy.value("wgtwo_sipbreakout_registrations_by_route_type", route_type="fallback", state="live") == 1
    failing = snapshots["failing"][0]
    assert failing.value("wgtwo_sipbreakout_registrations_refresh_failing") == 2
    assert failing.value("wgtwo_sipbreakout_registrations", state="lapsed") == 1
    first, second = snapshots["token"]
    assert (first.value("wgtwo_sipbreakout_keepalive_token_requests_total", outcome="failed"),
            second.value("wgtwo_sipbreakout_keepalive_token_requests_total", outcome="failed")) == (1, 2)
    assert second.value("wgtwo_sipbreakout_keepalive_refreshes_total", outcome="not_sent") == 2
    assert snapshots["not_refreshed"][0].value("wgtwo_sipbreakout_registrations_not_refreshed") == 1

    run = _promtool_test(promtool, tmp_path, promtool_tests(snapshots, _rules()))
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


def test_promtool_fails_an_alert_that_does_not_fire(promtool, snapshots, tmp_path):
    # The same tests, expecting the keepalive that ran to have stopped 17 minutes before it did: they must fail.
    document = promtool_tests(snapshots, _rules())
    healthy = document["tests"][0]
    healthy["input_series"] = [dict(series, values=series["values"]) for series in healthy["input_series"]]
    for series in healthy["input_series"]:
        if series["series"].startswith("wgtwo_sipbreakout_keepalive_last_run_timestamp_seconds{"):
            series["values"] = re.sub(r"^(\S+)\+0x", lambda match: "%r+0x" % (float(match.group(1)) + 17 * 60),
                                      series["values"])
    run = _promtool_test(promtool, tmp_path, document)
    assert run.returncode != 0 and "SipBreakoutKeepaliveNotRunning" in run.stdout + run.stderr, run.stdout


def test_every_alert_has_a_runbook_on_the_troubleshooting_page():
    with open(os.path.join(ROOT, "docs", "troubleshooting.md")) as handle:
        headings = re.findall(r"^#+ (.+)$", handle.read(), re.M)
    anchors = set(re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-") for heading in headings)
    for name, rule in _rules().items():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("https://github.com/wgtwo/ansible-collection-sipbreakout/blob/main/docs/"
                              "troubleshooting.md#"), name
        assert url.rsplit("#", 1)[1] in anchors and url.rsplit("#", 1)[1] == name.lower(), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name


@pytest.mark.parametrize("name", sorted(_rules()))
def test_each_rule_reads_series_the_keepalive_writes(name, written_metrics):
    expr = _rules()[name]["expr"]
    used = set(re.findall(r"\b(wgtwo_sipbreakout_[a-z_]+|node_[a-z_]+)\b", expr))
    assert used, expr
    assert used - written_metrics <= {"node_systemd_unit_state"}, used - written_metrics
