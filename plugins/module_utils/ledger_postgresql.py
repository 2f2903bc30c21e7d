# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared ledger store: a PostgreSQL database (psycopg 3) that AWX jobs, cluster nodes and keepalive workers
share, each scope a registration set of its own.

Connection: a libpq connection string or URI (``ledger_conninfo``), the ``login_*``, ``ssl_mode`` and ``ca_cert``
options over its parts, and libpq's own environment variables and service file for what neither gives. The
password is never part of a message: the database is named by host, port and database name only.

The collection creates its tables (``sipbreakout_registrations``, ``sipbreakout_tokens``) and a version row
(``sipbreakout_schema``) on first write, upgrades an older schema under an advisory lock, and refuses a newer one.
Reads never create anything: a database without the tables reads as empty.

Locks (what keeps concurrent writers of one scope exact, see ``ledger_store``):

* a run's decisions (``update(keys, exclusive=True)``) hold the scope's transaction-scoped advisory lock, so two
  runs of one scope never decide on the same entries at once: new entries are never inserted twice and a purge
  never deletes what another run has just decided;
* every write locks the rows it reads (``FOR UPDATE``, in key order, so writers never deadlock), and writes only
  what changed;
* a keepalive worker claims a batch with ``FOR UPDATE SKIP LOCKED``, commits, and only then sends: no lock is ever
  held during an API call.
"""

import contextlib
import json
import os
import time
import traceback

from .auth import TokenCache
from .errors import AuthError, LedgerError, LedgerUnreachable
from .ledger_entry import COLUMNS, LedgerEntry
from .ledger_store import CENSUS_COLUMNS, DEFAULT_SCOPE, LedgerStore, changes, chunks, due_position

try:
    import psycopg
    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
except ImportError:
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

# The schema this collection writes (the version row of sipbreakout_schema).
SCHEMA_VERSION = 1
# pg_advisory_xact_lock key of schema changes: "wgsb" as a number, as the SQLite ledger's application_id.
SCHEMA_LOCK = 0x77677362
# The options that name the database, and the libpq parameter each sets.
CONNECTION_OPTIONS = (("login_host", "host"), ("login_port", "port"), ("login_user", "user"),
                      ("login_password", "password"), ("login_db", "dbname"), ("ssl_mode", "sslmode"),
                      ("ca_cert", "sslrootcert"))
# Seconds a connection attempt may take unless the conninfo or PGCONNECT_TIMEOUT says otherwise: an unreachable
# database must fail a run quickly, naming it.
DEFAULT_CONNECT_TIMEOUT = 10
# Keys per "= ANY(...)" lookup or write.
KEYS_PER_STATEMENT = 10000

TABLE = "sipbreakout_registrations"
_SELECT = "SELECT %s FROM %s" % (", ".join(COLUMNS), TABLE)
_INSERT = "INSERT INTO %s (scope, %s) VALUES (%s) ON CONFLICT (scope, key) DO UPDATE SET %s" % (
    TABLE, ", ".join(COLUMNS), ", ".join(["%s"] * (len(COLUMNS) + 1)),
    ", ".join("%s = EXCLUDED.%s" % (column, column) for column in COLUMNS[1:]))
_DUE = "(CASE WHEN unconfirmed <> 0 THEN 0 ELSE COALESCE(expires_at, 0) END)"
_FAILING = "(last_error IS NOT NULL AND last_error <> '')"

SCHEMA = (
    "CREATE TABLE sipbreakout_schema (name TEXT PRIMARY KEY, version INTEGER NOT NULL, "
    "updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())",
    """CREATE TABLE %s (
        scope TEXT NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        endpoint TEXT NOT NULL,
        principal TEXT NOT NULL,
        phone_number TEXT,
        sip_uri TEXT NOT NULL,
        route_type TEXT,
        mobile_originating_prefix TEXT,
        mobile_terminating_prefix TEXT,
        upserted_at DOUBLE PRECISION,
        time_to_live DOUBLE PRECISION,
        expires_at DOUBLE PRECISION,
        last_error TEXT,
        last_attempt_at DOUBLE PRECISION,
        delete_pending SMALLINT NOT NULL DEFAULT 0,
        unconfirmed SMALLINT NOT NULL DEFAULT 0,
        claimed_by TEXT,
        claimed_until DOUBLE PRECISION,
        changed_at DOUBLE PRECISION,
        PRIMARY KEY (scope, key)
    )""" % TABLE,
    # The keepalive's question: this endpoint's and principal's entries, not pending a delete, in its order.
    "CREATE INDEX sipbreakout_registrations_due ON %s (scope, endpoint, principal, delete_pending, %s)"
    % (TABLE, _DUE),
    "CREATE INDEX sipbreakout_registrations_by_number ON %s (scope, phone_number)" % TABLE,
    # Access tokens and rotated refresh tokens, shared by every worker of the database (token_store_postgresql).
    "CREATE TABLE sipbreakout_tokens (key TEXT PRIMARY KEY, body TEXT NOT NULL, "
    "updated_at DOUBLE PRECISION NOT NULL)",
    "INSERT INTO sipbreakout_schema (name, version) VALUES ('ledger', %d)" % SCHEMA_VERSION,
)
# Upgrades: UPGRADES[n] takes schema version n to n + 1 (none yet).
UPGRADES = {}


def connection_parameters(options):
    """The libpq parameters the options give: ``{"conninfo": text, PARAMETER: value}``; what is missing, libpq's
    environment and service file fill in."""
    parameters = dict(conninfo=options.get("ledger_conninfo") or "")
    for option, parameter in CONNECTION_OPTIONS:
        value = options.get(option)
        if value not in (None, ""):
            parameters[parameter] = str(value)
    return parameters


def describe_database(parameters):
    """``postgresql://HOST:PORT/DBNAME`` as libpq will resolve them (never the user's password)."""
    if not HAS_PSYCOPG:
        return "postgresql://%s:%s/%s" % (parameters.get("host", "?"), parameters.get("port", "?"),
                                          parameters.get("dbname", "?"))
    try:
        given = psycopg.conninfo.conninfo_to_dict(parameters.get("conninfo") or "")
    except psycopg.ProgrammingError:
        given = {}
    given.update((key, value) for key, value in parameters.items() if key != "conninfo")
    service = given.get("service") or os.environ.get("PGSERVICE")
    host = given.get("host") or os.environ.get("PGHOST") or ("(service %s)" % service if service else "localhost")
    port = given.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = given.get("dbname") or os.environ.get("PGDATABASE") or given.get("user") or os.environ.get("PGUSER") \
        or "(libpq default)"
    return "postgresql://%s:%s/%s" % (host, port, dbname)


def _scrub(text, parameters):
    """``text`` without the password or connection string the user gave (libpq may quote parts of them)."""
    for secret in (parameters.get("password"), parameters.get("conninfo")):
        if secret:
            text = text.replace(secret, "(hidden)")
    return text


def _one_line(exc, parameters):
    """libpq's message on one line (it spreads hints over several), scrubbed."""
    return " ".join(_scrub(str(exc), parameters).split())


class PostgresqlLedger(LedgerStore):
    """One scope of the ledger in the PostgreSQL database ``parameters`` (connection_parameters()) name."""

    kind = "postgresql"
    shared = True

    def __init__(self, parameters, scope=DEFAULT_SCOPE, lock_timeout=60.0, clock=time.time):
        super().__init__(scope, lock_timeout, clock)
        self.parameters = dict(parameters)
        self._location = describe_database(self.parameters)
        self._conn = None
        self._pid = None
        self._schema_ready = False

    @property
    def location(self):
        return self._location

    # ------------------------------------------------------------------------------------------ connection

    def _connect(self):
        if not HAS_PSYCOPG:
            raise LedgerError("ledger_store=postgresql needs the Python library psycopg (3.1 or newer) on the host "
                              "that runs this: pip install 'psycopg[binary]', or on Debian 12 apt install "
                              "python3-psycopg")
        kwargs = dict((key, value) for key, value in self.parameters.items() if key != "conninfo")
        conninfo = self.parameters.get("conninfo") or ""
        if "connect_timeout" not in conninfo and not os.environ.get("PGCONNECT_TIMEOUT"):
            kwargs["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
        try:
            conn = psycopg.connect(conninfo, autocommit=True, application_name="wgtwo.sipbreakout", **kwargs)
        except psycopg.OperationalError as exc:
            raise LedgerUnreachable("cannot connect to the PostgreSQL ledger %s, so nothing was sent: %s"
                                    % (self.location, _one_line(exc, self.parameters)))
        except psycopg.Error as exc:
            raise LedgerError("cannot connect to the PostgreSQL ledger %s, so nothing was sent: %s"
                              % (self.location, _one_line(exc, self.parameters)))
        # Bounded waits for row locks, as SQLite's busy timeout; a statement that waits longer fails.
        conn.execute("SELECT set_config('lock_timeout', %s, false)", ("%dms" % int(self.lock_timeout * 1000),))
        info = conn.info
        self._location = "postgresql://%s:%s/%s" % (info.host, info.port, info.dbname)
        return conn

    def _connection(self, create=False):
        """The open connection with the schema checked; None when the tables do not exist and ``create`` is false
        (then the ledger reads as empty)."""
        if self._conn is not None and (self._pid != os.getpid() or self._conn.closed or self._conn.broken):
            self._conn = None
            self._schema_ready = False
        if self._conn is None:
            self._conn = self._connect()
            self._pid = os.getpid()
        if not self._schema_ready:
            with self._errors():
                self._schema_ready = self._check_schema(self._conn, create)
            if not self._schema_ready:
                return None
        return self._conn

    def _check_schema(self, conn, create):
        """True once the tables exist at SCHEMA_VERSION (created or upgraded with ``create``)."""
        version = self._schema_version(conn)
        if version == SCHEMA_VERSION:
            return True
        if version is not None and version > SCHEMA_VERSION:
            raise LedgerError("the PostgreSQL ledger %s has schema version %d; this collection knows version %d at "
                              "most. It was left untouched: upgrade the collection." % (self.location, version,
                                                                                        SCHEMA_VERSION))
        if not create:
            if version is None:
                return False
            raise LedgerError("the PostgreSQL ledger %s has schema version %d, older than this collection's %d; a "
                              "run that writes upgrades it." % (self.location, version, SCHEMA_VERSION))
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            version = self._schema_version(conn)  # another process may have done it meanwhile
            if version is None:
                for statement in SCHEMA:
                    conn.execute(statement)
            else:
                while version < SCHEMA_VERSION:
                    for statement in UPGRADES[version]:
                        conn.execute(statement)
                    version += 1
                conn.execute("UPDATE sipbreakout_schema SET version = %s, updated_at = now() WHERE name = 'ledger'",
                             (version,))
        return True

    @staticmethod
    def _schema_version(conn):
        if conn.execute("SELECT to_regclass('sipbreakout_schema')").fetchone()[0] is None:
            return None
        row = conn.execute("SELECT version FROM sipbreakout_schema WHERE name = 'ledger'").fetchone()
        return row[0] if row else None

    @contextlib.contextmanager
    def _errors(self):
        """psycopg's exceptions as LedgerError naming the database (never the password)."""
        try:
            yield
        except psycopg.errors.LockNotAvailable:
            raise LedgerError("the PostgreSQL ledger %s stayed locked by another process for %g s; is a run or "
                              "keepalive stuck?" % (self.describe(), self.lock_timeout))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise LedgerError("the PostgreSQL ledger %s refused this user: %s. The user needs to read and write the "
                              "sipbreakout_* tables (and, the first time, to create them in its schema)."
                              % (self.describe(), _one_line(exc, self.parameters)))
        except psycopg.OperationalError as exc:
            self.close()
            raise LedgerUnreachable("lost the PostgreSQL ledger %s: %s"
                                    % (self.describe(), _one_line(exc, self.parameters)))
        except psycopg.Error as exc:
            raise LedgerError("the PostgreSQL ledger %s failed: %s"
                              % (self.describe(), _one_line(exc, self.parameters)))

    def close(self):
        if self._conn is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._schema_ready = False

    def exists(self):
        return self._connection() is not None

    def _query(self, sql, params=()):
        conn = self._connection()
        if conn is None:
            return []
        with self._errors():
            return conn.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _writing(self, exclusive=False):
        conn = self._connection(create=True)
        with self._errors(), conn.transaction():
            if exclusive:
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("sipbreakout:" + self.scope,))
            yield conn

    # ------------------------------------------------------------------------------------------ reading

    def get(self, keys):
        conn = self._connection()
        if conn is None:
            return {}
        with self._errors():
            return self._select_keys(conn, keys)

    def _page(self, endpoint, principal, phone_number, after, limit):
        conditions, params = ["scope = %s"], [self.scope]
        for column, value in (("endpoint", endpoint), ("principal", principal), ("phone_number", phone_number)):
            if value is not None:
                conditions.append("%s = %%s" % column)
                params.append(value)
        if after is not None:
            conditions.append("key > %s")
            params.append(after)
        rows = self._query("%s WHERE %s ORDER BY key LIMIT %d" % (_SELECT, " AND ".join(conditions), limit), params)
        return [(row[0], LedgerEntry.from_row(row)) for row in rows]

    def count(self):
        rows = self._query("SELECT COUNT(*) FROM %s WHERE scope = %%s" % TABLE, (self.scope,))
        return rows[0][0] if rows else 0

    def holds(self, endpoint, principal):
        return bool(self._query("SELECT 1 FROM %s WHERE scope = %%s AND endpoint = %%s AND principal = %%s LIMIT 1"
                                % TABLE, (self.scope, endpoint, principal)))

    def failing(self, limit=None, endpoint=None, principal=None, errors=True):
        conditions, params = [], []
        if errors:
            conditions.append(_FAILING)
        if endpoint is not None:
            conditions.append("NOT (endpoint = %s AND principal = %s) OR delete_pending <> 0")
            params = [endpoint, principal]
        where = "scope = %%s AND (%s)" % (" OR ".join(conditions) or "false")
        params = [self.scope] + params
        total = self._query("SELECT COUNT(*) FROM %s WHERE %s" % (TABLE, where), params)
        first = self._query('%s WHERE %s ORDER BY phone_number COLLATE "C" NULLS FIRST, sip_uri COLLATE "C", key%s'
                            % (_SELECT, where, "" if limit is None else " LIMIT %d" % limit), params)
        return (total[0][0] if total else 0), [LedgerEntry.from_row(row) for row in first]

    def longest_ttl(self, endpoint, principal, default_ttl):
        rows = self._query("SELECT MAX(COALESCE(time_to_live, %%s)) FROM %s WHERE scope = %%s AND endpoint = %%s "
                           "AND principal = %%s" % TABLE, (default_ttl, self.scope, endpoint, principal))
        return rows[0][0] if rows and rows[0][0] is not None else default_ttl

    def shortest_ttl(self, endpoint, principal):
        rows = self._query("SELECT MIN(time_to_live) FROM %s WHERE scope = %%s AND endpoint = %%s AND principal = %%s "
                           "AND time_to_live > 0" % TABLE, (self.scope, endpoint, principal))
        return rows[0][0] if rows else None

    def expiring(self, endpoint, principal, limit, before=None, lead=0.0, default_ttl=0.0, longest_ttl=None,
                 untried_since=None, after=None, unclaimed_at=None):
        conn = self._connection()
        if conn is None:
            return [], after
        with self._errors():
            rows = conn.execute(*self._expiring_sql(endpoint, principal, limit, before, lead, default_ttl,
                                                    longest_ttl, untried_since, after, unclaimed_at)).fetchall()
        return self._positioned(rows, after)

    def _expiring_sql(self, endpoint, principal, limit, before, lead, default_ttl, longest_ttl, untried_since, after,
                      unclaimed_at, lock=""):
        where = ["scope = %(scope)s", "endpoint = %(endpoint)s", "principal = %(principal)s", "delete_pending = 0"]
        params = dict(scope=self.scope, endpoint=endpoint, principal=principal)
        if before is not None:
            params.update(before=before, lead=lead, ttl=default_ttl,
                          horizon=before + lead * (default_ttl if longest_ttl is None else longest_ttl))
            where.append("%s <= %%(horizon)s" % _DUE)
            where.append("(unconfirmed <> 0 OR COALESCE(expires_at, 0) - %(lead)s * COALESCE(time_to_live, %(ttl)s) "
                         "<= %(before)s)")
        if untried_since is not None:
            where.append("(last_attempt_at IS NULL OR last_attempt_at < %(untried)s)")
            params["untried"] = untried_since
        if unclaimed_at is not None:
            where.append("(claimed_until IS NULL OR claimed_until <= %(unclaimed)s)")
            params["unclaimed"] = unclaimed_at
        if after is not None:
            where.append("(%s, key) > (%%(after_due)s, %%(after_key)s)" % _DUE)
            params.update(after_due=after[0], after_key=after[1])
        sql = "%s WHERE %s ORDER BY %s, key LIMIT %d%s" % (_SELECT, " AND ".join(where), _DUE, int(limit), lock)
        return sql, params

    @staticmethod
    def _positioned(rows, after):
        if not rows:
            return [], after
        entries = [(row[0], LedgerEntry.from_row(row)) for row in rows]
        key, entry = entries[-1]
        return entries, due_position(entry, key)

    # ------------------------------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def update(self, keys=None, exclusive=False):
        with self._writing(exclusive) as conn:
            if keys is None:
                entries = dict((row[0], LedgerEntry.from_row(row)) for row in conn.execute(
                    "%s WHERE scope = %%s ORDER BY key FOR UPDATE" % _SELECT, (self.scope,)))
            else:
                entries = self._select_keys(conn, keys, lock=True)
            before = dict((key, entry.row(key)) for key, entry in entries.items())
            yield entries
            gone, rows = changes(before, entries)
            for chunk in chunks(gone, KEYS_PER_STATEMENT):
                conn.execute("DELETE FROM %s WHERE scope = %%s AND key = ANY(%%s)" % TABLE, (self.scope, chunk))
            if rows:
                with conn.cursor() as cursor:
                    cursor.executemany(_INSERT, [(self.scope,) + row for row in rows])

    def claim_due(self, endpoint, principal, limit, owner, until, is_due, **query):
        with self._writing() as conn:
            rows = conn.execute(*self._expiring_sql(
                endpoint, principal, limit, query.get("before"), query.get("lead", 0.0),
                query.get("default_ttl", 0.0), query.get("longest_ttl"), query.get("untried_since"),
                query.get("after"), self.clock(), lock=" FOR UPDATE SKIP LOCKED")).fetchall()
            candidates, position = self._positioned(rows, query.get("after"))
            claimed = [(key, entry) for key, entry in candidates if is_due(key, entry)]
            if claimed:
                conn.execute("UPDATE %s SET claimed_by = %%s, claimed_until = %%s WHERE scope = %%s AND "
                             "key = ANY(%%s)" % TABLE, (owner, until, self.scope, [key for key, _entry in claimed]))
        for _key, entry in claimed:
            entry.claimed_by, entry.claimed_until = owner, until
        return claimed, position

    def renew(self, owner, keys, until):
        with self._writing() as conn:
            for chunk in chunks(keys, KEYS_PER_STATEMENT):
                conn.execute("UPDATE %s SET claimed_until = %%s WHERE scope = %%s AND claimed_by = %%s AND "
                             "key = ANY(%%s)" % TABLE, (until, self.scope, owner, chunk))

    def _select_keys(self, conn, keys, lock=False):
        found = {}
        for chunk in chunks(keys, KEYS_PER_STATEMENT):
            sql = "%s WHERE scope = %%s AND key = ANY(%%s)%s" % (_SELECT, " ORDER BY key FOR UPDATE" if lock else "")
            for row in conn.execute(sql, (self.scope, chunk)):
                found[row[0]] = LedgerEntry.from_row(row)
        return found

    def insert(self, entries):
        with self._writing(exclusive=True) as conn:
            with conn.cursor() as cursor:
                cursor.executemany(_INSERT, [(self.scope,) + entry.row(key) for key, entry in entries])

    # ------------------------------------------------------------------------------------------ reports

    @staticmethod
    def _state_conditions():
        """The states of health.classify as SQL conditions on the named parameters ``now``, ``within``
        (expiring_within, may be NULL) and ``fraction`` (refresh_fraction)."""
        ahead = ("expires_at - %(now)s <= COALESCE(CAST(%(within)s AS DOUBLE PRECISION), "
                 "COALESCE(time_to_live, 0) * %(fraction)s)")
        return dict(
            lapsed="(expires_at IS NULL OR expires_at <= %(now)s)",
            error="(%s AND expires_at > %%(now)s)" % _FAILING,
            expiring="(expires_at > %%(now)s AND NOT %s AND %s)" % (_FAILING, ahead),
            live="(expires_at > %%(now)s AND NOT %s AND NOT (%s))" % (_FAILING, ahead))

    def census(self, now, refresh_fraction, expiring_within=None, owner=None):
        states = self._state_conditions()
        names = list(CENSUS_COLUMNS)
        columns = ["COUNT(*)"] + ["SUM(CASE WHEN %s THEN 1 ELSE 0 END)" % condition for condition in (
            states["expiring"], states["lapsed"], states["error"], _FAILING)] + ["MAX(upserted_at)"]
        params = dict(now=now, within=expiring_within, fraction=refresh_fraction, scope=self.scope)
        if owner is not None:
            params.update(owner_endpoint=owner[0], owner_principal=owner[1])
            names.append("refresh_failing")
            columns.append("SUM(CASE WHEN %s AND delete_pending = 0 AND endpoint = %%(owner_endpoint)s AND "
                           "principal = %%(owner_principal)s THEN 1 ELSE 0 END)" % _FAILING)
        row = self._query("SELECT %s FROM %s WHERE scope = %%(scope)s" % (", ".join(columns), TABLE), params)
        values = list(row[0]) if row else [None] * len(columns)
        owner_counts = None
        if owner is not None:
            mine = self._query("SELECT COUNT(*), SUM(delete_pending) FROM %s WHERE scope = %%s AND endpoint = %%s "
                               "AND principal = %%s" % TABLE, (self.scope,) + tuple(owner))
            owner_counts = (mine[0][0] or 0, mine[0][1] or 0) if mine else (0, 0)
        return self._census(names, values, owner_counts)

    def owners(self):
        rows = self._query('SELECT endpoint, principal, COUNT(*) FROM %s WHERE scope = %%s GROUP BY endpoint, '
                           'principal ORDER BY endpoint COLLATE "C", principal COLLATE "C"' % TABLE, (self.scope,))
        return list(rows)

    def owner_summary(self, endpoint, principal, now):
        rows = self._query("SELECT SUM(CASE WHEN expires_at IS NULL OR expires_at <= %%s THEN 1 ELSE 0 END), "
                           "MAX(upserted_at) FROM %s WHERE scope = %%s AND endpoint = %%s AND principal = %%s" % TABLE,
                           (now, self.scope, endpoint, principal))
        lapsed, last = rows[0] if rows else (0, None)
        return dict(lapsed=int(lapsed or 0), last_upserted_at=last)

    def group_states(self, by, now, refresh_fraction, expiring_within=None):
        by = tuple(by)
        self._groups(by, [])  # refuses unknown fields
        states = self._state_conditions()
        columns = ", ".join(by)
        order = ", ".join(name if name == "delete_pending" else '%s COLLATE "C" NULLS FIRST' % name for name in by)
        sql = ("SELECT %s, COUNT(*), %s, SUM(CASE WHEN %s THEN 1 ELSE 0 END), MAX(upserted_at) FROM %s "
               "WHERE scope = %%(scope)s GROUP BY %s ORDER BY %s" % (
                   columns, ", ".join("SUM(CASE WHEN %s THEN 1 ELSE 0 END)" % states[name]
                                      for name in ("live", "expiring", "lapsed", "error")),
                   _FAILING, TABLE, columns, order))
        return self._groups(by, self._query(sql, dict(now=now, within=expiring_within, fraction=refresh_fraction,
                                                      scope=self.scope)))

    def nearest(self, now, limit):
        rows = self._query("%s WHERE scope = %%s AND expires_at > %%s ORDER BY expires_at, key LIMIT %%s" % _SELECT,
                           (self.scope, now, int(limit)))
        return [LedgerEntry.from_row(row) for row in rows]

    def phone_numbers(self, endpoint, principal, limit):
        rows = self._query('SELECT DISTINCT phone_number COLLATE "C" FROM %s WHERE scope = %%s AND endpoint = %%s AND '
                           'principal = %%s AND phone_number IS NOT NULL ORDER BY 1 LIMIT %%s' % TABLE,
                           (self.scope, endpoint, principal, int(limit)))
        return [row[0] for row in rows]

    def _selection(self, selection, now, refresh_fraction, expiring_within):
        """The WHERE conditions and named parameters of a RegistrationFilter."""
        conditions = ["scope = %(scope)s"]
        params = dict(now=now, within=expiring_within, fraction=refresh_fraction, scope=self.scope)
        if selection.states:
            states = self._state_conditions()
            unknown = [state for state in selection.states if state not in states]
            if unknown:
                raise ValueError("select: unknown state(s) %s" % ", ".join(unknown))
            conditions.append("(%s)" % " OR ".join(states[state] for state in selection.states))
        if selection.phone_number is not None:
            conditions.append("phone_number = %(number)s")
            params["number"] = selection.phone_number
        if selection.phone_number_prefix is not None:
            conditions.append("left(phone_number, %(prefix_length)s) = %(prefix)s")
            params.update(prefix=selection.phone_number_prefix, prefix_length=len(selection.phone_number_prefix))
        if selection.sip_uri is not None:
            conditions.append("sip_uri = %(sip_uri)s")
            params["sip_uri"] = selection.sip_uri
        if selection.owner is not None:
            conditions.append("(endpoint = %(owner_endpoint)s AND principal = %(owner_principal)s)")
            params.update(owner_endpoint=selection.owner[0], owner_principal=selection.owner[1])
        if selection.not_owner is not None:
            conditions.append("NOT (endpoint = %(other_endpoint)s AND principal = %(other_principal)s)")
            params.update(other_endpoint=selection.not_owner[0], other_principal=selection.not_owner[1])
        if selection.failing is not None:
            conditions.append(_FAILING if selection.failing else "NOT %s" % _FAILING)
        return conditions, params

    def _selected_page(self, selection, now, refresh_fraction, expiring_within, after, limit):
        conditions, params = self._selection(selection, now, refresh_fraction, expiring_within)
        if after is not None:
            conditions.append("key > %(after)s")
            params["after"] = after
        rows = self._query("%s WHERE %s ORDER BY key LIMIT %d" % (_SELECT, " AND ".join(conditions), limit), params)
        return [(row[0], LedgerEntry.from_row(row)) for row in rows]

    def count_selected(self, selection, now, refresh_fraction, expiring_within=None):
        conditions, params = self._selection(selection, now, refresh_fraction, expiring_within)
        rows = self._query("SELECT COUNT(*) FROM %s WHERE %s" % (TABLE, " AND ".join(conditions)), params)
        return rows[0][0] if rows else 0

    def token_cache(self, local_path=None):
        return PostgresqlTokenCache(PostgresqlLedger(self.parameters, self.scope, self.lock_timeout, self.clock),
                                    TokenCache(local_path) if local_path else None)

    # ------------------------------------------------------------------------------------------ tokens

    def _token_query(self, sql, params):
        conn = self._connection(create=True)
        with self._errors():
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []


class PostgresqlTokenCache:
    """The token cache (``auth.TokenCache``'s interface) in the shared database: every worker and run that uses the
    database trades a rotating refresh token one at a time (a session advisory lock per token) and stores the new
    one before anything else happens, so no two of them ever send the same refresh token twice.

    ``local`` (a file ``TokenCache``) mirrors what is read and stands in while the database cannot be reached: a
    client-credentials token is then fetched and kept locally, but a refresh token is never traded (the others
    could not learn the new one, and the operator may revoke a grant whose refresh token is used twice), so a
    refresh token's registrations are refreshed only while its cached access token lasts."""

    def __init__(self, store, local=None):
        self._store = store  # a connection of its own: a lock held while a token is requested spans statements
        self._local = local

    @property
    def path(self):
        return "%s (table sipbreakout_tokens)" % self._store.location

    def _call(self, sql, params):
        try:
            return self._store._token_query(sql, params)  # pylint: disable=protected-access
        except LedgerUnreachable:
            raise
        except LedgerError as exc:
            raise AuthError("the token cache in %s: %s" % (self._store.location, exc))

    def get(self, key):
        try:
            rows = self._call("SELECT body FROM sipbreakout_tokens WHERE key = %s", (key,))
        except LedgerUnreachable:
            return self._local.get(key) if self._local else None
        entry = json.loads(rows[0][0]) if rows else None
        if entry is not None and self._local is not None and self._local.get(key) != entry:
            self._local.put(key, entry)
        return entry

    def put(self, key, entry):
        try:
            self._call("INSERT INTO sipbreakout_tokens (key, body, updated_at) VALUES (%s, %s, %s) ON CONFLICT (key) "
                       "DO UPDATE SET body = EXCLUDED.body, updated_at = EXCLUDED.updated_at",
                       (key, json.dumps(entry, sort_keys=True), time.time()))
        except LedgerUnreachable:
            if not self._local:
                raise
        if self._local is not None:
            self._local.put(key, entry)

    def forget_access_token(self, key, refused):
        entry = self.get(key)
        # Only the refused token: another process may already have stored a fresh one.
        if entry and entry.get("access_token") == refused:
            entry.pop("access_token", None)
            entry["expires_at"] = 0
            self.put(key, entry)

    @contextlib.contextmanager
    def fetching(self, key, timeout):
        """Held while a token for ``key`` is requested (a session advisory lock, released at the end or when the
        process dies); yields the entry as it is once the lock is held."""
        name = "sipbreakout-token:" + key
        try:
            self._call("SELECT set_config('lock_timeout', %s, false)", ("%dms" % max(1, int(timeout * 1000)),))
            self._call("SELECT pg_advisory_lock(hashtextextended(%s, 1))", (name,))
        except LedgerUnreachable as exc:
            mirrored = self._local.get(key) if self._local else None
            if not self._local or (mirrored or {}).get("refresh_token"):
                raise AuthError("no new access token: the shared ledger %s, which holds the newest refresh token, "
                                "cannot be reached (%s); a refresh token is not traded without it"
                                % (self._store.location, exc))
            with self._local.fetching(key, timeout) as cached:
                yield cached
            return
        try:
            yield self.get(key)
        finally:
            with contextlib.suppress(LedgerError, AuthError):
                self._call("SELECT pg_advisory_unlock(hashtextextended(%s, 1))", (name,))
