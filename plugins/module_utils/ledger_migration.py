# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converts a JSON ledger (format 1, written by earlier versions) into the SQLite ledger at the same path, once,
its entries in the default scope.

Under the ledger's ``.lock`` (the lock earlier versions took to write the JSON file, so one of them cannot write
in between), the entries are read and checked, written to a new database in the same directory, which is fsynced
and renamed over the JSON file; the JSON file is kept beside it as ``<path>.json-v1.bak`` (0600). A crash before
the rename leaves the JSON ledger in place, and the next use converts it again; after it, there is nothing left to
do. A JSON ledger that cannot be read is reported and left as it is.
"""

import contextlib
import os
import shutil
import sqlite3
import tempfile

from .errors import LedgerError
from .ledger_entry import LedgerEntry
from .ledger_sqlite_schema import INSERT_ROW, SQLITE_MAGIC, create_schema, file_start
from .ledger_store import DEFAULT_SCOPE
from .statefile import StateFile, fsync_directory, locked, write_atomically

FORMAT_V1 = "wgtwo.sipbreakout/ledger"
BACKUP_SUFFIX = ".json-v1.bak"
_TEMPORARY = ".%s.migrating-"


def migrate(path, lock_timeout):
    """Convert the JSON ledger at ``path``, unless another process has done so meanwhile."""
    with locked(path + ".lock", lock_timeout):
        # No connection of this process is open on a file SQLite has just refused, so it may be read here.
        if file_start(path) in (SQLITE_MAGIC, b"", None):
            return  # converted (or removed) meanwhile
        entries = read_v1(path)
        directory = os.path.dirname(path)
        _remove_leftovers(directory, os.path.basename(path))
        fd, tmp = tempfile.mkstemp(prefix=_TEMPORARY % os.path.basename(path), dir=directory)
        os.close(fd)
        try:
            write_database(tmp, entries, path)
            _copy_private(path, path + BACKUP_SUFFIX)
            os.rename(tmp, path)
        except BaseException:
            for name in (tmp, tmp + "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(name)
            raise
        fsync_directory(directory)


def read_v1(path):
    """``{key: LedgerEntry}`` of a JSON ledger; LedgerError (the file left untouched) when it is not one."""
    body = StateFile(path, FORMAT_V1).read()
    try:
        return dict((key, LedgerEntry.from_json(value)) for key, value in body.get("registrations", {}).items())
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise LedgerError("%s holds an entry this collection cannot read (%s: %s). It was left untouched."
                          % (path, type(exc).__name__, exc))


def write_database(tmp, entries, path):
    """The entries as a complete ledger database at ``tmp``, on disk when this returns."""
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            create_schema(conn)
            conn.executemany(INSERT_ROW, ((DEFAULT_SCOPE,) + entry.row(key) for key, entry in entries.items()))
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise LedgerError("cannot convert the ledger %s to SQLite: %s. It was left untouched." % (path, exc))
    os.chmod(tmp, 0o600)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_private(source, target):
    """``source``'s bytes at ``target`` (0600, fsynced, replaced atomically)."""
    def copy(handle):
        with open(source, "rb") as original:
            shutil.copyfileobj(original, handle)

    write_atomically(target, copy, binary=True)


def _remove_leftovers(directory, name):
    """Temporary databases of a conversion that was killed (only ever made under the lock held now)."""
    prefix = _TEMPORARY % name
    for leftover in os.listdir(directory):
        if leftover.startswith(prefix):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, leftover))
