# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The interface every ledger store offers, and the bookkeeping they share.

A store holds the entries (``ledger_entry.LedgerEntry``) of one scope: a registration set of the ledger, such as
one inventory host's or one cluster's. Everything that reads or writes entries (the module's service, the
keepalive, health, ``registration_info``) goes through these methods; the SQL lives in the stores
(``ledger_sqlite``, ``ledger_postgresql``) and nowhere else.

Two kinds of writers share a scope, and this is how they stay out of each other's way without holding a lock
across an API call:

* A run of the module decides its changes first: in one transaction it records each new or changed registration
  as ``unconfirmed``, each delete as ``delete_pending``, and claims those entries for itself until a time a little
  past the end of its calls (``claim``; renewed while it runs). Only then are the calls sent; the answers are
  recorded in a second transaction that confirms, restores or clears each entry and releases the claims. Entries
  claimed by someone else are waited for first (a keepalive batch: never longer than its lease).
* A keepalive worker claims the due entries of a batch in one short transaction (``claim_due``: entries nobody
  else holds, never an entry pending a delete), commits, sends, then records the answers (``update``) and releases
  them. A worker killed mid-batch loses its claims when they expire, and another worker takes the entries.

A process killed at any moment thus leaves entries from which the next run or pass converges: an unconfirmed
entry is upserted again (by the keepalive once its claim has expired, or by the next run), an entry pending a
delete is never renewed and is deleted again by the next run that asks for it absent or purges it.
"""

import binascii
import contextlib
import os
import socket
import time

from .errors import LedgerError

# Keys per "IN (...)" lookup: below SQLite's oldest limit of 999 variables.
KEYS_PER_QUERY = 500
# Entries in key order are read in pages of this many rows, each its own statement: no read stays open across a
# caller's writes, and memory does not grow with the ledger.
PAGE_ROWS = 1000
# What group_states() may group by: the entries' own fields.
GROUP_FIELDS = ("endpoint", "principal", "route_type", "sip_uri", "delete_pending")
# The census's columns, in the order the stores read them.
CENSUS_COLUMNS = ("total", "expiring", "lapsed", "error", "failing", "last_upserted_at")
# A module run's scope when none is given: what a single host's ledger always was.
DEFAULT_SCOPE = "default"
# How long a write waits for the entries claimed by another (a keepalive batch) before it looks again.
CLAIM_POLL_SECONDS = 0.1


class ClaimedElsewhere(Exception):
    """Raised inside ``update()`` when entries are claimed by another process: nothing is written, and
    ``claimed_update`` tries again once the claims are released or have expired."""

    def __init__(self, claims):
        super().__init__("%d entries are claimed by another process" % len(claims))
        self.claims = claims  # [(key, claimed_by, claimed_until)]


def chunks(items, size):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def changes(before, entries):
    """``(gone keys, changed rows)``: what ``update()`` writes, given the rows read (``{key: row}``) and the
    caller's entries after the block."""
    gone = [key for key in before if key not in entries]
    rows = []
    for key, entry in entries.items():
        row = entry.row(key)
        if before.get(key) != row:
            rows.append(row)
    return gone, rows


def due_position(entry, key):
    """Where an entry stands in the keepalive's order: never-confirmed and unconfirmed entries first, then by expiry
    (the stores order by the same expression)."""
    if entry.unconfirmed or entry.expires_at is None:
        return (0.0, key)
    return (entry.expires_at, key)


class LedgerStore:
    """One scope of a ledger. Reads need no transaction; writes are transactions (``update``, ``claim_due``,
    ``renew``).

    ``location`` names the ledger in messages and results (a path, or ``postgresql://host:port/dbname``), never a
    password. Subclasses implement every method below that raises NotImplementedError.
    """

    kind = None
    # Shared by several hosts (then a keepalive keeps a local copy to refresh from while it cannot be reached).
    shared = False

    def __init__(self, scope=DEFAULT_SCOPE, lock_timeout=60.0, clock=time.time):
        self.scope = scope or DEFAULT_SCOPE
        self.lock_timeout = lock_timeout
        self.clock = clock

    @property
    def location(self):
        raise NotImplementedError

    def describe(self):
        """The ledger and scope, for messages."""
        if self.scope == DEFAULT_SCOPE:
            return self.location
        return "%s (scope %s)" % (self.location, self.scope)

    def close(self):
        """Close the connection; the next use opens it again."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ------------------------------------------------------------------------------------------ reading

    def exists(self):
        """Whether the ledger exists at all (a database that was never written does not)."""
        raise NotImplementedError

    def read(self):
        """Every entry of the scope: ``{key: LedgerEntry}``. For small ledgers and tests; see find() and get()."""
        return dict((entry.key, entry) for entry in self.find())

    def get(self, keys):
        """``{key: LedgerEntry}`` for those of ``keys`` the scope holds."""
        raise NotImplementedError

    def find(self, endpoint=None, principal=None, phone_number=None):
        """The entries of the scope that match every argument given, as an iterator in key order.

        Read a page at a time, each page its own statement: memory stays that of one page, and the caller may
        update the ledger while it iterates. An entry changed meanwhile is seen as it is when its page is read."""
        after = None
        while True:
            page = self._page(endpoint, principal, phone_number, after, PAGE_ROWS)
            for key, entry in page:
                yield entry
            if len(page) < PAGE_ROWS:
                return
            after = page[-1][0]
            del page  # one page in memory at a time

    def _page(self, endpoint, principal, phone_number, after, limit):
        """``[(key, entry)]``: the next ``limit`` entries in key order after the key ``after``."""
        raise NotImplementedError

    def count(self):
        """How many entries the scope holds."""
        raise NotImplementedError

    def holds(self, endpoint, principal):
        """Whether the scope holds any entry of ``endpoint`` and ``principal`` (what a keepalive for them refreshes)."""
        raise NotImplementedError

    def token_cache(self, local_path=None):
        """The token cache the store's users share (``auth.TokenCache``'s interface; ``local_path`` a file that
        mirrors it), or None: then each host keeps its own file (``token_cache_path``)."""
        return None

    def failing(self, limit=None, endpoint=None, principal=None, errors=True):
        """``(count, first entries)`` of the entries whose last attempt failed (with ``errors``) and, given
        ``endpoint`` and ``principal``, of those a keepalive for them does not refresh: another's, or pending a
        delete. At most ``limit`` entries (all when None), by number and URI."""
        raise NotImplementedError

    def longest_ttl(self, endpoint, principal, default_ttl):
        """The longest TTL of the entries of ``endpoint`` and ``principal`` (``default_ttl`` for one not known)."""
        raise NotImplementedError

    def shortest_ttl(self, endpoint, principal):
        """The shortest TTL the API returned for an entry of ``endpoint`` and ``principal``; None if none did."""
        raise NotImplementedError

    def expiring(self, endpoint, principal, limit, before=None, lead=0.0, default_ttl=0.0, longest_ttl=None,
                 untried_since=None, after=None, unclaimed_at=None):
        """The next ``limit`` entries of ``endpoint`` and ``principal`` not pending a delete, in the keepalive's
        order (``due_position``), from after the position ``after`` (what the previous call returned).

        With ``before``, only those whose expiry less ``lead`` times their TTL (``default_ttl`` when unknown) is
        not after ``before`` (unconfirmed ones always); ``longest_ttl`` (longest_ttl()) bounds the rows looked at.
        With ``untried_since``, only those not attempted since then; with ``unclaimed_at``, only those nobody
        claims at that time. Returns ``[(key, entry)]`` and the position after the last one."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ reports
    # The queries of registration_info and of the keepalive's health file and metrics: counted and paged by the
    # database, so that no report holds every entry. test_ledger_reports.py holds every store to their meaning.

    def census(self, now, refresh_fraction, expiring_within=None, owner=None):
        """Counts of the whole scope in one read of it, without loading entries: a dict with ``total``; ``live``,
        ``expiring``, ``lapsed`` and ``error``, the states of health.classify at ``now`` with ``refresh_fraction``
        and ``expiring_within``; ``failing``, the entries whose last attempt failed (``last_error``
        set and not empty), lapsed or not; ``last_upserted_at``, the newest ``upserted_at`` (None if none has one).

        With ``owner`` (endpoint, principal), what a keepalive for them sees: ``others``, the entries of another
        endpoint or principal; ``not_refreshed``, those and the owner's entries pending a delete;
        ``refresh_failing``, the owner's entries not pending a delete that are failing;
        ``failing_or_not_refreshed``, the entries that are either."""
        raise NotImplementedError

    def owners(self):
        """Each (endpoint, principal) of the scope, in ascending order, with how many entries it holds:
        ``[(endpoint, principal, count)]``."""
        raise NotImplementedError

    def owner_summary(self, endpoint, principal, now):
        """``lapsed`` (at ``now``) and ``last_upserted_at`` (the newest ``upserted_at``, None if none has one) of
        the entries of ``endpoint`` and ``principal``."""
        raise NotImplementedError

    def group_states(self, by, now, refresh_fraction, expiring_within=None):
        """The entries counted per distinct value of the fields ``by`` (names of GROUP_FIELDS), without loading
        them: ``[(values, counts)]``, ``values`` a tuple of the fields' values in the order of ``by``, the groups in
        ascending order of their values (None first; ``delete_pending`` as False and True); ``counts`` as census()
        without the owner's counts (``total``, the four states, ``failing``), and ``last_upserted_at`` (the newest
        ``upserted_at`` of the group). An empty or missing ledger has no groups.

        It sorts the whole scope (about a second per million entries): for the keepalive's periodic counts, not for
        every pass."""
        raise NotImplementedError

    def nearest(self, now, limit):
        """The ``limit`` entries that lapse first among those not lapsed at ``now`` (``expires_at`` after it), in
        order of ``expires_at``, then of key."""
        raise NotImplementedError

    def phone_numbers(self, endpoint, principal, limit):
        """The first ``limit`` distinct phone numbers of the entries of ``endpoint`` and ``principal``, in
        ascending order (entries without a number are left out)."""
        raise NotImplementedError

    def select(self, selection, now, refresh_fraction, expiring_within=None):
        """The entries that match ``selection`` (a RegistrationFilter; its states at ``now`` with
        ``refresh_fraction`` and ``expiring_within``, as health.classify), as an iterator in key order, a page of
        PAGE_ROWS at a time, each page its own statement, as find()."""
        after = None
        while True:
            page = self._selected_page(selection, now, refresh_fraction, expiring_within, after, PAGE_ROWS)
            for _key, entry in page:
                yield entry
            if len(page) < PAGE_ROWS:
                return
            after = page[-1][0]
            del page

    def _selected_page(self, selection, now, refresh_fraction, expiring_within, after, limit):
        """``[(key, entry)]``: the next ``limit`` entries in key order after ``after`` that match ``selection``."""
        raise NotImplementedError

    def count_selected(self, selection, now, refresh_fraction, expiring_within=None):
        """How many entries select() yields for the same arguments."""
        raise NotImplementedError

    @staticmethod
    def _census(names, values, owner_counts=None):
        """census()'s dict from the values of its columns ``names`` and, with an owner, that owner's (entries,
        pending a delete)."""
        counts = dict((name, values[index] if name == "last_upserted_at" else int(values[index] or 0))
                      for index, name in enumerate(names))
        counts["live"] = counts["total"] - counts["expiring"] - counts["lapsed"] - counts["error"]
        if owner_counts is not None:
            total, pending = owner_counts
            counts["others"] = counts["total"] - total
            counts["not_refreshed"] = counts["others"] + pending
            counts["failing_or_not_refreshed"] = counts["not_refreshed"] + counts["refresh_failing"]
        return counts

    @staticmethod
    def _groups(by, rows):
        """group_states()'s result from rows of (the values of ``by``..., total, live, expiring, lapsed, error,
        failing, last_upserted_at)."""
        unknown = [name for name in by if name not in GROUP_FIELDS]
        if not by or unknown:
            raise ValueError("group_states: cannot group by %r; one or more of %s" % (by, ", ".join(GROUP_FIELDS)))
        groups = []
        for row in rows:
            values = tuple(bool(value) if name == "delete_pending" else value for name, value in zip(by, row))
            numbers = row[len(by):]
            counts = dict(zip(("total", "live", "expiring", "lapsed", "error", "failing"),
                              [int(value or 0) for value in numbers[:6]]))
            counts["last_upserted_at"] = numbers[6]
            groups.append((values, counts))
        return groups

    # ------------------------------------------------------------------------------------------ writing

    def update(self, keys=None, exclusive=False):
        """``with store.update(keys) as entries:`` the entries of ``keys`` the scope holds (every entry when None),
        read inside one write transaction that locks them. The caller sets, changes and pops entries of the dict;
        on exit exactly those changes are written, in the same transaction. Nothing is written if the block
        raises. ``exclusive`` also holds the scope's write lock, so that no other run of the scope decides anything
        between this transaction's read and its write (a run's new entries and purges)."""
        raise NotImplementedError

    def claim_due(self, endpoint, principal, limit, owner, until, is_due, **query):
        """Claim for ``owner`` until ``until`` the entries ``is_due(key, entry)`` accepts among the next ``limit``
        of ``expiring(endpoint, principal, limit, unclaimed_at=now, **query)``, in one short transaction that skips
        entries another transaction holds. Returns ``([(key, entry)] claimed, position)``."""
        raise NotImplementedError

    def renew(self, owner, keys, until):
        """Extend ``owner``'s claims on ``keys`` to ``until`` (a run that is still sending)."""
        raise NotImplementedError

    def _claims_message(self, claims):
        owners = sorted(set(owner for _key, owner, _until in claims))
        return ("%d registration(s) of the ledger %s stayed claimed by %s for %g s (a keepalive batch or another run "
                "sending calls for them); is it stuck?"
                % (len(claims), self.describe(), ", ".join(owners), self.lock_timeout))

    @contextlib.contextmanager
    def claimed_update(self, keys, owner, waits_for=None, stop=None):
        """``update(keys, exclusive=True)`` once no entry of ``keys`` is claimed by anyone but ``owner`` (waiting up
        to ``lock_timeout`` for such claims to be released or to expire). ``waits_for(key, entry)``, if given,
        says which claims to wait for; the caller deals with the others."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                with self.update(keys, exclusive=True) as entries:
                    now = self.clock()
                    claims = [(key, entry.claimed_by, entry.claimed_until) for key, entry in entries.items()
                              if entry.claimed(now, by_other_than=owner)
                              and (waits_for is None or waits_for(key, entry))]
                    if claims:
                        raise ClaimedElsewhere(claims)
                    yield entries
                return
            except ClaimedElsewhere as exc:
                if time.monotonic() >= deadline or (stop is not None and stop()):
                    raise LedgerError(self._claims_message(exc.claims))
                time.sleep(CLAIM_POLL_SECONDS)


def owner_name(role):
    """Who claims entries, as ``claimed_by`` shows it: ``run:HOST:PID:RANDOM`` or ``keepalive:HOST:PID:RANDOM``."""
    return "%s:%s:%d:%s" % (role, socket.gethostname(), os.getpid(), binascii.hexlify(os.urandom(3)).decode())


class Lease:
    """A run's claims on the entries it is sending calls for, renewed while it sends.

    Every call ends within ``call_seconds`` of its start (the client's deadline, retries included), and the claim
    is renewed before a call starts once that long has passed since it was made or renewed, for twice that long
    and a second: so a claim never expires while a call made under it is in flight, and a process that is killed
    loses it within ``2 * call_seconds + 1``."""

    def __init__(self, store, owner, call_seconds, clock=time.time):
        self.store = store
        self.owner = owner
        self.call_seconds = float(call_seconds)
        self.seconds = 2.0 * self.call_seconds + 1.0
        self.clock = clock
        self.keys = []
        self._renewed = None

    def until(self):
        """Until when a claim made now holds."""
        return self.clock() + self.seconds

    def holding(self, keys):
        """The claims just made (until until()) are on ``keys``."""
        self.keys = list(keys)
        self._renewed = self.clock()

    def keep(self):
        """Renew the claims if a call's time has passed since they were made or last renewed (cheap otherwise)."""
        now = self.clock()
        if self.keys and now - self._renewed >= self.call_seconds:
            self.store.renew(self.owner, self.keys, now + self.seconds)
            self._renewed = now
