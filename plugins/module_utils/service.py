# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state for registrations, decided against the ledger because the API has no read call.

``changed`` means: compared with what this ledger recorded as applied and still within its TTL, the operator now
holds something different (a new registration, other fields, one that had lapsed, or one deleted). A change made
outside this ledger (by grpcurl, another host, another ledger path) is not seen.

One engine serves one registration, a list of ten thousand and a file of a million alike: everything that must hold
before any call (valid input, no duplicates, the purge guard, a takeover) is decided first; then every item is
planned against the ledger's entries of its key, and a chunk at a time: the ledger records first what the calls may
do (``unconfirmed`` new or changed registrations, ``delete_pending`` deletes) and claims those entries for this run,
the calls run through ``SipBreakoutClient.run`` on one channel with a bounded number in flight, and the answers
confirm, restore or clear each entry. A run killed at any moment therefore leaves nothing the operator may hold
unknown to the ledger, and nothing it was asked to delete that the keepalive would renew (see ``ledger_store``). A
list is one chunk (a result per item); a file goes CHUNK_SIZE lines at a time, so that what the run holds does not
grow with the file, and returns the results of what changed or failed only, RESULTS_LIMIT at most.
"""

import time

from . import purge_guard
from .adoption import ADOPT, Takeover, replaced_by
from .client import DEFAULT_CONCURRENCY, DELETE, UPSERT, Call, shed_warning
from .connection import Connection
from .errors import ValidationError
from .ledger import open_ledger
from .ledger_entry import LedgerEntry, entry_key, isoformat
from .ledger_store import Lease, owner_name
from .purge_guard import DEFAULT_MAX_PURGE, DEFAULT_PURGE_ALLOWANCE
from .registration import Item, Registration
from .registrations_file import RegistrationsFile

# What happens to an item, in the words of the summary. NOT_SENT: the run stopped (fail_fast, or the API was down)
# before its call.
CREATED, UPDATED, UNCHANGED, DELETED, FAILED, NOT_SENT = "created", "updated", "unchanged", "deleted", "failed", \
    "not_sent"
OUTCOMES = (CREATED, UPDATED, UNCHANGED, DELETED, FAILED, NOT_SENT)

# File mode: registrations planned, sent and recorded at a time, and the most results (and diff entries) returned.
CHUNK_SIZE = 10000
RESULTS_LIMIT = 1000


class Step:
    """One item's plan (from the ledger), its call and, once applied, its outcome."""

    def __init__(self, item, key, before, purge=False, replaces=None, before_principal=None):
        self.item = item
        self.key = key
        self.before = before  # the live registration the ledger holds, or None
        self.before_principal = before_principal  # whose entry the ledger held for it
        self.purge = purge
        # (key, principal) of a previous principal's entry this step takes over: it leaves the ledger once the call
        # is answered OK.
        self.replaces = replaces
        self.call = Call(item.registration, UPSERT if item.state == "present" else DELETE)
        self.outcome = self._predict()
        self.unsent_because = None
        self.held = None  # a copy of the ledger's entry as this run's decision found it (None: it had none)
        self.claimed = False  # this run recorded its decision and claimed the entry: its answer settles it
        self.left_because = None  # a purge step left for the next run, and why

    def replan(self, held, now):
        """Plan again from ``held``, the entry as the run's decision finds it (another run may have changed it since
        the plan)."""
        self.held = held.copy() if held is not None else None
        if not self.replaces:
            self.before = _before(held, self.item.state, now)
            self.before_principal = held.principal if held is not None else None
        self.outcome = self._predict()

    def _predict(self):
        if self.item.state == "absent":
            return DELETED if self.before is not None else UNCHANGED
        if self.before is None:
            return CREATED
        return UNCHANGED if self.before == self.item.registration else UPDATED

    def settle(self, unsent_because=None):
        """After the calls: the prediction stands only for a call that was answered OK."""
        if self.left_because is not None:
            self.outcome = UNCHANGED
        elif self.call.error is not None:
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
        if self.item.line is not None:
            result["line"] = self.item.line
        if self.purge:
            result["purged"] = True
        if self.replaces:
            result["previous_principal"] = self.replaces[1]
        if self.call.error is not None:
            result["error"] = str(self.call.error)
        elif self.unsent_because:
            result["error"] = "not sent: %s" % self.unsent_because
        elif self.left_because:
            result["left"] = self.left_because
        return result


class RegistrationService:
    """Applies registrations through ``connection`` and records them in ``ledger``.

    What must hold before any call (the purge guard, a takeover) is decided by :meth:`prepare` from the declared
    keys alone; the steps are then planned a chunk at a time from the ledger's entries of that chunk's keys
    (:meth:`steps`), sent and recorded (:meth:`apply`), so a run holds one chunk's entries, never the ledger's
    (a purge keeps the keys it deletes; a takeover reads the entries of this client's refresh tokens).
    """

    def __init__(self, connection, ledger, clock=time.time):
        self.connection = connection
        self.ledger = ledger
        self.clock = clock
        self.started_at = clock()
        # Who this run is in the ledger's claims, and how long its claims last (renewed while it sends).
        self.owner = owner_name("run")
        self.lease = Lease(ledger, self.owner, connection.timeout, clock)
        self.warnings = []
        self.taken = {}  # {key under this principal: (key, entry)} of a previous principal's entries taken over
        self._after = []  # steps of the takeover that the items do not name
        self._doomed = []  # keys the purge deletes, in order
        self._stopped_by = []  # why no further call is started: the API is down, or fail_fast
        self._lowest = None  # the fewest calls the client allowed in flight, over every apply()
        self._sent = 0

    def key(self, registration):
        """The ledger key of ``registration`` applied with this run's endpoint and credentials."""
        return entry_key(self.connection.endpoint, self.connection.principal, registration)

    def plan(self, items, purge=False, max_purge=DEFAULT_MAX_PURGE, purge_allowance=DEFAULT_PURGE_ALLOWANCE,
             takeover=None):
        """Steps for ``items`` (and for the purge and a ``Takeover``), computed from the ledger alone; refuses unsafe
        purges and takeovers."""
        keyed, keys = [], set()
        for item in items:
            key = self.key(item.registration)
            if key in keys:
                raise ValidationError("registrations", "%s appears more than once" % item.registration.label,
                                      item.registration.phone_number)
            keys.add(key)
            keyed.append((item, key))
        self.prepare(keys, [item.registration.phone_number for item in items], purge=purge, max_purge=max_purge,
                     purge_allowance=purge_allowance, takeover=takeover)
        steps = self.steps(keyed)
        for chunk in self.steps_after(max(1, len(self._doomed))):
            steps.extend(chunk)
        return steps

    def prepare(self, keys, numbers, purge=False, max_purge=DEFAULT_MAX_PURGE,
                purge_allowance=DEFAULT_PURGE_ALLOWANCE, takeover=None):
        """Decide, before any call, what the items do not name: the takeover's other entries and the purge, which
        is refused here when it deletes too much. ``keys`` holds the items' keys (a set or ``KeyDigests``; the
        takeover's are added to it), ``numbers`` the phone numbers they name."""
        now = self.clock()
        if takeover is not None:
            # Only this client's refresh tokens' entries matter to a takeover (Takeover.select reads no others).
            view = dict((entry.key, entry) for entry in self.ledger.find(endpoint=self.connection.endpoint)
                        if entry.principal == self.connection.principal
                        or replaced_by(entry.principal, self.connection.principal))
            self.taken = takeover.select(view, self.connection.endpoint, self.connection.principal,
                                         [number for number in numbers if number], self.ledger.describe())
            self.warnings.extend(takeover.warnings)
            for key, previous, entry, state in takeover.undeclared(view, self.taken, keys, purge):
                keys.add(key)
                self._after.append(Step(Item(entry.registration, state), key, _before(entry, state, now),
                                        replaces=_replaces(previous), before_principal=entry.principal))
        if purge:
            self._doomed = self._purge_keys(keys, max_purge, purge_allowance,
                                            adopt=bool(takeover) and takeover.action == ADOPT)

    def _purge_keys(self, keys, max_purge, purge_allowance, adopt=False):
        """This principal's keys that are not in ``keys``, sorted. With ``adopt``, the taken entries count as this
        principal's: they are, from this run on. One pass over the principal's entries, keeping keys only."""
        holding, doomed = 0, []
        for entry in self.ledger.find(endpoint=self.connection.endpoint, principal=self.connection.principal):
            holding += 1
            if entry.key not in keys:
                doomed.append(entry.key)
        if adopt and self.taken:
            own = self.ledger.get(list(self.taken))
            for key, (_previous_key, entry) in self.taken.items():
                if key not in own and not entry.delete_pending:
                    holding += 1
                    if key not in keys:
                        doomed.append(key)
        if not purge_guard.allowed(len(doomed), holding, max_purge, purge_allowance):
            purge_guard.refuse(len(doomed), holding, "the ledger %s holds for %s at %s" % (
                self.ledger.describe(), self.connection.principal, self.connection.endpoint), max_purge,
                purge_allowance)
        doomed.sort()
        return doomed

    def _held(self, keys):
        """``[(entry, previous)]`` for ``keys``, in order: what the ledger holds for each key, or else the entry of a
        previous principal it takes over (None when neither), and that ``(key, entry)`` taken over, or None. One
        lookup for the keys and the taken-over keys together."""
        wanted = list(keys) + [self.taken[key][0] for key in keys if key in self.taken]
        entries = self.ledger.get(wanted)
        held = []
        for key in keys:
            previous = self.taken.get(key)
            held.append((entries.get(key) or (previous[1] if previous else None), previous))
        return held

    def steps(self, keyed):
        """Steps of ``(item, key)`` pairs, planned from the ledger's entries of those keys."""
        held = self._held([key for _item, key in keyed])
        now = self.clock()
        steps = []
        for (item, key), (before, previous) in zip(keyed, held):
            steps.append(Step(item, key, _before(before, item.state, now), replaces=_replaces(previous),
                              before_principal=before.principal if before is not None else None))
        return steps

    def steps_after(self, size):
        """Chunks of at most ``size`` steps for what the items do not name: the takeover's, then the purge's."""
        if self._after:
            yield self._after
        for start in range(0, len(self._doomed), size):
            keys = self._doomed[start:start + size]
            held = self._held(keys)
            now = self.clock()
            steps = []
            for key, (entry, previous) in zip(keys, held):
                if entry is None:
                    continue  # gone since prepare() (another run deleted it): nothing left to purge
                steps.append(Step(Item(entry.registration, "absent"), key, _before(entry, "absent", now), purge=True,
                                  replaces=_replaces(previous), before_principal=entry.principal))
            yield steps

    def apply(self, steps, concurrency=DEFAULT_CONCURRENCY, fail_fast=False):
        """Record what the steps' calls may do, send them (``concurrency`` in flight), and record their answers.

        No call is started after one has failed for a transient reason with all its retries spent (the API is
        down: the others would each wait out the same timeout), nor with ``fail_fast`` after any failure, in this
        apply() or a later one of the same run; calls already in flight finish. The answers are recorded even if
        something unexpected interrupts the calls, so nothing that was applied is forgotten.
        """
        stopped_by = self._stopped_by

        def on_done(call):
            if call.error is not None and not stopped_by:
                if call.api_down:
                    stopped_by.append("the API stayed unavailable (%s)" % call.error)
                elif fail_fast:
                    stopped_by.append("fail_fast, after %s failed" % call.registration.label)

        def stop():
            self.lease.keep()  # renewed between calls, so it never expires while one is in flight
            return bool(stopped_by)

        self._decide(steps)
        sending = [step for step in steps if step.claimed]
        try:
            lowest = self.connection.client.run([step.call for step in sending], concurrency=concurrency,
                                                stop=stop, on_done=on_done, clock=self.clock)
        finally:
            self._record(sending)
        for step in steps:
            step.settle(stopped_by[0] if stopped_by else None)
        self._lowest = lowest if self._lowest is None else min(self._lowest, lowest)
        self._sent += len(sending)
        return steps

    def shed_warning(self, concurrency):
        """The warning for the user when the API pushed back during the run's apply() calls, or None."""
        if self._lowest is None:
            return None
        return shed_warning(self._lowest, concurrency, self._sent)

    def _decide(self, steps):
        """Record in one transaction, before any call, what the calls may do, and claim their entries.

        Each step's entry is read again under the scope's write lock (another run may have changed it since the
        plan), waiting for entries a keepalive batch or another run claims. A present step's registration becomes
        ``unconfirmed`` unless the ledger holds exactly it already; an absent step's entry is ``delete_pending``
        (one is made if the ledger has none, so that a run adding it meanwhile waits for this one). A purge leaves
        an entry that another run decided on after this run started, or is deciding on now, for the next run."""
        now = self.clock()
        by_key = dict((step.key, step) for step in steps)

        def waits_for(key, entry):
            step = by_key[key]
            return not (step.purge and _decided_elsewhere(entry, self.owner, self.started_at, now))

        endpoint, principal = self.connection.endpoint, self.connection.principal
        with self.ledger.claimed_update(list(by_key), self.owner, waits_for) as entries:
            until = self.lease.until()
            now = self.clock()
            for step in steps:
                held = entries.get(step.key)
                if step.purge and (held is None or _decided_elsewhere(held, self.owner, self.started_at, now)):
                    step.left_because = ("gone from the ledger since this run decided to purge it" if held is None
                                         else "another run decided on it after this run started; the next purge "
                                              "decides again")
                    continue
                step.replan(held, now)
                entry = held if held is not None else LedgerEntry(endpoint, principal, step.item.registration)
                if step.item.state == "present":
                    if held is None or held.delete_pending or held.unconfirmed \
                            or held.registration != step.item.registration:
                        entry.registration = step.item.registration
                        entry.unconfirmed = True
                        entry.delete_pending = False
                        entry.changed_at = now
                else:
                    entry.delete_pending = True
                    entry.changed_at = now
                entry.claimed_by, entry.claimed_until = self.owner, until
                entries[step.key] = entry
                step.claimed = True
        self.lease.holding([step.key for step in steps if step.claimed])

    def _record(self, steps):
        """Settle each claimed entry from its step's answer, in one transaction, and release the claims.

        Answered OK: confirmed (or gone, for a delete). A delete that failed or was not sent stays pending. An upsert
        the API refused, or that was not sent, puts back what the ledger held before (or nothing); one whose answer
        was lost (a transient failure: the operator may hold it) stays unconfirmed, for the keepalive or the next
        run to send again."""
        if not steps:
            return
        endpoint, principal = self.connection.endpoint, self.connection.principal
        keys = [step.key for step in steps] + [step.replaces[0] for step in steps if step.replaces and step.call.ok]
        now = self.clock()
        with self.ledger.update(keys) as entries:
            for step in steps:
                entry = entries.get(step.key)
                if entry is None or entry.claimed_by != self.owner:
                    # This run's claim ran out and someone else has decided on it since: theirs stands.
                    continue
                call = step.call
                if call.ok:
                    if step.replaces:
                        # Taken over: from now on only this principal's entry stands for the registration.
                        entries.pop(step.replaces[0], None)
                    if step.item.state == "absent":
                        entries.pop(step.key)
                    else:
                        entries[step.key] = LedgerEntry(endpoint, principal, step.item.registration,
                                                        upserted_at=call.sent_at, time_to_live=call.time_to_live,
                                                        last_attempt_at=call.sent_at, changed_at=entry.changed_at)
                    continue
                if step.item.state == "absent":
                    if step.held is None and call.error is None:
                        entries.pop(step.key)  # nothing known of it, and nothing was sent
                        continue
                elif call.error is None or not call.uncertain:
                    # Not sent, or refused: the operator holds what it held before this run.
                    if step.held is None:
                        entries.pop(step.key)
                        continue
                    entry = entries[step.key] = step.held
                entry.release()
                if call.error is not None:
                    entry.last_error = str(call.error)
                    entry.last_attempt_at = now

    def other_registrations(self, registration, key):
        """Warn about other live registrations of the same number: they stay at the operator until they lapse.

        Looked up by number (with a user token, the token's number is not in the key: by its entries' sip_uri)."""
        now = self.clock()
        warnings = []
        others = self.ledger.find(endpoint=self.connection.endpoint, principal=self.connection.principal,
                                  phone_number=registration.phone_number)
        for other in sorted(others, key=lambda entry: entry.key):
            # find() takes a None number as any number; only the entries without one are this one's then.
            if (other.key != key and other.registration.phone_number == registration.phone_number
                    and other.live(now)):
                warnings.append("%s is also registered at %s (ledger %s), live until %s; it stays at the operator "
                                "until then unless you remove it with state=absent"
                                % (registration.phone_number or "this user token", other.registration.sip_uri,
                                   self.ledger.describe(), isoformat(other.expires_at)))
        return warnings


def _decided_elsewhere(entry, owner, started_at, now):
    """Whether another run decided on ``entry`` after ``started_at`` or is deciding on it now (keepalive claims
    do not count: they only refresh)."""
    if entry.claimed(now, by_other_than=owner) and entry.claimed_by.startswith("run:"):
        return True
    return entry.changed_at is not None and entry.changed_at >= started_at and entry.claimed_by != owner


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
        return Registration.from_options(options, state)
    except ValidationError as exc:
        if option_prefix:
            exc.option = option_prefix + exc.option
            exc.message = option_prefix + exc.message
        raise


def _diff_entry(step, principal):
    """(name, before, after) of a step for the diff: what the ledger holds live (or None), what is declared (or
    None). A registration taken over from a previous principal also shows whose entry it is before and after."""
    name = step.item.registration.label
    before = after = None
    if step.before is not None:
        before = step.before.as_dict()
        if step.replaces:
            before["principal"] = step.before_principal or step.replaces[1]
    if step.item.state == "present":
        after = step.item.registration.as_dict()
        if step.replaces:
            after["principal"] = principal
    return name, before, after


class Report:
    """What a run of many registrations returns, gathered a chunk of steps at a time.

    The summary counts every step. ``limit`` bounds the results and the diff's entries (None: every one);
    ``changes_only`` leaves out the results of steps that changed nothing, so that a file of a million numbers
    returns the few that changed or failed.
    """

    def __init__(self, principal, limit=None, changes_only=False, diff=False):
        self.principal = principal
        self.limit = limit
        self.changes_only = changes_only
        self.summary = dict((outcome, 0) for outcome in OUTCOMES)
        self.results = []
        self.results_omitted = 0
        self.changed = False
        self.applied = 0
        self.first_failure = None
        self.diff = dict(before={}, after={}) if diff else None
        self.diff_shown = self.diff_omitted = 0

    @property
    def total(self):
        return sum(self.summary.values())

    def add(self, steps):
        for step in steps:
            self.summary[step.outcome] += 1
            self.applied += 1 if step.call.ok else 0
            if self.first_failure is None and step.outcome == FAILED:
                self.first_failure = ("line %d: " % step.item.line if step.item.line else "") + str(step.call.error)
            changed = step.changed
            self.changed = self.changed or changed
            if not self.changes_only or changed or step.outcome != UNCHANGED:
                if self.limit is None or len(self.results) < self.limit:
                    self.results.append(step.result())
                else:
                    self.results_omitted += 1
            if self.diff is not None and changed:
                if self.limit is None or self.diff_shown < self.limit:
                    self.diff_shown += 1
                    name, before, after = _diff_entry(step, self.principal)
                    if before is not None:
                        self.diff["before"][name] = before
                    if after is not None:
                        self.diff["after"][name] = after
                else:
                    self.diff_omitted += 1

    def progress(self):
        return ", ".join("%s %d" % (outcome.replace("_", " "), self.summary[outcome]) for outcome in OUTCOMES)

    def result(self, result, check_mode):
        """``result`` with changed, results, summary, diff and, when something failed, failed and msg."""
        result.update(changed=self.changed, results=self.results, summary=self.summary)
        if self.diff is not None:
            header = "declared"
            if self.diff_omitted:
                header = "declared (the first %d changes; %d more are left out, the summary counts them all)" % (
                    self.limit, self.diff_omitted)
            result["diff"] = dict(self.diff, before_header="ledger %s" % result["ledger_path"], after_header=header)
        if self.summary[FAILED]:
            result["failed"] = True
            result["msg"] = "%d of %d registration(s) failed%s; the %d that succeeded are recorded in the ledger. " \
                            "First failure: %s" % (
                                self.summary[FAILED], self.total,
                                ", %d not sent" % self.summary[NOT_SENT] if self.summary[NOT_SENT] else "",
                                self.applied, self.first_failure)
        elif check_mode:
            result["msg"] = "check mode: nothing was sent"
        return result


def _chunks(iterable, size):
    chunk = []
    for value in iterable:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ensure_from_options(options, check_mode=False, diff=False, on_token=None, log=None):
    """The ``registration`` module: one registration, a list of them (``registrations``) or a file of them
    (``registrations_file``), present or absent. ``log(message)`` gets a line of progress per chunk of a file."""
    source = None
    bulk = options.get("registrations") is not None
    if options.get("registrations_file"):
        source = RegistrationsFile(options["registrations_file"], options.get("registrations_file_format"))
        bulk = True
    elif bulk:
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
        raise ValidationError("previous_principal", "needs registrations or registrations_file: give the "
                                                    "registration as a list of one")
    plan = dict(purge=bool(options.get("purge")), max_purge=max_purge, purge_allowance=purge_allowance,
                takeover=takeover)
    with open_ledger(options) as ledger, \
            Connection.from_options(options, on_token=on_token, offline=check_mode, token_cache=None if check_mode
                                    else ledger.token_cache(options.get("token_cache_path"))) as connection:
        service = RegistrationService(connection, ledger)
        result = dict(ledger_path=ledger.location, ledger_scope=ledger.scope)
        apply = dict(concurrency=concurrency, fail_fast=bool(options.get("fail_fast")))
        if source is not None:
            with source:
                report = _ensure_file(service, source, plan, None if check_mode else apply, diff, log)
        else:
            for item in items:
                connection.check_registration(item.registration)
            steps = service.plan(items, **plan)
            if not check_mode:
                service.apply(steps, **apply)
            if not bulk:
                return _single_result(result, steps[0], service, check_mode, diff)
            report = Report(connection.principal, diff=diff)
            report.add(steps)
        report.result(result, check_mode)
        if source is not None:
            result.update(results_omitted=report.results_omitted, registrations_file=source.path)
        result["warnings"] = connection.warnings + service.warnings + [
            warning for warning in [service.shed_warning(concurrency)] if warning]
        return result


def _ensure_file(service, source, plan, apply, diff, log):
    """Check the whole file, decide the purge and takeover, then plan, send and record a chunk at a time
    (``apply`` None: check mode, nothing is sent)."""
    demands = service.connection.check_registration
    checked = source.check(service.key, lambda item: demands(item.registration), numbers=plan["takeover"] is not None)
    service.prepare(checked.keys, checked.numbers or (), **plan)
    report = Report(service.connection.principal, limit=RESULTS_LIMIT, changes_only=True, diff=diff)

    def run(steps):
        if apply is not None:
            service.apply(steps, **apply)
        report.add(steps)
        if log is not None:
            log("registrations_file %s: %d steps done (%s)" % (source.path, report.total, report.progress()))

    for chunk in _chunks(source.items(lambda item: demands(item.registration)), CHUNK_SIZE):
        run(service.steps([(item, service.key(item.registration)) for item in chunk]))
    for steps in service.steps_after(CHUNK_SIZE):
        run(steps)
    return report


def _single_result(result, step, service, check_mode, diff):
    if step.call.error is not None:
        raise step.call.error
    reg = step.item.registration
    ttl = step.call.time_to_live
    result.update(changed=step.changed, state=step.item.state, registration=reg.as_dict(),
                  time_to_live=None if ttl is None else int(round(ttl)), expires_at=step.expires_at,
                  status=None if check_mode else "STATUS_CODE_OK")
    if diff:
        _name, before, after = _diff_entry(step, service.connection.principal)
        result["diff"] = dict(before=before or {}, after=after or {},
                              before_header="ledger %s" % service.ledger.describe(), after_header=reg.label)
    result["warnings"] = service.connection.warnings + service.warnings + service.other_registrations(reg, step.key)
    return result
