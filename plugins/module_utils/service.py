# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state for registrations, decided against the ledger because the API has no read call.

``changed`` means: compared with what this ledger recorded as applied and still within its TTL, the operator now
holds something different (a new registration, other fields, one that had lapsed, or one deleted). A change made
outside this ledger (by grpcurl, another host, another ledger path) is not seen.
"""

import time

from .connection import Connection
from .errors import SipBreakoutError
from .ledger import DEFAULT_LEDGER_PATH, Ledger, LedgerEntry, entry_key, isoformat
from .registration import Registration


class RegistrationService:
    """Applies registrations through ``connection`` and records them in ``ledger``."""

    def __init__(self, connection, ledger, clock=time.time):
        self.connection = connection
        self.ledger = ledger
        self.clock = clock

    def ensure(self, registration, state="present", check_mode=False, diff=False):
        """Make one registration present or absent; returns the module result (without ``diff`` unless asked)."""
        now = self.clock()
        entries = self.ledger.read()
        key = entry_key(self.connection.endpoint, self.connection.principal, registration)
        entry = entries.get(key)
        before = entry.registration if entry is not None and entry.live(now) else None
        present = state == "present"
        changed = before != registration if present else before is not None

        result = dict(changed=changed, state=state, registration=registration.as_dict(), time_to_live=None,
                      expires_at=None, status=None, ledger_path=self.ledger.path,
                      warnings=self._other_registrations(entries, registration, key, now))
        if not check_mode:
            if present:
                result.update(self._upsert(registration, key, entry))
            else:
                self.connection.client.delete(registration)
                with self.ledger.update() as current:
                    current.pop(key, None)
                result["status"] = "STATUS_CODE_OK"
        if diff:
            result["diff"] = dict(before=before.as_dict() if before else {},
                                  after=registration.as_dict() if present else {},
                                  before_header="%s (ledger %s)" % (registration.label, self.ledger.path),
                                  after_header=registration.label)
        return result

    def _upsert(self, registration, key, entry):
        try:
            ttl = self.connection.client.upsert(registration).time_to_live
        except SipBreakoutError as exc:
            if entry is not None:
                # Keep what was applied before, with why the refresh failed: it may still be live.
                with self.ledger.update() as current:
                    if key in current:
                        current[key].last_error = str(exc)
                        current[key].last_attempt_at = self.clock()
            raise
        upserted_at = self.clock()
        fresh = LedgerEntry(self.connection.endpoint, self.connection.principal, registration,
                            upserted_at=upserted_at, time_to_live=ttl, last_attempt_at=upserted_at)
        with self.ledger.update() as current:
            current[key] = fresh
        return dict(time_to_live=int(round(ttl)), expires_at=isoformat(fresh.expires_at), status="STATUS_CODE_OK")

    def _other_registrations(self, entries, registration, key, now):
        """Warn about other live registrations of the same number: they stay at the operator until they lapse."""
        warnings = []
        for other_key, other in sorted(entries.items()):
            if (other_key != key and other.registration.phone_number == registration.phone_number
                    and other.endpoint == self.connection.endpoint and other.principal == self.connection.principal
                    and other.live(now)):
                warnings.append("%s is also registered at %s (ledger %s), live until %s; it stays at the operator "
                                "until then unless you remove it with state=absent"
                                % (registration.phone_number or "this user token", other.registration.sip_uri,
                                   self.ledger.path, isoformat(other.expires_at)))
        return warnings


def ensure_from_options(options, check_mode=False, diff=False, on_token=None):
    """The single-registration path of the ``registration`` module: validate everything, then apply."""
    state = options.get("state") or "present"
    registration = Registration.create(
        sip_uri=options.get("sip_uri"), route_type=options.get("route_type"),
        phone_number=options.get("phone_number"),
        mobile_originating_prefix=options.get("mobile_originating_prefix"),
        mobile_terminating_prefix=options.get("mobile_terminating_prefix"),
        require_route_type=state == "present")
    with Connection.from_options(options, on_token=on_token) as connection:
        connection.check_registration(registration)
        service = RegistrationService(connection, Ledger(options.get("ledger_path") or DEFAULT_LEDGER_PATH))
        return service.ensure(registration, state, check_mode=check_mode, diff=diff)
