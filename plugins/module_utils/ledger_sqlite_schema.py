# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQLite ledger's database file: its schema, format checks, upgrades and connection.

The database is checked to be this collection's (``application_id``) and of a format it knows (``user_version``);
format 2 (before scopes and claims) is upgraded in place, in one transaction; a newer one is refused. A corrupt or
foreign file is reported and never reset or recreated. Files are 0600 in a 0700 directory (``-wal`` and ``-shm``
too); WAL and ``synchronous=FULL``, so each transaction is on disk when it returns.
"""

import contextlib
import errno
import os
import sqlite3

from .errors import LedgerError
from .ledger_entry import COLUMNS
from .ledger_store import DEFAULT_SCOPE

# The first 16 bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
# PRAGMA application_id: "wgsb". Tells this collection's ledger from any other SQLite database.
APPLICATION_ID = 0x77677362
# PRAGMA user_version: the ledger format. 1 was the JSON file of earlier versions; 2 had no scopes or claims.
FORMAT_VERSION = 3

SELECT = "SELECT %s FROM registrations" % ", ".join(COLUMNS)
# A row is stored with its scope first.
INSERT_ROW = "INSERT OR REPLACE INTO registrations (scope, %s) VALUES (?, %s)" % (
    ", ".join(COLUMNS), ", ".join(["?"] * len(COLUMNS)))
# The keepalive's order: unconfirmed and never-confirmed entries first, then by expiry (ledger_store.due_position).
# The same expression as the index, so that SQLite uses it.
DUE = "(CASE WHEN unconfirmed <> 0 THEN 0 ELSE IFNULL(expires_at, 0) END)"
FAILING = "(last_error IS NOT NULL AND last_error != '')"

SCHEMA = (
    """CREATE TABLE registrations (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        principal TEXT NOT NULL,
        phone_number TEXT,
        sip_uri TEXT NOT NULL,
        route_type TEXT,
        mobile_originating_prefix TEXT,
        mobile_terminating_prefix TEXT,
        upserted_at REAL,
        time_to_live REAL,
        expires_at REAL,
        last_error TEXT,
        last_attempt_at REAL,
        delete_pending INTEGER NOT NULL DEFAULT 0,
        unconfirmed INTEGER NOT NULL DEFAULT 0,
        claimed_by TEXT,
        claimed_until REAL,
        changed_at REAL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID""",
    # The keepalive's question: this endpoint's and principal's entries, not pending a delete, in its order.
    "CREATE INDEX registrations_due ON registrations (scope, endpoint, principal, delete_pending, %s)" % DUE,
    "CREATE INDEX registrations_by_number ON registrations (scope, phone_number)",
)

# The columns format 2 had: those of COLUMNS up to delete_pending.
_V2_COLUMNS = COLUMNS[:COLUMNS.index("delete_pending") + 1]
# Format 2 -> 3: the same rows in the default scope, with nothing unconfirmed or claimed.
_UPGRADE_FROM_2 = (
    "ALTER TABLE registrations RENAME TO registrations_v2",
    "DROP INDEX IF EXISTS registrations_by_owner",
    "DROP INDEX IF EXISTS registrations_by_number",
) + SCHEMA + (
    "INSERT INTO registrations (scope, %s) SELECT '%s', %s FROM registrations_v2" % (
        ", ".join(_V2_COLUMNS), DEFAULT_SCOPE, ", ".join(_V2_COLUMNS)),
    "DROP TABLE registrations_v2",
)


def file_start(path):
    """The first 16 bytes of ``path``; None when it does not exist.

    Never for a file this process may have open as a database: closing any descriptor of a file drops every POSIX
    lock the process holds on it, SQLite's too, and another process could then checkpoint the WAL away from under
    this one's connection. So it is read only once SQLite has refused the file as not a database.
    """
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_MAGIC))
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise LedgerError("cannot read %s: %s" % (path, exc.strerror or exc))


class NotADatabase(Exception):
    """SQLite found something else at the ledger's path: a JSON ledger to convert, or a corrupt file."""


def connect(path, lock_timeout, create=True):
    """An ``sqlite3`` connection to the ledger database at ``path`` (created 0600 in a 0700 directory with
    ``create``), checked to be a ledger of FORMAT_VERSION (upgraded from format 2); autocommit, so that
    transactions are explicit."""
    directory = os.path.dirname(path)
    with errors(path, lock_timeout):
        if create and not os.path.exists(path):
            try:
                os.makedirs(directory, 0o700)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise LedgerError("cannot create %s: %s" % (directory, exc.strerror or exc))
            # SQLite gives its -wal and -shm files the mode of the database file; the umask covers the rest.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        previous = os.umask(0o077)
        try:
            conn = sqlite3.connect(path, timeout=lock_timeout, isolation_level=None)
            try:
                _prepare(conn, path)
            except sqlite3.DatabaseError as exc:
                conn.close()
                if "not a database" in str(exc):
                    raise NotADatabase(str(exc))
                raise
            except BaseException:
                conn.close()
                raise
        finally:
            os.umask(previous)
    return conn


def _prepare(conn, path):
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        # New and empty: the schema and the identifiers are written in one transaction, so a database either has
        # all of them or nothing. Another process may have done it meanwhile: checked again under the lock.
        with transaction(conn):
            if (conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
                    and conn.execute("PRAGMA application_id").fetchone()[0] == 0):
                create_schema(conn)
    check_application(conn, path)
    if conn.execute("PRAGMA user_version").fetchone()[0] == 2:
        with transaction(conn):
            if conn.execute("PRAGMA user_version").fetchone()[0] == 2:  # not upgraded by another process meanwhile
                for statement in _UPGRADE_FROM_2:
                    conn.execute(statement)
                conn.execute("PRAGMA user_version=%d" % FORMAT_VERSION)
    check_version(conn, path)
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    # Every commit is on disk before update() returns, as the fsynced JSON file was.
    conn.execute("PRAGMA synchronous=FULL")


@contextlib.contextmanager
def transaction(conn):
    # IMMEDIATE: the write lock is taken before the first read, so nothing changes between the two.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def create_schema(conn):
    """The tables, indexes and identifiers of an empty ledger database (inside the caller's transaction)."""
    for statement in SCHEMA:
        conn.execute(statement)
    conn.execute("PRAGMA application_id=%d" % APPLICATION_ID)
    conn.execute("PRAGMA user_version=%d" % FORMAT_VERSION)


def check_application(conn, path):
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if application_id != APPLICATION_ID:
        raise LedgerError("%s is an SQLite database but not a wgtwo.sipbreakout ledger (application_id %d). It was "
                          "left untouched: point ledger_path at the ledger, or move this file aside."
                          % (path, application_id))


def check_version(conn, path):
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != FORMAT_VERSION:
        raise LedgerError("%s has ledger format %d; this collection reads format %d. It was left untouched: use the "
                          "collection version that wrote it." % (path, version, FORMAT_VERSION))


def corrupt(path, exc):
    return LedgerError("%s is corrupt (%s). It was left untouched: restore it from a backup or move it aside once "
                       "you know what it held." % (path, exc))


@contextlib.contextmanager
def errors(path, lock_timeout):
    """sqlite3's exceptions as LedgerError naming the ledger; the file is never reset or recreated."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise LedgerError("%s stayed locked by another process for %g s; is a run or keepalive stuck?"
                              % (path, lock_timeout))
        raise LedgerError("cannot use the ledger %s: %s. It was left untouched." % (path, text))
    except sqlite3.DatabaseError as exc:
        raise corrupt(path, exc)
    except (IOError, OSError) as exc:
        raise LedgerError("cannot use the ledger %s: %s" % (path, exc.strerror or exc))
