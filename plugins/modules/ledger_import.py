#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: ledger_import
short_description: Import a host's SQLite ledger into a scope of the shared PostgreSQL ledger, once
version_added: 0.2.0
description:
  - Copies every registration of an SQLite ledger (O(source_path), the one the registration module and the
    keepalive used on this host) that the target ledger does not hold yet into the target's O(ledger_scope),
    usually O(ledger_store=postgresql) with the scope the host or its cluster uses from now on.
  - Idempotent. A registration the target holds already (the same endpoint, credentials, number and URI) stays as
    it is there, so running it again, or after the target has moved on, imports nothing more and reports
    RV(ignore:changed=false).
  - Counts are checked. After the import the target must hold every registration of the source, or the task
    fails; RV(counts) says how many were in the source, imported, and already present.
  - The source is read only and left as it is. Once the hosts use the shared ledger, the source is not used any
    more; remove it when you no longer need it.
  - It never calls the API and needs no credentials.
author:
  - Working Group Two SIP breakout maintainers (@wgtwo)
extends_documentation_fragment:
  - wgtwo.sipbreakout.ledger
attributes:
  check_mode:
    description: Counts what it would import, and writes nothing.
    support: full
  diff_mode:
    description: Reports counts only.
    support: none
  platform:
    description: Runs on the host whose SQLite ledger it reads, with Python 3.8 or newer.
    platforms: posix
    support: full
options:
  source_path:
    description:
      - The SQLite ledger to import, on the host where the module runs.
      - When not set, the default ledger of O(ledger_path) (C(/var/lib/wgtwo-sipbreakout/ledger.sqlite) for root,
        or its earlier C(ledger.json) name).
      - A missing source imports nothing.
    type: path
  source_scope:
    description:
      - The scope of the source to import. A ledger one host kept for itself has only the default one.
    type: str
    default: default
notes:
  - This module does not take the connection options of the collection, so it is not in the action group
    C(group/wgtwo.sipbreakout.sipbreakout).
seealso:
  - module: wgtwo.sipbreakout.registration
  - module: wgtwo.sipbreakout.registration_info
"""

EXAMPLES = r"""
- name: Move this host's registrations to the shared ledger, in the scope of its cluster
  wgtwo.sipbreakout.ledger_import:
    source_path: /var/lib/wgtwo-sipbreakout/ledger.json
    ledger_store: postgresql
    ledger_conninfo: "host=db.example.com dbname=sipbreakout user=sipbreakout sslmode=verify-full"
    login_password: "{{ vault_sipbreakout_db_password }}"
    ca_cert: /etc/ssl/certs/db-ca.pem
    ledger_scope: tas-cluster-oslo
  register: imported

- name: Say what was imported
  ansible.builtin.debug:
    msg: "{{ imported.counts }}"
"""

RETURN = r"""
counts:
  description: How many registrations the source held, how many were imported, how many the target held already,
    and how many the target's scope holds afterwards (in check mode, before).
  returned: always
  type: dict
  sample: {source: 1200, imported: 1200, present: 0, target: 1200}
source_path:
  description: The SQLite ledger that was read.
  returned: always
  type: str
  sample: /var/lib/wgtwo-sipbreakout/ledger.json
ledger_path:
  description: The target ledger, as its path or V(postgresql://HOST:PORT/DBNAME) (never a password).
  returned: always
  type: str
  sample: postgresql://db.example.com:5432/sipbreakout
ledger_scope:
  description: The target scope.
  returned: always
  type: str
  sample: tas-cluster-oslo
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ansible_module import LEDGER_ARGSPEC
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.errors import SipBreakoutError
from ansible_collections.wgtwo.sipbreakout.plugins.module_utils.ledger_transfer import import_from_options


def main():
    spec = dict(LEDGER_ARGSPEC)
    spec.update(source_path=dict(type="path"), source_scope=dict(type="str", default="default"))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    try:
        result = import_from_options(module.params, check_mode=module.check_mode)
    except SipBreakoutError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
