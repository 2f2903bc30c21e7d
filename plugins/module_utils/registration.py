# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A virtual SIP registration as the user declares it, validated and normalised before any call is made."""

import difflib
import functools
import json
import re
from collections import namedtuple

from .errors import ValidationError

# The API's RouteType numbers (wgtwo.sipbreakout.v1.RouteType); 0 (UNSPECIFIED) is never sent.
ROUTE_TYPES = {
    "loop": 1,
    "fork": 2,
    "fallback": 3,
    "loop_mo": 4,
    "loop_mt": 5,
    "ingress": 6,
}
STATES = ("present", "absent")

# Every pattern is matched against the whole value (fullmatch): '$' would also match before a final line break, and
# what is sent to the operator must be exactly what was checked.
# E.164: '+', a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"\+[1-9][0-9]{2,14}")
_DIGITS = re.compile(r"[0-9]+")
# Spaces (also the no-break space of a copied number) and dashes; never a line break or tab.
_NUMBER_SEPARATORS = re.compile("[ \u00a0-]")
_PREFIX = re.compile(r"[0-9]{1,10}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_IPV4 = re.compile(r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
# C0 and C1 controls, DEL and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def kind(value):
    """What a value that should have been text is, in a user's words (never a Python class name: the controller's
    classes are called things like _AnsibleTaggedInt)."""
    if isinstance(value, bool):
        return "a boolean (%s)" % str(value).lower()
    if isinstance(value, (int, float)):
        return "a number (%s)" % value
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "the text %s" % json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    return "a value of type %s" % type(value).__name__


def control_character(value, option):
    """A ValidationError for the first control character (a line break, a tab, NUL...) in the string ``value``, or
    None when it holds none."""
    match = _CONTROL.search(value)
    if match is None:
        return None
    char = match.group()
    name = "U+%04X%s" % (ord(char), ", a line break" if char in _LINE_BREAKS else "")
    return ValidationError(option, "%s holds a control character (%s) at position %d: a value is one line of "
                                   "printable text. Remove it; a YAML block scalar ('|' or '>') ends in a line break "
                                   "unless written '|-' or '>-'" % (json.dumps(value, ensure_ascii=False), name,
                                                                    match.start() + 1))


def _refused(option, value, message):
    """The ValidationError for a string ``value`` that did not match: about its control character when it has one
    (it is what made it fail, and it cannot be seen in the value), else ``message``."""
    return control_character(value, option) or ValidationError(option, message)


def _suggestion(value, choices):
    """'; did you mean 'x'?' for the choice nearest to ``value``, or ''."""
    near = difflib.get_close_matches(value.strip().lower(), list(choices), n=1, cutoff=0.6)
    return "; did you mean '%s'?" % near[0] if near else ""


def normalize_phone_number(value, option="phone_number"):
    """Return ``value`` as ``+<digits>``, dropping spaces and dashes, or raise ValidationError."""
    if isinstance(value, int) and not isinstance(value, bool):
        # An unquoted +4799990000 in YAML is the integer 4799990000: its '+' is gone before any code sees it.
        raise ValidationError(option, "%d is a number, not text: YAML reads an unquoted +%d as the integer %d and "
                                      "drops its '+'; quote it: \"+%d\"" % (value, value, value, value))
    if not isinstance(value, str):
        raise ValidationError(option, "expected a string such as '+4799990000', got %s" % kind(value))
    number = _NUMBER_SEPARATORS.sub("", value)
    if _E164.fullmatch(number):
        return number
    error = control_character(value, option)
    if error is not None:
        raise error
    if _DIGITS.fullmatch(number):
        raise ValidationError(option, "'%s' has no leading '+': give it in E.164 form with its country code, "
                                      "for example '+%s'" % (value, number.lstrip("0")))
    raise ValidationError(option, "'%s' is not an E.164 number: expected '+', a country code and the subscriber "
                                  "number, digits only (spaces and dashes are dropped), at most 15 digits, "
                                  "for example '+4799990000'" % value)


def normalize_sip_uri(value, option="sip_uri"):
    """Return ``value`` in lower case (scheme and host) if it is ``sips:host`` or ``sips:host:port``."""
    if isinstance(value, str):
        return _normalize_sip_uri_text(value, option)
    return _normalize_sip_uri(value, option)


# A registrations file names a few endpoints a million times: each is checked once (a refusal is never cached).
@functools.lru_cache(maxsize=256)
def _normalize_sip_uri_text(value, option):
    return _normalize_sip_uri(value, option)


def _normalize_sip_uri(value, option):
    if value is not None and not isinstance(value, str):
        raise ValidationError(option, "expected a string such as 'sips:pbx.example.com:5061', got %s" % kind(value))
    if not value or not value.strip(" "):
        raise ValidationError(option, "is required, for example 'sips:pbx.example.com:5061'")
    error = control_character(value, option)
    if error is not None:
        raise error
    uri = value.strip(" ")
    scheme, sep, rest = uri.partition(":")
    if not sep:
        raise ValidationError(option, "'%s' has no scheme: use 'sips:HOST' or 'sips:HOST:PORT'" % value)
    if scheme.lower() == "sip":
        raise ValidationError(option, "'%s' is not secure SIP: the operator only accepts 'sips:' URIs (it answers "
                                      "'Secure SIP domain name required'); use 'sips:%s'" % (value, rest))
    if scheme.lower() != "sips":
        raise ValidationError(option, "'%s' has scheme '%s': only 'sips:' URIs are accepted" % (value, scheme))
    host, port = _split_host_port(rest)
    if not host:
        raise ValidationError(option, "'%s' has no host: use 'sips:HOST' or 'sips:HOST:PORT'" % value)
    if "@" in host or ";" in host or "?" in host:
        raise ValidationError(option, "'%s' must name only a host and optional port, without user, parameters or "
                                      "headers" % value)
    if not _valid_host(host):
        raise ValidationError(option, "'%s' does not name a valid host name or IP address" % value)
    # Host names compare without regard to case (RFC 3261 19.1.4): one spelling, so one ledger entry and one
    # duplicate check per registration.
    host = host.lower()
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValidationError(option, "'%s' has port '%s': a port is a number from 1 to 65535" % (value, port))
        return "sips:%s:%d" % (host, int(port))
    return "sips:%s" % host


def sip_uri_host(sip_uri):
    """The host part of a normalised ``sips:`` URI (brackets kept for IPv6)."""
    return _split_host_port(sip_uri.partition(":")[2])[0]


def _split_host_port(rest):
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            return rest, None
        host, tail = rest[:end + 1], rest[end + 1:]
        return host, (tail[1:] if tail.startswith(":") else (tail or None))
    host, sep, port = rest.rpartition(":")
    if not sep:
        return rest, None
    return host, port


def _valid_host(host):
    if _IPV4.fullmatch(host) or _IPV6.fullmatch(host):
        return True
    if len(host) > 253 or host.replace(".", "").isdigit():
        return False
    return all(_DNS_LABEL.fullmatch(label) for label in host.rstrip(".").split("."))


def normalize_prefix(value, option):
    """Prefixes are digits only; empty or None means no prefix."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # What YAML made of it can no longer be told apart: 00 became 0, 011 became 9.
        raise ValidationError(option, "%s is a number, not a string of digits: quote it in YAML (\"00\", not 00, "
                                      "which YAML reads as 0)" % value)
    if not isinstance(value, str):
        raise ValidationError(option, "expected a string of digits such as '11', got %s" % kind(value))
    if not _PREFIX.fullmatch(value):
        raise _refused(option, value, "'%s' is not a prefix: digits only, 1 to 10 of them, for example '11'" % value)
    return value


def _choice(value, choices, option, what):
    """``value`` if it is one of ``choices``; else a ValidationError listing them, with the nearest one."""
    if value in choices:
        return value
    if not isinstance(value, str):
        raise ValidationError(option, "expected one of %s, got %s" % (", ".join(choices), kind(value)))
    raise _refused(option, value, "'%s' is not a %s; one of %s%s"
                   % (value, what, ", ".join(choices), _suggestion(value, choices)))


def normalize_state(value, option="state"):
    """``present`` (also for None or empty) or ``absent``."""
    if value in (None, ""):
        return "present"
    return _choice(value, STATES, option, "state")


def normalize_route_type(value, state="present", option="route_type"):
    """A route type of ROUTE_TYPES; None (or empty) is allowed only where it is not sent: a delete."""
    if value in (None, ""):
        if state == "present":
            raise ValidationError(option, "is required with state=present; one of %s" % ", ".join(ROUTE_TYPES))
        return None
    return _choice(value, ROUTE_TYPES, option, "route type")


_FIELDS = ("phone_number", "sip_uri", "route_type", "mobile_originating_prefix", "mobile_terminating_prefix")


class Registration(namedtuple("Registration", _FIELDS)):
    """One registration as sent to the API. Build it with :meth:`create`, which validates every field."""

    __slots__ = ()

    @classmethod
    def create(cls, sip_uri, route_type=None, phone_number=None,
               mobile_originating_prefix=None, mobile_terminating_prefix=None, require_route_type=True):
        """Validate and normalise. ``route_type`` may be omitted only where it is not sent (delete)."""
        number = normalize_phone_number(phone_number) if phone_number not in (None, "") else None
        try:
            uri = normalize_sip_uri(sip_uri)
            route_type = normalize_route_type(route_type, "present" if require_route_type else "absent")
            mo = normalize_prefix(mobile_originating_prefix, "mobile_originating_prefix")
            mt = normalize_prefix(mobile_terminating_prefix, "mobile_terminating_prefix")
        except ValidationError as exc:
            exc.phone_number = number
            raise
        return cls(number, uri, route_type, mo, mt)

    @property
    def key(self):
        """What identifies the registration at the operator: the number (None with a user token) and the URI."""
        return (self.phone_number, self.sip_uri)

    @property
    def label(self):
        """How messages name it."""
        return "%s -> %s" % (self.phone_number or "(number of the user token)", self.sip_uri)

    def as_dict(self):
        """The registration as returned to users and stored in the ledger."""
        return dict(zip(_FIELDS, self))

    @classmethod
    def from_dict(cls, data):
        return cls(*(data.get(field) for field in _FIELDS))

    @classmethod
    def from_options(cls, options, state="present"):
        """:meth:`create` from a dict with the module's option names (an item of ``registrations``, a line of a
        registrations file); a route type is required only with ``state`` present."""
        return cls.create(
            sip_uri=options.get("sip_uri"), route_type=options.get("route_type"),
            phone_number=options.get("phone_number"),
            mobile_originating_prefix=options.get("mobile_originating_prefix"),
            mobile_terminating_prefix=options.get("mobile_terminating_prefix"),
            require_route_type=state == "present")


class Item(namedtuple("Item", ["registration", "state", "line", "index"])):
    """A registration as declared, with its state and where it was declared: the line of a file it is on, or its
    index in the ``registrations`` list."""

    __slots__ = ()

    def __new__(cls, registration, state, line=None, index=None):
        return super().__new__(cls, registration, state, line, index)
