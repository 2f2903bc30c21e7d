# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Grafana dashboard of extensions/observability: valid JSON of Grafana's dashboard model, a data source chosen
by a variable (never a fixed one), panels on the 24-column grid, and queries that Prometheus's own parser accepts
(promtool, loading them as recording rules) and that read only series the keepalive wrote in the scenarios."""

import json
import re
import subprocess

import pytest
import yaml

from observability_files import DASHBOARD

# The one series the dashboard reads that the keepalive does not write: node-exporter's systemd collector's.
EXTERNAL = {"node_systemd_unit_state"}
PANEL_TYPES = {"stat", "timeseries"}
# What Grafana puts in place of its variables before the query reaches Prometheus.
VARIABLES = {"$instance": ".*", "$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def _dashboard():
    with open(DASHBOARD) as handle:
        return json.load(handle)


def _expressions(dashboard):
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel, target, target["expr"]


def _as_prometheus_sees_it(expr):
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def _check_as_rules(promtool, tmp_path, expressions):
    rules = [dict(record="dashboard:query_%d" % index, expr=expr) for index, expr in enumerate(expressions)]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(dict(groups=[dict(name="dashboard", rules=rules)])))
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)


def test_the_dashboard_follows_grafanas_model():
    dashboard = _dashboard()
    assert dashboard["title"] and re.match(r"^[a-zA-Z0-9_-]{1,40}$", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    variables = dict((variable["name"], variable) for variable in dashboard["templating"]["list"])
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 10
    cells = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES and panel["title"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        covered = set((x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                      for y in range(grid["y"], grid["y"] + grid["h"]))
        assert not covered & cells, "%s overlaps another panel" % panel["title"]
        cells |= covered
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip(), panel["title"]
    # No fixed data source anywhere: every "uid" is the variable.
    assert set(re.findall(r'"uid": "([^"]*)"', json.dumps(dashboard))) == {"${datasource}", dashboard["uid"]}


def test_every_query_parses(promtool, tmp_path):
    dashboard = _dashboard()
    expressions = [_as_prometheus_sees_it(expr) for _panel, _target, expr in _expressions(dashboard)]
    expressions.append(_as_prometheus_sees_it(
        re.sub(r"^label_values\((\w+), \w+\)$", r"\1", dashboard["templating"]["list"][1]["definition"])))
    run = _check_as_rules(promtool, tmp_path, expressions)
    assert run.returncode == 0 and "SUCCESS: %d rules found" % len(expressions) in run.stdout, run.stdout + run.stderr
    # The check can fail: an expression Prometheus cannot parse is refused.
    assert _check_as_rules(promtool, tmp_path, ["sum by (state wgtwo_sipbreakout_registrations"]).returncode != 0


@pytest.mark.parametrize("title", [panel["title"] for panel in _dashboard()["panels"]])
def test_every_panel_reads_series_the_keepalive_writes(title, written_metrics):
    panel = [panel for panel in _dashboard()["panels"] if panel["title"] == title][0]
    for target in panel["targets"]:
        used = set(re.findall(r"\b(wgtwo_sipbreakout_[a-z_]+|node_[a-z_]+)\b", target["expr"]))
        assert used and not used - written_metrics - EXTERNAL, (title, used - written_metrics)
