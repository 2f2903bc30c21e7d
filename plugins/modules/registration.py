#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: registration
short_description: Manage virtual SIP registrations (SIP breakout) of phone numbers
version_added: 0.1.0
description:
  - Creates, refreshes or deletes a virtual SIP registration through the operator's gRPC API
    (C(wgtwo.sipbreakout.v1.SipBreakoutService), scope V(call.routing:write)), so that calls of a phone number
    reach a PBX or TAS at O(sip_uri) the way O(route_type) says.
  - Every registration lapses 3600 seconds after its last successful upsert. O(state=present) therefore always
    sends the upsert, which also refreshes it; a keepalive is needed to keep it beyond that.
  - The API has no read call. What was applied is recorded in a ledger on the host where the module runs
    (O(ledger_path)), and C(changed) is decided against it. RV(ignore:changed) is V(true) when the ledger holds no
    live registration for this number and O(sip_uri), or one with other fields, or (for O(state=absent)) when
    it holds a live one. A registration changed outside this ledger (by hand, from another host, with another
    ledger) is not seen.
  - Check mode predicts the result from the ledger without calling the API or the token endpoint. It runs without
    grpcio, protobuf and requests-oauthlib and with a O(ca_path) that does not exist yet (a new host whose play
    installs them before the real run), and warns that a real run needs them.
author:
  - Working Group Two SIP breakout maintainers (@wgtwo)
extends_documentation_fragment:
  - wgtwo.sipbreakout.connection
  - wgtwo.sipbreakout.ledger
  - wgtwo.sipbreakout.attributes
requirements:
  - grpcio >= 1.51
  - protobuf >= 3.21
  - requests-oauthlib >= 1.3 (with O(client_id) or O(refresh_token))
options:
  phone_number:
    description:
      - The number (MSISDN) in E.164 form, V(+) and country code included. Spaces and dashes are dropped.
      - Required when authenticating with O(client_id) and O(client_secret). With a user token
        (O(access_token) or O(refresh_token)) the token names the subscription and this may be left out.
    type: str
  sip_uri:
    description:
      - Where the core sends the calls, V(sips:HOST) or V(sips:HOST:PORT). Only secure SIP is accepted.
      - Without a port, the core finds the endpoint through DNS SRV records of the domain.
      - The endpoint must present a certificate valid for HOST.
      - With O(state=absent), the registration with this URI is deleted.
      - Required unless O(registrations) or O(registrations_file) is given.
    type: str
  route_type:
    description:
      - How the core involves the endpoint. Required with O(state=present) (for O(registrations), per item).
      - V(loop) sends every call of the number to the endpoint first; the call goes on only when the endpoint
        sends it back. V(loop_mo) does so only for calls the number makes, V(loop_mt) only for calls it receives.
      - V(fork) rings the endpoint and the number at the same time.
      - V(fallback) sends the call to the endpoint only if the number is busy or does not answer within 30 s
        (voicemail, call forwarding).
      - V(ingress) lets the endpoint place calls to the number; other calls are unaffected.
    type: str
    choices: [loop, fork, fallback, loop_mo, loop_mt, ingress]
  mobile_originating_prefix:
    description:
      - Digits put after the V(+) of the number in the INVITE when the call exists because the caller has this
        registration (V(00) turns V(sip:+4711...) into V(sip:+004711...)). Lets the endpoint tell directions apart.
    type: str
  mobile_terminating_prefix:
    description:
      - Digits put after the V(+) when only the answerer has this registration.
    type: str
  state:
    description:
      - V(present) upserts the registration (and so refreshes its time to live); V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  registrations:
    description:
      - Many registrations in one task, on one channel with one token, O(concurrency) calls in flight.
      - Each item takes the single-registration options. Mutually exclusive with them.
      - The whole list is validated before any call; an item the API refuses fails only itself (unless
        O(fail_fast)), and the ledger is updated once, with exactly the items that succeeded.
      - The task fails if any item failed or was not sent; running it again retries exactly those.
    type: list
    elements: dict
    suboptions:
      phone_number:
        description: As O(phone_number).
        type: str
      sip_uri:
        description: As O(sip_uri).
        type: str
        required: true
      route_type:
        description: As O(route_type). Required when the item's O(registrations[].state=present).
        type: str
        choices: [loop, fork, fallback, loop_mo, loop_mt, ingress]
      mobile_originating_prefix:
        description: As O(mobile_originating_prefix).
        type: str
      mobile_terminating_prefix:
        description: As O(mobile_terminating_prefix).
        type: str
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
        default: present
  registrations_file:
    description:
      - Many registrations from a file on the host where the module runs, one a line, for lists too long to pass
        as O(registrations) (an operator's whole base, up to a million numbers). Mutually exclusive with
        O(registrations) and the single-registration options.
      - CSV (C(.csv)) starts with a header row naming its columns; JSON lines (C(.jsonl), C(.ndjson)) hold one JSON
        object a line. O(registrations_file_format) overrides the extension. UTF-8, with or without a byte order
        mark; LF or CRLF line ends; blank lines are skipped.
      - The columns (keys) are the fields of an item of O(registrations) - C(phone_number), C(sip_uri),
        C(route_type), C(mobile_originating_prefix), C(mobile_terminating_prefix), C(state) - with the same rules
        and defaults. C(sip_uri) is required; an empty CSV cell, a missing key or V(null) leaves a field unset;
        JSON values must be strings. Any other column or key is refused.
      - The whole file is read and validated before any call, and nothing is sent unless every line is valid and
        no registration appears twice. The failure names the file and the first 20 problems with their line
        numbers (both lines for a repeated registration), and counts the rest. A missing, unreadable or empty file
        is refused too; an empty list with O(purge) is O(registrations=[]).
      - The file is then read again and applied 10,000 lines at a time. Each chunk is planned from the ledger's
        entries of its registrations, sent with O(concurrency) calls in flight, and recorded in the ledger before
        the next one starts, so the module's memory does not grow with the file and a run that is interrupted
        has recorded everything it applied. O(purge) deletes what the ledger holds beyond the file, after the
        file's lines, within O(max_purge) and O(purge_allowance) decided before any call.
      - RV(results) holds only the registrations that changed, failed or were not sent, each with its
        RV(results[].line), the first 1,000 of them (RV(results_omitted) counts the rest); RV(summary) always counts
        every one. With C(--diff), the first 1,000 changes are shown.
      - The file stays open during the run, so replacing it (as M(ansible.builtin.copy) does) does not affect a
        run under way; a change made to the open file fails the run, before any further call.
    type: path
  registrations_file_format:
    description:
      - The format of O(registrations_file). V(auto) tells it from the file name's extension.
    type: str
    choices: [auto, csv, jsonl]
    default: auto
  purge:
    description:
      - With O(registrations) or O(registrations_file), delete every registration the ledger holds for the same
        O(api_endpoint) and credentials that is not in the list, so that the list is exactly what the operator
        holds.
    type: bool
    default: false
  max_purge:
    description:
      - With O(purge), the largest share of the ledger's registrations (for this endpoint and credentials), in
        percent, that one run may delete. A run that would delete more, and more than O(purge_allowance), fails
        before any call (in check mode too), so that an empty or truncated inventory cannot wipe out a provider.
        Set V(100) when a big removal is intended.
      - Numbers removed with O(registrations[].state=absent) count against neither limit.
    type: float
    default: 20.0
  purge_allowance:
    description:
      - With O(purge), how many deletions one run may always make, whatever share of the ledger they are, as long
        as at least one of the ledger's registrations (for this endpoint and credentials) stays. With the default,
        a host of three numbers can lose one (33 %, more than O(max_purge)), while a host of 3,000 still cannot
        lose more than O(max_purge) percent.
      - It never lets a purge delete every registration the ledger holds. An empty list, or one that names none of
        them (an inventory that did not load, another host's list), needs O(max_purge=100), even on a host with a
        single number.
      - V(0) leaves only O(max_purge).
    type: int
    default: 1
  previous_principal:
    description:
      - After the subscriber consented again and O(refresh_token) is a new one, the principal of the refresh token
        it replaced (V(user:<client id>:<digest>), as RV(wgtwo.sipbreakout.registration_info#module:principals)
        and RV(wgtwo.sipbreakout.registration_info#module:orphans) list it). This run takes over that principal's
        registrations in the ledger (for the same O(api_endpoint)) as O(previous_entries) says, so that they are
        not left for nobody to refresh.
      - Needs O(registrations) (or O(registrations_file)) and a O(refresh_token) of the same O(client_id). Every registration of the previous
        principal must name its C(phone_number), and it must be the number this run's items (or this refresh
        token's own registrations in the ledger) name. That number is all that tells one subscriber's refresh
        tokens from another's on one ledger, so registrations of another subscription, or applied without a
        number, are refused. Everything is checked before any call, in check mode too.
      - A registration the items name is sent once, as declared, and its previous entry leaves the ledger. One that
        this refresh token holds itself already stays as it is.
      - Once taken over, the previous principal holds nothing; a later run naming it again only warns, unless the
        ledger then holds registrations of another earlier refresh token of this subscription, which fails and names
        them.
    type: str
  previous_entries:
    description:
      - What happens to the registrations of O(previous_principal) that the items do not name.
      - V(adopt) upserts them with this run's credentials and keeps them in the ledger as its own, so the keepalive
        refreshes them from then on. With O(purge) they count as this run's registrations instead, and are purged
        (within O(max_purge) and O(purge_allowance)) unless the items name them.
      - V(delete) deletes them at the operator with this run's credentials; neither purge limit applies, as with
        O(registrations[].state=absent).
      - Either way, a previous entry whose call fails stays in the ledger as it was, and the next run tries again.
    type: str
    choices: [adopt, delete]
    default: adopt
  concurrency:
    description:
      - With O(registrations) or O(registrations_file), the most calls in flight at once, as streams of the one HTTP/2 connection.
      - A call that fails for a transient reason (V(UNAVAILABLE), V(DEADLINE_EXCEEDED), V(RESOURCE_EXHAUSTED)) is
        retried on its own, with backoff, within O(timeout). Each round of such answers also halves the calls
        in flight, which grow back by one per round of answered calls, so a busy API is not hammered; the task
        then warns, and a lower value suits that API better.
      - Once a call has failed that way with all its retries spent, the API is taken to be down and no further
        call is started; the items not sent are reported as V(not_sent).
    type: int
    default: 256
  fail_fast:
    description:
      - With O(registrations) or O(registrations_file), send nothing more after the first failed item. Items never sent are reported with
        RV(results[].result=not_sent) and the task fails.
    type: bool
    default: false
notes:
  - Credentials given as environment variables on the controller do not reach modules that run on other hosts;
    pass them as options there (the C(wgtwo.sipbreakout.pbx) role does).
  - Use O(ignore:group/wgtwo.sipbreakout.sipbreakout) in C(module_defaults) to set the connection options once.
seealso:
  - name: SIP breakout API
    description: The operator's documentation of the API this module calls.
    link: https://docs.wgtwo.com/
"""

EXAMPLES = r"""
- name: Loop the calls of a number through the PBX
  wgtwo.sipbreakout.registration:
    phone_number: "+47 999 90 000"
    sip_uri: "sips:pbx.example.com:5061"
    route_type: loop
    mobile_originating_prefix: "11"
    mobile_terminating_prefix: "22"
    client_id: "{{ vault_wgtwo_client_id }}"
    client_secret: "{{ vault_wgtwo_client_secret }}"

- name: Set connection and credentials once for every module of the collection
  module_defaults:
    group/wgtwo.sipbreakout.sipbreakout:
      client_id: "{{ vault_wgtwo_client_id }}"
      client_secret: "{{ vault_wgtwo_client_secret }}"
  block:
    - name: Voicemail on busy or no answer
      wgtwo.sipbreakout.registration:
        phone_number: "+4799990001"
        sip_uri: "sips:voicemail.example.com"
        route_type: fallback

    - name: Stop routing a number to the PBX
      wgtwo.sipbreakout.registration:
        phone_number: "+4799990002"
        sip_uri: "sips:pbx.example.com:5061"
        state: absent

- name: Try it against the public sandbox, which needs no credentials
  wgtwo.sipbreakout.registration:
    api_endpoint: sandbox.api.wgtwo.com:443
    phone_number: "+4799990000"
    sip_uri: "sips:pbx.example.com"
    route_type: fork

- name: Exactly these numbers, in one task; every other number of this ledger is deleted
  wgtwo.sipbreakout.registration:
    registrations:
      - phone_number: "+4799990000"
        sip_uri: "sips:pbx.example.com:5061"
        route_type: loop
      - phone_number: "+4799990001"
        sip_uri: "sips:pbx.example.com:5061"
        route_type: fallback
    purge: true
    client_id: "{{ vault_wgtwo_client_id }}"
    client_secret: "{{ vault_wgtwo_client_secret }}"

- name: An operator's whole base from a file on the host (CSV with a header row), exactly; check it with --check first
  wgtwo.sipbreakout.registration:
    # phone_number,sip_uri,route_type,mobile_originating_prefix,mobile_terminating_prefix,state
    # +4799990000,sips:tas.example.com:5061,loop,11,22,
    # +4799990001,sips:tas.example.com:5061,fallback,11,22,
    registrations_file: /var/lib/wgtwo-sipbreakout/registrations.csv
    purge: true
    client_id: "{{ vault_wgtwo_client_id }}"
    client_secret: "{{ vault_wgtwo_client_secret }}"
  register: applied

- name: The same as JSON lines, one object a line
  wgtwo.sipbreakout.registration:
    # {"phone_number": "+4799990000", "sip_uri": "sips:tas.example.com:5061", "route_type": "loop"}
    # {"phone_number": "+4799990002", "sip_uri": "sips:tas.example.com:5061", "state": "absent"}
    registrations_file: /var/lib/wgtwo-sipbreakout/registrations.jsonl
    client_id: "{{ vault_wgtwo_client_id }}"
    client_secret: "{{ vault_wgtwo_client_secret }}"

- name: After the subscriber consented again, the new refresh token takes over the old one's registrations
  wgtwo.sipbreakout.registration:
    registrations:
      - phone_number: "+4799990005"
        sip_uri: "sips:pbx.example.com:5061"
        route_type: loop
    refresh_token: "{{ vault_new_refresh_token }}"
    client_id: "{{ vault_wgtwo_client_id }}"
    client_secret: "{{ vault_wgtwo_client_secret }}"
    # registration_info lists it among principals (before) or orphans (after the switch)
    previous_principal: "user:{{ vault_wgtwo_client_id }}:0a1b2c3d4e5f"
    previous_entries: adopt

- name: With a user token, the number is the token's own
  wgtwo.sipbreakout.registration:
    access_token: "{{ user_access_token }}"
    sip_uri: "sips:pbx.example.com:5061"
    route_type: loop_mt
"""

RETURN = r"""
registration:
  description: The registration as sent to the API, after normalisation.
  returned: without O(registrations)
  type: dict
  contains:
    phone_number:
      description: The number in E.164 form, or V(null) with a user token.
      type: str
      sample: "+4799990000"
    sip_uri:
      description: The endpoint URI.
      type: str
      sample: "sips:pbx.example.com:5061"
    route_type:
      description: The route type, or V(null) when deleting without one.
      type: str
      sample: loop
    mobile_originating_prefix:
      description: The MO prefix, or V(null).
      type: str
      sample: "11"
    mobile_terminating_prefix:
      description: The MT prefix, or V(null).
      type: str
      sample: "22"
state:
  description: The state asked for.
  returned: without O(registrations)
  type: str
  sample: present
time_to_live:
  description: Seconds the registration lives after this upsert, as the API answered. V(null) in check mode and
    with O(state=absent).
  returned: without O(registrations)
  type: int
  sample: 3600
expires_at:
  description: When the registration lapses unless refreshed, UTC, ISO 8601. V(null) in check mode and with
    O(state=absent).
  returned: without O(registrations)
  type: str
  sample: "2026-11-27T08:15:00Z"
status:
  description: The API's status code for the call. V(null) in check mode.
  returned: without O(registrations)
  type: str
  sample: STATUS_CODE_OK
results:
  description:
    - With O(registrations), one entry per item, in order, then one per registration taken over or purged.
    - With O(registrations_file), only the registrations whose RV(results[].result) is not V(unchanged) (and those
      taken over), in the same order, the first 1,000 of them; RV(results_omitted) counts the others.
  returned: with O(registrations) or O(registrations_file)
  type: list
  elements: dict
  contains:
    phone_number:
      description: The number, in E.164 form.
      type: str
    sip_uri:
      description: The endpoint URI.
      type: str
    route_type:
      description: The route type sent, or V(null) for a delete without one.
      type: str
    state:
      description: The item's state.
      type: str
    line:
      description: The line of O(registrations_file) the registration is on.
      type: int
      returned: with O(registrations_file), for the file's registrations
    result:
      description:
        - V(created), V(updated), V(unchanged) or V(deleted) once the API accepted the call; in check mode, what would
          happen.
        - V(failed) when the call failed (see RV(results[].error)); the ledger keeps what it held before.
        - V(not_sent) when O(fail_fast) stopped the run before this item's call; nothing changed for it.
      type: str
    expires_at:
      description: When the registration lapses unless refreshed (UTC, ISO 8601), or V(null) when nothing was upserted.
      type: str
    error:
      description: Why the item failed.
      type: str
      returned: when it failed
    purged:
      description: V(true) for a registration deleted because O(purge) found it missing from the list.
      type: bool
      returned: for purged registrations
    previous_principal:
      description: The principal whose ledger entry this item took over (O(previous_principal)).
      type: str
      returned: for registrations taken over from O(previous_principal)
  sample:
    - phone_number: "+4799990000"
      sip_uri: "sips:pbx.example.com:5061"
      route_type: loop
      state: present
      result: created
      expires_at: "2026-11-27T08:15:00Z"
summary:
  description: With O(registrations) or O(registrations_file), how many items had each RV(results[].result).
  returned: with O(registrations) or O(registrations_file)
  type: dict
  sample: {created: 9990, updated: 0, unchanged: 0, deleted: 10, failed: 0, not_sent: 0}
results_omitted:
  description: How many results O(registrations_file) left out of RV(results) beyond its first 1,000.
  returned: with O(registrations_file)
  type: int
  sample: 0
registrations_file:
  description: The file the registrations were read from, as an absolute path.
  returned: with O(registrations_file)
  type: str
  sample: /var/lib/wgtwo-sipbreakout/registrations.csv
ledger_path:
  description: The ledger that was read and updated, as its path or V(postgresql://HOST:PORT/DBNAME) (never a
    password).
  returned: always
  type: str
  sample: /var/lib/wgtwo-sipbreakout/ledger.sqlite
ledger_scope:
  description: The scope of the ledger the registrations belong to.
  returned: always
  type: str
  sample: default
phone_number:
  description: The number the failure is about.
  returned: failure
  type: str
  sample: "+4799990000"
option:
  description: The option whose value was refused.
  returned: failure on invalid input
  type: str
  sample: sip_uri
code:
  description: The gRPC status or API status of the failure.
  returned: failure of an API call
  type: str
  sample: NOT_ACCEPTABLE
"""

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.adoption import ADOPT, PREVIOUS_ENTRIES
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ansible_module import SipBreakoutModule
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registration import ROUTE_TYPES, STATES
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.registrations_file import FORMATS
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.service import DEFAULT_CONCURRENCY, DEFAULT_MAX_PURGE, \
    DEFAULT_PURGE_ALLOWANCE, ensure_from_options


def main():
    single = dict(
        phone_number=dict(type="str"),
        sip_uri=dict(type="str"),
        route_type=dict(type="str", choices=list(ROUTE_TYPES)),
        mobile_originating_prefix=dict(type="str"),
        mobile_terminating_prefix=dict(type="str"),
    )
    item = dict(single, sip_uri=dict(type="str", required=True),
                state=dict(type="str", default="present", choices=list(STATES)))
    module = SipBreakoutModule(
        argument_spec=dict(
            single,
            state=dict(type="str", default="present", choices=list(STATES)),
            registrations=dict(type="list", elements="dict", options=item),
            registrations_file=dict(type="path"),
            registrations_file_format=dict(type="str", default="auto", choices=["auto"] + list(FORMATS)),
            purge=dict(type="bool", default=False),
            max_purge=dict(type="float", default=DEFAULT_MAX_PURGE),
            purge_allowance=dict(type="int", default=DEFAULT_PURGE_ALLOWANCE),
            previous_principal=dict(type="str"),
            previous_entries=dict(type="str", default=ADOPT, choices=list(PREVIOUS_ENTRIES)),
            concurrency=dict(type="int", default=DEFAULT_CONCURRENCY),
            fail_fast=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("registrations", name) for name in single]
        + [("registrations_file", name) for name in list(single) + ["registrations"]],
        required_one_of=[("registrations", "registrations_file", "sip_uri")],
        required_if=[("purge", True, ("registrations", "registrations_file"), True)],
        required_by=dict(previous_principal=("refresh_token",)),
        supports_check_mode=True,
    )
    module.exit_json(**module.run(ensure_from_options))


if __name__ == "__main__":
    main()
