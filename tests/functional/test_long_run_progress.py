# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of long runs in ansible-playbook: a registrations file runs in the background and prints how far it
is WHILE it runs, each line read as ansible-playbook prints it and checked against what the emulator holds at that
moment; the counts live in a private file that is gone at the end. Short runs (one registration, a short list,
check mode of a list, a small file) stay in the foreground: Ansible's async directory is never even created."""

import glob
import json
import os
import re
import stat
import subprocess
import sys
import time

import ansible_collections
import pytest

from sipbreakout_emulator.testing import running_emulator

from ansible_collections.wgtwo.sipbreakout.plugins.action.registration import BACKGROUND_BYTES, BACKGROUND_ITEMS

COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])
CLIENT_ID = "progress-client"
CLIENT_SECRET = "progress-Secret-Known-To-The-Test-5150"
SIP_URI = "sips:pbx.example.com:5061"
PROGRESS = re.compile(r"^\[localhost\] wgtwo\.sipbreakout\.registration: ([0-9,]+) of ([0-9,]+) done \(\d+%\), "
                      r"([0-9,]+) a second, ([0-9,]+) failed, \d+ s so far")
ANY_PROGRESS = "] wgtwo.sipbreakout.registration: "
# The long run: LINES registrations with LATENCY_MS on every call and CONCURRENCY in flight, about 300 a second:
# some 20 seconds, with little CPU (the emulator sleeps the latency in asyncio).
LINES = 6000
LATENCY_MS = 200
CONCURRENCY = 60

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/wgtwo.sipbreakout.sipbreakout:
      api_endpoint: "{{ endpoint }}"
      ca_path: "{{ ca }}"
      token_url: "{{ token_url }}"
      client_id: "{{ client_id }}"
      client_secret: "{{ client_secret }}"
      ledger_path: "{{ work }}/state/ledger.json"
      token_cache_path: "{{ work }}/cache/tokens.json"
  tasks:
%s
"""

FILE_TASK = """
    - name: Register the file
      wgtwo.sipbreakout.registration:
        registrations_file: "{{ work }}/numbers.csv"
        concurrency: %d
      register: outcome

    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ outcome | to_json }}"
        dest: "{{ work }}/outcome.json"
        mode: "0600"
""" % CONCURRENCY

SHORT_TASKS = """
    - name: One registration
      wgtwo.sipbreakout.registration:
        phone_number: "+4790000000"
        sip_uri: "%(uri)s"
        route_type: loop

    - name: A short list
      wgtwo.sipbreakout.registration:
        registrations: "{{ short_list }}"

    - name: A small file
      wgtwo.sipbreakout.registration:
        registrations_file: "{{ work }}/small.csv"

    - name: A long list in check mode
      wgtwo.sipbreakout.registration:
        registrations: "{{ long_list }}"
      check_mode: true
""" % dict(uri=SIP_URI)


def _numbers(count, prefix="+4792"):
    return ["%s%06d" % (prefix, index) for index in range(count)]


def _csv(path, numbers):
    with open(str(path), "w", encoding="utf-8") as handle:
        handle.write("phone_number,sip_uri,route_type\n")
        for number in numbers:
            handle.write("%s,%s,loop\n" % (number, SIP_URI))


@pytest.fixture(name="emulator")
def emulator_fixture(tmp_path):
    with running_emulator(tmp_path / "emulator", clients=[(CLIENT_ID, CLIENT_SECRET)]) as handle:
        yield handle


class Play:
    """ansible-playbook of one play against the emulator, with its own HOME, temporary and async directories."""

    def __init__(self, root, emulator, tasks, extra=None):
        self.work = root / "work"
        (self.work / "home").mkdir(parents=True)
        self.remote_tmp = self.work / "remote-tmp"
        self.async_dir = self.work / "async"
        variables = dict(endpoint=emulator.grpc_endpoint, ca=emulator.ca_path, token_url=emulator.token_url,
                         client_id=CLIENT_ID, client_secret=CLIENT_SECRET, work=str(self.work))
        variables.update(extra or {})
        self.variables = self.work / "vars.json"
        self.variables.write_text(json.dumps(variables))
        os.chmod(str(self.variables), 0o600)
        self.playbook = self.work / "play.yml"
        self.playbook.write_text(PLAYBOOK % tasks)
        self.env = dict(os.environ, HOME=str(self.work / "home"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                        ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(self.work / "tmp"),
                        ANSIBLE_REMOTE_TEMP=str(self.remote_tmp), ANSIBLE_ASYNC_DIR=str(self.async_dir))

    def argv(self, *extra):
        return [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-e", "@%s" % self.variables] \
            + list(extra) + [str(self.playbook)]

    def run(self, *extra):
        run = subprocess.run(self.argv(*extra), env=self.env, cwd=str(self.work), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=300, check=False)
        return run.returncode, run.stdout.decode("utf-8", "replace")

    def progress_files(self):
        return glob.glob(str(self.remote_tmp / "*" / "progress" / "progress.json"))

    def secrets(self):
        """The client secret and every token the runs obtained (from the 0600 token cache)."""
        cache = json.loads((self.work / "cache" / "tokens.json").read_text())["body"]
        return {CLIENT_SECRET} | set(entry["access_token"] for entry in cache.values())


def test_a_long_file_shows_progress_while_it_runs(tmp_path, emulator):
    numbers = _numbers(LINES)
    play = Play(tmp_path, emulator, FILE_TASK)
    _csv(play.work / "numbers.csv", numbers)
    assert os.path.getsize(str(play.work / "numbers.csv")) >= BACKGROUND_BYTES
    emulator.faults(latency_ms=LATENCY_MS)

    started = time.monotonic()
    process = subprocess.Popen(play.argv(), env=play.env, cwd=str(play.work), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True, bufsize=1)
    lines = []  # (seconds since start, line)
    every = []  # when each progress line came, whatever it says (starting, checking the file, how many are done)
    seen = []  # per line of counts: (seconds, done, total, failed, what the emulator held, the progress files' modes)
    try:
        for line in process.stdout:
            now = time.monotonic() - started
            lines.append((now, line.rstrip("\n")))
            if ANY_PROGRESS in line:
                every.append(now)
            match = PROGRESS.match(line)
            if match:
                # What the emulator holds now, asked independently of anything the module says.
                held = emulator.registrations_summary()["count"]
                modes = [(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
                          stat.S_IMODE(os.stat(path).st_mode)) for path in play.progress_files()]
                seen.append((now, int(match.group(1).replace(",", "")), int(match.group(2).replace(",", "")),
                             int(match.group(4).replace(",", "")), held, modes))
        process.wait(300)
    finally:
        if process.poll() is None:
            process.kill()
    output = "\n".join(line for _at, line in lines)
    assert process.returncode == 0, output[-3000:]

    task_at = next(at for at, line in lines if line.startswith("TASK [Register the file]"))
    done_at = next(at for at, line in lines if line.startswith("changed: [localhost]"))
    # Lines came WHILE it ran: the first while the emulator held only part of the file, each within ~10 s of the
    # one before, the task header first and the result last.
    assert len(seen) >= 2, output
    assert seen[0][4] < LINES and seen[0][1] < LINES
    assert done_at - seen[0][0] >= 5.0, output
    times = [task_at] + every + [done_at]
    assert max(later - earlier for earlier, later in zip(times, times[1:])) <= 10.0, times
    # The counts are real: never more done than the emulator held at that moment, growing, of the whole file.
    for _at, done, total, failed, held, _modes in seen:
        assert total == LINES and failed == 0 and done <= held
    assert [done for _at, done, *_rest in seen] == sorted(set(done for _at, done, *_rest in seen))
    # The counts were a 0600 file in a 0700 directory of the run's own; none is left, nor Ansible's job file.
    assert seen[0][5] == [(0o700, 0o600)]
    assert play.progress_files() == [] and os.listdir(str(play.remote_tmp)) == []
    assert play.async_dir.is_dir() and os.listdir(str(play.async_dir)) == []
    assert re.search(r"wgtwo\.sipbreakout\.registration: finished: 6,000 registrations in \d+ s", output), output

    # The task's result is what the module returned, as in the foreground: no trace of the async job.
    outcome = json.loads((play.work / "outcome.json").read_text())
    assert outcome["summary"]["created"] == LINES and outcome["changed"] and not outcome.get("failed")
    assert not set(outcome) & {"ansible_job_id", "started", "finished", "results_file"}
    assert emulator.registrations_summary()["count"] == LINES
    assert sorted(reg["phone_number"] for reg in emulator.registrations()) == numbers
    for secret in play.secrets():
        assert secret not in output


def test_short_runs_stay_in_the_foreground_and_a_long_list_goes_to_the_background(tmp_path, emulator):
    long_list = [dict(phone_number=number, sip_uri=SIP_URI, route_type="loop")
                 for number in _numbers(BACKGROUND_ITEMS, "+4793")]
    short_list = [dict(phone_number=number, sip_uri=SIP_URI, route_type="loop") for number in _numbers(10, "+4791")]
    play = Play(tmp_path, emulator, SHORT_TASKS, extra=dict(long_list=long_list, short_list=short_list))
    _csv(play.work / "small.csv", _numbers(10, "+4794"))
    rc, output = play.run()
    assert rc == 0, output[-3000:]
    # No task went to the background: async_wrapper would have made ANSIBLE_ASYNC_DIR.
    assert not play.async_dir.exists() and ANY_PROGRESS not in output
    assert emulator.registrations_summary()["count"] == 1 + 10 + 10

    # The same long list for real: in the background, with the same result.
    play.playbook.write_text(PLAYBOOK % """
    - name: A long list
      wgtwo.sipbreakout.registration:
        registrations: "{{ long_list }}"
      register: outcome

    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ outcome | to_json }}"
        dest: "{{ work }}/outcome.json"
        mode: "0600"
""")
    rc, output = play.run()
    assert rc == 0, output[-3000:]
    assert play.async_dir.is_dir() and os.listdir(str(play.async_dir)) == []
    outcome = json.loads((play.work / "outcome.json").read_text())
    assert outcome["summary"]["created"] == BACKGROUND_ITEMS
    assert emulator.registrations_summary()["count"] == 21 + BACKGROUND_ITEMS
    for secret in play.secrets():
        assert secret not in output
    assert play.progress_files() == []


def test_a_failure_in_the_background_reads_as_in_the_foreground(tmp_path, emulator):
    play = Play(tmp_path, emulator, """
    - name: A long file with a bad line deep inside
      wgtwo.sipbreakout.registration:
        registrations_file: "{{ work }}/numbers.csv"
""")
    numbers = _numbers(BACKGROUND_BYTES // 40, "+4795")
    _csv(play.work / "numbers.csv", numbers)
    with open(str(play.work / "numbers.csv"), "a", encoding="utf-8") as handle:
        handle.write("+4795999999,sips:pbx.example.com:5061,sideways\n")
    # At -vvv, where every command on the host is shown.
    rc, output = play.run("-vvv")
    assert rc != 0
    assert play.async_dir.is_dir() and "async_wrapper" in output  # it did go to the background
    assert "numbers.csv has 1 problem(s); nothing was sent" in output and "line %d" % (len(numbers) + 2) in output, output[-3000:]
    assert '"option": "registrations_file"' in output
    assert emulator.calls(limit=0)["total"] == 0
    assert play.progress_files() == [] and os.listdir(str(play.async_dir)) == []
    assert CLIENT_SECRET not in output
