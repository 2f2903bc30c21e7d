#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: registration_info
short_description: Report the state of a host's SIP breakout registrations from its ledger and keepalive
version_added: 0.1.0
description:
  - Reads one scope of the ledger (O(ledger_scope); the SQLite ledger O(ledger_path) on the host where it runs,
    or the shared PostgreSQL ledger of O(ledger_store=postgresql)) and, if given, the health file the keepalive
    writes (O(health_path)), and reports how many registrations are in each state, whose credentials applied them
    (principals), the ones that lapse first, the ones whose last refresh failed and, with O(health_path), the ones
    its keepalive does not refresh (orphans).
  - With O(list=true) it also lists registrations, each with its state, when it lapses and the result of its last
    refresh, the ones O(filter) selects, at most O(limit) of them.
  - Every list it returns is bounded (by O(limit), or by a fixed number that its description gives) and says how
    many it left out, so the result stays small for a ledger of a million registrations; the counts are made by
    the database, not by loading the ledger.
  - The API has no read call, so this is what the host knows of what it applied. It never calls the API or
    the token endpoint and needs no credentials.
  - States, most severe first. V(lapsed) - its time to live has run out, the operator no longer holds it.
    V(error) - still live, but the last attempt to refresh it failed (see RV(registrations[].last_error)).
    V(expiring) - live and refreshed without error, but less than O(expiring_within) seconds are left, so the
    keepalive is late or not running. V(live) - none of these.
author:
  - Working Group Two SIP breakout maintainers (@wgtwo)
extends_documentation_fragment:
  - wgtwo.sipbreakout.ledger
attributes:
  check_mode:
    description: Reads files only, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Reports only; there is nothing to show a difference of.
    support: none
  platform:
    description: Runs on the host whose ledger it reads, the controller or a remote host with Python 3.8 or newer.
    platforms: posix
    support: full
options:
  health_path:
    description:
      - The health file of the keepalive on this host, which the C(wgtwo.sipbreakout.keepalive) role puts at
        V(/var/lib/wgtwo-sipbreakout/health.json).
      - When given, RV(keepalive) reports when the keepalive last ran and what it found, and whether that is longer
        ago than O(health_max_age). A missing file is reported, not an error.
    type: path
  expiring_within:
    description:
      - A live registration with fewer seconds than this left is reported as V(expiring).
      - By default, the part of each registration's time to live in which the keepalive refreshes it (a third,
        or the keepalive's C(refresh_fraction) from O(health_path)).
    type: float
  health_max_age:
    description:
      - Seconds after which the health file counts as stale (RV(keepalive.stale)), meaning the keepalive has not
        run. The default suits the role's 5 minute schedule.
    type: float
    default: 900
  list:
    description:
      - Whether to list registrations in RV(registrations), those that O(filter) selects, in the ledger's order
        (by API endpoint, principal, number and URI), at most O(limit).
      - Without it, only the counts, the nearest expiries, the failures, the principals and the orphans are
        returned.
    type: bool
    default: false
  filter:
    description:
      - Which registrations O(list=true) lists; every sub-option given must match. The counts are always of the
        whole ledger.
      - Only with O(list=true).
    type: dict
    suboptions:
      state:
        description: Only registrations in one of these states (as described above).
        type: list
        elements: str
        choices: [live, expiring, lapsed, error]
      phone_number:
        description: Only the registrations of this number (E.164, normalised as the registration module does).
        type: str
      phone_number_prefix:
        description:
          - Only the registrations whose number starts with this, such as V(+4799).
          - Registrations without a number (applied with a user token) never match it, nor O(filter.phone_number).
        type: str
      sip_uri:
        description: Only the registrations of this endpoint URI (normalised as the registration module does).
        type: str
  limit:
    description:
      - The most items RV(registrations), RV(orphans) and RV(failures) hold each; what they leave out is counted
        (RV(registrations_omitted), RV(orphans_total), RV(failures_total)).
    type: int
    default: 1000
notes:
  - This module does not take the connection options of the collection, so it is not in the action group
    C(group/wgtwo.sipbreakout.sipbreakout).
seealso:
  - module: wgtwo.sipbreakout.registration
"""

EXAMPLES = r"""
- name: What the PBX host's registrations look like (counts, nearest expiries, failures)
  wgtwo.sipbreakout.registration_info:
    health_path: /var/lib/wgtwo-sipbreakout/health.json
  register: sipbreakout

- name: Fail when a registration is not live or the keepalive stopped running
  ansible.builtin.assert:
    that:
      - sipbreakout.states.lapsed == 0
      - sipbreakout.states.error == 0
      - not sipbreakout.keepalive.stale
    fail_msg: "{{ sipbreakout.failures }}"

- name: The registrations of numbers starting +4799 that are failing or lapsed, at most 50
  wgtwo.sipbreakout.registration_info:
    list: true
    filter:
      state: [error, lapsed]
      phone_number_prefix: "+4799"
    limit: 50
  register: failing

- name: Show them, and how many more there are
  ansible.builtin.debug:
    msg: "{{ failing.registrations | map(attribute='phone_number') }} and {{ failing.registrations_omitted }} more"

- name: One number
  wgtwo.sipbreakout.registration_info:
    list: true
    filter:
      phone_number: "+4799990000"
  register: one

- name: After a new refresh token, the registrations of the one it replaced, which nobody refreshes
  wgtwo.sipbreakout.registration_info:
    health_path: /var/lib/wgtwo-sipbreakout/health.json
  register: sipbreakout_orphans

- name: Show whose they are, for previous_principal
  ansible.builtin.debug:
    msg: "{{ sipbreakout_orphans.orphans | selectattr('replaced_refresh_token') | map(attribute='principal') | unique }}"

- name: A cluster's registrations in the shared ledger (the database's password from libpq's PGPASSFILE)
  wgtwo.sipbreakout.registration_info:
    ledger_store: postgresql
    ledger_conninfo: "host=db.example.com dbname=sipbreakout user=sipbreakout sslmode=verify-full"
    ledger_scope: tas-cluster-oslo
  register: cluster

- name: Numbers that lapse within the next 15 minutes
  wgtwo.sipbreakout.registration_info:
    expiring_within: 900
    list: true
    filter:
      state: [expiring]
  register: soon
"""

RETURN = r"""
registrations:
  description:
    - The registrations O(filter) selects, at most O(limit), in the ledger's order (by API endpoint, principal,
      number and URI).
  returned: when O(list=true)
  type: list
  elements: dict
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
      description: The route type as last sent.
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
    endpoint:
      description: The API endpoint it was applied at.
      type: str
      sample: api.wgtwo.com:443
    principal:
      description:
        - Whose credentials applied it, never a secret. C(client:<client id>) for client credentials,
          C(user:<client id>:<digest>) for the subscription of a refresh token (the digest names the configured
          refresh token and stays the same while the operator rotates it), C(access-token) for any access token,
          C(anonymous) without credentials.
      type: str
      sample: "client:pbx-provisioning"
    state:
      description: V(live), V(expiring), V(lapsed) or V(error), as described above.
      type: str
      sample: live
    expires_at:
      description: When it lapses unless refreshed, UTC, ISO 8601.
      type: str
      sample: "2026-11-27T08:15:00Z"
    expires_at_epoch:
      description: The same as Unix time.
      type: float
      sample: 1795763700.0
    seconds_left:
      description: Seconds until it lapses; V(0) once lapsed.
      type: float
      sample: 2400.5
    upserted_at:
      description: The last successful upsert, UTC, ISO 8601.
      type: str
      sample: "2026-11-27T07:15:00Z"
    time_to_live:
      description: The time to live in seconds the API returned for that upsert.
      type: float
      sample: 3600
    last_attempt_at:
      description: The last upsert attempt, successful or not, UTC, ISO 8601.
      type: str
      sample: "2026-11-27T07:15:00Z"
    last_result:
      description: V(ok) if the last attempt worked, V(failed) if not.
      type: str
      sample: ok
    last_error:
      description: Why the last attempt failed, or V(null).
      type: str
      sample: "the API rejected the registration (STATUS_CODE_NOT_ACCEPTABLE): Secure SIP domain name required"
    delete_pending:
      description:
        - V(true) when a run asked for it to be deleted and the delete failed or was not sent. The keepalive does not renew it, so
          it lapses unless it is deleted first; the next run that asks for it absent, or purges it, deletes it again.
      type: bool
      sample: false
registrations_matched:
  description: How many registrations O(filter) selects, listed or not.
  returned: when O(list=true)
  type: int
  sample: 1200
registrations_omitted:
  description: How many of them RV(registrations) leaves out because of O(limit).
  returned: when O(list=true)
  type: int
  sample: 200
filter:
  description: The filter as it was applied (numbers and URIs normalised); only the sub-options that were given.
  returned: when O(list=true)
  type: dict
  sample: {"states": ["error", "lapsed"], "phone_number_prefix": "+4799"}
limit:
  description: The limit that was applied.
  returned: when O(list=true)
  type: int
  sample: 1000
states:
  description: How many registrations are in each state.
  returned: always
  type: dict
  contains:
    live:
      description: Live registrations.
      type: int
    expiring:
      description: Expiring registrations.
      type: int
    lapsed:
      description: Lapsed registrations.
      type: int
    error:
      description: Live registrations whose last refresh failed.
      type: int
  sample: {"live": 3, "expiring": 0, "lapsed": 0, "error": 1}
registrations_total:
  description: How many registrations the ledger holds.
  returned: always
  type: int
  sample: 4
registrations_live:
  description: How many of them the operator still holds (every state but V(lapsed)).
  returned: always
  type: int
  sample: 4
seconds_to_nearest_expiry:
  description: Seconds until the next registration lapses, or V(null) when none is live.
  returned: always
  type: float
  sample: 2400.5
nearest_expiry:
  description: The live registration that lapses first, or V(null) when none is live.
  returned: always
  type: dict
  sample: {"phone_number": "+4799990001", "sip_uri": "sips:pbx.example.com", "expires_at": "2026-11-27T08:15:00Z",
           "expires_at_epoch": 1795763700.0}
nearest_expiries:
  description: The 10 live registrations that lapse first, soonest first, each as in RV(registrations).
  returned: always
  type: list
  elements: dict
failures_total:
  description: How many registrations' last refresh failed (all of them; RV(failures) lists the first O(limit)).
  returned: always
  type: int
  sample: 1
failures:
  description: Registrations whose last refresh failed, with the error; the first O(limit) in the ledger's order.
  returned: always
  type: list
  elements: dict
  sample: [{"phone_number": "+4799990001", "sip_uri": "sips:pbx.example.com", "state": "error",
            "error": "upsert at api.wgtwo.com:443 failed after 5 attempt(s) within timeout=10s: UNAVAILABLE (...)",
            "expires_at": "2026-11-27T08:15:00Z", "last_attempt_at": "2026-11-27T07:55:00Z"}]
keepalive:
  description: What the keepalive's health file says, or V(null) without O(health_path).
  returned: always
  type: dict
  contains:
    health_path:
      description: The file that was read.
      type: str
    found:
      description: Whether the file exists.
      type: bool
    updated_at:
      description: When the keepalive last wrote it, UTC, ISO 8601.
      type: str
    age_seconds:
      description: How long ago that was.
      type: float
    stale:
      description: V(true) when the file is missing or older than O(health_max_age).
      type: bool
    last_run:
      description: The keepalive's last pass (C(outcome) V(ok), V(idle) or V(failed), C(due), C(refreshed),
        C(failed), C(error)).
      type: dict
    last_success_at:
      description: When a pass last ended without any failure.
      type: str
    warnings:
      description: What the keepalive warned about (for example registrations it cannot refresh).
      type: list
      elements: str
    failures:
      description: The failures the keepalive reported in its last pass.
      type: list
      elements: dict
  sample: {"health_path": "/var/lib/wgtwo-sipbreakout/health.json", "found": true,
           "updated_at": "2026-11-27T07:55:00Z", "age_seconds": 42.0, "stale": false,
           "last_run": {"outcome": "ok", "due": 1, "refreshed": 1, "failed": 0, "error": null},
           "last_success_at": "2026-11-27T07:55:00Z", "warnings": [], "failures": []}
principals:
  description:
    - Whose credentials the ledger's registrations belong to, one item per API endpoint and principal, in that order.
      After the subscriber consented again and the refresh token was replaced, the earlier refresh token's
      principal is the one to name in O(wgtwo.sipbreakout.registration#module:previous_principal).
  returned: always
  type: list
  elements: dict
  contains:
    endpoint:
      description: The API endpoint.
      type: str
    principal:
      description: As RV(registrations[].principal).
      type: str
    registrations:
      description: How many registrations it holds.
      type: int
    live:
      description: How many of them are within their time to live.
      type: int
    phone_numbers:
      description:
        - The numbers its registrations name, in order; the first 100 (none for a user token's registrations applied
          without one).
      type: list
      elements: str
    last_upserted_at:
      description: Its newest successful upsert, UTC, ISO 8601; it stops moving once nobody refreshes them.
      type: str
    keepalive:
      description: Whether the keepalive of O(health_path) refreshes them; V(null) without its health file.
      type: bool
  sample: [{"endpoint": "api.wgtwo.com:443", "principal": "user:pbx-provisioning:0a1b2c3d4e5f", "registrations": 2,
            "live": 1, "phone_numbers": ["+4799990005"], "last_upserted_at": "2026-11-27T06:40:00Z",
            "keepalive": false}]
orphans:
  description:
    - The registrations the keepalive of O(health_path) does not refresh, because another endpoint or other
      credentials applied them; they lapse unless something else refreshes them. Each item is as in
      RV(registrations), plus C(replaced_refresh_token). The first O(limit), in the ledger's order.
    - C(replaced_refresh_token) is V(true) for one that an earlier refresh token of the keepalive's own client
      applied at its endpoint, such as the previous refresh token after the subscriber consented again. Its
      C(principal) is what O(wgtwo.sipbreakout.registration#module:previous_principal) takes, if its
      C(phone_number) is this subscription's (another subscriber's refresh token of the same client looks the
      same).
    - V(null) without O(health_path), or before the keepalive wrote its health file.
  returned: always
  type: list
  elements: dict
  sample: [{"phone_number": "+4799990005", "sip_uri": "sips:pbx.example.com:5061", "route_type": "loop",
            "endpoint": "api.wgtwo.com:443", "principal": "user:pbx-provisioning:0a1b2c3d4e5f", "state": "live",
            "expires_at": "2026-11-27T07:40:00Z", "replaced_refresh_token": true}]
orphans_total:
  description: How many orphans there are (RV(orphans) lists the first O(limit)); V(null) when RV(orphans) is.
  returned: always
  type: int
  sample: 1
checked_at:
  description: The time the states refer to, UTC, ISO 8601.
  returned: always
  type: str
  sample: "2026-11-27T07:55:42Z"
ledger_path:
  description: The ledger that was read, as its path or V(postgresql://HOST:PORT/DBNAME) (never a password).
  returned: always
  type: str
  sample: /var/lib/wgtwo-sipbreakout/ledger.sqlite
ledger_scope:
  description: The scope of the ledger that was read.
  returned: always
  type: str
  sample: default
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ansible_module import LEDGER_ARGSPEC
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import SipBreakoutError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.health import DEFAULT_LIMIT, STATES, info_report


def main():
    spec = dict(LEDGER_ARGSPEC)
    spec.update(
        health_path=dict(type="path"),
        expiring_within=dict(type="float"),
        health_max_age=dict(type="float", default=900.0),
        list=dict(type="bool", default=False),
        filter=dict(type="dict", options=dict(
            state=dict(type="list", elements="str", choices=list(STATES)),
            phone_number=dict(type="str"),
            phone_number_prefix=dict(type="str"),
            sip_uri=dict(type="str"),
        ), mutually_exclusive=[("phone_number", "phone_number_prefix")]),
        limit=dict(type="int", default=DEFAULT_LIMIT),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    try:
        result = info_report(module.params)
    except SipBreakoutError as exc:
        module.fail_json(msg=str(exc), option=getattr(exc, "option", None))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
