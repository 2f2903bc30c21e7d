# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How much one purge may delete, so that an empty or truncated list cannot wipe out a host's numbers.

The rule, for a purge that would delete ``deleting`` of the ``holding`` registrations the ledger holds for this
endpoint and these credentials:

* allowed when ``deleting`` is at most ``max_purge`` percent of ``holding`` (the share: what protects a large
  ledger), or
* allowed when ``deleting`` is at most ``purge_allowance`` *and* leaves at least one of them (the count: what lets
  a small host lose one number), and
* refused otherwise, before any call.

The allowance never lets a purge delete every registration the ledger holds: a list that names none of them (an
inventory that did not load, another host's list) is the one mistake a small host cannot afford, and 1 of 1 is
exactly what an empty list does there. Only ``max_purge=100`` (or ``state=absent`` per number) deletes them all.
"""

from .errors import ValidationError

DEFAULT_MAX_PURGE = 20.0
# One: every host, however small, can drop one number per run with the defaults (1 of 3 is 33 %, over max_purge).
DEFAULT_PURGE_ALLOWANCE = 1


def check_limits(max_purge, purge_allowance):
    """Refuse limits that cannot mean anything, before the ledger is read."""
    if not 0.0 <= max_purge <= 100.0:
        raise ValidationError("max_purge", "must be from 0 to 100 (percent of the ledger's registrations), got %g"
                              % max_purge)
    if purge_allowance < 0:
        raise ValidationError("purge_allowance", "must be 0 or more (registrations), got %d" % purge_allowance)


def allowed(deleting, holding, max_purge=DEFAULT_MAX_PURGE, purge_allowance=DEFAULT_PURGE_ALLOWANCE):
    """Whether a purge may delete ``deleting`` of the ``holding`` registrations."""
    if deleting == 0 or deleting * 100.0 <= max_purge * holding:
        return True
    return deleting <= purge_allowance and deleting < holding


def refuse(deleting, holding, where, max_purge=DEFAULT_MAX_PURGE, purge_allowance=DEFAULT_PURGE_ALLOWANCE):
    """Raise the refusal of a purge that ``allowed`` does not let through; ``where`` names ledger, credentials and
    endpoint."""
    if deleting >= holding:
        beyond = "all of them, which purge_allowance never allows"
        how = "If the list is really meant to name none of them, set max_purge=100"
    else:
        beyond = "more than purge_allowance=%d" % purge_allowance
        how = "If the list is really complete, raise max_purge or purge_allowance"
    raise ValidationError("max_purge", "purge would delete %d of the %d registrations %s (%.0f%%): more than "
                                       "max_purge=%g%% and %s. %s, or list the numbers to remove with "
                                       "state=absent, which neither limit applies to." % (
                                           deleting, holding, where, deleting * 100.0 / holding, max_purge, beyond,
                                           how))
