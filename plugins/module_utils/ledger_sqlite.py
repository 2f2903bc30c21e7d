# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The embedded ledger store: an SQLite database file on the host where the module or keepalive runs.

Python's own ``sqlite3``: one number added to a million costs one row, not a rewrite; readers that need counts do
not load every entry; a process killed mid-way leaves the last committed state. Writers serialise on SQLite's own
write lock (``BEGIN IMMEDIATE``), waiting up to ``lock_timeout``. The file itself (schema, checks, upgrades) is
``ledger_sqlite_schema``'s; a JSON ledger of earlier versions found at the path is converted by
``ledger_migration`` first.
"""

import contextlib
import os
import time

from .ledger_entry import LedgerEntry
from .ledger_migration import migrate
from .ledger_sqlite_schema import DUE, FAILING, INSERT_ROW, SELECT, SQLITE_MAGIC, NotADatabase, connect, corrupt, \
    errors, file_start, transaction
from .ledger_store import CENSUS_COLUMNS, DEFAULT_SCOPE, KEYS_PER_QUERY, LedgerStore, changes, chunks, due_position


class SqliteLedger(LedgerStore):
    """One scope of the ledger database at ``path``."""

    kind = "sqlite"

    def __init__(self, path, scope=DEFAULT_SCOPE, lock_timeout=60.0, clock=time.time):
        super().__init__(scope, lock_timeout, clock)
        self.path = os.path.abspath(os.path.expanduser(path))
        self._conn = None
        self._pid = None

    @property
    def location(self):
        return self.path

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
            migrate(self.path, self.lock_timeout)
            conn = connect(self.path, self.lock_timeout)
        self._conn = conn
        self._pid = os.getpid()
        return conn

    def close(self):
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def exists(self):
        return os.path.exists(self.path)

    def _query(self, sql, params=()):
        """All rows of one read statement; [] when the ledger does not exist."""
        conn = self._connection()
        if conn is None:
            return []
        with errors(self.path, self.lock_timeout):
            return conn.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _writing(self):
        """A write transaction on the (created if need be) database."""
        conn = self._connection(create=True)
        with errors(self.path, self.lock_timeout), transaction(conn):
            yield conn

    # ------------------------------------------------------------------------------------------ reading

    def get(self, keys):
        conn = self._connection()
        if conn is None:
            return {}
        with errors(self.path, self.lock_timeout):
            return self._select_keys(conn, keys)

    def _page(self, endpoint, principal, phone_number, after, limit):
        conditions, params = ["scope = ?"], [self.scope]
        # "+column": compared row by row, not looked up in an index, so that the rows come in key order without a
        # sort per page. A number is looked up in its index: its entries are few, and come in key order there too.
        for column, value, indexed in (("endpoint", endpoint, False), ("principal", principal, False),
                                       ("phone_number", phone_number, True)):
            if value is not None:
                conditions.append("%s%s = ?" % ("" if indexed else "+", column))
                params.append(value)
        if after is not None:
            conditions.append("key > ?")
            params.append(after)
        rows = self._query("%s WHERE %s ORDER BY key LIMIT %d" % (SELECT, " AND ".join(conditions), limit), params)
        return [(row[0], LedgerEntry.from_row(row)) for row in rows]

    def count(self):
        rows = self._query("SELECT COUNT(*) FROM registrations WHERE scope = ?", (self.scope,))
        return rows[0][0] if rows else 0

    def holds(self, endpoint, principal):
        return bool(self._query("SELECT 1 FROM registrations WHERE scope = ? AND endpoint = ? AND principal = ? "
                                "LIMIT 1", (self.scope, endpoint, principal)))

    def failing(self, limit=None, endpoint=None, principal=None, errors=True):
        conditions, params = [], []
        if errors:
            conditions.append(FAILING)
        if endpoint is not None:
            conditions.append("NOT (endpoint = ? AND principal = ?) OR delete_pending")
            params = [endpoint, principal]
        where = "scope = ? AND (%s)" % (" OR ".join(conditions) or "0")
        params = [self.scope] + params
        total = self._query("SELECT COUNT(*) FROM registrations WHERE %s" % where, params)
        first = self._query("%s WHERE %s ORDER BY phone_number, sip_uri, key%s"
                            % (SELECT, where, "" if limit is None else " LIMIT %d" % limit), params)
        return (total[0][0] if total else 0), [LedgerEntry.from_row(row) for row in first]

    def longest_ttl(self, endpoint, principal, default_ttl):
        rows = self._query("SELECT MAX(IFNULL(time_to_live, ?)) FROM registrations WHERE scope = ? AND "
                           "+endpoint = ? AND +principal = ?", (default_ttl, self.scope, endpoint, principal))
        return rows[0][0] if rows and rows[0][0] is not None else default_ttl

    def shortest_ttl(self, endpoint, principal):
        rows = self._query("SELECT MIN(time_to_live) FROM registrations WHERE scope = ? AND +endpoint = ? AND "
                           "+principal = ? AND time_to_live > 0", (self.scope, endpoint, principal))
        return rows[0][0] if rows else None

    def expiring(self, endpoint, principal, limit, before=None, lead=0.0, default_ttl=0.0, longest_ttl=None,
                 untried_since=None, after=None, unclaimed_at=None):
        conn = self._connection()
        if conn is None:
            return [], after
        with errors(self.path, self.lock_timeout):
            return self._expiring(conn, endpoint, principal, limit, before, lead, default_ttl, longest_ttl,
                                  untried_since, after, unclaimed_at)

    def _expiring(self, conn, endpoint, principal, limit, before, lead, default_ttl, longest_ttl, untried_since,
                  after, unclaimed_at):
        where = ["scope = :scope", "endpoint = :endpoint", "principal = :principal", "delete_pending = 0"]
        params = dict(scope=self.scope, endpoint=endpoint, principal=principal)
        if before is not None:
            # The index bounds the rows looked at; each row's own TTL then decides.
            params.update(before=before, lead=lead, ttl=default_ttl,
                          horizon=before + lead * (default_ttl if longest_ttl is None else longest_ttl))
            where.append("%s <= :horizon" % DUE)
            where.append("(unconfirmed <> 0 OR IFNULL(expires_at, 0) - :lead * IFNULL(time_to_live, :ttl) <= "
                         ":before)")
        if untried_since is not None:
            where.append("(last_attempt_at IS NULL OR last_attempt_at < :untried)")
            params["untried"] = untried_since
        if unclaimed_at is not None:
            where.append("(claimed_until IS NULL OR claimed_until <= :unclaimed)")
            params["unclaimed"] = unclaimed_at
        if after is not None:
            # The first condition bounds the index range (SQLite does not for the row value on an expression).
            where.append("%s >= :after_due AND (%s, key) > (:after_due, :after_key)" % (DUE, DUE))
            params.update(after_due=after[0], after_key=after[1])
        sql = "%s WHERE %s ORDER BY %s, key LIMIT %d" % (SELECT, " AND ".join(where), DUE, int(limit))
        rows = conn.execute(sql, params).fetchall()
        if not rows:
            return [], after
        entries = [(row[0], LedgerEntry.from_row(row)) for row in rows]
        key, entry = entries[-1]
        return entries, due_position(entry, key)

    # ------------------------------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def update(self, keys=None, exclusive=False):
        # Every write transaction of SQLite holds the database's one write lock: ``exclusive`` is always true here.
        with self._writing() as conn:
            if keys is None:
                entries = dict((row[0], LedgerEntry.from_row(row))
                               for row in conn.execute(SELECT + " WHERE scope = ?", (self.scope,)))
            else:
                entries = self._select_keys(conn, keys)
            before = dict((key, entry.row(key)) for key, entry in entries.items())
            yield entries
            self._write(conn, before, entries)

    def claim_due(self, endpoint, principal, limit, owner, until, is_due, **query):
        with self._writing() as conn:
            candidates, position = self._expiring(
                conn, endpoint, principal, limit, query.get("before"), query.get("lead", 0.0),
                query.get("default_ttl", 0.0), query.get("longest_ttl"), query.get("untried_since"),
                query.get("after"), self.clock())
            claimed = [(key, entry) for key, entry in candidates if is_due(key, entry)]
            conn.executemany("UPDATE registrations SET claimed_by = ?, claimed_until = ? WHERE scope = ? AND key = ?",
                             [(owner, until, self.scope, key) for key, _entry in claimed])
        for _key, entry in claimed:
            entry.claimed_by, entry.claimed_until = owner, until
        return claimed, position

    def renew(self, owner, keys, until):
        with self._writing() as conn:
            for chunk in chunks(keys, KEYS_PER_QUERY):
                conn.execute("UPDATE registrations SET claimed_until = ? WHERE scope = ? AND claimed_by = ? AND key IN "
                             "(%s)" % ", ".join(["?"] * len(chunk)), [until, self.scope, owner] + chunk)

    def _write(self, conn, before, entries):
        gone, rows = changes(before, entries)
        if gone:
            conn.executemany("DELETE FROM registrations WHERE scope = ? AND key = ?",
                             [(self.scope, key) for key in gone])
        if rows:
            conn.executemany(INSERT_ROW, [(self.scope,) + row for row in rows])

    def _select_keys(self, conn, keys):
        found = {}
        for chunk in chunks(keys, KEYS_PER_QUERY):
            sql = "%s WHERE scope = ? AND key IN (%s)" % (SELECT, ", ".join(["?"] * len(chunk)))
            for row in conn.execute(sql, [self.scope] + chunk):
                found[row[0]] = LedgerEntry.from_row(row)
        return found

    def insert(self, entries):
        """Add ``[(key, LedgerEntry)]`` in one transaction (an import or a copy: rows of the same key are replaced)."""
        with self._writing() as conn:
            conn.executemany(INSERT_ROW, ((self.scope,) + entry.row(key) for key, entry in entries))

    # ------------------------------------------------------------------------------------------ reports

    # An owner with more entries than this is read by a walk of the scope (owner_summary()) or of the index of
    # numbers (phone_numbers()) rather than by looking each of its entries up through the index of owners.
    OWNER_BY_SCAN = 50000

    @staticmethod
    def _state_conditions():
        """The states of health.classify as SQL conditions on the named parameters ``now``, ``within``
        (expiring_within, may be NULL) and ``fraction`` (refresh_fraction)."""
        ahead = "expires_at - :now <= IFNULL(:within, IFNULL(time_to_live, 0) * :fraction)"
        return dict(
            lapsed="(expires_at IS NULL OR expires_at <= :now)",
            error="(%s AND expires_at > :now)" % FAILING,
            expiring="(expires_at > :now AND NOT %s AND %s)" % (FAILING, ahead),
            live="(expires_at > :now AND NOT %s AND NOT (%s))" % (FAILING, ahead))

    def census(self, now, refresh_fraction, expiring_within=None, owner=None):
        states = self._state_conditions()
        names = list(CENSUS_COLUMNS)
        columns = ["COUNT(*)"] + ["SUM(CASE WHEN %s THEN 1 ELSE 0 END)" % condition for condition in (
            states["expiring"], states["lapsed"], states["error"], FAILING)] + ["MAX(upserted_at)"]
        params = dict(now=now, within=expiring_within, fraction=refresh_fraction, scope=self.scope)
        if owner is not None:
            params.update(owner_endpoint=owner[0], owner_principal=owner[1])
            names.append("refresh_failing")
            # The rare condition first: SQLite stops at the first false one.
            columns.append("SUM(CASE WHEN %s AND NOT delete_pending AND endpoint = :owner_endpoint AND principal = "
                           ":owner_principal THEN 1 ELSE 0 END)" % FAILING)
        row = self._query("SELECT %s FROM registrations WHERE scope = :scope" % ", ".join(columns), params)
        values = list(row[0]) if row else [None] * len(columns)
        owner_counts = None
        if owner is not None:
            # From the index of owners, without reading the entries.
            mine = self._query("SELECT COUNT(*), SUM(delete_pending) FROM registrations WHERE scope = ? AND "
                               "endpoint = ? AND principal = ?", (self.scope,) + tuple(owner))
            owner_counts = (mine[0][0] or 0, mine[0][1] or 0) if mine else (0, 0)
        return self._census(names, values, owner_counts)

    def owners(self):
        # A seek per owner in the index of owners.
        found = []
        endpoint = None
        while True:
            rows = self._query("SELECT endpoint FROM registrations WHERE scope = ?%s ORDER BY endpoint LIMIT 1" % (
                "" if endpoint is None else " AND endpoint > ?"),
                (self.scope,) if endpoint is None else (self.scope, endpoint))
            if not rows:
                return found
            endpoint, principal = rows[0][0], None
            while True:
                rows = self._query("SELECT principal FROM registrations WHERE scope = ? AND endpoint = ?%s ORDER BY "
                                   "principal LIMIT 1" % ("" if principal is None else " AND principal > ?"),
                                   (self.scope, endpoint) if principal is None else (self.scope, endpoint, principal))
                if not rows:
                    break
                principal = rows[0][0]
                count = self._query("SELECT COUNT(*) FROM registrations WHERE scope = ? AND endpoint = ? AND "
                                    "principal = ?", (self.scope, endpoint, principal))
                found.append((endpoint, principal, count[0][0]))

    def _owns_many(self, endpoint, principal):
        """Whether ``endpoint`` and ``principal`` hold more than OWNER_BY_SCAN entries (counted up to that)."""
        rows = self._query("SELECT COUNT(*) FROM (SELECT 1 FROM registrations WHERE scope = ? AND endpoint = ? AND "
                           "principal = ? LIMIT ?)", (self.scope, endpoint, principal, self.OWNER_BY_SCAN + 1))
        return bool(rows) and rows[0][0] > self.OWNER_BY_SCAN

    def owner_summary(self, endpoint, principal, now):
        # Few entries: looked up through the index of owners. Many: one read of the whole scope costs less than
        # looking each of them up.
        where = "+endpoint = ? AND +principal = ?" if self._owns_many(endpoint, principal) \
            else "endpoint = ? AND principal = ?"
        rows = self._query("SELECT SUM(CASE WHEN expires_at IS NULL OR expires_at <= ? THEN 1 ELSE 0 END), "
                           "MAX(upserted_at) FROM registrations WHERE scope = ? AND %s" % where,
                           (now, self.scope, endpoint, principal))
        lapsed, last = rows[0] if rows else (0, None)
        return dict(lapsed=lapsed or 0, last_upserted_at=last)

    def group_states(self, by, now, refresh_fraction, expiring_within=None):
        by = tuple(by)
        self._groups(by, [])  # refuses unknown fields
        states = self._state_conditions()
        columns = ", ".join(by)
        # "+column": grouped by a sort of the scope's rows, which is faster than walking an index and looking up
        # each of its rows in the table.
        sql = ("SELECT %s, COUNT(*), %s, SUM(CASE WHEN %s THEN 1 ELSE 0 END), MAX(upserted_at) FROM registrations "
               "WHERE scope = :scope GROUP BY %s ORDER BY %s" % (
                   columns, ", ".join("SUM(CASE WHEN %s THEN 1 ELSE 0 END)" % states[name]
                                      for name in ("live", "expiring", "lapsed", "error")),
                   FAILING, ", ".join("+" + name for name in by), columns))
        return self._groups(by, self._query(sql, dict(now=now, within=expiring_within, fraction=refresh_fraction,
                                                      scope=self.scope)))

    def nearest(self, now, limit):
        rows = self._query("%s WHERE scope = ? AND expires_at > ? ORDER BY expires_at, key LIMIT ?" % SELECT,
                           (self.scope, now, int(limit)))
        return [LedgerEntry.from_row(row) for row in rows]

    def phone_numbers(self, endpoint, principal, limit):
        where = "endpoint = ? AND principal = ?"
        if self._owns_many(endpoint, principal):
            # The index of numbers, in order, finds ``limit`` of them soonest; the owner's index would look up
            # every one of its entries before the first could be returned.
            where = "+endpoint = ? AND +principal = ?"
        rows = self._query("SELECT DISTINCT phone_number FROM registrations WHERE scope = ? AND %s AND phone_number "
                           "IS NOT NULL ORDER BY phone_number LIMIT ?" % where,
                           (self.scope, endpoint, principal, int(limit)))
        return [row[0] for row in rows]

    def _selection(self, selection, now, refresh_fraction, expiring_within):
        """The WHERE conditions and named parameters of a RegistrationFilter."""
        conditions = ["scope = :scope"]
        params = dict(now=now, within=expiring_within, fraction=refresh_fraction, scope=self.scope)
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
            conditions.append(FAILING if selection.failing else "NOT %s" % FAILING)
        return conditions, params

    def _selected_page(self, selection, now, refresh_fraction, expiring_within, after, limit):
        conditions, params = self._selection(selection, now, refresh_fraction, expiring_within)
        if after is not None:
            conditions.append("key > :after")
            params["after"] = after
        rows = self._query("%s WHERE %s ORDER BY key LIMIT %d" % (SELECT, " AND ".join(conditions), limit), params)
        return [(row[0], LedgerEntry.from_row(row)) for row in rows]

    def count_selected(self, selection, now, refresh_fraction, expiring_within=None):
        conditions, params = self._selection(selection, now, refresh_fraction, expiring_within)
        rows = self._query("SELECT COUNT(*) FROM registrations WHERE %s" % " AND ".join(conditions), params)
        return rows[0][0] if rows else 0
