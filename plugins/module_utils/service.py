# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state for registrations, decided against the ledger because the API has no read call.

``changed`` means: compared with what this ledger recorded as applied and still within its TTL, the operator now
holds something different (a new registration, other fields, one that had lapsed, or one deleted). A change made
outside this ledger (by grpcurl, another host, another ledger path) is not seen.

One engine serves one registration and ten thousand alike: every item is planned against the ledger, the calls
run through ``SipBreakoutClient.run`` on one channel with a bounded number in flight, and the ledger is updated
once, with exactly the items that succeeded.
"""

import time
from collections import namedtuple

from . import purge_guard
from .adoption import ADOPT, Takeover
from .client import DEFAULT_CONCURRENCY, DELETE, UPSERT, Call, shed_warning
from .connection import Connection
from .errors import ValidationError
from .ledger import DEFAULT_LEDGER_PATH, Ledger, LedgerEntry, entry_key, isoformat
from .purge_guard import DEFAULT_MAX_PURGE, DEFAULT_PURGE_ALLOWANCE
from .registration import Registration

# What happens to an item, in the words of the summary. NOT_SENT: the run stopped (fail_fast, or the API was down)
# before its call.
CREATED, UPDATED, UNCHANGED, DELETED, FAILED, NOT_SENT = "created", "updated", "unchanged", "deleted", "failed", \
    "not_sent"
OUTCOMES = (CREATED, UPDATED, UNCHANGED, DELETED, FAILED, NOT_SENT)

Item = namedtuple("Item", ["registration", "state"])


class Step:
    """One item's plan (from the ledger), its call and, once applied, its outcome."""

    def __init__(self, item, key, before, purge=False, replaces=None):
        self.item = item
        self.key = key
        self.before = before  # the live registration the ledger holds, or None
        self.purge = purge
        # (key, principal) of a previous principal's entry this step takes over: it leaves the ledger once the call
        # is answered OK.
        self.replaces = replaces
        self.call = Call(item.registration, UPSERT if item.state == "present" else DELETE)
        self.outcome = self._predict()
        self.unsent_because = None

    def _predict(self):
        if self.item.state == "absent":
            return DELETED if self.before is not None else UNCHANGED
        if self.before is None:
            return CREATED
        return UNCHANGED if self.before == self.item.registration else UPDATED

    def settle(self, unsent_because=None):
        """After the calls: the prediction stands only for a call that was answered OK."""
        if self.call.error is not None:
            self.outcome = FAILED
        elif not self.call.ok:
            self.outcome = NOT_SENT
            self.unsent_because = unsent_because

    @property
    def changed(self):
        # A takeover changes whose entry it is (and so who keeps it alive), even when the operator holds the same.
        return self.outcome in (CREATED, UPDATED, DELETED) or bool(self.replaces) and self.outcome == UNCHANGED

    @property
    def expires_at(self):
        if not self.call.ok or self.call.time_to_live is None:
            return None
        return isoformat(self.call.sent_at + self.call.time_to_live)

    def result(self):
        reg = self.item.registration
        result = dict(phone_number=reg.phone_number, sip_uri=reg.sip_uri, route_type=reg.route_type,
                      state=self.item.state, result=self.outcome, expires_at=self.expires_at)
        if self.purge:
            result["purged"] = True
        if self.replaces:
            result["previous_principal"] = self.replaces[1]
        if self.call.error is not None:
            result["error"] = str(self.call.error)
        elif self.unsent_because:
            result["error"] = "not sent: %s" % self.unsent_because
        return result


class RegistrationService:
    """Applies registrations through ``connection`` and records them in ``ledger``."""

    def __init__(self, connection, ledger, clock=time.time):
        self.connection = connection
        self.ledger = ledger
        self.clock = clock
        self.planned_from = {}  # the ledger's entries as plan() read them
        self.warnings = []

    def plan(self, items, purge=False, max_purge=DEFAULT_MAX_PURGE, purge_allowance=DEFAULT_PURGE_ALLOWANCE,
             takeover=None):
        """Steps for ``items`` (and for the purge and a ``Takeover``), computed from the ledger alone; refuses unsafe
        purges and takeovers."""
        now = self.clock()
        entries = self.planned_from = self.ledger.read()
        taken = self._taken(entries, items, takeover)
        steps, keys = [], set()
        for item in items:
            key = entry_key(self.connection.endpoint, self.connection.principal, item.registration)
            if key in keys:
                raise ValidationError("registrations", "%s appears more than once" % item.registration.label,
                                      item.registration.phone_number)
            keys.add(key)
            previous = taken.get(key)
            before = entries.get(key) or (previous[1] if previous else None)
            steps.append(Step(item, key, _before(before, item.state, now), replaces=_replaces(previous)))
        if taken:
            steps.extend(self._takeover_steps(entries, taken, keys, now, takeover, purge))
        if purge:
            steps.extend(self._purge_steps(entries, keys, now, max_purge, purge_allowance, taken,
                                           adopt=bool(takeover) and takeover.action == ADOPT))
        return steps

    def _purge_steps(self, entries, keys, now, max_purge, purge_allowance, taken=None, adopt=False):
        """Deletes of this principal's entries missing from ``keys``. With ``adopt``, the ``taken`` entries (previous
        key and entry, by their key under this principal) count as this principal's: they are, from this run on."""
        taken = taken or {}
        mine = dict((key, entry) for key, entry in entries.items()
                    if entry.endpoint == self.connection.endpoint and entry.principal == self.connection.principal)
        for key, (_previous_key, entry) in taken.items():
            if adopt and key not in mine and not entry.delete_pending:
                mine[key] = entry
        doomed = [(key, mine[key]) for key in sorted(mine) if key not in keys]
        if not purge_guard.allowed(len(doomed), len(mine), max_purge, purge_allowance):
            purge_guard.refuse(len(doomed), len(mine), "the ledger %s holds for %s at %s" % (
                self.ledger.path, self.connection.principal, self.connection.endpoint), max_purge, purge_allowance)
        return [Step(Item(entry.registration, "absent"), key, _before(entry, "absent", now), purge=True,
                     replaces=_replaces(taken.get(key))) for key, entry in doomed]

    def _taken(self, entries, items, takeover):
        if takeover is None:
            return {}
        numbers = [item.registration.phone_number for item in items if item.registration.phone_number]
        taken = takeover.select(entries, self.connection.endpoint, self.connection.principal, numbers,
                                self.ledger.path)
        self.warnings.extend(takeover.warnings)
        return taken

    def _takeover_steps(self, entries, taken, keys, now, takeover, purge):
        steps = []
        for key, previous, entry, state in takeover.undeclared(entries, taken, keys, purge):
            keys.add(key)
            steps.append(Step(Item(entry.registration, state), key, _before(entry, state, now),
                              replaces=_replaces(previous)))
        return steps

    def apply(self, steps, concurrency=DEFAULT_CONCURRENCY, fail_fast=False):
        """Send every step's call, ``concurrency`` in flight; record the successes in the ledger, once.

        No call is started after one has failed for a transient reason with all its retries spent (the API is
        down: the others would each wait out the same timeout), nor with ``fail_fast`` after any failure; calls
        already in flight finish. The ledger is updated even if something unexpected interrupts the calls, so
        nothing that was applied is forgotten.
        """
        stopped_by = []

        def on_done(call):
            if call.error is not None and not stopped_by:
                if call.api_down:
                    stopped_by.append("the API stayed unavailable (%s)" % call.error)
                elif fail_fast:
                    stopped_by.append("fail_fast, after %s failed" % call.registration.label)

        # Shared with other module runs; a keepalive pass waits until these calls are recorded.
        with self.ledger.applying():
            try:
                lowest = self.connection.client.run([step.call for step in steps], concurrency=concurrency,
                                                    stop=lambda: bool(stopped_by), on_done=on_done, clock=self.clock)
            finally:
                self._record(steps)
        for step in steps:
            step.settle(stopped_by[0] if stopped_by else None)
        warning = shed_warning(lowest, concurrency, len(steps))
        if warning:
            self.warnings.append(warning)
        return steps

    def _record(self, steps):
        applied = [step for step in steps if step.call.ok]
        failed = [step for step in steps if step.call.error is not None]
        # Asked away but not (yet) deleted, because the delete failed or the run stopped before it was sent.
        undeleted = [step for step in steps if step.item.state == "absent" and not step.call.ok]
        if not applied and not failed and not undeleted:
            return
        endpoint, principal = self.connection.endpoint, self.connection.principal
        with self.ledger.update() as entries:
            for step in applied:
                if step.replaces:
                    # Taken over: from now on only this principal's entry stands for the registration.
                    entries.pop(step.replaces[0], None)
                if step.item.state == "absent":
                    entries.pop(step.key, None)
                else:
                    entries[step.key] = LedgerEntry(endpoint, principal, step.item.registration,
                                                    upserted_at=step.call.sent_at,
                                                    time_to_live=step.call.time_to_live,
                                                    last_attempt_at=step.call.sent_at)
            for step in failed:
                # Keep what was applied before, with why this attempt failed: it may still be live.
                if step.key in entries:
                    entries[step.key].last_error = str(step.call.error)
                    entries[step.key].last_attempt_at = self.clock()
            for step in undeleted:
                if step.key in entries:
                    entries[step.key].delete_pending = True

    def other_registrations(self, registration, key):
        """Warn about other live registrations of the same number: they stay at the operator until they lapse.

        Read from the entries plan() read: applying one registration changes no other."""
        now = self.clock()
        warnings = []
        for other_key, other in sorted(self.planned_from.items()):
            if (other_key != key and other.registration.phone_number == registration.phone_number
                    and other.endpoint == self.connection.endpoint and other.principal == self.connection.principal
                    and other.live(now)):
                warnings.append("%s is also registered at %s (ledger %s), live until %s; it stays at the operator "
                                "until then unless you remove it with state=absent"
                                % (registration.phone_number or "this user token", other.registration.sip_uri,
                                   self.ledger.path, isoformat(other.expires_at)))
        return warnings


def _replaces(previous):
    """What Step.replaces holds for a ``(key, entry)`` of a previous principal, or None."""
    return None if previous is None else (previous[0], previous[1].principal)


def _before(entry, state, now):
    """What the ledger says is live at the operator for a step, as far as the plan is concerned.

    A registration whose delete failed may still be live: asked absent again it is deleted again, asked present it is
    upserted as new."""
    if entry is None:
        return None
    if entry.delete_pending:
        return entry.registration if state == "absent" else None
    return entry.registration if entry.live(now) else None


def _registration(options, state, option_prefix=""):
    try:
        return Registration.create(
            sip_uri=options.get("sip_uri"), route_type=options.get("route_type"),
            phone_number=options.get("phone_number"),
            mobile_originating_prefix=options.get("mobile_originating_prefix"),
            mobile_terminating_prefix=options.get("mobile_terminating_prefix"),
            require_route_type=state == "present")
    except ValidationError as exc:
        if option_prefix:
            exc.option = option_prefix + exc.option
            exc.message = option_prefix + exc.message
        raise


def _diff(steps, ledger_path, bulk, entries, principal):
    """Before: what the ledger holds live; after: what is declared. One registration is shown as itself; a list
    shows only the items that change, so that a run touching 3 of 10,000 numbers shows 3. A registration taken over
    from a previous principal also shows whose entry it is before and after."""
    before, after = {}, {}
    for step in steps:
        if bulk and not step.changed:
            continue
        name = step.item.registration.label
        if step.before is not None:
            before[name] = step.before.as_dict()
            if step.replaces:
                before[name]["principal"] = entries[step.key].principal if step.key in entries else step.replaces[1]
        if step.item.state == "present":
            after[name] = step.item.registration.as_dict()
            if step.replaces:
                after[name]["principal"] = principal
    if not bulk:
        before, after = next(iter(before.values()), {}), next(iter(after.values()), {})
    return dict(before=before, after=after, before_header="ledger %s" % ledger_path,
                after_header="declared" if bulk else steps[0].item.registration.label)


def ensure_from_options(options, check_mode=False, diff=False, on_token=None):
    """The ``registration`` module: one registration, or a list of them (``registrations``), present or absent."""
    bulk = options.get("registrations") is not None
    if bulk:
        items = []
        problems = []
        for index, spec in enumerate(options["registrations"]):
            state = spec.get("state") or "present"
            try:
                items.append(Item(_registration(spec, state, "registrations[%d]." % index), state))
            except ValidationError as exc:
                problems.append(str(exc))
        if problems:
            # The whole list is checked before any call, and every problem is named at once.
            raise ValidationError("registrations", "%d invalid item(s), nothing was sent:\n%s"
                                  % (len(problems), "\n".join(problems)))
    else:
        state = options.get("state") or "present"
        items = [Item(_registration(options, state), state)]

    concurrency = DEFAULT_CONCURRENCY if options.get("concurrency") is None else options["concurrency"]
    if concurrency < 1:
        raise ValidationError("concurrency", "must be 1 or more, got %d" % concurrency)
    max_purge = DEFAULT_MAX_PURGE if options.get("max_purge") is None else options["max_purge"]
    purge_allowance = DEFAULT_PURGE_ALLOWANCE if options.get("purge_allowance") is None else options["purge_allowance"]
    purge_guard.check_limits(max_purge, purge_allowance)
    takeover = Takeover.from_options(options)
    if takeover and not bulk:
        raise ValidationError("previous_principal", "needs registrations: give the registration as a list of one")
    with Connection.from_options(options, on_token=on_token, offline=check_mode) as connection:
        for item in items:
            connection.check_registration(item.registration)
        service = RegistrationService(connection, Ledger(options.get("ledger_path") or DEFAULT_LEDGER_PATH))
        steps = service.plan(items, purge=bool(options.get("purge")), max_purge=max_purge,
                             purge_allowance=purge_allowance, takeover=takeover)
        if not check_mode:
            service.apply(steps, concurrency=concurrency,
                          fail_fast=bool(options.get("fail_fast")))
        result = dict(changed=any(step.changed for step in steps), ledger_path=service.ledger.path)
        if diff:
            result["diff"] = _diff(steps, service.ledger.path, bulk, service.planned_from, connection.principal)
        result["warnings"] = connection.warnings + service.warnings
        if bulk:
            return _bulk_result(result, steps, check_mode)
        return _single_result(result, steps[0], service, check_mode)


def _single_result(result, step, service, check_mode):
    if step.call.error is not None:
        raise step.call.error
    reg = step.item.registration
    ttl = step.call.time_to_live
    result.update(state=step.item.state, registration=reg.as_dict(),
                  time_to_live=None if ttl is None else int(round(ttl)), expires_at=step.expires_at,
                  status=None if check_mode else "STATUS_CODE_OK")
    result["warnings"].extend(service.other_registrations(reg, step.key))
    return result


def _bulk_result(result, steps, check_mode):
    results = [step.result() for step in steps]
    summary = dict((outcome, 0) for outcome in OUTCOMES)
    for item in results:
        summary[item["result"]] += 1
    result.update(results=results, summary=summary)
    if summary[FAILED]:
        first = next(item for item in results if item["result"] == FAILED)
        result["failed"] = True
        result["msg"] = "%d of %d registration(s) failed%s; the %d that succeeded are recorded in the ledger. " \
                        "First failure: %s" % (
                            summary[FAILED], len(results),
                            ", %d not sent" % summary[NOT_SENT] if summary[NOT_SENT] else "",
                            sum(1 for step in steps if step.call.ok), first["error"])
    elif check_mode:
        result["msg"] = "check mode: nothing was sent"
    return result
