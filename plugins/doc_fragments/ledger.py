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
      - An SQLite database (Python's own C(sqlite3), write-ahead log), created with mode 0600 in a 0700 directory,
        as are the C(-wal) and C(-shm) files beside it while it is in use. Each update is one transaction, so
        parallel forks and the keepalive can share it, and adding one registration to a ledger of a million writes
        one row. It never holds a token or secret.
      - A ledger of an earlier version of this collection (a JSON file) is converted at the same path the first
        time a task or the keepalive uses it, even in check mode; the JSON file is kept as
        C(<ledger_path>.json-v1.bak).
      - A corrupt ledger, or another program's database, fails the task and is left untouched.
      - Each entry belongs to the endpoint and the credentials that applied it (a client id, the subscription of a
        refresh token, or no credentials); O(ignore:purge) and the keepalive only act on their own. An access
        token cannot tell whose it is, so all access tokens share their entries. Give each subscriber who uses
        O(ignore:access_token) a ledger of their own.
    type: path
    default: ~/.local/state/wgtwo.sipbreakout/ledger.json
"""
