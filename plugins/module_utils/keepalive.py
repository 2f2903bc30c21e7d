# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keepalive: re-upserts every registration of a host's ledger before its TTL runs out.

It runs on the PBX host (installed by the ``wgtwo.sipbreakout.keepalive`` role), from a systemd timer or cron
(``--once``: refresh what is due, write the health file and metrics, exit) or as a long-running loop that sleeps
until the next registration is due. It uses the same ``Connection``, client, token sources and ``Ledger`` as the
modules, and a JSON config file whose connection keys are the modules' shared options.

Config file (JSON object; every key optional; root-only when it holds a secret)::

    {
      "api_endpoint": "api.wgtwo.com:443",        # and client_id, client_secret, access_token,
      "client_id": "...", "client_secret": "...",  # refresh_token, token_url, ca_path, token_cache_path,
      "token_cache_path": "/var/lib/wgtwo-sipbreakout/tokens.json",   # timeout, retries: as the modules
      "ledger_path": "/var/lib/wgtwo-sipbreakout/ledger.json",
      "health_path": "/var/lib/wgtwo-sipbreakout/health.json",
      "metrics_path": "/var/lib/prometheus/node-exporter/wgtwo_sipbreakout.prom",
      "refresh_fraction": 0.3333,   # refresh once this fraction of the TTL is left
      "jitter": 0.25,               # ... plus up to this fraction of it again, spread per registration
      "schedule_interval": 300,     # seconds between --once runs: refresh what would be late by the next run
      "retry_interval": 60,         # seconds between attempts for a registration whose refresh failed
      "max_sleep": 300,             # loop mode: wake at least this often to pick up new ledger entries
      "concurrency": 256,           # the most calls in flight at once during a pass
      "batch_size": 5000            # due registrations sent, then recorded, at a time
    }

docs/keepalive.md lists every key (also ``metrics_per_registration``, ``lock_timeout``).

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
from .errors import LedgerError, SipBreakoutError, ValidationError
from .health import DEFAULT_HEALTH_PATH, DEFAULT_REFRESH_FRACTION, FAILURES_SHOWN, HealthFile, empty_summary, \
    hostname, render_metrics, summarize, write_textfile
from .ledger import Ledger, isoformat
from .retry import Deadline
from .wire import HAS_PROTOBUF, PROTOBUF_IMPORT_ERROR

PROG = "wgtwo-sipbreakout-keepalive"
DEFAULT_CONFIG_PATH = "/etc/wgtwo-sipbreakout/keepalive.json"
DEFAULT_STATE_DIR = "/var/lib/wgtwo-sipbreakout"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

# Types of the shared connection options in the config file (their names are connection.OPTIONS; the modules'
# argument spec is the reference, and a unit test keeps the two in step).
CONNECTION_TYPES = {"ca_path": "path", "token_cache_path": "path", "timeout": "float", "retries": "int"}
SECRET_OPTIONS = ("client_secret", "access_token", "refresh_token")

# The keepalive's own settings: name -> (type, default).
SETTINGS = {
    "ledger_path": ("path", DEFAULT_STATE_DIR + "/ledger.json"),
    "health_path": ("path", DEFAULT_HEALTH_PATH),
    "metrics_path": ("path", None),
    "metrics_per_registration": ("bool", True),
    "lock_timeout": ("float", 120.0),
    "refresh_fraction": ("float", DEFAULT_REFRESH_FRACTION),
    "jitter": ("float", 0.25),
    "schedule_interval": ("float", 300.0),
    "retry_interval": ("float", 60.0),
    "max_sleep": ("float", 300.0),
    "concurrency": ("int", DEFAULT_CONCURRENCY),
    "batch_size": ("int", 5000),
}
# Unlike the modules (whose cache is per user), the keepalive keeps tokens in its own root-only state directory.
CONNECTION_DEFAULTS = {"token_cache_path": DEFAULT_STATE_DIR + "/tokens.json"}

# Never refresh one registration more often than this, whatever TTL the API returns.
MIN_REFRESH_SECONDS = 1.0
MIN_SLEEP = 0.05

LOG = logging.getLogger("wgtwo.sipbreakout.keepalive")


class Settings:
    """A validated config file: every key of OPTIONS and SETTINGS as an attribute."""

    def __init__(self, values, path=None):
        self.path = path
        self.values = values
        for key, value in values.items():
            setattr(self, key, value)

    def connection_options(self):
        return dict((name, self.values.get(name)) for name in OPTIONS)


def _convert(path, key, kind, value):
    def bad(expected):
        shown = "(hidden)" if key in SECRET_OPTIONS else json.dumps(value)
        return ValidationError(key, "%s: expected %s, got %s" % (path, expected, shown))

    if value is None:
        return None
    if kind in ("str", "path"):
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
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
    known = set(OPTIONS) | set(SETTINGS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(unknown[0], "%s: unknown key(s) %s; known keys: %s" % (
            path, ", ".join(unknown), ", ".join(sorted(known))))
    values = {}
    for name in OPTIONS:
        values[name] = _convert(path, name, CONNECTION_TYPES.get(name, "str"),
                                data.get(name, CONNECTION_DEFAULTS.get(name)))
    for name, (kind, default) in SETTINGS.items():
        # null is the default here (a templated config may write one); only a connection option's null says "none".
        values[name] = _convert(path, name, kind, default if data.get(name) is None else data[name])
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
    holds = [name for name in SECRET_OPTIONS if settings.values.get(name)]
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

    def __init__(self, settings, connection, clock=time.time, stop=None):
        self.settings = settings
        self.connection = connection
        self.clock = clock
        self.stop = stop or threading.Event()
        self.ledger = Ledger(settings.ledger_path, lock_timeout=settings.lock_timeout, clock=clock)
        self.health = HealthFile(settings.health_path)

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
        due = self.refresh_at(entry, key) - lookahead
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
                   failed=0, skipped=0, error=None)
        try:
            self._refresh_due(started, force, lookahead, run)
        except LedgerError as exc:
            run["error"] = str(exc)
            LOG.error("%s", exc)
        return self._report(run, lookahead)

    def _refresh_due(self, started, force, lookahead, run):
        """Send and record what is due, ``batch_size`` at a time, most urgent first.

        The caller holds the ledger's apply lock exclusively, so no module run sends or records anything between
        the read that chose a batch and the update that records what this pass did with it.
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
            candidates, position = self.ledger.expiring(
                endpoint, principal, self.settings.batch_size, before=None if force else started + lookahead,
                lead=lead, default_ttl=DOCUMENTED_TTL, longest_ttl=longest, untried_since=started, after=position)
            if not candidates:
                break
            due = [(key, entry) for key, entry in candidates
                   if force or self.next_attempt_at(entry, lookahead, key) <= started]
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
        """Upsert every entry of ``due`` on the one channel, ``concurrency`` in flight, and record them together;
        returns the fewest calls that were allowed in flight."""

        def on_done(call):
            if call.run_wide and not blocker:
                blocker.append(call.error)

        calls = [Call(entry.registration) for _key, entry in due]
        lowest = self.settings.concurrency
        try:
            if not blocker:
                lowest = self.connection.client.run(calls, concurrency=self.settings.concurrency, on_done=on_done,
                                                    stop=lambda: bool(blocker) or self.stop.is_set(),
                                                    clock=self.clock)
        finally:
            # Also when something unexpected interrupts the calls: what was refreshed is recorded.
            with self.ledger.update([key for key, _entry in due]) as current:
                for (key, entry), call in zip(due, calls):
                    self._record(current.get(key), entry, call, blocker, run)
        return lowest

    def _record(self, entry, sent, call, blocker, run):
        """Update ``entry`` (the ledger's, now) from ``call``, which was made from ``sent``."""
        if entry is None or not self.owns(entry) or entry.registration != sent.registration:
            # Only a hand edit can do this while the apply lock is held; what is in the ledger now stays.
            LOG.info("%s changed in the ledger during the pass; not recorded", sent.registration.label)
            run["skipped"] += 1
            return
        label = entry.registration.label
        if call.ok:
            left = entry.expires_at - call.sent_at if entry.expires_at is not None else None
            entry.upserted_at = call.sent_at
            entry.time_to_live = call.time_to_live
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

    def _warnings(self, lookahead):
        """What the keepalive does not refresh (the first FAILURES_SHOWN, and how many more), and TTLs too short
        for the schedule."""
        endpoint, principal = self.connection.endpoint, self.connection.principal
        count, first = self.ledger.failing(FAILURES_SHOWN, endpoint, principal, errors=False)
        warnings = [self.unmanaged_reason(entry) for entry in first]
        if count > len(first):
            warnings.append("%d more registration(s) of the ledger %s are not refreshed by this keepalive, for the "
                            "same reasons; registration_info lists them (orphans)" % (count - len(first),
                                                                                      self.ledger.path))
        if lookahead > 0:
            # Each pass refreshes what would be due before the next one, so only a TTL shorter than the time
            # between two passes is lost in between.
            short = self.ledger.shortest_ttl(endpoint, principal)
            if short is not None and short <= lookahead:
                warnings.append("the API returned a TTL of %g s, no longer than the %g s between scheduled runs "
                                "(schedule_interval): registrations lapse between runs; schedule the keepalive "
                                "more often or run it in loop mode" % (short, lookahead))
        return warnings

    def _report(self, run, lookahead):
        finished = self.clock()
        run["finished_at"] = isoformat(finished)
        run["finished_at_epoch"] = finished
        try:
            summary = summarize(self.ledger, finished, self.settings.refresh_fraction,
                                owner=(self.connection.endpoint, self.connection.principal),
                                reason=self.unmanaged_reason)
            warnings = self._warnings(lookahead)
        except LedgerError as exc:
            run["error"] = run["error"] or str(exc)
            summary, warnings = empty_summary(), []
        run["outcome"] = "failed" if run["failed"] or run["error"] else ("ok" if run["refreshed"] else "idle")
        previous = None
        try:
            previous = self.health.read()
        except LedgerError:
            previous = None
        success = run["outcome"] != "failed" and not summary["failures_total"]
        last_success = finished if success else (previous or {}).get("last_success_at_epoch")
        report = dict(
            host=hostname(),
            updated_at=isoformat(finished),
            updated_at_epoch=finished,
            keepalive=dict(api_endpoint=self.connection.endpoint, principal=self.connection.principal,
                           ledger_path=self.ledger.path, refresh_fraction=self.settings.refresh_fraction,
                           schedule_interval=lookahead or None, pid=os.getpid()),
            last_run=run,
            last_success_at=isoformat(last_success),
            last_success_at_epoch=last_success,
            warnings=warnings,
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
                    report, self.ledger.find if self.settings.metrics_per_registration else None))
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
                    soonest = min(soonest, self.next_attempt_at(entry, key=key))
                if not candidates:
                    break
        except LedgerError:
            return self.settings.retry_interval
        return max(MIN_SLEEP, soonest - now)

    def loop(self):
        """Pass, sleep until the next one is due, repeat until ``stop`` is set (SIGTERM)."""
        LOG.info("keepalive started for %s as %s, ledger %s", self.connection.endpoint, self.connection.principal,
                 self.ledger.path)
        while not self.stop.is_set():
            try:
                # Held only during a pass, so module runs and a manual --once run can go in between.
                with self.ledger.applying(exclusive=True, stop=self.stop):
                    self.run_pass(mode="loop")
            except LedgerError as exc:
                LOG.error("%s", exc)
            sleep = self.seconds_to_next()
            # Opened again after the sleep: a ledger restored or moved meanwhile is the one the next pass reads.
            self.ledger.close()
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
        connection = Connection.from_options(settings.connection_options())
    except SipBreakoutError as exc:
        LOG.error("%s", exc)
        return EXIT_CONFIG
    if args.check_config:
        LOG.info("%s is valid: %s as %s, ledger %s", args.config, connection.endpoint, connection.principal,
                 settings.ledger_path)
        return EXIT_OK

    stop = threading.Event()

    def on_signal(signum, _frame):
        LOG.info("signal %d: stopping once the calls in flight are answered", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    keepalive = Keepalive(settings, connection, stop=stop)
    try:
        if args.splay > 0 and stop.wait(random.uniform(0, args.splay)):
            return EXIT_OK
        if not args.once:
            keepalive.loop()
            return EXIT_OK
        try:
            # Exclusive: no other pass, and no module run between its API calls and their ledger update.
            with keepalive.ledger.applying(exclusive=True, stop=stop):
                run = keepalive.run_pass(force=args.force, lookahead=settings.schedule_interval)
        except LedgerError as exc:
            LOG.error("%s", exc)
            return EXIT_FAILED
        return EXIT_FAILED if run["outcome"] == "failed" else EXIT_OK
    finally:
        keepalive.ledger.close()
        connection.close()
