# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``registrations`` option: a list of items, checked here rather than by Ansible's suboption validation, so
that every problem of every item is named at once, with its index and number, before any call.

The top-level ``sip_uri``, ``route_type``, prefixes and ``state`` are the defaults of the items: an item takes each
one it does not set itself (left out, null or empty). They are checked once, under their own names.
"""

import difflib

from .errors import ValidationError
from .registration import ROUTE_TYPES, Item, Registration, kind, normalize_phone_number, normalize_prefix, \
    normalize_route_type, normalize_sip_uri, normalize_state
from .registrations_file import MAX_PROBLEMS

OPTION = "registrations"
ITEM_OPTIONS = ("phone_number", "sip_uri", "route_type", "mobile_originating_prefix", "mobile_terminating_prefix",
                "state")
# The top-level options an item takes when it does not set its own.
DEFAULTED = ITEM_OPTIONS[1:]
# How each option of an item is checked, in this order: the route type's check needs the state.
_CHECKS = (("phone_number", normalize_phone_number), ("state", normalize_state),
           ("route_type", normalize_route_type), ("sip_uri", normalize_sip_uri),
           ("mobile_originating_prefix", normalize_prefix), ("mobile_terminating_prefix", normalize_prefix))
_UNSET = (None, "")


class _Problems:
    """Every problem found, the first MAX_PROBLEMS of them as text, and the items they were found in."""

    def __init__(self):
        self.shown = []
        self.count = 0
        self.items = set()

    def add(self, error, index=None):
        self.count += 1
        if index is not None:
            self.items.add(index)
        if len(self.shown) < MAX_PROBLEMS:
            self.shown.append(str(error))

    def raise_any(self, what):
        if not self.count:
            return
        more = self.count - len(self.shown)
        raise ValidationError(OPTION, "%s, nothing was sent:\n%s%s" % (
            what, "\n".join(self.shown), "\n... and %d more problem(s)" % more if more else ""))


def _within(error, where):
    """``error`` about an option of the item ``where`` (``registrations[3]``): its name prefixed."""
    prefix = where + "."
    if not error.option.startswith(prefix):
        error.message = prefix + error.message
        error.option = prefix + error.option
    return error


def _defaults(options, problems):
    """The top-level values of DEFAULTED, checked once under their own names (None when unset, the ValidationError
    when refused), and phone_number, which has none."""
    values = dict(phone_number=None)
    checks = dict(sip_uri=normalize_sip_uri, mobile_originating_prefix=normalize_prefix,
                  mobile_terminating_prefix=normalize_prefix, state=normalize_state,
                  route_type=lambda value, option: normalize_route_type(value, "absent", option))
    for name in DEFAULTED:
        value = options.get(name)
        values[name] = None
        if value not in _UNSET:
            try:
                values[name] = checks[name](value, option=name)
            except ValidationError as exc:
                values[name] = exc  # named once here, never again for each item that takes it
                problems.add(exc)
    return values


def _checked(entry, defaults, where, problems, index):
    """The Item of one mapping, or None with each of its problems added. Only what the item sets is checked: the
    top-level values are checked once, by _defaults."""
    found = []
    values = dict(defaults)
    for name in entry:
        if name not in ITEM_OPTIONS:
            near = difflib.get_close_matches(str(name), ITEM_OPTIONS, n=1, cutoff=0.6)
            found.append(ValidationError(where, "unknown option '%s'; an item takes %s%s" % (
                name, ", ".join(ITEM_OPTIONS), "; did you mean '%s'?" % near[0] if near else "")))
    for name, normalize in _CHECKS:
        given = entry.get(name)
        if given in _UNSET:
            continue
        try:
            if name == "route_type":
                state = values["state"] if isinstance(values["state"], str) else "present"
                values[name] = normalize(given, state, option="%s.%s" % (where, name))
            else:
                values[name] = normalize(given, option="%s.%s" % (where, name))
        except ValidationError as exc:
            found.append(exc)
            values[name] = exc
    state = values["state"] if isinstance(values["state"], str) else "present"
    if values["route_type"] is None and state == "present":
        found.append(ValidationError("%s.route_type" % where, "is required with state=present, in the item or as the "
                                                              "top-level route_type; one of %s" % ", ".join(ROUTE_TYPES)))
    if values["sip_uri"] is None:
        found.append(ValidationError("%s.sip_uri" % where, "is required, in the item or as the top-level sip_uri, "
                                                           "for example 'sips:pbx.example.com:5061'"))
    number = values["phone_number"] if isinstance(values["phone_number"], str) else None
    for error in found:
        error.phone_number = number
        problems.add(error, index)
    if found or any(isinstance(value, ValidationError) for value in values.values()):
        return None  # a refused top-level value is named once, not for each item that takes it
    return Item(Registration(number, values["sip_uri"], values["route_type"], values["mobile_originating_prefix"],
                             values["mobile_terminating_prefix"]), state, index=index)


def declared_items(entries, options, key=None, demand=None):
    """The items of ``entries`` (the list as the task gave it, not converted by Ansible), in order, with the
    defaults of ``options`` (the module's options by name) applied. ``key(registration)`` says which registrations
    are one at the operator (``Registration.key`` by default); ``demand(registration)`` raises ValidationError for
    what else an item must meet (what the credentials demand).

    Raises one ValidationError naming every problem (the first MAX_PROBLEMS, and how many more), so that nothing
    is sent unless every item is valid and no registration appears twice."""
    problems = _Problems()
    defaults = _defaults(options, problems)
    items = []
    seen = {}
    for index, entry in enumerate(entries):
        where = "%s[%d]" % (OPTION, index)
        if not isinstance(entry, dict):
            problems.add(ValidationError(where, "is %s, not a mapping of the item's options (%s), such as "
                                                "{phone_number: '+4799990000'}" % (kind(entry), ", ".join(ITEM_OPTIONS))),
                         index)
            continue
        item = _checked(entry, defaults, where, problems, index)
        if item is None:
            continue
        registration = item.registration
        if demand is not None:
            try:
                demand(registration)
            except ValidationError as exc:
                exc.phone_number = registration.phone_number
                problems.add(_within(exc, where), index)
                continue
        first = seen.setdefault(registration.key if key is None else key(registration), index)
        if first != index:
            problems.add(ValidationError(where, "%s appears more than once: it is %s[%d] too; each registration may "
                                                "be declared once" % (registration.label, OPTION, first)), index)
            continue
        items.append(item)
    problems.raise_any("%d invalid item(s)" % len(problems.items) if problems.items else "invalid top-level values")
    return items
