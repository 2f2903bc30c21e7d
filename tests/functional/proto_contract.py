# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helpers: where things are, the operator's descriptor set, and a comparable "wire contract" of a set.

The contract is what a peer on the wire depends on: full names, the file each type is defined in, field numbers,
names, types, labels, type names, JSON names, enum values, methods and their options (decoded from the raw
bytes, so custom options such as ``wgtwo.scope`` count whether or not the runtime knows the extension).
"""

import os
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, message_factory

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Where the operator's published descriptor set is looked for, in this order. It is reference data that the
# project never ships: a user's lone clone has none, so the tests that need it skip, unless REQUIRE_ENV is set
# (.ci/run sets it), which makes them fail instead.
IMAGE_ENV = "SIPBREAKOUT_WGTWOAPIS_IMAGE"
REQUIRE_ENV = "SIPBREAKOUT_REQUIRE_WGTWOAPIS"
SHARED_IMAGE = os.path.normpath(os.path.join(REPO, "..", "shared", "reference", "wgtwoapis-image.bin"))
# `make wgtwoapis-image` downloads it here (an ignored folder).
DOWNLOADED_IMAGE = os.path.join(REPO, ".cache", "wgtwoapis", "image.bin")
HOW_TO_GET = ("set %s to its path, put it at %s, or run `make wgtwoapis-image` (downloads the operator's image.bin "
              "into .cache/wgtwoapis/)" % (IMAGE_ENV, SHARED_IMAGE))
# What the tests of this process found: the path used, and how many were skipped for want of the set (counted
# by conftest.py from the test reports: a module's fixture skips once for all of its tests).
reference_use = {"path": None, "skipped": 0}
SKIP_REASON = "the operator's descriptor set (wgtwoapis-image.bin) is not here: "
PACKAGE = "wgtwo.sipbreakout.v1"
DEBIAN_PYTHON = "/usr/bin/python3"


def collection_pythonpath():
    """The folder above ansible_collections/ that makes this repository importable as the collection."""
    for entry in sys.path:
        candidate = os.path.join(entry or os.getcwd(), "ansible_collections", "wgtwo", "sipbreakout")
        if os.path.isdir(candidate) and os.path.realpath(candidate) == REPO:
            return os.path.abspath(entry or os.getcwd())
    raise RuntimeError("run the tests with PYTHONPATH set to the folder above ansible_collections/ "
                       "(for example .build/dev) so that ansible_collections.wgtwo.sipbreakout is this repository")


def find_reference_image(environ=None, shared=SHARED_IMAGE, downloaded=DOWNLOADED_IMAGE):
    """The path of the operator's descriptor set, or None when there is none to be had.

    A path named in IMAGE_ENV must exist: a mistyped path is an error, not a reason to skip.
    """
    environ = os.environ if environ is None else environ
    named = environ.get(IMAGE_ENV)
    if named:
        if not os.path.isfile(named):
            raise RuntimeError("%s names %s, which is not a file" % (IMAGE_ENV, named))
        return named
    for candidate in (shared, downloaded):
        if os.path.isfile(candidate):
            return candidate
    return None


def reference_image_path(environ=None, **places):
    """The descriptor set's path; without one, skip the calling test (or fail it when REQUIRE_ENV is set)."""
    import pytest

    environ = os.environ if environ is None else environ
    path = find_reference_image(environ, **places)
    if path is not None:
        reference_use["path"] = path
        return path
    why = SKIP_REASON + HOW_TO_GET
    if environ.get(REQUIRE_ENV):
        pytest.fail("%s is set, so the wire contract must be checked, but %s" % (REQUIRE_ENV, why), pytrace=False)
    pytest.skip(why)


def read_reference_image():
    with open(reference_image_path(), "rb") as handle:
        return handle.read()


def parse_set(data):
    file_set = descriptor_pb2.FileDescriptorSet()
    file_set.ParseFromString(data)
    return list(file_set.file)


def dependency_closure(files, root_name):
    """The files root_name needs, root last, in an order a DescriptorPool can add them."""
    by_name = dict((f.name, f) for f in files)
    ordered, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        if name not in by_name:
            raise KeyError("%s imports %s, which is not in the descriptor set" % (root_name, name))
        for dep in by_name[name].dependency:
            visit(dep)
        ordered.append(by_name[name])

    visit(root_name)
    return ordered


def message_class(descriptor):
    get_message_class = getattr(message_factory, "GetMessageClass", None)
    if get_message_class is not None:
        return get_message_class(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


def operator_pool():
    """A private pool with the operator's sipbreakout.proto and everything it imports, all from the image."""
    pool = descriptor_pool.DescriptorPool()
    for file_proto in dependency_closure(parse_set(read_reference_image()), "wgtwo/sipbreakout/v1/sipbreakout.proto"):
        pool.AddSerializedFile(file_proto.SerializeToString())
    return pool


def our_files():
    """Our generated files plus duration.proto as wire.py takes it (from the installed protobuf)."""
    from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.generated import sipbreakout_v1

    duration = descriptor_pb2.FileDescriptorProto()
    duration.ParseFromString(duration_pb2.DESCRIPTOR.serialized_pb)
    return [duration] + parse_set(sipbreakout_v1.descriptor_set_bytes())


# --- raw option decoding ------------------------------------------------------------------------------------------

def _varint(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode_fields(data):
    """Wire-format fields of a message as sorted (number, wire_type, value) tuples; strings decoded when UTF-8."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
        elif wire_type == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire_type == 5:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        else:
            raise ValueError("unsupported wire type %d in options" % wire_type)
        fields.append((number, wire_type, value))
    return sorted(fields, key=repr)


def _options(proto):
    return decode_fields(proto.options.SerializeToString()) if proto.HasField("options") else []


# --- the contract -------------------------------------------------------------------------------------------------

def default_json_name(name):
    """protoc's default JSON name: drop underscores, capitalise the letter after each."""
    out, upper = [], False
    for char in name:
        if char == "_":
            upper = True
        elif upper:
            out.append(char.upper())
            upper = False
        else:
            out.append(char)
    return "".join(out)


def index(files):
    """Full name -> (kind, proto, file proto) for every message, enum, service and extension in files."""
    elements = {}

    def add_scope(prefix, container, file_proto, is_file):
        for message in container.message_type if is_file else container.nested_type:
            name = prefix + message.name
            elements[name] = ("message", message, file_proto)
            add_scope(name + ".", message, file_proto, False)
        for enum in container.enum_type:
            elements[prefix + enum.name] = ("enum", enum, file_proto)
        for extension in container.extension:
            elements[prefix + extension.name] = ("extension", extension, file_proto)
        if is_file:
            for service in container.service:
                elements[prefix + service.name] = ("service", service, file_proto)

    for file_proto in files:
        add_scope(file_proto.package + "." if file_proto.package else "", file_proto, file_proto, True)
    return elements


def contract(files, package=PACKAGE):
    """Everything reachable from package's top-level types, as plain comparable data keyed by full name."""
    elements = index(files)
    extensions_by_key = dict(((proto.extendee, proto.number), name)
                             for name, (kind, proto, _f) in elements.items() if kind == "extension")
    queue = sorted(name for name in elements if name.rpartition(".")[0] == package)
    if not queue:
        raise ValueError("no types in package %s" % package)
    result = {}
    while queue:
        name = queue.pop(0)
        if name in result:
            continue
        if name not in elements:
            result[name] = "MISSING: referenced but not defined"
            continue
        kind, proto, file_proto = elements[name]
        entry = {"kind": kind, "file": file_proto.name, "package": file_proto.package,
                 "syntax": file_proto.syntax or "proto2"}
        refs = []
        if kind == "message":
            oneofs = [o.name for o in proto.oneof_decl]
            entry["fields"] = [
                {"name": f.name, "number": f.number, "label": f.label, "type": f.type, "type_name": f.type_name,
                 "json_name": f.json_name or default_json_name(f.name), "default": f.default_value,
                 "oneof": oneofs[f.oneof_index] if f.HasField("oneof_index") else None,
                 "proto3_optional": f.proto3_optional, "options": _options(f)}
                for f in sorted(proto.field, key=lambda f: f.number)]
            entry["nested"] = sorted(n.name for n in proto.nested_type) + sorted(e.name for e in proto.enum_type)
            entry["options"] = _options(proto)
            refs = [f.type_name for f in proto.field if f.type_name]
        elif kind == "enum":
            entry["values"] = sorted((v.number, v.name) for v in proto.value)
            entry["options"] = _options(proto)
        elif kind == "service":
            entry["methods"] = dict(
                (m.name, {"input": m.input_type, "output": m.output_type,
                          "client_streaming": m.client_streaming, "server_streaming": m.server_streaming,
                          "options": _options(m)})
                for m in proto.method)
            refs = [m.input_type for m in proto.method] + [m.output_type for m in proto.method]
            # A custom option used by a method is part of what we must define identically.
            for method in proto.method:
                for number, _wire, _value in _options(method):
                    ext = extensions_by_key.get((".google.protobuf.MethodOptions", number))
                    refs.append("." + ext if ext else ".<undefined MethodOptions extension %d>" % number)
        elif kind == "extension":
            entry.update({"number": proto.number, "extendee": proto.extendee, "label": proto.label,
                          "type": proto.type, "type_name": proto.type_name})
            if proto.type_name:
                refs.append(proto.type_name)
        result[name] = entry
        queue.extend(ref.lstrip(".") for ref in refs)
    return result


def diff(ours, theirs, path=""):
    """Human-readable differences between two contracts (empty when they describe the same wire contract)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = []
        for key in sorted(set(ours) | set(theirs), key=str):
            where = "%s/%s" % (path, key) if path else str(key)
            if key not in ours:
                out.append("%s: only in the operator's set: %r" % (where, theirs[key]))
            elif key not in theirs:
                out.append("%s: only in ours: %r" % (where, ours[key]))
            else:
                out.extend(diff(ours[key], theirs[key], where))
        return out
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        out = []
        for i, (mine, other) in enumerate(zip(ours, theirs)):
            out.extend(diff(mine, other, "%s[%d]" % (path, i)))
        return out
    if ours != theirs:
        return ["%s: ours %r != operator's %r" % (path, ours, theirs)]
    return []
