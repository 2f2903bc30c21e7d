# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Protobuf message classes of the SIP breakout API, built at run time.

We do not ship protoc's *_pb2 modules: those check the protobuf runtime version (current ones do not import on
Debian 12's protobuf 3.21) and use absolute imports AnsiballZ would leave behind. Instead the generated module
holds our serialized descriptor set, and the classes are built from it in a private DescriptorPool, so nothing
here clashes with other users of protobuf's default pool in the same process. Works with protobuf 3.21 up to 7.x.
"""

import threading
import traceback

try:
    from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, message_factory
except ImportError:
    HAS_PROTOBUF = False
    PROTOBUF_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PROTOBUF = True
    PROTOBUF_IMPORT_ERROR = None

from .generated import sipbreakout_v1
from .registration import ROUTE_TYPES

PACKAGE = "wgtwo.sipbreakout.v1"
SERVICE = PACKAGE + ".SipBreakoutService"
UPSERT_METHOD = "/%s/UpsertRegistration" % SERVICE
DELETE_METHOD = "/%s/DeleteRegistration" % SERVICE

# Attribute name on messages() -> full protobuf name.
MESSAGE_NAMES = (
    ("Registration", PACKAGE + ".Registration"),
    ("UpsertRegistrationRequest", PACKAGE + ".UpsertRegistrationRequest"),
    ("UpsertRegistrationResponse", PACKAGE + ".UpsertRegistrationResponse"),
    ("DeleteRegistrationRequest", PACKAGE + ".DeleteRegistrationRequest"),
    ("DeleteRegistrationResponse", PACKAGE + ".DeleteRegistrationResponse"),
    ("E164", "wgtwo.common.v1.E164"),
    ("Duration", "google.protobuf.Duration"),
)
# Every value of these enums becomes an int attribute (STATUS_CODE_OK, ROUTE_TYPE_LOOP, ...).
ENUM_NAMES = (PACKAGE + ".StatusCode", PACKAGE + ".RouteType")

_ROUTE_TYPE_NAMES = dict((number, name) for name, number in ROUTE_TYPES.items())

_LOCK = threading.Lock()
_MESSAGES = []


class Messages(object):
    """The message classes and enum numbers; attributes are filled in by :func:`build_messages`."""

    def __init__(self, pool):
        self.pool = pool

    def method_descriptor(self, path):
        """The MethodDescriptor of ``/package.Service/Method``."""
        service, _sep, method = path.lstrip("/").partition("/")
        return self.pool.FindServiceByName(service).methods_by_name[method]


def _require_protobuf():
    if not HAS_PROTOBUF:
        raise ImportError("the Python protobuf package is required (python3-protobuf or pip install protobuf):\n%s"
                          % PROTOBUF_IMPORT_ERROR)


def _message_class(pool, descriptor):
    # protobuf 4.22+ has GetMessageClass and later releases dropped MessageFactory.GetPrototype; Debian 12's
    # 3.21 (reporting 4.21.12) has only GetPrototype.
    get_message_class = getattr(message_factory, "GetMessageClass", None)
    if get_message_class is not None:
        return get_message_class(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def build_pool(descriptor_set=None):
    """A new DescriptorPool holding our files; ``descriptor_set`` (bytes) defaults to the generated one."""
    _require_protobuf()
    if descriptor_set is None:
        descriptor_set = sipbreakout_v1.descriptor_set_bytes()
    pool = descriptor_pool.DescriptorPool()
    # Our imports come from the installed protobuf itself, so they always match the runtime.
    for module in (descriptor_pb2, duration_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    file_set = descriptor_pb2.FileDescriptorSet()
    file_set.ParseFromString(descriptor_set)
    for file_proto in file_set.file:
        pool.AddSerializedFile(file_proto.SerializeToString())
    return pool


def build_messages(pool):
    """Return a :class:`Messages` with classes and enum numbers from ``pool``."""
    result = Messages(pool)
    for attribute, full_name in MESSAGE_NAMES:
        setattr(result, attribute, _message_class(pool, pool.FindMessageTypeByName(full_name)))
    for enum_name in ENUM_NAMES:
        for value in pool.FindEnumTypeByName(enum_name).values:
            setattr(result, value.name, value.number)
    return result


def messages():
    """The process-wide :class:`Messages`, built on first use."""
    if not _MESSAGES:
        with _LOCK:
            if not _MESSAGES:
                _MESSAGES.append(build_messages(build_pool()))
    return _MESSAGES[0]


def registration_to_message(registration):
    """A ``wgtwo.sipbreakout.v1.Registration`` from a registration.Registration; unset options are not sent."""
    msgs = messages()
    message = msgs.Registration(sip_uri=registration.sip_uri)
    if registration.route_type is not None:
        message.route_type = ROUTE_TYPES[registration.route_type]
    if registration.phone_number:
        message.phone_number.e164 = registration.phone_number
    if registration.mobile_originating_prefix:
        message.mobile_originating_prefix = registration.mobile_originating_prefix
    if registration.mobile_terminating_prefix:
        message.mobile_terminating_prefix = registration.mobile_terminating_prefix
    return message


def registration_fields(message):
    """The fields of a Registration message as the registration.Registration field names.

    Unset (proto3 default) fields are None. A route type the collection does not know stays a number, so a server
    can see exactly what it was sent.
    """
    route_type = message.route_type
    return {
        "phone_number": message.phone_number.e164 if message.HasField("phone_number") else None,
        "sip_uri": message.sip_uri or None,
        "route_type": _ROUTE_TYPE_NAMES.get(route_type, route_type or None),
        "mobile_originating_prefix": message.mobile_originating_prefix or None,
        "mobile_terminating_prefix": message.mobile_terminating_prefix or None,
    }
