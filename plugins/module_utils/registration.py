# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A virtual SIP registration as the user declares it, validated and normalised before any call is made."""

import functools
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

# E.164: '+', a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9][0-9]{2,14}$")
_NUMBER_SEPARATORS = re.compile(r"[\s\-]")
_PREFIX = re.compile(r"^[0-9]{1,10}$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_IPV4 = re.compile(r"^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$")
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]{2,45}\]$")


def normalize_phone_number(value, option="phone_number"):
    """Return ``value`` as ``+<digits>``, dropping spaces and dashes, or raise ValidationError."""
    if not isinstance(value, str):
        raise ValidationError(option, "expected a string such as '+4799990000', got %s" % type(value).__name__)
    number = _NUMBER_SEPARATORS.sub("", value)
    if _E164.match(number):
        return number
    if re.match(r"^[0-9]+$", number):
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
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(option, "is required, for example 'sips:pbx.example.com:5061'")
    uri = value.strip()
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
    if _IPV4.match(host) or _IPV6.match(host):
        return True
    if len(host) > 253 or host.replace(".", "").isdigit():
        return False
    return all(_DNS_LABEL.match(label) for label in host.rstrip(".").split("."))


def normalize_prefix(value, option):
    """Prefixes are digits only; empty or None means no prefix."""
    if value is None or value == "":
        return None
    text = str(value)
    if not _PREFIX.match(text):
        raise ValidationError(option, "'%s' is not a prefix: digits only, 1 to 10 of them, for example '11'" % text)
    return text


def normalize_state(value, option="state"):
    """``present`` (also for None or empty) or ``absent``."""
    if value in (None, ""):
        return "present"
    if value not in STATES:
        raise ValidationError(option, "'%s' is not a state; one of %s" % (value, ", ".join(STATES)))
    return value


def normalize_route_type(value, state="present", option="route_type"):
    """A route type of ROUTE_TYPES; None (or empty) is allowed only where it is not sent: a delete."""
    if value in (None, ""):
        if state == "present":
            raise ValidationError(option, "is required with state=present; one of %s" % ", ".join(ROUTE_TYPES))
        return None
    if value not in ROUTE_TYPES:
        raise ValidationError(option, "'%s' is not a route type; one of %s" % (value, ", ".join(ROUTE_TYPES)))
    return value


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


class Item(namedtuple("Item", ["registration", "state", "line"])):
    """A registration as declared, with its state and, when it was read from a file, the line it is on."""

    __slots__ = ()

    def __new__(cls, registration, state, line=None):
        return super().__new__(cls, registration, state, line)
