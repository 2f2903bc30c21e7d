# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emulator's own semantics, proven with a raw gRPC client built from wire.messages() (not the collection's
client), so a bug in the client cannot hide a bug in the emulator or the other way round."""

import os
import secrets
import stat
import sys
import time

import grpc
import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import wire

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "emulator"))
from sipbreakout_emulator.testing import (  # pylint: disable=wrong-import-position
    AdminClientError, registrations_digest, running_emulator)

M = wire.messages()
SCOPE = "call.routing:write"
NUMBER = "+4799990000"
URI = "sips:pbx.example.com:5061"
SECURE_SIP_REQUIRED = "Secure SIP domain name required"

CLIENT = ("ci-client", secrets.token_urlsafe(16))
NOSCOPE_CLIENT = ("noscope-client", secrets.token_urlsafe(16))
MULTI_CLIENT = ("multi-client", secrets.token_urlsafe(16))


class Api(object):
    """A bare gRPC client of the two methods."""

    def __init__(self, emulator):
        self.channel = grpc.secure_channel(emulator.grpc_endpoint, grpc.ssl_channel_credentials(emulator.ca_pem()))
        self._upsert = self.channel.unary_unary(wire.UPSERT_METHOD,
                                                request_serializer=M.UpsertRegistrationRequest.SerializeToString,
                                                response_deserializer=M.UpsertRegistrationResponse.FromString)
        self._delete = self.channel.unary_unary(wire.DELETE_METHOD,
                                                request_serializer=M.DeleteRegistrationRequest.SerializeToString,
                                                response_deserializer=M.DeleteRegistrationResponse.FromString)

    @staticmethod
    def _metadata(token):
        return [("authorization", "Bearer " + token)] if token else []

    @staticmethod
    def registration(phone_number=NUMBER, sip_uri=URI, route_type=M.ROUTE_TYPE_LOOP, mo=None, mt=None):
        """A Registration message; phone_number=None leaves the field unset."""
        message = M.Registration(sip_uri=sip_uri, route_type=route_type)
        if phone_number is not None:
            message.phone_number.e164 = phone_number
        if mo:
            message.mobile_originating_prefix = mo
        if mt:
            message.mobile_terminating_prefix = mt
        return message

    def upsert(self, token=None, metadata=None, **fields):
        request = M.UpsertRegistrationRequest(registration=self.registration(**fields))
        return self._upsert(request, metadata=metadata if metadata is not None else self._metadata(token), timeout=10)

    def upsert_future(self, token, **fields):
        request = M.UpsertRegistrationRequest(registration=self.registration(**fields))
        return self._upsert.future(request, metadata=self._metadata(token), timeout=30)

    def delete(self, token=None, metadata=None, **fields):
        request = M.DeleteRegistrationRequest(registration=self.registration(**fields))
        return self._delete(request, metadata=metadata if metadata is not None else self._metadata(token), timeout=10)


def rpc_error(call, *args, **kwargs):
    """The grpc.RpcError that ``call`` raises."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    clients = [CLIENT, NOSCOPE_CLIENT + (["other:read"],), MULTI_CLIENT + ([SCOPE, "other:read"],)]
    with running_emulator(tmp_path_factory.mktemp("emulator"), clients=clients) as emu:
        yield emu


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.reset()


@pytest.fixture(scope="module")
def api(emulator):
    client = Api(emulator)
    yield client
    client.channel.close()


@pytest.fixture
def token(emulator):
    return emulator.client_token(*CLIENT)["access_token"]


# ------------------------------------------------------------------------------------------ authorization

def test_call_without_authorization_is_unauthenticated(emulator, api):
    error = rpc_error(api.upsert)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert emulator.registrations() == []
    calls = emulator.calls()
    assert calls["by_method"]["UpsertRegistration"]["outcomes"] == {"UNAUTHENTICATED": 1}
    assert calls["recent"][-1]["authorization"] is False


@pytest.mark.parametrize("value", ["Bearer not-a-real-token", "Basic Y2k6c2VjcmV0", "Bearer", "bearer  "])
def test_unknown_or_malformed_token_is_unauthenticated(emulator, api, value):
    error = rpc_error(api.upsert, metadata=[("authorization", value)])
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert emulator.calls()["recent"][-1]["authorization"] is True
    assert emulator.registrations() == []


def test_bearer_scheme_is_case_insensitive(api, token):
    response = api.upsert(metadata=[("authorization", "bearer " + token)])
    assert response.status_code == M.STATUS_CODE_OK


def test_token_without_routing_scope_is_permission_denied(emulator, api):
    granted = emulator.client_token(*NOSCOPE_CLIENT)
    assert granted["scope"] == "other:read"
    error = rpc_error(api.upsert, granted["access_token"])
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert SCOPE in error.details()
    assert emulator.registrations() == []


def test_client_credentials_token_requires_phone_number(emulator, api, token):
    error = rpc_error(api.upsert, token, phone_number=None)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "phone_number" in error.details()
    error = rpc_error(api.delete, token, phone_number=None)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    # An E164 message with an empty string is no number either.
    error = rpc_error(api.upsert, token, phone_number="")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert emulator.registrations() == []


def test_request_without_registration_is_invalid_argument(emulator, api, token):
    call = api.channel.unary_unary(wire.UPSERT_METHOD, request_serializer=M.UpsertRegistrationRequest.SerializeToString,
                                   response_deserializer=M.UpsertRegistrationResponse.FromString)
    error = rpc_error(call, M.UpsertRegistrationRequest(), metadata=[("authorization", "Bearer " + token)], timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "registration" in error.details()
    assert emulator.calls()["by_method"]["UpsertRegistration"]["outcomes"] == {"INVALID_ARGUMENT": 1}


def test_user_token_is_bound_to_its_number(emulator, api):
    user = emulator.user_token("+4791111111")
    response = api.upsert(user["access_token"], phone_number=None, route_type=M.ROUTE_TYPE_FORK)
    assert response.status_code == M.STATUS_CODE_OK
    [registration] = emulator.registrations()
    assert registration["phone_number"] == "+4791111111"
    assert registration["auth_kind"] == "user"

    # The same number given explicitly is fine; another one is not.
    assert api.upsert(user["access_token"], phone_number="+4791111111").status_code == M.STATUS_CODE_OK
    error = rpc_error(api.upsert, user["access_token"], phone_number=NUMBER)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert len(emulator.registrations()) == 1

    assert api.delete(user["access_token"], phone_number=None).status_code == M.STATUS_CODE_OK
    assert emulator.registrations() == []


def test_user_token_without_scope_is_permission_denied(emulator, api):
    user = emulator.user_token("+4791111111", scope="other:read")
    error = rpc_error(api.upsert, user["access_token"], phone_number=None)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_sandbox_accepts_calls_without_authorization_but_checks_tokens_sent(emulator, api):
    emulator.config(sandbox=True)
    assert api.upsert().status_code == M.STATUS_CODE_OK
    [registration] = emulator.registrations()
    assert registration["auth_kind"] == "none"
    # Without a token nothing names the subscription.
    assert rpc_error(api.upsert, phone_number=None).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_error(api.upsert, "made-up-token").code() == grpc.StatusCode.UNAUTHENTICATED
    assert emulator.calls()["recent"][-1]["authorization"] is True
    assert api.delete().status_code == M.STATUS_CODE_OK
    # reset restores the start value: no sandbox.
    emulator.reset()
    assert emulator.config()["sandbox"] is False
    assert rpc_error(api.upsert).code() == grpc.StatusCode.UNAUTHENTICATED


# ------------------------------------------------------------------------------------------ upsert and delete

def test_upsert_stores_registration_with_ttl(emulator, api, token):
    response = api.upsert(token, route_type=M.ROUTE_TYPE_LOOP_MO, mo="00", mt="11")
    assert response.status_code == M.STATUS_CODE_OK
    assert response.error_message == ""
    assert response.time_to_live.seconds == 3600
    [registration] = emulator.registrations()
    assert registration["phone_number"] == NUMBER
    assert registration["sip_uri"] == URI
    assert registration["route_type"] == "ROUTE_TYPE_LOOP_MO"
    assert registration["route_type_number"] == M.ROUTE_TYPE_LOOP_MO
    assert registration["mobile_originating_prefix"] == "00"
    assert registration["mobile_terminating_prefix"] == "11"
    assert registration["auth_kind"] == "client_credentials"
    assert registration["client_id"] == CLIENT[0]
    assert registration["upserts"] == 1
    assert 3590 < registration["remaining_ttl"] <= 3600
    assert registration["upserted_at"] < registration["expires_at"]


def test_upsert_replaces_same_number_and_uri(emulator, api, token):
    api.upsert(token, route_type=M.ROUTE_TYPE_LOOP, mo="00")
    api.upsert(token, route_type=M.ROUTE_TYPE_FALLBACK)
    [registration] = emulator.registrations()
    assert registration["route_type"] == "ROUTE_TYPE_FALLBACK"
    assert registration["mobile_originating_prefix"] is None
    assert registration["upserts"] == 2
    api.upsert(token, sip_uri="sips:other.example.com")
    api.upsert(token, phone_number="+4790000001")
    assert len(emulator.registrations()) == 3


def test_registrations_summary_counts_digests_and_counts_upserts(emulator, api, token):
    assert emulator.registrations_summary() == {"count": 0, "keys_sha256": registrations_digest([]), "by_upserts": {}}
    api.upsert(token, phone_number="+4790000002")
    api.upsert(token, phone_number="+4790000001", sip_uri="sips:b.example.com")
    api.upsert(token, phone_number="+4790000001")
    api.upsert(token, phone_number="+4790000002", route_type=M.ROUTE_TYPE_FORK)
    summary = emulator.registrations_summary()
    held = [(reg["phone_number"], reg["sip_uri"]) for reg in emulator.registrations()]
    assert summary["count"] == 3
    # The digest is the keys' in any order, and no other set of keys has it.
    assert summary["keys_sha256"] == registrations_digest(reversed(held))
    assert summary["keys_sha256"] != registrations_digest(held[:2] + [("+4790000003", URI)])
    assert summary["by_upserts"] == {"1": 2, "2": 1}
    api.delete(token, phone_number="+4790000001", sip_uri="sips:b.example.com")
    assert emulator.registrations_summary()["keys_sha256"] == registrations_digest(
        [("+4790000001", URI), ("+4790000002", URI)])


def test_plain_sip_uri_is_not_acceptable_with_exact_text(emulator, api, token):
    response = api.upsert(token, sip_uri="sip:pbx.example.com")
    assert response.status_code == M.STATUS_CODE_NOT_ACCEPTABLE
    assert response.error_message == SECURE_SIP_REQUIRED
    assert not response.HasField("time_to_live")
    assert api.upsert(token, sip_uri="pbx.example.com").error_message == SECURE_SIP_REQUIRED
    assert emulator.registrations() == []
    outcomes = emulator.calls()["by_method"]["UpsertRegistration"]["outcomes"]
    assert outcomes == {"NOT_ACCEPTABLE": 2}


@pytest.mark.parametrize("fields, words", [
    ({"route_type": M.ROUTE_TYPE_UNSPECIFIED}, "route_type"),
    ({"route_type": 42}, "route_type"),
    ({"phone_number": "4799990000"}, "phone_number"),
    ({"phone_number": "+47 9999 0000"}, "phone_number"),
    ({"phone_number": "+47abc"}, "phone_number"),
    ({"sip_uri": "sips:"}, "sip_uri"),
    ({"sip_uri": "sips:pbx.example.com:70000"}, "port"),
    ({"sip_uri": "sips:user@pbx.example.com"}, "sip_uri"),
    ({"mo": "0x"}, "mobile_originating_prefix"),
    ({"mt": "+1"}, "mobile_terminating_prefix"),
])
def test_other_content_errors_are_not_acceptable(emulator, api, token, fields, words):
    response = api.upsert(token, **fields)
    assert response.status_code == M.STATUS_CODE_NOT_ACCEPTABLE
    assert words in response.error_message
    assert emulator.registrations() == []


@pytest.mark.parametrize("sip_uri", ["sips:pbx.example.com", "SIPS:pbx.example.com", "sips:10.0.0.1:5061",
                                     "sips:[2001:db8::1]:5061"])
def test_accepted_sip_uris(api, token, sip_uri):
    assert api.upsert(token, sip_uri=sip_uri).status_code == M.STATUS_CODE_OK


def test_delete_removes_only_the_same_sip_uri(emulator, api, token):
    api.upsert(token, sip_uri="sips:a.example.com")
    api.upsert(token, sip_uri="sips:b.example.com")
    api.upsert(token, sip_uri="sips:a.example.com", phone_number="+4790000001")
    response = api.delete(token, sip_uri="sips:a.example.com", route_type=M.ROUTE_TYPE_UNSPECIFIED)
    assert response.status_code == M.STATUS_CODE_OK
    remaining = sorted((reg["phone_number"], reg["sip_uri"]) for reg in emulator.registrations())
    assert remaining == [("+4790000001", "sips:a.example.com"), (NUMBER, "sips:b.example.com")]


def test_delete_of_missing_registration_is_ok(emulator, api, token):
    assert api.delete(token, sip_uri="sips:never.example.com").status_code == M.STATUS_CODE_OK
    response = api.delete(token, sip_uri="sip:never.example.com")
    assert response.status_code == M.STATUS_CODE_NOT_ACCEPTABLE
    assert response.error_message == SECURE_SIP_REQUIRED
    assert emulator.calls()["by_method"]["DeleteRegistration"]["outcomes"] == {"OK": 1, "NOT_ACCEPTABLE": 1}


def test_registration_lapses_after_ttl(emulator, api, token):
    emulator.config(ttl=1)
    response = api.upsert(token)
    assert response.time_to_live.seconds == 1
    [registration] = emulator.registrations()
    assert registration["remaining_ttl"] <= 1
    time.sleep(1.2)
    assert emulator.registrations() == []
    # A refresh brings it back; the TTL in force at the upsert applies.
    emulator.config(ttl=2)
    api.upsert(token)
    time.sleep(1.2)
    assert len(emulator.registrations()) == 1
    emulator.reset()
    assert emulator.config()["ttl"] == 3600


def test_fractional_ttl_is_reported_in_the_duration(emulator, api, token):
    emulator.config(ttl=1.5)
    response = api.upsert(token)
    assert (response.time_to_live.seconds, response.time_to_live.nanos) == (1, 500000000)


# ------------------------------------------------------------------------------------------ faults

def test_next_calls_unavailable(emulator, api, token):
    assert emulator.faults(unavailable=2)["unavailable"] == 2
    for _attempt in range(2):
        assert rpc_error(api.upsert, token).code() == grpc.StatusCode.UNAVAILABLE
    assert api.upsert(token).status_code == M.STATUS_CODE_OK
    assert emulator.faults()["unavailable"] == 0
    assert emulator.calls()["by_method"]["UpsertRegistration"]["outcomes"] == {"UNAVAILABLE": 2, "OK": 1}
    assert len(emulator.registrations()) == 1


def test_outage_window(emulator, api, token):
    emulator.faults(unavailable_for=0.6)
    assert rpc_error(api.upsert, token).code() == grpc.StatusCode.UNAVAILABLE
    assert rpc_error(api.delete, token).code() == grpc.StatusCode.UNAVAILABLE
    time.sleep(0.7)
    assert api.upsert(token).status_code == M.STATUS_CODE_OK


def test_latency(emulator, api, token):
    emulator.faults(latency_ms=300)
    started = time.monotonic()
    api.upsert(token)
    assert time.monotonic() - started >= 0.3
    assert emulator.calls()["recent"][-1]["duration_ms"] >= 300


def test_many_calls_in_flight(emulator, api, token):
    # 64 calls each held 400 ms: in parallel this takes well under 2 s, queued it would take 25 s.
    emulator.faults(latency_ms=400)
    started = time.monotonic()
    calls = [api.upsert_future(token, phone_number="+47900%05d" % index) for index in range(64)]
    responses = [call.result(timeout=20) for call in calls]
    elapsed = time.monotonic() - started
    assert all(response.status_code == M.STATUS_CODE_OK for response in responses)
    assert elapsed < 4, "calls were queued, not served concurrently (%.1fs)" % elapsed
    assert len(emulator.registrations()) == 64


def test_token_endpoint_unavailable(emulator):
    emulator.faults(token_unavailable=1)
    status, headers, payload = emulator.token_request({"grant_type": "client_credentials"}, basic=CLIENT)
    assert status == 503
    assert payload["error"] == "temporarily_unavailable"
    assert "Retry-After" in headers
    assert emulator.client_token(*CLIENT)["access_token"]
    assert emulator.calls()["token_outcomes"] == {"unavailable": 1, "issued": 1}


def test_short_lived_tokens_expire(emulator, api):
    emulator.faults(token_ttl=1)
    granted = emulator.client_token(*CLIENT)
    assert granted["expires_in"] == 1
    assert api.upsert(granted["access_token"]).status_code == M.STATUS_CODE_OK
    time.sleep(1.2)
    error = rpc_error(api.upsert, granted["access_token"])
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in error.details()


def test_revoke_tokens_mid_play(emulator, api, token):
    assert api.upsert(token).status_code == M.STATUS_CODE_OK
    assert emulator.faults(revoke_tokens=True)["revoked_tokens"] >= 1
    assert rpc_error(api.upsert, token).code() == grpc.StatusCode.UNAUTHENTICATED
    fresh = emulator.client_token(*CLIENT)["access_token"]
    assert api.upsert(fresh).status_code == M.STATUS_CODE_OK


def test_reset_clears_faults_and_counters(emulator, api, token):
    emulator.faults(unavailable=5, latency_ms=50, token_unavailable=3)
    rpc_error(api.upsert, token)
    emulator.reset()
    faults = emulator.faults()
    assert (faults["unavailable"], faults["latency_ms"], faults["token_unavailable"]) == (0, 0, 0)
    calls = emulator.calls()
    assert (calls["total"], calls["token_requests"], calls["recent"]) == (0, 0, [])


def test_admin_refuses_unknown_faults_and_bad_values(emulator):
    with pytest.raises(AdminClientError) as info:
        emulator.faults(unavailabel=1)
    assert info.value.status == 400
    with pytest.raises(AdminClientError) as info:
        emulator.faults(unavailable=-1)
    assert info.value.status == 400
    with pytest.raises(AdminClientError) as info:
        emulator.config(ttl=0)
    assert info.value.status == 400
    with pytest.raises(AdminClientError) as info:
        emulator.admin.get("nothing-here")
    assert info.value.status == 404
    assert emulator.faults()["unavailable"] == 0


# ------------------------------------------------------------------------------------------ OAuth

def test_granted_scopes_are_requested_intersected_with_allowed(emulator):
    assert emulator.client_token(*MULTI_CLIENT)["scope"] == "call.routing:write other:read"
    assert emulator.client_token(*MULTI_CLIENT, scope="call.routing:write not:allowed")["scope"] == SCOPE
    status, _headers, payload = emulator.token_request({"grant_type": "client_credentials", "scope": SCOPE},
                                                       basic=NOSCOPE_CLIENT)
    assert (status, payload["error"]) == (400, "invalid_scope")


def test_token_response_shape(emulator):
    status, headers, payload = emulator.token_request({"grant_type": "client_credentials"}, basic=CLIENT)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert payload["token_type"] == "Bearer"
    assert payload["expires_in"] == 3600
    assert "refresh_token" not in payload
    assert len(payload["access_token"]) >= 32
    assert payload["access_token"] != emulator.client_token(*CLIENT)["access_token"]


def test_basic_credentials_are_form_decoded(emulator):
    # RFC 6749 section 2.3.1: id and secret are form-encoded before base64, so '+' in a raw header means a space.
    secret = "s3cret+/:%"
    emulator.add_client("odd-client", secret)
    assert emulator.token_request({"grant_type": "client_credentials"}, basic=("odd-client", secret))[0] == 200
    status, _headers, payload = emulator.token_request({"grant_type": "client_credentials", "client_id": "odd-client",
                                                        "client_secret": secret})
    assert status == 200 and payload["access_token"]


def test_requests_oauthlib_interoperates(emulator):
    oauth2 = pytest.importorskip("requests_oauthlib")
    from oauthlib.oauth2 import BackendApplicationClient  # pylint: disable=import-outside-toplevel
    from requests.auth import HTTPBasicAuth  # pylint: disable=import-outside-toplevel

    session = oauth2.OAuth2Session(client=BackendApplicationClient(client_id=CLIENT[0], scope=[SCOPE]))
    token = session.fetch_token(emulator.token_url, auth=HTTPBasicAuth(*CLIENT), verify=emulator.ca_path,
                                include_client_id=False)
    assert token["scope"] == [SCOPE] and token["expires_in"] == 3600
    user = emulator.user_token("+4794444444", client_id=CLIENT[0])
    session = oauth2.OAuth2Session(client_id=CLIENT[0], scope=[SCOPE])
    refreshed = session.refresh_token(emulator.token_url, refresh_token=user["refresh_token"],
                                      auth=HTTPBasicAuth(*CLIENT), verify=emulator.ca_path)
    assert refreshed["refresh_token"] != user["refresh_token"]
    assert emulator.calls()["token_outcomes"] == {"issued": 2}


def test_client_secret_in_form_fields(emulator):
    status, _headers, payload = emulator.token_request({"grant_type": "client_credentials", "client_id": CLIENT[0],
                                                        "client_secret": CLIENT[1]})
    assert status == 200 and payload["scope"] == SCOPE


@pytest.mark.parametrize("form, basic, status, error", [
    ({"grant_type": "client_credentials"}, (CLIENT[0], "wrong"), 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, ("nobody", "x"), 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
    ({"grant_type": "password", "username": "u", "password": "p"}, CLIENT, 400, "unsupported_grant_type"),
    ({}, CLIENT, 400, "invalid_request"),
    ({"grant_type": "client_credentials", "client_secret": CLIENT[1]}, CLIENT, 400, "invalid_request"),
    ({"grant_type": "refresh_token"}, None, 400, "invalid_request"),
    ({"grant_type": "refresh_token", "refresh_token": "never-issued"}, None, 400, "invalid_grant"),
])
def test_token_endpoint_errors(emulator, form, basic, status, error):
    got_status, headers, payload = emulator.token_request(form, basic=basic)
    assert (got_status, payload["error"]) == (status, error)
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Basic")
    assert emulator.calls()["token_outcomes"] == {error: 1}


def test_refresh_tokens_rotate(emulator, api):
    user = emulator.user_token("+4792222222")
    assert user["refresh_token"] and user["expires_in"] == 3600

    status, _headers, first = emulator.token_request({"grant_type": "refresh_token",
                                                      "refresh_token": user["refresh_token"]})
    assert status == 200
    assert first["refresh_token"] != user["refresh_token"]
    assert first["access_token"] != user["access_token"]
    assert api.upsert(first["access_token"], phone_number=None).status_code == M.STATUS_CODE_OK
    assert emulator.registrations()[0]["phone_number"] == "+4792222222"

    # The used refresh token is dead at once; the new one works exactly once.
    status, _headers, payload = emulator.token_request({"grant_type": "refresh_token",
                                                        "refresh_token": user["refresh_token"]})
    assert (status, payload["error"]) == (400, "invalid_grant")
    status, _headers, second = emulator.token_request({"grant_type": "refresh_token",
                                                       "refresh_token": first["refresh_token"]})
    assert status == 200
    status, _headers, payload = emulator.token_request({"grant_type": "refresh_token",
                                                        "refresh_token": first["refresh_token"]})
    assert (status, payload["error"]) == (400, "invalid_grant")

    # A refresh cannot widen the grant.
    status, _headers, payload = emulator.token_request({"grant_type": "refresh_token", "scope": SCOPE + " other:read",
                                                        "refresh_token": second["refresh_token"]})
    assert (status, payload["error"]) == (400, "invalid_scope")


def test_refresh_token_bound_to_a_client(emulator):
    user = emulator.user_token("+4792222222", client_id=CLIENT[0])
    form = {"grant_type": "refresh_token", "refresh_token": user["refresh_token"]}
    assert emulator.token_request(form)[2]["error"] == "invalid_grant"
    assert emulator.token_request(form, basic=(CLIENT[0], "wrong"))[0] == 401
    status, _headers, payload = emulator.token_request(form, basic=CLIENT)
    assert status == 200 and payload["refresh_token"]


def test_revoked_refresh_token_survives_access_token_revocation(emulator, api):
    user = emulator.user_token("+4792222222")
    emulator.faults(revoke_tokens=True)
    assert rpc_error(api.upsert, user["access_token"], phone_number=None).code() == grpc.StatusCode.UNAUTHENTICATED
    status, _headers, payload = emulator.token_request({"grant_type": "refresh_token",
                                                        "refresh_token": user["refresh_token"]})
    assert status == 200
    assert api.upsert(payload["access_token"], phone_number=None).status_code == M.STATUS_CODE_OK


def test_admin_can_add_clients(emulator, api):
    secret = secrets.token_urlsafe(8)
    assert emulator.add_client("late-client", secret) == {"client_id": "late-client", "scopes": [SCOPE]}
    assert api.upsert(emulator.client_token("late-client", secret)["access_token"]).status_code == M.STATUS_CODE_OK
    assert all("client_secret" not in client for client in emulator.admin.get("clients"))


# ------------------------------------------------------------------------------------------ observability

def test_counters_and_call_log(emulator, api, token):
    api.upsert(token)
    api.upsert(token, sip_uri="sip:insecure.example.com")
    api.delete(token)
    rpc_error(api.delete)
    calls = emulator.calls()
    assert calls["total"] == 4
    assert calls["by_method"] == {
        "UpsertRegistration": {"total": 2, "outcomes": {"OK": 1, "NOT_ACCEPTABLE": 1}},
        "DeleteRegistration": {"total": 2, "outcomes": {"OK": 1, "UNAUTHENTICATED": 1}},
    }
    # The token fixture runs after the autouse reset: its one request is counted.
    assert (calls["token_requests"], calls["token_outcomes"]) == (1, {"issued": 1})
    assert calls["recent_token_requests"][-1]["client_id"] == CLIENT[0]
    first, second, third, fourth = calls["recent"]
    assert (first["method"], first["phone_number"], first["outcome"], first["authorization"]) == \
        ("UpsertRegistration", NUMBER, "OK", True)
    assert first["route_type"] == "ROUTE_TYPE_LOOP" and first["status_code"] == "STATUS_CODE_OK"
    assert (second["outcome"], second["message"]) == ("NOT_ACCEPTABLE", SECURE_SIP_REQUIRED)
    assert third["method"] == "DeleteRegistration"
    assert (fourth["outcome"], fourth["grpc_status"], fourth["authorization"]) == \
        ("UNAUTHENTICATED", "UNAUTHENTICATED", False)
    assert len(emulator.calls(limit=1)["recent"]) == 1


def test_files_and_logs_keep_secrets(emulator, api, token):
    user = emulator.user_token("+4793333333")
    api.upsert(token)
    api.upsert(user["access_token"], phone_number=None)
    emulator.token_request({"grant_type": "refresh_token", "refresh_token": user["refresh_token"]})
    for name in ("ca.key", "server.key", "emulator.json"):
        assert stat.S_IMODE(os.stat(os.path.join(emulator.state_dir, name)).st_mode) == 0o600, name
    assert emulator.grpc_endpoint.startswith("127.0.0.1:")
    assert emulator.admin_url.startswith("https://127.0.0.1:")
    log = emulator.log()
    assert "UpsertRegistration" in log
    for secret in (CLIENT[1], NOSCOPE_CLIENT[1], MULTI_CLIENT[1], token, user["access_token"], user["refresh_token"]):
        assert secret not in log
    # The secrets never reached the command line either: they went over stdin.
    with open("/proc/%d/cmdline" % emulator.pid, "rb") as handle:
        assert CLIENT[1].encode() not in handle.read()


def test_reject_fault_answers_not_acceptable_for_that_number_only(emulator, api, token):
    emulator.faults(reject={"+4799990077": "Number not served by this product"})
    refused = api.upsert(token, phone_number="+4799990077")
    assert refused.status_code == M.STATUS_CODE_NOT_ACCEPTABLE
    assert refused.error_message == "Number not served by this product"
    assert api.upsert(token, phone_number="+4799990078").status_code == M.STATUS_CODE_OK
    assert [r["phone_number"] for r in emulator.registrations()] == ["+4799990078"]
    with pytest.raises(AdminClientError) as info:
        emulator.faults(reject={"+4799990079": ""})
    assert info.value.status == 400
