# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One ledger entry and its key: what every ledger store holds, whatever it keeps it in.

An entry is one registration as this collection last applied it (or is about to), keyed by API endpoint, principal
(``TokenSource.principal``: whose credentials applied it), number (none for user tokens: it is the token's) and
``sip_uri``. Beside the registration it holds what happened to it and what may be happening to it now:

* ``upserted_at`` and ``time_to_live``: the last upsert the API answered OK, and the TTL it returned;
* ``unconfirmed``: an upsert of these fields was decided and may have been sent, but its answer was not recorded
  (a run in progress, or one that was killed). The operator may hold them or not; the keepalive upserts them;
* ``delete_pending``: a delete was decided and may have been sent, but has not been answered OK. Nothing renews
  it; the next run that asks for it absent (or purges it) deletes it again;
* ``claimed_by`` and ``claimed_until``: the run or keepalive worker that is sending a call for it, and until when
  that claim holds (a lease: a process killed mid-call loses it by then, and nothing else touches the entry before);
* ``changed_at``: when a run last decided its fields or its removal (a purge leaves what another run decided
  while it ran).

No entry ever holds a token or secret.
"""

import datetime
import json

from .auth import names_one_subscription
from .registration import Registration

# The columns of one entry, in the order of ``row()``: what every store keeps per entry (each store adds its scope).
REGISTRATION_FIELDS = ("phone_number", "sip_uri", "route_type", "mobile_originating_prefix",
                       "mobile_terminating_prefix")
COLUMNS = ("key", "endpoint", "principal") + REGISTRATION_FIELDS + (
    "upserted_at", "time_to_live", "expires_at", "last_error", "last_attempt_at", "delete_pending", "unconfirmed",
    "claimed_by", "claimed_until", "changed_at")
# Where expires_at is in a row (the keepalive pages through entries by it).
EXPIRES_AT_COLUMN = COLUMNS.index("expires_at")


def isoformat(epoch):
    """UTC ISO 8601 with a ``Z``, to the second."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_key(endpoint, principal, registration):
    # With a user token the number is the token's, whether or not it is given: "+47..." and no number for the same
    # sip_uri are one registration at the operator, so they must be one entry.
    number = None if names_one_subscription(principal) else registration.phone_number
    return json.dumps([endpoint, principal, number, registration.sip_uri])


class LedgerEntry:
    """One registration as this ledger last applied it, or is applying it."""

    __slots__ = ("endpoint", "principal", "registration", "upserted_at", "time_to_live", "last_error",
                 "last_attempt_at", "delete_pending", "unconfirmed", "claimed_by", "claimed_until", "changed_at")

    def __init__(self, endpoint, principal, registration, upserted_at=None, time_to_live=None, last_error=None,
                 last_attempt_at=None, delete_pending=False, unconfirmed=False, claimed_by=None, claimed_until=None,
                 changed_at=None):
        self.endpoint = endpoint
        self.principal = principal
        self.registration = registration
        self.upserted_at = upserted_at
        self.time_to_live = time_to_live
        self.last_error = last_error
        self.last_attempt_at = last_attempt_at
        self.delete_pending = delete_pending
        self.unconfirmed = unconfirmed
        self.claimed_by = claimed_by
        self.claimed_until = claimed_until
        self.changed_at = changed_at

    @property
    def key(self):
        return entry_key(self.endpoint, self.principal, self.registration)

    @property
    def expires_at(self):
        if self.upserted_at is None or self.time_to_live is None:
            return None
        return self.upserted_at + self.time_to_live

    def live(self, now):
        """Still within the TTL of the last successful upsert, as far as this ledger knows."""
        return self.expires_at is not None and self.expires_at > now

    def claimed(self, now, by_other_than=None):
        """Whether a claim on the entry holds at ``now`` (one of another owner than ``by_other_than``, if given)."""
        if self.claimed_by is None or self.claimed_until is None or self.claimed_until <= now:
            return False
        return by_other_than is None or self.claimed_by != by_other_than

    def release(self):
        self.claimed_by = None
        self.claimed_until = None

    def copy(self):
        return LedgerEntry(*(getattr(self, name) for name in self.__slots__))

    def row(self, key):
        """The entry as the columns of COLUMNS, stored under ``key``."""
        return (key, self.endpoint, self.principal) + tuple(self.registration) + (
            self.upserted_at, self.time_to_live, self.expires_at, self.last_error, self.last_attempt_at,
            1 if self.delete_pending else 0, 1 if self.unconfirmed else 0, self.claimed_by, self.claimed_until,
            self.changed_at)

    @classmethod
    def from_row(cls, row):
        return cls(row[1], row[2], Registration(*row[3:8]), row[8], row[9], row[11], row[12], bool(row[13]),
                   bool(row[14]), row[15], row[16], row[17])

    @classmethod
    def from_json(cls, data):
        """An entry of the JSON ledger (format 1)."""
        return cls(data["endpoint"], data["principal"], Registration.from_dict(data["registration"]),
                   data.get("upserted_at"), data.get("time_to_live"), data.get("last_error"),
                   data.get("last_attempt_at"), bool(data.get("delete_pending")))
