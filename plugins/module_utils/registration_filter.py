# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which ledger entries a report lists: ``RegistrationFilter``, read by ``Ledger.select()`` and
``Ledger.count_selected()``.

A value object, with no SQL: every ledger store turns its fields into its own query, and a unit test holds the
stores to the meaning written here. A field that is None does not filter; the fields that are set must all match.
Another field (such as a ledger scope) is added here and to the stores' translation, nowhere else.
"""

import re

from .errors import ValidationError
from .registration import normalize_phone_number, normalize_sip_uri

_PREFIX = re.compile(r"^\+[0-9]{1,15}$")
# The names of the fields, in the order they are shown.
FIELDS = ("states", "phone_number", "phone_number_prefix", "sip_uri", "owner", "not_owner", "failing")


class RegistrationFilter:
    """What an entry must be to be selected.

    ``states``: a tuple of states of ``health.classify`` (at the time and with the thresholds the caller gives the
    ledger); ``phone_number``: its number is exactly this; ``phone_number_prefix``: its number starts with this
    (an entry without a number never matches either); ``sip_uri``: its URI is exactly this; ``owner``: its
    ``(endpoint, principal)`` is this pair; ``not_owner``: its ``(endpoint, principal)`` is not this pair;
    ``failing``: True for the entries whose last attempt failed (``last_error`` set and not empty), lapsed or not,
    False for the others.
    """

    __slots__ = FIELDS

    def __init__(self, states=None, phone_number=None, phone_number_prefix=None, sip_uri=None, owner=None,
                 not_owner=None, failing=None):
        self.states = tuple(states) if states else None
        self.phone_number = phone_number
        self.phone_number_prefix = phone_number_prefix
        self.sip_uri = sip_uri
        self.owner = tuple(owner) if owner else None
        self.not_owner = tuple(not_owner) if not_owner else None
        self.failing = failing

    @classmethod
    def from_options(cls, options, option="filter"):
        """A filter from the ``filter`` option of ``registration_info`` (``state``, ``phone_number``,
        ``phone_number_prefix``, ``sip_uri``), normalised as the registration module normalises them; raises
        ValidationError naming the sub-option."""
        options = options or {}
        number = options.get("phone_number")
        prefix = options.get("phone_number_prefix")
        if number and prefix:
            raise ValidationError("%s.phone_number" % option, "give either phone_number or phone_number_prefix, "
                                                              "not both")
        if number:
            number = normalize_phone_number(number, "%s.phone_number" % option)
        if prefix:
            prefix = "".join(str(prefix).split()).replace("-", "")
            if not _PREFIX.match(prefix):
                raise ValidationError("%s.phone_number_prefix" % option,
                                      "'%s' is not the start of an E.164 number: '+' and 1 to 15 digits, for "
                                      "example '+4799'" % options.get("phone_number_prefix"))
        uri = options.get("sip_uri")
        if uri:
            uri = normalize_sip_uri(uri, "%s.sip_uri" % option)
        return cls(states=options.get("state"), phone_number=number or None, phone_number_prefix=prefix or None,
                   sip_uri=uri or None)

    def as_dict(self):
        """The fields that filter, as a report shows them."""
        return dict((name, list(getattr(self, name)) if isinstance(getattr(self, name), tuple)
                     else getattr(self, name)) for name in FIELDS if getattr(self, name) is not None)

    def __repr__(self):
        return "RegistrationFilter(%s)" % ", ".join(
            "%s=%r" % (name, getattr(self, name)) for name in FIELDS if getattr(self, name) is not None)
