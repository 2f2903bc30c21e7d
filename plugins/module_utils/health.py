# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host's registrations look like now, from its ledger: states, the health file and Prometheus metrics.

Pure computation and file formats, shared by the keepalive (which writes the health file and the metrics) and
the ``registration_info`` module (which reads them). Nothing here calls the API.

States of one registration, most severe first:

* ``lapsed``: its TTL has run out (or it was never confirmed), so the operator no longer holds it;
* ``error``: still within its TTL, but the last attempt to refresh it failed;
* ``expiring``: within its TTL and the last refresh worked, but less than ``expiring_within`` seconds are
  left (by default the part of the TTL in which the keepalive refreshes, so a healthy keepalive never lets a
  registration stay ``expiring`` for long);
* ``live``: none of the above.
"""

import contextlib
import os
import socket
import time

from . import adoption
from .errors import LedgerError
from .ledger_entry import isoformat
from .statefile import StateFile, write_atomically

LIVE = "live"
EXPIRING = "expiring"
LAPSED = "lapsed"
ERROR = "error"
STATES = (LIVE, EXPIRING, LAPSED, ERROR)

# The keepalive refreshes a registration once this fraction of the TTL the API returned is left.
DEFAULT_REFRESH_FRACTION = 1.0 / 3.0
DEFAULT_HEALTH_PATH = "/var/lib/wgtwo-sipbreakout/health.json"
HEALTH_FORMAT = "wgtwo.sipbreakout/keepalive-health"
# The health file lists at most this many failures (and counts them all): its size must not grow with the ledger.
FAILURES_SHOWN = 100
METRIC_PREFIX = "wgtwo_sipbreakout_"


def classify(entry, now, expiring_within=None, refresh_fraction=DEFAULT_REFRESH_FRACTION):
    """The state of one ``LedgerEntry`` at ``now`` (epoch seconds)."""
    expires_at = entry.expires_at
    if expires_at is None or expires_at <= now:
        return LAPSED
    if entry.last_error:
        return ERROR
    threshold = expiring_within
    if threshold is None:
        threshold = (entry.time_to_live or 0) * refresh_fraction
    if expires_at - now <= threshold:
        return EXPIRING
    return LIVE


def describe(entry, now, expiring_within=None, refresh_fraction=DEFAULT_REFRESH_FRACTION):
    """One registration as ``registration_info`` returns it and the health file lists it."""
    state = classify(entry, now, expiring_within, refresh_fraction)
    expires_at = entry.expires_at
    result = dict(entry.registration.as_dict())
    result.update(
        endpoint=entry.endpoint,
        principal=entry.principal,
        state=state,
        expires_at=isoformat(expires_at),
        expires_at_epoch=expires_at,
        seconds_left=None if expires_at is None else round(max(0.0, expires_at - now), 3),
        upserted_at=isoformat(entry.upserted_at),
        time_to_live=entry.time_to_live,
        last_attempt_at=isoformat(entry.last_attempt_at),
        last_result=last_result(entry),
        last_error=entry.last_error,
        delete_pending=entry.delete_pending,
    )
    return result


def last_result(entry):
    """``ok`` or ``failed`` for the latest upsert attempt the ledger knows of; None before any attempt."""
    if entry.last_error:
        return "failed"
    if entry.upserted_at is not None:
        return "ok"
    return None


def failure(entry, now, error, expiring_within=None, refresh_fraction=DEFAULT_REFRESH_FRACTION):
    """One item of ``failures``: a registration whose last attempt failed, or that the keepalive cannot refresh."""
    return dict(phone_number=entry.registration.phone_number, sip_uri=entry.registration.sip_uri,
                state=classify(entry, now, expiring_within, refresh_fraction), error=error,
                expires_at=isoformat(entry.expires_at), last_attempt_at=isoformat(entry.last_attempt_at))


def summarize(ledger, now, refresh_fraction=DEFAULT_REFRESH_FRACTION, expiring_within=None, owner=None, reason=None,
              limit=FAILURES_SHOWN):
    """Counts, the nearest expiry and the failures of the entries of ``ledger``, without loading them all.

    With ``owner`` (endpoint, principal), what a keepalive for them does not refresh counts as a failure too, and
    ``reason(entry)`` says why. ``failures`` lists the first ``limit`` by number and URI (all when None);
    ``failures_total`` counts them all.
    """
    total, states, nearest = ledger.states(now, refresh_fraction, expiring_within)
    count, first = ledger.failing(limit, *(owner or (None, None)))
    failures = [failure(entry, now, (reason(entry) if reason else None) or entry.last_error, expiring_within,
                        refresh_fraction) for entry in first]
    return dict(
        registrations_total=total,
        # Not lapsed: the operator still holds them, whether or not their last refresh worked.
        registrations_live=total - states[LAPSED],
        states=states,
        seconds_to_nearest_expiry=None if nearest is None else round(nearest.expires_at - now, 3),
        nearest_expiry=None if nearest is None else dict(
            phone_number=nearest.registration.phone_number, sip_uri=nearest.registration.sip_uri,
            expires_at=isoformat(nearest.expires_at)),
        failures=failures,
        failures_total=count,
    )


def empty_summary():
    """What summarize() says of an empty ledger (or of one that cannot be read)."""
    return dict(registrations_total=0, registrations_live=0, states=dict((state, 0) for state in STATES),
                seconds_to_nearest_expiry=None, nearest_expiry=None, failures=[], failures_total=0)


def _order(item):
    return (item["phone_number"] or "", item["sip_uri"], item["endpoint"], item["principal"])


class HealthFile:
    """The keepalive's report for one host: JSON, replaced atomically, 0600 in a 0700 directory like the ledger."""

    def __init__(self, path=DEFAULT_HEALTH_PATH):
        self._file = StateFile(path, HEALTH_FORMAT, error=LedgerError)

    @property
    def path(self):
        return self._file.path

    def read(self):
        """The last report, or None when the keepalive has not written one yet."""
        body = self._file.read()
        return body or None

    def write(self, report):
        try:
            self._replace(report)
        except LedgerError:
            # Unlike the ledger, this file only repeats what the ledger says: a corrupt one is replaced.
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._replace(report)

    def _replace(self, report):
        with self._file.update() as body:
            body.clear()
            body.update(report)


def report_from_files(ledger, health_path=None, expiring_within=None, health_max_age=900.0, clock=time.time):
    """What ``registration_info`` returns: the registrations of ``ledger`` (a store) with their states, and the
    keepalive's last report if ``health_path`` is given. Reads only; a missing ledger is an empty one."""
    now = clock()
    refresh_fraction = DEFAULT_REFRESH_FRACTION
    keepalive = None
    owner = {}  # the endpoint and principal the keepalive refreshes, from its last report
    if health_path:
        health = HealthFile(health_path)
        report = health.read() or {}
        owner = report.get("keepalive") or {}
        refresh_fraction = owner.get("refresh_fraction") or DEFAULT_REFRESH_FRACTION
        updated = report.get("updated_at_epoch")
        age = None if updated is None else round(now - updated, 3)
        keepalive = dict(
            health_path=health.path,
            found=bool(report),
            updated_at=report.get("updated_at"),
            age_seconds=age,
            stale=age is None or age > health_max_age,
            last_run=report.get("last_run"),
            last_success_at=report.get("last_success_at"),
            warnings=report.get("warnings") or [],
            failures=report.get("failures") or [],
        )

    def describe_now(entry):
        return describe(entry, now, expiring_within, refresh_fraction)

    # The module returns every registration, so these are read whole; the counts come from the database.
    result = summarize(ledger, now, refresh_fraction, expiring_within=expiring_within, limit=None)
    result.update(registrations=sorted((describe_now(entry) for entry in ledger.find()), key=_order),
                  keepalive=keepalive, checked_at=isoformat(now), ledger_path=ledger.location,
                  principals=adoption.principals(ledger.find(), now, owner.get("api_endpoint"),
                                                 owner.get("principal")),
                  orphans=None if not owner.get("principal") else sorted(adoption.orphans(
                      ledger.find(), owner.get("api_endpoint"), owner["principal"], describe_now), key=_order))
    return result


def hostname():
    # gethostname, not getfqdn: no DNS lookup, which could hang a pass when the resolver is down.
    return socket.gethostname()


# ---------------------------------------------------------------------------------------------- Prometheus


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _sample(name, value, labels=None):
    label_text = ""
    if labels:
        label_text = "{%s}" % ",".join('%s="%s"' % (key, _escape(val)) for key, val in labels)
    if isinstance(value, bool):
        value = int(value)
    return "%s%s%s %s" % (METRIC_PREFIX, name, label_text, repr(float(value)) if isinstance(value, float) else value)


def render_metrics(report, entries=None):
    """The Prometheus text exposition (textfile collector format) of a health report, line by line.

    With ``entries`` (a function returning an iterator of ``LedgerEntry``, such as a store's ``find``), also one
    series per registration, written as they are read: called once for each such metric."""
    run = report.get("last_run") or {}

    def metric(name, help_text, samples):
        yield "# HELP %s%s %s" % (METRIC_PREFIX, name, help_text)
        yield "# TYPE %s%s gauge" % (METRIC_PREFIX, name)
        yield from samples

    yield from metric("keepalive_last_run_timestamp_seconds", "When the keepalive last finished a pass (Unix time).",
                      [_sample("keepalive_last_run_timestamp_seconds", float(run.get("finished_at_epoch") or 0))])
    yield from metric("keepalive_last_success_timestamp_seconds",
                      "When a keepalive pass last ended without any failed refresh (Unix time; 0 if never).",
                      [_sample("keepalive_last_success_timestamp_seconds",
                               float(report.get("last_success_at_epoch") or 0))])
    yield from metric("keepalive_last_run_ok", "1 if the last pass ended without any failure, else 0.",
                      [_sample("keepalive_last_run_ok", run.get("outcome") in ("ok", "idle"))])
    yield from metric("keepalive_last_run_refreshed", "Registrations the last pass refreshed.",
                      [_sample("keepalive_last_run_refreshed", int(run.get("refreshed") or 0))])
    yield from metric("keepalive_last_run_failed", "Registrations the last pass failed to refresh.",
                      [_sample("keepalive_last_run_failed", int(run.get("failed") or 0))])
    states = report.get("states") or {}
    yield from metric("registrations", "Registrations in the ledger by state (live, expiring, lapsed, error).",
                      [_sample("registrations", int(states.get(state, 0)), [("state", state)])
                       for state in STATES])
    yield from metric("registrations_live", "Registrations the operator still holds (within their TTL).",
                      [_sample("registrations_live", int(report.get("registrations_live") or 0))])
    yield from metric("registration_failures",
                      "Registrations whose last refresh failed or that this keepalive cannot refresh.",
                      [_sample("registration_failures", int(report.get("failures_total") or 0))])
    nearest = report.get("seconds_to_nearest_expiry")
    if nearest is not None:
        yield from metric("nearest_expiry_seconds",
                          "Seconds from the last pass to the nearest expiry of a live registration.",
                          [_sample("nearest_expiry_seconds", float(nearest))])
    if entries is not None:
        yield from metric("registration_expiry_timestamp_seconds",
                          "When each registration lapses unless refreshed (Unix time); alert on this minus time().",
                          (_sample("registration_expiry_timestamp_seconds", float(entry.expires_at),
                                   _series_labels(entry))
                           for entry in entries() if entry.expires_at is not None))
        yield from metric("registration_refresh_failing", "1 if the last refresh of this registration failed.",
                          (_sample("registration_refresh_failing", last_result(entry) == "failed",
                                   _series_labels(entry)) for entry in entries()))


def _series_labels(entry):
    # The ledger's key, so that no two registrations share a series: the textfile collector refuses a file with
    # duplicate series (the same number and URI at the sandbox and in production, or under a refresh token that was
    # since replaced).
    return [("phone_number", entry.registration.phone_number or ""), ("sip_uri", entry.registration.sip_uri or ""),
            ("endpoint", entry.endpoint or ""), ("principal", entry.principal or "")]


def write_textfile(path, lines):
    """Write ``lines`` to ``path`` and replace it atomically, world-readable: node-exporter's textfile collector
    runs as its own user.

    The temporary file's name does not end in ``.prom``, so the collector never reads it half-written.
    """
    def write(handle):
        for line in lines:
            handle.write(line)
            handle.write("\n")

    write_atomically(os.path.abspath(os.path.expanduser(path)), write, mode=0o644, suffix=".tmp")
