# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progress file of a run in the background: a directory of its own (0700) made by the run, one 0600 file
written at most every interval, counts only, both gone at the end; never written into something that was there."""

import json
import os
import stat

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.client import Call
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ApiError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.progress import PROGRESS_DIR_ENV, PROGRESS_FILE, \
    Progress
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Registration


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _read(directory):
    with open(os.path.join(str(directory), PROGRESS_FILE), "r", encoding="utf-8") as handle:
        return json.load(handle)


def _call(error=None):
    call = Call(Registration.create(phone_number="+4799990001", sip_uri="sips:pbx.example.com:5061", route_type="loop"))
    call.error = error
    return call


def test_counts_are_written_privately_at_most_every_interval_and_removed(tmp_path):
    clock = _Clock()
    directory = tmp_path / "progress"
    progress = Progress(str(directory), interval=1.0, clock=clock, wall=lambda: 1234.5)
    assert stat.S_IMODE(os.stat(str(directory)).st_mode) == 0o700
    path = directory / PROGRESS_FILE
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    assert _read(directory)["phase"] == "starting"

    for _line in range(3):
        progress.line_checked()
    assert _read(directory)["checked"] == 0  # within the interval: not written again
    clock.now += 1.0
    progress.line_checked()
    assert _read(directory)["checked"] == 4

    progress.expect(10)
    clock.now += 2.0
    progress.call_done(_call())
    progress.call_done(_call(ApiError("down", code="UNAVAILABLE", retryable=True)))
    written = _read(directory)
    assert written == dict(phase="applying", checked=4, total=10, done=1, failed=0, elapsed=3.0, applying=2.0,
                           updated=1234.5, pid=os.getpid())
    clock.now += 1.0
    progress.settled(7, 2)
    assert (_read(directory)["done"], _read(directory)["failed"]) == (7, 2)
    # Counts and seconds only: nothing of a registration.
    assert "+4799990001" not in path.read_text() and "sips:" not in path.read_text()
    assert sorted(os.listdir(str(directory))) == [PROGRESS_FILE]  # no temporary file left beside it

    progress.close()
    assert not directory.exists()
    progress.call_done(_call())  # after the end: counts, writes nothing
    assert not directory.exists()


def test_a_path_that_exists_is_never_written(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / PROGRESS_FILE).write_text("someone else's")
    with Progress(str(taken), interval=0.0) as progress:
        progress.expect(1)
        progress.call_done(_call())
        assert progress.path is None and progress.done == 1
    assert (taken / PROGRESS_FILE).read_text() == "someone else's"
    # A symbolic link where the directory would be is not followed either.
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with Progress(str(tmp_path / "link"), interval=0.0) as progress:
        progress.expect(1)
    assert os.listdir(str(target)) == []


def test_without_the_environment_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(PROGRESS_DIR_ENV, raising=False)
    progress = Progress.from_environment()
    progress.expect(2)
    progress.call_done(_call())
    assert progress.path is None and (progress.total, progress.done) == (2, 1)

    directory = tmp_path / "asked"
    with Progress.from_environment({PROGRESS_DIR_ENV: str(directory)}) as progress:
        assert _read(directory)["total"] == 0
    assert not directory.exists()


def test_a_directory_removed_under_the_run_ends_the_writing(tmp_path):
    directory = tmp_path / "progress"
    progress = Progress(str(directory), interval=0.0)
    os.unlink(str(directory / PROGRESS_FILE))
    os.rmdir(str(directory))
    progress.expect(5)  # the write fails: progress stops quietly, the run goes on
    assert progress.path is None and not directory.exists()
