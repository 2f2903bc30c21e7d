# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throughput of the registration module against the project's emulator, measured in one run (`make benchmark`).

    python hack/benchmark.py [--sizes 1000,10000] [--latency-ms 30] [--file-sizes 10000,100000] [--million]
                             [--no-postgresql] [--json FILE]

Starts one fresh emulator, then for each of ``--sizes``, once without and once with injected latency, measures:

raw client
    the limit: one process, one TLS channel, gRPC futures with --raw-in-flight calls in flight, messages from
    ``wire.messages()``; its rate counts only the calls (no start-up, no token request).
bulk task
    the registration module with ``registrations:`` as its own process, started the way Ansible's module
    protocol starts it (``python -m MODULE ARGS.json``); the whole process counts: imports, argument checks,
    token, calls, ledger update and result.
bulk re-run
    the same list again with nothing changed (it must report ``changed: false``); for the largest size also
    against an emptied emulator (the same server state as the first run) and the raw client against the full one.
bulk in ansible-playbook
    the same task in a one-task play, as a user runs it.
bulk in ansible-playbook, top-level defaults
    the same registrations, each item with its number only and ``sip_uri`` and ``route_type`` given once at the
    top level of the task (as a list of one PBX's numbers is written).
keepalive pass
    ``wgtwo-sipbreakout-keepalive --once --force`` over the ledger the bulk task wrote: every registration
    refreshed in one pass, as its own process.
sequential
    the bulk task with ``concurrency: 1``, on samples, scaled to the size (with latency only).
per-item loop
    ``loop:`` over the module, one number per task, in ansible-playbook, on samples, scaled to the size.

Then for each of ``--file-sizes`` (``--million`` adds 1,000,000), without latency, the rows of a large base:

raw client
    as above, for the same size.
file task
    the registration module with ``registrations_file:`` (a CSV file of that many lines) as its own process.
identical re-run
    the same file again: it must report ``changed: false``.
keepalive pass
    as above, over the file task's ledger, with its metrics file: the number of series and bytes it wrote.
registration_info
    the info module as its own process over that ledger and the pass's health file: the counts only (the default),
    then with ``list: true`` (the default limit of 1,000 registrations).
one number added
    the module with one ``phone_number`` as its own process, against the full ledger: the whole task.

The smallest file size is the baseline the others' cost per registration is compared with. Then, for each file
size, the rows of the PostgreSQL ledger store (``--no-postgresql`` leaves them out), on a scope of a new database of
the test PostgreSQL (``make postgresql``; tests/postgresql_support.py), with the database server's CPU time:

raw client
    again, minutes after the first, for the ratios of this section.
file task
    as above, into the empty scope.
keepalive pass, 1 worker
    every entry of the scope made due through the store, then ``--once`` (not ``--force``d) as its own process.
keepalive pass, 2 workers
    every entry made due again, then two such processes started together: each one's share (its health file's
    ``refreshed``), rate and peak RSS, and both together; their shares must add up to the scope.
one number added
    as above, to the full scope.

A scaled row comes from two samples of different sizes: their difference gives the per-item cost, the rest is
start-up, and the row is start-up + size x per-item cost. Wall time is the process's; CPU time (user + system)
and peak memory (ru_maxrss) come from ``wait4`` on it and include its children (ansible-playbook's workers and
modules). The emulator's CPU time during each run is read from /proc. Every run is checked at the emulator (what
it holds, by count and by a digest of the keys, and how often each was upserted), from the module's result, and by
the ledger's count through the collection's own store.
"""

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "ansible_collections.wgtwo.sipbreakout.plugins.modules.registration"
INFO_MODULE = "ansible_collections.wgtwo.sipbreakout.plugins.modules.registration_info"
KEEPALIVE = "ansible_collections.wgtwo.sipbreakout.plugins.module_utils.keepalive"
CLIENT_ID = "benchmark-client"
SIP_URI = "sips:pbx.example.com:5061"
TARGETS = {"bulk_vs_raw": 0.5, "bulk_vs_loop": 400.0, "bulk_vs_sequential": 50.0, "play_defaults_vs_raw": 0.65,
           # The large base (issue 12): stated for 1,000,000 registrations, shown at every file size.
           "file_vs_raw": 0.6, "file_rss_mb": 400.0, "add_one_s": 1.0, "keepalive_rss_mb": 200.0,
           "keepalive_vs_raw": 0.6, "cost_vs_baseline": 1.5,
           # Issue 19, stated for 1,000,000: registration_info's summary, and the keepalive's metrics file.
           "info_rss_mb": 100.0, "info_s": 2.0, "metrics_series": 200}
MILLION = 1000000
# The keepalive workers that split a pass over a PostgreSQL scope.
WORKER_NAMES = ("a", "b")
# The PostgreSQL rows' scope, in a database of their own.
SCOPE = "benchmark"

LOOP_PLAY = """
- name: One task per number
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Register one number
      wgtwo.sipbreakout.registration:
        phone_number: "{{ item.phone_number }}"
        sip_uri: "{{ item.sip_uri }}"
        route_type: "{{ item.route_type }}"
        api_endpoint: "{{ connection.api_endpoint }}"
        ca_path: "{{ connection.ca_path }}"
        token_url: "{{ connection.token_url }}"
        client_id: "{{ connection.client_id }}"
        client_secret: "{{ connection.client_secret }}"
        ledger_path: "{{ connection.ledger_path }}"
        token_cache_path: "{{ connection.token_cache_path }}"
      loop: "{{ registrations }}"
"""

# The bulk task in a play, with room for more options (%s).
_BULK_PLAY_WITH = """
- name: One task for every number
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Register the numbers
      wgtwo.sipbreakout.registration:
        registrations: "{{ registrations }}"%s
        api_endpoint: "{{ connection.api_endpoint }}"
        ca_path: "{{ connection.ca_path }}"
        token_url: "{{ connection.token_url }}"
        client_id: "{{ connection.client_id }}"
        client_secret: "{{ connection.client_secret }}"
        ledger_path: "{{ connection.ledger_path }}"
        token_cache_path: "{{ connection.token_cache_path }}"
        concurrency: "{{ concurrency }}"
"""
# The same task with what the numbers share given once, at the top level: the items hold their number only.
BULK_PLAY = _BULK_PLAY_WITH % ""
DEFAULTS_PLAY = _BULK_PLAY_WITH % """
        sip_uri: "{{ sip_uri }}"
        route_type: loop"""


class BenchmarkError(Exception):
    """A measured run did not do what it was asked; its numbers would mean nothing."""


def phone_number(index):
    return "+4791%08d" % index


def registration_rows(count, first=0):
    """``count`` distinct registrations, one at a time; ``first`` keeps the numbers of different runs apart."""
    for index in range(first, first + count):
        yield {"phone_number": phone_number(index), "sip_uri": SIP_URI, "route_type": "loop"}


def registrations(count, first=0):
    return list(registration_rows(count, first))


def write_registrations_file(path, count):
    """A CSV registrations file of ``count`` lines, as registrations(count) holds them."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("phone_number,sip_uri,route_type\n")
        for reg in registration_rows(count):
            handle.write("%(phone_number)s,%(sip_uri)s,%(route_type)s\n" % reg)


def ledger_options(ledger):
    """The module's ledger options for ``ledger``: the path of an SQLite ledger, or already a dict of options (a
    PostgreSQL scope)."""
    return dict(ledger) if isinstance(ledger, dict) else {"ledger_path": ledger}


def ledger_rows(ledger):
    """How many entries ``ledger`` (as ledger_options() takes it) holds, read through the collection's own store."""
    from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger import open_ledger  # pylint: disable=import-outside-toplevel

    with open_ledger(ledger_options(ledger)) as store:
        return store.count()


def make_due(ledger, seconds_ago=3300.0):
    """As if every entry of ``ledger`` (as ledger_options() takes it) had last been upserted ``seconds_ago`` (of the
    emulator's 3600 s): every one is due, and once a worker has refreshed one it is not due again for an hour, so
    workers that start at slightly different times still split the pass (``--force`` would refresh everything not
    tried since each one's own start). Written through the store, 10,000 entries per transaction."""
    from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger import open_ledger  # pylint: disable=import-outside-toplevel

    then = time.time() - seconds_ago
    with open_ledger(ledger_options(ledger)) as store:
        keys = []
        for entry in itertools.chain(store.find(), [None]):
            if entry is not None:
                keys.append(entry.key)
            if keys and (entry is None or len(keys) >= 10000):
                with store.update(keys) as entries:
                    for found in entries.values():
                        found.upserted_at = found.last_attempt_at = then
                keys = []


def upserted_once_more(by_upserts):
    """The emulator's ``by_upserts`` once every registration it holds was upserted once more."""
    return dict((str(int(upserts) + 1), count) for upserts, count in by_upserts.items())


def process_cpu(pid):
    """User + system CPU seconds of process ``pid`` so far (its threads included), from /proc."""
    with open("/proc/%d/stat" % pid, "r", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def server_cpu(pid):
    """User + system CPU seconds so far of a server process ``pid`` and its children (PostgreSQL's postmaster: a
    backend per connection, ended with it): its own, its ended children's, and its live children's, from /proc."""
    ticks = float(os.sysconf("SC_CLK_TCK"))
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "r", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: its time is in its parent's children's time
        if int(name) == pid:
            total += sum(int(value) for value in fields[11:15]) / ticks
        elif int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def postmaster_pid(server):
    """The pid of the test PostgreSQL ``server``'s postmaster (the first line of its postmaster.pid)."""
    with open(os.path.join(server.data_dir, "postmaster.pid"), "r", encoding="ascii") as handle:
        return int(handle.readline())


def process_peak_rss_mb(pid):
    """Peak resident memory (VmHWM) of process ``pid`` so far, in MB."""
    with open("/proc/%d/status" % pid, "r", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def write_private(path, data):
    """JSON to a new 0600 file (it holds the client secret or a token)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)


class Measured:
    """One process's wall time, CPU time (user + system, children included) and peak RSS."""

    def __init__(self, wall, cpu, max_rss_kb, stdout, stderr, returncode):
        self.wall = wall
        self.cpu = cpu
        self.max_rss_mb = max_rss_kb / 1024.0
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode
        self.emu_cpu = None  # CPU seconds the emulator spent meanwhile
        self.db_cpu = None  # and the database server, when there is one


class Launcher:
    """A small process that starts and waits for the measured ones.

    Linux carries a process's peak RSS across fork and exec, so a child of this (growing) process would report at
    least this process's size as its peak; children of the launcher, which stays small, report their own.
    """

    def __init__(self, env):
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with  # closed by close()
            [sys.executable, os.path.abspath(__file__), "--launcher"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env)

    def measure(self, argv, env, work, stdin_path=None):
        """Run ``argv`` in ``work`` to its end; its stdout and stderr are kept there."""
        return self.measure_together([(argv, work)], env, stdin_path)[0]

    def measure_together(self, runs, env, stdin_path=None):
        """Start every ``(argv, work)`` of ``runs`` at once and run them to their ends; a Measured for each, its
        wall time from the common start to its own end."""
        jobs = [{"argv": argv, "env": env, "cwd": work, "stdin": stdin_path, "stdout": os.path.join(work, "stdout"),
                 "stderr": os.path.join(work, "stderr")} for argv, work in runs]
        self.process.stdin.write((json.dumps(jobs) + "\n").encode("utf-8"))
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise BenchmarkError("the launcher died")
        measured = []
        for job, done in zip(jobs, json.loads(line.decode("utf-8"))):
            with open(job["stdout"], "rb") as out, open(job["stderr"], "rb") as err:
                stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
            measured.append(Measured(done["wall"], done["cpu"], done["max_rss_kb"], stdout, stderr,
                                     done["returncode"]))
        return measured

    def close(self):
        self.process.stdin.close()
        self.process.wait(30)


def launcher():
    """``--launcher``: a JSON list of jobs per line on stdin, started together; per line on stdout, each one's wall
    time, CPU time and peak RSS from wait4, in the same order."""
    for line in sys.stdin:
        jobs = json.loads(line)
        with contextlib.ExitStack() as files:
            started = time.monotonic()
            running = {}
            for index, job in enumerate(jobs):
                stdin = files.enter_context(open(job["stdin"] or os.devnull, "rb"))
                out = files.enter_context(open(job["stdout"], "wb"))
                err = files.enter_context(open(job["stderr"], "wb"))
                process = subprocess.Popen(job["argv"], stdin=stdin, stdout=out, stderr=err,  # pylint: disable=consider-using-with
                                           env=job["env"], cwd=job["cwd"])
                running[process.pid] = (index, process)
            done = [None] * len(jobs)
            while running:
                # Whichever ends first, so that each one's wall time is its own.
                pid, status, usage = os.wait4(-1, 0)
                if pid not in running:
                    continue
                index, process = running.pop(pid)
                process.returncode = os.waitstatus_to_exitcode(status)
                done[index] = {"wall": time.monotonic() - started, "cpu": usage.ru_utime + usage.ru_stime,
                               "max_rss_kb": usage.ru_maxrss, "returncode": process.returncode}
        sys.stdout.write(json.dumps(done) + "\n")
        sys.stdout.flush()
    return 0


class Bench:
    """The emulator, the paths and the environment every measured process shares."""

    def __init__(self, emu, work, collections, launcher_process, options):
        self.emu = emu
        self.work = work
        self.launcher = launcher_process
        self.options = options
        self.python = sys.executable
        self.token_cache = os.path.join(work, "cache", "tokens.json")
        self.secret = emu.clients[0]["client_secret"]
        self.database_pid = None  # the PostgreSQL server's, while the rows use it
        self.runs = 0
        self.most_held = 0
        self._digests = {}
        self.env = dict(os.environ, PYTHONPATH=collections, ANSIBLE_COLLECTIONS_PATH=collections,
                        ANSIBLE_LOCAL_TEMP=os.path.join(work, "ansible-tmp"),
                        ANSIBLE_REMOTE_TEMP=os.path.join(work, "ansible-remote-tmp"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_PYTHON_INTERPRETER=self.python, ANSIBLE_HOST_KEY_CHECKING="0",
                        ANSIBLE_DEPRECATION_WARNINGS="0")

    def fresh(self, latency_ms):
        """An empty emulator (registrations and counters) with ``latency_ms`` per call."""
        self.emu.reset()
        if latency_ms:
            self.emu.faults(latency_ms=latency_ms)

    def run_dir(self, name):
        self.runs += 1
        path = os.path.join(self.work, "%02d-%s" % (self.runs, name))
        os.makedirs(path)
        return path

    def measure(self, argv, work, stdin_path=None):
        """``argv`` run to its end by the launcher, with the emulator's CPU time meanwhile."""
        return self.measure_together([(argv, work)], stdin_path)[0]

    def measure_together(self, runs, stdin_path=None):
        """Every ``(argv, work)`` of ``runs`` started at once by the launcher and run to its end; each Measured
        carries the emulator's CPU time during the whole group, and the database server's when one is used."""
        database = self.database_pid
        before = process_cpu(self.emu.pid), server_cpu(database) if database else None
        results = self.launcher.measure_together(runs, self.env, stdin_path)
        emu_cpu = process_cpu(self.emu.pid) - before[0]
        db_cpu = server_cpu(database) - before[1] if database else None
        for result in results:
            result.emu_cpu, result.db_cpu = emu_cpu, db_cpu
        return results

    def connection(self, ledger):
        """The connection options, and the ledger's: ``ledger`` is an SQLite ledger's path or a dict of ledger
        options (ledger_options())."""
        return dict({"api_endpoint": self.emu.grpc_endpoint, "ca_path": self.emu.ca_path,
                     "token_url": self.emu.token_url, "client_id": CLIENT_ID, "client_secret": self.secret,
                     "token_cache_path": self.token_cache}, **ledger_options(ledger))

    def held(self):
        return self.emu.registrations_summary()["count"]

    def upserts(self):
        return self.emu.calls(limit=0)["by_method"].get("UpsertRegistration", {}).get("total", 0)

    def digest(self, count):
        """The emulator's keys_sha256 when it holds exactly registrations(count)."""
        from sipbreakout_emulator.testing import registrations_digest  # pylint: disable=import-outside-toplevel

        if count not in self._digests:
            self._digests[count] = registrations_digest(
                (reg["phone_number"], reg["sip_uri"]) for reg in registration_rows(count))
        return self._digests[count]

    def check_emulator(self, name, count, by_upserts, upserts_before, sent):
        """The emulator holds exactly registrations(count), upserted as often as ``by_upserts`` says, and received
        ``sent`` upserts since ``upserts_before``; else BenchmarkError."""
        summary = self.emu.registrations_summary()
        received = self.upserts() - upserts_before
        self.most_held = max(self.most_held, summary["count"])
        if summary["count"] != count or summary["keys_sha256"] != self.digest(count) \
                or summary["by_upserts"] != by_upserts or received != sent:
            raise BenchmarkError("%s: the emulator holds %d registrations (%s the %d expected), upserted %s times "
                                 "(expected %s), and received %d upserts, not %d" % (
                                     name, summary["count"],
                                     "exactly" if summary["keys_sha256"] == self.digest(count) else "not",
                                     count, summary["by_upserts"], by_upserts, received, sent))
        return summary

    # ------------------------------------------------------------------ the measured runs

    def raw(self, count):
        """The raw client: futures on one channel, ``--raw-in-flight`` in flight."""
        work = self.run_dir("raw-%d" % count)
        token = self.emu.client_token(CLIENT_ID, self.secret)["access_token"]
        job_path = os.path.join(work, "job.json")
        write_private(job_path, {"endpoint": self.emu.grpc_endpoint, "ca_path": self.emu.ca_path, "token": token,
                                 "count": count, "in_flight": self.options.raw_in_flight})
        before = self.emu.registrations_summary()["by_upserts"]
        upserts = self.upserts()
        result = self.measure([self.python, os.path.abspath(__file__), "--raw-worker"], work, job_path)
        if result.returncode != 0:
            raise BenchmarkError("raw client failed: %s" % result.stderr[-2000:])
        answer = json.loads(result.stdout)
        if answer["ok"] != count:
            raise BenchmarkError("raw client: %d of %d OK" % (answer["ok"], count))
        self.check_emulator("raw client", count, upserted_once_more(before) or {"1": count}, upserts, count)
        return dict(result=result, calls_wall=answer["calls_wall"])

    def module(self, args, ledger, name):
        """The module as its own process with ``args`` and the connection options; its parsed result."""
        work = self.run_dir(name)
        args_path = os.path.join(work, "args.json")
        write_private(args_path, {"ANSIBLE_MODULE_ARGS": dict(self.connection(ledger), **args)})
        result = self.measure([self.python, "-m", MODULE, args_path], work)
        try:
            output = json.loads(result.stdout)
        except ValueError:
            raise BenchmarkError("%s: no module result: %s" % (name, result.stderr[-2000:])) from None
        if output.get("failed"):
            raise BenchmarkError("%s failed: %s" % (name, output.get("msg")))
        return result, output

    def bulk(self, count, ledger, concurrency=None, expect="created"):
        args = dict(registrations=registrations(count), concurrency=concurrency or self.options.concurrency)
        return self._many(args, count, ledger, "bulk-%d" % count, expect)

    def file_task(self, path, count, ledger, expect="created"):
        """The module with ``registrations_file: path`` (registrations(count)); checked like bulk()."""
        return self._many(dict(registrations_file=path, concurrency=self.options.concurrency), count, ledger,
                          "file-%d" % count, expect)

    def _many(self, args, count, ledger, name, expect):
        """A run of ``count`` registrations: ``expect`` is what each must be (created, or unchanged in a re-run);
        every one must have been upserted once (more) at the emulator, and be in the ledger."""
        before = self.emu.registrations_summary()["by_upserts"]
        upserts = self.upserts()
        result, output = self.module(args, ledger, name)
        if output["summary"][expect] != count or output["changed"] != (expect != "unchanged"):
            raise BenchmarkError("%s: summary %s, changed=%s" % (name, output["summary"], output["changed"]))
        self.check_emulator(name, count, upserted_once_more(before) or {"1": count}, upserts, count)
        if ledger_rows(ledger) != count:
            raise BenchmarkError("%s: the ledger holds %d entries, not %d" % (name, ledger_rows(ledger), count))
        return dict(result=result)

    def add_one(self, count, ledger):
        """One new number (the module's single-registration form) against the ledger of registrations(count): it
        must create exactly that one at the emulator and in the ledger."""
        before = self.emu.registrations_summary()["by_upserts"]
        upserts = self.upserts()
        args = dict(phone_number=phone_number(count), sip_uri=SIP_URI, route_type="loop")
        result, output = self.module(args, ledger, "add-one-%d" % count)
        if not output["changed"] or output["registration"]["phone_number"] != args["phone_number"]:
            raise BenchmarkError("adding one to %d: changed=%s, registration %s" % (
                count, output["changed"], output.get("registration")))
        expected = dict(before, **{"1": before.get("1", 0) + 1})
        self.check_emulator("adding one to %d" % count, count + 1, expected, upserts, 1)
        if ledger_rows(ledger) != count + 1:
            raise BenchmarkError("adding one to %d: the ledger holds %d entries" % (count, ledger_rows(ledger)))
        return dict(result=result)

    def playbook(self, play, regs, ledger_path, name, concurrency=None):
        """ansible-playbook with ``play``; variables (with the client secret) from a 0600 file."""
        work = self.run_dir(name)
        play_path = os.path.join(work, "play.yml")
        with open(play_path, "w", encoding="utf-8") as handle:
            handle.write(play)
        variables = os.path.join(work, "vars.json")
        write_private(variables, {"registrations": regs, "connection": self.connection(ledger_path),
                                  "concurrency": concurrency or self.options.concurrency, "sip_uri": SIP_URI})
        ansible_playbook = os.path.join(os.path.dirname(self.python), "ansible-playbook")
        result = self.measure(
            [ansible_playbook, "-i", "localhost,", "-c", "local", "-e", "@" + variables, play_path], work)
        if result.returncode != 0:
            raise BenchmarkError("%s: ansible-playbook failed:\n%s" % (name, (result.stdout + result.stderr)[-3000:]))
        if self.held() != len(regs):
            raise BenchmarkError("%s: emulator holds %d, not %d" % (name, self.held(), len(regs)))
        return result

    def keepalive(self, count, ledger, workers=1, force=True):
        """A keepalive pass (``--once``, ``force``d or of what is due) over ``ledger`` by ``workers`` processes started
        at once, each with its own config, health and metrics files (and, on a shared store, its own local copy of
        the scope). Every entry must be refreshed exactly once at the emulator, and the workers' shares
        (``refreshed`` in their health files) must add up to ``count``. Returns, per worker, its measure, and its
        share, its metrics file's series and bytes and its health file."""
        shared = ledger_options(ledger).get("ledger_store") == "postgresql"
        runs, files = [], []
        for worker in range(workers):
            work = self.run_dir("keepalive-%d" % count + ("-%d-of-%d" % (worker + 1, workers) if workers > 1 else ""))
            config = os.path.join(work, "keepalive.json")
            health = os.path.join(work, "health.json")
            metrics = os.path.join(work, "metrics", "wgtwo_sipbreakout.prom")
            os.makedirs(os.path.dirname(metrics))
            settings = dict(self.connection(ledger), health_path=health, metrics_path=metrics,
                            concurrency=self.options.concurrency, batch_size=self.options.batch_size)
            if shared:
                settings["ledger_copy_path"] = os.path.join(work, "ledger-copy.sqlite")
            write_private(config, settings)
            program = "import sys; from %s import main; sys.exit(main())" % KEEPALIVE
            runs.append(([self.python, "-c", program, "--config", config, "--once", "-q"] + (["--force"] if force else []),
                         work))
            files.append((health, metrics))
        name = "keepalive pass of %d" % count + (" by %d workers" % workers if workers > 1 else "")
        before = self.emu.registrations_summary()["by_upserts"]
        upserts = self.upserts()
        results = self.measure_together(runs)
        for result in results:
            if result.returncode != 0:
                raise BenchmarkError("%s: exit %d: %s" % (name, result.returncode, result.stderr[-2000:]))
        self.check_emulator(name, count, upserted_once_more(before), upserts, count)
        passes = []
        for result, (health, metrics) in zip(results, files):
            with open(health, "r", encoding="utf-8") as handle:
                refreshed = json.load(handle)["body"]["last_run"]["refreshed"]
            with open(metrics, "r", encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            series = [line for line in lines if line and not line.startswith("#")]
            if "wgtwo_sipbreakout_registrations_live %d" % count not in series:
                raise BenchmarkError("%s: its metrics do not count %d live" % (name, count))
            passes.append((result, dict(series=len(series), bytes=os.path.getsize(metrics), health_path=health,
                                        refreshed=refreshed)))
        shares = [found["refreshed"] for _result, found in passes]
        if sum(shares) != count:
            raise BenchmarkError("%s: the workers' health files say %s refreshed, not %d in all" % (
                name, " + ".join(str(share) for share in shares), count))
        return passes

    def info(self, count, ledger_path, health_path, listing):
        """registration_info as its own process over ``ledger_path`` of registrations(count): the counts only, or
        with ``listing`` the first 1,000 registrations (the default limit). Checked from its result; returns the
        measure and the size of that result in bytes."""
        name = "info-%s-%d" % ("list" if listing else "counts", count)
        work = self.run_dir(name)
        args_path = os.path.join(work, "args.json")
        write_private(args_path, {"ANSIBLE_MODULE_ARGS": dict(ledger_path=ledger_path, health_path=health_path,
                                                              list=listing)})
        result = self.measure([self.python, "-m", INFO_MODULE, args_path], work)
        try:
            output = json.loads(result.stdout)
        except ValueError:
            raise BenchmarkError("%s: no module result: %s" % (name, result.stderr[-2000:])) from None
        listed = len(output.get("registrations") or [])
        if output.get("failed") or output["registrations_total"] != count or output["states"]["live"] != count \
                or listed != (min(count, 1000) if listing else 0) or not output["keepalive"]["found"]:
            raise BenchmarkError("%s: %s" % (name, output.get("msg") or dict(
                (key, output.get(key)) for key in ("registrations_total", "states", "registrations_matched"))))
        return result, len(result.stdout)


def raw_worker():
    """``--raw-worker``: the raw client in its own process; job on stdin, timing on stdout."""
    import grpc  # pylint: disable=import-outside-toplevel  # only this worker process needs it
    from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import wire  # pylint: disable=import-outside-toplevel

    job = json.load(sys.stdin)
    msgs = wire.messages()
    with open(job["ca_path"], "rb") as handle:
        credentials = grpc.ssl_channel_credentials(handle.read())
    channel = grpc.secure_channel(job["endpoint"], credentials)
    upsert = channel.unary_unary(wire.UPSERT_METHOD, request_serializer=msgs.UpsertRegistrationRequest.SerializeToString,
                                 response_deserializer=msgs.UpsertRegistrationResponse.FromString)
    metadata = (("authorization", "Bearer " + job["token"]),)
    grpc.channel_ready_future(channel).result(timeout=10)
    in_flight, ok = [], 0
    started = time.monotonic()
    for reg in registration_rows(job["count"]):
        request = msgs.UpsertRegistrationRequest()
        request.registration.sip_uri = reg["sip_uri"]
        request.registration.route_type = msgs.ROUTE_TYPE_LOOP
        request.registration.phone_number.e164 = reg["phone_number"]
        in_flight.append(upsert.future(request, metadata=metadata, timeout=60))
        if len(in_flight) >= job["in_flight"]:
            ok += in_flight.pop(0).result().status_code == msgs.STATUS_CODE_OK
    for future in in_flight:
        ok += future.result().status_code == msgs.STATUS_CODE_OK
    calls_wall = time.monotonic() - started
    channel.close()
    json.dump({"ok": ok, "calls_wall": calls_wall}, sys.stdout)
    return 0


# ---------------------------------------------------------------------- rows and table

def row(label, count, wall, result=None, rate_wall=None, note="", per_registration=True):
    """A table row; ``rate_wall`` (default ``wall``) is what the rate and the wall time per registration are
    computed from, the process's CPU time what the CPU time per registration is."""
    rate_wall = rate_wall or wall
    entry = {"label": label, "count": count, "wall": wall, "rate": count / rate_wall,
             "cpu": result.cpu if result else None, "rss": result.max_rss_mb if result else None,
             "emu_cpu": result.emu_cpu if result else None, "db_cpu": result.db_cpu if result else None,
             "wall_us": None, "cpu_us": None, "note": note}
    if per_registration:
        entry["wall_us"] = rate_wall * 1e6 / count
        entry["cpu_us"] = result.cpu * 1e6 / count if result else None
    return entry


def scaled(label, count, sample):
    """A row for ``count`` items from two sample runs of different sizes: their difference is the per-item cost
    (wall and CPU), the rest is start-up; peak memory is the larger sample's."""
    (small_n, small), (large_n, large) = sample
    per_item = max(large.wall - small.wall, 0.0) / (large_n - small_n)
    cpu_per_item = max(large.cpu - small.cpu, 0.0) / (large_n - small_n)
    entry = row(label, count, max(small.wall - small_n * per_item, 0.0) + count * per_item,
                note="samples of %d and %d; %.1f ms/item" % (small_n, large_n, per_item * 1000))
    entry.update(cpu=max(small.cpu - small_n * cpu_per_item, 0.0) + count * cpu_per_item, rss=large.max_rss_mb)
    entry["cpu_us"] = entry["cpu"] * 1e6 / count
    return entry


def raw_row(bench, count):
    """The raw client's row for ``count`` registrations against the emulator as it is."""
    raw = bench.raw(count)
    return row("raw client, %d in flight" % bench.options.raw_in_flight, count, raw["result"].wall, raw["result"],
               rate_wall=raw["calls_wall"], note="rate from the %.2f s of calls" % raw["calls_wall"])


def measure_size(bench, count, latency_ms, loop, sequential, largest):
    """Every row for one size and latency; the re-run controls only for the largest size."""
    opts = bench.options
    rows = {}
    bench.fresh(latency_ms)
    rows["raw"] = raw_row(bench, count)
    bench.fresh(latency_ms)
    ledger = os.path.join(bench.work, "ledger-%d-%d.json" % (count, latency_ms))
    bulk = bench.bulk(count, ledger)
    rows["bulk"] = row("bulk task (module), concurrency %d" % opts.concurrency, count, bulk["result"].wall,
                       bulk["result"], note="whole module process")
    [(passed, _metrics)] = bench.keepalive(count, ledger)
    rows["keepalive"] = row("keepalive pass (--once --force)", count, passed.wall, passed,
                            note="every registration refreshed, concurrency %d" % opts.concurrency)
    if latency_ms:
        bench.fresh(latency_ms)
        high = bench.bulk(count, ledger + ".high", concurrency=opts.high_concurrency)
        rows["bulk_high"] = row("bulk task (module), concurrency %d" % opts.high_concurrency, count,
                                high["result"].wall, high["result"], note="whole module process")
        rows["sequential"] = scaled("sequential (concurrency 1), scaled", count, sequential)
    else:
        rerun = bench.bulk(count, ledger, expect="unchanged")
        rows["rerun"] = row("bulk re-run, nothing changed", count, rerun["result"].wall, rerun["result"],
                            note="changed=false; the emulator holds the %d already" % count)
        if largest:
            again = bench.raw(count)
            rows["raw_full"] = row("raw client, same numbers again", count, again["result"].wall,
                                   again["result"], rate_wall=again["calls_wall"],
                                   note="the emulator holds the %d already; %.2f s of calls"
                                   % (count, again["calls_wall"]))
            bench.fresh(latency_ms)
            control = bench.bulk(count, ledger, expect="unchanged")
            rows["rerun_empty"] = row("bulk re-run, emulator emptied first", count, control["result"].wall,
                                      control["result"], note="changed=false; same server state as the first run")
        bench.fresh(latency_ms)
        played = bench.playbook(BULK_PLAY, registrations(count), ledger + ".play", "play-%d" % count)
        rows["play"] = row("bulk task in ansible-playbook", count, played.wall, played, note="whole play")
        bench.fresh(latency_ms)
        numbers = [dict(phone_number=reg["phone_number"]) for reg in registration_rows(count)]
        played = bench.playbook(DEFAULTS_PLAY, numbers, ledger + ".defaults", "play-defaults-%d" % count)
        rows["play_defaults"] = row("bulk task in ansible-playbook, defaults", count, played.wall, played,
                                    note="whole play; items: phone_number only")
    rows["loop"] = scaled("per-item loop (ansible-playbook), scaled", count, loop)
    return rows


def measure_samples(bench, latency_ms):
    """The per-item loop and (with latency) the sequential module, each on a small and a large sample."""
    opts = bench.options
    loop = []
    for size in (opts.loop_sample // 6 or 1, opts.loop_sample):
        bench.fresh(latency_ms)
        ledger = os.path.join(bench.work, "ledger-loop-%d-%d.json" % (latency_ms, size))
        loop.append((size, bench.playbook(LOOP_PLAY, registrations(size), ledger, "loop-%d" % size)))
    sequential = []
    if latency_ms:
        for size in (opts.sequential_sample // 10 or 1, opts.sequential_sample):
            bench.fresh(latency_ms)
            ledger = os.path.join(bench.work, "ledger-seq-%d-%d.json" % (latency_ms, size))
            sequential.append((size, bench.bulk(size, ledger, concurrency=1)["result"]))
    return loop, sequential


def measure_file_size(bench, count, path):
    """The rows of a large base for one size, without latency, on an SQLite ledger: raw client, the file task of
    ``path`` (registrations(count)), its identical re-run, a keepalive pass over its ledger, and one number added to
    that ledger."""
    opts = bench.options
    rows = {}
    bench.fresh(0)
    rows["raw"] = raw_row(bench, count)
    ledger = os.path.join(bench.work, "ledger-file-%d.json" % count)
    bench.fresh(0)
    first = bench.file_task(path, count, ledger)
    rows["file"] = row("file task (registrations_file)", count, first["result"].wall, first["result"],
                       note="whole module process, concurrency %d; a CSV file" % opts.concurrency)
    again = bench.file_task(path, count, ledger, expect="unchanged")
    rows["rerun"] = row("identical re-run of the file", count, again["result"].wall, again["result"],
                        note="changed=false; every registration refreshed")
    [(passed, metrics)] = bench.keepalive(count, ledger)
    rows["keepalive"] = row("keepalive pass (--once --force)", count, passed.wall, passed,
                            note="every registration refreshed, batches of %d; metrics: %d series, %d bytes"
                            % (opts.batch_size, metrics["series"], metrics["bytes"]))
    rows["keepalive"].update(metrics_series=metrics["series"], metrics_bytes=metrics["bytes"])
    for key, listing, what in (("info", False, "registration_info, counts only"),
                               ("info_list", True, "registration_info, list: true")):
        info, size = bench.info(count, ledger, metrics["health_path"], listing)
        rows[key] = row(what, count, info.wall, info, note="whole module process; result %d bytes" % size,
                        per_registration=False)
        rows[key]["output_bytes"] = size
    one = bench.add_one(count, ledger)
    rows["add_one"] = row("one number added to the full ledger", 1, one["result"].wall, one["result"],
                          note="whole module process (phone_number); ledger of %d" % count, per_registration=False)
    return rows


def measure_postgresql_size(bench, count, path, ledger):
    """The rows of a large base for one size, without latency, on the PostgreSQL scope ``ledger`` (ledger options,
    an empty scope): raw client, the file task of ``path``, a keepalive pass over the scope by one worker, then by
    two at once (each one's share, and both together), and one number added to the full scope."""
    opts = bench.options
    rows = {}
    bench.fresh(0)
    rows["raw"] = raw_row(bench, count)
    bench.fresh(0)
    first = bench.file_task(path, count, ledger)
    rows["file"] = row("file task (registrations_file)", count, first["result"].wall, first["result"],
                       note="whole module process, concurrency %d; a CSV file" % opts.concurrency)
    # Both passes refresh what is due (every registration, made so first), as workers on a schedule do.
    make_due(ledger)
    [(passed, _metrics)] = bench.keepalive(count, ledger, force=False)
    rows["keepalive"] = row("keepalive pass, 1 worker", count, passed.wall, passed,
                            note="every registration due and refreshed, batches of %d, then its local copy written"
                            % opts.batch_size)
    make_due(ledger)
    passes = bench.keepalive(count, ledger, workers=len(WORKER_NAMES), force=False)
    for name, (result, found) in zip(WORKER_NAMES, passes):
        rows["keepalive_" + name] = row("keepalive pass, worker %s of %d" % (name, len(passes)), found["refreshed"],
                                        result.wall, result, per_registration=bool(found["refreshed"]),
                                        note="its share: %.0f%% of the %d, started together"
                                        % (found["refreshed"] * 100.0 / count, count))
    measured = [result for result, _found in passes]
    together = row("keepalive pass, %d workers together" % len(passes), count, max(one.wall for one in measured),
                   note="from their start to the last one's end; CPU: both, RSS: the larger")
    together.update(cpu=sum(one.cpu for one in measured), rss=max(one.max_rss_mb for one in measured),
                    emu_cpu=measured[0].emu_cpu, db_cpu=measured[0].db_cpu)
    together["cpu_us"] = together["cpu"] * 1e6 / count
    rows["keepalive_together"] = together
    one = bench.add_one(count, ledger)
    rows["add_one"] = row("one number added to the full scope", 1, one["result"].wall, one["result"],
                          note="whole module process (phone_number); scope of %d" % count, per_registration=False)
    for entry in rows.values():
        if entry["db_cpu"] is not None:
            entry["note"] += "; PostgreSQL CPU %.2f s" % entry["db_cpu"]
    return rows


def file_verdicts(rows, count, baseline):
    """The targets of a large base (stated for 1,000,000) at ``count``; the cost per registration against the
    ``baseline`` (count, rows), the smallest file size."""
    found = []
    for key, what in (("file", "file task"), ("keepalive", "keepalive pass")):
        found.append(rate_verdict(rows, key, what, TARGETS["%s_vs_raw" % key]))
        found.append(rss_verdict(rows, key, what, TARGETS["%s_rss_mb" % key]))
    found.append(add_one_verdict(rows, "a ledger of %d" % count))
    info = rows["info"]
    found.append(("registration_info's counts of %d: %.2f s, peak RSS %.0f MB, result %d bytes (target < %g s, < %.0f "
                  "MB)" % (count, info["wall"], info["rss"], info["output_bytes"], TARGETS["info_s"],
                           TARGETS["info_rss_mb"]), info["wall"] < TARGETS["info_s"] and info["rss"] < TARGETS["info_rss_mb"]))
    listed = rows["info_list"]
    found.append(("registration_info with list: true: peak RSS %.0f MB, result %d bytes (target < %.0f MB)"
                  % (listed["rss"], listed["output_bytes"], TARGETS["info_rss_mb"]),
                  listed["rss"] < TARGETS["info_rss_mb"]))
    series = rows["keepalive"]["metrics_series"]
    found.append(("keepalive metrics: %d series, %d bytes (target <= %d series, whatever the size)"
                  % (series, rows["keepalive"]["metrics_bytes"], TARGETS["metrics_series"]),
                  series <= TARGETS["metrics_series"]))
    base_count, base = baseline
    if base_count != count:
        for measure, what in (("cpu_us", "CPU"), ("wall_us", "wall time")):
            ratio = rows["file"][measure] / base["file"][measure]
            found.append(("file task's %s per registration = %.0f us, %.2fx that at %d (target <= %.1fx)"
                          % (what, rows["file"][measure], ratio, base_count, TARGETS["cost_vs_baseline"]),
                          ratio <= TARGETS["cost_vs_baseline"]))
    return found


def rate_verdict(rows, key, what, target):
    """Row ``key``'s rate as a share of the raw client's in the same section, against ``target``."""
    share = rows[key]["rate"] / rows["raw"]["rate"]
    return ("%s = %.0f%% of the raw client (target >= %.0f%%)" % (what, share * 100, target * 100), share >= target)


def rss_verdict(rows, key, what, limit):
    return ("%s peak RSS %.0f MB (target < %.0f MB)" % (what, rows[key]["rss"], limit), rows[key]["rss"] < limit)


def add_one_verdict(rows, where):
    wall = rows["add_one"]["wall"]
    return ("one number added to %s: %.2f s for the whole task (target < %g s)" % (where, wall, TARGETS["add_one_s"]),
            wall < TARGETS["add_one_s"])


def postgresql_verdicts(rows, count):
    """The targets of a large base (stated for 1,000,000) at ``count``, on PostgreSQL: the file task's and the
    keepalive's as on SQLite, the workers' peak RSS each, and their shares (for information)."""
    found = [rate_verdict(rows, "file", "file task", TARGETS["file_vs_raw"]),
             rss_verdict(rows, "file", "file task", TARGETS["file_rss_mb"]),
             rate_verdict(rows, "keepalive", "keepalive pass, 1 worker", TARGETS["keepalive_vs_raw"]),
             rss_verdict(rows, "keepalive", "keepalive pass, 1 worker", TARGETS["keepalive_rss_mb"]),
             rate_verdict(rows, "keepalive_together", "keepalive pass, %d workers together" % len(WORKER_NAMES),
                          TARGETS["keepalive_vs_raw"])]
    for name in WORKER_NAMES:
        found.append(rss_verdict(rows, "keepalive_" + name, "keepalive worker %s" % name, TARGETS["keepalive_rss_mb"]))
    found.append(("shares of the %d refreshes: %s" % (count, ", ".join(
        "worker %s %d (%.0f reg/s)" % (name, rows["keepalive_" + name]["count"], rows["keepalive_" + name]["rate"])
        for name in WORKER_NAMES)), None))
    found.append(add_one_verdict(rows, "a scope of %d" % count))
    return found


def fmt(value, pattern):
    return "-" if value is None else pattern % value


def verdicts(rows, latency_ms, count):
    """The issue's targets for one size and latency: (text, met)."""
    found = []
    if not latency_ms:
        share = rows["bulk"]["rate"] / rows["raw"]["rate"]
        found.append(("bulk task = %.0f%% of the raw client (target >= %.0f%%)"
                      % (share * 100, TARGETS["bulk_vs_raw"] * 100), share >= TARGETS["bulk_vs_raw"]))
        share = rows["play_defaults"]["rate"] / rows["raw"]["rate"]
        without = rows["play"]["rate"] / rows["raw"]["rate"]
        text = "bulk task in ansible-playbook with top-level defaults = %.0f%% of the raw client (target >= %.0f%%); " \
               "without them %.0f%%" % (share * 100, TARGETS["play_defaults_vs_raw"] * 100, without * 100)
        found.append((text, share >= TARGETS["play_defaults_vs_raw"]))
        for key, what in (("bulk", "bulk task (module)"), ("play", "bulk task in ansible-playbook")):
            times = rows[key]["rate"] / rows["loop"]["rate"]
            found.append(("%s = %.0fx the per-item loop (target >= %.0fx)" % (what, times, TARGETS["bulk_vs_loop"]),
                          times >= TARGETS["bulk_vs_loop"]))
        if "rerun_empty" in rows:
            first, control = rows["bulk"], rows["rerun_empty"]
            found.append(("re-run of %d reports changed=false and costs %.2f s wall / %.2f s CPU against %.2f s / "
                          "%.2f s for the first run (same server state; 10%% allowed for noise)"
                          % (count, control["wall"], control["cpu"], first["wall"], first["cpu"]),
                          control["wall"] <= first["wall"] * 1.1 and control["cpu"] <= first["cpu"] * 1.1))
            found.append(("re-run with the emulator holding the %d: %.0f reg/s, the raw client against it %.0f reg/s "
                          "(%.0f%%)" % (count, rows["rerun"]["rate"], rows["raw_full"]["rate"],
                                        rows["rerun"]["rate"] * 100 / rows["raw_full"]["rate"]),
                          rows["rerun"]["rate"] >= TARGETS["bulk_vs_raw"] * rows["raw_full"]["rate"]))
    else:
        for key in ("bulk", "bulk_high"):
            times = rows[key]["rate"] / rows["sequential"]["rate"]
            text = "%s = %.0fx sequential (target >= %.0fx)" % (rows[key]["label"], times, TARGETS["bulk_vs_sequential"])
            found.append((text, times >= TARGETS["bulk_vs_sequential"]))
        share = rows["raw"]["rate"] / rows["sequential"]["rate"]
        found.append(("for reference: the raw client = %.0fx sequential" % share, None))
    return found


def render(results, options, emulator_note):
    columns = "%-42s %8s %9s %8s %8s %8s %8s %7s %8s  %s"
    lines = ["", "wgtwo.sipbreakout benchmark, %s" % emulator_note,
             "wall us, CPU us: per registration (the raw client's wall time from its calls only); "
             "emu CPU s: the emulator's meanwhile (PostgreSQL CPU, in the notes: the database server's)",
             columns % ("", "n", "wall s", "reg/s", "CPU s", "wall us", "CPU us", "RSS MB", "emu CPU", "note")]
    for result in results:
        lines.append("-- %s" % result["title"])
        for entry in result["rows"].values():
            lines.append(columns % (
                entry["label"], entry["count"], "%.2f" % entry["wall"], "%.0f" % entry["rate"],
                fmt(entry["cpu"], "%.2f"), fmt(entry["wall_us"], "%.0f"), fmt(entry["cpu_us"], "%.0f"),
                fmt(entry["rss"], "%.0f"), fmt(entry["emu_cpu"], "%.2f"), entry["note"]))
        for text, met in result["targets"]:
            lines.append("   %-6s %s" % ({True: "MET", False: "MISSED", None: ""}[met], text))
    lines.extend(render_scaling([result for result in results if result["kind"] == "file"]))
    lines.append("")
    lines.append("options: %s" % options_line(options))
    return "\n".join(lines)


def options_line(options):
    """The options of the run, as they would be given."""
    given = []
    for key, value in sorted(vars(options).items()):
        if key in ("json", "raw_worker", "launcher") or value is False:
            continue
        if isinstance(value, list):
            value = ",".join(str(size) for size in value) or "''"
        given.append("--%s" % key.replace("_", "-") + ("" if value is True else " %s" % value))
    return " ".join(given)


def render_scaling(files):
    """The file rows' cost per registration side by side, size by size: linear when a line stays level."""
    if len(files) < 2:
        return []
    lines = ["-- per registration, size by size: wall us / CPU us (one number added: wall s of the whole task)",
             "%-42s" % "" + "".join("%16d" % result["count"] for result in files)]
    for key, entry in files[0]["rows"].items():
        cells = []
        for result in files:
            other = result["rows"][key]
            if other["wall_us"] is None:
                cells.append("%14.2f s" % other["wall"])
            else:
                cells.append("%16s" % ("%.0f / %.0f" % (other["wall_us"], other["cpu_us"])))
        lines.append("%-42s%s" % (entry["label"], "".join(cells)))
    return lines


def sizes_option(text):
    """A comma-separated list of sizes ('' for none)."""
    try:
        sizes = [int(size) for size in text.split(",") if size.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("'%s' is not a comma-separated list of numbers" % text) from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("sizes must be 1 or more")
    return sizes


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1000,10000", type=sizes_option,
                        help="comma-separated numbers of registrations for the list rows ('' for none)")
    parser.add_argument("--file-sizes", default="10000,100000", type=sizes_option,
                        help="comma-separated numbers of registrations for the registrations_file rows ('' for "
                             "none); the smallest is the baseline of the cost per registration")
    parser.add_argument("--no-postgresql", action="store_true",
                        help="leave out the rows of the PostgreSQL ledger store (they need the test PostgreSQL of "
                             "`make postgresql`)")
    parser.add_argument("--million", action="store_true",
                        help="add 1,000,000 to --file-sizes (about half an hour and 2 GB of memory more)")
    parser.add_argument("--latency-ms", type=int, default=30, help="latency the emulator adds to every call")
    parser.add_argument("--concurrency", type=int, default=256,
                        help="the bulk task's and the keepalive's concurrency (their default)")
    parser.add_argument("--batch-size", type=int, default=5000,
                        help="the keepalive's batch_size (its default): registrations claimed and recorded together")
    parser.add_argument("--high-concurrency", type=int, default=128, help="a second bulk row with latency")
    parser.add_argument("--raw-in-flight", type=int, default=128, help="calls in flight of the raw client")
    parser.add_argument("--loop-sample", type=int, default=30, help="items of the per-item loop sample")
    parser.add_argument("--sequential-sample", type=int, default=200, help="items of the sequential sample")
    parser.add_argument("--emulator-log-level", default="WARNING", choices=["INFO", "WARNING"],
                        help="the emulator logs every call at INFO, which costs it CPU")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--launcher", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.million and MILLION not in options.file_sizes:
        options.file_sizes.append(MILLION)
    options.file_sizes.sort()
    return options


def measure_all(bench, options, progress):
    """Every section: the list rows of --sizes (without, then with latency), then the file rows of
    --file-sizes. Returns the results, each a dict with its title, rows and verdicts."""
    results = []
    for latency_ms in sorted(set((0, options.latency_ms))) if options.sizes else ():
        loop, sequential = measure_samples(bench, latency_ms)
        for count in options.sizes:
            rows = measure_size(bench, count, latency_ms, loop, sequential, count == max(options.sizes))
            results.append(dict(kind="list", count=count, latency_ms=latency_ms, rows=rows,
                                targets=verdicts(rows, latency_ms, count),
                                title="%d registrations, %s" % (count, "%d ms latency" % latency_ms
                                                                if latency_ms else "no latency")))
            progress("%d registrations, %d ms latency" % (count, latency_ms))
    baseline = None
    server = postgresql_server() if options.file_sizes and not options.no_postgresql else None
    for count in options.file_sizes:
        path = os.path.join(bench.work, "registrations-%d.csv" % count)
        write_registrations_file(path, count)
        rows = measure_file_size(bench, count, path)
        baseline = baseline or (count, rows)
        results.append(dict(kind="file", count=count, latency_ms=0, rows=rows,
                            targets=file_verdicts(rows, count, baseline),
                            title="%d registrations from a file, no latency (targets stated for 1000000)"
                            % count))
        progress("%d registrations from a file" % count)
        if server is not None:
            with server.database() as dbname:
                ledger = dict(ledger_store="postgresql", ledger_conninfo=server.conninfo(dbname), ledger_scope=SCOPE)
                bench.database_pid = postmaster_pid(server)
                try:
                    rows = measure_postgresql_size(bench, count, path, ledger)
                finally:
                    bench.database_pid = None
            results.append(dict(kind="postgresql", count=count, latency_ms=0, rows=rows,
                                targets=postgresql_verdicts(rows, count),
                                title="%d registrations from a file, PostgreSQL ledger (scope %s of a database of its "
                                "own), no latency (targets stated for 1000000)" % (count, SCOPE)))
            progress("%d registrations from a file, PostgreSQL ledger" % count)
        os.remove(path)
    return results


def postgresql_server():
    """The test PostgreSQL (`make postgresql`) the PostgreSQL rows use, a database of their own in it per size."""
    from ansible_collections.wgtwo.sipbreakout.tests import postgresql_support  # pylint: disable=import-outside-toplevel

    try:
        server = postgresql_support.server()
    except postgresql_support.ServerUnavailable as exc:
        raise BenchmarkError("the PostgreSQL rows need the test PostgreSQL (or --no-postgresql to leave them out): %s"
                             % exc) from None
    if not server.running():
        raise BenchmarkError("the PostgreSQL rows need the test PostgreSQL described at %s, which is not running: "
                             "`make postgresql` starts it (or --no-postgresql to leave them out)" % server.path)
    return server


def main(argv=None):
    options = parse(sys.argv[1:] if argv is None else argv)
    if options.raw_worker:
        return raw_worker()
    if options.launcher:
        return launcher()
    started = time.monotonic()
    load_before = os.getloadavg()
    launched = Launcher(dict(os.environ))
    sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))
    from sipbreakout_emulator.testing import running_emulator  # pylint: disable=import-outside-toplevel

    def progress(what):
        sys.stderr.write("measured %s (%.0f s so far)\n" % (what, time.monotonic() - started))

    work = tempfile.mkdtemp(prefix="sipbreakout-benchmark-")
    try:
        collections = os.path.join(work, "collections")
        os.makedirs(os.path.join(collections, "ansible_collections", "wgtwo"))
        os.symlink(ROOT, os.path.join(collections, "ansible_collections", "wgtwo", "sipbreakout"))
        sys.path.insert(0, collections)  # the emulator imports the collection's wire module from here
        with running_emulator(os.path.join(work, "emulator"), clients=[(CLIENT_ID, os.urandom(12).hex())],
                              log_level=options.emulator_log_level) as emu:
            bench = Bench(emu, work, collections, launched, options)
            bench.fresh(0)
            bench.bulk(1, os.path.join(work, "ledger-warmup.json"))  # token in the cache, files in the page cache
            results = measure_all(bench, options, progress)
            emulator_rss = process_peak_rss_mb(emu.pid)
    except BenchmarkError as exc:
        sys.stderr.write("benchmark: %s\n" % exc)
        return 1
    finally:
        launched.close()
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    note = ("%d CPUs, load average %.1f/%.1f/%.1f at the start and %.1f/%.1f/%.1f at the end, %.0f s in all, "
            "emulator log level %s, emulator peak RSS %.0f MB holding up to %d registrations" % (
                os.cpu_count(), load_before[0], load_before[1], load_before[2], load[0], load[1], load[2],
                time.monotonic() - started, options.emulator_log_level, emulator_rss, bench.most_held))
    print(render(results, options, note))
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
