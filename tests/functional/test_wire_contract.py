# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our protos describe the operator's wire contract, proved against the operator's published descriptor set."""

import os
import subprocess
import sys

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import wire
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import ROUTE_TYPES, Registration

import proto_contract
import wire_samples

OUR_FILES = ("wgtwo/annotations/annotations.proto", "wgtwo/common/v1/phonenumber.proto",
             "wgtwo/sipbreakout/v1/sipbreakout.proto")
REACHABLE = (
    "google.protobuf.Duration",
    "wgtwo.common.v1.E164",
    "wgtwo.scope",
    "wgtwo.sipbreakout.v1.DeleteRegistrationRequest",
    "wgtwo.sipbreakout.v1.DeleteRegistrationResponse",
    "wgtwo.sipbreakout.v1.Registration",
    "wgtwo.sipbreakout.v1.RouteType",
    "wgtwo.sipbreakout.v1.SipBreakoutService",
    "wgtwo.sipbreakout.v1.StatusCode",
    "wgtwo.sipbreakout.v1.UpsertRegistrationRequest",
    "wgtwo.sipbreakout.v1.UpsertRegistrationResponse",
)
SCOPE = (50013, 2, "call.routing:write")


@pytest.fixture(scope="module")
def theirs():
    return proto_contract.contract(proto_contract.parse_set(proto_contract.read_reference_image()))


@pytest.fixture(scope="module")
def operator_pool():
    return proto_contract.operator_pool()


def our_contract(mutate=None):
    files = proto_contract.our_files()
    if mutate is not None:
        mutate(dict((f.name, f) for f in files))
    return proto_contract.contract(files)


def test_generated_set_holds_exactly_our_files():
    from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.generated import sipbreakout_v1

    names = [f.name for f in proto_contract.parse_set(sipbreakout_v1.descriptor_set_bytes())]
    assert names == list(OUR_FILES)
    assert tuple(names) == sipbreakout_v1.FILE_NAMES


def test_same_wire_contract_as_operator(theirs):
    differences = proto_contract.diff(our_contract(), theirs)
    assert not differences, "our protos differ from the operator's:\n" + "\n".join(differences)


def test_comparison_covers_everything_reachable(theirs):
    # Guards against a vacuous comparison: the walk must reach every type, the service and the scope option.
    assert tuple(sorted(theirs)) == REACHABLE
    assert sorted(our_contract()) == sorted(REACHABLE)
    methods = theirs["wgtwo.sipbreakout.v1.SipBreakoutService"]["methods"]
    assert sorted(methods) == ["DeleteRegistration", "UpsertRegistration"]
    for method in methods.values():
        assert method["options"] == [SCOPE]
    assert theirs["wgtwo.scope"]["extendee"] == ".google.protobuf.MethodOptions"
    assert theirs["wgtwo.scope"]["number"] == 50013


def _field(files, file_name, message, field):
    for msg in files[file_name].message_type:
        if msg.name == message:
            for item in msg.field:
                if item.name == field:
                    return item
    raise KeyError(field)


def _enum_value(files, enum, name):
    for item in files["wgtwo/sipbreakout/v1/sipbreakout.proto"].enum_type:
        if item.name == enum:
            for value in item.value:
                if value.name == name:
                    return value
    raise KeyError(name)


def _method(files, name):
    for method in files["wgtwo/sipbreakout/v1/sipbreakout.proto"].service[0].method:
        if method.name == name:
            return method
    raise KeyError(name)


SIP = "wgtwo/sipbreakout/v1/sipbreakout.proto"
MUTATIONS = {
    "field number": lambda f: setattr(_field(f, SIP, "Registration", "sip_uri"), "number", 6),
    "field name": lambda f: setattr(_field(f, SIP, "Registration", "route_type"), "name", "routetype"),
    "field type": lambda f: setattr(_field(f, SIP, "UpsertRegistrationResponse", "error_message"), "type", 12),
    "field label": lambda f: setattr(_field(f, SIP, "Registration", "sip_uri"), "label", 3),
    "type name": lambda f: setattr(_field(f, SIP, "UpsertRegistrationResponse", "time_to_live"), "type_name",
                                   ".google.protobuf.Timestamp"),
    "enum number": lambda f: setattr(_enum_value(f, "RouteType", "ROUTE_TYPE_LOOP_MT"), "number", 7),
    "enum name": lambda f: setattr(_enum_value(f, "StatusCode", "STATUS_CODE_OK"), "name", "OK"),
    "method output": lambda f: setattr(_method(f, "DeleteRegistration"), "output_type",
                                       ".wgtwo.sipbreakout.v1.UpsertRegistrationResponse"),
    "method name": lambda f: setattr(_method(f, "UpsertRegistration"), "name", "PutRegistration"),
    "scope value": lambda f: _method(f, "UpsertRegistration").options.ParseFromString(
        b"\xea\xb5\x18\x12call.routing:read_"),
    "scope missing": lambda f: _method(f, "DeleteRegistration").ClearField("options"),
    "package": lambda f: setattr(f["wgtwo/common/v1/phonenumber.proto"], "package", "wgtwo.common.v0"),
    "file name": lambda f: setattr(f["wgtwo/common/v1/phonenumber.proto"], "name", "wgtwo/common/v1/e164.proto"),
    "extension number": lambda f: setattr(f["wgtwo/annotations/annotations.proto"].extension[0], "number", 50014),
    "extra field": lambda f: [m for m in f[SIP].message_type if m.name == "Registration"][0].field.add(
        name="extra", number=9, label=1, type=9),
    "syntax": lambda f: setattr(f[SIP], "syntax", "proto2"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_comparison_detects_a_mutated_descriptor(theirs, mutation):
    differences = proto_contract.diff(our_contract(MUTATIONS[mutation]), theirs)
    assert differences, "a descriptor with a changed %s passed the comparison" % mutation


def test_constants_name_the_operators_service_and_methods(operator_pool):
    service = operator_pool.FindServiceByName(wire.SERVICE)
    for path in (wire.UPSERT_METHOD, wire.DELETE_METHOD):
        service_name, _sep, method = path.lstrip("/").partition("/")
        assert path.startswith("/")
        assert service_name == service.full_name
        assert method in service.methods_by_name
    assert wire.UPSERT_METHOD.endswith("/UpsertRegistration")
    assert wire.DELETE_METHOD.endswith("/DeleteRegistration")
    assert wire.messages().method_descriptor(wire.UPSERT_METHOD).output_type.full_name == (
        service.methods_by_name["UpsertRegistration"].output_type.full_name)


def test_enum_constants_match_operator(operator_pool):
    msgs = wire.messages()
    expected = {}
    for enum in ("StatusCode", "RouteType"):
        for value in operator_pool.FindEnumTypeByName("wgtwo.sipbreakout.v1." + enum).values:
            expected[value.name] = value.number
    assert len(expected) == 10
    assert dict((name, getattr(msgs, name)) for name in expected) == expected
    # registration.py's table must agree with the operator's enum too.
    assert dict(("ROUTE_TYPE_" + name.upper(), number) for name, number in ROUTE_TYPES.items()) == dict(
        (name, number) for name, number in expected.items() if name.startswith("ROUTE_TYPE_") and number)


def test_messages_are_cached_and_complete():
    msgs = wire.messages()
    assert wire.messages() is msgs
    for attribute, full_name in wire.MESSAGE_NAMES:
        assert getattr(msgs, attribute).DESCRIPTOR.full_name == full_name
    # A private pool: the default pool must not have learned our types.
    from google.protobuf import descriptor_pool
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("wgtwo.sipbreakout.v1.Registration")


def test_every_message_reads_back_with_operator_classes(operator_pool):
    for name, message in wire_samples.samples(wire, Registration).items():
        theirs = proto_contract.message_class(operator_pool.FindMessageTypeByName(message.DESCRIPTOR.full_name))
        data = message.SerializeToString(deterministic=True)
        parsed = theirs.FromString(data)
        parsed_copy = theirs()
        parsed_copy.CopyFrom(parsed)
        parsed_copy.DiscardUnknownFields()
        assert parsed_copy.SerializeToString(deterministic=True) == data, "%s: fields unknown to the operator" % name
        assert type(message).FromString(parsed.SerializeToString(deterministic=True)) == message, name


def test_registration_round_trip():
    reg = Registration.create(phone_number="+4799990000", sip_uri="sips:pbx.example.com", route_type="ingress",
                              mobile_terminating_prefix="11")
    message = wire.registration_to_message(reg)
    assert message.route_type == wire.messages().ROUTE_TYPE_INGRESS
    assert not message.mobile_originating_prefix
    assert wire.registration_fields(message) == reg.as_dict()
    assert wire.registration_fields(wire.messages().Registration(route_type=99))["route_type"] == 99


def test_wire_imports_without_protobuf():
    # ansible-test's import sanity loads module_utils without third-party packages; the failure must come later,
    # with a readable message, when messages are actually needed.
    code = (
        "import sys\n"
        "sys.modules['google'] = None\n"
        "sys.modules['google.protobuf'] = None\n"
        "from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import wire\n"
        "assert wire.HAS_PROTOBUF is False\n"
        "assert 'ImportError' in wire.PROTOBUF_IMPORT_ERROR or 'ModuleNotFoundError' in wire.PROTOBUF_IMPORT_ERROR\n"
        "assert wire.UPSERT_METHOD.endswith('/UpsertRegistration')\n"
        "try:\n"
        "    wire.messages()\n"
        "except ImportError as exc:\n"
        "    assert 'protobuf package is required' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('messages() worked without protobuf')\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=proto_contract.collection_pythonpath())
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
