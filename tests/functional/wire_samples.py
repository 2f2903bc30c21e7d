# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sample messages, built the same way under any protobuf runtime (Debian's 3.21 and the venv's 7.x).

Plain Python with no third-party import of its own: it only walks the descriptors of the classes it is given.
Values are derived from field numbers and names, so a message with every field set and non-default exercises
every tag on the wire.
"""

# FieldDescriptor type numbers (descriptor.proto), stable since proto2.
_STRING, _BYTES, _MESSAGE, _ENUM = 9, 12, 11, 14
_INTS = {3: 1 << 40, 4: 1 << 41, 5: -123456, 13: 4000000000, 17: -654321, 18: -(1 << 42)}


def _is_repeated(field):
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


def fill(message):
    """Set every field of message (recursively) to a non-default value; returns message."""
    for field in message.DESCRIPTOR.fields:
        if _is_repeated(field):
            raise ValueError("%s is repeated; teach wire_samples to fill it" % field.full_name)
        if field.type == _MESSAGE:
            fill(getattr(message, field.name))
            if not getattr(message, field.name).ListFields():
                getattr(message, field.name).SetInParent()
        elif field.type == _ENUM:
            setattr(message, field.name, field.enum_type.values[-1].number)
        elif field.type == _STRING:
            setattr(message, field.name, u"%s-%d-\u00e6" % (field.name, field.number))
        elif field.type == _BYTES:
            setattr(message, field.name, b"\x00\xff" * field.number)
        elif field.type in _INTS:
            setattr(message, field.name, _INTS[field.type] + field.number)
        else:
            raise ValueError("%s has type %d; teach wire_samples to fill it" % (field.full_name, field.type))
    return message


def samples(wire, registration_class):
    """name -> message: every class empty and full, plus what the collection really sends.

    ``wire`` is the collection's wire module and ``registration_class`` its registration.Registration.
    """
    msgs = wire.messages()
    result = {}
    for name, _full_name in wire.MESSAGE_NAMES:
        cls = getattr(msgs, name)
        result[name + ".empty"] = cls()
        result[name + ".full"] = fill(cls())
    for route_type in ("loop", "fork", "fallback", "loop_mo", "loop_mt", "ingress"):
        reg = registration_class.create(phone_number="+4799990000", sip_uri="sips:pbx.example.com:5061",
                                        route_type=route_type, mobile_originating_prefix="00")
        result["upsert." + route_type] = msgs.UpsertRegistrationRequest(registration=wire.registration_to_message(reg))
    user = registration_class.create(sip_uri="sips:tas.example.net", route_type="fork",
                                     mobile_terminating_prefix="11")
    result["delete.user_token"] = msgs.DeleteRegistrationRequest(registration=wire.registration_to_message(user))
    ok = msgs.UpsertRegistrationResponse(status_code=msgs.STATUS_CODE_OK)
    ok.time_to_live.seconds = 3600
    result["response.ok"] = ok
    result["response.not_acceptable"] = msgs.UpsertRegistrationResponse(
        status_code=msgs.STATUS_CODE_NOT_ACCEPTABLE, error_message="Secure SIP domain name required")
    return result
