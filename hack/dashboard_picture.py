# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The picture of the Grafana dashboard in docs/keepalive.md, drawn from a real run (not a Grafana screenshot).

    .venv/bin/python hack/dashboard_picture.py [--output docs/images/keepalive-dashboard.png] [--minutes 7]

Needs Debian's prometheus and prometheus-node-exporter (`make observability` installs them) and matplotlib
(`pip install matplotlib`; a docs tool, not a test dependency). It starts the emulator with a TTL of 120 s,
registers 60 numbers on three SIP hosts through the module's code (and one with other credentials), runs the
keepalive in loop mode with its metrics in node-exporter's textfile directory, has Prometheus scrape node-exporter
every 2 s, and meanwhile: a token endpoint that fails for a while (tokens revoked), then an API outage of 75 s.
Then it asks Prometheus for each panel's query of the dashboard (windows of 15m shortened to 1m for a run this
short) and draws the panels where the dashboard has them: stat panels show their last value.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(ROOT, "extensions", "observability", "grafana", "wgtwo_sipbreakout_dashboard.json")
TTL = 120
STEP = 2


def _collections(work):
    path = os.path.join(work, "collections")
    os.makedirs(os.path.join(path, "ansible_collections", "wgtwo"))
    os.symlink(ROOT, os.path.join(path, "ansible_collections", "wgtwo", "sipbreakout"))
    return path


def _query_range(url, expr, start, end):
    query = urllib.parse.urlencode(dict(query=expr, start=start, end=end, step=STEP))
    with urllib.request.urlopen("%s/api/v1/query_range?%s" % (url, query), timeout=30) as answer:
        data = json.load(answer)
    assert data["status"] == "success", data
    return data["data"]["result"]


def _start_prometheus(work, target, port):
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as handle:
        handle.write("global:\n  scrape_interval: %ds\n  evaluation_interval: %ds\nscrape_configs:\n"
                     "  - job_name: node\n    static_configs:\n      - targets: ['%s']\n"
                     "        labels: {instance: 'pbx1.example.com:9100'}\n" % (STEP, STEP, target))
    log = open(os.path.join(work, "prometheus.log"), "w")  # pylint: disable=consider-using-with
    process = subprocess.Popen(["prometheus", "--config.file=%s" % config,  # pylint: disable=consider-using-with
                                "--storage.tsdb.path=%s" % os.path.join(work, "tsdb"),
                                "--web.listen-address=127.0.0.1:%d" % port], stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    for _attempt in range(100):
        try:
            urllib.request.urlopen(url + "/-/ready", timeout=2).close()
            return process, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit("prometheus did not start; see %s" % log.name)


def run(work, minutes):
    """The run; returns (Prometheus URL, start, end, the Prometheus process)."""
    from sipbreakout_emulator.testing import running_emulator  # pylint: disable=import-outside-toplevel
    from keepalive_support import CLIENT_ID, CLIENT_SECRET, LoopProcess, Workdir, module_options, \
        write_config  # pylint: disable=import-outside-toplevel
    from scenarios import OTHER_CLIENT, _free_port, node_exporter  # pylint: disable=import-outside-toplevel
    from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import \
        ensure_from_options  # pylint: disable=import-outside-toplevel

    textfiles = os.path.join(work, "textfile")
    os.makedirs(textfiles)
    state = Workdir(os.path.join(work, "host"))
    state.metrics = os.path.join(textfiles, "wgtwo_sipbreakout.prom")
    with running_emulator(os.path.join(work, "emu"), clients=[(CLIENT_ID, CLIENT_SECRET), OTHER_CLIENT],
                          ttl=TTL) as emu, node_exporter(textfiles, os.path.join(work, "node-exporter.log")) as scrape:
        items = [dict(phone_number="+47999%05d" % index, sip_uri="sips:pbx%d.example.com:5061" % (index % 3),
                      route_type=("loop", "fork", "fallback")[index % 3 if index % 4 else 0]) for index in range(60)]
        ensure_from_options(dict(module_options(emu, state), registrations=items))
        ensure_from_options(module_options(emu, state, phone_number="+4798800001", sip_uri="sips:pbx0.example.com",
                                           route_type="loop", client_id=OTHER_CLIENT[0],
                                           client_secret=OTHER_CLIENT[1],
                                           token_cache_path=os.path.join(work, "other-cache", "tokens.json")))
        write_config(emu, state, max_sleep=10.0, retry_interval=10.0, timeout=2.0, retries=1)
        prometheus, url = _start_prometheus(work, urllib.parse.urlsplit(scrape.url).netloc, _free_port())
        keepalive = LoopProcess(state, "-q")
        start = time.time()
        try:
            _timeline(emu, start, minutes)
        finally:
            keepalive.stop()
        end = time.time()
    return url, start, end, prometheus


def _timeline(emu, start, minutes):
    def at(seconds):
        time.sleep(max(0.0, start + seconds - time.time()))

    at(100)
    emu.faults(token_unavailable=100000, revoke_tokens=True)  # every token is refused, and no new one comes
    at(170)
    emu.faults(clear=True)
    at(230)
    emu.faults(unavailable_for=75)  # the API is down for 75 s
    at(minutes * 60)


def draw(url, start, end, output):
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    with open(DASHBOARD) as handle:
        dashboard = json.load(handle)
    rows = max(panel["gridPos"]["y"] + panel["gridPos"]["h"] for panel in dashboard["panels"])
    figure = plt.figure(figsize=(16, rows * 0.5))
    grid = figure.add_gridspec(rows, 24, hspace=4.0, wspace=1.5)
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        axis = figure.add_subplot(grid[pos["y"]:pos["y"] + pos["h"], pos["x"]:pos["x"] + pos["w"]])
        axis.set_title(panel["title"], fontsize=9, loc="left")
        unit = panel["fieldConfig"]["defaults"].get("unit")
        for target in panel["targets"]:
            expr = target["expr"].replace("$instance", ".*").replace("[15m]", "[1m]")
            result = _query_range(url, expr, start, end)
            if panel["type"] == "stat":
                value = float(result[0]["values"][-1][1]) if result else None
                text = "no data" if value is None else ("%.0f s" % value if unit == "s" else "%g" % value)
                axis.text(0.5, 0.45, text, fontsize=20, ha="center", va="center", transform=axis.transAxes)
                axis.set_xticks([])
                axis.set_yticks([])
                continue
            legend = target.get("legendFormat", "")
            for series in result:
                label = legend
                for key, value in series["metric"].items():
                    label = label.replace("{{%s}}" % key, value)
                times = [(float(point[0]) - start) / 60 for point in series["values"]]
                axis.plot(times, [float(point[1]) for point in series["values"]], label=label or None, linewidth=1)
            if not result:
                axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
            axis.tick_params(labelsize=7)
            axis.set_xlabel("minutes into the run", fontsize=7, labelpad=1)
            if result and legend:
                axis.legend(fontsize=6, loc="upper left")
    figure.suptitle("wgtwo.sipbreakout keepalive dashboard: each panel's query answered by Prometheus 2.42 over a "
                    "%d-minute keepalive run against the emulator\n(TTL %d s; tokens refused from minute 1.7 to 2.8, "
                    "the API down from minute 3.8 to 5.0). Drawn with matplotlib, as lines; not a Grafana screenshot."
                    % (round((end - start) / 60), TTL), fontsize=10)
    figure.savefig(output, dpi=80, bbox_inches="tight")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "images", "keepalive-dashboard.png"))
    parser.add_argument("--minutes", type=float, default=7.0)
    options = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="sipbreakout-dashboard-")
    try:
        paths = [_collections(work), os.path.join(ROOT, "tests", "emulator"), os.path.join(ROOT, "tests", "functional"),
                 os.path.join(ROOT, "tests", "observability")]
        sys.path[:0] = paths
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)  # the keepalive's process
        url, start, end, prometheus = run(work, options.minutes)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(options.output)), exist_ok=True)
            draw(url, start, end, options.output)
        finally:
            prometheus.terminate()
            prometheus.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("wrote %s" % options.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
