# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading registrations from a file: both formats, every kind of bad input with its line, duplicates with both
lines, the bound on what a failure lists, a file changed under the reader, and that it streams."""

import errno
import json
import os
import tracemalloc

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import registrations_file
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import Item, Registration
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registrations_file import MAX_PROBLEMS, \
    KeyDigests, RegistrationsFile, detect_format

URI = "sips:pbx.example.com:5061"
HEADER = "phone_number,sip_uri,route_type,mobile_originating_prefix,mobile_terminating_prefix,state\n"


def _key(registration):
    return repr(registration.key)


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def _read(path, file_format=None, check=None):
    """check() then items(), as the module does."""
    with RegistrationsFile(path, file_format) as source:
        checked = source.check(_key, check)
        items = list(source.items(check))
    assert checked.count == len(items)
    return items


def _refusal(path, file_format=None, check=None):
    with pytest.raises(ValidationError) as refused:
        _read(path, file_format, check)
    assert refused.value.option in ("registrations_file", "registrations_file_format")
    return str(refused.value)


def test_csv_with_bom_crlf_blank_lines_quotes_and_empty_cells(tmp_path):
    content = ("\ufeff" + HEADER.replace("\n", "\r\n")
               + "+47 999 90 000,SIPS:PBX.example.com:5061,loop,11,22,\r\n"
               + "\r\n"
               + '"+4799990001",sips:pbx.example.com:5061,"fallback",,,present\r\n'
               + ",,,,,\r\n"
               + "+4799990002,sips:pbx.example.com:5061,,,,absent\r\n")
    items = _read(_write(tmp_path, "numbers.csv", content))
    assert items == [
        Item(Registration("+4799990000", URI, "loop", "11", "22"), "present", 2),
        Item(Registration("+4799990001", URI, "fallback", None, None), "present", 4),
        Item(Registration("+4799990002", URI, None, None, None), "absent", 6),
    ]


def test_csv_columns_in_any_order_and_only_some(tmp_path):
    items = _read(_write(tmp_path, "numbers.csv", "route_type,sip_uri\nloop_mt,sips:pbx.example.com\n"))
    assert items == [Item(Registration(None, "sips:pbx.example.com", "loop_mt", None, None), "present", 2)]


@pytest.mark.parametrize("name", ["numbers.jsonl", "numbers.ndjson", "NUMBERS.JSONL"])
def test_json_lines_with_bom_crlf_nulls_and_blank_lines(tmp_path, name):
    lines = [dict(phone_number="+4799990000", sip_uri=URI, route_type="loop", mobile_originating_prefix="11"),
             dict(phone_number="+4799990001", sip_uri=URI, route_type=None, state="absent",
                  mobile_terminating_prefix="")]
    content = b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(line).encode("utf-8") for line in lines) + b"\r\n\r\n"
    assert _read(_write(tmp_path, name, content)) == [
        Item(Registration("+4799990000", URI, "loop", "11", None), "present", 1),
        Item(Registration("+4799990001", URI, None, None, None), "absent", 2),
    ]


def test_the_format_comes_from_the_option_or_the_extension(tmp_path):
    assert detect_format("/x/numbers.csv") == "csv"
    assert detect_format("/x/numbers.ndjson", "auto") == "jsonl"
    assert detect_format("/x/numbers.txt", "csv") == "csv"
    path = _write(tmp_path, "numbers.txt", '{"sip_uri": "sips:pbx.example.com", "route_type": "loop"}\n')
    assert len(_read(path, "jsonl")) == 1
    with pytest.raises(ValidationError) as refused:
        RegistrationsFile(path)
    assert "cannot tell the format of %s from its extension '.txt'" % path in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        RegistrationsFile(path, "xml")
    assert "registrations_file_format: 'xml' is not one of auto, csv, jsonl" == str(refused.value)


def test_a_missing_file_a_directory_and_an_unreadable_file(tmp_path, monkeypatch):
    missing = str(tmp_path / "missing.csv")
    assert _refusal(missing) == "registrations_file: %s does not exist on this host" % missing
    directory = tmp_path / "dir.csv"
    directory.mkdir()
    assert _refusal(str(directory)) == "registrations_file: %s is not a regular file" % directory
    path = _write(tmp_path, "secret.csv", HEADER)
    real_open = os.open

    def denied(name, *args, **kwargs):
        if name == path:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), name)
        return real_open(name, *args, **kwargs)

    # Tests run as root, whom file modes do not stop.
    monkeypatch.setattr(registrations_file.os, "open", denied)
    assert _refusal(path) == "registrations_file: cannot open %s: Permission denied" % path


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", "", "{path} is empty: a CSV registrations file starts with a header row"),
    ("blank.csv", "\n\r\n  \n", "{path} is empty: a CSV registrations file starts with a header row"),
    ("header.csv", HEADER, "{path} holds no registration. A file cut short or copied wrong"),
    ("empty.jsonl", "", "{path} holds no registration."),
    ("blank.jsonl", "\n \n", "{path} holds no registration."),
])
def test_a_file_without_registrations_is_refused(tmp_path, name, content, message):
    path = _write(tmp_path, name, content)
    assert message.format(path=path) in _refusal(path)


@pytest.mark.parametrize("header, message", [
    ("phone_number,sip_uri,routetype\n", "line 1: the header names unknown column(s) 'routetype'; the columns are "
                                         "phone_number, sip_uri, route_type"),
    ("phone_number;sip_uri;route_type\n", "columns are separated by commas, not semicolons"),
    ("+4799990000,sips:pbx.example.com,loop\n", "the first row must be the header naming the columns"),
    ("sip_uri,route_type,sip_uri\n", "line 1: the header names sip_uri more than once"),
    ("phone_number,route_type\n", "line 1: the header has no sip_uri column"),
])
def test_a_bad_header_is_refused_naming_the_line(tmp_path, header, message):
    path = _write(tmp_path, "numbers.csv", "\n" * 0 + header + "+4799990000,sips:pbx.example.com,loop\n")
    refusal = _refusal(path)
    assert message in refusal
    assert path in refusal


def test_every_bad_line_is_named_with_its_number(tmp_path):
    content = (HEADER
               + "+4799990000,%s,loop,,,\n" % URI                         # 2 good
               + "4799990001,%s,loop,,,\n" % URI                          # 3 no +
               + "+4799990002,sip:pbx.example.com,loop,,,\n"              # 4 insecure
               + "+4799990003,%s,,,,\n" % URI                             # 5 no route type
               + "+4799990004,%s,loop,1a,,\n" % URI                       # 6 bad prefix
               + "+4799990005,%s,loop,,,gone\n" % URI                     # 7 bad state
               + "+4799990006,%s,loop\n" % URI                            # 8 too few fields
               + "+4799990007,%s,fallback,,,\n" % URI                     # 9 good
               + "+4799990000,%s,fork,,,\n" % URI                         # 10 repeats line 2
               + "+4799990000,%s,fork,,,absent\n" % URI)                  # 11 repeats line 2 again
    path = _write(tmp_path, "numbers.csv", content)
    refusal = _refusal(path)
    lines = refusal.split("\n")
    assert lines[0] == "registrations_file: %s has 8 problem(s); nothing was sent and the ledger is unchanged:" % path
    assert lines[1].startswith("line 3: phone_number: '4799990001' has no leading '+'")
    # The number, once it is valid, names the registration.
    assert lines[2].startswith("line 4: +4799990002: sip_uri: 'sip:pbx.example.com' is not secure SIP")
    assert lines[3] == "line 5: +4799990003: route_type: is required with state=present; one of loop, fork, " \
                       "fallback, loop_mo, loop_mt, ingress"
    assert lines[4].startswith("line 6: +4799990004: mobile_originating_prefix: '1a' is not a prefix")
    assert lines[5].startswith("line 7: state: 'gone' is not a state")
    assert lines[6] == "line 8: has 3 field(s), the header has 6 (%s)" % HEADER.strip()
    assert lines[7] == "line 10: +4799990000 -> %s is on line 2 already; each registration may be declared once" % URI
    assert lines[8] == "line 11: +4799990000 -> %s is on line 2 already; each registration may be declared once" % URI
    assert len(lines) == 9


def test_bad_json_lines(tmp_path):
    lines = [json.dumps(dict(phone_number="+4799990000", sip_uri=URI, route_type="loop")),
             '{"phone_number": "+4799990001", "phone_number": "+4799990002", "sip_uri": "%s"}' % URI,
             '["+4799990003"]',
             '{"phone_number": "+4799990004", "sip_uri": "%s", "route": "loop"}' % URI,
             '{"phone_number": 4799990005, "sip_uri": "%s", "route_type": "loop"}' % URI,
             '{"phone_number": "+4799990006", "sip_uri": "%s", "route_type": "loop"' % URI,
             json.dumps(dict(phone_number="+4799990000", sip_uri=URI, state="absent"))]
    path = _write(tmp_path, "numbers.jsonl", "\n".join(lines) + "\n")
    lines = _refusal(path).split("\n")[1:]
    assert lines[0] == "line 2: names phone_number more than once"
    assert lines[1].startswith("line 3: is a JSON list, not an object with the keys phone_number, sip_uri")
    assert lines[2].startswith("line 4: unknown key(s) route; the keys are phone_number, sip_uri, route_type")
    assert lines[3] == "line 5: phone_number: 4799990005 is not a string; quote it"
    assert lines[4].startswith("line 6: is not a JSON object (Expecting ")
    assert lines[5] == "line 7: +4799990000 -> %s is on line 1 already; each registration may be declared once" % URI


@pytest.mark.parametrize("name, good", [
    ("numbers.csv", "+4799990000,%s,loop,,,\n" % URI),
    ("numbers.jsonl", json.dumps(dict(phone_number="+4799990000", sip_uri=URI, route_type="loop")) + "\n"),
])
def test_a_line_that_is_not_utf8(tmp_path, name, good):
    head = HEADER if name.endswith(".csv") else ""
    content = (head + good).encode("utf-8") + b"+47999\xe90001,x\n" + good.replace("0000", "0002").encode("utf-8")
    first = 3 if head else 2
    assert "\nline %d: is not UTF-8 text (byte 0xe9 at column 7); save the file as UTF-8" % first in _refusal(
        _write(tmp_path, name, content))


def test_a_quote_never_closed_and_an_endless_line_stop_the_reading(tmp_path):
    path = _write(tmp_path, "numbers.csv", HEADER + '"+4799990000,%s,loop,,,\n' % URI + "+4799990001,x\n" * 3)
    assert "%s line 2: " % path in _refusal(path) and "(a double quote that is never closed?)" in _refusal(path)
    path = _write(tmp_path, "numbers.jsonl", "x" * (registrations_file.MAX_LINE_BYTES + 10))
    assert _refusal(path) == "registrations_file: %s line 1 is longer than 65536 bytes; a registration takes one " \
                             "short line, so this is not a jsonl registrations file" % path


def test_a_failure_lists_the_first_problems_and_counts_the_rest(tmp_path):
    lines = ["+4799%06d,%s,loop,,," % (index, URI) for index in range(100)]
    for index in range(5, 100, 2):  # 48 bad lines, at lines 7, 9, ... (the header is line 1)
        lines[index] = lines[index].replace("+47", "47")
    path = _write(tmp_path, "numbers.csv", HEADER + "\n".join(lines) + "\n")
    refusal = _refusal(path).split("\n")
    assert refusal[0].endswith("has 48 problem(s); nothing was sent and the ledger is unchanged:")
    assert [line.split(":")[0] for line in refusal[1:-1]] == ["line %d" % (7 + 2 * n) for n in range(MAX_PROBLEMS)]
    assert refusal[-1] == "... and %d more" % (48 - MAX_PROBLEMS)


def test_what_the_credentials_demand_is_checked_on_every_line(tmp_path):
    def needs_number(item):
        if not item.registration.phone_number:
            raise ValidationError("phone_number", "is required with client_id/client_secret")

    path = _write(tmp_path, "numbers.csv", "phone_number,sip_uri,route_type\n,%s,loop\n+4799990000,%s,loop\n"
                  % (URI, URI))
    assert "\nline 2: phone_number: is required with client_id/client_secret" in _refusal(path, check=needs_number)
    assert len(_read(path)) == 2


def test_a_file_changed_in_place_after_the_check_is_refused_and_a_replaced_one_is_not_seen(tmp_path):
    path = _write(tmp_path, "numbers.csv", HEADER + "".join("+4799%06d,%s,loop,,,\n" % (n, URI) for n in range(50)))
    with RegistrationsFile(path) as source:
        source.check(_key)
        # Replaced the way Ansible's copy module does it: a new file renamed over the old one.
        _write(tmp_path, "new.csv", HEADER + "+4711111111,%s,loop,,,\n" % URI)
        os.rename(str(tmp_path / "new.csv"), path)
        assert len(list(source.items())) == 50
    with RegistrationsFile(path) as source:
        source.check(_key)
        with open(path, "a") as handle:
            handle.write("+4722222222,%s,loop,,,\n" % URI)
        with pytest.raises(ValidationError) as refused:
            list(source.items())
    assert "%s changed after it was checked (its size or modification time); the registrations before were " \
           "applied and recorded" % path in str(refused.value)


def _big_file(tmp_path, count):
    # A long host name makes each line about 230 bytes, so that holding the file would cost more than its keys.
    uri = "sips:%s.example.com:5061" % ".".join(["a" * 60] * 3)
    path = tmp_path / "big.csv"
    with open(str(path), "w") as handle:
        handle.write(HEADER)
        for index in range(count):
            handle.write("+4790%07d,%s,loop,11,22,\n" % (index, uri))
    return str(path), uri


def _peak(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_file_is_streamed_not_held(tmp_path):
    count = 20000
    path, uri = _big_file(tmp_path, count)
    size = os.path.getsize(path)
    assert size > 4 * 1000 * 1000
    # What the check must keep: a digest of each key, and nothing of the lines' text.
    digests = _peak(lambda: KeyDigests(repr(("+4790%07d" % index, uri)) for index in range(count)))
    assert digests < size
    with RegistrationsFile(path) as source:
        checked = []
        peak = _peak(lambda: checked.append(source.check(_key)))
        assert checked[0].count == count
        assert peak < digests + 500 * 1000, "the check held %d bytes, its digests %d, the file is %d" % (
            peak, digests, size)

        # The second pass holds one line at a time.
        def consume():
            for seen, _item in enumerate(source.items(), 1):
                pass
            assert seen == count

        peak = _peak(consume)
        assert peak < 500 * 1000, "reading the items held %d bytes" % peak
