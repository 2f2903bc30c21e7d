# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the keepalive really writes in the situations the alerts are for, as Prometheus would scrape it.

Each scenario registers numbers through the module's code, runs the keepalive program (``--once``) against the
emulator and scrapes node-exporter (Debian's, its textfile collector reading the keepalive's metrics file) after
each pass. The samples come out as node-exporter served them; nothing here writes a value of a keepalive series.
"""

import contextlib
import os
import re
import socket
import subprocess
import time
import urllib.request

from sipbreakout_emulator.testing import running_emulator

from keepalive_support import CLIENT_ID, CLIENT_SECRET, Workdir, register, run_once, write_config

NODE_EXPORTER = "prometheus-node-exporter"
OTHER_CLIENT = ("other-client", "other-Secret-Known-To-The-Test-2291")
SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """The samples of a text exposition: ``[(name, {label: value}, float)]``, in order."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = dict((key, value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                      for key, value in LABEL.findall(match.group("labels") or ""))
        samples.append((match.group("name"), labels, float(match.group("value"))))
    return samples


def _free_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def node_exporter(textfile_dir, log_path):
    """Debian's node-exporter with only its textfile collector, on a loopback port; yields a scrape function."""
    port = _free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen([NODE_EXPORTER, "--web.listen-address=127.0.0.1:%d" % port,  # pylint: disable=consider-using-with
                                    "--collector.disable-defaults", "--collector.textfile",
                                    "--collector.textfile.directory=%s" % textfile_dir],
                                   stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d/metrics" % port

    def scrape():
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.read().decode("utf-8")

    scrape.url = url
    try:
        end = time.monotonic() + 15
        while True:
            try:
                scrape()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > end:
                    with open(log_path) as log:
                        raise AssertionError("node-exporter did not start: %s" % log.read())
                time.sleep(0.1)
        yield scrape
    finally:
        process.terminate()
        process.wait(10)


class Snapshot:
    """One scrape after a keepalive pass: its samples, and when the pass finished (the scenario's time origin)."""

    def __init__(self, text):
        self.text = text
        self.samples = parse(text)
        errors = [value for name, _labels, value in self.samples if name == "node_textfile_scrape_error"]
        assert errors == [0.0], "node-exporter refused the keepalive's metrics file:\n%s" % text
        self.finished = self.value("wgtwo_sipbreakout_keepalive_last_run_timestamp_seconds")

    def value(self, name, **labels):
        found = [value for sample, sample_labels, value in self.samples
                 if sample == name and all(sample_labels.get(key) == want for key, want in labels.items())]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    def keepalive_samples(self):
        return [sample for sample in self.samples if sample[0].startswith("wgtwo_sipbreakout_")]


def _pass(work, scrape, *args):
    status, log = run_once(work, *args, timeout=120)
    return status, log, Snapshot(scrape())


def run_scenarios(root):
    """``{scenario: [Snapshot, ...]}`` for healthy, failing, token and not_refreshed (see the alerts' tests)."""
    root = str(root)
    textfiles = os.path.join(root, "textfile")
    os.makedirs(textfiles)
    snapshots = {}
    with running_emulator(os.path.join(root, "emu"), clients=[(CLIENT_ID, CLIENT_SECRET), OTHER_CLIENT],
                          ttl=3600) as emu, node_exporter(textfiles, os.path.join(root, "node-exporter.log")) as scrape:

        def workdir(name):
            work = Workdir(os.path.join(root, name))
            # One metrics file in node-exporter's directory, as on a host: each scenario writes it in turn.
            work.metrics = os.path.join(textfiles, "wgtwo_sipbreakout.prom")
            return work

        # Healthy: every registration refreshed and live, then the keepalive stops (its file stays as it was).
        work = workdir("healthy")
        register(emu, work, ["+4799970001", "+4799970002"], route_type="loop")
        register(emu, work, ["+4799970003"], route_type="fallback")
        write_config(emu, work)
        status, log, snapshot = _pass(work, scrape, "--force")
        assert status == 0, log
        snapshots["healthy"] = [snapshot]

        # Failing: the operator refuses two numbers, one of them lapsed meanwhile (a TTL of 1 s).
        work = workdir("failing")
        register(emu, work, ["+4799971001", "+4799971002"])
        emu.config(ttl=1)
        register(emu, work, ["+4799971003"])
        emu.config(ttl=3600)
        time.sleep(1.2)
        emu.faults(reject={"+4799971002": "Secure SIP domain name required",
                           "+4799971003": "Secure SIP domain name required"})
        write_config(emu, work)
        status, log, snapshot = _pass(work, scrape, "--force")
        assert status == 1, log
        snapshots["failing"] = [snapshot]
        emu.faults(clear=True)

        # Token: the token endpoint fails every request of two passes.
        work = workdir("token")
        register(emu, work, ["+4799972001"])
        write_config(emu, work, timeout=1.0, retries=1)
        emu.faults(token_unavailable=1000)
        snapshots["token"] = []
        for _attempt in range(2):
            status, log, snapshot = _pass(work, scrape, "--force")
            assert status == 1 and "cannot get an access token" in log, log
            snapshots["token"].append(snapshot)
        emu.faults(clear=True)

        # Not refreshed: the ledger also holds a registration applied with other credentials.
        work = workdir("not_refreshed")
        register(emu, work, ["+4799973001"])
        register(emu, work, ["+4799973002"], client_id=OTHER_CLIENT[0], client_secret=OTHER_CLIENT[1],
                 token_cache_path=os.path.join(work.root, "other-cache", "tokens.json"))
        write_config(emu, work)
        status, log, snapshot = _pass(work, scrape)
        assert status == 0, log
        snapshots["not_refreshed"] = [snapshot]
    return snapshots
