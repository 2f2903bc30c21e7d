# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's client against a server that knows only the operator's descriptor set.

Expected values come from the operator's descriptors (enum numbers looked up by name there), never from wire.py,
so a wrong number, field or method path in our protos shows up as a wrong decoded request here.
"""

import json
import subprocess

import pytest

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import auth, client, registration
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import NotAcceptableError

import proto_contract
from descriptor_server import INSECURE_SIP_MESSAGE, SERVICE, TTL_SECONDS, DescriptorServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with DescriptorServer(str(tmp_path_factory.mktemp("descriptor-server"))) as running:
        yield running


@pytest.fixture
def fresh(server):
    del server.requests[:]
    return server


def operator_route_type(server, name):
    values = server.pool.FindEnumTypeByName("wgtwo.sipbreakout.v1.RouteType").values_by_name
    return values["ROUTE_TYPE_" + name.upper()].number


def only_request(server):
    assert len(server.requests) == 1, server.requests
    return server.requests[0]


def sent_fields(message):
    """The Registration as the operator's classes decoded it, with presence of the phone number kept."""
    reg = message.registration
    return {
        "phone_number": reg.phone_number.e164 if reg.HasField("phone_number") else None,
        "sip_uri": reg.sip_uri,
        "route_type": reg.route_type,
        "mobile_originating_prefix": reg.mobile_originating_prefix,
        "mobile_terminating_prefix": reg.mobile_terminating_prefix,
    }


def make_client(server, token_source=None):
    return client.SipBreakoutClient(server.endpoint, token_source or auth.NoAuth(), ca_path=server.ca_path,
                                    timeout=5.0, retries=0)


@pytest.mark.parametrize("route_type", sorted(registration.ROUTE_TYPES))
def test_upsert_is_decoded_by_operator_descriptors(fresh, route_type):
    reg = registration.Registration.create(phone_number="+47 9999-0001", sip_uri="sips:PBX.example.com:5061",
                                           route_type=route_type, mobile_originating_prefix="00",
                                           mobile_terminating_prefix="11")
    with make_client(fresh) as api:
        result = api.upsert(reg)

    assert result.time_to_live == TTL_SECONDS
    request = only_request(fresh)
    assert request["method"] == "/%s/UpsertRegistration" % SERVICE
    assert request["message"].DESCRIPTOR.full_name == "wgtwo.sipbreakout.v1.UpsertRegistrationRequest"
    assert not request["unknown_fields"], "the client sent fields the operator's schema does not define"
    assert sent_fields(request["message"]) == {
        "phone_number": "+4799990001",
        "sip_uri": "sips:pbx.example.com:5061",  # host names compare without regard to case; sent lower-case
        "route_type": operator_route_type(fresh, route_type),
        "mobile_originating_prefix": "00",
        "mobile_terminating_prefix": "11",
    }
    assert "authorization" not in dict(request["metadata"])


def test_delete_is_decoded_by_operator_descriptors(fresh):
    reg = registration.Registration.create(phone_number="+4799990002", sip_uri="sips:tas.example.net",
                                           route_type="fallback")
    with make_client(fresh) as api:
        assert api.delete(reg) is None

    request = only_request(fresh)
    assert request["method"] == "/%s/DeleteRegistration" % SERVICE
    assert request["message"].DESCRIPTOR.full_name == "wgtwo.sipbreakout.v1.DeleteRegistrationRequest"
    assert not request["unknown_fields"]
    assert sent_fields(request["message"]) == {
        "phone_number": "+4799990002",
        "sip_uri": "sips:tas.example.net",
        "route_type": operator_route_type(fresh, "fallback"),
        "mobile_originating_prefix": "",
        "mobile_terminating_prefix": "",
    }


def test_user_token_sends_bearer_and_no_phone_number(fresh):
    reg = registration.Registration.create(sip_uri="sips:tas.example.net:5061", route_type="loop_mt")
    with make_client(fresh, auth.StaticToken("user-token-123")) as api:
        api.upsert(reg)

    request = only_request(fresh)
    assert dict(request["metadata"])["authorization"] == "Bearer user-token-123"
    fields = sent_fields(request["message"])
    assert fields["phone_number"] is None
    assert fields["route_type"] == operator_route_type(fresh, "loop_mt")


def test_not_acceptable_carries_the_servers_message(fresh):
    # Registration.create refuses sip: URIs before any call; build the value directly to reach the server.
    reg = registration.Registration("+4799990003", "sip:tas.example.net", "loop", None, None)
    with make_client(fresh) as api:
        with pytest.raises(NotAcceptableError) as caught:
            api.upsert(reg)

    assert caught.value.error_message == INSECURE_SIP_MESSAGE
    assert sent_fields(only_request(fresh)["message"])["sip_uri"] == "sip:tas.example.net"


DEBIAN_CLIENT = """
import json, sys
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils import auth, client, registration
import google.protobuf, grpc
endpoint, ca_path = sys.argv[1:3]
reg = registration.Registration.create(phone_number="+4799990004", sip_uri="sips:tas.example.org:5061",
                                       route_type="ingress", mobile_terminating_prefix="22")
with client.SipBreakoutClient(endpoint, auth.NoAuth(), ca_path=ca_path, timeout=10.0, retries=0) as api:
    ttl = api.upsert(reg).time_to_live
    api.delete(reg)
print(json.dumps({"ttl": ttl, "protobuf": google.protobuf.__version__, "grpc": grpc.__version__}))
"""


def test_debian_runtime_client_against_operator_server(fresh):
    # The oldest supported runtime (Debian 12: protobuf 3.21, grpcio 1.51) against a current grpcio server.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": proto_contract.collection_pythonpath(), "PYTHONNOUSERSITE": "1"}
    run = subprocess.run([proto_contract.DEBIAN_PYTHON, "-c", DEBIAN_CLIENT, fresh.endpoint, fresh.ca_path],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert run.returncode == 0, ("the client failed under %s (needs apt-get install -y python3-protobuf "
                                 "python3-grpcio python3-requests-oauthlib):\n%s" % (proto_contract.DEBIAN_PYTHON,
                                                                                     run.stderr))
    result = json.loads(run.stdout)
    assert result["grpc"].startswith("1.51."), result
    assert result["ttl"] == TTL_SECONDS
    assert [r["method"] for r in fresh.requests] == ["/%s/UpsertRegistration" % SERVICE,
                                                     "/%s/DeleteRegistration" % SERVICE]
    expected = {
        "phone_number": "+4799990004",
        "sip_uri": "sips:tas.example.org:5061",
        "route_type": operator_route_type(fresh, "ingress"),
        "mobile_originating_prefix": "",
        "mobile_terminating_prefix": "22",
    }
    for request in fresh.requests:
        assert not request["unknown_fields"]
        assert sent_fields(request["message"]) == expected
