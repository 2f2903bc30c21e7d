# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation and normalisation of registrations: every bad input is refused with the option named."""

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import ValidationError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import (
    Registration, normalize_phone_number, normalize_sip_uri, normalize_state, sip_uri_host)


@pytest.mark.parametrize("given, expected", [
    ("+4799990000", "+4799990000"),
    ("+47 999 90 000", "+4799990000"),
    ("+47-999-90-000", "+4799990000"),
    ("+1 415 555 0100", "+14155550100"),
])
def test_numbers_are_normalised(given, expected):
    assert normalize_phone_number(given) == expected


@pytest.mark.parametrize("given, fragment", [
    ("+47 abc", "not an E.164 number"),
    ("4799990000", "no leading '+'"),
    ("+0799990000", "not an E.164 number"),
    ("+1234567890123456", "at most 15 digits"),
    ("", "not an E.164 number"),
    ("+47(999)90000", "not an E.164 number"),
])
def test_bad_numbers_are_refused(given, fragment):
    with pytest.raises(ValidationError) as caught:
        normalize_phone_number(given)
    assert caught.value.option == "phone_number"
    assert fragment in str(caught.value)


@pytest.mark.parametrize("given, expected", [
    ("sips:pbx.example.com", "sips:pbx.example.com"),
    ("sips:pbx.example.com:5061", "sips:pbx.example.com:5061"),
    ("SIPS:pbx.example.com:05061", "sips:pbx.example.com:5061"),
    ("sips:192.0.2.10:5061", "sips:192.0.2.10:5061"),
    ("sips:[2001:db8::1]:5061", "sips:[2001:db8::1]:5061"),
    ("sips:PBX.Example.COM:5061", "sips:pbx.example.com:5061"),
    ("sips:[2001:DB8::1]", "sips:[2001:db8::1]"),
])
def test_sips_uris_are_normalised(given, expected):
    assert normalize_sip_uri(given) == expected


@pytest.mark.parametrize("given, fragment", [
    ("sip:pbx.example.com", "only accepts 'sips:'"),
    ("sips:", "has no host"),
    ("sips::5061", "has no host"),
    ("sips:pbx.example.com:99999", "port '99999'"),
    ("sips:pbx.example.com:0", "port '0'"),
    ("sips:pbx.example.com:abc", "port 'abc'"),
    ("sips:user@pbx.example.com", "without user"),
    ("sips:pbx_example!.com", "not name a valid host"),
    ("https://pbx.example.com", "scheme 'https'"),
    ("pbx.example.com", "has no scheme"),
    ("sips:999.1.1.1", "not name a valid host"),
])
def test_bad_uris_are_refused(given, fragment):
    with pytest.raises(ValidationError) as caught:
        normalize_sip_uri(given)
    assert caught.value.option == "sip_uri"
    assert fragment in str(caught.value)


def test_host_of_uri():
    assert sip_uri_host("sips:pbx.example.com:5061") == "pbx.example.com"
    assert sip_uri_host("sips:[2001:db8::1]:5061") == "[2001:db8::1]"
    assert sip_uri_host("sips:pbx.example.com") == "pbx.example.com"


def test_create_names_option_and_number():
    with pytest.raises(ValidationError) as caught:
        Registration.create(phone_number="+4799990000", sip_uri="sips:pbx.example.com", route_type="loop",
                            mobile_originating_prefix="1a")
    assert caught.value.option == "mobile_originating_prefix"
    assert caught.value.phone_number == "+4799990000"
    assert str(caught.value).startswith("+4799990000: mobile_originating_prefix:")


@pytest.mark.parametrize("route_type", [None, "loopy", "ROUTE_TYPE_LOOP"])
def test_route_type_required_and_known(route_type):
    with pytest.raises(ValidationError) as caught:
        Registration.create(phone_number="+4799990000", sip_uri="sips:pbx.example.com", route_type=route_type)
    assert caught.value.option == "route_type"


def test_delete_needs_no_route_type_and_round_trips():
    reg = Registration.create(phone_number="+47 999 90 000", sip_uri="sips:pbx.example.com:5061",
                              require_route_type=False)
    assert reg.route_type is None
    assert Registration.from_dict(reg.as_dict()) == reg
    assert reg.key == ("+4799990000", "sips:pbx.example.com:5061")


def test_empty_prefix_means_none():
    reg = Registration.create(phone_number="+4799990000", sip_uri="sips:a.example", route_type="fork",
                              mobile_originating_prefix="", mobile_terminating_prefix="22")
    assert reg.mobile_originating_prefix is None
    assert reg.mobile_terminating_prefix == "22"


CONTROL = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028"]


@pytest.mark.parametrize("char", CONTROL)
@pytest.mark.parametrize("field, good", [
    ("phone_number", "+4799990000"), ("sip_uri", "sips:pbx.example.com:5061"), ("route_type", "loop"),
    ("mobile_originating_prefix", "11"), ("mobile_terminating_prefix", "22")])
@pytest.mark.parametrize("where", ["end", "middle"])
def test_a_control_character_anywhere_in_a_field_is_refused_and_named(char, field, good, where):
    fields = dict(phone_number="+4799990000", sip_uri="sips:pbx.example.com:5061", route_type="loop",
                  mobile_originating_prefix="11", mobile_terminating_prefix="22")
    fields[field] = good + char if where == "end" else good[:3] + char + good[3:]
    with pytest.raises(ValidationError) as caught:
        Registration.create(**fields)
    assert caught.value.option == field
    assert "holds a control character (U+%04X" % ord(char) in str(caught.value)


@pytest.mark.parametrize("given", ["present\n", "abs\nent", "absent\t", "present\x00"])
def test_a_control_character_in_a_state_is_refused(given):
    with pytest.raises(ValidationError) as caught:
        normalize_state(given)
    assert "holds a control character" in str(caught.value)


def test_a_yaml_number_is_refused_with_how_to_quote_it():
    with pytest.raises(ValidationError) as caught:
        normalize_phone_number(4791110001)
    assert str(caught.value) == ("phone_number: 4791110001 is a number, not text: YAML reads an unquoted +4791110001 "
                                 "as the integer 4791110001 and drops its '+'; quote it: \"+4791110001\"")
    with pytest.raises(ValidationError) as caught:
        Registration.create(phone_number="+4799990000", sip_uri="sips:a.example", route_type="loop",
                            mobile_terminating_prefix=0)
    assert "0 is a number, not a string of digits: quote it in YAML" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        normalize_sip_uri(["sips:a.example"])
    assert str(caught.value) == "sip_uri: expected a string such as 'sips:pbx.example.com:5061', got a list"


def test_a_near_miss_is_named():
    with pytest.raises(ValidationError) as caught:
        Registration.create(phone_number="+4799990000", sip_uri="sips:a.example", route_type="Loop_MT")
    assert str(caught.value).endswith("did you mean 'loop_mt'?")
    with pytest.raises(ValidationError) as caught:
        Registration.create(phone_number="+4799990000", sip_uri="sips:a.example", route_type="voicemail")
    assert "did you mean" not in str(caught.value)
