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

import itertools
import os
import socket
import time

from . import adoption
from .errors import LedgerError, ValidationError
from .ledger import open_ledger
from .ledger_entry import isoformat
from .registration import sip_uri_host
from .registration_filter import RegistrationFilter
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


# How many of the nearest expiries registration_info shows.
NEAREST_SHOWN = 10
# How many numbers of a principal registration_info shows (a refresh token's subscription has a few).
PHONE_NUMBERS_SHOWN = 100
# The metrics and the health file count registrations by SIP host for at most this many hosts (those with the most
# registrations); the others are summed under OTHER_HOSTS.
SIP_HOSTS_SHOWN = 20
OTHER_HOSTS = "(other)"
NO_ROUTE_TYPE = "none"
# registration_info lists at most this many registrations (and orphans, and failures) unless told otherwise.
DEFAULT_LIMIT = 1000


def _zero():
    return dict((state, 0) for state in STATES)


def _add(into, counts):
    for state in STATES:
        into[state] += counts[state]
    return into


def breakdown(ledger, now, refresh_fraction=DEFAULT_REFRESH_FRACTION, expiring_within=None):
    """The ledger's entries counted by state per route type and URI: ``[(fields dict, counts)]``."""
    by = ("route_type", "sip_uri")
    return [(dict(zip(by, values)), counts)
            for values, counts in ledger.group_states(by, now, refresh_fraction, expiring_within)]


def by_field(groups, name):
    """``{value: {state: count}}`` of the groups of breakdown(), by the field ``name`` (NO_ROUTE_TYPE for an entry
    without a route type, which only a delete leaves)."""
    found = {}
    for fields, counts in groups:
        value = fields[name]
        _add(found.setdefault(NO_ROUTE_TYPE if value is None else value, _zero()), counts)
    return found


def by_sip_host(groups, shown=SIP_HOSTS_SHOWN):
    """``{host: {state: count}}`` of the hosts of the entries' ``sip_uri`` (its port left out); beyond the
    ``shown`` hosts with the most registrations, the rest summed under OTHER_HOSTS."""
    hosts = {}
    for uri, counts in by_field(groups, "sip_uri").items():
        _add(hosts.setdefault(sip_uri_host(uri) if uri else "", _zero()), counts)
    if len(hosts) <= shown:
        return hosts
    ranked = sorted(hosts, key=lambda host: (-sum(hosts[host].values()), host))
    kept = dict((host, hosts[host]) for host in ranked[:shown])
    other = kept[OTHER_HOSTS] = _zero()
    for host in ranked[shown:]:
        _add(other, hosts[host])
    return kept


def summarize(ledger, now, refresh_fraction=DEFAULT_REFRESH_FRACTION, expiring_within=None, owner=None, reason=None,
              limit=FAILURES_SHOWN):
    """Counts, the nearest expiry and the failures of the entries of ``ledger``, without loading them all.

    With ``owner`` (endpoint, principal), what a keepalive for them does not refresh counts as a failure too, and
    ``reason(entry)`` says why; ``not_refreshed_total`` counts those, and ``refresh_failing_total`` the owner's
    entries (not pending a delete) whose last refresh failed. ``failures`` lists the first ``limit`` by number and
    URI; ``failures_total`` counts them all.
    """
    counts = ledger.census(now, refresh_fraction, expiring_within, owner=owner)
    return summary_of(ledger, counts, now, refresh_fraction, expiring_within, owner, reason, limit)


def summary_of(ledger, counts, now, refresh_fraction=DEFAULT_REFRESH_FRACTION, expiring_within=None, owner=None,
               reason=None, limit=FAILURES_SHOWN, nearest=None):
    """summarize() from the ``counts`` of LedgerStore.census() (with ``owner`` when it is given here); ``nearest``: the
    live entry that lapses first, when the caller has it (else it is looked up)."""
    states = dict((state, counts[state]) for state in STATES)
    failures_total = counts["failing_or_not_refreshed"] if owner else counts["failing"]
    if nearest is None:
        nearest = ledger.nearest(now, 1)
        nearest = nearest[0] if nearest else None
    first = ledger.failing(limit, *(owner or (None, None)))[1] if failures_total and limit != 0 else []
    failures = [failure(entry, now, (reason(entry) if reason else None) or entry.last_error, expiring_within,
                        refresh_fraction) for entry in first]
    return dict(
        registrations_total=counts["total"],
        # Not lapsed: the operator still holds them, whether or not their last refresh worked.
        registrations_live=counts["total"] - states[LAPSED],
        states=states,
        seconds_to_nearest_expiry=None if nearest is None else round(nearest.expires_at - now, 3),
        nearest_expiry=None if nearest is None else dict(
            phone_number=nearest.registration.phone_number, sip_uri=nearest.registration.sip_uri,
            expires_at=isoformat(nearest.expires_at), expires_at_epoch=nearest.expires_at),
        failures=failures,
        failures_total=failures_total,
        not_refreshed_total=counts["not_refreshed"] if owner else None,
        refresh_failing_total=counts["refresh_failing"] if owner else None,
    )


def empty_summary():
    """What summarize() says of an empty ledger (or of one that cannot be read)."""
    return dict(registrations_total=0, registrations_live=0, states=_zero(), seconds_to_nearest_expiry=None,
                nearest_expiry=None, failures=[], failures_total=0, not_refreshed_total=None,
                refresh_failing_total=None)


class HealthFile:
    """The keepalive's report for one host: JSON, replaced atomically, 0600 in a 0700 directory like the ledger."""

    def __init__(self, path=DEFAULT_HEALTH_PATH, lock_timeout=60.0):
        self._file = StateFile(path, HEALTH_FORMAT, lock_timeout=lock_timeout, error=LedgerError)

    @property
    def path(self):
        return self._file.path

    def read(self):
        """The last report, or None when the keepalive has not written one yet."""
        body = self._file.read()
        return body or None

    def write(self, report):
        """Replace the file with ``report``. The old one is never read, so a corrupt one is simply replaced; when
        the lock cannot be had or the directory cannot be written, LedgerError or OSError is raised and the old
        file stays as it was."""
        self._file.replace(report)


def info_report(options, clock=time.time):
    """What ``registration_info`` returns for its ``options`` (the module's parameters), checked first: a
    ``filter`` without ``list`` is refused, naming the option."""
    listing = None
    if options.get("filter") and not options.get("list"):
        raise ValidationError("filter", "selects which registrations list=true returns; set list: true, or "
                                        "leave filter out for the counts alone")
    if options.get("list"):
        listing = RegistrationFilter.from_options(options.get("filter"))
    limit = options.get("limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    if limit < 1:
        raise ValidationError("limit", "must be 1 or more (got %r)" % limit)
    with open_ledger(options, clock=clock) as ledger:
        return report_from_files(ledger, health_path=options.get("health_path"),
                                 expiring_within=options.get("expiring_within"),
                                 health_max_age=options.get("health_max_age", 900.0), listing=listing, limit=limit,
                                 clock=clock)


def report_from_files(ledger, health_path=None, expiring_within=None, health_max_age=900.0, listing=None,
                      limit=DEFAULT_LIMIT, clock=time.time):
    """What ``registration_info`` returns: the ledger's counts by state and by principal, its nearest expiries and
    failures, the orphans and the keepalive's last report if ``health_path`` is given and, with ``listing``
    (a RegistrationFilter), the registrations that match it. Every list holds at most ``limit`` items, and says
    how many it left out; the ledger is read in counts and pages, never whole. Reads only; a missing ledger is an
    empty one. ``ledger`` is the store (and scope) to read."""
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
    keeper = (owner.get("api_endpoint"), owner.get("principal")) if owner.get("principal") else None

    def describe_now(entry):
        return describe(entry, now, expiring_within, refresh_fraction)

    counts = ledger.census(now, refresh_fraction, expiring_within, owner=keeper)
    nearest = ledger.nearest(now, NEAREST_SHOWN)
    result = summary_of(ledger, counts, now, refresh_fraction, expiring_within, limit=0,
                        nearest=nearest[0] if nearest else None)
    for key in ("not_refreshed_total", "refresh_failing_total"):
        result.pop(key)
    # Its failures are the registrations whose last attempt failed, whoever's they are, in the ledger's order.
    result["failures"] = [failure(entry, now, entry.last_error, expiring_within, refresh_fraction)
                          for entry in itertools.islice(ledger.select(RegistrationFilter(failing=True), now,
                                                                      refresh_fraction, expiring_within), limit)
                          ] if counts["failing"] else []
    result.update(
        nearest_expiries=[describe_now(entry) for entry in nearest],
        keepalive=keepalive, checked_at=isoformat(now), ledger_path=ledger.location, ledger_scope=ledger.scope,
        principals=_principals(ledger, now, counts, keeper),
        orphans=None, orphans_total=None)
    if keeper is not None:
        result["orphans_total"] = counts["others"]
        result["orphans"] = adoption.orphans(
            itertools.islice(ledger.select(RegistrationFilter(not_owner=keeper), now, refresh_fraction,
                                           expiring_within), limit) if counts["others"] else [],
            keeper[0], keeper[1], describe_now)
    if listing is not None:
        matched = ledger.count_selected(listing, now, refresh_fraction, expiring_within)
        listed = [describe_now(entry) for entry in itertools.islice(
            ledger.select(listing, now, refresh_fraction, expiring_within), limit)] if matched else []
        result.update(registrations=listed, registrations_matched=matched,
                      registrations_omitted=matched - len(listed), filter=listing.as_dict(), limit=limit)
    return result


def _principals(ledger, now, counts, keeper):
    """One item per (endpoint, principal) of the ledger, with its first numbers. The one that holds the most is
    counted from the whole scope's ``counts`` (LedgerStore.census()) less the others', which are read on their own."""
    owners = ledger.owners()
    largest = max(owners, key=lambda owner: owner[2]) if owners else None
    found = {}
    for owner in owners:
        if owner != largest:
            found[owner[:2]] = ledger.owner_summary(owner[0], owner[1], now)
    if largest is not None:
        newest = [item["last_upserted_at"] for item in found.values() if item["last_upserted_at"] is not None]
        if newest and counts["last_upserted_at"] is not None and max(newest) >= counts["last_upserted_at"]:
            # The newest upsert of all may be another's: only its own entries can say.
            last = ledger.owner_summary(largest[0], largest[1], now)["last_upserted_at"]
        else:
            last = counts["last_upserted_at"]
        found[largest[:2]] = dict(lapsed=counts["lapsed"] - sum(item["lapsed"] for item in found.values()),
                                  last_upserted_at=last)
    result = []
    for endpoint, principal, count in owners:
        key = (endpoint, principal)
        result.append(dict(endpoint=endpoint, principal=principal, registrations=count,
                           live=count - found[key]["lapsed"],
                           phone_numbers=ledger.phone_numbers(endpoint, principal, PHONE_NUMBERS_SHOWN),
                           last_upserted_at=isoformat(found[key]["last_upserted_at"]),
                           keepalive=None if keeper is None else key == keeper))
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


# Outcomes the health file counts, so that the metrics can have counters that last across passes and processes.
PASS_OUTCOMES = ("ok", "idle", "failed")
REFRESH_OUTCOMES = ("ok", "failed", "not_sent", "skipped")
TOKEN_OUTCOMES = ("ok", "failed")
# With metrics_per_registration, one series per registration is written only up to this many registrations: two
# series each, as many as node-exporter writes for a whole host. Above it, only the aggregate series are written.
METRICS_PER_REGISTRATION_LIMIT = 1000


def count_pass(counters, run, token_requests):
    """The health file's ``counters`` after the pass ``run`` (its ``last_run``), from the ``counters`` of the
    previous report (None or not a dict: from 0, which Prometheus sees as a counter reset). ``token_requests``:
    (ok, failed) token requests since the previous pass."""
    counters = counters if isinstance(counters, dict) else {}

    def bucket(name, outcomes):
        old = counters.get(name) if isinstance(counters.get(name), dict) else {}
        return dict((outcome, int(old.get(outcome) or 0)) for outcome in outcomes)

    passes = bucket("passes", PASS_OUTCOMES)
    passes[run["outcome"]] += 1
    refreshes = bucket("refreshes", REFRESH_OUTCOMES)
    for outcome, value in (("ok", run["refreshed"]), ("failed", run["failed"] - run["not_sent"]),
                           ("not_sent", run["not_sent"]), ("skipped", run["skipped"])):
        refreshes[outcome] += value
    tokens = bucket("token_requests", TOKEN_OUTCOMES)
    tokens["ok"] += token_requests[0]
    tokens["failed"] += token_requests[1]
    return dict(passes=passes, refreshes=refreshes, token_requests=tokens)


def render_metrics(report, entries=None):
    """The Prometheus text exposition (textfile collector format) of a health report, line by line: gauges of the
    last pass and of the ledger's counts, and counters kept in the health file (``counters``).

    With ``entries`` (a function returning an iterator of ``LedgerEntry``, such as a store's ``find``), also one
    series per registration, written as they are read: called once for each such metric."""
    run = report.get("last_run") or {}
    counters = report.get("counters") or {}

    def metric(name, help_text, samples, kind="gauge"):
        yield "# HELP %s%s %s" % (METRIC_PREFIX, name, help_text)
        yield "# TYPE %s%s %s" % (METRIC_PREFIX, name, kind)
        yield from samples

    def gauge(name, help_text, value):
        return metric(name, help_text, [_sample(name, value)])

    def counter(name, help_text, key, outcomes):
        values = counters.get(key) or {}
        return metric(name, help_text, [_sample(name, int(values.get(outcome) or 0), [("outcome", outcome)])
                                        for outcome in outcomes], kind="counter")

    def by_state(name, help_text, label, groups):
        return metric(name, help_text, [_sample(name, int(counts.get(state, 0)), [(label, value), ("state", state)])
                                        for value, counts in sorted(groups.items()) for state in STATES])

    yield from gauge("keepalive_last_run_timestamp_seconds", "When the keepalive last finished a pass (Unix time).",
                     float(run.get("finished_at_epoch") or 0))
    yield from gauge("keepalive_last_success_timestamp_seconds",
                     "When a pass last ended without a failed refresh while none of the registrations this keepalive "
                     "refreshes was failing (Unix time; 0 if never). Registrations it does not refresh do not count.",
                     float(report.get("last_success_at_epoch") or 0))
    yield from gauge("keepalive_last_run_ok", "1 if the last pass ended without any failure, else 0.",
                     run.get("outcome") in ("ok", "idle"))
    yield from gauge("keepalive_ledger_unreachable",
                     "1 if the last pass could not reach the shared ledger and refreshed from its local copy, else 0.",
                     bool(run.get("ledger_copy")))
    yield from gauge("keepalive_last_run_duration_seconds", "How long the last pass took.",
                     float(run.get("duration_seconds") or 0))
    yield from gauge("keepalive_last_run_refreshed", "Registrations the last pass refreshed.",
                     int(run.get("refreshed") or 0))
    yield from gauge("keepalive_last_run_failed", "Registrations the last pass failed to refresh.",
                     int(run.get("failed") or 0))
    yield from gauge("keepalive_summary_timestamp_seconds",
                     "When the counts of the ledger below were taken (Unix time): every pass, or in loop mode at most "
                     "every max_sleep seconds when counting the whole ledger is slow.",
                     float(report.get("summarized_at_epoch") or run.get("finished_at_epoch") or 0))
    yield from counter("keepalive_passes_total", "Passes by outcome (ok, idle, failed), kept in the health file.",
                       "passes", PASS_OUTCOMES)
    yield from counter("keepalive_refreshes_total",
                       "Registrations due in a pass by outcome: ok (refreshed), failed (an error of its own), "
                       "not_sent (the API or the token endpoint could not be reached), skipped (stopped or changed "
                       "meanwhile); kept in the health file.", "refreshes", REFRESH_OUTCOMES)
    yield from counter("keepalive_token_requests_total",
                       "Requests to the token endpoint by outcome (ok, failed: refused or unreachable after its "
                       "retries); tokens cached by an earlier run or pass are not requested. Kept in the health file.",
                       "token_requests", TOKEN_OUTCOMES)
    states = report.get("states") or {}
    yield from metric("registrations", "Registrations in the ledger by state (live, expiring, lapsed, error).",
                      [_sample("registrations", int(states.get(state, 0)), [("state", state)])
                       for state in STATES])
    yield from gauge("registrations_live", "Registrations the operator still holds (within their TTL).",
                     int(report.get("registrations_live") or 0))
    yield from gauge("registration_failures",
                     "Registrations whose last refresh failed or that this keepalive cannot refresh.",
                     int(report.get("failures_total") or 0))
    yield from gauge("registrations_not_refreshed",
                     "Registrations this keepalive does not refresh: applied with other credentials or at another "
                     "endpoint, or pending a delete. They lapse unless something else refreshes them.",
                     int(report.get("not_refreshed_total") or 0))
    yield from gauge("registrations_refresh_failing",
                     "Registrations this keepalive refreshes whose last refresh failed (lapsed or not).",
                     int(report.get("refresh_failing_total") or 0))
    yield from by_state("registrations_by_route_type", "Registrations by route type and state.", "route_type",
                        report.get("by_route_type") or {})
    yield from by_state("registrations_by_sip_host",
                        "Registrations by the host of their sip_uri and state (the %d hosts with the most; the rest "
                        "as %s)." % (SIP_HOSTS_SHOWN, OTHER_HOSTS), "sip_host", report.get("by_sip_host") or {})
    nearest = report.get("nearest_expiry")
    if nearest is not None:
        yield from gauge("nearest_expiry_seconds",
                         "Seconds from the last pass to the nearest expiry of a live registration.",
                         float(report.get("seconds_to_nearest_expiry") or 0))
        yield from gauge("nearest_expiry_timestamp_seconds",
                         "When the live registration that lapses first lapses unless refreshed (Unix time); alert on "
                         "this minus time().", float(nearest["expires_at_epoch"]))
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
