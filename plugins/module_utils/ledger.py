# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger: what this host applied at the operator, since the API cannot be asked.

One entry per registration, keyed by API endpoint, principal (``TokenSource.principal``: whose credentials applied
it), number (none for user tokens: it is the token's) and ``sip_uri``. It holds the registration as last sent, when
the last successful upsert was, the TTL the server returned, the last error and whether a delete is pending. It never
holds a token or secret. The keepalive reads the same file.

On disk it is an SQLite database (Python's own ``sqlite3``, WAL), so that one number added to a million costs one
row, not a rewrite, and readers that need counts do not load every entry. Each ``update()`` is one transaction:
readers see the ledger before or after it, never half of it, and a process killed mid-way leaves the last committed
state. A ledger of the JSON format that earlier versions wrote is converted on first use (``ledger_migration``).
"""

import contextlib
import datetime
import errno
import json
import os
import sqlite3
import time

from .auth import names_one_subscription
from .errors import LedgerError
from .registration import Registration
from .statefile import locked

DEFAULT_LEDGER_PATH = "~/.local/state/wgtwo.sipbreakout/ledger.json"

# The first 16 bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
# PRAGMA application_id: "wgsb". Tells this collection's ledger from any other SQLite database.
APPLICATION_ID = 0x77677362
# PRAGMA user_version: the ledger format. 1 was the JSON file of earlier versions.
FORMAT_VERSION = 2

_REGISTRATION_FIELDS = ("phone_number", "sip_uri", "route_type", "mobile_originating_prefix",
                        "mobile_terminating_prefix")
COLUMNS = ("key", "endpoint", "principal") + _REGISTRATION_FIELDS + (
    "upserted_at", "time_to_live", "expires_at", "last_error", "last_attempt_at", "delete_pending")
_SELECT = "SELECT %s FROM registrations" % ", ".join(COLUMNS)
INSERT_ROW = "INSERT OR REPLACE INTO registrations (%s) VALUES (%s)" % (
    ", ".join(COLUMNS), ", ".join(["?"] * len(COLUMNS)))
# Entries in key order are read in pages of this many rows, each its own statement: no read stays open across a
# caller's writes, and memory does not grow with the ledger.
PAGE_ROWS = 1000
# Keys per "IN (...)" lookup: below SQLite's oldest limit of 999 variables.
KEYS_PER_QUERY = 500
# Where the keepalive looks for due entries, in expiry order; an entry never confirmed (no expiry) comes first.
_EXPIRY = "IFNULL(expires_at, 0)"
_FAILING = "(last_error IS NOT NULL AND last_error != '')"

SCHEMA = (
    """CREATE TABLE registrations (
        key TEXT PRIMARY KEY NOT NULL,
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
        delete_pending INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    # The keepalive's question: this endpoint's and principal's entries, not pending a delete, by expiry.
    "CREATE INDEX registrations_by_owner ON registrations (endpoint, principal, delete_pending, %s)" % _EXPIRY,
    "CREATE INDEX registrations_by_number ON registrations (phone_number)",
)


def isoformat(epoch):
    """UTC ISO 8601 with a ``Z``, to the second."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_key(endpoint, principal, registration):
    # With a user token the number is the token's, whether or not it is given: "+47..." and no number for the same
    # sip_uri are one registration at the operator, so they must be one entry.
    number = None if names_one_subscription(principal) else registration.phone_number
    return json.dumps([endpoint, principal, number, registration.sip_uri])


class LedgerEntry:
    """One registration as this host last applied it."""

    __slots__ = ("endpoint", "principal", "registration", "upserted_at", "time_to_live", "last_error",
                 "last_attempt_at", "delete_pending")

    def __init__(self, endpoint, principal, registration, upserted_at=None, time_to_live=None, last_error=None,
                 last_attempt_at=None, delete_pending=False):
        self.endpoint = endpoint
        self.principal = principal
        self.registration = registration
        self.upserted_at = upserted_at
        self.time_to_live = time_to_live
        self.last_error = last_error
        self.last_attempt_at = last_attempt_at
        # A delete was asked for and failed or was not sent: the registration may or may not still exist, but it
        # must not be renewed; the next run that asks for it absent (or purges it) sends the delete again.
        self.delete_pending = delete_pending

    @property
    def key(self):
        return entry_key(self.endpoint, self.principal, self.registration)

    @property
    def expires_at(self):
        if self.upserted_at is None or self.time_to_live is None:
            return None
        return self.upserted_at + self.time_to_live

    def live(self, now):
        """Still within the TTL of the last successful upsert, as far as this ledger knows."""
        return self.expires_at is not None and self.expires_at > now

    def row(self, key):
        """The entry as the columns of COLUMNS, stored under ``key``."""
        return (key, self.endpoint, self.principal) + tuple(self.registration) + (
            self.upserted_at, self.time_to_live, self.expires_at, self.last_error, self.last_attempt_at,
            1 if self.delete_pending else 0)

    @classmethod
    def from_row(cls, row):
        return cls(row[1], row[2], Registration(*row[3:8]), row[8], row[9], row[11], row[12], bool(row[13]))

    @classmethod
    def from_json(cls, data):
        """An entry of the JSON ledger (format 1)."""
        return cls(data["endpoint"], data["principal"], Registration.from_dict(data["registration"]),
                   data.get("upserted_at"), data.get("time_to_live"), data.get("last_error"),
                   data.get("last_attempt_at"), bool(data.get("delete_pending")))


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
    ``create``), checked to be a ledger of FORMAT_VERSION; autocommit, so that transactions are explicit."""
    directory = os.path.dirname(path)
    with _errors(path, lock_timeout):
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
        conn.execute("BEGIN IMMEDIATE")
        try:
            if (conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
                    and conn.execute("PRAGMA application_id").fetchone()[0] == 0):
                create_schema(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    check_format(conn, path)
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    # Every commit is on disk before update() returns, as the fsynced JSON file was.
    conn.execute("PRAGMA synchronous=FULL")


def create_schema(conn):
    """The tables, indexes and identifiers of an empty ledger database (inside the caller's transaction)."""
    for statement in SCHEMA:
        conn.execute(statement)
    conn.execute("PRAGMA application_id=%d" % APPLICATION_ID)
    conn.execute("PRAGMA user_version=%d" % FORMAT_VERSION)


def check_format(conn, path):
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if application_id != APPLICATION_ID:
        raise LedgerError("%s is an SQLite database but not a wgtwo.sipbreakout ledger (application_id %d). It was "
                          "left untouched: point ledger_path at the ledger, or move this file aside."
                          % (path, application_id))
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != FORMAT_VERSION:
        raise LedgerError("%s has ledger format %d; this collection reads format %d. It was left untouched: use the "
                          "collection version that wrote it." % (path, version, FORMAT_VERSION))


def corrupt(path, exc):
    return LedgerError("%s is corrupt (%s). It was left untouched: restore it from a backup or move it aside once "
                       "you know what it held." % (path, exc))


@contextlib.contextmanager
def _errors(path, lock_timeout):
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


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Ledger:
    """The entries of one ledger file. Reads need no lock; ``update()`` is one write transaction."""

    def __init__(self, path=DEFAULT_LEDGER_PATH, lock_timeout=60.0, clock=time.time):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.lock_timeout = lock_timeout
        self.clock = clock
        self._conn = None
        self._pid = None

    # ------------------------------------------------------------------------------------------ connection

    def _connection(self, create=False):
        """The open connection; None when the ledger does not exist and ``create`` is false (then it reads as
        empty, and a read-only use such as check mode or registration_info leaves no file behind)."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None
        if not create and not os.path.exists(self.path):
            return None
        try:
            conn = connect(self.path, self.lock_timeout)
        except NotADatabase as exc:
            if file_start(self.path) == SQLITE_MAGIC:
                raise corrupt(self.path, exc)
            from .ledger_migration import migrate  # pylint: disable=import-outside-toplevel  # once per ledger
            migrate(self.path, self.lock_timeout)
            conn = connect(self.path, self.lock_timeout)
        self._conn = conn
        self._pid = os.getpid()
        return conn

    def close(self):
        """Close the connection (the next use opens it again, and sees a file replaced meanwhile)."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def _query(self, sql, params=()):
        """All rows of one read statement; [] when the ledger does not exist."""
        conn = self._connection()
        if conn is None:
            return []
        with _errors(self.path, self.lock_timeout):
            return conn.execute(sql, params).fetchall()

    # ------------------------------------------------------------------------------------------ reading

    def read(self):
        """Every entry: ``{key: LedgerEntry}``. For small ledgers and whole-ledger decisions; see find() and get()."""
        conn = self._connection()
        if conn is None:
            return {}
        with _errors(self.path, self.lock_timeout):
            return dict((row[0], LedgerEntry.from_row(row)) for row in conn.execute(_SELECT))

    def get(self, keys):
        """``{key: LedgerEntry}`` for those of ``keys`` the ledger holds (one lookup per KEYS_PER_QUERY keys)."""
        conn = self._connection()
        if conn is None:
            return {}
        with _errors(self.path, self.lock_timeout):
            return self._select_keys(conn, keys)

    def find(self, endpoint=None, principal=None, phone_number=None):
        """The entries that match every argument given, as an iterator in key order.

        Read a page at a time, each page its own statement: memory stays that of one page, and the caller may
        update the ledger while it iterates. An entry changed meanwhile is seen as it is when its page is read."""
        conditions, params = [], []
        # "+column": compared row by row, not looked up in an index, so that the rows come in key order without a
        # sort per page. A number is looked up in its index: its entries are few, and come in key order there too.
        for column, value, indexed in (("endpoint", endpoint, False), ("principal", principal, False),
                                       ("phone_number", phone_number, True)):
            if value is not None:
                conditions.append("%s%s = ?" % ("" if indexed else "+", column))
                params.append(value)
        after = None
        while True:
            where = list(conditions)
            if after is not None:
                where.append("key > ?")
            sql = "%s%s ORDER BY key LIMIT %d" % (_SELECT, " WHERE " + " AND ".join(where) if where else "",
                                                  PAGE_ROWS)
            rows = self._query(sql, params + ([after] if after is not None else []))
            for row in rows:
                yield LedgerEntry.from_row(row)
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1][0]
            del rows  # one page in memory at a time

    def count(self):
        """How many entries the ledger holds."""
        rows = self._query("SELECT COUNT(*) FROM registrations")
        return rows[0][0] if rows else 0

    def states(self, now, refresh_fraction, expiring_within=None):
        """``(total, {state: count}, nearest)`` without loading entries: the states of health.classify, counted
        in SQL (a unit test holds the two to the same answers), and the live entry that lapses first, or None."""
        rows = self._query(
            "SELECT COUNT(*),"
            " SUM(CASE WHEN expires_at IS NULL OR expires_at <= :now THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN expires_at > :now AND %s THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN expires_at > :now AND NOT %s AND expires_at - :now <="
            "     IFNULL(:within, IFNULL(time_to_live, 0) * :fraction) THEN 1 ELSE 0 END)"
            " FROM registrations" % (_FAILING, _FAILING),
            dict(now=now, within=expiring_within, fraction=refresh_fraction))
        total, lapsed, error, expiring = [value or 0 for value in rows[0]] if rows else (0, 0, 0, 0)
        nearest = self._query("%s WHERE expires_at > ? ORDER BY expires_at, key LIMIT 1" % _SELECT, (now,))
        counts = dict(live=total - lapsed - error - expiring, expiring=expiring, lapsed=lapsed, error=error)
        return total, counts, LedgerEntry.from_row(nearest[0]) if nearest else None

    def failing(self, limit=None, endpoint=None, principal=None, errors=True):
        """``(count, first entries)`` of the entries whose last attempt failed (with ``errors``) and, given
        ``endpoint`` and ``principal``, of those a keepalive for them does not refresh: another's, or pending a
        delete. At most ``limit`` entries (all when None), by number and URI."""
        conditions, params = [], []
        if errors:
            conditions.append(_FAILING)
        if endpoint is not None:
            conditions.append("NOT (endpoint = ? AND principal = ?) OR delete_pending")
            params = [endpoint, principal]
        where = " OR ".join(conditions) or "0"
        total = self._query("SELECT COUNT(*) FROM registrations WHERE %s" % where, params)
        first = self._query("%s WHERE %s ORDER BY phone_number, sip_uri, key%s"
                            % (_SELECT, where, "" if limit is None else " LIMIT %d" % limit), params)
        return (total[0][0] if total else 0), [LedgerEntry.from_row(row) for row in first]

    def longest_ttl(self, endpoint, principal, default_ttl):
        """The longest TTL of the entries of ``endpoint`` and ``principal`` (``default_ttl`` for one not known)."""
        rows = self._query("SELECT MAX(IFNULL(time_to_live, ?)) FROM registrations WHERE +endpoint = ? AND "
                           "+principal = ?", (default_ttl, endpoint, principal))
        return rows[0][0] if rows and rows[0][0] is not None else default_ttl

    def shortest_ttl(self, endpoint, principal):
        """The shortest TTL the API returned for an entry of ``endpoint`` and ``principal``; None if none did."""
        rows = self._query("SELECT MIN(time_to_live) FROM registrations WHERE +endpoint = ? AND +principal = ? "
                           "AND time_to_live > 0", (endpoint, principal))
        return rows[0][0] if rows else None

    def expiring(self, endpoint, principal, limit, before=None, lead=0.0, default_ttl=0.0, longest_ttl=None,
                 untried_since=None, after=None):
        """The next ``limit`` entries of ``endpoint`` and ``principal`` not pending a delete, in expiry order (never
        confirmed ones first), from after the position ``after`` (what the previous call returned).

        With ``before``, only those whose expiry less ``lead`` times their TTL (``default_ttl`` when unknown) is
        not after ``before``; ``longest_ttl`` (longest_ttl()) bounds the rows looked at. With ``untried_since``,
        only those not attempted since then. Returns ``[(key, entry)]`` and the position after the last one."""
        where = ["endpoint = :endpoint", "principal = :principal", "delete_pending = 0"]
        params = dict(endpoint=endpoint, principal=principal)
        if before is not None:
            # The index bounds the rows looked at; each row's own TTL then decides.
            params.update(before=before, lead=lead, ttl=default_ttl,
                          horizon=before + lead * (default_ttl if longest_ttl is None else longest_ttl))
            where.append("%s <= :horizon" % _EXPIRY)
            where.append("%s - :lead * IFNULL(time_to_live, :ttl) <= :before" % _EXPIRY)
        if untried_since is not None:
            where.append("(last_attempt_at IS NULL OR last_attempt_at < :untried)")
            params["untried"] = untried_since
        if after is not None:
            # The first condition bounds the index range (SQLite does not for the row value on an expression).
            where.append("%s >= :after_expiry AND (%s, key) > (:after_expiry, :after_key)" % (_EXPIRY, _EXPIRY))
            params.update(after_expiry=after[0], after_key=after[1])
        sql = "%s WHERE %s ORDER BY %s, key LIMIT %d" % (_SELECT, " AND ".join(where), _EXPIRY, int(limit))
        rows = self._query(sql, params)
        if not rows:
            return [], after
        last = rows[-1]
        entries = [(row[0], LedgerEntry.from_row(row)) for row in rows]
        return entries, (last[10] if last[10] is not None else 0, last[0])

    # ------------------------------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def update(self, keys=None):
        """``with ledger.update(keys) as entries:`` the entries of ``keys`` the ledger holds (every entry when
        None), read inside one write transaction. The caller sets, changes and pops entries of the dict; on exit
        exactly those changes are written, in the same transaction. Nothing is written if the block raises.
        """
        conn = self._connection(create=True)
        with _errors(self.path, self.lock_timeout):
            # IMMEDIATE: the write lock is taken before the read, so nothing changes between the two.
            conn.execute("BEGIN IMMEDIATE")
        try:
            with _errors(self.path, self.lock_timeout):
                if keys is None:
                    entries = dict((row[0], LedgerEntry.from_row(row)) for row in conn.execute(_SELECT))
                else:
                    entries = self._select_keys(conn, keys)
            before = dict((key, entry.row(key)) for key, entry in entries.items())
            yield entries
            with _errors(self.path, self.lock_timeout):
                self._write(conn, before, entries)
                conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _write(conn, before, entries):
        gone = [(key,) for key in before if key not in entries]
        if gone:
            conn.executemany("DELETE FROM registrations WHERE key = ?", gone)
        rows = []
        for key, entry in entries.items():
            row = entry.row(key)
            if before.get(key) != row:
                rows.append(row)
        if rows:
            conn.executemany(INSERT_ROW, rows)

    @staticmethod
    def _select_keys(conn, keys):
        found = {}
        keys = list(keys)
        for chunk in _chunks(keys, KEYS_PER_QUERY):
            sql = "%s WHERE key IN (%s)" % (_SELECT, ", ".join(["?"] * len(chunk)))
            for row in conn.execute(sql, chunk):
                found[row[0]] = LedgerEntry.from_row(row)
        return found

    # ------------------------------------------------------------------------------------------ locks

    def applying(self, exclusive=False, stop=None):
        """``with ledger.applying():`` around API calls and the ledger update that records them.

        Module runs hold it shared, so they still overlap one another; a keepalive pass holds it exclusive, so it
        never re-sends an entry whose change or deletion a module has sent but not yet recorded.
        """
        return locked(self.path + ".apply.lock", self.lock_timeout, shared=not exclusive, stop=stop)

    # ------------------------------------------------------------------------------------------ reports
    # The queries of registration_info and of the keepalive's health file and metrics: counted and paged in the
    # database, so that no report holds every entry. Their meaning is held by unit tests (tests/unit/.../
    # test_ledger_reports.py) that every ledger store must pass.

    # What group_states() may group by: the ledger's own fields.
    GROUP_FIELDS = ("endpoint", "principal", "route_type", "sip_uri", "delete_pending")
    # An owner with more entries than this is read by a walk of the whole ledger (owner_summary()) or of the index
    # of numbers (phone_numbers()) rather than by looking each of its entries up through the index of owners.
    OWNER_BY_SCAN = 50000

    @staticmethod
    def _state_conditions():
        """The states of health.classify as SQL conditions on the named parameters ``now``, ``within``
        (expiring_within, may be NULL) and ``fraction`` (refresh_fraction); states() counts the same."""
        ahead = "expires_at - :now <= IFNULL(:within, IFNULL(time_to_live, 0) * :fraction)"
        return dict(
            lapsed="(expires_at IS NULL OR expires_at <= :now)",
            error="(%s AND expires_at > :now)" % _FAILING,
            expiring="(expires_at > :now AND NOT %s AND %s)" % (_FAILING, ahead),
            live="(expires_at > :now AND NOT %s AND NOT (%s))" % (_FAILING, ahead))

    def census(self, now, refresh_fraction, expiring_within=None, owner=None):
        """Counts of the whole ledger in one read of it, without loading entries: a dict with ``total``;
        ``live``, ``expiring``, ``lapsed`` and ``error``, the states of health.classify at ``now`` with
        ``refresh_fraction`` and ``expiring_within`` (as states()); ``failing``, the entries whose last attempt
        failed (``last_error`` set and not empty), lapsed or not; ``last_upserted_at``, the newest ``upserted_at``
        (None if none has one).

        With ``owner`` (endpoint, principal), what a keepalive for them sees: ``others``, the entries of another
        endpoint or principal; ``not_refreshed``, those and the owner's entries pending a delete; ``refresh_failing``,
        the owner's entries not pending a delete that are failing; ``failing_or_not_refreshed``, the entries that
        are either."""
        states = self._state_conditions()
        names = ["total", "expiring", "lapsed", "error", "failing", "last_upserted_at"]
        columns = ["COUNT(*)"] + ["SUM(CASE WHEN %s THEN 1 ELSE 0 END)" % condition for condition in (
            states["expiring"], states["lapsed"], states["error"], _FAILING)] + ["MAX(upserted_at)"]
        params = dict(now=now, within=expiring_within, fraction=refresh_fraction)
        if owner is not None:
            params.update(owner_endpoint=owner[0], owner_principal=owner[1])
            names.append("refresh_failing")
            # The rare condition first: SQLite stops at the first false one.
            columns.append("SUM(CASE WHEN %s AND NOT delete_pending AND endpoint = :owner_endpoint AND principal = "
                           ":owner_principal THEN 1 ELSE 0 END)" % _FAILING)
        row = self._query("SELECT %s FROM registrations" % ", ".join(columns), params)
        values = list(row[0]) if row else [None] * len(columns)
        counts = dict((name, values[index] if name == "last_upserted_at" else values[index] or 0)
                      for index, name in enumerate(names))
        counts["live"] = counts["total"] - counts["expiring"] - counts["lapsed"] - counts["error"]
        if owner is not None:
            # From the index of owners, without reading the entries.
            mine = self._query("SELECT COUNT(*), SUM(delete_pending) FROM registrations WHERE endpoint = ? AND "
                               "principal = ?", owner)
            total, pending = (mine[0][0] or 0, mine[0][1] or 0) if mine else (0, 0)
            counts["others"] = counts["total"] - total
            counts["not_refreshed"] = counts["others"] + pending
            counts["failing_or_not_refreshed"] = counts["not_refreshed"] + counts["refresh_failing"]
        return counts

    def owners(self):
        """Each (endpoint, principal) of the ledger, in ascending order, with how many entries it holds:
        ``[(endpoint, principal, count)]``. Read from the index of owners, a seek per owner."""
        found = []
        endpoint = None
        while True:
            rows = self._query("SELECT endpoint FROM registrations%s ORDER BY endpoint LIMIT 1" % (
                "" if endpoint is None else " WHERE endpoint > ?"), () if endpoint is None else (endpoint,))
            if not rows:
                return found
            endpoint, principal = rows[0][0], None
            while True:
                rows = self._query("SELECT principal FROM registrations WHERE endpoint = ?%s ORDER BY principal "
                                   "LIMIT 1" % ("" if principal is None else " AND principal > ?"),
                                   (endpoint,) if principal is None else (endpoint, principal))
                if not rows:
                    break
                principal = rows[0][0]
                count = self._query("SELECT COUNT(*) FROM registrations WHERE endpoint = ? AND principal = ?",
                                    (endpoint, principal))
                found.append((endpoint, principal, count[0][0]))

    def _owns_many(self, endpoint, principal):
        """Whether ``endpoint`` and ``principal`` hold more than OWNER_BY_SCAN entries (counted up to that)."""
        rows = self._query("SELECT COUNT(*) FROM (SELECT 1 FROM registrations WHERE endpoint = ? AND principal = ? "
                           "LIMIT ?)", (endpoint, principal, self.OWNER_BY_SCAN + 1))
        return bool(rows) and rows[0][0] > self.OWNER_BY_SCAN

    def owner_summary(self, endpoint, principal, now):
        """``lapsed`` (at ``now``) and ``last_upserted_at`` (the newest ``upserted_at``, None if none has one) of
        the entries of ``endpoint`` and ``principal``."""
        # Few entries: looked up through the index of owners. Many: one read of the whole ledger costs less than
        # looking each of them up.
        where = "+endpoint = ? AND +principal = ?" if self._owns_many(endpoint, principal) \
            else "endpoint = ? AND principal = ?"
        rows = self._query("SELECT SUM(CASE WHEN expires_at IS NULL OR expires_at <= ? THEN 1 ELSE 0 END), "
                           "MAX(upserted_at) FROM registrations WHERE %s" % where, (now, endpoint, principal))
        lapsed, last = rows[0] if rows else (0, None)
        return dict(lapsed=lapsed or 0, last_upserted_at=last)

    def group_states(self, by, now, refresh_fraction, expiring_within=None):
        """The entries counted per distinct value of the fields ``by`` (names of GROUP_FIELDS), without loading
        them: ``[(values, counts)]``, ``values`` a tuple of the fields' values in the order of ``by``, the groups in
        ascending order of their values (None first; ``delete_pending`` as False and True); ``counts`` as census()
        without the owner's counts (``total``, the four states, ``failing``), and ``last_upserted_at`` (the newest
        ``upserted_at`` of the group). An empty or missing ledger has no groups.

        It sorts the whole ledger (about a second per million entries): for the keepalive's periodic counts, not for
        every pass."""
        by = tuple(by)
        unknown = [name for name in by if name not in self.GROUP_FIELDS]
        if not by or unknown:
            raise ValueError("group_states: cannot group by %r; one or more of %s" % (by, ", ".join(
                self.GROUP_FIELDS)))
        states = self._state_conditions()
        columns = ", ".join(by)
        # "+column": grouped by a sort of the table's rows, which is faster than walking an index and looking up
        # each of its rows in the table.
        sql = ("SELECT %s, COUNT(*), %s, SUM(CASE WHEN %s THEN 1 ELSE 0 END), MAX(upserted_at) FROM registrations "
               "GROUP BY %s ORDER BY %s" % (
                   columns, ", ".join("SUM(CASE WHEN %s THEN 1 ELSE 0 END)" % states[name]
                                      for name in ("live", "expiring", "lapsed", "error")),
                   _FAILING, ", ".join("+" + name for name in by), columns))
        groups = []
        for row in self._query(sql, dict(now=now, within=expiring_within, fraction=refresh_fraction)):
            values = tuple(bool(value) if name == "delete_pending" else value for name, value in zip(by, row))
            numbers = row[len(by):]
            counts = dict(zip(("total", "live", "expiring", "lapsed", "error", "failing"),
                              [value or 0 for value in numbers[:6]]))
            counts["last_upserted_at"] = numbers[6]
            groups.append((values, counts))
        return groups

    def nearest(self, now, limit):
        """The ``limit`` entries that lapse first among those not lapsed at ``now`` (``expires_at`` after it), in
        order of ``expires_at``, then of key."""
        rows = self._query("%s WHERE expires_at > ? ORDER BY expires_at, key LIMIT ?" % _SELECT, (now, int(limit)))
        return [LedgerEntry.from_row(row) for row in rows]

    def phone_numbers(self, endpoint, principal, limit):
        """The first ``limit`` distinct phone numbers of the entries of ``endpoint`` and ``principal``, in
        ascending order (entries without a number are left out)."""
        where = "endpoint = ? AND principal = ?"
        if self._owns_many(endpoint, principal):
            # The index of numbers, in order, finds ``limit`` of them soonest; the owner's index would look up
            # every one of its entries before the first could be returned.
            where = "+endpoint = ? AND +principal = ?"
        rows = self._query("SELECT DISTINCT phone_number FROM registrations WHERE %s AND phone_number IS NOT NULL "
                           "ORDER BY phone_number LIMIT ?" % where, (endpoint, principal, int(limit)))
        return [row[0] for row in rows]

    def _selection(self, selection, now, refresh_fraction, expiring_within):
        """The WHERE conditions and named parameters of a RegistrationFilter."""
        conditions = []
        params = dict(now=now, within=expiring_within, fraction=refresh_fraction)
        if selection.states:
            states = self._state_conditions()
            unknown = [state for state in selection.states if state not in states]
            if unknown:
                raise ValueError("select: unknown state(s) %s" % ", ".join(unknown))
            conditions.append("(%s)" % " OR ".join(states[state] for state in selection.states))
        if selection.phone_number is not None:
            # The index of numbers: a number has few entries.
            conditions.append("phone_number = :number")
            params["number"] = selection.phone_number
        if selection.phone_number_prefix is not None:
            conditions.append("substr(phone_number, 1, :prefix_length) = :prefix")
            params.update(prefix=selection.phone_number_prefix, prefix_length=len(selection.phone_number_prefix))
        if selection.sip_uri is not None:
            conditions.append("+sip_uri = :sip_uri")
            params["sip_uri"] = selection.sip_uri
        if selection.owner is not None:
            conditions.append("(+endpoint = :owner_endpoint AND +principal = :owner_principal)")
            params.update(owner_endpoint=selection.owner[0], owner_principal=selection.owner[1])
        if selection.not_owner is not None:
            conditions.append("NOT (+endpoint = :other_endpoint AND +principal = :other_principal)")
            params.update(other_endpoint=selection.not_owner[0], other_principal=selection.not_owner[1])
        if selection.failing is not None:
            conditions.append(_FAILING if selection.failing else "NOT %s" % _FAILING)
        return conditions, params

    def select(self, selection, now, refresh_fraction, expiring_within=None):
        """The entries that match ``selection`` (a RegistrationFilter; its states at ``now`` with
        ``refresh_fraction`` and ``expiring_within``, as health.classify), as an iterator in key order.

        Read a page of PAGE_ROWS at a time, each page its own statement, as find(): memory stays that of one page
        whatever the ledger holds, and the caller may stop at any point."""
        conditions, params = self._selection(selection, now, refresh_fraction, expiring_within)
        after = None
        while True:
            where = list(conditions)
            if after is not None:
                where.append("key > :after")
                params["after"] = after
            sql = "%s%s ORDER BY key LIMIT %d" % (_SELECT, " WHERE " + " AND ".join(where) if where else "",
                                                  PAGE_ROWS)
            rows = self._query(sql, params)
            for row in rows:
                yield LedgerEntry.from_row(row)
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1][0]
            del rows

    def count_selected(self, selection, now, refresh_fraction, expiring_within=None):
        """How many entries select() yields for the same arguments."""
        conditions, params = self._selection(selection, now, refresh_fraction, expiring_within)
        rows = self._query("SELECT COUNT(*) FROM registrations%s" % (
            " WHERE " + " AND ".join(conditions) if conditions else ""), params)
        return rows[0][0] if rows else 0
