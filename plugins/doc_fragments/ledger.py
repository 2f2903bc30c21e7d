# -*- coding: utf-8 -*-
# Copyright: contributors to the wgtwo.sipbreakout collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The ledger option; argument spec LEDGER_ARGSPEC in plugins/module_utils/ansible_module.py.
    DOCUMENTATION = r"""
options:
  ledger_path:
    description:
      - The ledger, on the host where the module runs, that records what was applied, when the last successful
        upsert was and the time to live the API returned. The API has no read call, so this is how the
        collection knows what it applied.
      - Created with mode 0600 in a 0700 directory; locked while it is updated and replaced atomically, so
        parallel forks and the keepalive can share it. It never holds a token or secret.
      - A corrupt ledger fails the task and is left untouched.
      - Each entry belongs to the endpoint and the credentials that applied it (a client id, the subscription of a
        refresh token, or no credentials); O(ignore:purge) and the keepalive only act on their own. An access
        token cannot tell whose it is, so all access tokens share their entries. Give each subscriber who uses
        O(ignore:access_token) a ledger of their own.
    type: path
    default: ~/.local/state/wgtwo.sipbreakout/ledger.json
"""
