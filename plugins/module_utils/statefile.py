# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A JSON file that several processes update safely: the token cache and the keepalive's health file.

Readers never lock: every write goes to a temporary file in the same directory, is fsynced and renamed over the
old one, so a reader sees either the old or the new content, never half of it. Writers serialise on an ``flock``
of a sibling ``.lock`` file, re-read under the lock and only then write, so Ansible forks and a keepalive
running at the same time do not lose each other's updates. Files are created 0600 in a 0700 directory.
"""

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import time

from .errors import LedgerError

# The file, its body and the maps in the body are spread over lines; what the maps hold is one line per entry.
SPREAD_DEPTH = 3


@contextlib.contextmanager
def locked(path, timeout, shared=False, error=LedgerError, stop=None):
    """Hold an ``flock`` on ``path`` (created 0600 in a 0700 directory), shared or exclusive.

    Waits up to ``timeout`` seconds, or until the event ``stop`` is set, then raises ``error``. The kernel drops
    the lock when the holder exits or is killed, so a crash never leaves a stale lock behind.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise error("cannot create %s: %s" % (directory, exc.strerror or exc))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise error("cannot open %s: %s" % (path, exc.strerror or exc))
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise error("cannot lock %s: %s" % (path, exc.strerror or exc))
            if stop is not None and stop.is_set():
                raise error("stopped while waiting for the lock %s" % path)
            if time.monotonic() >= end:
                raise error("%s stayed locked by another process for %g s; is a run or keepalive stuck?"
                            % (path, timeout))
            time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _encode(value, depth=0):
    """JSON with the outer objects spread over lines and each of their entries on one line of its own.

    A person can still read, grep and diff it, and each line comes from the json module's C encoder (``indent``
    would use its pure-Python one, several times slower for a file of 10,000 entries).
    """
    if depth < SPREAD_DEPTH and isinstance(value, dict) and value:
        indent = " " * (depth + 1)
        lines = ["%s%s: %s" % (indent, json.dumps(key), _encode(value[key], depth + 1)) for key in sorted(value)]
        return "{\n%s\n%s}" % (",\n".join(lines), indent[1:])
    return json.dumps(value, sort_keys=True)


class StateFile:
    """``path`` holds one JSON object with ``format`` and ``version`` keys that are checked on every read."""

    def __init__(self, path, file_format, version=1, lock_timeout=60.0, error=LedgerError):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.format = file_format
        self.version = version
        self.lock_timeout = lock_timeout
        self._error = error

    def read(self):
        """The stored body (without the header); an empty dict when the file does not exist yet."""
        try:
            with open(self.path, "r") as handle:
                text = handle.read()
        except (IOError, OSError) as exc:
            if exc.errno == errno.ENOENT:
                return {}
            raise self._error("cannot read %s: %s" % (self.path, exc.strerror or exc))
        return self._parse(text)

    def _parse(self, text):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise self._error("%s is corrupt (%s). It was left untouched: restore it from a backup or move it "
                              "aside once you know what it held." % (self.path, exc))
        if not isinstance(data, dict) or data.get("format") != self.format or not isinstance(data.get("body"), dict):
            raise self._error("%s is not a %s file (format %r). It was left untouched." %
                              (self.path, self.format, data.get("format") if isinstance(data, dict) else None))
        if data.get("version") != self.version:
            raise self._error("%s has version %r; this collection reads version %d. It was left untouched: use the "
                              "collection version that wrote it." % (self.path, data.get("version"), self.version))
        return data["body"]

    @contextlib.contextmanager
    def update(self):
        """Yield the body under an exclusive lock; what the caller leaves in it is written atomically on exit.

        Nothing is written when the block raises.
        """
        with locked(self.path + ".lock", self.lock_timeout, error=self._error):
            body = self.read()
            yield body
            self._write(body)

    def replace(self, body):
        """Write ``body`` under the exclusive lock without reading the file first: for a file that only repeats
        what is known elsewhere (the health file), whose old content, even a corrupt one, does not matter."""
        with locked(self.path + ".lock", self.lock_timeout, error=self._error):
            self._write(body)

    def _write(self, body):
        data = {"format": self.format, "version": self.version, "body": body}
        write_atomically(self.path, lambda handle: handle.write(_encode(data) + "\n"))
        fsync_directory(os.path.dirname(self.path))


def write_atomically(path, write, mode=0o600, binary=False, suffix=""):
    """Replace ``path`` with what ``write(handle)`` writes: into a temporary file beside it (``suffix`` ends its
    name), fsynced, given ``mode``, then renamed over ``path``. Nothing is left behind when ``write`` raises."""
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=suffix, dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fsync_directory(directory):
    """A rename into ``directory`` is durable only once the directory entry is on disk."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
