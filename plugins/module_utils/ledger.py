# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger: what this host applied at the operator, since the API cannot be asked.

One entry per registration, keyed by API endpoint, principal (``TokenSource.principal``: whose credentials applied
it), number (none for user tokens: it is the token's) and ``sip_uri``. It holds the registration as last sent, when
the last successful upsert was, the TTL the server returned, the last error and whether a delete is pending. It never
holds a token or secret. The keepalive reads the same file.
"""

import contextlib
import datetime
import json
import time

from .auth import names_one_subscription
from .errors import LedgerError
from .registration import Registration
from .statefile import StateFile, locked

DEFAULT_LEDGER_PATH = "~/.local/state/wgtwo.sipbreakout/ledger.json"
FORMAT = "wgtwo.sipbreakout/ledger"


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
    """One registration as this host last applied it."""

    def __init__(self, endpoint, principal, registration, upserted_at=None, time_to_live=None, last_error=None,
                 last_attempt_at=None, delete_pending=False):
        self.endpoint = endpoint
        self.principal = principal
        self.registration = registration
        self.upserted_at = upserted_at
        self.time_to_live = time_to_live
        self.last_error = last_error
        self.last_attempt_at = last_attempt_at
        # A delete was asked for and failed or was not sent: the registration may or may not still exist, but it
        # must not be renewed; the next run that asks for it absent (or purges it) sends the delete again.
        self.delete_pending = delete_pending

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

    def to_json(self):
        return {
            "endpoint": self.endpoint,
            "principal": self.principal,
            "registration": self.registration.as_dict(),
            "upserted_at": self.upserted_at,
            "time_to_live": self.time_to_live,
            "expires_at": isoformat(self.expires_at),
            "last_error": self.last_error,
            "last_attempt_at": self.last_attempt_at,
            "delete_pending": self.delete_pending,
        }

    @classmethod
    def from_json(cls, data):
        return cls(data["endpoint"], data["principal"], Registration.from_dict(data["registration"]),
                   data.get("upserted_at"), data.get("time_to_live"), data.get("last_error"),
                   data.get("last_attempt_at"), bool(data.get("delete_pending")))


class Ledger:
    """Entries on disk. ``read()`` needs no lock; ``update()`` is a locked read-modify-write."""

    def __init__(self, path=DEFAULT_LEDGER_PATH, lock_timeout=60.0, clock=time.time):
        self._file = StateFile(path, FORMAT, lock_timeout=lock_timeout)
        self.clock = clock

    @property
    def path(self):
        return self._file.path

    def read(self):
        return self._decode(self._file.read())

    def get(self, keys):
        """The entries of ``keys`` that the ledger holds, by key."""
        entries = self.read()
        return dict((key, entries[key]) for key in keys if key in entries)

    def find(self, endpoint=None, principal=None, phone_number=None):
        """The entries of ``endpoint``, ``principal`` and ``phone_number`` (None: any)."""
        for _key, entry in sorted(self.read().items()):
            if ((endpoint is None or entry.endpoint == endpoint)
                    and (principal is None or entry.principal == principal)
                    and (phone_number is None or entry.registration.phone_number == phone_number)):
                yield entry

    @contextlib.contextmanager
    def update(self, keys=None):
        """``with ledger.update(keys) as entries:`` mutate the dict of key -> LedgerEntry (the entries of ``keys``,
        or all of them); written when the block ends.

        Nothing is written if the block raises.
        """
        with self._file.update() as body:
            entries = self._decode(body)
            yield entries
            body["registrations"] = dict((key, entry.to_json()) for key, entry in entries.items())

    def applying(self, exclusive=False, stop=None):
        """``with ledger.applying():`` around API calls and the ledger update that records them.

        Module runs hold it shared, so they still overlap one another; a keepalive pass holds it exclusive, so it
        never re-sends an entry whose change or deletion a module has sent but not yet recorded.
        """
        return locked(self.path + ".apply.lock", self._file.lock_timeout, shared=not exclusive, stop=stop)

    def _decode(self, body):
        try:
            return dict((key, LedgerEntry.from_json(value)) for key, value in body.get("registrations", {}).items())
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise LedgerError("%s holds an entry this collection cannot read (%s: %s). It was left untouched."
                              % (self.path, type(exc).__name__, exc))
