# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action of wgtwo.sipbreakout.registration: a long run goes to the background and reports how far it is.

A single registration, a short list and check mode of a list run the module as any module runs, with no extra
round trip (a registrations file costs one ``wc -c`` for its size). A list of BACKGROUND_ITEMS or more and a file of
BACKGROUND_BYTES or more run it with Ansible's async machinery (the task's own ``async`` is not needed): the module
writes its counts into a directory inside the task's private remote temporary directory
(plugins/module_utils/progress.py) and removes them as it exits; this plugin reads them with one shell command a
second and prints a line through Display every PRINT_INTERVAL seconds, which ansible-playbook prints and
ansible-runner turns into a job event that AWX shows. ``async_status`` is asked when the counts are gone, and
rarely otherwise, so that a run that never wrote any is still seen to end. The lines hold counts and seconds only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
# The variable the module reads its counts' directory from, and the file it writes there: named once, in progress.py.
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.progress import PROGRESS_DIR_ENV, PROGRESS_FILE

display = Display()

# A list this long or longer runs in the background. Shorter ones stay as fast as ever: at the 1,700 to 2,700
# registrations a second of docs/benchmark.md they end within a few seconds, before a line would be due, while a run
# in the background costs the async wrapper's start and one async_status more (measured side by side with a run in
# the foreground: some 14 % more for a list of 5,000, 3 % for a file of 40,000).
BACKGROUND_ITEMS = 5000
# A registrations file this large or larger does too: about BACKGROUND_ITEMS lines of 50 bytes.
BACKGROUND_BYTES = BACKGROUND_ITEMS * 50
# How often the module's counts are read, and how often a line is printed. A read waits on the host, up to
# POLL_INTERVAL, for the counts to go, so that the end of the run is seen within a tenth of a second.
POLL_INTERVAL = 1.0
PRINT_INTERVAL = 5.0
# async_status is asked at least this often even while the counts come in (a module killed outright leaves them).
STATUS_INTERVAL = 30.0
# While there are no counts yet, async_status is asked after these pauses, then every STATUS_INTERVAL. The module
# writes its counts as it starts and they go when it ends, so this only finds a run that never wrote them (its
# user cannot write there, or it failed before it started): each ask is a module run.
EARLY_STATUS = (5.0, 10.0, 20.0)
# What the async wrapper allows the run at most, unless the task sets its own ``timeout``.
TIME_LIMIT = 24 * 3600
# A poll that could not read the counts (the connection failed; the next poll tries again).
UNKNOWN = "unknown"
# What async_status adds to the module's own result.
ASYNC_KEYS = ("ansible_job_id", "started", "finished", "results_file")


class ActionModule(ActionBase):
    """Runs wgtwo.sipbreakout.registration, in the background with progress lines when the run is long."""

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        begun = time.monotonic()
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # no longer has any effect
        if not self._in_background():
            wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
            result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return result
        result.update(self._run_in_background(task_vars, _Watch(task_vars.get("inventory_hostname", "?"), begun)))
        return result

    def _in_background(self):
        """Whether this run goes to the background: long, and nothing else decides how it runs."""
        if self._task.async_val or self._connection.has_native_async or self._connection.always_pipeline_modules:
            return False  # the task's own async, or a connection that does it its own way
        args = self._task.args
        if args.get("registrations_file"):
            return self._file_size(args["registrations_file"]) >= BACKGROUND_BYTES
        items = args.get("registrations")
        return isinstance(items, list) and len(items) >= BACKGROUND_ITEMS and not self._task.check_mode

    def _file_size(self, path):
        """The size of the registrations file on the host, from one shell command (no module run): 0 when it
        cannot be read, and the module, run in the foreground, says why."""
        if not isinstance(path, str):
            return 0
        if path.startswith("~"):
            path = self._remote_expand_user(path)
        run = self._low_level_execute_command("wc -c < %s" % self._connection._shell.quote(path), sudoable=True)
        size = (run.get("stdout") or "").strip()
        return int(size) if run.get("rc") == 0 and size.isdigit() else 0

    def _run_in_background(self, task_vars, watch):
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        progress_dir = self._connection._shell.join_path(tmpdir, "progress")
        environment = self._task.environment
        limit = self._task.async_val
        self._task.environment = list(environment or []) + [{PROGRESS_DIR_ENV: progress_dir}]
        self._task.async_val = self._task.timeout or TIME_LIMIT
        try:
            started = self._execute_module(task_vars=task_vars, wrap_async=True)
        finally:
            self._task.environment = environment
            self._task.async_val = limit
        if started.get("failed") or not started.get("ansible_job_id"):
            return started
        status = self._wait(started, self._connection._shell.join_path(progress_dir, PROGRESS_FILE), watch,
                            task_vars)
        # In one command, as the module's user (with become, what it left is that user's): the job's result file
        # (what async_status's cleanup mode removes, without another module run) and, unless remote files are to be
        # kept, the module's temporary directory with its arguments, which the wrapper would remove only at its
        # next check, up to five seconds later.
        leftovers = [started.get("results_file")] + ([] if C.DEFAULT_KEEP_REMOTE_FILES else [tmpdir])
        self._low_level_execute_command("rm -rf %s" % " ".join(
            self._connection._shell.quote(path) for path in leftovers if path), sudoable=True)
        watch.finished(status)
        for key in ASYNC_KEYS:
            status.pop(key, None)
        return status

    def _wait(self, started, progress_path, watch, task_vars):
        """Poll until async_status says the module ended; returns its result."""
        seen = False
        launched = time.monotonic()
        status_at = launched + EARLY_STATUS[0]
        early = list(EARLY_STATUS[1:])
        while True:
            asked = time.monotonic()
            counts = self._counts(progress_path)
            now = time.monotonic()
            if isinstance(counts, dict):
                if not seen:
                    seen = True
                    status_at = now + STATUS_INTERVAL  # from now on the counts tell when it ends
                watch.counts = counts
            ended = seen and counts is None  # the module removes its counts as it ends
            if ended or now >= status_at:
                status = self._status(started, task_vars)
                if status.get("finished") or (status.get("failed") and status.get("_ansible_parsed")):
                    return status
                if ended:
                    time.sleep(0.1)  # the wrapper writes the result a moment after the module exits
                    continue
                status_at = now + (early.pop(0) if early and not seen else STATUS_INTERVAL)
            watch.report(now)
            # A read that came back at once (no counts yet to wait on, a host whose sleep takes no fractions, a
            # failed connection) is not repeated at once.
            pace = POLL_INTERVAL if seen else 0.25
            time.sleep(max(0.0, min(pace - (now - asked), status_at - now)))

    def _counts(self, path):
        """The module's counts; None while there are none (not written yet, or removed at its end); UNKNOWN when
        the host could not be asked (the next poll asks again)."""
        # Waits while the file is there (fractions of a second: GNU, BSD and busybox sleep; where sleep refuses them,
        # the loop ends at once and the read is immediate), then reads it.
        wait = "i=0; while [ $i -lt %d ] && [ -e %s ]; do sleep 0.1; i=$((i+1)); done; " % (
            int(POLL_INTERVAL * 10), self._connection._shell.quote(path))
        try:
            run = self._low_level_execute_command(wait + "cat %s" % self._connection._shell.quote(path),
                                                  sudoable=True)
        except AnsibleError as exc:
            display.vvvv("wgtwo.sipbreakout.registration: reading progress failed, trying again: %s" % exc)
            return UNKNOWN
        if run.get("rc") != 0:
            return None
        try:
            counts = json.loads(run.get("stdout") or "")
        except ValueError:
            return UNKNOWN
        return counts if isinstance(counts, dict) else UNKNOWN

    def _status(self, started, task_vars):
        """async_status of the job, run as the action plugin async_status runs it; its temporary directory goes."""
        results_file = started.get("results_file") or ""
        async_dir = results_file.rsplit("/", 1)[0] if "/" in results_file else "~/.ansible_async"
        try:
            return self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                        module_args=dict(jid=started["ansible_job_id"], mode="status",
                                                         _async_dir=async_dir))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)


class _Watch:
    """What has been printed about one run, and when the next line is due."""

    def __init__(self, host, start):
        self.host = host
        self.start = start
        self.counts = None
        self.printed_at = start
        self.lines = 0

    def report(self, now):
        if now - self.printed_at < PRINT_INTERVAL:
            return
        self.printed_at = now
        self.lines += 1
        display.display("[%s] wgtwo.sipbreakout.registration: %s" % (self.host, describe(self.counts, now - self.start)))

    def finished(self, status):
        """The last line, when any was printed before: what the result's summary counts, and how long it took."""
        if not self.lines:
            return
        elapsed = time.monotonic() - self.start
        summary = status.get("summary")
        if isinstance(summary, dict):
            total = sum(value for value in summary.values() if isinstance(value, int))
            text = "finished: %s registrations in %s, %s failed" % (
                _number(total), _seconds(elapsed), _number(summary.get("failed", 0)))
        else:
            text = "finished in %s" % _seconds(elapsed)
        display.display("[%s] wgtwo.sipbreakout.registration: %s" % (self.host, text))


def describe(counts, elapsed):
    """One line of progress from the module's counts (None: none yet)."""
    if not counts:
        return "running in the background, %s so far; no counts yet" % _seconds(elapsed)
    if counts.get("phase") == "starting":
        return "starting, %s so far" % _seconds(elapsed)
    if counts.get("phase") == "checking":
        return "checking the registrations file before anything is sent: %s lines, %s so far" % (
            _number(counts.get("checked", 0)), _seconds(elapsed))
    done, total, failed = counts.get("done", 0), counts.get("total", 0), counts.get("failed", 0)
    applying = counts.get("applying") or 0.0
    rate = done / applying if applying > 0 else 0.0
    text = "%s of %s done (%d%%), %s a second, %s failed, %s so far" % (
        _number(done), _number(total), 100 * done // total if total else 0, _number(rate), _number(failed),
        _seconds(elapsed))
    if rate > 0 and total > done:
        text += ", about %s left" % _seconds((total - done) / rate)
    return text


def _number(value):
    return "{:,}".format(int(round(value)))


def _seconds(value):
    value = int(round(value))
    return "%d s" % value if value < 120 else "%d min %02d s" % (value // 60, value % 60)
