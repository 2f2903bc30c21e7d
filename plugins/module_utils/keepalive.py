# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keepalive: re-upserts every registration of a host's ledger before its TTL runs out.

It runs on the PBX host (installed by the ``wgtwo.sipbreakout.keepalive`` role), from a systemd timer or cron
(``--once``: refresh what is due, write the health file and metrics, exit) or as a long-running loop that sleeps
until the next registration is due. It uses the same ``Connection``, client, token sources and ``Ledger`` as the
modules, and a JSON config file whose connection keys are the modules' shared options.

Config file: a JSON object; every key is optional, unknown keys are refused, and a file that holds a secret must be
readable by its owner only. Its keys are the modules' shared options (``options.SHARED_OPTIONS``: the connection, the
credentials, the ledger), with the modules' types and defaults except ``KEEPALIVE_DEFAULTS``, and the keepalive's own
``SETTINGS``. docs/keepalive.md lists every key; for example::

    {
      "client_id": "...", "client_secret": "...",
      "ledger_path": "/var/lib/wgtwo-sipbreakout/ledger.sqlite",
      "metrics_path": "/var/lib/prometheus/node-exporter/wgtwo_sipbreakout.prom",
      "concurrency": 256
    }

A pass streams: it takes the due registrations from the ledger ``batch_size`` at a time, in expiry order, sends a
batch and records it in one transaction before it takes the next, so its memory does not grow with the ledger and a
pass that is killed loses the bookkeeping of one batch at most (the next pass sends those again). The health file
and the metrics are made from counts and a bounded sample of failures; the per-registration series are written as
the ledger is read.

Only registrations the ledger holds for the configured endpoint and credentials are refreshed; a registration
removed from the ledger (``state: absent``) is never refreshed again. Failed refreshes stay in the ledger with
their error and are retried; nothing is dropped. No secret and no token is ever logged or written outside the
config file and the token cache.
"""

import argparse
import hashlib
import json
import logging
import os
import random
import signal
import stat
import sys
import threading
import time

from .adoption import takeover_hint
from .client import DEFAULT_CONCURRENCY, DOCUMENTED_TTL, GRPC_IMPORT_ERROR, HAS_GRPC, Call, shed_warning
from .connection import OPTIONS, Connection
from .errors import LedgerError, LedgerUnreachable, SipBreakoutError, ValidationError
from .health import DEFAULT_HEALTH_PATH, DEFAULT_REFRESH_FRACTION, FAILURES_SHOWN, METRICS_PER_REGISTRATION_LIMIT, \
    HealthFile, breakdown, by_field, by_sip_host, count_pass, empty_summary, hostname, render_metrics, summarize, \
    write_textfile
from .ledger import open_ledger
from .ledger_entry import isoformat
from .ledger_sqlite import SqliteLedger
from .ledger_transfer import copy_ledger
from .ledger_store import Lease, owner_name
from .options import CONNECTION, LEDGER, SECRETS, Option, options_in
from .retry import Deadline
from .statefile import fsync_directory, locked
from .wire import HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR

PROG = "wgtwo-sipbreakout-keepalive"
DEFAULT_CONFIG_PATH = "/etc/wgtwo-sipbreakout/keepalive.json"
DEFAULT_STATE_DIR = "/var/lib/wgtwo-sipbreakout"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

# The keepalive's own settings, beside the modules' options (documented in docs/keepalive.md).
KEEPALIVE = "keepalive"
SETTINGS = (
    Option("health_path", KEEPALIVE, "path", DEFAULT_HEALTH_PATH),
    Option("metrics_path", KEEPALIVE, "path"),
    Option("metrics_per_registration", KEEPALIVE, "bool", False),
    Option("refresh_fraction", KEEPALIVE, "float", DEFAULT_REFRESH_FRACTION),
    Option("jitter", KEEPALIVE, "float", 0.25),
    Option("schedule_interval", KEEPALIVE, "float", 300.0),
    Option("retry_interval", KEEPALIVE, "float", 60.0),
    Option("max_sleep", KEEPALIVE, "float", 300.0),
    Option("concurrency", KEEPALIVE, "int", DEFAULT_CONCURRENCY),
    Option("batch_size", KEEPALIVE, "int", 5000),
    Option("expect_empty", KEEPALIVE, "bool", False),
    Option("ledger_copy_path", KEEPALIVE, "path", DEFAULT_STATE_DIR + "/ledger-copy.sqlite"),
    Option("ledger_copy_interval", KEEPALIVE, "float", 300.0),
)
# Where the keepalive's default differs from the modules': it keeps its files in its own root-only state directory
# (the modules' are per user), and a pass waits longer for a module run, which may hold the ledger for minutes.
KEEPALIVE_DEFAULTS = {
    "token_cache_path": DEFAULT_STATE_DIR + "/tokens.json",
    "lock_timeout": 120.0,
}
# Every key of the config file, in the order docs/keepalive.md lists them.
CONFIG_OPTIONS = options_in(CONNECTION, LEDGER) + SETTINGS

# Held by a pass from start to end, beside the health file (the role's removal waits for it).
PASS_LOCK_SUFFIX = ".pass.lock"

# Loop mode: the counts of the whole ledger (health file, metrics) are taken again once the last ones are older than
# this many times what taking them cost, so that they never use more than about a twentieth of the keepalive's time
# (every pass for a small ledger; every half minute or so for a million registrations), and at least every
# max_sleep. A --once run always takes them.
SUMMARY_COST_FACTOR = 20.0
# Never refresh one registration more often than this, whatever TTL the API returns.
MIN_REFRESH_SECONDS = 1.0
MIN_SLEEP = 0.05

LOG = logging.getLogger("wgtwo.sipbreakout.keepalive")


class Settings:
    """A validated config file: every key of CONFIG_OPTIONS as an attribute."""

    def __init__(self, values, path=None):
        self.path = path
        self.values = values
        for key, value in values.items():
            setattr(self, key, value)

    def connection_options(self):
        return dict((name, self.values.get(name)) for name in OPTIONS)


def keepalive_default(option):
    """The keepalive's default of a config key (an Option of CONFIG_OPTIONS)."""
    return KEEPALIVE_DEFAULTS.get(option.name, option.default)


def _convert(path, option, value):
    def bad(expected):
        shown = "(hidden)" if option.secret else json.dumps(value)
        return ValidationError(option.name, "%s: expected %s, got %s" % (path, expected, shown))

    kind = option.type
    if value is None:
        return None
    if kind in ("str", "path"):
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        if option.choices and value not in option.choices:
            raise bad("one of %s" % ", ".join(option.choices))
        return os.path.expanduser(value) if kind == "path" else value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad("a number")
    if kind == "int":
        if int(value) != value:
            raise bad("a whole number")
        return int(value)
    return float(value)


def parse_config(data, path="config"):
    """Check and complete a config dict; raises ValidationError naming the key (never a secret's value)."""
    if not isinstance(data, dict):
        raise ValidationError("config", "%s must hold a JSON object" % path)
    known = [option.name for option in CONFIG_OPTIONS]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValidationError(unknown[0], "%s: unknown key(s) %s; known keys: %s" % (
            path, ", ".join(unknown), ", ".join(sorted(known))))
    values = {}
    for option in CONFIG_OPTIONS:
        if option.group == CONNECTION:
            # A connection option's null says "none" (token_cache_path: null keeps no cache), as None does to
            # Connection.
            given = data.get(option.name, keepalive_default(option))
        else:
            # Elsewhere null is the default: a templated config may write one.
            given = keepalive_default(option) if data.get(option.name) is None else data[option.name]
        values[option.name] = _convert(path, option, given)
    _check_ranges(path, values)
    if not values["token_cache_path"] and values.get("refresh_token"):
        raise ValidationError("token_cache_path", "%s: is required with refresh_token: the operator rotates refresh "
                                                  "tokens and the newest one must be kept on disk" % path)
    return Settings(values, path)


def _check_ranges(path, values):
    def need(ok, key, text):
        if not ok:
            raise ValidationError(key, "%s: %s (got %r)" % (path, text, values[key]))

    need(0.0 < values["refresh_fraction"] < 1.0, "refresh_fraction", "must be between 0 and 1")
    need(0.0 <= values["jitter"] and values["refresh_fraction"] * (1.0 + values["jitter"]) < 1.0, "jitter",
         "must be 0 or more, and refresh_fraction * (1 + jitter) less than 1")
    need(values["schedule_interval"] >= 0.0, "schedule_interval", "must be 0 or more")
    for key in ("retry_interval", "max_sleep", "lock_timeout"):
        need(values[key] > 0.0, key, "must be greater than 0")
    need(values["concurrency"] >= 1, "concurrency", "must be 1 or more")
    need(values["batch_size"] >= 1, "batch_size", "must be 1 or more")
    if values["timeout"] is not None:
        need(values["timeout"] > 0.0, "timeout", "must be greater than 0")
    if values["retries"] is not None:
        need(values["retries"] >= 0, "retries", "must be 0 or more")


def load_config(path):
    """Read and check the config file; a file holding a secret must not be readable by group or others."""
    try:
        with open(path, "r") as handle:
            info = os.fstat(handle.fileno())
            text = handle.read()
    except (IOError, OSError) as exc:
        raise ValidationError("config", "cannot read %s: %s" % (path, exc.strerror or exc))
    try:
        data = json.loads(text)
    except ValueError as exc:
        # The message names line and column only, never the text around them: the file holds secrets.
        raise ValidationError("config", "%s is not valid JSON: %s" % (path, exc))
    settings = parse_config(data, path)
    holds = [name for name in SECRETS if settings.values.get(name)]
    if holds and stat.S_IMODE(info.st_mode) & 0o077:
        raise ValidationError("config", "%s holds %s but is readable by group or others (mode %04o); make it "
                                        "readable by its owner only (chmod 600)"
                              % (path, ", ".join(holds), stat.S_IMODE(info.st_mode)))
    return settings


def _spread(key, upserted_at):
    """A number in [0, 1) fixed for one registration and one upsert: jitter that is stable across wake-ups."""
    digest = hashlib.sha256(("%s|%r" % (key, upserted_at)).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) / float(1 << 32)


class Keepalive:
    """Refreshes the registrations of one ledger that belong to one endpoint and one set of credentials."""

    def __init__(self, settings, connection, clock=time.time, stop=None, ledger=None):
        self.settings = settings
        self.connection = connection
        self.clock = clock
        self.stop = stop or threading.Event()
        # The configured ledger, and the one a pass works on: the same, or its local copy while the configured
        # (shared) one cannot be reached.
        self.configured = ledger or open_ledger(settings.values, clock=clock)
        self.ledger = self.configured
        self.copy = None
        if self.configured.shared and settings.ledger_copy_path:
            self.copy = SqliteLedger(settings.ledger_copy_path, self.configured.scope, settings.lock_timeout, clock)
        self.health = HealthFile(settings.health_path, lock_timeout=settings.lock_timeout)
        self._summary = None  # (taken at, cost in seconds, summary, warnings) of the last counts of the whole ledger
        self._tokens_counted = (0, 0)  # the token source's counters already added to the health file's
        # Who this worker is in the ledger's claims; a batch's claims last long enough for its calls to end.
        self.owner = owner_name("keepalive")
        self.lease = Lease(self.ledger, self.owner, connection.timeout, clock)

    def passing(self):
        """``with keepalive.passing():`` around a pass: one pass of this keepalive at a time on this host (a manual
        ``--once`` waits for the timer's), and the role's removal waits for it. Module runs never take it: they
        wait only for the entries a batch claims."""
        return locked(self.health.path + PASS_LOCK_SUFFIX, self.settings.lock_timeout, stop=self.stop)

    # ------------------------------------------------------------------------------------------ scheduling

    def owns(self, entry):
        return entry.endpoint == self.connection.endpoint and entry.principal == self.connection.principal

    def refresh_at(self, entry, key=None):
        """When ``entry`` should be refreshed: once ``refresh_fraction`` (plus its jitter) of the TTL is left."""
        if entry.upserted_at is None:
            return 0.0
        ttl = entry.time_to_live if entry.time_to_live is not None else DOCUMENTED_TTL
        spread = _spread(key or entry.key, entry.upserted_at)
        margin = ttl * self.settings.refresh_fraction * (1.0 + self.settings.jitter * spread)
        return max(entry.upserted_at + ttl - margin, entry.upserted_at + MIN_REFRESH_SECONDS)

    def retry_delay(self, entry, key=None):
        ttl = entry.time_to_live if entry.time_to_live is not None else DOCUMENTED_TTL
        # Short TTLs get short retries, so a failed refresh is tried again well before the registration lapses.
        base = min(self.settings.retry_interval, max(ttl / 6.0, 0.2))
        return base * (1.0 + self.settings.jitter * _spread(key or entry.key, entry.last_attempt_at))

    def next_attempt_at(self, entry, lookahead=0.0, key=None):
        """When to try ``entry`` next; ``lookahead`` pulls refreshes forward that would be late by the next run.

        ``key``, when known, saves computing the entry's key."""
        # An unconfirmed entry (a run decided it and was killed, or lost the answer) is sent as soon as it can be.
        due = 0.0 if entry.unconfirmed else self.refresh_at(entry, key) - lookahead
        failing = entry.last_error and entry.last_attempt_at is not None
        if failing and entry.last_attempt_at >= (entry.upserted_at or 0.0):
            due = max(due, entry.last_attempt_at + self.retry_delay(entry, key))
        return due

    # ------------------------------------------------------------------------------------------ one pass

    def run_pass(self, force=False, lookahead=0.0, mode="once"):
        """Refresh what is due (everything with ``force``), then write the health file and metrics.

        Returns the ``last_run`` dict of the report; its ``outcome`` is ``idle``, ``ok`` or ``failed``.
        """
        started = self.clock()
        run = dict(mode=mode, started_at=isoformat(started), started_at_epoch=started, due=0, refreshed=0,
                   failed=0, not_sent=0, skipped=0, error=None)
        outage = self._choose_ledger(run)
        try:
            if self.settings.expect_empty or self.ledger.holds(self.connection.endpoint, self.connection.principal):
                self._refresh_due(started, force, lookahead, run)
            else:
                run["error"] = self._nothing_to_refresh()
                LOG.error("%s", run["error"])
        except LedgerError as exc:
            run["error"] = str(exc)
            LOG.error("%s", exc)
        if outage is not None:
            run["error"] = run["error"] or str(outage)
            self._summary = None  # counts of the copy: the next pass on the database takes its own
        try:
            return self._report(run, lookahead)
        finally:
            if outage is None and self.copy is not None and not run["error"]:
                self._keep_copy()
            self.ledger = self.lease.store = self.configured

    def _nothing_to_refresh(self):
        return ("the ledger %s holds no registration of %s as %s, so this keepalive refreshes nothing and every "
                "registration the module applied elsewhere lapses within its TTL. Point the keepalive at the ledger "
                "the registration module writes (ledger_store, ledger_path or the database, ledger_scope, and the "
                "same api_endpoint and credentials), or set expect_empty: true (role: keepalive_expect_empty) where "
                "no registration is expected yet"
                % (self.ledger.describe(), self.connection.endpoint, self.connection.principal))

    # ------------------------------------------------------------------------------------------ local copy

    def _choose_ledger(self, run):
        """The ledger of this pass: the configured one, or its local copy when that one cannot be reached (then the
        reason, which the pass reports as its error, else None)."""
        if self.copy is None:
            return None
        try:
            self.configured.holds(self.connection.endpoint, self.connection.principal)
            return None
        except LedgerUnreachable as exc:
            made = self._copy_made_at()
            outage = LedgerUnreachable("%s; refreshing from its local copy %s (made %s) until it is back" % (
                exc, self.copy.path, "at %s" % isoformat(made) if made is not None else "never: there is none"))
            LOG.error("%s", outage)
            run["ledger_copy"] = dict(path=self.copy.path, made_at=isoformat(made), made_at_epoch=made)
            self.ledger = self.lease.store = self.copy
            return outage

    def _copy_made_at(self):
        try:
            return os.path.getmtime(self.copy.path)
        except OSError:
            return None

    def _keep_copy(self):
        """Copy the configured ledger's scope to the local copy when the copy is older than
        ``ledger_copy_interval``: written beside it, then renamed over it, so that it is always whole."""
        made = self._copy_made_at()
        if made is not None and self.clock() - made < self.settings.ledger_copy_interval:
            return
        self.copy.close()
        try:
            copy_ledger(self.configured, self.copy.path, self.copy.scope, self.settings.lock_timeout, self.clock)
        except (LedgerError, OSError) as exc:
            LOG.warning("the local copy %s was not renewed: %s", self.copy.path, exc)
            return
        fsync_directory(os.path.dirname(self.copy.path))
        LOG.debug("renewed the local copy %s of %s", self.copy.path, self.configured.describe())

    def _refresh_due(self, started, force, lookahead, run):
        """Claim, send and record what is due, ``batch_size`` at a time, most urgent first.

        Each batch is claimed in one short transaction (entries nobody else holds: another worker's batch, or a
        run that is changing them), sent, then recorded and released: no lock is held during the calls, several
        workers split the work, and a module run waits at most for one batch. A batch starts no call later than
        its claim allows for that call to end (``batch_seconds``); what it did not send is left for the next
        pass, and a worker killed mid-batch loses its claims within ``Lease.seconds``.
        """
        endpoint, principal = self.connection.endpoint, self.connection.principal
        # The database cannot compute the jitter: it selects every entry whose earliest possible refresh point is
        # due, and next_attempt_at() decides. An entry attempted during this pass is not looked at again.
        lead = self.settings.refresh_fraction * (1.0 + self.settings.jitter)
        longest = None if force else self.ledger.longest_ttl(endpoint, principal, DOCUMENTED_TTL)
        blocker = []  # why the API cannot be reached: every due registration from then on is marked with it
        token_checked = False
        lowest = self.settings.concurrency
        position = None
        while not self.stop.is_set():
            previous = position
            due, position = self.ledger.claim_due(
                endpoint, principal, self.settings.batch_size, self.owner, self.lease.until(),
                lambda key, entry: force or self.next_attempt_at(entry, lookahead, key) <= started,
                before=None if force else started + lookahead, lead=lead, default_ttl=DOCUMENTED_TTL,
                longest_ttl=longest, untried_since=started, after=position)
            if position == previous:
                break  # nothing more to look at
            if not due:
                continue
            run["due"] += len(due)
            if not token_checked:
                token_checked = True
                try:
                    # One token up front: if the token endpoint refuses us, no registration needs to find that out
                    # again.
                    self.connection.token_source.token(Deadline(self.connection.timeout))
                except SipBreakoutError as exc:
                    blocker.append(exc)
                    LOG.error("cannot get an access token, no registration refreshed: %s", exc)
            lowest = min(lowest, self._refresh_batch(due, blocker, run))
        warning = shed_warning(lowest, self.settings.concurrency, run["due"])
        if warning:
            LOG.warning("%s", warning)

    def _refresh_batch(self, due, blocker, run):
        """Upsert every entry of ``due`` (claimed) on the one channel, ``concurrency`` in flight, and record them
        together; returns the fewest calls that were allowed in flight."""

        def on_done(call):
            if call.api_down and not blocker:
                blocker.append(call.error)

        # Calls start only while one can still end within the claim.
        last_start = self.clock() + self.lease.seconds - self.lease.call_seconds - 1.0
        calls = [Call(entry.registration) for _key, entry in due]
        lowest = self.settings.concurrency
        try:
            if not blocker:
                lowest = self.connection.client.run(
                    calls, concurrency=self.settings.concurrency, on_done=on_done, clock=self.clock,
                    stop=lambda: bool(blocker) or self.stop.is_set() or self.clock() > last_start)
        finally:
            # Also when something unexpected interrupts the calls: what was refreshed is recorded.
            with self.ledger.update([key for key, _entry in due]) as current:
                for (key, entry), call in zip(due, calls):
                    self._record(current.get(key), entry, call, blocker, run)
        return lowest

    def _record(self, entry, sent, call, blocker, run):
        """Update ``entry`` (the ledger's, now) from ``call``, which was made from ``sent``, and release it."""
        if (entry is None or not self.owns(entry) or entry.registration != sent.registration or entry.delete_pending
                or entry.claimed_by != self.owner):
            # This worker's claim ran out and a run or another worker decided on it since: theirs stands.
            LOG.info("%s changed in the ledger during the pass; not recorded", sent.registration.label)
            run["skipped"] += 1
            return
        entry.release()
        label = entry.registration.label
        if call.ok:
            left = entry.expires_at - call.sent_at if entry.expires_at is not None else None
            entry.upserted_at = call.sent_at
            entry.time_to_live = call.time_to_live
            entry.unconfirmed = False
            entry.last_error = None
            entry.last_attempt_at = call.sent_at
            run["refreshed"] += 1
            if left is not None and left <= 0:
                # Worth telling: the operator held no registration for this number for a while.
                LOG.info("refreshed %s: ttl %g s; it had lapsed %.0f s before", label, call.time_to_live, -left)
            else:
                LOG.debug("refreshed %s: ttl %g s%s", label, call.time_to_live,
                          "" if left is None else ", %.1f s were left" % left)
            return
        if call.error is None and not blocker:
            run["skipped"] += 1  # stopped (SIGTERM) before its call
            return
        error = call.error if call.error is not None else "not attempted: %s" % blocker[0]
        entry.last_error = str(error)
        entry.last_attempt_at = self.clock()
        run["failed"] += 1
        run["not_sent"] += call.error is None
        self._log_failure(label, entry, error)

    def _log_failure(self, label, entry, error):
        expires_at = entry.expires_at
        now = self.clock()
        if expires_at is None:
            when = "it is not live"
        elif expires_at > now:
            when = "it lapses at %s (in %.0f s) unless a later attempt works" % (isoformat(expires_at),
                                                                                 expires_at - now)
        else:
            when = "it lapsed at %s" % isoformat(expires_at)
        LOG.error("refresh of %s failed: %s; %s", label, error, when)

    # ------------------------------------------------------------------------------------------ reporting

    def unmanaged_reason(self, entry):
        """Why this keepalive does not refresh ``entry``, or None when it does."""
        if not self.owns(entry):
            return ("not refreshed by this keepalive: applied at %s as %s, but it is configured for %s as %s"
                    % (entry.endpoint, entry.principal, self.connection.endpoint, self.connection.principal)
                    + takeover_hint(entry, self.connection.endpoint, self.connection.principal))
        if entry.delete_pending:
            return ("not refreshed: it was asked to be deleted, and the delete has not succeeded yet%s; it lapses by "
                    "%s unless the next run's delete removes it first"
                    % (" (%s)" % entry.last_error if entry.last_error else "", isoformat(entry.expires_at)))
        return None

    def _warnings(self, lookahead, not_refreshed):
        """What the keepalive does not refresh (the first FAILURES_SHOWN of the ``not_refreshed``, and how many
        more), and TTLs too short for the schedule."""
        endpoint, principal = self.connection.endpoint, self.connection.principal
        warnings = []
        if not_refreshed:
            count, first = self.ledger.failing(FAILURES_SHOWN, endpoint, principal, errors=False)
            warnings = [self.unmanaged_reason(entry) for entry in first]
            if count > len(first):
                warnings.append("%d more registration(s) of the ledger %s are not refreshed by this keepalive, for "
                                "the same reasons; registration_info lists them (orphans)"
                                % (count - len(first), self.ledger.describe()))
        if lookahead > 0:
            # Each pass refreshes what would be due before the next one, so only a TTL shorter than the time
            # between two passes is lost in between.
            short = self.ledger.shortest_ttl(endpoint, principal)
            if short is not None and short <= lookahead:
                warnings.append("the API returned a TTL of %g s, no longer than the %g s between scheduled runs "
                                "(schedule_interval): registrations lapse between runs; schedule the keepalive "
                                "more often or run it in loop mode" % (short, lookahead))
        return warnings

    def _ledger_summary(self, now, run, lookahead):
        """The counts of the whole ledger (summary, warnings), taken again only when the last ones are too old
        for their cost (SUMMARY_COST_FACTOR; always in --once mode). Raises LedgerError."""
        if self._summary is not None and run["mode"] == "loop":
            taken_at, cost, summary, warnings = self._summary
            if now - taken_at < min(self.settings.max_sleep, cost * SUMMARY_COST_FACTOR):
                return summary, warnings
        started = time.monotonic()
        owner = (self.connection.endpoint, self.connection.principal)
        summary = summarize(self.ledger, now, self.settings.refresh_fraction, owner=owner,
                            reason=self.unmanaged_reason)
        groups = breakdown(self.ledger, now, self.settings.refresh_fraction)
        summary.update(by_route_type=by_field(groups, "route_type"), by_sip_host=by_sip_host(groups),
                       summarized_at=isoformat(now), summarized_at_epoch=now)
        warnings = self._warnings(lookahead, summary["not_refreshed_total"])
        self._summary = (now, time.monotonic() - started, summary, warnings)
        return summary, warnings

    def _token_requests(self):
        """Token requests of this process since the last call: (ok, failed)."""
        source = self.connection.token_source
        now = (getattr(source, "tokens_fetched", 0), getattr(source, "token_failures", 0))
        counted, self._tokens_counted = self._tokens_counted, now
        return now[0] - counted[0], now[1] - counted[1]

    def _report(self, run, lookahead):
        finished = self.clock()
        run["finished_at"] = isoformat(finished)
        run["finished_at_epoch"] = finished
        run["duration_seconds"] = round(finished - run["started_at_epoch"], 3)
        try:
            summary, warnings = self._ledger_summary(finished, run, lookahead)
        except LedgerError as exc:
            run["error"] = run["error"] or str(exc)
            summary, warnings = empty_summary(), []
        nearest = summary["nearest_expiry"]
        # Counts taken at an earlier pass still say when that registration lapses; how far off is now's.
        summary = dict(summary, seconds_to_nearest_expiry=None if nearest is None
                       else round(nearest["expires_at_epoch"] - finished, 3))
        run["outcome"] = "failed" if run["failed"] or run["error"] else ("ok" if run["refreshed"] else "idle")
        previous = None
        try:
            previous = self.health.read()
        except LedgerError:
            previous = None  # a corrupt health file is replaced; its counters start again from 0
        # A pass without a failed refresh, while none of the registrations this keepalive refreshes is failing.
        # Those of other credentials and those pending a delete are reported (warnings), not failures of a pass.
        success = run["outcome"] != "failed" and not summary["refresh_failing_total"]
        last_success = finished if success else (previous or {}).get("last_success_at_epoch")
        per_registration = self.settings.metrics_per_registration and self.settings.metrics_path
        if per_registration and summary["registrations_total"] > METRICS_PER_REGISTRATION_LIMIT:
            per_registration = False
            warnings = list(warnings)  # the counts' own list may serve the next passes too
            warnings.append(
                "metrics_per_registration: the ledger holds %d registrations, more than the %d for which the "
                "metrics have one series per registration; only the aggregate series were written. Set "
                "metrics_per_registration to false (keepalive_metrics_per_registration), and use registration_info "
                "for single registrations" % (summary["registrations_total"], METRICS_PER_REGISTRATION_LIMIT))
        report = dict(
            host=hostname(),
            updated_at=isoformat(finished),
            updated_at_epoch=finished,
            keepalive=dict(api_endpoint=self.connection.endpoint, principal=self.connection.principal,
                           ledger_path=self.ledger.location, ledger_scope=self.ledger.scope,
                           refresh_fraction=self.settings.refresh_fraction,
                           schedule_interval=lookahead or None, pid=os.getpid()),
            last_run=run,
            last_success_at=isoformat(last_success),
            last_success_at_epoch=last_success,
            warnings=warnings,
            counters=count_pass((previous or {}).get("counters"), run, self._token_requests()),
        )
        report.update(summary)
        for warning in warnings:
            LOG.warning("%s", warning)
        try:
            self.health.write(report)
        except (LedgerError, OSError) as exc:
            run["outcome"] = "failed"
            run["error"] = run["error"] or "cannot write the health file: %s" % exc
            LOG.error("cannot write the health file %s: %s", self.health.path, exc)
        if self.settings.metrics_path:
            try:
                write_textfile(self.settings.metrics_path, render_metrics(
                    report, self.ledger.find if per_registration else None))
            except (IOError, OSError) as exc:
                run["outcome"] = "failed"
                LOG.error("cannot write the metrics file %s: %s", self.settings.metrics_path, exc.strerror or exc)
            except LedgerError as exc:
                run["outcome"] = "failed"
                LOG.error("cannot write the metrics file %s: %s", self.settings.metrics_path, exc)
        level = {"failed": logging.WARNING, "ok": logging.INFO}.get(run["outcome"], logging.DEBUG)
        LOG.log(level,
                "pass %s: %d due, %d refreshed, %d failed; %d registration(s), %d live, nearest expiry %s",
                run["outcome"], run["due"], run["refreshed"], run["failed"], summary["registrations_total"],
                summary["registrations_live"],
                "none" if summary["seconds_to_nearest_expiry"] is None
                else "in %.1f s" % summary["seconds_to_nearest_expiry"])
        return run

    # ------------------------------------------------------------------------------------------ loop mode

    def seconds_to_next(self):
        """How long the loop may sleep: until the next registration is due, at most ``max_sleep``.

        Entries pending a delete are never due. Only entries whose earliest possible refresh point comes before the
        soonest found so far are looked at, a batch at a time."""
        now = self.clock()
        endpoint, principal = self.connection.endpoint, self.connection.principal
        lead = self.settings.refresh_fraction * (1.0 + self.settings.jitter)
        soonest = now + self.settings.max_sleep
        position = None
        try:
            longest = self.ledger.longest_ttl(endpoint, principal, DOCUMENTED_TTL)
            while True:
                candidates, position = self.ledger.expiring(
                    endpoint, principal, self.settings.batch_size, before=soonest, lead=lead,
                    default_ttl=DOCUMENTED_TTL, longest_ttl=longest, after=position)
                for key, entry in candidates:
                    due = self.next_attempt_at(entry, key=key)
                    if entry.claimed(now):
                        # Another worker or a run is on it: it is due again, if at all, once that claim is over.
                        due = max(due, entry.claimed_until)
                    soonest = min(soonest, due)
                if not candidates:
                    break
        except LedgerError:
            return self.settings.retry_interval
        return max(MIN_SLEEP, soonest - now)

    def loop(self):
        """Pass, sleep until the next one is due, repeat until ``stop`` is set (SIGTERM)."""
        LOG.info("keepalive started for %s as %s, ledger %s", self.connection.endpoint, self.connection.principal,
                 self.ledger.describe())
        while not self.stop.is_set():
            try:
                with self.passing():
                    self.run_pass(mode="loop")
            except LedgerError as exc:
                LOG.error("%s", exc)
            sleep = self.seconds_to_next()
            # Opened again after the sleep: a ledger restored or moved meanwhile is the one the next pass reads.
            self.ledger.close()
            if self.copy is not None:
                self.copy.close()
            self.stop.wait(sleep)
        LOG.info("keepalive stopped")


# ---------------------------------------------------------------------------------------------- command line


class _JournalFormatter(logging.Formatter):
    """``<N>message``: systemd-journald reads the priority from that prefix (SyslogLevelPrefix)."""

    PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record):
        return "<%d>%s" % (self.PRIORITIES.get(record.levelno, 6), super().format(record))


def _setup_logging(level):
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s " + PROG + ": %(levelname)s %(message)s"))
    root = logging.getLogger("wgtwo.sipbreakout")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # requests-oauthlib and oauthlib log token responses at DEBUG: never let them through.
    for name in ("requests_oauthlib", "oauthlib", "urllib3", "requests"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Refresh the SIP breakout registrations of this host's ledger before they lapse "
                               "(wgtwo.sipbreakout keepalive). Without --once it runs until SIGTERM.")
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH, metavar="PATH",
                        help="JSON config file (default: %(default)s)")
    parser.add_argument("--once", action="store_true",
                        help="one pass: refresh what is due before the next scheduled run, write health and "
                             "metrics, exit (for systemd timers and cron)")
    parser.add_argument("--force", action="store_true", help="with --once: refresh every registration now")
    parser.add_argument("--splay", type=float, default=0.0, metavar="SECONDS",
                        help="wait a random time up to SECONDS first, so that many hosts do not run at once")
    parser.add_argument("--check-config", action="store_true", help="check the config file and exit")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    return parser


def main(argv=None):
    """The command line; returns the exit status (0 ok, 1 a registration or the ledger failed, 2 bad config)."""
    args = build_parser().parse_args(argv)
    _setup_logging(logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)
    if args.force and not args.once:
        LOG.error("--force needs --once")
        return EXIT_CONFIG
    libraries = (("grpcio", HAS_GRPC, GRPC_IMPORT_ERROR), ("protobuf", HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR))
    for name, present, error in libraries:
        if not present:
            LOG.error("the Python library %s is missing (Debian: python3-%s): %s", name, name,
                      "".join((error or "").strip().splitlines()[-1:]))
            return EXIT_CONFIG
    try:
        settings = load_config(args.config)
        ledger = open_ledger(settings.values)
        connection = Connection.from_options(settings.connection_options(),
                                             token_cache=ledger.token_cache(settings.token_cache_path))
    except SipBreakoutError as exc:
        LOG.error("%s", exc)
        return EXIT_CONFIG
    if args.check_config:
        LOG.info("%s is valid: %s as %s, ledger %s", args.config, connection.endpoint, connection.principal,
                 ledger.describe())
        return EXIT_OK

    stop = threading.Event()

    def on_signal(signum, _frame):
        LOG.info("signal %d: stopping once the calls in flight are answered", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    keepalive = Keepalive(settings, connection, stop=stop, ledger=ledger)
    try:
        if args.splay > 0 and stop.wait(random.uniform(0, args.splay)):
            return EXIT_OK
        if not args.once:
            keepalive.loop()
            return EXIT_OK
        try:
            with keepalive.passing():
                run = keepalive.run_pass(force=args.force, lookahead=settings.schedule_interval)
        except LedgerError as exc:
            LOG.error("%s", exc)
            return EXIT_FAILED
        return EXIT_FAILED if run["outcome"] == "failed" else EXIT_OK
    finally:
        keepalive.configured.close()
        connection.close()
