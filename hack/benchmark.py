# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throughput of the registration module against the project's emulator, measured in one run (`make benchmark`).

    python hack/benchmark.py [--sizes 1000,10000] [--latency-ms 30] [--json FILE]

Starts one fresh emulator, then for each size, once without and once with injected latency, measures:

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
keepalive pass
    ``wgtwo-sipbreakout-keepalive --once --force`` over the ledger the bulk task wrote: every registration
    refreshed in one pass, as its own process.
sequential
    the bulk task with ``concurrency: 1``, on samples, scaled to the size (with latency only).
per-item loop
    ``loop:`` over the module, one number per task, in ansible-playbook, on samples, scaled to the size.

A scaled row comes from two samples of different sizes: their difference gives the per-item cost, the rest is
start-up, and the row is start-up + size x per-item cost. Wall time is the process's; CPU time (user + system)
and peak memory (ru_maxrss) come from ``wait4`` on it and include its children (ansible-playbook's workers and
modules). Every run is checked at the emulator.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "ansible_collections.wgtwo.sipbreakout.plugins.modules.registration"
KEEPALIVE = "ansible_collections.wgtwo.sipbreakout.plugins.module_utils.keepalive"
CLIENT_ID = "benchmark-client"
SIP_URI = "sips:pbx.example.com:5061"
TARGETS = {"bulk_vs_raw": 0.5, "bulk_vs_loop": 400.0, "bulk_vs_sequential": 50.0}

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

BULK_PLAY = """
- name: One task for every number
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Register the numbers
      wgtwo.sipbreakout.registration:
        registrations: "{{ registrations }}"
        api_endpoint: "{{ connection.api_endpoint }}"
        ca_path: "{{ connection.ca_path }}"
        token_url: "{{ connection.token_url }}"
        client_id: "{{ connection.client_id }}"
        client_secret: "{{ connection.client_secret }}"
        ledger_path: "{{ connection.ledger_path }}"
        token_cache_path: "{{ connection.token_cache_path }}"
        concurrency: "{{ concurrency }}"
"""


class BenchmarkError(Exception):
    """A measured run did not do what it was asked; its numbers would mean nothing."""


def registrations(count, first=0):
    """``count`` distinct registrations; ``first`` keeps the numbers of different runs apart."""
    return [{"phone_number": "+4791%08d" % number, "sip_uri": SIP_URI, "route_type": "loop"}
            for number in range(first, first + count)]


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
        job = {"argv": argv, "env": env, "cwd": work, "stdin": stdin_path,
               "stdout": os.path.join(work, "stdout"), "stderr": os.path.join(work, "stderr")}
        self.process.stdin.write((json.dumps(job) + "\n").encode("utf-8"))
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise BenchmarkError("the launcher died")
        done = json.loads(line.decode("utf-8"))
        with open(job["stdout"], "rb") as out, open(job["stderr"], "rb") as err:
            stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        return Measured(done["wall"], done["cpu"], done["max_rss_kb"], stdout, stderr, done["returncode"])

    def close(self):
        self.process.stdin.close()
        self.process.wait(30)


def launcher():
    """``--launcher``: one JSON job per line on stdin; wall, CPU and peak RSS from wait4 per line on stdout."""
    for line in sys.stdin:
        job = json.loads(line)
        with open(job["stdin"] or os.devnull, "rb") as stdin, open(job["stdout"], "wb") as out, \
                open(job["stderr"], "wb") as err:
            started = time.monotonic()
            process = subprocess.Popen(job["argv"], stdin=stdin, stdout=out, stderr=err,  # pylint: disable=consider-using-with
                                       env=job["env"], cwd=job["cwd"])
            _pid, status, usage = os.wait4(process.pid, 0)
            wall = time.monotonic() - started
            process.returncode = os.waitstatus_to_exitcode(status)
        sys.stdout.write(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                                     "max_rss_kb": usage.ru_maxrss, "returncode": process.returncode}) + "\n")
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
        self.runs = 0
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

    def connection(self, ledger_path):
        return {"api_endpoint": self.emu.grpc_endpoint, "ca_path": self.emu.ca_path, "token_url": self.emu.token_url,
                "client_id": CLIENT_ID, "client_secret": self.secret, "ledger_path": ledger_path,
                "token_cache_path": self.token_cache}

    def held(self):
        return len(self.emu.registrations())

    def upserts(self):
        return self.emu.calls(limit=0)["by_method"].get("UpsertRegistration", {}).get("total", 0)

    # ------------------------------------------------------------------ the measured runs

    def raw(self, count):
        """The raw client: futures on one channel, ``--raw-in-flight`` in flight."""
        work = self.run_dir("raw-%d" % count)
        token = self.emu.client_token(CLIENT_ID, self.secret)["access_token"]
        job_path = os.path.join(work, "job.json")
        write_private(job_path, {"endpoint": self.emu.grpc_endpoint, "ca_path": self.emu.ca_path, "token": token,
                                 "count": count, "in_flight": self.options.raw_in_flight})
        result = self.launcher.measure([self.python, os.path.abspath(__file__), "--raw-worker"], self.env, work,
                                       job_path)
        if result.returncode != 0:
            raise BenchmarkError("raw client failed: %s" % result.stderr[-2000:])
        answer = json.loads(result.stdout)
        if answer["ok"] != count or self.held() != count:
            raise BenchmarkError("raw client: %d of %d OK, emulator holds %d" % (answer["ok"], count, self.held()))
        return dict(result=result, calls_wall=answer["calls_wall"])

    def module(self, regs, ledger_path, name, concurrency=None):
        """The module as its own process; its parsed result."""
        work = self.run_dir(name)
        args = dict(self.connection(ledger_path), registrations=regs)
        if concurrency is not None:
            args["concurrency"] = concurrency
        args_path = os.path.join(work, "args.json")
        write_private(args_path, {"ANSIBLE_MODULE_ARGS": args})
        result = self.launcher.measure([self.python, "-m", MODULE, args_path], self.env, work)
        try:
            output = json.loads(result.stdout)
        except ValueError:
            raise BenchmarkError("%s: no module result: %s" % (name, result.stderr[-2000:])) from None
        if output.get("failed"):
            raise BenchmarkError("%s failed: %s" % (name, output.get("msg")))
        return result, output

    def bulk(self, count, ledger_path, concurrency=None, expect="created"):
        regs = registrations(count)
        result, output = self.module(regs, ledger_path, "bulk-%d" % count, concurrency)
        if output["summary"][expect] != count or self.held() != count:
            raise BenchmarkError("bulk %d: summary %s, emulator holds %d" % (count, output["summary"], self.held()))
        if expect == "unchanged" and output["changed"]:
            raise BenchmarkError("bulk re-run of %d reported changed" % count)
        return dict(result=result)

    def playbook(self, play, regs, ledger_path, name, concurrency=None):
        """ansible-playbook with ``play``; variables (with the client secret) from a 0600 file."""
        work = self.run_dir(name)
        play_path = os.path.join(work, "play.yml")
        with open(play_path, "w", encoding="utf-8") as handle:
            handle.write(play)
        variables = os.path.join(work, "vars.json")
        write_private(variables, {"registrations": regs, "connection": self.connection(ledger_path),
                                  "concurrency": concurrency or self.options.concurrency})
        ansible_playbook = os.path.join(os.path.dirname(self.python), "ansible-playbook")
        result = self.launcher.measure(
            [ansible_playbook, "-i", "localhost,", "-c", "local", "-e", "@" + variables, play_path], self.env, work)
        if result.returncode != 0:
            raise BenchmarkError("%s: ansible-playbook failed:\n%s" % (name, (result.stdout + result.stderr)[-3000:]))
        if self.held() != len(regs):
            raise BenchmarkError("%s: emulator holds %d, not %d" % (name, self.held(), len(regs)))
        return result

    def keepalive(self, count, ledger_path):
        """One forced keepalive pass over ``ledger_path``; every entry must be refreshed at the emulator."""
        work = self.run_dir("keepalive-%d" % count)
        config = os.path.join(work, "keepalive.json")
        write_private(config, dict(self.connection(ledger_path), health_path=os.path.join(work, "health.json"),
                                   concurrency=self.options.concurrency))
        before = self.upserts()
        program = "import sys; from %s import main; sys.exit(main())" % KEEPALIVE
        result = self.launcher.measure([self.python, "-c", program, "--config", config, "--once", "--force", "-q"],
                                       self.env, work)
        sent = self.upserts() - before
        if result.returncode != 0 or sent != count or self.held() != count:
            raise BenchmarkError("keepalive pass of %d: exit %d, %d upserts, emulator holds %d: %s" % (
                count, result.returncode, sent, self.held(), result.stderr[-2000:]))
        return result


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
    for reg in registrations(job["count"]):
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

def row(label, count, wall, result=None, rate_wall=None, note=""):
    """A table row; ``rate_wall`` (default ``wall``) is what the rate is computed from."""
    return {"label": label, "count": count, "wall": wall, "rate": count / (rate_wall or wall),
            "cpu": result.cpu if result else None, "rss": result.max_rss_mb if result else None, "note": note}


def scaled(label, count, sample):
    """A row for ``count`` items from two sample runs of different sizes: their difference is the per-item cost
    (wall and CPU), the rest is start-up; peak memory is the larger sample's."""
    (small_n, small), (large_n, large) = sample
    per_item = max(large.wall - small.wall, 0.0) / (large_n - small_n)
    cpu_per_item = max(large.cpu - small.cpu, 0.0) / (large_n - small_n)
    entry = row(label, count, max(small.wall - small_n * per_item, 0.0) + count * per_item,
                note="samples of %d and %d; %.1f ms/item" % (small_n, large_n, per_item * 1000))
    entry.update(cpu=max(small.cpu - small_n * cpu_per_item, 0.0) + count * cpu_per_item, rss=large.max_rss_mb)
    return entry


def measure_size(bench, count, latency_ms, loop, sequential, largest):
    """Every row for one size and latency; the re-run controls only for the largest size."""
    opts = bench.options
    rows = {}
    bench.fresh(latency_ms)
    raw = bench.raw(count)
    rows["raw"] = row("raw client, %d in flight" % opts.raw_in_flight, count, raw["result"].wall, raw["result"],
                      rate_wall=raw["calls_wall"], note="rate from the %.2f s of calls" % raw["calls_wall"])
    bench.fresh(latency_ms)
    ledger = os.path.join(bench.work, "ledger-%d-%d.json" % (count, latency_ms))
    bulk = bench.bulk(count, ledger)
    rows["bulk"] = row("bulk task (module), concurrency %d" % opts.concurrency, count, bulk["result"].wall,
                       bulk["result"], note="whole module process")
    passed = bench.keepalive(count, ledger)
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


def fmt(value, pattern):
    return "-" if value is None else pattern % value


def verdicts(rows, latency_ms, count):
    """The issue's targets for one size and latency: (text, met)."""
    found = []
    if not latency_ms:
        share = rows["bulk"]["rate"] / rows["raw"]["rate"]
        found.append(("bulk task = %.0f%% of the raw client (target >= %.0f%%)"
                      % (share * 100, TARGETS["bulk_vs_raw"] * 100), share >= TARGETS["bulk_vs_raw"]))
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
    lines = ["", "wgtwo.sipbreakout benchmark, %s" % emulator_note,
             "%-44s %7s %9s %9s %8s %8s  %s" % ("", "n", "wall s", "reg/s", "CPU s", "RSS MB", "note")]
    for latency_ms, count, rows, found in results:
        lines.append("-- %d registrations, %s" % (count, "%d ms latency" % latency_ms if latency_ms else "no latency"))
        for entry in rows.values():
            lines.append("%-44s %7d %9.2f %9.0f %8s %8s  %s" % (
                entry["label"], entry["count"], entry["wall"], entry["rate"], fmt(entry["cpu"], "%.2f"),
                fmt(entry["rss"], "%.0f"), entry["note"]))
        for text, met in found:
            lines.append("   %-6s %s" % ({True: "MET", False: "MISSED", None: ""}[met], text))
    lines.append("")
    lines.append("options: %s" % " ".join("--%s %s" % (key.replace("_", "-"), value)
                                          for key, value in sorted(vars(options).items())
                                          if key not in ("json", "raw_worker", "launcher")))
    return "\n".join(lines)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated numbers of registrations")
    parser.add_argument("--latency-ms", type=int, default=30, help="latency the emulator adds to every call")
    parser.add_argument("--concurrency", type=int, default=256,
                        help="the bulk task's and the keepalive's concurrency (their default)")
    parser.add_argument("--high-concurrency", type=int, default=128, help="a second bulk row with latency")
    parser.add_argument("--raw-in-flight", type=int, default=128, help="calls in flight of the raw client")
    parser.add_argument("--loop-sample", type=int, default=30, help="items of the per-item loop sample")
    parser.add_argument("--sequential-sample", type=int, default=200, help="items of the sequential sample")
    parser.add_argument("--emulator-log-level", default="WARNING", choices=["INFO", "WARNING"],
                        help="the emulator logs every call at INFO, which costs it CPU")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--launcher", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    options = parse(sys.argv[1:] if argv is None else argv)
    if options.raw_worker:
        return raw_worker()
    if options.launcher:
        return launcher()
    started = time.monotonic()
    launched = Launcher(dict(os.environ))
    sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))
    from sipbreakout_emulator.testing import running_emulator  # pylint: disable=import-outside-toplevel

    sizes = [int(size) for size in options.sizes.split(",")]
    work = tempfile.mkdtemp(prefix="sipbreakout-benchmark-")
    results = []
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
            for latency_ms in (0, options.latency_ms):
                loop, sequential = measure_samples(bench, latency_ms)
                for count in sizes:
                    rows = measure_size(bench, count, latency_ms, loop, sequential, count == max(sizes))
                    results.append((latency_ms, count, rows, verdicts(rows, latency_ms, count)))
                    sys.stderr.write("measured %d registrations, %d ms latency (%.0f s so far)\n"
                                     % (count, latency_ms, time.monotonic() - started))
    except BenchmarkError as exc:
        sys.stderr.write("benchmark: %s\n" % exc)
        return 1
    finally:
        launched.close()
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    note = "%d CPUs, load average %.1f/%.1f/%.1f at the end, %.0f s in all, emulator log level %s" % (
        os.cpu_count(), load[0], load[1], load[2], time.monotonic() - started, options.emulator_log_level)
    print(render(results, options, note))
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump([{"latency_ms": latency, "count": count, "rows": rows, "targets": found}
                       for latency, count, rows, found in results], handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
