# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How far a long run is, for whoever started it: counts in a small JSON file on the module's host.

The registration action plugin runs a long list or a file in the background (Ansible's async) and reads this file
while it runs, to print a line of progress in ``ansible-playbook`` and AWX. It names a directory that does not exist
yet, inside its own private remote temporary directory; the run creates it 0700, keeps one 0600 file in it, written
atomically at most every ``interval`` seconds, and removes both when it ends. The file holds counts only, never a
phone number, a URI or a credential. Progress is a courtesy: when the directory cannot be made, the run goes on
without it.
"""

import contextlib
import json
import os
import time

from .statefile import write_atomically

# Set by the action plugin (plugins/action/registration.py) in the module's environment; a run without it (a task
# that runs in the foreground, the keepalive, tests) writes nothing.
PROGRESS_DIR_ENV = "WGTWO_SIPBREAKOUT_PROGRESS_DIR"
PROGRESS_FILE = "progress.json"

STARTING, CHECKING, APPLYING = "starting", "checking", "applying"
WRITE_INTERVAL = 1.0


class Progress:
    """The counts of one run: lines checked, steps to do, done and failed.

    Without ``directory`` it only counts. ``clock`` is monotonic; ``wall`` stamps the file.
    """

    def __init__(self, directory=None, interval=WRITE_INTERVAL, clock=time.monotonic, wall=time.time):
        self.path = None
        self.interval = interval
        self._clock = clock
        self._wall = wall
        self.started = clock()
        self.phase = STARTING
        self.checked = 0
        self.total = 0
        self.done = 0
        self.failed = 0
        self.applying_since = None
        self._written = None
        self._directory = None
        if directory:
            self._open(directory)

    @classmethod
    def from_environment(cls, environ=None):
        """The Progress the action plugin asked for, or one that only counts."""
        return cls((os.environ if environ is None else environ).get(PROGRESS_DIR_ENV))

    def _open(self, directory):
        # A directory of its own, made here: never a file or a directory that something else owns.
        try:
            os.mkdir(directory, 0o700)
        except OSError:
            return
        self._directory = directory
        self.path = os.path.join(directory, PROGRESS_FILE)
        self._write()

    def line_checked(self):
        """One more line of a file checked before anything is sent."""
        self.phase = CHECKING
        self.checked += 1
        self._tick()

    def expect(self, count):
        """``count`` more steps to do; the run is applying from now on."""
        if self.applying_since is None:
            self.applying_since = self._clock()
        self.phase = APPLYING
        self.total += count
        self._tick()

    def call_done(self, call):
        """A call ended (answered, failed or refused before sending): the callback of RegistrationService.apply."""
        self.done += 1
        if call.error is not None:
            self.failed += 1
        self._tick()

    def settled(self, done, failed):
        """The counts after a chunk, from its report: every step, sent or not (check mode sends none)."""
        self.done = done
        self.failed = failed
        self._tick()

    def snapshot(self):
        """What the file holds: counts and seconds, nothing else."""
        now = self._clock()
        applying = now - self.applying_since if self.applying_since is not None else 0.0
        return dict(phase=self.phase, checked=self.checked, total=self.total, done=self.done, failed=self.failed,
                    elapsed=round(now - self.started, 3), applying=round(applying, 3), updated=self._wall(),
                    pid=os.getpid())

    def _tick(self):
        if self.path is not None and self._clock() - self._written >= self.interval:
            self._write()

    def _write(self):
        self._written = self._clock()
        body = json.dumps(self.snapshot(), sort_keys=True)
        try:
            write_atomically(self.path, lambda handle: handle.write(body))
        except OSError:
            self.close()  # removed under the run's feet (its temporary directory cleaned up): stop writing

    def close(self):
        """The run ended: the file and its directory go."""
        if self._directory is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self._directory)
        self._directory = self.path = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
