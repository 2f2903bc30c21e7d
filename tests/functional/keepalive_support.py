# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared by the keepalive tests: run the program as its own process, register through the module's code path,
and read what the emulator, the health file and the metrics say."""

import json
import os
import signal
import subprocess
import sys
import time

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import ensure_from_options

CLIENT_ID = "keepalive-client"
CLIENT_SECRET = "ka-Secret-Known-To-The-Test-8812"
SIP_URI = "sips:pbx.example.com:5061"

# The program exactly as the role's entry script runs it, against the collection under test.
KEEPALIVE = [sys.executable, "-c",
             "import sys; from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.keepalive import main; "
             "sys.exit(main())"]


class Workdir:
    """Paths of one test: ledger, health, metrics, token caches, config, logs."""

    def __init__(self, root):
        self.root = str(root)
        self.state = os.path.join(self.root, "state")
        self.ledger = os.path.join(self.state, "ledger.json")
        self.health = os.path.join(self.state, "health.json")
        self.tokens = os.path.join(self.state, "tokens.json")
        self.module_tokens = os.path.join(self.root, "module-cache", "tokens.json")
        self.metrics = os.path.join(self.root, "metrics", "wgtwo_sipbreakout.prom")
        self.config = os.path.join(self.root, "etc", "keepalive.json")
        self.logs = []
        os.makedirs(os.path.dirname(self.metrics), exist_ok=True)


def module_options(emu, work, **extra):
    """The shared options a play would give the registration module on this host."""
    options = dict(api_endpoint=emu.grpc_endpoint, ca_path=emu.ca_path, token_url=emu.token_url,
                   client_id=CLIENT_ID, client_secret=CLIENT_SECRET, ledger_path=work.ledger,
                   token_cache_path=work.module_tokens, timeout=5.0, retries=3)
    options.update(extra)
    return dict((key, value) for key, value in options.items() if value is not None)


def register(emu, work, numbers, route_type="loop", **extra):
    """Register ``numbers`` the way the registration module does (same service code, same ledger)."""
    results = []
    for number in numbers:
        options = module_options(emu, work, phone_number=number, sip_uri=SIP_URI, route_type=route_type,
                                 state="present", **extra)
        results.append(ensure_from_options(options))
    return results


def write_config(emu, work, **values):
    """The keepalive's config file (0600): the emulator's endpoint and client, the work paths, ``values``."""
    config = dict(api_endpoint=emu.grpc_endpoint, ca_path=emu.ca_path, token_url=emu.token_url,
                  client_id=CLIENT_ID, client_secret=CLIENT_SECRET, ledger_path=work.ledger,
                  health_path=work.health, metrics_path=work.metrics, token_cache_path=work.tokens)
    config.update(values)
    config = dict((key, value) for key, value in config.items() if value is not None)
    os.makedirs(os.path.dirname(work.config), exist_ok=True)
    fd = os.open(work.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle)
    return config


def _log_path(work):
    path = os.path.join(work.root, "keepalive-%d.log" % len(work.logs))
    work.logs.append(path)
    return path


def run_once(work, *args, timeout=60):
    """One ``--once`` pass; returns (exit status, what it logged)."""
    path = _log_path(work)
    with open(path, "w") as log:
        status = subprocess.run(KEEPALIVE + ["--config", work.config, "--once"] + list(args), stdout=log,
                                stderr=subprocess.STDOUT, timeout=timeout, check=False).returncode
    with open(path) as log:
        return status, log.read()


class LoopProcess:
    """The keepalive in loop mode, as a child process."""

    def __init__(self, work, *args):
        self.log_path = _log_path(work)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(KEEPALIVE + ["--config", work.config] + list(args), stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def stop(self, timeout=15):
        """SIGTERM, as systemd stops a service; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode

    def log(self):
        with open(self.log_path) as handle:
            return handle.read()


def held(emu):
    """The emulator's live registrations by number."""
    return dict((reg["phone_number"], reg) for reg in emu.registrations())


def read_health(work):
    with open(work.health) as handle:
        data = json.load(handle)
    assert data["format"] == "wgtwo.sipbreakout/keepalive-health"
    return data["body"]


def read_metrics(work):
    """The textfile's samples: ``{'name{labels}': value}``, with HELP/TYPE checked for every sample's metric."""
    samples = {}
    declared = set()
    with open(work.metrics) as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line.startswith("# TYPE "):
                declared.add(line.split()[2])
            elif line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                assert name.split("{")[0] in declared, line
                samples[name] = float(value)
    return samples


def wait_for(predicate, timeout, interval=0.1, message="condition"):
    """Poll ``predicate`` until it returns something true; that value, or AssertionError after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError("%s not reached within %g s" % (message, timeout))
        time.sleep(interval)
