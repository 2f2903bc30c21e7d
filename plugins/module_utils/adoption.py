# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registrations left behind by a replaced refresh token, and taking them over explicitly.

A refresh token's ledger entries belong to ``user:<client id>:<digest of the configured token>``. When the subscriber
consents again, the operator gets a new refresh token, and with it a new principal: the previous one's entries stay
in the ledger, no keepalive refreshes them (they are not its own), and they lapse. ``Takeover`` is the one way to
move them to the current principal (``adopt``) or to delete them at the operator (``delete``); it is only ever done
when the operator names the previous principal.

What "the same subscription" means: the ledger cannot know whose a refresh token is, and two subscribers' refresh
tokens of one client are alike on one ledger. The only thing that names a subscription is the phone number the
registrations were declared with. So a previous principal's entries are taken over only if every one of them names
its number and that number is this run's subscription's (named by this run's items or the current principal's own
entries). Entries applied without a number cannot be told apart from another subscriber's, and are refused. The
calls themselves carry the number too, so the API would also refuse one that is not the token's subscription.
"""

import re

from .auth import USER_PRINCIPAL_PREFIX
from .errors import ValidationError
from .ledger_entry import entry_key

ADOPT, DELETE = "adopt", "delete"
PREVIOUS_ENTRIES = (ADOPT, DELETE)
_DIGEST = re.compile(r"^[0-9a-f]{12}$")


def user_client(principal):
    """The client id of a refresh token's principal ``user:<client id>:<12 hex digits>``, or None for any other."""
    if not principal or not principal.startswith(USER_PRINCIPAL_PREFIX):
        return None
    client_id, sep, digest = principal[len(USER_PRINCIPAL_PREFIX):].rpartition(":")
    if not sep or not client_id or not _DIGEST.match(digest):
        return None
    return client_id


def replaced_by(entry_principal, principal):
    """Whether entries of ``entry_principal`` may be those of an earlier refresh token of ``principal``'s client."""
    client_id = user_client(principal)
    return client_id is not None and entry_principal != principal and user_client(entry_principal) == client_id


def takeover_hint(entry, endpoint, principal):
    """What the keepalive adds to its report of an entry it does not refresh, when a replaced refresh token of its
    own client applied it at its endpoint."""
    if entry.endpoint != endpoint or not replaced_by(entry.principal, principal):
        return ""
    return ("; if it is this subscription's from before the refresh token was replaced, take it over with "
            "previous_principal=%s (pbx role: sipbreakout_previous_principal)" % entry.principal)


def _numbers(entries):
    return set(entry.registration.phone_number for entry in entries) - {None}


class Takeover:
    """What to do with the registrations ``principal`` (a replaced refresh token) holds: ``adopt`` or ``delete``."""

    def __init__(self, principal, action=ADOPT):
        if action not in PREVIOUS_ENTRIES:
            raise ValidationError("previous_entries", "'%s' is not one of %s" % (action, ", ".join(PREVIOUS_ENTRIES)))
        self.principal = principal
        self.action = action
        self.warnings = []

    @classmethod
    def from_options(cls, options):
        if not options.get("previous_principal"):
            return None
        return cls(options["previous_principal"], options.get("previous_entries") or ADOPT)

    def check_principals(self, current):
        """The named principal must be another refresh token of the client this run's refresh token belongs to."""
        client_id = user_client(current)
        if client_id is None:
            raise ValidationError("previous_principal", "takes over the registrations of an earlier refresh token "
                                                        "of this subscription, so it needs this run to authenticate "
                                                        "with its refresh_token; it authenticates as %s" % current)
        if self.principal == current:
            raise ValidationError("previous_principal", "%s is the principal of this run's own refresh_token; name "
                                                        "the one it replaced (registration_info lists the ledger's "
                                                        "principals and orphans)" % current)
        previous_client = user_client(self.principal)
        if previous_client is None:
            raise ValidationError("previous_principal", "'%s' is not the principal of a refresh token "
                                                        "(user:<client id>:<12 hex digits>, as registration_info and "
                                                        "the keepalive show it); only a refresh token's "
                                                        "registrations can be taken over" % self.principal)
        if previous_client != client_id:
            raise ValidationError("previous_principal", "%s belongs to client '%s', this run's refresh_token to client "
                                                        "'%s': registrations of another client are never taken over"
                                  % (self.principal, previous_client, client_id))

    def select(self, entries, endpoint, current, declared_numbers, ledger_path):
        """``{current key: (previous key, entry)}`` for the previous principal's entries at ``endpoint``.

        Raises ValidationError, before anything is sent, when they cannot be shown to be this subscription's."""
        self.check_principals(current)
        where = "at %s in the ledger %s" % (endpoint, ledger_path)
        theirs = [(key, entry) for key, entry in sorted(entries.items())
                  if entry.endpoint == endpoint and entry.principal == self.principal]
        own = [entry for entry in entries.values() if entry.endpoint == endpoint and entry.principal == current]
        subscription = set(declared_numbers) | _numbers(own)
        if not theirs:
            self._nothing_held(entries, endpoint, current, subscription, where)
            return {}
        unnumbered = [entry for _key, entry in theirs if entry.registration.phone_number is None]
        if unnumbered:
            raise ValidationError("previous_principal", "%d registration(s) of %s %s (%s) were applied without "
                                                        "phone_number, so nothing shows which subscription they "
                                                        "belong to (another subscriber's refresh token looks the "
                                                        "same); they are never taken over, and lapse at the operator "
                                                        "unless their own refresh token renews them"
                                  % (len(unnumbered), self.principal, where,
                                     ", ".join(entry.registration.sip_uri for entry in unnumbered)))
        numbers = _numbers(entry for _key, entry in theirs)
        if not subscription:
            raise ValidationError("previous_principal", "the registrations of %s are for %s, but this run names no "
                                                        "phone_number for its own refresh_token's subscription, so "
                                                        "that cannot be checked; give the items their phone_number"
                                  % (self.principal, ", ".join(sorted(numbers))))
        if numbers - subscription:
            raise ValidationError("previous_principal", "the registrations of %s %s are for %s, this run's "
                                                        "refresh_token is for %s: another subscription's "
                                                        "registrations are never taken over"
                                  % (self.principal, where, ", ".join(sorted(numbers)),
                                     ", ".join(sorted(subscription))))
        return dict((entry_key(endpoint, current, entry.registration), (key, entry)) for key, entry in theirs)

    def undeclared(self, entries, taken, keys, purge):
        """``(key, previous, entry, state)`` of a call for each ``taken`` entry whose key is not in ``keys`` (the
        run's items): the registration ``entry`` to send, ``present`` or ``absent``. A registration the current
        principal holds itself stays as it holds it (only the previous entry leaves the ledger); with ``purge``, what
        falls to the purge is left to it."""
        for key in sorted(taken):
            if key in keys:
                continue
            entry = taken[key][1]
            own = entries.get(key)
            if own is not None:
                if purge:
                    continue
                yield key, taken[key], own, "absent" if own.delete_pending else "present"
            elif self.action == ADOPT and not entry.delete_pending:
                if not purge:
                    yield key, taken[key], entry, "present"
            else:
                yield key, taken[key], entry, "absent"

    def _nothing_held(self, entries, endpoint, current, subscription, where):
        """A principal that holds nothing: a mistake while this subscription still has orphans (refused, naming
        them), else most likely one already taken over by an earlier run (a warning, so re-runs keep working)."""
        candidates = {}
        for entry in entries.values():
            number = entry.registration.phone_number
            if (entry.endpoint == endpoint and replaced_by(entry.principal, current)
                    and (not subscription or number is None or number in subscription)):
                candidates[entry.principal] = candidates.get(entry.principal, 0) + 1
        if candidates:
            raise ValidationError("previous_principal", "%s holds no registrations %s; registrations that may be "
                                                        "this subscription's are held by %s"
                                  % (self.principal, where, ", ".join("%s (%d)" % (name, count) for name, count
                                                                      in sorted(candidates.items()))))
        self.warnings.append("previous_principal: %s holds no registrations %s, and no other earlier refresh token "
                             "of this subscription does: nothing to take over (done by an earlier run?). Remove "
                             "previous_principal." % (self.principal, where))


def orphans(entries, endpoint, principal, describe):
    """The registrations a keepalive for ``endpoint`` as ``principal`` does not refresh, described by ``describe``,
    each with ``replaced_refresh_token``: whether ``previous_principal`` may name its principal."""
    found = []
    for entry in entries:
        if entry.endpoint == endpoint and entry.principal == principal:
            continue
        item = describe(entry)
        item["replaced_refresh_token"] = entry.endpoint == endpoint and replaced_by(entry.principal, principal)
        found.append(item)
    return found
